//! Checkpoint and restart: a run stopped by SIGUSR1 and resumed, on the same or another number
//! of ranks, gives the same output, byte for byte, as the uninterrupted run; damaged or foreign
//! checkpoints are refused with one line naming `--restart`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A configuration and the settings it runs with.
type Setup = (&'static str, &'static [&'static str]);

/// The smoke network for 8 s of model time (a few seconds of wall time on 2 ranks), with
/// periodic checkpoints every 100 ms of model time, snapshots, spike statistics after a
/// transient and a subset of recorded spikes (every accumulator a checkpoint must carry), the
/// spikes spilled to disk every 1,310 records; current synapses on I with II's delays spread
/// over 1.5-3 ms, so that the inhibitory ring buffer holds counted arrivals beyond the window.
const SMOKE: Setup = (
    concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke.toml"),
    &[
        "simulation.t_stop=8000",
        "checkpoint.every=100",
        "observables.snapshots.every=1000",
        "observables.statistics.start=500",
        "population.I.record_spikes=100",
        "output.spike_buffer=0.01",
        "population.I.synapse=\"current\"",
        "projection.II.delay_max=3.0",
    ],
);

/// The multi-agent network (sparse variant) with every kind of state a general model carries: labels with a
/// refreshed random environment, conductance synapses (two ring buffers) on E, current
/// synapses on I, aggregate input from the last step's spikes, escape noise on I; four
/// neurons' state variables recorded.
const GENERAL: Setup = (
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/multi_agent_labels_sparse.toml"
    ),
    &[
        "simulation.t_stop=6000",
        "checkpoint.every=100",
        "population.E.synapse=\"conductance\"",
        "population.I.synapse=\"current\"",
        "population.I.spike=\"escape\"",
        "population.I.escape={kind=\"sigmoid\",rate=50.0,theta=15.0,beta=0.5}",
        "aggregate.S.source=\"E\"",
        "aggregate.S.target=\"I\"",
        "aggregate.S.kind=\"jump\"",
        "aggregate.S.s={kind=\"spikes\"}",
        "aggregate.S.j0=5.0",
        "observables.record.neurons={E=[0,5,800,1599]}",
        "observables.record.every=10",
        "observables.record.variables=[\"v\",\"refractory_steps\",\"syn_e\",\"syn_i\",\"lambda\",\"beta\"]",
    ],
);

/// The smoke network with heterogeneous parameters on both populations (a varied external
/// Poisson rate included): nothing of them is checkpointed, they are drawn again from their
/// streams at the restart. Delays of EE spread over 1.5-3 ms leave counted arrivals (constant
/// weights) scheduled beyond the window at every checkpoint.
const VARIED: Setup = (
    concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke.toml"),
    &[
        "simulation.t_stop=4000",
        "checkpoint.every=100",
        "population.E.vary.v_th={dist=\"normal\",mean=20.0,sd=1.0,low=15.0}",
        "population.E.vary.tau_m={dist=\"uniform\",min=15.0,max=25.0}",
        "population.E.vary.t_ref={dist=\"gamma\",mean=2.0,sd=0.5}",
        "population.E.vary.poisson_rate={of=\"x\",kind=\"cosine\",a=20000.0,b=2000.0}",
        "population.I.vary.sigma={dist=\"lognormal\",mean=0.5,sd=0.2}",
        "population.I.vary.i_e={of=\"x\",kind=\"blocks\",values=[0.0,0.1]}",
        "projection.EE.delay_max=3.0",
    ],
);

/// The command line of a setup (`--create`: GENERAL's overrides define an aggregate term).
fn args<'a>(setup: Setup, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", setup.0, "-o", out, "--create"];
    for s in setup.1 {
        a.extend(["--set", s]);
    }
    a.extend_from_slice(extra);
    a
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs to the end and asserts success.
fn complete(setup: Setup, ranks: usize, out: &Path, extra: &[&str]) {
    let o = common::run_with_timeout(
        common::mpirun(ranks, &args(setup, out.to_str().unwrap(), extra)),
        Duration::from_secs(600),
    );
    assert!(o.status.success(), "{ranks} ranks: {}", stderr_of(&o));
}

/// Starts a run on 2 ranks, waits for its first periodic checkpoint (the signal handlers are
/// installed by then), sends SIGUSR1 to one rank only, and expects every rank to stop with
/// exit code 4 after writing the checkpoint, and no output.
fn interrupt(setup: Setup, out: &Path, checkpoint: &Path) {
    let mut child = common::mpirun(2, &args(setup, out.to_str().unwrap(), &[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !checkpoint.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ranks = Command::new("pgrep")
        .args(["-P", &child.id().to_string()])
        .output()
        .unwrap();
    let first_rank = String::from_utf8_lossy(&ranks.stdout)
        .split_whitespace()
        .next()
        .expect("a rank process")
        .to_string();
    let sent = Command::new("kill")
        .args(["-USR1", &first_rank])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("stopped by a signal") && err.contains("--restart"),
        "{err}"
    );
    assert!(!out.exists(), "a stopped run must not leave an output");
}

fn step_of(checkpoint: &Path) -> u64 {
    let f = hdf5::File::open(checkpoint).unwrap();
    f.attr("step").unwrap().read_scalar::<u64>().unwrap()
}

/// A refused restart: exit code 2 on every rank, one line naming `--restart` and `expect`,
/// and no output.
fn refused(checkpoint: &Path, out: &Path, extra: &[&str], expect: &str) {
    let mut a = args(SMOKE, out.to_str().unwrap(), extra);
    a.extend_from_slice(&["--restart", checkpoint.to_str().unwrap()]);
    let o = common::run_with_timeout(common::mpirun(2, &a), Duration::from_secs(120));
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("lapicque: error:"))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    assert!(
        line.contains("--restart") && line.contains(expect),
        "expected '{expect}' in: {line}"
    );
    assert!(!out.exists());
}

#[test]
fn interrupted_and_resumed_runs_equal_the_uninterrupted_run() {
    let dir = common::scratch("checkpoint");
    let full = dir.join("full.h5");
    complete(SMOKE, 2, &full, &[]);
    assert!(
        !dir.join("full.checkpoint.h5").exists(),
        "a complete run removes its checkpoint"
    );

    let out = dir.join("out.h5");
    let checkpoint = dir.join("out.checkpoint.h5");
    interrupt(SMOKE, &out, &checkpoint);
    let step = step_of(&checkpoint);
    assert!(
        step > 0 && step < 80_000,
        "the stop must fall inside the run: step {step}"
    );
    let saved = dir.join("saved.checkpoint.h5");
    std::fs::rename(&checkpoint, &saved).unwrap();

    // Damaged and foreign checkpoints.
    let bytes = std::fs::read(&saved).unwrap();
    let truncated = dir.join("truncated.h5");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    refused(&truncated, &out, &[], "truncated");
    refused(
        &saved,
        &out,
        &["--set", "simulation.seed=2"],
        "simulation.seed = 1 in the checkpoint, 2 in this run",
    );
    refused(&full, &out, &[], "not a lapicque checkpoint");

    // Resumed on the same number of ranks, exchanging every step instead of once per window
    // (which must not matter), and on one and three ranks from the same checkpoint.
    for (i, ranks) in [2, 1, 3].into_iter().enumerate() {
        std::fs::copy(&saved, &checkpoint).unwrap();
        let resumed = dir.join(format!("resumed{i}.h5"));
        let restart = ["--restart", checkpoint.to_str().unwrap()];
        let mut extra = restart.to_vec();
        if ranks == 2 {
            extra.extend_from_slice(&["--set", "simulation.exchange=\"step\""]);
        }
        complete(SMOKE, ranks, &resumed, &extra);
        common::assert_same_results(&full, &resumed);
    }
}

/// The state of general models (labels and environments, synaptic conductances and currents,
/// the inhibitory ring buffer, last-step spikes of aggregate input) survives a checkpoint: a
/// run stopped by a signal and resumed on 1 and 3 ranks equals the uninterrupted run.
#[test]
fn general_model_state_resumes_identically() {
    let dir = common::scratch("checkpoint_general");
    let full = dir.join("full.h5");
    complete(GENERAL, 2, &full, &[]);
    let out = dir.join("out.h5");
    let checkpoint = dir.join("out.checkpoint.h5");
    interrupt(GENERAL, &out, &checkpoint);
    let f = hdf5::File::open(&checkpoint).unwrap();
    for name in [
        "lambda",
        "beta",
        "syn_e",
        "syn_i",
        "ring_i",
        "spiked_last_step",
    ] {
        assert!(
            f.dataset(&format!("extra/{name}")).is_ok(),
            "the checkpoint lacks extra/{name}"
        );
    }
    drop(f);
    resume_on_one_and_three_ranks(GENERAL, &dir, &full, &checkpoint);
}

#[test]
fn varied_parameters_resume_identically() {
    let dir = common::scratch("checkpoint_varied");
    let full = dir.join("full.h5");
    complete(VARIED, 2, &full, &[]);
    let out = dir.join("out.h5");
    let checkpoint = dir.join("out.checkpoint.h5");
    interrupt(VARIED, &out, &checkpoint);
    resume_on_one_and_three_ranks(VARIED, &dir, &full, &checkpoint);
}

/// Resumes from `checkpoint` on 1 and on 3 ranks (each from a copy of it) and asserts that
/// each output equals the uninterrupted run `full`.
fn resume_on_one_and_three_ranks(setup: Setup, dir: &Path, full: &Path, checkpoint: &Path) {
    let saved = dir.join("saved.checkpoint.h5");
    std::fs::rename(checkpoint, &saved).unwrap();
    for (i, ranks) in [1, 3].into_iter().enumerate() {
        std::fs::copy(&saved, checkpoint).unwrap();
        let resumed = dir.join(format!("resumed{i}.h5"));
        complete(
            setup,
            ranks,
            &resumed,
            &["--restart", checkpoint.to_str().unwrap()],
        );
        common::assert_same_results(full, &resumed);
    }
}
