//! Spike statistics per population over `observables.statistics` (`/statistics`): the mean CV
//! of the inter-spike intervals, the Fano factor of the population count, and Golomb's
//! synchrony measure chi, from per-neuron accumulators summed exactly across ranks.

use super::moments::Moments;
use super::rates::Rates;
use super::{series_variance, variance, Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, Schedule, StatisticsSpec};
use crate::fixed::{fixed, unfixed};
use crate::h5::attr;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "statistics";

/// Accumulators per local neuron over the statistics window: inter-spike intervals (in
/// steps, exact integers) and time sums of V at the moment samples, for Golomb's chi.
pub struct Statistics {
    spec: StatisticsSpec,
    moments: Option<Schedule>,
    /// Step of the last spike in the window, `u32::MAX` before the first.
    last_spike: Vec<u32>,
    isi_count: Vec<u32>,
    /// Sum of the intervals \[steps\].
    isi_sum: Vec<u64>,
    /// Sum of the squared intervals [steps^2]: integers, exact in f64 below 2^53.
    isi_sum2: Vec<f64>,
    /// Sums of V and V^2 over the V samples \[mV\], [mV^2].
    v_sum: Vec<f64>,
    v_sum2: Vec<f64>,
    /// Number of V samples in `v_sum` (moment samples inside the window).
    v_samples: u64,
    local_start: u64,
    blocks: Vec<(usize, Range<usize>)>,
    sizes: Vec<u64>,
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

impl Statistics {
    pub fn new(config: &Config, local: &Range<u64>, blocks: &[(usize, Range<usize>)]) -> Self {
        let n = (local.end - local.start) as usize;
        Statistics {
            spec: config.statistics,
            moments: config.moments,
            last_spike: vec![u32::MAX; n],
            isi_count: vec![0; n],
            isi_sum: vec![0; n],
            isi_sum2: vec![0.0; n],
            v_sum: vec![0.0; n],
            v_sum2: vec![0.0; n],
            v_samples: 0,
            local_start: local.start,
            blocks: blocks.to_vec(),
            sizes: config.populations.iter().map(|p| p.size).collect(),
        }
    }

    /// Spike statistics per population (a collective: the per-neuron parts are summed across
    /// ranks exactly); the Fano factor from the rate counts, chi from the moment series.
    pub fn compute(
        &self,
        comm: &dyn Comm,
        dt: f64,
        rates: &Rates,
        moments: &Moments,
    ) -> Vec<PopulationStatistics> {
        let n_pop = self.sizes.len();
        // Per population: sum of CVs, neurons with a CV, sum of Var_t(V_i).
        let mut sums = vec![0i128; 3 * n_pop];
        let samples = self.v_samples as f64;
        for (p, range) in &self.blocks {
            for i in range.clone() {
                let k = f64::from(self.isi_count[i]);
                if self.isi_count[i] >= 2 {
                    let mean = self.isi_sum[i] as f64 / k;
                    let var = (self.isi_sum2[i] - k * mean * mean) / (k - 1.0);
                    sums[3 * p] += fixed(var.max(0.0).sqrt() / mean);
                    sums[3 * p + 1] += 1;
                }
                if self.v_samples > 0 {
                    let m = self.v_sum[i] / samples;
                    sums[3 * p + 2] += fixed((self.v_sum2[i] / samples - m * m).max(0.0));
                }
            }
        }
        comm.sum_i128(&mut sums);
        let (start_ms, stop_ms) = (self.spec.start as f64 * dt, self.spec.stop as f64 * dt);
        // The moment samples inside the window (their times ascend).
        let (mut first, mut end, mut k) = (usize::MAX, 0, 0);
        moments
            .times
            .for_each_row(|t| {
                if t[0] >= start_ms - 1e-9 && t[0] <= stop_ms + 1e-9 {
                    first = first.min(k);
                    end = k + 1;
                }
                k += 1;
            })
            .expect("the moment times can be read back");
        let window = first.min(end)..end;
        (0..n_pop)
            .map(|p| {
                let cv_neurons = sums[3 * p + 1] as u64;
                // Population mean V at the moment samples inside the window.
                let var_of_mean = series_variance(&moments.means[p], window.clone());
                let mean_var = unfixed(sums[3 * p + 2]) / self.sizes[p] as f64;
                PopulationStatistics {
                    cv_isi: unfixed(sums[3 * p]) / cv_neurons as f64,
                    cv_neurons,
                    fano_factor: self.fano(rates, p),
                    chi: (var_of_mean / mean_var).sqrt(),
                }
            })
            .collect()
    }

