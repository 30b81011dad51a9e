//! Stimulation (`[stimulus.NAME]`, src/stimulus.rs) against closed forms and counts computed
//! here: a step current against the exact solution of the noise-free LIF equation, an
//! inhomogeneous Poisson drive against the integral of its rate, a replayed spike file against
//! the file's own spike counts; rank invariance; the LIF limit under stimulation against the
//! Siegert rate and against particle runs of growing size.

mod common;

use hdf5::File;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(file: &Path, path: &str) -> Vec<f64> {
    File::open(file)
        .unwrap()
        .dataset(path)
        .unwrap()
        .read_raw::<f64>()
        .unwrap()
}

/// Noise-free LIF neurons from V = 0 with a current of 1.5 mV/ms switched on at 50 ms:
/// `V(t) = I tau (1 - exp(-(t - 50)/tau))` until the threshold 20 mV, reached at
/// `t* = 50 + tau ln 3` = 71.972 ms. The recorded V follows the closed form to 1e-9 mV (the
/// exponential step is exact for a current held over a step), zero before the step; the
/// first spike is stamped at the end of the step containing t*; half the population lies
/// outside the stimulated region and never moves.
#[test]
fn a_step_current_follows_the_closed_form() {
    let dir = common::scratch("stimulus_step");
    let config = write(
        &dir,
        "step.toml",
        r#"
[simulation]
dt = 0.1
t_stop = 100.0
[population.E]
size = 10
tau_m = 20.0
v_th = 20.0
v_reset = 10.0
t_ref = 2.0
[observables.record]
every = 0.1
neurons = { E = [0, 9] }
[stimulus.on]
target = "E"
kind = "current"
waveform = "step"
amplitude = 1.5
start = 50.0
region = [0.0, 0.5]
"#,
    );
    let out = dir.join("step.h5");
    common::run_ok(2, &config, &out, &[]);
    let t = read(&out, "record/time");
    let v = read(&out, "record/E/v"); // (time, 2): neurons 0 (stimulated) and 9 (not)
    let (tau, i) = (20.0f64, 1.5f64);
    let t_star = 50.0 + tau * 3f64.ln();
    let mut checked = 0;
    for (k, &tk) in t.iter().enumerate() {
        assert_eq!(v[2 * k + 1], 0.0, "neuron 9 lies outside the region");
        if tk >= t_star - 0.1 {
            break;
        }
        let want = if tk <= 50.0 {
            0.0
        } else {
            i * tau * (1.0 - (-(tk - 50.0) / tau).exp())
        };
        assert!(
            (v[2 * k] - want).abs() < 1e-9,
            "t = {tk} ms: V = {} mV, closed form {want} mV",
            v[2 * k]
        );
        checked += 1;
    }
    assert!(checked > 700, "{checked} samples checked");
    let f = File::open(&out).unwrap();
    let ids = f
        .dataset("spikes/E/node_ids")
        .unwrap()
        .read_raw::<u64>()
        .unwrap();
    let times = read(&out, "spikes/E/timestamps");
    let first = ids.iter().zip(&times).find(|(&id, _)| id == 0).unwrap().1;
    let want = (t_star / 0.1).ceil() * 0.1;
    assert!(
        (first - want).abs() < 1e-9,
        "first spike at {first} ms, expected the end of the step containing {t_star} ms ({want})"
    );
    assert!(
        ids.iter().all(|&id| id < 5),
        "only neurons in [0, 0.5) are stimulated"
    );
}

