//! Tree-indexed observables (Jabin and Zhou) and the weighted pair histogram, computed exactly
//! and distributed across ranks.
//!
//! ## Tree-indexed observables
//!
//! For a rooted tree on vertices `0..m` (0 the root, every parent before its children), test
//! functions `phi_a` and the matrix `w` (`w_ij`: the summed weights of all synapses `j -> i` in
//! the chosen projections, so multapses add), the value sampled at a step boundary is
//!
//! ```text
//! T = (1/N) sum_{i_0 .. i_{m-1}} prod_{(a parent of c)} w_{i_a i_c} prod_a phi_a(V_{i_a})
//! ```
//!
//! over all `N^m` index tuples, `N` the total number of neurons. It is computed exactly by
//! leaf-to-root products: `u_c = phi_c(V)` on the leaves and, for a vertex `a` with children
//! `c_1 < c_2 < ...`,
//!
//! ```text
//! u_a(i) = phi_a(V_i) * (W u_{c_1})(i) * (W u_{c_2})(i) * ...,     (W u)(i) = sum_j w_ij u(j),
//! T = (1/N) sum_i u_0(i).
//! ```
//!
//! Rows of `W` live with their target `i`: each rank holds the incoming synapses of its own
//! neurons, grouped by source ([`crate::connectivity`]). For each non-root vertex `c` the ranks
//! all-gather `u_c` (N values) and scatter it through their local synapses in the order of
//! delivery (projection, source ascending, synapse order), so the sum arriving at every target
//! is computed in the same order whatever the decomposition. Sources whose `u_c` is zero are
//! skipped, which changes no bit (a sum that starts at +0 never becomes -0). Subtrees that are
//! identical (same functions, same shape below, same projections) within one sample, in one
//! tree (the leaves of a star) or across trees, are computed once.
//!
//! **Cost per sample**: for every distinct non-root vertex, one all-gather of N `f64` and one
//! pass over the rank's synapses in the chosen projections (one multiply-add per synapse, the
//! inner loop of spike delivery), i.e. `synapses x edges` operations, plus one all-gather of a
//! few exponents and one reduction of one `i128` per tree.
//!
//! **Exact sum over neurons**: the sum over `i` is a fixed-point integer sum, whose scale is
//! chosen per sample from the largest `|u_0(i)|` over all ranks (`< 2^e`): every term is
//! truncated to a multiple of `2^(e + ceil(log2 N) - 126)` and summed in `i128` without
//! overflow. The sum is then exact and independent of the order and of the number of ranks;
//! the truncation error of `T` is below `2N max|u_0| 2^-126` (about `2^-95` times the largest
//! term at N = 2^31), far below the rounding of one `f64`. The result is therefore the exact
//! sum of the `f64` terms, rounded once, divided by N. A non-finite term makes the sample NaN.
//!
//! ## Pair histogram
//!
//! `H(a, b) = (1/N) sum_{synapses j -> i} w_ij 1[V_i in bin a] 1[V_j in bin b]` (`a` the target's
//! bin, `b` the source's), one `bins x bins` matrix per sample. Each rank all-gathers the bin of
//! every neuron (`u32`), counts its local synapses per projection and pair of bins, and the
//! integer counts are summed across ranks; `H = (1/N) sum_k w_k count_k`, in projection order,
//! is then the same on every rank. Cost per sample: one all-gather of N `u32`, one pass over the
//! local synapses, one reduction of `projections x bins^2` integers.

use crate::comm::Comm;
use crate::config::trees::{PairHistogramSpec, TestFunction, TreeSpec};
use crate::config::Config;
use crate::connectivity::Connectivity;
use crate::output::{replicated, RawWrites};
use hdf5::types::VarLenUnicode;
use hdf5::{File, Group};
use std::collections::HashMap;
use std::ops::Range;

/// One tree observable and its series so far.
struct Tree {
    spec: TreeSpec,
    children: Vec<Vec<usize>>,
    /// Key of each vertex's message `W u_c`: its projections and the functions and shape of its
    /// subtree. Equal keys, equal messages, bit for bit.
    keys: Vec<String>,
    uses_spikes: bool,
    uses_intensity: bool,
    times: Vec<f64>,
    values: Vec<f64>,
}

/// The pair histogram and its series so far.
struct Pair {
    spec: PairHistogramSpec,
    times: Vec<f64>,
    /// `bins x bins` values per sample (target bin major).
    values: Vec<f64>,
}

