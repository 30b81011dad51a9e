//! The general particle (docs/models.md): any intrinsic drift, additive or multiplicative noise,
//! delta, current or conductance synapses, aggregate (mean-field) input, and a threshold,
//! escape or no spike rule. Populations that need none of this run the fast LIF step of
//! [`super::lif`]; the two agree on what they share (see the tests).
//!
//! Between spikes, with `I_syn` from the synaptic variables and `a_agg`, `c_agg` the aggregate
//! input of this step (see [`crate::aggregate`]),
//!
//! ```text
//! dV = [f(V, w) + I_syn + a_agg - c_agg V] dt + g(V) dB
//! ```
//!
//! **Scheme** (`integrator = "exact"`, the default): the drift is split into its part linear in
//! `V`, `A - C V` with `C = c_0 + c_agg (+ g_e + g_i)`, and the rest `N(V, w)`, which is frozen
//! at the start of the step (exponential Euler):
//!
//! ```text
//! V' = V e^{-C dt} + (A + N(V)) (1 - e^{-C dt}) / C + g(V) sqrt((1 - e^{-2 C dt}) / (2 C)) Z
//! ```
//!
//! exact in law for linear drift with additive noise (the LIF, perfect and linear models), and
//! of weak order 1 otherwise; the coupling puts no limit on the step size. Electrical coupling
//! pulls `V_i` towards the sources' mean `m(t)`, which itself moves during the step. `m` is
//! predicted by the exact solution of the sources' own linear-in-V mean dynamics with their
//! nonlinear part frozen, `m(t) = m_0 + D phi(R, t)` (`D` the sources' mean drift at the start
//! of the step, every input but the electrical one, `R` their mean linear rate `c_0 + c_agg`,
//! see [`crate::aggregate`]); it enters as the forcing
//! `+ slope psi(C, R, dt)`, `psi = int_0^dt e^{-C (dt - s)} phi(R, s) ds`, so that under
//! strong coupling the population mean follows its own dynamics, chemical drive included
//! (a forcing growing only linearly over the step lagged or overshot a mean moved by stiff
//! chemical input: at `J n dt >> 1` its error did not vanish with dt). `integrator = "euler"` is Euler-Maruyama. Synaptic
//! variables decay exactly (`e^{-dt/tau}`) and take the spikes arriving in the step at its end;
//! the FitzHugh-Nagumo recovery variable takes an exact step of its linear equation with `V`
//! frozen. Delta inputs (synaptic, external Poisson, aggregate jumps) are added after the
//! diffusion step, then the spike rule is applied, as in the LIF step.

use super::labels::Labels;
use super::lif::{Lif, DIVERGED};
use super::poisson::PoissonSampler;
use crate::config::{
    finite, non_negative, positive, ConfigError, Integrator, ModelKind, NoiseKind, RawEscape,
    RawPopulation, SpikeRule, SynapseKind,
};
use crate::rng::Stream;
use rand::{Rng, RngExt};
use rand_distr::Distribution;

/// Validated parameters of a population: the LIF parameters every model shares (threshold,
/// reset, refractoriness, drive, noise amplitude, external Poisson input, initial potential)
/// and what the general particle adds.
#[derive(Clone, Debug)]
pub struct Neuron {
    pub base: Lif,
    pub kind: ModelKind,
    /// Linear model: `a` [mV/ms], `c` [1/ms].
    pub lin: (f64, f64),
    /// Exponential IF: `delta_t`, `v_t` \[mV\].
    pub exp: (f64, f64),
    /// FitzHugh-Nagumo `a`, `b`, `eps` [1/ms].
    pub fhn: (f64, f64, f64),
    pub w_init: f64,
    pub noise: NoiseKind,
    pub sigma_v: f64,
    pub e_noise: f64,
    pub synapse: SynapseKind,
    pub tau_syn: (f64, f64),
    pub e_rev: (f64, f64),
    pub spike: SpikeRule,
    pub escape: Option<RawEscape>,
    pub labels: Option<Labels>,
    /// Heterogeneous parameters (empty: every neuron has the scalars of `base`).
    pub vary: super::vary::Vary,
}

