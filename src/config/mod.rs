//! Configuration: TOML text and `--set` overrides -> [`RawConfig`] (serde, defaults, unknown keys
//! rejected) -> validated [`Config`] with times converted to steps and names resolved to indices.
//!
//! Every error is one line that names the key and its value, e.g.
//! `population.E.tau_m = -20: must be positive [ms]`.

pub mod projection;
pub mod raw;
pub mod trees;

use crate::model::neuron::Neuron;
pub use raw::*;

pub use crate::error::ConfigError;

fn invalid(key: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: one_line(&key.into()),
        value: one_line(&value.to_string()),
        reason: reason.into(),
    }
}

/// `s` with control characters (newlines among them) escaped, so that an error quoting user
/// input stays on one line.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

type Result<T> = std::result::Result<T, ConfigError>;

/// Largest network: every step's spike list, gids plus a small header per rank, must fit in
/// one MPI message, whose counts are 32-bit.
pub const MAX_NEURONS: u64 = (1 << 31) - (1 << 20);

/// Largest projection, in expected synapses (2^40: 4 TiB of synapse tables).
pub const MAX_SYNAPSES: f64 = 1_099_511_627_776.0;

/// The name a configuration gives a value (`lif`, `exp_if`, `{ kind = "sigmoid", ... }`).
pub fn toml_name<T: serde::Serialize>(x: &T) -> String {
    match toml::Value::try_from(x) {
        Ok(toml::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => "?".into(),
    }
}

/// A projection rule with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnRule {
    FixedIndegree {
        indegree: u64,
        autapses: bool,
        multapses: bool,
    },
    Bernoulli {
        p: f64,
        autapses: bool,
    },
    /// The edges of an HDF5 file in the SONATA edges layout.
    File(projection::EdgeFile),
}

#[derive(Clone, Debug)]
pub struct Population {
    pub name: String,
    pub size: u64,
    /// Global id of the first neuron; a population's gids are contiguous.
    pub gid_start: u64,
    pub model: Neuron,
    /// Neurons, from the first, whose spikes are written.
    pub record_spikes: u64,
    /// Where the neurons' coordinates lie.
    pub layout: crate::space::Layout,
}

impl Population {
    pub fn gids(&self) -> std::ops::Range<u64> {
        self.gid_start..self.gid_start + self.size
    }

    /// The local indices of this population's neurons on the rank that owns the gids `local`
    /// (empty if it has none).
    pub fn local_range(&self, local: &std::ops::Range<u64>) -> std::ops::Range<usize> {
        let g = self.gids();
        let (s, e) = (g.start.max(local.start), g.end.min(local.end));
        if s < e {
            (s - local.start) as usize..(e - local.start) as usize
        } else {
            0..0
        }
    }

    /// The coordinate of neuron `gid` of this population.
    pub fn coordinate(&self, seed: u64, gid: u64) -> [f64; 2] {
        self.layout.coordinate(seed, gid, gid - self.gid_start)
    }
}

#[derive(Clone, Debug)]
pub struct Projection {
    pub name: String,
    /// Index into [`Config::populations`].
    pub source: usize,
    pub target: usize,
    pub rule: ConnRule,
    /// \[mV\] The weight of every synapse where it is constant; otherwise the mean weight
    /// (signed, scaled, before any weight kernel; for a file, the mean of its weights).
    pub weight: f64,
    /// The smallest delay \[steps\], at least one.
    pub delay_steps: u32,
    /// The largest delay \[steps\]; equal to `delay_steps` where the delay is constant.
    pub delay_max_steps: u32,
    /// The distribution of the weight magnitudes, after scaling.
    pub weights: projection::Weights,
    /// The kernel `w(xi_target, xi_source)`, if any.
    pub kernel: Option<projection::ProjKernel>,
}

/// Sample times as step boundaries: boundary `b` is time `b * dt`, after `b` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub start: u64,
    pub stop: u64,
    pub every: u64,
}

