//! The configuration file as written by the user: serde structs with defaults. Every key is
//! documented here with its unit and default; `configs/reference.toml` shows all of them.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub simulation: RawSimulation,
    #[serde(default)]
    pub output: RawOutput,
    #[serde(default)]
    pub observables: RawObservables,
    #[serde(default)]
    pub checkpoint: RawCheckpoint,
    #[serde(default)]
    pub meanfield: RawMeanfield,
    /// Populations by name, in the order of their global ids.
    pub population: IndexMap<String, RawPopulation>,
    /// Projections by name.
    #[serde(default)]
    pub projection: IndexMap<String, RawProjection>,
    /// Aggregate (mean-field) coupling terms by name.
    #[serde(default)]
    pub aggregate: IndexMap<String, crate::aggregate::RawAggregate>,
    /// Time-dependent stimulation by name.
    #[serde(default)]
    pub stimulus: IndexMap<String, crate::stimulus::RawStimulus>,
    /// Named numbers that string values starting with `=` use (`weight = "= -g * J"`).
    #[serde(default)]
    pub parameters: IndexMap<String, f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulation {
    /// Time step \[ms\].
    #[serde(default = "d_dt")]
    pub dt: f64,
    /// Model time to simulate \[ms\]; a multiple of `dt`.
    #[serde(default = "d_t_stop")]
    pub t_stop: f64,
    /// Master seed of every random stream.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// How often spikes are exchanged between ranks; results are identical either way.
    #[serde(default = "d_exchange")]
    pub exchange: Exchange,
    /// How spikes travel between ranks; results are identical either way.
    #[serde(default = "d_collective")]
    pub collective: Collective,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Collective {
    /// Every spike to every rank (an all-gather-v).
    AllGather,
    /// Each spike only to the ranks holding targets of its source (an all-to-all-v), for
    /// networks with spatial locality.
    AllToAll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exchange {
    /// One collective per time step.
    Step,
    /// One collective per window of the smallest synaptic delay.
    Window,
    /// `Window` where the largest possible message of a window (every neuron spiking in
    /// every step) fits one MPI message, else `Step`.
    Auto,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Output HDF5 file; `-o` on the command line overrides it.
    #[serde(default = "d_path")]
    pub path: String,
    /// Record spike trains (SONATA layout).
    #[serde(default = "d_true")]
    pub spikes: bool,
    /// Write the final membrane potential and refractory counter of every neuron.
    #[serde(default = "d_true")]
    pub final_state: bool,
    /// Wall-clock seconds between progress lines when stderr is not a terminal \[s\].
    #[serde(default = "d_progress")]
    pub progress_interval: f64,
    /// Recorded spikes each rank holds in memory before it appends them to its spill file in
    /// `$TMPDIR` \[MiB\].
    #[serde(default = "d_spike_buffer")]
    pub spike_buffer: f64,
}

/// The grid of `lapicque meanfield` (the limit equations of this configuration).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeanfield {
    /// Lower end of the potential grid \[mV\]; default: `observables.histogram.v_min - 20`.
    pub v_min: Option<f64>,
    /// Upper end of the grid \[mV\] (escape noise; LIF densities end at `v_th`); default:
    /// `observables.histogram.v_max + 20`.
    pub v_max: Option<f64>,
    /// Finite volumes on the grid.
    #[serde(default = "d_cells")]
    pub cells: u64,
    /// Coordinate bins of the escape-noise limit with kernels when `observables.histogram.xi_bins`
    /// is 1 (otherwise those bins are used).
    #[serde(default = "d_mf_xi")]
    pub xi_bins: u64,
    /// Longest time step of the threshold-LIF limit solver \[ms\] (it also steps at least once
    /// per step of the run); its error is first order in it.
    #[serde(default = "d_mf_dt")]
    pub dt: f64,
    /// Cells per axis of the label simplex in the limit of a labelled network.
    #[serde(default = "d_label_cells")]
    pub label_cells: u64,
    /// Gauss quadrature nodes per random environment coefficient in the limit of a labelled
    /// network (a tensor product over the transitions with a non-zero rate).
    #[serde(default = "d_beta_nodes")]
    pub beta_nodes: u64,
    /// Quadrature nodes (random laws) or coordinate bins (functions of the coordinate) per
    /// varied parameter in the threshold-LIF limit of a heterogeneous population (a tensor
    /// product over its varied parameters).
    #[serde(default = "d_vary_nodes")]
    pub vary_nodes: u64,
}

impl Default for RawMeanfield {
    fn default() -> Self {
        RawMeanfield {
            v_min: None,
            v_max: None,
            cells: d_cells(),
            xi_bins: d_mf_xi(),
            dt: d_mf_dt(),
            label_cells: d_label_cells(),
            beta_nodes: d_beta_nodes(),
            vary_nodes: d_vary_nodes(),
        }
    }
}

fn d_cells() -> u64 {
    400
}
fn d_mf_dt() -> f64 {
    0.01
}
fn d_label_cells() -> u64 {
    32
}
fn d_beta_nodes() -> u64 {
    6
}
fn d_vary_nodes() -> u64 {
    8
}
fn d_mf_xi() -> u64 {
    24
}

/// Checkpoints: the whole dynamic state, written so that `lapicque run --restart` continues
/// the run with results identical to an uninterrupted one. One is always written when the
/// process receives SIGUSR1 or SIGTERM, after which the run stops (exit code 4).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoint {
    /// Model time between periodic checkpoints \[ms\], a multiple of `dt`; 0: only on a signal.
    #[serde(default)]
    pub every: f64,
    /// Checkpoint file; empty: the output path with `.h5` replaced by `.checkpoint.h5`.
    #[serde(default)]
    pub path: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawObservables {
    /// Population rates: spike counts in bins of `every` ms from `start` to `stop`.
    #[serde(default)]
    pub rates: RawRates,
    #[serde(default)]
    pub moments: RawSchedule,
    #[serde(default)]
    pub histogram: RawHistogram,
    /// Mean synaptic input per population, in bins of `every` ms.
    #[serde(default)]
    pub balance: RawSchedule,
    #[serde(default)]
    pub statistics: RawStatistics,
    #[serde(default)]
    pub snapshots: RawSnapshots,
    /// State variables of chosen neurons.
    #[serde(default)]
    pub record: RawRecord,
    /// Tree-indexed observables by name.
    #[serde(default)]
    pub tree: IndexMap<String, super::trees::RawTree>,
    #[serde(default)]
    pub pair_histogram: super::trees::RawPairHistogram,
}

/// The population rate time series: bins `[start, start + every)`, ... up to `stop` \[ms\] (the
/// last bin may be shorter).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRates {
    /// Start of the first bin \[ms\].
    #[serde(default)]
    pub start: f64,
    /// End of the last bin \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Bin width \[ms\]; a multiple of `dt`, at least `dt`.
    #[serde(default = "d_every")]
    pub every: f64,
}

