//! Helpers for tests that run the real binary under `mpirun`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's python3 (which has h5py, numpy and matplotlib) when it is there, else the first
/// python3 on the PATH.
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Creates an HDF5 file without HDF5's file lock. The library opens files without
/// close-on-exec, so a test that spawns `mpirun` while another holds a file open hands the
/// descriptor, and with it the writer's exclusive lock, to that job: reading the file then
/// fails ("unable to lock file") until the job ends. Tests run in parallel, so the files they
/// write themselves are created unlocked.
pub fn create_h5(path: &Path) -> hdf5::File {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .create(path)
        .expect("create an HDF5 file")
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_lapicque")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory under the build's target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo().join("target").join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// `mpirun -n ranks lapicque args...`, allowed to run as root and to oversubscribe the cores,
/// with idle ranks yielding so oversubscribed runs do not starve each other.
pub fn mpirun(ranks: usize, args: &[&str]) -> Command {
    mpirun_program(ranks, binary(), args)
}

/// `mpirun` with its own session directory: Open MPI keeps every job's session files under one
/// directory per user and host (`/tmp/ompi.HOST.UID`), which one job removes at its end while
/// another, started at the same moment, creates it ("mkdir ... File exists", orte_init fails;
/// open-mpi/ompi#8510).
/// The tests start many jobs at once, so each gets a base directory of its own (short, under
/// the system's temporary directory, to keep socket paths within their length limit).
pub fn mpirun_command() -> Command {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir()
        .join(format!("lapicque-ompi-{}", std::process::id()))
        .join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&base).expect("create an Open MPI session base directory");
    let mut c = Command::new("mpirun");
    c.env("OMPI_MCA_orte_tmpdir_base", &base)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c
}

/// `mpirun -n ranks` (its own session directory), allowed to oversubscribe the cores, with
/// idle ranks yielding: the launcher that the program and its arguments follow.
pub fn mpirun_ranks(ranks: usize) -> Command {
    let mut c = mpirun_command();
    c.args([
        "-n",
        &ranks.to_string(),
        "--oversubscribe",
        "--mca",
        "mpi_yield_when_idle",
        "1",
    ]);
    c
}

/// `mpirun -n ranks program args...` with the settings of [`mpirun`].
pub fn mpirun_program(ranks: usize, program: &str, args: &[&str]) -> Command {
    let mut c = mpirun_ranks(ranks);
    c.arg(program).args(args).stdin(Stdio::null());
    c
}

/// Runs a command, killing it and failing the test if it takes longer than `limit`.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let out_path = std::env::temp_dir().join(format!(
        "lapicque-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let stdout = std::fs::File::create(out_path.with_extension("out")).expect("stdout file");
    let stderr = std::fs::File::create(out_path.with_extension("err")).expect("stderr file");
    let mut child = cmd
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn mpirun");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command hung for more than {limit:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |ext| std::fs::read(out_path.with_extension(ext)).unwrap_or_default();
    Output {
        status,
        stdout: read("out"),
        stderr: read("err"),
    }
}

/// Runs `lapicque run config -o out` on `ranks` ranks and asserts success.
pub fn run_ok(ranks: usize, config: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["run", config.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run_with_timeout(mpirun(ranks, &args), Duration::from_secs(600));
    assert!(
        o.status.success(),
        "run on {ranks} ranks failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Mean population rate over the whole run [Hz], from the file's rate time series.
pub fn mean_rate(file: &Path, population: &str) -> f64 {
    let f = hdf5::File::open(file).expect("open output");
    let r = f
        .dataset(&format!("rates/{population}"))
        .unwrap()
        .read_raw::<f64>()
        .unwrap();
    r.iter().sum::<f64>() / r.len() as f64
}

/// The Siegert formula (Brunel 2000, eq. 21; Amit & Brunel 1997): stationary rate [Hz] of a LIF
/// neuron with membrane time constant `tau` [ms], refractory period `t_ref` [ms], threshold
/// `theta` and reset `v_r` [mV], driven by white noise of mean `mu` [mV] and standard deviation
/// `sigma` [mV] in the sense `tau dV = (mu - V) dt + sigma sqrt(tau) dW`:
///
/// 1/nu = t_ref + tau sqrt(pi) int_{(v_r - mu)/sigma}^{(theta - mu)/sigma} e^{u^2} (1 + erf u) du
///
/// Computed with composite Simpson on `e^{u^2} erfc(-u)`, written independently of lapicque.
pub fn siegert(mu: f64, sigma: f64, tau: f64, theta: f64, v_r: f64, t_ref: f64) -> f64 {
    let f = |u: f64| (u * u).exp() * libm::erfc(-u);
    let (a, b) = ((v_r - mu) / sigma, (theta - mu) / sigma);
    let n = 20_000;
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for i in 1..n {
        s += if i % 2 == 1 { 4.0 } else { 2.0 } * f(a + i as f64 * h);
    }
    let integral = s * h / 3.0;
    1000.0 / (t_ref + tau * std::f64::consts::PI.sqrt() * integral)
}

/// Every numeric dataset of the file except the timers, and the spike statistics, as (path, raw bytes).
pub fn datasets(path: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for name in g.member_names().unwrap() {
            let full = format!("{prefix}/{name}");
            if full == "/timers" {
                continue;
            }
            if let Ok(sub) = g.group(&name) {
                // The spike statistics are attributes.
                if full.starts_with("/statistics/") {
                    for a in sub.attr_names().unwrap() {
                        let attr = sub.attr(&a).unwrap();
                        let bytes = if attr.dtype().unwrap().is::<f64>() {
                            attr.read_scalar::<f64>().unwrap().to_le_bytes()
                        } else {
                            attr.read_scalar::<u64>().unwrap().to_le_bytes()
                        };
                        out.push((format!("{full}@{a}"), bytes.to_vec()));
                    }
                }
                walk(&sub, &full, out);
            } else {
                let ds = g.dataset(&name).unwrap();
                let bytes: Vec<u8> = if ds.dtype().unwrap().is::<f64>() {
                    ds.read_raw::<f64>()
                        .unwrap()
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect()
                } else if ds.dtype().unwrap().is::<u64>() {
                    ds.read_raw::<u64>()
                        .unwrap()
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect()
                } else {
                    ds.read_raw::<u32>()
                        .unwrap()
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect()
                };
                out.push((full, bytes));
            }
        }
    }
    let f = hdf5::File::open(path).unwrap();
    let mut out = Vec::new();
    walk(&f, "", &mut out);
    out
}

/// Asserts that two output files hold the same results: the same datasets (all but the
/// timers), byte for byte.
pub fn assert_same_results(a: &Path, b: &Path) {
    let (da, db) = (datasets(a), datasets(b));
    let names = |d: &[(String, Vec<u8>)]| d.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&da),
        names(&db),
        "{} and {}: different datasets",
        a.display(),
        b.display()
    );
    for ((name, x), (_, y)) in da.iter().zip(&db) {
        assert!(
            x == y,
            "dataset {name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}
