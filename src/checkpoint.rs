//! Checkpoints: the whole dynamic state of a run at a step boundary, written collectively to
//! HDF5 and read back on any number of ranks (layout in `docs/output.md`).
//!
//! Everything per neuron is stored by gid (membrane potential, refractory counter, the
//! position of its random stream, the inputs already scheduled in its delay ring buffer, the
//! steps of its spikes so far), and the observables are stored reduced, so a checkpoint does
//! not depend on the decomposition that wrote it. The network itself is not stored: it is a
//! function of the configuration and is rebuilt. A run resumed from a checkpoint therefore
//! gives the same output, bit for bit, as the uninterrupted run, on any number of ranks.

use crate::comm::Comm;
use crate::config::{Config, RawConfig};
use crate::h5::RawWrites;
use crate::inspect::{num, text};
use crate::output;
use crate::rng;
use crate::state::Dynamic;
use crate::Error;
use hdf5::{File, Group, Location};
use ndarray::ArrayView2;
use std::ops::Range;
use std::path::{Path, PathBuf};

const FORMAT: &str = "lapicque-checkpoint";
const FORMAT_VERSION: u32 = 2;

/// Where checkpoints of a run writing `output` go: `checkpoint.path`, or the output path with
/// its extension replaced by `.checkpoint.h5`.
pub fn path_for(config: &Config, output: &Path) -> PathBuf {
    let set = &config.raw.checkpoint.path;
    if set.is_empty() {
        output.with_extension("checkpoint.h5")
    } else {
        PathBuf::from(set)
    }
}

/// Keys that may differ between the run that wrote a checkpoint and the run that resumes it:
/// where files go, how often progress is shown, how spikes are exchanged (results are
/// identical either way) and the checkpoint settings themselves.
const MAY_DIFFER: [&str; 5] = [
    "output.path",
    "output.progress_interval",
    "simulation.exchange",
    "checkpoint.",
    "meanfield.",
];

/// Dotted keys and values of a configuration, in order.
fn flatten(raw: &RawConfig) -> Vec<(String, String)> {
    fn walk(v: &toml::Value, prefix: &str, out: &mut Vec<(String, String)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &key, out);
                }
            }
            _ => out.push((prefix.to_string(), v.to_string())),
        }
    }
    let mut out = Vec::new();
    let value = toml::Value::try_from(raw).expect("a configuration serialises to TOML");
    walk(&value, "", &mut out);
    out.retain(|(k, _)| !MAY_DIFFER.iter().any(|m| k == m || k.starts_with(m)));
    out
}

/// The first key whose value differs between the configurations: (key, there, here).
fn first_difference(there: &RawConfig, here: &RawConfig) -> Option<(String, String, String)> {
    let (a, b) = (flatten(there), flatten(here));
    let lookup = |list: &[(String, String)], key: &str| {
        list.iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| "(absent)".to_string(), |(_, v)| v.clone())
    };
    a.iter()
        .chain(&b)
        .map(|(k, _)| k)
        .find(|k| lookup(&a, k) != lookup(&b, k))
        .map(|k| (k.clone(), lookup(&a, k), lookup(&b, k)))
}

/// Rank 0's verdict on a checkpoint: the step it holds, or why it cannot be used.
fn examine(path: &Path, config: &Config) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| {
        let e = e.to_string().replace('\n', " ");
        format!("cannot be opened as HDF5 (missing, truncated or damaged): {e}")
    })?;
    if text(&file, "format").as_deref() != Some(FORMAT) {
        return Err("is not a lapicque checkpoint".into());
    }
    if text(&file, "status").as_deref() != Some("complete") {
        return Err("is incomplete (its writer was interrupted)".into());
    }
    let version = num::<u32>(&file, "format_version").unwrap_or(0);
    if version != FORMAT_VERSION {
        return Err(format!(
            "has checkpoint format version {version}; this lapicque reads version {FORMAT_VERSION}"
        ));
    }
    let stored = text(&file, "config").unwrap_or_default();
    let there = Config::from_toml(&stored, &[])
        .map_err(|e| format!("holds a configuration that does not validate: {e}"))?;
    if let Some((key, a, b)) = first_difference(&there.raw, &config.raw) {
        return Err(format!(
            "was written for a different configuration: {key} = {a} in the checkpoint, {b} in this run"
        ));
    }
    let step = num::<u64>(&file, "step").ok_or("has no step")?;
    if step > config.n_steps {
        return Err(format!(
            "is at step {step}, after the end of the run ({} steps)",
            config.n_steps
        ));
    }
    contents_match(&file, config, step)?;
    Ok(step)
}

