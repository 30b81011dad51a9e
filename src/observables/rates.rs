//! Population rates: spikes per population in the bins of `observables.rates` (`/rates`).

use super::bins::Bins;
use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::{Config, Schedule};
use crate::h5::{attr, replicated, RawWrites};
use crate::spill::Stored;
use hdf5::File;
use std::any::Any;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "rates";

/// Spike counts per rate bin and population ([`Bins`], one row per bin): each rank counts its
/// own neurons' spikes, and the counts of the bins filled since the last reduction are summed
/// over ranks (integers: the same for any decomposition; and correct whatever route spikes
/// take between ranks).
pub struct Rates {
    counts: Bins<u64>,
    /// The rate bins, in steps.
    pub schedule: Schedule,
    sizes: Vec<u64>,
    pop_starts: Vec<u64>,
    dt: f64,
}

impl Rates {
    pub fn new(config: &Config) -> Self {
        Rates {
            counts: Bins::new(config.populations.len()),
            schedule: config.rates,
            sizes: config.populations.iter().map(|p| p.size).collect(),
            pop_starts: config.populations.iter().map(|p| p.gid_start).collect(),
            dt: config.dt,
        }
    }

    /// Calls `f` with every bin and its (reduced) count per population.
    pub fn each_bin(&self, mut f: impl FnMut(usize, &[u64])) {
        self.counts
            .each_row(self.schedule.bins(), &mut |b, row| {
                f(b, row);
                Ok(())
            })
            .expect("the rate counts can be read back");
    }

    /// Population rate of population `p` in bin `b` of `count` spikes \[Hz\]: over the steps
    /// whose spikes the bin holds ([`Schedule::spike_steps`]).
    fn rate(&self, p: usize, b: usize, count: u64) -> f64 {
        let len = self.schedule.spike_steps(b) as f64 * self.dt;
        count as f64 / (self.sizes[p] as f64 * len) * 1000.0
    }

    /// Population rate of population `p` per bin \[Hz\].
    pub fn rates(&self, p: usize) -> Vec<f64> {
        let mut out = Vec::new();
        self.each_bin(|b, row| out.push(self.rate(p, b, row[p])));
        out
    }

    /// Mean rate of population `p` over the whole rates window \[Hz\] (NaN for an empty window).
    pub fn mean_rate(&self, p: usize) -> f64 {
        let r = self.schedule;
        let steps: u64 = (0..r.bins()).map(|b| r.spike_steps(b)).sum();
        self.spikes(p) as f64 / (self.sizes[p] as f64 * steps as f64 * self.dt) * 1000.0
    }

    /// Spikes of population `p` in the rates window.
    pub fn spikes(&self, p: usize) -> u64 {
        let mut n = 0;
        self.each_bin(|_, row| n += row[p]);
        n
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
        let row = self.counts.local(bin);
        let mut lo = 0;
        for (p, count) in row.iter_mut().enumerate() {
            let end = self.pop_starts[p] + self.sizes[p];
            let hi = lo + at.fired[lo..].partition_point(|&g| u64::from(g) < end);
            *count += (hi - lo) as u64;
            lo = hi;
        }
    }

    fn pending(&self) -> usize {
        self.counts.pending()
    }

    fn reduce(&mut self, comm: &dyn Comm) {
        self.counts.reduce(comm);
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        let n_bins = self.schedule.bins();
        let rates: Vec<_> = (0..self.sizes.len())
            .map(|p| move |b: usize, row: &[u64]| self.rate(p, b, row[p]))
            .collect();
        let series: Vec<_> = rates
            .iter()
            .map(|f| self.counts.per_bin(n_bins, f))
            .collect();
        write_series(out.file, out.config, &series, out.w)
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        self.counts.save(to, "counts")
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        self.counts.restore(from, "counts")
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Writes `/rates`: the bin starts and, per population, one rate per bin \[Hz\] (a run's or
/// the limit's).
pub(crate) fn write_series<P: Stored<f64>>(
    file: &File,
    config: &Config,
    rates: &[P],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let g = file.create_group(GROUP)?;
    let n_bins = rates.first().map_or(0, Stored::count);
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
