//! Configuration: TOML text and `--set` overrides -> [`RawConfig`] (serde, defaults, unknown keys
//! rejected) -> validated [`Config`] with times converted to steps and names resolved to indices.
//!
//! Every error is one line that names the key and its value, e.g.
//! `population.E.tau_m = -20: must be positive [ms]`.
//!
//! The one import circle left in the crate runs through here, and is deliberate: the validated
//! configuration holds the model's own types ([`crate::model::neuron::Neuron`],
//! [`crate::aggregate::Aggregate`], [`crate::space`]'s kernels and layouts), and each of those
//! types validates its own raw section, with the raw types and the error helpers of this
//! module. Breaking it would mean a second, parallel set of "validated parameter" types or
//! validation far from the code that uses the values; neither is worth an acyclic graph.

mod expr;
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

/// Most ranks `lapicque run --emulate-ranks` emulates (each window it makes up a message per
/// rank).
pub const MAX_EMULATED_RANKS: usize = 1 << 20;

/// Largest projection, in expected synapses (2^50, about 10^15: 16,384 ranks of 10^5 neurons
/// with 10^4 synapses each hold 1.6 x 10^13). A bound against mistyped sizes only: what each
/// rank will hold is checked against its node's memory before anything is built.
pub const MAX_SYNAPSES: f64 = 1_125_899_906_842_624.0;

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
        boundary >= self.start
            && boundary <= self.stop
            && (boundary - self.start).is_multiple_of(self.every)
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
    /// Read as bins of spike times: the bin holding the timestamp `(step + 1) dt` of a spike
    /// emitted in step `step` (the end of the step, as written to `/spikes`), bins being
    /// `[start, start + every)`, ..., the last one closed at `stop`: the bins
    /// `numpy.histogram` makes of the timestamps with these edges.
    pub fn bin_of_spike(&self, step: u64) -> Option<usize> {
        let t = step + 1;
        if t == self.stop && self.stop > self.start {
            return Some(self.bins() - 1);
        }
        self.bin_of_step(t)
    }
    /// The number of steps whose spikes [`Schedule::bin_of_spike`] puts in bin `b`: the bin's
    /// length, one more for the last bin (closed at `stop`), one less for a first bin starting
    /// at 0 (no spike is stamped at 0). A bin's rate is its spikes over this many steps.
    pub fn spike_steps(&self, b: usize) -> u64 {
        let first = self.start + b as u64 * self.every;
        let end = (first + self.every).min(self.stop);
        let last = u64::from(b + 1 == self.bins());
        end - first.max(1) + last
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

/// A recorded state variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    V,
    Refractory,
    /// A state variable of the general models.
    Column(crate::model::extra::Column),
}

impl Recorded {
    pub fn name(self) -> &'static str {
        match self {
            Recorded::V => "v",
            Recorded::Refractory => "refractory_steps",
            Recorded::Column(c) => c.name(),
        }
    }
}

/// What `observables.record` records: per population its sorted node ids, and the variables.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    pub schedule: Schedule,
    /// (population, node ids ascending), in the order of the configuration.
    pub neurons: Vec<(usize, Vec<u64>)>,
    pub variables: Vec<Recorded>,
}

