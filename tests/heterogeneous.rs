//! Heterogeneous per-neuron parameters (`[population.NAME.vary]`).
//!
//! * Physics: uncoupled noisy LIF neurons whose thresholds are drawn from a normal law fire, as
//!   a population, at the mixture rate `E[Siegert(v_th)]`, computed here by a midpoint rule over
//!   the normal density of the independent `common::siegert`.
//! * The threshold-LIF limit of the same population converges to that mixture as its
//!   quadrature nodes grow; the other limits refuse a varied population by key.
//! * Rank invariance: a network with every kind of variation gives byte-identical outputs
//!   (spikes, parameter datasets, everything) on 1, 2 and 3 ranks.

mod common;

use std::path::Path;

/// Uncoupled LIF population: mean input mu = i_e tau_m = 15 mV, Brunel's sigma_V = sigma
/// sqrt(tau_m) = 5 mV, v_reset 10 mV, t_ref 2 ms, thresholds normal (mean 20 mV, sd 1.5 mV).
/// All neurons start at the reset; the rate is counted over [100, 1100] ms.
const UNCOUPLED: &str = r#"
[simulation]
dt = 0.1
t_stop = 1100.0
seed = 11
[output]
spikes = false
[observables.rates]
start = 100.0
every = 1000.0
[observables.histogram]
every = 0.0
[observables.moments]
every = 0.0
[population.A]
size = 20000
tau_m = 20.0
v_reset = 10.0
t_ref = 2.0
i_e = 0.75
sigma = 1.118033988749895
v_init_min = 10.0
v_init_max = 10.0
[population.A.vary]
v_th = { dist = "normal", mean = 20.0, sd = 1.5 }
"#;

const MU: f64 = 15.0;
const SIGMA_V: f64 = 5.0;
const TH_MEAN: f64 = 20.0;
const TH_SD: f64 = 1.5;

/// The rate [Hz] of the population with threshold `theta`, from the independent formula.
fn siegert(theta: f64) -> f64 {
    common::siegert(MU, SIGMA_V, 20.0, theta, 10.0, 2.0)
}

/// Mean and variance over `v_th ~ N(20, 1.5)` of the Siegert rate [Hz, Hz^2]: midpoint rule
/// with 1200 points on +-8 sd (the truncated tails weigh < 1e-15).
fn mixture() -> (f64, f64) {
    let n = 1200;
    let (a, b) = (TH_MEAN - 8.0 * TH_SD, TH_MEAN + 8.0 * TH_SD);
    let h = (b - a) / n as f64;
    let (mut m0, mut m1, mut m2) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let x = a + (i as f64 + 0.5) * h;
        // Thresholds at or below the reset never occur in practice (z < -6.7).
        if x <= 10.0 {
            continue;
        }
        let w = (-0.5 * ((x - TH_MEAN) / TH_SD).powi(2)).exp() * h
            / (TH_SD * (2.0 * std::f64::consts::PI).sqrt());
        let r = siegert(x);
        m0 += w;
        m1 += w * r;
        m2 += w * r * r;
    }
    assert!((m0 - 1.0).abs() < 1e-9, "quadrature mass {m0}");
    (m1, m2 - m1 * m1)
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The population rate of a particle run equals the mixture rate. Tolerance: 4 standard errors
/// of the measured rate, `sqrt(E[r] / (N T) + Var[r] / N)` — the spike-count noise of N
/// neurons over T = 1 s (the count variance of a neuron is r T CV^2, with CV <= 1 for these
/// noise-driven neurons with a refractory period) plus the quenched noise of N drawn
/// thresholds. The time-step bias of the bridge-corrected scheme at dt = 0.1 ms lies below
/// it (tests/siegert.rs; 0.06% for the homogeneous population of this test, measured when
/// written). The mixture differs from the rate at the mean threshold by 9%, about 5
/// tolerances (20 standard errors): a run that ignored the variation would fail.
#[test]
fn particle_rate_is_the_mixture_of_siegert_rates() {
    let dir = common::scratch("heterogeneous_particle");
    let config = write_config(&dir, UNCOUPLED);
    let out = dir.join("out.h5");
    common::run_ok(1, &config, &out, &["--force"]);
    let measured = common::mean_rate(&out, "A");
    let (mean, var) = mixture();
    let (n, t) = (20_000.0, 1.0);
    let se = (mean / (n * t) + var / n).sqrt();
    let homogeneous = siegert(TH_MEAN);
    println!(
        "particle {measured:.4} Hz, mixture E[Siegert(v_th)] {mean:.4} Hz (sd over neurons {:.3} Hz), \
         standard error {se:.4} Hz, Siegert at the mean threshold {homogeneous:.4} Hz",
        var.sqrt()
    );
    assert!(
        (measured - mean).abs() < 4.0 * se,
        "particle {measured} Hz vs mixture {mean} Hz (4 se = {})",
        4.0 * se
    );
    assert!((homogeneous - mean).abs() > 10.0 * se);
    // The drawn thresholds are in the file, with their law's mean and sd.
    let f = hdf5::File::open(&out).unwrap();
    let th = f
        .dataset("populations/A/parameters/v_th")
        .unwrap()
        .read_raw::<f64>()
        .unwrap();
    assert_eq!(th.len(), 20_000);
    let m = th.iter().sum::<f64>() / th.len() as f64;
    let sd = (th.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (th.len() - 1) as f64).sqrt();
    println!("drawn thresholds: mean {m:.4} mV, sd {sd:.4} mV");
    assert!((m - TH_MEAN).abs() < 5.0 * TH_SD / (th.len() as f64).sqrt());
    assert!((sd - TH_SD).abs() < 0.05 * TH_SD);
}

