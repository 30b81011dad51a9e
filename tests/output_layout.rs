//! The output file follows docs/output.md: provenance, units and descriptions on every
//! dataset, SONATA spikes, observables consistent with the spikes, complete status.

mod common;

use hdf5::types::VarLenUnicode;
use hdf5::{File, Group};
use lapicque::output::Sorting;

fn text(loc: &hdf5::Location, name: &str) -> String {
    loc.attr(name)
        .unwrap()
        .read_scalar::<VarLenUnicode>()
        .unwrap()
        .as_str()
        .to_string()
}

fn every_dataset(g: &Group, prefix: &str, f: &mut dyn FnMut(&str, &hdf5::Dataset)) {
    for name in g.member_names().unwrap() {
        let path = format!("{prefix}/{name}");
        match g.group(&name) {
            Ok(sub) => every_dataset(&sub, &path, f),
            Err(_) => f(&path, &g.dataset(&name).unwrap()),
        }
    }
}

#[test]
fn smoke_run_output_follows_the_documented_layout() {
    let dir = common::scratch("output_layout");
    let out = dir.join("smoke.h5");
    common::run_ok(
        2,
        &common::repo().join("configs/smoke.toml"),
        &out,
        &["--set", "simulation.t_stop=100"],
    );
    assert!(
        !dir.join("smoke.h5.partial").exists(),
        "partial file left behind"
    );
    let f = File::open(&out).unwrap();

    assert_eq!(text(&f, "status"), "complete");
    assert_eq!(text(&f, "format"), "lapicque");
    for a in [
        "lapicque_version",
        "git_commit",
        "mpi_library",
        "hdf5_version",
        "started",
        "finished",
    ] {
        assert!(!text(&f, a).is_empty(), "empty root attribute {a}");
    }
    assert_eq!(f.attr("n_ranks").unwrap().read_scalar::<u64>().unwrap(), 2);
    // The stored configuration reproduces the run's configuration exactly.
    let stored = text(&f, "config");
    let again = lapicque::config::Config::from_toml(&stored, &[]).unwrap();
    assert_eq!(again.resolved_toml(), stored);
    assert_eq!(again.n_steps, 1000);

    let mut n = 0;
    every_dataset(&f, "", &mut |path, ds| {
        assert!(!text(ds, "units").is_empty(), "{path} has no units");
        assert!(
            !text(ds, "description").is_empty(),
            "{path} has no description"
        );
        n += 1;
    });
    assert!(n >= 15, "only {n} datasets");

    let t_stop = 100.0;
    let bin = f
        .group("rates")
        .unwrap()
        .attr("bin_width")
        .unwrap()
        .read_scalar::<f64>()
        .unwrap();
    for (pop, size) in [("E", 1600.0), ("I", 400.0)] {
        let g = f.group(&format!("spikes/{pop}")).unwrap();
        assert_eq!(
            g.attr("sorting").unwrap().read_scalar::<Sorting>().unwrap(),
            Sorting::by_id
        );
        let ids = g.dataset("node_ids").unwrap().read_raw::<u64>().unwrap();
        let ts = g.dataset("timestamps").unwrap().read_raw::<f64>().unwrap();
        assert_eq!(ids.len(), ts.len());
        assert!(ids.len() > 1000, "{pop}: only {} spikes", ids.len());
        for k in 1..ids.len() {
            assert!(
                (ids[k - 1], ts[k - 1]) < (ids[k], ts[k]),
                "{pop}: spikes not sorted by id then time at {k}"
            );
        }
        assert!(ts.iter().all(|&t| t > 0.0 && t <= t_stop + 1e-9));
        assert!(ids.iter().all(|&i| (i as f64) < size));
        // The rate series accounts for exactly the recorded spikes: bins of the timestamps
        // from 0 to t_stop, the first one holding a step less (no spike is stamped at 0), the
        // last one, closed at t_stop, a step more.
        let rates = f
            .dataset(&format!("rates/{pop}"))
            .unwrap()
            .read_raw::<f64>()
            .unwrap();
        let dt = f.attr("dt").unwrap().read_scalar::<f64>().unwrap();
        let last = rates.len() - 1;
        let from_rates: f64 = rates
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let len = bin - if k == 0 { dt } else { 0.0 } + if k == last { dt } else { 0.0 };
                r * size * len / 1000.0
            })
            .sum();
        assert!(
            (from_rates - ids.len() as f64).abs() < 1e-6 * ids.len() as f64,
            "{pop}: {from_rates} vs {}",
            ids.len()
        );
        // Histogram rows integrate to at most one and are non-negative.
        let h = f.dataset(&format!("histograms/{pop}")).unwrap();
        let shape = h.shape();
        let edges = f
            .dataset("histograms/edges")
            .unwrap()
            .read_raw::<f64>()
            .unwrap();
        assert_eq!(edges.len(), shape[1] + 1);
        let width = edges[1] - edges[0];
        for row in h.read_raw::<f64>().unwrap().chunks(shape[1]) {
            let mass: f64 = row.iter().map(|d| d * width).sum();
            assert!(
                row.iter().all(|&d| d >= 0.0) && mass <= 1.0 + 1e-12,
                "{pop}: mass {mass}"
            );
        }
        // The final moments agree with the final state written per neuron.
        let v = f.dataset("state/v").unwrap().read_raw::<f64>().unwrap();
        let start = if pop == "E" { 0 } else { 1600 };
        let vs = &v[start..start + size as usize];
        let mean = vs.iter().sum::<f64>() / size;
        let means = f
            .dataset(&format!("moments/{pop}/mean"))
            .unwrap()
            .read_raw::<f64>()
            .unwrap();
        assert!(
            (means.last().unwrap() - mean).abs() < 1e-6,
            "{pop}: {} vs {mean}",
            means.last().unwrap()
        );
    }

    // Timers: the documented phases; per rank, the phases of the run fit in its wall time
    // (waiting is split off the all-gather, never counted twice).
    let ds = f.dataset("timers/seconds").unwrap();
    assert_eq!(
        text(&ds, "phases"),
        "build,update,exchange,wait,deliver,observe,output"
    );
    let wall = f.attr("wall_time").unwrap().read_scalar::<f64>().unwrap();
    for row in ds.read_raw::<f64>().unwrap().chunks(7) {
        assert!(row.iter().all(|&t| t >= 0.0), "{row:?}");
        let run: f64 = row[..6].iter().sum();
        assert!(run <= wall * 1.01 + 0.01, "phases {run} s > wall {wall} s");
    }

    let o = std::process::Command::new(common::binary())
        .arg("inspect")
        .arg(&out)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && s.contains("complete") && s.contains("where the time went"),
        "{s}"
    );
}

