//! The weighted pair histogram (`/pair_histogram`), computed exactly and distributed across
//! ranks.
//!
//! `H(a, b) = (1/N) sum_{synapses j -> i} w_ij 1[V_i in bin a] 1[V_j in bin b]` (`a` the target's
//! bin, `b` the source's), one `bins x bins` matrix per sample. Each rank all-gathers the bin of
//! every neuron (`u32`), counts its local synapses per projection and pair of bins, and the
//! integer counts are summed across ranks; `H = (1/N) sum_k w_k count_k`, in projection order,
//! is then the same on every rank. Cost per sample: one all-gather of N `u32`, one pass over the
//! local synapses of its own (riding along the first tree pass saved no measurable time: the
//! two loops cost about the same fused or apart), one reduction of `projections x bins^2`
//! integers.
//!
//! **Sampled** (`sample = f < 1`): each of `R` replicates keeps every source `j` independently
//! with probability `q = f/R` (a hash of the seed, the boundary, the replicate and `j`, see
//! [`super::sampling`]) and counts only the synapses of the kept sources, `H_r = (1/(N q)) sum
//! over kept sources ...`, an unbiased estimate of `H`; the value is the mean of the `R`
//! estimates and its standard error their standard deviation over `sqrt(R)`, per cell. The
//! pass then visits about a fraction `f` of the synapses; the reduction holds `R` times the
//! integers.

use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::trees::PairHistogramSpec;
use crate::config::Config;
use crate::connectivity::{Connectivity, Local, ProjectionTable};
use crate::h5::replicated;
use crate::spill::{Series, Stored};
use crate::with_targets;
use std::any::Any;
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "pair_histogram";

/// The pair histogram and its series so far.
pub struct PairHistogram {
    spec: Option<PairHistogramSpec>,
    n_total: u64,
    /// Sample times \[ms\].
    pub times: Series<f64>,
    /// `bins x bins` values per sample (target bin major).
    pub values: Series<f64>,
    /// Standard errors of `values` (sampled only; else empty).
    pub stderrs: Series<f64>,
    /// The simulation seed (of the masks when sampled).
    seed: u64,
    /// Reused buffer: the gathered bins.
    gathered: Vec<u32>,
}

impl PairHistogram {
    pub fn new(config: &Config) -> Self {
        let cells = config
            .trees
            .pair_histogram
            .as_ref()
            .map_or(0, |p| p.bins * p.bins);
        PairHistogram {
            spec: config.trees.pair_histogram.clone(),
            n_total: config.n_neurons(),
            times: Series::new(1),
            values: Series::new(cells),
            stderrs: Series::new(cells),
            seed: config.seed,
            gathered: Vec::new(),
        }
    }
}

