//! The HDF5 output layout (documented in `docs/output.md`) and its collective writer.
//!
//! This is the one place that knows dataset names. All ranks create every group, dataset and
//! attribute together (HDF5 metadata operations are collective) with identical arguments;
//! replicated data (reduced observables) is written by rank 0 alone, per-neuron data by each
//! rank into its own slab. The file is written as `<path>.partial` and renamed to `<path>` only
//! after it is complete and closed on every rank.

use crate::comm::Comm;
use crate::config::Config;
use crate::h5::{attr, attr_str, dataset, replicated, write_file, RawWrites};
use crate::state::{RunResult, Timers};
use crate::Error;
use hdf5::{File, Group, H5Type, Location};
use std::path::Path;

pub const FORMAT_VERSION: u32 = 1;

/// SONATA's `sorting` attribute of a spike population: an HDF5 enum over `u8`.
#[derive(H5Type, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(non_camel_case_types)]
pub enum Sorting {
    none = 0,
    by_id = 1,
    by_time = 2,
}

/// Provenance that is not in the configuration.
pub struct Provenance {
    pub started: String,
    pub finished: String,
    pub wall_time: f64,
    /// When writing the output began: the `output` timer runs from here to the write of the
    /// timers themselves, which come last.
    pub output_start: std::time::Instant,
}

/// Writes the whole output of a run to `path.partial`, then renames it to `path`.
pub fn write(
    path: &Path,
    config: &Config,
    comm: &dyn Comm,
    run: &RunResult,
    prov: &Provenance,
) -> Result<(), Error> {
    write_file(path, comm, |file, w| {
        write_contents(file, config, comm, run, prov, w)
    })
}

