//! Convergence studies with `scripts/convergence.py`, one command each: uncoupled noisy LIF
//! neurons approach their Fokker-Planck limit at the rate N^(-1/2) of the law of large numbers;
//! in a two-block non-exchangeable network in the sparse regime the tree observables, averaged
//! over networks, approach the limit's; without a limit the finite-size extrapolation of the
//! rate lands on the limit the solver computes.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn convergence(dir: &Path, config: &str, args: &[&str]) {
    let mut c = Command::new(common::python());
    c.arg(common::repo().join("scripts/convergence.py"));
    c.args([
        "--config",
        common::repo().join(config).to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
        "--bin",
        common::binary(),
    ]);
    c.args(args);
    let o = common::run_with_timeout(c, Duration::from_secs(900));
    assert!(
        o.status.success(),
        "convergence.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let png = std::fs::read(dir.join("convergence.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5000);
}

/// A CSV file as rows of column name -> text.
fn csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

fn num(row: &HashMap<String, String>, key: &str) -> f64 {
    row[key].parse().unwrap()
}

fn read(file: &Path, name: &str) -> Vec<f64> {
    let f = hdf5::File::open(file).unwrap();
    f.dataset(name).unwrap().read_raw::<f64>().unwrap()
}

/// The uncoupled population of `configs/uncoupled_lif.toml` at N = 1,000 ... 64,000, two seeds:
/// the L1 and W1 distances between the empirical density of V and the limit's, at each sample
/// time, fall with fitted slopes within 0.15 of -1/2. (Measured: -0.50 and -0.51. With the
/// refractory mass left out of the limit's histograms, as it once was, they flatten to -0.28
/// and -0.06.) The script's L1 of one run is recomputed here from the run and the limit file.
#[test]
fn uncoupled_lif_approaches_its_limit_at_rate_n_minus_half() {
    let dir = common::scratch("convergence_uncoupled");
    convergence(
        &dir,
        "configs/uncoupled_lif.toml",
        &["--sizes", "1000,4000,16000,64000", "--seeds", "2"],
    );
    let slopes = csv(&dir.join("slopes.csv"));
    for q in ["l1_each_time", "w1_each_time"] {
        let row = slopes.iter().find(|r| r["quantity"] == q).unwrap();
        let s = num(row, "slope");
        assert!(
            (s + 0.5).abs() <= 0.15,
            "{q}: slope {s} (95% CI {} .. {})",
            row["ci95_low"],
            row["ci95_high"]
        );
    }
    // The mean over samples of the L1 distance, from the files.
    let (run, limit) = (dir.join("n4000-seed2.h5"), dir.join("limit.h5"));
    let edges = read(&run, "histograms/edges");
    let (a, b) = (read(&run, "histograms/E"), read(&limit, "histograms/E"));
    let bins = edges.len() - 1;
    let per_sample: Vec<f64> = a
        .chunks(bins)
        .zip(b.chunks(bins))
        .map(|(x, y)| {
            x.iter().zip(y).map(|(p, q)| (p - q).abs()).sum::<f64>() * (edges[1] - edges[0])
        })
        .collect();
    let here = per_sample.iter().sum::<f64>() / per_sample.len() as f64;
    let runs = csv(&dir.join("runs.csv"));
    let row = runs
        .iter()
        .find(|r| r["n"] == "4000" && r["seed"] == "2" && r["quantity"] == "l1_each_time")
        .unwrap();
    assert!((num(row, "value") - here).abs() < 1e-9, "{row:?} vs {here}");
}

/// `configs/nonexchangeable_escape.toml` (two blocks, lognormal weights scaled by 1/K) in the
/// sparse regime K ~ N^(1/2), N = 500 ... 4,000, sixteen seeds, 500 ms from 100 ms, with the
/// tree observable `edge_nu` added (an edge with the intensity at the source: the mean
/// synaptic drive `(1/N) sum_ij w_ij nu(V_j)`): its value averaged over the networks approaches
/// the limit's. The error of the average is a bias of order 1/K plus the seed noise (measured:
/// 0.0191, 0.0148, 0.0064, 0.0072 mV/ms at N = 500 ... 4,000, i.e. 17% to 6%, standard
/// errors 0.0034 ... 0.0009; the path tree `path_nu` varies too much from network to network
/// for a test of this size). The test asks that the error is significant at the smallest N
/// (more than 3 standard errors; measured 5.6), at most half as large at the largest N
/// (measured 0.38), and that a weighted fit `a + b N^(-1/2)` over the sizes extrapolates to the
/// limit (|a| within 3 of its standard errors; measured a = -0.0007 +- 0.0022). With eight
/// seeds the first requirement had too little power (the bias, about 0.02, is 3.3 standard
/// errors of eight seeds: one realisation measured 5.1, another, after the neurons' random
/// numbers changed, 2.9). The seed means are recomputed here
/// from the runs' files.
#[test]
fn sparse_two_block_tree_observables_approach_the_limit() {
    let dir = common::scratch("convergence_trees");
    convergence(
        &dir,
        "configs/nonexchangeable_escape.toml",
        &[
            "--sizes",
            "500,1000,2000,4000",
            "--seeds",
            "16",
            "--t-stop",
            "500",
            "--from",
            "100",
            "--sparse",
            "0.5",
            "--set",
            "observables.statistics.start=100",
            "--set",
            "observables.tree.edge_nu.shape=\"edge\"",
            "--set",
            "observables.tree.edge_nu.functions=[1.0, \"nu\"]",
            "--set",
            "observables.tree.edge_nu.every=10",
            "--create",
        ],
    );
    let trees: Vec<_> = csv(&dir.join("trees.csv"))
        .into_iter()
        .filter(|r| r["tree"] == "edge_nu")
        .collect();
    assert_eq!(trees.len(), 4);
    for r in &trees {
        let n: u64 = r["n"].parse().unwrap();
        let means: Vec<f64> = (1..=16)
            .map(|seed| {
                let file = dir.join(format!("n{n}-seed{seed}.h5"));
                let (t, v) = (
                    read(&file, "trees/edge_nu/time"),
                    read(&file, "trees/edge_nu/value"),
                );
                let kept: Vec<f64> = t
                    .iter()
                    .zip(&v)
                    .filter(|(t, _)| **t >= 100.0)
                    .map(|(_, v)| *v)
                    .collect();
                kept.iter().sum::<f64>() / kept.len() as f64
            })
            .collect();
        let m = means.iter().sum::<f64>() / 16.0;
        assert!((num(r, "seed_mean") - m).abs() < 1e-9 * m.abs(), "{r:?}");
    }
    let err = |r: &HashMap<String, String>| num(r, "seed_mean") - num(r, "limit");
    let (first, last) = (&trees[0], &trees[3]);
    assert!(
        err(first).abs() > 3.0 * num(first, "se"),
        "no significant error at N = 500: {first:?}"
    );
    assert!(
        err(last).abs() <= 0.5 * err(first).abs(),
        "the error does not fall: {first:?} -> {last:?}"
    );
    // Weighted least squares of the error on N^(-1/2): the intercept is the error left at
    // N -> infinity.
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for r in &trees {
        let x = num(r, "n").powf(-0.5);
        let w = num(r, "se").powi(-2);
        let y = err(r);
        sw += w;
        sx += w * x;
        sy += w * y;
        sxx += w * x * x;
        sxy += w * x * y;
    }
    let det = sw * sxx - sx * sx;
    let a = (sxx * sy - sx * sxy) / det;
    let se_a = (sxx / det).sqrt();
    let limit = num(first, "limit");
    assert!(
        a.abs() <= 3.0 * se_a,
        "extrapolated error {a} ± {se_a} (limit {limit})"
    );
}

