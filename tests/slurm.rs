//! The batch scripts of `slurm/` on a real one-node Slurm cluster started on this machine by
//! `scripts/local_slurm.sh` (Debian's slurm-wlm and munge; needs root, installs them if
//! missing): a batch job gives the same output as `mpirun`; a strong-scaling series submitted
//! by `scripts/scaling.py` is collected into one table row per run; a job signalled with
//! SIGUSR1 checkpoints, requeues itself, resumes and ends with the output of an uninterrupted
//! run. Elsewhere (not root, not Debian) the tests say why they skip and pass.
//!
//! The tests share one cluster in turn (a mutex): each starts it and stops it when done, even
//! when it fails (a guard's `Drop`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster's state directory and ports: not the defaults of `local_slurm.sh`, so that a
/// cluster started by hand for trying things is neither used nor stopped by the tests.
const PORT: &str = "6917";

fn state_dir() -> PathBuf {
    // Short: slurmd puts UNIX sockets (at most 108 bytes of path) in its spool directory.
    std::env::temp_dir().join("lapicque-slurm-test")
}

fn script() -> PathBuf {
    common::repo().join("scripts").join("local_slurm.sh")
}

fn smoke() -> PathBuf {
    common::repo().join("configs").join("smoke.toml")
}

fn run_sbatch() -> PathBuf {
    common::repo().join("slurm").join("run.sbatch")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Why this machine cannot run the local cluster, if it cannot.
fn unsupported() -> Option<&'static str> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (the Slurm daemons of scripts/local_slurm.sh run as root)");
    }
    if !Path::new("/etc/debian_version").exists() {
        return Some("not Debian (scripts/local_slurm.sh installs Debian's slurm-wlm and munge)");
    }
    let apt = Command::new("sh")
        .args(["-c", "command -v apt-get"])
        .output()
        .ok()?;
    if !apt.status.success() {
        return Some("no apt-get to install slurm-wlm and munge");
    }
    None
}

/// A running local cluster; stopped when dropped.
struct LocalSlurm {
    conf: PathBuf,
}

impl LocalSlurm {
    /// Starts the cluster, or says why the test skips and returns `None`.
    fn start(test: &str) -> Option<LocalSlurm> {
        if let Some(why) = unsupported() {
            println!("skipping {test}: {why}");
            return None;
        }
        // The guard exists before the start, so that a half-started cluster is stopped too.
        let cluster = LocalSlurm {
            conf: state_dir().join("slurm.conf"),
        };
        let o = common::run_with_timeout(cluster.local_slurm("start"), Duration::from_secs(600));
        assert!(
            o.status.success(),
            "scripts/local_slurm.sh start failed:\n{}",
            text(&o)
        );
        Some(cluster)
    }

    fn local_slurm(&self, action: &str) -> Command {
        let mut c = Command::new(script());
        c.arg(action)
            .env("LAPICQUE_SLURM_DIR", state_dir())
            .env("LAPICQUE_SLURM_PORT", PORT)
            .stdin(Stdio::null());
        c
    }

    /// A Slurm client command for this cluster; jobs find the binary under test.
    fn command(&self, program: &str, cwd: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(cwd)
            .env("SLURM_CONF", &self.conf)
            .env("LAPICQUE_BIN", common::binary())
            .stdin(Stdio::null());
        c
    }

