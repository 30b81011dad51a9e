//! Projection options beyond the connection rule: a kernel `w(xi_i, xi_j)` that
//! modulates the connection probability and/or the weight, random weights whose sign is fixed by
//! the projection (Dale's law), weight scaling with the in-degree, uniform delays, and edges read
//! from an HDF5 file in the SONATA edges layout.
//!
//! `resolve` turns one `[projection.X]` table into a [`Projection`]; every error is one line
//! naming the key and its value.

use super::{
    expected_synapses, finite, invalid, non_negative, steps, ConnRule, Population, Projection,
    RawProjection, Result, Rule, MAX_SYNAPSES,
};
use crate::rng::Stream;
use crate::space::{Geometry, Kernel};
use hdf5::types::TypeDescriptor;
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// What a projection's kernel modulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelUse {
    /// The connection probability: `p w` (bernoulli), or sources drawn with probability
    /// proportional to `w` (fixed_indegree).
    Probability,
    /// The weight: each synapse's weight is multiplied by `w`.
    Weight,
    /// Both.
    Both,
}

/// The distribution of a synapse's weight magnitude.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightDist {
    /// Every synapse has `weight`.
    #[default]
    Constant,
    /// Normal with mean `|weight|` and standard deviation `weight_sd`, clipped at 0.
    Normal,
    /// The lognormal with mean `|weight|` and standard deviation `weight_sd`.
    Lognormal,
    /// Uniform on `|weight| +- sqrt(3) weight_sd` (standard deviation `weight_sd`).
    Uniform,
}

/// How the weight scales with the in-degree or the source population size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// `weight` as given.
    #[default]
    None,
    /// `weight / K`.
    InverseK,
    /// `weight / sqrt(K)`.
    InverseSqrtK,
    /// `weight N^(scaling_alpha - 1)`.
    Power,
}

/// A validated kernel of a projection.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjKernel {
    pub kernel: Kernel,
    /// The space of both populations' coordinates.
    pub geometry: Geometry,
    /// Whether `w` modulates the connection probability.
    pub probability: bool,
    /// Whether `w` multiplies the weight.
    pub weight: bool,
    /// The kernel's largest value.
    pub max: f64,
    /// The mean of `w` over two independent uniform coordinates (see [`kernel_mean`]).
    pub mean: f64,
}

/// The weight distribution of a projection, after scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub dist: WeightDist,
    /// Mean magnitude \[mV\].
    pub mean: f64,
    /// Standard deviation of the magnitude \[mV\].
    pub sd: f64,
    /// Whether every weight is negative (the sign of `weight`).
    pub negative: bool,
    /// `mu` and `sigma` of the underlying normal of `lognormal`.
    log_mu: f64,
    log_sigma: f64,
}

impl Weights {
    pub fn new(dist: WeightDist, mean: f64, sd: f64, negative: bool) -> Weights {
        let (log_mu, log_sigma) = if dist == WeightDist::Lognormal && mean > 0.0 {
            let s2 = (sd / mean).powi(2).ln_1p();
            (mean.ln() - 0.5 * s2, s2.sqrt())
        } else {
            (0.0, 0.0)
        };
        Weights {
            dist,
            mean,
            sd,
            negative,
            log_mu,
            log_sigma,
        }
    }

    /// Whether nothing is drawn: every synapse has the magnitude `mean` (also where scaling
    /// made the mean of a lognormal 0).
    pub fn is_constant(&self) -> bool {
        self.dist == WeightDist::Constant
            || self.sd == 0.0
            || (self.dist == WeightDist::Lognormal && self.mean <= 0.0)
    }

    /// One signed weight \[mV\] (draws nothing when [`Weights::is_constant`]).
    pub fn draw(&self, rng: &mut Stream) -> f64 {
        let m = if self.is_constant() {
            self.mean
        } else {
            match self.dist {
                WeightDist::Constant => self.mean,
                WeightDist::Normal => {
                    let z: f64 = rng.sample(StandardNormal);
                    (self.mean + self.sd * z).max(0.0)
                }
                WeightDist::Lognormal => {
                    let z: f64 = rng.sample(StandardNormal);
                    (self.log_mu + self.log_sigma * z).exp()
                }
                WeightDist::Uniform => {
                    let u: f64 = rng.random();
                    // Clipped at 0 against rounding when sqrt(3) sd = mean.
                    (self.mean + 3f64.sqrt() * self.sd * (2.0 * u - 1.0)).max(0.0)
                }
            }
        };
        if self.negative {
            -m
        } else {
            m
        }
    }
}

/// Edges read from an HDF5 file in the SONATA edges layout (`rule = "file"`).
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeFile {
    /// As given (relative paths are relative to the current directory).
    pub path: String,
    /// The edge population: the datasets are under `/edges/<population>/`.
    pub population: String,
    /// Number of edges.
    pub count: u64,
    /// Path of the per-edge weight dataset in the file, if there is one.
    pub weights: Option<String>,
    /// Path of the per-edge delay dataset \[ms\] in the file, if there is one.
    pub delays: Option<String>,
    /// bmtk's edge types table, if given: weights and delays per edge type.
    pub edge_types: Option<String>,
    /// The distinct delays of the edges \[steps\], ascending.
    pub delay_set: Vec<u32>,
}

/// One edge of a file, as kept by the rank of its target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FileEdge {
    /// Offset of the target in the target population.
    pub target: u64,
    /// Offset of the source in the source population.
    pub source: u32,
    /// \[mV\]; the projection's `weight` when the file has no weights.
    pub weight: f64,
    /// \[steps\]
    pub delay: u32,
}

