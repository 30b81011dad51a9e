//! The observables of a run checked against independent computations from the same file:
//! spike statistics from the recorded spikes and from snapshots of every neuron, moments from
//! snapshots, the input balance against the mean-field identity `rate x in-degree x weight`,
//! a recorded subset of spikes against the full record, and recorded neurons against the closed
//! form of a noise-free LIF and against the snapshots.

mod common;

use hdf5::File;
use std::path::Path;

const T_STOP: f64 = 1000.0;
const START: f64 = 100.0;

fn read(f: &File, name: &str) -> Vec<f64> {
    f.dataset(name).unwrap().read_raw::<f64>().unwrap()
}

fn stat(f: &File, pop: &str, name: &str) -> f64 {
    let a = f
        .group(&format!("statistics/{pop}"))
        .unwrap()
        .attr(name)
        .unwrap();
    if name == "cv_neurons" {
        a.read_scalar::<u64>().unwrap() as f64
    } else {
        a.read_scalar::<f64>().unwrap()
    }
}

fn run(out: &Path, extra: &[&str]) {
    let mut args = vec![
        "--set",
        "simulation.t_stop=1000",
        "--set",
        "observables.statistics.start=100",
        "--set",
        "observables.snapshots.every=1",
    ];
    args.extend_from_slice(extra);
    common::run_ok(2, &common::repo().join("configs/smoke.toml"), out, &args);
}

/// Population variance.
fn var(xs: &[f64]) -> f64 {
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64
}

/// The file's Fano factor of `pop` equals variance / mean of the window counts `counts`.
fn assert_fano(f: &File, pop: &str, counts: &[f64]) {
    let fano = var(counts) / (counts.iter().sum::<f64>() / counts.len() as f64);
    let got = stat(f, pop, "fano_factor");
    assert!(
        (got - fano).abs() < 1e-9 * fano,
        "{pop}: fano {got} vs {fano}"
    );
}

