//! Mean and variance of V per population at the times of `observables.moments`
//! (`/moments`), from exact fixed-point sums.

use super::{rows_to_table, table_to_rows, Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, Schedule};
use crate::fixed::{fixed_moments, unfixed};
use crate::h5::{replicated, RawWrites};
use hdf5::File;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "moments";

pub struct Moments {
    schedule: Option<Schedule>,
    /// Sample times \[ms\].
    pub times: Vec<f64>,
    /// Mean \[mV\] and variance [mV^2] of V per population, one entry per sample time.
    pub means: Vec<Vec<f64>>,
    pub variances: Vec<Vec<f64>>,
    /// Local sums not yet reduced: per sample and population, sum V and sum V^2 (fixed point).
    pending: Vec<i128>,
    blocks: Vec<(usize, Range<usize>)>,
    sizes: Vec<u64>,
}

impl Moments {
    pub fn new(config: &Config, blocks: &[(usize, Range<usize>)]) -> Self {
        let n_pop = config.populations.len();
        Moments {
            schedule: config.moments,
            times: Vec::new(),
            means: vec![Vec::new(); n_pop],
            variances: vec![Vec::new(); n_pop],
            pending: Vec::new(),
            blocks: blocks.to_vec(),
            sizes: config.populations.iter().map(|p| p.size).collect(),
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
        to.replicated("mean", &rows_to_table(&self.means).0)?;
        to.replicated("variance", &rows_to_table(&self.variances).0)
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        let n_pop = self.sizes.len();
        self.times = from.replicated("time")?;
        let (means, variances): (Vec<f64>, Vec<f64>) =
            (from.replicated("mean")?, from.replicated("variance")?);
        if means.len() != n_pop * self.times.len() || variances.len() != means.len() {
            return Err("the moments have a different shape".into());
        }
        self.means = table_to_rows(&means, n_pop);
        self.variances = table_to_rows(&variances, n_pop);
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Writes `/moments`: the sample times and, per population, the mean and variance of V (a
/// run's or the limit's).
pub(crate) fn write_series(
    file: &File,
    config: &Config,
    times: &[f64],
    means: &[Vec<f64>],
    variances: &[Vec<f64>],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let moments = file.create_group(GROUP)?;
    let nt = times.len();
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
