//! Heterogeneous per-neuron parameters (`[population.NAME.vary]`).
//!
//! Each entry replaces one scalar parameter of the population by a value per neuron: drawn from
//! a law (`dist = "normal" | "lognormal" | "uniform" | "gamma"`, optionally truncated to
//! `[low, high]` by redrawing) or a function of the neuron's coordinate (`of = "x" | "y"`,
//! `kind = "cosine" | "linear" | "blocks"`). The draw of parameter number `k` of neuron `gid`
//! comes from its own stream `(seed, gid, Parameter(k))`, so the values do not depend on the
//! number of ranks and need no checkpoint: they are drawn again at every start.

use crate::config::{ConfigError, RawVary};
use crate::rng::{self, Purpose};
use indexmap::IndexMap;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

/// The parameters that may vary, in the order of their stream index, with their units.
pub const PARAMETERS: [(&str, &str); 9] = [
    ("tau_m", "ms"),
    ("e_l", "mV"),
    ("v_th", "mV"),
    ("v_reset", "mV"),
    ("i_e", "mV/ms"),
    ("sigma", "mV/ms^(1/2)"),
    ("t_ref", "ms"),
    ("poisson_rate", "Hz"),
    ("poisson_weight", "mV"),
];

pub const TAU_M: usize = 0;
pub const E_L: usize = 1;
pub const V_TH: usize = 2;
pub const V_RESET: usize = 3;
pub const I_E: usize = 4;
pub const SIGMA: usize = 5;
pub const T_REF: usize = 6;
pub const POISSON_RATE: usize = 7;
pub const POISSON_WEIGHT: usize = 8;

/// Redraws of a truncated law before a neuron's value is given up on (an error).
pub const MAX_REDRAWS: u32 = 1000;

/// What values a parameter admits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Support {
    Any,
    Positive,
    NonNegative,
}

fn support(param: usize) -> Support {
    match param {
        TAU_M => Support::Positive,
        SIGMA | T_REF | POISSON_RATE => Support::NonNegative,
        _ => Support::Any,
    }
}

/// A law of a random parameter, in the configuration's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Law {
    Normal {
        mean: f64,
        sd: f64,
    },
    /// `exp(mu + s Z)`, with the value's `mean` and `sd` as configured.
    Lognormal {
        mu: f64,
        s: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    /// Density `x^(shape - 1) exp(-x / scale)`, normalised.
    Gamma {
        shape: f64,
        scale: f64,
    },
}

impl Law {
    /// One value from `rng`.
    fn sample(&self, rng: &mut rng::Stream) -> f64 {
        match *self {
            Law::Normal { mean, sd } => {
                let z: f64 = StandardNormal.sample(rng);
                mean + sd * z
            }
            Law::Lognormal { mu, s } => {
                let z: f64 = StandardNormal.sample(rng);
                (mu + s * z).exp()
            }
            Law::Uniform { min, max } => {
                let u: f64 = rng.random();
                min + (max - min) * u
            }
            Law::Gamma { shape, scale } => rand_distr::Gamma::new(shape, scale)
                .expect("validated shape and scale")
                .sample(rng),
        }
    }

    /// The law's mean.
    pub fn mean(&self) -> f64 {
        match *self {
            Law::Normal { mean, .. } => mean,
            Law::Lognormal { mu, s } => (mu + 0.5 * s * s).exp(),
            Law::Uniform { min, max } => 0.5 * (min + max),
            Law::Gamma { shape, scale } => shape * scale,
        }
    }

    /// The law's standard deviation.
    pub fn sd(&self) -> f64 {
        match *self {
            Law::Normal { sd, .. } => sd,
            Law::Lognormal { s, .. } => self.mean() * (s * s).exp_m1().sqrt(),
            Law::Uniform { min, max } => (max - min) / 12f64.sqrt(),
            Law::Gamma { shape, scale } => shape.sqrt() * scale,
        }
    }

    /// The smallest and largest values the law can give.
    fn range(&self) -> (f64, f64) {
        match *self {
            Law::Normal { .. } => (f64::NEG_INFINITY, f64::INFINITY),
            Law::Lognormal { .. } | Law::Gamma { .. } => (0.0, f64::INFINITY),
            Law::Uniform { min, max } => (min, max),
        }
    }

