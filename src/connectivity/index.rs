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
//!
//! Where nearly every source is present (on many ranks, where each source reaches most of
//! them), a filled table's index is compacted into lines of 26 sources, each line holding its
//! base and the ends of its sources' runs in one cache line: a lookup then reads one line
//! instead of a block and a start, one cache miss fewer per received spike, for at most 1/8
//! more memory.

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

/// Sources per line of the one-line layout ([`Line`]).
const LINE: usize = 26;

/// The index of `LINE` consecutive sources in one cache line, for tables where nearly every
/// source has synapses (on many ranks each source reaches most ranks): a lookup then reads
/// this line alone instead of a block and a start at two places of memory, one cache miss
/// fewer per spike. It costs 64 / 26 = 2.46 bytes per source, against 0.375 + 2 per present
/// source for blocks and starts.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug)]
struct Line {
    /// Position in the table of the line's first synapse.
    base: u64,
    /// Run number of the line's first present source.
    first_run: u32,
    /// `ends[i]`: where the synapses of the line's source `i` end, relative to `base`; they
    /// start where those of the source before end (0 for the first).
    ends: [u16; LINE],
}

impl Line {
    #[inline(always)]
    fn span(&self, i: usize) -> (u64, u64) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (u64::from(start), u64::from(self.ends[i]))
    }
}

#[derive(Clone, Debug)]
enum Layout {
    /// One per block, plus a last one holding the table's length and number of runs; the
    /// starts of the present sources.
    Blocks {
        blocks: Vec<Block>,
        starts: Starts,
    },
    Lines(Vec<Line>),
}

/// Where a lookup found a source: its block and run number, or its line and place in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loc(usize, usize);

/// The index of one table: source offset -> run number and synapse positions.
#[derive(Clone, Debug)]
pub struct SourceIndex {
    layout: Layout,
    n_sources: u64,
    n_runs: usize,
    n_synapses: u64,
}