impl Schedule {
    pub fn fires(&self, boundary: u64) -> bool {
        boundary >= self.start && boundary <= self.stop && (boundary - self.start) % self.every == 0
    }
    pub fn count(&self) -> u64 {
        (self.stop - self.start) / self.every + 1
    }
    /// Read as bins `[start, start + every)`, ... up to `stop`: the number of bins.
    pub fn bins(&self) -> usize {
        (self.stop - self.start).div_ceil(self.every) as usize
    }
    /// Read as bins: the bin holding step `step`, if any.
    pub fn bin_of_step(&self, step: u64) -> Option<usize> {
        (self.start..self.stop)
            .contains(&step)
            .then(|| ((step - self.start) / self.every) as usize)
    }
    /// The length in steps of bin `b` (the last bin may be shorter).
    pub fn bin_steps(&self, b: usize) -> u64 {
        let first = self.start + b as u64 * self.every;
        (self.stop - first).min(self.every)
    }
}

/// The analysis window of the spike statistics, in steps, and the Fano counting window in rate
/// bins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatisticsSpec {
    pub start: u64,
    pub stop: u64,
    pub fano_bins: u64,
}

#[derive(Clone, Debug)]
pub struct HistogramSpec {
    pub schedule: Schedule,
    pub v_min: f64,
    pub v_max: f64,
    pub bins: usize,
    /// Bins of the first coordinate for the extended density (1: none).
    pub xi_bins: usize,
    /// Bins of each label class's probability.
    pub label_bins: usize,
}

impl HistogramSpec {
    /// Bin edges \[mV\], `bins + 1` of them.
    pub fn edges(&self) -> Vec<f64> {
        bin_edges(self.v_min, self.v_max, self.bins)
    }
}

/// The `bins + 1` edges of `bins` equal bins over `[v_min, v_max]`.
pub fn bin_edges(v_min: f64, v_max: f64, bins: usize) -> Vec<f64> {
    let width = (v_max - v_min) / bins as f64;
    (0..=bins).map(|b| v_min + b as f64 * width).collect()
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The configuration with every default filled in (written to the output as provenance).
    pub raw: RawConfig,
    /// \[ms\]
    pub dt: f64,
    pub n_steps: u64,
    pub seed: u64,
    pub populations: Vec<Population>,
    pub projections: Vec<Projection>,
    /// Rate bins: `start`, `stop` and bin width `every`, in steps.
    pub rates: Schedule,
    pub moments: Option<Schedule>,
    pub histogram: Option<HistogramSpec>,
    /// Bins of the input balance (`start`, `stop` and bin width `every`, in steps).
    pub balance: Option<Schedule>,
    pub statistics: StatisticsSpec,
    pub snapshots: Option<Schedule>,
    /// Steps between periodic checkpoints (`None`: only on a signal).
    pub checkpoint_every: Option<u64>,
    pub trees: trees::TreeObservables,
    /// Aggregate (mean-field) coupling terms.
    pub aggregates: Vec<crate::aggregate::Aggregate>,
}