    /// Whether values can be 0 exactly (an open end at 0 cannot be reached).
    fn open_at_zero(&self) -> bool {
        matches!(self, Law::Lognormal { .. } | Law::Gamma { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Law::Normal { .. } => "normal",
            Law::Lognormal { .. } => "lognormal",
            Law::Uniform { .. } => "uniform",
            Law::Gamma { .. } => "gamma",
        }
    }
}

/// A parameter as a function of one coordinate `x` in `[0, 1)`.
#[derive(Clone, Debug, PartialEq)]
pub enum Profile {
    /// `a + b cos(2 pi x)`.
    Cosine { a: f64, b: f64 },
    /// `a + b x`.
    Linear { a: f64, b: f64 },
    /// `values[floor(x B)]` on `B` equal bins.
    Blocks(Vec<f64>),
}

impl Profile {
    pub fn at(&self, x: f64) -> f64 {
        match self {
            Profile::Cosine { a, b } => a + b * (2.0 * std::f64::consts::PI * x).cos(),
            Profile::Linear { a, b } => a + b * x,
            Profile::Blocks(v) => v[((x * v.len() as f64) as usize).min(v.len() - 1)],
        }
    }

    /// The smallest and largest values over `[0, 1)` (the linear profile's end at 1 excluded
    /// only in principle: it is included here).
    fn range(&self) -> (f64, f64) {
        match self {
            Profile::Cosine { a, b } => (a - b.abs(), a + b.abs()),
            Profile::Linear { a, b } => (a.min(a + b), a.max(a + b)),
            Profile::Blocks(v) => v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                    (l.min(x), h.max(x))
                }),
        }
    }
}

/// Where a varied parameter's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Drawn from `law`, redrawn while outside `[low, high]`.
    Random { law: Law, low: f64, high: f64 },
    /// A function of coordinate `axis` (0: x, 1: y on the torus).
    Coordinate { axis: usize, profile: Profile },
}

/// One varied parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Varied {
    /// Index into [`PARAMETERS`] (and the stream `Parameter(param)`).
    pub param: usize,
    pub source: Source,
}

impl Varied {
    pub fn name(&self) -> &'static str {
        PARAMETERS[self.param].0
    }

    pub fn unit(&self) -> &'static str {
        PARAMETERS[self.param].1
    }

    /// The value of neuron `gid` at coordinate `xi`, or `None` when a truncated law gave no
    /// value inside its bounds in [`MAX_REDRAWS`] draws.
    pub fn value(&self, seed: u64, gid: u64, xi: [f64; 2]) -> Option<f64> {
        match &self.source {
            Source::Random { law, low, high } => {
                let mut rng = rng::stream(seed, gid, Purpose::Parameter(self.param as u32));
                (0..MAX_REDRAWS)
                    .map(|_| law.sample(&mut rng))
                    .find(|x| *low <= *x && *x <= *high)
            }
            Source::Coordinate { axis, profile } => Some(profile.at(xi[*axis])),
        }
    }

    /// The law's mean or the profile's average over the coordinate: the value the population's
    /// scalar parameter takes for validation and description.
    pub fn centre(&self) -> f64 {
        match &self.source {
            Source::Random { law, low, high } => law.mean().clamp(*low, *high),
            Source::Coordinate { profile, .. } => match profile {
                Profile::Cosine { a, .. } => *a,
                Profile::Linear { a, b } => a + 0.5 * b,
                Profile::Blocks(v) => v.iter().sum::<f64>() / v.len() as f64,
            },
        }
    }

    /// One line for `lapicque check`.
    pub fn describe(&self) -> String {
        let unit = self.unit();
        match &self.source {
            Source::Random { law, low, high } => {
                let mut s = format!(
                    "{} {} (mean {}, sd {}) {unit}",
                    self.name(),
                    law.name(),
                    law.mean(),
                    law.sd()
                );
                if low.is_finite() || high.is_finite() {
                    s += &format!(" truncated to [{low}, {high}]");
                }
                s
            }
            Source::Coordinate { axis, profile } => {
                let x = ["x", "y"][*axis];
                let f = match profile {
                    Profile::Cosine { a, b } => format!("{a} + {b} cos(2 pi {x})"),
                    Profile::Linear { a, b } => format!("{a} + {b} {x}"),
                    Profile::Blocks(v) => format!("blocks {v:?} over {x}"),
                };
                format!("{} = {f} {unit}", self.name())
            }
        }
    }
}

