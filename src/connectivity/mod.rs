//! The incoming synapses of one rank's neurons, grouped by source (CSR) so that delivering a
//! spike walks one contiguous run of target indices.
//!
//! A projection becomes one table per distinct delay (one table where the delay is constant),
//! in projection order, then ascending delay. A synapse costs 2 bytes (the target's local
//! index) on a rank with at most 65,536 neurons, else 4, plus 4 (an f32 weight) where weights
//! vary per synapse; a constant weight and the
//! delay are stored once per table. Where a source's synapses lie is kept by a
//! [`SourceIndex`]: 0.375 bytes per source of the whole population and 2 (or 4) per source
//! with synapses on this rank, so that a rank's memory grows with its own neurons, its
//! synapses and the sources present on it, not with the whole network (a dense offset array
//! costs 8 bytes per source on every rank). Tables with per-synapse weights add 32 bytes per
//! present source (the exact sums of its positive and negative weights, for the balance
//! diagnostics).

mod index;

use crate::config::{Config, ConfigError, ConnRule, Population, Projection};
use crate::network::{self, Synapses};
use index::Counts;
pub use index::{Loc, SourceIndex};
use std::ops::Range;

/// The synapses of one projection with one delay onto this rank's neurons.
pub struct ProjectionTable {
    /// Index into [`Config::projections`].
    pub projection: usize,
    /// Gid of the source population's first neuron.
    pub source_start: u64,
    /// Where each source's synapses lie in `targets`.
    pub index: SourceIndex,
    /// The local targets, source by source, ascending within a source (repeated for
    /// multapses; for a file, edges to one target in file order). Private, with `bound`, so
    /// that what `bound` says of them holds for the table's life.
    targets: Targets,
    /// Every target is below this local index (0 for an empty table).
    bound: usize,
    /// \[mV\] Per-synapse weights, parallel to `targets`; empty where every synapse has
    /// `weight`.
    pub weights: Vec<f32>,
    /// \[mV\] The weight of every synapse where `weights` is empty (else the projection's mean
    /// weight, see [`Projection::weight`]).
    pub weight: f64,
    pub delay_steps: u32,
    /// Where weights are per synapse: for each present source (by run number), the sums of its
    /// local synapses' positive and of their negative weights, each weight cut to a multiple of
    /// 2^-32 mV (`fixed::fixed`): the exact input a spike delivers here, for the balance
    /// diagnostics. Empty where `weights` is.
    pub weight_sums: Vec<[i128; 2]>,
}

impl ProjectionTable {
    /// The local targets of the synapses (see [`with_targets!`](crate::with_targets)).
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Every target of this table is a local index below this (0 for an empty table): code
    /// that indexes per-neuron arrays by target may check this once instead of per synapse.
    pub fn targets_below(&self) -> usize {
        self.bound
    }

    /// The size of the source population.
    pub fn n_sources(&self) -> u64 {
        self.index.n_sources()
    }

    /// Source offset `s`'s run number and the positions of its synapses in `targets` (and
    /// `weights`); `None` where it has no synapses on this rank.
    #[inline(always)]
    pub fn run(&self, source_offset: u64) -> Option<(usize, Range<usize>)> {
        self.index.lookup(source_offset)
    }

    /// Every source with synapses here, ascending: (source offset, run number, positions).
    pub fn runs(&self) -> impl Iterator<Item = (u64, usize, Range<usize>)> + '_ {
        self.index.runs()
    }

    /// The runs of the sources among `gids` (ascending gids of the network) that have synapses
    /// here, in order: `f(i, positions)`, `i` the source's place in `gids`. The runs lie at
    /// scattered places of the table: each is fetched into the caches while the one before it
    /// is visited.
    pub fn each_run_among(&self, gids: &[u64], mut f: impl FnMut(usize, Range<usize>)) {
        let start = self.source_start;
        let from = gids.partition_point(|&g| g < start);
        let to = gids.partition_point(|&g| g < start + self.n_sources());
        let runs: Vec<(usize, Range<usize>)> = (from..to)
            .filter_map(|i| {
                let loc = self.index.locate(gids[i] - start)?;
                Some((i, self.index.range(loc)))
            })
            .collect();
        for (k, (i, range)) in runs.iter().enumerate() {
            if let Some((_, next)) = runs.get(k + 1) {
                crate::with_targets!(self.targets(), next.clone(), |t| prefetch_all(t));
                prefetch_all(self.weights_at(next.clone()).unwrap_or_default());
            }
            f(*i, range.clone());
        }
    }

    /// The local targets of source offset `s` (empty where it has none here).
    pub fn targets_of(&self, source_offset: u64) -> Vec<u32> {
        self.run(source_offset)
            .map_or(Vec::new(), |(_, r)| self.targets.iter(r).collect())
    }

    /// The weights of the synapses at `range`, where they vary per synapse.
    pub fn weights_at(&self, range: Range<usize>) -> Option<&[f32]> {
        (!self.weights.is_empty()).then(|| &self.weights[range])
    }

    /// The weight of the synapse at position `k` of `targets` \[mV\].
    pub fn weight_at(&self, k: usize) -> f64 {
        if self.weights.is_empty() {
            self.weight
        } else {
            f64::from(self.weights[k])
        }
    }
}

