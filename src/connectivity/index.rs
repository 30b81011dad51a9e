//! Where each source's synapses lie in a projection table, in memory that grows with the
//! sources present on this rank rather than with the whole source population.
//!
//! Sources are grouped in blocks of 64 offsets. Each block stores where its synapses start
//! in the table, a presence mask (bit `i`: source `64 b + i` has local synapses) and the run
//! number of its first present source; each present source (a *run*) stores where its synapses
//! start relative to its block, in 16 bits where every block holds fewer than 2^16 synapses,
//! else 32. A table of `N` sources with `n` present costs `24 N / 64 + 2 n` (or `4 n`) bytes:
//! 0.375 bytes per source of the whole population plus 2 per present one, against 8 per source
//! for a dense offset array. A lookup reads the block (one cache line, which also answers "no
//! local targets" without touching anything else) and two starts.

use std::ops::Range;

/// Sources per block (the bits of a presence mask).
const BLOCK: u64 = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Block {
    /// Position in the table of the block's first synapse.
    base: u64,
    /// Bit `i`: source `64 b + i` has synapses here.
    present: u64,
    /// Run number of the block's first present source.
    first_run: u32,
}

/// Per run, the position of its first synapse relative to its block's base.
#[derive(Clone, Debug)]
enum Starts {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Starts {
    #[inline(always)]
    fn get(&self, j: usize) -> u64 {
        match self {
            Starts::U16(v) => u64::from(v[j]),
            Starts::U32(v) => u64::from(v[j]),
        }
    }

    fn set(&mut self, j: usize, x: u64) {
        match self {
            Starts::U16(v) => v[j] = x as u16,
            Starts::U32(v) => v[j] = x as u32,
        }
    }

    fn len(&self) -> usize {
        match self {
            Starts::U16(v) => v.len(),
            Starts::U32(v) => v.len(),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Starts::U16(v) => 2 * v.len() as u64,
            Starts::U32(v) => 4 * v.len() as u64,
        }
    }
}

/// The synapse counts per source while a table is built: the low byte of each count in a
/// dense array, the higher part (the number of times the byte wrapped) aside, so that counting
/// costs about a byte per source of the whole population however many synapses a source has
/// here, and the map is touched once every 256 synapses of a source.
#[derive(Clone, Debug)]
pub struct Counts {
    low: Vec<u8>,
    high: std::collections::HashMap<u32, u64>,
}

impl Counts {
    pub fn new(n_sources: usize) -> Self {
        Counts {
            low: vec![0; n_sources],
            high: Default::default(),
        }
    }

    #[inline]
    pub fn add(&mut self, s: u32) {
        let c = &mut self.low[s as usize];
        *c = c.wrapping_add(1);
        if *c == 0 {
            *self.high.entry(s).or_insert(0) += 1;
        }
    }

    fn get(&self, s: usize) -> u64 {
        // Most tables on many ranks have no count of 256 or more: no map to look into.
        let high = if self.high.is_empty() {
            0
        } else {
            self.high.get(&(s as u32)).copied().unwrap_or(0)
        };
        u64::from(self.low[s]) + 256 * high
    }
}

/// The index of one table: source offset -> run number and synapse positions.
#[derive(Clone, Debug)]
pub struct SourceIndex {
    /// One per block, plus a last one holding the table's length and number of runs.
    blocks: Vec<Block>,
    starts: Starts,
    n_sources: u64,
}

impl SourceIndex {
    /// The index of a table whose source `s` has `counts[s]` synapses, laid out source by
    /// source, ready to be filled: [`SourceIndex::place`] for every synapse, then
    /// [`SourceIndex::filled`].
    pub fn from_counts(counts: &Counts) -> Self {
        let n = counts.low.len();
        let n_blocks = n.div_ceil(BLOCK as usize);
        let mut blocks = crate::memory::huge(Vec::with_capacity(n_blocks + 1));
        let (mut base, mut runs, mut widest) = (0u64, 0u32, 0u64);
        for b in 0..n_blocks {
            let mut block = Block {
                base,
                present: 0,
                first_run: runs,
            };
            for i in 0..BLOCK as usize {
                let s = b * BLOCK as usize + i;
                let c = if s < n { counts.get(s) } else { 0 };
                if c > 0 {
                    block.present |= 1 << i;
                    base += c;
                    runs += 1;
                }
            }
            widest = widest.max(base - block.base);
            blocks.push(block);
        }
        blocks.push(Block {
            base,
            present: 0,
            first_run: runs,
        });
        let mut starts = if widest <= u64::from(u16::MAX) {
            Starts::U16(crate::memory::huge(vec![0; runs as usize]))
        } else {
            assert!(
                widest <= u64::from(u32::MAX),
                "fewer than 2^32 synapses per 64 sources on one rank"
            );
            Starts::U32(crate::memory::huge(vec![0; runs as usize]))
        };
        for (b, block) in blocks[..n_blocks].iter().enumerate() {
            let mut start = 0;
            let mut j = block.first_run as usize;
            for i in 0..BLOCK as usize {
                if block.present >> i & 1 == 1 {
                    starts.set(j, start);
                    start += counts.get(b * BLOCK as usize + i);
                    j += 1;
                }
            }
        }
        SourceIndex {
            blocks,
            starts,
            n_sources: n as u64,
        }
    }