impl Config {
    /// Parses TOML text, applies `key=value` overrides, fills defaults and validates.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Config> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start].lines().count().max(1))
                .unwrap_or(0);
            ConfigError::Parse(format!(
                "TOML syntax error at line {line}: {}",
                one_line(e.message().trim())
            ))
        })?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = one_line(&e.path().to_string());
                let msg = one_line(e.inner().message().trim());
                ConfigError::Parse(if path == "." {
                    msg
                } else {
                    format!("{path}: {msg}")
                })
            })?;
        validate(raw)
    }

    /// Steps between spike exchanges: 1, or the smallest delay with `exchange = "window"`
    /// (and with `"auto"` where a window's largest message fits one MPI message).
    pub fn exchange_window(&self) -> u64 {
        // Each projection's smallest possible delay (`delay`, or a file's smallest).
        let smallest_delay = || {
            self.projections
                .iter()
                .map(|p| u64::from(p.delay_steps))
                .min()
                .unwrap_or(1)
        };
        match self.raw.simulation.exchange {
            Exchange::Step => 1,
            Exchange::Window => smallest_delay(),
            Exchange::Auto => {
                let w = smallest_delay();
                if window_fits(self.n_neurons(), w) {
                    w
                } else {
                    1
                }
            }
        }
    }

    /// Whether input through projection `proj` is sorted by its sign: onto current or
    /// conductance synapses each delivered value (weight times the source's efficacy) that is
    /// negative goes to the target's inhibitory channel, the others to the excitatory one.
    pub fn signed_channels(&self, proj: usize) -> bool {
        let p = &self.projections[proj];
        self.populations[p.target].model.synapse != crate::config::SynapseKind::Delta
    }

    /// Whether some projection can deliver negative input into an inhibitory channel (a second
    /// ring buffer): a negative weight, per-synapse weights (kernels and files can make them
    /// negative) or a source with a negative label efficacy.
    pub fn split_inhibitory(&self) -> bool {
        (0..self.projections.len()).any(|k| {
            let p = &self.projections[k];
            let negative_efficacy = self.populations[p.source]
                .model
                .labels
                .as_ref()
                .is_some_and(|l| l.efficacies().iter().any(|&u| u < 0.0));
            self.signed_channels(k)
                && (p.weight < 0.0 || p.per_synapse_weights() || negative_efficacy)
        })
    }

    pub fn n_neurons(&self) -> u64 {
        self.populations.iter().map(|p| p.size).sum()
    }

    /// The population that contains `gid`.
    pub fn population_of(&self, gid: u64) -> usize {
        self.populations
            .partition_point(|p| p.gid_start + p.size <= gid)
    }

    /// The resolved configuration as TOML text.
    pub fn resolved_toml(&self) -> String {
        toml::to_string(&self.raw).expect("a validated configuration serialises to TOML")
    }

    /// Expected number of synapses of a projection (exact for `fixed_indegree`).
    pub fn expected_synapses(&self, proj: &Projection) -> f64 {
        expected_synapses(&self.populations, proj)
    }
}

fn expected_synapses(populations: &[Population], proj: &Projection) -> f64 {
    let src = populations[proj.source].size as f64;
    let tgt = populations[proj.target].size as f64;
    match &proj.rule {
        ConnRule::FixedIndegree { indegree, .. } => *indegree as f64 * tgt,
        ConnRule::Bernoulli { p, autapses } => {
            let pairs = if !autapses && proj.source == proj.target {
                src - 1.0
            } else {
                src
            };
            // With a probability kernel, p w(xi_t, xi_s): w averaged over uniform coordinates.
            let mean_w = proj.probability_kernel().map_or(1.0, |k| k.mean);
            p * mean_w * pairs * tgt
        }
        ConnRule::File(f) => f.count as f64,
    }
}

/// `section.key=value`: sets one key, creating tables on the way. The value is read as TOML
/// (`0.2`, `true`, `"E"`, `[1, 2]`); anything that does not parse is taken as a string.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (path, value) = assignment
        .split_once('=')
        .ok_or_else(|| invalid("--set", assignment, "expected key=value"))?;
    let path = path.trim();
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(invalid("--set", assignment, "empty key"));
    }
    let value = value.trim();
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, parents) = keys
        .split_last()
        .expect("split of a non-empty path is non-empty");
    let mut node = table;
    for (i, k) in parents.iter().enumerate() {
        let entry = node
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| invalid(keys[..=i].join("."), value, "is not a table"))?;
    }
    node.insert(last.to_string(), parsed);
    Ok(())
}

pub(crate) fn positive(key: &str, v: f64, unit: &str) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(invalid(
            key,
            v,
            format!("must be positive and finite {unit}"),
        ))
    }
}

