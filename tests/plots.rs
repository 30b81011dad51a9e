//! `scripts/plot.py`: turns an output file of the smoke network into PNGs (raster, rates,
//! density, histograms, moments, timers, and balance and trees when the file has them), with
//! `--limit` overlaying a second run; a missing or incomplete file is refused with one line
//! and exit code 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn plot(args: &[&str]) -> Output {
    let mut c = Command::new(common::python());
    c.arg(common::repo().join("scripts/plot.py")).args(args);
    common::run_with_timeout(c, Duration::from_secs(300))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `path` is a PNG of more than 5 kB.
fn assert_png(path: &Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > 5_000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
}

/// The PNGs the script should write for `file`: the fixed set, and balance and trees when the
/// file holds them.
fn expected(file: &Path) -> Vec<&'static str> {
    let mut names = vec![
        "raster.png",
        "rates.png",
        "density.png",
        "histograms.png",
        "moments.png",
        "timers.png",
    ];
    let f = hdf5::File::open(file).unwrap();
    for (group, png) in [
        ("balance/time", "balance.png"),
        ("labels/edges", "labels.png"),
        ("densities/xi_edges", "densities.png"),
        ("snapshots/time", "snapshots.png"),
        ("pair_histogram/time", "pair_histogram.png"),
        ("record/time", "record.png"),
    ] {
        if f.link_exists(group) {
            names.push(png);
        }
    }
    // Trees whose value is one number per sample time.
    if let Ok(trees) = f.group("trees") {
        let lines = trees.member_names().unwrap().iter().any(|t| {
            trees
                .dataset(&format!("{t}/value"))
                .is_ok_and(|v| v.ndim() == 1)
        });
        if lines {
            names.push("trees.png");
        }
    }
    names
}

fn written(o: &Output) -> Vec<PathBuf> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

#[test]
fn plots_of_a_smoke_run_with_and_without_a_limit() {
    let dir = common::scratch("plots");
    let (a, b) = (dir.join("a.h5"), dir.join("b.h5"));
    let config = common::repo().join("configs/smoke.toml");
    common::run_ok(
        2,
        &config,
        &a,
        &[
            "--set",
            "simulation.t_stop=100",
            "--set",
            "observables.snapshots.every=50",
            "--set",
            "observables.pair_histogram.every=50",
            "--set",
            "observables.record.neurons.E=[0,5]",
            "--set",
            "observables.histogram.xi_bins=4",
        ],
    );
    common::run_ok(
        2,
        &config,
        &b,
        &[
            "--set",
            "simulation.t_stop=100",
            "--set",
            "simulation.seed=2",
        ],
    );

    // Default directory: next to the file.
    let o = plot(&[a.to_str().unwrap()]);
    assert!(o.status.success(), "plot.py failed: {}", stderr(&o));
    let out = dir.join("a-plots");
    let names = expected(&a);
    for name in &names {
        assert_png(&out.join(name));
    }
    let listed = written(&o);
    assert_eq!(listed.len(), names.len(), "listed: {listed:?}");
    for p in &listed {
        assert_png(p);
    }

    // Against a second run, at chosen times, into a chosen directory.
    let lim = dir.join("limit");
    let o = plot(&[
        a.to_str().unwrap(),
        "--outdir",
        lim.to_str().unwrap(),
        "--limit",
        b.to_str().unwrap(),
        "--times",
        "0,50,100",
    ]);
    assert!(o.status.success(), "plot.py --limit failed: {}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert_png(&lim.join("histograms.png"));
    assert!(written(&o).contains(&lim.join("histograms.png")));

    // A second file of another model is drawn, with one warning naming the difference.
    let c = dir.join("c.h5");
    common::run_ok(
        1,
        &config,
        &c,
        &[
            "--set",
            "simulation.t_stop=100",
            "--set",
            "population.E.tau_m=10",
        ],
    );
    let o = plot(&[
        a.to_str().unwrap(),
        "--outdir",
        lim.to_str().unwrap(),
        "--limit",
        c.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("was made from a different configuration (first difference: population.E.tau_m = 20.0 here, 10.0 there)"),
        "{err}"
    );
}

#[test]
fn plot_refuses_missing_and_incomplete_files() {
    let dir = common::scratch("plots_refused");
    let incomplete = dir.join("incomplete.h5");
    common::create_h5(&incomplete);
    for (file, what) in [
        (dir.join("missing.h5"), "no such file"),
        (incomplete, "not a complete output file"),
    ] {
        let o = plot(&[file.to_str().unwrap(), "--outdir", dir.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        assert!(err.contains(what), "expected {what:?} in: {err}");
        assert!(o.stdout.is_empty());
    }
}
