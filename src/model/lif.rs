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

use super::lanes::{self, Lanes, LANES};
use super::poisson::{PoissonAlias, PoissonSampler};
use crate::config::{ConfigError, Integrator, RawPopulation};
use crate::rng::{self, Purpose, Stream};
use rand::{Rng, RngExt};

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
            poisson: (lambda > 0.0).then(|| Drive::new(lambda)),
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

impl Coef {
    /// Whether the Brownian bridge from `v0` to `vc` crossed the threshold, by the 64 random
    /// bits `x`: with probability `e^arg`, `arg = -2 (v_th - v0)(v_th - vc) / (sigma^2 dt)`, as
    /// `ln u < arg` for a uniform `u` on (0, 1) (true whenever `vc >= v_th`, false for NaN).
    #[inline(always)]
    fn bridge_crossed(&self, v0: f64, vc: f64, x: u64) -> bool {
        let arg = self.bridge_coef * (self.v_th - v0) * (self.v_th - vc);
        lanes::ln(lanes::uniform_open(x)) < arg
    }
}

/// One step of a LIF population whose neurons share their parameters.
#[derive(Clone, Debug)]
pub struct LifStep {
    c: Coef,
    /// The external Poisson input, `None` without it.
    poisson: Option<Drive>,
}

/// How [`LifStep`] draws its external Poisson counts.
#[derive(Clone, Debug)]
enum Drive {
    /// One 64-bit draw per count, branch-free (means up to [`PoissonAlias`]'s limit).
    Alias(PoissonAlias),
    /// Larger means: the scalar sampler, one lane after another.
    Sampler(PoissonSampler),
}

impl Drive {
    /// The sampler of Poisson(`mean`), `mean > 0`: the alias table when it fits.
    fn new(mean: f64) -> Drive {
        match PoissonAlias::new(mean) {
            Some(table) => Drive::Alias(table),
            None => Drive::Sampler(PoissonSampler::new(mean)),
        }
    }

    /// One count from `rng`, the same as the lane update draws.
    #[inline]
    fn sample(&self, rng: &mut Stream) -> u32 {
        match self {
            Drive::Alias(table) => table.count(rng.next_u64()),
            Drive::Sampler(sampler) => sampler.sample(rng),
        }
    }
}

/// The state of the local neurons of one population (slices of the rank's arrays).
pub struct LifState<'a> {
    pub v: &'a mut [f64],
    pub refractory: &'a mut [u32],
    pub rng: &'a mut [Stream],
    /// Delta input arriving in this step \[mV\]; read and cleared.
    pub input: &'a mut [f64],
}

impl<'a> LifState<'a> {
    /// The first `k` neurons and the others.
    #[cfg(target_arch = "x86_64")]
    fn split_at(self, k: usize) -> (LifState<'a>, LifState<'a>) {
        let (v, v_rest) = self.v.split_at_mut(k);
        let (refractory, r_rest) = self.refractory.split_at_mut(k);
        let (rng, s_rest) = self.rng.split_at_mut(k);
        let (input, i_rest) = self.input.split_at_mut(k);
        let rest = LifState {
            v: v_rest,
            refractory: r_rest,
            rng: s_rest,
            input: i_rest,
        };
        (
            LifState {
                v,
                refractory,
                rng,
                input,
            },
            rest,
        )
    }
}

