//! The spike trains of the recorded neurons, written in the SONATA layout (`/spikes/<pop>`).

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::config::Config;
use crate::h5::{attr, dataset};
use crate::spill::SpillFile;
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

/// A spike record: (gid, step).
type Record = (u32, u32);
const RECORD_BYTES: usize = 8;

/// The local spikes of the neurons whose spikes are written, in bounded memory: at most
/// `output.spike_buffer` MiB are held; beyond that they are appended to a spill file of this
/// rank in `$TMPDIR` (deleted when the run ends), in segments per block of local neurons
/// ("buckets"), so that the writers read back one bucket at a time, sort it by gid and write
/// it as part of the rank's slab. The output is the same, byte for byte, whether or not
/// anything was spilled.
pub struct Spikes {
    /// Whether spikes are written at all (`output.spikes`).
    on: bool,
    /// The gids whose spikes are written (`record_spikes` of each population).
    recorded: Vec<Range<u32>>,
    local: Range<u64>,
    /// Spikes so far per local neuron.
    counts: Vec<u32>,
    /// Records not yet spilled, in arrival order (a resumed run's restored records first,
    /// by gid).
    buffer: Vec<Record>,
    /// Records the buffer holds before a spill.
    limit: usize,
    /// Local neurons per bucket.
    block: usize,
    spill: Option<Spill>,
}

