//! Faults that used to hang a job, lose a result or crash it: a full disk, a failed rename, two
//! runs on one output path, a damaged checkpoint, overflowing label rates, runs that cannot
//! fit in memory, a FIFO as the configuration, the output named twice, names and sums HDF5 or
//! the integers cannot hold. Each case runs under `mpirun -n 3` and must end within 30 s with
//! the documented exit code on every rank, one `lapicque:` line naming the cause (Open MPI's
//! own messages aside), and no file that looks complete.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn smoke() -> String {
    common::repo()
        .join("configs/smoke.toml")
        .display()
        .to_string()
}

/// What a job left: each rank's exit code, its `lapicque:` lines (banners and progress aside),
/// all of stderr, and the wall time.
struct Outcome {
    codes: Vec<String>,
    lines: Vec<String>,
    stderr: String,
    took: Duration,
}

impl Outcome {
    /// Every rank exited with `code` and the one line names `expect`.
    fn assert_fails(&self, code: i32, expect: &str) {
        let want = vec![code.to_string(); self.codes.len()];
        assert_eq!(self.codes, want, "exit codes; stderr:\n{}", self.stderr);
        assert_eq!(
            self.lines.len(),
            1,
            "one lapicque line expected; stderr:\n{}",
            self.stderr
        );
        assert!(
            self.lines[0].contains(expect),
            "{expect:?} not in {:?}",
            self.lines[0]
        );
        assert!(self.took < LIMIT, "took {:?}", self.took);
    }
}

/// A job of `ranks` ranks each running `prefix; lapicque args...` in `dir`, recording its own
/// exit code. Arguments are passed as they are (they need not be UTF-8).
fn job(ranks: usize, dir: &Path, prefix: &str, args: &[OsString]) -> Command {
    let script = format!(
        "{prefix} \"$@\"; echo $? > rc.$OMPI_COMM_WORLD_RANK",
        prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix};")
        }
    );
    job_script(ranks, dir, &script, args)
}

/// A job of `ranks` ranks each running `sh -c script sh lapicque args...` in `dir`.
fn job_script(ranks: usize, dir: &Path, script: &str, args: &[OsString]) -> Command {
    let mut a: Vec<OsString> = vec![
        "-c".into(),
        script.into(),
        "sh".into(),
        common::binary().into(),
    ];
    a.extend_from_slice(args);
    let mut cmd = common::mpirun_ranks(ranks);
    cmd.args([
        // TCP instead of shared memory keeps MPI's own segments clear of file size limits.
        "--mca", "btl", "self,tcp", "sh",
    ])
    .args(a)
    .current_dir(dir)
    .stdin(Stdio::null());
    cmd
}

fn outcome(ranks: usize, dir: &Path, stderr: String, took: Duration) -> Outcome {
    let codes = (0..ranks)
        .map(|r| {
            let f = dir.join(format!("rc.{r}"));
            let c = std::fs::read_to_string(&f)
                .unwrap_or_default()
                .trim()
                .to_string();
            let _ = std::fs::remove_file(f);
            c
        })
        .collect();
    let lines = stderr
        .lines()
        .filter(|l| l.starts_with("lapicque:"))
        // Banners, the progress lines a slow machine prints every 10 s, and warnings (a
        // spill file that could not be written; the tests that expect one look at stderr).
        .filter(|l| {
            !l.ends_with(" rank(s)")
                && !l.starts_with("lapicque: resuming")
                && !l.contains(", ETA ")
                && !l.starts_with("lapicque: warning:")
        })
        .map(str::to_string)
        .collect();
    Outcome {
        codes,
        lines,
        stderr,
        took,
    }
}

/// Runs a job to its end (failing the test after 60 s: a hang).
fn run(ranks: usize, dir: &Path, prefix: &str, args: &[&str]) -> Outcome {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    run_os(ranks, dir, prefix, &args)
}

fn run_os(ranks: usize, dir: &Path, prefix: &str, args: &[OsString]) -> Outcome {
    let start = Instant::now();
    let o = common::run_with_timeout(job(ranks, dir, prefix, args), Duration::from_secs(60));
    outcome(
        ranks,
        dir,
        String::from_utf8_lossy(&o.stderr).into_owned(),
        start.elapsed(),
    )
}