pub(crate) fn finite(key: &str, v: f64, unit: &str) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(invalid(key, v, format!("must be finite {unit}")))
    }
}

pub(crate) fn non_negative(key: &str, v: f64, unit: &str) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(invalid(
            key,
            v,
            format!("must be non-negative and finite {unit}"),
        ))
    }
}

/// `v` \[ms\] as a whole number of steps of `dt`.
pub(crate) fn steps(key: &str, v: f64, dt: f64) -> Result<u64> {
    let v = non_negative(key, v, "[ms]")?;
    let ratio = v / dt;
    let n = ratio.round();
    if (ratio - n).abs() > 1e-6 * ratio.max(1.0) || n > u32::MAX as f64 {
        return Err(invalid(
            key,
            v,
            format!("must be a multiple of simulation.dt = {dt} [ms]"),
        ));
    }
    Ok(n as u64)
}

/// Whether the largest gathered message of a window of `w` steps fits one MPI message (2^31 - 1
/// values): every neuron spiking in every step, `N w` gids, plus a header and `w` counts per
/// rank, for which 2^20 values are set aside (as in [`MAX_NEURONS`]).
fn window_fits(n_neurons: u64, w: u64) -> bool {
    n_neurons * w + (1 << 20) <= i32::MAX as u64
}

/// Names of datasets that share a group with the populations' datasets in the output.
pub const RESERVED_NAMES: [&str; 3] = ["time", "edges", "xi_edges"];

fn valid_name(key: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{name:?}"),
            "names use letters, digits, '_' and '-' only",
        ))
    }
}

fn schedule(
    section: &str,
    start: f64,
    stop: Option<f64>,
    every: f64,
    dt: f64,
    n_steps: u64,
) -> Result<Option<Schedule>> {
    let every = steps(&format!("{section}.every"), every, dt)?;
    if every == 0 {
        return Ok(None);
    }
    let (start, stop) = window(section, start, stop, dt, n_steps)?;
    Ok(Some(Schedule { start, stop, every }))
}

/// `start` and `stop` \[ms\] of a section as step boundaries within the run.
fn window(
    section: &str,
    start: f64,
    stop: Option<f64>,
    dt: f64,
    n_steps: u64,
) -> Result<(u64, u64)> {
    let start_b = steps(&format!("{section}.start"), start, dt)?;
    let stop_b = match stop {
        Some(s) => steps(&format!("{section}.stop"), s, dt)?,
        None => n_steps,
    };
    if start_b > n_steps {
        return Err(invalid(
            format!("{section}.start"),
            start,
            "is after simulation.t_stop [ms]",
        ));
    }
    if stop_b < start_b || stop_b > n_steps {
        let v = stop.unwrap_or(n_steps as f64 * dt);
        return Err(invalid(
            format!("{section}.stop"),
            v,
            "must lie between start and simulation.t_stop [ms]",
        ));
    }
    Ok((start_b, stop_b))
}

