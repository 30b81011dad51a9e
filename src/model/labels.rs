//! Dynamic labels (D'Onofrio's noisy multi-agent framework): every neuron carries a label
//! `lambda` in the simplex over K synaptic-efficacy classes with efficacies `u_k`, and its
//! outgoing efficacy is `sum_k lambda_k u_k`. The label evolves as the forward equation of a
//! continuous-time Markov chain,
//!
//! ```text
//! d lambda / dt = Q^T lambda   (the row vector: lambda' = lambda Q)
//! Q_kl = beta_kl alpha_kl(x)  (k != l),   Q_kk = -sum_{l != k} Q_kl
//! alpha_kl(x) = rates_kl s_kl(x),   s_kl(x) = 1 / (1 + exp(-gain_kl (x - threshold)))
//! ```
//!
//! (`s_kl = 1` where `gain_kl = 0`). `x` is the neuron's own potential (`dependence =
//! "potential"`), a population aggregate supplied by the caller (`"aggregate"`: the population
//! mean efficacy), or absent (`"constant"`). `beta` is the neuron's random environment: K x K
//! coefficients (diagonal unused, stored as 0) drawn at the start from the neuron's
//! `Environment` stream and, with `refresh_rate > 0`, redrawn at the events of a Poisson process.
//!
//! The step holds `Q` constant over `dt` and applies `exp(Q dt)` exactly, by uniformization:
//! with `q` the largest exit rate and `B = I + Q/q` (a stochastic matrix),
//! `exp(Q dt) = sum_n Poisson(n; q dt) B^n`, a sum of non-negative terms truncated where the
//! remaining Poisson mass is below 1e-17. For `q dt > 1` the series is summed for
//! `dt / 2^s` (with `q dt / 2^s <= 1`) and the matrix squared `s` times. The result is clamped
//! at 0 and renormalised, so the label stays in the simplex to round-off for any rates. K = 2
//! uses the closed form `lambda_0 <- pi_0 + (lambda_0 - pi_0) exp(-(a + b) dt)`,
//! `pi_0 = b / (a + b)`, with `a = Q_01`, `b = Q_10`.

use crate::config::ConfigError;
use crate::rng::{self, Purpose, Stream};
use rand::RngExt;
use rand_distr::{Distribution, Gamma, StandardNormal};
use serde::{Deserialize, Serialize};

/// Largest number of classes: every per-step array lives on the stack.
pub const MAX_CLASSES: usize = 8;
const MAX_ENTRIES: usize = MAX_CLASSES * MAX_CLASSES;
/// Poisson mass of the uniformization series left out.
const TAIL: f64 = 1e-17;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLabels {
    /// Efficacy u_k of each class \[1\] (multiplies the synaptic weight); K = its length >= 2.
    pub efficacy: Vec<f64>,
    /// Initial label, a probability vector of length K; default: all mass on class 0.
    pub init: Option<Vec<f64>>,
    /// Base transition rates alpha_kl [1/ms], K x K, diagonal must be 0, entries >= 0.
    pub rates: Vec<Vec<f64>>,
    /// What the rates depend on: "constant" (default), "potential" or "aggregate".
    #[serde(default)]
    pub dependence: Dependence,
    /// gain_kl [1/mV] (or \[1\] per unit of the aggregate), K x K; absent: all 0 (constant
    /// rates). The diagonal is unused. Non-zero gains need a dependence other than "constant".
    pub gain: Option<Vec<Vec<f64>>>,
    /// \[mV\] (or the aggregate's unit); default 0.
    #[serde(default)]
    pub threshold: f64,
    /// Distribution of the random environment beta_kl (each off-diagonal entry independent).
    #[serde(default)]
    pub beta: RawBeta,
    /// Rate at which each neuron redraws its beta \[Hz\]; 0 (default): never.
    #[serde(default)]
    pub refresh_rate: f64,
}

/// The variable `x` the transition rates depend on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependence {
    /// No dependence: `x` is ignored.
    #[default]
    Constant,
    /// The neuron's own membrane potential \[mV\].
    Potential,
    /// A population aggregate supplied by the caller (the population mean efficacy).
    Aggregate,
}

/// The distribution of each coefficient of the random environment.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBeta {
    /// "constant" (default), "uniform", "lognormal" or "gamma".
    #[serde(default)]
    pub dist: BetaDist,
    /// Mean \[1\]; default 1, must be positive.
    #[serde(default = "d_beta_mean")]
    pub mean: f64,
    /// Standard deviation \[1\]; default 0; must be 0 for "constant" and at most mean/sqrt(3)
    /// for "uniform".
    #[serde(default)]
    pub sd: f64,
}

impl Default for RawBeta {
    fn default() -> Self {
        RawBeta {
            dist: BetaDist::default(),
            mean: d_beta_mean(),
            sd: 0.0,
        }
    }
}

fn d_beta_mean() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaDist {
    /// Every coefficient equals the mean.
    #[default]
    Constant,
    /// Uniform on `mean -+ sqrt(3) sd`.
    Uniform,
    /// Lognormal with the given mean and standard deviation.
    Lognormal,
    /// Gamma with the given mean and standard deviation.
    Gamma,
}

/// A validated sampler of one environment coefficient.
#[derive(Clone, Debug)]
enum Env {
    Constant(f64),
    Uniform {
        lo: f64,
        width: f64,
    },
    /// `exp(mu + sigma N(0, 1))`.
    Lognormal {
        mu: f64,
        sigma: f64,
    },
    Gamma {
        dist: Gamma<f64>,
        shape: f64,
        scale: f64,
    },
}

/// The law of each coefficient of the random environment, for the mean-field limit's
/// quadrature over it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EnvironmentLaw {
    /// Every coefficient equals this value.
    Constant(f64),
    /// Uniform on `[lo, lo + width]`.
    Uniform { lo: f64, width: f64 },
    /// `exp(mu + sigma Z)`, `Z` standard normal.
    Lognormal { mu: f64, sigma: f64 },
    /// Gamma with density `x^(shape - 1) exp(-x / scale)`, normalised.
    Gamma { shape: f64, scale: f64 },
}

impl std::fmt::Display for EnvironmentLaw {
    /// In the configuration's terms: the law's name, mean and standard deviation.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, mean, sd) = match *self {
            EnvironmentLaw::Constant(m) => ("constant", m, 0.0),
            EnvironmentLaw::Uniform { lo, width } => {
                ("uniform", lo + 0.5 * width, width / 12f64.sqrt())
            }
            EnvironmentLaw::Lognormal { mu, sigma } => {
                let mean = (mu + 0.5 * sigma * sigma).exp();
                ("lognormal", mean, mean * (sigma * sigma).exp_m1().sqrt())
            }
            EnvironmentLaw::Gamma { shape, scale } => {
                ("gamma", shape * scale, shape.sqrt() * scale)
            }
        };
        write!(f, "{name} (mean {mean:.6}, sd {sd:.6})")
    }
}

