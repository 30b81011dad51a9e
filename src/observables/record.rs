//! State variables of chosen neurons at the times of `observables.record` (`/record`): NEST's
//! multimeter, Brian2's `StateMonitor`.
//!
//! The recorded node ids of a population are sorted; the gids of a rank are contiguous, so the
//! recorded neurons of a rank are a contiguous run of each population's list, and each rank
//! writes its columns of every (time x neuron) dataset, in the output and in checkpoints alike.

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::config::{Config, RecordSpec, Recorded};
use crate::h5::{dataset, replicated, RawWrites};
use crate::model::extra::Column;
use hdf5::Group;
use ndarray::{ArrayView2, ArrayView3};
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "record";

/// The recorded neurons of one population on this rank.
struct Part {
    population: usize,
    /// The population's recorded node ids (all ranks').
    ids: Vec<u64>,
    /// This rank's run of `ids`, and their local indices.
    columns: Range<usize>,
    local: Vec<usize>,
    /// Per variable, per sample: `columns.len() x width` values.
    values: Vec<Vec<f64>>,
}

pub struct Record {
    spec: Option<RecordSpec>,
    /// Sample times \[ms\].
    pub times: Vec<f64>,
    parts: Vec<Part>,
    /// Values per neuron of each variable.
    widths: Vec<usize>,
}

impl Record {
    pub fn new(config: &Config, local: &Range<u64>) -> Self {
        let Some(spec) = config.record.clone() else {
            return Record {
                spec: None,
                times: Vec::new(),
                parts: Vec::new(),
                widths: Vec::new(),
            };
        };
        let stride = config
            .populations
            .iter()
            .filter_map(|p| p.model.labels.as_ref().map(|l| l.k()))
            .max()
            .unwrap_or(0);
        let widths = spec
            .variables
            .iter()
            .map(|v| match v {
                Recorded::Column(Column::Lambda) => stride,
                Recorded::Column(Column::Beta) => stride * stride,
                _ => 1,
            })
            .collect();
        let parts = spec
            .neurons
            .iter()
            .map(|(p, ids)| {
                let start = config.populations[*p].gid_start;
                let lo = ids.partition_point(|&id| start + id < local.start);
                let hi = ids.partition_point(|&id| start + id < local.end);
                Part {
                    population: *p,
                    ids: ids.clone(),
                    columns: lo..hi,
                    local: ids[lo..hi]
                        .iter()
                        .map(|&id| (start + id - local.start) as usize)
                        .collect(),
                    values: vec![Vec::new(); spec.variables.len()],
                }
            })
            .collect();
        Record {
            spec: Some(spec),
            times: Vec::new(),
            parts,
            widths,
        }
    }

    /// Writes the series into `g`: the times, and per population its node ids and one
    /// (time x neuron [x width]) dataset per variable, this rank's columns.
    fn write_group(&self, g: &Group, config: &Config, w: &mut RawWrites) -> hdf5::Result<()> {
        let Some(spec) = &self.spec else {
            return Ok(());
        };
        let nt = self.times.len();
        replicated(g, "time", &self.times, &[nt], "ms", "sample times", w)?;
        for part in &self.parts {
            let pg = g.create_group(&config.populations[part.population].name)?;
            let n = part.ids.len();
            replicated(
                &pg,
                "node_ids",
                &part.ids,
                &[n],
                "1",
                "recorded neurons (gid - gid_start), ascending",
                w,
            )?;
            for ((var, values), &width) in spec.variables.iter().zip(&part.values).zip(&self.widths)
            {
                let (units, what) = describe(*var);
                let cols = part.columns.clone();
                let write = nt > 0 && !cols.is_empty();
                match var {
                    Recorded::Refractory => {
                        let ds = dataset::<u32>(&pg, var.name(), &[nt, n], units, what)?;
                        if write {
                            let ints: Vec<u32> = values.iter().map(|&x| x as u32).collect();
                            let view = ArrayView2::from_shape((nt, cols.len()), &ints)
                                .expect("one row per sample");
                            w.keep(ds.write_slice(view, (.., cols)));
                        }
                    }
                    Recorded::Column(Column::Lambda | Column::Beta) => {
                        let ds = dataset::<f64>(&pg, var.name(), &[nt, n, width], units, what)?;
                        if write {
                            let view = ArrayView3::from_shape((nt, cols.len(), width), values)
                                .expect("one row per sample");
                            w.keep(ds.write_slice(view, (.., cols, ..)));
                        }
                    }
                    _ => {
                        let ds = dataset::<f64>(&pg, var.name(), &[nt, n], units, what)?;
                        if write {
                            let view = ArrayView2::from_shape((nt, cols.len()), values)
                                .expect("one row per sample");
                            w.keep(ds.write_slice(view, (.., cols)));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Units and meaning of a recorded variable.
fn describe(var: Recorded) -> (&'static str, &'static str) {
    match var {
        Recorded::V => ("mV", "membrane potential (time x neuron)"),
        Recorded::Refractory => ("steps", "refractory steps left (time x neuron)"),
        Recorded::Column(c) => (c.units(), c.description()),
    }
}

impl Observer for Record {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        let Some(spec) = self.spec.as_ref().filter(|s| s.schedule.fires(at.b)) else {
            return;
        };
        self.times.push(at.time);
        for part in &mut self.parts {
            for ((var, values), &width) in spec
                .variables
                .iter()
                .zip(&mut part.values)
                .zip(&self.widths)
            {
                for &i in &part.local {
                    match var {
                        Recorded::V => values.push(at.v[i]),
                        Recorded::Refractory => values.push(f64::from(at.refractory[i])),
                        Recorded::Column(c) => {
                            let x = at.extra.values(*c);
                            values.extend_from_slice(&x[i * width..(i + 1) * width]);
                        }
                    }
                }
            }
        }
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        if self.spec.is_none() {
            return Ok(());
        }
        let g = out.file.create_group(GROUP)?;
        self.write_group(&g, out.config, out.w)
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        to.replicated("time", &self.times)?;
        for part in &self.parts {
            let g = to.group.create_group(&part.population.to_string())?;
            for (k, values) in part.values.iter().enumerate() {
                let n = part.ids.len() * self.widths[k];
                let nt = self.times.len();
                let ds = dataset::<f64>(&g, &k.to_string(), &[nt, n], "", "time x neuron value")?;
                let width = self.widths[k];
                let cols = part.columns.start * width..part.columns.end * width;
                if nt > 0 && !cols.is_empty() {
                    let view = ArrayView2::from_shape((nt, cols.len()), values)
                        .expect("one row per sample");
                    to.w.keep(ds.write_slice(view, (.., cols)));
                }
            }
        }
        Ok(())
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        self.times = from.replicated("time")?;
        let nt = self.times.len();
        for part in &mut self.parts {
            let g = from.group.group(&part.population.to_string())?;
            for (k, values) in part.values.iter_mut().enumerate() {
                let width = self.widths[k];
                let ds = g.dataset(&k.to_string())?;
                if ds.shape() != [nt, part.ids.len() * width] {
                    return Err("the recorded series have a different shape".into());
                }
                let cols = part.columns.start * width..part.columns.end * width;
                *values = if nt > 0 && !cols.is_empty() {
                    let a = ds.read_slice_2d::<f64, _>((.., cols))?;
                    a.iter().copied().collect()
                } else {
                    Vec::new()
                };
            }
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
