//! Leaky integrate-and-fire neurons with additive white noise, threshold, reset and refractory
//! period, driven by a constant current, delta synapses and an external Poisson spike train:
//!
//! ```text
//! dV = [-(V - e_l)/tau_m + i_e] dt + sigma dB + sum_k w_k delta(t - t_k)
//! ```
//!
//! Between input spikes V is an Ornstein-Uhlenbeck process. The `exact` integrator samples its
//! transition law exactly (no time-discretisation error in the sub-threshold dynamics); `euler`
//! is Euler-Maruyama (weak order 1). A threshold crossing inside a step is detected at the end
//! of the step and, with `bridge = true`, also between two sub-threshold end points with the
//! Brownian-bridge probability `exp(-2 (v_th - V_n)(v_th - V_{n+1}) / (sigma^2 dt))`, which
//! removes the O(sqrt(dt)) rate bias of checking end points only.
//!
//! Order of operations within a step, for a neuron that is not refractory: diffusion step, then
//! the delta inputs arriving in this step (synaptic and external Poisson) are added, then the
//! threshold is checked. A spiking neuron is reset to `v_reset` and held there for `t_ref`,
//! during which arriving inputs are discarded (the convention of NEST's `iaf_psc_delta`). The
//! spike is stamped at the end of the step.

use super::poisson::PoissonSampler;
use crate::config::{ConfigError, Integrator, RawPopulation};
use crate::rng::{self, Purpose, Stream};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

/// Validated parameters of a LIF population (units as in the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct Lif {
    pub tau_m: f64,
    pub e_l: f64,
    pub v_th: f64,
    pub v_reset: f64,
    pub ref_steps: u32,
    pub i_e: f64,
    pub sigma: f64,
    pub bridge: bool,
    pub integrator: Integrator,
    pub v_init: (f64, f64),
    /// \[Hz\]
    pub poisson_rate: f64,
    /// \[mV\]
    pub poisson_weight: f64,
}

