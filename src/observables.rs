//! Observables accumulated during a run and reduced across ranks into global values that do
//! not depend on the decomposition: population rates (integer spike counts), moments of V
//! (exact fixed-point sums) and normalised histograms of V (integer counts).

use crate::comm::Comm;
use crate::config::{Config, Schedule, StatisticsSpec};
use crate::fixed::{bin_of, fixed, fixed_moments, unfixed, FIXED};
use std::ops::Range;

/// Population variance of a series (NaN when empty).
fn variance(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n
}

/// Number of balance bins.
pub fn balance_bins(schedule: Option<Schedule>) -> usize {
    schedule.map_or(0, |b| b.bins())
}

/// Global observables, identical on every rank.
pub struct Recorder {
    /// Spike counts per population and rate bin.
    pub rate_counts: Vec<Vec<u64>>,
    /// The rate bins, in steps.
    pub rates: Schedule,
    /// Sample times of the moments \[ms\].
    pub moment_times: Vec<f64>,
    /// Mean and variance of V per population, one entry per sample time \[mV\], [mV^2].
    pub means: Vec<Vec<f64>>,
    pub variances: Vec<Vec<f64>>,
    pub histogram_times: Vec<f64>,
    /// Normalised histograms: per population, one row of `bins` densities [1/mV] per sample
    /// time, so that the sum over bins times the bin width is the fraction of neurons in range.
    pub histograms: Vec<Vec<f64>>,
    /// The extended density f(t, v, xi) (with `xi_bins > 1`): per population, `xi_bins x bins`
    /// densities [1/mV] per sample; the sum times the V bin width times `1 / xi_bins` is the
    /// fraction of neurons in range.
    pub densities: Vec<Vec<f64>>,
    /// Label histograms (populations with labels): per population, `k x label_bins` densities
    /// on [0, 1] per sample, one row per class.
    pub label_histograms: Vec<Vec<f64>>,
    /// Coordinate bin of each local neuron (empty with `xi_bins = 1`).
    xi_bin: Vec<u32>,
    xi_bins: usize,
    label_bins: usize,
    /// Classes per population (0: no labels).
    label_k: Vec<usize>,
    pending_labels: Vec<u64>,
    /// Population of each local neuron block: (population, local index range).
    blocks: Vec<(usize, Range<usize>)>,
    /// Local partial sums of samples not yet reduced across ranks: per sample and population,
    /// sum V and sum V^2 (fixed point); per sample, population and bin, counts.
    pending_moments: Vec<i128>,
    pending_histograms: Vec<u64>,
    bins: usize,
    /// Histogram bin width \[mV\].
    width: f64,
    sizes: Vec<u64>,
    pop_starts: Vec<u64>,
    /// Synaptic input per projection, balance bin and sign, by the step its spike was emitted
    /// in, as [`crate::exchange::Delivered::input`]; global, reduced; row-major (projection,
    /// bin, sign).
    pub balance_input: Vec<i128>,
    /// The local input not yet reduced, same shape.
    pending_balance: Vec<i128>,
    /// Aggregate input per population, balance bin and sign (positive, negative), summed over
    /// neurons and steps [mV/ms, fixed point], global; empty without aggregate terms.
    pub aggregate_balance: Vec<i128>,
    pending_aggregate: Vec<i128>,
    balance: Option<Schedule>,
    stats: StatisticsSpec,
    /// Per local neuron accumulators for the spike statistics and snapshots.
    pub neurons: PerNeuron,
    /// Number of V samples in `neurons.v_sum` (moment samples inside the statistics window).
    pub v_samples: u64,
    snapshots: Option<Schedule>,
    /// Snapshot times \[ms\].
    pub snapshot_times: Vec<f64>,
    /// First local gid.
    local_start: u64,
}

