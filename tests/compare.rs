//! `lapicque compare`: two runs of the smoke network with different seeds are at a positive
//! distance, a run is at distance zero from itself, the mean rates agree with
//! `lapicque inspect`, runs of other sizes and durations and a limit solved from the unmodified
//! configuration are compared on their common times with distances equal to the ones computed
//! here from the two files, and files that cannot be compared are refused with one line and
//! exit code 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn smoke() -> PathBuf {
    common::repo().join("configs/smoke.toml")
}

/// The smoke network for 100 ms on 2 ranks, with extra `--set` overrides.
fn run(config: &Path, out: &Path, sets: &[&str]) {
    let mut extra = vec!["--set", "simulation.t_stop=100"];
    for s in sets {
        extra.extend(["--set", s]);
    }
    common::run_ok(2, config, out, &extra);
}

fn lapicque(args: &[&str]) -> Output {
    let mut c = Command::new(common::binary());
    c.args(args);
    common::run_with_timeout(c, Duration::from_secs(120))
}

fn compare(a: &Path, b: &Path, csv: Option<&Path>) -> Output {
    let mut args = vec!["compare", a.to_str().unwrap(), b.to_str().unwrap()];
    if let Some(c) = csv {
        args.extend(["-o", c.to_str().unwrap()]);
    }
    lapicque(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Rows of the CSV: (subject, quantity, time, value).
fn rows(csv: &Path) -> Vec<(String, String, f64, f64)> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("subject,quantity,time_ms,value"));
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            assert_eq!(c.len(), 4, "bad CSV row {l}");
            (
                c[0].to_string(),
                c[1].to_string(),
                c[2].parse().unwrap(),
                c[3].parse().unwrap(),
            )
        })
        .collect()
}

/// The rows of a table that start with a population name: name -> the other columns.
fn table_rows(text: &str, pops: &[&str]) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c.len() > 3 && pops.contains(&c[0])).then(|| {
                (
                    c[0].to_string(),
                    c[1..].iter().map(|s| s.to_string()).collect(),
                )
            })
        })
        .collect()
}

/// Expects exit code 2 and one line on stderr containing `what`.
fn refused(o: &Output, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit code 2: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("lapicque: error: "), "{err}");
    assert!(err.contains(what), "expected {what:?} in: {err}");
}