    /// The position for the next synapse of source `s` while the table is filled: each call
    /// moves the run's start on by one, so that the run is filled in order.
    pub fn place(&mut self, s: u64) -> usize {
        let (b, j) = self.run_of(s).expect("a counted source is present");
        let at = self.starts.get(j);
        self.starts.set(j, at + 1);
        (self.blocks[b].base + at) as usize
    }

    /// Ends the filling: each run's start had moved to its end, which is where the next run of
    /// its block begins.
    pub fn filled(&mut self) {
        for b in 0..self.blocks.len() - 1 {
            let runs = self.blocks[b].first_run as usize..self.blocks[b + 1].first_run as usize;
            let mut start = 0;
            for j in runs {
                let end = self.starts.get(j);
                self.starts.set(j, start);
                start = end;
            }
        }
    }

    #[inline(always)]
    fn run_of(&self, s: u64) -> Option<(usize, usize)> {
        let b = (s / BLOCK) as usize;
        let bit = s % BLOCK;
        let block = &self.blocks[b];
        if block.present >> bit & 1 == 0 {
            return None;
        }
        let below = block.present & ((1u64 << bit) - 1);
        Some((b, block.first_run as usize + below.count_ones() as usize))
    }

    /// Where the blocks a lookup of source `s` reads lie (its own and the next), to ask the
    /// caches for them ahead of [`SourceIndex::locate`].
    #[inline(always)]
    pub fn block_lines(&self, s: u64) -> [*const u8; 2] {
        let last = self.blocks.len() - 1;
        let b = ((s / BLOCK) as usize).min(last);
        let at = |b: usize| (&self.blocks[b] as *const Block).cast();
        [at(b), at((b + 1).min(last))]
    }

    /// The first step of a lookup, which reads the block only: source `s`'s block and run
    /// number (`None`: it has no synapses here).
    #[inline(always)]
    pub fn locate(&self, s: u64) -> Option<(usize, usize)> {
        self.run_of(s)
    }

    /// Where the start of run `j` lies, to ask the caches for it ahead of
    /// [`SourceIndex::range`].
    #[inline(always)]
    pub fn start_ptr(&self, j: usize) -> *const u8 {
        match &self.starts {
            Starts::U16(v) => v.as_ptr().wrapping_add(j).cast(),
            Starts::U32(v) => v.as_ptr().wrapping_add(j).cast(),
        }
    }

    /// The second step of a lookup: the positions of run `j` of block `b`.
    #[inline(always)]
    pub fn range(&self, b: usize, j: usize) -> Range<usize> {
        let base = self.blocks[b].base;
        let start = base + self.starts.get(j);
        let next = &self.blocks[b + 1];
        let end = if j + 1 < next.first_run as usize {
            base + self.starts.get(j + 1)
        } else {
            next.base
        };
        start as usize..end as usize
    }

    /// Source `s`'s run number and the positions of its synapses (`None`: it has none here).
    #[inline(always)]
    pub fn lookup(&self, s: u64) -> Option<(usize, Range<usize>)> {
        let (b, j) = self.run_of(s)?;
        Some((j, self.range(b, j)))
    }