fn write_contents(
    file: &File,
    config: &Config,
    comm: &dyn Comm,
    run: &RunResult,
    prov: &Provenance,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let rank = comm.rank();
    let n_ranks = comm.size();
    let n_synapses: u64 = comm.all_gather_u64(run.n_synapses).iter().sum();
    let (maj, min, rel) = hdf5::library_version();
    let root: &Location = file;
    attr_str(root, "format", "lapicque")?;
    attr(root, "format_version", FORMAT_VERSION)?;
    attr_str(root, "lapicque_version", env!("CARGO_PKG_VERSION"))?;
    attr_str(root, "git_commit", crate::GIT_COMMIT)?;
    attr_str(root, "config", &config.resolved_toml())?;
    attr(root, "seed", config.seed)?;
    attr(root, "n_ranks", n_ranks as u64)?;
    attr(root, "n_neurons", config.n_neurons())?;
    attr(root, "n_synapses", n_synapses)?;
    attr(root, "dt", config.dt)?;
    attr(root, "t_stop", config.n_steps as f64 * config.dt)?;
    attr_str(root, "mpi_library", &crate::mpi_library_version())?;
    attr_str(root, "hdf5_version", &format!("{maj}.{min}.{rel}"))?;
    attr_str(root, "started", &prov.started)?;
    attr_str(root, "finished", &prov.finished)?;
    attr(root, "wall_time", prov.wall_time)?;

    write_populations(file, config)?;

    if config.raw.output.spikes {
        write_spikes(file, config, comm, run, w)?;
    }

    let rec = &run.recorder;
    let rates: Vec<Vec<f64>> = (0..config.populations.len())
        .map(|i| rec.rates(i, config.dt))
        .collect();
    write_sampled(
        file,
        config,
        &Sampled {
            rates: &rates,
            moment_times: &rec.moment_times,
            means: &rec.means,
            variances: &rec.variances,
            histogram_times: &rec.histogram_times,
            histograms: &rec.histograms,
            densities: &rec.densities,
        },
        w,
    )?;
    let classes: Vec<usize> = config
        .populations
        .iter()
        .map(|p| p.model.labels.as_ref().map_or(0, |l| l.k()))
        .collect();
    write_labels(
        file,
        config,
        rec.histogram_times.len(),
        &classes,
        &rec.label_histograms,
        w,
    )?;
    run.trees.write(file, config, comm, w)?;
    write_balance(file, config, run, w)?;
    write_statistics(file, config, comm, run)?;
    write_snapshots(file, config, run, w)?;

    if config.raw.output.final_state {
        let state = file.create_group("state")?;
        attr(&state, "time", config.n_steps as f64 * config.dt)?;
        let n = config.n_neurons() as usize;
        let slab = run.local.start as usize..run.local.end as usize;
        let v = dataset::<f64>(
            &state,
            "v",
            &[n],
            "mV",
            "membrane potential at the end of the run, by gid",
        )?;
        let r = dataset::<u32>(
            &state,
            "refractory_steps",
            &[n],
            "steps",
            "refractory steps left at the end of the run, by gid",
        )?;
        if !slab.is_empty() {
            w.keep(v.write_slice(&run.v, slab.clone()));
            w.keep(r.write_slice(&run.refractory, slab.clone()));
        }
        let n_local = slab.len();
        let xi: Vec<f64> = run
            .local
            .clone()
            .flat_map(|g| config.populations[config.population_of(g)].coordinate(config.seed, g))
            .collect();
        let x = &run.extra;
        let s = x.stride;
        // (name, values, written, width, units, description)
        type Column<'a> = (&'a str, &'a [f64], bool, usize, &'a str, &'a str);
        let columns: [Column; 3] = [
            (
                "xi",
                &xi,
                true,
                2,
                "1",
                "coordinate of every neuron (ring: second column 0), by gid",
            ),
            (
                "w",
                &x.w,
                x.fhn,
                1,
                "1",
                "FitzHugh-Nagumo recovery variable at the end of the run, by gid",
            ),
            (
                "lambda",
                &x.lambda,
                s > 0,
                s,
                "1",
                "label (probabilities over the efficacy classes) at the end of the run, by gid",
            ),
        ];
        for (name, data, used, width, units, description) in columns {
            if !used {
                continue;
            }
            let ds = dataset::<f64>(&state, name, &[n, width], units, description)?;
            if n_local > 0 {
                let view = ndarray::ArrayView2::from_shape((n_local, width), data)
                    .expect("width per neuron");
                w.keep(ds.write_slice(view, (slab.clone(), ..)));
            }
        }
    }

    let timers = file.create_group("timers")?;
    let phases = Timers::NAMES.join(",");
    let ds = dataset::<f64>(
        &timers,
        "seconds",
        &[n_ranks, Timers::NAMES.len()],
        "s",
        "wall time per rank (row) and phase (column)",
    )?;
    attr_str(&ds, "phases", &phases)?;
    let mut phases = run.timers;
    phases.output += prov.output_start.elapsed().as_secs_f64();
    w.keep(ds.write_slice(&phases.values(), (rank, ..)));
    let rss = dataset::<u64>(
        &timers,
        "peak_memory",
        &[n_ranks],
        "bytes",
        "peak resident memory of each rank's process",
    )?;
    w.keep(rss.write_slice(&[crate::memory::peak_rss_bytes()], rank..rank + 1));
    let rss = dataset::<u64>(
        &timers,
        "peak_memory_build",
        &[n_ranks],
        "bytes",
        "peak resident memory of each rank's process once the network is built",
    )?;
    w.keep(rss.write_slice(&[run.build_memory], rank..rank + 1));
    let ev = dataset::<u64>(
        &timers,
        "events",
        &[n_ranks],
        "1",
        "synaptic events delivered to each rank's neurons",
    )?;
    w.keep(ev.write_slice(&[run.events], rank..rank + 1));
    Ok(())
}

