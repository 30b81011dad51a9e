//! Tree-indexed observables (Jabin and Zhou) (`/trees`), computed exactly and distributed
//! across ranks.
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
//! neurons, grouped by source ([`crate::connectivity`]). The messages `W u_c` of a sample are
//! computed level by level, leaves first (a message is ready once those of its vertex's
//! children exist). The pending messages of one level that use the same projections, in one
//! tree or across the trees sampled together, are computed together, up to 8 at a time: the
//! ranks all-gather their vectors `u_c` interleaved (`[gid][message]`) and pass once through
//! their local synapses in the order of delivery (projection, source ascending, synapse order),
//! adding `w_ij u_c(j)` into interleaved sums. The sum arriving at every target is therefore
//! computed in the same order whatever the decomposition and whatever messages share the pass.
//! A source is skipped when all its values in the pass are zero; otherwise its zeros are added
//! too, which changes no bit (a sum that starts at +0 never becomes -0, and `x + ±0 = x`).
//! Subtrees that are identical (same functions, same shape below, same projections) within one
//! sample, in one tree (the leaves of a star) or across trees, are computed once.
//!
//! **Sampled estimates** (`sample = f < 1`): each of `R` replicates masks the terms of every
//! non-root vertex `c` on the source side of its edge, `u_c(j) xi_c(j) / q` with `q = f/R` and
//! `xi_c(j)` 1 with probability `q`, independently per replicate, vertex and neuron (a hash of
//! the seed, the boundary, the tree, the replicate, the vertex and the gid:
//! [`super::sampling`], the same on any number of ranks). Every index tuple's product then
//! carries one independent factor `xi / q` of expectation 1 per non-root vertex, so each
//! replicate's `T_r` is an unbiased estimate of `T`. The value written is the mean of the `R`
//! estimates, and `stderr` their sample standard deviation over `sqrt(R)`. Messages are not
//! shared between vertices or replicates of a sampled tree: a shared message would put one mask
//! twice into a product (`(W_hat u)^2` for the two identical leaves of a star), whose
//! expectation exceeds `(W u)^2`. A masked vector has about `q N` non-zero values, so each gets
//! a sparse pass of its own: the `R` replicates of a vertex together visit about a fraction `f`
//! of the synapses.
//!
//! **Cost per sample**: one all-gather and one pass over the rank's synapses in the chosen
//! projections per level and projection list, each for up to 8 distinct messages of that level
//! (N `f64` gathered per message). The levels are the height of the tallest tree sampled minus
//! one: one pass for any number of edges and stars sampled together, `m - 1` for a path of `m`
//! vertices. A pass is the inner loop of spike delivery, one multiply-add per synapse and
//! message; it costs more with more messages, yet far less than one pass each (on the Brunel
//! network about 1.1, 1.4, 1.5 and 2.2 times a one-message pass for 2, 3, 4 and 8 messages).
//! Where N exceeds 2^21 fewer messages share a pass, so that a gather holds at most 2^24 values
//! (or N). A gathered vector with fewer than N/8 non-zero values (such as `spike`) gets a pass
//! of its own instead, which looks up only its non-zero sources and so costs in proportion to
//! them (the same sums, added in the same order). Plus one all-gather
//! of a few exponents and one reduction of one `i128` per tree.
//!
//! **Exact sum over neurons**: the sum over `i` is a fixed-point integer sum, whose scale is
//! chosen per sample from the largest `|u_0(i)|` over all ranks (`< 2^e`): every term is
//! truncated to a multiple of `2^(e + ceil(log2 N) - 126)` and summed in `i128` without
//! overflow. The sum is then exact and independent of the order and of the number of ranks;
//! the truncation error of `T` is below `2N max|u_0| 2^-126` (about `2^-95` times the largest
//! term at N = 2^31), far below the rounding of one `f64`. The result is therefore the exact
//! sum of the `f64` terms, rounded once, divided by N. A non-finite term makes the sample NaN.
//!
use super::{Boundary, Observer, Observers, Output, Restored, Saved};
use crate::comm::Comm;
use crate::config::trees::{Sampling, TestFunction, TreeSpec};
use crate::config::Config;
use crate::connectivity::{Connectivity, Local, ProjectionTable};
use crate::h5::{replicated, RawWrites};
use crate::spill::{Series, Stored};
use crate::with_targets;
use hdf5::types::VarLenUnicode;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// Its group in output files (and in checkpoints, under `/observables`).
pub const GROUP: &str = "trees";

