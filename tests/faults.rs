//! Runtime faults: a runaway network, a failed write, a killed rank. None may hang, crash
//! silently or leave a file that claims to be complete.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// Every neuron fires in every step (t_ref = 0 and a drive far above threshold) and excites
/// every other: spike buffers grow to N gids per step and the run completes. From V = 0 the
/// drive v_inf = i_e tau_m = 1000 mV first reaches threshold after
/// n0 = ceil(-(tau_m/dt) ln(1 - v_th/v_inf)) steps; from then on the recurrent input (500 x 5
/// mV) makes every neuron fire in every step.
#[test]
fn runaway_network_keeps_working() {
    let dir = common::scratch("runaway");
    let config = dir.join("runaway.toml");
    std::fs::write(
        &config,
        "[simulation]\nt_stop = 100.0\n[population.A]\nsize = 500\nt_ref = 0.0\ni_e = 50.0\n\
         [projection.AA]\nsource = \"A\"\ntarget = \"A\"\nrule = \"bernoulli\"\np = 1.0\nweight = 5.0\ndelay = 0.1\n",
    )
    .unwrap();
    let out = dir.join("runaway.h5");
    common::run_ok(2, &config, &out, &[]);
    let rate = common::mean_rate(&out, "A");
    let n0 = (-(20.0f64 / 0.1) * (1.0 - 20.0 / 1000.0f64).ln()).ceil();
    // Spikes in steps n0 - 1 .. 999, one per step; 1 ms bins of their timestamps (n + 1) dt:
    // the first bin holds steps 0 .. 8 (n0 - 1 .. 8 spiking), the last one steps 989 .. 999,
    // every bin the rate of one spike per step but the first. The mean over the 100 bins:
    let first = (8.0 - (n0 - 1.0) + 1.0) / 9.0 * 10_000.0;
    let expected = (first + 99.0 * 10_000.0) / 100.0;
    assert!(
        (rate - expected).abs() < 1e-6,
        "rate {rate} Hz, expected {expected} Hz"
    );
}

/// A write that fails (here: a file size limit, as a quota or a full disk would) ends the run
/// with an error naming HDF5's failure, a non-zero exit, no hang, and no file at either the
/// final or the partial name.
#[test]
fn failed_write_leaves_no_output() {
    let dir = common::scratch("write_failure");
    let out = dir.join("brunel.h5");
    // SIGXFSZ is ignored so that the write returns EFBIG instead of killing the process; TCP
    // instead of shared memory keeps MPI's own segments clear of the size limit.
    let script = format!(
        "trap '' XFSZ; ulimit -f 1000; exec {} run {} -o {} --set simulation.t_stop=300",
        common::binary(),
        common::repo().join("configs/brunel.toml").display(),
        out.display()
    );
    let mut cmd = common::mpirun_command();
    cmd.args([
        "-n",
        "2",
        "--oversubscribe",
        "--mca",
        "btl",
        "self,tcp",
        "sh",
        "-c",
        &script,
    ]);
    let o = common::run_with_timeout(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("lapicque: error: HDF5"), "{stderr}");
    assert!(!out.exists() && !dir.join("brunel.h5.partial").exists());
}

/// SIGKILL of one rank in the middle of a run aborts the whole job promptly and leaves no
/// file that claims to be complete.
#[test]
fn killed_rank_aborts_the_job() {
    let dir = common::scratch("kill");
    let out = dir.join("long.h5");
    let mut child = common::mpirun(
        2,
        &[
            "run",
            common::repo().join("configs/brunel.toml").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--set",
            "simulation.t_stop=60000",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // The ranks are mpirun's children.
    let start = Instant::now();
    let ranks = loop {
        let o = Command::new("pgrep")
            .args(["-P", &child.id().to_string()])
            .output()
            .unwrap();
        let pids: Vec<u32> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.len() >= 2 {
            break pids;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "ranks did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(2));
    let killed = Command::new("kill")
        .args(["-9", &ranks[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the job did not abort within 30 s of a rank's death");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    assert!(!out.exists(), "a killed run left {}", out.display());
}
