//! The spike trains of the recorded neurons, written in the SONATA layout (`/spikes/<pop>`).

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::config::Config;
use crate::h5::{attr, dataset};
use hdf5::H5Type;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "spikes";

/// SONATA's `sorting` attribute of a spike population: an HDF5 enum over `u8`.
#[derive(H5Type, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(non_camel_case_types)]
pub enum Sorting {
    none = 0,
    by_id = 1,
    by_time = 2,
}

/// The local spikes of the neurons whose spikes are written.
pub struct Spikes {
    /// Whether spikes are written at all (`output.spikes`).
    on: bool,
    /// The gids whose spikes are written (`record_spikes` of each population).
    recorded: Vec<Range<u32>>,
    local: Range<u64>,
    /// Local spikes as (gid, step), in step order and ascending gid within a step (a resumed
    /// run holds the spikes before its first step sorted by gid, which the writers keep).
    pub spikes: Vec<(u32, u32)>,
}

impl Spikes {
    pub fn new(config: &Config, local: &Range<u64>) -> Self {
        let recorded = config
            .populations
            .iter()
            .map(|p| {
                let start = u32::try_from(p.gid_start).expect("validated: gids fit u32");
                start..start + u32::try_from(p.record_spikes).expect("validated: gids fit u32")
            })
            .collect();
        Spikes {
            on: config.raw.output.spikes,
            recorded,
            local: local.clone(),
            spikes: Vec::new(),
        }
    }

    /// The local spikes sorted by gid, then step (a stable sort keeps each neuron's steps in
    /// order).
    fn by_gid(&self) -> Vec<(u32, u32)> {
        let mut mine = self.spikes.clone();
        mine.sort_by_key(|&(g, _)| g);
        mine
    }
}

impl Observer for Spikes {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        if !self.on || at.b == 0 {
            return;
        }
        let step = u32::try_from(at.b - 1).expect("validated: fewer than 2^32 steps");
        let recorded = &self.recorded;
        self.spikes.extend(
            at.fired
                .iter()
                .filter(|&&g| recorded.iter().any(|r| r.contains(&g)))
                .map(|&g| (g, step)),
        );
    }

    /// Spike trains sorted by node id then time (`sorting = "by_id"`): each rank's neurons are
    /// a contiguous gid block, so each rank writes one contiguous slab.
    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        if !self.on {
            return Ok(());
        }
        let (config, comm) = (out.config, out.comm);
        let spikes = out.file.create_group(GROUP)?;
        let local = self.by_gid();
        let mut lo = 0;
        for p in &config.populations {
            let end = p.gid_start + p.size;
            let hi = lo + local[lo..].partition_point(|&(g, _)| u64::from(g) < end);
            let mine = &local[lo..hi];
            lo = hi;
            let counts = comm.all_gather_u64(mine.len() as u64);
            let total: u64 = counts.iter().sum();
            let offset: u64 = counts[..comm.rank()].iter().sum();
            let g = spikes.create_group(&p.name)?;
            attr(&g, "sorting", Sorting::by_id)?;
            let ts = dataset::<f64>(
                &g,
                "timestamps",
                &[total as usize],
                "ms",
                "spike times (end of the step in which the neuron crossed threshold)",
            )?;
            let ids = dataset::<u64>(
                &g,
                "node_ids",
                &[total as usize],
                "1",
                "neuron id within the population (gid - gid_start)",
            )?;
            if !mine.is_empty() {
                let range = offset as usize..(offset as usize + mine.len());
                let times: Vec<f64> = mine
                    .iter()
                    .map(|&(_, s)| config.time(u64::from(s) + 1))
                    .collect();
                let nodes: Vec<u64> = mine
                    .iter()
                    .map(|&(g, _)| u64::from(g) - p.gid_start)
                    .collect();
                out.w.keep(ts.write_slice(&times, range.clone()));
                out.w.keep(ids.write_slice(&nodes, range));
            }
        }
        Ok(())
    }

    /// The spikes so far, by gid then step: per-neuron counts (`count`), and the steps in
    /// that order (`step`).
    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        let mine = self.by_gid();
        let mut counts = vec![0u32; to.slab.len()];
        for &(g, _) in &mine {
            counts[(u64::from(g) - self.local.start) as usize] += 1;
        }
        to.per_neuron("count", &counts)?;
        let lengths = to.comm.all_gather_u64(mine.len() as u64);
        let total: u64 = lengths.iter().sum();
        let offset = lengths[..to.comm.rank()].iter().sum::<u64>() as usize;
        let s = dataset::<u32>(
            &to.group,
            "step",
            &[total as usize],
            "steps",
            "step of each spike so far (by gid, then time)",
        )?;
        if !mine.is_empty() {
            let steps: Vec<u32> = mine.iter().map(|&(_, s)| s).collect();
            to.w.keep(s.write_slice(&steps, offset..offset + steps.len()));
        }
        Ok(())
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        let slab = &from.slab;
        let counts = from
            .group
            .dataset("count")?
            .read_slice_1d::<u32, _>(0..slab.end)?;
        let offset: usize = counts.iter().take(slab.start).map(|&c| c as usize).sum();
        let len: usize = counts.iter().skip(slab.start).map(|&c| c as usize).sum();
        self.spikes.clear();
        if len > 0 {
            let steps = from
                .group
                .dataset("step")?
                .read_slice_1d::<u32, _>(offset..offset + len)?;
            let mut it = steps.iter();
            for (i, &c) in counts.iter().skip(slab.start).enumerate() {
                let gid =
                    u32::try_from(self.local.start + i as u64).expect("validated: gids fit u32");
                self.spikes
                    .extend(it.by_ref().take(c as usize).map(|&s| (gid, s)));
            }
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
