//! Configuration of the tree-indexed observables and the pair histogram
//! (`[observables.tree.NAME]`, `[observables.pair_histogram]`).
//!
//! A tree observable names a rooted tree on `m` vertices (vertex 0 is the root, every parent
//! precedes its children), one test function per vertex and the projections whose weights form
//! the matrix `w` (see [`crate::observables::trees`] for what is computed).

use super::{
    finite, invalid, schedule, valid_name, Population, Projection, RawObservables, Result, Schedule,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Largest tree: every vertex but the root costs one all-gather of N values per sample.
pub const MAX_VERTICES: u64 = 1000;

/// Largest power in a test function `v^k`.
pub const MAX_POWER: u32 = 64;

/// Largest number of bins of the pair histogram (a sample is `bins x bins` values).
pub const MAX_PAIR_BINS: u64 = 1000;

/// Largest pair-histogram series held in memory: samples x bins x bins values (1 GiB).
pub const MAX_PAIR_VALUES: u64 = 1 << 27;

/// The shape of a tree. Vertex 0 is the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeShape {
    /// One vertex: `(1/N) sum_i phi_0(V_i)`.
    Root,
    /// Two vertices, 0 -> 1: `(1/N) sum_ij w_ij phi_0(V_i) phi_1(V_j)`.
    Edge,
    /// `vertices` vertices in a chain 0 -> 1 -> ... -> m-1, rooted at one end.
    Path,
    /// `vertices` vertices: the root 0 (the centre) and the leaves 1..m-1.
    Star,
    /// Any tree, given by `parents`.
    Parents,
}

impl TreeShape {
    fn name(self) -> &'static str {
        match self {
            TreeShape::Root => "root",
            TreeShape::Edge => "edge",
            TreeShape::Path => "path",
            TreeShape::Star => "star",
            TreeShape::Parents => "parents",
        }
    }
}

/// One tree-indexed observable as written by the user.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTree {
    /// "root", "edge", "path", "star" or "parents".
    pub shape: TreeShape,
    /// Number of vertices (`path` and `star`: required, at least 2; other shapes: optional,
    /// must match).
    pub vertices: Option<u64>,
    /// Parent of each vertex (`shape = "parents"`): -1 for vertex 0, the root; every parent
    /// precedes its children.
    pub parents: Option<Vec<i64>>,
    /// One test function per vertex, root first: a number (a constant), "v" (V \[mV\]), "v^k"
    /// (integer k >= 0), "bin(a,b)" (1 if a <= V < b \[mV\], else 0) or "spike" (1/dt [1/ms] if
    /// the neuron spiked in the step just ended, else 0).
    #[serde(deserialize_with = "function_list")]
    pub functions: Vec<String>,
    /// Projections whose weights form the matrix w (w_ij: the summed weights of all synapses
    /// j -> i in them); absent: all.
    pub projections: Option<Vec<String>>,
    /// First sample time \[ms\].
    #[serde(default)]
    pub start: f64,
    /// Last sample time \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Sampling interval \[ms\]; a multiple of `dt`. Zero switches the observable off. A sample
    /// passes over every synapse once per level of the tree below the root (an edge or a star:
    /// once; a path of m vertices: m - 1 times), the trees sampled together with the same
    /// projections sharing the passes of each level; a pass takes about 0.6 to 1.3 ns per
    /// synapse on one core (1 to 8 messages; on the Brunel network 9 to 20 ms, as long as
    /// 10 to 25 ms of model time), hence the sparse default of 500 ms.
    #[serde(default = "d_tree_every")]
    pub every: f64,
    /// Fraction f of the sources sampled, in (0, 1]: 1 (the default) computes the exact value;
    /// below 1, an unbiased estimate from `replicates` independent random subsets of the
    /// sources, with its standard error, at about f times the cost of the exact passes.
    #[serde(default = "d_sample", skip_serializing_if = "is_d_sample")]
    pub sample: f64,
    /// Number R of independent replicates of a sampled estimate (at least 2; used only when
    /// `sample < 1`): each keeps every source of every edge with probability f/R.
    #[serde(default = "d_replicates", skip_serializing_if = "is_d_replicates")]
    pub replicates: u64,
}