impl SourceIndex {
    /// The index of a table whose source `s` has `counts[s]` synapses, laid out source by
    /// source, ready to be filled: [`SourceIndex::place`] for every synapse, then
    /// [`SourceIndex::filled`]. Its layout is blocks and starts until [`SourceIndex::compact`].
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
            layout: Layout::Blocks { blocks, starts },
            n_sources: n as u64,
            n_runs: runs as usize,
            n_synapses: base,
        }
    }

    fn blocks_mut(&mut self) -> (&mut Vec<Block>, &mut Starts) {
        match &mut self.layout {
            Layout::Blocks { blocks, starts } => (blocks, starts),
            Layout::Lines(_) => panic!("a table is filled before its index is compacted"),
        }
    }

    /// The position for the next synapse of source `s` while the table is filled: each call
    /// moves the run's start on by one, so that the run is filled in order.
    pub fn place(&mut self, s: u64) -> usize {
        let Some(Loc(b, j)) = self.locate(s) else {
            panic!("a counted source is present")
        };
        let (blocks, starts) = self.blocks_mut();
        let at = starts.get(j);
        starts.set(j, at + 1);
        (blocks[b].base + at) as usize
    }

    /// Ends the filling: each run's start had moved to its end, which is where the next run of
    /// its block begins.
    pub fn filled(&mut self) {
        let (blocks, starts) = self.blocks_mut();
        for b in 0..blocks.len() - 1 {
            let runs = blocks[b].first_run as usize..blocks[b + 1].first_run as usize;
            let mut start = 0;
            for j in runs {
                let end = starts.get(j);
                starts.set(j, start);
                start = end;
            }
        }
    }

    /// The index of the filled table in lines of 26 sources where that costs at most
    /// 1/8 more memory than blocks and starts (nearly every source present) and every line
    /// spans fewer than 2^16 synapses; else unchanged. For a moment both are held.
    pub fn compact(self) -> Self {
        let n_lines = (self.n_sources as usize).div_ceil(LINE);
        if 8 * 64 * n_lines as u64 > 9 * self.bytes() || matches!(self.layout, Layout::Lines(_)) {
            return self;
        }
        match self.lines(n_lines) {
            Some(lines) => SourceIndex {
                layout: Layout::Lines(lines),
                ..self
            },
            None => self,
        }
    }

    /// The lines of this index (`None` where one would span 2^16 synapses or more).
    fn lines(&self, n_lines: usize) -> Option<Vec<Line>> {
        let mut lines: Vec<Line> = crate::memory::huge(Vec::with_capacity(n_lines));
        let mut runs = self.runs().peekable();
        let (mut base, mut first_run) = (0u64, 0u32);
        for l in 0..n_lines {
            let mut line = Line {
                base,
                first_run,
                ends: [0; LINE],
            };
            let mut end = 0u64;
            for i in 0..LINE {
                if let Some((_, _, r)) = runs.next_if(|(s, _, _)| *s == (l * LINE + i) as u64) {
                    end = r.end as u64 - base;
                    first_run += 1;
                }
                line.ends[i] = u16::try_from(end).ok()?;
            }
            base += end;
            lines.push(line);
        }
        Some(lines)
    }

    /// Where the index lines a lookup of source `s` reads lie, to ask the caches for them
    /// ahead of [`SourceIndex::locate`] (a block and the next, or the source's line).
    #[inline(always)]
    pub fn block_lines(&self, s: u64) -> [*const u8; 2] {
        match &self.layout {
            Layout::Blocks { blocks, .. } => {
                let last = blocks.len() - 1;
                let b = ((s / BLOCK) as usize).min(last);
                let at = |b: usize| (&blocks[b] as *const Block).cast();
                [at(b), at((b + 1).min(last))]
            }
            Layout::Lines(lines) => {
                let at = lines.as_ptr().wrapping_add(s as usize / LINE).cast();
                [at, at]
            }
        }
    }

    /// The first step of a lookup, which reads the block (or the line) only: where source `s`
    /// lies (`None`: it has no synapses here).
    #[inline(always)]
    pub fn locate(&self, s: u64) -> Option<Loc> {
        match &self.layout {
            Layout::Blocks { blocks, .. } => {
                let b = (s / BLOCK) as usize;
                let bit = s % BLOCK;
                let block = &blocks[b];
                if block.present >> bit & 1 == 0 {
                    return None;
                }
                let below = block.present & ((1u64 << bit) - 1);
                Some(Loc(
                    b,
                    block.first_run as usize + below.count_ones() as usize,
                ))
            }
            Layout::Lines(lines) => {
                let (l, i) = (s as usize / LINE, s as usize % LINE);
                let (start, end) = lines[l].span(i);
                (end > start).then_some(Loc(l, i))
            }
        }
    }

    /// Where the start of the run at `loc` lies, to ask the caches for it ahead of
    /// [`SourceIndex::range`].
    #[inline(always)]
    pub fn start_ptr(&self, loc: Loc) -> *const u8 {
        match &self.layout {
            Layout::Blocks { starts, .. } => match starts {
                Starts::U16(v) => v.as_ptr().wrapping_add(loc.1).cast(),
                Starts::U32(v) => v.as_ptr().wrapping_add(loc.1).cast(),
            },
            Layout::Lines(lines) => lines.as_ptr().wrapping_add(loc.0).cast(),
        }
    }

    /// The second step of a lookup: the positions of the run at `loc`.
    #[inline(always)]
    pub fn range(&self, loc: Loc) -> Range<usize> {
        let (start, end) = match &self.layout {
            Layout::Blocks { blocks, starts } => {
                let Loc(b, j) = loc;
                let base = blocks[b].base;
                let next = &blocks[b + 1];
                let end = if j + 1 < next.first_run as usize {
                    base + starts.get(j + 1)
                } else {
                    next.base
                };
                (base + starts.get(j), end)
            }
            Layout::Lines(lines) => {
                let line = &lines[loc.0];
                let (start, end) = line.span(loc.1);
                (line.base + start, line.base + end)
            }
        };
        start as usize..end as usize
    }

    /// The run number of the source at `loc`: its place among the present sources.
    #[inline]
    pub fn run_number(&self, loc: Loc) -> usize {
        match &self.layout {
            Layout::Blocks { .. } => loc.1,
            Layout::Lines(lines) => {
                let line = &lines[loc.0];
                let before = (0..loc.1)
                    .filter(|&i| {
                        let (start, end) = line.span(i);
                        end > start
                    })
                    .count();
                line.first_run as usize + before
            }
        }
    }

    /// Source `s`'s run number and the positions of its synapses (`None`: it has none here).
    #[inline(always)]
    pub fn lookup(&self, s: u64) -> Option<(usize, Range<usize>)> {
        let loc = self.locate(s)?;
        Some((self.run_number(loc), self.range(loc)))
    }

    /// Every present source, ascending: (source offset, run number, positions).
    pub fn runs(&self) -> impl Iterator<Item = (u64, usize, Range<usize>)> + '_ {
        // Blocks skip their absent sources by the presence masks; lines count their runs.
        let (blocks, lines) = match &self.layout {
            Layout::Blocks { blocks, .. } => (&blocks[..blocks.len() - 1], &[][..]),
            Layout::Lines(lines) => (&[][..], &lines[..]),
        };
        let in_blocks = blocks.iter().enumerate().flat_map(move |(b, block)| {
            (0..BLOCK)
                .filter(move |i| block.present >> i & 1 == 1)
                .map(move |i| {
                    let s = b as u64 * BLOCK + i;
                    let (j, range) = self.lookup(s).expect("present");
                    (s, j, range)
                })
        });
        let in_lines = lines.iter().enumerate().flat_map(move |(l, line)| {
            let mut j = line.first_run as usize;
            (0..LINE).filter_map(move |i| {
                let (start, end) = line.span(i);
                (end > start).then(|| {
                    j += 1;
                    let r = (line.base + start) as usize..(line.base + end) as usize;
                    ((l * LINE + i) as u64, j - 1, r)
                })
            })
        });
        in_blocks.chain(in_lines)
    }

    pub fn n_sources(&self) -> u64 {
        self.n_sources
    }

    /// The sources with synapses here.
    pub fn n_runs(&self) -> usize {
        self.n_runs
    }

    /// The synapses the index covers.
    pub fn n_synapses(&self) -> u64 {
        self.n_synapses
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
        match &self.layout {
            Layout::Blocks { blocks, starts } => {
                (blocks.len() * std::mem::size_of::<Block>()) as u64 + starts.bytes()
            }
            Layout::Lines(lines) => (lines.len() * std::mem::size_of::<Line>()) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index answers every source as a dense offset array built from the same counts
    /// would (prefix sums), for sparse and dense counts, counts of 255 and more, both widths of
    /// starts, a population that does not fill its last block, and in lines where it is
    /// compacted into them (dense counts, with and without absent sources).
    #[test]
    fn lookups_equal_dense_prefix_sums() {
        let cases: Vec<Vec<u64>> = vec![
            vec![],
            vec![0; 130],
            (0..200)
                .map(|s| u64::from(s % 7 == 3) * (s % 5 + 1))
                .collect(),
            (0..130).map(|s| 300 + s % 11).collect(),
            (0..200)
                .map(|s| if s % 9 == 4 { 0 } else { s % 4 + 1 })
                .collect(),
            (0..129)
                .map(|s| if s % 64 == 5 { 70_000 } else { s % 3 })
                .collect(),
        ];
        let mut lined = 0;
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
            let wide = counts.chunks(64).any(|b| b.iter().sum::<u64>() > 65_535);
            assert!(
                matches!(
                    index.layout,
                    Layout::Blocks {
                        starts: Starts::U32(_),
                        ..
                    }
                ) == wide
            );
            let blocks_bytes = index.bytes();
            let compact = index.clone().compact();
            // Lines where they fit 16 bits and cost at most 1/8 more than blocks and starts.
            let fits = counts.chunks(LINE).all(|l| l.iter().sum::<u64>() <= 65_535);
            let cheap = 8 * 64 * counts.len().div_ceil(LINE) as u64 <= 9 * blocks_bytes;
            let is_lines = matches!(compact.layout, Layout::Lines(_));
            assert_eq!(is_lines, fits && cheap, "{counts:?}");
            lined += usize::from(is_lines);
            for index in [index, compact] {
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
                let listed: Vec<(u64, usize, Range<usize>)> = index.runs().collect();
                let looked_up: Vec<(u64, usize, Range<usize>)> = (0..counts.len() as u64)
                    .filter_map(|s| index.lookup(s).map(|(j, r)| (s, j, r)))
                    .collect();
                assert_eq!(listed, looked_up);
                assert_eq!(listed.len(), runs);
            }
        }
        assert_eq!(
            lined, 3,
            "the two dense cases (and the empty table) are held in lines"
        );
    }
}