impl Env {
    fn sample(&self, rng: &mut Stream) -> f64 {
        match self {
            Env::Constant(m) => *m,
            Env::Uniform { lo, width } => {
                let u: f64 = rng.random();
                lo + width * u
            }
            Env::Lognormal { mu, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                (mu + sigma * z).exp()
            }
            Env::Gamma { dist, .. } => dist.sample(rng),
        }
    }
}

/// Validated label dynamics of a population. Matrices are stored row-major with stride K.
#[derive(Clone, Debug)]
pub struct Labels {
    k: usize,
    efficacy: [f64; MAX_CLASSES],
    init: [f64; MAX_CLASSES],
    rates: [f64; MAX_ENTRIES],
    gain: [f64; MAX_ENTRIES],
    dependence: Dependence,
    threshold: f64,
    env: Env,
    /// \[Hz\]
    refresh_rate: f64,
}

impl Labels {
    /// Validates `raw`; `key("efficacy")` names a key in errors, e.g.
    /// `population.E.labels.efficacy`.
    pub fn from_raw(raw: &RawLabels, key: &dyn Fn(&str) -> String) -> Result<Labels, ConfigError> {
        use crate::config::{finite, non_negative, positive};
        let invalid = |name: &str, value: &dyn std::fmt::Debug, why: &str| ConfigError::Invalid {
            key: key(name),
            value: crate::config::one_line(&format!("{value:?}")),
            reason: why.to_string(),
        };
        let k = raw.efficacy.len();
        if !(2..=MAX_CLASSES).contains(&k) {
            return Err(invalid(
                "efficacy",
                &raw.efficacy,
                &format!("needs between 2 and {MAX_CLASSES} classes, one efficacy each"),
            ));
        }
        let mut efficacy = [0.0; MAX_CLASSES];
        for (i, &u) in raw.efficacy.iter().enumerate() {
            efficacy[i] = finite(&key(&format!("efficacy[{i}]")), u, "[1]")?;
        }

        let mut init = [0.0; MAX_CLASSES];
        match &raw.init {
            None => init[0] = 1.0,
            Some(v) => {
                if v.len() != k {
                    return Err(invalid(
                        "init",
                        v,
                        &format!("must have one entry per class ({k})"),
                    ));
                }
                for (i, &p) in v.iter().enumerate() {
                    init[i] = non_negative(&key(&format!("init[{i}]")), p, "[1]")?;
                }
                let sum: f64 = init[..k].iter().sum();
                if (sum - 1.0).abs() > 1e-9 {
                    return Err(invalid(
                        "init",
                        v,
                        &format!("must sum to 1 (sums to {sum})"),
                    ));
                }
                init[..k].iter_mut().for_each(|p| *p /= sum);
            }
        }

        let matrix = |name: &str,
                      m: &Vec<Vec<f64>>,
                      unit: &str,
                      out: &mut [f64; MAX_ENTRIES]|
         -> Result<(), ConfigError> {
            if m.len() != k || m.iter().any(|row| row.len() != k) {
                return Err(invalid(name, m, &format!("must be a {k} x {k} matrix")));
            }
            for (i, row) in m.iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    let key_ij = key(&format!("{name}[{i}][{j}]"));
                    out[i * k + j] = if name == "rates" {
                        non_negative(&key_ij, v, unit)?
                    } else {
                        finite(&key_ij, v, unit)?
                    };
                }
            }
            Ok(())
        };

        let mut rates = [0.0; MAX_ENTRIES];
        matrix("rates", &raw.rates, "[1/ms]", &mut rates)?;
        for i in 0..k {
            if rates[i * k + i] != 0.0 {
                return Err(invalid(
                    &format!("rates[{i}][{i}]"),
                    &rates[i * k + i],
                    "a diagonal entry must be 0 (the exit rate follows from the row)",
                ));
            }
            // The exit rate of a class, times the environment's mean, must be a number: the
            // step's cost and result depend on it.
            let exit: f64 = rates[i * k..i * k + k].iter().sum();
            if !(exit * raw.beta.mean.max(1.0)).is_finite() {
                return Err(invalid(
                    &format!("rates[{i}]"),
                    &raw.rates[i],
                    "the exit rate (the row's sum, times beta.mean) overflows [1/ms]",
                ));
            }
        }

        let mut gain = [0.0; MAX_ENTRIES];
        if let Some(g) = &raw.gain {
            matrix("gain", g, "[1/mV]", &mut gain)?;
            for i in 0..k {
                gain[i * k + i] = 0.0;
            }
            if raw.dependence == Dependence::Constant && gain.iter().any(|&g| g != 0.0) {
                return Err(invalid(
                    "gain",
                    g,
                    "non-zero gains need dependence = \"potential\" or \"aggregate\"",
                ));
            }
        }
        let threshold = finite(&key("threshold"), raw.threshold, "[mV]")?;

        let mean = positive(&key("beta.mean"), raw.beta.mean, "[1]")?;
        let sd = non_negative(&key("beta.sd"), raw.beta.sd, "[1]")?;
        let env = match raw.beta.dist {
            _ if sd == 0.0 => Env::Constant(mean),
            BetaDist::Constant => {
                return Err(invalid(
                    "beta.sd",
                    &sd,
                    "must be 0 with beta.dist = \"constant\"",
                ))
            }
            BetaDist::Uniform => {
                let half = 3f64.sqrt() * sd;
                if half > mean {
                    return Err(invalid(
                        "beta.sd",
                        &sd,
                        &format!(
                            "must be at most mean/sqrt(3) = {} with beta.dist = \"uniform\" \
                             (coefficients must be non-negative)",
                            mean / 3f64.sqrt()
                        ),
                    ));
                }
                Env::Uniform {
                    lo: mean - half,
                    width: 2.0 * half,
                }
            }
            BetaDist::Lognormal => {
                let cv = sd / mean;
                let s2 = cv.mul_add(cv, 1.0).ln();
                Env::Lognormal {
                    mu: mean.ln() - 0.5 * s2,
                    sigma: s2.sqrt(),
                }
            }
            BetaDist::Gamma => {
                let cv = sd / mean;
                let shape = 1.0 / (cv * cv);
                let scale = sd * cv;
                let g = Gamma::new(shape, scale)
                    .ok()
                    .filter(|_| shape.is_finite() && scale > 0.0 && scale.is_finite())
                    .ok_or_else(|| {
                        invalid(
                            "beta.sd",
                            &sd,
                            &format!("gives no valid gamma distribution with mean = {mean}"),
                        )
                    })?;
                Env::Gamma {
                    dist: g,
                    shape,
                    scale,
                }
            }
        };
        let refresh_rate = non_negative(&key("refresh_rate"), raw.refresh_rate, "[Hz]")?;

        Ok(Labels {
            k,
            efficacy,
            init,
            rates,
            gain,
            dependence: raw.dependence,
            threshold,
            env,
            refresh_rate,
        })
    }

    /// The number of classes K.
    /// The law of each environment coefficient `beta_kl` (all independent, redrawn together).
    pub fn environment(&self) -> EnvironmentLaw {
        match self.env {
            Env::Constant(m) => EnvironmentLaw::Constant(m),
            Env::Uniform { lo, width } => EnvironmentLaw::Uniform { lo, width },
            Env::Lognormal { mu, sigma } => EnvironmentLaw::Lognormal { mu, sigma },
            Env::Gamma { shape, scale, .. } => EnvironmentLaw::Gamma { shape, scale },
        }
    }

    /// The rate at which each neuron redraws its environment \[Hz\].
    pub fn refresh_rate(&self) -> f64 {
        self.refresh_rate
    }

    /// The base rate `rates_kl` [1/ms] (0: the transition never happens, whatever `beta`).
    pub fn base_rate(&self, k: usize, l: usize) -> f64 {
        self.rates[k * self.k + l]
    }

    /// `Q_kl = beta rates_kl s_kl(x)` [1/ms] for `k != l`, at the argument `x` of the rates.
    pub fn transition_rate(&self, k: usize, l: usize, beta: f64, x: f64) -> f64 {
        self.rate(k * self.k + l, beta, x, &mut (0.0, 1.0))
    }

    /// The initial label (class probabilities).
    pub fn initial(&self) -> &[f64] {
        &self.init[..self.k]
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn dependence(&self) -> Dependence {
        self.dependence
    }

    /// Initial label and environment of neuron gid: lambda.len() == k, beta.len() == k*k;
    /// beta drawn from rng::stream(seed, gid, Purpose::Environment).
    pub fn init(&self, seed: u64, gid: u64, lambda: &mut [f64], beta: &mut [f64]) {
        let k = self.k;
        assert!(
            lambda.len() == k && beta.len() == k * k,
            "label slices of wrong length"
        );
        lambda.copy_from_slice(&self.init[..k]);
        let mut rng = rng::stream(seed, gid, Purpose::Environment);
        self.draw_beta(beta, &mut rng);
    }

    /// The efficacies `u_k` of the K classes.
    pub fn efficacies(&self) -> &[f64] {
        &self.efficacy[..self.k]
    }

    /// The outgoing efficacy `sum_k lambda_k u_k` \[1\] of a neuron with label `lambda`.
    pub fn efficacy(&self, lambda: &[f64]) -> f64 {
        lambda
            .iter()
            .zip(&self.efficacy[..self.k])
            .map(|(p, u)| p * u)
            .sum()
    }

    /// Advances one step of dt \[ms\]: first, when refresh_rate > 0, one uniform from `rng` decides
    /// (probability 1 - exp(-refresh_rate dt / 1000)) whether beta is redrawn (from `rng`);
    /// then lambda <- lambda exp(Q dt), with Q built from beta and alpha(x).
    pub fn step(&self, lambda: &mut [f64], beta: &mut [f64], x: f64, dt: f64, rng: &mut Stream) {
        let k = self.k;
        debug_assert!(lambda.len() == k && beta.len() == k * k);
        if self.refresh_rate > 0.0 {
            let p = -(-self.refresh_rate * dt * 1e-3).exp_m1();
            let u: f64 = rng.random();
            if u < p {
                self.draw_beta(beta, rng);
            }
        }
        match k {
            2 => {
                let mut memo = (0.0, 1.0);
                let a = self.rate(1, beta[1], x, &mut memo);
                let b = self.rate(2, beta[2], x, &mut memo);
                two_state(lambda, a, b, dt);
            }
            3 => self.advance::<3>(lambda, beta, x, dt),
            4 => self.advance::<4>(lambda, beta, x, dt),
            5 => self.advance::<5>(lambda, beta, x, dt),
            6 => self.advance::<6>(lambda, beta, x, dt),
            7 => self.advance::<7>(lambda, beta, x, dt),
            8 => self.advance::<8>(lambda, beta, x, dt),
            _ => unreachable!("validation bounds K by {MAX_CLASSES}"),
        }
    }

    /// The step for K > 2 classes, with the array sizes known at compile time.
    fn advance<const K: usize>(&self, lambda: &mut [f64], beta: &[f64], x: f64, dt: f64) {
        let lambda: &mut [f64; K] = lambda.try_into().expect("lambda has K entries");
        let mut q = [[0.0; K]; K];
        let mut memo = (0.0, 1.0);
        for (i, row) in q.iter_mut().enumerate() {
            for (j, e) in row.iter_mut().enumerate() {
                if i != j {
                    *e = self.rate(i * K + j, beta[i * K + j], x, &mut memo);
                }
            }
        }
        propagate(&q, dt, lambda);
    }

    /// `Q_kl = beta_kl rates_kl s_kl(x)` for the entry `idx = k K + l`. `memo` holds the last
    /// gain and its switch value, so that equal gains cost one exponential per step.
    #[inline]
    fn rate(&self, idx: usize, beta: f64, x: f64, memo: &mut (f64, f64)) -> f64 {
        let r = self.rates[idx];
        let g = self.gain[idx];
        if r == 0.0 {
            0.0
        } else if g == 0.0 {
            beta * r
        } else {
            if g != memo.0 {
                *memo = (g, 1.0 / (1.0 + (-g * (x - self.threshold)).exp()));
            }
            beta * r * memo.1
        }
    }

    fn draw_beta(&self, beta: &mut [f64], rng: &mut Stream) {
        let k = self.k;
        for i in 0..k {
            for j in 0..k {
                beta[i * k + j] = if i == j { 0.0 } else { self.env.sample(rng) };
            }
        }
    }
}