impl Observer for PairHistogram {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        if let Some(spec) = self.spec.as_ref().filter(|p| p.schedule.fires(at.b)) {
            let masks = spec.sampling.estimated().then(|| {
                use super::sampling::{stream, PAIR_HISTOGRAM};
                let streams = (0..spec.sampling.replicates as u64)
                    .map(|r| stream(&[self.seed, PAIR_HISTOGRAM, at.b, r]))
                    .collect();
                (streams, spec.sampling.keep())
            });
            let h = pair_histogram(
                spec,
                at.v,
                self.n_total,
                masks,
                at.conn,
                at.comm,
                &mut self.gathered,
            );
            self.times.push(at.time);
            if spec.sampling.estimated() {
                let cells = spec.bins * spec.bins;
                let r = spec.sampling.replicates;
                let mut estimates = vec![0.0; r];
                for c in 0..cells {
                    for (k, e) in estimates.iter_mut().enumerate() {
                        *e = h[k * cells + c];
                    }
                    let (mean, stderr) = super::sampling::mean_and_stderr(&estimates);
                    self.values.push(mean);
                    self.stderrs.push(stderr);
                }
            } else {
                self.values.extend(h);
            }
        }
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        let Some(spec) = &self.spec else {
            return Ok(());
        };
        let (config, w) = (out.config, &mut *out.w);
        let g = out.file.create_group(GROUP)?;
        let n = self.times.count();
        replicated(&g, "time", &self.times, &[n], "ms", "sample times", w)?;
        replicated(
            &g,
            "edges",
            &spec.edges(),
            &[spec.bins + 1],
            "mV",
            "bin edges of V",
            w,
        )?;
        replicated(
            &g,
            "value",
            &self.values,
            &[n, spec.bins, spec.bins],
            "mV",
            "time x target bin x source bin: (1/N) sum over synapses j -> i in the chosen \
             projections of w_ij 1[V_i in target bin] 1[V_j in source bin]",
            w,
        )?;
        if spec.sampling.estimated() {
            replicated(
                &g,
                "stderr",
                &self.stderrs,
                &[n, spec.bins, spec.bins],
                "mV",
                "standard error of the sampled estimate in value: the standard deviation of \
                 the replicates' estimates over sqrt(replicates)",
                w,
            )?;
            crate::h5::attr(&g, "sample", spec.sampling.fraction)?;
            crate::h5::attr(&g, "replicates", spec.sampling.replicates as u64)?;
        }
        crate::h5::attr_str(
            &g,
            "projections",
            &config.projection_names(&spec.projections),
        )
    }

    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        to.replicated("time", &self.times)?;
        to.replicated("value", &self.values)?;
        if self.spec.as_ref().is_some_and(|s| s.sampling.estimated()) {
            to.replicated("stderr", &self.stderrs)?;
        }
        Ok(())
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        from.series("time", &mut self.times)?;
        from.series("value", &mut self.values)?;
        let sampled = self.spec.as_ref().is_some_and(|s| s.sampling.estimated());
        if sampled {
            from.series("stderr", &mut self.stderrs)?;
        }
        if self.values.rows() != self.times.count()
            || (sampled && self.stderrs.count() != self.values.count())
        {
            return Err("the pair histogram has a different shape".into());
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One sample of the pair histogram (collective), `bins x bins` values, target bin major.
/// With `masks` (one stream per replicate, and the probability q of keeping a source), one
/// such histogram per replicate, each counting only the synapses of its kept sources and
/// divided by `N q`: `R x bins x bins` values.
fn pair_histogram(
    spec: &PairHistogramSpec,
    v: &[f64],
    n_total: u64,
    masks: Option<(Vec<u64>, f64)>,
    conn: &Connectivity,
    comm: &dyn Comm,
    gathered: &mut Vec<u32>,
) -> Vec<f64> {
    const OUT: u32 = u32::MAX;
    let bins = spec.bins;
    let width = (spec.v_max - spec.v_min) / bins as f64;
    let local: Vec<u32> = v
        .iter()
        .map(|&x| crate::fixed::bin_of(x, spec.v_min, width, bins).map_or(OUT, |b| b as u32))
        .collect();
    comm.all_gather_u32(&local, gathered);
    // The target bins, read once per synapse: u16 (bins <= 1000) halves the cache they take.
    const OUT16: u16 = u16::MAX;
    let local: Vec<u16> = local
        .iter()
        .map(|&b| u16::try_from(b).unwrap_or(OUT16))
        .collect();
    let cells = bins * bins;
    let runs = masks.as_ref().map_or(1, |(streams, _)| streams.len());
    debug_assert_eq!(gathered.len() as u64, n_total);
    let n_proj = spec.projections.len();
    // Constant weights: integer counts per projection and cell, times the weight after the
    // reduction. Per-synapse weights: exact fixed-point sums of the weights per cell. Cells are
    // source bin major here, so that the synapses of one source update one row of `bins`.
    // Replicate major when sampled.
    let mut counts = vec![0u64; runs * n_proj * cells];
    let mut weighted = vec![0i128; runs * cells];
    let mut any_weighted = false;
    // The synapses of source `j` (gid) at `range` of `table`, into replicate `r`, projection
    // `kk`.
    let mut count = |r: usize, kk: usize, table: &ProjectionTable, j: u64, range: Range<usize>| {
        let bs = gathered[j as usize];
        if bs == OUT {
            return;
        }
        let row = bs as usize * bins..(bs as usize + 1) * bins;
        let weights = table.weights_at(range.clone());
        with_targets!(table.targets(), range, |targets| match weights {
            None => {
                let counts = &mut counts[(r * n_proj + kk) * cells..][..cells];
                let row = &mut counts[row];
                for &t in targets {
                    let bt = local[t.at()];
                    if bt != OUT16 {
                        row[bt as usize] += 1;
                    }
                }
            }
            Some(weights) => {
                let weighted = &mut weighted[r * cells..][..cells];
                let row = &mut weighted[row];
                for (&t, &wk) in targets.iter().zip(weights) {
                    let bt = local[t.at()];
                    if bt != OUT16 {
                        row[bt as usize] += crate::fixed::fixed(f64::from(wk));
                    }
                }
            }
        });
    };
    // Sampled: the kept sources of each replicate (gids, ascending), looked up one by one, so
    // that the cost follows the kept sources rather than all of them.
    let kept: Vec<Vec<u64>> = masks.as_ref().map_or_else(Vec::new, |(streams, q)| {
        streams
            .iter()
            .map(|&m| {
                (0..n_total)
                    .filter(|&j| super::sampling::kept(m, j, *q))
                    .collect()
            })
            .collect()
    });
    for (kk, &k) in spec.projections.iter().enumerate() {
        for table in conn.tables_of(k) {
            let start = table.source_start;
            any_weighted |= !table.weights.is_empty();
            if masks.is_none() {
                for (s, _, range) in table.runs() {
                    count(0, kk, table, start + s, range);
                }
                continue;
            }
            for (r, gids) in kept.iter().enumerate() {
                table.each_run_among(gids, |i, range| count(r, kk, table, gids[i], range));
            }
        }
    }
    comm.sum_u64(&mut counts);
    // A rank without local synapses stores no weights even for a per-synapse projection: the
    // ranks agree on whether to reduce the weighted sums through one more reduction.
    let mut flag = [u64::from(any_weighted)];
    comm.sum_u64(&mut flag);
    if flag[0] > 0 {
        comm.sum_i128(&mut weighted);
    }
    let n = n_total as f64;
    let mut out = Vec::with_capacity(runs * cells);
    for r in 0..runs {
        // Source bin major as the counts, transposed at the end. Per-synapse weights' sums
        // first (converting an i128 is slow: only where there are some).
        let weighted = &weighted[r * cells..][..cells];
        let mut h: Vec<f64> = if flag[0] > 0 {
            weighted.iter().map(|&x| crate::fixed::unfixed(x)).collect()
        } else {
            vec![0.0; cells]
        };
        for (kk, &k) in spec.projections.iter().enumerate() {
            let Some(table) = conn.tables_of(k).next() else {
                continue;
            };
            if !table.weights.is_empty() {
                continue;
            }
            let w = table.weight;
            let counts = &counts[(r * n_proj + kk) * cells..][..cells];
            for (x, &k) in h.iter_mut().zip(counts) {
                *x += w * k as f64;
            }
        }
        match &masks {
            None => {
                for x in &mut h {
                    *x /= n;
                }
            }
            Some((_, q)) => {
                for x in &mut h {
                    *x /= n * q;
                }
            }
        }
        // Cell `a bins + b` of the output (target bin a, source bin b) is `b bins + a` here.
        out.extend((0..bins).flat_map(|a| h.iter().skip(a).step_by(bins).copied()));
    }
    out
}