#[test]
fn compare_two_seeds_itself_and_refuse_what_differs() {
    let dir = common::scratch("compare");
    let (a, b) = (dir.join("a.h5"), dir.join("b.h5"));
    run(&smoke(), &a, &[]);
    run(&smoke(), &b, &["simulation.seed=2"]);

    // A against itself: every distance is exactly zero.
    let self_csv = dir.join("self.csv");
    let o = compare(&a, &a, Some(&self_csv));
    assert!(o.status.success(), "{}", stderr(&o));
    let same = rows(&self_csv);
    for q in [
        "rate_abs_diff",
        "histogram_l1",
        "histogram_w1",
        "mean_abs_diff",
        "sd_abs_diff",
    ] {
        for p in ["E", "I"] {
            assert!(
                same.iter().any(|r| r.0 == p && r.1 == q),
                "no {q} for {p} in the CSV"
            );
        }
    }
    assert!(
        same.iter()
            .filter(|r| !r.1.starts_with("mean_rate"))
            .all(|r| r.3 == 0.0),
        "A vs A is not all zeros"
    );

    // A against B: the seeds differ, so the measures do.
    let csv = dir.join("ab.csv");
    let o = compare(&a, &b, Some(&csv));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let ab = rows(&csv);
    assert_eq!(ab.len(), same.len());
    // One rate row per bin, one histogram row per sample time, at the file's times.
    let f = hdf5::File::open(&a).unwrap();
    let rate_time = f.dataset("rates/time").unwrap().read_raw::<f64>().unwrap();
    let hist_time = f
        .dataset("histograms/time")
        .unwrap()
        .read_raw::<f64>()
        .unwrap();
    for p in ["E", "I"] {
        let series = |q: &str| -> Vec<(f64, f64)> {
            ab.iter()
                .filter(|r| r.0 == p && r.1 == q)
                .map(|r| (r.2, r.3))
                .collect()
        };
        let times = |s: &[(f64, f64)]| s.iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(times(&series("rate_abs_diff")), rate_time);
        // Floats are written in scientific notation.
        assert!(std::fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .skip(1)
            .all(|l| l.split(',').skip(2).all(|x| x.contains('e'))));
        let w1 = series("histogram_w1");
        assert_eq!(times(&w1), hist_time);
        assert!(w1.iter().any(|x| x.1 > 0.0), "{p}: W1 is zero throughout");
        assert!(
            w1.iter().all(|x| x.1 >= 0.0 && x.1 <= 40.0),
            "{p}: W1 {w1:?}"
        );
        let l1 = series("histogram_l1");
        assert!(l1.iter().all(|x| (0.0..=2.0 + 1e-12).contains(&x.1)));
        assert!(l1.iter().any(|x| x.1 > 0.0));
        // Both start from the same initial state.
        assert_eq!(w1[0].1, 0.0);
    }

    // Mean rates: the table agrees with `lapicque inspect` and with the rate series.
    let inspect = |file: &Path| stdout(&lapicque(&["inspect", file.to_str().unwrap()]));
    let (ia, ib) = (inspect(&a), inspect(&b));
    let (ia, ib) = (table_rows(&ia, &["E", "I"]), table_rows(&ib, &["E", "I"]));
    let cmp = table_rows(&table, &["E", "I"]);
    assert_eq!(cmp.len(), 2, "table:\n{table}");
    for (((p, c), (_, x)), (_, y)) in cmp.iter().zip(&ia).zip(&ib) {
        // inspect: size, spikes, rate; compare: rate A, rate B, A - B.
        assert_eq!(c[0], x[2], "{p}: rate of A");
        assert_eq!(c[1], y[2], "{p}: rate of B");
        let (ra, rb): (f64, f64) = (x[2].parse().unwrap(), y[2].parse().unwrap());
        let diff: f64 = c[2].parse().unwrap();
        assert!(
            (diff - (ra - rb)).abs() <= 1.5e-3,
            "{p}: {diff} vs {ra} - {rb}"
        );
    }
    let c = lapicque::compare::compare(&a, &b, 0.0).unwrap();
    for p in &c.populations {
        let (ra, rb) = p.mean_rate;
        assert_eq!(ra, common::mean_rate(&a, &p.name));
        assert_eq!(rb, common::mean_rate(&b, &p.name));
        assert!(ra != rb);
    }

    // Different populations: renamed, resized, or binned differently.
    let renamed = dir.join("renamed.toml");
    let text = std::fs::read_to_string(smoke())
        .unwrap()
        .replace("[population.I]", "[population.J]")
        .replace("\"I\"", "\"J\"");
    std::fs::write(&renamed, text).unwrap();
    let c = dir.join("renamed.h5");
    run(&renamed, &c, &[]);
    let none = dir.join("none.csv");
    refused(
        &compare(&a, &c, Some(&none)),
        "different populations: E, I in",
    );
    assert!(!none.exists(), "a CSV was written for a refused comparison");
    let e = dir.join("bins.h5");
    run(&smoke(), &e, &["observables.histogram.bins=40"]);
    refused(&compare(&a, &e, None), "histogram edges");
    let f = dir.join("rate_bins.h5");
    run(&smoke(), &f, &["observables.rates.every=2"]);
    refused(&compare(&a, &f, None), "rate bins of 1 ms in");

    // Missing and incomplete files.
    refused(&compare(&a, &dir.join("missing.h5"), None), "no such file");
    let incomplete = dir.join("incomplete.h5");
    common::create_h5(&incomplete);
    refused(
        &compare(&incomplete, &a, None),
        "not a complete output file",
    );
}