/// Samples and holds the series of every configured tree observable and pair histogram.
pub struct TreeRecorder {
    local: Range<u64>,
    n_total: u64,
    dt: f64,
    trees: Vec<Tree>,
    pair: Option<Pair>,
    /// Reused buffers: a gathered vector of N values, and gathered bins.
    gathered: Vec<f64>,
    gathered_bins: Vec<u32>,
    /// The local neurons of each population with an escape intensity, and the intensity.
    escape: Vec<(Range<usize>, crate::config::RawEscape)>,
}

impl TreeRecorder {
    pub fn new(config: &Config, local: Range<u64>) -> Self {
        let trees = config
            .trees
            .trees
            .iter()
            .map(|spec| {
                let children = spec.children();
                let m = spec.parents.len();
                // Subtree signatures, leaves first (children have larger indices).
                let mut sig = vec![String::new(); m];
                for a in (0..m).rev() {
                    let inner: Vec<&str> = children[a].iter().map(|&c| sig[c].as_str()).collect();
                    sig[a] = format!("{}({})", spec.functions[a], inner.join(","));
                }
                let keys = sig
                    .iter()
                    .map(|s| format!("{:?}:{s}", spec.projections))
                    .collect();
                Tree {
                    uses_spikes: spec.functions.contains(&TestFunction::Spike),
                    uses_intensity: spec.functions.contains(&TestFunction::Intensity),
                    spec: spec.clone(),
                    children,
                    keys,
                    times: Vec::new(),
                    values: Vec::new(),
                }
            })
            .collect();
        let escape = config
            .populations
            .iter()
            .filter_map(|p| p.model.escape.clone().map(|x| (p.local_range(&local), x)))
            .collect();
        TreeRecorder {
            escape,
            local,
            n_total: config.n_neurons(),
            dt: config.dt,
            trees,
            pair: config.trees.pair_histogram.clone().map(|spec| Pair {
                spec,
                times: Vec::new(),
                values: Vec::new(),
            }),
            gathered: Vec::new(),
            gathered_bins: Vec::new(),
        }
    }

    /// Whether anything is sampled at step boundary `b` (the same answer on every rank).
    pub fn fires(&self, b: u64) -> bool {
        self.trees.iter().any(|t| t.spec.schedule.fires(b))
            || self.pair.as_ref().is_some_and(|p| p.spec.schedule.fires(b))
    }

    /// Samples at boundary `b` (a collective: every rank calls it at the same boundaries).
    /// `v`: the potentials of the local neurons; `fired`: the local gids that spiked in the
    /// step ending at `b`, ascending.
    pub fn sample(
        &mut self,
        b: u64,
        v: &[f64],
        fired: &[u32],
        conn: &Connectivity,
        comm: &dyn Comm,
    ) {
        let time = b as f64 * self.dt;
        let firing: Vec<usize> = (0..self.trees.len())
            .filter(|&k| self.trees[k].spec.schedule.fires(b))
            .collect();
        if !firing.is_empty() {
            let mut spiked = Vec::new();
            if firing.iter().any(|&k| self.trees[k].uses_spikes) {
                spiked = vec![false; v.len()];
                for &g in fired {
                    spiked[(u64::from(g) - self.local.start) as usize] = true;
                }
            }
            let mut nu = Vec::new();
            if firing.iter().any(|&k| self.trees[k].uses_intensity) {
                nu = vec![0.0; v.len()];
                for (r, escape) in &self.escape {
                    for i in r.clone() {
                        nu[i] = crate::model::neuron::intensity(escape, v[i]) / 1000.0;
                    }
                }
            }
            let at = Locals {
                spiked: &spiked,
                nu: &nu,
                rate: 1.0 / self.dt,
            };
            let mut messages = HashMap::new();
            let roots: Vec<Vec<f64>> = firing
                .iter()
                .map(|&k| {
                    root_terms(
                        &self.trees[k],
                        v,
                        &at,
                        conn,
                        comm,
                        &mut messages,
                        &mut self.gathered,
                    )
                })
                .collect();
            let sums = exact_sums(&roots, self.n_total, comm);
            for (&k, s) in firing.iter().zip(sums) {
                let tree = &mut self.trees[k];
                tree.times.push(time);
                tree.values.push(s / self.n_total as f64);
            }
        }
        if let Some(pair) = self.pair.as_mut().filter(|p| p.spec.schedule.fires(b)) {
            let h = pair_histogram(
                &pair.spec,
                v,
                self.n_total,
                conn,
                comm,
                &mut self.gathered_bins,
            );
            pair.times.push(time);
            pair.values.extend_from_slice(&h);
        }
    }

