//! Observables accumulated during a run and reduced across ranks into global values that do
//! not depend on the decomposition: population rates (integer spike counts), moments of V
//! (exact fixed-point sums) and normalised histograms of V (integer counts).

use crate::comm::Comm;
use crate::config::Config;
use std::ops::Range;

/// Fixed-point scale of exact sums: values are cut to multiples of 2^-32 before summing,
/// so the sum is an integer sum, exact and independent of order. An i128 holds 2^32 neurons at
/// |V|^2 up to 2^60 without overflow.
const FIXED: f64 = 4_294_967_296.0;

#[inline]
fn fixed(x: f64) -> i128 {
    // Truncation toward zero: any fixed rule gives order independence. Through i64 where the
    // value fits (|x| < 2^31), which compiles to one instruction; i128 conversion is a call.
    let y = x * FIXED;
    if y.abs() < 9.0e18 {
        y as i64 as i128
    } else {
        y as i128
    }
}

fn unfixed(x: i128) -> f64 {
    x as f64 / FIXED
}

/// Global observables, identical on every rank.
pub struct Recorder {
    /// Spike counts per population and rate bin.
    pub rate_counts: Vec<Vec<u64>>,
    pub rate_bin_steps: u64,
    /// Sample times of the moments [ms].
    pub moment_times: Vec<f64>,
    /// Mean and variance of V per population, one entry per sample time [mV], [mV^2].
    pub means: Vec<Vec<f64>>,
    pub variances: Vec<Vec<f64>>,
    pub histogram_times: Vec<f64>,
    /// Normalised histograms: per population, one row of `bins` densities [1/mV] per sample
    /// time, so that the sum over bins times the bin width is the fraction of neurons in range.
    pub histograms: Vec<Vec<f64>>,
    /// Population of each local neuron block: (population, local index range).
    blocks: Vec<(usize, Range<usize>)>,
    sizes: Vec<u64>,
    pop_starts: Vec<u64>,
}

impl Recorder {
    pub fn new(config: &Config, blocks: Vec<(usize, Range<usize>)>) -> Self {
        let n_pop = config.populations.len();
        let n_bins = config.n_steps.div_ceil(config.rate_bin_steps) as usize;
        Recorder {
            rate_counts: vec![vec![0; n_bins]; n_pop],
            rate_bin_steps: config.rate_bin_steps,
            moment_times: Vec::new(),
            means: vec![Vec::new(); n_pop],
            variances: vec![Vec::new(); n_pop],
            histogram_times: Vec::new(),
            histograms: vec![Vec::new(); n_pop],
            blocks,
            sizes: config.populations.iter().map(|p| p.size).collect(),
            pop_starts: config.populations.iter().map(|p| p.gid_start).collect(),
        }
    }

    /// Counts the global spikes of step `step` (gids ascending, the same list on every rank).
    pub fn count_spikes(&mut self, step: u64, spikes: &[u32]) {
        let bin = (step / self.rate_bin_steps) as usize;
        let mut lo = 0;
        for (p, counts) in self.rate_counts.iter_mut().enumerate() {
            let end = self.pop_starts[p] + self.sizes[p];
            let hi = lo + spikes[lo..].partition_point(|&g| u64::from(g) < end);
            counts[bin] += (hi - lo) as u64;
            lo = hi;
        }
    }

    /// Mean and variance of V per population at time `t` [ms], from the local potentials.
    pub fn sample_moments(&mut self, t: f64, v: &[f64], comm: &dyn Comm) {
        let n_pop = self.sizes.len();
        let mut sums = vec![0i128; 2 * n_pop];
        for (p, range) in &self.blocks {
            for &x in &v[range.clone()] {
                sums[2 * p] += fixed(x);
                sums[2 * p + 1] += fixed(x * x);
            }
        }
        comm.sum_i128(&mut sums);
        self.moment_times.push(t);
        for p in 0..n_pop {
            let n = self.sizes[p] as f64;
            let mean = unfixed(sums[2 * p]) / n;
            let var = (unfixed(sums[2 * p + 1]) / n - mean * mean).max(0.0);
            self.means[p].push(mean);
            self.variances[p].push(var);
        }
    }

    /// Normalised histograms of V per population at time `t` [ms].
    pub fn sample_histogram(
        &mut self,
        t: f64,
        v: &[f64],
        spec: &crate::config::HistogramSpec,
        comm: &dyn Comm,
    ) {
        let n_pop = self.sizes.len();
        let bins = spec.bins;
        let width = (spec.v_max - spec.v_min) / bins as f64;
        let mut counts = vec![0u64; n_pop * bins];
        for (p, range) in &self.blocks {
            for &x in &v[range.clone()] {
                let b = ((x - spec.v_min) / width).floor();
                if b >= 0.0 && b < bins as f64 {
                    counts[p * bins + b as usize] += 1;
                }
            }
        }
        comm.sum_u64(&mut counts);
        self.histogram_times.push(t);
        for p in 0..n_pop {
            let norm = 1.0 / (self.sizes[p] as f64 * width);
            self.histograms[p].extend(
                counts[p * bins..(p + 1) * bins]
                    .iter()
                    .map(|&c| c as f64 * norm),
            );
        }
    }

    /// Population rate per bin [Hz]; the last bin may be shorter than the others.
    pub fn rates(&self, p: usize, dt: f64, n_steps: u64) -> Vec<f64> {
        let counts = &self.rate_counts[p];
        counts
            .iter()
            .enumerate()
            .map(|(b, &c)| {
                let first = b as u64 * self.rate_bin_steps;
                let len = (n_steps - first).min(self.rate_bin_steps) as f64 * dt;
                c as f64 / (self.sizes[p] as f64 * len) * 1000.0
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_sums_are_order_independent() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 * 0.0137 - 5.3)
            .collect();
        let fwd: i128 = xs.iter().map(|&x| fixed(x)).sum();
        let rev: i128 = xs.iter().rev().map(|&x| fixed(x)).sum();
        assert_eq!(fwd, rev);
        let naive: f64 = xs.iter().sum();
        assert!((unfixed(fwd) - naive).abs() < 1e-6);
    }
}