/// A dataset of `file` as f64 values.
fn read(file: &Path, name: &str) -> Vec<f64> {
    let f = hdf5::File::open(file).unwrap();
    f.dataset(name).unwrap().read_raw::<f64>().unwrap()
}

/// L1 distance of two densities on equal bins, written out here: sum |a - b| width.
fn l1_here(a: &[f64], b: &[f64], edges: &[f64]) -> f64 {
    let w = edges[1] - edges[0];
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() * w
}

/// W1 of the two laws that put each bin's mass (normalised to 1) at the bin's centre: the
/// integral of |F_A - F_B| over v, F the cumulative distribution functions, which between
/// two neighbouring centres (one bin width apart) are constant.
fn w1_here(a: &[f64], b: &[f64], edges: &[f64]) -> f64 {
    let w = edges[1] - edges[0];
    let (ma, mb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    let (mut fa, mut fb, mut total) = (0.0, 0.0, 0.0);
    for k in 0..a.len() - 1 {
        fa += a[k] / ma;
        fb += b[k] / mb;
        total += (fa - fb).abs() * w;
    }
    total
}

/// The CSV rows of `subject` and `quantity` as (time, value).
fn pick(rows: &[(String, String, f64, f64)], subject: &str, quantity: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter(|r| r.0 == subject && r.1 == quantity)
        .map(|r| (r.2, r.3))
        .collect()
}

/// Checks every rate and histogram distance in `csv` (A against B, from `from` ms on) against
/// the distances computed here from the two files, at the times both files have.
fn check_against_files(a: &Path, b: &Path, csv: &Path, from: f64) {
    let rows = rows(csv);
    let edges = read(a, "histograms/edges");
    let bins = edges.len() - 1;
    let common = |ta: &[f64], tb: &[f64]| -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, x) in ta.iter().enumerate() {
            if let Some(j) = tb.iter().position(|y| (x - y).abs() < 1e-9) {
                if *x >= from {
                    out.push((i, j));
                }
            }
        }
        out
    };
    let (rta, rtb) = (read(a, "rates/time"), read(b, "rates/time"));
    let (hta, htb) = (read(a, "histograms/time"), read(b, "histograms/time"));
    let rate_pairs = common(&rta, &rtb);
    let hist_pairs = common(&hta, &htb);
    assert!(!rate_pairs.is_empty() && !hist_pairs.is_empty());
    for p in ["E", "I"] {
        let (ra, rb) = (
            read(a, &format!("rates/{p}")),
            read(b, &format!("rates/{p}")),
        );
        let got = pick(&rows, p, "rate_abs_diff");
        assert_eq!(got.len(), rate_pairs.len(), "{p}: rate bins compared");
        for ((t, d), &(i, j)) in got.iter().zip(&rate_pairs) {
            assert_eq!(*t, rta[i]);
            assert!((d - (ra[i] - rb[j]).abs()).abs() < 1e-9, "{p} rate at {t}");
        }
        let mean = |r: &[f64], k: &dyn Fn(&(usize, usize)) -> usize| {
            rate_pairs.iter().map(|x| r[k(x)]).sum::<f64>() / rate_pairs.len() as f64
        };
        let ma = pick(&rows, p, "mean_rate_a")[0].1;
        assert!((ma - mean(&ra, &|x| x.0)).abs() < 1e-9, "{p}: mean rate A");
        let mb = pick(&rows, p, "mean_rate_b")[0].1;
        assert!((mb - mean(&rb, &|x| x.1)).abs() < 1e-9, "{p}: mean rate B");

        let (ha, hb) = (
            read(a, &format!("histograms/{p}")),
            read(b, &format!("histograms/{p}")),
        );
        let row = |h: &[f64], k: usize| h[k * bins..(k + 1) * bins].to_vec();
        let (l1, w1) = (
            pick(&rows, p, "histogram_l1"),
            pick(&rows, p, "histogram_w1"),
        );
        assert_eq!(
            l1.len(),
            hist_pairs.len(),
            "{p}: histogram samples compared"
        );
        let (mut avg_a, mut avg_b) = (vec![0.0; bins], vec![0.0; bins]);
        for (k, &(i, j)) in hist_pairs.iter().enumerate() {
            let (x, y) = (row(&ha, i), row(&hb, j));
            assert_eq!(l1[k].0, hta[i]);
            assert!((l1[k].1 - l1_here(&x, &y, &edges)).abs() < 1e-12, "{p} L1");
            assert!((w1[k].1 - w1_here(&x, &y, &edges)).abs() < 1e-12, "{p} W1");
            for b in 0..bins {
                avg_a[b] += x[b] / hist_pairs.len() as f64;
                avg_b[b] += y[b] / hist_pairs.len() as f64;
            }
        }
        let l1m = pick(&rows, p, "histogram_l1_of_mean")[0].1;
        let w1m = pick(&rows, p, "histogram_w1_of_mean")[0].1;
        assert!((l1m - l1_here(&avg_a, &avg_b, &edges)).abs() < 1e-12);
        assert!((w1m - w1_here(&avg_a, &avg_b, &edges)).abs() < 1e-12);
    }
}

