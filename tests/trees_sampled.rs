//! Sampled tree observables and pair histogram (`sample < 1`): unbiased estimates whose stated
//! standard errors match their actual errors against the exact values computed here from the
//! run's snapshots and the network generator; `sample = 1` is the exact computation, byte for
//! byte; sampled values are the same on 1 and 3 ranks and continued by a resumed run.

mod common;

use hdf5::File;
use lapicque::config::Config;
use lapicque::connectivity::Connectivity;
use lapicque::observables::pair_histogram::PairHistogram;
use lapicque::observables::trees::TreeRecorder;

/// N = 300 neurons (E 240, I 60) with noise, so that V varies; every 0.2 ms a snapshot of every
/// neuron and a sample of: a star whose two leaves are identical ("v"), a 3-vertex path, and
/// the pair histogram on 5 bins. `SAMPLE` is replaced by the sampling keys of the trees and the
/// pair histogram (or by nothing).
const NET: &str = r#"
[simulation]
dt = 0.1
t_stop = 100.0
seed = 5

[output]
spikes = false

[observables.histogram]
every = 0.0

[observables.snapshots]
every = 0.2

[population.E]
size = 240
sigma = 1.5
i_e = 1.2
v_init_min = 0.0
v_init_max = 20.0

[population.I]
size = 60
sigma = 1.5
i_e = 1.3
v_reset = 5.0
v_init_min = 0.0
v_init_max = 20.0

[projection.EE]
source = "E"
target = "E"
rule = "fixed_indegree"
indegree = 40
weight = 0.2
delay = 1.5

[projection.IE]
source = "I"
target = "E"
rule = "bernoulli"
p = 0.2
weight = -0.6
delay = 0.8

[projection.EI]
source = "E"
target = "I"
rule = "fixed_indegree"
indegree = 20
weight = 0.3
delay = 1.0

[projection.II]
source = "I"
target = "I"
rule = "fixed_indegree"
indegree = 10
weight = -0.5
delay = 1.0

[observables.tree.star]
shape = "star"
vertices = 3
functions = [1, "v", "v"]
every = 0.2
STAR

[observables.tree.path]
shape = "path"
vertices = 3
functions = ["v", "v", "v"]
every = 0.2
PATH

[observables.pair_histogram]
v_min = 0.0
v_max = 20.0
bins = 5
every = 0.2
PAIR
"#;

/// `NET` with the same sampling keys (`lines`) for both trees and the pair histogram.
fn net(lines: &str) -> String {
    NET.replace("STAR", lines)
        .replace("PATH", lines)
        .replace("PAIR", lines)
}

const SAMPLED: &str = "sample = 0.2\nreplicates = 4";

