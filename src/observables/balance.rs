//! The input balance (`/balance`): mean recurrent excitatory and inhibitory input per neuron of
//! each population in the bins of `observables.balance`, from exact sums over the delivered
//! events and the aggregate terms, beside the expected external drive.

use super::{from_words, to_words, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, Schedule};
use crate::exchange::Delivered;
use crate::fixed::{unfixed, FIXED};
use crate::h5::{attr, replicated};
use std::any::Any;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "balance";

pub struct Balance {
    schedule: Option<Schedule>,
    /// Synaptic input per projection, balance bin and sign, by the step its spike was emitted
    /// in, as [`Delivered::input`]; global, reduced; row-major (projection, bin, sign).
    pub synaptic: Vec<i128>,
    /// The local input not yet reduced, same shape.
    pending: Vec<i128>,
    /// Aggregate input per population, balance bin and sign (positive, negative), summed over
    /// neurons and steps [mV/ms, fixed point], global; empty without aggregate terms.
    pub aggregate: Vec<i128>,
    pending_aggregate: Vec<i128>,
    sizes: Vec<u64>,
}

impl Balance {
    pub fn new(config: &Config) -> Self {
        let bins = config.balance.map_or(0, |b| b.bins());
        let len = 2 * config.projections.len() * bins;
        let agg_len = if config.aggregates.is_empty() {
            0
        } else {
            2 * config.populations.len() * bins
        };
        Balance {
            schedule: config.balance,
            synaptic: vec![0; len],
            pending: vec![0; len],
            aggregate: vec![0; agg_len],
            pending_aggregate: vec![0; agg_len],
            sizes: config.populations.iter().map(|p| p.size).collect(),
        }
    }

    fn bins(&self) -> usize {
        self.schedule.map_or(0, |b| b.bins())
    }

    /// The mean aggregate input per neuron of population `p` in each balance bin [mV/ms]: the
    /// positive (`negative = false`) or negative part.
    pub fn mean_aggregate_input(&self, p: usize, negative: bool) -> Vec<f64> {
        let n_bins = self.bins();
        let (Some(b), false) = (self.schedule, self.aggregate.is_empty()) else {
            return vec![0.0; n_bins];
        };
        (0..n_bins)
            .map(|bin| {
                let steps = b.bin_steps(bin) as f64;
                let sum = self.aggregate[(p * n_bins + bin) * 2 + usize::from(negative)];
                unfixed(sum) / (self.sizes[p] as f64 * steps)
            })
            .collect()
    }

    /// Mean synaptic input to population `p` per neuron in each balance bin through negative
    /// weights (`negative`) or positive ones [mV/ms]: the exact sum over its projections of
    /// weight x efficacy over the bin's events, / (size x bin width).
    pub fn synaptic_input(&self, config: &Config, p: usize, negative: bool) -> Vec<f64> {
        let Some(b) = self.schedule else {
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
                        self.synaptic[at + usize::from(negative)] as f64 / (FIXED * FIXED)
                    } else {
                        // Efficacy sums by their sign: the input's sign is that of w e.
                        let part = usize::from(negative != (proj.weight < 0.0));
                        proj.weight * unfixed(self.synaptic[at + part])
                    };
                }
                let len = b.bin_steps(bin) as f64 * config.dt;
                sum / (self.sizes[p] as f64 * len)
            })
            .collect()
    }
}

/// Adds the local part into the global sums and clears it.
fn absorb(comm: &dyn Comm, pending: &mut [i128], global: &mut [i128]) {
    if pending.is_empty() {
        return;
    }
    comm.sum_i128(pending);
    for (g, l) in global.iter_mut().zip(pending) {
        *g += *l;
        *l = 0;
    }
}

