//! Snapshots of every neuron's state at the times of `observables.snapshots` (`/snapshots`).

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::config::{Config, Schedule};
use crate::h5::{dataset, replicated, RawWrites};
use crate::spill::{Series, Stored, Word, SERIES_BUFFER};
use hdf5::Group;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "snapshots";

pub struct Snapshots {
    schedule: Option<Schedule>,
    /// Snapshot times \[ms\].
    pub times: Series<f64>,
    /// One row of local neurons per snapshot time.
    pub v: Series<f64>,
    pub refractory: Series<u32>,
}

impl Snapshots {
    pub fn new(config: &Config, local: &Range<u64>) -> Self {
        let n = (local.end - local.start) as usize;
        Snapshots {
            schedule: config.snapshots,
            times: Series::new(1),
            v: Series::new(n),
            refractory: Series::new(n),
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
        let nt = self.times.count();
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
            w.keep(write_columns(&v, &self.v, &slab));
            w.keep(write_columns(&r, &self.refractory, &slab));
        }
        Ok(())
    }
}

/// Writes the rows of `series` (one per snapshot) into the columns `slab` of `ds`, a chunk of
/// rows at a time.
fn write_columns<T: hdf5::H5Type + Word>(
    ds: &hdf5::Dataset,
    series: &Series<T>,
    slab: &Range<usize>,
) -> hdf5::Result<()> {
    let mut at = 0;
    series
        .each_chunk(&mut |c| {
            let rows = c.len() / slab.len();
            let view = ndarray::ArrayView2::from_shape((rows, slab.len()), c)
                .map_err(|e| e.to_string())?;
            ds.write_slice(view, (at..at + rows, slab.clone()))
                .map_err(|e| e.to_string())?;
            at += rows;
            Ok(())
        })
        .map_err(|e| hdf5::Error::from(e.as_str()))
}

/// Columns `slab` of the (time x gid) dataset `name` of `g` into `series`, a chunk of rows at
/// a time.
fn read_columns<T: hdf5::H5Type + Word>(
    g: &Group,
    name: &str,
    slab: &Range<usize>,
    series: &mut Series<T>,
) -> hdf5::Result<()> {
    let ds = g.dataset(name)?;
    let nt = ds.shape().first().copied().unwrap_or(0);
    let step = (SERIES_BUFFER / T::BYTES / slab.len().max(1)).max(1);
    *series = Series::new(slab.len());
    let mut at = 0;
    while at < nt {
        let rows = step.min(nt - at);
        let a = ds.read_slice_2d::<T, _>((at..at + rows, slab.clone()))?;
        series.extend(a.iter().copied());
        at += rows;
    }
    Ok(())
}

impl Observer for Snapshots {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        if self.schedule.is_some_and(|s| s.fires(at.b)) {
            self.times.push(at.time);
            self.v.extend(at.v.iter().copied());
            self.refractory.extend(at.refractory.iter().copied());
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
        from.series("time", &mut self.times)?;
        if !self.times.is_empty() && !from.slab.is_empty() {
            read_columns(&from.group, "v", &from.slab, &mut self.v)?;
            read_columns(
                &from.group,
                "refractory_steps",
                &from.slab,
                &mut self.refractory,
            )?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