/// The escape intensity `nu(V)` \[Hz\].
pub fn intensity(e: &RawEscape, v: f64) -> f64 {
    match *e {
        RawEscape::Exponential { rate, theta, delta } => rate * ((v - theta) / delta).exp(),
        RawEscape::Sigmoid { rate, theta, beta } => rate / (1.0 + (-beta * (v - theta)).exp()),
        RawEscape::Linear { slope, theta } => slope * (v - theta).max(0.0),
        RawEscape::Power {
            rate,
            theta,
            delta,
            exponent,
        } => rate * ((v - theta).max(0.0) / delta).powf(exponent),
        RawEscape::Constant { rate } => rate,
    }
}

fn validate_escape(e: &RawEscape, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let k = |n: &str| key(&format!("escape.{n}"));
    match *e {
        RawEscape::Exponential { rate, theta, delta } => {
            non_negative(&k("rate"), rate, "[Hz]")?;
            finite(&k("theta"), theta, "[mV]")?;
            positive(&k("delta"), delta, "[mV]")?;
        }
        RawEscape::Sigmoid { rate, theta, beta } => {
            non_negative(&k("rate"), rate, "[Hz]")?;
            finite(&k("theta"), theta, "[mV]")?;
            finite(&k("beta"), beta, "[1/mV]")?;
        }
        RawEscape::Linear { slope, theta } => {
            non_negative(&k("slope"), slope, "[Hz/mV]")?;
            finite(&k("theta"), theta, "[mV]")?;
        }
        RawEscape::Power {
            rate,
            theta,
            delta,
            exponent,
        } => {
            non_negative(&k("rate"), rate, "[Hz]")?;
            finite(&k("theta"), theta, "[mV]")?;
            positive(&k("delta"), delta, "[mV]")?;
            positive(&k("exponent"), exponent, "[1]")?;
        }
        RawEscape::Constant { rate } => {
            non_negative(&k("rate"), rate, "[Hz]")?;
        }
    }
    Ok(())
}