/// One tree observable and its series so far.
struct Tree {
    spec: TreeSpec,
    children: Vec<Vec<usize>>,
    /// Per replicate (one when exact), the key of each vertex's message `W u_c`. Exact: its
    /// projections and the functions and shape of its subtree; equal keys, equal messages, bit
    /// for bit. Sampled: unique to the tree, replicate and vertex (a message shared by two
    /// vertices would put the same random mask twice into a product, e.g. `(W_hat u)^2`, whose
    /// expectation is not `(W u)^2`).
    keys: Vec<Vec<String>>,
    /// Height of each vertex's subtree (1 for a leaf): the level at which its message is
    /// computed, once the messages of its children (lower levels) exist.
    heights: Vec<usize>,
    uses_spikes: bool,
    uses_intensity: bool,
    times: Series<f64>,
    values: Series<f64>,
    /// Standard errors of the values (sampled trees only).
    stderrs: Series<f64>,
}

impl Tree {
    fn sampling(&self) -> Sampling {
        self.spec.sampling
    }
}

/// Samples and holds the series of every configured tree observable.
pub struct TreeRecorder {
    local: Range<u64>,
    n_total: u64,
    dt: f64,
    trees: Vec<Tree>,
    /// Reused buffer: a gathered vector of N values.
    gathered: Vec<f64>,
    /// The local neurons of each population with an escape intensity, and the intensity.
    escape: Vec<(Range<usize>, crate::config::RawEscape)>,
    /// The simulation seed (of the masks of sampled trees).
    seed: u64,
}

impl TreeRecorder {
    pub fn new(config: &Config, local: Range<u64>) -> Self {
        let trees = config
            .trees
            .trees
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let children = spec.children();
                let m = spec.parents.len();
                // Subtree signatures, leaves first (children have larger indices).
                let mut sig = vec![String::new(); m];
                for a in (0..m).rev() {
                    let inner: Vec<&str> = children[a].iter().map(|&c| sig[c].as_str()).collect();
                    sig[a] = format!("{}({})", spec.functions[a], inner.join(","));
                }
                let keys = if spec.sampling.estimated() {
                    (0..spec.sampling.replicates)
                        .map(|r| (0..m).map(|c| format!("#{index}/{r}/{c}")).collect())
                        .collect()
                } else {
                    vec![sig
                        .iter()
                        .map(|s| format!("{:?}:{s}", spec.projections))
                        .collect()]
                };
                let mut heights = vec![1; m];
                for a in (0..m).rev() {
                    heights[a] = 1 + children[a].iter().map(|&c| heights[c]).max().unwrap_or(0);
                }
                Tree {
                    uses_spikes: spec.functions.contains(&TestFunction::Spike),
                    uses_intensity: spec.functions.contains(&TestFunction::Intensity),
                    spec: spec.clone(),
                    children,
                    keys,
                    heights,
                    times: Series::new(1),
                    values: Series::new(1),
                    stderrs: Series::new(1),
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
            gathered: Vec::new(),
            seed: config.seed,
        }
    }

    /// Whether anything is sampled at step boundary `b` (the same answer on every rank).
    pub fn fires(&self, b: u64) -> bool {
        self.trees.iter().any(|t| t.spec.schedule.fires(b))
    }