#[test]
fn observables_agree_with_independent_computations() {
    let dir = common::scratch("observables");
    let out = dir.join("smoke.h5");
    run(&out, &[]);
    let f = File::open(&out).unwrap();
    let n_e = 1600;
    let snap_t = read(&f, "snapshots/time");
    let snap_v = read(&f, "snapshots/v");
    let n = 2000;
    assert_eq!(
        snap_t.len(),
        (T_STOP as usize) + 1,
        "a snapshot every ms from 0"
    );
    assert_eq!(snap_v.len(), snap_t.len() * n);
    // The last snapshot is the final state.
    assert_eq!(&snap_v[(snap_t.len() - 1) * n..], &read(&f, "state/v")[..]);

    for (pop, range, k_e, k_i) in [("E", 0..n_e, 160.0, 40.0), ("I", n_e..n, 160.0, 40.0)] {
        let size = range.len();
        // Moments equal the moments of the snapshots (same sample times, every ms); the
        // fixed-point sums round V and V^2 to multiples of 2^-32.
        let means = read(&f, &format!("moments/{pop}/mean"));
        let vars = read(&f, &format!("moments/{pop}/variance"));
        assert_eq!(means.len(), snap_t.len());
        for (s, (m, v)) in means.iter().zip(&vars).enumerate() {
            let row = &snap_v[s * n + range.start..s * n + range.end];
            let mean = row.iter().sum::<f64>() / size as f64;
            assert!((m - mean).abs() < 1e-8, "{pop} mean at sample {s}");
            assert!((v - var(row)).abs() < 1e-6, "{pop} variance at sample {s}");
        }

        // Histograms are densities: each row integrates to the fraction inside the range.
        let edges = read(&f, "histograms/edges");
        let width = edges[1] - edges[0];
        let hist = read(&f, &format!("histograms/{pop}"));
        let bins = edges.len() - 1;
        let h_times = read(&f, "histograms/time");
        for (s, row) in hist.chunks(bins).enumerate() {
            let k = (h_times[s] / 1.0).round() as usize;
            let snap = &snap_v[k * n + range.start..k * n + range.end];
            let inside = snap
                .iter()
                .filter(|&&x| x >= edges[0] && x < edges[bins])
                .count() as f64
                / size as f64;
            let mass: f64 = row.iter().map(|d| d * width).sum();
            assert!(
                (mass - inside).abs() < 1e-12,
                "{pop}: mass {mass} vs {inside}"
            );
        }

        // Golomb's chi from the snapshots inside the statistics window (t >= START).
        let first = START as usize;
        let rows: Vec<&[f64]> = (first..snap_t.len())
            .map(|s| &snap_v[s * n + range.start..s * n + range.end])
            .collect();
        let pop_mean: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().sum::<f64>() / size as f64)
            .collect();
        let mean_var = (0..size)
            .map(|i| var(&rows.iter().map(|r| r[i]).collect::<Vec<_>>()))
            .sum::<f64>()
            / size as f64;
        let chi = (var(&pop_mean) / mean_var).sqrt();
        assert!(
            (stat(&f, pop, "chi") - chi).abs() < 1e-6 * chi,
            "{pop}: chi {} vs {chi} from snapshots",
            stat(&f, pop, "chi")
        );

        // CV of inter-spike intervals from the recorded spikes in (START, T_STOP].
        let g = f.group(&format!("spikes/{pop}")).unwrap();
        let ids = g.dataset("node_ids").unwrap().read_raw::<u64>().unwrap();
        let ts = g.dataset("timestamps").unwrap().read_raw::<f64>().unwrap();
        let (mut sum, mut count) = (0.0, 0);
        let mut i = 0;
        while i < ids.len() {
            let j = i + ids[i..].partition_point(|&x| x == ids[i]);
            let t: Vec<f64> = ts[i..j].iter().copied().filter(|&t| t > START).collect();
            if t.len() >= 3 {
                let isi: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
                let m = isi.iter().sum::<f64>() / isi.len() as f64;
                let s2 = var(&isi) * isi.len() as f64 / (isi.len() - 1) as f64;
                sum += s2.sqrt() / m;
                count += 1;
            }
            i = j;
        }
        assert!(count > size / 2, "{pop}: too few neurons with intervals");
        assert_eq!(stat(&f, pop, "cv_neurons"), count as f64);
        let cv = sum / count as f64;
        assert!(
            (stat(&f, pop, "cv_isi") - cv).abs() < 1e-6,
            "{pop}: cv {} vs {cv} from spikes",
            stat(&f, pop, "cv_isi")
        );

        // Fano factor of the population count in 10 ms windows, from the rate series: 1 ms
        // bins, the last one closed at t_stop (11 steps' spikes).
        let rates = read(&f, &format!("rates/{pop}"));
        let last = rates.len() - 1;
        let spikes: Vec<f64> = (0..rates.len())
            .map(|b| rates[b] * size as f64 * if b == last { 1.1 } else { 1.0 } / 1000.0)
            .collect();
        let counts: Vec<f64> = spikes[START as usize..]
            .chunks_exact(10)
            .map(|w| w.iter().sum())
            .collect();
        assert_fano(&f, pop, &counts);

        // Input balance: a spike of a neuron of population q reaches on average K_pq targets
        // per target neuron of p (fixed in-degree: N_p K_pq synapses from N_q sources), so the
        // mean input is rate_q x K_pq x w_pq. Up to the spread of out-degrees weighted by the
        // neurons' rates, a fraction of a percent here.
        let rate_e = common::mean_rate(&out, "E") / 1000.0;
        let rate_i = common::mean_rate(&out, "I") / 1000.0;
        let mean = |name: &str| {
            let x = read(&f, &format!("balance/{pop}/{name}"));
            x.iter().sum::<f64>() / x.len() as f64
        };
        let (exc, inh) = (rate_e * k_e * 0.25, rate_i * k_i * -1.25);
        assert!(
            (mean("excitatory") - exc).abs() < 0.02 * exc,
            "{pop}: {}",
            mean("excitatory")
        );
        assert!(
            (mean("inhibitory") - inh).abs() < 0.02 * -inh,
            "{pop}: {}",
            mean("inhibitory")
        );
        assert!((mean("external") - 2.0).abs() < 1e-12);
        let net = mean("excitatory") + mean("inhibitory") + mean("external");
        assert!((mean("net") - net).abs() < 1e-9);
    }

    // A subset of recorded spikes is exactly that part of the full record.
    let part = dir.join("part.h5");
    run(&part, &["--set", "population.E.record_spikes=25"]);
    let g = File::open(&part).unwrap();
    let full_ids = f
        .dataset("spikes/E/node_ids")
        .unwrap()
        .read_raw::<u64>()
        .unwrap();
    let full_ts = read(&f, "spikes/E/timestamps");
    let keep = full_ids.partition_point(|&i| i < 25);
    assert!(keep > 100);
    assert_eq!(
        g.dataset("spikes/E/node_ids")
            .unwrap()
            .read_raw::<u64>()
            .unwrap(),
        full_ids[..keep]
    );
    assert_eq!(read(&g, "spikes/E/timestamps"), full_ts[..keep]);
    assert_eq!(
        read(&g, "rates/E"),
        read(&f, "rates/E"),
        "rates count every spike"
    );
}

