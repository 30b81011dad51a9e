//! Mean and variance of V per population at the times of `observables.moments`
//! (`/moments`), from exact fixed-point sums.

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, Schedule};
use crate::fixed::{fixed_moments, unfixed};
use crate::h5::{replicated, RawWrites};
use crate::spill::{Concat, Series, Stored};
use hdf5::File;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "moments";

pub struct Moments {
    schedule: Option<Schedule>,
    /// Sample times \[ms\].
    pub times: Series<f64>,
    /// Mean \[mV\] and variance [mV^2] of V per population, one entry per sample time.
    pub means: Vec<Series<f64>>,
    pub variances: Vec<Series<f64>>,
    /// Local sums not yet reduced: per sample and population, sum V and sum V^2 (fixed point).
    pending: Vec<i128>,
    blocks: Vec<(usize, Range<usize>)>,
    sizes: Vec<u64>,
}

/// The moment series in memory ([`Moments::to_vecs`]).
pub struct MomentSeries {
    pub times: Vec<f64>,
    pub means: Vec<Vec<f64>>,
    pub variances: Vec<Vec<f64>>,
}

impl Moments {
    pub fn new(config: &Config, blocks: &[(usize, Range<usize>)]) -> Self {
        let n_pop = config.populations.len();
        Moments {
            schedule: config.moments,
            times: Series::new(1),
            means: (0..n_pop).map(|_| Series::new(1)).collect(),
            variances: (0..n_pop).map(|_| Series::new(1)).collect(),
            pending: Vec::new(),
            blocks: blocks.to_vec(),
            sizes: config.populations.iter().map(|p| p.size).collect(),
        }
    }

    /// The series read back into memory (for tests and small runs).
    pub fn to_vecs(&self) -> MomentSeries {
        MomentSeries {
            times: self.times.to_vec(),
            means: self.means.iter().map(Series::to_vec).collect(),
            variances: self.variances.iter().map(Series::to_vec).collect(),
        }
    }

    /// Takes the local part of the moments of `v` at time `t` \[ms\]; the global values appear
    /// after the next reduction.
    pub fn sample(&mut self, t: f64, v: &[f64]) {
        let n_pop = self.sizes.len();
        let base = self.pending.len();
        self.pending.resize(base + 2 * n_pop, 0);
        let sums = &mut self.pending[base..];
        for (p, range) in &self.blocks {
            let (s1, s2) = fixed_moments(&v[range.clone()]);
            sums[2 * p] += s1;
            sums[2 * p + 1] += s2;
        }
        self.times.push(t);
    }
}

impl Observer for Moments {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        if self.schedule.is_some_and(|s| s.fires(at.b)) {
            self.sample(at.time, at.v);
        }
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }

    fn reduce(&mut self, comm: &dyn Comm) {
        if self.pending.is_empty() {
            return;
        }
        let n_pop = self.sizes.len();
        comm.sum_i128(&mut self.pending);
        for sample in self.pending.chunks_exact(2 * n_pop) {
            for p in 0..n_pop {
                let n = self.sizes[p] as f64;
                let mean = unfixed(sample[2 * p]) / n;
                let var = (unfixed(sample[2 * p + 1]) / n - mean * mean).max(0.0);
                self.means[p].push(mean);
                self.variances[p].push(var);
            }
        }
        self.pending.clear();
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        write_series(
            out.file,
            out.config,
            &self.times,
            &self.means,
            &self.variances,
            out.w,
        )
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        to.replicated("time", &self.times)?;
        to.replicated("mean", &Concat(&self.means))?;
        to.replicated("variance", &Concat(&self.variances))
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        from.series("time", &mut self.times)?;
        let nt = self.times.count();
        from.series_of("mean", &mut self.means, nt)?;
        from.series_of("variance", &mut self.variances, nt)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Writes `/moments`: the sample times and, per population, the mean and variance of V (a
/// run's or the limit's).
pub(crate) fn write_series<S: Stored<f64> + ?Sized, P: Stored<f64>>(
    file: &File,
    config: &Config,
    times: &S,
    means: &[P],
    variances: &[P],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let moments = file.create_group(GROUP)?;
    let nt = times.count();
    replicated(&moments, "time", times, &[nt], "ms", "sample times", w)?;
    for (i, p) in config.populations.iter().enumerate() {
        let g = moments.create_group(&p.name)?;
        replicated(
            &g,
            "mean",
            &means[i],
            &[nt],
            "mV",
            "population mean of V",
            w,
        )?;
        replicated(
            &g,
            "variance",
            &variances[i],
            &[nt],
            "mV^2",
            "population variance of V",
            w,
        )?;
    }
    Ok(())
}