    /// The series of each tree observable: (name, sample times [ms], values).
    pub fn tree_series(&self) -> impl Iterator<Item = (&str, &[f64], &[f64])> {
        self.trees
            .iter()
            .map(|t| (t.spec.name.as_str(), &t.times[..], &t.values[..]))
    }

    /// The pair-histogram series: sample times [ms] and `bins x bins` values per sample.
    pub fn pair_series(&self) -> Option<(&[f64], &[f64])> {
        self.pair.as_ref().map(|p| (&p.times[..], &p.values[..]))
    }

    /// Writes the series into the output file (collective).
    pub(crate) fn write(
        &self,
        file: &File,
        config: &Config,
        _comm: &dyn Comm,
        w: &mut RawWrites,
    ) -> hdf5::Result<()> {
        let names = |indices: &[usize]| -> String {
            let names: Vec<&str> = indices
                .iter()
                .map(|&k| config.projections[k].name.as_str())
                .collect();
            names.join(",")
        };
        if !self.trees.is_empty() {
            let group = file.create_group("trees")?;
            for tree in &self.trees {
                write_tree(&group, config, &tree.spec, &tree.times, &tree.values, w)?;
            }
        }
        if let Some(pair) = &self.pair {
            let spec = &pair.spec;
            let g = file.create_group("pair_histogram")?;
            let n = pair.times.len();
            replicated(&g, "time", &pair.times, &[n], "ms", "sample times", w)?;
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
                &pair.values,
                &[n, spec.bins, spec.bins],
                "mV",
                "time x target bin x source bin: (1/N) sum over synapses j -> i in the chosen \
                 projections of w_ij 1[V_i in target bin] 1[V_j in source bin]",
                w,
            )?;
            crate::output::attr_str(&g, "projections", &names(&spec.projections))?;
        }
        Ok(())
    }

    /// Saves the series so far into a checkpoint group (collective).
    pub(crate) fn save(&self, group: &Group, w: &mut RawWrites) -> hdf5::Result<()> {
        if !self.trees.is_empty() {
            let trees = group.create_group("tree")?;
            for tree in &self.trees {
                let g = trees.create_group(&tree.spec.name)?;
                let n = tree.times.len();
                replicated(&g, "time", &tree.times, &[n], "ms", "", w)?;
                replicated(&g, "value", &tree.values, &[n], "", "", w)?;
            }
        }
        if let Some(pair) = &self.pair {
            let g = group.create_group("pair_histogram")?;
            let n = pair.times.len();
            replicated(&g, "time", &pair.times, &[n], "ms", "", w)?;
            let len = pair.values.len();
            replicated(&g, "value", &pair.values, &[len], "", "flattened", w)?;
        }
        Ok(())
    }

    /// Restores the series from [`TreeRecorder::save`].
    pub fn restore(&mut self, group: &Group) -> hdf5::Result<()> {
        for tree in &mut self.trees {
            let g = group.group(&format!("tree/{}", tree.spec.name))?;
            tree.times = g.dataset("time")?.read_raw()?;
            tree.values = g.dataset("value")?.read_raw()?;
            if tree.times.len() != tree.values.len() {
                return Err(
                    format!("tree {}: times and values differ in length", tree.spec.name)
                        .as_str()
                        .into(),
                );
            }
        }
        if let Some(pair) = &mut self.pair {
            let g = group.group("pair_histogram")?;
            pair.times = g.dataset("time")?.read_raw()?;
            pair.values = g.dataset("value")?.read_raw()?;
            if pair.values.len() != pair.times.len() * pair.spec.bins * pair.spec.bins {
                return Err("the pair histogram has a different shape".into());
            }
        }
        Ok(())
    }
}

fn shape_name(spec: &TreeSpec) -> &'static str {
    use crate::config::trees::TreeShape::*;
    match spec.shape {
        Root => "root",
        Edge => "edge",
        Path => "path",
        Star => "star",
        Parents => "parents",
    }
}

