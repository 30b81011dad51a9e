//! Population rates: spikes per population in the bins of `observables.rates` (`/rates`).

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, Schedule};
use crate::h5::{attr, replicated, RawWrites};
use hdf5::File;
use std::any::Any;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "rates";

/// Spike counts per population and rate bin: each rank counts its own neurons' spikes, and
/// the counts of the bins filled since the last reduction are summed over ranks (integers:
/// the same for any decomposition; and correct whatever route spikes take between ranks).
pub struct Rates {
    /// Per population, the spikes in each bin (reduced).
    pub counts: Vec<Vec<u64>>,
    /// Per population, this rank's spikes in the bins `dirty`, not yet reduced.
    local: Vec<Vec<u64>>,
    /// The bins with steps since the last reduction (the same on every rank).
    dirty: std::ops::Range<usize>,
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
            local: vec![vec![0; config.rates.bins()]; config.populations.len()],
            dirty: 0..0,
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

    fn at_boundary(&mut self, at: &Boundary) {
        let Some(bin) =
            at.b.checked_sub(1)
                .and_then(|step| self.schedule.bin_of_spike(step))
        else {
            return;
        };
        self.dirty = if self.dirty.is_empty() {
            bin..bin + 1
        } else {
            self.dirty.start.min(bin)..self.dirty.end.max(bin + 1)
        };
        let mut lo = 0;
        for (p, local) in self.local.iter_mut().enumerate() {
            let end = self.pop_starts[p] + self.sizes[p];
            let hi = lo + at.fired[lo..].partition_point(|&g| u64::from(g) < end);
            local[bin] += (hi - lo) as u64;
            lo = hi;
        }
    }

    fn pending(&self) -> usize {
        self.dirty.len() * self.local.len()
    }

    fn reduce(&mut self, comm: &dyn Comm) {
        if self.dirty.is_empty() {
            return;
        }
        let d = self.dirty.clone();
        let mut sums: Vec<u64> = self
            .local
            .iter()
            .flat_map(|l| l[d.clone()].to_vec())
            .collect();
        comm.sum_u64(&mut sums);
        for ((counts, local), part) in self
            .counts
            .iter_mut()
            .zip(&mut self.local)
            .zip(sums.chunks(d.len()))
        {
            for (c, x) in counts[d.clone()].iter_mut().zip(part) {
                *c += x;
            }
            local[d.clone()].fill(0);
        }
        self.dirty = 0..0;
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