/// One step of one neuron with coefficients `c`; `poisson` draws its external Poisson count
/// (`None` without external input). Appends `gid` to `spikes` if it spiked (with [`DIVERGED`]
/// set if its potential became NaN or infinite). The same draws and arithmetic as
/// [`LifStep::advance`], so a population whose neurons share their values gives the same
/// numbers on either path.
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
    let v0 = *v;
    let mut vc = c.a * v0 + c.b;
    // Drawn in every step, refractory or not, as by the lanes.
    if c.s > 0.0 {
        vc += c.s * lanes::normal(rng.next_u64());
    }
    let mut spiked = vc >= c.v_th;
    if c.bridge_coef != 0.0 {
        spiked |= c.bridge_crossed(v0, vc, rng.next_u64());
    }
    let mut jump = arriving;
    if let Some(k) = poisson(rng) {
        jump += f64::from(k) * c.poisson_weight;
    }
    if *r > 0 {
        *r -= 1;
        return;
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
    /// The neurons advance several at a time, their streams stepped side by side
    /// ([`super::lanes`]): eight per AVX-512 register where the CPU has AVX-512 F and VL, four
    /// per AVX2 register where it has AVX2, otherwise in lanes of [`LANES`] in the baseline
    /// instruction set, with the same arithmetic and so the same numbers. Every neuron draws the
    /// same numbers from its stream at every step, refractory or not, whatever the outcome: a
    /// normal variate by inversion (with noise), a uniform for the bridge (with the bridge
    /// correction), a Poisson count (with external input), in that order.
    pub fn advance(&self, state: LifState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has AVX-512 F and VL, checked just above.
            unsafe { self.advance_avx512(state, first_gid, spikes) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.advance_avx2(state, first_gid, spikes) };
            return;
        }
        self.advance_lanes(state, first_gid, spikes);
    }

    /// [`LifStep::advance`] with AVX-512 intrinsics ([`avx512`]) for groups of eight neurons,
    /// and [`LifStep::advance_avx2`] for the last few and for the scalar Poisson sampler.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and VL.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn advance_avx512(&self, state: LifState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        let noise = self.c.s > 0.0;
        let bridge = self.c.bridge_coef != 0.0;
        let table = match &self.poisson {
            Some(Drive::Alias(t)) => Some(t),
            Some(Drive::Sampler(_)) => return self.advance_lanes(state, first_gid, spikes),
            None => None,
        };
        let full = state.v.len() - state.v.len() % 8;
        let (main, rest) = state.split_at(full);
        let c = &self.c;
        // SAFETY: AVX-512 F and VL are enabled in this function.
        unsafe {
            match (noise, bridge) {
                (false, false) => {
                    avx512::advance::<false, false>(c, table, main, first_gid, spikes)
                }
                (true, false) => avx512::advance::<true, false>(c, table, main, first_gid, spikes),
                (_, true) => avx512::advance::<true, true>(c, table, main, first_gid, spikes),
            }
        }
        // SAFETY: AVX-512 F implies AVX2.
        unsafe { self.advance_avx2(rest, first_gid + full as u32, spikes) };
    }

    /// [`LifStep::advance`] with AVX2 intrinsics ([`avx2`]) for groups of four neurons, and
    /// the baseline code for the last few and for the scalar Poisson sampler.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn advance_avx2(&self, state: LifState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        let noise = self.c.s > 0.0;
        let bridge = self.c.bridge_coef != 0.0;
        let table = match &self.poisson {
            Some(Drive::Alias(t)) => Some(t),
            Some(Drive::Sampler(_)) => return self.advance_lanes(state, first_gid, spikes),
            None => None,
        };
        let full = state.v.len() - state.v.len() % 4;
        let (main, rest) = state.split_at(full);
        let c = &self.c;
        // SAFETY: AVX2 is enabled in this function.
        unsafe {
            match (noise, bridge) {
                (false, false) => avx2::advance::<false, false>(c, table, main, first_gid, spikes),
                (true, false) => avx2::advance::<true, false>(c, table, main, first_gid, spikes),
                (_, true) => avx2::advance::<true, true>(c, table, main, first_gid, spikes),
            }
        }
        self.advance_lanes(rest, first_gid + full as u32, spikes);
    }

    /// [`LifStep::advance`] in the baseline instruction set (the fallback, and for tests):
    /// one loop per combination of the switches, so that each loop holds only its own work.
    #[inline(always)]
    fn advance_lanes(&self, state: LifState<'_>, first_gid: u32, spikes: &mut Vec<u32>) {
        let noise = self.c.s > 0.0;
        let bridge = self.c.bridge_coef != 0.0;
        let alias = matches!(self.poisson, Some(Drive::Alias(_)));
        match (noise, bridge, alias) {
            (false, false, true) => {
                self.advance_with::<false, false, true>(state, first_gid, spikes)
            }
            (false, false, false) => {
                self.advance_with::<false, false, false>(state, first_gid, spikes)
            }
            (true, false, true) => self.advance_with::<true, false, true>(state, first_gid, spikes),
            (true, false, false) => {
                self.advance_with::<true, false, false>(state, first_gid, spikes)
            }
            (_, true, true) => self.advance_with::<true, true, true>(state, first_gid, spikes),
            (_, true, false) => self.advance_with::<true, true, false>(state, first_gid, spikes),
        }
    }

    /// [`LifStep::advance_lanes`] for one combination of the switches: `NOISE` (with `s > 0`),
    /// `BRIDGE` (bridge correction on), `ALIAS` (Poisson input by the alias table; otherwise
    /// none or the scalar sampler).
    #[inline(always)]
    fn advance_with<const NOISE: bool, const BRIDGE: bool, const ALIAS: bool>(
        &self,
        state: LifState<'_>,
        first_gid: u32,
        spikes: &mut Vec<u32>,
    ) {
        let LifState {
            v,
            refractory,
            rng,
            input,
        } = state;
        let n = v.len();
        let full = n - n % LANES;
        let lanes = v[..full]
            .chunks_exact_mut(LANES)
            .zip(refractory[..full].chunks_exact_mut(LANES))
            .zip(rng[..full].chunks_exact_mut(LANES))
            .zip(input[..full].chunks_exact_mut(LANES));
        for (k, (((v, r), s), inp)) in lanes.enumerate() {
            let mut streams = Lanes::load(s);
            let (fired, diverged) = self.lane::<NOISE, BRIDGE, ALIAS>(
                v.try_into().expect("a lane"),
                r.try_into().expect("a lane"),
                inp.try_into().expect("a lane"),
                &mut streams,
            );
            streams.store(s);
            if fired != 0 {
                push_spikes(first_gid + (k * LANES) as u32, fired, diverged, spikes);
            }
        }
        let rest = n - full;
        if rest > 0 {
            // The last neurons in a lane filled up with stand-ins, whose results are dropped.
            let mut vv = [self.c.v_reset; LANES];
            let mut rr = [0u32; LANES];
            let mut ii = [0.0; LANES];
            let pad = rng::stream(0, 0, Purpose::Dynamics);
            let mut ss: [Stream; LANES] = std::array::from_fn(|_| pad.clone());
            vv[..rest].copy_from_slice(&v[full..]);
            rr[..rest].copy_from_slice(&refractory[full..]);
            ii[..rest].copy_from_slice(&input[full..]);
            ss[..rest].clone_from_slice(&rng[full..]);
            let mut streams = Lanes::load(&ss);
            let (fired, diverged) =
                self.lane::<NOISE, BRIDGE, ALIAS>(&mut vv, &mut rr, &mut ii, &mut streams);
            streams.store(&mut ss);
            v[full..].copy_from_slice(&vv[..rest]);
            refractory[full..].copy_from_slice(&rr[..rest]);
            input[full..].copy_from_slice(&ii[..rest]);
            rng[full..].clone_from_slice(&ss[..rest]);
            let keep = (1u32 << rest) - 1;
            if fired & keep != 0 {
                push_spikes(first_gid + full as u32, fired & keep, diverged, spikes);
            }
        }
    }

    /// One step of a lane of neurons; returns the bit masks of the neurons that spiked and of
    /// those whose potential became NaN or infinite (bit `j`: neuron `j` of the lane).
    // The negated comparison is the point: it is true for NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    #[inline(always)]
    fn lane<const NOISE: bool, const BRIDGE: bool, const ALIAS: bool>(
        &self,
        v: &mut [f64; LANES],
        r: &mut [u32; LANES],
        input: &mut [f64; LANES],
        streams: &mut Lanes,
    ) -> (u32, u32) {
        let c = &self.c;
        let mut vc = [0.0; LANES];
        for j in 0..LANES {
            vc[j] = c.a * v[j] + c.b;
        }
        if NOISE {
            let x = streams.next_words();
            for j in 0..LANES {
                vc[j] += c.s * lanes::normal(x[j]);
            }
        }
        let mut spiked = [false; LANES];
        for j in 0..LANES {
            spiked[j] = vc[j] >= c.v_th;
        }
        if BRIDGE {
            // A crossing between the end points with probability e^arg: ln u < arg.
            let x = streams.next_words();
            for j in 0..LANES {
                spiked[j] |= c.bridge_crossed(v[j], vc[j], x[j]);
            }
        }
        let mut jump = std::mem::replace(input, [0.0; LANES]);
        match &self.poisson {
            Some(Drive::Alias(table)) if ALIAS => {
                let x = streams.next_words();
                for j in 0..LANES {
                    let k = lanes::small_to_f64(i64::from(table.count(x[j])));
                    jump[j] += k * c.poisson_weight;
                }
            }
            Some(Drive::Sampler(sampler)) if !ALIAS => {
                for (j, jump) in jump.iter_mut().enumerate() {
                    let mut s = streams.stream(j);
                    *jump += f64::from(sampler.sample(&mut s)) * c.poisson_weight;
                    streams.set_stream(j, &s);
                }
            }
            _ => {}
        }
        let (mut fired, mut diverged) = (0u32, 0u32);
        for j in 0..LANES {
            let v1 = vc[j] + jump[j];
            let active = r[j] == 0;
            // `!(v1 < v_th)` also sends NaN, and the second test -inf, to a spike.
            let fire = spiked[j] | !(v1 < c.v_th) | (v1 == f64::NEG_INFINITY);
            let after = if fire { c.v_reset } else { v1 };
            let hold = if fire { c.ref_steps } else { 0 };
            v[j] = if active { after } else { v[j] };
            r[j] = if active { hold } else { r[j].wrapping_sub(1) };
            fired |= u32::from(active & fire) << j;
            diverged |= u32::from(!v1.is_finite()) << j;
        }
        (fired, diverged)
    }
}