/// Checks what every rank will read against the configuration and the checkpoint's step, so
/// that a damaged file is refused before anything is built (a rank reading past the end of a
/// dataset would otherwise fail alone): per-neuron datasets hold one row per neuron, words of
/// the random streams are unsigned 64-bit integers and no stream is all zeros (Xoshiro's one
/// forbidden state), the spike counts add up to the stored spikes, every stored spike lies
/// before the step, and the step agrees with the stored time.
fn contents_match(file: &File, config: &Config, step: u64) -> Result<(), String> {
    let n = config.n_neurons() as usize;
    let time = num::<f64>(file, "time").ok_or("has no time")?;
    if time != step as f64 * config.dt {
        return Err(format!(
            "is at step {step} but time {time} ms (step x dt = {} ms): damaged",
            step as f64 * config.dt
        ));
    }
    let dataset = |name: &str| {
        file.dataset(name)
            .map_err(|_| format!("has no dataset {name}"))
    };
    for group in ["neurons", "extra", "accumulators"] {
        let g = file
            .group(group)
            .map_err(|_| format!("has no group {group}"))?;
        for name in g.member_names().map_err(|e| e.to_string())? {
            let rows = dataset(&format!("{group}/{name}"))?
                .shape()
                .first()
                .copied();
            if rows != Some(n) {
                return Err(format!(
                    "has {} rows in {group}/{name}, not one per neuron ({n})",
                    rows.unwrap_or(0)
                ));
            }
        }
    }
    let typed = |name: &str, ok: &dyn Fn(&hdf5::Datatype) -> bool, what: &str| {
        let d = dataset(name)?;
        match d.dtype() {
            Ok(t) if ok(&t) => Ok(d),
            _ => Err(format!("holds {name} not as {what}")),
        }
    };
    let words = typed(
        "neurons/rng_state",
        &|t| t.is::<u64>(),
        "unsigned 64-bit integers",
    )?;
    if words.shape() != [n, 4] {
        return Err(format!(
            "has neurons/rng_state of shape {:?}, not [{n}, 4]",
            words.shape()
        ));
    }
    let words = words.read_2d::<u64>().map_err(|e| e.to_string())?;
    if let Some(gid) = words
        .rows()
        .into_iter()
        .position(|r| r.iter().all(|&w| w == 0))
    {
        return Err(format!(
            "holds an all-zero random stream state for neuron {gid} (not a state a stream can reach)"
        ));
    }
    let counts = typed(
        "spikes/count",
        &|t| t.is::<u32>(),
        "unsigned 32-bit integers",
    )?
    .read_raw::<u32>()
    .map_err(|e| e.to_string())?;
    if counts.len() != n {
        return Err(format!(
            "has {} spike counts, not one per neuron ({n})",
            counts.len()
        ));
    }
    let steps = typed(
        "spikes/step",
        &|t| t.is::<u32>(),
        "unsigned 32-bit integers",
    )?
    .read_raw::<u32>()
    .map_err(|e| e.to_string())?;
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total != steps.len() as u64 {
        return Err(format!("counts {total} spikes but stores {}", steps.len()));
    }
    if let Some(&last) = steps.iter().max().filter(|&&s| u64::from(s) >= step) {
        return Err(format!(
            "stores a spike in step {last}, not before its step {step}"
        ));
    }
    Ok(())
}