/// Validates `observables.record`: known populations, node ids below their size and distinct,
/// variables the recorded populations have.
fn record(
    raw: &raw::RawRecord,
    populations: &[Population],
    dt: f64,
    n_steps: u64,
) -> Result<Option<RecordSpec>> {
    use crate::model::extra::Column;
    if raw.neurons.is_empty() {
        return Ok(None);
    }
    let key = |k: &str| format!("observables.record.{k}");
    let Some(schedule) = schedule(
        "observables.record",
        raw.start,
        raw.stop,
        raw.every,
        dt,
        n_steps,
    )?
    else {
        return Err(invalid(
            key("every"),
            raw.every,
            "must be positive when neurons are recorded [ms]",
        ));
    };
    let mut neurons = Vec::new();
    for (name, ids) in &raw.neurons {
        let k = key(&format!("neurons.{name}"));
        let p = populations
            .iter()
            .position(|p| &p.name == name)
            .ok_or_else(|| invalid(&k, format!("{ids:?}"), "names no population"))?;
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        if let Some(&id) = sorted.iter().find(|&&id| id >= populations[p].size) {
            return Err(invalid(
                &k,
                id,
                format!(
                    "node ids must be below the population's size {}",
                    populations[p].size
                ),
            ));
        }
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(&k, w[0], "is listed twice"));
        }
        if sorted.is_empty() {
            return Err(invalid(&k, "[]", "lists no node id"));
        }
        neurons.push((p, sorted));
    }
    let mut variables = Vec::new();
    for v in &raw.variables {
        let var = match v.as_str() {
            "v" => Recorded::V,
            "refractory_steps" => Recorded::Refractory,
            other => Recorded::Column(
                Column::ALL
                    .into_iter()
                    .find(|c| c.name() == other)
                    .ok_or_else(|| {
                        invalid(
                            key("variables"),
                            format!("{other:?}"),
                            "must be one of v, refractory_steps, w, syn_e, syn_i, lambda, beta",
                        )
                    })?,
            ),
        };
        if variables.contains(&var) {
            return Err(invalid(
                key("variables"),
                format!("{v:?}"),
                "is listed twice",
            ));
        }
        for (p, _) in &neurons {
            let m = &populations[*p].model;
            let has = match var {
                Recorded::V | Recorded::Refractory => true,
                Recorded::Column(Column::W) => m.kind == ModelKind::Fhn,
                Recorded::Column(Column::SynE | Column::SynI) => m.synapse != SynapseKind::Delta,
                Recorded::Column(Column::Lambda | Column::Beta) => m.labels.is_some(),
            };
            if !has {
                return Err(invalid(
                    key("variables"),
                    format!("{v:?}"),
                    format!("population {} has no such variable", populations[*p].name),
                ));
            }
        }
        variables.push(var);
    }
    Ok(Some(RecordSpec {
        schedule,
        neurons,
        variables,
    }))
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
    /// State variables of chosen neurons (`observables.record`).
    pub record: Option<RecordSpec>,
    /// What validation noticed without refusing (windows cut at the end of the run, ...),
    /// one line each.
    pub warnings: Vec<String>,
    /// Steps between periodic checkpoints (`None`: only on a signal).
    pub checkpoint_every: Option<u64>,
    pub trees: trees::TreeObservables,
    /// Aggregate (mean-field) coupling terms.
    pub aggregates: Vec<crate::aggregate::Aggregate>,
    /// Time-dependent stimulation.
    pub stimuli: Vec<crate::stimulus::Stimulus>,
}

