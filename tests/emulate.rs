//! Emulated ranks (`lapicque run --emulate-ranks P --as-rank r`, src/emulate.rs) and the
//! targeted exchange (`simulation.collective = "all_to_all"`), against real runs: an emulated
//! rank fed the other ranks' spikes of a real P-rank run spikes exactly as rank r of that run
//! did; fed spikes made up at the model's rates it fires at the real run's rate; routing each
//! spike only to the ranks that need it changes no result.

mod common;

use hdf5::File;
use std::path::Path;

/// (gid, timestamp bits) of every spike of the file's populations, the gids offset by each
/// population's first gid in `starts`, sorted.
fn spikes(file: &Path, starts: &[(&str, u64)]) -> Vec<(u64, u64)> {
    let f = File::open(file).unwrap();
    let mut out = Vec::new();
    for &(pop, start) in starts {
        let g = f.group(&format!("spikes/{pop}")).unwrap();
        let ids: Vec<u64> = g.dataset("node_ids").unwrap().read_raw().unwrap();
        let ts: Vec<f64> = g.dataset("timestamps").unwrap().read_raw().unwrap();
        out.extend(ids.iter().zip(&ts).map(|(&i, t)| (start + i, t.to_bits())));
    }
    out.sort_unstable();
    out
}

/// Rank r's gids among n neurons on p ranks, written out as the documented block
/// decomposition (the first n mod p ranks hold one neuron more).
fn block(n: u64, p: u64, r: u64) -> std::ops::Range<u64> {
    let (base, extra) = (n / p, n % p);
    let start = r * base + r.min(extra);
    start..start + base + u64::from(r < extra)
}

fn attr(file: &Path, name: &str) -> u64 {
    File::open(file)
        .unwrap()
        .attr(name)
        .unwrap()
        .read_scalar()
        .unwrap()
}

/// Brunel's network (12,500 neurons, 300 ms) on 2, 3 and 4 real ranks; each rank of each
/// decomposition emulated alone with the other ranks' spikes replayed from the real run's
/// output: its spikes are the real rank's, spike for spike and bit for bit in time.
#[test]
fn an_emulated_rank_fed_a_real_run_spikes_as_that_rank() {
    let dir = common::scratch("emulate_replay");
    let brunel = common::repo().join("configs/brunel.toml");
    let set = ["--set", "simulation.t_stop=300"];
    let starts = [("E", 0), ("I", 10_000)];
    for p in [2u64, 3, 4] {
        let real = dir.join(format!("real{p}.h5"));
        common::run_ok(p as usize, &brunel, &real, &set);
        let all = spikes(&real, &starts);
        for r in 0..p {
            let out = dir.join(format!("emulated{p}-{r}.h5"));
            let (ps, rs) = (p.to_string(), r.to_string());
            let args = [
                &set[..],
                &[
                    "--emulate-ranks",
                    &ps,
                    "--as-rank",
                    &rs,
                    "--emulate-replay",
                    real.to_str().unwrap(),
                ],
            ]
            .concat();
            common::run_ok(1, &brunel, &out, &args);
            assert_eq!(
                (attr(&out, "emulated_rank"), attr(&out, "emulated_ranks")),
                (r, p)
            );
            let mine = block(12_500, p, r);
            let want: Vec<_> = all
                .iter()
                .filter(|s| mine.contains(&s.0))
                .copied()
                .collect();
            let got = spikes(&out, &starts);
            assert!(
                want.len() > 10_000,
                "{p} ranks, rank {r}: {} spikes",
                want.len()
            );
            assert!(
                got.iter().all(|s| mine.contains(&s.0)),
                "only its own neurons"
            );
            assert_eq!(got, want, "{p} ranks, rank {r}");
        }
    }
}