/// Accumulators per local neuron: inter-spike intervals (in steps, exact integers) and time
/// sums of V for Golomb's chi, over the statistics window; snapshots of the state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerNeuron {
    /// Step of the last spike in the window, `u32::MAX` before the first.
    pub last_spike: Vec<u32>,
    pub isi_count: Vec<u32>,
    /// Sum of the intervals \[steps\].
    pub isi_sum: Vec<u64>,
    /// Sum of the squared intervals [steps^2]: integers, exact in f64 below 2^53.
    pub isi_sum2: Vec<f64>,
    /// Sums of V and V^2 over the V samples \[mV\], [mV^2].
    pub v_sum: Vec<f64>,
    pub v_sum2: Vec<f64>,
    /// Snapshots, one row of local neurons per snapshot time.
    pub snapshot_v: Vec<f64>,
    pub snapshot_refractory: Vec<u32>,
}

/// Spike statistics of one population over the statistics window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PopulationStatistics {
    /// Mean over neurons with at least 3 spikes of the coefficient of variation of their
    /// inter-spike intervals (sample standard deviation / mean).
    pub cv_isi: f64,
    /// Number of neurons in that mean.
    pub cv_neurons: u64,
    /// Variance / mean of the population spike count in consecutive windows.
    pub fano_factor: f64,
    /// Golomb's synchrony measure: sqrt(Var_t(mean_i V_i) / mean_i Var_t(V_i)).
    pub chi: f64,
}