fn d_sample() -> f64 {
    1.0
}

fn d_replicates() -> u64 {
    4
}

// The defaults are left out of the resolved configuration, which therefore reads as before
// these keys existed.
fn is_d_sample(x: &f64) -> bool {
    *x == d_sample()
}

fn is_d_replicates(x: &u64) -> bool {
    *x == d_replicates()
}

fn d_tree_every() -> f64 {
    500.0
}

/// A test function as written: a string, or a bare number for a constant.
struct FunctionText(String);

impl<'de> Deserialize<'de> for FunctionText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FunctionText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a test function: a number, \"v\", \"v^k\", \"bin(a,b)\" or \"spike\"")
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<FunctionText, E> {
                Ok(FunctionText(s.to_string()))
            }
            fn visit_i64<E>(self, x: i64) -> std::result::Result<FunctionText, E> {
                Ok(FunctionText(x.to_string()))
            }
            fn visit_u64<E>(self, x: u64) -> std::result::Result<FunctionText, E> {
                Ok(FunctionText(x.to_string()))
            }
            fn visit_f64<E>(self, x: f64) -> std::result::Result<FunctionText, E> {
                Ok(FunctionText(x.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn function_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    let list = Vec::<FunctionText>::deserialize(d)?;
    Ok(list.into_iter().map(|f| f.0).collect())
}

/// The weighted two-vertex histogram as written by the user.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPairHistogram {
    /// Projections whose synapses are counted; absent: all.
    pub projections: Option<Vec<String>>,
    /// Lower edge of the first bin \[mV\]; absent: `observables.histogram.v_min`.
    pub v_min: Option<f64>,
    /// Upper edge of the last bin \[mV\]; absent: `observables.histogram.v_max`.
    pub v_max: Option<f64>,
    /// Number of bins (at most 1000); absent: `observables.histogram.bins`.
    pub bins: Option<u64>,
    /// First sample time \[ms\].
    #[serde(default)]
    pub start: f64,
    /// Last sample time \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Sampling interval \[ms\]; a multiple of `dt`. Zero (the default) switches it off.
    #[serde(default)]
    pub every: f64,
    /// Fraction f of the sources sampled, in (0, 1]; 1 (the default): exact (as for trees).
    #[serde(default = "d_sample", skip_serializing_if = "is_d_sample")]
    pub sample: f64,
    /// Number R of independent replicates when `sample < 1` (at least 2).
    #[serde(default = "d_replicates", skip_serializing_if = "is_d_replicates")]
    pub replicates: u64,
}

impl Default for RawPairHistogram {
    fn default() -> Self {
        RawPairHistogram {
            projections: None,
            v_min: None,
            v_max: None,
            bins: None,
            start: 0.0,
            stop: None,
            every: 0.0,
            sample: d_sample(),
            replicates: d_replicates(),
        }
    }
}

/// How an observable is computed: exactly, or estimated from random subsets of the sources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Fraction f of the sources sampled, in (0, 1]; 1: exact.
    pub fraction: f64,
    /// Number R of independent replicates (at least 2); meaningful only when `fraction < 1`.
    pub replicates: usize,
}

impl Sampling {
    /// Whether the value is estimated (f < 1) rather than exact.
    pub fn estimated(&self) -> bool {
        self.fraction < 1.0
    }

    /// Replicates computed per sample: R when estimated, 1 when exact.
    pub fn runs(&self) -> usize {
        if self.estimated() {
            self.replicates
        } else {
            1
        }
    }

    /// Probability q = f/R that a source is kept in one replicate.
    pub fn keep(&self) -> f64 {
        self.fraction / self.replicates as f64
    }
}