/// The root's terms `u_0(i)` of one tree for the local neurons (collective: all-gathers one
/// vector per vertex whose message is not in `messages` yet).
#[allow(clippy::too_many_arguments)]
fn root_terms(
    tree: &Tree,
    v: &[f64],
    at: &Locals,
    conn: &Connectivity,
    comm: &dyn Comm,
    messages: &mut HashMap<String, Vec<f64>>,
    gathered: &mut Vec<f64>,
) -> Vec<f64> {
    let m = tree.keys.len();
    // The vertices whose messages must be computed: top-down from the root, stopping at
    // messages already known.
    let mut needed = vec![false; m];
    let mut stack = vec![0];
    while let Some(a) = stack.pop() {
        for &c in &tree.children[a] {
            if !needed[c] && !messages.contains_key(&tree.keys[c]) {
                needed[c] = true;
                stack.push(c);
            }
        }
    }
    // Bottom-up: a child has a larger index than its parent. Every rank runs the same sequence
    // of all-gathers (the keys and hence the skips are the same everywhere).
    for c in (1..m).rev() {
        if !needed[c] || messages.contains_key(&tree.keys[c]) {
            continue;
        }
        let u = vertex_terms(tree, c, v, at, messages);
        comm.all_gather_f64(&u, gathered);
        let mut out = vec![0.0; v.len()];
        scatter(gathered, conn, &tree.spec.projections, &mut out);
        messages.insert(tree.keys[c].clone(), out);
    }
    vertex_terms(tree, 0, v, at, messages)
}

/// What test functions read besides V, per local neuron.
struct Locals<'a> {
    /// Whether the neuron spiked in the step just ended (empty: no function needs it).
    spiked: &'a [bool],
    /// Escape intensity [1/ms] (empty: no function needs it).
    nu: &'a [f64],
    /// `1/dt` [1/ms].
    rate: f64,
}

/// `u_a(i) = phi_a(V_i) * prod_{children c} (W u_c)(i)` for the local neurons, the children in
/// ascending order.
fn vertex_terms(
    tree: &Tree,
    a: usize,
    v: &[f64],
    at: &Locals,
    messages: &HashMap<String, Vec<f64>>,
) -> Vec<f64> {
    let phi = tree.spec.functions[a];
    let mut u: Vec<f64> = v
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let spiked = at.spiked.get(i).copied().unwrap_or(false);
            phi.eval(x, spiked, at.rate, at.nu.get(i).copied().unwrap_or(0.0))
        })
        .collect();
    for &c in &tree.children[a] {
        let msg = &messages[&tree.keys[c]];
        for (x, &y) in u.iter_mut().zip(msg) {
            *x *= y;
        }
    }
    u
}

/// `/trees/<name>`: the sample times and values of one tree observable with its description
/// (a run's, or the mean-field limit's).
pub(crate) fn write_tree(
    group: &hdf5::Group,
    config: &Config,
    spec: &TreeSpec,
    times: &[f64],
    values: &[f64],
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let g = group.create_group(&spec.name)?;
    let n = times.len();
    replicated(&g, "time", times, &[n], "ms", "sample times", w)?;
    replicated(
        &g,
        "value",
        values,
        &[n],
        &spec.units(),
        "(1/N) sum over all index tuples (i_0, ..., i_{m-1}) of the product of \
         w_{i_a i_c} over the tree's edges (a parent of c; w_ij: summed weights of \
         the synapses j -> i in the chosen projections) and of the test functions \
         phi_a(V_{i_a}) over its vertices; unit: mV per edge times the functions' units",
        w,
    )?;
    let parents: Vec<i64> = spec
        .parents
        .iter()
        .map(|p| p.map_or(-1, |p| p as i64))
        .collect();
    g.new_attr::<i64>()
        .shape([parents.len()])
        .create("parents")?
        .write_raw(&parents)?;
    let functions = spec
        .functions
        .iter()
        .map(|f| crate::output::text(&f.to_string()))
        .collect::<hdf5::Result<Vec<VarLenUnicode>>>()?;
    g.new_attr::<VarLenUnicode>()
        .shape([functions.len()])
        .create("functions")?
        .write_raw(&functions)?;
    crate::output::attr_str(&g, "shape", shape_name(spec))?;
    let names: Vec<&str> = spec
        .projections
        .iter()
        .map(|&k| config.projections[k].name.as_str())
        .collect();
    crate::output::attr_str(&g, "projections", &names.join(","))
}

/// `out(i) += sum_j w_ij u(j)` for the local targets `i`, `u` indexed by gid: projection by
/// projection, sources ascending, synapses in table order (the order of spike delivery).
fn scatter(u: &[f64], conn: &Connectivity, projections: &[usize], out: &mut [f64]) {
    for &k in projections {
        for table in conn.tables_of(k) {
            let w = table.weight;
            let start = table.source_start as usize;
            let sources = &u[start..start + table.n_sources() as usize];
            for (s, &x) in sources.iter().enumerate() {
                // Adding w * 0 = ±0 to a sum that started at +0 changes no bit.
                if x == 0.0 {
                    continue;
                }
                let targets = table.targets_of(s as u64);
                match table.weights_of(s as u64) {
                    None => {
                        let wx = w * x;
                        for &t in targets {
                            out[t as usize] += wx;
                        }
                    }
                    Some(weights) => {
                        for (&t, &wk) in targets.iter().zip(weights) {
                            out[t as usize] += f64::from(wk) * x;
                        }
                    }
                }
            }
        }
    }
}