impl Neuron {
    pub fn from_raw(
        p: &RawPopulation,
        dt: f64,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Neuron, ConfigError> {
        let invalid = |name: &str, v: String, why: &str| ConfigError::Invalid {
            key: key(name),
            value: v,
            reason: why.to_string(),
        };
        let mut p = p.clone();
        if let Some(d) = p.diffusion {
            non_negative(&key("diffusion"), d, "[mV^2/ms]")?;
            if p.sigma != 0.0 {
                return Err(invalid(
                    "diffusion",
                    d.to_string(),
                    "give sigma or diffusion, not both",
                ));
            }
            p.sigma = (2.0 * d).sqrt();
        }
        if p.spike == SpikeRule::None {
            // No reset: v_reset is never used and may lie anywhere (the LIF check that it lies
            // below v_th does not apply).
            p.v_reset = p.v_th - 1.0;
        }
        let vary = super::vary::Vary::from_raw(
            &p.vary,
            p.coordinates == crate::space::Geometry::Torus,
            key,
        )?;
        if let Some(first) = vary.entries.first() {
            let why = match (p.model, p.noise, p.synapse, p.spike, &p.labels) {
                (
                    ModelKind::Lif,
                    NoiseKind::Additive,
                    SynapseKind::Delta,
                    SpikeRule::Threshold,
                    None,
                ) => None,
                (
                    ModelKind::Lif,
                    NoiseKind::Additive,
                    SynapseKind::Delta,
                    SpikeRule::Threshold,
                    Some(_),
                ) => Some("labels"),
                (ModelKind::Lif, NoiseKind::Additive, SynapseKind::Delta, _, _) => Some("spike"),
                (ModelKind::Lif, NoiseKind::Additive, _, _, _) => Some("synapse"),
                (ModelKind::Lif, _, _, _, _) => Some("noise"),
                _ => Some("model"),
            };
            if let Some(what) = why {
                return Err(invalid(
                    &format!("vary.{}", first.name()),
                    "(table)".into(),
                    &format!(
                        "heterogeneous parameters need the plain LIF neuron (model = \"lif\", additive noise, delta synapses, threshold spikes, no labels); this population sets {what}"
                    ),
                ));
            }
            // The scalars validated (and shown) are the laws' means and the profiles'
            // averages; each neuron's own values are checked when they are drawn.
            for e in &vary.entries {
                let c = e.centre();
                match e.param {
                    super::vary::TAU_M => p.tau_m = c,
                    super::vary::E_L => p.e_l = c,
                    super::vary::V_TH => p.v_th = c,
                    super::vary::V_RESET => p.v_reset = c,
                    super::vary::I_E => p.i_e = c,
                    super::vary::SIGMA => p.sigma = c,
                    super::vary::T_REF => p.t_ref = f64::from(super::vary::ref_steps(c, dt)) * dt,
                    super::vary::POISSON_RATE => p.poisson_rate = c,
                    _ => p.poisson_weight = c,
                }
            }
            if p.v_reset >= p.v_th {
                let varied = if vary.get(super::vary::V_TH).is_some() {
                    "v_th"
                } else {
                    "v_reset"
                };
                return Err(invalid(
                    &format!("vary.{varied}"),
                    "(table)".into(),
                    &format!(
                        "the mean reset {} does not lie below the mean threshold {} [mV]",
                        p.v_reset, p.v_th
                    ),
                ));
            }
        }
        let base = Lif::from_raw(&p, dt, key)?;
        let lin = (
            finite(&key("a"), p.a, "[mV/ms]")?,
            finite(&key("c"), p.c, "[1/ms]")?,
        );
        let exp = (
            positive(&key("delta_t"), p.delta_t, "[mV]")?,
            finite(&key("v_t"), p.v_t, "[mV]")?,
        );
        let fhn = (
            finite(&key("fhn_a"), p.fhn_a, "[1]")?,
            finite(&key("fhn_b"), p.fhn_b, "[1]")?,
            non_negative(&key("fhn_eps"), p.fhn_eps, "[1/ms]")?,
        );
        let w_init = finite(&key("w_init"), p.w_init, "[1]")?;
        let sigma_v = finite(&key("sigma_v"), p.sigma_v, "[ms^-1/2]")?;
        let e_noise = finite(&key("e_noise"), p.e_noise, "[mV]")?;
        let tau_syn = (
            positive(&key("tau_syn_e"), p.tau_syn_e, "[ms]")?,
            positive(&key("tau_syn_i"), p.tau_syn_i, "[ms]")?,
        );
        let e_rev = (
            finite(&key("e_rev_e"), p.e_rev_e, "[mV]")?,
            finite(&key("e_rev_i"), p.e_rev_i, "[mV]")?,
        );
        match (p.spike, &p.escape) {
            (SpikeRule::Escape, None) => {
                return Err(invalid(
                    "escape",
                    "(missing)".into(),
                    "spike = \"escape\" needs an [escape] table with its intensity",
                ))
            }
            (SpikeRule::Escape, Some(e)) => validate_escape(e, key)?,
            (_, Some(_)) => {
                return Err(invalid(
                    "escape",
                    "(table)".into(),
                    "only used with spike = \"escape\"",
                ))
            }
            _ => {}
        }
        let labels = p
            .labels
            .as_ref()
            .map(|l| Labels::from_raw(l, &|n: &str| key(&format!("labels.{n}"))))
            .transpose()?;
        Ok(Neuron {
            base,
            kind: p.model,
            lin,
            exp,
            fhn,
            w_init,
            noise: p.noise,
            sigma_v,
            e_noise,
            synapse: p.synapse,
            tau_syn,
            e_rev,
            spike: p.spike,
            escape: p.escape.clone(),
            labels,
            vary,
        })
    }

    /// Whether the fast LIF step integrates this population (given whether aggregate input
    /// reaches it).
    pub fn is_plain_lif(&self, aggregate_input: bool) -> bool {
        self.kind == ModelKind::Lif
            && self.noise == NoiseKind::Additive
            && self.synapse == SynapseKind::Delta
            && self.spike == SpikeRule::Threshold
            && self.labels.is_none()
            && !aggregate_input
    }

    /// The initial potential of neuron `gid`, from its own stream.
    pub fn initial_v(&self, seed: u64, gid: u64) -> f64 {
        self.base.initial_v(seed, gid)
    }

    /// The part of the drift linear in V, `a_0 - c_0 V` (with `i_e`): `(a_0, c_0)`.
    fn linear_drift(&self) -> (f64, f64) {
        let b = &self.base;
        match self.kind {
            ModelKind::Lif | ModelKind::ExpIf => (b.e_l / b.tau_m + b.i_e, 1.0 / b.tau_m),
            ModelKind::Perfect => (b.i_e, 0.0),
            ModelKind::Linear => (self.lin.0 + b.i_e, self.lin.1),
            // V - V^3/3: the +V is linear (c_0 = -1), the cubic is frozen.
            ModelKind::Fhn => (b.i_e, -1.0),
        }
    }

    /// The rate [1/ms] of the part of the intrinsic drift linear in V (`c_0`; negative for
    /// FitzHugh-Nagumo, whose `+V` grows).
    pub fn linear_rate(&self) -> f64 {
        self.linear_drift().1
    }

    /// The intrinsic drift `f(V, w)` [mV/ms] (with `i_e`, without synaptic or aggregate input).
    pub fn intrinsic_drift(&self, v: f64, w: f64) -> f64 {
        let (a0, c0) = self.linear_drift();
        a0 - c0 * v + self.nonlinear(v, w)
    }

    /// The part of the drift frozen over a step: `f(V, w) - (a_0 - c_0 V)`.
    fn nonlinear(&self, v: f64, w: f64) -> f64 {
        match self.kind {
            ModelKind::ExpIf => {
                let (delta_t, v_t) = self.exp;
                delta_t / self.base.tau_m * ((v - v_t) / delta_t).exp()
            }
            ModelKind::Fhn => -v * v * v / 3.0 - w,
            _ => 0.0,
        }
    }

    pub fn stepper(&self, dt: f64) -> GeneralStep {
        let (a0, c0) = self.linear_drift();
        let lambda = self.base.poisson_rate * dt / 1000.0;
        GeneralStep {
            n: self.clone(),
            dt,
            a0,
            c0,
            decay: ((-dt / self.tau_syn.0).exp(), (-dt / self.tau_syn.1).exp()),
            poisson: (lambda > 0.0).then(|| PoissonSampler::new(lambda)),
        }
    }
}

/// `(1 - e^{-c dt}) / c`, continuous at `c = 0`.
fn phi(c: f64, dt: f64) -> f64 {
    if (c * dt).abs() < 1e-12 {
        dt
    } else {
        -(-c * dt).exp_m1() / c
    }
}

/// `int_0^dt s e^{-c (dt - s)} ds = (dt - phi(c, dt)) / c`: the response to a forcing that
/// grows linearly over the step, continuous at `c = 0`.
fn phi2(c: f64, dt: f64) -> f64 {
    if (c * dt).abs() < 1e-4 {
        // Taylor: dt^2/2 - c dt^3/6 + c^2 dt^4/24.
        dt * dt * (0.5 - c * dt / 6.0 + c * c * dt * dt / 24.0)
    } else {
        (dt - phi(c, dt)) / c
    }
}

/// `int_0^dt e^{-c (dt - s)} phi(r, s) ds`: the response at rate `c` to a forcing that moves
/// like a mean relaxing at rate `r` (`phi2` at `r = 0`).
pub fn psi(c: f64, r: f64, dt: f64) -> f64 {
    if (r * dt).abs() < 1e-6 {
        return phi2(c, dt);
    }
    // int_0^dt e^{-c (dt - s)} e^{-r s} ds, without overflow for either sign of c - r.
    let e = if ((c - r) * dt).abs() < 1e-8 {
        dt * (-0.5 * (c + r) * dt).exp()
    } else {
        ((-r * dt).exp() - (-c * dt).exp()) / (c - r)
    };
    (phi(c, dt) - e) / r
}

/// One Poisson count of mean `mean` (any size) from `rng`.
pub fn poisson_count(mean: f64, rng: &mut Stream) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean < 30.0 {
        // Inversion: one uniform, a walk along the CDF.
        let u: f64 = rng.random();
        let (mut k, mut p) = (0u32, (-mean).exp());
        let mut cdf = p;
        while u > cdf && k < 1000 {
            k += 1;
            p *= mean / f64::from(k);
            cdf += p;
        }
        k
    } else {
        let d = rand_distr::Poisson::new(mean).expect("finite positive mean");
        d.sample(rng).min(f64::from(u32::MAX)) as u32
    }
}