/// Validates `sample` and `replicates` of `section`.
fn sampling(section: &str, sample: f64, replicates: u64) -> Result<Sampling> {
    if !(sample > 0.0 && sample <= 1.0) {
        return Err(invalid(
            format!("{section}.sample"),
            sample,
            "must be a fraction in (0, 1] (1: exact)",
        ));
    }
    if !(2..=1000).contains(&replicates) {
        return Err(invalid(
            format!("{section}.replicates"),
            replicates,
            "must be in 2..=1000",
        ));
    }
    Ok(Sampling {
        fraction: sample,
        replicates: replicates as usize,
    })
}

/// A test function on one vertex, evaluated at a neuron's potential `V` \[mV\].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TestFunction {
    /// A constant.
    Constant(f64),
    /// `V^k` (`k = 1`: "v").
    Power(u32),
    /// 1 if `lo <= V < hi`, else 0.
    Bin { lo: f64, hi: f64 },
    /// `1/dt` [1/ms] if the neuron spiked in the step just ended, else 0: an unbiased estimate
    /// of its intensity.
    Spike,
    /// The escape intensity `nu(V)` of the neuron's population [1/ms] (`spike = "escape"`).
    Intensity,
}

impl TestFunction {
    /// Parses one function as written in `functions`; the error is the reason.
    pub fn parse(text: &str) -> std::result::Result<TestFunction, String> {
        let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let s = s.to_ascii_lowercase();
        if s == "spike" {
            return Ok(TestFunction::Spike);
        }
        if s == "nu" {
            return Ok(TestFunction::Intensity);
        }
        if s == "v" {
            return Ok(TestFunction::Power(1));
        }
        if let Some(k) = s.strip_prefix("v^") {
            return match k.parse::<u32>() {
                Ok(k) if k <= MAX_POWER => Ok(TestFunction::Power(k)),
                _ => Err(format!(
                    "the power of v must be an integer from 0 to {MAX_POWER}"
                )),
            };
        }
        if let Some(args) = s.strip_prefix("bin(").and_then(|a| a.strip_suffix(')')) {
            let parsed: Option<Vec<f64>> = args.split(',').map(|a| a.parse().ok()).collect();
            return match parsed.as_deref() {
                Some(&[lo, hi]) if lo.is_finite() && hi.is_finite() && lo < hi => {
                    Ok(TestFunction::Bin { lo, hi })
                }
                _ => Err("expected bin(a,b) with finite a < b [mV]".into()),
            };
        }
        match s.parse::<f64>() {
            Ok(c) if c.is_finite() => Ok(TestFunction::Constant(c)),
            Ok(_) => Err("a constant must be finite".into()),
            Err(_) => Err(
                "expected a number, \"v\", \"v^k\", \"bin(a,b)\" [mV], \"spike\" or \"nu\"".into(),
            ),
        }
    }

    /// The value at potential `v` \[mV\] for a neuron that did (`spiked`) or did not spike in
    /// the step just ended; `rate` is `1/dt` [1/ms].
    #[inline]
    pub fn eval(&self, v: f64, spiked: bool, rate: f64, nu: f64) -> f64 {
        match *self {
            TestFunction::Constant(c) => c,
            TestFunction::Power(1) => v,
            TestFunction::Power(k) => v.powi(k as i32),
            TestFunction::Bin { lo, hi } => {
                if lo <= v && v < hi {
                    1.0
                } else {
                    0.0
                }
            }
            TestFunction::Spike => {
                if spiked {
                    rate
                } else {
                    0.0
                }
            }
            TestFunction::Intensity => nu,
        }
    }

    /// Exponents of mV and of ms in the function's unit.
    pub fn units(&self) -> (i64, i64) {
        match *self {
            TestFunction::Power(k) => (i64::from(k), 0),
            TestFunction::Spike | TestFunction::Intensity => (0, -1),
            _ => (0, 0),
        }
    }
}