/// `lambda <- lambda exp(Q dt)` for K = 2 with `Q_01 = a`, `Q_10 = b`, in closed form.
// The negated comparisons are the point: nothing happens for a zero (or NaN) rate or step.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn two_state(lambda: &mut [f64], a: f64, b: f64, dt: f64) {
    let r = a + b;
    if !(r > 0.0) || !(dt > 0.0) {
        return;
    }
    let e = (-r * dt).exp();
    let (pi0, pi1) = (b / r, a / r);
    let out = [pi0 + (lambda[0] - pi0) * e, pi1 + (lambda[1] - pi1) * e];
    renormalise(&out[..2], lambda);
}

/// `lambda <- lambda exp(Q dt)` by uniformization, for the K x K rate matrix whose off-diagonal
/// entries are `q` (the diagonal of `q` is ignored).
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn propagate<const K: usize>(q: &[[f64; K]; K], dt: f64, lambda: &mut [f64; K]) {
    let mut exit = [0.0; K];
    let mut q_max = 0.0f64;
    for (i, row) in q.iter().enumerate() {
        exit[i] = (0..K).filter(|&j| j != i).map(|j| row[j]).sum();
        q_max = q_max.max(exit[i]);
    }
    let l = q_max * dt;
    if !(l > 0.0) {
        return;
    }
    if !l.is_finite() {
        // Rates that overflow (a large rate times a large random environment): no transition
        // matrix exists. The label becomes NaN, which the divergence check reports, instead of
        // squaring an infinite number of times.
        lambda.fill(f64::NAN);
        return;
    }
    // B = I + Q/q_max, stochastic: exit[i] / q_max <= 1 in floating point since q_max is the
    // largest of the same numbers.
    let inv_q = 1.0 / q_max;
    let mut b = [[0.0; K]; K];
    for i in 0..K {
        for j in 0..K {
            b[i][j] = if i == j {
                (1.0 - exit[i] / q_max).max(0.0)
            } else {
                q[i][j] * inv_q
            };
        }
    }
    let mut out = [0.0; K];
    if l <= 1.0 {
        // sum_n w_n lambda B^n, vector by vector.
        let mut v = *lambda;
        let mut w = (-l).exp();
        for (o, vi) in out.iter_mut().zip(&v) {
            *o = w * vi;
        }
        let mut n = 1;
        while let Some(w_next) = next_weight(w, l, n) {
            let mut next = [0.0; K];
            for (vi, row) in v.iter().zip(&b) {
                for (nj, bij) in next.iter_mut().zip(row) {
                    *nj += vi * bij;
                }
            }
            v = next;
            w = w_next;
            for (o, vi) in out.iter_mut().zip(&v) {
                *o += w * vi;
            }
            n += 1;
        }
    } else {
        // exp(Q dt) = exp(Q dt / 2^s)^(2^s) with q_max dt / 2^s <= 1.
        // At most 1024 squarings: l is finite, below 2^1024.
        let s = l.log2().ceil() as i32;
        let h = l * 0.5f64.powi(s);
        let mut w = (-h).exp();
        let mut t = [[0.0; K]; K];
        let mut p = [[0.0; K]; K];
        for i in 0..K {
            t[i][i] = 1.0;
            p[i][i] = w;
        }
        let mut n = 1;
        while let Some(w_next) = next_weight(w, h, n) {
            t = mat_mul(&t, &b);
            w = w_next;
            for (prow, trow) in p.iter_mut().zip(&t) {
                for (pe, te) in prow.iter_mut().zip(trow) {
                    *pe += w * te;
                }
            }
            n += 1;
        }
        for _ in 0..s {
            p = mat_mul(&p, &p);
            // Keep the rows stochastic against round-off growing with the squarings.
            for row in p.iter_mut() {
                let inv = 1.0 / row.iter().sum::<f64>();
                row.iter_mut().for_each(|x| *x *= inv);
            }
        }
        for (li, row) in lambda.iter().zip(&p) {
            for (o, pij) in out.iter_mut().zip(row) {
                *o += li * pij;
            }
        }
    }
    renormalise(&out, lambda);
}