/// The extended density f(t, v, xi) and the label histograms at the last sample (t_stop)
/// equal the histograms computed here from the final state (`/state/v`, `/state/xi`,
/// `/state/lambda`) by direct counting; the marginal of the density over xi is the density of
/// V, and each class's label density integrates to one. Run on 3 ranks, so the counts pass
/// through the reduction.
#[test]
fn extended_density_and_label_histograms_match_the_final_state() {
    let dir = common::scratch("density");
    let out = dir.join("density.h5");
    let config = common::repo().join("configs/multi_agent_labels.toml");
    common::run_ok(
        3,
        &config,
        &out,
        &[
            "--set",
            "simulation.t_stop=200",
            "--set",
            "observables.histogram.xi_bins=5",
            "--set",
            "observables.histogram.label_bins=10",
            "--set",
            "population.E.placement=\"random\"",
        ],
    );
    let f = File::open(&out).unwrap();
    let edges = read(&f, "histograms/edges");
    let (bins, width) = (edges.len() - 1, edges[1] - edges[0]);
    let v = read(&f, "state/v");
    let xi = read(&f, "state/xi");
    let lambda = read(&f, "state/lambda");
    let n_e = 1600;
    let d = read(&f, "densities/E");
    let last = &d[d.len() - 5 * bins..];
    let mut expect = vec![0.0; 5 * bins];
    for i in 0..n_e {
        let b = ((v[i] - edges[0]) / width).floor();
        if b >= 0.0 && (b as usize) < bins {
            let x = ((xi[2 * i] * 5.0) as usize).min(4);
            expect[x * bins + b as usize] += 5.0 / (n_e as f64 * width);
        }
    }
    for (k, (a, b)) in last.iter().zip(&expect).enumerate() {
        assert!(
            (a - b).abs() < 1e-12,
            "density cell {k}: {a} vs {b} from /state"
        );
    }
    let h = read(&f, "histograms/E");
    let marginal_last = &h[h.len() - bins..];
    for b in 0..bins {
        let m: f64 = (0..5).map(|x| last[x * bins + b]).sum::<f64>() / 5.0;
        assert!((m - marginal_last[b]).abs() < 1e-12, "marginal bin {b}");
    }
    assert!(
        expect.iter().filter(|&&x| x > 0.0).count() > 20,
        "a weak test"
    );

    let l = read(&f, "labels/E");
    let last = &l[l.len() - 2 * 10..];
    let k_max = lambda.len() / v.len();
    for c in 0..2 {
        let mut counts = [0.0; 10];
        for i in 0..n_e {
            counts[((lambda[i * k_max + c] * 10.0) as usize).min(9)] += 10.0 / n_e as f64;
        }
        for b in 0..10 {
            let got = last[c * 10 + b];
            assert!(
                (got - counts[b]).abs() < 1e-12,
                "class {c} bin {b}: {got} vs {}",
                counts[b]
            );
        }
        let total: f64 = last[c * 10..(c + 1) * 10].iter().sum::<f64>() / 10.0;
        assert!(
            (total - 1.0).abs() < 1e-12,
            "class {c} integrates to {total}"
        );
    }
}