/// The canonical text of the function (parses back to the same function).
impl fmt::Display for TestFunction {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            TestFunction::Constant(c) => write!(f, "{c}"),
            TestFunction::Power(1) => write!(f, "v"),
            TestFunction::Power(k) => write!(f, "v^{k}"),
            TestFunction::Bin { lo, hi } => write!(f, "bin({lo},{hi})"),
            TestFunction::Spike => write!(f, "spike"),
            TestFunction::Intensity => write!(f, "nu"),
        }
    }
}

/// A validated tree observable.
#[derive(Clone, Debug)]
pub struct TreeSpec {
    pub name: String,
    pub shape: TreeShape,
    /// Parent of each vertex; `None` for vertex 0, the root. `parents[c] < c`.
    pub parents: Vec<Option<usize>>,
    /// One per vertex.
    pub functions: Vec<TestFunction>,
    /// Indices into [`super::Config::projections`], ascending (the order of the sums).
    pub projections: Vec<usize>,
    pub schedule: Schedule,
    pub sampling: Sampling,
}

impl TreeSpec {
    /// The children of each vertex, ascending.
    pub fn children(&self) -> Vec<Vec<usize>> {
        let mut children = vec![Vec::new(); self.parents.len()];
        for (c, p) in self.parents.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(c);
            }
        }
        children
    }

    /// The unit of the value: the product of the weights' (one mV per edge) and the test
    /// functions' units, e.g. "mV^3/ms".
    pub fn units(&self) -> String {
        let (mut mv, mut ms) = ((self.parents.len() - 1) as i64, 0);
        for f in &self.functions {
            let (a, b) = f.units();
            mv += a;
            ms += b;
        }
        let power = |u: &str, k: i64| {
            if k == 1 {
                u.to_string()
            } else {
                format!("{u}^{k}")
            }
        };
        match (mv, ms) {
            (0, 0) => "1".into(),
            (0, k) => format!("1/{}", power("ms", -k)),
            (m, 0) => power("mV", m),
            (m, k) => format!("{}/{}", power("mV", m), power("ms", -k)),
        }
    }
}

/// The validated pair histogram.
#[derive(Clone, Debug)]
pub struct PairHistogramSpec {
    pub schedule: Schedule,
    pub v_min: f64,
    pub v_max: f64,
    pub bins: usize,
    /// Indices into [`super::Config::projections`], ascending.
    pub projections: Vec<usize>,
    pub sampling: Sampling,
}

impl PairHistogramSpec {
    /// Bin edges \[mV\], `bins + 1` of them.
    pub fn edges(&self) -> Vec<f64> {
        super::bin_edges(self.v_min, self.v_max, self.bins)
    }
}

/// The validated tree observables and pair histogram.
#[derive(Clone, Debug, Default)]
pub struct TreeObservables {
    /// In the order of the configuration.
    pub trees: Vec<TreeSpec>,
    pub pair_histogram: Option<PairHistogramSpec>,
}

/// TOML-like text of a list of strings, for error messages.
fn list<T: fmt::Debug>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", inner.join(", "))
}

/// Resolves projection names to ascending indices; absent means all.
fn projection_indices(
    key: &str,
    names: Option<&Vec<String>>,
    projections: &[Projection],
) -> Result<Vec<usize>> {
    let Some(names) = names else {
        return Ok((0..projections.len()).collect());
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let k = projections
            .iter()
            .position(|p| &p.name == name)
            .ok_or_else(|| invalid(key, format!("{name:?}"), "no such projection"))?;
        if out.contains(&k) {
            return Err(invalid(
                key,
                list(names),
                format!("names projection {name:?} twice"),
            ));
        }
        out.push(k);
    }
    out.sort_unstable();
    Ok(out)
}

