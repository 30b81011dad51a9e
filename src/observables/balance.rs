//! The input balance (`/balance`): mean recurrent excitatory and inhibitory input per neuron of
//! each population in the bins of `observables.balance`, from exact sums over the delivered
//! events and the aggregate terms, beside the expected external drive.

use super::bins::{Bins, PerBin};
use super::{Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, Schedule};
use crate::exchange::Delivered;
use crate::fixed::{unfixed, FIXED};
use crate::h5::{attr, replicated};
use std::any::Any;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "balance";

/// The input balance: sums per bin ([`Bins`]), one row per bin: per projection the two signs
/// of [`Delivered::input`] (per-synapse weights times efficacies in units of 2^-64 mV, or for
/// a constant weight the efficacies in units of 2^-32, by the bin of the step the spikes were
/// emitted in), then, with aggregate terms, per population the positive and negative aggregate
/// input summed over neurons and steps [mV/ms, 2^-32].
pub struct Balance {
    schedule: Option<Schedule>,
    n_proj: usize,
    /// Values per row.
    width: usize,
    sums: Bins<i128>,
    sizes: Vec<u64>,
}

impl Balance {
    pub fn new(config: &Config) -> Self {
        let n_proj = config.projections.len();
        let agg = if config.aggregates.is_empty() {
            0
        } else {
            2 * config.populations.len()
        };
        let width = if config.balance.is_some() {
            2 * n_proj + agg
        } else {
            0
        };
        Balance {
            schedule: config.balance,
            n_proj,
            width,
            sums: Bins::new(width),
            sizes: config.populations.iter().map(|p| p.size).collect(),
        }
    }

    fn n_bins(&self) -> usize {
        self.schedule.map_or(0, |b| b.bins())
    }

    /// The mean aggregate input per neuron of population `p` in each balance bin [mV/ms]: the
    /// positive (`negative = false`) or negative part.
    pub fn mean_aggregate_input(&self, p: usize, negative: bool) -> Vec<f64> {
        let mut out = Vec::new();
        self.sums
            .each_row(self.n_bins(), &mut |bin, row| {
                out.push(self.aggregate_input_of(p, negative, bin, row));
                Ok(())
            })
            .expect("the balance series can be read back");
        out
    }

    /// The mean aggregate input per neuron of population `p` in bin `bin` whose sums are `row`
    /// (0 without aggregate terms) [mV/ms].
    fn aggregate_input_of(&self, p: usize, negative: bool, bin: usize, row: &[i128]) -> f64 {
        if self.width == 2 * self.n_proj {
            return 0.0;
        }
        let steps = self.schedule.expect("a balance schedule").bin_steps(bin) as f64;
        unfixed(row[2 * self.n_proj + 2 * p + usize::from(negative)])
            / (self.sizes[p] as f64 * steps)
    }

    /// Mean input per neuron of population `p` in bin `bin` whose sums are `row`, through
    /// negative weights (`negative`) or positive ones, synaptic plus aggregate [mV/ms].
    fn mean_input(
        &self,
        config: &Config,
        p: usize,
        negative: bool,
        bin: usize,
        row: &[i128],
    ) -> f64 {
        let b = self.schedule.expect("a balance schedule");
        let mut sum = 0.0;
        for (k, proj) in config.projections.iter().enumerate() {
            if proj.target != p {
                continue;
            }
            sum += if proj.per_synapse_weights() {
                row[2 * k + usize::from(negative)] as f64 / (FIXED * FIXED)
            } else {
                // Efficacy sums by their sign: the input's sign is that of w e.
                let part = usize::from(negative != (proj.weight < 0.0));
                proj.weight * unfixed(row[2 * k + part])
            };
        }
        let synaptic = sum / (self.sizes[p] as f64 * (b.bin_steps(bin) as f64 * config.dt));
        synaptic + self.aggregate_input_of(p, negative, bin, row)
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
        if self.width == 2 * self.n_proj {
            return;
        }
        let at = 2 * self.n_proj;
        for (x, part) in self.sums.local(bin)[at..].iter_mut().zip(parts) {
            *x += part;
        }
    }

    fn delivered(&mut self, step: u64, input: &[Delivered]) {
        let Some(bin) = self.schedule.and_then(|b| b.bin_of_step(step)) else {
            return;
        };
        if self.width == 0 {
            return;
        }
        let row = self.sums.local(bin);
        for (k, d) in input.iter().enumerate() {
            row[2 * k] += d.input[0];
            row[2 * k + 1] += d.input[1];
        }
    }

    fn pending(&self) -> usize {
        self.sums.pending()
    }

    fn reduce(&mut self, comm: &dyn Comm) {
        self.sums.reduce(comm);
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
        let n_bins = b.bins();
        let starts: Vec<f64> = (0..n_bins)
            .map(|k| config.time(b.start + k as u64 * b.every))
            .collect();
        replicated(&g, "time", &starts, &[n_bins], "ms", "start of each bin", w)?;
        attr(&g, "bin_width", b.every as f64 * config.dt)?;
        for (p, pop) in config.populations.iter().enumerate() {
            let m = &pop.model.base;
            let ext = m.i_e + m.poisson_rate / 1000.0 * m.poisson_weight;
            let exc = |bin: usize, row: &[i128]| self.mean_input(config, p, false, bin, row);
            let inh = |bin: usize, row: &[i128]| self.mean_input(config, p, true, bin, row);
            let net = |bin: usize, row: &[i128]| exc(bin, row) + inh(bin, row) + ext;
            let pg = g.create_group(&pop.name)?;
            let series: [(&str, &PerBin<i128>, &str); 4] = [
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
                    &|_, _| ext,
                    "expected external drive i_e + poisson_rate * poisson_weight",
                ),
                ("net", &net, "excitatory + inhibitory + external"),
            ];
            for (name, value, description) in series {
                let data = self.sums.per_bin(n_bins, value);
                replicated(&pg, name, &data, &[n_bins], "mV/ms", description, w)?;
            }
        }
        Ok(())
    }

    /// The reduced sums so far, row by row ([`Bins::save`]).
    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        self.sums.save(to, "sums")
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        self.sums.restore(from, "sums")
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