/// Most distinct delays of one projection: each has its own synapse table, whose source index
/// costs 0.375 bytes per source neuron on every rank (`connectivity::SourceIndex`).
pub const MAX_DELAYS: usize = 10_000;

/// Edges per chunk read from a file.
const CHUNK: usize = 1 << 20;

impl EdgeFile {
    /// The edges whose target offset lies in `targets`, in file order. `weight` and
    /// `delay_steps` stand in for missing weight and delay datasets.
    pub fn read(
        &self,
        targets: Range<u64>,
        weight: f64,
        delay_steps: u32,
        dt: f64,
    ) -> std::result::Result<Vec<FileEdge>, String> {
        let file = hdf5::File::open(&self.path).map_err(|e| e.to_string())?;
        let sets = Datasets::open(&file, &self.population, self.edge_types.as_deref())?;
        let mut out = Vec::new();
        sets.for_each_chunk(|_, src, tgt, w, d| {
            for i in 0..src.len() {
                if targets.contains(&tgt[i]) {
                    out.push(FileEdge {
                        target: tgt[i],
                        source: src[i] as u32,
                        weight: w.map_or(weight, |w| w[i]),
                        delay: d
                            .map_or(Some(delay_steps), |d| delay_in_steps(d[i], dt))
                            .ok_or(
                            "a delay is not a positive multiple of simulation.dt (file changed?)",
                        )?,
                    });
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}

impl Projection {
    /// Whether synapses carry their own weights (random weights, a weight kernel, or weights
    /// from a file).
    pub fn per_synapse_weights(&self) -> bool {
        match &self.rule {
            ConnRule::File(f) => f.weights.is_some(),
            _ => !self.weights.is_constant() || self.kernel.as_ref().is_some_and(|k| k.weight),
        }
    }

    /// The distinct delays a synapse may have \[steps\], ascending.
    pub fn delay_set(&self) -> Vec<u32> {
        match &self.rule {
            ConnRule::File(f) => f.delay_set.clone(),
            _ => (self.delay_steps..=self.delay_max_steps).collect(),
        }
    }

    /// The kernel, where it modulates the connection probability.
    pub fn probability_kernel(&self) -> Option<&ProjKernel> {
        self.kernel.as_ref().filter(|k| k.probability)
    }
}

/// The mean of `w(x, y)` over independent uniform coordinates `x`, `y` (for the Gaussian, with
/// an approximation of erf accurate to 1.5e-7).
pub fn kernel_mean(kernel: &Kernel, geometry: Geometry) -> f64 {
    match kernel {
        Kernel::Constant { value } => *value,
        Kernel::Blocks { matrix } => {
            let b = matrix.len() as f64;
            matrix.iter().flatten().sum::<f64>() / (b * b)
        }
        Kernel::Cosine { a, .. } => *a,
        Kernel::Gaussian { amplitude, width } => {
            // The mean over the periodic distance in one dimension: the integral of
            // exp(-x^2 / (2 width^2)) over [-1/2, 1/2].
            let one = width
                * (2.0 * std::f64::consts::PI).sqrt()
                * erf(1.0 / (2.0 * std::f64::consts::SQRT_2 * width));
            match geometry {
                Geometry::Ring => amplitude * one,
                Geometry::Torus => amplitude * one * one,
            }
        }
    }
}

/// Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// A kernel as an inline TOML table, for error messages.
fn describe(kernel: &Kernel) -> String {
    match kernel {
        Kernel::Constant { value } => format!("{{ kind = \"constant\", value = {value} }}"),
        Kernel::Blocks { matrix } => format!("{{ kind = \"blocks\", matrix = {matrix:?} }}"),
        Kernel::Cosine { a, b } => format!("{{ kind = \"cosine\", a = {a}, b = {b} }}"),
        Kernel::Gaussian { amplitude, width } => {
            format!("{{ kind = \"gaussian\", amplitude = {amplitude}, width = {width} }}")
        }
    }
}

/// A unit enum's value as written in TOML (`"normal"`).
fn quoted<T: Serialize>(v: &T) -> String {
    match toml::Value::try_from(v) {
        Ok(toml::Value::String(s)) => format!("{s:?}"),
        _ => "?".into(),
    }
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::FixedIndegree => "fixed_indegree",
        Rule::Bernoulli => "bernoulli",
        Rule::File => "file",
    }
}

/// `d` \[ms\] as a whole number of steps of `dt`, at least one.
fn delay_in_steps(d: f64, dt: f64) -> Option<u32> {
    if !d.is_finite() || d <= 0.0 {
        return None;
    }
    let ratio = d / dt;
    let n = ratio.round();
    let whole = (ratio - n).abs() <= 1e-6 * ratio.max(1.0);
    (whole && n >= 1.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
}

/// Validates the projection `name` (whose source and target populations are already resolved)
/// and fills in the defaults that depend on other keys (`kernel_use`, `edges`).
pub(super) fn resolve(
    name: &str,
    r: &mut RawProjection,
    source: usize,
    target: usize,
    populations: &[Population],
    dt: f64,
) -> Result<Projection> {
    let key = |k: &str| format!("projection.{name}.{k}");
    let rule_str = rule_name(r.rule);
    let not_for = |k: &str, v: String| {
        invalid(
            key(k),
            v,
            format!("does not apply to rule = \"{rule_str}\""),
        )
    };
    // Keys that do not apply to the rule.
    if r.rule == Rule::File {
        if let Some(k) = r.indegree {
            return Err(not_for("indegree", k.to_string()));
        }
        if let Some(p) = r.p {
            return Err(not_for("p", p.to_string()));
        }
        if let Some(k) = &r.kernel {
            return Err(not_for("kernel", describe(k)));
        }
        if r.weight_dist != WeightDist::Constant {
            return Err(not_for("weight_dist", quoted(&r.weight_dist)));
        }
        if r.weight_sd != 0.0 {
            return Err(not_for("weight_sd", r.weight_sd.to_string()));
        }
        if r.scaling != Scaling::None {
            return Err(not_for("scaling", quoted(&r.scaling)));
        }
        if let Some(d) = r.delay_max {
            return Err(not_for("delay_max", d.to_string()));
        }
        if !r.autapses {
            return Err(not_for("autapses", "false".into()));
        }
        if !r.multapses {
            return Err(not_for("multapses", "false".into()));
        }
    } else {
        if let Some(f) = &r.file {
            return Err(not_for("file", format!("{f:?}")));
        }
        if let Some(e) = &r.edges {
            return Err(not_for("edges", format!("{e:?}")));
        }
        if let Some(e) = &r.edge_types {
            return Err(not_for("edge_types", format!("{e:?}")));
        }
    }
    if r.kernel.is_none() {
        if let Some(u) = r.kernel_use {
            return Err(invalid(
                key("kernel_use"),
                quoted(&u),
                "applies only with a kernel",
            ));
        }
    }
    if r.scaling != Scaling::Power {
        if let Some(a) = r.scaling_alpha {
            return Err(invalid(
                key("scaling_alpha"),
                a,
                "applies only with scaling = \"power\"",
            ));
        }
    }
    if r.weight_dist == WeightDist::Constant && r.weight_sd != 0.0 {
        return Err(invalid(
            key("weight_sd"),
            r.weight_sd,
            "applies only with weight_dist \"normal\", \"lognormal\" or \"uniform\"",
        ));
    }

    let n_source = populations[source].size;
    let mut file_weight = None;
    let mut file_delays = None;
    let rule = match r.rule {
        Rule::FixedIndegree => {
            let indegree = r.indegree.ok_or_else(|| {
                invalid(
                    key("indegree"),
                    "(missing)",
                    "required by rule = \"fixed_indegree\"",
                )
            })?;
            let mut available = n_source;
            if source == target && !r.autapses {
                available -= 1;
            }
            if !r.multapses && indegree > available {
                return Err(invalid(
                    key("indegree"),
                    indegree,
                    format!("exceeds the {available} distinct sources available without multapses"),
                ));
            }
            if indegree > 0 && available == 0 {
                return Err(invalid(key("indegree"), indegree, "no source is available"));
            }
            ConnRule::FixedIndegree {
                indegree,
                autapses: r.autapses,
                multapses: r.multapses,
            }
        }
        Rule::Bernoulli => {
            let p = r.p.ok_or_else(|| {
                invalid(key("p"), "(missing)", "required by rule = \"bernoulli\"")
            })?;
            if !(0.0..=1.0).contains(&p) {
                return Err(invalid(key("p"), p, "must be a probability in [0, 1]"));
            }
            ConnRule::Bernoulli {
                p,
                autapses: r.autapses,
            }
        }
        Rule::File => {
            let path = r
                .file
                .clone()
                .ok_or_else(|| invalid(key("file"), "(missing)", "required by rule = \"file\""))?;
            let edges = r.edges.get_or_insert_with(|| name.to_string()).clone();
            if edges.is_empty() {
                return Err(invalid(
                    key("edges"),
                    "\"\"",
                    "must name an edge population",
                ));
            }
            let types = r.edge_types.clone();
            let (file, mean_weight, delays) = examine(
                &key("file"),
                &path,
                &edges,
                types.as_deref(),
                populations,
                source,
                target,
                dt,
            )?;
            file_weight = mean_weight;
            file_delays = delays;
            ConnRule::File(file)
        }
    };

    // The kernel.
    let kernel = match &r.kernel {
        None => None,
        Some(k) => {
            k.validate(&key("kernel"))?;
            let use_ = *r.kernel_use.get_or_insert(KernelUse::Probability);
            let (gs, gt) = (
                populations[source].layout.geometry,
                populations[target].layout.geometry,
            );
            if gs != gt {
                return Err(invalid(
                    key("kernel"),
                    describe(k),
                    format!(
                        "source {} and target {} have different coordinates ({gs:?}, {gt:?}); a kernel needs both on the same space",
                        populations[source].name, populations[target].name
                    ),
                ));
            }
            let (min, max) = (k.min(), k.max());
            let probability = use_ != KernelUse::Weight;
            if probability {
                match rule {
                    ConnRule::Bernoulli { p, .. } => {
                        if min < 0.0 {
                            return Err(invalid(
                                key("kernel"),
                                describe(k),
                                format!("takes negative values (down to {min}); a probability kernel must be non-negative"),
                            ));
                        }
                        if p * max > 1.0 {
                            return Err(invalid(
                                key("p"),
                                p,
                                format!(
                                    "p times the kernel's maximum {max} is {}, above 1",
                                    p * max
                                ),
                            ));
                        }
                    }
                    ConnRule::FixedIndegree { .. } => {
                        if min < 0.0 || max <= 0.0 {
                            return Err(invalid(
                                key("kernel"),
                                describe(k),
                                format!("takes values in [{min}, {max}]; fixed_indegree draws sources with probability proportional to w, which must be non-negative and somewhere positive"),
                            ));
                        }
                    }
                    ConnRule::File(_) => unreachable!("rejected above"),
                }
            }
            Some(ProjKernel {
                kernel: k.clone(),
                geometry: gt,
                probability,
                weight: use_ != KernelUse::Probability,
                max,
                mean: kernel_mean(k, gt),
            })
        }
    };

    // The weight.
    let weight = match (r.weight, file_weight) {
        (Some(w), Some(_)) => {
            return Err(invalid(
                key("weight"),
                w,
                "the file gives every edge's weight (syn_weight); remove this key",
            ))
        }
        (None, Some(mean)) => mean,
        (Some(w), None) => finite(&key("weight"), w, "[mV]")?,
        (None, None) => {
            return Err(invalid(
                key("weight"),
                "(missing)",
                "required (the jump of V per spike [mV])",
            ))
        }
    };
    let sd = non_negative(&key("weight_sd"), r.weight_sd, "[mV]")?;
    if sd > 0.0 && weight == 0.0 {
        return Err(invalid(
            key("weight_sd"),
            sd,
            "needs a non-zero weight (its sign is the sign of every synapse) [mV]",
        ));
    }
    if r.weight_dist == WeightDist::Uniform && 3f64.sqrt() * sd > weight.abs() {
        return Err(invalid(
            key("weight_sd"),
            sd,
            format!(
                "the uniform distribution needs sqrt(3) weight_sd <= |weight| = {} [mV]",
                weight.abs()
            ),
        ));
    }
    // Scaling: K the (expected) in-degree, N the source population size.
    let k_in = match &rule {
        ConnRule::FixedIndegree { indegree, .. } => *indegree as f64,
        ConnRule::Bernoulli { p, .. } => {
            let mean_w = kernel
                .as_ref()
                .filter(|k| k.probability)
                .map_or(1.0, |k| k.mean);
            p * n_source as f64 * mean_w
        }
        ConnRule::File(_) => 1.0,
    };
    let alpha = match r.scaling {
        Scaling::Power => {
            let a = r.scaling_alpha.ok_or_else(|| {
                invalid(
                    key("scaling_alpha"),
                    "(missing)",
                    "required by scaling = \"power\"",
                )
            })?;
            finite(&key("scaling_alpha"), a, "")?
        }
        _ => 1.0,
    };
    let scale = |x: f64| -> f64 {
        match r.scaling {
            Scaling::None => x,
            // No synapse exists when K = 0; the weight is left as it is.
            _ if k_in == 0.0 && r.scaling != Scaling::Power => x,
            Scaling::InverseK => x / k_in,
            Scaling::InverseSqrtK => x / k_in.sqrt(),
            Scaling::Power => x * (n_source as f64).powf(alpha - 1.0),
        }
    };
    let scaled = scale(weight);
    if !scaled.is_finite() {
        return Err(invalid(
            key("scaling_alpha"),
            alpha,
            format!("the scaled weight {scaled} is not finite"),
        ));
    }
    let weights = Weights::new(r.weight_dist, scale(weight.abs()), scale(sd), weight < 0.0);

    // Delays.
    let (delay_steps, delay_max_steps) = match (r.delay, file_delays) {
        (Some(d), Some(_)) => {
            return Err(invalid(
                key("delay"),
                d,
                "the file gives every edge's delay; remove this key",
            ))
        }
        (None, Some((lo, hi))) => (lo, hi),
        (None, None) => {
            return Err(invalid(
                key("delay"),
                "(missing)",
                "required (the transmission delay [ms])",
            ))
        }
        (Some(d), None) => {
            let lo = delay_key(&key("delay"), d, dt)?;
            let hi = match r.delay_max {
                None => lo,
                Some(m) => {
                    let hi = delay_key(&key("delay_max"), m, dt)?;
                    if hi < lo {
                        return Err(invalid(
                            key("delay_max"),
                            m,
                            format!("must be at least delay = {d} [ms]"),
                        ));
                    }
                    hi
                }
            };
            if (hi - lo) as usize >= MAX_DELAYS {
                return Err(invalid(
                    key("delay_max"),
                    r.delay_max.unwrap_or(d),
                    format!(
                        "{} distinct delays (one synapse table each); at most {MAX_DELAYS}",
                        hi - lo + 1
                    ),
                ));
            }
            (lo, hi)
        }
    };
    let rule = match rule {
        ConnRule::File(mut f) => {
            if f.delays.is_none() {
                f.delay_set = vec![delay_steps];
            }
            ConnRule::File(f)
        }
        other => other,
    };

    let projection = Projection {
        name: name.to_string(),
        source,
        target,
        rule,
        weight: scaled,
        delay_steps,
        delay_max_steps,
        weights,
        kernel,
    };
    let expected = expected_synapses(populations, &projection);
    if expected > MAX_SYNAPSES {
        let (k, v) = match &projection.rule {
            ConnRule::FixedIndegree { indegree, .. } => ("indegree", indegree.to_string()),
            ConnRule::Bernoulli { p, .. } => ("p", p.to_string()),
            ConnRule::File(f) => ("file", format!("{:?}", f.path)),
        };
        return Err(invalid(
            key(k),
            v,
            format!("{expected:.3e} synapses expected; at most 2^50 per projection"),
        ));
    }
    Ok(projection)
}

/// A delay key \[ms\] in steps: a multiple of `dt`, at least one step.
fn delay_key(key: &str, d: f64, dt: f64) -> Result<u32> {
    let too_short = d.is_finite() && d < dt;
    let n = if too_short { 0 } else { steps(key, d, dt)? };
    if n == 0 {
        return Err(invalid(
            key,
            d,
            format!("must be at least simulation.dt = {dt} [ms]"),
        ));
    }
    Ok(u32::try_from(n).expect("steps() bounds values by u32::MAX"))
}

/// The datasets of one edge population.
struct Datasets {
    population: String,
    source: hdf5::Dataset,
    target: hdf5::Dataset,
    weight: Option<(String, hdf5::Dataset)>,
    delay: Option<(String, hdf5::Dataset)>,
    group_id: Option<hdf5::Dataset>,
    group_index: Option<hdf5::Dataset>,
    /// The edge types: `edge_type_id` per edge and the table.
    types: Option<(hdf5::Dataset, EdgeTypes)>,
    len: usize,
}

/// bmtk's edge types table: per type id, its weight \[mV\] and delay \[ms\] (where given).
struct EdgeTypes {
    path: String,
    rows: std::collections::HashMap<u64, (Option<f64>, Option<f64>)>,
    weight: bool,
    delay: bool,
}

impl EdgeTypes {
    /// Reads a whitespace-separated table with a header (`edge_type_id`, and `syn_weight`
    /// and `delay` where the types have them; other columns are ignored).
    fn read(path: &str) -> std::result::Result<EdgeTypes, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("edge_types {path:?} cannot be read: {e}"))?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .map(|(_, l)| l.split_whitespace().collect())
            .unwrap_or_default();
        let column = |name: &str| header.iter().position(|&h| h == name);
        let id = column("edge_type_id")
            .ok_or_else(|| format!("edge_types {path:?} has no column edge_type_id"))?;
        let (w, d) = (column("syn_weight"), column("delay"));
        let mut rows = std::collections::HashMap::new();
        for (n, line) in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = |what: &str| format!("edge_types {path:?} line {}: {what}", n + 1);
            if fields.len() != header.len() {
                return Err(at(&format!(
                    "{} fields, the header has {} (quoted fields with spaces are not read)",
                    fields.len(),
                    header.len()
                )));
            }
            let type_id: u64 = fields[id]
                .parse()
                .map_err(|_| at(&format!("edge_type_id {:?} is not an integer", fields[id])))?;
            let number =
                |c: Option<usize>, what: &str| -> std::result::Result<Option<f64>, String> {
                    match c.map(|c| fields[c]) {
                        None | Some("NULL" | "NaN" | "nan" | "None") => Ok(None),
                        Some(s) => s
                            .parse::<f64>()
                            .ok()
                            .filter(|x| x.is_finite())
                            .map(Some)
                            .ok_or_else(|| at(&format!("{what} {s:?} is not a finite number"))),
                    }
                };
            let row = (number(w, "syn_weight")?, number(d, "delay")?);
            if rows.insert(type_id, row).is_some() {
                return Err(at(&format!("edge_type_id {type_id} appears twice")));
            }
        }
        Ok(EdgeTypes {
            path: path.to_string(),
            rows,
            weight: w.is_some(),
            delay: d.is_some(),
        })
    }

    /// The weights (`delay = false`) or delays of the edges of types `ids`, the first edge
    /// being edge `first`.
    fn values(
        &self,
        ids: &[u64],
        first: usize,
        delay: bool,
    ) -> std::result::Result<Vec<f64>, String> {
        let what = if delay { "delay" } else { "syn_weight" };
        ids.iter()
            .enumerate()
            .map(|(i, t)| {
                let row = self.rows.get(t).ok_or_else(|| {
                    format!(
                        "edge {}: edge_type_id {t} is not in edge_types {:?}",
                        first + i,
                        self.path
                    )
                })?;
                (if delay { row.1 } else { row.0 }).ok_or_else(|| {
                    format!(
                        "edge {}: edge type {t} has no {what} in edge_types {:?}",
                        first + i,
                        self.path
                    )
                })
            })
            .collect()
    }
}

impl Datasets {
    fn open(
        file: &hdf5::File,
        population: &str,
        edge_types: Option<&str>,
    ) -> std::result::Result<Datasets, String> {
        let base = format!("/edges/{population}");
        if !file.link_exists("/edges") || !file.link_exists(&base) {
            return Err(format!("has no edge population {base}"));
        }
        let required = |n: &str| -> std::result::Result<hdf5::Dataset, String> {
            let path = format!("{base}/{n}");
            if !file.link_exists(&path) {
                return Err(format!("has no dataset {path}"));
            }
            file.dataset(&path)
                .map_err(|e| format!("{path} is not a readable dataset: {e}"))
        };
        // SONATA keeps attributes in group "0"; accept them next to the ids as well.
        let optional = |n: &str| -> std::result::Result<Option<(String, hdf5::Dataset)>, String> {
            for path in [format!("{base}/0/{n}"), format!("{base}/{n}")] {
                let exists = path
                    .match_indices('/')
                    .skip(1)
                    .all(|(i, _)| file.link_exists(&path[..i]))
                    && file.link_exists(&path);
                if exists {
                    let ds = file
                        .dataset(&path)
                        .map_err(|e| format!("{path} is not a readable dataset: {e}"))?;
                    return Ok(Some((path, ds)));
                }
            }
            Ok(None)
        };
        let source = required("source_node_id")?;
        let target = required("target_node_id")?;
        let weight = optional("syn_weight")?;
        let delay = optional("delay")?;
        let group_id = optional("edge_group_id")?.map(|x| x.1);
        let group_index = optional("edge_group_index")?.map(|x| x.1);
        let types = match edge_types {
            None => None,
            Some(path) => Some((required("edge_type_id")?, EdgeTypes::read(path)?)),
        };
        let len = source.size();
        let named = [
            (format!("{base}/source_node_id"), Some(&source)),
            (format!("{base}/target_node_id"), Some(&target)),
            (
                weight.as_ref().map_or(String::new(), |w| w.0.clone()),
                weight.as_ref().map(|w| &w.1),
            ),
            (
                delay.as_ref().map_or(String::new(), |w| w.0.clone()),
                delay.as_ref().map(|w| &w.1),
            ),
            (format!("{base}/edge_group_id"), group_id.as_ref()),
            (format!("{base}/edge_group_index"), group_index.as_ref()),
            (format!("{base}/edge_type_id"), types.as_ref().map(|t| &t.0)),
        ];
        for (path, ds) in named {
            let Some(ds) = ds else { continue };
            if ds.ndim() != 1 {
                return Err(format!(
                    "{path} must be one-dimensional, not of shape {:?}",
                    ds.shape()
                ));
            }
            if ds.size() != len {
                return Err(format!(
                    "{path} has {} entries but {base}/source_node_id has {len}",
                    ds.size()
                ));
            }
        }
        Ok(Datasets {
            population: population.to_string(),
            source,
            target,
            weight,
            delay,
            group_id,
            group_index,
            types,
            len,
        })
    }

    /// Whether the edges have weights (their own, or their types'), and delays: a description
    /// of where they come from.
    fn weights(&self) -> Option<String> {
        match (&self.weight, &self.types) {
            (Some((path, _)), _) => Some(path.clone()),
            (None, Some((_, t))) if t.weight => Some(format!("{}: syn_weight", t.path)),
            _ => None,
        }
    }

    fn delays(&self) -> Option<String> {
        match (&self.delay, &self.types) {
            (Some((path, _)), _) => Some(path.clone()),
            (None, Some((_, t))) if t.delay => Some(format!("{}: delay", t.path)),
            _ => None,
        }
    }

    /// Calls `f(first, sources, targets, weights, delays)` on consecutive chunks of the edges.
    #[allow(clippy::type_complexity)]
    fn for_each_chunk(
        &self,
        mut f: impl FnMut(
            usize,
            &[u64],
            &[u64],
            Option<&[f64]>,
            Option<&[f64]>,
        ) -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        let base = format!("/edges/{}", self.population);
        let mut first = 0;
        while first < self.len {
            let r = first..(first + CHUNK).min(self.len);
            let src = ids(&self.source, r.clone(), &format!("{base}/source_node_id"))?;
            let tgt = ids(&self.target, r.clone(), &format!("{base}/target_node_id"))?;
            for (ds, n) in [
                (&self.group_id, "edge_group_id"),
                (&self.group_index, "edge_group_index"),
            ] {
                let Some(ds) = ds else { continue };
                let v = ids(ds, r.clone(), &format!("{base}/{n}"))?;
                for (i, &x) in v.iter().enumerate() {
                    let e = (first + i) as u64;
                    let want = if n == "edge_group_id" { 0 } else { e };
                    if x != want {
                        return Err(format!(
                            "edge {e}: {n} is {x}, not {want} (only one edge group, 0, in edge order is supported)"
                        ));
                    }
                }
            }
            // An edge's own weight and delay (group 0) take precedence over its type's.
            let types = match &self.types {
                Some((ds, t)) => Some((ids(ds, r.clone(), &format!("{base}/edge_type_id"))?, t)),
                None => None,
            };
            let w = match (&self.weight, &types) {
                (Some((path, ds)), _) => Some(floats(ds, r.clone(), path)?),
                (None, Some((ids, t))) if t.weight => Some(t.values(ids, first, false)?),
                _ => None,
            };
            let d = match (&self.delay, &types) {
                (Some((path, ds)), _) => Some(floats(ds, r.clone(), path)?),
                (None, Some((ids, t))) if t.delay => Some(t.values(ids, first, true)?),
                _ => None,
            };
            f(first, &src, &tgt, w.as_deref(), d.as_deref())?;
            first = r.end;
        }
        Ok(())
    }
}

/// Entries `r` of an integer dataset, which must be non-negative.
pub(crate) fn ids(
    ds: &hdf5::Dataset,
    r: Range<usize>,
    path: &str,
) -> std::result::Result<Vec<u64>, String> {
    let read_err = |e: hdf5::Error| format!("{path} cannot be read: {e}");
    let start = r.start;
    match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::Unsigned(_)) => {
            Ok(ds.read_slice_1d::<u64, _>(r).map_err(read_err)?.to_vec())
        }
        Ok(TypeDescriptor::Integer(_)) => {
            let v = ds.read_slice_1d::<i64, _>(r).map_err(read_err)?;
            v.iter()
                .enumerate()
                .map(|(i, &x)| {
                    u64::try_from(x)
                        .map_err(|_| format!("edge {}: {path} is negative ({x})", start + i))
                })
                .collect()
        }
        Ok(t) => Err(format!("{path} must hold integers, not {t:?}")),
        Err(e) => Err(read_err(e)),
    }
}