impl Default for RawRates {
    fn default() -> Self {
        RawRates {
            start: 0.0,
            stop: None,
            every: d_every(),
        }
    }
}

/// When a sampled observable is taken: at `start`, `start + every`, ... up to `stop` \[ms\].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// First sample time \[ms\].
    #[serde(default)]
    pub start: f64,
    /// Last sample time \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Sampling interval \[ms\]; a multiple of `dt`. Zero switches the observable off.
    #[serde(default = "d_every")]
    pub every: f64,
}

/// Spike statistics per population over `[start, stop]`: the CV of inter-spike intervals,
/// the Fano factor of population spike counts and Golomb's synchrony measure chi (from V at
/// the moment samples).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatistics {
    /// Start of the analysis window \[ms\] (skip the transient); absent means 200 ms, or half
    /// of `simulation.t_stop` for runs shorter than 400 ms.
    pub start: Option<f64>,
    /// End of the analysis window \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Counting window of the Fano factor \[ms\], a multiple of `observables.rates.every`; the
    /// factor counts the whole windows inside both `[start, stop]` and the rates' window.
    /// Absent means the smallest multiple of `rates.every` of at least 10 ms.
    pub fano_window: Option<f64>,
}

/// Per-neuron state (V, refractory counter) at `start, start + every, ...` up to `stop`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshots {
    /// First snapshot \[ms\].
    #[serde(default)]
    pub start: f64,
    /// Last snapshot \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Interval \[ms\], a multiple of `dt`. Zero (the default) switches snapshots off.
    #[serde(default)]
    pub every: f64,
}