fn tree(
    name: &str,
    t: &RawTree,
    projections: &[Projection],
    dt: f64,
    n_steps: u64,
) -> Result<Option<TreeSpec>> {
    let section = format!("observables.tree.{name}");
    let key = |k: &str| format!("{section}.{k}");
    valid_name(&section, name)?;
    let shape = t.shape;
    if t.parents.is_some() && shape != TreeShape::Parents {
        return Err(invalid(
            key("parents"),
            list(t.parents.as_deref().unwrap_or_default()),
            format!(
                "only with shape = \"parents\" (shape = \"{}\")",
                shape.name()
            ),
        ));
    }
    let m = match shape {
        TreeShape::Root => 1,
        TreeShape::Edge => 2,
        TreeShape::Path | TreeShape::Star => match t.vertices {
            None => {
                return Err(invalid(
                    key("vertices"),
                    "(absent)",
                    format!("required with shape = \"{}\"", shape.name()),
                ))
            }
            Some(m) if !(2..=MAX_VERTICES).contains(&m) => {
                return Err(invalid(
                    key("vertices"),
                    m,
                    format!("must be in 2..={MAX_VERTICES}"),
                ))
            }
            Some(m) => m,
        },
        TreeShape::Parents => {
            let Some(parents) = &t.parents else {
                return Err(invalid(
                    key("parents"),
                    "(absent)",
                    "required with shape = \"parents\"",
                ));
            };
            let m = parents.len() as u64;
            if !(1..=MAX_VERTICES).contains(&m) {
                return Err(invalid(
                    key("parents"),
                    list(parents),
                    format!("must list 1 to {MAX_VERTICES} vertices"),
                ));
            }
            for (c, &p) in parents.iter().enumerate() {
                let ok = if c == 0 {
                    p == -1
                } else {
                    p >= 0 && (p as u64) < c as u64
                };
                if !ok {
                    let reason = if c == 0 {
                        "vertex 0 is the root: its parent must be -1".to_string()
                    } else {
                        format!(
                            "the parent of vertex {c} is {p}; it must be a vertex from 0 to {} \
                             (parents precede their children)",
                            c - 1
                        )
                    };
                    return Err(invalid(key("parents"), list(parents), reason));
                }
            }
            m
        }
    };
    if let Some(v) = t.vertices {
        if v != m {
            return Err(invalid(
                key("vertices"),
                v,
                format!("shape = \"{}\" has {m} vertices", shape.name()),
            ));
        }
    }
    let m = m as usize;
    let parents: Vec<Option<usize>> = (0..m)
        .map(|c| match shape {
            _ if c == 0 => None,
            TreeShape::Star => Some(0),
            TreeShape::Parents => Some(t.parents.as_ref().expect("checked above")[c] as usize),
            _ => Some(c - 1),
        })
        .collect();
    if t.functions.len() != m {
        return Err(invalid(
            key("functions"),
            list(&t.functions),
            format!(
                "expected {m} function{}, one per vertex",
                if m == 1 { "" } else { "s" }
            ),
        ));
    }
    let functions = t
        .functions
        .iter()
        .map(|f| {
            TestFunction::parse(f)
                .map_err(|reason| invalid(key("functions"), format!("{f:?}"), reason))
        })
        .collect::<Result<Vec<_>>>()?;
    let projections = projection_indices(&key("projections"), t.projections.as_ref(), projections)?;
    let sampling = sampling(&section, t.sample, t.replicates)?;
    let Some(schedule) = schedule(&section, t.start, t.stop, t.every, dt, n_steps)? else {
        return Ok(None);
    };
    Ok(Some(TreeSpec {
        name: name.to_string(),
        shape,
        parents,
        functions,
        projections,
        schedule,
        sampling,
    }))
}

/// Fills in the defaults of `observables.pair_histogram` that come from other keys (`v_min`,
/// `v_max`, `bins` from `observables.histogram`), so that the resolved configuration shows the
/// values used. Call before [`validate`]; validating without it gives the same result.
pub fn resolve_defaults(obs: &mut RawObservables) {
    let h = &obs.histogram;
    let p = &mut obs.pair_histogram;
    if p.every != 0.0 {
        // Filled in from the populations before the trees are validated.
        p.v_min = p.v_min.or(h.v_min);
        p.v_max = p.v_max.or(h.v_max);
        p.bins.get_or_insert(h.bins);
    }
}