impl Lif {
    pub fn from_raw(
        p: &RawPopulation,
        dt: f64,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Lif, ConfigError> {
        use crate::config::{finite, non_negative, positive, steps};
        let k = |name: &str| key(name);
        let tau_m = positive(&k("tau_m"), p.tau_m, "[ms]")?;
        let e_l = finite(&k("e_l"), p.e_l, "[mV]")?;
        let v_th = finite(&k("v_th"), p.v_th, "[mV]")?;
        let v_reset = finite(&k("v_reset"), p.v_reset, "[mV]")?;
        let invalid = |name: &str, v: f64, why: &str| ConfigError::Invalid {
            key: key(name),
            value: v.to_string(),
            reason: why.to_string(),
        };
        if v_reset >= v_th {
            return Err(invalid("v_reset", v_reset, "must lie below v_th [mV]"));
        }
        let ref_steps = steps(&k("t_ref"), p.t_ref, dt)?;
        let i_e = finite(&k("i_e"), p.i_e, "[mV/ms]")?;
        let sigma = non_negative(&k("sigma"), p.sigma, "[mV/ms^(1/2)]")?;
        let lo = finite(&k("v_init_min"), p.v_init_min.unwrap_or(e_l), "[mV]")?;
        let hi = finite(&k("v_init_max"), p.v_init_max.unwrap_or(e_l), "[mV]")?;
        if hi < lo {
            return Err(invalid(
                "v_init_max",
                hi,
                "must not be below v_init_min [mV]",
            ));
        }
        let poisson_rate = non_negative(&k("poisson_rate"), p.poisson_rate, "[Hz]")?;
        if poisson_rate * dt / 1000.0 > 1e6 {
            return Err(invalid(
                "poisson_rate",
                poisson_rate,
                "more than 10^6 events per step [Hz]",
            ));
        }
        let poisson_weight = finite(&k("poisson_weight"), p.poisson_weight, "[mV]")?;
        Ok(Lif {
            tau_m,
            e_l,
            v_th,
            v_reset,
            ref_steps: u32::try_from(ref_steps).expect("steps() bounds values by u32::MAX"),
            i_e,
            sigma,
            bridge: p.bridge,
            integrator: p.integrator,
            v_init: (lo, hi),
            poisson_rate,
            poisson_weight,
        })
    }

    /// The initial potential of neuron `gid`, from its own stream.
    pub fn initial_v(&self, seed: u64, gid: u64) -> f64 {
        let (lo, hi) = self.v_init;
        if hi > lo {
            let u: f64 = rng::stream(seed, gid, Purpose::Init).random();
            lo + (hi - lo) * u
        } else {
            lo
        }
    }

    /// The per-step coefficients of one neuron with these parameters.
    fn coef(&self, dt: f64) -> Coef {
        let (a, b, s) = match self.integrator {
            Integrator::Exact => {
                let a = (-dt / self.tau_m).exp();
                let v_inf = self.e_l + self.i_e * self.tau_m;
                let s = self.sigma * (0.5 * self.tau_m * (1.0 - a * a)).sqrt();
                (a, v_inf * (1.0 - a), s)
            }
            Integrator::Euler => (
                1.0 - dt / self.tau_m,
                (self.e_l / self.tau_m + self.i_e) * dt,
                self.sigma * dt.sqrt(),
            ),
        };
        Coef {
            a,
            b,
            s,
            v_th: self.v_th,
            v_reset: self.v_reset,
            ref_steps: self.ref_steps,
            bridge_coef: if self.bridge && self.sigma > 0.0 {
                -2.0 / (self.sigma * self.sigma * dt)
            } else {
                0.0
            },
            poisson_weight: self.poisson_weight,
        }
    }

    /// The per-step update with its coefficients precomputed for `dt` \[ms\].
    pub fn stepper(&self, dt: f64) -> LifStep {
        let lambda = self.poisson_rate * dt / 1000.0;
        LifStep {
            c: self.coef(dt),
            poisson: (lambda > 0.0).then(|| PoissonSampler::new(lambda)),
        }
    }
}

/// The coefficients of one neuron's step: `V <- a V + b + s xi`, then jumps, threshold and
/// reset.
#[derive(Clone, Copy, Debug)]
struct Coef {
    a: f64,
    b: f64,
    s: f64,
    v_th: f64,
    v_reset: f64,
    ref_steps: u32,
    /// `-2 / (sigma^2 dt)`, or 0 without the bridge correction.
    bridge_coef: f64,
    poisson_weight: f64,
}

/// One step of a LIF population whose neurons share their parameters.
#[derive(Clone, Debug)]
pub struct LifStep {
    c: Coef,
    poisson: Option<PoissonSampler>,
}

/// The state of the local neurons of one population (slices of the rank's arrays).
pub struct LifState<'a> {
    pub v: &'a mut [f64],
    pub refractory: &'a mut [u32],
    pub rng: &'a mut [Stream],
    /// Delta input arriving in this step \[mV\]; read and cleared.
    pub input: &'a mut [f64],
}