/// Spike trains in the SONATA layout, sorted by node id then time (`sorting = "by_id"`): each
/// rank's neurons are a contiguous gid block, so each rank writes one contiguous slab.
fn write_spikes(
    file: &File,
    config: &Config,
    comm: &dyn Comm,
    run: &RunResult,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let spikes = file.create_group("spikes")?;
    // Stable sort by gid keeps the steps of each neuron in order.
    let mut local = run.spikes.clone();
    local.sort_by_key(|&(g, _)| g);
    let mut lo = 0;
    for p in &config.populations {
        let end = p.gid_start + p.size;
        let hi = lo + local[lo..].partition_point(|&(g, _)| u64::from(g) < end);
        let mine = &local[lo..hi];
        lo = hi;
        let counts = comm.all_gather_u64(mine.len() as u64);
        let total: u64 = counts.iter().sum();
        let offset: u64 = counts[..comm.rank()].iter().sum();
        let g = spikes.create_group(&p.name)?;
        attr(&g, "sorting", Sorting::by_id)?;
        let ts = dataset::<f64>(
            &g,
            "timestamps",
            &[total as usize],
            "ms",
            "spike times (end of the step in which the neuron crossed threshold)",
        )?;
        let ids = dataset::<u64>(
            &g,
            "node_ids",
            &[total as usize],
            "1",
            "neuron id within the population (gid - gid_start)",
        )?;
        if !mine.is_empty() {
            let range = offset as usize..(offset as usize + mine.len());
            let times: Vec<f64> = mine
                .iter()
                .map(|&(_, s)| f64::from(s + 1) * config.dt)
                .collect();
            let nodes: Vec<u64> = mine
                .iter()
                .map(|&(g, _)| u64::from(g) - p.gid_start)
                .collect();
            w.keep(ts.write_slice(&times, range.clone()));
            w.keep(ids.write_slice(&nodes, range));
        }
    }
    Ok(())
}

/// The time series every output has, a run's or the limit's, sampled on the configuration's
/// schedules: rates per bin \[Hz\], moments of V, its density, and the extended density.
pub(crate) struct Sampled<'a> {
    /// Per population, one rate per bin \[Hz\].
    pub rates: &'a [Vec<f64>],
    pub moment_times: &'a [f64],
    pub means: &'a [Vec<f64>],
    pub variances: &'a [Vec<f64>],
    pub histogram_times: &'a [f64],
    /// Per population, `bins` densities [1/mV] per sample.
    pub histograms: &'a [Vec<f64>],
    /// Per population, `xi_bins x bins` densities per sample (empty with `xi_bins = 1`).
    pub densities: &'a [Vec<f64>],
}

/// Writes `/rates`, `/moments`, `/histograms` and (with `xi_bins > 1`) `/densities`.
pub(crate) fn write_sampled(
    file: &File,
    config: &Config,
    s: &Sampled,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let rates = file.create_group("rates")?;
    let n_bins = s.rates.first().map_or(0, Vec::len);
    let r = config.rates;
    let bin_ms = r.every as f64 * config.dt;
    let starts: Vec<f64> = (0..n_bins)
        .map(|b| (r.start + b as u64 * r.every) as f64 * config.dt)
        .collect();
    replicated(
        &rates,
        "time",
        &starts,
        &[n_bins],
        "ms",
        "start of each rate bin",
        w,
    )?;
    attr(&rates, "bin_width", bin_ms)?;
    for (i, p) in config.populations.iter().enumerate() {
        replicated(
            &rates,
            &p.name,
            &s.rates[i],
            &[n_bins],
            "Hz",
            "population rate: spikes per neuron per second in each bin",
            w,
        )?;
    }
    let moments = file.create_group("moments")?;
    let nt = s.moment_times.len();
    replicated(
        &moments,
        "time",
        s.moment_times,
        &[nt],
        "ms",
        "sample times",
        w,
    )?;
    for (i, p) in config.populations.iter().enumerate() {
        let g = moments.create_group(&p.name)?;
        replicated(
            &g,
            "mean",
            &s.means[i],
            &[nt],
            "mV",
            "population mean of V",
            w,
        )?;
        replicated(
            &g,
            "variance",
            &s.variances[i],
            &[nt],
            "mV^2",
            "population variance of V",
            w,
        )?;
    }
    let hist = file.create_group("histograms")?;
    let nt = s.histogram_times.len();
    replicated(
        &hist,
        "time",
        s.histogram_times,
        &[nt],
        "ms",
        "sample times",
        w,
    )?;
    let Some(h) = &config.histogram else {
        return Ok(());
    };
    let edges = h.edges();
    replicated(
        &hist,
        "edges",
        &edges,
        &[h.bins + 1],
        "mV",
        "bin edges of V",
        w,
    )?;
    for (i, p) in config.populations.iter().enumerate() {
        replicated(
            &hist,
            &p.name,
            &s.histograms[i],
            &[nt, h.bins],
            "1/mV",
            "empirical density of V (time x bin); bins times width sum to the fraction of neurons inside [v_min, v_max)",
            w,
        )?;
    }
    if h.xi_bins > 1 {
        let g = file.create_group("densities")?;
        let edges: Vec<f64> = (0..=h.xi_bins)
            .map(|b| b as f64 / h.xi_bins as f64)
            .collect();
        replicated(
            &g,
            "xi_edges",
            &edges,
            &[h.xi_bins + 1],
            "1",
            "bin edges of the first coordinate xi",
            w,
        )?;
        for (i, p) in config.populations.iter().enumerate() {
            replicated(
                &g,
                &p.name,
                &s.densities[i],
                &[nt, h.xi_bins, h.bins],
                "1/mV",
                "extended density f(t, v, xi) (time x xi bin x V bin, V bins as /histograms/edges): the sum times the V bin width times 1/xi_bins is the fraction of neurons inside [v_min, v_max)",
                w,
            )?;
        }
    }
    Ok(())
}

