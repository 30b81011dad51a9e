//! What a run observes, one file per observable, all behind one interface ([`Observer`]).
//!
//! Every observable accumulates locally (at step boundaries, on the aggregate input of a step,
//! on the spikes delivered after an exchange), reduces its local parts across ranks in a fixed
//! order into global values that do not depend on the decomposition (integer counts, exact
//! fixed-point sums), writes its series into the output file, and saves and restores its
//! state in checkpoints. The step loop, the checkpoint writer and the output writer loop over
//! the same list ([`Observers`]); hooks run once per step (or per exchange), never per neuron.
//!
//! A new observable is a new file here that implements [`Observer`], its configuration keys,
//! and one line in [`Observers::new`].

pub mod balance;
pub mod bins;
pub mod histograms;
pub mod moments;
pub mod pair_histogram;
pub mod rates;
pub mod record;
pub mod sampling;
pub mod snapshots;
pub mod spikes;
pub mod statistics;
pub mod trees;

use crate::comm::Comm;
use crate::config::Config;
use crate::connectivity::Connectivity;
use crate::exchange::Delivered;
use crate::h5::{RawWrites, PER_NEURON};
use crate::model::extra::Extra;
use crate::spill::{Series, Stored, Word};
use hdf5::{File, Group, H5Type};
use std::any::Any;
use std::ops::Range;

/// The local state at step boundary `b` (time `b dt`), after the step that ends there.
pub struct Boundary<'a> {
    pub b: u64,
    /// `b dt` \[ms\].
    pub time: f64,
    /// Potential and refractory steps left of each local neuron.
    pub v: &'a [f64],
    pub refractory: &'a [u32],
    /// The state beyond V of the general models.
    pub extra: &'a Extra,
    /// The local gids that spiked in the step ending at `b`, ascending (empty at `b = 0`).
    pub fired: &'a [u32],
    pub conn: &'a Connectivity,
    pub comm: &'a dyn Comm,
}

/// Where an observable writes its output: the file, and who writes which part.
pub struct Output<'a> {
    pub file: &'a File,
    pub config: &'a Config,
    pub comm: &'a dyn Comm,
    /// The gids of this rank.
    pub local: Range<u64>,
    pub(crate) w: &'a mut RawWrites,
}

/// An observable's part of a checkpoint: its own group, `/observables/<name>`. Per-neuron
/// datasets ([`Saved::per_neuron`]) have one row per gid, which the checkpoint's check of a
/// file verifies before any rank reads its slab.
pub struct Saved<'a> {
    pub group: Group,
    /// Number of neurons, and the gids of this rank as indices.
    pub n: usize,
    pub slab: Range<usize>,
    pub comm: &'a dyn Comm,
    pub(crate) w: &'a mut RawWrites,
}

impl Saved<'_> {
    /// A dataset of values every rank holds (rank 0 writes it).
    pub fn replicated<T: H5Type, D: Stored<T> + ?Sized>(
        &mut self,
        name: &str,
        data: &D,
    ) -> hdf5::Result<()> {
        crate::h5::replicated(&self.group, name, data, &[data.count()], "", "", self.w)
    }

    /// A dataset of one value per neuron, by gid (each rank writes its slab).
    pub fn per_neuron<T: H5Type>(&mut self, name: &str, data: &[T]) -> hdf5::Result<()> {
        let ds = crate::h5::dataset::<T>(&self.group, name, &[self.n], "", PER_NEURON)?;
        if !self.slab.is_empty() {
            self.w.keep(ds.write_slice(data, self.slab.clone()));
        }
        Ok(())
    }
}

/// An observable's part of a checkpoint being read back (on any number of ranks).
pub struct Restored<'a> {
    pub group: Group,
    pub slab: Range<usize>,
    pub comm: &'a dyn Comm,
}