impl Recorder {
    /// `local`: the gids of this rank; `blocks`: the local index range of each population.
    pub fn new(config: &Config, local: Range<u64>, blocks: Vec<(usize, Range<usize>)>) -> Self {
        let n_pop = config.populations.len();
        let n_bins = config.rates.bins();
        let n_local = (local.end - local.start) as usize;
        let balance_len = 2 * config.projections.len() * balance_bins(config.balance);
        let agg_len = if config.aggregates.is_empty() {
            0
        } else {
            2 * n_pop * balance_bins(config.balance)
        };
        Recorder {
            balance_input: vec![0; balance_len],
            pending_balance: vec![0; balance_len],
            aggregate_balance: vec![0; agg_len],
            pending_aggregate: vec![0; agg_len],
            balance: config.balance,
            stats: config.statistics,
            neurons: PerNeuron {
                last_spike: vec![u32::MAX; n_local],
                isi_count: vec![0; n_local],
                isi_sum: vec![0; n_local],
                isi_sum2: vec![0.0; n_local],
                v_sum: vec![0.0; n_local],
                v_sum2: vec![0.0; n_local],
                snapshot_v: Vec::new(),
                snapshot_refractory: Vec::new(),
            },
            v_samples: 0,
            snapshots: config.snapshots,
            snapshot_times: Vec::new(),
            local_start: local.start,
            rate_counts: vec![vec![0; n_bins]; n_pop],
            rates: config.rates,
            moment_times: Vec::new(),
            means: vec![Vec::new(); n_pop],
            variances: vec![Vec::new(); n_pop],
            histogram_times: Vec::new(),
            histograms: vec![Vec::new(); n_pop],
            densities: vec![Vec::new(); n_pop],
            label_histograms: vec![Vec::new(); n_pop],
            xi_bin: match config.histogram.as_ref().map_or(1, |h| h.xi_bins) {
                1 => Vec::new(),
                b => local
                    .clone()
                    .map(|g| {
                        let p = &config.populations[config.population_of(g)];
                        crate::space::bin(p.coordinate(config.seed, g), b) as u32
                    })
                    .collect(),
            },
            xi_bins: config.histogram.as_ref().map_or(1, |h| h.xi_bins),
            label_bins: config.histogram.as_ref().map_or(1, |h| h.label_bins),
            label_k: config
                .populations
                .iter()
                .map(|p| p.model.labels.as_ref().map_or(0, |l| l.k()))
                .collect(),
            pending_labels: Vec::new(),
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
        let Some(bin) = self.rates.bin_of_step(step) else {
            return;
        };
        let mut lo = 0;
        for (p, counts) in self.rate_counts.iter_mut().enumerate() {
            let end = self.pop_starts[p] + self.sizes[p];
            let hi = lo + spikes[lo..].partition_point(|&g| u64::from(g) < end);
            counts[bin] += (hi - lo) as u64;
            lo = hi;
        }
    }

    /// Adds the input the spikes emitted in step `step` delivered, per projection, to the
    /// input balance.
    pub fn count_input(&mut self, step: u64, per_projection: &[crate::exchange::Delivered]) {
        let Some(bin) = self.balance.and_then(|b| b.bin_of_step(step)) else {
            return;
        };
        let n_bins = balance_bins(self.balance);
        for (k, d) in per_projection.iter().enumerate() {
            let at = 2 * (k * n_bins + bin);
            self.pending_balance[at] += d.input[0];
            self.pending_balance[at + 1] += d.input[1];
        }
    }

    /// Adds the aggregate input of step `step` (per population, positive and negative parts,
    /// summed over the local neurons, as [`crate::aggregate::Aggregates::balance`]).
    pub fn count_aggregate(&mut self, step: u64, parts: &[i128]) {
        let Some(bin) = self.balance.and_then(|b| b.bin_of_step(step)) else {
            return;
        };
        if self.pending_aggregate.is_empty() {
            return;
        }
        let n_bins = balance_bins(self.balance);
        for (p, pair) in parts.chunks_exact(2).enumerate() {
            self.pending_aggregate[(p * n_bins + bin) * 2] += pair[0];
            self.pending_aggregate[(p * n_bins + bin) * 2 + 1] += pair[1];
        }
    }

    /// The mean aggregate input per neuron of population `p` in each balance bin [mV/ms]: the
    /// positive (`negative = false`) or negative part.
    pub fn aggregate_input(&self, p: usize, negative: bool) -> Vec<f64> {
        let n_bins = balance_bins(self.balance);
        let (Some(b), false) = (self.balance, self.aggregate_balance.is_empty()) else {
            return vec![0.0; n_bins];
        };
        (0..n_bins)
            .map(|bin| {
                let steps = b.bin_steps(bin) as f64;
                let sum = self.aggregate_balance[(p * n_bins + bin) * 2 + usize::from(negative)];
                unfixed(sum) / (self.sizes[p] as f64 * steps)
            })
            .collect()
    }

    /// Updates the inter-spike intervals with the local spikes of step `step` (gids
    /// ascending).
    pub fn count_intervals(&mut self, step: u64, fired: &[u32]) {
        if step < self.stats.start || step >= self.stats.stop {
            return;
        }
        let step = step as u32;
        let n = &mut self.neurons;
        for &g in fired {
            let i = (u64::from(g) - self.local_start) as usize;
            let last = n.last_spike[i];
            if last != u32::MAX {
                let isi = step - last;
                n.isi_count[i] += 1;
                n.isi_sum[i] += u64::from(isi);
                n.isi_sum2[i] += f64::from(isi) * f64::from(isi);
            }
            n.last_spike[i] = step;
        }
    }

    /// Records the state at snapshot boundaries.
    pub fn snapshot(&mut self, boundary: u64, t: f64, v: &[f64], refractory: &[u32]) {
        if self.snapshots.is_some_and(|s| s.fires(boundary)) {
            self.snapshot_times.push(t);
            self.neurons.snapshot_v.extend_from_slice(v);
            self.neurons
                .snapshot_refractory
                .extend_from_slice(refractory);
        }
    }

    /// Takes the local part of the mean and variance of V per population at step boundary
    /// `boundary`, time `t` \[ms\]; the global values appear after the next
    /// [`Recorder::reduce`]. Inside the statistics window, also the time sums of each
    /// neuron's V for chi.
    pub fn sample_moments(&mut self, boundary: u64, t: f64, v: &[f64]) {
        if boundary >= self.stats.start && boundary <= self.stats.stop {
            self.v_samples += 1;
            let n = &mut self.neurons;
            for ((x, s), s2) in v.iter().zip(&mut n.v_sum).zip(&mut n.v_sum2) {
                *s += x;
                *s2 += x * x;
            }
        }
        let n_pop = self.sizes.len();
        let base = self.pending_moments.len();
        self.pending_moments.resize(base + 2 * n_pop, 0);
        let sums = &mut self.pending_moments[base..];
        for (p, range) in &self.blocks {
            let (s1, s2) = fixed_moments(&v[range.clone()]);
            sums[2 * p] += s1;
            sums[2 * p + 1] += s2;
        }
        self.moment_times.push(t);
    }

    /// Takes the local part of the normalised histograms of V per population (per coordinate
    /// bin with `xi_bins > 1`) and of the labels at time `t` \[ms\]; `lambda` holds `stride`
    /// entries per local neuron.
    pub fn sample_histogram(
        &mut self,
        t: f64,
        v: &[f64],
        lambda: &[f64],
        stride: usize,
        spec: &crate::config::HistogramSpec,
    ) {
        let bins = spec.bins;
        let row = self.xi_bins * bins;
        let width = (spec.v_max - spec.v_min) / bins as f64;
        let base = self.pending_histograms.len();
        self.pending_histograms
            .resize(base + self.sizes.len() * row, 0);
        let counts = &mut self.pending_histograms[base..];
        for (p, range) in &self.blocks {
            for i in range.clone() {
                if let Some(b) = bin_of(v[i], spec.v_min, width, bins) {
                    let xb = self.xi_bin.get(i).map_or(0, |&x| x as usize);
                    counts[p * row + xb * bins + b] += 1;
                }
            }
        }
        let lb = self.label_bins;
        let per_pop: usize = self.label_k.iter().map(|k| k * lb).sum();
        if per_pop > 0 {
            let base = self.pending_labels.len();
            self.pending_labels.resize(base + per_pop, 0);
            let counts = &mut self.pending_labels[base..];
            for (p, range) in &self.blocks {
                let k = self.label_k[*p];
                let offset: usize = self.label_k[..*p].iter().map(|k| k * lb).sum();
                for i in range.clone() {
                    for c in 0..k {
                        let b = ((lambda[i * stride + c] * lb as f64) as usize).min(lb - 1);
                        counts[offset + c * lb + b] += 1;
                    }
                }
            }
        }
        self.histogram_times.push(t);
    }

    /// Spike statistics per population (a collective: the per-neuron parts are summed across
    /// ranks exactly).
    pub fn statistics(&self, comm: &dyn Comm, dt: f64) -> Vec<PopulationStatistics> {
        let n_pop = self.sizes.len();
        // Per population: sum of CVs, neurons with a CV, sum of Var_t(V_i).
        let mut sums = vec![0i128; 3 * n_pop];
        let n = &self.neurons;
        let samples = self.v_samples as f64;
        for (p, range) in &self.blocks {
            for i in range.clone() {
                let k = f64::from(n.isi_count[i]);
                if n.isi_count[i] >= 2 {
                    let mean = n.isi_sum[i] as f64 / k;
                    let var = (n.isi_sum2[i] - k * mean * mean) / (k - 1.0);
                    sums[3 * p] += fixed(var.max(0.0).sqrt() / mean);
                    sums[3 * p + 1] += 1;
                }
                if self.v_samples > 0 {
                    let m = n.v_sum[i] / samples;
                    sums[3 * p + 2] += fixed((n.v_sum2[i] / samples - m * m).max(0.0));
                }
            }
        }
        comm.sum_i128(&mut sums);
        let (start_ms, stop_ms) = (self.stats.start as f64 * dt, self.stats.stop as f64 * dt);
        (0..n_pop)
            .map(|p| {
                let cv_neurons = sums[3 * p + 1] as u64;
                // Population mean V at the moment samples inside the window.
                let means: Vec<f64> = self
                    .moment_times
                    .iter()
                    .zip(&self.means[p])
                    .filter(|(&t, _)| t >= start_ms - 1e-9 && t <= stop_ms + 1e-9)
                    .map(|(_, &m)| m)
                    .collect();
                let var_of_mean = variance(&means);
                let mean_var = unfixed(sums[3 * p + 2]) / self.sizes[p] as f64;
                PopulationStatistics {
                    cv_isi: unfixed(sums[3 * p]) / cv_neurons as f64,
                    cv_neurons,
                    fano_factor: self.fano(p),
                    chi: (var_of_mean / mean_var).sqrt(),
                }
            })
            .collect()
    }

    /// Fano factor of the spike count of population `p` in consecutive windows of the
    /// statistics window (whole rate bins inside it and inside the rates' window only).
    fn fano(&self, p: usize) -> f64 {
        let r = self.rates;
        let end = (self.stats.stop.min(r.stop).saturating_sub(r.start) / r.every) as usize;
        let first = (self.stats.start.max(r.start) - r.start).div_ceil(r.every) as usize;
        let counts: Vec<f64> = self.rate_counts[p][first.min(end)..end]
            .chunks_exact(self.stats.fano_bins as usize)
            .map(|w| w.iter().sum::<u64>() as f64)
            .collect();
        let mean = counts.iter().sum::<f64>() / counts.len() as f64;
        variance(&counts) / mean
    }

    /// Mean synaptic input to population `p` per neuron in each balance bin through negative
    /// weights (`negative`) or positive ones [mV/ms]: the exact sum over its projections of
    /// weight x efficacy over the bin's events, / (size x bin width).
    pub fn synaptic_input(&self, config: &Config, p: usize, negative: bool) -> Vec<f64> {
        let Some(b) = self.balance else {
            return Vec::new();
        };
        let n_bins = b.bins();
        (0..n_bins)
            .map(|bin| {
                let mut sum = 0.0;
                for (k, proj) in config.projections.iter().enumerate() {
                    if proj.target != p {
                        continue;
                    }
                    let at = 2 * (k * n_bins + bin);
                    sum += if proj.per_synapse_weights() {
                        self.balance_input[at + usize::from(negative)] as f64 / (FIXED * FIXED)
                    } else {
                        // Efficacy sums by their sign: the input's sign is that of w e.
                        let part = usize::from(negative != (proj.weight < 0.0));
                        proj.weight * unfixed(self.balance_input[at + part])
                    };
                }
                let len = b.bin_steps(bin) as f64 * config.dt;
                sum / (self.sizes[p] as f64 * len)
            })
            .collect()
    }

    /// Number of local partial values waiting for [`Recorder::reduce`]; the same on every rank.
    /// Values per sample of each population's label histogram (classes x bins; 0 without).
    pub fn label_histograms_row_lengths(&self) -> Vec<usize> {
        self.label_k.iter().map(|k| k * self.label_bins).collect()
    }

    pub fn pending(&self) -> usize {
        self.pending_moments.len() + self.pending_histograms.len() + self.pending_labels.len()
    }

    /// Reduces the pending samples across ranks (a collective) into global values. Batching
    /// samples keeps reductions out of most steps, so ranks need not wait for each other
    /// between spike exchanges.
    pub fn reduce(&mut self, comm: &dyn Comm) {
        let n_pop = self.sizes.len();
        if !self.pending_balance.is_empty() {
            comm.sum_i128(&mut self.pending_balance);
            for (g, l) in self.balance_input.iter_mut().zip(&mut self.pending_balance) {
                *g += *l;
                *l = 0;
            }
        }
        if !self.pending_aggregate.is_empty() {
            comm.sum_i128(&mut self.pending_aggregate);
            for (g, l) in self
                .aggregate_balance
                .iter_mut()
                .zip(&mut self.pending_aggregate)
            {
                *g += *l;
                *l = 0;
            }
        }
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
            let xb = self.xi_bins;
            for sample in self.pending_histograms.chunks_exact(n_pop * xb * bins) {
                for p in 0..n_pop {
                    let norm = 1.0 / (self.sizes[p] as f64 * self.width);
                    let joint = &sample[p * xb * bins..(p + 1) * xb * bins];
                    let marginal = (0..bins).map(|b| (0..xb).map(|x| joint[x * bins + b]).sum());
                    self.histograms[p].extend(marginal.map(|c: u64| c as f64 * norm));
                    if xb > 1 {
                        // Density in (v, xi): divide by the xi bin width 1/xb as well.
                        let norm = norm * xb as f64;
                        self.densities[p].extend(joint.iter().map(|&c| c as f64 * norm));
                    }
                }
            }
            self.pending_histograms.clear();
        }
        if !self.pending_labels.is_empty() {
            comm.sum_u64(&mut self.pending_labels);
            let lb = self.label_bins;
            let per_sample: usize = self.label_k.iter().map(|k| k * lb).sum();
            for sample in self.pending_labels.chunks_exact(per_sample) {
                let mut offset = 0;
                for p in 0..n_pop {
                    let len = self.label_k[p] * lb;
                    let norm = lb as f64 / self.sizes[p] as f64;
                    let row = &sample[offset..offset + len];
                    self.label_histograms[p].extend(row.iter().map(|&c| c as f64 * norm));
                    offset += len;
                }
            }
            self.pending_labels.clear();
        }
    }