    /// `scontrol show job -o ID`: one line of `Key=Value` fields.
    fn job(&self, id: &str) -> String {
        let o = self
            .command("scontrol", Path::new("/"))
            .args(["show", "job", "-o", id])
            .output()
            .expect("run scontrol");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until job `id` has ended (requeued jobs run again first) and returns its record.
    fn wait(&self, id: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let job = self.job(id);
            let state = field(&job, "JobState").unwrap_or_default();
            let ended = [
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "TIMEOUT",
                "NODE_FAIL",
                "OUT_OF_MEMORY",
                "BOOT_FAIL",
                "DEADLINE",
                "PREEMPTED",
            ];
            if ended.contains(&state.as_str()) {
                return job;
            }
            assert!(
                start.elapsed() < limit,
                "job {id} still {state} after {limit:?}: {job}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for LocalSlurm {
    fn drop(&mut self) {
        let o = common::run_with_timeout(self.local_slurm("stop"), Duration::from_secs(120));
        if !o.status.success() {
            eprintln!("scripts/local_slurm.sh stop failed:\n{}", text(&o));
        }
    }
}

/// One test at a time on the cluster (a failed test poisons the lock; the next one goes on).
fn exclusive() -> MutexGuard<'static, ()> {
    CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The value of `Key=` in a `scontrol -o` record.
fn field(record: &str, key: &str) -> Option<String> {
    record
        .split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

/// Every `*.log` under `dir` (job logs), for failure messages.
fn logs(dir: &Path) -> String {
    let mut all = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                let body = std::fs::read_to_string(&p).unwrap_or_default();
                all += &format!("==> {} <==\n{body}\n", p.display());
            }
        }
    }
    all
}

fn status(file: &Path) -> String {
    let f = hdf5::File::open(file).unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
    f.attr("status")
        .and_then(|a| a.read_scalar::<hdf5::types::VarLenUnicode>())
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default()
}

/// `sbatch --wait` of slurm/run.sbatch on 2 tasks: the job's exit code is the run's, the run
/// directory holds the resolved configuration, the job script, the version and a complete
/// output, and that output equals the same run under plain `mpirun`, byte for byte.
#[test]
fn batch_job_writes_a_run_directory_and_the_mpirun_output() {
    let _turn = exclusive();
    let Some(slurm) = LocalSlurm::start("batch_job_writes_a_run_directory_and_the_mpirun_output")
    else {
        return;
    };
    let dir = common::scratch("slurm_batch");
    let run_dir = dir.join("run");
    let mut c = slurm.command("sbatch", &dir);
    c.args(["--wait", "--ntasks=2", "--output=job-%j.log"])
        .arg(run_sbatch())
        .arg(smoke())
        .arg(&run_dir);
    let o = common::run_with_timeout(c, Duration::from_secs(180));
    assert!(
        o.status.success(),
        "sbatch --wait failed:\n{}\n{}",
        text(&o),
        logs(&dir)
    );

    let out = run_dir.join("output.h5");
    for name in [
        "config.toml",
        "job.sbatch",
        "job.txt",
        "version.txt",
        "output.h5",
    ] {
        assert!(
            run_dir.join(name).is_file(),
            "run directory lacks {name}:\n{}",
            logs(&dir)
        );
    }
    let config = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    assert!(config.contains("[population.E]") && config.contains(out.to_str().unwrap()));
    let version = std::fs::read_to_string(run_dir.join("version.txt")).unwrap();
    assert!(version.starts_with("lapicque "), "version.txt: {version}");
    assert_eq!(status(&out), "complete");
    let f = hdf5::File::open(&out).unwrap();
    assert_eq!(f.attr("n_ranks").unwrap().read_scalar::<u64>().unwrap(), 2);
    drop(f);
    assert!(
        !run_dir.join("output.checkpoint.h5").exists(),
        "a finished run leaves no checkpoint"
    );

    let reference = dir.join("mpirun.h5");
    common::run_ok(2, &smoke(), &reference, &[]);
    common::assert_same_results(&reference, &out);

    // A job with bad input fails with lapicque's exit code (through `sbatch --wait`).
    let mut c = slurm.command("sbatch", &dir);
    c.args(["--wait", "--ntasks=2", "--output=bad-%j.log"])
        .arg(run_sbatch())
        .arg(smoke())
        .arg(dir.join("bad"))
        .args(["--", "--set", "population.E.tau_m=-20"]);
    let o = common::run_with_timeout(c, Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(2), "{}\n{}", text(&o), logs(&dir));
    assert!(logs(&dir).contains("population.E.tau_m = -20"));
}

/// `scripts/scaling.py run --slurm`: three jobs (1, 2 and 4 tasks, overcommitted on a small
/// machine) and a collect job that depends on them; the table has one row per run, with the
/// per-phase timers, speed-up and efficiency, and the plots exist.
#[test]
fn strong_scaling_series_is_collected() {
    let _turn = exclusive();
    let Some(slurm) = LocalSlurm::start("strong_scaling_series_is_collected") else {
        return;
    };
    let dir = common::scratch("slurm_scaling");
    let series = dir.join("strong");
    let mut c = slurm.command(
        common::repo()
            .join("scripts")
            .join("scaling.py")
            .to_str()
            .unwrap(),
        &dir,
    );
    c.args(["run", "--mode", "strong", "--ranks", "1,2,4", "--slurm"])
        .args(["--overcommit", "--set", "simulation.t_stop=100"])
        .arg("--config")
        .arg(smoke())
        .arg("--dir")
        .arg(&series)
        .args(["--bin", common::binary()]);
    let o = common::run_with_timeout(c, Duration::from_secs(300));
    assert!(
        o.status.success(),
        "scaling.py failed:\n{}\n{}",
        text(&o),
        logs(&dir)
    );

    let csv = std::fs::read_to_string(series.join("scaling.csv")).expect("scaling.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "one row per run:\n{csv}");
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let ranks: Vec<&str> = rows.iter().map(|r| r[col("ranks")]).collect();
    assert_eq!(ranks, ["1", "2", "4"]);
    for r in &rows {
        assert_eq!(r[col("mode")], "strong");
        assert_eq!(r[col("neurons")], "2000");
        for name in [
            "wall_time_s",
            "update_max_s",
            "update_mean_s",
            "exchange_max_s",
            "deliver_max_s",
            "output_max_s",
            "peak_memory_max_bytes",
            "speedup",
            "efficiency",
        ] {
            let v: f64 = r[col(name)].parse().unwrap();
            assert!(v > 0.0, "{name} = {v} in {csv}");
        }
        // Strong scaling: the same network, hence the same synaptic events, on every count.
        assert_eq!(r[col("events")], rows[0][col("events")]);
    }
    assert_eq!(rows[0][col("speedup")], "1");
    for png in ["speedup.png", "efficiency.png", "phases.png"] {
        assert!(series.join(png).is_file(), "no {png}");
    }
    for r in ["1", "2", "4"] {
        let run = series.join(format!("strong-n{r}"));
        assert_eq!(status(&run.join("output.h5")), "complete");
        assert!(run.join("config.toml").is_file() && run.join("job.sbatch").is_file());
    }
}

/// Preemption: a job signalled with `scancel --signal=USR1` (what `--signal=USR1@120` does
/// before the time limit; it reaches the ranks, not the job script) writes a checkpoint, exits
/// 4, requeues itself, resumes from the checkpoint in the same run directory, and ends with
/// the output of an uninterrupted run.
#[test]
fn signalled_job_checkpoints_requeues_and_resumes() {
    let _turn = exclusive();
    let Some(slurm) = LocalSlurm::start("signalled_job_checkpoints_requeues_and_resumes") else {
        return;
    };
    // 10 s of model time: 2 to 10 s of wall time on 2 ranks, time enough to be signalled.
    let t_stop = "simulation.t_stop=10000";
    let dir = common::scratch("slurm_requeue");
    let run_dir = dir.join("run");
    let mut c = slurm.command("sbatch", &dir);
    c.args(["--parsable", "--ntasks=2", "--output=job-%j.log"])
        .arg(run_sbatch())
        .arg(smoke())
        .arg(&run_dir)
        .args(["--", "--set", t_stop]);
    let o = c.output().expect("run sbatch");
    assert!(o.status.success(), "sbatch failed: {}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let log = dir.join(format!("job-{id}.log"));

    // Signal once the ranks run (they print this line after installing their handlers).
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(" neurons, ")
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the job did not start: {}\n{}",
            slurm.job(&id),
            logs(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = slurm
        .command("scancel", &dir)
        .args(["--signal=USR1", &id])
        .output()
        .expect("run scancel");
    assert!(o.status.success(), "scancel failed: {}", text(&o));

    let job = slurm.wait(&id, Duration::from_secs(300));
    let log_text = logs(&dir);
    assert_eq!(
        field(&job, "JobState").as_deref(),
        Some("COMPLETED"),
        "{job}\n{log_text}"
    );
    assert_eq!(
        field(&job, "Restarts").as_deref(),
        Some("1"),
        "requeued once: {job}\n{log_text}"
    );
    for line in [
        "after writing checkpoint",
        "requeueing job",
        "resuming from",
    ] {
        assert!(log_text.contains(line), "log lacks {line:?}:\n{log_text}");
    }
    let out = run_dir.join("output.h5");
    assert_eq!(status(&out), "complete");
    assert!(
        !run_dir.join("output.checkpoint.h5").exists(),
        "the finished run deletes its checkpoint"
    );

    let reference = dir.join("mpirun.h5");
    common::run_ok(2, &smoke(), &reference, &["--set", t_stop]);
    common::assert_same_results(&reference, &out);
}