impl Config {
    /// Parses TOML text, applies `key=value` overrides, fills defaults and validates. An
    /// override that would define a population, projection, aggregate term or tree observable
    /// the text does not have is an error (a misspelt name must not become a new population);
    /// [`Config::from_toml_creating`] allows it.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Config> {
        Self::parse(text, overrides, false, None)
    }

    /// As [`Config::from_toml`], with overrides that may define new populations, projections,
    /// aggregate terms and tree observables (`--create`).
    pub fn from_toml_creating(text: &str, overrides: &[String]) -> Result<Config> {
        Self::parse(text, overrides, true, None)
    }

    /// The configuration of a file in directory `dir` (its text, with overrides; `create` as
    /// [`Config::from_toml_creating`]): relative paths in it (edge files) are relative to
    /// `dir`, and the resolved configuration holds them joined to it.
    pub fn from_file_text(
        text: &str,
        overrides: &[String],
        create: bool,
        dir: &std::path::Path,
    ) -> Result<Config> {
        Self::parse(text, overrides, create, Some(dir))
    }

    fn parse(
        text: &str,
        overrides: &[String],
        create: bool,
        dir: Option<&std::path::Path>,
    ) -> Result<Config> {
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
            apply_override(&mut table, o, create)?;
        }
        expr::substitute(&mut table)?;
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
        let mut raw = raw;
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            for p in raw.projection.values_mut() {
                for f in [&mut p.file, &mut p.edge_types].into_iter().flatten() {
                    if std::path::Path::new(f).is_relative() {
                        *f = dir.join(&*f).display().to_string();
                    }
                }
            }
            for s in raw.stimulus.values_mut() {
                if let Some(f) = s
                    .file
                    .as_mut()
                    .filter(|f| std::path::Path::new(f).is_relative())
                {
                    *f = dir.join(&*f).display().to_string();
                }
            }
        }
        WARNINGS.with(|w| w.borrow_mut().clear());
        let mut config = validate(raw)?;
        config.warnings = WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()));
        Ok(config)
    }

    /// The names of the projections with indices `indices`, comma-separated (as the output's
    /// `projections` attributes list them).
    pub fn projection_names(&self, indices: &[usize]) -> String {
        let names: Vec<&str> = indices
            .iter()
            .map(|&k| self.projections[k].name.as_str())
            .collect();
        names.join(",")
    }

    /// The time of step boundary `b` \[ms\]: `b dt`, computed as `b / (1 / dt)` where `1 / dt`
    /// is a whole number, so that times on a decimal grid are the doubles nearest to them
    /// (30.7, not 30.700000000000003). Every time written to an output comes from here.
    pub fn time(&self, b: u64) -> f64 {
        let per_ms = (1.0 / self.dt).round();
        if per_ms >= 1.0 && (per_ms * self.dt - 1.0).abs() < 1e-12 {
            b as f64 / per_ms
        } else {
            b as f64 * self.dt
        }
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

    /// Whether a current stimulus reaches population `p` (which then runs the general step).
    pub fn drives_current(&self, p: usize) -> bool {
        self.stimuli
            .iter()
            .any(|s| s.target == p && matches!(s.drive, crate::stimulus::Drive::Current(_)))
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

/// The tables whose entries are named by the user: `population.<name>`, ... (the depth of the
/// name in the key).
const NAMED: [(&[&str], &str); 6] = [
    (&["parameters"], "parameter"),
    (&["population"], "population"),
    (&["projection"], "projection"),
    (&["aggregate"], "aggregate term"),
    (&["stimulus"], "stimulus"),
    (&["observables", "tree"], "tree observable"),
];

/// `section.key=value`: sets one key, creating tables on the way (named entries, such as a
/// population, only with `create`). The value is read as TOML (`0.2`, `true`, `"E"`,
/// `[1, 2]`); anything that does not parse is taken as a string.
fn apply_override(table: &mut toml::Table, assignment: &str, create: bool) -> Result<()> {
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
    // A named entry (a population, ...) the configuration does not have.
    let undefined = |node: &toml::Table, i: usize, k: &str| -> Result<()> {
        let named = NAMED
            .iter()
            .find(|(prefix, _)| prefix.len() == i && keys[..i] == **prefix);
        let Some((_, what)) = named.filter(|_| !create && !node.contains_key(k)) else {
            return Ok(());
        };
        let mut have: Vec<&str> = node.keys().map(String::as_str).collect();
        have.sort_unstable();
        let have = if have.is_empty() {
            "none".to_string()
        } else {
            have.join(", ")
        };
        Err(invalid(
            path,
            value,
            format!(
                "the configuration has no {what} {k:?} (it has: {have}); define it there, or pass --create to let --set define it"
            ),
        ))
    };
    let mut node = table;
    for (i, k) in parents.iter().enumerate() {
        undefined(node, i, k)?;
        let entry = node
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| invalid(keys[..=i].join("."), value, "is not a table"))?;
    }
    undefined(node, parents.len(), last)?;
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

thread_local! {
    /// What validation noticed without refusing: drained into [`Config::warnings`].
    static WARNINGS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes something the user should know about the configuration (printed by rank 0).
fn warn(message: String) {
    WARNINGS.with(|w| w.borrow_mut().push(message));
}

/// The default range of V histograms \[mV\]: from the lowest resting or reset potential of
/// any population (`lo`) down by its distance to the highest threshold of a threshold
/// population (`hi`), up to that threshold: `[lo - (hi - lo), hi]`, which is [-20, 20] for
/// the default LIF (e_l 0, v_reset 10, v_th 20) and [-85, -55] for NEST's (e_l = v_reset =
/// -70, v_th = -55). Without a threshold population, `[lo - 20, lo + 20]`.
fn default_v_range(populations: &[Population]) -> (f64, f64) {
    let lo = populations
        .iter()
        .map(|p| p.model.base.e_l.min(p.model.base.v_reset))
        .fold(f64::INFINITY, f64::min);
    let hi = populations
        .iter()
        .filter(|p| p.model.spike == SpikeRule::Threshold)
        .map(|p| p.model.base.v_th)
        .fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        (-20.0, 20.0)
    } else if hi.is_finite() && hi > lo {
        (lo - (hi - lo), hi)
    } else {
        (lo - 20.0, lo + 20.0)
    }
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
    if let (Some(s), true) = (stop, stop_b < start_b) {
        return Err(invalid(
            format!("{section}.stop"),
            s,
            "must not lie before start [ms]",
        ));
    }
    // A window reaching past the end of the run (a run shortened with --set) is cut at its
    // end, and said so.
    let t_stop = n_steps as f64 * dt;
    if start_b > n_steps {
        warn(format!(
            "{section}.start = {start} ms lies after simulation.t_stop = {t_stop} ms: nothing is sampled"
        ));
        return Ok((n_steps, n_steps));
    }
    if stop_b > n_steps {
        warn(format!(
            "{section}.stop = {} ms lies after simulation.t_stop = {t_stop} ms: cut there",
            stop.unwrap_or(t_stop)
        ));
        return Ok((start_b, n_steps));
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
    positive("output.spike_buffer", raw.output.spike_buffer, "[MiB]")?;
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

    // The histograms' range, where not set, from the populations' potentials; written into
    // the resolved configuration (the pair histogram inherits it).
    let (lo, hi) = default_v_range(&populations);
    let h = &mut raw.observables.histogram;
    h.v_min.get_or_insert(lo);
    h.v_max.get_or_insert(hi);
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
            let (v_min, v_max) = (h.v_min.unwrap_or(lo), h.v_max.unwrap_or(hi));
            finite("observables.histogram.v_min", v_min, "[mV]")?;
            finite("observables.histogram.v_max", v_max, "[mV]")?;
            if v_max <= v_min {
                return Err(invalid(
                    "observables.histogram.v_max",
                    v_max,
                    "must exceed v_min [mV]",
                ));
            }
            // Bin edges are v_min + b (v_max - v_min) / bins: the width must be finite.
            if !(v_max - v_min).is_finite() {
                return Err(invalid(
                    "observables.histogram.v_max",
                    format!("{:e}", v_max),
                    format!("v_max - v_min overflows (v_min = {:e}) [mV]", v_min),
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
                v_min,
                v_max,
                bins: h.bins as usize,
                xi_bins: h.xi_bins as usize,
                label_bins: h.label_bins as usize,
            })
        }
    };

    let b = &obs.balance;
    let balance = schedule("observables.balance", b.start, b.stop, b.every, dt, n_steps)?;
    let st = &obs.statistics;
    // Default window: from 200 ms (the transient), or from half of a shorter run.
    let start = st.start.unwrap_or_else(|| {
        let half = (n_steps / 2) as f64 * dt;
        if half < 200.0 {
            half
        } else {
            200.0
        }
    });
    let (start, stop) = window("observables.statistics", start, st.stop, dt, n_steps)?;
    let fano = match st.fano_window {
        Some(w) => {
            let fano = steps("observables.statistics.fano_window", w, dt)?;
            if fano == 0 || fano % rates.every != 0 {
                return Err(invalid(
                    "observables.statistics.fano_window",
                    w,
                    "must be a positive multiple of observables.rates.every [ms]",
                ));
            }
            fano
        }
        // The smallest multiple of the rate bin of at least 10 ms.
        None => rates.every * (10.0 / (rates.every as f64 * dt) - 1e-9).ceil().max(1.0) as u64,
    };
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
    let record = record(&obs.record, &populations, dt, n_steps)?;
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
    for (k, p) in populations.iter().enumerate() {
        let reached = aggregates.iter().find(|a| a.target == k);
        if let (Some(first), Some(a)) = (p.model.vary.entries.first(), reached) {
            return Err(invalid(
                format!("population.{}.vary.{}", p.name, first.name()),
                "(table)",
                format!(
                    "heterogeneous parameters need the plain LIF neuron, and aggregate term {} reaches this population",
                    a.name
                ),
            ));
        }
    }
    let nodes = raw.meanfield.vary_nodes;
    if nodes == 0 || nodes > 64 {
        return Err(invalid("meanfield.vary_nodes", nodes, "must be in 1..=64"));
    }
    let stimuli = raw
        .stimulus
        .iter()
        .map(|(name, s)| {
            valid_name(&format!("stimulus.{name}"), name)?;
            crate::stimulus::Stimulus::from_raw(name, s, &populations, dt)
        })
        .collect::<Result<Vec<_>>>()?;
    for s in &stimuli {
        let p = &populations[s.target];
        if matches!(s.drive, crate::stimulus::Drive::Current(_)) && !p.model.vary.entries.is_empty()
        {
            return Err(invalid(
                format!("stimulus.{}.target", s.name),
                format!("{:?}", p.name),
                "a current stimulus cannot drive a population with heterogeneous parameters (vary) yet; use a poisson stimulus",
            ));
        }
    }

    let config = Config {
        warnings: Vec::new(),
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
        record,
        checkpoint_every,
        trees,
        aggregates,
        stimuli,
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

    /// `--set` changes what the configuration defines; a new named entry (a misspelt one
    /// above all) needs `--create`, and with it the overrides define it.
    #[test]
    fn overrides_define_new_entries_only_when_asked() {
        let e = err(MINIMAL, &["population.e.size=10"]);
        assert!(
            e.contains("population.e.size = 10") && e.contains("no population \"e\" (it has: E)"),
            "{e}"
        );
        let e = err(MINIMAL, &["population.X={size=3}"]);
        assert!(e.contains("no population \"X\""), "{e}");
        let e = err(MINIMAL, &["observables.tree.t.shape=\"edge\""]);
        assert!(e.contains("no tree observable \"t\" (it has: none)"), "{e}");
        let c = Config::from_toml(MINIMAL, &["population.E.size=12".into()]).unwrap();
        assert_eq!(c.populations[0].size, 12);
        let new = ["population.X.size=3".to_string()];
        let c = Config::from_toml_creating(MINIMAL, &new).unwrap();
        assert_eq!(
            c.populations
                .iter()
                .map(|p| (p.name.as_str(), p.size))
                .collect::<Vec<_>>(),
            [("E", 10), ("X", 3)]
        );
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