    /// Every present source, ascending: (source offset, run number, positions).
    pub fn runs(&self) -> impl Iterator<Item = (u64, usize, Range<usize>)> + '_ {
        self.blocks[..self.blocks.len() - 1]
            .iter()
            .enumerate()
            .flat_map(move |(b, block)| {
                (0..BLOCK)
                    .filter(move |i| block.present >> i & 1 == 1)
                    .map(move |i| {
                        let s = b as u64 * BLOCK + i;
                        let (j, range) = self.lookup(s).expect("present");
                        (s, j, range)
                    })
            })
    }

    pub fn n_sources(&self) -> u64 {
        self.n_sources
    }

    /// The sources with synapses here.
    pub fn n_runs(&self) -> usize {
        self.starts.len()
    }

    /// The synapses the index covers.
    pub fn n_synapses(&self) -> u64 {
        self.blocks.last().map_or(0, |b| b.base)
    }

    /// The expected bytes of the indices of `tables` tables sharing `synapses` synapses from
    /// `n_sources` sources drawn at random: the blocks, and the starts of the sources expected
    /// to be present, `N (1 - e^{-S/N})`, in 2 bytes or, where a block would hold 2^16
    /// synapses or more, 4.
    pub fn estimate_bytes(n_sources: f64, synapses: f64, tables: f64) -> f64 {
        if n_sources <= 0.0 || tables <= 0.0 {
            return 0.0;
        }
        let per_table = synapses / tables;
        let present = n_sources * -(-per_table / n_sources).exp_m1();
        let width = if per_table / n_sources * BLOCK as f64 > f64::from(u16::MAX) {
            4.0
        } else {
            2.0
        };
        tables * ((n_sources / BLOCK as f64).ceil() + 1.0) * std::mem::size_of::<Block>() as f64
            + tables * present * width
    }

    pub fn bytes(&self) -> u64 {
        (self.blocks.len() * std::mem::size_of::<Block>()) as u64 + self.starts.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index answers every source as a dense offset array built from the same counts
    /// would (prefix sums), for sparse and dense counts, counts of 255 and more, both widths of
    /// starts, and a population that does not fill its last block.
    #[test]
    fn lookups_equal_dense_prefix_sums() {
        let cases: Vec<Vec<u64>> = vec![
            vec![],
            vec![0; 130],
            (0..200)
                .map(|s| u64::from(s % 7 == 3) * (s % 5 + 1))
                .collect(),
            (0..130).map(|s| 300 + s % 11).collect(),
            (0..129)
                .map(|s| if s % 64 == 5 { 70_000 } else { s % 3 })
                .collect(),
        ];
        for counts in cases {
            let mut c = Counts::new(counts.len());
            for (s, &k) in counts.iter().enumerate() {
                for _ in 0..k {
                    c.add(s as u32);
                }
            }
            let mut index = SourceIndex::from_counts(&c);
            let total: u64 = counts.iter().sum();
            // Fill: afterwards every start is its run's first position again.
            let mut filled = vec![u64::MAX; total as usize];
            for (s, &k) in counts.iter().enumerate() {
                for _ in 0..k {
                    filled[index.place(s as u64)] = s as u64;
                }
            }
            index.filled();
            let mut offset = 0u64;
            let mut runs = 0;
            for (s, &k) in counts.iter().enumerate() {
                let got = index.lookup(s as u64);
                if k == 0 {
                    assert_eq!(got, None, "source {s}");
                } else {
                    let r = offset as usize..(offset + k) as usize;
                    assert_eq!(got, Some((runs, r.clone())), "source {s}");
                    assert!(filled[r].iter().all(|&x| x == s as u64));
                    runs += 1;
                }
                offset += k;
            }
            assert_eq!(index.n_synapses(), total);
            assert_eq!(index.n_runs(), runs);
            let listed: Vec<u64> = index.runs().map(|(s, _, _)| s).collect();
            let present: Vec<u64> = (0..counts.len() as u64)
                .filter(|&s| counts[s as usize] > 0)
                .collect();
            assert_eq!(listed, present);
            let wide = counts.chunks(64).any(|b| b.iter().sum::<u64>() > 65_535);
            assert_eq!(matches!(index.starts, Starts::U32(_)), wide);
        }
    }
}