/// Entries `r` of a numeric dataset as f64.
pub(crate) fn floats(
    ds: &hdf5::Dataset,
    r: Range<usize>,
    path: &str,
) -> std::result::Result<Vec<f64>, String> {
    match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) => {
            Ok(ds
                .read_slice_1d::<f64, _>(r)
                .map_err(|e| format!("{path} cannot be read: {e}"))?
                .to_vec())
        }
        Ok(t) => Err(format!("{path} must hold numbers, not {t:?}")),
        Err(e) => Err(format!("{path} cannot be read: {e}")),
    }
}

/// Checks an edge file: it opens, the datasets exist with equal lengths, ids lie within the
/// populations, weights are finite and delays whole positive multiples of `dt`. Returns the
/// file's description, the mean of its weights (if it has any) and its smallest and largest
/// delay in steps (if it has delays).
#[allow(clippy::type_complexity)]
#[allow(clippy::too_many_arguments)]
fn examine(
    key: &str,
    path: &str,
    population: &str,
    edge_types: Option<&str>,
    populations: &[Population],
    source: usize,
    target: usize,
    dt: f64,
) -> Result<(EdgeFile, Option<f64>, Option<(u32, u32)>)> {
    let bad = |reason: String| invalid(key, format!("{path:?}"), reason);
    let file = hdf5::File::open(path).map_err(|e| {
        bad(format!(
            "cannot be opened as HDF5 (missing or damaged): {e}"
        ))
    })?;
    let sets = Datasets::open(&file, population, edge_types).map_err(bad)?;
    let (src, tgt) = (&populations[source], &populations[target]);
    // SONATA names the node population of each end; edges of another population are refused.
    for (ids, end, pop) in [(&sets.source, "source", src), (&sets.target, "target", tgt)] {
        if let Some(np) = crate::h5::text(ids, "node_population") {
            if np != pop.name {
                return Err(bad(format!(
                    "/edges/{population}/{end}_node_id has node_population {np:?}, but the projection's {end} is population {}",
                    pop.name
                )));
            }
        }
    }
    let mut sum_w = 0.0;
    // Whether every edge has the same weight (a file written for a constant weight): then it is
    // the projection's weight, not one stored per synapse.
    let mut same_w: Option<Option<f64>> = None;
    let mut seen = std::collections::BTreeSet::new();
    let mut lo = u32::MAX;
    let mut hi = 0u32;
    sets.for_each_chunk(|first, s, t, w, d| {
        for i in 0..s.len() {
            let e = first + i;
            if s[i] >= src.size {
                return Err(format!(
                    "edge {e}: source_node_id {} is not below the size {} of source population {}",
                    s[i], src.size, src.name
                ));
            }
            if t[i] >= tgt.size {
                return Err(format!(
                    "edge {e}: target_node_id {} is not below the size {} of target population {}",
                    t[i], tgt.size, tgt.name
                ));
            }
            if let Some(w) = w {
                if !w[i].is_finite() {
                    return Err(format!("edge {e}: syn_weight {} is not finite", w[i]));
                }
                sum_w += w[i];
                same_w = match same_w {
                    None => Some(Some(w[i])),
                    Some(Some(x)) if x.to_bits() == w[i].to_bits() => Some(Some(x)),
                    _ => Some(None),
                };
            }
            if let Some(d) = d {
                let n = delay_in_steps(d[i], dt).ok_or_else(|| {
                    format!(
                        "edge {e}: delay {} [ms] is not a positive multiple of simulation.dt = {dt} [ms]",
                        d[i]
                    )
                })?;
                lo = lo.min(n);
                hi = hi.max(n);
                seen.insert(n);
            }
        }
        Ok(())
    })
    .map_err(bad)?;
    let count = sets.len as u64;
    let (mut weights, delays_from) = (sets.weights(), sets.delays());
    let mean_weight = weights
        .as_ref()
        .map(|_| if count > 0 { sum_w / count as f64 } else { 0.0 });
    let mean_weight = match same_w {
        Some(Some(w)) => {
            weights = None;
            Some(w)
        }
        _ => mean_weight,
    };
    let delays = delays_from
        .as_ref()
        .map(|_| if count == 0 { (1, 1) } else { (lo, hi) });
    if seen.len() > MAX_DELAYS {
        return Err(bad(format!(
            "the edges have {} distinct delays (one synapse table each); at most {MAX_DELAYS}",
            seen.len()
        )));
    }
    let mut delay_set: Vec<u32> = seen.into_iter().collect();
    if delays_from.is_some() && delay_set.is_empty() {
        delay_set.push(1);
    }
    let file = EdgeFile {
        path: path.to_string(),
        population: population.to_string(),
        count,
        weights,
        delays: delays_from,
        edge_types: edge_types.map(str::to_string),
        delay_set,
    };
    Ok((file, mean_weight, delays))
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const BASE: &str = "[population.E]\nsize = 100\n[population.T]\nsize = 100\ncoordinates = \"torus\"\n\
        [projection.P]\nsource = \"E\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 0.5\nweight = 0.1\ndelay = 1.0\n";

    fn err(overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::from_toml(BASE, &o)
            .expect_err("configuration should be rejected")
            .to_string()
    }

    /// Each new key's bad value, and each key that does not apply, gives one line naming the
    /// key and the value.
    #[test]
    fn errors_name_the_key_and_value() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["projection.P.weight_dist=\"normal\"", "projection.P.weight_sd=-1"],
                "projection.P.weight_sd = -1: must be non-negative",
            ),
            (
                &["projection.P.weight_sd=0.1"],
                "projection.P.weight_sd = 0.1: applies only with weight_dist",
            ),
            (
                &["projection.P.weight_dist=\"uniform\"", "projection.P.weight_sd=0.1"],
                "projection.P.weight_sd = 0.1: the uniform distribution needs sqrt(3) weight_sd <= |weight|",
            ),
            (
                &[
                    "projection.P.weight_dist=\"lognormal\"",
                    "projection.P.weight_sd=0.1",
                    "projection.P.weight=0",
                ],
                "projection.P.weight_sd = 0.1: needs a non-zero weight",
            ),
            (
                &["projection.P.weight_dist=\"gamma\""],
                "projection.P.weight_dist",
            ),
            (
                &["projection.P.file=\"e.h5\""],
                "projection.P.file = \"e.h5\": does not apply to rule = \"bernoulli\"",
            ),
            (
                &["projection.P.edges=\"x\""],
                "projection.P.edges = \"x\": does not apply",
            ),
            (
                &["projection.P.rule=\"file\""],
                "projection.P.p = 0.5: does not apply to rule = \"file\"",
            ),
            (
                &["projection.P.kernel_use=\"weight\""],
                "projection.P.kernel_use = \"weight\": applies only with a kernel",
            ),
            (
                &["projection.P.scaling=\"power\""],
                "projection.P.scaling_alpha = (missing): required by scaling = \"power\"",
            ),
            (
                &["projection.P.scaling_alpha=0.5"],
                "projection.P.scaling_alpha = 0.5: applies only with scaling = \"power\"",
            ),
            (
                &["projection.P.scaling=\"power\"", "projection.P.scaling_alpha=1000"],
                "projection.P.scaling_alpha = 1000: the scaled weight inf is not finite",
            ),
            (
                &["projection.P.delay_max=0.5"],
                "projection.P.delay_max = 0.5: must be at least delay = 1 [ms]",
            ),
            (
                &["projection.P.delay_max=1001"],
                "projection.P.delay_max = 1001: 10001 distinct delays (one synapse table each); at most 10000",
            ),
            (
                &["projection.P.delay_max=1.55"],
                "projection.P.delay_max = 1.55: must be a multiple of simulation.dt",
            ),
            (
                &["projection.P.kernel={ kind = \"cosine\", a = 1.0, b = 1.5 }"],
                "projection.P.kernel = { kind = \"cosine\", a = 1, b = 1.5 }: takes negative values",
            ),
            (
                &["projection.P.kernel={ kind = \"blocks\", matrix = [[1.0, 3.0], [0.0, 1.0]] }"],
                "projection.P.p = 0.5: p times the kernel's maximum 3 is 1.5, above 1",
            ),
            (
                &["projection.P.kernel={ kind = \"gaussian\", amplitude = 1.0, width = 0.0 }"],
                "projection.P.kernel.width = 0: must be positive",
            ),
            (
                &["projection.P.kernel={ kind = \"cosine\", a = 1.0, b = 0.5 }", "projection.P.target=\"T\""],
                "projection.P.kernel = { kind = \"cosine\", a = 1, b = 0.5 }: source E and target T have different coordinates",
            ),
            (
                &[
                    "projection.P.rule=\"fixed_indegree\"",
                    "projection.P.indegree=3",
                    "projection.P.kernel={ kind = \"constant\", value = 0.0 }",
                ],
                "projection.P.kernel = { kind = \"constant\", value = 0 }: takes values in [0, 0]",
            ),
            (
                &["projection.P.kernel={ kind = \"cosine\", a = 1.0 }"],
                "projection.P.kernel",
            ),
        ];
        for (o, expect) in cases {
            let e = err(o);
            assert!(e.contains(expect), "{o:?}: got {e:?}, expected {expect:?}");
            assert!(!e.contains('\n'), "{o:?}: multi-line error {e:?}");
        }
        let no_p = BASE.replace("p = 0.5\n", "");
        let o = [
            "projection.P.rule=\"file\"".to_string(),
            "projection.P.weight_dist=\"normal\"".to_string(),
        ];
        let e = Config::from_toml(&no_p, &o).unwrap_err().to_string();
        assert_eq!(
            e,
            "projection.P.weight_dist = \"normal\": does not apply to rule = \"file\""
        );
        // A kernel of any sign may scale weights.
        let o = [
            "projection.P.kernel={ kind = \"cosine\", a = 0.0, b = 1.0 }".to_string(),
            "projection.P.kernel_use=\"weight\"".to_string(),
        ];
        assert!(Config::from_toml(BASE, &o).is_ok());
    }

    /// The new keys with their defaults filled in survive the resolved TOML round trip.
    #[test]
    fn resolved_toml_round_trips_with_the_new_keys() {
        let o: Vec<String> = [
            "projection.P.kernel={ kind = \"blocks\", matrix = [[1.0, 0.5], [0.5, 1.0]] }",
            "projection.P.weight_dist=\"lognormal\"",
            "projection.P.weight_sd=0.05",
            "projection.P.scaling=\"inverse_k\"",
            "projection.P.delay_max=2.0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = Config::from_toml(BASE, &o).unwrap();
        let r = &c.raw.projection["P"];
        assert_eq!(r.kernel_use, Some(super::KernelUse::Probability));
        let text = c.resolved_toml();
        let again = Config::from_toml(&text, &[]).unwrap();
        assert_eq!(again.resolved_toml(), text);
        let (a, b) = (&c.projections[0], &again.projections[0]);
        assert_eq!(
            (a.weight, a.weights, &a.kernel),
            (b.weight, b.weights, &b.kernel)
        );
        // K = p N mean(w) = 0.5 x 100 x 0.75.
        assert_eq!(a.weight, 0.1 / 37.5);
        assert_eq!((a.delay_steps, a.delay_max_steps), (10, 20));
        // Expected synapses: p mean(w) N^2.
        assert_eq!(c.expected_synapses(a), 0.5 * 0.75 * 100.0 * 100.0);
        // Existing configurations resolve without the optional keys.
        let plain = Config::from_toml(BASE, &[]).unwrap().resolved_toml();
        assert!(
            !plain.contains("kernel") && !plain.contains("delay_max"),
            "{plain}"
        );
    }

    #[test]
    fn kernel_means_match_quadrature() {
        use crate::space::{Geometry, Kernel};
        let k = Kernel::Gaussian {
            amplitude: 2.0,
            width: 0.1,
        };
        // Midpoint rule over the periodic distance.
        let n = 100_000;
        let ring: f64 = (0..n)
            .map(|i| {
                let x = (i as f64 + 0.5) / n as f64;
                k.eval(Geometry::Ring, [x, 0.0], [0.0, 0.0])
            })
            .sum::<f64>()
            / n as f64;
        let m = super::kernel_mean(&k, Geometry::Ring);
        assert!((m - ring).abs() < 1e-6, "{m} vs {ring}");
        let one = ring / 2.0;
        let torus = super::kernel_mean(&k, Geometry::Torus);
        assert!((torus - 2.0 * one * one).abs() < 1e-6);
        let b = Kernel::Blocks {
            matrix: vec![vec![1.0, 2.0], vec![3.0, 6.0]],
        };
        assert_eq!(super::kernel_mean(&b, Geometry::Ring), 3.0);
    }
}