/// Neurons without leak or threshold in reach (`model = "perfect"`, no drift) driven only by an
/// inhomogeneous Poisson train of rate `r(t) = 200 + 150 sin(2 pi 5 Hz (t - 20 ms))` Hz from
/// 20 ms on, weight 0.5 mV: at 520 ms `V / w` is each neuron's event count, Poisson with mean
/// `Lambda = int r dt` = 100 + 150 (1 - cos(5 pi)) / (10 pi) = 109.549 (rate sampled at step
/// middles: the midpoint rule differs from the integral by ~1e-5). Over 4000 neurons the sample
/// mean must lie within 4 standard errors of Lambda and the variance within 4 standard errors
/// of Lambda (Poisson dispersion 1).
#[test]
fn an_inhomogeneous_poisson_drive_has_the_integrated_rate() {
    let dir = common::scratch("stimulus_poisson");
    let config = write(
        &dir,
        "poisson.toml",
        r#"
[simulation]
dt = 0.1
t_stop = 520.0
[population.E]
size = 4000
model = "perfect"
v_th = 1e9
v_reset = 0.0
[stimulus.drive]
target = "E"
kind = "poisson"
waveform = "sine"
offset = 200.0
amplitude = 150.0
frequency = 5.0
start = 20.0
weight = 0.5
"#,
    );
    let out = dir.join("poisson.h5");
    common::run_ok(2, &config, &out, &[]);
    let counts: Vec<f64> = read(&out, "state/v").iter().map(|v| v / 0.5).collect();
    assert!(counts
        .iter()
        .all(|c| (c - c.round()).abs() < 1e-9 && *c >= 0.0));
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<f64>() / n;
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let lambda =
        100.0 + 150.0 * (1.0 - (5.0 * std::f64::consts::PI).cos()) / (10.0 * std::f64::consts::PI);
    let se_mean = (lambda / n).sqrt();
    // Var of the sample variance of a Poisson(L): (L + 2 L^2 (n/(n-1))) / n ~ (L + 2 L^2) / n.
    let se_var = ((lambda + 2.0 * lambda * lambda) / n).sqrt();
    println!("mean {mean:.3} var {var:.3} Lambda {lambda:.3} (se {se_mean:.3}, {se_var:.3})");
    assert!(
        (mean - lambda).abs() < 4.0 * se_mean,
        "mean {mean} vs {lambda}"
    );
    assert!(
        (var - lambda).abs() < 4.0 * se_var,
        "variance {var} vs {lambda}"
    );
}

/// A smoke run's spikes replayed onto neurons that only count them (`perfect`, no drift,
/// weight 1 mV): at the end each neuron's V is the number of spikes of the node with its id
/// whose timestamps lie before the end of the run (a spike stamped t arrives in the step that
/// begins at t), read here from the replayed file itself. Also on another rank count.
#[test]
fn a_replayed_spike_file_arrives_spike_by_spike() {
    let dir = common::scratch("stimulus_replay");
    let source = dir.join("source.h5");
    common::run_ok(
        2,
        &common::repo().join("configs/smoke.toml"),
        &source,
        &["--set", "simulation.t_stop=150"],
    );
    let ids = File::open(&source)
        .unwrap()
        .dataset("spikes/E/node_ids")
        .unwrap()
        .read_raw::<u64>()
        .unwrap();
    let times = read(&source, "spikes/E/timestamps");
    let t_stop = 100.0;
    let size = 1600usize;
    let mut want = vec![0.0; size];
    for (&id, &t) in ids.iter().zip(&times) {
        if t < t_stop - 1e-9 {
            want[id as usize] += 1.0;
        }
    }
    assert!(want.iter().sum::<f64>() > 1000.0);
    let config = write(
        &dir,
        "replay.toml",
        &format!(
            r#"
[simulation]
dt = 0.1
t_stop = {t_stop}
[population.R]
size = {size}
model = "perfect"
v_th = 1e9
v_reset = 0.0
[stimulus.replay]
target = "R"
kind = "replay"
file = "source.h5"
population = "E"
weight = 1.0
"#
        ),
    );
    for ranks in [1, 3] {
        let out = dir.join(format!("replay{ranks}.h5"));
        common::run_ok(ranks, &config, &out, &[]);
        let got = read(&out, "state/v");
        assert_eq!(got, want, "{ranks} ranks: V is not the replayed count");
    }
}