    /// Population rate per bin \[Hz\]; the last bin may be shorter than the others.
    pub fn rates(&self, p: usize, dt: f64) -> Vec<f64> {
        self.rate_counts[p]
            .iter()
            .enumerate()
            .map(|(b, &c)| {
                let len = self.rates.bin_steps(b) as f64 * dt;
                c as f64 / (self.sizes[p] as f64 * len) * 1000.0
            })
            .collect()
    }

    /// Mean rate of population `p` over the whole rates window \[Hz\] (NaN for an empty window).
    pub fn mean_rate(&self, p: usize, dt: f64) -> f64 {
        let r = self.rates;
        let spikes: u64 = self.rate_counts[p].iter().sum();
        spikes as f64 / (self.sizes[p] as f64 * (r.stop - r.start) as f64 * dt) * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::SerialComm;

    /// The chunked sums equal term-by-term sums of the terms rounded to the nearest multiple of
    /// 2^-32 (ties to even, computed here through `i128` directly), for chunks inside the fast
    /// range, chunks with a value outside it (large, infinite, NaN), values exactly halfway
    /// between two multiples, and a partial last chunk.
    #[test]
    fn fixed_moments_equal_term_by_term_sums() {
        let mut xs: Vec<f64> = (0..5000)
            .map(|i| ((i * 7919) % 2001) as f64 * 0.5 - 500.3 + 1e-7 * i as f64)
            .collect();
        xs[1500] = 3.0e4;
        xs[2100] = -511.999;
        xs[2101] = 2.5 / FIXED;
        xs[2102] = -3.5 / FIXED;
        xs[3100] = f64::NAN;
        xs[4200] = 5.0e12;
        xs[4300] = f64::INFINITY;
        let term = |y: f64| {
            if y.is_finite() {
                y.round_ties_even() as i128
            } else {
                0
            }
        };
        let naive = |s: &[f64]| {
            s.iter().fold((0i128, 0i128), |(a, b), &x| {
                (a + term(x * FIXED), b + term(x * x * FIXED))
            })
        };
        assert_eq!(fixed_moments(&xs), naive(&xs));
        assert_eq!(fixed_moments(&xs[2048..2900]), naive(&xs[2048..2900]));
        assert_eq!(fixed_moments(&xs[..700]), naive(&xs[..700]));
        // The fast path itself, on a chunk it takes: halfway terms round to even.
        assert_eq!(
            fixed_moments(&[2.5 / FIXED, 3.5 / FIXED, -2.5 / FIXED]).0,
            2 + 4 - 2
        );
    }

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
            Recorder::new(&config, 0..5, blocks.clone()),
            Recorder::new(&config, 0..5, blocks),
        );
        for k in 0..7 {
            let v: Vec<f64> = (0..5).map(|i| 0.37 * (i * k) as f64 % 4.5).collect();
            for r in [&mut now, &mut later] {
                r.sample_moments(k as u64, k as f64, &v);
                r.sample_histogram(k as f64, &v, &[], 0, &spec);
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