/// A local neuron index as stored in a table: `u16` where a rank has at most 65,536 neurons,
/// else `u32`.
pub trait Local: Copy {
    fn at(self) -> usize;
}

impl Local for u16 {
    #[inline(always)]
    fn at(self) -> usize {
        usize::from(self)
    }
}

impl Local for u32 {
    #[inline(always)]
    fn at(self) -> usize {
        self as usize
    }
}

/// The local targets of a table's synapses, 2 bytes each where every local index fits in 16
/// bits (a rank of at most 65,536 neurons), else 4: half the bytes delivery reads per event.
/// Loops over a run are written once for both widths with [`with_targets!`](crate::with_targets).
pub enum Targets {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

/// Evaluates `$body` with `$t` bound to the targets at `$range` of `$targets` (a [`Targets`])
/// as a slice of `u16` or of `u32` (both [`Local`]): the body is compiled for each width.
#[macro_export]
macro_rules! with_targets {
    ($targets:expr, $range:expr, |$t:ident| $body:expr) => {
        match &$targets {
            $crate::connectivity::Targets::Narrow(all) => {
                let $t = &all[$range];
                $body
            }
            $crate::connectivity::Targets::Wide(all) => {
                let $t = &all[$range];
                $body
            }
        }
    };
}

/// Asks the caches to fetch every line of `s`.
#[inline(always)]
pub fn prefetch_all<T>(s: &[T]) {
    for line in s.chunks(64 / std::mem::size_of::<T>()) {
        prefetch(line.as_ptr());
    }
}

/// Asks the caches to fetch the line holding `p`: a hint, with no effect on results.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    // SAFETY: PREFETCHT0 neither faults nor reads memory architecturally, whatever the
    // address; SSE is part of the x86_64 baseline.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The bytes of one synapse's target on a rank of `n_local` neurons.
pub fn target_bytes(n_local: u64) -> u64 {
    if n_local <= 1 << 16 {
        2
    } else {
        4
    }
}

impl Targets {
    /// `n` targets, all 0, narrow where `n_local` neurons fit 16-bit indices.
    fn zeros(n: usize, n_local: u64) -> Targets {
        if target_bytes(n_local) == 2 {
            Targets::Narrow(crate::memory::huge(vec![0; n]))
        } else {
            Targets::Wide(crate::memory::huge(vec![0; n]))
        }
    }