/// Appends the gids `first_gid + j` of the bits `j` set in `fired`, in ascending order, with
/// [`DIVERGED`] set where `diverged` has bit `j`.
#[cold]
fn push_spikes(first_gid: u32, mut fired: u32, diverged: u32, spikes: &mut Vec<u32>) {
    while fired != 0 {
        let j = fired.trailing_zeros();
        let mark = if diverged >> j & 1 != 0 { DIVERGED } else { 0 };
        spikes.push((first_gid + j) | mark);
        fired &= fired - 1;
    }
}

/// The neurons of a vector group (`v`, `r`, the first being `first_gid`) whose bits are set in
/// `fired`: reset, and appended to `spikes`, marked [`DIVERGED`] where their potential before
/// the reset, `v1`, is not finite.
#[cfg(target_arch = "x86_64")]
#[cold]
fn fire_group(
    c: &Coef,
    fired: u32,
    v1: &[f64],
    (v, r): (&mut [f64], &mut [u32]),
    first_gid: u32,
    spikes: &mut Vec<u32>,
) {
    let mut diverged = 0;
    for (j, ((v, r), x)) in v.iter_mut().zip(r).zip(v1).enumerate() {
        if fired >> j & 1 != 0 {
            *v = c.v_reset;
            *r = c.ref_steps;
        }
        diverged |= u32::from(!x.is_finite()) << j;
    }
    push_spikes(first_gid, fired, diverged, spikes);
}