/// The varied parameters of a population, in the order of [`PARAMETERS`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vary {
    pub entries: Vec<Varied>,
}

/// The scalar parameters of one neuron, in the order of [`PARAMETERS`] (`t_ref` in ms).
pub type Values = [f64; 9];

impl Vary {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Validates the `vary` table of a population (`key` makes `population.NAME.KEY`).
    pub fn from_raw(
        raw: &IndexMap<String, RawVary>,
        torus: bool,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Vary, ConfigError> {
        let mut entries = Vec::new();
        for (name, spec) in raw {
            let k = |field: &str| {
                if field.is_empty() {
                    key(&format!("vary.{name}"))
                } else {
                    key(&format!("vary.{name}.{field}"))
                }
            };
            let param = PARAMETERS
                .iter()
                .position(|(p, _)| p == name)
                .ok_or_else(|| ConfigError::Invalid {
                    key: k(""),
                    value: "(table)".into(),
                    reason: format!(
                        "no such parameter; one of {}",
                        PARAMETERS.map(|(p, _)| p).join(", ")
                    ),
                })?;
            let unit = format!("[{}]", PARAMETERS[param].1);
            let source = source(spec, torus, &unit, &k)?;
            check_support(param, &source, &unit, &k)?;
            entries.push(Varied { param, source });
        }
        entries.sort_by_key(|v| v.param);
        Ok(Vary { entries })
    }

    /// The varied parameter `param`, if it is one.
    pub fn get(&self, param: usize) -> Option<&Varied> {
        self.entries.iter().find(|v| v.param == param)
    }
}

fn invalid(key: String, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn source(
    s: &RawVary,
    torus: bool,
    unit: &str,
    k: &dyn Fn(&str) -> String,
) -> Result<Source, ConfigError> {
    use crate::config::{finite, positive};
    let need = |field: &str, v: Option<f64>, why: &str| {
        v.ok_or_else(|| invalid(k(field), "(missing)", why.to_string()))
    };
    let unused = |fields: &[(&str, bool)], why: &str| -> Result<(), ConfigError> {
        match fields.iter().find(|(_, set)| *set) {
            Some((f, _)) => Err(invalid(k(f), "(set)", why.to_string())),
            None => Ok(()),
        }
    };
    match (&s.dist, &s.of) {
        (Some(_), Some(_)) => Err(invalid(
            k("of"),
            format!("{:?}", s.of.as_deref().unwrap_or("")),
            "give dist (a random law) or of (a function of the coordinate), not both",
        )),
        (None, None) => Err(invalid(
            k(""),
            "(table)",
            "needs dist (a random law) or of (a function of the coordinate)",
        )),
        (Some(dist), None) => {
            unused(
                &[
                    ("kind", s.kind.is_some()),
                    ("a", s.a.is_some()),
                    ("b", s.b.is_some()),
                    ("values", s.values.is_some()),
                ],
                "only used with of = \"x\" or \"y\"",
            )?;
            let law = match dist.as_str() {
                "normal" | "lognormal" | "gamma" => {
                    unused(
                        &[("min", s.min.is_some()), ("max", s.max.is_some())],
                        "only used with dist = \"uniform\"",
                    )?;
                    let why = "the law needs its mean and sd";
                    let mean = finite(&k("mean"), need("mean", s.mean, why)?, unit)?;
                    let sd = positive(&k("sd"), need("sd", s.sd, why)?, unit)?;
                    match dist.as_str() {
                        "normal" => Law::Normal { mean, sd },
                        _ if mean <= 0.0 => {
                            return Err(invalid(
                                k("mean"),
                                mean,
                                format!("must be positive for dist = {dist:?} {unit}"),
                            ))
                        }
                        "lognormal" => {
                            let s2 = (sd * sd / (mean * mean)).ln_1p();
                            Law::Lognormal {
                                mu: mean.ln() - 0.5 * s2,
                                s: s2.sqrt(),
                            }
                        }
                        _ => {
                            let (shape, scale) = ((mean / sd).powi(2), sd * sd / mean);
                            let ok = |x: f64| x.is_finite() && x > 0.0;
                            if !(ok(shape) && ok(scale)) {
                                return Err(invalid(
                                    k("sd"),
                                    format!("{sd:e}"),
                                    format!("gives no gamma law with mean {mean:e} (shape {shape:e}, scale {scale:e}) {unit}"),
                                ));
                            }
                            Law::Gamma { shape, scale }
                        }
                    }
                }
                "uniform" => {
                    unused(
                        &[("mean", s.mean.is_some()), ("sd", s.sd.is_some())],
                        "dist = \"uniform\" takes min and max",
                    )?;
                    let why = "dist = \"uniform\" needs min and max";
                    let min = finite(&k("min"), need("min", s.min, why)?, unit)?;
                    let max = finite(&k("max"), need("max", s.max, why)?, unit)?;
                    if !(max - min).is_finite() {
                        return Err(invalid(
                            k("max"),
                            format!("{max:e}"),
                            format!("max - min overflows (min = {min:e}) {unit}"),
                        ));
                    }
                    if max <= min {
                        return Err(invalid(k("max"), max, format!("must exceed min {unit}")));
                    }
                    Law::Uniform { min, max }
                }
                other => {
                    return Err(invalid(
                        k("dist"),
                        format!("{other:?}"),
                        "must be \"normal\", \"lognormal\", \"uniform\" or \"gamma\"",
                    ))
                }
            };
            let low = s.low.unwrap_or(f64::NEG_INFINITY);
            let high = s.high.unwrap_or(f64::INFINITY);
            for (f, v) in [("low", s.low), ("high", s.high)] {
                if let Some(v) = v {
                    finite(&k(f), v, unit)?;
                }
            }
            if high <= low {
                return Err(invalid(k("high"), high, format!("must exceed low {unit}")));
            }
            let (lo, hi) = law.range();
            if high <= lo || low >= hi {
                return Err(invalid(
                    k(if high <= lo { "high" } else { "low" }),
                    if high <= lo { high } else { low },
                    format!(
                        "leaves no value of the {} law, which lies in [{lo}, {hi}] {unit}",
                        law.name()
                    ),
                ));
            }
            Ok(Source::Random { law, low, high })
        }
        (None, Some(of)) => {
            unused(
                &[
                    ("mean", s.mean.is_some()),
                    ("sd", s.sd.is_some()),
                    ("min", s.min.is_some()),
                    ("max", s.max.is_some()),
                    ("low", s.low.is_some()),
                    ("high", s.high.is_some()),
                ],
                "only used with dist",
            )?;
            let axis = match (of.as_str(), torus) {
                ("x", _) => 0,
                ("y", true) => 1,
                ("y", false) => {
                    return Err(invalid(
                        k("of"),
                        "\"y\"",
                        "the ring has one coordinate, x; y needs coordinates = \"torus\"",
                    ))
                }
                (other, _) => {
                    return Err(invalid(
                        k("of"),
                        format!("{other:?}"),
                        "must be \"x\" (or \"y\" on the torus)",
                    ))
                }
            };
            let kind = s.kind.as_deref().ok_or_else(|| {
                invalid(
                    k("kind"),
                    "(missing)",
                    "of = \"x\" needs kind = \"cosine\", \"linear\" or \"blocks\"",
                )
            })?;
            let profile = match kind {
                "cosine" | "linear" => {
                    unused(
                        &[("values", s.values.is_some())],
                        "only used with kind = \"blocks\"",
                    )?;
                    let why = "the profile a + b f(x) needs a and b";
                    let a = finite(&k("a"), need("a", s.a, why)?, unit)?;
                    let b = finite(&k("b"), need("b", s.b, why)?, unit)?;
                    if kind == "cosine" {
                        Profile::Cosine { a, b }
                    } else {
                        Profile::Linear { a, b }
                    }
                }
                "blocks" => {
                    unused(
                        &[("a", s.a.is_some()), ("b", s.b.is_some())],
                        "kind = \"blocks\" takes values",
                    )?;
                    let v = s.values.clone().ok_or_else(|| {
                        invalid(
                            k("values"),
                            "(missing)",
                            "kind = \"blocks\" needs values, one per equal bin",
                        )
                    })?;
                    if v.is_empty() || v.len() > 10_000 {
                        return Err(invalid(
                            k("values"),
                            format!("({} values)", v.len()),
                            "needs 1 to 10000 values",
                        ));
                    }
                    for &x in &v {
                        finite(&k("values"), x, unit)?;
                    }
                    Profile::Blocks(v)
                }
                other => {
                    return Err(invalid(
                        k("kind"),
                        format!("{other:?}"),
                        "must be \"cosine\", \"linear\" or \"blocks\"",
                    ))
                }
            };
            Ok(Source::Coordinate { axis, profile })
        }
    }
}

/// Refuses a source that can give values the parameter does not admit (tau_m <= 0, sigma < 0,
/// ...), naming the key to change.
fn check_support(
    param: usize,
    source: &Source,
    unit: &str,
    k: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let sup = support(param);
    if sup == Support::Any {
        return Ok(());
    }
    let what = if sup == Support::Positive {
        "positive"
    } else {
        "non-negative"
    };
    let bad = |x: f64| match sup {
        Support::Positive => x <= 0.0,
        _ => x < 0.0,
    };
    match source {
        Source::Random { law, low, high } => {
            let (lo, _) = law.range();
            let lo = lo.max(*low);
            let open = law.open_at_zero() && lo <= 0.0 && *low <= 0.0;
            if bad(lo) && !open {
                let field = match law {
                    Law::Uniform { min, .. } if *min >= *low => "min",
                    _ => "low",
                };
                return Err(invalid(
                    k(field),
                    if lo.is_finite() {
                        lo.to_string()
                    } else {
                        "(unset)".into()
                    },
                    format!(
                        "the {} law can give values {}, and {} must be {what}: {} {unit}",
                        law.name(),
                        if sup == Support::Positive {
                            "<= 0"
                        } else {
                            "< 0"
                        },
                        PARAMETERS[param].0,
                        if field == "min" {
                            "raise min"
                        } else {
                            "set low"
                        },
                    ),
                ));
            }
            let _ = high;
        }
        Source::Coordinate { profile, .. } => {
            let (lo, _) = profile.range();
            if bad(lo) {
                return Err(invalid(
                    k(""),
                    lo,
                    format!(
                        "the profile reaches this value; {} must be {what} {unit}",
                        PARAMETERS[param].0
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The parameters of one neuron: the population's scalars with the varied ones replaced,
/// `t_ref` rounded to whole steps of `dt`.
pub fn neuron_values(
    base: &Values,
    vary: &Vary,
    seed: u64,
    gid: u64,
    xi: [f64; 2],
) -> Option<Values> {
    let mut v = *base;
    for e in &vary.entries {
        v[e.param] = e.value(seed, gid, xi)?;
    }
    Some(v)
}

/// Checks one neuron's (or one quadrature node's) values against the constraints that tie
/// parameters together (`v_reset < v_th`) and the step (`poisson_rate dt` bounded); `what`
/// names the neuron (`gid 17`) in the error, which names the varied key.
pub fn check_values(
    v: &Values,
    vary: &Vary,
    dt: f64,
    key: &dyn Fn(&str) -> String,
    what: &str,
) -> Result<(), ConfigError> {
    let named = |p: usize| {
        let varied = vary.get(p).is_some();
        (
            if varied {
                key(&format!("vary.{}", PARAMETERS[p].0))
            } else {
                key(PARAMETERS[p].0)
            },
            varied,
        )
    };
    if let Some(e) = vary.entries.iter().find(|e| !v[e.param].is_finite()) {
        return Err(invalid(
            key(&format!("vary.{}", e.name())),
            format!("{} ({what})", v[e.param]),
            "the law gave a value that is not finite",
        ));
    }
    if v[V_RESET] >= v[V_TH] {
        let (k, _) = if vary.get(V_RESET).is_some() {
            named(V_RESET)
        } else {
            named(V_TH)
        };
        return Err(invalid(
            k,
            format!(
                "{} ({what})",
                if vary.get(V_RESET).is_some() {
                    v[V_RESET]
                } else {
                    v[V_TH]
                }
            ),
            format!(
                "v_reset {} must lie below v_th {} for every neuron [mV]",
                v[V_RESET], v[V_TH]
            ),
        ));
    }
    if v[POISSON_RATE] * dt / 1000.0 > 1e6 {
        return Err(invalid(
            named(POISSON_RATE).0,
            format!("{} ({what})", v[POISSON_RATE]),
            "more than 10^6 events per step [Hz]",
        ));
    }
    Ok(())
}

/// `t_ref` \[ms\] as whole steps of `dt`, rounded to the nearest (a varied refractory period
/// is not a multiple of the step in general).
pub fn ref_steps(t_ref: f64, dt: f64) -> u32 {
    (t_ref / dt).round().min(f64::from(u32::MAX)) as u32
}

/// The scalars of a LIF population in the order of [`PARAMETERS`].
pub fn base_values(b: &super::lif::Lif, dt: f64) -> Values {
    [
        b.tau_m,
        b.e_l,
        b.v_th,
        b.v_reset,
        b.i_e,
        b.sigma,
        f64::from(b.ref_steps) * dt,
        b.poisson_rate,
        b.poisson_weight,
    ]
}

/// A LIF population's parameters with `values` in place of its scalars.
pub fn with_values(b: &super::lif::Lif, v: &Values, dt: f64) -> super::lif::Lif {
    super::lif::Lif {
        tau_m: v[TAU_M],
        e_l: v[E_L],
        v_th: v[V_TH],
        v_reset: v[V_RESET],
        ref_steps: ref_steps(v[T_REF], dt),
        i_e: v[I_E],
        sigma: v[SIGMA],
        poisson_rate: v[POISSON_RATE],
        poisson_weight: v[POISSON_WEIGHT],
        bridge: b.bridge,
        integrator: b.integrator,
        v_init: b.v_init,
    }
}

/// The parameters of the neurons `gids` of population `p`, each checked (`v_reset < v_th`,
/// a truncated law that gave a value); the error names the varied key and the first offending
/// gid.
pub fn population_values(
    config: &crate::config::Config,
    p: usize,
    gids: std::ops::Range<u64>,
) -> Result<Vec<Values>, ConfigError> {
    let pop = &config.populations[p];
    let vary = &pop.model.vary;
    let base = base_values(&pop.model.base, config.dt);
    let key = |k: &str| format!("population.{}.{k}", pop.name);
    gids.map(|gid| {
        let xi = pop.coordinate(config.seed, gid);
        let what = format!("gid {gid}");
        let v = neuron_values(&base, vary, config.seed, gid, xi).ok_or_else(|| {
            let e = vary
                .entries
                .iter()
                .find(|e| e.value(config.seed, gid, xi).is_none())
                .expect("some draw failed");
            invalid(
                key(&format!("vary.{}", e.name())),
                format!("(table) ({what})"),
                format!("no value inside [low, high] in {MAX_REDRAWS} draws: the bounds hold too little of the law"),
            )
        })?;
        check_values(&v, vary, config.dt, &key, &what)?;
        Ok(v)
    })
    .collect()
}

/// The update of the local neurons (`local`: the rank's gids) of LIF population `p`: the
/// shared fast step, or one step per neuron where parameters vary.
pub fn lif_update(
    config: &crate::config::Config,
    p: usize,
    local: &std::ops::Range<u64>,
) -> Result<super::lif::LifUpdate, ConfigError> {
    use super::lif::{LifSteps, LifUpdate};
    let pop = &config.populations[p];
    let base = &pop.model.base;
    if pop.model.vary.is_empty() {
        return Ok(LifUpdate::Same(base.stepper(config.dt)));
    }
    let r = pop.local_range(local);
    let first = local.start + r.start as u64;
    let values = population_values(config, p, first..first + r.len() as u64)?;
    let params: Vec<_> = values
        .iter()
        .map(|v| with_values(base, v, config.dt))
        .collect();
    let shared = pop.model.vary.get(POISSON_RATE).is_none();
    Ok(LifUpdate::PerNeuron(LifSteps::new(
        &params, shared, config.dt,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn vary(spec: &str, extra: &str) -> (Config, Varied) {
        let text = format!("[population.A]\nsize = 4\n{extra}\n[population.A.vary]\n{spec}\n");
        let c = Config::from_toml(&text, &[]).unwrap();
        let v = c.populations[0].model.vary.entries[0].clone();
        (c, v)
    }

    fn moments(v: &Varied, n: u64) -> (f64, f64, f64, f64) {
        let xs: Vec<f64> = (0..n).map(|g| v.value(5, g, [0.0, 0.0]).unwrap()).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (m, var.sqrt(), lo, hi)
    }

    /// 10^5 draws of each law have the configured mean and sd, within 5 standard errors
    /// (the mean's is sd/sqrt(n); the sd's about sd sqrt((kurtosis - 1)/(4 n)), bounded here
    /// by 3 sd/sqrt(n) for these laws).
    #[test]
    fn draws_have_the_configured_mean_and_sd() {
        let n = 100_000u64;
        for (spec, mean, sd) in [
            (
                "v_th = { dist = \"normal\", mean = 20.0, sd = 1.5 }",
                20.0,
                1.5,
            ),
            (
                "tau_m = { dist = \"lognormal\", mean = 20.0, sd = 5.0 }",
                20.0,
                5.0,
            ),
            (
                "tau_m = { dist = \"gamma\", mean = 10.0, sd = 3.0 }",
                10.0,
                3.0,
            ),
            (
                "i_e = { dist = \"uniform\", min = 0.5, max = 1.5 }",
                1.0,
                1.0 / 12f64.sqrt(),
            ),
        ] {
            let (_, v) = vary(spec, "");
            let (m, s, _, _) = moments(&v, n);
            let se = sd / (n as f64).sqrt();
            assert!((m - mean).abs() < 5.0 * se, "{spec}: mean {m} vs {mean}");
            assert!((s - sd).abs() < 15.0 * se, "{spec}: sd {s} vs {sd}");
        }
    }

    /// Truncation redraws: every value lies in the bounds, and the mean of a normal truncated
    /// at its mean from below is mean + sd sqrt(2/pi) (the half-normal's).
    #[test]
    fn truncated_draws_stay_inside_and_have_the_truncated_mean() {
        let n = 100_000u64;
        let (_, v) = vary(
            "tau_m = { dist = \"normal\", mean = 20.0, sd = 4.0, low = 20.0 }",
            "",
        );
        let (m, s, lo, _) = moments(&v, n);
        assert!(lo >= 20.0);
        let want = 20.0 + 4.0 * (2.0 / std::f64::consts::PI).sqrt();
        assert!(
            (m - want).abs() < 5.0 * s / (n as f64).sqrt(),
            "{m} vs {want}"
        );
        let (_, v) = vary(
            "v_th = { dist = \"normal\", mean = 20.0, sd = 4.0, low = 18.0, high = 21.0 }",
            "",
        );
        let (_, _, lo, hi) = moments(&v, n);
        assert!(lo >= 18.0 && hi <= 21.0, "{lo} {hi}");
    }

    /// Functions of the coordinate are their formula at each neuron's coordinate.
    #[test]
    fn coordinate_profiles_follow_their_formula() {
        let (c, v) = vary(
            "i_e = { of = \"x\", kind = \"cosine\", a = 0.5, b = 0.2 }",
            "",
        );
        let p = &c.populations[0];
        for g in 0..4 {
            let x = p.coordinate(1, g);
            let want = 0.5 + 0.2 * (2.0 * std::f64::consts::PI * x[0]).cos();
            assert!((v.value(1, g, x).unwrap() - want).abs() < 1e-15);
        }
        let (_, v) = vary(
            "i_e = { of = \"x\", kind = \"linear\", a = 1.0, b = -0.5 }",
            "",
        );
        assert_eq!(v.value(1, 0, [0.5, 0.0]).unwrap(), 0.75);
        let (_, v) = vary(
            "v_th = { of = \"y\", kind = \"blocks\", values = [18.0, 20.0, 22.0] }",
            "coordinates = \"torus\"",
        );
        let at = |y: f64| v.value(1, 0, [0.9, y]).unwrap();
        assert_eq!((at(0.0), at(0.34), at(0.99)), (18.0, 20.0, 22.0));
    }

    /// Different parameters and different neurons draw from different streams; the same
    /// neuron draws the same value again.
    #[test]
    fn draws_are_keyed_by_neuron_and_parameter() {
        let (_, a) = vary("v_th = { dist = \"normal\", mean = 20.0, sd = 1.0 }", "");
        let (_, b) = vary("e_l = { dist = \"normal\", mean = 0.0, sd = 1.0 }", "");
        let x = [0.0, 0.0];
        assert_eq!(a.value(3, 7, x), a.value(3, 7, x));
        assert_ne!(a.value(3, 7, x), a.value(3, 8, x));
        assert_ne!(a.value(3, 7, x), b.value(3, 7, x));
    }
}
