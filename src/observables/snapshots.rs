//! Snapshots of every neuron's state at the times of `observables.snapshots` (`/snapshots`).

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::config::{Config, Schedule};
use crate::h5::{dataset, replicated, RawWrites};
use hdf5::Group;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "snapshots";

pub struct Snapshots {
    schedule: Option<Schedule>,
    /// Snapshot times \[ms\].
    pub times: Vec<f64>,
    /// One row of local neurons per snapshot time.
    pub v: Vec<f64>,
    pub refractory: Vec<u32>,
}

impl Snapshots {
    pub fn new(config: &Config) -> Self {
        Snapshots {
            schedule: config.snapshots,
            times: Vec::new(),
            v: Vec::new(),
            refractory: Vec::new(),
        }
    }

    /// Writes the snapshot times and, per snapshot, every neuron's V and refractory counter by
    /// gid into `g` (`n` neurons; this rank writes the columns `slab`): the same in the output
    /// and in checkpoints.
    fn write_group(
        &self,
        g: &Group,
        n: usize,
        slab: Range<usize>,
        w: &mut RawWrites,
    ) -> hdf5::Result<()> {
        let nt = self.times.len();
        replicated(g, "time", &self.times, &[nt], "ms", "snapshot times", w)?;
        let v = dataset::<f64>(g, "v", &[nt, n], "mV", "membrane potential (time x gid)")?;
        let r = dataset::<u32>(
            g,
            "refractory_steps",
            &[nt, n],
            "steps",
            "refractory steps left (time x gid)",
        )?;
        if nt > 0 && !slab.is_empty() {
            let shape = (nt, slab.len());
            let view =
                ndarray::ArrayView2::from_shape(shape, &self.v).expect("one row per snapshot");
            w.keep(v.write_slice(view, (.., slab.clone())));
            let view = ndarray::ArrayView2::from_shape(shape, &self.refractory)
                .expect("one row per snapshot");
            w.keep(r.write_slice(view, (.., slab)));
        }
        Ok(())
    }
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

impl Observer for Snapshots {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        if self.schedule.is_some_and(|s| s.fires(at.b)) {
            self.times.push(at.time);
            self.v.extend_from_slice(at.v);
            self.refractory.extend_from_slice(at.refractory);
        }
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        if self.schedule.is_none() {
            return Ok(());
        }
        let slab = out.local.start as usize..out.local.end as usize;
        let g = out.file.create_group(GROUP)?;
        self.write_group(&g, out.config.n_neurons() as usize, slab, out.w)
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        self.write_group(&to.group, to.n, to.slab.clone(), to.w)
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        self.times = from.replicated("time")?;
        if !self.times.is_empty() && !from.slab.is_empty() {
            self.v = columns(&from.group, "v", &from.slab)?;
            self.refractory = columns(&from.group, "refractory_steps", &from.slab)?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