/// One step of one neuron with coefficients `c`; `poisson` draws its external Poisson count
/// (`None` without external input). Appends `gid` to `spikes` if it spiked (with [`DIVERGED`]
/// set if its potential became NaN or infinite).
// The negated comparison is the point: it is true for NaN.
#[allow(clippy::neg_cmp_op_on_partial_ord, clippy::too_many_arguments)]
#[inline(always)]
fn advance_one(
    c: &Coef,
    poisson: impl FnOnce(&mut Stream) -> Option<u32>,
    v: &mut f64,
    r: &mut u32,
    rng: &mut Stream,
    inp: &mut f64,
    gid: u32,
    spikes: &mut Vec<u32>,
) {
    let arriving = std::mem::take(inp);
    if *r > 0 {
        *r -= 1;
        return;
    }
    let v0 = *v;
    let mut vc = c.a * v0 + c.b;
    if c.s > 0.0 {
        let xi: f64 = StandardNormal.sample(rng);
        vc += c.s * xi;
    }
    let mut spiked = vc >= c.v_th;
    if !spiked && c.bridge_coef != 0.0 {
        let arg = c.bridge_coef * (c.v_th - v0) * (c.v_th - vc);
        // Below e^-40 a crossing is never drawn in practice; skipping the draw keeps
        // the update cheap and still depends on this neuron's state alone.
        if arg > -40.0 {
            let u: f64 = rng.random();
            spiked = u < arg.exp();
        }
    }
    let mut jump = arriving;
    if let Some(k) = poisson(rng) {
        jump += f64::from(k) * c.poisson_weight;
    }
    let v1 = vc + jump;
    // `!(v1 < v_th)` also sends NaN, and the second test -inf, down the rare spike
    // path, where they are marked: no state is carried through the loop for it.
    if spiked || !(v1 < c.v_th) || v1 == f64::NEG_INFINITY {
        let mark = if v1.is_finite() { 0 } else { DIVERGED };
        *v = c.v_reset;
        *r = c.ref_steps;
        spikes.push(gid | mark);
    } else {
        *v = v1;
    }
}

impl LifStep {
    /// Advances every neuron of `state` by one step and appends the gids that spiked
    /// (`first_gid` is the gid of the first neuron of the slices) in ascending order. A neuron
    /// whose potential became NaN or infinite is appended with [`DIVERGED`] set in its gid.
    ///
    /// The same update as `advance_one`, written out: the shared fast path keeps the loop
    /// it was benchmarked with (calling the factored function here gave 1.23 times the
    /// baseline's update time on the Brunel benchmark, this loop 0.99, one 3-rep sitting each).
    // The negated comparison is the point: it is true for NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn advance(&self, state: LifState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        let LifState {
            v,
            refractory,
            rng,
            input,
        } = state;
        let c = &self.c;
        for (i, (((v, r), rng), inp)) in v
            .iter_mut()
            .zip(refractory.iter_mut())
            .zip(rng.iter_mut())
            .zip(input.iter_mut())
            .enumerate()
        {
            let arriving = std::mem::take(inp);
            if *r > 0 {
                *r -= 1;
                continue;
            }
            let v0 = *v;
            let mut vc = c.a * v0 + c.b;
            if c.s > 0.0 {
                let xi: f64 = StandardNormal.sample(rng);
                vc += c.s * xi;
            }
            let mut spiked = vc >= c.v_th;
            if !spiked && c.bridge_coef != 0.0 {
                let arg = c.bridge_coef * (c.v_th - v0) * (c.v_th - vc);
                // Below e^-40 a crossing is never drawn in practice; skipping the draw keeps
                // the update cheap and still depends on this neuron's state alone.
                if arg > -40.0 {
                    let u: f64 = rng.random();
                    spiked = u < arg.exp();
                }
            }
            let mut jump = arriving;
            if let Some(poisson) = &self.poisson {
                jump += f64::from(poisson.sample(rng)) * c.poisson_weight;
            }
            let v1 = vc + jump;
            // `!(v1 < v_th)` also sends NaN, and the second test -inf, down the rare spike
            // path, where they are marked: no state is carried through the loop for it.
            if spiked || !(v1 < c.v_th) || v1 == f64::NEG_INFINITY {
                let mark = if v1.is_finite() { 0 } else { DIVERGED };
                *v = c.v_reset;
                *r = c.ref_steps;
                spikes.push((first_gid + i as u32) | mark);
            } else {
                *v = v1;
            }
        }
    }
}

/// One step of the local neurons of a LIF population with heterogeneous parameters: each
/// neuron its own coefficients (`model::vary`).
#[derive(Clone, Debug)]
pub struct LifSteps {
    coefs: Vec<Coef>,
    poisson: Poissons,
}