/// `/populations/<pop>`: each population's gids, size, model and spike rule, as the
/// configuration names them (a run's file and a limit's alike).
pub(crate) fn write_populations(file: &File, config: &Config) -> hdf5::Result<()> {
    let pops = file.create_group("populations")?;
    for p in &config.populations {
        let g = pops.create_group(&p.name)?;
        attr(&g, "gid_start", p.gid_start)?;
        attr(&g, "size", p.size)?;
        attr_str(&g, "model", &crate::config::toml_name(&p.model.kind))?;
        attr_str(&g, "spike", &crate::config::toml_name(&p.model.spike))?;
    }
    Ok(())
}

/// `/labels/<pop>`: the label densities of the populations with labels (`classes[p] > 0`) at
/// the `nt` histogram times, `rows[p]` time x class x bin (a run's or the limit's).
pub(crate) fn write_labels(
    file: &File,
    config: &Config,
    nt: usize,
    classes: &[usize],
    rows: &[Vec<f64>],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let Some(h) = &config.histogram else {
        return Ok(());
    };
    if classes.iter().all(|&k| k == 0) {
        return Ok(());
    }
    let g = file.create_group("labels")?;
    let lb = h.label_bins;
    let edges: Vec<f64> = (0..=lb).map(|b| b as f64 / lb as f64).collect();
    replicated(
        &g,
        "edges",
        &edges,
        &[lb + 1],
        "1",
        "bin edges of a class probability",
        w,
    )?;
    for (p, &k) in classes.iter().enumerate().filter(|(_, &k)| k > 0) {
        replicated(
            &g,
            &config.populations[p].name,
            &rows[p],
            &[nt, k, lb],
            "1",
            "density on [0, 1] of each class's label probability over the population (time x class x bin; the last bin includes 1)",
            w,
        )?;
    }
    Ok(())
}