/// The LIF step on four neurons per AVX2 register: the same arithmetic as
/// [`LifStep::advance_lanes`] operation for operation (multiplications and additions in the
/// same order, no fused multiply-add), so the same numbers. The normal and bridge variates are
/// computed by the same scalar functions ([`lanes::normal`], [`Coef::bridge_crossed`]) on the
/// vector's words.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Coef, LifState};
    use crate::model::lanes;
    use crate::model::poisson::PoissonAlias;
    use std::arch::x86_64::*;

    /// `x` rotated left by `K` bits (`L = 64 - K`).
    #[inline(always)]
    unsafe fn rotl<const K: i32, const L: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi64::<K>(x), _mm256_srli_epi64::<L>(x))
    }

    /// Four Xoshiro256++ states, word `w` of the four in `s[w]`.
    #[inline(always)]
    unsafe fn next(s: &mut [__m256i; 4]) -> __m256i {
        let out = _mm256_add_epi64(rotl::<23, 41>(_mm256_add_epi64(s[0], s[3])), s[0]);
        let t = _mm256_slli_epi64::<17>(s[1]);
        s[2] = _mm256_xor_si256(s[2], s[0]);
        s[3] = _mm256_xor_si256(s[3], s[1]);
        s[1] = _mm256_xor_si256(s[1], s[2]);
        s[0] = _mm256_xor_si256(s[0], s[3]);
        s[2] = _mm256_xor_si256(s[2], t);
        s[3] = rotl::<45, 19>(s[3]);
        out
    }

    /// The 4x4 transpose of 64-bit words: four streams' states to their words side by side,
    /// and back.
    #[inline(always)]
    unsafe fn transpose(m: [__m256i; 4]) -> [__m256i; 4] {
        let t0 = _mm256_unpacklo_epi64(m[0], m[1]);
        let t1 = _mm256_unpackhi_epi64(m[0], m[1]);
        let t2 = _mm256_unpacklo_epi64(m[2], m[3]);
        let t3 = _mm256_unpackhi_epi64(m[2], m[3]);
        [
            _mm256_permute2x128_si256::<0x20>(t0, t2),
            _mm256_permute2x128_si256::<0x20>(t1, t3),
            _mm256_permute2x128_si256::<0x31>(t0, t2),
            _mm256_permute2x128_si256::<0x31>(t1, t3),
        ]
    }

    #[inline(always)]
    unsafe fn words(x: __m256i) -> [u64; 4] {
        let mut w = [0u64; 4];
        _mm256_storeu_si256(w.as_mut_ptr().cast(), x);
        w
    }

    /// [`super::LifStep::advance_with`] for `NOISE` and `BRIDGE`, with the alias table's
    /// Poisson input or none.
    ///
    /// # Safety
    /// The CPU must support AVX2; the slices have one length, a multiple of four.
    #[target_feature(enable = "avx2")]
    pub unsafe fn advance<const NOISE: bool, const BRIDGE: bool>(
        c: &Coef,
        table: Option<&PoissonAlias>,
        state: LifState<'_>,
        first_gid: u32,
        spikes: &mut Vec<u32>,
    ) {
        let LifState {
            v,
            refractory: r,
            rng: s,
            input,
        } = state;
        let n = v.len();
        assert!(n % 4 == 0 && r.len() == n && s.len() == n && input.len() == n);
        let a = _mm256_set1_pd(c.a);
        let b = _mm256_set1_pd(c.b);
        let sd = _mm256_set1_pd(c.s);
        let v_th = _mm256_set1_pd(c.v_th);
        let neg_inf = _mm256_set1_pd(f64::NEG_INFINITY);
        let w = _mm256_set1_pd(c.poisson_weight);
        let (bits, cells, mask) = match table {
            Some(t) => {
                let (bits, cells) = t.parts();
                (
                    bits,
                    cells.as_ptr(),
                    _mm256_set1_epi64x(((1u64 << bits) - 1) as i64),
                )
            }
            None => (1, std::ptr::null(), _mm256_setzero_si256()),
        };
        let shift_up = _mm_cvtsi32_si128(bits as i32);
        let shift_down = _mm_cvtsi32_si128(64 - bits as i32);
        let sign = _mm256_set1_epi64x(i64::MIN);
        let magic = _mm256_set1_epi64x(0x4330_0000_0000_0000);
        let two52 = _mm256_set1_pd(4_503_599_627_370_496.0);
        let zero = _mm256_setzero_pd();
        let vp = v.as_mut_ptr();
        let rp = r.as_mut_ptr();
        // `Stream` is `repr(C)` over `[u64; 4]`: four streams are 128 contiguous bytes.
        let sp = s.as_mut_ptr().cast::<__m256i>();
        let ip = input.as_mut_ptr();
        for g in (0..n).step_by(4) {
            let mut st = transpose([
                _mm256_loadu_si256(sp.add(g)),
                _mm256_loadu_si256(sp.add(g + 1)),
                _mm256_loadu_si256(sp.add(g + 2)),
                _mm256_loadu_si256(sp.add(g + 3)),
            ]);
            let v0 = _mm256_loadu_pd(vp.add(g));
            let mut vc = _mm256_add_pd(_mm256_mul_pd(a, v0), b);
            if NOISE {
                let x = words(next(&mut st));
                let xi = _mm256_setr_pd(
                    lanes::normal(x[0]),
                    lanes::normal(x[1]),
                    lanes::normal(x[2]),
                    lanes::normal(x[3]),
                );
                vc = _mm256_add_pd(vc, _mm256_mul_pd(sd, xi));
            }
            let mut spiked = _mm256_cmp_pd::<_CMP_GE_OQ>(vc, v_th);
            if BRIDGE {
                let x = words(next(&mut st));
                let mut v0s = [0.0; 4];
                let mut vcs = [0.0; 4];
                _mm256_storeu_pd(v0s.as_mut_ptr(), v0);
                _mm256_storeu_pd(vcs.as_mut_ptr(), vc);
                let crossed = |j: usize| {
                    if c.bridge_crossed(v0s[j], vcs[j], x[j]) {
                        -1i64
                    } else {
                        0
                    }
                };
                let m = _mm256_setr_epi64x(crossed(0), crossed(1), crossed(2), crossed(3));
                spiked = _mm256_or_pd(spiked, _mm256_castsi256_pd(m));
            }
            let mut jump = _mm256_loadu_pd(ip.add(g));
            _mm256_storeu_pd(ip.add(g), zero);
            if !cells.is_null() {
                // `PoissonAlias::count` on four draws.
                let x = next(&mut st);
                let cell = _mm256_srl_epi64(x, shift_down);
                let e = _mm256_i64gather_epi64::<8>(cells.cast(), cell);
                let key = _mm256_or_si256(_mm256_sll_epi64(x, shift_up), mask);
                // Unsigned key < e, as signed after flipping the sign bits.
                let keep =
                    _mm256_cmpgt_epi64(_mm256_xor_si256(e, sign), _mm256_xor_si256(key, sign));
                let k = _mm256_blendv_epi8(_mm256_and_si256(e, mask), cell, keep);
                // k < 2^52 as a double: the mantissa of 2^52 + k, minus 2^52.
                let kf = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(k, magic)), two52);
                jump = _mm256_add_pd(jump, _mm256_mul_pd(kf, w));
            }
            let v1 = _mm256_add_pd(vc, jump);
            let fire = _mm256_or_pd(
                _mm256_or_pd(spiked, _mm256_cmp_pd::<_CMP_NLT_UQ>(v1, v_th)),
                _mm256_cmp_pd::<_CMP_EQ_OQ>(v1, neg_inf),
            );
            let r0 = _mm_loadu_si128(rp.add(g).cast());
            let refr = _mm_cmpeq_epi32(r0, _mm_setzero_si128());
            let active = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(refr));
            // Refractory neurons count down and keep their potential; active ones take v1,
            // and the few that fire are reset below.
            _mm_storeu_si128(
                rp.add(g).cast(),
                _mm_add_epi32(r0, _mm_andnot_si128(refr, _mm_set1_epi32(-1))),
            );
            _mm256_storeu_pd(vp.add(g), _mm256_blendv_pd(v0, v1, active));
            let fired = _mm256_movemask_pd(_mm256_and_pd(fire, active)) as u32;
            if fired != 0 {
                let mut v1s = [0.0; 4];
                _mm256_storeu_pd(v1s.as_mut_ptr(), v1);
                let group = (&mut v[g..g + 4], &mut r[g..g + 4]);
                super::fire_group(c, fired, &v1s, group, first_gid + g as u32, spikes);
            }
            let out = transpose(st);
            for (j, x) in out.into_iter().enumerate() {
                _mm256_storeu_si256(sp.add(g + j), x);
            }
        }
    }
}