/// Without a limit (`--no-limit`), the rate of the uncoupled population extrapolated to
/// N -> infinity from N = 500 ... 8,000 (four seeds) by a fit against N^(-1/2) agrees with the
/// limit's mean rate over the same window within three standard errors of the intercept.
#[test]
fn finite_size_extrapolation_finds_the_limit() {
    let dir = common::scratch("convergence_extrapolation");
    convergence(
        &dir,
        "configs/uncoupled_lif.toml",
        &[
            "--sizes",
            "500,1000,2000,4000,8000",
            "--seeds",
            "4",
            "--from",
            "50",
            "--no-limit",
        ],
    );
    let rows = csv(&dir.join("extrapolation.csv"));
    let row = rows
        .iter()
        .find(|r| r["observable"] == "rate E [Hz]" && r["fit"] == "a + b N^(-0.5)")
        .unwrap();
    let (a, se) = (num(row, "limit"), num(row, "limit_se"));
    let limit = dir.join("limit.h5");
    let o = Command::new(common::binary())
        .args([
            "meanfield",
            common::repo()
                .join("configs/uncoupled_lif.toml")
                .to_str()
                .unwrap(),
            "-o",
            limit.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (t, r) = (read(&limit, "rates/time"), read(&limit, "rates/E"));
    let kept: Vec<f64> = t
        .iter()
        .zip(&r)
        .filter(|(t, _)| **t >= 50.0)
        .map(|(_, r)| *r)
        .collect();
    let expected = kept.iter().sum::<f64>() / kept.len() as f64;
    assert!(se > 0.0 && se < 0.02 * expected, "standard error {se}");
    assert!(
        (a - expected).abs() <= 3.0 * se,
        "extrapolated {a} ± {se} Hz, limit {expected} Hz"
    );
}

/// The labelled network of `configs/multi_agent_labels.toml` (labels in a lognormal
/// environment that feed back through efficacy-weighted drifts and synapses) at N = 1,000 ...
/// 16,000, two seeds, 300 ms from 50 ms, its limit on the default grid: the L1 and W1 distances
/// between the empirical density of V and the limit's, at each sample time, fall with fitted
/// slopes within 0.15 of -1/2 (measured -0.50 and -0.49 up to N = 64,000), the rate error at
/// N = 16,000 is below 1% (measured 0.27%), and the label densities' L1 and W1 fall with
/// slopes below -0.15 (measured -0.23 and -0.31 up to 64,000: they level off near L1 0.04,
/// where the limit's 36 environment nodes stand for a continuum; with 9 nodes they stay at
/// 0.11-0.16 from N = 4,000 and this fails).
#[test]
fn labelled_network_approaches_its_limit() {
    let dir = common::scratch("convergence_labels");
    convergence(
        &dir,
        "configs/multi_agent_labels.toml",
        &[
            "--sizes",
            "1000,4000,16000",
            "--seeds",
            "2",
            "--t-stop",
            "300",
            "--from",
            "50",
        ],
    );
    let slopes = csv(&dir.join("slopes.csv"));
    let slope = |q: &str| {
        let row = slopes.iter().find(|r| r["quantity"] == q).unwrap();
        num(row, "slope")
    };
    for q in ["l1_each_time", "w1_each_time"] {
        assert!((slope(q) + 0.5).abs() <= 0.15, "{q}: slope {}", slope(q));
    }
    for q in ["label_l1", "label_w1"] {
        assert!(slope(q) < -0.15, "{q}: slope {}", slope(q));
    }
    let summary = csv(&dir.join("summary.csv"));
    let row = summary
        .iter()
        .find(|r| r["n"] == "16000" && r["quantity"] == "rate_error")
        .unwrap();
    assert!(num(row, "mean") < 0.01, "{row:?}");
}