/// The external Poisson input of a heterogeneous population.
#[derive(Clone, Debug)]
enum Poissons {
    /// One rate for all (or none).
    Shared(Option<PoissonSampler>),
    /// A varied rate taking few distinct values (blocks, a law with few values): one table
    /// sampler per value, and each neuron's (`u32::MAX`: no input).
    Table {
        samplers: Vec<PoissonSampler>,
        which: Vec<u32>,
    },
    /// A varied rate with many values: each neuron's mean count per step and `exp(-mean)`,
    /// drawn by inversion (one uniform, a walk along the cumulative distribution).
    Means(Vec<(f64, f64)>),
}

/// The most distinct Poisson rates of a heterogeneous population given table samplers.
const MAX_POISSON_TABLES: usize = 256;

/// One Poisson count of mean `mean` with `exp(-mean)` given: inversion below a mean of 30,
/// [`super::neuron::poisson_count`] above.
#[inline]
fn poisson_inversion(mean: f64, e: f64, rng: &mut Stream) -> u32 {
    if mean >= 30.0 {
        return super::neuron::poisson_count(mean, rng);
    }
    let u: f64 = rng.random();
    let (mut k, mut p) = (0u32, e);
    let mut cdf = p;
    while u > cdf && k < 1000 {
        k += 1;
        p *= mean / f64::from(k);
        cdf += p;
    }
    k
}

impl LifSteps {
    /// The update of neurons with parameters `params` (one per local neuron, in order);
    /// `shared_rate` says whether they share one external Poisson rate (that of the first).
    pub fn new(params: &[Lif], shared_rate: bool, dt: f64) -> Self {
        let means: Vec<f64> = params
            .iter()
            .map(|p| p.poisson_rate * dt / 1000.0)
            .collect();
        let poisson = if shared_rate {
            let lambda = means.first().copied().unwrap_or(0.0);
            Poissons::Shared((lambda > 0.0).then(|| PoissonSampler::new(lambda)))
        } else {
            let mut distinct: Vec<f64> = means.iter().copied().filter(|&m| m > 0.0).collect();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            if distinct.len() <= MAX_POISSON_TABLES {
                Poissons::Table {
                    samplers: distinct.iter().map(|&m| PoissonSampler::new(m)).collect(),
                    which: means
                        .iter()
                        .map(|m| {
                            distinct
                                .binary_search_by(|x| x.total_cmp(m))
                                .map_or(u32::MAX, |i| i as u32)
                        })
                        .collect(),
                }
            } else {
                Poissons::Means(means.iter().map(|&m| (m, (-m).exp())).collect())
            }
        };
        LifSteps {
            coefs: params.iter().map(|p| p.coef(dt)).collect(),
            poisson,
        }
    }

    /// As [`LifStep::advance`], for the neurons this update was built for.
    pub fn advance(&self, state: LifState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        let LifState {
            v,
            refractory,
            rng,
            input,
        } = state;
        debug_assert_eq!(v.len(), self.coefs.len());
        for (i, ((((v, r), rng), inp), c)) in v
            .iter_mut()
            .zip(refractory.iter_mut())
            .zip(rng.iter_mut())
            .zip(input.iter_mut())
            .zip(&self.coefs)
            .enumerate()
        {
            let gid = first_gid + i as u32;
            match &self.poisson {
                Poissons::Shared(p) => advance_one(
                    c,
                    |rng| p.as_ref().map(|p| p.sample(rng)),
                    v,
                    r,
                    rng,
                    inp,
                    gid,
                    spikes,
                ),
                Poissons::Table { samplers, which } => advance_one(
                    c,
                    |rng| samplers.get(which[i] as usize).map(|p| p.sample(rng)),
                    v,
                    r,
                    rng,
                    inp,
                    gid,
                    spikes,
                ),
                Poissons::Means(m) => advance_one(
                    c,
                    |rng| {
                        let (mean, e) = m[i];
                        (mean > 0.0).then(|| poisson_inversion(mean, e, rng))
                    },
                    v,
                    r,
                    rng,
                    inp,
                    gid,
                    spikes,
                ),
            }
        }
    }
}

