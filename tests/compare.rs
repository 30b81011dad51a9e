//! `lapicque compare`: two runs of the smoke network with different seeds are at a positive
//! distance, a run is at distance zero from itself, the mean rates agree with
//! `lapicque inspect`, and files that cannot be compared are refused with one line and exit
//! code 2.

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

/// Rows of the CSV: (population, quantity, time, value).
fn rows(csv: &Path) -> Vec<(String, String, f64, f64)> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("population,quantity,time_ms,value"));
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
    assert!(same.iter().all(|r| r.3 == 0.0), "A vs A is not all zeros");

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
    let c = lapicque::compare::compare(&a, &b).unwrap();
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
    let d = dir.join("resized.h5");
    run(&smoke(), &d, &["population.I.size=300"]);
    refused(&compare(&a, &d, None), "population I has 400 neurons in");
    let e = dir.join("bins.h5");
    run(&smoke(), &e, &["observables.histogram.bins=40"]);
    refused(&compare(&a, &e, None), "histogram edges");

    // Missing and incomplete files.
    refused(&compare(&a, &dir.join("missing.h5"), None), "no such file");
    let incomplete = dir.join("incomplete.h5");
    common::create_h5(&incomplete);
    refused(
        &compare(&incomplete, &a, None),
        "not a complete output file",
    );
}