    /// Samples at boundary `b`, time `time` (`Config::time(b)`; a collective: every rank calls
    /// it at the same boundaries).
    /// `v`: the potentials of the local neurons; `fired`: the local gids that spiked in the
    /// step ending at `b`, ascending.
    pub fn sample(
        &mut self,
        b: u64,
        time: f64,
        v: &[f64],
        fired: &[u32],
        conn: &Connectivity,
        comm: &dyn Comm,
    ) {
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
                gid_start: self.local.start,
                seed: self.seed,
                b,
            };
            let messages = messages(
                &self.trees,
                &firing,
                v,
                &at,
                self.n_total,
                conn,
                comm,
                &mut self.gathered,
            );
            // One root per tree, or per replicate of a sampled tree.
            let roots: Vec<Vec<f64>> = firing
                .iter()
                .flat_map(|&k| {
                    let tree = &self.trees[k];
                    (0..tree.keys.len()).map(move |r| (tree, k, r))
                })
                .map(|(tree, k, r)| vertex_terms(tree, k, r, 0, v, &at, &messages))
                .collect();
            let mut sums = exact_sums(&roots, self.n_total, comm).into_iter();
            for &k in &firing {
                let tree = &mut self.trees[k];
                tree.times.push(time);
                if tree.sampling().estimated() {
                    let estimates: Vec<f64> = (&mut sums)
                        .take(tree.keys.len())
                        .map(|s| s / self.n_total as f64)
                        .collect();
                    let (mean, stderr) = super::sampling::mean_and_stderr(&estimates);
                    tree.values.push(mean);
                    tree.stderrs.push(stderr);
                } else {
                    let s = sums.next().expect("one sum per root");
                    tree.values.push(s / self.n_total as f64);
                }
            }
        }
    }

    /// The series of each tree observable: (name, sample times \[ms\], values), read back
    /// into memory.
    pub fn tree_series(&self) -> impl Iterator<Item = (&str, Vec<f64>, Vec<f64>)> {
        self.trees
            .iter()
            .map(|t| (t.spec.name.as_str(), t.times.to_vec(), t.values.to_vec()))
    }

    /// The standard errors of each tree observable's values (empty when exact), by name.
    pub fn tree_stderrs(&self) -> impl Iterator<Item = (&str, Vec<f64>)> {
        self.trees
            .iter()
            .map(|t| (t.spec.name.as_str(), t.stderrs.to_vec()))
    }
}