/// Checks a checkpoint before anything is built: rank 0 examines it, every rank learns the
/// verdict. Returns the step the run resumes at.
pub fn verify(path: &Path, config: &Config, comm: &dyn Comm) -> Result<u64, Error> {
    let mut verdict = Vec::new();
    if comm.rank() == 0 {
        verdict = match examine(path, config) {
            Ok(step) => {
                let mut v = vec![1];
                v.extend_from_slice(&step.to_le_bytes());
                v
            }
            Err(reason) => {
                let mut v = vec![0];
                v.extend_from_slice(reason.as_bytes());
                v
            }
        };
    }
    comm.broadcast_bytes(&mut verdict);
    if verdict[0] == 1 {
        Ok(u64::from_le_bytes(
            verdict[1..9].try_into().expect("8 bytes"),
        ))
    } else {
        Err(Error::Argument {
            key: "--restart".into(),
            value: path.display().to_string(),
            reason: String::from_utf8_lossy(&verdict[1..]).into_owned(),
        })
    }
}

fn failed(doing: &str, path: &Path, e: hdf5::Error) -> Error {
    Error::Hdf5(hdf5::Error::from(
        format!("{doing} checkpoint {}: {e}", path.display()).as_str(),
    ))
}

/// Writes the state after `step` steps (collective; `state.recorder` must be reduced).
pub fn write(
    path: &Path,
    config: &Config,
    comm: &dyn Comm,
    local: &Range<u64>,
    step: u64,
    state: &Dynamic,
) -> Result<(), Error> {
    crate::h5::write_file(path, comm, |file, w| {
        write_contents(file, config, comm, local, step, state, w)
    })
    .map_err(|e| match e {
        Error::Hdf5(e) => failed("writing", path, e),
        e => e,
    })
}

/// A per-neuron dataset of `n` values by gid; this rank writes its slab.
fn per_neuron<T: hdf5::H5Type>(
    g: &Group,
    name: &str,
    data: &[T],
    n: usize,
    slab: &Range<usize>,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let ds = crate::h5::dataset::<T>(g, name, &[n], "", "by gid")?;
    if !slab.is_empty() {
        w.keep(ds.write_slice(data, slab.clone()));
    }
    Ok(())
}