/// A job started in the background, its stderr going to `dir/name.err`.
fn spawn(ranks: usize, dir: &Path, name: &str, args: &[&str]) -> Child {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    start(job(ranks, dir, "", &args), dir, name)
}

/// Starts `cmd` in the background, its stderr going to `dir/name.err`.
fn start(mut cmd: Command, dir: &Path, name: &str) -> Child {
    let err = std::fs::File::create(dir.join(format!("{name}.err"))).unwrap();
    cmd.stdout(Stdio::null()).stderr(err).spawn().unwrap()
}

/// Waits for `child` to end (at most `limit`), or kills it and fails.
fn finish(mut child: Child, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the job hung for more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `path` holds `text` (a background job's progress).
fn wait_for(path: &Path, text: &str, child: &mut Child) {
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(text)
        {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before {text:?}: {}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
        assert!(start.elapsed() < LIMIT, "no {text:?} in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// No file at `out`, its partial or its lock.
fn assert_nothing_left(out: &Path) {
    let with = |ext: &str| PathBuf::from(format!("{}{ext}", out.display()));
    for p in [out.to_path_buf(), with(".partial"), with(".lock")] {
        assert!(!p.exists(), "{} was left behind", p.display());
    }
}

fn attr_text(path: &Path, name: &str) -> String {
    let f = hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
        .unwrap();
    f.attr(name)
        .unwrap()
        .read_scalar::<hdf5::types::VarLenUnicode>()
        .unwrap()
        .to_string()
}

/// A tmpfs of `size` mounted at `dir` for as long as it lives, if this process may mount.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` until it has no space left.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![1u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
}

/// The output's file system (a 2 MB tmpfs) or file size limit (512 KB) is known too small for
/// the series the run will write (a snapshot of every neuron every step, ~23 MiB): every rank
/// exits 2 before anything is built, naming the setting; nothing is left.
#[test]
fn an_output_that_cannot_fit_is_refused_before_the_run() {
    let dir = common::scratch("never_hang_output_room");
    let (disk, _mounted, prefix) = small_disk(&dir);
    let out = disk.join("out.h5");
    let o = run(
        3,
        &dir,
        prefix,
        &[
            "run",
            &smoke(),
            "-o",
            out.to_str().unwrap(),
            "--set",
            "observables.snapshots.every=0.1",
            "--set",
            "simulation.t_stop=100",
        ],
    );
    o.assert_fails(
        2,
        "observables.snapshots.every = 0.1: needs ~23 MiB for the output in",
    );
    assert!(o.took < Duration::from_secs(10), "took {:?}", o.took);
    assert_nothing_left(&out);
}

/// A directory `disk` in `dir` on a 2 MB tmpfs, or where the test cannot mount one, a shell
/// prefix that limits the size of a file to 1000 blocks, 512 KB in `sh`, instead (SIGXFSZ ignored, so that a write
/// beyond it fails instead of killing the process).
fn small_disk(dir: &Path) -> (PathBuf, Option<Tmpfs>, &'static str) {
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Tmpfs::mount(&disk, "2m");
    let prefix = if mounted.is_some() {
        ""
    } else {
        eprintln!(
            "cannot mount a tmpfs here: the full disk is replaced by a file size limit (ulimit -f 1000)"
        );
        "trap '' XFSZ; ulimit -f 1000"
    };
    (disk, mounted, prefix)
}

/// Case 1: the output directory is a 2 MB tmpfs (or a file has at most 512 KB) and the spikes,
/// which the check before the run cannot foresee, fill it while the output is written (2 s of
/// the smoke network record ~190,000 spikes, ~3 MB). Every rank exits 1 with HDF5's error,
/// within seconds (it hung, or crashed with SIGSEGV in HDF5's clean-up, before).
#[test]
fn a_full_disk_ends_every_rank_with_exit_1() {
    let dir = common::scratch("never_hang_full_disk");
    let (disk, _mounted, prefix) = small_disk(&dir);
    let out = disk.join("out.h5");
    let o = run(
        3,
        &dir,
        prefix,
        &[
            "run",
            &smoke(),
            "-o",
            out.to_str().unwrap(),
            "--set",
            "observables.histogram.every=0",
            "--set",
            "simulation.t_stop=2000",
        ],
    );
    o.assert_fails(1, "HDF5");
    // Well before the watchdog's grace period (10 s): the ranks left MPI on their own.
    assert!(o.took < Duration::from_secs(10), "took {:?}", o.took);
    assert_nothing_left(&out);
}

/// Case 1, a write that fails on one rank only: the last rank alone has a file size limit of
/// 1000 blocks (512 KB in `sh`; SIGXFSZ ignored), so its slab of the spikes fails while the others' succeed. The
/// ranks agree on the failure before the next collective call: every rank exits 1 naming the
/// limit. (The limit stops that rank's spill file of its ~1.6 MB of spikes first: it warns and
/// keeps them in memory, losing nothing, and the run goes on to the output.)
#[test]
fn a_write_failing_on_one_rank_ends_every_rank() {
    let dir = common::scratch("never_hang_one_rank");
    let out = dir.join("out.h5");
    let o = run(
        3,
        &dir,
        "if [ \"$OMPI_COMM_WORLD_RANK\" = 2 ]; then trap '' XFSZ; ulimit -f 1000; fi",
        &[
            "run",
            &smoke(),
            "-o",
            out.to_str().unwrap(),
            "--set",
            "observables.histogram.every=0",
            "--set",
            "observables.balance.every=0",
            "--set",
            "simulation.t_stop=5000",
        ],
    );
    o.assert_fails(1, "file size limit");
    assert_eq!(
        o.stderr
            .matches("this rank keeps its recorded spikes in memory")
            .count(),
        1,
        "the spill warning of the limited rank; stderr:\n{}",
        o.stderr
    );
    assert_nothing_left(&out);
}

/// Case 1, periodic checkpoints: the disk fills after the first checkpoint, so a later one
/// fails while the previous one is still on disk (a checkpoint is written beside the previous
/// one and renamed over it). Every rank exits 1 naming the checkpoint; the previous checkpoint
/// is kept, complete; there is no output.
#[test]
fn a_full_disk_during_a_periodic_checkpoint_keeps_the_previous_one() {
    let dir = common::scratch("never_hang_full_checkpoint");
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let Some(_mounted) = Tmpfs::mount(&disk, "32m") else {
        eprintln!(
            "cannot mount a tmpfs here: this test needs one (a file size limit cannot fill a disk between two checkpoints); only the checkpoint's own write failure is tested, in a_full_disk_ends_every_rank_with_exit_1"
        );
        return;
    };
    let out = disk.join("out.h5");
    let checkpoint = disk.join("out.checkpoint.h5");
    let mut child = spawn(
        3,
        &dir,
        "job",
        &[
            "run",
            &smoke(),
            "-o",
            out.to_str().unwrap(),
            "--set",
            "simulation.t_stop=20000",
            "--set",
            "checkpoint.every=100",
        ],
    );
    let start = Instant::now();
    while !checkpoint.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(start.elapsed() < LIMIT, "no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    fill(&disk);
    finish(child, LIMIT);
    let stderr = std::fs::read_to_string(dir.join("job.err")).unwrap();
    let o = outcome(3, &dir, stderr, start.elapsed());
    o.assert_fails(1, "checkpoint");
    assert_eq!(attr_text(&checkpoint, "status"), "complete");
    assert!(!PathBuf::from(format!("{}.partial", checkpoint.display())).exists());
    assert_nothing_left(&out);
}

/// Case 2: a non-empty directory appears at the output path while the run works, so the
/// final rename fails. Every rank exits 1 with the rename's error (rank 0 printed it and every
/// rank hung, before); the partial file is removed and the directory untouched.
#[test]
fn a_failed_rename_ends_every_rank() {
    let dir = common::scratch("never_hang_rename");
    let out = dir.join("out.h5");
    let mut child = spawn(
        3,
        &dir,
        "job",
        &[
            "run",
            &smoke(),
            "-o",
            out.to_str().unwrap(),
            "--set",
            "simulation.t_stop=3000",
        ],
    );
    wait_for(&dir.join("job.err"), "rank(s)", &mut child);
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), b"someone else's").unwrap();
    let took = finish(child, LIMIT);
    let stderr = std::fs::read_to_string(dir.join("job.err")).unwrap();
    let o = outcome(3, &dir, stderr, took);
    o.assert_fails(1, "renaming");
    assert!(!dir.join("out.h5.partial").exists() && !dir.join("out.h5.lock").exists());
    assert_eq!(std::fs::read(out.join("keep")).unwrap(), b"someone else's");
}

/// Case 3: a second run on the output path of a running one is refused at once, with or
/// without --force, and touches nothing; the first completes; a third, after it, needs
/// --force.
#[test]
fn a_second_run_on_one_output_path_is_refused() {
    let dir = common::scratch("never_hang_two_runs");
    let out = dir.join("out.h5");
    let args = ["run", &smoke(), "-o", out.to_str().unwrap()];
    let mut first = spawn(
        2,
        &dir,
        "first",
        &[&args[..], &["--set", "simulation.t_stop=60000"]].concat(),
    );
    wait_for(&dir.join("first.err"), "rank(s)", &mut first);
    for force in [false, true] {
        let mut a = args.to_vec();
        if force {
            a.push("--force");
        }
        let second = run(1, &dir, "", &a);
        second.assert_fails(2, "claimed by another run");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before the second was tried: lengthen it"
        );
    }
    finish(first, LIMIT);
    let err = std::fs::read_to_string(dir.join("first.err")).unwrap();
    assert!(err.contains("lapicque: wrote"), "{err}");
    assert_eq!(attr_text(&out, "status"), "complete");
    assert!(!dir.join("out.h5.lock").exists());
    let third = run(1, &dir, "", &args);
    third.assert_fails(2, "exists; pass --force");
    assert_eq!(attr_text(&out, "status"), "complete");
}

/// Case 4: damaged checkpoints are refused before the network is built, by every rank with
/// exit 2 and one line naming `--restart` and the damage (every rank hung after "resuming",
/// or the damage was accepted, before). The checkpoint comes from a run stopped by SIGUSR1;
/// h5py damages copies of it.
#[test]
fn damaged_checkpoints_are_refused_on_every_rank() {
    let dir = common::scratch("never_hang_checkpoint");
    let out = dir.join("out.h5");
    let checkpoint = dir.join("out.checkpoint.h5");
    let setup = [
        "--set",
        "simulation.t_stop=20000",
        "--set",
        "checkpoint.every=100",
    ];
    let smoke = smoke();
    let child = common::mpirun(
        1,
        &[&["run", &smoke, "-o", out.to_str().unwrap()][..], &setup].concat(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while !checkpoint.exists() {
        assert!(start.elapsed() < LIMIT, "no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The rank is mpirun's child; its handler is installed once a checkpoint was written.
    let rank = Command::new("pgrep")
        .args(["-P", &child.id().to_string()])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&rank.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-USR1", pid]).status();
    }
    finish(child, LIMIT);
    assert_eq!(attr_text(&checkpoint, "status"), "complete");
    let damages: [(&str, &str, &str); 6] = [
        (
            "v short",
            "v = f['neurons/v'][:-7]; del f['neurons/v']; f['neurons/v'] = v",
            "neurons/v",
        ),
        (
            "spike steps cut",
            "s = f['observables/spikes/step'][:-5]; del f['observables/spikes/step']; f['observables/spikes/step'] = s",
            "spikes",
        ),
        (
            "spike counts inflated",
            "c = f['observables/spikes/count'][:]; c[3] += 1000; f['observables/spikes/count'][:] = c",
            "spikes",
        ),
        (
            "random states as floats",
            "w = f['neurons/rng_state'][:].astype('f8'); del f['neurons/rng_state']; f['neurons/rng_state'] = w",
            "rng_state",
        ),
        (
            "random states zero",
            "f['neurons/rng_state'][:] = numpy.zeros(f['neurons/rng_state'].shape, 'u8')",
            "random stream",
        ),
        (
            "step moved back",
            "s = int(f.attrs['step']) // 2; f.attrs.modify('step', numpy.uint64(s)); f.attrs.modify('time', s * 0.1)",
            "spike",
        ),
    ];
    for (what, python, expect) in damages {
        let damaged = dir.join("damaged.h5");
        std::fs::copy(&checkpoint, &damaged).unwrap();
        let ok = Command::new(common::python())
            .args([
                "-c",
                &format!(
                    "import h5py, numpy\nf = h5py.File({:?}, 'r+')\n{python}\nf.close()",
                    damaged.display().to_string()
                ),
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "{what}: h5py failed");
        let resumed = dir.join("resumed.h5");
        let o = run(
            3,
            &dir,
            "",
            &[
                &[
                    "run",
                    &smoke,
                    "-o",
                    resumed.to_str().unwrap(),
                    "--restart",
                    damaged.to_str().unwrap(),
                ][..],
                &setup,
            ]
            .concat(),
        );
        o.assert_fails(2, "--restart");
        assert!(o.lines[0].contains(expect), "{what}: {:?}", o.lines[0]);
        assert_nothing_left(&resumed);
    }
}

/// Cases 5 to 9: configurations refused before anything is built, by `run` on three ranks
/// within seconds (they looped, aborted in an allocation, hung, or ran to the end first).
#[test]
fn runaway_and_unrepresentable_inputs_are_refused_up_front() {
    let dir = common::scratch("never_hang_inputs");
    let labels = dir.join("labels.toml");
    std::fs::write(
        &labels,
        "[population.E]\nsize = 30\n[population.E.labels]\nefficacy = [1.0, 2.0, 3.0]\n\
         rates = [[0.0, 1e308, 1e308], [1e308, 0.0, 1e308], [1e308, 1e308, 0.0]]\n",
    )
    .unwrap();
    let sizes = dir.join("sizes.toml");
    std::fs::write(
        &sizes,
        "[population.A]\nsize = 9000000000000000000\n[population.B]\nsize = 9000000000000000000\n\
         [population.C]\nsize = 9000000000000000000\n",
    )
    .unwrap();
    let fifo = dir.join("fifo.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let brunel = common::repo()
        .join("configs/brunel.toml")
        .display()
        .to_string();
    let smoke = smoke();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "label rates that overflow",
            vec![labels.to_str().unwrap()],
            "labels.rates[0]",
        ),
        (
            "an in-degree beyond memory",
            vec![&brunel, "--set", "projection.EE.indegree=100000000"],
            "projection.EE.indegree = 100000000",
        ),
        (
            "a delay beyond memory",
            vec![&brunel, "--set", "projection.EE.delay=100000"],
            "projection.EE.delay = 100000",
        ),
        (
            "observables beyond the temporary directory",
            vec![
                &brunel,
                "--set",
                "simulation.t_stop=4000000",
                "--set",
                "observables.snapshots.every=0.1",
            ],
            "observables.snapshots.every = 0.1",
        ),
        (
            "an aggregate kernel beyond memory",
            vec![
                &smoke,
                "--create",
                "--set",
                "aggregate.S.source=\"E\"",
                "--set",
                "aggregate.S.target=\"I\"",
                "--set",
                "aggregate.S.kind=\"jump\"",
                "--set",
                "aggregate.S.s={kind=\"spikes\"}",
                "--set",
                "aggregate.S.j0=1.0",
                "--set",
                "aggregate.S.bins=65536",
            ],
            "aggregate.S.bins = 65536",
        ),
        (
            "a FIFO as the configuration",
            vec![fifo.to_str().unwrap()],
            "not a regular file",
        ),
        (
            "a population named time",
            vec![&smoke, "--create", "--set", "population.time.size=3"],
            "population.time",
        ),
        (
            "a population named edges",
            vec![&smoke, "--create", "--set", "population.edges.size=3"],
            "population.edges",
        ),
        (
            "sizes summing past 2^64",
            vec![sizes.to_str().unwrap()],
            "population.C.size",
        ),
        (
            "a histogram range that overflows",
            vec![
                &smoke,
                "--set",
                "observables.histogram.v_min=-1e308",
                "--set",
                "observables.histogram.v_max=1e308",
            ],
            "v_max - v_min overflows",
        ),
    ];
    let out = dir.join("out.h5");
    for (what, args, expect) in cases {
        let mut a = vec!["run"];
        a.extend(args);
        a.extend(["-o", out.to_str().unwrap()]);
        let o = run(3, &dir, "", &a);
        assert!(
            o.codes.iter().all(|c| c == "2") && o.lines.len() == 1 && o.lines[0].contains(expect),
            "{what}: codes {:?}, stderr:\n{}",
            o.codes,
            o.stderr
        );
        assert!(
            o.took < Duration::from_secs(20),
            "{what}: took {:?}",
            o.took
        );
        assert_nothing_left(&out);
    }
}

/// Case 8: the checkpoint path names the output by another spelling ("./out.h5", or through
/// a symbolic link to the directory). The end-of-run clean-up deleted the output, after "wrote
/// out.h5"; now the run is refused before it starts.
#[test]
fn a_checkpoint_path_spelling_the_output_is_refused() {
    let dir = common::scratch("never_hang_spelling");
    std::os::unix::fs::symlink(&dir, dir.join("link")).unwrap();
    for spelling in ["./out.h5", "link/out.h5"] {
        let o = run(
            3,
            &dir,
            "",
            &[
                "run",
                &smoke(),
                "-o",
                "out.h5",
                "--set",
                &format!("checkpoint.path=\"{spelling}\""),
            ],
        );
        o.assert_fails(2, "must differ from the output path");
        assert_nothing_left(&dir.join("out.h5"));
    }
}

/// Case 9: an output path that is not UTF-8 is refused before the run (it failed after the
/// whole simulation).
#[test]
fn a_non_utf8_output_path_is_refused_before_the_run() {
    use std::os::unix::ffi::OsStringExt;
    let dir = common::scratch("never_hang_utf8");
    let out = OsString::from_vec(b"out-\xff.h5".to_vec());
    let o = run_os(
        3,
        &dir,
        "",
        &[
            "run".into(),
            smoke().into(),
            "-o".into(),
            out,
            "--set".into(),
            "simulation.t_stop=20000".into(),
        ],
    );
    o.assert_fails(2, "output.path");
    assert!(o.lines[0].contains("UTF-8"), "{:?}", o.lines[0]);
    assert!(o.took < Duration::from_secs(10), "took {:?}", o.took);
}

/// Case 10: SIGTERM to `mpirun` itself (what `kill` of the launcher, or a batch system that
/// signals only the job script, does), 1.5 s into a run of 200 s of model time (about 25 s
/// of wall time on 2 cores: 20 s of model time ended before the signal once the step loop got
/// faster). Open MPI passes SIGTERM on to its ranks as part of its
/// own shutdown: the ranks write one checkpoint together (complete: every rank wrote its part
/// before it was closed), one stop line names the signal and the checkpoint, no output file is
/// left, all within 30 s. The ranks' own exit codes (4) cannot be recorded here: the launcher
/// kills the shells that would record them as soon as the first rank ends. The launcher's own
/// exit status stays 1 (docs/faults.md: send SIGUSR1 to `mpirun`, or launch with `srun`, for 4
/// from the launcher as well).
#[test]
fn sigterm_to_mpirun_checkpoints_on_every_rank() {
    let dir = common::scratch("never_hang_sigterm");
    let out = dir.join("out.h5");
    // The launcher signals its direct children: here a shell per rank, which passes SIGTERM on
    // to lapicque as the launcher would if lapicque were its child.
    let script = "\"$@\" & pid=$!; trap 'kill -TERM $pid' TERM; wait $pid; wait $pid";
    let args: Vec<OsString> = [
        "run",
        &smoke(),
        "-o",
        out.to_str().unwrap(),
        "--set",
        "simulation.t_stop=200000",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let mut child = start(job_script(3, &dir, script, &args), &dir, "job");
    wait_for(&dir.join("job.err"), "rank(s)", &mut child);
    // The handlers are installed before the first step; leave time to reach it.
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let took = finish(child, LIMIT);
    let stderr = std::fs::read_to_string(dir.join("job.err")).unwrap();
    let o = outcome(3, &dir, stderr, took);
    assert_eq!(o.lines.len(), 1, "{}", o.stderr);
    assert!(o.lines[0].contains("stopped by a signal"), "{}", o.stderr);
    assert!(o.took < LIMIT, "took {:?}", o.took);
    assert_nothing_left(&out);
    let checkpoint = dir.join("out.checkpoint.h5");
    assert!(checkpoint.exists(), "{}", o.stderr);
    // What `--restart` checks first: the file was closed after every rank wrote its part.
    assert_eq!(attr_text(&checkpoint, "status"), "complete");
}