/// The per-step update of a general population.
#[derive(Clone, Debug)]
pub struct GeneralStep {
    n: Neuron,
    dt: f64,
    a0: f64,
    c0: f64,
    /// `e^{-dt/tau_syn}`, excitatory and inhibitory.
    decay: (f64, f64),
    poisson: Option<PoissonSampler>,
}

/// The local neurons of one population: slices of the rank's arrays (the optional parts empty
/// where the model does not use them).
pub struct GeneralState<'a> {
    pub v: &'a mut [f64],
    pub refractory: &'a mut [u32],
    pub rng: &'a mut [Stream],
    /// Input arriving in this step through positive weights (all input for delta synapses).
    pub input: &'a mut [f64],
    /// Input arriving through negative weights (current and conductance synapses).
    pub input_i: &'a mut [f64],
    /// FitzHugh-Nagumo recovery variable.
    pub w: &'a mut [f64],
    /// Synaptic currents [mV/ms] or conductances [1/ms], excitatory and inhibitory.
    pub syn_e: &'a mut [f64],
    pub syn_i: &'a mut [f64],
    /// Labels, `label_stride` per neuron (the first `k` used), and their environments,
    /// `label_stride^2` per neuron.
    pub lambda: &'a mut [f64],
    pub beta: &'a mut [f64],
    pub label_stride: usize,
    /// Aggregate input of this step: drift `a - c V` [mV/ms, 1/ms] and jump \[mV\].
    pub agg_a: &'a [f64],
    pub agg_c: &'a [f64],
    pub agg_jump: &'a [f64],
    /// Growth rate of the aggregate drift at the start of the step [mV/ms^2] (electrical
    /// coupling: the predicted motion of the mean it pulls towards).
    pub agg_slope: &'a [f64],
    /// The rate [1/ms] at which that growth decays over the step (the sources' mean linear
    /// rate: their mean relaxes as `phi(rate, t)`).
    pub agg_slope_rate: &'a [f64],
    /// The argument of aggregate-dependent label rates (the population's mean efficacy).
    pub label_aggregate: f64,
}