impl Restored<'_> {
    /// A dataset written by [`Saved::replicated`].
    pub fn replicated<T: H5Type>(&self, name: &str) -> hdf5::Result<Vec<T>> {
        self.group.dataset(name)?.read_raw()
    }

    /// A series written by [`Saved::replicated`], read back in chunks.
    pub fn series<T: H5Type + Word>(&self, name: &str, into: &mut Series<T>) -> hdf5::Result<()> {
        let len = self.group.dataset(name)?.size();
        let rows = len.checked_div(into.width()).unwrap_or(0);
        self.series_of(name, std::slice::from_mut(into), rows)
    }

    /// Series written one after the other ([`crate::spill::Concat`]), `rows` rows each, read
    /// back in chunks (each part emptied first).
    pub fn series_of<T: H5Type + Word>(
        &self,
        name: &str,
        parts: &mut [Series<T>],
        rows: usize,
    ) -> hdf5::Result<()> {
        let ds = self.group.dataset(name)?;
        let total: usize = parts.iter().map(|p| p.width() * rows).sum();
        if ds.size() != total {
            return Err(
                format!("{name}: {} values where {total} were expected", ds.size())
                    .as_str()
                    .into(),
            );
        }
        let mut at = 0;
        for part in parts {
            let w = part.width();
            *part = Series::new(w);
            let end = at + w * rows;
            let step = (crate::spill::SERIES_BUFFER / T::BYTES / w.max(1)).max(1) * w.max(1);
            while at < end {
                let n = (end - at).min(step);
                part.extend(ds.read_slice_1d::<T, _>(at..at + n)?);
                at += n;
            }
        }
        Ok(())
    }

    /// This rank's slab of a dataset written by [`Saved::per_neuron`].
    pub fn per_neuron<T: H5Type + Clone>(&self, name: &str) -> hdf5::Result<Vec<T>> {
        Ok(self
            .group
            .dataset(name)?
            .read_slice_1d(self.slab.clone())?
            .to_vec())
    }
}

/// One observable of a run.
pub trait Observer: Any {
    /// Its name: the checkpoint group `/observables/<name>`.
    fn name(&self) -> &'static str;

    /// Takes what it needs at step boundary `b` (every boundary, `b = 0` included for a run
    /// from the start). A collective when the observable's samples are (the same boundaries
    /// on every rank).
    fn at_boundary(&mut self, _at: &Boundary) {}

    /// The aggregate input of step `step`, per population, positive and negative parts summed
    /// over the local neurons ([`crate::aggregate::Aggregates::balance`]).
    fn aggregate_input(&mut self, _step: u64, _parts: &[i128]) {}

    /// The input the spikes of step `step` delivered to local neurons, per projection. (Which
    /// spikes reached a rank depends on the route, [`crate::exchange::Route`]; an observable
    /// counts its own neurons' spikes at the boundary and reduces.)
    fn delivered(&mut self, _step: u64, _input: &[Delivered]) {}

    /// Local values waiting for [`Observer::reduce`] (the same number on every rank).
    fn pending(&self) -> usize {
        0
    }

    /// Reduces the local parts across ranks into global values (a collective).
    fn reduce(&mut self, _comm: &dyn Comm) {}

    /// Writes its series into the output (collective; `all` holds every observable, reduced).
    fn write(&self, out: &mut Output, all: &Observers) -> hdf5::Result<()>;

    /// Saves its state into a checkpoint (collective; reduced).
    fn save(&self, to: &mut Saved) -> hdf5::Result<()>;

    /// Restores the state [`Observer::save`] wrote.
    fn restore(&mut self, from: &Restored) -> hdf5::Result<()>;

    fn as_any(&self) -> &dyn Any;
}

/// Every observable of a run, in the order they are reduced, written and saved.
pub struct Observers {
    list: Vec<Box<dyn Observer>>,
}

/// Local values waiting for reduction beyond which the observables are reduced at the next
/// exchange (and at the end, and before a checkpoint): batching samples keeps reductions out
/// of most steps, so ranks need not wait for each other between spike exchanges.
pub const REDUCE_BATCH: usize = 1 << 16;

impl Observers {
    /// The observables of `config` on the rank that owns the gids `local`, whose population
    /// blocks are `blocks` (population, local index range).
    pub fn new(config: &Config, local: Range<u64>, blocks: &[(usize, Range<usize>)]) -> Self {
        let list: Vec<Box<dyn Observer>> = vec![
            Box::new(spikes::Spikes::new(config, &local)),
            Box::new(rates::Rates::new(config)),
            Box::new(moments::Moments::new(config, blocks)),
            Box::new(histograms::Histograms::new(config, &local, blocks)),
            Box::new(trees::TreeRecorder::new(config, local.clone())),
            Box::new(pair_histogram::PairHistogram::new(config)),
            Box::new(balance::Balance::new(config)),
            Box::new(statistics::Statistics::new(config, &local, blocks)),
            Box::new(snapshots::Snapshots::new(config, &local)),
            Box::new(record::Record::new(config, &local)),
        ];
        Observers { list }
    }

    /// The observable of type `T`.
    pub fn get<T: Observer>(&self) -> &T {
        self.list
            .iter()
            .find_map(|o| o.as_any().downcast_ref::<T>())
            .expect("every observable is registered")
    }