/// The LIF step on eight neurons per AVX-512 register: the arithmetic of [`avx2`] operation for
/// operation, so the same numbers; rotations, unsigned comparisons and masks are single
/// instructions here, and the eight streams' states are transposed with two-source permutes.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Coef, LifState};
    use crate::model::lanes;
    use crate::model::poisson::PoissonAlias;
    use std::arch::x86_64::*;

    /// Eight Xoshiro256++ states, word `w` of the eight in `s[w]`.
    #[inline(always)]
    unsafe fn next(s: &mut [__m512i; 4]) -> __m512i {
        let out = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s[0], s[3])), s[0]);
        let t = _mm512_slli_epi64::<17>(s[1]);
        s[2] = _mm512_xor_si512(s[2], s[0]);
        s[3] = _mm512_xor_si512(s[3], s[1]);
        s[1] = _mm512_xor_si512(s[1], s[2]);
        s[0] = _mm512_xor_si512(s[0], s[3]);
        s[2] = _mm512_xor_si512(s[2], t);
        s[3] = _mm512_rol_epi64::<45>(s[3]);
        out
    }

    /// Picks words of `a` (indices 0-7) and `b` (8-15).
    #[inline(always)]
    unsafe fn pick(a: __m512i, idx: [i64; 8], b: __m512i) -> __m512i {
        let i = _mm512_setr_epi64(
            idx[0], idx[1], idx[2], idx[3], idx[4], idx[5], idx[6], idx[7],
        );
        _mm512_permutex2var_epi64(a, i, b)
    }

    const EVEN_WORDS: [i64; 8] = [0, 4, 8, 12, 1, 5, 9, 13];
    const ODD_WORDS: [i64; 8] = [2, 6, 10, 14, 3, 7, 11, 15];
    const LOW_HALVES: [i64; 8] = [0, 1, 2, 3, 8, 9, 10, 11];
    const HIGH_HALVES: [i64; 8] = [4, 5, 6, 7, 12, 13, 14, 15];

    /// Eight streams' states, two per register (stream by stream), to their words side by side.
    #[inline(always)]
    unsafe fn to_words(z: [__m512i; 4]) -> [__m512i; 4] {
        // Per four streams: words 0 and 1, and words 2 and 3, each word's four side by side.
        let (a01, a23) = (pick(z[0], EVEN_WORDS, z[1]), pick(z[0], ODD_WORDS, z[1]));
        let (b01, b23) = (pick(z[2], EVEN_WORDS, z[3]), pick(z[2], ODD_WORDS, z[3]));
        [
            pick(a01, LOW_HALVES, b01),
            pick(a01, HIGH_HALVES, b01),
            pick(a23, LOW_HALVES, b23),
            pick(a23, HIGH_HALVES, b23),
        ]
    }

    /// The inverse of [`to_words`].
    #[inline(always)]
    unsafe fn to_streams(w: [__m512i; 4]) -> [__m512i; 4] {
        let (a01, b01) = (pick(w[0], LOW_HALVES, w[1]), pick(w[0], HIGH_HALVES, w[1]));
        let (a23, b23) = (pick(w[2], LOW_HALVES, w[3]), pick(w[2], HIGH_HALVES, w[3]));
        [
            pick(a01, EVEN_WORDS, a23),
            pick(a01, ODD_WORDS, a23),
            pick(b01, EVEN_WORDS, b23),
            pick(b01, ODD_WORDS, b23),
        ]
    }

    #[inline(always)]
    unsafe fn words(x: __m512i) -> [u64; 8] {
        let mut w = [0u64; 8];
        _mm512_storeu_si512(w.as_mut_ptr().cast(), x);
        w
    }

    /// [`super::avx2::advance`] on eight neurons at a time.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and VL; the slices have one length, a multiple of eight.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub unsafe fn advance<const NOISE: bool, const BRIDGE: bool>(
        c: &Coef,
        table: Option<&PoissonAlias>,
        state: LifState<'_>,
        first_gid: u32,
        spikes: &mut Vec<u32>,
    ) {
        let LifState {
            v,
            refractory: r,
            rng: s,
            input,
        } = state;
        let n = v.len();
        assert!(n % 8 == 0 && r.len() == n && s.len() == n && input.len() == n);
        let a = _mm512_set1_pd(c.a);
        let b = _mm512_set1_pd(c.b);
        let sd = _mm512_set1_pd(c.s);
        let v_th = _mm512_set1_pd(c.v_th);
        let neg_inf = _mm512_set1_pd(f64::NEG_INFINITY);
        let w = _mm512_set1_pd(c.poisson_weight);
        let (bits, cells, mask) = match table {
            Some(t) => {
                let (bits, cells) = t.parts();
                (
                    bits,
                    cells.as_ptr(),
                    _mm512_set1_epi64(((1u64 << bits) - 1) as i64),
                )
            }
            None => (1, std::ptr::null(), _mm512_setzero_si512()),
        };
        let shift_up = _mm_cvtsi32_si128(bits as i32);
        let shift_down = _mm_cvtsi32_si128(64 - bits as i32);
        // A table of at most 32 cells (means up to about 3 per step) is held in four
        // registers and read by permutes, which cost less than a gather.
        let held = !cells.is_null() && bits <= 5;
        let [t0, t1, t2, t3] = if held {
            [0, 8, 16, 24].map(|c| _mm512_loadu_si512(cells.add(c).cast()))
        } else {
            [_mm512_setzero_si512(); 4]
        };
        let sixteen = _mm512_set1_epi64(16);
        let magic = _mm512_set1_epi64(0x4330_0000_0000_0000);
        let two52 = _mm512_set1_pd(4_503_599_627_370_496.0);
        let zero = _mm512_setzero_pd();
        let minus_one = _mm256_set1_epi32(-1);
        let vp = v.as_mut_ptr();
        let rp = r.as_mut_ptr();
        // `Stream` is `repr(C)` over `[u64; 4]`: two streams are 64 contiguous bytes.
        let sp = s.as_mut_ptr().cast::<__m512i>();
        let ip = input.as_mut_ptr();
        for g in (0..n).step_by(8) {
            let h = g / 2;
            let mut st = to_words([
                _mm512_loadu_si512(sp.add(h)),
                _mm512_loadu_si512(sp.add(h + 1)),
                _mm512_loadu_si512(sp.add(h + 2)),
                _mm512_loadu_si512(sp.add(h + 3)),
            ]);
            let v0 = _mm512_loadu_pd(vp.add(g));
            let mut vc = _mm512_add_pd(_mm512_mul_pd(a, v0), b);
            if NOISE {
                let x = words(next(&mut st));
                let xi = x.map(lanes::normal);
                vc = _mm512_add_pd(vc, _mm512_mul_pd(sd, _mm512_loadu_pd(xi.as_ptr())));
            }
            let mut spiked = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(vc, v_th);
            if BRIDGE {
                let x = words(next(&mut st));
                let mut v0s = [0.0; 8];
                let mut vcs = [0.0; 8];
                _mm512_storeu_pd(v0s.as_mut_ptr(), v0);
                _mm512_storeu_pd(vcs.as_mut_ptr(), vc);
                for j in 0..8 {
                    spiked |= u8::from(c.bridge_crossed(v0s[j], vcs[j], x[j])) << j;
                }
            }
            let mut jump = _mm512_loadu_pd(ip.add(g));
            _mm512_storeu_pd(ip.add(g), zero);
            if !cells.is_null() {
                // `PoissonAlias::count` on eight draws.
                let x = next(&mut st);
                let cell = _mm512_srl_epi64(x, shift_down);
                let e = if held {
                    let low = _mm512_permutex2var_epi64(t0, cell, t1);
                    let high = _mm512_permutex2var_epi64(t2, cell, t3);
                    _mm512_mask_blend_epi64(_mm512_test_epi64_mask(cell, sixteen), low, high)
                } else {
                    _mm512_i64gather_epi64::<8>(cell, cells.cast())
                };
                let key = _mm512_or_si512(_mm512_sll_epi64(x, shift_up), mask);
                let keep = _mm512_cmpgt_epu64_mask(e, key);
                let k = _mm512_mask_blend_epi64(keep, _mm512_and_si512(e, mask), cell);
                // k < 2^52 as a double: the mantissa of 2^52 + k, minus 2^52.
                let kf = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_or_si512(k, magic)), two52);
                jump = _mm512_add_pd(jump, _mm512_mul_pd(kf, w));
            }
            let v1 = _mm512_add_pd(vc, jump);
            let fire = spiked
                | _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(v1, v_th)
                | _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(v1, neg_inf);
            let r0 = _mm256_loadu_si256(rp.add(g).cast());
            let active = _mm256_cmpeq_epi32_mask(r0, _mm256_setzero_si256());
            // Refractory neurons count down and keep their potential; active ones take v1,
            // and the few that fire are reset below.
            _mm256_storeu_si256(
                rp.add(g).cast(),
                _mm256_mask_blend_epi32(active, _mm256_add_epi32(r0, minus_one), r0),
            );
            _mm512_storeu_pd(vp.add(g), _mm512_mask_blend_pd(active, v0, v1));
            let fired = u32::from(fire & active);
            if fired != 0 {
                let mut v1s = [0.0; 8];
                _mm512_storeu_pd(v1s.as_mut_ptr(), v1);
                let group = (&mut v[g..g + 8], &mut r[g..g + 8]);
                super::fire_group(c, fired, &v1s, group, first_gid + g as u32, spikes);
            }
            let out = to_streams(st);
            for (j, x) in out.into_iter().enumerate() {
                _mm512_storeu_si512(sp.add(h + j), x);
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
    Shared(Option<Drive>),
    /// A varied rate taking few distinct values (blocks, a law with few values): one table
    /// sampler per value, and each neuron's (`u32::MAX`: no input).
    Table {
        samplers: Vec<Drive>,
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
            Poissons::Shared((lambda > 0.0).then(|| Drive::new(lambda)))
        } else {
            let mut distinct: Vec<f64> = means.iter().copied().filter(|&m| m > 0.0).collect();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            if distinct.len() <= MAX_POISSON_TABLES {
                Poissons::Table {
                    samplers: distinct.iter().map(|&m| Drive::new(m)).collect(),
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

    /// The AVX2 update, the update `advance` chooses (AVX-512 where the CPU has it, as on the
    /// machines this is tested on) and the baseline one give the same bits: potentials,
    /// refractory counts, stream positions and spikes, for every combination of noise, bridge
    /// and Poisson input, with a population size that is not a multiple of either vector width
    /// (37 = 4 x 8 + 4 + 1), synaptic input that makes neurons fire, and one input that makes a
    /// potential NaN.
    #[test]
    fn vector_and_baseline_updates_agree() {
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        return;
        #[cfg(target_arch = "x86_64")]
        for extra in [
            "poisson_rate = 20000.0\npoisson_weight = 0.1",
            "sigma = 2.0\nbridge = true\npoisson_rate = 5000.0\npoisson_weight = 0.4",
            "sigma = 2.0\nbridge = false\npoisson_rate = 800000.0\npoisson_weight = 0.01",
            "sigma = 3.0\nintegrator = \"euler\"",
            "i_e = 1.2",
        ] {
            let m = lif(&format!("v_th = 20.0\nt_ref = 0.5\n{extra}"));
            let step = m.stepper(0.1);
            let n = 37;
            let mut v = [0, 1, 2].map(|_| vec![5.0; n]);
            let mut r = [0, 1, 2].map(|_| vec![0u32; n]);
            let mut s = [0, 1, 2].map(|_| -> Vec<Stream> {
                (0..n as u64)
                    .map(|g| rng::stream(2, g, Purpose::Dynamics))
                    .collect()
            });
            let mut spikes = [Vec::new(), Vec::new(), Vec::new()];
            let mut drive = rng::stream(3, 0, Purpose::Init);
            for t in 0..3000 {
                let inp: Vec<f64> = (0..n)
                    .map(|i| {
                        if t == 1500 && i == 30 {
                            f64::NAN
                        } else {
                            drive.random::<f64>() * 2.0 - 0.9
                        }
                    })
                    .collect();
                for k in 0..3 {
                    let mut input = inp.clone();
                    let st = LifState {
                        v: &mut v[k],
                        refractory: &mut r[k],
                        rng: &mut s[k],
                        input: &mut input,
                    };
                    match k {
                        0 => step.advance_lanes(st, 100, &mut spikes[k]),
                        // SAFETY: AVX2 was detected above.
                        1 => unsafe { step.advance_avx2(st, 100, &mut spikes[k]) },
                        _ => step.advance(st, 100, &mut spikes[k]),
                    }
                    assert!(input.iter().all(|&x| x == 0.0));
                }
            }
            let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for k in 1..3 {
                assert_eq!(bits(&v[0]), bits(&v[k]), "{extra}, path {k}");
                assert_eq!(r[0], r[k], "{extra}, path {k}");
                assert_eq!(s[0], s[k], "{extra}, path {k}");
                assert_eq!(spikes[0], spikes[k], "{extra}, path {k}");
            }
            assert!(spikes[0].len() > 100, "{extra}: {} spikes", spikes[0].len());
            assert!(spikes[0].contains(&(130 | DIVERGED)), "{extra}");
        }
    }
}