/// `2^k` for `-1022 <= k <= 1023`.
fn pow2(k: i64) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `x * 2^k` for any `k` in `-2044..=2046`; exact when the result is a normal number.
fn scale(x: f64, k: i64) -> f64 {
    if k > 1023 {
        x * pow2(k - 1023) * pow2(1023)
    } else if k < -1022 {
        x * pow2(k + 1022) * pow2(-1022)
    } else {
        x * pow2(k)
    }
}

/// Code of a series' largest term: the exponent `e` with `max |x| < 2^e`, `-inf` when all
/// terms are zero, `+inf` when one is not finite.
fn max_exponent(xs: &[f64]) -> f64 {
    let mut biased = 0u64;
    for &x in xs {
        if !x.is_finite() {
            return f64::INFINITY;
        }
        biased = biased.max((x.to_bits() >> 52) & 0x7ff);
    }
    if biased == 0 {
        // All zero or subnormal: subnormals are below 2^-1022.
        if xs.iter().any(|&x| x != 0.0) {
            -1022.0
        } else {
            f64::NEG_INFINITY
        }
    } else {
        // A normal x with biased exponent b lies in [2^(b-1023), 2^(b-1022)).
        biased as f64 - 1022.0
    }
}

/// The exact sum over all ranks of each series in `parts` (each series has at most `n_total`
/// terms over all ranks), rounded once to `f64`; the same on every rank (collective: one
/// all-gather of `parts.len()` values and one `i128` reduction).
fn exact_sums(parts: &[Vec<f64>], n_total: u64, comm: &dyn Comm) -> Vec<f64> {
    let local: Vec<f64> = parts.iter().map(|p| max_exponent(p)).collect();
    let mut all = Vec::new();
    comm.all_gather_f64(&local, &mut all);
    // ceil(log2 N)
    let terms_bits = i64::from(64 - n_total.max(1).saturating_sub(1).leading_zeros());
    let exponents: Vec<f64> = (0..parts.len())
        .map(|k| {
            all.iter()
                .skip(k)
                .step_by(parts.len())
                .fold(f64::NEG_INFINITY, |a, &b| a.max(b))
        })
        .collect();
    // Every term is below 2^(e + shift) = 2^(126 - ceil(log2 N)) after scaling, so the sum of
    // N of them stays below 2^126. With -1022 <= e <= 1024, -929 <= shift <= 1148.
    let shifts: Vec<Option<i64>> = exponents
        .iter()
        .map(|&e| e.is_finite().then(|| 126 - e as i64 - terms_bits))
        .collect();
    let mut sums: Vec<i128> = parts
        .iter()
        .zip(&shifts)
        .map(|(part, shift)| {
            let Some(shift) = *shift else { return 0 };
            part.iter()
                .map(|&x| {
                    let y = scale(x, shift);
                    // Truncation toward zero; through i64 where it fits (one instruction).
                    if y.abs() < 9.0e18 {
                        y as i64 as i128
                    } else {
                        y as i128
                    }
                })
                .sum()
        })
        .collect();
    comm.sum_i128(&mut sums);
    sums.iter()
        .zip(shifts.iter().zip(&exponents))
        .map(|(&sum, (shift, &e))| match shift {
            Some(shift) => scale(sum as f64, -shift),
            None if e == f64::NEG_INFINITY => 0.0,
            None => f64::NAN,
        })
        .collect()
}