/// The spill file: per bucket, the (byte offset, records) of its segments, in arrival order.
struct Spill {
    file: SpillFile,
    segments: Vec<Vec<(u64, usize)>>,
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
        let n_local = (local.end - local.start) as usize;
        // Up to 1024 buckets of at least 64 neurons: the last bucket read back holds about
        // 1/1024 of the rank's spikes.
        let buckets = (n_local / 64).clamp(1, 1024);
        let limit = (config.raw.output.spike_buffer * 1024.0 * 1024.0 / RECORD_BYTES as f64)
            .max(1.0) as usize;
        Spikes {
            on: config.raw.output.spikes,
            recorded,
            local: local.clone(),
            counts: vec![0; n_local],
            buffer: Vec::with_capacity(limit.min(1 << 20)),
            limit,
            block: n_local.div_ceil(buckets).max(1),
            spill: None,
        }
    }

    fn buckets(&self) -> usize {
        self.counts.len().div_ceil(self.block).max(1)
    }

    fn bucket_of(&self, gid: u32) -> usize {
        (u64::from(gid) - self.local.start) as usize / self.block
    }

    fn push(&mut self, r: Record) {
        self.counts[(u64::from(r.0) - self.local.start) as usize] += 1;
        self.buffer.push(r);
        if self.buffer.len() >= self.limit {
            if let Err(e) = self.flush() {
                // Nothing is lost: the records stay in memory, and so do the later ones.
                eprintln!(
                    "lapicque: warning: {e}; this rank keeps its recorded spikes in memory from now on"
                );
                self.limit = usize::MAX;
            }
        }
    }

    /// Appends the buffer to the spill file, bucket by bucket.
    fn flush(&mut self) -> Result<(), String> {
        if self.spill.is_none() {
            self.spill = Some(Spill {
                file: SpillFile::create("spikes")?,
                segments: vec![Vec::new(); self.buckets()],
            });
        }
        // A counting sort by bucket, straight into the bytes written.
        let mut starts = vec![0usize; self.buckets() + 1];
        for r in &self.buffer {
            starts[self.bucket_of(r.0) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let first = starts.clone();
        let mut bytes = vec![0u8; self.buffer.len() * RECORD_BYTES];
        for &(g, s) in &self.buffer {
            let b = (u64::from(g) - self.local.start) as usize / self.block;
            let at = starts[b] * RECORD_BYTES;
            bytes[at..at + 4].copy_from_slice(&g.to_le_bytes());
            bytes[at + 4..at + 8].copy_from_slice(&s.to_le_bytes());
            starts[b] += 1;
        }
        let spill = self.spill.as_mut().expect("created above");
        let at = spill.file.append(&bytes)?;
        // Only what was written is listed.
        for (b, (&lo, &hi)) in first.iter().zip(&starts).enumerate() {
            if hi > lo {
                spill.segments[b].push((at + (lo * RECORD_BYTES) as u64, hi - lo));
            }
        }
        self.buffer.clear();
        Ok(())
    }

    /// The records of bucket `b`, sorted by gid, then step; `buffered` are the buffer's records
    /// of that bucket, already in that order.
    fn bucket(&self, b: usize, buffered: &[Record]) -> Result<Vec<Record>, String> {
        let mut out = Vec::new();
        if let Some(spill) = &self.spill {
            for &(offset, n) in &spill.segments[b] {
                let mut bytes = vec![0u8; n * RECORD_BYTES];
                spill.file.read(&mut bytes, offset)?;
                out.extend(bytes.chunks_exact(RECORD_BYTES).map(|c| {
                    (
                        u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                        u32::from_le_bytes(c[4..].try_into().expect("4 bytes")),
                    )
                }));
            }
        }
        out.extend_from_slice(buffered);
        // Stable: each neuron's records stay in arrival (= step) order (the spilled ones, of
        // earlier steps, come first).
        out.sort_by_key(|&(g, _)| g);
        Ok(out)
    }

    /// Calls `f` with the local records by gid, then step, one bucket at a time.
    fn by_gid(&self, mut f: impl FnMut(&[Record]) -> hdf5::Result<()>) -> hdf5::Result<()> {
        // The buffer sorted by gid once (stable: steps stay in order), then cut by bucket.
        let mut buffered = self.buffer.clone();
        buffered.sort_by_key(|&(g, _)| g);
        let mut lo = 0;
        for b in 0..self.buckets() {
            let hi = lo + buffered[lo..].partition_point(|r| self.bucket_of(r.0) == b);
            f(&self
                .bucket(b, &buffered[lo..hi])
                .map_err(|e| hdf5::Error::from(e.as_str()))?)?;
            lo = hi;
        }
        Ok(())
    }

    /// Every local record, by gid then step (for tests and small runs: all in memory).
    pub fn spikes(&self) -> Vec<Record> {
        let mut all = Vec::new();
        self.by_gid(|part| {
            all.extend_from_slice(part);
            Ok(())
        })
        .expect("the spike records can be read back");
        all
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
        for &g in at.fired {
            if self.recorded.iter().any(|r| r.contains(&g)) {
                self.push((g, step));
            }
        }
    }

    /// Spike trains sorted by node id then time (`sorting = "by_id"`): each rank's neurons are
    /// a contiguous gid block, so each rank writes one contiguous slab per population, one
    /// bucket of neurons after another.
    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        if !self.on {
            return Ok(());
        }
        let (config, comm) = (out.config, out.comm);
        let spikes = out.file.create_group(GROUP)?;
        // Per population: its datasets, the next position of this rank's slab, its gids.
        let mut sets = Vec::new();
        for p in &config.populations {
            let mine: u64 = self.counts[p.local_range(&self.local)]
                .iter()
                .map(|&c| u64::from(c))
                .sum();
            let counts = comm.all_gather_u64(mine);
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
            sets.push((ts, ids, offset as usize, p.gids()));
        }
        let mut spilled = [self.spill.as_ref().map_or(0, |s| s.file.end)];
        comm.sum_u64(&mut spilled);
        attr(&spikes, "spilled_bytes", spilled[0])?;
        let w = &mut *out.w;
        self.by_gid(|part| {
            let mut lo = 0;
            while lo < part.len() {
                let g = u64::from(part[lo].0);
                let set = sets
                    .iter_mut()
                    .find(|s| s.3.contains(&g))
                    .expect("every gid lies in a population");
                let hi = lo + part[lo..].partition_point(|&(g, _)| u64::from(g) < set.3.end);
                let mine = &part[lo..hi];
                let range = set.2..set.2 + mine.len();
                let times: Vec<f64> = mine
                    .iter()
                    .map(|&(_, s)| config.time(u64::from(s) + 1))
                    .collect();
                let nodes: Vec<u64> = mine
                    .iter()
                    .map(|&(g, _)| u64::from(g) - set.3.start)
                    .collect();
                w.keep(set.0.write_slice(&times, range.clone()));
                w.keep(set.1.write_slice(&nodes, range));
                set.2 += mine.len();
                lo = hi;
            }
            Ok(())
        })
    }

    /// The spikes so far, by gid then step: per-neuron counts (`count`), and the steps in
    /// that order (`step`).
    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        to.per_neuron("count", &self.counts)?;
        let mine: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let lengths = to.comm.all_gather_u64(mine);
        let total: u64 = lengths.iter().sum();
        let mut at = lengths[..to.comm.rank()].iter().sum::<u64>() as usize;
        let s = dataset::<u32>(
            &to.group,
            "step",
            &[total as usize],
            "steps",
            "step of each spike so far (by gid, then time)",
        )?;
        let w = &mut *to.w;
        self.by_gid(|part| {
            if !part.is_empty() {
                let steps: Vec<u32> = part.iter().map(|&(_, s)| s).collect();
                w.keep(s.write_slice(&steps, at..at + steps.len()));
                at += steps.len();
            }
            Ok(())
        })
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        let slab = &from.slab;
        let counts = from
            .group
            .dataset("count")?
            .read_slice_1d::<u32, _>(0..slab.end)?;
        let offset: usize = counts.iter().take(slab.start).map(|&c| c as usize).sum();
        let len: usize = counts.iter().skip(slab.start).map(|&c| c as usize).sum();
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.buffer.clear();
        self.spill = None;
        // Read back in pieces of at most one buffer, spilling as a run does.
        let steps = from.group.dataset("step")?;
        let mut left = counts.iter().skip(slab.start).map(|&c| c as usize);
        let (mut neuron, mut remaining) = (0usize, left.next().unwrap_or(0));
        let mut pos = offset;
        while pos < offset + len {
            let n = (offset + len - pos).min(self.limit);
            for s in steps.read_slice_1d::<u32, _>(pos..pos + n)? {
                while remaining == 0 {
                    neuron += 1;
                    remaining = left.next().expect("counts cover the steps");
                }
                let gid = u32::try_from(self.local.start + neuron as u64)
                    .expect("validated: gids fit u32");
                self.push((gid, s));
                remaining -= 1;
            }
            pos += n;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