impl Observer for TreeRecorder {
    fn name(&self) -> &'static str {
        GROUP
    }

    fn at_boundary(&mut self, at: &Boundary) {
        if self.fires(at.b) {
            self.sample(at.b, at.time, at.v, at.fired, at.conn, at.comm);
        }
    }

    fn write(&self, out: &mut Output, _all: &Observers) -> hdf5::Result<()> {
        if !self.trees.is_empty() {
            let group = out.file.create_group(GROUP)?;
            for tree in &self.trees {
                write_tree(
                    &group,
                    out.config,
                    &tree.spec,
                    &tree.times,
                    &tree.values,
                    tree.sampling().estimated().then_some(&tree.stderrs),
                    out.w,
                )?;
            }
        }
        Ok(())
    }

    /// Per tree, a group with its sample times and values (and standard errors when sampled).
    fn save(&self, to: &mut Saved) -> hdf5::Result<()> {
        for tree in &self.trees {
            let g = to.group.create_group(&tree.spec.name)?;
            let n = tree.times.count();
            replicated(&g, "time", &tree.times, &[n], "ms", "", to.w)?;
            replicated(&g, "value", &tree.values, &[n], "", "", to.w)?;
            if tree.sampling().estimated() {
                replicated(&g, "stderr", &tree.stderrs, &[n], "", "", to.w)?;
            }
        }
        Ok(())
    }

    fn restore(&mut self, from: &Restored) -> hdf5::Result<()> {
        for tree in &mut self.trees {
            let g = from.group.group(&tree.spec.name)?;
            let from = Restored {
                group: g,
                slab: from.slab.clone(),
                comm: from.comm,
            };
            from.series("time", &mut tree.times)?;
            from.series("value", &mut tree.values)?;
            tree.stderrs = Series::new(1);
            if tree.sampling().estimated() {
                from.series("stderr", &mut tree.stderrs)?;
            }
            if tree.times.count() != tree.values.count()
                || (tree.sampling().estimated() && tree.stderrs.count() != tree.values.count())
            {
                return Err(
                    format!("tree {}: times and values differ in length", tree.spec.name)
                        .as_str()
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
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

/// Most messages computed in one pass (one kernel per count, see [`pass`]).
const MAX_FUSED: usize = 8;

/// A pass fuses fewer messages where N is large, so that its all-gather holds at most this
/// many values (128 MiB of `f64`) or N: `max(1, min(MAX_FUSED, FUSED_VALUES / N))` messages.
const FUSED_VALUES: u64 = 1 << 24;

/// A vector with fewer than `N / SPARSE` non-zero values is passed alone.
const SPARSE: u64 = 8;

/// The messages `W u_c` of the non-root vertices of the trees `firing`, each distinct key once
/// (collective). Level by level, leaves first (a message needs those of its vertex's children):
/// the messages of one level with the same projections are computed together, one all-gather
/// of their interleaved terms and one pass over the synapses. Every rank computes the same plan,
/// hence the same sequence of collectives.
#[allow(clippy::too_many_arguments)]
fn messages(
    trees: &[Tree],
    firing: &[usize],
    v: &[f64],
    at: &Locals,
    n_total: u64,
    conn: &Connectivity,
    comm: &dyn Comm,
    gathered: &mut Vec<f64>,
) -> HashMap<String, Vec<f64>> {
    // Per level, groups of messages (tree, replicate, vertex) with the same projections, in the order of
    // first appearance.
    type Group<'t> = (&'t [usize], Vec<(usize, usize, usize)>);
    let mut levels: Vec<Vec<Group>> = Vec::new();
    let mut planned = HashSet::new();
    for &k in firing {
        let tree = &trees[k];
        for (r, keys) in tree.keys.iter().enumerate() {
            for (c, key) in keys.iter().enumerate().skip(1) {
                if !planned.insert(key.as_str()) {
                    continue;
                }
                let level = tree.heights[c] - 1;
                if levels.len() <= level {
                    levels.resize_with(level + 1, Vec::new);
                }
                let projections = &tree.spec.projections[..];
                match levels[level].iter_mut().find(|(p, _)| *p == projections) {
                    Some((_, group)) => group.push((k, r, c)),
                    None => levels[level].push((projections, vec![(k, r, c)])),
                }
            }
        }
    }
    let max_fused = MAX_FUSED.min((FUSED_VALUES / n_total.max(1)).max(1) as usize);
    let n = v.len();
    let mut messages = HashMap::new();
    for (projections, group) in levels.iter().flatten() {
        for batch in group.chunks(max_fused) {
            let m = batch.len();
            // The terms u_c of the batch, interleaved: [local neuron][message].
            let mut local = vec![0.0; n * m];
            for (j, &(k, r, c)) in batch.iter().enumerate() {
                let u = vertex_terms(&trees[k], k, r, c, v, at, &messages);
                for (x, y) in local.iter_mut().skip(j).step_by(m).zip(u) {
                    *x = y;
                }
            }
            comm.all_gather_f64(&local, gathered);
            // A vector with few non-zero values (such as "spike") costs little in a pass of its
            // own, which skips its zero sources, but a full share of a fused pass: such vectors
            // are passed alone. The gathered values, hence the choice, are the same everywhere.
            let (dense, sparse): (Vec<usize>, Vec<usize>) = (0..m).partition(|&j| {
                let nonzero = gathered.iter().skip(j).step_by(m).filter(|&&x| x != 0.0);
                nonzero.count() as u64 * SPARSE >= n_total
            });
            let mut sums = vec![Vec::new(); m];
            for j in sparse {
                // Its non-zero sources (gids, ascending) and their values.
                let (gids, values): (Vec<u64>, Vec<f64>) = gathered
                    .iter()
                    .skip(j)
                    .step_by(m)
                    .enumerate()
                    .filter(|&(_, &x)| x != 0.0)
                    .map(|(g, &x)| (g as u64, x))
                    .unzip();
                let mut out = vec![0.0; n];
                sparse_pass(&gids, &values, conn, projections, &mut out);
                sums[j] = out;
            }
            if !dense.is_empty() {
                let part = dense;
                let mp = part.len();
                let u: Vec<f64>;
                let u = if mp == m {
                    &gathered[..]
                } else {
                    u = gathered
                        .chunks_exact(m)
                        .flat_map(|g| part.iter().map(|&j| g[j]))
                        .collect();
                    &u[..]
                };
                let mut out = vec![0.0; n * mp];
                pass(u, mp, conn, projections, &mut out);
                for (jj, &j) in part.iter().enumerate() {
                    sums[j] = if mp == 1 {
                        std::mem::take(&mut out)
                    } else {
                        out.iter().skip(jj).step_by(mp).copied().collect()
                    };
                }
            }
            for (&(k, r, c), sum) in batch.iter().zip(sums) {
                messages.insert(trees[k].keys[r][c].clone(), sum);
            }
        }
    }
    messages
}

/// What test functions read besides V, per local neuron.
struct Locals<'a> {
    /// Whether the neuron spiked in the step just ended (empty: no function needs it).
    spiked: &'a [bool],
    /// Escape intensity [1/ms] (empty: no function needs it).
    nu: &'a [f64],
    /// `1/dt` [1/ms].
    rate: f64,
    /// The gid of the first local neuron.
    gid_start: u64,
    /// The simulation seed and the sample's step boundary (of the masks of sampled trees).
    seed: u64,
    b: u64,
}

/// `u_a(i) = phi_a(V_i) * prod_{children c} (W u_c)(i)` for the local neurons, the children in
/// ascending order, of replicate `r` of tree `k`. In a sampled tree, a non-root vertex's terms
/// are then masked: `u_a(i) xi / q`, `xi` 1 with probability `q = f/R` (independently for each
/// replicate, vertex and neuron), else 0.
fn vertex_terms(
    tree: &Tree,
    k: usize,
    r: usize,
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
        let msg = &messages[&tree.keys[r][c]];
        for (x, &y) in u.iter_mut().zip(msg) {
            *x *= y;
        }
    }
    let sampling = tree.sampling();
    if a > 0 && sampling.estimated() {
        use super::sampling::{kept, stream, TREES};
        let mask = stream(&[at.seed, TREES, at.b, k as u64, r as u64, a as u64]);
        let q = sampling.keep();
        for (i, x) in u.iter_mut().enumerate() {
            *x = if kept(mask, at.gid_start + i as u64, q) {
                *x / q
            } else {
                0.0
            };
        }
    }
    u
}

/// `/trees/<name>`: the sample times and values of one tree observable with its description
/// (a run's, or the mean-field limit's).
pub(crate) fn write_tree<S: Stored<f64> + ?Sized>(
    group: &hdf5::Group,
    config: &Config,
    spec: &TreeSpec,
    times: &S,
    values: &S,
    stderrs: Option<&S>,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let g = group.create_group(&spec.name)?;
    let n = times.count();
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
        .map(|f| crate::h5::unicode(&f.to_string()))
        .collect::<hdf5::Result<Vec<VarLenUnicode>>>()?;
    g.new_attr::<VarLenUnicode>()
        .shape([functions.len()])
        .create("functions")?
        .write_raw(&functions)?;
    crate::h5::attr_str(&g, "shape", shape_name(spec))?;
    if let Some(stderrs) = stderrs {
        replicated(
            &g,
            "stderr",
            stderrs,
            &[n],
            &spec.units(),
            "standard error of the sampled estimate in value: the standard deviation of the \
             replicates' estimates over sqrt(replicates)",
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

/// One pass over the local synapses of `projections`, in the order of spike delivery
/// (projection by projection, sources ascending, synapses in table order):
/// `out[i m + k] += sum_j w_ij u[j m + k]` for the local targets `i` and the `m` (at most
/// [`MAX_FUSED`]) interleaved vectors of `u`, indexed by gid.
///
/// The sum arriving at each target and vector is thus computed in the same order whatever the
/// decomposition and whatever the other vectors of the pass. A source is skipped only when all
/// its `m` values are zero; otherwise zeros are added too, which changes no bit: a sum that
/// starts at +0 never becomes -0, and `x + ±0 = x` for any other `x`.
fn pass(u: &[f64], m: usize, conn: &Connectivity, projections: &[usize], out: &mut [f64]) {
    for &k in projections {
        for table in conn.tables_of(k) {
            let w = table.weight;
            let start = table.source_start as usize;
            if m == 1 {
                // The common case: one vector, the loop of spike delivery.
                for (s, _, range) in table.runs() {
                    let x = u[start + s as usize];
                    if x != 0.0 {
                        add_run(table, range, x, out);
                    }
                }
                continue;
            }
            for (s, _, range) in table.runs() {
                let at = (start + s as usize) * m;
                let us = &u[at..at + m];
                if us.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let weights = table.weights_at(range.clone());
                // One kernel per batch size, so that the interleaved sums of a target are
                // added with fixed-size array code.
                with_targets!(table.targets(), range, |targets| match m {
                    2 => add::<_, 2>(targets, weights, w, us, out),
                    3 => add::<_, 3>(targets, weights, w, us, out),
                    4 => add::<_, 4>(targets, weights, w, us, out),
                    5 => add::<_, 5>(targets, weights, w, us, out),
                    6 => add::<_, 6>(targets, weights, w, us, out),
                    7 => add::<_, 7>(targets, weights, w, us, out),
                    8 => add::<_, 8>(targets, weights, w, us, out),
                    _ => unreachable!("1 to {MAX_FUSED} vectors per pass"),
                })
            }
        }
    }
}

/// [`pass`] for one vector given by its non-zero values `values` at the sources `gids`
/// (ascending): the same sums, added in the same order (the pass skips zero sources), at a cost
/// in proportion to the non-zero sources rather than to all of them.
fn sparse_pass(
    gids: &[u64],
    values: &[f64],
    conn: &Connectivity,
    projections: &[usize],
    out: &mut [f64],
) {
    for &k in projections {
        for table in conn.tables_of(k) {
            table.each_run_among(gids, |i, range| add_run(table, range, values[i], out));
        }
    }
}

/// `out[t] += w_s x` for the synapses of one source, `range` of `table` (`w_s` the synapse's
/// weight, else the table's): one message, the loop of spike delivery.
fn add_run(table: &ProjectionTable, range: Range<usize>, x: f64, out: &mut [f64]) {
    let weights = table.weights_at(range.clone());
    with_targets!(table.targets(), range, |targets| match weights {
        None => {
            let wx = table.weight * x;
            for &t in targets {
                out[t.at()] += wx;
            }
        }
        Some(weights) => {
            for (&t, &wk) in targets.iter().zip(weights) {
                out[t.at()] += f64::from(wk) * x;
            }
        }
    })
}

/// `out[t M + k] += w_s u[k]` for the synapses of one source onto `targets` and the `M`
/// interleaved sums of each target (`w_s` the synapse's weight: `weights`, else `w`).
fn add<T: Local, const M: usize>(
    targets: &[T],
    weights: Option<&[f32]>,
    w: f64,
    u: &[f64],
    out: &mut [f64],
) {
    let u: [f64; M] = u.try_into().expect("M values");
    match weights {
        None => {
            let wu = u.map(|x| w * x);
            for &t in targets {
                let t = t.at() * M;
                let o: &mut [f64; M] = (&mut out[t..t + M]).try_into().expect("M sums");
                for k in 0..M {
                    o[k] += wu[k];
                }
            }
        }
        Some(weights) => {
            for (&t, &wk) in targets.iter().zip(weights) {
                let wk = f64::from(wk);
                let t = t.at() * M;
                let o: &mut [f64; M] = (&mut out[t..t + M]).try_into().expect("M sums");
                for k in 0..M {
                    o[k] += wk * u[k];
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

/// `x * 2^shift` truncated toward zero, for finite `x` and `|x| 2^shift < 2^127`: the value
/// `scale(x, shift) as i128` takes, from the bits of `x` (its mantissa shifted), without the
/// library's conversion to `i128`, which the terms of a tree's sums mostly needed (they are
/// scaled to about 2^112).
fn truncated(x: f64, shift: i64) -> i128 {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1 << 52) - 1);
    // x = m 2^e
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    let k = e + shift;
    let v = if k >= 0 {
        i128::from(m) << k
    } else if k > -64 {
        i128::from(m >> -k)
    } else {
        0
    };
    if bits >> 63 == 1 {
        -v
    } else {
        v
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
            part.iter().map(|&x| truncated(x, shift)).sum()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::SerialComm;

    /// The conversion from the bits equals scaling in floating point and converting with the
    /// library (truncation toward zero) for every term a sum can hold: both signs, normal and
    /// subnormal values, results of magnitude below 1, near 2^63 and up to 2^126.
    #[test]
    fn truncation_from_bits_equals_the_float_conversion() {
        use rand::RngExt;
        assert_eq!((truncated(0.0, 100), truncated(-0.0, 100)), (0, 0));
        let mut g = crate::rng::stream(5, 0, crate::rng::Purpose::Init);
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            3e-310,
            -3e-310,
            f64::MIN_POSITIVE,
        ];
        for _ in 0..20_000 {
            let m: f64 = g.random::<f64>() + 0.5;
            let e: i32 = g.random_range(-1070..1020);
            let sign = if g.random::<bool>() { -1.0 } else { 1.0 };
            xs.push(sign * m * 2f64.powi(e));
        }
        let mut checked = 0;
        for &x in &xs {
            let e = max_exponent(&[x]);
            if !e.is_finite() {
                continue;
            }
            for bits in [0i64, 1, 14, 40, 60, 64, 70, 126, 140, 200] {
                let shift = 126 - e as i64 - bits;
                let float = scale(x, shift) as i128;
                assert_eq!(truncated(x, shift), float, "x = {x:e}, shift = {shift}");
                checked += 1;
            }
        }
        assert!(checked > 150_000);
    }

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