/// One sample of the pair histogram (collective), `bins x bins` values, target bin major.
fn pair_histogram(
    spec: &PairHistogramSpec,
    v: &[f64],
    n_total: u64,
    conn: &Connectivity,
    comm: &dyn Comm,
    gathered: &mut Vec<u32>,
) -> Vec<f64> {
    const OUT: u32 = u32::MAX;
    let bins = spec.bins;
    let width = (spec.v_max - spec.v_min) / bins as f64;
    let local: Vec<u32> = v
        .iter()
        .map(|&x| {
            let b = ((x - spec.v_min) / width).floor();
            if b >= 0.0 && b < bins as f64 {
                b as u32
            } else {
                OUT
            }
        })
        .collect();
    comm.all_gather_u32(&local, gathered);
    let cells = bins * bins;
    // Constant weights: integer counts per projection and cell, times the weight after the
    // reduction. Per-synapse weights: exact fixed-point sums of the weights per cell.
    let mut counts = vec![0u64; spec.projections.len() * cells];
    let mut weighted = vec![0i128; cells];
    let mut any_weighted = false;
    for (kk, &k) in spec.projections.iter().enumerate() {
        let counts = &mut counts[kk * cells..(kk + 1) * cells];
        for table in conn.tables_of(k) {
            let start = table.source_start as usize;
            let sources = &gathered[start..start + table.n_sources() as usize];
            any_weighted |= !table.weights.is_empty();
            for (s, &bs) in sources.iter().enumerate() {
                if bs == OUT {
                    continue;
                }
                for pos in table.range_of(s as u64) {
                    let bt = local[table.targets[pos] as usize];
                    if bt == OUT {
                        continue;
                    }
                    let cell = bt as usize * bins + bs as usize;
                    if table.weights.is_empty() {
                        counts[cell] += 1;
                    } else {
                        weighted[cell] += crate::observables::fixed(table.weight_at(pos));
                    }
                }
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
    let mut h: Vec<f64> = weighted
        .iter()
        .map(|&x| crate::observables::unfixed(x))
        .collect();
    for (kk, &k) in spec.projections.iter().enumerate() {
        let Some(table) = conn.tables_of(k).next() else {
            continue;
        };
        if !table.weights.is_empty() {
            continue;
        }
        let w = table.weight;
        for (x, &c) in h.iter_mut().zip(&counts[kk * cells..(kk + 1) * cells]) {
            *x += w * c as f64;
        }
    }
    let n = n_total as f64;
    for x in &mut h {
        *x /= n;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::SerialComm;

    /// The sums do not depend on the order of the terms, equal the exact sum rounded, and
    /// cancel exactly.
    #[test]
    fn exact_sums_are_order_independent_and_exact() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 * 0.0137 - 5.3 + 1e-9 * i as f64)
            .collect();
        let n = xs.len() as u64;
        let fwd = exact_sums(std::slice::from_ref(&xs), n, &SerialComm)[0];
        let rev: Vec<f64> = xs.iter().rev().copied().collect();
        assert_eq!(
            fwd.to_bits(),
            exact_sums(&[rev], n, &SerialComm)[0].to_bits()
        );
        // Reference: the exact sum in 128-bit fixed point at 2^-80, by hand.
        let exact: i128 = xs.iter().map(|&x| (x * 2f64.powi(80)) as i128).sum();
        let exact = exact as f64 / 2f64.powi(80);
        assert!(
            (fwd - exact).abs() <= exact.abs() * 1e-15,
            "{fwd} vs {exact}"
        );
        // Cancellation is exact; the resolution next to 1e30 (< 2^100) at N = 3 is 2^-24.
        let s = exact_sums(&[vec![1e30, 0.25, -1e30]], 3, &SerialComm)[0];
        assert_eq!(s, 0.25);
        let s = exact_sums(&[vec![1e30, 1e-8, -1e30]], 3, &SerialComm)[0];
        assert_eq!(s, 0.0, "terms below the resolution are cut");
        let s = exact_sums(&[vec![1e3, 0.25, -1e3]], 3, &SerialComm)[0];
        assert_eq!(s, 0.25);
        let s = exact_sums(
            &[vec![0.0; 4], vec![1.0, f64::INFINITY], vec![3e-310, 3e-310]],
            4,
            &SerialComm,
        );
        assert_eq!(s[0], 0.0);
        assert!(s[1].is_nan());
        assert_eq!(s[2], 6e-310);
        let s = exact_sums(&[vec![f64::MAX, f64::MAX / 2.0, -f64::MAX]], 3, &SerialComm)[0];
        assert_eq!(s, f64::MAX / 2.0);
    }

    #[test]
    fn max_exponent_bounds_the_largest_term() {
        for x in [1.0, 0.75, 3.0, 1e-300, 1e300, 4.0, 5e-324, -2.5] {
            let e = max_exponent(&[0.0, x]);
            assert!(x.abs() < 2f64.powf(e), "{x}: {e}");
            assert!(x.abs() >= 2f64.powf(e - 1.0) || e == -1022.0, "{x}: {e}");
        }
    }
}