fn write_contents(
    file: &File,
    config: &Config,
    comm: &dyn Comm,
    local: &Range<u64>,
    step: u64,
    state: &Dynamic,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    use crate::h5::{attr, attr_str, dataset, replicated};
    let root: &Location = file;
    attr_str(root, "format", FORMAT)?;
    attr(root, "format_version", FORMAT_VERSION)?;
    attr_str(root, "lapicque_version", env!("CARGO_PKG_VERSION"))?;
    attr_str(root, "git_commit", crate::GIT_COMMIT)?;
    attr_str(root, "config", &config.resolved_toml())?;
    attr(root, "step", step)?;
    attr(root, "time", step as f64 * config.dt)?;
    attr(root, "n_neurons", config.n_neurons())?;
    attr(root, "n_ranks", comm.size() as u64)?;

    let n = config.n_neurons() as usize;
    let slab = local.start as usize..local.end as usize;
    let n_local = slab.len();
    let neurons = file.create_group("neurons")?;
    let v = dataset::<f64>(&neurons, "v", &[n], "mV", "membrane potential, by gid")?;
    let r = dataset::<u32>(
        &neurons,
        "refractory_steps",
        &[n],
        "steps",
        "refractory steps left, by gid",
    )?;
    let g = dataset::<u64>(
        &neurons,
        "rng_state",
        &[n, 4],
        "1",
        "Xoshiro256++ state words of each neuron's dynamics stream, by gid",
    )?;
    let slots = state.ring.slots();
    let ring = dataset::<f64>(
        &neurons,
        "ring",
        &[n, slots],
        "mV",
        "synaptic input scheduled to arrive in step `step + k` (column k), by gid",
    )?;
    if n_local > 0 {
        w.keep(v.write_slice(&state.v, slab.clone()));
        w.keep(r.write_slice(&state.refractory, slab.clone()));
        let words: Vec<u64> = state.rngs.iter().flat_map(rng::state_words).collect();
        let words = ArrayView2::from_shape((n_local, 4), &words).expect("4 words per neuron");
        w.keep(g.write_slice(words, (slab.clone(), ..)));
        let scheduled = state.ring.to_neuron_major(step);
        let scheduled =
            ArrayView2::from_shape((n_local, slots), &scheduled).expect("slots per neuron");
        w.keep(ring.write_slice(scheduled, (slab.clone(), ..)));
    }

    // The state of general models: each non-empty per-neuron vector as (gid x width).
    let extra = file.create_group("extra")?;
    for (name, data, width) in extra_columns(state) {
        let ds = dataset::<f64>(&extra, name, &[n, width], "", "by gid")?;
        if n_local > 0 {
            let view = ArrayView2::from_shape((n_local, width), data).expect("width per neuron");
            w.keep(ds.write_slice(view, (slab.clone(), ..)));
        }
    }
    if let Some(ring_i) = &state.ring_i {
        let ds = dataset::<f64>(
            &extra,
            "ring_i",
            &[n, slots],
            "mV",
            "input through negative weights scheduled for step `step + k` (column k), by gid",
        )?;
        if n_local > 0 {
            let scheduled = ring_i.to_neuron_major(step);
            let view = ArrayView2::from_shape((n_local, slots), &scheduled).expect("slots");
            w.keep(ds.write_slice(view, (slab.clone(), ..)));
        }
    }
    let spiked: Vec<u8> = state
        .aggregates
        .spiked()
        .iter()
        .map(|&b| u8::from(b))
        .collect();
    per_neuron(&extra, "spiked_last_step", &spiked, n, &slab, w)?;

    // Spikes so far, by gid then step: per-neuron counts, and the steps in that order.
    let spikes = file.create_group("spikes")?;
    let mut mine = state.spikes.clone();
    mine.sort_by_key(|&(g, _)| g);
    let mut counts = vec![0u32; n_local];
    for &(g, _) in &mine {
        counts[(u64::from(g) - local.start) as usize] += 1;
    }
    let lengths = comm.all_gather_u64(mine.len() as u64);
    let total: u64 = lengths.iter().sum();
    let offset = lengths[..comm.rank()].iter().sum::<u64>() as usize;
    let c = dataset::<u32>(&spikes, "count", &[n], "1", "spikes so far, by gid")?;
    let s = dataset::<u32>(
        &spikes,
        "step",
        &[total as usize],
        "steps",
        "step of each spike so far (by gid, then time)",
    )?;
    if n_local > 0 {
        w.keep(c.write_slice(&counts, slab.clone()));
    }
    if !mine.is_empty() {
        let steps: Vec<u32> = mine.iter().map(|&(_, s)| s).collect();
        w.keep(s.write_slice(&steps, offset..offset + steps.len()));
    }

    let rec = &state.recorder;
    let obs = file.create_group("observables")?;
    let n_pop = config.populations.len();
    let table = |g: &Group, name: &str, rows: &[Vec<f64>], w: &mut RawWrites| {
        let len = rows.first().map_or(0, Vec::len);
        let flat: Vec<f64> = rows.concat();
        replicated(g, name, &flat, &[n_pop, len], "", "per population", w)
    };
    let counts: Vec<u64> = rec.rate_counts.concat();
    let n_bins = rec.rate_counts.first().map_or(0, Vec::len);
    replicated(
        &obs,
        "rate_counts",
        &counts,
        &[n_pop, n_bins],
        "1",
        "spikes per population and rate bin",
        w,
    )?;
    let nt = rec.moment_times.len();
    replicated(&obs, "moment_time", &rec.moment_times, &[nt], "ms", "", w)?;
    table(&obs, "mean", &rec.means, w)?;
    table(&obs, "variance", &rec.variances, w)?;
    let nh = rec.histogram_times.len();
    replicated(
        &obs,
        "histogram_time",
        &rec.histogram_times,
        &[nh],
        "ms",
        "",
        w,
    )?;
    table(&obs, "histogram", &rec.histograms, w)?;
    table(&obs, "density", &rec.densities, w)?;
    // Rows of different lengths (classes differ by population): concatenated.
    let labels = rec.label_histograms.concat();
    replicated(
        &obs,
        "label_histogram",
        &labels,
        &[labels.len()],
        "1",
        "label histograms so far, populations concatenated",
        w,
    )?;
    let words = to_words(&rec.balance_input);
    replicated(
        &obs,
        "balance_input",
        &words,
        &[words.len()],
        "",
        "synaptic input sums per projection, bin and sign (see exchange::Delivered) as low and high 64-bit words",
        w,
    )?;
    attr(&obs, "v_samples", rec.v_samples)?;
    let words = to_words(&rec.aggregate_balance);
    replicated(
        &obs,
        "aggregate_balance",
        &words,
        &[words.len()],
        "",
        "aggregate input sums (fixed point, 2^-32 mV/ms) as low and high 64-bit words",
        w,
    )?;

    // Per-neuron accumulators of the spike statistics, by gid, and the snapshots so far.
    let acc = file.create_group("accumulators")?;
    let nr = &rec.neurons;
    per_neuron(&acc, "last_spike", &nr.last_spike, n, &slab, w)?;
    per_neuron(&acc, "isi_count", &nr.isi_count, n, &slab, w)?;
    per_neuron(&acc, "isi_sum", &nr.isi_sum, n, &slab, w)?;
    per_neuron(&acc, "isi_sum2", &nr.isi_sum2, n, &slab, w)?;
    per_neuron(&acc, "v_sum", &nr.v_sum, n, &slab, w)?;
    per_neuron(&acc, "v_sum2", &nr.v_sum2, n, &slab, w)?;
    output::snapshot_group(file, rec, n, slab, w)?;
    state.trees.save(&file.create_group("trees")?, w)
}

