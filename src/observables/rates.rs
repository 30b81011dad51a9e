//! Population rates: spikes per population in the bins of `observables.rates` (`/rates`).

use super::{Observer, Observers, Output, Restored, Saved};
use crate::config::{Config, Schedule};
use crate::exchange::Delivered;
use crate::h5::{attr, replicated, RawWrites};
use hdf5::File;
use std::any::Any;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "rates";

/// Spike counts per population and rate bin (global: counted from the gathered spikes).
pub struct Rates {
    /// Per population, the spikes in each bin.
    pub counts: Vec<Vec<u64>>,
    /// The rate bins, in steps.
    pub schedule: Schedule,
    sizes: Vec<u64>,
    pop_starts: Vec<u64>,
    dt: f64,
}

impl Rates {
    pub fn new(config: &Config) -> Self {
        Rates {
            counts: vec![vec![0; config.rates.bins()]; config.populations.len()],
            schedule: config.rates,
            sizes: config.populations.iter().map(|p| p.size).collect(),
            pop_starts: config.populations.iter().map(|p| p.gid_start).collect(),
            dt: config.dt,
        }
    }

    /// Population rate of population `p` per bin \[Hz\]: its spikes over the steps whose
    /// spikes the bin holds ([`Schedule::spike_steps`]).
    pub fn rates(&self, p: usize) -> Vec<f64> {
        self.counts[p]
            .iter()
            .enumerate()
            .map(|(b, &c)| {
                let len = self.schedule.spike_steps(b) as f64 * self.dt;
                c as f64 / (self.sizes[p] as f64 * len) * 1000.0
            })
            .collect()
    }

    /// Mean rate of population `p` over the whole rates window \[Hz\] (NaN for an empty window).
    pub fn mean_rate(&self, p: usize) -> f64 {
        let r = self.schedule;
        let steps: u64 = (0..r.bins()).map(|b| r.spike_steps(b)).sum();
        let spikes: u64 = self.counts[p].iter().sum();
        spikes as f64 / (self.sizes[p] as f64 * steps as f64 * self.dt) * 1000.0
    }

    /// Spikes of population `p` in the rates window.
    pub fn spikes(&self, p: usize) -> u64 {
        self.counts[p].iter().sum()
    }
}

impl Observer for Rates {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn delivered(&mut self, step: u64, spikes: &[u32], _input: &[Delivered]) {
        let Some(bin) = self.schedule.bin_of_spike(step) else {
            return;
        };
        let mut lo = 0;
        for (p, counts) in self.counts.iter_mut().enumerate() {
            let end = self.pop_starts[p] + self.sizes[p];
            let hi = lo + spikes[lo..].partition_point(|&g| u64::from(g) < end);
            counts[bin] += (hi - lo) as u64;
            lo = hi;
        }
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        let rates: Vec<Vec<f64>> = (0..self.counts.len()).map(|p| self.rates(p)).collect();
        write_series(out.file, out.config, &rates, out.w)
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        to.replicated("counts", &self.counts.concat())
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        let flat: Vec<u64> = from.replicated("counts")?;
        let bins = self.schedule.bins();
        if flat.len() != bins * self.counts.len() {
            return Err("the rate counts have a different shape".into());
        }
        for (row, part) in self.counts.iter_mut().zip(flat.chunks(bins.max(1))) {
            row.copy_from_slice(part);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Writes `/rates`: the bin starts and, per population, one rate per bin \[Hz\] (a run's or
/// the limit's).
pub(crate) fn write_series(
    file: &File,
    config: &Config,
    rates: &[Vec<f64>],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let g = file.create_group(GROUP)?;
    let n_bins = rates.first().map_or(0, Vec::len);
    let r = config.rates;
    let starts: Vec<f64> = (0..n_bins)
        .map(|b| config.time(r.start + b as u64 * r.every))
        .collect();
    replicated(
        &g,
        "time",
        &starts,
        &[n_bins],
        "ms",
        "start of each rate bin",
        w,
    )?;
    attr(&g, "bin_width", r.every as f64 * config.dt)?;
    for (i, p) in config.populations.iter().enumerate() {
        replicated(
            &g,
            &p.name,
            &rates[i],
            &[n_bins],
            "Hz",
            "population rate: spikes per neuron per second in each bin",
            w,
        )?;
    }
    Ok(())
}