    /// Fano factor of the spike count of population `p` in consecutive windows of the
    /// statistics window (whole rate bins inside it and inside the rates' window only).
    fn fano(&self, rates: &Rates, p: usize) -> f64 {
        let r = rates.schedule;
        let end = (self.spec.stop.min(r.stop).saturating_sub(r.start) / r.every) as usize;
        let first = (self.spec.start.max(r.start) - r.start).div_ceil(r.every) as usize;
        // Spikes per window of `fano_bins` bins (whole windows only).
        let per = self.spec.fano_bins as usize;
        let whole = first + (end.saturating_sub(first) / per) * per;
        let mut counts: Vec<f64> = Vec::new();
        let mut sum = 0;
        rates.each_bin(|b, row| {
            if (first..whole).contains(&b) {
                sum += row[p];
                if (b - first + 1).is_multiple_of(per) {
                    counts.push(sum as f64);
                    sum = 0;
                }
            }
        });
        let mean = counts.iter().sum::<f64>() / counts.len() as f64;
        variance(&counts) / mean
    }
}

impl Observer for Statistics {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        let (start, stop) = (self.spec.start, self.spec.stop);
        if at.b > start && at.b - 1 < stop {
            // The intervals of the spikes of step b - 1.
            let step = (at.b - 1) as u32;
            for &g in at.fired {
                let i = (u64::from(g) - self.local_start) as usize;
                let last = self.last_spike[i];
                if last != u32::MAX {
                    let isi = step - last;
                    self.isi_count[i] += 1;
                    self.isi_sum[i] += u64::from(isi);
                    self.isi_sum2[i] += f64::from(isi) * f64::from(isi);
                }
                self.last_spike[i] = step;
            }
        }
        if self.moments.is_some_and(|s| s.fires(at.b)) && at.b >= start && at.b <= stop {
            self.v_samples += 1;
            for ((x, s), s2) in at.v.iter().zip(&mut self.v_sum).zip(&mut self.v_sum2) {
                *s += x;
                *s2 += x * x;
            }
        }
    }

    fn write(&self, out: &mut Output, all: &Observers) -> hdf5::Result<()> {
        let config = out.config;
        let stats = self.compute(out.comm, config.dt, all.get(), all.get());
        let g = out.file.create_group(GROUP)?;
        let s = config.statistics;
        attr(&g, "start", s.start as f64 * config.dt)?;
        attr(&g, "stop", s.stop as f64 * config.dt)?;
        attr(
            &g,
            "fano_window",
            (s.fano_bins * config.rates.every) as f64 * config.dt,
        )?;
        for (pop, st) in config.populations.iter().zip(stats) {
            let pg = g.create_group(&pop.name)?;
            attr(&pg, "cv_isi", st.cv_isi)?;
            attr(&pg, "cv_neurons", st.cv_neurons)?;
            attr(&pg, "fano_factor", st.fano_factor)?;
            attr(&pg, "chi", st.chi)?;
        }
        Ok(())
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        attr(&to.group, "v_samples", self.v_samples)?;
        to.per_neuron("last_spike", &self.last_spike)?;
        to.per_neuron("isi_count", &self.isi_count)?;
        to.per_neuron("isi_sum", &self.isi_sum)?;
        to.per_neuron("isi_sum2", &self.isi_sum2)?;
        to.per_neuron("v_sum", &self.v_sum)?;
        to.per_neuron("v_sum2", &self.v_sum2)
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        self.v_samples = from.group.attr("v_samples")?.read_scalar()?;
        if from.slab.is_empty() {
            return Ok(());
        }
        self.last_spike = from.per_neuron("last_spike")?;
        self.isi_count = from.per_neuron("isi_count")?;
        self.isi_sum = from.per_neuron("isi_sum")?;
        self.isi_sum2 = from.per_neuron("isi_sum2")?;
        self.v_sum = from.per_neuron("v_sum")?;
        self.v_sum2 = from.per_neuron("v_sum2")?;
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