    fn set(&mut self, k: usize, t: u32) {
        match self {
            Targets::Narrow(v) => v[k] = u16::try_from(t).expect("a narrow table's target"),
            Targets::Wide(v) => v[k] = t,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Targets::Narrow(v) => v.len(),
            Targets::Wide(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The target of synapse `k`.
    pub fn get(&self, k: usize) -> u32 {
        match self {
            Targets::Narrow(v) => u32::from(v[k]),
            Targets::Wide(v) => v[k],
        }
    }

    /// The largest target, if any.
    fn max(&self) -> Option<u32> {
        match self {
            Targets::Narrow(v) => v.iter().max().map(|&t| u32::from(t)),
            Targets::Wide(v) => v.iter().max().copied(),
        }
    }

    /// The targets at `range`.
    pub fn iter(&self, range: Range<usize>) -> impl Iterator<Item = u32> + '_ {
        range.map(|k| self.get(k))
    }

    pub fn bytes(&self) -> u64 {
        match self {
            Targets::Narrow(v) => 2 * v.len() as u64,
            Targets::Wide(v) => 4 * v.len() as u64,
        }
    }
}

pub struct Connectivity {
    pub tables: Vec<ProjectionTable>,
}

impl Connectivity {
    /// Builds the incoming synapses of the neurons `local` (a contiguous gid range). Fails on
    /// an unreadable edge file or a kernel that leaves a neuron too few sources; the other
    /// ranks may not fail, so a caller under MPI agrees on the outcome
    /// ([`crate::comm::first_error`]).
    pub fn build(config: &Config, local: Range<u64>) -> Result<Connectivity, ConfigError> {
        let mut tables = Vec::new();
        for (k, proj) in config.projections.iter().enumerate() {
            let src = &config.populations[proj.source];
            let tgt = config.populations[proj.target].gids();
            let lo = tgt.start.max(local.start);
            let mine = lo..tgt.end.min(local.end).max(lo);
            let built = match &proj.rule {
                ConnRule::File(file) => {
                    let offsets = mine.start - tgt.start..mine.end - tgt.start;
                    let mut edges = if mine.is_empty() {
                        Vec::new()
                    } else {
                        file.read(offsets.clone(), proj.weight, proj.delay_steps, config.dt)
                            .map_err(|e| ConfigError::Invalid {
                                key: format!("projection.{}.file", proj.name),
                                value: format!("{:?}", file.path),
                                reason: crate::config::one_line(&e),
                            })?
                    };
                    // Stable: the edges of one target stay in file order.
                    edges.sort_by_key(|e| e.target);
                    let mut first = vec![0usize; (offsets.end - offsets.start) as usize + 1];
                    for e in &edges {
                        first[(e.target - offsets.start) as usize + 1] += 1;
                    }
                    for i in 1..first.len() {
                        first[i] += first[i - 1];
                    }
                    let weighted = file.weights.is_some();
                    let delayed = file.delays.is_some();
                    let first_gid = mine.start;
                    tables_of(k, proj, src, mine, &local, |gid, syn| {
                        syn.clear();
                        let i = (gid - first_gid) as usize;
                        for e in &edges[first[i]..first[i + 1]] {
                            syn.sources.push(e.source);
                            if weighted {
                                syn.weights.push(e.weight);
                            }
                            if delayed {
                                syn.delays.push(e.delay);
                            }
                        }
                        Ok(())
                    })?
                }
                _ => tables_of(k, proj, src, mine, &local, |gid, syn| {
                    network::synapses_of(config, k, gid, syn)
                })?,
            };
            tables.extend(built);
        }
        Ok(Connectivity { tables })
    }

    /// The tables of projection `k` (one per distinct delay, ascending).
    pub fn tables_of(&self, k: usize) -> impl Iterator<Item = &ProjectionTable> {
        self.tables.iter().filter(move |t| t.projection == k)
    }

    pub fn n_synapses(&self) -> u64 {
        self.tables.iter().map(|t| t.targets.len() as u64).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| {
                t.targets.bytes()
                    + 4 * t.weights.len() as u64
                    + t.index.bytes()
                    + 32 * t.weight_sums.len() as u64
            })
            .sum()
    }

    /// The largest delay \[steps\] (1 without synapses tables).
    pub fn max_delay(&self) -> u32 {
        self.tables.iter().map(|t| t.delay_steps).max().unwrap_or(1)
    }

    /// The smallest delay \[steps\] (1 without synapse tables).
    pub fn min_delay(&self) -> u32 {
        self.tables.iter().map(|t| t.delay_steps).min().unwrap_or(1)
    }
}

/// The tables of projection `k` onto the neurons `mine` (gids; `local` are the rank's gids, from
/// local index 0), one per delay of [`Projection::delay_set`]. `synapses(gid, out)` must give
/// the same synapses each time it is called for a gid.
///
/// Two passes over the same synapses: count those of each (delay, source), about a byte per
/// source ([`Counts`]), and index the present sources; then regenerate them and place each
/// target directly (a counting sort without storing the (source, target) pairs), so that
/// building never needs more than the final tables and the counts. Targets come in ascending
/// order within a source (a target's synapses from one source in the generator's order).
fn tables_of(
    k: usize,
    proj: &Projection,
    src: &Population,
    mine: Range<u64>,
    local: &Range<u64>,
    mut synapses: impl FnMut(u64, &mut Synapses) -> Result<(), ConfigError>,
) -> Result<Vec<ProjectionTable>, ConfigError> {
    let (local_start, n_local) = (local.start, local.end - local.start);
    let delays = proj.delay_set();
    let weighted = proj.per_synapse_weights();
    let ns = src.size as usize;
    let table = |syn: &Synapses, i: usize| -> usize {
        if delays.len() == 1 {
            0
        } else {
            delays
                .binary_search(&syn.delays[i])
                .expect("a synapse's delay is one of the projection's delays")
        }
    };
    let mut syn = Synapses::default();
    let mut counts = vec![Counts::new(ns); delays.len()];
    for gid in mine.clone() {
        synapses(gid, &mut syn)?;
        for (i, &s) in syn.sources.iter().enumerate() {
            counts[table(&syn, i)].add(s);
        }
    }
    let mut index: Vec<SourceIndex> = counts.iter().map(SourceIndex::from_counts).collect();
    drop(counts);
    let mut targets: Vec<Targets> = index
        .iter()
        .map(|x| Targets::zeros(x.n_synapses() as usize, n_local))
        .collect();
    let mut weights: Vec<Vec<f32>> = index
        .iter()
        .map(|x| {
            crate::memory::huge(vec![
                0f32;
                if weighted { x.n_synapses() as usize } else { 0 }
            ])
        })
        .collect();
    // Where the tables are large against their sources (few ranks), a dense cursor per source
    // (at most 1/32 of the targets' bytes, for the time of the build) places each synapse
    // about twice as fast as the index (measured on the Brunel network).
    let mut cursors: Vec<Vec<u64>> = index
        .iter()
        .map(|x| {
            let mut c = Vec::new();
            if 32 * 8 * ns as u64 <= 4 * x.n_synapses() {
                c = vec![0; ns];
                for (s, _, r) in x.runs() {
                    c[s as usize] = r.start as u64;
                }
            }
            c
        })
        .collect();
    for gid in mine {
        synapses(gid, &mut syn)?;
        debug_assert!(!weighted || syn.weights.len() == syn.sources.len());
        let t = (gid - local_start) as u32;
        for (i, &s) in syn.sources.iter().enumerate() {
            let d = table(&syn, i);
            let at = match cursors[d].get_mut(s as usize) {
                Some(c) => {
                    *c += 1;
                    (*c - 1) as usize
                }
                None => index[d].place(u64::from(s)),
            };
            targets[d].set(at, t);
            if weighted {
                weights[d][at] = syn.weights[i] as f32;
            }
        }
    }
    for (x, c) in index.iter_mut().zip(cursors) {
        if c.is_empty() {
            x.filled();
        }
    }
    Ok(index
        .into_iter()
        .zip(targets)
        .zip(weights)
        .zip(&delays)
        .map(|(((index, targets), weights), &delay_steps)| {
            let weight_sums = if weights.is_empty() {
                Vec::new()
            } else {
                index
                    .runs()
                    .map(|(_, _, r)| {
                        let mut sums = [0i128; 2];
                        for &w in &weights[r] {
                            sums[usize::from(w < 0.0)] += crate::fixed::fixed(f64::from(w));
                        }
                        sums
                    })
                    .collect()
            };
            ProjectionTable {
                projection: k,
                source_start: src.gid_start,
                index: index.compact(),
                bound: targets.max().map_or(0, |m| m as usize + 1),
                targets,
                weights,
                weight: proj.weight,
                delay_steps,
                weight_sums,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Every synapse as (projection, delay, source gid, target gid, weight bits).
    type Edge = (usize, u32, u64, u64, u32);

    fn edges(conn: &Connectivity, base: u64) -> Vec<Edge> {
        let mut e = Vec::new();
        for t in &conn.tables {
            for (s, _, range) in t.runs() {
                for k in range {
                    let w = t.weight_at(k) as f32;
                    let tg = base + u64::from(t.targets.get(k));
                    e.push((
                        t.projection,
                        t.delay_steps,
                        t.source_start + s,
                        tg,
                        w.to_bits(),
                    ));
                }
            }
        }
        e
    }

    /// A unique path in the temporary directory.
    fn temp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lapicque-{}-{tag}.h5", std::process::id()))
    }

    /// Writes a SONATA edge population `name` (attributes in group "0").
    fn write_edges(
        path: &std::path::Path,
        name: &str,
        src: &[u64],
        tgt: Option<&[u64]>,
        w: Option<&[f64]>,
        d: Option<&[f64]>,
    ) {
        let f = hdf5::File::create(path).unwrap();
        let g = f.create_group("edges").unwrap().create_group(name).unwrap();
        g.new_dataset_builder()
            .with_data(src)
            .create("source_node_id")
            .unwrap();
        if let Some(tgt) = tgt {
            g.new_dataset_builder()
                .with_data(tgt)
                .create("target_node_id")
                .unwrap();
        }
        let g0 = g.create_group("0").unwrap();
        if let Some(w) = w {
            g0.new_dataset_builder()
                .with_data(w)
                .create("syn_weight")
                .unwrap();
        }
        if let Some(d) = d {
            g0.new_dataset_builder()
                .with_data(d)
                .create("delay")
                .unwrap();
        }
    }

    /// Splitting the neurons over ranks gives the same synapses as one rank builds, with the
    /// same weights and delays, for every rule and option.
    #[test]
    fn union_over_blocks_equals_the_whole() {
        let path = temp("union");
        // File edges I -> E: every I neuron onto E neurons 3 i, 3 i + 1 (twice) and 119 - i.
        let (mut fs, mut ft, mut fw, mut fd) = (vec![], vec![], vec![], vec![]);
        for i in 0..30u64 {
            for (t, k) in [(3 * i, 0), (3 * i + 1, 1), (3 * i + 1, 2), (119 - i, 3)] {
                fs.push(i);
                ft.push(t);
                fw.push(-0.1 * (k + 1) as f64 - i as f64 * 1e-3);
                fd.push(0.1 * (1 + (i + k) % 4) as f64);
            }
        }
        write_edges(&path, "IE", &fs, Some(&ft), Some(&fw), Some(&fd));
        let text = format!(
            "[population.E]\nsize = 120\nplacement = \"random\"\n[population.I]\nsize = 30\n\
            [projection.EI]\nsource = \"E\"\ntarget = \"I\"\nrule = \"fixed_indegree\"\nindegree = 12\nweight = 0.1\ndelay = 1.0\n\
            [projection.IE]\nsource = \"I\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 0.2\nweight = -0.5\ndelay = 2.0\n\
            [projection.EE]\nsource = \"E\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\nindegree = 10\nweight = 0.2\n\
            weight_dist = \"normal\"\nweight_sd = 0.05\ndelay = 0.5\ndelay_max = 1.2\nmultapses = false\n\
            kernel = {{ kind = \"cosine\", a = 1.0, b = 0.8 }}\nkernel_use = \"both\"\n\
            [projection.EE2]\nsource = \"E\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 0.3\nweight = 0.05\n\
            weight_dist = \"lognormal\"\nweight_sd = 0.02\nscaling = \"inverse_sqrt_k\"\ndelay = 0.3\nautapses = false\n\
            kernel = {{ kind = \"blocks\", matrix = [[1.0, 0.2], [0.5, 1.0]] }}\n\
            [projection.IF]\nsource = \"I\"\ntarget = \"E\"\nrule = \"file\"\nfile = {:?}\nedges = \"IE\"\n",
            path.display().to_string()
        );
        let c = Config::from_toml(&text, &[]).unwrap();
        let names: Vec<&str> = c.projections.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["EI", "IE", "EE", "EE2", "IF"]);
        let whole_conn = Connectivity::build(&c, 0..150).unwrap();
        let mut whole = edges(&whole_conn, 0);
        let mut parts: Vec<_> = [0..37, 37..101, 101..150]
            .into_iter()
            .flat_map(|r| edges(&Connectivity::build(&c, r.clone()).unwrap(), r.start))
            .collect();
        whole.sort_unstable();
        parts.sort_unstable();
        assert_eq!(whole, parts);
        assert_eq!(whole.iter().filter(|e| e.0 == 0).count(), 30 * 12);
        assert_eq!(whole.iter().filter(|e| e.0 == 2).count(), 120 * 10);
        assert_eq!(whole.iter().filter(|e| e.0 == 4).count(), 120);
        // EE: one table per delay step 5..=12, with per-synapse weights; EI: one, constant.
        let ee: Vec<u32> = whole_conn.tables_of(2).map(|t| t.delay_steps).collect();
        assert_eq!(ee, (5..=12).collect::<Vec<_>>());
        assert!(whole_conn
            .tables_of(2)
            .all(|t| t.weights.len() == t.targets.len()));
        assert!(whole_conn.tables_of(0).all(|t| t.weights.is_empty()));
        // The file's delays are 1 to 4 steps; IE's is 20.
        assert_eq!((whole_conn.min_delay(), whole_conn.max_delay()), (1, 20));
        let distinct = |k: usize| {
            let mut d: Vec<u32> = whole.iter().filter(|e| e.0 == k).map(|e| e.1).collect();
            d.dedup();
            d.len()
        };
        assert!(distinct(2) >= 6, "EE uses most of its 8 delays");
        assert_eq!(distinct(4), 4, "the file's 4 delays");
        std::fs::remove_file(&path).ok();
    }

    /// A rank of more than 65,536 neurons stores 4-byte targets, smaller ranks 2-byte ones:
    /// the same synapses either way.
    #[test]
    fn wide_and_narrow_targets_hold_the_same_synapses() {
        let text = "[population.E]\nsize = 70000\n\
            [projection.EE]\nsource = \"E\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\nindegree = 3\n\
            weight = 0.1\ndelay = 1.0\n";
        let c = Config::from_toml(text, &[]).unwrap();
        let wide = Connectivity::build(&c, 0..70000).unwrap();
        assert!(matches!(wide.tables[0].targets, Targets::Wide(_)));
        assert_eq!(wide.bytes() - wide.tables[0].index.bytes(), 4 * 210_000);
        let mut parts = Vec::new();
        for r in [0..35000, 35000..70000] {
            let narrow = Connectivity::build(&c, r.clone()).unwrap();
            assert!(matches!(narrow.tables[0].targets, Targets::Narrow(_)));
            let synapses = narrow.n_synapses();
            assert_eq!(
                narrow.bytes() - narrow.tables[0].index.bytes(),
                2 * synapses
            );
            parts.extend(edges(&narrow, r.start));
        }
        let mut whole = edges(&wide, 0);
        whole.sort_unstable();
        parts.sort_unstable();
        assert_eq!(whole, parts);
        assert!(whole.iter().any(|e| e.3 > 65536), "targets beyond 16 bits");
    }

    /// A table filled through dense cursors (many synapses per source: the whole network on
    /// one rank) and one filled through the source index (few: a rank with 3 targets) hold the
    /// same synapses in the same order within each source.
    #[test]
    fn cursor_and_index_filling_agree() {
        let text = "[population.E]\nsize = 40\n\
            [projection.EE]\nsource = \"E\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\nindegree = 400\n\
            weight = 0.1\nweight_dist = \"normal\"\nweight_sd = 0.02\ndelay = 0.1\ndelay_max = 0.2\n";
        let c = Config::from_toml(text, &[]).unwrap();
        // 16,000 synapses over 2 delay tables: 8 bytes x 40 sources x 32 <= 4 x ~8,000 (the
        // cursors); 3 targets: ~600 synapses per table (the index).
        let whole = edges(&Connectivity::build(&c, 0..40).unwrap(), 0);
        let parts: Vec<Edge> = [0..3, 3..6, 6..40]
            .into_iter()
            .flat_map(|r| edges(&Connectivity::build(&c, r.clone()).unwrap(), r.start))
            .collect();
        let by_source = |mut e: Vec<Edge>| {
            // Stable: each source's synapses stay in table order.
            e.sort_by_key(|x| (x.0, x.1, x.2));
            e
        };
        assert_eq!(whole.len(), 16_000);
        assert_eq!(by_source(whole), by_source(parts));
    }

    /// The edges of a SONATA file are exactly the synapses: sources, targets, weights and
    /// delays, on one rank or two; edges onto one target keep the file's order.
    #[test]
    fn sonata_edges_become_the_synapses() {
        let path = temp("sonata");
        let src = [0u64, 4, 2, 2, 1, 3, 2];
        let tgt = [1u64, 0, 3, 1, 1, 2, 1];
        let w = [0.5, -0.25, 1.5, 0.75, 2.0, -1.0, 0.125];
        let d = [0.1, 0.3, 0.2, 0.1, 0.1, 0.3, 0.1];
        write_edges(&path, "AB", &src, Some(&tgt), Some(&w), Some(&d));
        let p = path.display().to_string();
        let text = format!(
            "[population.A]\nsize = 5\n[population.B]\nsize = 4\n\
             [projection.AB]\nsource = \"A\"\ntarget = \"B\"\nrule = \"file\"\nfile = {p:?}\n"
        );
        let c = Config::from_toml(&text, &[]).unwrap();
        assert_eq!(c.expected_synapses(&c.projections[0]), 7.0);
        assert_eq!(
            (
                c.projections[0].delay_steps,
                c.projections[0].delay_max_steps
            ),
            (1, 3)
        );
        assert_eq!(c.raw.projection["AB"].edges.as_deref(), Some("AB"));
        let mut expect: Vec<Edge> = (0..7)
            .map(|i| {
                let delay = (d[i] / 0.1_f64).round() as u32;
                (0, delay, src[i], 5 + tgt[i], (w[i] as f32).to_bits())
            })
            .collect();
        expect.sort_unstable();
        let whole = Connectivity::build(&c, 0..9).unwrap();
        assert_eq!(whole.tables.len(), 3, "one table per delay");
        let mut got = edges(&whole, 0);
        got.sort_unstable();
        assert_eq!(got, expect);
        let mut parts: Vec<Edge> = [0..6, 6..9]
            .into_iter()
            .flat_map(|r| edges(&Connectivity::build(&c, r.clone()).unwrap(), r.start))
            .collect();
        parts.sort_unstable();
        assert_eq!(parts, expect);
        // Source 2 onto target 1 twice with delay 1: file order (0.75, then 0.125).
        let t1 = &whole.tables[0];
        assert_eq!(t1.delay_steps, 1);
        assert_eq!(t1.targets_of(2), [6, 6]);
        assert_eq!(
            t1.weights_at(t1.run(2).unwrap().1).unwrap(),
            [0.75f32, 0.125]
        );

        // Without weights and delays: the projection's weight and delay, stored once.
        write_edges(&path, "AB", &src, Some(&tgt), None, None);
        let plain = text.clone() + "weight = 0.3\ndelay = 0.2\n";
        let c = Config::from_toml(&plain, &[]).unwrap();
        let conn = Connectivity::build(&c, 0..9).unwrap();
        assert_eq!(conn.tables.len(), 1);
        assert!(conn.tables[0].weights.is_empty());
        assert_eq!(
            (conn.tables[0].weight, conn.tables[0].delay_steps),
            (0.3, 2)
        );
        assert_eq!(conn.n_synapses(), 7);
        // 2 bytes per synapse (9 local neurons); the index: one line of 26 sources (64
        // bytes), within 1/8 of one block of 64 sources and the closing one (24 bytes each)
        // with 2 bytes for each of the 5 sources present (58 bytes).
        assert_eq!(conn.bytes(), 2 * 7 + 64);
        std::fs::remove_file(&path).ok();
    }

    /// A bad edge file is rejected at configuration time by a one-line error naming
    /// `projection.AB.file`, its value and what is wrong.
    #[test]
    fn bad_edge_files_are_rejected() {
        let path = temp("bad");
        let p = path.display().to_string();
        let text = format!(
            "[population.A]\nsize = 5\n[population.B]\nsize = 4\n\
             [projection.AB]\nsource = \"A\"\ntarget = \"B\"\nrule = \"file\"\nfile = {p:?}\n"
        );
        let err = |extra: &str| -> String {
            let e = Config::from_toml(&(text.clone() + extra), &[])
                .expect_err("should be rejected")
                .to_string();
            assert!(!e.contains('\n'), "multi-line: {e}");
            e
        };
        let named = format!("projection.AB.file = {p:?}: ");
        let src = [0u64, 4, 2];
        // Target id 4 in a population of 4.
        write_edges(&path, "AB", &src, Some(&[1, 4, 0]), None, None);
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(
            e.starts_with(&named) && e.contains("target_node_id 4"),
            "{e}"
        );
        // Source id 5 in a population of 5.
        write_edges(&path, "AB", &[0, 5, 1], Some(&[1, 2, 0]), None, None);
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(
            e.starts_with(&named) && e.contains("source_node_id 5"),
            "{e}"
        );
        // No target ids.
        write_edges(&path, "AB", &src, None, None, None);
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(
            e.starts_with(&named) && e.contains("/edges/AB/target_node_id"),
            "{e}"
        );
        // Lengths differ.
        write_edges(&path, "AB", &src, Some(&[0, 1]), None, None);
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(e.starts_with(&named) && e.contains("entries"), "{e}");
        // A delay that is not a multiple of dt, and one below dt.
        for bad in [0.15, 0.0] {
            write_edges(
                &path,
                "AB",
                &src,
                Some(&[0, 1, 2]),
                None,
                Some(&[0.1, bad, 0.2]),
            );
            let e = err("weight = 0.1\n");
            assert!(e.starts_with(&named) && e.contains("edge 1: delay"), "{e}");
        }
        // A weight dataset of another length; a non-finite weight.
        write_edges(&path, "AB", &src, Some(&[0, 1, 2]), Some(&[0.1, 0.2]), None);
        let e = err("delay = 0.1\n");
        assert!(e.starts_with(&named) && e.contains("syn_weight"), "{e}");
        write_edges(
            &path,
            "AB",
            &src,
            Some(&[0, 1, 2]),
            Some(&[0.1, f64::NAN, 0.2]),
            None,
        );
        let e = err("delay = 0.1\n");
        assert!(e.starts_with(&named) && e.contains("not finite"), "{e}");
        // Another edge population name.
        write_edges(&path, "XY", &src, Some(&[0, 1, 2]), None, None);
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(e.starts_with(&named) && e.contains("/edges/AB"), "{e}");
        // The file gives weights and the key too; the file gives neither.
        write_edges(
            &path,
            "AB",
            &src,
            Some(&[0, 1, 2]),
            Some(&[0.1, 0.2, 0.3]),
            None,
        );
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(e.starts_with("projection.AB.weight = 0.1: "), "{e}");
        write_edges(&path, "AB", &src, Some(&[0, 1, 2]), None, None);
        let e = err("delay = 0.1\n");
        assert!(e.starts_with("projection.AB.weight = (missing)"), "{e}");
        // Not an HDF5 file at all.
        std::fs::write(&path, "not hdf5").unwrap();
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(
            e.starts_with(&named) && e.contains("cannot be opened"),
            "{e}"
        );
        std::fs::remove_file(&path).ok();
        let e = err("weight = 0.1\ndelay = 0.1\n");
        assert!(
            e.starts_with(&named) && e.contains("cannot be opened"),
            "{e}"
        );
    }

    /// Weight scaling by the in-degree: `inverse_sqrt_k` with K = 30 gives exactly
    /// weight / sqrt(30), stored once per table; `inverse_k`, `power` and the expected
    /// in-degree p N of bernoulli likewise.
    #[test]
    fn scaling_divides_the_weight_exactly() {
        let cases: [(&str, &str, f64); 5] = [
            (
                "indegree = 30",
                "scaling = \"inverse_sqrt_k\"",
                0.7 / 30f64.sqrt(),
            ),
            ("indegree = 30", "scaling = \"inverse_k\"", 0.7 / 30.0),
            (
                "indegree = 30",
                "scaling = \"power\"\nscaling_alpha = 0.5",
                0.7 * 200f64.powf(-0.5),
            ),
            ("indegree = 30", "scaling = \"none\"", 0.7),
            (
                "p = 0.1",
                "scaling = \"inverse_sqrt_k\"",
                0.7 / 20f64.sqrt(),
            ),
        ];
        for (rule_keys, scaling, expect) in cases {
            let rule = if rule_keys.starts_with('p') {
                "bernoulli"
            } else {
                "fixed_indegree"
            };
            let text = format!(
                "[population.E]\nsize = 200\n[projection.P]\nsource = \"E\"\ntarget = \"E\"\n\
                 rule = \"{rule}\"\n{rule_keys}\nweight = 0.7\ndelay = 1.0\n{scaling}\n"
            );
            let c = Config::from_toml(&text, &[]).unwrap();
            let conn = Connectivity::build(&c, 0..200).unwrap();
            assert_eq!(conn.tables.len(), 1);
            assert!(conn.tables[0].weights.is_empty(), "4 bytes per synapse");
            assert_eq!(conn.tables[0].weight, expect, "{rule_keys}, {scaling}");
            assert_eq!(c.projections[0].weight, expect);
        }
        // The standard deviation scales with the mean.
        let text = "[population.E]\nsize = 200\n[projection.P]\nsource = \"E\"\ntarget = \"E\"\n\
                    rule = \"fixed_indegree\"\nindegree = 25\nweight = -0.5\ndelay = 1.0\n\
                    weight_dist = \"normal\"\nweight_sd = 0.1\nscaling = \"inverse_sqrt_k\"\n";
        let c = Config::from_toml(text, &[]).unwrap();
        let w = c.projections[0].weights;
        assert_eq!((w.mean, w.sd, w.negative), (0.1, 0.02, true));
    }
}