/// State variables of chosen neurons at `start, start + every, ...` up to `stop` (NEST's
/// multimeter, Brian2's `StateMonitor`); on when `neurons` names some.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    /// First sample \[ms\].
    #[serde(default)]
    pub start: f64,
    /// Last sample \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Interval \[ms\], a positive multiple of `dt`.
    #[serde(default = "d_record_every")]
    pub every: f64,
    /// Per population, the node ids (gid - gid_start) to record.
    #[serde(default)]
    pub neurons: IndexMap<String, Vec<u64>>,
    /// The variables: `v`, `refractory_steps`, and where the population has them `w`
    /// (FitzHugh-Nagumo), `syn_e`, `syn_i` (current or conductance synapses), `lambda`, `beta`
    /// (labels).
    #[serde(default = "d_record_variables")]
    pub variables: Vec<String>,
}

fn d_record_every() -> f64 {
    1.0
}

fn d_record_variables() -> Vec<String> {
    vec!["v".into()]
}

impl Default for RawRecord {
    fn default() -> Self {
        RawRecord {
            start: 0.0,
            stop: None,
            every: d_record_every(),
            neurons: IndexMap::new(),
            variables: d_record_variables(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistogram {
    /// First sample time \[ms\].
    #[serde(default)]
    pub start: f64,
    /// Last sample time \[ms\]; absent means `simulation.t_stop`.
    pub stop: Option<f64>,
    /// Sampling interval \[ms\]; a multiple of `dt`. Zero switches the histograms off.
    #[serde(default = "d_hist_every")]
    pub every: f64,
    /// Lower edge of the first bin \[mV\]; absent: from the populations' potentials (see
    /// `configs/reference.toml`).
    pub v_min: Option<f64>,
    /// Upper edge of the last bin \[mV\]; absent: from the populations' potentials.
    pub v_max: Option<f64>,
    /// Number of bins.
    #[serde(default = "d_bins")]
    pub bins: u64,
    /// Bins of the first coordinate xi over [0, 1) for the extended density f(t, v, xi)
    /// (`/densities`); 1 (the default): only the density of V.
    #[serde(default = "d_one")]
    pub xi_bins: u64,
    /// Bins over [0, 1] of each label class's probability (`/labels`, populations with labels).
    #[serde(default = "d_label_bins")]
    pub label_bins: u64,
}

/// The intrinsic drift `f(V)` of a population (see `docs/models.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Leaky: `-(V - e_l)/tau_m + i_e`.
    Lif,
    /// Perfect integrator: the constant drift `i_e`.
    Perfect,
    /// Linear: `a - c V + i_e`.
    Linear,
    /// Exponential integrate-and-fire:
    /// `-(V - e_l)/tau_m + (delta_t/tau_m) exp((V - v_t)/delta_t) + i_e`.
    ExpIf,
    /// FitzHugh-Nagumo: `dV = (V - V^3/3 - w + i_e) dt`, `dw = eps (V + fhn_a - fhn_b w) dt`.
    Fhn,
}

/// The noise amplitude `g(V)`, the coefficient of `dB`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    /// `g = sigma`.
    #[default]
    Additive,
    /// `g = max(0, sigma + sigma_v V)`.
    Affine,
    /// `g = sigma sqrt(|V - e_noise|)`.
    Sqrt,
}

/// How a spike arriving through a synapse acts on its target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SynapseKind {
    /// V jumps by the weight \[mV\].
    #[default]
    Delta,
    /// An exponentially decaying current `I_e + I_i` [mV/ms] (time constants `tau_syn_e`,
    /// `tau_syn_i`) jumps by `weight / tau_syn`: a lone spike moves V by `weight` in all.
    Current,
    /// Conductances [1/ms] `g_e (e_rev_e - V) + g_i (e_rev_i - V)`, each decaying with its
    /// time constant and jumping by `|weight| / tau_syn` (weight dimensionless).
    Conductance,
}

/// When a neuron spikes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpikeRule {
    /// `V >= v_th` at the end of a step (or a bridge crossing), then reset and refractoriness.
    #[default]
    Threshold,
    /// With probability `1 - exp(-nu(V) dt)` per step (`[population.X.escape]`), then reset.
    Escape,
    /// Upward crossings of `v_th` are recorded as spikes; V is not reset.
    None,
}