/// The made-up spikes arrive at the rates asked for: a feed-forward network (A -> B, 100
/// synapses per B neuron) on 2 emulated ranks, rank 1 holding all of B, so that every event it
/// delivers comes from a made-up spike. Over 1 s at 20 Hz its 2,000 neurons receive
/// 2,000 x 100 x 20 = 4e6 events in expectation, with a standard deviation of about 2e4 (each
/// A spike reaches its ~100 local synapses at once); without `--emulate-rates` the limit's
/// stationary rate of A is used and said in the banner: its Siegert rate (mu = 15 mV, sigma_V
/// = 5 mV, about 9.46 Hz), computed here independently.
#[test]
fn made_up_spikes_arrive_at_the_rates_asked_for() {
    let dir = common::scratch("emulate_rates");
    let config = dir.join("ff.toml");
    std::fs::write(
        &config,
        "[simulation]\nt_stop = 1000.0\n[population.A]\nsize = 2000\ntau_m = 20.0\nv_reset = 10.0\n\
         t_ref = 2.0\ni_e = 0.75\nsigma = 1.118033988749895\n\
         [population.B]\nsize = 2000\n[projection.AB]\nsource = \"A\"\ntarget = \"B\"\n\
         rule = \"fixed_indegree\"\nindegree = 100\nweight = 0.1\ndelay = 1.0\n",
    )
    .unwrap();
    let events = |file: &Path| -> f64 {
        let v: Vec<f64> = File::open(file)
            .unwrap()
            .dataset("timers/events")
            .unwrap()
            .read_raw()
            .unwrap();
        v.iter().sum()
    };
    let out = dir.join("given.h5");
    let args = [
        "--emulate-ranks",
        "2",
        "--as-rank",
        "1",
        "--emulate-rates",
        "A=20,B=3",
    ];
    common::run_ok(1, &config, &out, &args);
    let e = events(&out);
    assert!(
        (e - 4e6).abs() < 6.0 * 2e4,
        "{e} events, expected 4e6 +- 2e4"
    );

    // The default: the limit's stationary rate of A, printed with the run's banner.
    let out = dir.join("limit.h5");
    let mut args = vec!["run", config.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend(["--emulate-ranks", "2", "--as-rank", "1"]);
    let o = common::run_with_timeout(
        common::mpirun(1, &args),
        std::time::Duration::from_secs(300),
    );
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let banner = err.lines().find(|l| l.contains("emulated")).unwrap();
    let rate: f64 = banner
        .split("A ")
        .nth(1)
        .and_then(|s| s.split(" Hz").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{banner}"));
    let siegert = common::siegert(15.0, 5.0, 20.0, 20.0, 10.0, 2.0);
    assert!(banner.contains("stationary"), "{banner}");
    assert!(
        (rate - siegert).abs() < 1e-3,
        "{rate} vs Siegert {siegert} Hz"
    );
    let want = 2000.0 * 100.0 * rate;
    let e = events(&out);
    assert!(
        (e - want).abs() < 6.0 * 2e4 * (rate / 20.0).sqrt(),
        "{e} vs {want} ({banner})"
    );
}

/// The targeted exchange gives the all-gather's results, dataset by dataset, on 1 to 4 ranks:
/// for a network with spatial locality (a torus with a Gaussian kernel, where most spikes are
/// sent to few ranks), and for labels (spikes carry efficacies) with aggregate coupling.
#[test]
fn the_targeted_exchange_changes_no_result() {
    let dir = common::scratch("emulate_targeted");
    let cases = [
        (
            "examples/local_torus.toml",
            &[
                "--set",
                "simulation.t_stop=100",
                "--set",
                "population.E.size=1600",
                "--set",
                "population.I.size=400",
            ][..],
        ),
        (
            "configs/multi_agent_labels.toml",
            &["--set", "simulation.t_stop=100"][..],
        ),
    ];
    for (config, set) in cases {
        let path = common::repo().join(config);
        let name = path.file_stem().unwrap().to_str().unwrap();
        let gather = dir.join(format!("{name}-gather.h5"));
        let a2a = ["--set", "simulation.collective=\"all_to_all\""];
        let ag = ["--set", "simulation.collective=\"all_gather\""];
        common::run_ok(2, &path, &gather, &[set, &ag[..]].concat());
        for ranks in 1..=4 {
            let out = dir.join(format!("{name}-a2a{ranks}.h5"));
            common::run_ok(ranks, &path, &out, &[set, &a2a[..]].concat());
            common::assert_same_results(&gather, &out);
        }
    }
}

/// An emulated run is refused, with a one-line error naming the key and value and exit code
/// 2, where it cannot hold: a restart, periodic checkpoints, a replay of spikes that carry
/// efficacies, a replay file that is not a run's output. Nothing is written.
#[test]
fn emulated_runs_refuse_what_they_cannot_do() {
    let dir = common::scratch("emulate_refused");
    let brunel = common::repo().join("configs/brunel.toml");
    let labels = common::repo().join("configs/multi_agent_labels.toml");
    let missing = dir.join("missing.h5");
    let missing = missing.to_str().unwrap();
    let cases: [(&Path, Vec<&str>, &str); 4] = [
        (
            &brunel,
            vec!["--emulate-ranks", "4", "--restart", missing],
            "--restart",
        ),
        (
            &brunel,
            vec!["--emulate-ranks", "4", "--set", "checkpoint.every=10"],
            "checkpoint.every",
        ),
        (
            &labels,
            vec!["--emulate-ranks", "4", "--emulate-replay", missing],
            "--emulate-replay",
        ),
        (
            &brunel,
            vec!["--emulate-ranks", "4", "--emulate-replay", missing],
            "--emulate-replay",
        ),
    ];
    for (config, extra, key) in cases {
        let out = dir.join("out.h5");
        let mut args = vec!["run", config.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend(extra.iter().copied());
        args.extend(["--set", "simulation.t_stop=10"]);
        let o = common::run_with_timeout(
            common::mpirun(1, &args),
            std::time::Duration::from_secs(120),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(errors.len(), 1, "{extra:?}: {err}");
        assert!(errors[0].contains(key), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?}");
    }
}