/// The balance diagnostics include aggregate input: for population A under chemical coupling
/// from B (`s = 1`: drift `J1 n_B (v_rev - V)`, positive while V < v_rev) and a negative
/// constant current from B (`J2 n_B`, J2 < 0), the excitatory input of each balance bin equals
/// `J1 n_B (v_rev - m)`, m the mean of A's potentials at the starts of the bin's steps (from
/// the moments, sampled every step), and the inhibitory input equals `J2 n_B` (both per
/// neuron and averaged over the bin), to round-off of the fixed-point sums.
#[test]
fn balance_includes_aggregate_input() {
    use lapicque::comm::SerialComm;
    use lapicque::config::Config;
    use lapicque::observables::balance::Balance;
    use lapicque::observables::moments::Moments;
    use lapicque::progress::Progress;
    use lapicque::simulation;
    let text = "[simulation]\nt_stop = 50.0\n[observables.moments]\nevery = 0.1\n\
        [observables.balance]\nevery = 10.0\n[observables.histogram]\nevery = 0.0\n\
        [population.A]\nsize = 50\nmodel = \"linear\"\na = 0.5\nc = 0.1\nsigma = 1.0\nspike = \"none\"\nv_th = 1000.0\nv_init_min = 0.0\nv_init_max = 5.0\n\
        [population.B]\nsize = 30\nmodel = \"perfect\"\nspike = \"none\"\nv_th = 1000.0\n\
        [aggregate.chem]\nsource = \"B\"\ntarget = \"A\"\nkind = \"chemical\"\nj0 = 0.02\nreversal = 20.0\ns = { kind = \"one\" }\n\
        [aggregate.cur]\nsource = \"B\"\ntarget = \"A\"\nkind = \"current\"\nj0 = -0.05\ns = { kind = \"one\" }\n";
    let config = Config::from_toml(text, &[]).unwrap();
    let control = simulation::Control::uninterrupted(Path::new("agg_balance.checkpoint.h5"));
    let r = simulation::run(&config, &SerialComm, &mut Progress::silent(), &control).unwrap();
    let rec = r.observers.get::<Moments>().to_vecs();
    // J = j0 n^(alpha - 1) with alpha = 0: J n_B = j0.
    let (j1n, j2n) = (0.02, -0.05);
    let balance = r.observers.get::<Balance>();
    let exc = balance.mean_aggregate_input(0, false);
    let inh = balance.mean_aggregate_input(0, true);
    assert_eq!(exc.len(), 5);
    for bin in 0..5 {
        // Boundaries 100 bin .. 100 bin + 99 (the step starts), moments every step.
        let m: f64 = rec.means[0][100 * bin..100 * bin + 100].iter().sum::<f64>() / 100.0;
        let want = j1n * (20.0 - m);
        assert!(
            (exc[bin] - want).abs() < 1e-7,
            "bin {bin}: {} vs {want}",
            exc[bin]
        );
        assert!(
            (inh[bin] - j2n).abs() < 1e-7,
            "bin {bin}: {} vs {j2n}",
            inh[bin]
        );
    }
    assert!(balance
        .mean_aggregate_input(1, false)
        .iter()
        .all(|&x| x == 0.0));
}

/// Rates on their own schedule: bins of 2 ms from 100 to 955 ms (the last one 1 ms long). Each
/// bin's rate equals the count of recorded spike timestamps in it, binned as numpy.histogram bins
/// them with the bin edges (the last bin closed), divided by size x the time its steps' ends
/// cover, nothing is counted outside the window, and the Fano
/// factor counts the whole 10 ms windows inside both the rates' and the statistics' windows.
#[test]
fn rates_follow_their_own_schedule() {
    let dir = common::scratch("rates_schedule");
    let out = dir.join("smoke.h5");
    run(
        &out,
        &[
            "--set",
            "observables.rates.start=100",
            "--set",
            "observables.rates.stop=955",
            "--set",
            "observables.rates.every=2",
            "--set",
            "observables.statistics.start=50",
        ],
    );
    let f = File::open(&out).unwrap();
    let dt = 0.1;
    let time = read(&f, "rates/time");
    let expect: Vec<f64> = (0..428).map(|b| 100.0 + 2.0 * b as f64).collect();
    assert_eq!(time.len(), expect.len());
    for (t, e) in time.iter().zip(&expect) {
        assert_eq!(*t, *e, "bin start");
    }
    let bin_width = f
        .group("rates")
        .unwrap()
        .attr("bin_width")
        .unwrap()
        .read_scalar::<f64>()
        .unwrap();
    assert_eq!(bin_width, 2.0);
    // The bins numpy.histogram makes of the timestamps: [e_k, e_k+1), the last one closed.
    let mut edges = time.clone();
    edges.push(955.0);
    for (pop, size) in [("E", 1600.0), ("I", 400.0)] {
        let ts = read(&f, &format!("spikes/{pop}/timestamps"));
        let mut counts = vec![0.0; time.len()];
        for t in ts {
            // Timestamps are the doubles nearest to the step boundaries, free of float noise.
            assert_eq!(t, (t / dt).round() / 10.0, "timestamp {t}");
            let last = edges.len() - 2;
            let bin = (0..=last)
                .find(|&k| edges[k] <= t && (t < edges[k + 1] || k == last && t == edges[k + 1]));
            if let Some(k) = bin {
                counts[k] += 1.0;
            }
        }
        let rates = read(&f, &format!("rates/{pop}"));
        for (b, (r, c)) in rates.iter().zip(&counts).enumerate() {
            // A bin holds the spikes of its steps' ends: 20 steps, and the closed last bin
            // [954, 955] the 11 of 954.0, 954.1, ..., 955.0.
            let len = if b + 1 == time.len() { 1.1 } else { 2.0 };
            let want = c / (size * len) * 1000.0;
            assert!(
                (r - want).abs() < 1e-9 * want.max(1.0),
                "{pop} bin {b}: {r} vs {want}"
            );
        }
        assert!(counts.iter().sum::<f64>() > 1000.0, "{pop}: too few spikes");
        // Fano factor: windows of 5 whole bins from 100 ms, 85 of them (to 950 ms).
        let windows: Vec<f64> = counts[..425]
            .chunks_exact(5)
            .map(|w| w.iter().sum())
            .collect();
        assert_fano(&f, pop, &windows);
    }

    // A statistics window after the rates' window holds no whole Fano window: NaN, not a
    // failure, and the other statistics are still computed.
    let late = dir.join("late.h5");
    run(
        &late,
        &[
            "--set",
            "observables.rates.stop=100",
            "--set",
            "observables.statistics.start=150",
        ],
    );
    let f = File::open(&late).unwrap();
    assert!(stat(&f, "E", "fano_factor").is_nan());
    assert!(stat(&f, "E", "cv_isi") > 0.0 && stat(&f, "E", "chi") > 0.0);
}