impl GeneralStep {
    fn g(&self, v: f64) -> f64 {
        let s = self.n.base.sigma;
        match self.n.noise {
            NoiseKind::Additive => s,
            NoiseKind::Affine => (s + self.n.sigma_v * v).max(0.0),
            NoiseKind::Sqrt => s * (v - self.n.e_noise).abs().sqrt(),
        }
    }

    /// Advances the neurons of `st` one step, appending the gids that spiked (ascending; with
    /// [`DIVERGED`] set for a neuron whose state became NaN or infinite).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn advance(&self, st: GeneralState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        let n = &self.n;
        let b = &n.base;
        let dt = self.dt;
        let k = n.labels.as_ref().map_or(0, Labels::k);
        let has_syn = n.synapse != SynapseKind::Delta;
        for i in 0..st.v.len() {
            let rng = &mut st.rng[i];
            let arriving = std::mem::take(&mut st.input[i]);
            // Without inhibitory projections there is no second ring buffer.
            let arriving_i = st.input_i.get_mut(i).map_or(0.0, std::mem::take);
            // Synaptic variables at the start of the step, then their exact decay; the
            // spikes arriving in this step are added at its end.
            let (se, si) = if has_syn {
                let (se, si) = (st.syn_e[i], st.syn_i[i]);
                st.syn_e[i] = se * self.decay.0 + arriving / n.tau_syn.0;
                st.syn_i[i] = si * self.decay.1 + arriving_i / n.tau_syn.1;
                (se, si)
            } else {
                (0.0, 0.0)
            };
            let v0 = st.v[i];
            let mut spiked = false;
            let mut v1 = v0;
            if st.refractory[i] > 0 {
                st.refractory[i] -= 1;
            } else {
                let (mut a, mut c) = (self.a0 + st.agg_a[i], self.c0 + st.agg_c[i]);
                match n.synapse {
                    SynapseKind::Delta => {}
                    SynapseKind::Current => a += se + si,
                    SynapseKind::Conductance => {
                        // si holds the inhibitory input with its negative sign.
                        let gi = -si;
                        a += se * n.e_rev.0 + gi * n.e_rev.1;
                        c += se + gi;
                    }
                }
                a += n.nonlinear(v0, st.w.get(i).copied().unwrap_or(0.0));
                let g = self.g(v0);
                let (mut vc, s) = match b.integrator {
                    Integrator::Exact => (
                        v0 * (-c * dt).exp()
                            + a * phi(c, dt)
                            + st.agg_slope[i] * psi(c, st.agg_slope_rate[i], dt),
                        g * phi(2.0 * c, dt).sqrt(),
                    ),
                    Integrator::Euler => (v0 + (a - c * v0) * dt, g * dt.sqrt()),
                };
                if s > 0.0 {
                    // The normal variate of the fast LIF update (`model::lanes`): one 64-bit
                    // draw, by inversion.
                    vc += s * super::lanes::normal(rng.next_u64());
                }
                if n.kind == ModelKind::Fhn {
                    let (fa, fb, eps) = n.fhn;
                    let cw = eps * fb;
                    let w = st.w[i];
                    st.w[i] = w * (-cw * dt).exp() + eps * (v0 + fa) * phi(cw, dt);
                }
                let mut jump = st.agg_jump[i];
                if n.synapse == SynapseKind::Delta {
                    jump += arriving;
                }
                if let Some(p) = &self.poisson {
                    jump += f64::from(p.sample(rng)) * b.poisson_weight;
                }
                v1 = vc + jump;
                match n.spike {
                    SpikeRule::Threshold => {
                        spiked = !(v1 < b.v_th);
                        if !spiked && b.bridge && g > 0.0 {
                            let arg = -2.0 * (b.v_th - v0) * (b.v_th - vc) / (g * g * dt);
                            if arg > -40.0 {
                                let u: f64 = rng.random();
                                spiked = u < arg.exp();
                            }
                        }
                    }
                    SpikeRule::Escape => {
                        let nu = intensity(n.escape.as_ref().expect("validated"), v1);
                        let u: f64 = rng.random();
                        // 1 - exp(-nu dt) > u  <=>  -expm1(-nu dt) > u.
                        spiked = -(-nu * dt / 1000.0).exp_m1() > u || !v1.is_finite();
                    }
                    SpikeRule::None => spiked = v0 < b.v_th && !(v1 < b.v_th),
                }
                st.v[i] = v1;
            }
            if let Some(l) = &n.labels {
                let x = match l.dependence() {
                    super::labels::Dependence::Aggregate => st.label_aggregate,
                    _ => v1,
                };
                let (s1, s2) = (st.label_stride, st.label_stride * st.label_stride);
                l.step(
                    &mut st.lambda[i * s1..i * s1 + k],
                    &mut st.beta[i * s2..i * s2 + k * k],
                    x,
                    dt,
                    rng,
                );
            }
            let finite = v1.is_finite() && (n.kind != ModelKind::Fhn || st.w[i].is_finite());
            if spiked || !finite {
                let mark = if finite { 0 } else { DIVERGED };
                if n.spike != SpikeRule::None {
                    st.v[i] = b.v_reset;
                    st.refractory[i] = b.ref_steps;
                }
                spikes.push((first_gid + i as u32) | mark);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::lif::LifState;
    use crate::rng::{self, Purpose};

    fn neuron(extra: &str) -> Neuron {
        let text = format!("[population.A]\nsize = 1\n{extra}\n");
        Config::from_toml(&text, &[]).unwrap().populations[0]
            .model
            .clone()
    }

    fn run_general(m: &Neuron, steps: usize, dt: f64, v0: f64) -> (f64, Vec<usize>) {
        let step = m.stepper(dt);
        let (mut v, mut r, mut inp, mut inp_i) = ([v0], [0u32], [0.0], [0.0]);
        let (mut w, mut se, mut si) = ([m.w_init], [0.0], [0.0]);
        let mut rng = [rng::stream(1, 0, Purpose::Dynamics)];
        let mut times = Vec::new();
        for s in 0..steps {
            let mut out = Vec::new();
            step.advance(
                GeneralState {
                    v: &mut v,
                    refractory: &mut r,
                    rng: &mut rng,
                    input: &mut inp,
                    input_i: &mut inp_i,
                    w: &mut w,
                    syn_e: &mut se,
                    syn_i: &mut si,
                    lambda: &mut [],
                    beta: &mut [],
                    label_stride: 0,
                    agg_a: &[0.0],
                    agg_c: &[0.0],
                    agg_jump: &[0.0],
                    agg_slope: &[0.0],
                    agg_slope_rate: &[0.0],
                    label_aggregate: 0.0,
                },
                0,
                &mut out,
            );
            if !out.is_empty() {
                times.push(s);
            }
        }
        (v[0], times)
    }

    /// The general step of a plain LIF neuron follows the same trajectory as the fast step (same
    /// draws from the same stream), to round-off: both are the exact OU transition. Without a
    /// refractory period: the fast step also draws during it (a fixed number of draws per
    /// step), the general step only outside it.
    #[test]
    fn general_step_of_a_lif_neuron_matches_the_fast_step() {
        let m = neuron("i_e = 1.2\nsigma = 2.0\nbridge = false\nt_ref = 0.0");
        let fast = m.base.stepper(0.1);
        let (mut v, mut r, mut inp) = ([0.0], [0u32], [0.0]);
        let mut rng = [rng::stream(1, 0, Purpose::Dynamics)];
        let mut fast_spikes = Vec::new();
        for s in 0..5000 {
            let mut out = Vec::new();
            fast.advance(
                LifState {
                    v: &mut v,
                    refractory: &mut r,
                    rng: &mut rng,
                    input: &mut inp,
                },
                0,
                &mut out,
            );
            if !out.is_empty() {
                fast_spikes.push(s);
            }
        }
        let (vg, general_spikes) = run_general(&m, 5000, 0.1, 0.0);
        assert_eq!(fast_spikes, general_spikes);
        assert!((vg - v[0]).abs() < 1e-9, "{vg} vs {}", v[0]);
    }

    /// A perfect integrator without noise crosses v_th - v_reset = 10 mV at drift 0.5 mV/ms
    /// every 20 ms (+ t_ref = 2 ms).
    #[test]
    fn perfect_integrator_fires_at_the_deterministic_period() {
        let m = neuron("model = \"perfect\"\ni_e = 0.5\nv_reset = 10.0");
        let (_, times) = run_general(&m, 10_000, 0.1, 10.0);
        let period = (times[times.len() - 1] - times[0]) as f64 * 0.1 / (times.len() - 1) as f64;
        assert!((period - 22.0).abs() < 0.1 + 1e-9, "{period}");
    }

    /// Linear drift a - c V relaxes to a/c; with a large c (stiff: c dt = 100) the exact step
    /// is still stable and lands on a/c.
    #[test]
    fn stiff_linear_drift_is_stable() {
        let m = neuron("model = \"linear\"\na = 5000.0\nc = 1000.0\nv_th = 100.0");
        let (v, _) = run_general(&m, 10, 0.1, 0.0);
        assert!((v - 5.0).abs() < 1e-9, "{v}");
    }

    /// FitzHugh-Nagumo without noise with i_e = 0.5 is on a stable limit cycle. Its period,
    /// from an independent RK4 integration (dt = 0.001) of dv = v - v^3/3 - w + 0.5,
    /// dw = 0.08 (v + 0.7 - 0.8 w), matches the period of the recorded upward crossings of
    /// v = 1 (no reset) to within 1%.
    #[test]
    fn fitzhugh_nagumo_period_matches_an_rk4_solution() {
        let f = |v: f64, w: f64| (v - v * v * v / 3.0 - w + 0.5, 0.08 * (v + 0.7 - 0.8 * w));
        let (mut v, mut w, h) = (-1.0f64, 0.0f64, 0.001);
        let mut crossings = Vec::new();
        for n in 0..400_000 {
            let (k1v, k1w) = f(v, w);
            let (k2v, k2w) = f(v + 0.5 * h * k1v, w + 0.5 * h * k1w);
            let (k3v, k3w) = f(v + 0.5 * h * k2v, w + 0.5 * h * k2w);
            let (k4v, k4w) = f(v + h * k3v, w + h * k3w);
            let v1 = v + h / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v);
            w += h / 6.0 * (k1w + 2.0 * k2w + 2.0 * k3w + k4w);
            if v < 1.0 && v1 >= 1.0 {
                crossings.push(n as f64 * h);
            }
            v = v1;
        }
        let rk4 = (crossings[crossings.len() - 1] - crossings[2]) / (crossings.len() - 3) as f64;
        for integrator in ["exact", "euler"] {
            let m = neuron(&format!("model = \"fhn\"\ni_e = 0.5\nspike = \"none\"\nv_th = 1.0\nv_init_min = -1.0\nv_init_max = -1.0\nintegrator = \"{integrator}\""));
            let (_, times) = run_general(&m, 40_000, 0.01, -1.0);
            assert!(times.len() > 5, "{times:?}");
            let period =
                (times[times.len() - 1] - times[2]) as f64 * 0.01 / (times.len() - 3) as f64;
            assert!(
                (period - rk4).abs() < 0.01 * rk4,
                "{integrator}: {period} vs RK4 {rk4}"
            );
        }
    }

    /// A constant escape intensity nu gives spikes at rate nu (plus refractoriness: the mean
    /// interval is t_ref + 1/nu up to one step).
    #[test]
    fn constant_escape_rate() {
        let m = neuron(
            "model = \"perfect\"\nspike = \"escape\"\nt_ref = 0.0\nescape = { kind = \"constant\", rate = 50.0 }",
        );
        let (_, times) = run_general(&m, 200_000, 0.1, 0.0);
        // 20 s at 50 Hz: 1000 spikes expected; per-step probability 1 - e^{-0.005}.
        let expect = 200_000.0 * (1.0 - (-0.005f64).exp());
        let sd = expect.sqrt();
        assert!(
            (times.len() as f64 - expect).abs() < 4.0 * sd,
            "{} vs {expect}",
            times.len()
        );
    }
}