/// `inspect` names what a file is: a mean-field file is summarised as the limit (no ranks, wall
/// time or synapses), and a checkpoint or a foreign HDF5 file is refused with one line naming
/// the file and exit code 2 (bad input), not a raw HDF5 error.
#[test]
fn inspect_names_the_file_kind_and_refuses_other_files() {
    let dir = common::scratch("inspect_kinds");
    let inspect = |file: &std::path::Path| {
        std::process::Command::new(common::binary())
            .arg("inspect")
            .arg(file)
            .output()
            .unwrap()
    };
    let mf = dir.join("limit.h5");
    let o = std::process::Command::new(common::binary())
        .args(["meanfield", "--force", "-o"])
        .arg(&mf)
        .arg(common::repo().join("configs/uncoupled_lif.toml"))
        .args(["--set", "simulation.t_stop=20"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = File::open(&mf).unwrap();
    assert_eq!(text(&f, "kind"), "meanfield");
    assert_eq!(text(&f, "format"), "lapicque");
    for attr in ["git_commit", "hdf5_version", "config"] {
        assert!(!text(&f, attr).is_empty(), "{attr}");
    }
    let o = inspect(&mf);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        s.contains("mean-field limit") && s.contains("solver lif_fokker_planck"),
        "{s}"
    );
    assert!(!s.contains("rank(s)") && !s.contains("synapses"), "{s}");

    let foreign = dir.join("foreign.h5");
    common::create_h5(&foreign).create_group("data").unwrap();
    let checkpoint = dir.join("state.checkpoint.h5");
    {
        let c = common::create_h5(&checkpoint);
        let v: hdf5::types::VarLenUnicode = "lapicque-checkpoint".parse().unwrap();
        c.new_attr::<hdf5::types::VarLenUnicode>()
            .create("format")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }
    let not_hdf5 = dir.join("notes.h5");
    std::fs::write(&not_hdf5, "not HDF5").unwrap();
    for (file, says) in [
        (&foreign, "is not a lapicque output"),
        (&checkpoint, "is a lapicque checkpoint"),
        (&not_hdf5, "cannot be opened as HDF5"),
    ] {
        let o = inspect(file);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(says) && err.contains(file.to_str().unwrap()),
            "{err}"
        );
    }
}