/// `1 / n` for the terms of the uniformization series.
const INV: [f64; 40] = {
    let mut t = [0.0; 40];
    let mut n = 1;
    while n < 40 {
        t[n] = 1.0 / n as f64;
        n += 1;
    }
    t
};

/// The Poisson(`l`) weight of term `n` from the weight `w` of term `n - 1`, or `None` when the
/// terms from `n` on add up to less than [`TAIL`]. They are bounded by a geometric series of
/// ratio `l / (n + 1) <= 1/2` (for `l <= 1`), so by twice the first.
#[inline]
fn next_weight(w: f64, l: f64, n: usize) -> Option<f64> {
    debug_assert!(l <= 1.0 + 1e-12);
    let w_next = w * l * INV[n];
    (2.0 * w_next >= TAIL).then_some(w_next)
}

/// The product `a b` of two K x K matrices.
#[inline]
fn mat_mul<const K: usize>(a: &[[f64; K]; K], b: &[[f64; K]; K]) -> [[f64; K]; K] {
    let mut c = [[0.0; K]; K];
    for (crow, arow) in c.iter_mut().zip(a) {
        for (aim, brow) in arow.iter().zip(b) {
            for (cij, bmj) in crow.iter_mut().zip(brow) {
                *cij += aim * bmj;
            }
        }
    }
    c
}