/// `lapicque meanfield` splits the population at the Gauss-Hermite nodes of the threshold
/// law: its stationary rate approaches the mixture computed here, the quadrature error
/// falling with the nodes until the potential grid's (1000 cells: about 2e-5) is left.
#[test]
fn limit_converges_to_the_mixture_as_nodes_grow() {
    let dir = common::scratch("heterogeneous_limit");
    let config = write_config(&dir, UNCOUPLED);
    let (want, _) = mixture();
    let mut errors = Vec::new();
    for m in [2, 3, 6, 12] {
        let out = dir.join(format!("limit{m}.h5"));
        let o = std::process::Command::new(common::binary())
            .args(["meanfield", config.to_str().unwrap(), "-o"])
            .arg(&out)
            .args(["--force", "--set", &format!("meanfield.vary_nodes={m}")])
            .args([
                "--set",
                "meanfield.cells=1000",
                "--set",
                "simulation.t_stop=10",
            ])
            .args([
                "--set",
                "observables.rates.start=0",
                "--set",
                "observables.rates.every=10",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let f = hdf5::File::open(&out).unwrap();
        let r = f
            .dataset("meanfield/stationary_rate")
            .unwrap()
            .read_raw::<f64>()
            .unwrap()[0];
        let err = (r - want).abs() / want;
        println!(
            "{m:>2} nodes: stationary {r:.6} Hz, mixture {want:.6} Hz, relative error {err:.2e}"
        );
        errors.push(err);
    }
    assert!(errors[0] > errors[1] && errors[1] > errors[2], "{errors:?}");
    assert!(
        errors[0] > 1e-3,
        "two nodes should miss the mixture: {errors:?}"
    );
    assert!(errors[2] < 1e-4 && errors[3] < 1e-4, "{errors:?}");
}

/// Every limit but the threshold-LIF one refuses a varied population by key.
#[test]
fn other_limits_refuse_varied_populations_by_key() {
    let config = common::repo().join("configs/multi_agent_labels_sparse.toml");
    let o = std::process::Command::new(common::binary())
        .args(["meanfield", config.to_str().unwrap(), "-o"])
        .arg(common::scratch("heterogeneous_refused").join("x.h5"))
        .args(["--create", "--set", "population.X.size=10"])
        .args([
            "--set",
            "population.X.vary.v_th={dist=\"normal\",mean=20.0,sd=1.0}",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("population.X.vary.v_th")
            && err.contains(
                "labelled-network Fokker-Planck limit does not take heterogeneous parameters"
            ),
        "{err}"
    );
}

/// Two coupled populations with every kind of variation: normal (truncated), lognormal,
/// gamma and uniform laws, a cosine profile, blocks over the coordinate, a varied refractory
/// period and a varied external Poisson rate; population sizes that do not divide among the
/// ranks.
const NETWORK: &str = r#"
[simulation]
dt = 0.1
t_stop = 150.0
seed = 5
[observables.histogram]
every = 10.0
[population.E]
size = 401
sigma = 1.0
i_e = 0.9
v_init_min = 0.0
v_init_max = 15.0
poisson_rate = 5000.0
poisson_weight = 0.1
[population.E.vary]
v_th = { dist = "normal", mean = 20.0, sd = 1.0, low = 17.0, high = 23.0 }
tau_m = { dist = "uniform", min = 15.0, max = 25.0 }
i_e = { of = "x", kind = "cosine", a = 0.9, b = 0.2 }
t_ref = { dist = "gamma", mean = 2.0, sd = 0.5 }
sigma = { dist = "lognormal", mean = 1.0, sd = 0.3 }
[population.I]
size = 103
sigma = 1.0
i_e = 0.9
poisson_rate = 5000.0
poisson_weight = 0.1
[population.I.vary]
poisson_rate = { of = "x", kind = "blocks", values = [4000.0, 6000.0] }
v_reset = { of = "x", kind = "linear", a = 8.0, b = 4.0 }
[projection.EI]
source = "E"
target = "I"
rule = "fixed_indegree"
indegree = 50
weight = 0.2
delay = 1.5
[projection.IE]
source = "I"
target = "E"
rule = "bernoulli"
p = 0.1
weight = -0.5
delay = 0.7
"#;

#[test]
fn varied_network_is_rank_invariant() {
    let dir = common::scratch("heterogeneous_ranks");
    let config = write_config(&dir, NETWORK);
    let outs: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&n| {
            let out = dir.join(format!("out{n}.h5"));
            common::run_ok(n, &config, &out, &["--force"]);
            out
        })
        .collect();
    for o in &outs[1..] {
        common::assert_same_results(&outs[0], o);
    }
    let f = hdf5::File::open(&outs[0]).unwrap();
    let read = |p: &str| {
        f.dataset(&format!("populations/{p}"))
            .unwrap()
            .read_raw::<f64>()
            .unwrap()
    };
    let th = read("E/parameters/v_th");
    assert!(th.iter().all(|&x| (17.0..=23.0).contains(&x)));
    let t_ref = read("E/parameters/t_ref");
    assert!(t_ref
        .iter()
        .all(|&x| ((x / 0.1).round() * 0.1 - x).abs() < 1e-12));
    // Even placement on the ring: node k at x = k / 103.
    let rate = read("I/parameters/poisson_rate");
    for (k, r) in rate.iter().enumerate() {
        let x = k as f64 / 103.0;
        assert_eq!(*r, if x < 0.5 { 4000.0 } else { 6000.0 });
    }
    let reset = read("I/parameters/v_reset");
    assert!((reset[51] - (8.0 + 4.0 * 51.0 / 103.0)).abs() < 1e-12);
}

/// The per-neuron step and the shared fast step are the same update: a "variation" that gives
/// every neuron the scalar's value (one block) runs the per-neuron path and reproduces the
/// homogeneous run's spikes and state byte for byte (the smoke network, 2 ranks).
#[test]
fn per_neuron_step_equals_the_shared_step() {
    let dir = common::scratch("heterogeneous_same");
    let config = common::repo().join("configs/smoke.toml");
    let (a, b) = (dir.join("shared.h5"), dir.join("per_neuron.h5"));
    common::run_ok(2, &config, &a, &["--force"]);
    common::run_ok(
        2,
        &config,
        &b,
        &[
            "--force",
            "--set",
            "population.E.vary.v_th={of=\"x\",kind=\"blocks\",values=[20.0]}",
            "--set",
            "population.I.vary.tau_m={of=\"x\",kind=\"linear\",a=20.0,b=0.0}",
        ],
    );
    let (da, db) = (common::datasets(&a), common::datasets(&b));
    let mut compared = 0;
    for (name, x) in &da {
        if name.starts_with("/spikes") || name.starts_with("/state") || name.starts_with("/rates") {
            let y = &db.iter().find(|(n, _)| n == name).unwrap().1;
            assert!(x == y, "{name} differs");
            compared += 1;
        }
    }
    assert!(compared >= 6, "{compared}");
    assert!(db
        .iter()
        .any(|(n, _)| n == "/populations/E/parameters/v_th"));
}

/// Functions of the same coordinate are binned together in the limit: `i_e` and `v_th` as
/// blocks over x give two kinds of neurons (low drive and low threshold, high drive and high
/// threshold), not the four an independent product would make. The limit's stationary rate is
/// the two-point mixture of independent Siegert rates; the four-point product differs by more
/// than 5%.
#[test]
fn functions_of_one_coordinate_are_binned_together() {
    let dir = common::scratch("heterogeneous_blocks");
    let text = UNCOUPLED.replace("size = 20000", "size = 1000").replace(
        "v_th = { dist = \"normal\", mean = 20.0, sd = 1.5 }",
        "v_th = { of = \"x\", kind = \"blocks\", values = [19.0, 21.0] }\n\
         i_e = { of = \"x\", kind = \"blocks\", values = [0.6, 0.9] }",
    );
    let config = write_config(&dir, &text);
    let out = dir.join("limit.h5");
    let o = std::process::Command::new(common::binary())
        .args(["meanfield", config.to_str().unwrap(), "-o"])
        .arg(&out)
        .args(["--force", "--set", "meanfield.cells=1000"])
        .args([
            "--set",
            "simulation.t_stop=10",
            "--set",
            "observables.rates.start=0",
        ])
        .args(["--set", "observables.rates.every=10"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = hdf5::File::open(&out)
        .unwrap()
        .dataset("meanfield/stationary_rate")
        .unwrap()
        .read_raw::<f64>()
        .unwrap()[0];
    let s = |i_e: f64, th: f64| common::siegert(20.0 * i_e, SIGMA_V, 20.0, th, 10.0, 2.0);
    let joint = 0.5 * (s(0.6, 19.0) + s(0.9, 21.0));
    let product = 0.25 * (s(0.6, 19.0) + s(0.9, 21.0) + s(0.6, 21.0) + s(0.9, 19.0));
    println!("limit {r:.5} Hz, joint mixture {joint:.5} Hz, independent product {product:.5} Hz");
    assert!((r - joint).abs() < 1e-3 * joint, "{r} vs {joint}");
    assert!((product - joint).abs() > 0.05 * joint);
}