fn validate(mut raw: RawConfig) -> Result<Config> {
    let sim = &raw.simulation;
    let dt = positive("simulation.dt", sim.dt, "[ms]")?;
    let t_stop = positive("simulation.t_stop", sim.t_stop, "[ms]")?;
    let n_steps = steps("simulation.t_stop", t_stop, dt)?;
    let seed = sim.seed;
    positive(
        "output.progress_interval",
        raw.output.progress_interval,
        "[s]",
    )?;
    if raw.output.path.is_empty() {
        return Err(invalid("output.path", "\"\"", "must name a file"));
    }

    if raw.population.is_empty() {
        return Err(invalid(
            "population",
            "{}",
            "at least one population is needed",
        ));
    }
    let mut populations = Vec::new();
    let mut gid_start = 0u64;
    for (name, p) in raw.population.iter_mut() {
        let key = |k: &str| format!("population.{name}.{k}");
        valid_name(&format!("population.{name}"), name)?;
        // Population names are dataset names in the output, next to these.
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(invalid(
                format!("population.{name}"),
                format!("{name:?}"),
                format!(
                    "is reserved: the output stores {} next to the populations' datasets",
                    RESERVED_NAMES.join(", ")
                ),
            ));
        }
        if p.size == 0 {
            return Err(invalid(key("size"), 0, "must be at least 1"));
        }
        // Resolve defaults that depend on other keys, so the provenance shows the values used.
        p.v_init_min.get_or_insert(p.e_l);
        p.v_init_max.get_or_insert(p.e_l);
        let model = Neuron::from_raw(p, dt, &key)?;
        let record_spikes = p.record_spikes.unwrap_or(p.size);
        if record_spikes > p.size {
            return Err(invalid(
                key("record_spikes"),
                record_spikes,
                format!("exceeds the population size {}", p.size),
            ));
        }
        let layout =
            crate::space::Layout::new(p.coordinates, p.placement, p.size, &key("coordinates"))?;
        populations.push(Population {
            name: name.clone(),
            size: p.size,
            gid_start,
            model,
            record_spikes,
            layout,
        });
        // Sizes summing past 2^64 must not wrap around to a small total.
        gid_start = gid_start.checked_add(p.size).ok_or_else(|| {
            invalid(
                key("size"),
                p.size,
                "brings the total number of neurons past 2^64",
            )
        })?;
    }
    if gid_start > MAX_NEURONS {
        return Err(invalid(
            "population",
            gid_start,
            format!("more than {MAX_NEURONS} neurons in total (spike exchange counts are 32-bit)"),
        ));
    }

    let index = |key: String, name: &str| -> Result<usize> {
        populations
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| invalid(key, format!("{name:?}"), "no such population"))
    };
    let mut projections = Vec::new();
    for (name, r) in raw.projection.iter_mut() {
        let key = |k: &str| format!("projection.{name}.{k}");
        valid_name(&format!("projection.{name}"), name)?;
        let source = index(key("source"), &r.source)?;
        let target = index(key("target"), &r.target)?;
        projections.push(projection::resolve(
            name,
            r,
            source,
            target,
            &populations,
            dt,
        )?);
    }

    let obs = &raw.observables;
    let r = &obs.rates;
    let rates =
        schedule("observables.rates", r.start, r.stop, r.every, dt, n_steps)?.ok_or_else(|| {
            invalid(
                "observables.rates.every",
                r.every,
                "must be at least simulation.dt [ms]",
            )
        })?;
    let m = &obs.moments;
    let moments = schedule("observables.moments", m.start, m.stop, m.every, dt, n_steps)?;
    let h = &obs.histogram;
    let histogram = match schedule(
        "observables.histogram",
        h.start,
        h.stop,
        h.every,
        dt,
        n_steps,
    )? {
        None => None,
        Some(schedule) => {
            finite("observables.histogram.v_min", h.v_min, "[mV]")?;
            finite("observables.histogram.v_max", h.v_max, "[mV]")?;
            if h.v_max <= h.v_min {
                return Err(invalid(
                    "observables.histogram.v_max",
                    h.v_max,
                    "must exceed v_min [mV]",
                ));
            }
            // Bin edges are v_min + b (v_max - v_min) / bins: the width must be finite.
            if !(h.v_max - h.v_min).is_finite() {
                return Err(invalid(
                    "observables.histogram.v_max",
                    format!("{:e}", h.v_max),
                    format!("v_max - v_min overflows (v_min = {:e}) [mV]", h.v_min),
                ));
            }
            if h.bins == 0 || h.bins > 1_000_000 {
                return Err(invalid(
                    "observables.histogram.bins",
                    h.bins,
                    "must be in 1..=1000000",
                ));
            }
            for (k, v) in [("xi_bins", h.xi_bins), ("label_bins", h.label_bins)] {
                if v == 0 || v > 10_000 {
                    return Err(invalid(
                        format!("observables.histogram.{k}"),
                        v,
                        "must be in 1..=10000",
                    ));
                }
            }
            if h.bins * h.xi_bins > 10_000_000 {
                return Err(invalid(
                    "observables.histogram.xi_bins",
                    h.xi_bins,
                    format!("bins x xi_bins = {} exceeds 10^7", h.bins * h.xi_bins),
                ));
            }
            Some(HistogramSpec {
                schedule,
                v_min: h.v_min,
                v_max: h.v_max,
                bins: h.bins as usize,
                xi_bins: h.xi_bins as usize,
                label_bins: h.label_bins as usize,
            })
        }
    };

    let b = &obs.balance;
    let balance = schedule("observables.balance", b.start, b.stop, b.every, dt, n_steps)?;
    let st = &obs.statistics;
    let (start, stop) = window("observables.statistics", st.start, st.stop, dt, n_steps)?;
    let fano = steps("observables.statistics.fano_window", st.fano_window, dt)?;
    if fano == 0 || fano % rates.every != 0 {
        return Err(invalid(
            "observables.statistics.fano_window",
            st.fano_window,
            "must be a positive multiple of observables.rates.every [ms]",
        ));
    }
    let statistics = StatisticsSpec {
        start,
        stop,
        fano_bins: fano / rates.every,
    };
    let sn = &obs.snapshots;
    let snapshots = schedule(
        "observables.snapshots",
        sn.start,
        sn.stop,
        sn.every,
        dt,
        n_steps,
    )?;
    let trees = trees::validate(&raw.observables, &populations, &projections, dt, n_steps)?;
    // After validating, so that errors name where an inherited value came from.
    trees::resolve_defaults(&mut raw.observables);
    let every = steps("checkpoint.every", raw.checkpoint.every, dt)?;
    let checkpoint_every = (every > 0).then_some(every);
    let mf = &raw.meanfield;
    if mf.cells < 10 || mf.cells > 1_000_000 {
        return Err(invalid(
            "meanfield.cells",
            mf.cells,
            "must be in 10..=1000000",
        ));
    }
    if mf.xi_bins == 0 || mf.xi_bins > 10_000 {
        return Err(invalid(
            "meanfield.xi_bins",
            mf.xi_bins,
            "must be in 1..=10000",
        ));
    }
    if mf.label_cells < 2 || mf.label_cells > 1000 {
        return Err(invalid(
            "meanfield.label_cells",
            mf.label_cells,
            "must be in 2..=1000",
        ));
    }
    if mf.beta_nodes == 0 || mf.beta_nodes > 12 {
        return Err(invalid(
            "meanfield.beta_nodes",
            mf.beta_nodes,
            "must be in 1..=12",
        ));
    }
    if !(mf.dt.is_finite() && mf.dt > 0.0) {
        return Err(invalid(
            "meanfield.dt",
            mf.dt,
            "must be positive and finite [ms]",
        ));
    }
    for (k, v) in [("v_min", mf.v_min), ("v_max", mf.v_max)] {
        if let Some(v) = v {
            finite(&format!("meanfield.{k}"), v, "[mV]")?;
        }
    }
    if let (Some(lo), Some(hi)) = (mf.v_min, mf.v_max) {
        if hi <= lo {
            return Err(invalid(
                "meanfield.v_max",
                hi,
                "must exceed meanfield.v_min [mV]",
            ));
        }
    }
    let aggregates = raw
        .aggregate
        .iter()
        .map(|(name, a)| {
            valid_name(&format!("aggregate.{name}"), name)?;
            crate::aggregate::Aggregate::from_raw(name, a, &populations)
        })
        .collect::<Result<Vec<_>>>()?;

    let config = Config {
        dt,
        n_steps,
        seed,
        populations,
        projections,
        rates,
        moments,
        histogram,
        balance,
        statistics,
        snapshots,
        checkpoint_every,
        trees,
        aggregates,
        raw,
    };
    let window = config.exchange_window();
    if !window_fits(config.n_neurons(), window) {
        return Err(invalid(
            "simulation.exchange",
            "\"window\"",
            format!(
                "a window of {window} steps of {} neurons may exceed one MPI message (2^31 - 1 values); use \"step\"",
                config.n_neurons()
            ),
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [population.E]
        size = 10
        [projection.EE]
        source = "E"
        target = "E"
        rule = "fixed_indegree"
        indegree = 3
        weight = 0.1
        delay = 1.5
    "#;

    fn err(text: &str, overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::from_toml(text, &o)
            .expect_err("configuration should be rejected")
            .to_string()
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::from_toml(MINIMAL, &[]).unwrap();
        assert_eq!(c.n_steps, 10_000);
        assert_eq!(c.projections[0].delay_steps, 15);
        assert_eq!(c.populations[0].model.base.ref_steps, 20);
        // The resolved TOML parses back to the same configuration.
        let again = Config::from_toml(&c.resolved_toml(), &[]).unwrap();
        assert_eq!(again.resolved_toml(), c.resolved_toml());
    }

    #[test]
    fn errors_are_one_line_and_name_key_and_value() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["population.E.tau_m=-20"],
                "population.E.tau_m = -20: must be positive",
            ),
            (&["population.E.tau_mm=3"], "population.E"),
            (
                &["projection.EE.delay=0.05"],
                "projection.EE.delay = 0.05: must be at least",
            ),
            (
                &["projection.EE.source=\"X\""],
                "projection.EE.source = \"X\": no such population",
            ),
            (&["simulation.dt=nan"], "simulation.dt = NaN"),
            (
                &["simulation.t_stop=100.05"],
                "simulation.t_stop = 100.05: must be a multiple",
            ),
            (&["population.E.size=0"], "population.E.size = 0"),
            (&["population.E.tau_m=\"slow\""], "population.E.tau_m"),
        ];
        for (o, expect) in cases {
            let e = err(MINIMAL, o);
            assert!(e.contains(expect), "{o:?}: got {e:?}, expected {expect:?}");
            assert!(!e.contains('\n'), "{o:?}: multi-line error {e:?}");
        }
        assert!(err("[population.E\nsize = 3", &[]).contains("line 1"));
        assert!(err(MINIMAL, &["nonsense"]).contains("--set = nonsense"));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err(MINIMAL, &["population.E.tau_mm=3"]);
        assert!(e.contains("tau_mm"), "{e}");
        let e = err(MINIMAL, &["simulaton.dt=0.1"]);
        assert!(e.contains("simulaton"), "{e}");
    }

    /// "auto" exchanges once per smallest delay unless a window could exceed one MPI message.
    #[test]
    fn auto_exchange_uses_the_window_where_it_fits() {
        let text = "[population.A]\nsize = 100\n[projection.AA]\nsource = \"A\"\n\
                    target = \"A\"\nrule = \"fixed_indegree\"\nindegree = 1\nweight = 0.1\ndelay = 1.5\n";
        let c = Config::from_toml(text, &[]).unwrap();
        assert_eq!(c.exchange_window(), 15);
        let big = Config::from_toml(text, &["population.A.size=200000000".into()]).unwrap();
        assert_eq!(big.exchange_window(), 1);
        let step = Config::from_toml(text, &["simulation.exchange=\"step\"".into()]).unwrap();
        assert_eq!(step.exchange_window(), 1);
    }

    #[test]
    fn schedules_fire_on_multiples() {
        let s = Schedule {
            start: 10,
            stop: 50,
            every: 20,
        };
        let fired: Vec<u64> = (0..100).filter(|&b| s.fires(b)).collect();
        assert_eq!(fired, vec![10, 30, 50]);
        assert_eq!(s.count(), 3);
    }
}