#[test]
fn compare_across_sizes_durations_and_against_the_limit() {
    let dir = common::scratch("compare_sizes");
    let (a, small) = (dir.join("a.h5"), dir.join("small.h5"));
    run(&smoke(), &a, &[]);
    common::run_ok(
        2,
        &smoke(),
        &small,
        &[
            "--set",
            "simulation.t_stop=60",
            "--set",
            "population.E.size=800",
            "--set",
            "population.I.size=200",
            "--set",
            "simulation.seed=3",
        ],
    );
    // Other sizes and durations: compared on the common window, sizes stated.
    let csv = dir.join("sizes.csv");
    let o = compare(&a, &small, Some(&csv));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("population sizes differ: E 1600 in A, 800 in B; I 400 in A, 200 in B"),
        "{table}"
    );
    check_against_files(&a, &small, &csv, 0.0);
    let last = pick(&rows(&csv), "E", "rate_abs_diff").last().unwrap().0;
    assert_eq!(last, 59.0, "the common window ends with the shorter run");

    // Against the limit solved from the unmodified configuration (200 ms), from 20 ms on.
    let limit = dir.join("limit.h5");
    let o = lapicque(&[
        "meanfield",
        smoke().to_str().unwrap(),
        "-o",
        limit.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = dir.join("limit.csv");
    let mut args = vec!["compare", a.to_str().unwrap(), limit.to_str().unwrap()];
    args.extend(["--from", "20", "-o", csv.to_str().unwrap()]);
    let o = lapicque(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    check_against_files(&a, &limit, &csv, 20.0);
    let r = rows(&csv);
    assert!(r.iter().all(|x| x.2 >= 20.0), "a time before --from");
    assert_eq!(pick(&r, "E", "histogram_l1")[0].0, 20.0);

    // Like for like: at t = 0 run and limit hold the same law (every neuron at e_l), and the
    // limit's histograms count the refractory neurons at v_reset, as a run does: they hold
    // the whole population (the range [-20, 20) mV takes in all but a negligible tail).
    let c = lapicque::compare::compare(&a, &limit, 0.0).unwrap();
    for p in &c.populations {
        assert_eq!(
            p.series("histogram_l1").unwrap().value[0],
            0.0,
            "{}",
            p.name
        );
    }
    let edges = read(&limit, "histograms/edges");
    for p in ["E", "I"] {
        let h = read(&limit, &format!("histograms/{p}"));
        for (k, row) in h.chunks(edges.len() - 1).enumerate() {
            let mass: f64 = row.iter().sum::<f64>() * (edges[1] - edges[0]);
            assert!(
                (mass - 1.0).abs() < 1e-4,
                "{p}: limit mass {mass} at sample {k}"
            );
        }
    }
}
