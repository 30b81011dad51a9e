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
    /// Local partial sums of samples not yet reduced across ranks: per sample and population,
    /// sum V and sum V^2 (fixed point); per sample, population and bin, counts.
    pending_moments: Vec<i128>,
    pending_histograms: Vec<u64>,
    bins: usize,
    /// Histogram bin width [mV].
    width: f64,
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
            pending_moments: Vec::new(),
            pending_histograms: Vec::new(),
            bins: config.histogram.as_ref().map_or(0, |h| h.bins),
            width: config
                .histogram
                .as_ref()
                .map_or(1.0, |h| (h.v_max - h.v_min) / h.bins as f64),
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

    /// Takes the local part of the mean and variance of V per population at time `t` [ms];
    /// the global values appear after the next [`Recorder::reduce`].
    pub fn sample_moments(&mut self, t: f64, v: &[f64]) {
        let n_pop = self.sizes.len();
        let base = self.pending_moments.len();
        self.pending_moments.resize(base + 2 * n_pop, 0);
        let sums = &mut self.pending_moments[base..];
        for (p, range) in &self.blocks {
            for &x in &v[range.clone()] {
                sums[2 * p] += fixed(x);
                sums[2 * p + 1] += fixed(x * x);
            }
        }
        self.moment_times.push(t);
    }

    /// Takes the local part of the normalised histograms of V per population at time `t` [ms].
    pub fn sample_histogram(&mut self, t: f64, v: &[f64], spec: &crate::config::HistogramSpec) {
        let bins = spec.bins;
        let width = (spec.v_max - spec.v_min) / bins as f64;
        let base = self.pending_histograms.len();
        self.pending_histograms
            .resize(base + self.sizes.len() * bins, 0);
        let counts = &mut self.pending_histograms[base..];
        for (p, range) in &self.blocks {
            for &x in &v[range.clone()] {
                let b = ((x - spec.v_min) / width).floor();
                if b >= 0.0 && b < bins as f64 {
                    counts[p * bins + b as usize] += 1;
                }
            }
        }
        self.histogram_times.push(t);
    }

    /// Number of local partial values waiting for [`Recorder::reduce`]; the same on every rank.
    pub fn pending(&self) -> usize {
        self.pending_moments.len() + self.pending_histograms.len()
    }

    /// Reduces the pending samples across ranks (a collective) into global values. Batching
    /// samples keeps reductions out of most steps, so ranks need not wait for each other
    /// between spike exchanges.
    pub fn reduce(&mut self, comm: &dyn Comm) {
        let n_pop = self.sizes.len();
        if !self.pending_moments.is_empty() {
            comm.sum_i128(&mut self.pending_moments);
            for sample in self.pending_moments.chunks_exact(2 * n_pop) {
                for p in 0..n_pop {
                    let n = self.sizes[p] as f64;
                    let mean = unfixed(sample[2 * p]) / n;
                    let var = (unfixed(sample[2 * p + 1]) / n - mean * mean).max(0.0);
                    self.means[p].push(mean);
                    self.variances[p].push(var);
                }
            }
            self.pending_moments.clear();
        }
        if !self.pending_histograms.is_empty() {
            comm.sum_u64(&mut self.pending_histograms);
            let bins = self.bins;
            for sample in self.pending_histograms.chunks_exact(n_pop * bins) {
                for p in 0..n_pop {
                    let norm = 1.0 / (self.sizes[p] as f64 * self.width);
                    let row = &sample[p * bins..(p + 1) * bins];
                    self.histograms[p].extend(row.iter().map(|&c| c as f64 * norm));
                }
            }
            self.pending_histograms.clear();
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
    use crate::comm::SerialComm;

    /// Reducing after every sample or once for all samples gives the same series, and the
    /// moments are those of the values.
    #[test]
    fn batched_reduction_equals_immediate_reduction() {
        let text = "[population.A]\nsize = 3\n[population.B]\nsize = 2\n\
                    [observables.histogram]\nv_min = 0.0\nv_max = 4.0\nbins = 4\n";
        let config = Config::from_toml(text, &[]).unwrap();
        let spec = config.histogram.clone().unwrap();
        let blocks = vec![(0, 0..3), (1, 3..5)];
        let (mut now, mut later) = (
            Recorder::new(&config, blocks.clone()),
            Recorder::new(&config, blocks),
        );
        for k in 0..7 {
            let v: Vec<f64> = (0..5).map(|i| 0.37 * (i * k) as f64 % 4.5).collect();
            for r in [&mut now, &mut later] {
                r.sample_moments(k as f64, &v);
                r.sample_histogram(k as f64, &v, &spec);
            }
            now.reduce(&SerialComm);
            assert_eq!(now.pending(), 0);
            let a = &v[0..3];
            let mean = a.iter().sum::<f64>() / 3.0;
            assert!((now.means[0][k] - mean).abs() < 1e-8);
        }
        later.reduce(&SerialComm);
        assert_eq!(now.means, later.means);
        assert_eq!(now.variances, later.variances);
        assert_eq!(now.histograms, later.histograms);
        assert_eq!(now.histograms[0].len(), 7 * 4);
    }

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