/// The input balance with per-synapse weights of both signs (random weights times a cosine
/// kernel 0.2 + cos(2 pi (x_t - x_s))), constant weights and label efficacies equals the
/// input recomputed here from the recorded spikes and the synapses the network generator lists
/// per target: for each spike of step n (timestamp (n + 1) dt) and each of its synapses onto a
/// neuron of population p, weight (as stored, f32) x the source's efficacy (E: labels with
/// efficacy 1.5 in both classes, so 1.5 whatever the label; I: 1), counted as excitatory or
/// inhibitory by the sign of that product, per 2 ms bin, / (size x 2 ms). Run on 3 ranks.
/// Tolerance: the file's sums are exact up to cutting each weight and efficacy to a multiple of
/// 2^-32, a relative 1e-9 of the summed magnitudes covers that and f64 rounding here.
#[test]
fn balance_is_exact_with_random_weights_and_efficacies() {
    let text = r#"
[simulation]
dt = 0.1
t_stop = 200.0
seed = 5
[observables.balance]
every = 2.0
[population.E]
size = 120
placement = "even"
i_e = 1.2
sigma = 3.0
v_init_min = 0.0
v_init_max = 20.0
[population.E.labels]
efficacy = [1.5, 1.5]
init = [0.5, 0.5]
rates = [[0.0, 0.02], [0.01, 0.0]]
[population.I]
size = 40
i_e = 1.2
sigma = 3.0
v_init_min = 0.0
v_init_max = 20.0
[projection.EE]
source = "E"
target = "E"
rule = "fixed_indegree"
indegree = 20
weight = 0.2
weight_dist = "normal"
weight_sd = 0.05
kernel = { kind = "cosine", a = 0.2, b = 1.0 }
kernel_use = "weight"
delay = 1.0
[projection.EI]
source = "E"
target = "I"
rule = "bernoulli"
p = 0.2
weight = 0.2
delay = 1.0
[projection.IE]
source = "I"
target = "E"
rule = "fixed_indegree"
indegree = 10
weight = -0.5
delay = 1.0
[projection.II]
source = "I"
target = "I"
rule = "bernoulli"
p = 0.3
weight = -0.4
delay = 1.0
"#;
    let dir = common::scratch("balance_exact");
    let path = dir.join("net.toml");
    std::fs::write(&path, text).unwrap();
    let out = dir.join("net.h5");
    common::run_ok(3, &path, &out, &[]);
    let config = lapicque::config::Config::from_toml(text, &[]).unwrap();
    let f = File::open(&out).unwrap();
    let dt = 0.1;
    let (n_bins, bin_steps) = (100, 20);

    // Outgoing synapses of every gid: (target population, weight x source efficacy).
    let n = config.n_neurons() as usize;
    let mut out_syn: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    let mut syn = lapicque::network::Synapses::default();
    for (k, proj) in config.projections.iter().enumerate() {
        let tgt = &config.populations[proj.target];
        let src = &config.populations[proj.source];
        let efficacy = if src.name == "E" { 1.5 } else { 1.0 };
        for gid in tgt.gid_start..tgt.gid_start + tgt.size {
            lapicque::network::synapses_of(&config, k, gid, &mut syn).unwrap();
            for (i, &s) in syn.sources.iter().enumerate() {
                let w = syn
                    .weights
                    .get(i)
                    .map_or(proj.weight, |&w| f64::from(w as f32));
                out_syn[(src.gid_start + u64::from(s)) as usize].push((proj.target, w * efficacy));
            }
        }
    }
    // Expected sums per (population, bin, sign) and the summed magnitudes.
    let mut want = vec![[[0.0f64; 2]; 100]; 2];
    let mut scale = vec![[0.0f64; 100]; 2];
    let mut negatives = 0;
    for (pop, start) in [("E", 0u64), ("I", 120)] {
        let g = f.group(&format!("spikes/{pop}")).unwrap();
        let ids = g.dataset("node_ids").unwrap().read_raw::<u64>().unwrap();
        let ts = read(&f, &format!("spikes/{pop}/timestamps"));
        for (id, t) in ids.iter().zip(ts) {
            let step = (t / dt).round() as usize - 1;
            for &(p, x) in &out_syn[(start + id) as usize] {
                want[p][step / bin_steps][usize::from(x < 0.0)] += x;
                scale[p][step / bin_steps] += x.abs();
                negatives += usize::from(x < 0.0 && p == 0 && start == 0);
            }
        }
    }
    assert!(
        negatives > 100,
        "EE weights of both signs must occur: {negatives}"
    );
    for (p, (pop, size)) in [("E", 120.0), ("I", 40.0)].into_iter().enumerate() {
        let exc = read(&f, &format!("balance/{pop}/excitatory"));
        let inh = read(&f, &format!("balance/{pop}/inhibitory"));
        assert_eq!(exc.len(), n_bins);
        for b in 0..n_bins {
            let norm = size * bin_steps as f64 * dt;
            let tol = 1e-9 * scale[p][b] / norm + 1e-12;
            let (we, wi) = (want[p][b][0] / norm, want[p][b][1] / norm);
            assert!(
                (exc[b] - we).abs() <= tol,
                "{pop} bin {b}: excitatory {} vs {we}",
                exc[b]
            );
            assert!(
                (inh[b] - wi).abs() <= tol,
                "{pop} bin {b}: inhibitory {} vs {wi}",
                inh[b]
            );
        }
        assert!(exc.iter().sum::<f64>() > 0.0 && inh.iter().sum::<f64>() < 0.0);
    }
}