/// Every kind of stimulus at once, on parts of the populations of a coupled network (current
/// on E's first half: the general step; Poisson on I: the fast LIF step; replay onto E):
/// byte-identical outputs on 1 to 4 ranks.
#[test]
fn stimulated_runs_are_identical_on_one_to_four_ranks() {
    let dir = common::scratch("stimulus_ranks");
    let smoke = common::repo().join("configs/smoke.toml");
    let source = dir.join("source.h5");
    common::run_ok(1, &smoke, &source, &["--set", "simulation.t_stop=100"]);
    let file = source.to_str().unwrap().to_string();
    let sets = [
        "simulation.t_stop=100".to_string(),
        "stimulus.c={target=\"E\",kind=\"current\",waveform=\"piecewise\",times=[10.0,40.0,70.0],values=[0.5,-0.3,0.8],region=[0.0,0.5]}".into(),
        "stimulus.p={target=\"I\",kind=\"poisson\",waveform=\"step\",amplitude=3000.0,start=20.0,stop=80.0,weight=0.2}".into(),
        format!("stimulus.r={{target=\"E\",kind=\"replay\",file=\"{file}\",population=\"I\",weight=0.5}}"),
    ];
    let mut extra = vec!["--create"];
    for s in &sets {
        extra.extend(["--set", s.as_str()]);
    }
    let reference = dir.join("ref.h5");
    common::run_ok(1, &smoke, &reference, &extra);
    let plain = common::mean_rate(&source, "E");
    let stimulated = common::mean_rate(&reference, "E");
    assert!(
        (stimulated - plain).abs() > 1.0,
        "the stimuli changed nothing ({plain} vs {stimulated} Hz)"
    );
    for ranks in 2..=4 {
        let out = dir.join(format!("out{ranks}.h5"));
        common::run_ok(ranks, &smoke, &out, &extra);
        common::assert_same_results(&reference, &out);
    }
}

