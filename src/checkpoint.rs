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
use crate::exchange::RingBuffer;
use crate::h5::{num, text};
use crate::h5::{RawWrites, PER_NEURON};
use crate::rng;
use crate::state::Dynamic;
use crate::Error;
use hdf5::{File, Group, Location};
use ndarray::ArrayView2;
use std::ops::Range;
use std::path::{Path, PathBuf};

const FORMAT: &str = "lapicque-checkpoint";
const FORMAT_VERSION: u32 = 5;

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
    let rows_ok = |name: &str| -> Result<(), String> {
        let rows = dataset(name)?.shape().first().copied();
        if rows != Some(n) {
            return Err(format!(
                "has {} rows in {name}, not one per neuron ({n})",
                rows.unwrap_or(0)
            ));
        }
        Ok(())
    };
    for group in ["neurons", "extra"] {
        let g = file
            .group(group)
            .map_err(|_| format!("has no group {group}"))?;
        for name in g.member_names().map_err(|e| e.to_string())? {
            rows_ok(&format!("{group}/{name}"))?;
        }
    }
    // The observables' per-neuron datasets (`observables::Saved::per_neuron`).
    let obs = file
        .group("observables")
        .map_err(|_| "has no group observables".to_string())?;
    for o in obs.member_names().map_err(|e| e.to_string())? {
        let Ok(g) = obs.group(&o) else { continue };
        for name in g.member_names().map_err(|e| e.to_string())? {
            let path = format!("observables/{o}/{name}");
            if file
                .dataset(&path)
                .is_ok_and(|d| text(&d, "description").as_deref() == Some(PER_NEURON))
            {
                rows_ok(&path)?;
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
        "observables/spikes/count",
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
        "observables/spikes/step",
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

/// Writes the state after `step` steps (collective; `state.observers` must be reduced).
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
    let ds = crate::h5::dataset::<T>(g, name, &[n], "", PER_NEURON)?;
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
    use crate::h5::{attr, attr_str, dataset};
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
    scheduled_counts(&neurons, "ring_counts", &state.ring, n, &slab, step, w)?;

    // The state of general models: each non-empty per-neuron vector as (gid x width).
    let extra = file.create_group("extra")?;
    let x = &state.extra;
    for c in x.columns() {
        let width = x.width(c);
        let ds = dataset::<f64>(&extra, c.name(), &[n, width], c.units(), PER_NEURON)?;
        if n_local > 0 {
            let view =
                ArrayView2::from_shape((n_local, width), x.values(c)).expect("width per neuron");
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
        scheduled_counts(&extra, "ring_i_counts", ring_i, n, &slab, step, w)?;
    }
    let spiked: Vec<u8> = state
        .aggregates
        .spiked()
        .iter()
        .map(|&b| u8::from(b))
        .collect();
    per_neuron(&extra, "spiked_last_step", &spiked, n, &slab, w)?;

    state.observers.save(file, n, slab, comm, w)
}

/// The counted arrivals of `ring` (if it counts any) as the dataset `name` of `g`: per gid,
/// slot by slot (`step + k`), one count per counted weight.
fn scheduled_counts(
    g: &Group,
    name: &str,
    ring: &RingBuffer,
    n: usize,
    slab: &Range<usize>,
    step: u64,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let width = ring.slots() * ring.classes();
    if width == 0 {
        return Ok(());
    }
    let ds = crate::h5::dataset::<u16>(
        g,
        name,
        &[n, width],
        "1",
        "spikes through constant weights scheduled for step `step + k`: column k * classes + c \
         counts those through weight `weights[c]`, by gid",
    )?;
    let weights = ring.weights();
    ds.new_attr::<f64>()
        .shape(weights.len())
        .create("weights")?
        .write(weights)?;
    if !slab.is_empty() {
        let counts = ring.counts_neuron_major(step);
        let view = ArrayView2::from_shape((slab.len(), width), &counts).expect("counts per gid");
        w.keep(ds.write_slice(view, (slab.clone(), ..)));
    }
    Ok(())
}

/// Restores `ring`'s counted arrivals from the dataset `name` of `g` (see [`scheduled_counts`]).
fn read_counts(
    g: &Group,
    name: &str,
    ring: &mut RingBuffer,
    slab: &Range<usize>,
    step: u64,
) -> hdf5::Result<()> {
    if ring.classes() == 0 {
        return Ok(());
    }
    let a = g
        .dataset(name)?
        .read_slice_2d::<u16, _>((slab.clone(), ..))?;
    if a.ncols() != ring.slots() * ring.classes() {
        return Err(format!("{name} has a different number of columns").into());
    }
    let counts: Vec<u16> = a.iter().copied().collect();
    ring.set_counts_neuron_major(step, &counts);
    Ok(())
}

/// Reads the local part of the state from a checkpoint that [`verify`] accepted (collective).
pub fn read(
    path: &Path,
    comm: &dyn Comm,
    local: &Range<u64>,
    step: u64,
    state: &mut Dynamic,
) -> Result<(), Error> {
    read_contents(path, comm, local, step, state).map_err(|e| failed("reading", path, e))
}

/// Entries `slab` of the per-neuron dataset `name` of `g`.
fn column<T: hdf5::H5Type + Clone>(
    g: &Group,
    name: &str,
    slab: &Range<usize>,
) -> hdf5::Result<Vec<T>> {
    Ok(g.dataset(name)?.read_slice_1d(slab.clone())?.to_vec())
}

fn read_contents(
    path: &Path,
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
        read_counts(&neurons, "ring_counts", &mut state.ring, &slab, step)?;
        let extra = file.group("extra")?;
        let x = &mut state.extra;
        for c in x.columns().collect::<Vec<_>>() {
            let a = extra
                .dataset(c.name())?
                .read_slice_2d::<f64, _>((slab.clone(), ..))?;
            let data = x.values_mut(c);
            if a.len() != data.len() {
                return Err(format!("extra/{} has a different width", c.name()).into());
            }
            data.clear();
            data.extend(a.iter().copied());
        }
        if let Some(ring_i) = state.ring_i.as_mut() {
            let a = extra
                .dataset("ring_i")?
                .read_slice_2d::<f64, _>((slab.clone(), ..))?;
            let scheduled: Vec<f64> = a.iter().copied().collect();
            ring_i.set_neuron_major(step, &scheduled);
            read_counts(&extra, "ring_i_counts", ring_i, &slab, step)?;
        }
        let spiked: Vec<u8> = column(&extra, "spiked_last_step", &slab)?;
        let flags: Vec<bool> = spiked.iter().map(|&b| b != 0).collect();
        state.aggregates.set_spiked_flags(&flags);
    }

    state.observers.restore(&file, slab, comm)?;
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