/// Recorded neurons (NEST's multimeter) on 3 ranks, the recorded ones spread over all three:
/// noise-free LIF neurons driven above threshold by a constant current relax along the closed
/// form `V(t) = v_inf + (V(0) - v_inf) exp(-t / tau_m)` until the first step whose end lies
/// above threshold, where they are reset; every recorded value equals the same neuron's
/// snapshot at the same time, and the node ids and units are as documented.
#[test]
fn recorded_neurons_follow_the_closed_form_and_equal_the_snapshots() {
    let dir = common::scratch("record");
    let config = dir.join("lif.toml");
    std::fs::write(
        &config,
        "[simulation]\ndt = 0.1\nt_stop = 30.0\nseed = 7\n\
         [population.A]\nsize = 30\ntau_m = 10.0\ne_l = 0.0\ni_e = 2.5\nv_th = 20.0\n\
         v_reset = 5.0\nt_ref = 2.0\nsigma = 0.0\nv_init_min = 0.0\nv_init_max = 19.0\n\
         [observables.snapshots]\nevery = 0.1\n\
         [observables.record]\nevery = 0.1\nvariables = [\"v\", \"refractory_steps\"]\n\
         [observables.record.neurons]\nA = [29, 0, 10, 9, 20, 19]\n",
    )
    .unwrap();
    let out = dir.join("out.h5");
    common::run_ok(3, &config, &out, &[]);
    let f = File::open(&out).unwrap();
    let ids: Vec<u64> = f.dataset("record/A/node_ids").unwrap().read_raw().unwrap();
    assert_eq!(ids, [0, 9, 10, 19, 20, 29]);
    let t = read(&f, "record/time");
    assert_eq!(t.len(), 301);
    let v = f.dataset("record/A/v").unwrap();
    assert_eq!(v.shape(), [301, 6]);
    let units: hdf5::types::VarLenUnicode = v.attr("units").unwrap().read_scalar().unwrap();
    assert_eq!(units.as_str(), "mV");
    let v = v.read_2d::<f64>().unwrap();
    let r = f
        .dataset("record/A/refractory_steps")
        .unwrap()
        .read_2d::<u32>()
        .unwrap();
    let snap_v = f.dataset("snapshots/v").unwrap().read_2d::<f64>().unwrap();
    let snap_r = f
        .dataset("snapshots/refractory_steps")
        .unwrap()
        .read_2d::<u32>()
        .unwrap();
    assert_eq!(read(&f, "snapshots/time"), t);
    let (tau, v_inf, v_th) = (10.0f64, 25.0f64, 20.0);
    for (j, &id) in ids.iter().enumerate() {
        for k in 0..t.len() {
            assert_eq!(v[[k, j]].to_bits(), snap_v[[k, id as usize]].to_bits());
            assert_eq!(r[[k, j]], snap_r[[k, id as usize]]);
        }
        let v0 = v[[0, j]];
        let closed = |k: usize| v_inf + (v0 - v_inf) * (-(k as f64) * 0.1 / tau).exp();
        let cross = (1..t.len()).find(|&k| closed(k) >= v_th).unwrap();
        for k in 0..cross {
            assert!(
                (v[[k, j]] - closed(k)).abs() < 1e-9,
                "neuron {id} at {} ms: {} vs closed form {}",
                t[k],
                v[[k, j]],
                closed(k)
            );
        }
        assert_eq!(v[[cross, j]], 5.0, "neuron {id} resets at step {cross}");
        assert_eq!(
            r[[cross, j]],
            20,
            "neuron {id} is refractory for t_ref / dt steps"
        );
    }
}