/// The escape intensity `nu(V)` \[Hz\] of `spike = "escape"`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawEscape {
    /// `rate exp((V - theta)/delta)`.
    Exponential { rate: f64, theta: f64, delta: f64 },
    /// `rate / (1 + exp(-beta (V - theta)))`.
    Sigmoid { rate: f64, theta: f64, beta: f64 },
    /// `slope max(0, V - theta)` (slope in Hz/mV).
    Linear { slope: f64, theta: f64 },
    /// `rate (max(0, V - theta)/delta)^exponent`.
    Power {
        rate: f64,
        theta: f64,
        delta: f64,
        exponent: f64,
    },
    /// `rate`.
    Constant { rate: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrator {
    /// Exact (exponential) step of the Ornstein-Uhlenbeck process between spikes.
    Exact,
    /// Euler-Maruyama.
    Euler,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPopulation {
    /// Number of neurons.
    pub size: u64,
    #[serde(default = "d_model")]
    pub model: ModelKind,
    /// Membrane time constant \[ms\].
    #[serde(default = "d_tau_m")]
    pub tau_m: f64,
    /// Resting (leak reversal) potential \[mV\].
    #[serde(default)]
    pub e_l: f64,
    /// Spike threshold \[mV\].
    #[serde(default = "d_v_th")]
    pub v_th: f64,
    /// Reset potential \[mV\].
    #[serde(default = "d_v_reset")]
    pub v_reset: f64,
    /// Absolute refractory period \[ms\]; a multiple of `dt`. The potential is held at `v_reset`
    /// and incoming spikes are discarded meanwhile.
    #[serde(default = "d_t_ref")]
    pub t_ref: f64,
    /// Constant drive I_e / C_m [mV/ms].
    #[serde(default)]
    pub i_e: f64,
    /// Amplitude of the additive white noise, the coefficient of dB [mV/ms^(1/2)].
    #[serde(default)]
    pub sigma: f64,
    /// Brownian-bridge correction for threshold crossings inside a step (with noise only).
    #[serde(default = "d_true")]
    pub bridge: bool,
    #[serde(default = "d_integrator")]
    pub integrator: Integrator,
    /// Initial potentials are uniform on [v_init_min, v_init_max] \[mV\]; default `e_l`.
    pub v_init_min: Option<f64>,
    /// See `v_init_min` \[mV\].
    pub v_init_max: Option<f64>,
    /// Rate of the independent external Poisson spike train of each neuron \[Hz\].
    #[serde(default)]
    pub poisson_rate: f64,
    /// Jump of V per external Poisson spike \[mV\].
    #[serde(default)]
    pub poisson_weight: f64,
    /// Number of neurons, from the first of the population, whose spikes are written;
    /// absent: all.
    pub record_spikes: Option<u64>,
    /// Linear model: constant term `a` [mV/ms].
    #[serde(default)]
    pub a: f64,
    /// Linear model: decay rate `c` [1/ms].
    #[serde(default)]
    pub c: f64,
    /// Exponential IF: slope factor \[mV\].
    #[serde(default = "d_delta_t")]
    pub delta_t: f64,
    /// Exponential IF: soft threshold \[mV\].
    #[serde(default = "d_v_t")]
    pub v_t: f64,
    /// FitzHugh-Nagumo `a` \[1\].
    #[serde(default = "d_fhn_a")]
    pub fhn_a: f64,
    /// FitzHugh-Nagumo `b` \[1\].
    #[serde(default = "d_fhn_b")]
    pub fhn_b: f64,
    /// FitzHugh-Nagumo recovery rate `eps` [1/ms].
    #[serde(default = "d_fhn_eps")]
    pub fhn_eps: f64,
    /// FitzHugh-Nagumo initial recovery variable `w` \[1\].
    #[serde(default)]
    pub w_init: f64,
    #[serde(default)]
    pub noise: NoiseKind,
    /// Affine noise: slope of `g(V)` [ms^(-1/2)].
    #[serde(default)]
    pub sigma_v: f64,
    /// Square-root noise: the potential `g` vanishes at \[mV\].
    #[serde(default)]
    pub e_noise: f64,
    /// Diffusion coefficient `D` [mV^2/ms]: sets `sigma = sqrt(2 D)` (the `sqrt(2 sigma) dB`
    /// convention); give `sigma` or `diffusion`, not both.
    pub diffusion: Option<f64>,
    #[serde(default)]
    pub synapse: SynapseKind,
    /// Decay time of excitatory (positive-weight) synaptic currents or conductances \[ms\].
    #[serde(default = "d_tau_syn_e")]
    pub tau_syn_e: f64,
    /// Decay time of inhibitory (negative input: weight times efficacy) synaptic currents or
    /// conductances \[ms\].
    #[serde(default = "d_tau_syn_i")]
    pub tau_syn_i: f64,
    /// Excitatory reversal potential \[mV\].
    #[serde(default = "d_e_rev_e")]
    pub e_rev_e: f64,
    /// Inhibitory reversal potential \[mV\].
    #[serde(default = "d_e_rev_i")]
    pub e_rev_i: f64,
    #[serde(default)]
    pub spike: SpikeRule,
    /// The intensity of `spike = "escape"`.
    pub escape: Option<RawEscape>,
    /// Dynamic labels (efficacy classes) of D'Onofrio's multi-agent framework.
    pub labels: Option<crate::model::labels::RawLabels>,
    /// Where the coordinates `xi` live: `"ring"` ([0, 1)) or `"torus"` ([0, 1)^2).
    #[serde(default)]
    pub coordinates: crate::space::Geometry,
    /// `"even"` (a regular grid; a square size on the torus) or `"random"` (uniform).
    #[serde(default)]
    pub placement: crate::space::Placement,
    /// Heterogeneous parameters: per parameter name, a law (`dist`) or a function of the
    /// coordinate (`of`) that gives each neuron its own value (docs/models.md).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vary: IndexMap<String, RawVary>,
}

/// One varied parameter: `dist = "normal" | "lognormal" | "gamma"` with `mean`, `sd`, or
/// `"uniform"` with `min`, `max`, optionally truncated to `[low, high]`; or `of = "x" | "y"`
/// with `kind = "cosine"` (`a + b cos(2 pi x)`), `"linear"` (`a + b x`) or `"blocks"`
/// (`values`, one per equal bin). Units: the parameter's.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Every target draws exactly `indegree` sources.
    FixedIndegree,
    /// Every (source, target) pair is connected with probability `p`.
    Bernoulli,
    /// The edges listed in an HDF5 file (`file`) in the SONATA edges layout.
    File,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProjection {
    /// Source population name.
    pub source: String,
    /// Target population name.
    pub target: String,
    pub rule: Rule,
    /// Number of incoming synapses per target (`fixed_indegree`).
    pub indegree: Option<u64>,
    /// Connection probability (`bernoulli`).
    pub p: Option<f64>,
    /// Jump of the target's V per spike \[mV\]; negative for inhibition. Its sign is the sign of
    /// every synapse of the projection (Dale's law); with `weight_dist`, its magnitude is the
    /// mean magnitude. Required, except with `rule = "file"` where the file has `syn_weight`
    /// (then it must be absent).
    pub weight: Option<f64>,
    /// Distribution of each synapse's weight magnitude: `"constant"`, `"normal"` (clipped at
    /// 0), `"lognormal"` or `"uniform"`, with mean `|weight|` and standard deviation
    /// `weight_sd`; drawn from the target's connection stream after its sources, in synapse
    /// order. Default `"constant"`.
    #[serde(default)]
    pub weight_dist: super::projection::WeightDist,
    /// Standard deviation of the weight magnitude \[mV\]; default 0. `uniform` needs
    /// `sqrt(3) weight_sd <= |weight|`.
    #[serde(default)]
    pub weight_sd: f64,
    /// Weight scaling: `"none"`, `"inverse_k"` (weight / K), `"inverse_sqrt_k"`
    /// (weight / sqrt(K)) or `"power"` (weight N^(scaling_alpha - 1)), applied to `weight` and
    /// `weight_sd` alike. K is the in-degree: `indegree` (fixed_indegree), or the expected
    /// in-degree `p N` (bernoulli), times the kernel's mean over uniform coordinates where a
    /// kernel modulates the probability (K = 0, no synapses, leaves the weight as it is); N is
    /// the source population's size. Default `"none"`.
    #[serde(default)]
    pub scaling: super::projection::Scaling,
    /// Exponent alpha of `scaling = "power"` (required by it).
    pub scaling_alpha: Option<f64>,
    /// Transmission delay \[ms\]; a multiple of `dt`, at least `dt`; with `delay_max`, the
    /// smallest delay. Required, except with `rule = "file"` where the file has delays (then
    /// it must be absent).
    pub delay: Option<f64>,
    /// Largest delay \[ms\], a multiple of `dt`, at least `delay`: each synapse's delay is then
    /// uniform over the whole steps from `delay` to `delay_max` inclusive, drawn after its
    /// weight. Absent: every synapse has `delay`.
    pub delay_max: Option<f64>,
    /// Kernel `w(xi_target, xi_source)` of the populations' coordinates, e.g.
    /// `{ kind = "cosine", a = 1.0, b = 0.5 }` (see `crate::space::Kernel`); both populations
    /// must have the same `coordinates`. Absent: none.
    pub kernel: Option<crate::space::Kernel>,
    /// What the kernel modulates: `"probability"` (bernoulli: p w; fixed_indegree: sources
    /// drawn with probability proportional to w), `"weight"` (each weight times w) or
    /// `"both"`. Default `"probability"` when a kernel is given.
    pub kernel_use: Option<super::projection::KernelUse>,
    /// HDF5 file of the edges (`rule = "file"`), relative to the configuration file's
    /// directory; SONATA layout: `/edges/<edges>/source_node_id` and `target_node_id` (offsets
    /// within the source and target populations; their `node_population` attributes, where
    /// present, must name the projection's source and target), optional
    /// `/edges/<edges>/0/syn_weight` \[mV\] and `/edges/<edges>/0/delay` \[ms\].
    pub file: Option<String>,
    /// The edge population in `file` (`rule = "file"`); default: the projection's name.
    pub edges: Option<String>,
    /// bmtk's edge types table for `file` (`rule = "file"`), relative to the configuration
    /// file's directory: whitespace-separated with a header naming `edge_type_id` and
    /// optionally `syn_weight` \[mV\] and `delay` \[ms\], which apply to the edges of each
    /// type (`/edges/<edges>/edge_type_id`) that do not carry their own.
    pub edge_types: Option<String>,
    /// Allow a neuron to connect to itself (when source and target are the same population).
    #[serde(default = "d_true")]
    pub autapses: bool,
    /// Allow several synapses between the same pair (`fixed_indegree`).
    #[serde(default = "d_true")]
    pub multapses: bool,
}

fn d_dt() -> f64 {
    0.1
}
fn d_t_stop() -> f64 {
    1000.0
}
fn d_seed() -> u64 {
    1
}
fn d_exchange() -> Exchange {
    Exchange::Auto
}
fn d_collective() -> Collective {
    Collective::AllGather
}
fn d_path() -> String {
    "lapicque.h5".into()
}
fn d_true() -> bool {
    true
}
fn d_spike_buffer() -> f64 {
    1.0
}

fn d_progress() -> f64 {
    10.0
}
fn d_every() -> f64 {
    1.0
}
fn d_hist_every() -> f64 {
    10.0
}
fn d_bins() -> u64 {
    80
}
fn d_one() -> u64 {
    1
}
fn d_label_bins() -> u64 {
    20
}
fn d_model() -> ModelKind {
    ModelKind::Lif
}
fn d_tau_m() -> f64 {
    20.0
}
fn d_v_th() -> f64 {
    20.0
}
fn d_v_reset() -> f64 {
    10.0
}
fn d_t_ref() -> f64 {
    2.0
}
fn d_integrator() -> Integrator {
    Integrator::Exact
}
fn d_delta_t() -> f64 {
    2.0
}
fn d_v_t() -> f64 {
    15.0
}
fn d_fhn_a() -> f64 {
    0.7
}
fn d_fhn_b() -> f64 {
    0.8
}
fn d_fhn_eps() -> f64 {
    0.08
}
fn d_tau_syn_e() -> f64 {
    2.0
}
fn d_tau_syn_i() -> f64 {
    5.0
}
fn d_e_rev_e() -> f64 {
    60.0
}
fn d_e_rev_i() -> f64 {
    -10.0
}

impl Default for RawSimulation {
    fn default() -> Self {
        RawSimulation {
            dt: d_dt(),
            t_stop: d_t_stop(),
            seed: d_seed(),
            exchange: d_exchange(),
            collective: d_collective(),
        }
    }
}

impl Default for RawOutput {
    fn default() -> Self {
        RawOutput {
            path: d_path(),
            spikes: true,
            final_state: true,
            progress_interval: d_progress(),
            spike_buffer: d_spike_buffer(),
        }
    }
}

impl Default for RawSchedule {
    fn default() -> Self {
        RawSchedule {
            start: 0.0,
            stop: None,
            every: d_every(),
        }
    }
}

impl Default for RawSnapshots {
    fn default() -> Self {
        RawSnapshots {
            start: 0.0,
            stop: None,
            every: 0.0,
        }
    }
}

impl Default for RawHistogram {
    fn default() -> Self {
        RawHistogram {
            start: 0.0,
            stop: None,
            every: d_hist_every(),
            v_min: None,
            v_max: None,
            bins: d_bins(),
            xi_bins: 1,
            label_bins: d_label_bins(),
        }
    }
}

impl Default for RawObservables {
    fn default() -> Self {
        RawObservables {
            rates: RawRates::default(),
            moments: RawSchedule::default(),
            histogram: RawHistogram::default(),
            balance: RawSchedule::default(),
            statistics: RawStatistics::default(),
            snapshots: RawSnapshots::default(),
            record: RawRecord::default(),
            tree: IndexMap::new(),
            pair_histogram: super::trees::RawPairHistogram::default(),
        }
    }
}