impl Observer for Balance {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn aggregate_input(&mut self, step: u64, parts: &[i128]) {
        let Some(bin) = self.schedule.and_then(|b| b.bin_of_step(step)) else {
            return;
        };
        if self.pending_aggregate.is_empty() {
            return;
        }
        let n_bins = self.bins();
        for (p, pair) in parts.chunks_exact(2).enumerate() {
            self.pending_aggregate[(p * n_bins + bin) * 2] += pair[0];
            self.pending_aggregate[(p * n_bins + bin) * 2 + 1] += pair[1];
        }
    }

    fn delivered(&mut self, step: u64, input: &[Delivered]) {
        let Some(bin) = self.schedule.and_then(|b| b.bin_of_step(step)) else {
            return;
        };
        let n_bins = self.bins();
        for (k, d) in input.iter().enumerate() {
            let at = 2 * (k * n_bins + bin);
            self.pending[at] += d.input[0];
            self.pending[at + 1] += d.input[1];
        }
    }

    fn reduce(&mut self, comm: &dyn Comm) {
        absorb(comm, &mut self.pending, &mut self.synaptic);
        absorb(comm, &mut self.pending_aggregate, &mut self.aggregate);
    }

    /// Mean input per population and bin: recurrent excitatory (positive weights) and
    /// inhibitory (negative weights) from the delivered events plus the aggregate terms,
    /// external (the expected drive `i_e + poisson_rate * poisson_weight`) and their sum.
    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        let (config, w) = (out.config, &mut *out.w);
        let Some(b) = config.balance else {
            return Ok(());
        };
        let g = out.file.create_group(GROUP)?;
        let n_bins = self.bins();
        let starts: Vec<f64> = (0..n_bins)
            .map(|k| config.time(b.start + k as u64 * b.every))
            .collect();
        replicated(&g, "time", &starts, &[n_bins], "ms", "start of each bin", w)?;
        attr(&g, "bin_width", b.every as f64 * config.dt)?;
        for (p, pop) in config.populations.iter().enumerate() {
            let add = |x: Vec<f64>, y: Vec<f64>| -> Vec<f64> {
                x.iter().zip(&y).map(|(a, b)| a + b).collect()
            };
            let exc = add(
                self.synaptic_input(config, p, false),
                self.mean_aggregate_input(p, false),
            );
            let inh = add(
                self.synaptic_input(config, p, true),
                self.mean_aggregate_input(p, true),
            );
            let m = &pop.model.base;
            let ext = vec![m.i_e + m.poisson_rate / 1000.0 * m.poisson_weight; n_bins];
            let net: Vec<f64> = (0..n_bins).map(|k| exc[k] + inh[k] + ext[k]).collect();
            let pg = g.create_group(&pop.name)?;
            let series: [(&str, &[f64], &str); 4] = [
                (
                    "excitatory",
                    &exc,
                    "mean recurrent input through positive weights, by the bin of the spike's emission, plus the positive aggregate input (per neuron and term, at the start of each step)",
                ),
                (
                    "inhibitory",
                    &inh,
                    "mean recurrent input through negative weights, by the bin of the spike's emission, plus the negative aggregate input (per neuron and term, at the start of each step)",
                ),
                (
                    "external",
                    &ext,
                    "expected external drive i_e + poisson_rate * poisson_weight",
                ),
                ("net", &net, "excitatory + inhibitory + external"),
            ];
            for (name, data, description) in series {
                replicated(&pg, name, data, &[n_bins], "mV/ms", description, w)?;
            }
        }
        Ok(())
    }

    /// The reduced sums as low and high 64-bit words: `synaptic` (per projection, bin and
    /// sign; per-synapse weights times efficacies in units of 2^-64 mV, or for a constant
    /// weight the efficacies in units of 2^-32) and `aggregate` (per population, bin and sign,
    /// units of 2^-32 mV/ms).
    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        to.replicated("synaptic", &to_words(&self.synaptic))?;
        to.replicated("aggregate", &to_words(&self.aggregate))
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        from_words(&from.replicated::<u64>("synaptic")?, &mut self.synaptic)?;
        from_words(&from.replicated::<u64>("aggregate")?, &mut self.aggregate)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