/// A NEST-style population (E_L = V_reset = -70 mV, V_th = -55 mV) gets a histogram range from
/// its own potentials, [-85, -55] mV, that holds its neurons, without a warning; a range that
/// misses them (the old default [-20, 20] mV, set by hand) is run but warned about, naming the
/// population and the fraction held.
#[test]
fn histogram_range_follows_the_potentials_and_warns_when_it_misses() {
    let dir = common::scratch("histogram_range");
    let config = dir.join("nest.toml");
    std::fs::write(
        &config,
        "[simulation]\nt_stop = 100.0\n\
         [population.E]\nsize = 200\ne_l = -70.0\nv_reset = -70.0\nv_th = -55.0\ntau_m = 10.0\n\
         i_e = 1.2\nsigma = 3.0\nv_init_min = -70.0\nv_init_max = -60.0\n",
    )
    .unwrap();
    let run = |out: &Path, sets: &[&str]| {
        let mut args = vec!["run", config.to_str().unwrap(), "-o", out.to_str().unwrap()];
        for s in sets {
            args.extend(["--set", s]);
        }
        let o = common::mpirun(2, &args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let out = dir.join("default.h5");
    let err = run(&out, &[]);
    assert!(!err.contains("warning"), "{err}");
    let f = File::open(&out).unwrap();
    let edges = read(&f, "histograms/edges");
    assert_eq!((edges[0], *edges.last().unwrap()), (-85.0, -55.0));
    let h = read(&f, "histograms/E");
    let bins = edges.len() - 1;
    let width = 30.0 / bins as f64;
    let held: Vec<f64> = h
        .chunks(bins)
        .map(|r| r.iter().sum::<f64>() * width)
        .collect();
    assert!(held.iter().all(|&m| m > 0.9), "{held:?}");

    let off = dir.join("off.h5");
    let err = run(
        &off,
        &[
            "observables.histogram.v_min=-20",
            "observables.histogram.v_max=20",
        ],
    );
    assert!(
        err.contains(
            "lapicque: warning: observables.histogram: [-20, 20) mV held 0.0% of population E on average"
        ),
        "{err}"
    );
}
