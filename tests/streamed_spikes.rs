//! Recorded spikes in bounded memory (src/observables/spikes.rs): beyond
//! `output.spike_buffer` they go to a spill file per rank and are read back one block of
//! neurons at a time. The output must not depend on whether they were spilled, and the peak
//! memory of a long recorded run must not grow with the number of spikes, nor with the
//! length of the observables' series.

mod common;

use hdf5::File;
use std::path::Path;

fn spilled(file: &Path) -> u64 {
    File::open(file)
        .unwrap()
        .group("spikes")
        .unwrap()
        .attr("spilled_bytes")
        .unwrap()
        .read_scalar::<u64>()
        .unwrap()
}

fn peak_memory(file: &Path) -> f64 {
    let v: Vec<u64> = File::open(file)
        .unwrap()
        .dataset("timers/peak_memory")
        .unwrap()
        .read_raw()
        .unwrap();
    v.iter().copied().max().unwrap() as f64 / (1024.0 * 1024.0)
}

/// 2 s of the smoke network with a spike buffer of 1,310 records (about 100 spills per rank)
/// on 2 and 3 ranks, against one held in memory: the same datasets, byte for byte.
#[test]
fn spilled_spikes_give_the_same_output() {
    let dir = common::scratch("streamed_spikes");
    let smoke = common::repo().join("configs/smoke.toml");
    let memory = dir.join("memory.h5");
    let base = ["--set", "simulation.t_stop=2000"];
    common::run_ok(
        2,
        &smoke,
        &memory,
        &[&base[..], &["--set", "output.spike_buffer=1000"]].concat(),
    );
    assert_eq!(spilled(&memory), 0);
    for ranks in [2, 3] {
        let out = dir.join(format!("spilled{ranks}.h5"));
        common::run_ok(
            ranks,
            &smoke,
            &out,
            &[&base[..], &["--set", "output.spike_buffer=0.01"]].concat(),
        );
        assert!(
            spilled(&out) > 1_000_000,
            "{ranks} ranks: {} bytes spilled",
            spilled(&out)
        );
        common::assert_same_results(&memory, &out);
    }
}

/// 16 s of the smoke network on 2 ranks (about 750,000 recorded spikes per rank, 6 MiB as
/// records; held in memory and sorted, 12 MiB): the peak memory with spikes recorded exceeds
/// that without by less than 3 MiB at a 0.25 MiB buffer. Without spikes, with the shipped
/// observables (moments every 1 ms, histograms every 10 ms, input balance in 1 ms bins), the
/// peak at 16 s exceeds that at 4 s by less than 1.5 MiB: their series spill (src/spill.rs).
/// Held in memory they grew by about 5 MiB over those 12 s (the balance alone 256 bytes per
/// 1 ms bin). (Writing the spikes back reads one block of at least 64 neurons at a time, whose
/// spikes grow with model time: that part is bounded by the 3 MiB above, not by this.)
#[test]
fn a_long_recorded_run_stays_in_bounded_memory() {
    let dir = common::scratch("streamed_spikes_memory");
    let smoke = common::repo().join("configs/smoke.toml");
    let mut peaks = Vec::new();
    for (t, spikes) in [(4000, false), (16000, false), (16000, true)] {
        let out = dir.join(format!("run{t}{spikes}.h5"));
        common::run_ok(
            2,
            &smoke,
            &out,
            &[
                "--set",
                &format!("simulation.t_stop={t}"),
                "--set",
                &format!("output.spikes={spikes}"),
                "--set",
                "output.spike_buffer=0.25",
            ],
        );
        if spikes && t == 16000 {
            let f = File::open(&out).unwrap();
            let n = f.dataset("spikes/E/node_ids").unwrap().size();
            assert!(n > 1_000_000, "{n} spikes of E");
            let bins = f.dataset("balance/E/net").unwrap().size();
            assert_eq!(bins, 16000, "input balance bins");
        }
        peaks.push(peak_memory(&out));
    }
    println!(
        "peak memory [MiB] without spikes: 4 s {:.2}, 16 s {:.2}; 16 s with spikes {:.2}",
        peaks[0], peaks[1], peaks[2]
    );
    assert!(
        peaks[2] - peaks[1] < 3.0,
        "recording spikes for 16 s costs {:.2} MiB",
        peaks[2] - peaks[1]
    );
    assert!(
        peaks[1] - peaks[0] < 1.5,
        "the peak grew by {:.2} MiB from 4 s to 16 s",
        peaks[1] - peaks[0]
    );
}

/// A spill file that cannot be created ($TMPDIR missing) loses nothing: each rank warns once and
/// keeps its spikes in memory, and the output equals the run held in memory from the start.
#[test]
fn a_spill_that_fails_keeps_the_spikes_in_memory() {
    let dir = common::scratch("streamed_spikes_failing");
    let smoke = common::repo().join("configs/smoke.toml");
    let memory = dir.join("memory.h5");
    common::run_ok(2, &smoke, &memory, &["--set", "simulation.t_stop=500"]);
    let out = dir.join("fallback.h5");
    let o = common::run_with_timeout(
        {
            let mut c = common::mpirun(
                2,
                &[
                    "run",
                    smoke.to_str().unwrap(),
                    "-o",
                    out.to_str().unwrap(),
                    "--set",
                    "simulation.t_stop=500",
                    "--set",
                    "output.spike_buffer=0.01",
                ],
            );
            c.env("TMPDIR", dir.join("no such directory"));
            c
        },
        std::time::Duration::from_secs(300),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err.matches("cannot create the spikes spill file").count(),
        2,
        "one warning per rank: {err}"
    );
    assert_eq!(spilled(&out), 0);
    common::assert_same_results(&memory, &out);
}