fn read(f: &File, path: &str) -> Vec<f64> {
    f.dataset(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .read_raw::<f64>()
        .unwrap()
}

/// The synapses `(target, source, weight)` of the whole network, from the generator alone.
fn synapses(config: &Config) -> Vec<(usize, usize, f64)> {
    let conn = Connectivity::build(config, 0..config.n_neurons()).unwrap();
    let mut out = Vec::new();
    for table in &conn.tables {
        for (s, _, range) in table.runs() {
            let j = (table.source_start + s) as usize;
            for pos in range {
                out.push((table.targets().get(pos) as usize, j, table.weight_at(pos)));
            }
        }
    }
    out
}

/// `(W x)_i = sum over synapses j -> i of w x_j`.
fn apply(syn: &[(usize, usize, f64)], x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for &(i, j, w) in syn {
        y[i] += w * x[j];
    }
    y
}

/// Exact values at one snapshot `v`: the star `(1/N) sum_i ((W v)_i)^2`, the path
/// `(1/N) sum_i v_i (W (v * W v))_i`, and the pair histogram (5 bins on [0, 20) mV, target bin
/// major).
fn exact(syn: &[(usize, usize, f64)], v: &[f64]) -> (f64, f64, Vec<f64>) {
    let n = v.len() as f64;
    let wv = apply(syn, v);
    let star = wv.iter().map(|x| x * x).sum::<f64>() / n;
    let inner: Vec<f64> = v.iter().zip(&wv).map(|(a, b)| a * b).collect();
    let path = v
        .iter()
        .zip(apply(syn, &inner))
        .map(|(a, b)| a * b)
        .sum::<f64>()
        / n;
    let bin = |x: f64| (0.0..20.0).contains(&x).then(|| (x / 4.0) as usize);
    let mut h = vec![0.0; 25];
    for &(i, j, w) in syn {
        if let (Some(a), Some(b)) = (bin(v[i]), bin(v[j])) {
            h[a * 5 + b] += w / n;
        }
    }
    (star, path, h)
}

/// The errors `d_k = estimate - exact` of `K` samples with their stated standard errors `s_k`:
/// checks that they are centred and that the stated errors are calibrated (where at least 30
/// effective samples, `K_eff` below, tell); returns `K_eff`, which must be at least
/// `min_k_eff`.
///
/// - Bias: `z = sum d_k / sqrt(sum s_k^2)` is about N(0, 1) (the replicates are independent
///   given the state, and the masks of different samples are independent): `|z| < 4`.
/// - Calibration: `ratio = sum d_k^2 / sum s_k^2` has expectation about 1 (`s_k^2` is an
///   unbiased estimate of the variance of `d_k`). For Gaussian replicates with equal variances
///   it is F(K, (R - 1) K)-distributed, `ln ratio` with standard deviation about
///   `sqrt(2/K + 2/((R - 1) K))`; unequal variances reduce `K` to `K_eff = (sum s^2)^2 /
///   sum s^4`, and the estimates, sums over a few kept sources, have heavier tails than a
///   Gaussian: the bound doubles that standard deviation and allows 4 of them,
///   `|ln ratio| < 8 sqrt(2/K_eff + 2/((R - 1) K_eff))`.
fn check(what: &str, d: &[f64], s: &[f64], replicates: f64, min_k_eff: f64) -> f64 {
    assert_eq!(d.len(), s.len());
    let s2: f64 = s.iter().map(|x| x * x).sum();
    let s4: f64 = s.iter().map(|x| x.powi(4)).sum();
    let z = d.iter().sum::<f64>() / s2.sqrt();
    let ratio = d.iter().map(|x| x * x).sum::<f64>() / s2;
    let k_eff = s2 * s2 / s4;
    let bound = 8.0 * (2.0 / k_eff + 2.0 / ((replicates - 1.0) * k_eff)).sqrt();
    println!(
        "{what}: {} samples, K_eff {k_eff:.0}, z {z:.2}, ratio {ratio:.3} (|ln ratio| < {bound:.3}: \
         {:.3} to {:.3})",
        d.len(),
        (-bound).exp(),
        bound.exp()
    );
    assert!(
        k_eff >= min_k_eff,
        "{what}: K_eff {k_eff}, too few effective samples"
    );
    assert!(z.abs() < 4.0, "{what}: biased, z = {z}");
    // Below 30 effective samples the bound says little: the ratio is not checked.
    if k_eff >= 30.0 {
        assert!(
            ratio.ln().abs() < bound,
            "{what}: stated errors miscalibrated, ratio {ratio} (bound {bound} on its log)"
        );
    }
    k_eff
}

/// Unbiasedness and calibrated errors of the sampled star, path and pair histogram at f = 0.2,
/// R = 4 (q = 0.05: each replicate keeps about 15 of the 300 sources of each edge), against
/// the exact values computed here at every snapshot (501 samples). The exact computation of the
/// same run (`sample = 1`, `*_x`) is compared too, which shows that the snapshots are the
/// states sampled.
///
/// The star `(1/N) sum_i ((W v)_i)^2` is the case a shared message would get wrong: with one
/// mask for both leaves, the product is `((W_hat v)_i)^2` whose expectation is
/// `((W v)_i)^2 + sum_j w_ij^2 v_j^2 (1 - q)/q`; for a neuron of E the second term is about
/// (40 x 0.2^2 + 12 x 0.6^2) x (13 mV)^2 x 19 = 19,000 mV^4 against a value of about
/// 900 mV^4 (measured 360 to 1350 mV^4 over the run): a
/// bias of many standard errors, which the z test above catches (measured with the two leaves
/// sharing one message per replicate: z = 62 for the star, against |z| < 4 required).
#[test]
fn sampled_estimates_are_unbiased_with_calibrated_errors() {
    let dir = common::scratch("trees_sampled_calibration");
    let text = net(SAMPLED)
        + r#"
[observables.tree.star_x]
shape = "star"
vertices = 3
functions = [1, "v", "v"]
every = 0.2

[observables.tree.path_x]
shape = "path"
vertices = 3
functions = ["v", "v", "v"]
every = 0.2
"#;
    let path = dir.join("net.toml");
    std::fs::write(&path, &text).unwrap();
    let out = dir.join("net.h5");
    common::run_ok(1, &path, &out, &[]);
    let config = Config::from_toml(&text, &[]).unwrap();
    let syn = synapses(&config);
    let f = File::open(&out).unwrap();
    let n = config.n_neurons() as usize;
    let snap_t = read(&f, "snapshots/time");
    let snap_v = read(&f, "snapshots/v");
    let k = snap_t.len();
    assert_eq!(k, 501);
    for name in ["star", "path"] {
        assert_eq!(read(&f, &format!("trees/{name}/time")), snap_t);
        let g = f.group(&format!("trees/{name}")).unwrap();
        assert_eq!(g.attr("sample").unwrap().read_scalar::<f64>().unwrap(), 0.2);
        assert_eq!(
            g.attr("replicates").unwrap().read_scalar::<u64>().unwrap(),
            4
        );
        assert!(f.dataset(&format!("trees/{name}_x/stderr")).is_err());
    }
    let values = |name: &str| read(&f, &format!("trees/{name}/value"));
    let (star, star_s, star_x) = (
        values("star"),
        read(&f, "trees/star/stderr"),
        values("star_x"),
    );
    let (path3, path_s, path_x) = (
        values("path"),
        read(&f, "trees/path/stderr"),
        values("path_x"),
    );
    let pair = read(&f, "pair_histogram/value");
    let pair_s = read(&f, "pair_histogram/stderr");
    assert_eq!(pair.len(), k * 25);
    assert_eq!(pair_s.len(), k * 25);

    let (mut d_star, mut d_path) = (vec![], vec![]);
    // Pair histogram: errors and stated errors per cell, and per sample the sum of the errors
    // over the cells.
    let (mut d_cells, mut s_cells) = (vec![vec![]; 25], vec![vec![]; 25]);
    let mut d_totals = Vec::new();
    let mut rel_star = Vec::new();
    for t in 0..k {
        let v = &snap_v[t * n..(t + 1) * n];
        let (e_star, e_path, e_pair) = exact(&syn, v);
        // The exact computation of the run agrees with this one (both sum a few thousand
        // products in a different order).
        assert!(
            (star_x[t] - e_star).abs() <= 1e-10 * e_star.abs(),
            "star at {t}"
        );
        assert!(
            (path_x[t] - e_path).abs() <= 1e-10 * e_path.abs(),
            "path at {t}"
        );
        d_star.push(star[t] - e_star);
        d_path.push(path3[t] - e_path);
        rel_star.push(star_s[t] / e_star.abs());
        let mut total = 0.0;
        for c in 0..25 {
            let d = pair[t * 25 + c] - e_pair[c];
            d_cells[c].push(d);
            s_cells[c].push(pair_s[t * 25 + c]);
            total += d;
        }
        d_totals.push(total);
    }
    rel_star.sort_by(f64::total_cmp);
    println!("star: median stderr / |value| {:.3}", rel_star[k / 2]);
    check("star", &d_star, &star_s, 4.0, 100.0);
    check("path", &d_path, &path_s, 4.0, 100.0);
    // The cells of one sample share its masks: their errors are correlated (a kept source adds
    // to every cell of its source bin), so the cells are checked one by one (each over the
    // independent samples) ...
    let mut calibrated = 0;
    for c in 0..25 {
        if s_cells[c].iter().any(|&s| s > 0.0) {
            let what = format!("pair histogram cell {c}");
            if check(&what, &d_cells[c], &s_cells[c], 4.0, 1.0) >= 30.0 {
                calibrated += 1;
            }
        }
    }
    assert!(calibrated >= 10, "only {calibrated} cells calibrated");
    // ... and their sum per sample, whose standard error is not stated, by a t-test against
    // its empirical standard deviation over the samples.
    let mean = d_totals.iter().sum::<f64>() / k as f64;
    let var = d_totals.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    let z = mean / (var / k as f64).sqrt();
    println!("pair histogram, sum over cells: t = {z:.2}");
    assert!(z.abs() < 4.0, "pair histogram: biased sum, t = {z}");
}

/// `sample = 1` is the exact computation: the same datasets, byte for byte, as without the key
/// (whatever `replicates`), and no `stderr` or sampling attributes.
#[test]
fn sample_one_is_exactly_the_exact_computation() {
    let dir = common::scratch("trees_sampled_one");
    let plain = dir.join("plain.toml");
    std::fs::write(&plain, net("")).unwrap();
    let one = dir.join("one.toml");
    std::fs::write(&one, net("sample = 1.0\nreplicates = 7")).unwrap();
    let (a, b) = (dir.join("plain.h5"), dir.join("one.h5"));
    common::run_ok(1, &plain, &a, &[]);
    common::run_ok(1, &one, &b, &[]);
    common::assert_same_results(&a, &b);
    let f = File::open(&b).unwrap();
    for g in ["trees/star", "trees/path", "pair_histogram"] {
        let g = f.group(g).unwrap();
        assert!(g.dataset("stderr").is_err());
        assert!(g.attr("sample").is_err());
    }
}

/// Sampled values and standard errors are byte-identical on 1 and 3 ranks (the masks are
/// hashes of gids, not of ranks).
#[test]
fn sampled_values_are_identical_on_one_and_three_ranks() {
    let dir = common::scratch("trees_sampled_ranks");
    let path = dir.join("net.toml");
    std::fs::write(&path, net(SAMPLED)).unwrap();
    let (a, b) = (dir.join("one.h5"), dir.join("three.h5"));
    common::run_ok(1, &path, &a, &[]);
    common::run_ok(3, &path, &b, &[]);
    let data = common::datasets(&a);
    for name in [
        "/trees/star/stderr",
        "/trees/path/stderr",
        "/pair_histogram/stderr",
    ] {
        let (_, bytes) = data.iter().find(|(p, _)| p == name).expect(name);
        let nonzero = bytes
            .chunks_exact(8)
            .filter(|b| f64::from_le_bytes((*b).try_into().unwrap()) != 0.0)
            .count();
        assert!(nonzero * 2 >= bytes.len() / 8, "{name}: mostly zero");
    }
    common::assert_same_results(&a, &b);
}

/// A run resumed from a checkpoint continues the sampled series and their standard errors
/// (in-process, one rank).
#[test]
fn a_resumed_run_continues_the_sampled_series() {
    use lapicque::comm::SerialComm;
    use lapicque::progress::Progress;
    use lapicque::simulation::{self, Control};
    use std::sync::atomic::AtomicBool;

    let dir = common::scratch("trees_sampled_resume");
    let config = Config::from_toml(&net(SAMPLED), &["checkpoint.every=50".into()]).unwrap();
    let ckpt = dir.join("a.checkpoint.h5");
    let whole = simulation::run(
        &config,
        &SerialComm,
        &mut Progress::silent(),
        &Control::uninterrupted(&ckpt),
    )
    .unwrap();
    let step = lapicque::checkpoint::verify(&ckpt, &config, &SerialComm).unwrap();
    assert!(step >= 500, "checkpoint at step {step}");
    let stop = AtomicBool::new(false);
    let resumed = simulation::run(
        &config,
        &SerialComm,
        &mut Progress::silent(),
        &Control {
            stop: &stop,
            checkpoint: &dir.join("b.checkpoint.h5"),
            restart: Some((&ckpt, step)),
            emulate: None,
        },
    )
    .unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let series = |r: &lapicque::state::RunResult| {
        let t = r.observers.get::<TreeRecorder>();
        let values: Vec<_> = t
            .tree_series()
            .map(|(name, time, value)| (name.to_string(), bits(&time), bits(&value)))
            .collect();
        let errors: Vec<_> = t
            .tree_stderrs()
            .map(|(name, s)| (name.to_string(), bits(&s)))
            .collect();
        let p = r.observers.get::<PairHistogram>();
        (
            values,
            errors,
            bits(&p.values.to_vec()),
            bits(&p.stderrs.to_vec()),
        )
    };
    let (a, b) = (series(&whole), series(&resumed));
    assert_eq!(a.1.len(), 2);
    for (name, s) in &a.1 {
        assert_eq!(s.len(), 501, "tree {name}: standard errors");
    }
    assert_eq!(a, b);
}

/// `compare` of a sampled run with the exact run of the same network and seed: per common
/// sample, `tree_abs_diff` is |exact - sampled| and `tree_stderr` the sampled file's standard
/// error (the exact file's is zero), read here from both files; two exact runs get no
/// `tree_stderr` and the table says "exact".
#[test]
fn compare_states_the_standard_error_of_a_sampled_tree() {
    let dir = common::scratch("trees_sampled_compare");
    let (plain, sampled) = (dir.join("plain.toml"), dir.join("sampled.toml"));
    std::fs::write(&plain, net("")).unwrap();
    std::fs::write(&sampled, net(SAMPLED)).unwrap();
    let (a, b) = (dir.join("exact.h5"), dir.join("sampled.h5"));
    common::run_ok(1, &plain, &a, &[]);
    common::run_ok(1, &sampled, &b, &[]);
    let csv = dir.join("d.csv");
    let compare = |x: &std::path::Path, y: &std::path::Path| {
        let o = std::process::Command::new(common::binary())
            .arg("compare")
            .args([x, y])
            .arg("-o")
            .arg(&csv)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows: Vec<(String, String, f64, f64)> = std::fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let c: Vec<&str> = l.split(',').collect();
                (
                    c[0].to_string(),
                    c[1].to_string(),
                    c[2].parse().unwrap(),
                    c[3].parse().unwrap(),
                )
            })
            .collect();
        (String::from_utf8(o.stdout).unwrap(), rows)
    };
    let (text, rows) = compare(&a, &b);
    let (fa, fb) = (File::open(&a).unwrap(), File::open(&b).unwrap());
    for tree in ["star", "path"] {
        let (va, vb) = (
            read(&fa, &format!("trees/{tree}/value")),
            read(&fb, &format!("trees/{tree}/value")),
        );
        let se = read(&fb, &format!("trees/{tree}/stderr"));
        let pick = |q: &str| -> Vec<f64> {
            rows.iter()
                .filter(|r| r.0 == tree && r.1 == q)
                .map(|r| r.3)
                .collect()
        };
        let (d, s) = (pick("tree_abs_diff"), pick("tree_stderr"));
        assert_eq!(d.len(), va.len(), "{tree}: one row per sample");
        assert_eq!(s.len(), va.len(), "{tree}: one stderr per sample");
        for k in 0..va.len() {
            let want = (va[k] - vb[k]).abs();
            assert!(
                (d[k] - want).abs() <= 1e-12 * want.max(1e-300),
                "{tree} {k}"
            );
            assert!(
                (s[k] - se[k]).abs() <= 1e-12 * se[k],
                "{tree} {k}: {} vs {}",
                s[k],
                se[k]
            );
        }
        let line = text.lines().find(|l| l.starts_with(tree)).unwrap();
        assert!(!line.ends_with("exact"), "{line}");
    }
    let (text, rows) = compare(&a, &a);
    assert!(rows.iter().all(|r| r.1 != "tree_stderr"));
    let line = text.lines().find(|l| l.starts_with("star")).unwrap();
    assert!(line.ends_with("exact"), "{line}");
}