/// The per-neuron state vectors of general models that are in use, with their widths (the
/// same on every rank, which create the datasets together).
/// `i128` sums as (low, high) 64-bit words.
fn to_words(sums: &[i128]) -> Vec<u64> {
    sums.iter()
        .flat_map(|&x| [x as u64, (x >> 64) as u64])
        .collect()
}

fn extra_columns(state: &Dynamic) -> Vec<(&'static str, &[f64], usize)> {
    let x = &state.extra;
    let s = x.stride;
    [
        ("w", &x.w[..], x.fhn, 1),
        ("syn_e", &x.syn_e[..], x.syn, 1),
        ("syn_i", &x.syn_i[..], x.syn, 1),
        ("lambda", &x.lambda[..], s > 0, s),
        ("beta", &x.beta[..], s > 0, s * s),
    ]
    .into_iter()
    .filter(|c| c.2)
    .map(|(name, d, _, width)| (name, d, width))
    .collect()
}

/// Reads the local part of the state from a checkpoint that [`verify`] accepted (collective).
pub fn read(
    path: &Path,
    config: &Config,
    comm: &dyn Comm,
    local: &Range<u64>,
    step: u64,
    state: &mut Dynamic,
) -> Result<(), Error> {
    read_contents(path, config, comm, local, step, state).map_err(|e| failed("reading", path, e))
}

/// Entries `slab` of the per-neuron dataset `name` of `g`.
fn column<T: hdf5::H5Type + Clone>(
    g: &Group,
    name: &str,
    slab: &Range<usize>,
) -> hdf5::Result<Vec<T>> {
    Ok(g.dataset(name)?.read_slice_1d(slab.clone())?.to_vec())
}

/// Columns `slab` of the (time x gid) dataset `name` of `g`, row by row.
fn columns<T: hdf5::H5Type + Clone>(
    g: &Group,
    name: &str,
    slab: &Range<usize>,
) -> hdf5::Result<Vec<T>> {
    let a = g.dataset(name)?.read_slice_2d::<T, _>((.., slab.clone()))?;
    Ok(a.iter().cloned().collect())
}