/// `lambda <- max(out, 0) / sum`: back onto the simplex after round-off.
#[inline]
fn renormalise(out: &[f64], lambda: &mut [f64]) {
    let sum: f64 = out.iter().map(|x| x.max(0.0)).sum();
    for (l, &o) in lambda.iter_mut().zip(out) {
        *l = o.max(0.0) / sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawLabels {
        toml::from_str(text).unwrap()
    }

    fn key(name: &str) -> String {
        format!("population.E.labels.{name}")
    }

    fn labels(text: &str) -> Labels {
        Labels::from_raw(&raw(text), &key).unwrap()
    }

    fn error(text: &str) -> String {
        match toml::from_str::<RawLabels>(text) {
            Ok(r) => Labels::from_raw(&r, &key).unwrap_err().to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// The rate matrix off-diagonals `Q_kl = beta_kl rates_kl s_kl(x)`, built here from the
    /// definition (not through `Labels::rate`).
    fn q_matrix(
        rates: &[&[f64]],
        gain: Option<&[&[f64]]>,
        theta: f64,
        beta: &[f64],
        x: f64,
    ) -> Vec<Vec<f64>> {
        let k = rates.len();
        (0..k)
            .map(|i| {
                (0..k)
                    .map(|j| {
                        if i == j {
                            return 0.0;
                        }
                        let s = match gain {
                            Some(g) if g[i][j] != 0.0 => {
                                1.0 / (1.0 + (-g[i][j] * (x - theta)).exp())
                            }
                            _ => 1.0,
                        };
                        beta[i * k + j] * rates[i][j] * s
                    })
                    .collect()
            })
            .collect()
    }

    /// Stationary distribution of a 3-state chain by the Markov chain tree theorem:
    /// `pi_i` proportional to the sum over spanning trees directed into `i` of the product of
    /// their rates.
    fn stationary_tree3(q: &[Vec<f64>]) -> [f64; 3] {
        let w = [
            q[1][0] * q[2][0] + q[1][2] * q[2][0] + q[2][1] * q[1][0],
            q[0][1] * q[2][1] + q[0][2] * q[2][1] + q[2][0] * q[0][1],
            q[0][2] * q[1][2] + q[0][1] * q[1][2] + q[1][0] * q[0][2],
        ];
        let s: f64 = w.iter().sum();
        w.map(|x| x / s)
    }

    /// Stationary distribution by Gaussian elimination with partial pivoting on
    /// `Q^T pi = 0` with the last equation replaced by `sum pi = 1`.
    fn stationary_gauss(q: &[Vec<f64>]) -> Vec<f64> {
        let k = q.len();
        let mut a = vec![vec![0.0; k + 1]; k];
        for i in 0..k {
            for j in 0..k {
                // Row i of Q^T: column i of Q (with its diagonal).
                a[i][j] = if i == j {
                    -(0..k).filter(|&l| l != j).map(|l| q[j][l]).sum::<f64>()
                } else {
                    q[j][i]
                };
            }
        }
        a[k - 1] = vec![1.0; k + 1];
        for c in 0..k {
            let p = (c..k)
                .max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))
                .unwrap();
            a.swap(c, p);
            for r in 0..k {
                if r != c {
                    let f = a[r][c] / a[c][c];
                    let pivot = a[c].clone();
                    for (arj, pj) in a[r].iter_mut().zip(&pivot).skip(c) {
                        *arj -= f * pj;
                    }
                }
            }
        }
        (0..k).map(|i| a[i][k] / a[i][i]).collect()
    }

    /// `lambda' = lambda Q` integrated by classical RK4 with step `h`.
    fn rk4(q: &[Vec<f64>], lambda: &[f64], t: f64, h: f64) -> Vec<f64> {
        let k = q.len();
        let f = |l: &[f64]| -> Vec<f64> {
            (0..k)
                .map(|j| {
                    (0..k)
                        .map(|i| {
                            if i == j {
                                -l[j] * (0..k).filter(|&m| m != j).map(|m| q[j][m]).sum::<f64>()
                            } else {
                                l[i] * q[i][j]
                            }
                        })
                        .sum()
                })
                .collect()
        };
        let axpy = |l: &[f64], d: &[f64], c: f64| -> Vec<f64> {
            l.iter().zip(d).map(|(a, b)| a + c * b).collect()
        };
        let n = (t / h).round() as usize;
        let mut l = lambda.to_vec();
        for _ in 0..n {
            let k1 = f(&l);
            let k2 = f(&axpy(&l, &k1, h / 2.0));
            let k3 = f(&axpy(&l, &k2, h / 2.0));
            let k4 = f(&axpy(&l, &k3, h));
            for i in 0..k {
                l[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            }
        }
        l
    }

    fn dyn_rng(gid: u64) -> Stream {
        rng::stream(11, gid, Purpose::Dynamics)
    }

    /// K = 2 with constant rates a = Q_01, b = Q_10: every step's label equals the closed form
    /// `pi_0 + (lambda_0(0) - pi_0) exp(-(a + b) t)` at the accumulated time, to 1e-12, both
    /// through `step` (the K = 2 closed form, composed) and through the general uniformization
    /// (`propagate`, with q dt below and above 1, i.e. with and without squaring).
    #[test]
    fn two_classes_follow_the_closed_form() {
        let (a, b) = (0.02, 0.05);
        let l = labels(&format!(
            "efficacy = [1.0, -2.0]\ninit = [0.1, 0.9]\nrates = [[0.0, {a}], [{b}, 0.0]]"
        ));
        let exact = |t: f64| {
            let pi0 = b / (a + b);
            pi0 + (0.1 - pi0) * (-(a + b) * t).exp()
        };
        let (mut lam, mut beta) = ([0.0; 2], [0.0; 4]);
        l.init(1, 0, &mut lam, &mut beta);
        assert_eq!(beta, [0.0, 1.0, 1.0, 0.0]);
        let mut r = dyn_rng(0);
        for n in 1..=3000 {
            l.step(&mut lam, &mut beta, 0.0, 0.1, &mut r);
            let t = f64::from(n) * 0.1;
            assert!(
                (lam[0] - exact(t)).abs() < 1e-12,
                "step {n}: {} vs {}",
                lam[0],
                exact(t)
            );
            assert!((lam[1] - (1.0 - exact(t))).abs() < 1e-12);
        }
        // The general path, for the same chain scaled so that q dt = 0.3, 3.6 and 4000.
        for (scale, dt, steps) in [(1.0, 6.0, 50), (12.0, 6.0, 3), (10.0, 8000.0, 1)] {
            let (a, b) = (a * scale, b * scale);
            let q = [[0.0, a], [b, 0.0]];
            let mut lam = [0.1, 0.9];
            for n in 1..=steps {
                propagate(&q, dt, &mut lam);
                let t = f64::from(n) * dt;
                let pi0 = b / (a + b);
                let want = pi0 + (0.1 - pi0) * (-(a + b) * t).exp();
                assert!(
                    (lam[0] - want).abs() < 1e-12 && (lam[1] - (1.0 - want)).abs() < 1e-12,
                    "scale {scale} step {n}: {lam:?} vs {want}"
                );
            }
        }
    }

    /// K = 3 with constant rates and a random environment: after a long time the label is the
    /// stationary distribution of Q = beta * rates, computed by the Markov chain tree theorem;
    /// K = 5 likewise against Gaussian elimination.
    #[test]
    fn long_run_reaches_the_stationary_distribution() {
        let rates: [&[f64]; 3] = [&[0.0, 0.4, 0.1], &[0.3, 0.0, 0.05], &[0.02, 0.6, 0.0]];
        let l = labels(
            "efficacy = [0.5, 1.0, 2.0]\nrates = [[0.0, 0.4, 0.1], [0.3, 0.0, 0.05], [0.02, 0.6, 0.0]]\n\
             beta = { dist = \"lognormal\", mean = 1.0, sd = 0.5 }",
        );
        let (mut lam, mut beta) = ([0.0; 3], [0.0; 9]);
        l.init(3, 17, &mut lam, &mut beta);
        assert_eq!(lam, [1.0, 0.0, 0.0]);
        let mut r = dyn_rng(17);
        for _ in 0..20_000 {
            l.step(&mut lam, &mut beta, 0.0, 0.1, &mut r);
        }
        let pi = stationary_tree3(&q_matrix(&rates, None, 0.0, &beta, 0.0));
        for i in 0..3 {
            assert!((lam[i] - pi[i]).abs() < 1e-12, "{lam:?} vs {pi:?}");
        }
        let eff: f64 = pi.iter().zip([0.5, 1.0, 2.0]).map(|(p, u)| p * u).sum();
        assert!((l.efficacy(&lam) - eff).abs() < 1e-12);

        let rates5: [&[f64]; 5] = [
            &[0.0, 0.2, 0.0, 0.0, 0.1],
            &[0.3, 0.0, 0.5, 0.0, 0.0],
            &[0.0, 0.1, 0.0, 0.7, 0.0],
            &[0.0, 0.0, 0.2, 0.0, 0.4],
            &[0.6, 0.0, 0.0, 0.3, 0.0],
        ];
        let text = format!(
            "efficacy = [1.0, 2.0, 3.0, 4.0, 5.0]\ninit = [0.2, 0.2, 0.2, 0.2, 0.2]\nrates = {:?}\n\
             beta = {{ dist = \"gamma\", mean = 2.0, sd = 1.0 }}",
            rates5.iter().map(|r| r.to_vec()).collect::<Vec<_>>()
        );
        let l = labels(&text);
        let (mut lam, mut beta) = ([0.0; 5], [0.0; 25]);
        l.init(3, 4, &mut lam, &mut beta);
        let mut r = dyn_rng(4);
        for _ in 0..20_000 {
            l.step(&mut lam, &mut beta, 0.0, 0.1, &mut r);
        }
        let pi = stationary_gauss(&q_matrix(&rates5, None, 0.0, &beta, 0.0));
        for i in 0..5 {
            assert!((lam[i] - pi[i]).abs() < 1e-12, "{lam:?} vs {pi:?}");
        }
    }

    /// K = 3 transient: the label after 5 ms equals an RK4 integration of lambda' = lambda Q
    /// with step 1e-4 ms, for steps with q dt below 1 (dt = 0.1) and above it (dt = 2.5,
    /// summed at dt / 2^s and squared).
    #[test]
    fn three_class_transient_matches_runge_kutta() {
        let rates: [&[f64]; 3] = [&[0.0, 0.8, 0.3], &[0.2, 0.0, 0.9], &[0.5, 0.1, 0.0]];
        let l = labels(
            "efficacy = [0.0, 1.0, 2.0]\ninit = [0.7, 0.3, 0.0]\n\
             rates = [[0.0, 0.8, 0.3], [0.2, 0.0, 0.9], [0.5, 0.1, 0.0]]",
        );
        let q = q_matrix(&rates, None, 0.0, &[1.0; 9], 0.0);
        let want = rk4(&q, &[0.7, 0.3, 0.0], 5.0, 1e-4);
        for (dt, n) in [(0.1, 50), (2.5, 2)] {
            let (mut lam, mut beta) = ([0.0; 3], [0.0; 9]);
            l.init(1, 0, &mut lam, &mut beta);
            let mut r = dyn_rng(0);
            for _ in 0..n {
                l.step(&mut lam, &mut beta, 0.0, dt, &mut r);
            }
            for i in 0..3 {
                assert!(
                    (lam[i] - want[i]).abs() < 1e-11,
                    "dt {dt}: {lam:?} vs {want:?}"
                );
            }
        }
    }

    /// Rates from 1e-3 to 1e5 /ms, dt = 0.1, lognormal environment, potential dependence with a
    /// fluctuating potential: every entry stays >= 0 and the sum within 1e-12 of 1 on every one
    /// of 10^4 steps. Where every rate is large the step lands on the stationary distribution
    /// of that step's Q, computed by Gaussian elimination.
    #[test]
    fn labels_stay_in_the_simplex_for_stiff_rates() {
        let k = 5;
        let mut r = rng::stream(99, 0, Purpose::Init);
        let mut matrix = |lo: f64, hi: f64, log: bool| -> Vec<Vec<f64>> {
            (0..k)
                .map(|i| {
                    (0..k)
                        .map(|j| {
                            let u: f64 = r.random();
                            match (i == j, log) {
                                (true, _) => 0.0,
                                (false, true) => 10f64.powf(lo + (hi - lo) * u),
                                (false, false) => lo + (hi - lo) * u,
                            }
                        })
                        .collect()
                })
                .collect()
        };
        let rates = matrix(-3.0, 5.0, true);
        let gain = matrix(-0.5, 0.5, false);
        let text = format!(
            "efficacy = [1.0, 2.0, 3.0, 4.0, 5.0]\nrates = {rates:?}\ngain = {gain:?}\n\
             dependence = \"potential\"\nthreshold = -50.0\n\
             beta = {{ dist = \"lognormal\", mean = 1.0, sd = 1.0 }}\nrefresh_rate = 100.0"
        );
        let l = labels(&text);
        let (mut lam, mut beta) = ([0.0; 5], [0.0; 25]);
        l.init(5, 2, &mut lam, &mut beta);
        let mut rd = dyn_rng(2);
        for n in 0..10_000 {
            let z: f64 = StandardNormal.sample(&mut rd);
            l.step(&mut lam, &mut beta, -50.0 + 20.0 * z, 0.1, &mut rd);
            let sum: f64 = lam.iter().sum();
            assert!(
                lam.iter().all(|&p| p >= 0.0) && (sum - 1.0).abs() < 1e-12,
                "step {n}: {lam:?}"
            );
        }

        let big = matrix(3.0, 5.0, true);
        let l = labels(&format!(
            "efficacy = [1.0, 2.0, 3.0, 4.0, 5.0]\nrates = {big:?}\n\
             beta = {{ dist = \"uniform\", mean = 1.0, sd = 0.5 }}"
        ));
        l.init(5, 3, &mut lam, &mut beta);
        l.step(&mut lam, &mut beta, 0.0, 0.1, &mut rd);
        let refs: Vec<&[f64]> = big.iter().map(|r| r.as_slice()).collect();
        let pi = stationary_gauss(&q_matrix(&refs, None, 0.0, &beta, 0.0));
        for i in 0..k {
            assert!((lam[i] - pi[i]).abs() < 1e-12, "{lam:?} vs {pi:?}");
        }
    }

    /// Sample mean and sd of beta over 10^4 neurons (K = 8: the 56 independent off-diagonal
    /// coefficients of each) against the configured mean and sd, within 5 standard errors:
    /// sd / sqrt(n) for the mean and sd sqrt((kurtosis - 1) / (4 n)) for the sd, with each
    /// distribution's kurtosis from its closed form (uniform 9/5, gamma 3 + 6 / shape,
    /// lognormal exp(4 s2) + 2 exp(3 s2) + 3 exp(2 s2) - 3 with s2 = ln(1 + cv^2)).
    #[test]
    fn environment_draws_have_the_configured_moments() {
        let (mean, sd) = (2.0f64, 0.8f64);
        let cv2 = (sd / mean).powi(2);
        let s2 = (1.0 + cv2).ln();
        let k = 8;
        let zeros = vec![vec![0.0; k]; k];
        for (dist, kurtosis) in [
            ("uniform", 1.8),
            ("gamma", 3.0 + 6.0 * cv2),
            (
                "lognormal",
                (4.0 * s2).exp() + 2.0 * (3.0 * s2).exp() + 3.0 * (2.0 * s2).exp() - 3.0,
            ),
        ] {
            let l = labels(&format!(
                "efficacy = [1, 2, 3, 4, 5, 6, 7, 8]\nrates = {zeros:?}\n\
                 beta = {{ dist = \"{dist}\", mean = {mean}, sd = {sd} }}"
            ));
            let (mut lam, mut beta) = ([0.0; 8], [0.0; 64]);
            let mut xs = Vec::new();
            for gid in 0..10_000 {
                l.init(8, gid, &mut lam, &mut beta);
                for i in 0..k {
                    for j in 0..k {
                        if i == j {
                            assert_eq!(beta[i * k + j], 0.0);
                        } else {
                            xs.push(beta[i * k + j]);
                        }
                    }
                }
            }
            let n = xs.len() as f64;
            let m = xs.iter().sum::<f64>() / n;
            let s = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            let se_m = sd / n.sqrt();
            let se_s = sd * ((kurtosis - 1.0) / (4.0 * n)).sqrt();
            assert!((m - mean).abs() < 5.0 * se_m, "{dist}: mean {m}");
            assert!((s - sd).abs() < 5.0 * se_s, "{dist}: sd {s}");
            let half = 3f64.sqrt() * sd;
            assert!(xs.iter().all(|&x| x > 0.0));
            if dist == "uniform" {
                assert!(xs.iter().all(|&x| x >= mean - half && x < mean + half));
            }
        }
        // Distinct neurons get distinct environments; the same neuron always the same.
        let l = labels(
            "efficacy = [1.0, 0.0]\nrates = [[0.0, 1.0], [1.0, 0.0]]\n\
             beta = { dist = \"gamma\", sd = 0.3 }",
        );
        let draw = |gid| {
            let (mut lam, mut beta) = ([0.0; 2], [0.0; 4]);
            l.init(8, gid, &mut lam, &mut beta);
            beta
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let c = labels(
            "efficacy = [1.0, 0.0]\nrates = [[0.0, 1.0], [1.0, 0.0]]\nbeta = { mean = 0.25 }",
        );
        let (mut lam, mut beta) = ([0.0; 2], [0.0; 4]);
        c.init(8, 1, &mut lam, &mut beta);
        assert_eq!(beta, [0.0, 0.25, 0.25, 0.0]);
    }

    /// With refresh rate r the fraction of 10^4 neurons whose beta changed by time t is
    /// 1 - exp(-r t) (the probability of at least one Poisson event), within 5 binomial
    /// standard errors; with r = 0 no beta changes.
    #[test]
    fn refresh_follows_a_poisson_process() {
        let (rate, dt, steps) = (50.0, 0.1, 200); // r t = 50 Hz * 20 ms = 1
        for r_hz in [rate, 0.0] {
            let l = labels(&format!(
                "efficacy = [1.0, 0.0]\nrates = [[0.0, 0.1], [0.2, 0.0]]\n\
                 beta = {{ dist = \"lognormal\", sd = 0.5 }}\nrefresh_rate = {r_hz}"
            ));
            let n = 10_000u64;
            let mut changed = 0u64;
            for gid in 0..n {
                let (mut lam, mut beta) = ([0.0; 2], [0.0; 4]);
                l.init(21, gid, &mut lam, &mut beta);
                let first = beta;
                let mut r = dyn_rng(gid);
                for _ in 0..steps {
                    l.step(&mut lam, &mut beta, 0.0, dt, &mut r);
                }
                changed += u64::from(beta != first);
            }
            let p = 1.0 - (-r_hz * 1e-3 * dt * f64::from(steps)).exp();
            let frac = changed as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((frac - p).abs() <= 5.0 * se, "r = {r_hz}: {frac} vs {p}");
        }
    }

    /// Potential (and aggregate) dependence at a fixed x: the long-run label equals the
    /// stationary distribution (matrix-tree theorem) of the constant-rate chain with
    /// alpha_kl = rates_kl / (1 + exp(-gain_kl (x - threshold))), for gains of both signs and 0.
    #[test]
    fn dependent_rates_use_the_logistic_switch() {
        let rates: [&[f64]; 3] = [&[0.0, 0.5, 0.2], &[0.4, 0.0, 0.3], &[0.1, 0.6, 0.0]];
        let gain: [&[f64]; 3] = [&[0.0, 0.8, -0.3], &[0.0, 0.0, 1.5], &[-1.0, 0.0, 0.0]];
        for (dependence, theta, x) in [("potential", -50.0, -47.0), ("aggregate", 0.5, 0.2)] {
            let l = labels(&format!(
                "efficacy = [0.0, 1.0, 2.0]\nrates = [[0.0, 0.5, 0.2], [0.4, 0.0, 0.3], [0.1, 0.6, 0.0]]\n\
                 gain = [[0.0, 0.8, -0.3], [0.0, 0.0, 1.5], [-1.0, 0.0, 0.0]]\n\
                 dependence = \"{dependence}\"\nthreshold = {theta}\n\
                 beta = {{ dist = \"gamma\", sd = 0.4 }}"
            ));
            assert_eq!(
                l.dependence(),
                if dependence == "potential" {
                    Dependence::Potential
                } else {
                    Dependence::Aggregate
                }
            );
            let (mut lam, mut beta) = ([0.0; 3], [0.0; 9]);
            l.init(2, 6, &mut lam, &mut beta);
            let mut r = dyn_rng(6);
            for _ in 0..20_000 {
                l.step(&mut lam, &mut beta, x, 0.1, &mut r);
            }
            let pi = stationary_tree3(&q_matrix(&rates, Some(&gain), theta, &beta, x));
            let pi_flat = stationary_tree3(&q_matrix(&rates, None, theta, &beta, x));
            for i in 0..3 {
                assert!(
                    (lam[i] - pi[i]).abs() < 1e-12,
                    "{dependence}: {lam:?} vs {pi:?}"
                );
            }
            // The switch matters here: the constant-rate answer is far off.
            assert!((0..3).any(|i| (pi[i] - pi_flat[i]).abs() > 1e-2));
        }
        // K = 2 (the closed-form path): pi_0 = b / (a + b) with the switched rates.
        let l = labels(
            "efficacy = [1.0, 0.0]\nrates = [[0.0, 0.3], [0.2, 0.0]]\n\
             gain = [[0.0, 0.5], [-0.2, 0.0]]\ndependence = \"potential\"\nthreshold = -55.0\n\
             beta = { dist = \"uniform\", sd = 0.3 }",
        );
        let (mut lam, mut beta) = ([0.0; 2], [0.0; 4]);
        l.init(2, 9, &mut lam, &mut beta);
        let mut r = dyn_rng(9);
        let x = -52.0;
        for _ in 0..5_000 {
            l.step(&mut lam, &mut beta, x, 0.1, &mut r);
        }
        let q = q_matrix(
            &[&[0.0, 0.3], &[0.2, 0.0]],
            Some(&[&[0.0, 0.5], &[-0.2, 0.0]]),
            -55.0,
            &beta,
            x,
        );
        let pi0 = q[1][0] / (q[0][1] + q[1][0]);
        assert!(
            (lam[0] - pi0).abs() < 1e-12 && (lam[1] - (1.0 - pi0)).abs() < 1e-12,
            "{lam:?} vs {pi0}"
        );
        let flat = beta[2] * 0.2 / (beta[1] * 0.3 + beta[2] * 0.2);
        assert!((pi0 - flat).abs() > 1e-2);
    }

    #[test]
    fn configuration_defaults_and_round_trip() {
        let r = raw("efficacy = [1.0, -1.0, 0.5]\nrates = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]");
        let l = Labels::from_raw(&r, &key).unwrap();
        assert_eq!(l.k(), 3);
        assert_eq!(l.dependence(), Dependence::Constant);
        assert_eq!(r.beta.dist, BetaDist::Constant);
        assert_eq!(
            (r.beta.mean, r.beta.sd, r.refresh_rate, r.threshold),
            (1.0, 0.0, 0.0, 0.0)
        );
        let (mut lam, mut beta) = ([0.0; 3], [0.0; 9]);
        l.init(0, 0, &mut lam, &mut beta);
        assert_eq!(lam, [1.0, 0.0, 0.0]);
        assert_eq!(l.efficacy(&[0.2, 0.5, 0.3]), 0.2 - 0.5 + 0.15);
        let text = toml::to_string(&r).unwrap();
        let back: RawLabels = toml::from_str(&text).unwrap();
        assert_eq!(back.rates, r.rates);
        assert!(back.init.is_none() && back.gain.is_none());
        // dt = 0 or all-zero rates leave the label unchanged.
        let z = labels("efficacy = [1.0, 2.0, 3.0]\ninit = [0.2, 0.3, 0.5]\nrates = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]");
        let (mut lam, mut beta) = ([0.0; 3], [0.0; 9]);
        z.init(0, 0, &mut lam, &mut beta);
        z.step(&mut lam, &mut beta, 0.0, 0.1, &mut dyn_rng(0));
        l.step(&mut lam, &mut beta, 0.0, 0.0, &mut dyn_rng(0));
        assert_eq!(lam, [0.2, 0.3, 0.5]);
    }

    /// Each invalid configuration gives one line naming the key and the value.
    /// Exit rates that overflow to infinity (finite entries, infinite sum) end the step at once
    /// with a NaN label (reported as a divergence) instead of squaring without end.
    #[test]
    fn overflowing_rates_end_the_step() {
        let q = [
            [0.0, 1e308, 1e308],
            [1e308, 0.0, 1e308],
            [1e308, 1e308, 0.0],
        ];
        let mut lambda = [1.0, 0.0, 0.0];
        let start = std::time::Instant::now();
        propagate(&q, 0.1, &mut lambda);
        assert!(lambda.iter().all(|x| x.is_nan()), "{lambda:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // The largest finite rate still gives a probability vector (1024 squarings at most).
        let q = [[0.0, 1e307, 0.0], [0.0, 0.0, 1e307], [1e307, 0.0, 0.0]];
        let mut lambda = [1.0, 0.0, 0.0];
        propagate(&q, 0.1, &mut lambda);
        assert!(
            (lambda.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "{lambda:?}"
        );
    }

    #[test]
    fn invalid_configurations_are_rejected_with_the_key() {
        let two = "efficacy = [1.0, 2.0]\nrates = [[0.0, 1.0], [1.0, 0.0]]";
        let cases: &[(&str, &str)] = &[
            ("efficacy = [1.0]\nrates = [[0.0]]", "population.E.labels.efficacy = [1.0]: needs between 2 and 8"),
            (
                "efficacy = [1, 1, 1, 1, 1, 1, 1, 1, 1]\nrates = []",
                "population.E.labels.efficacy = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]: needs between",
            ),
            ("efficacy = [1.0, nan]\nrates = [[0.0, 1.0], [1.0, 0.0]]", "labels.efficacy[1] = NaN: must be finite"),
            ("efficacy = [1.0, 2.0]\nrates = [[0.0, 1.0]]", "labels.rates = [[0.0, 1.0]]: must be a 2 x 2 matrix"),
            ("efficacy = [1.0, 2.0]\nrates = [[0.0, 1.0], [1.0]]", "labels.rates = [[0.0, 1.0], [1.0]]: must be a 2 x 2"),
            ("efficacy = [1.0, 2.0]\nrates = [[0.0, -1.0], [1.0, 0.0]]", "labels.rates[0][1] = -1: must be non-negative"),
            ("efficacy = [1.0, 2.0]\nrates = [[0.0, inf], [1.0, 0.0]]", "labels.rates[0][1] = inf: must be non-negative and finite"),
            ("efficacy = [1.0, 2.0]\nrates = [[0.5, 1.0], [1.0, 0.0]]", "labels.rates[0][0] = 0.5: a diagonal entry must be 0"),
            (&format!("{two}\ninit = [0.5, 0.6]"), "labels.init = [0.5, 0.6]: must sum to 1"),
            (&format!("{two}\ninit = [1.0]"), "labels.init = [1.0]: must have one entry per class (2)"),
            (&format!("{two}\ninit = [1.5, -0.5]"), "labels.init[1] = -0.5: must be non-negative"),
            (&format!("{two}\ngain = [[0.0, 1.0]]\ndependence = \"potential\""), "labels.gain = [[0.0, 1.0]]: must be a 2 x 2 matrix"),
            (&format!("{two}\ngain = [[0.0, 1.0], [0.0, 0.0]]"), "labels.gain = [[0.0, 1.0], [0.0, 0.0]]: non-zero gains need dependence"),
            (&format!("{two}\nbeta = {{ mean = 0.0 }}"), "labels.beta.mean = 0: must be positive"),
            (&format!("{two}\nbeta = {{ dist = \"gamma\", sd = -1.0 }}"), "labels.beta.sd = -1: must be non-negative"),
            (&format!("{two}\nbeta = {{ sd = 0.1 }}"), "labels.beta.sd = 0.1: must be 0 with beta.dist = \"constant\""),
            (&format!("{two}\nbeta = {{ dist = \"uniform\", sd = 0.6 }}"), "labels.beta.sd = 0.6: must be at most mean/sqrt(3)"),
            (&format!("{two}\nrefresh_rate = -1.0"), "labels.refresh_rate = -1: must be non-negative and finite [Hz]"),
            (&format!("{two}\nthreshold = nan"), "labels.threshold = NaN: must be finite"),
            (&format!("{two}\nbeta = {{ dist = \"weibull\" }}"), "unknown variant `weibull`"),
            (&format!("{two}\nrate = 1.0"), "unknown field `rate`"),
        ];
        for (text, want) in cases {
            let e = error(text);
            assert!(e.contains(want), "{text:?}: {e}");
            if !want.starts_with("unknown") {
                assert!(!e.contains('\n'), "{e}");
            }
        }
    }
}