/// The LIF limit under a step current: uncoupled noisy neurons (tau 20 ms, sigma_V = sigma
/// sqrt(tau)) at i_e = 0.8 mV/ms, plus 0.3 mV/ms from 100 to 300 ms. Late in the step and late
/// after it, the limit's rate equals the Siegert rate of mu = (i_e + I) tau and of
/// mu = i_e tau (tests/common's independent Simpson quadrature) within 0.5%; a particle
/// population follows the limit's time course with errors that shrink like N^(-1/2)
/// (mean |r_N - r| over 2 ms bins at N = 2000 and 32000: the ratio is 4 +- noise, accepted
/// above 2.5).
#[test]
fn the_lif_limit_follows_a_step_current() {
    let dir = common::scratch("stimulus_limit");
    let config = write(
        &dir,
        "limit.toml",
        r#"
[simulation]
dt = 0.1
t_stop = 500.0
seed = 5
[observables.rates]
every = 2.0
[population.E]
size = 2000
tau_m = 20.0
v_th = 20.0
v_reset = 10.0
t_ref = 2.0
i_e = 0.8
sigma = 1.0
v_init_min = 0.0
v_init_max = 15.0
[stimulus.pulse]
target = "E"
kind = "current"
waveform = "step"
amplitude = 0.3
start = 100.0
stop = 300.0
"#,
    );
    let limit = dir.join("limit.h5");
    let o = common::run_with_timeout(
        {
            let mut c = std::process::Command::new(common::binary());
            c.args(["meanfield", config.to_str().unwrap(), "-o"]);
            c.arg(&limit);
            c
        },
        std::time::Duration::from_secs(300),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read(&limit, "rates/time");
    let r = read(&limit, "rates/E");
    let at = |ms: f64| r[t.iter().position(|&x| x >= ms).unwrap()];
    let sigma_v = 20f64.sqrt();
    for (ms, mu) in [(290.0, 1.1 * 20.0), (490.0, 0.8 * 20.0)] {
        let want = common::siegert(mu, sigma_v, 20.0, 20.0, 10.0, 2.0);
        let got = at(ms);
        println!("{ms} ms: limit {got:.4} Hz, Siegert {want:.4} Hz");
        assert!(
            (got - want).abs() < 5e-3 * want,
            "{ms} ms: limit {got} Hz vs Siegert {want} Hz"
        );
    }
    let mut errors = Vec::new();
    for n in [2000u64, 32000] {
        let out = dir.join(format!("run{n}.h5"));
        common::run_ok(
            2,
            &config,
            &out,
            &["--set", &format!("population.E.size={n}")],
        );
        let rn = read(&out, "rates/E");
        assert_eq!(rn.len(), r.len());
        let e = rn.iter().zip(&r).map(|(a, b)| (a - b).abs()).sum::<f64>() / r.len() as f64;
        println!("N = {n}: mean |r_N - r| = {e:.4} Hz");
        errors.push(e);
    }
    assert!(
        errors[0] / errors[1] > 2.5,
        "errors {errors:?} do not fall like N^(-1/2)"
    );
}

/// What has no limit is refused by name: a replay, a stimulus of a coordinate range of a LIF
/// population, stimulation of a network outside the LIF family.
#[test]
fn the_limit_refuses_what_it_cannot_solve() {
    let dir = common::scratch("stimulus_refused");
    let config = common::repo().join("configs/uncoupled_lif.toml");
    let source = dir.join("source.h5");
    common::run_ok(1, &config, &source, &["--set", "simulation.t_stop=20"]);
    let src = source.to_str().unwrap();
    let replay = format!("stimulus.s={{target=\"E\",kind=\"replay\",file=\"{src}\",weight=0.1}}");
    let cases: [(&Path, String, &str); 3] = [
        (&config, replay, "stimulus.s.kind"),
        (
            &config,
            "stimulus.s={target=\"E\",kind=\"current\",waveform=\"step\",amplitude=0.1,region=[0.0,0.5]}".into(),
            "stimulus.s.region",
        ),
        (
            &common::repo().join("configs/strong_coupling.toml"),
            "stimulus.s={target=\"E\",kind=\"current\",waveform=\"step\",amplitude=0.1}".into(),
            "stimulus.s.target",
        ),
    ];
    for (cfg, set, key) in cases {
        let out = dir.join("limit.h5");
        let o = std::process::Command::new(common::binary())
            .args(["meanfield", cfg.to_str().unwrap(), "-o"])
            .arg(&out)
            .args(["--create", "--set", &set])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{set}: {err}");
        assert!(err.contains(key), "{set}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!out.exists());
    }
}

/// A stimulated run (current on part of E, Poisson on I, a replay onto E) stopped by SIGUSR1
/// after its first periodic checkpoint and resumed on 3 ranks equals the uninterrupted run byte
/// for byte: the replay continues from the step where it stopped, the Poisson draws from the
/// saved streams.
#[test]
fn a_stimulated_run_resumes_identically() {
    let dir = common::scratch("stimulus_restart");
    let smoke = common::repo().join("configs/smoke.toml");
    let source = dir.join("source.h5");
    common::run_ok(2, &smoke, &source, &["--set", "simulation.t_stop=3000"]);
    let file = source.to_str().unwrap().to_string();
    let sets = [
        "simulation.t_stop=3000".to_string(),
        "checkpoint.every=100".into(),
        "stimulus.c={target=\"E\",kind=\"current\",waveform=\"sine\",amplitude=0.4,frequency=3.0,region=[0.25,0.75]}".into(),
        "stimulus.p={target=\"I\",kind=\"poisson\",waveform=\"piecewise\",times=[0.0,500.0],values=[2000.0,500.0],weight=0.2}".into(),
        format!("stimulus.r={{target=\"E\",kind=\"replay\",file=\"{file}\",population=\"E\",weight=0.3}}"),
    ];
    let mut extra = vec!["--create"];
    for s in &sets {
        extra.extend(["--set", s.as_str()]);
    }
    let full = dir.join("full.h5");
    common::run_ok(2, &smoke, &full, &extra);
    let out = dir.join("out.h5");
    let checkpoint = dir.join("out.checkpoint.h5");
    let mut args = vec!["run", smoke.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend(&extra);
    let mut child = common::mpirun(2, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !checkpoint.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before a checkpoint"
        );
        assert!(start.elapsed().as_secs() < 120, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    assert!(!out.exists(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut resumed_args = extra.clone();
    let cp = checkpoint.to_str().unwrap().to_string();
    resumed_args.extend(["--restart", cp.as_str()]);
    common::run_ok(3, &smoke, &out, &resumed_args);
    common::assert_same_results(&full, &out);
}