fn read_contents(
    path: &Path,
    config: &Config,
    comm: &dyn Comm,
    local: &Range<u64>,
    step: u64,
    state: &mut Dynamic,
) -> hdf5::Result<()> {
    let file = crate::h5::open_file(path, comm)?;
    let slab = local.start as usize..local.end as usize;
    let n_local = slab.len();
    if n_local > 0 {
        let neurons = file.group("neurons")?;
        state.v = column(&neurons, "v", &slab)?;
        state.refractory = column(&neurons, "refractory_steps", &slab)?;
        let words = neurons
            .dataset("rng_state")?
            .read_slice_2d::<u64, _>((slab.clone(), ..))?;
        state.rngs = words
            .rows()
            .into_iter()
            .map(|r| rng::from_state_words([r[0], r[1], r[2], r[3]]))
            .collect();
        let ring = neurons
            .dataset("ring")?
            .read_slice_2d::<f64, _>((slab.clone(), ..))?;
        if ring.ncols() != state.ring.slots() {
            return Err("the ring buffer has a different number of slots".into());
        }
        let scheduled: Vec<f64> = ring.iter().copied().collect();
        state.ring.set_neuron_major(step, &scheduled);
        let extra = file.group("extra")?;
        let x = &mut state.extra;
        for (name, data) in [
            ("w", &mut x.w),
            ("syn_e", &mut x.syn_e),
            ("syn_i", &mut x.syn_i),
            ("lambda", &mut x.lambda),
            ("beta", &mut x.beta),
        ] {
            if !data.is_empty() {
                let a = extra
                    .dataset(name)?
                    .read_slice_2d::<f64, _>((slab.clone(), ..))?;
                if a.len() != data.len() {
                    return Err(format!("extra/{name} has a different width").into());
                }
                data.clear();
                data.extend(a.iter().copied());
            }
        }
        if let Some(ring_i) = state.ring_i.as_mut() {
            let a = extra
                .dataset("ring_i")?
                .read_slice_2d::<f64, _>((slab.clone(), ..))?;
            let scheduled: Vec<f64> = a.iter().copied().collect();
            ring_i.set_neuron_major(step, &scheduled);
        }
        let spiked: Vec<u8> = column(&extra, "spiked_last_step", &slab)?;
        let flags: Vec<bool> = spiked.iter().map(|&b| b != 0).collect();
        state.aggregates.set_spiked_flags(&flags);
    }

    let spikes = file.group("spikes")?;
    let counts = spikes
        .dataset("count")?
        .read_slice_1d::<u32, _>(0..slab.end)?;
    let offset: usize = counts.iter().take(slab.start).map(|&c| c as usize).sum();
    let len: usize = counts.iter().skip(slab.start).map(|&c| c as usize).sum();
    state.spikes.clear();
    if len > 0 {
        let steps = spikes
            .dataset("step")?
            .read_slice_1d::<u32, _>(offset..offset + len)?;
        let mut it = steps.iter();
        for (i, &c) in counts.iter().skip(slab.start).enumerate() {
            let gid = u32::try_from(local.start + i as u64).expect("validated: gids fit u32");
            state
                .spikes
                .extend(it.by_ref().take(c as usize).map(|&s| (gid, s)));
        }
    }

    let obs = file.group("observables")?;
    let rows = |name: &str| -> hdf5::Result<Vec<Vec<f64>>> {
        let a = obs.dataset(name)?.read_2d::<f64>()?;
        Ok(a.rows().into_iter().map(|r| r.to_vec()).collect())
    };
    let rec = &mut state.recorder;
    let counts = obs.dataset("rate_counts")?.read_2d::<u64>()?;
    if counts.nrows() != config.populations.len()
        || counts.ncols() != rec.rate_counts.first().map_or(0, Vec::len)
    {
        return Err("the rate counts have a different shape".into());
    }
    rec.rate_counts = counts.rows().into_iter().map(|r| r.to_vec()).collect();
    rec.moment_times = obs.dataset("moment_time")?.read_raw()?;
    rec.means = rows("mean")?;
    rec.variances = rows("variance")?;
    rec.histogram_times = obs.dataset("histogram_time")?.read_raw()?;
    rec.histograms = rows("histogram")?;
    rec.densities = rows("density")?;
    let labels: Vec<f64> = obs.dataset("label_histogram")?.read_raw()?;
    let per_sample: Vec<usize> = rec.label_histograms_row_lengths();
    let nt = rec.histogram_times.len();
    let mut rest = &labels[..];
    for (row, len) in rec.label_histograms.iter_mut().zip(per_sample) {
        if rest.len() < len * nt {
            return Err("the label histograms have a different shape".into());
        }
        let (mine, tail) = rest.split_at(len * nt);
        *row = mine.to_vec();
        rest = tail;
    }
    for (name, sums) in [
        ("balance_input", &mut rec.balance_input),
        ("aggregate_balance", &mut rec.aggregate_balance),
    ] {
        let words: Vec<u64> = obs.dataset(name)?.read_raw()?;
        if words.len() != 2 * sums.len() {
            return Err(format!("{name} has a different shape").as_str().into());
        }
        for (x, pair) in sums.iter_mut().zip(words.chunks_exact(2)) {
            *x = (i128::from(pair[1] as i64) << 64) | i128::from(pair[0]);
        }
    }
    rec.v_samples = obs.attr("v_samples")?.read_scalar()?;
    let acc = file.group("accumulators")?;
    let snapshots = file.group("snapshots")?;
    rec.snapshot_times = snapshots.dataset("time")?.read_raw()?;
    if n_local > 0 {
        let nr = &mut rec.neurons;
        nr.last_spike = column(&acc, "last_spike", &slab)?;
        nr.isi_count = column(&acc, "isi_count", &slab)?;
        nr.isi_sum = column(&acc, "isi_sum", &slab)?;
        nr.isi_sum2 = column(&acc, "isi_sum2", &slab)?;
        nr.v_sum = column(&acc, "v_sum", &slab)?;
        nr.v_sum2 = column(&acc, "v_sum2", &slab)?;
        if !rec.snapshot_times.is_empty() {
            nr.snapshot_v = columns(&snapshots, "v", &slab)?;
            nr.snapshot_refractory = columns(&snapshots, "refractory_steps", &slab)?;
        }
    }
    state.trees.restore(&file.group("trees")?)?;
    file.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(overrides: &[&str]) -> Config {
        let text = "[population.E]\nsize = 10\n[population.I]\nsize = 5\n";
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::from_toml(text, &o).unwrap()
    }

    #[test]
    fn configurations_that_change_results_differ_and_others_do_not() {
        let base = config(&[]);
        let same = config(&[
            "output.path=x.h5",
            "simulation.exchange=\"window\"",
            "checkpoint.every=5",
            "output.progress_interval=2",
        ]);
        assert_eq!(first_difference(&base.raw, &same.raw), None);
        let (key, a, b) = first_difference(&base.raw, &config(&["population.I.size=6"]).raw)
            .expect("sizes differ");
        assert_eq!(
            (key.as_str(), a.as_str(), b.as_str()),
            ("population.I.size", "5", "6")
        );
        let (key, ..) =
            first_difference(&base.raw, &config(&["simulation.seed=9"]).raw).expect("seeds differ");
        assert_eq!(key, "simulation.seed");
    }

    #[test]
    fn default_path_replaces_the_extension() {
        let c = config(&[]);
        assert_eq!(
            path_for(&c, Path::new("runs/a.h5")),
            PathBuf::from("runs/a.checkpoint.h5")
        );
        let c = config(&["checkpoint.path=\"c.h5\""]);
        assert_eq!(path_for(&c, Path::new("a.h5")), PathBuf::from("c.h5"));
    }
}
