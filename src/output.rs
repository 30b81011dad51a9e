//! The output file of a run (layout in `docs/output.md`) and its collective writer: the root
//! attributes, `/populations`, `/state` and `/timers` are written here; every observable writes
//! its own groups ([`crate::observables`]), with the series writers that the limit's file uses
//! too.
//!
//! All ranks create every group, dataset and
//! attribute together (HDF5 metadata operations are collective) with identical arguments;
//! replicated data (reduced observables) is written by rank 0 alone, per-neuron data by each
//! rank into its own slab. The file is written as `<path>.partial` and renamed to `<path>` only
//! after it is complete and closed on every rank.

use crate::comm::Comm;
use crate::config::Config;
use crate::h5::{attr, attr_str, dataset, write_file, RawWrites};
use crate::state::{RunResult, Timers};
use crate::Error;
use hdf5::{File, Location};
use std::path::Path;

pub const FORMAT_VERSION: u32 = 1;

/// Groups written here (the observables name their own: `GROUP` in each file of
/// [`crate::observables`]).
pub const POPULATIONS: &str = "populations";
pub const STATE: &str = "state";
pub const TIMERS: &str = "timers";

pub use crate::observables::spikes::Sorting;

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
    write_common(file, config, Kind::Run)?;
    let root: &Location = file;
    attr(root, "n_ranks", n_ranks as u64)?;
    attr(root, "n_synapses", n_synapses)?;
    attr_str(root, "mpi_library", &crate::mpi_library_version())?;
    attr_str(root, "started", &prov.started)?;
    attr_str(root, "finished", &prov.finished)?;
    attr(root, "wall_time", prov.wall_time)?;
    if let Some((rank, ranks)) = run.emulated {
        attr(root, "emulated_rank", rank as u64)?;
        attr(root, "emulated_ranks", ranks as u64)?;
    }
    write_parameters(file, config, &run.local, w)?;

    run.observers.write(&mut crate::observables::Output {
        file,
        config,
        comm,
        local: run.local.clone(),
        w,
    })?;

    if config.raw.output.final_state {
        let state = file.create_group(STATE)?;
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
        let coordinates = (
            "xi",
            &xi[..],
            2,
            "1",
            "coordinate of every neuron (ring: second column 0), by gid".to_string(),
        );
        let x = &run.extra;
        let held = x.columns().map(|c| {
            (
                c.name(),
                x.values(c),
                x.width(c),
                c.units(),
                format!("{} at the end of the run, by gid", c.description()),
            )
        });
        for (name, data, width, units, description) in std::iter::once(coordinates).chain(held) {
            let ds = dataset::<f64>(&state, name, &[n, width], units, &description)?;
            if n_local > 0 {
                let view = ndarray::ArrayView2::from_shape((n_local, width), data)
                    .expect("width per neuron");
                w.keep(ds.write_slice(view, (slab.clone(), ..)));
            }
        }
    }

    let timers = file.create_group(TIMERS)?;
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

/// What an output file holds: a run of the particle system or the solution of its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Run,
    Meanfield,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Meanfield => "meanfield",
        }
    }

    /// The kind of an open lapicque output file (`None`: not one; files written before the
    /// `kind` attribute are runs).
    pub fn of(file: &File) -> Option<Kind> {
        if crate::h5::text(file, "format").as_deref() != Some("lapicque") {
            return None;
        }
        match crate::h5::text(file, "kind").as_deref() {
            None | Some("run") => Some(Kind::Run),
            Some("meanfield") => Some(Kind::Meanfield),
            Some(_) => None,
        }
    }
}

/// What every output file has, a run's or the limit's: the root attributes naming the format,
/// the kind, the writer, the configuration and the time grid, and `/populations`.
pub(crate) fn write_common(file: &File, config: &Config, kind: Kind) -> hdf5::Result<()> {
    let (maj, min, rel) = hdf5::library_version();
    let root: &Location = file;
    attr_str(root, "format", "lapicque")?;
    attr(root, "format_version", FORMAT_VERSION)?;
    attr_str(root, "kind", kind.name())?;
    attr_str(root, "lapicque_version", env!("CARGO_PKG_VERSION"))?;
    attr_str(root, "git_commit", crate::GIT_COMMIT)?;
    attr_str(root, "hdf5_version", &format!("{maj}.{min}.{rel}"))?;
    attr_str(root, "config", &config.resolved_toml())?;
    attr(root, "seed", config.seed)?;
    attr(root, "n_neurons", config.n_neurons())?;
    attr(root, "dt", config.dt)?;
    attr(root, "t_stop", config.n_steps as f64 * config.dt)?;
    write_populations(file, config)
}

/// `/populations/<pop>/parameters/<name>`: the value of each varied parameter of every neuron
/// of the population, by node id (collectively; each rank writes its own neurons, drawn again
/// from their streams).
fn write_parameters(
    file: &File,
    config: &Config,
    local: &std::ops::Range<u64>,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let pops = file.group(POPULATIONS)?;
    for (k, p) in config.populations.iter().enumerate() {
        if p.model.vary.is_empty() {
            continue;
        }
        let g = pops.group(&p.name)?.create_group("parameters")?;
        let r = p.local_range(local);
        let first = local.start + r.start as u64;
        // Drawn and checked when the run started: they cannot fail now.
        let values =
            crate::model::vary::population_values(config, k, first..first + r.len() as u64)
                .expect("checked at the start of the run");
        let slab = (first - p.gid_start) as usize..(first - p.gid_start) as usize + r.len();
        for e in &p.model.vary.entries {
            let ds = dataset::<f64>(
                &g,
                e.name(),
                &[p.size as usize],
                e.unit(),
                &format!("{} of every neuron, by node id: {}", e.name(), e.describe()),
            )?;
            let column: Vec<f64> = values
                .iter()
                .map(|v| {
                    if e.param == crate::model::vary::T_REF {
                        f64::from(crate::model::vary::ref_steps(v[e.param], config.dt)) * config.dt
                    } else {
                        v[e.param]
                    }
                })
                .collect();
            if !slab.is_empty() {
                w.keep(ds.write_slice(&column, slab.clone()));
            }
        }
    }
    Ok(())
}

/// `/populations/<pop>`: each population's gids, size, model and spike rule, as the
/// configuration names them (a run's file and a limit's alike).
fn write_populations(file: &File, config: &Config) -> hdf5::Result<()> {
    let pops = file.create_group(POPULATIONS)?;
    for p in &config.populations {
        let g = pops.create_group(&p.name)?;
        attr(&g, "gid_start", p.gid_start)?;
        attr(&g, "size", p.size)?;
        attr_str(&g, "model", &crate::config::toml_name(&p.model.kind))?;
        attr_str(&g, "spike", &crate::config::toml_name(&p.model.spike))?;
    }
    Ok(())
}