/// The update of a LIF population: shared parameters (the fast path) or one set per neuron.
#[derive(Clone, Debug)]
// One per population.
#[allow(clippy::large_enum_variant)]
pub enum LifUpdate {
    Same(LifStep),
    PerNeuron(LifSteps),
}

impl LifUpdate {
    /// See [`LifStep::advance`].
    #[inline]
    pub fn advance(&self, state: LifState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        match self {
            LifUpdate::Same(s) => s.advance(state, first_gid, spikes),
            LifUpdate::PerNeuron(s) => s.advance(state, first_gid, spikes),
        }
    }
}

/// Set in a gid appended by [`LifStep::advance`] when that neuron's potential became NaN or
/// infinite. Gids stay below 2^31 (`config::MAX_NEURONS`), so the bit is free.
pub const DIVERGED: u32 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn lif(extra: &str) -> Lif {
        let text = format!("[population.A]\nsize = 1\n{extra}\n");
        Config::from_toml(&text, &[]).unwrap().populations[0]
            .model
            .base
            .clone()
    }

    /// Without noise or input the exact step relaxes to v_inf = e_l + i_e tau_m exactly
    /// along the exponential, and Euler with the same dt stays within O(dt) of it.
    #[test]
    fn deterministic_relaxation_matches_the_exponential() {
        for (integrator, tol) in [("exact", 1e-12), ("euler", 2e-3)] {
            let m = lif(&format!(
                "i_e = 0.5\ne_l = -5.0\nv_th = 100.0\nintegrator = \"{integrator}\""
            ));
            let step = m.stepper(0.1);
            let (mut v, mut r, mut input) = ([0.0], [0u32], [0.0]);
            let mut rng = [rng::stream(1, 0, Purpose::Dynamics)];
            let mut spikes = Vec::new();
            for _ in 0..100 {
                let st = LifState {
                    v: &mut v,
                    refractory: &mut r,
                    rng: &mut rng,
                    input: &mut input,
                };
                step.advance(st, 0, &mut spikes);
            }
            let v_inf = -5.0 + 0.5 * 20.0;
            let expect = v_inf + (0.0 - v_inf) * (-10.0f64 / 20.0).exp();
            assert!(
                (v[0] - expect).abs() < tol * expect.abs(),
                "{integrator}: {} vs {expect}",
                v[0]
            );
        }
    }

    /// A suprathreshold drive fires periodically with the textbook period
    /// t_ref + tau ln((mu - v_reset)/(mu - v_th)), to within one step.
    #[test]
    fn noiseless_period_matches_closed_form() {
        let m = lif("i_e = 1.5\nv_reset = 10.0\nt_ref = 2.0\nbridge = false");
        let step = m.stepper(0.1);
        let (mut v, mut r, mut input) = ([10.0], [0u32], [0.0]);
        let mut rng = [rng::stream(1, 0, Purpose::Dynamics)];
        let mut times = Vec::new();
        for n in 0..20_000u32 {
            let mut s = Vec::new();
            let st = LifState {
                v: &mut v,
                refractory: &mut r,
                rng: &mut rng,
                input: &mut input,
            };
            step.advance(st, 0, &mut s);
            if !s.is_empty() {
                times.push(f64::from(n + 1) * 0.1);
            }
        }
        let mu: f64 = 30.0;
        let period = 2.0 + 20.0 * ((mu - 10.0) / (mu - 20.0)).ln();
        let measured = (times[times.len() - 1] - times[1]) / (times.len() - 2) as f64;
        assert!((measured - period).abs() <= 0.1, "{measured} vs {period}");
    }
}