/// Validates `observables.tree.*` and `observables.pair_histogram`.
pub fn validate(
    obs: &RawObservables,
    populations: &[Population],
    projections: &[Projection],
    dt: f64,
    n_steps: u64,
) -> Result<TreeObservables> {
    let mut trees = Vec::new();
    for (name, t) in &obs.tree {
        if let Some(spec) = tree(name, t, projections, dt, n_steps)? {
            if spec.functions.contains(&TestFunction::Intensity) {
                if let Some(p) = populations.iter().find(|p| p.model.escape.is_none()) {
                    return Err(invalid(
                        format!("observables.tree.{name}.functions"),
                        list(&t.functions),
                        format!(
                            "\"nu\" needs an escape intensity in every population; {} has none",
                            p.name
                        ),
                    ));
                }
            }
            trees.push(spec);
        }
    }

    let section = "observables.pair_histogram";
    let key = |k: &str| format!("{section}.{k}");
    let p = &obs.pair_histogram;
    let projections = projection_indices(&key("projections"), p.projections.as_ref(), projections)?;
    let sampling = sampling(section, p.sample, p.replicates)?;
    let pair_histogram = match schedule(section, p.start, p.stop, p.every, dt, n_steps)? {
        None => None,
        Some(schedule) => {
            let h = &obs.histogram;
            let inherited = |set: bool| {
                if set {
                    ""
                } else {
                    " (from observables.histogram)"
                }
            };
            let v_min = p
                .v_min
                .or(h.v_min)
                .expect("the histogram range is resolved first");
            let v_max = p
                .v_max
                .or(h.v_max)
                .expect("the histogram range is resolved first");
            let bins = p.bins.unwrap_or(h.bins);
            finite(&key("v_min"), v_min, "[mV]")?;
            finite(&key("v_max"), v_max, "[mV]")?;
            if v_max <= v_min {
                return Err(invalid(
                    key("v_max"),
                    v_max,
                    format!(
                        "must exceed v_min = {v_min}{} [mV]",
                        inherited(p.v_min.is_some())
                    ),
                ));
            }
            if bins == 0 || bins > MAX_PAIR_BINS {
                return Err(invalid(
                    key("bins"),
                    bins,
                    format!(
                        "must be in 1..={MAX_PAIR_BINS}{}",
                        inherited(p.bins.is_some())
                    ),
                ));
            }
            if schedule.count().saturating_mul(bins * bins) > MAX_PAIR_VALUES {
                return Err(invalid(
                    key("every"),
                    p.every,
                    format!(
                        "{} samples of {bins} x {bins} bins exceed {MAX_PAIR_VALUES} values; \
                         sample less often or use fewer bins",
                        schedule.count()
                    ),
                ));
            }
            Some(PairHistogramSpec {
                schedule,
                v_min,
                v_max,
                bins: bins as usize,
                projections,
                sampling,
            })
        }
    };
    Ok(TreeObservables {
        trees,
        pair_histogram,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
        [population.E]
        size = 10
        [population.I]
        size = 5
        [projection.EE]
        source = "E"
        target = "E"
        rule = "fixed_indegree"
        indegree = 3
        weight = 0.1
        delay = 1.5
        [projection.IE]
        source = "I"
        target = "E"
        rule = "fixed_indegree"
        indegree = 2
        weight = -0.4
        delay = 1.5
        [observables.tree.x]
        shape = "path"
        vertices = 3
        functions = ["v", 1, "bin(0, 5)"]
    "#;

    /// `BASE` with overrides that may define trees (as `--create` allows).
    fn load(overrides: &[&str]) -> std::result::Result<Config, String> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::from_toml_creating(BASE, &o).map_err(|e| e.to_string())
    }

    #[test]
    fn shapes_resolve_to_parent_lists() {
        let c = load(&[]).unwrap();
        let t = &c.trees.trees[0];
        assert_eq!(t.parents, vec![None, Some(0), Some(1)]);
        assert_eq!(t.projections, vec![0, 1]);
        assert_eq!(t.schedule.every, 5000);
        assert_eq!(t.units(), "mV^3");
        let c = load(&["observables.tree.x.shape=\"star\""]).unwrap();
        assert_eq!(c.trees.trees[0].parents, vec![None, Some(0), Some(0)]);
        let c = load(&[
            "observables.tree.x.shape=\"parents\"",
            "observables.tree.x.vertices=4",
            "observables.tree.x.parents=[-1, 0, 1, 0]",
            "observables.tree.x.functions=[\"spike\", \"v^0\", \"2.5\", \"V^2\"]",
            "observables.tree.x.projections=[\"IE\"]",
        ])
        .unwrap();
        let t = &c.trees.trees[0];
        assert_eq!(t.parents, vec![None, Some(0), Some(1), Some(0)]);
        assert_eq!(t.projections, vec![1]);
        assert_eq!(t.units(), "mV^5/ms");
        assert_eq!(t.children(), vec![vec![1, 3], vec![2], vec![], vec![]]);
        let texts: Vec<String> = t.functions.iter().map(|f| f.to_string()).collect();
        assert_eq!(texts, ["spike", "v^0", "2.5", "v^2"]);
        let c = load(&["observables.tree.x.every=0"]).unwrap();
        assert!(c.trees.trees.is_empty());
        assert!(c.trees.pair_histogram.is_none());
        let c = load(&[
            "observables.pair_histogram.every=5",
            "observables.pair_histogram.bins=7",
        ])
        .unwrap();
        let p = c.trees.pair_histogram.as_ref().unwrap();
        assert_eq!((p.v_min, p.v_max, p.bins), (-20.0, 20.0, 7));
        assert_eq!(p.edges().len(), 8);
        // The resolved configuration reads back the same.
        let again = Config::from_toml(&c.resolved_toml(), &[]).unwrap();
        assert_eq!(again.resolved_toml(), c.resolved_toml());
        // Inherited bounds can be made explicit without changing anything.
        let mut raw = c.raw.observables.clone();
        super::resolve_defaults(&mut raw);
        assert_eq!(
            (raw.pair_histogram.v_min, raw.pair_histogram.bins),
            (Some(-20.0), Some(7))
        );
        let v = super::validate(&raw, &c.populations, &c.projections, c.dt, c.n_steps).unwrap();
        let q = v.pair_histogram.unwrap();
        assert_eq!((q.v_min, q.v_max, q.bins), (p.v_min, p.v_max, p.bins));
    }

    #[test]
    fn errors_are_one_line_and_name_key_and_value() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["observables.tree.x.functions=[\"v\", \"1\"]"],
                "observables.tree.x.functions = [\"v\", \"1\"]: expected 3 functions, one per vertex",
            ),
            (
                &["observables.tree.x.functions=[\"v\", \"w\", \"1\"]"],
                "observables.tree.x.functions = \"w\": expected a number",
            ),
            (
                &["observables.tree.x.functions=[\"v\", \"v^-1\", \"1\"]"],
                "observables.tree.x.functions = \"v^-1\": the power of v",
            ),
            (
                &["observables.tree.x.functions=[\"v\", \"bin(5,1)\", \"1\"]"],
                "observables.tree.x.functions = \"bin(5,1)\": expected bin(a,b)",
            ),
            (
                &["observables.tree.x.functions=[\"v\", \"nan\", \"1\"]"],
                "observables.tree.x.functions = \"nan\": a constant must be finite",
            ),
            (
                &["observables.tree.x.functions=[\"v\", true, \"1\"]"],
                "observables.tree.x.functions",
            ),
            (
                &["observables.tree.x.vertices=1"],
                "observables.tree.x.vertices = 1: must be in 2..=1000",
            ),
            (
                &["observables.tree.x.shape=\"edge\""],
                "observables.tree.x.vertices = 3: shape = \"edge\" has 2 vertices",
            ),
            (
                &["observables.tree.x.shape=\"ring\""],
                "observables.tree.x.shape",
            ),
            (
                &["observables.tree.x.parents=[-1, 0, 1]"],
                "observables.tree.x.parents = [-1, 0, 1]: only with shape = \"parents\"",
            ),
            (
                &[
                    "observables.tree.x.shape=\"parents\"",
                    "observables.tree.x.parents=[-1, 2, 0]",
                ],
                "observables.tree.x.parents = [-1, 2, 0]: the parent of vertex 1 is 2",
            ),
            (
                &[
                    "observables.tree.x.shape=\"parents\"",
                    "observables.tree.x.parents=[0, 0, 0]",
                ],
                "observables.tree.x.parents = [0, 0, 0]: vertex 0 is the root",
            ),
            (
                &["observables.tree.x.shape=\"parents\""],
                "observables.tree.x.parents = (absent): required",
            ),
            (
                &["observables.tree.x.projections=[\"EI\"]"],
                "observables.tree.x.projections = \"EI\": no such projection",
            ),
            (
                &["observables.tree.x.projections=[\"EE\", \"EE\"]"],
                "observables.tree.x.projections = [\"EE\", \"EE\"]: names projection \"EE\" twice",
            ),
            (
                &["observables.tree.x.every=0.05"],
                "observables.tree.x.every = 0.05: must be a multiple",
            ),
            (
                &["observables.tree.x.start=500", "observables.tree.x.stop=100"],
                "observables.tree.x.stop = 100: must not lie before start",
            ),
            (
                &["observables.tree.x.colour=1"],
                "colour",
            ),
            (
                &[
                    "observables.tree.a b.shape=\"root\"",
                    "observables.tree.a b.functions=[1]",
                ],
                "observables.tree.a b = \"a b\": names use",
            ),
            (
                &["observables.pair_histogram.every=1", "observables.pair_histogram.bins=5000"],
                "observables.pair_histogram.bins = 5000: must be in 1..=1000",
            ),
            (
                &["observables.pair_histogram.every=1", "observables.histogram.bins=5000"],
                "observables.pair_histogram.bins = 5000: must be in 1..=1000 (from observables.histogram)",
            ),
            (
                &["observables.pair_histogram.every=1", "observables.pair_histogram.v_max=-30"],
                "observables.pair_histogram.v_max = -30: must exceed v_min = -20",
            ),
            (
                &["observables.pair_histogram.every=0.1", "observables.pair_histogram.bins=1000"],
                "observables.pair_histogram.every = 0.1: 10001 samples of 1000 x 1000 bins",
            ),
            (
                &["observables.tree.x.sample=0"],
                "observables.tree.x.sample = 0: must be a fraction in (0, 1]",
            ),
            (
                &["observables.tree.x.sample=1.5"],
                "observables.tree.x.sample = 1.5: must be a fraction in (0, 1]",
            ),
            (
                &["observables.tree.x.sample=0.5", "observables.tree.x.replicates=1"],
                "observables.tree.x.replicates = 1: must be in 2..=1000",
            ),
            (
                &["observables.pair_histogram.every=1", "observables.pair_histogram.sample=nan"],
                "observables.pair_histogram.sample = NaN: must be a fraction in (0, 1]",
            ),
            (
                &["observables.pair_histogram.projections=[\"XX\"]"],
                "observables.pair_histogram.projections = \"XX\": no such projection",
            ),
        ];
        for (o, expect) in cases {
            let e = load(o).expect_err(&format!("{o:?} should be rejected"));
            assert!(e.contains(expect), "{o:?}: got {e:?}, expected {expect:?}");
            assert!(!e.contains('\n'), "{o:?}: multi-line error {e:?}");
        }
    }
}