/// Mean synaptic input per population and bin: recurrent excitatory (positive weights) and
/// inhibitory (negative weights) from the delivered events, external (the expected drive
/// `i_e + poisson_rate * poisson_weight`) and their sum.
fn write_balance(
    file: &File,
    config: &Config,
    run: &RunResult,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let Some(b) = config.balance else {
        return Ok(());
    };
    let rec = &run.recorder;
    let g = file.create_group("balance")?;
    let n_bins = crate::observables::balance_bins(config.balance);
    let bin_ms = b.every as f64 * config.dt;
    let starts: Vec<f64> = (0..n_bins)
        .map(|k| (b.start + k as u64 * b.every) as f64 * config.dt)
        .collect();
    replicated(&g, "time", &starts, &[n_bins], "ms", "start of each bin", w)?;
    attr(&g, "bin_width", bin_ms)?;
    for (p, pop) in config.populations.iter().enumerate() {
        let add = |x: Vec<f64>, y: Vec<f64>| -> Vec<f64> {
            x.iter().zip(&y).map(|(a, b)| a + b).collect()
        };
        let exc = add(
            rec.synaptic_input(config, p, false),
            rec.aggregate_input(p, false),
        );
        let inh = add(
            rec.synaptic_input(config, p, true),
            rec.aggregate_input(p, true),
        );
        let m = &pop.model.base;
        let ext = vec![m.i_e + m.poisson_rate / 1000.0 * m.poisson_weight; n_bins];
        let net: Vec<f64> = (0..n_bins).map(|k| exc[k] + inh[k] + ext[k]).collect();
        let pg = g.create_group(&pop.name)?;
        let series: [(&str, &[f64], &str); 4] = [
            (
                "excitatory",
                &exc,
                "mean recurrent input through positive weights, by the bin of the spike's emission, plus the positive aggregate input (per neuron and term, at the start of each step)",
            ),
            (
                "inhibitory",
                &inh,
                "mean recurrent input through negative weights, by the bin of the spike's emission, plus the negative aggregate input (per neuron and term, at the start of each step)",
            ),
            (
                "external",
                &ext,
                "expected external drive i_e + poisson_rate * poisson_weight",
            ),
            ("net", &net, "excitatory + inhibitory + external"),
        ];
        for (name, data, description) in series {
            replicated(&pg, name, data, &[n_bins], "mV/ms", description, w)?;
        }
    }
    Ok(())
}

/// Spike statistics per population over the statistics window, as attributes.
fn write_statistics(
    file: &File,
    config: &Config,
    comm: &dyn Comm,
    run: &RunResult,
) -> hdf5::Result<()> {
    let stats = run.recorder.statistics(comm, config.dt);
    let g = file.create_group("statistics")?;
    let s = config.statistics;
    attr(&g, "start", s.start as f64 * config.dt)?;
    attr(&g, "stop", s.stop as f64 * config.dt)?;
    attr(
        &g,
        "fano_window",
        (s.fano_bins * config.rates.every) as f64 * config.dt,
    )?;
    for (pop, st) in config.populations.iter().zip(stats) {
        let pg = g.create_group(&pop.name)?;
        attr(&pg, "cv_isi", st.cv_isi)?;
        attr(&pg, "cv_neurons", st.cv_neurons)?;
        attr(&pg, "fano_factor", st.fano_factor)?;
        attr(&pg, "chi", st.chi)?;
    }
    Ok(())
}

/// The state of every neuron at the snapshot times, by gid.
fn write_snapshots(
    file: &File,
    config: &Config,
    run: &RunResult,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    if config.snapshots.is_none() {
        return Ok(());
    }
    let slab = run.local.start as usize..run.local.end as usize;
    snapshot_group(file, &run.recorder, config.n_neurons() as usize, slab, w)
}

/// Group `snapshots` in `parent`: the snapshot times and, per snapshot, every neuron's V and
/// refractory counter by gid (`n` neurons; this rank writes the columns `slab`). Written the
/// same way into the output and into checkpoints.
pub(crate) fn snapshot_group(
    parent: &Group,
    rec: &crate::observables::Recorder,
    n: usize,
    slab: std::ops::Range<usize>,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let g = parent.create_group("snapshots")?;
    let nt = rec.snapshot_times.len();
    replicated(
        &g,
        "time",
        &rec.snapshot_times,
        &[nt],
        "ms",
        "snapshot times",
        w,
    )?;
    let v = dataset::<f64>(&g, "v", &[nt, n], "mV", "membrane potential (time x gid)")?;
    let r = dataset::<u32>(
        &g,
        "refractory_steps",
        &[nt, n],
        "steps",
        "refractory steps left (time x gid)",
    )?;
    if nt > 0 && !slab.is_empty() {
        let shape = (nt, slab.len());
        let view = ndarray::ArrayView2::from_shape(shape, &rec.neurons.snapshot_v)
            .expect("one row per snapshot");
        w.keep(v.write_slice(view, (.., slab.clone())));
        let view = ndarray::ArrayView2::from_shape(shape, &rec.neurons.snapshot_refractory)
            .expect("one row per snapshot");
        w.keep(r.write_slice(view, (.., slab)));
    }
    Ok(())
}
