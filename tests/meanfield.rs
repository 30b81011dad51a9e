//! `lapicque meanfield`: the limit of a configuration against the particle system and against
//! independent theory; configurations without a limit are refused naming the feature; the
//! limit file is read by `lapicque compare` and `scripts/plot.py` like a run.

mod common;

use hdf5::File;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn read(f: &File, name: &str) -> Vec<f64> {
    f.dataset(name).unwrap().read_raw::<f64>().unwrap()
}

fn meanfield(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new(common::binary());
    c.args([
        "meanfield",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    c.args(extra);
    common::run_with_timeout(c, Duration::from_secs(300))
}

fn meanfield_ok(config: &Path, out: &Path, extra: &[&str]) {
    let o = meanfield(config, out, extra);
    assert!(
        o.status.success(),
        "meanfield failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// An escape-noise network of N = 10^4 neurons on the ring with a non-constant two-block
/// kernel (connection probability 0.2 W(xi_i, xi_j), W = [[1, 0.2], [0.4, 0.6]]: the blocks
/// differ, so their rates differ) and weights 8 mV / K (scaling inverse_k, K ~ 1100). The jump
/// noise the limit drops is K w^2 nu ~ 1e-3 mV^2/ms against sigma^2 = 1, and delays do not
/// change the stationary state, so the stationary rate of each block must be within 1% of the
/// limit's (measured: +0.14%, +0.16%). Statistics: ~5000 neurons x ~17 Hz x 1.7 s = 1.4e5
/// spikes per block, a relative standard error of about 0.3%. Tree observables agree to 2%
/// (measured: 0.5% and 0.7%).
const BLOCKS: &str = r#"
[simulation]
dt = 0.1
t_stop = 2000.0
seed = 7
[observables.moments]
every = 0.0
[observables.histogram]
every = 100.0
v_min = -10.0
v_max = 20.0
bins = 60
[meanfield]
xi_bins = 2
[observables.tree.drive]
shape = "edge"
functions = [1.0, "nu"]
every = 50.0
[observables.tree.path]
shape = "path"
vertices = 3
functions = ["v", 1.0, "nu"]
every = 50.0
[population.A]
size = 10000
tau_m = 20.0
i_e = 0.5
sigma = 1.0
spike = "escape"
escape = { kind = "exponential", rate = 10.0, theta = 10.0, delta = 2.0 }
v_reset = 0.0
t_ref = 0.0
v_init_min = 0.0
v_init_max = 10.0
[projection.AA]
source = "A"
target = "A"
rule = "bernoulli"
p = 0.2
kernel = { kind = "blocks", matrix = [[1.0, 0.2], [0.4, 0.6]] }
weight = 8.0
scaling = "inverse_k"
delay = 1.0
"#;

#[test]
fn particle_rates_per_block_match_the_limit_within_one_percent() {
    let dir = common::scratch("meanfield_blocks");
    let config = dir.join("blocks.toml");
    std::fs::write(&config, BLOCKS).unwrap();
    let (run, limit) = (dir.join("run.h5"), dir.join("limit.h5"));
    meanfield_ok(&config, &limit, &[]);
    common::run_ok(2, &config, &run, &[]);

    let l = File::open(&limit).unwrap();
    let theory = read(&l, "meanfield/stationary_rate_by_bin");
    assert_eq!(theory.len(), 2);
    let f = File::open(&run).unwrap();
    let ids = f
        .dataset("spikes/A/node_ids")
        .unwrap()
        .read_raw::<u64>()
        .unwrap();
    let times = read(&f, "spikes/A/timestamps");
    let xi = read(&f, "state/xi");
    let block = |gid: u64| ((xi[2 * gid as usize] * 2.0) as usize).min(1);
    let (t0, t1) = (300.0, 2000.0);
    let mut counts = [0.0f64; 2];
    for (&g, &t) in ids.iter().zip(&times) {
        if t > t0 {
            counts[block(g)] += 1.0;
        }
    }
    let mut sizes = [0.0f64; 2];
    for g in 0..10_000 {
        sizes[block(g)] += 1.0;
    }
    assert!(
        (theory[0] - theory[1]).abs() > 0.05 * theory[1],
        "the blocks must differ for the test to mean something: {theory:?}"
    );
    for b in 0..2 {
        let rate = counts[b] / sizes[b] / ((t1 - t0) / 1000.0);
        let err = rate / theory[b] - 1.0;
        println!(
            "block {b}: particle {rate:.4} Hz, limit {:.4} Hz ({:+.3}%)",
            theory[b],
            100.0 * err
        );
        assert!(err.abs() < 0.01, "block {b}: {rate} Hz vs {} Hz", theory[b]);
    }
    // Tree observables: the time averages over [t0, t1] of the particle run's exact sums over
    // index tuples and of the limit's formula (sum over groups of their share times the
    // messages E[phi] prod W m) agree to 2% (the values are products of the rates, means and
    // expected weights checked above).
    for name in ["drive", "path"] {
        let avg = |f: &File| {
            let t = read(f, &format!("trees/{name}/time"));
            let v = read(f, &format!("trees/{name}/value"));
            let kept: Vec<f64> = t
                .iter()
                .zip(&v)
                .filter(|(t, _)| **t > t0)
                .map(|(_, v)| *v)
                .collect();
            kept.iter().sum::<f64>() / kept.len() as f64
        };
        let (particle, limit_value) = (avg(&f), avg(&l));
        println!("tree {name}: particle {particle:.6}, limit {limit_value:.6}");
        assert!(
            (particle / limit_value - 1.0).abs() < 0.02,
            "tree {name}: {particle} vs {limit_value}"
        );
    }
    // The limit file is read like a run.
    let o = common::run_with_timeout(
        {
            let mut c = Command::new(common::binary());
            c.args(["compare", run.to_str().unwrap(), limit.to_str().unwrap()]);
            c
        },
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The threshold-LIF limit of the smoke network: its stationary rate equals the
/// self-consistent Siegert rate computed here with the independent `common::siegert`
/// (diffusion approximation: mu = tau (i_e + sum K J r + rate_ext J_ext), sigma_V^2 = tau
/// (sum K J^2 r + rate_ext J_ext^2)), and the time-averaged rate of the solved transient
/// approaches it.
#[test]
fn lif_limit_is_the_self_consistent_siegert_rate() {
    let dir = common::scratch("meanfield_lif");
    let out = dir.join("smoke.h5");
    let config = common::repo().join("configs/smoke.toml");
    meanfield_ok(&config, &out, &["--set", "meanfield.cells=1000"]);
    let f = File::open(&out).unwrap();
    let stationary = read(&f, "meanfield/stationary_rate");
    // The parameters, in-degrees and weights as written in configs/smoke.toml (E and I are
    // alike there).
    let text = std::fs::read_to_string(&config).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let pe = &table["population"]["E"];
    let num = |k: &str| pe[k].as_float().unwrap();
    let (rate_ext, j_ext) = (num("poisson_rate") / 1000.0, num("poisson_weight"));
    let (tau, theta, v_r, t_ref) = (num("tau_m"), num("v_th"), num("v_reset"), num("t_ref"));
    let proj = &table["projection"];
    let term = |name: &str| {
        let p = &proj[name];
        (
            p["indegree"].as_integer().unwrap() as f64,
            p["weight"].as_float().unwrap(),
        )
    };
    let (ke, je) = term("EE");
    let (ki, ji) = term("IE");
    let mut r = 0.01;
    for _ in 0..5000 {
        let mu = tau * (ke * je * r + ki * ji * r + rate_ext * j_ext);
        let var = tau * (ke * je * je * r + ki * ji * ji * r + rate_ext * j_ext * j_ext);
        let next = common::siegert(mu, var.sqrt(), tau, theta, v_r, t_ref) / 1000.0;
        r += 0.1 * (next - r);
    }
    for (p, &s) in stationary.iter().enumerate() {
        let err = s / (1000.0 * r) - 1.0;
        println!(
            "population {p}: limit {s:.4} Hz, Siegert {:.4} Hz ({:+.4}%)",
            1000.0 * r,
            100.0 * err
        );
        assert!(err.abs() < 1e-3, "{s} vs {}", 1000.0 * r);
    }
    let kind = f
        .attr("kind")
        .unwrap()
        .read_scalar::<hdf5::types::VarLenUnicode>();
    assert_eq!(kind.unwrap().as_str(), "meanfield");
    // The plotting script takes a limit file like a run: rates, density and moments.
    let plots = dir.join("plots");
    let mut c = Command::new(common::python());
    c.arg(common::repo().join("scripts/plot.py"))
        .arg(&out)
        .arg("--outdir")
        .arg(&plots);
    let o = common::run_with_timeout(c, Duration::from_secs(300));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for png in ["rates.png", "density.png", "moments.png"] {
        let bytes = std::fs::read(plots.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5000, "{png}");
    }
}

/// Every shipped research and example config belongs to a family with a limit equation (the
/// degenerate balanced network is then refused when solved, with "no balanced state": its
/// balance equations are singular).
#[test]
fn every_shipped_config_has_a_limit() {
    let mut solved = Vec::new();
    for entry in std::fs::read_dir(common::repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = lapicque::config::Config::from_toml(&text, &[]).unwrap();
        let family = lapicque::meanfield::run::family(&config);
        assert!(family.is_ok(), "{name}: {:?}", family.err());
        solved.push(name);
    }
    solved.sort();
    println!("configs with a limit family: {solved:?}");
    assert!(solved.len() >= 12, "{solved:?}");
}

/// Configurations without a limit equation are refused with exit code 2 and one line naming
/// the key of the feature.
#[test]
fn configs_without_a_limit_name_the_feature() {
    let dir = common::scratch("meanfield_refused");
    // An aggregate term of a labelled network that the limit does not cover (a per-step jump
    // by a sigmoid of the sources' potentials has no continuous-time limit).
    {
        let (config, key) = ("multi_agent_labels", "aggregate.E_drive.kind");
        let out = dir.join(format!("{config}.h5"));
        let o = meanfield(
            &common::repo().join(format!("configs/{config}.toml")),
            &out,
            &["--set", "aggregate.E_drive.kind=\"jump\""],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{config}: {err}");
        assert_eq!(err.lines().count(), 1, "{config}: {err}");
        assert!(
            err.contains(key) && err.contains("no limit equation"),
            "{config}: {err}"
        );
        assert!(!out.exists());
    }
    // A feature inside a population: labels of four classes (the limit's simplex is at most
    // a triangle).
    let out = dir.join("labels.h5");
    let o = meanfield(
        &common::repo().join("configs/smoke.toml"),
        &out,
        &[
            "--set",
            "population.I.labels={efficacy=[1.0,0.5,0.2,0.1],rates=[[0.0,0.1,0.0,0.0],[0.1,0.0,0.0,0.0],[0.0,0.0,0.0,0.0],[0.0,0.0,0.0,0.0]]}",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("population.I.labels.efficacy"), "{err}");
    assert!(!out.exists());
}

/// Separable chemical coupling `-J sum_j (x_i - v_q) s_q(x_j)` with `J = j0 n^(-1/2)`: as j0
/// grows, the time-averaged population means of a particle run (linear drift 0.5 - 0.1 x,
/// noise 0.5, no spikes) approach the balance voltages that `lapicque meanfield --balance`
/// computes from the fixed point alone, and the distance shrinks towards tenfold per tenfold
/// coupling (it is O(1 / (J n)); measured 0.67, 0.115, 0.012 mV at j0 = 0.5, 5, 50, the last
/// at J n dt = 100, stable thanks to the exponential step).
#[test]
fn chemical_coupling_approaches_the_balance_voltages() {
    use lapicque::comm::SerialComm;
    use lapicque::config::Config;
    use lapicque::observables::moments::Moments;
    use lapicque::progress::Progress;
    use lapicque::simulation;
    let text = |j0: f64| {
        let pop = "model = \"linear\"\na = 0.5\nc = 0.1\nsigma = 0.5\nspike = \"none\"\nv_th = 1000.0\nv_init_min = 0.0\nv_init_max = 5.0\n";
        let term = |name: &str, s: &str, t: &str, j: f64, rev: f64| {
            format!(
                "[aggregate.{name}]\nsource = \"{s}\"\ntarget = \"{t}\"\nkind = \"chemical\"\nj0 = {j}\nalpha = 0.5\nreversal = {rev}\ns = {{ kind = \"sigmoid\", theta = 2.0, delta = 1.0, max = 1.0 }}\n"
            )
        };
        format!(
            "[simulation]\nt_stop = 300.0\nseed = 3\n[observables.moments]\nevery = 1.0\n[observables.histogram]\nevery = 0.0\n\
             [population.E]\nsize = 400\n{pop}[population.I]\nsize = 100\n{pop}{}{}{}{}",
            term("EE", "E", "E", j0, 10.0),
            term("IE", "I", "E", 3.0 * j0, -5.0),
            term("EI", "E", "I", j0, 10.0),
            term("II", "I", "I", 1.5 * j0, -5.0),
        )
    };
    let mut previous = f64::INFINITY;
    for j0 in [0.5, 5.0, 50.0] {
        let config = Config::from_toml(&text(j0), &[]).unwrap();
        let balance = lapicque::meanfield::run::balance_voltages(&config).unwrap();
        let control = simulation::Control::uninterrupted(Path::new("balance.checkpoint.h5"));
        let r = simulation::run(&config, &SerialComm, &mut Progress::silent(), &control).unwrap();
        let rec = r.observers.get::<Moments>().to_vecs();
        let mut worst: f64 = 0.0;
        for (p, x) in balance.iter().enumerate() {
            let keep: Vec<f64> = rec
                .times
                .iter()
                .zip(&rec.means[p])
                .filter(|(t, _)| **t >= 100.0)
                .map(|(_, m)| *m)
                .collect();
            let mean = keep.iter().sum::<f64>() / keep.len() as f64;
            let x = x.unwrap();
            println!("j0 = {j0}: population {p} mean {mean:.5} mV, balance voltage {x:.5} mV");
            worst = worst.max((mean - x).abs());
        }
        assert!(
            worst < 0.3 * previous,
            "j0 = {j0}: distance {worst} did not shrink from {previous}"
        );
        previous = worst;
    }
    assert!(
        previous < 0.05,
        "at the strongest coupling the means are {previous} mV off"
    );
}

/// Two label classes whose transition 0 -> 1 switches on with the potential (rate 0.05/ms
/// times a logistic of gain 0.8/mV around 7 mV; back at 0.02/ms) on an uncoupled escape-noise
/// population of 4000 neurons: the joint density of (V, label) of the limit gives the label
/// distribution the particle run measures. At every histogram time from 100 ms the mean
/// class-0 probability agrees within 0.015 (statistical error ~0.004, upwind label flux
/// O(0.01)) and the L1 distance between the label densities stays below 0.12.
#[test]
fn label_densities_of_the_limit_match_the_particle_run() {
    let dir = common::scratch("meanfield_labels");
    let config = dir.join("labels.toml");
    std::fs::write(
        &config,
        r#"
[simulation]
dt = 0.1
t_stop = 300.0
seed = 5
[observables.histogram]
every = 50.0
v_min = -10.0
v_max = 20.0
bins = 60
label_bins = 20
[meanfield]
cells = 200
[population.A]
size = 4000
tau_m = 20.0
i_e = 0.5
sigma = 1.5
spike = "escape"
escape = { kind = "exponential", rate = 10.0, theta = 10.0, delta = 2.0 }
v_reset = 0.0
t_ref = 0.0
v_init_min = 0.0
v_init_max = 10.0
[population.A.labels]
efficacy = [1.0, 0.5]
rates = [[0.0, 0.05], [0.02, 0.0]]
dependence = "potential"
gain = [[0.0, 0.8], [0.0, 0.0]]
threshold = 7.0
"#,
    )
    .unwrap();
    let (run, limit) = (dir.join("run.h5"), dir.join("limit.h5"));
    meanfield_ok(&config, &limit, &[]);
    common::run_ok(2, &config, &run, &[]);
    let (r, l) = (File::open(&run).unwrap(), File::open(&limit).unwrap());
    let edges = read(&r, "labels/edges");
    let times = read(&r, "histograms/time");
    let (hr, hl) = (read(&r, "labels/A"), read(&l, "labels/A"));
    assert_eq!(hr.len(), hl.len());
    let bins = edges.len() - 1;
    for (k, &t) in times.iter().enumerate() {
        // Class 0 of sample k.
        let row = |h: &[f64]| h[k * 2 * bins..k * 2 * bins + bins].to_vec();
        let (a, b) = (row(&hr), row(&hl));
        let mean = |d: &[f64]| -> f64 {
            d.iter()
                .zip(edges.windows(2))
                .map(|(x, e)| x * (e[1] - e[0]) * 0.5 * (e[0] + e[1]))
                .sum()
        };
        let l1: f64 = a
            .iter()
            .zip(&b)
            .zip(edges.windows(2))
            .map(|((x, y), e)| (x - y).abs() * (e[1] - e[0]))
            .sum();
        println!(
            "t = {t} ms: mean label {:.4} (run) vs {:.4} (limit), L1 {l1:.3}",
            mean(&a),
            mean(&b)
        );
        if t >= 100.0 {
            assert!((mean(&a) - mean(&b)).abs() < 0.015, "t = {t}");
            assert!(l1 < 0.12, "t = {t}: L1 {l1}");
        }
    }
}

/// A run's file and its limit's both name each population's model and spike rule as the
/// configuration does (every population was once written as "lif", and the limit wrote none).
#[test]
fn runs_and_limits_name_each_model() {
    let dir = common::scratch("meanfield_models");
    let config = common::repo().join("configs/strong_coupling.toml");
    let (run, limit) = (dir.join("run.h5"), dir.join("limit.h5"));
    common::run_ok(1, &config, &run, &["--set", "simulation.t_stop=5"]);
    meanfield_ok(&config, &limit, &["--set", "simulation.t_stop=5"]);
    for path in [&run, &limit] {
        let f = File::open(path).unwrap();
        for pop in ["E", "I"] {
            let g = f.group(&format!("populations/{pop}")).unwrap();
            let text = |name: &str| {
                g.attr(name)
                    .unwrap()
                    .read_scalar::<hdf5::types::VarLenUnicode>()
                    .unwrap()
                    .to_string()
            };
            assert_eq!(text("model"), "fhn", "{}", path.display());
            assert_eq!(text("spike"), "none", "{}", path.display());
        }
    }
}