    pub fn at_boundary(&mut self, at: &Boundary) {
        for o in &mut self.list {
            o.at_boundary(at);
        }
    }

    pub fn aggregate_input(&mut self, step: u64, parts: &[i128]) {
        for o in &mut self.list {
            o.aggregate_input(step, parts);
        }
    }

    pub fn delivered(&mut self, step: u64, input: &[Delivered]) {
        for o in &mut self.list {
            o.delivered(step, input);
        }
    }

    pub fn pending(&self) -> usize {
        self.list.iter().map(|o| o.pending()).sum()
    }

    /// Reduces every observable's local parts (a collective, in list order).
    pub fn reduce(&mut self, comm: &dyn Comm) {
        for o in &mut self.list {
            o.reduce(comm);
        }
    }

    pub fn write(&self, out: &mut Output) -> hdf5::Result<()> {
        for o in &self.list {
            o.write(out, self)?;
        }
        Ok(())
    }

    /// Saves every observable into `/observables/<name>` of a checkpoint.
    pub(crate) fn save(
        &self,
        file: &File,
        n: usize,
        slab: Range<usize>,
        comm: &dyn Comm,
        w: &mut RawWrites,
    ) -> hdf5::Result<()> {
        let group = file.create_group("observables")?;
        for o in &self.list {
            let mut to = Saved {
                group: group.create_group(o.name())?,
                n,
                slab: slab.clone(),
                comm,
                w,
            };
            o.save(&mut to)?;
        }
        Ok(())
    }

    pub fn restore(
        &mut self,
        file: &File,
        slab: Range<usize>,
        comm: &dyn Comm,
    ) -> hdf5::Result<()> {
        for o in &mut self.list {
            let from = Restored {
                group: file.group(&format!("observables/{}", o.name()))?,
                slab: slab.clone(),
                comm,
            };
            o.restore(&from).map_err(|e| {
                hdf5::Error::from(format!("observables/{}: {e}", o.name()).as_str())
            })?;
        }
        Ok(())
    }
}

/// Population variance of a series (NaN when empty).
pub(crate) fn variance(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n
}

/// The population variance of the values `range` of a series of single values, as
/// [`variance`] computes it (two passes, reading the series back twice).
pub(crate) fn series_variance(s: &Series<f64>, range: Range<usize>) -> f64 {
    let visit = |f: &mut dyn FnMut(f64)| {
        let mut k = 0;
        s.for_each_row(|x| {
            if range.contains(&k) {
                f(x[0]);
            }
            k += 1;
        })
        .expect("the series can be read back");
    };
    let n = range.len() as f64;
    let mut sum = -0.0;
    visit(&mut |x| sum += x);
    let mean = sum / n;
    let mut squares = -0.0;
    visit(&mut |x| squares += (x - mean) * (x - mean));
    squares / n
}

#[cfg(test)]
mod tests {
    use super::histograms::Histograms;
    use super::moments::Moments;
    use super::*;
    use crate::comm::SerialComm;

    /// Reducing after every sample or once for all samples gives the same series, and the
    /// moments are those of the values.
    #[test]
    fn batched_reduction_equals_immediate_reduction() {
        let text = "[population.A]\nsize = 3\n[population.B]\nsize = 2\n\
                    [observables.histogram]\nv_min = 0.0\nv_max = 4.0\nbins = 4\n";
        let config = Config::from_toml(text, &[]).unwrap();
        let blocks = vec![(0, 0..3), (1, 3..5)];
        let new = || {
            (
                Moments::new(&config, &blocks),
                Histograms::new(&config, &(0..5), &blocks),
            )
        };
        let (mut now, mut later) = (new(), new());
        for k in 0..7 {
            let v: Vec<f64> = (0..5).map(|i| 0.37 * (i * k) as f64 % 4.5).collect();
            for (m, h) in [&mut now, &mut later] {
                m.sample(k as f64, &v);
                h.sample(k as f64, &v, &[], 0);
            }
            now.0.reduce(&SerialComm);
            now.1.reduce(&SerialComm);
            assert_eq!(now.0.pending() + now.1.pending(), 0);
            let a = &v[0..3];
            let mean = a.iter().sum::<f64>() / 3.0;
            assert!((now.0.means[0].to_vec()[k] - mean).abs() < 1e-8);
        }
        later.0.reduce(&SerialComm);
        later.1.reduce(&SerialComm);
        assert_eq!(now.0.means, later.0.means);
        assert_eq!(now.0.variances, later.0.variances);
        assert_eq!(now.1.histograms, later.1.histograms);
        assert_eq!(now.1.histograms[0].count(), 7 * 4);
    }
}
