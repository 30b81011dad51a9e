//! Labelled networks with feedback (D'Onofrio's noisy multi-agent framework): the joint density
//! of potential, label and environment of every population, coupled through the empirical
//! measure of `(V, label)`.
//!
//! # The equation
//!
//! A neuron of population `p` carries a label `lambda` in the simplex over its `K` classes
//! (`K = 1`, a single point, without labels), with efficacy `e(lambda) = sum_k lambda_k u_k`,
//! and an environment `beta` (the `K x K` coefficients of its transition rates). Its potential
//! obeys `dV = [b(V) + I_p(t) + e(lambda) I'_p(t)] dt + s_p(t) dB` (threshold with reset after
//! `t_ref`, or escape with intensity `nu(V)` and the same reset), its label
//! `d lambda / dt = lambda Q(x, beta)` with `Q_kl = beta_kl alpha_kl(x)`, `x` the neuron's own
//! potential, the population's mean efficacy, or nothing; a spike resets `V` and keeps
//! `lambda`; refractory neurons sit at `v_reset` and their labels move with `x = v_reset`. The
//! environment is redrawn from its law at rate `r` (`refresh_rate`). The density
//! `f_p(t, v, lambda, beta)` solves
//!
//! ```text
//! d_t f = -d_v [(b + I + e(lambda) I') f] + (s^2/2) d_v^2 f - div_lambda [(lambda Q) f]
//!         - nu f + (reinjection at v_reset of what left, t_ref later)
//!         + r [pi(beta) int f dbeta' - f]
//! ```
//!
//! (`pi` the law of the environment), absorbing at `v_th` for threshold populations. The
//! inputs are expectations under the limit densities of the sources, so the labels feed back:
//!
//! | term                                    | input to a target at `v`                      |
//! |-----------------------------------------|-----------------------------------------------|
//! | `electrical`                            | `-g (v - E_q[V])`                              |
//! | `chemical`                              | `-g E_q[s(V) [e]] (v - reversal)`              |
//! | `current` (`s` one, potential, sigmoid) | `g E_q[s(V) [e]]`                              |
//! | `jump` with `s = "spikes"`              | `g r_q^e(t)`: every spike moves each target by `J [e]` |
//! | projection (in-degree `K`, weight `w`)  | mean `K w r_q^e(t - d)`, variance `K w^2 r_q^(e^2)(t - d)` |
//! | external Poisson drive                  | mean `rate j`, variance `rate j^2`             |
//!
//! with `g = J n_q` (the aggregate's coupling at the configured size), `[e]` the source's
//! efficacy where `efficacy = true`, `r_q^e` and `r_q^(e^2)` the rate of population `q`
//! weighted by the efficacy and its square of the neurons that fire, each times the target's
//! own efficacy where `target_efficacy = true` (the `I'` part). Aggregate terms are exact
//! limits (1/n-scaled all-to-all sums); projections enter in the diffusion approximation of
//! the threshold-LIF limit ([`super::lif`]), exact as the in-degree grows at fixed `K w`.
//!
//! # The scheme
//!
//! Per population a grid of `cells` finite volumes in `v` (`[v_min, v_th]` for threshold,
//! `[v_min, v_max]` for escape), `label_cells` per axis of the simplex (`K = 2`: cells of `l =
//! lambda_0`; `K = 3`: the squares of `(lambda_0, lambda_1)` with `a + b <= n - 1`), and a
//! Gauss quadrature of `beta_nodes` points for each transition whose base rate is not zero
//! (tensor product; Golub-Welsch from the law's orthogonal polynomials: Hermite for lognormal,
//! Legendre for uniform, Laguerre for gamma). A step of length `dt` (the run's step divided
//! into pieces of at most `meanfield.dt`), Lie splitting:
//!
//! 1. refractory mass due is put back at `v_reset` (split between the two nearest centres);
//! 2. the inputs are evaluated from the state at the start of the step (as a run does);
//! 3. `v`: backward Euler with Scharfetter-Gummel fluxes for every `(beta, label)` row, one
//!    factorisation per population (per label cell with `target_efficacy`), the M-matrix solve
//!    of [`super::lif`]; the outflux at threshold (threshold) or the exact loss
//!    `f (1 - exp(-nu dt))` (escape) is queued per row for `t_ref`;
//! 4. labels: explicit finite volumes of `lambda Q` in the simplex with upwind face values
//!    reconstructed by minmod-limited slopes (MUSCL: second order where the density is
//!    smooth, first order at its extrema), zero flux at the simplex boundary (where
//!    `lambda Q` points inwards), sub-stepped so every cell keeps at least a tenth of its mass;
//!    the refractory queue moves with `x = v_reset`;
//! 5. refresh: `f_beta <- e^(-r dt) f_beta + (1 - e^(-r dt)) pi(beta) sum_beta' f_beta'`.
//!
//! Mass is conserved to round-off and every value stays non-negative. First order in `dt`; in
//! the label cell first order where the label law has a point mass or a kink (a population
//! whose labels all start at one point), better where it is smooth; the Gauss rule in `beta`
//! converges fast for expectations (rates, densities of V), while the law of the label itself
//! is a mixture of one law per node and needs more nodes (docs/meanfield.md). Measured in
//! `tests/labels.rs`.

use super::common::{add_point_mass, indegree, phi_at, rebin, Limit, PopulationGroups};
use super::lif::{reset_split, sg_coefficients, Tridiagonal};
use crate::aggregate::{AggregateKind, RawS};
use crate::config::trees::TestFunction;
use crate::config::{Config, ConnRule, ModelKind, NoiseKind, SpikeRule, SynapseKind};
use crate::model::labels::{Dependence, EnvironmentLaw, Labels};
use crate::model::neuron::intensity;
use crate::Error;
use std::collections::VecDeque;

/// The largest number of label classes the limit resolves (the simplex of three classes is a
/// triangle; four would add a dimension).
pub const MAX_LIMIT_CLASSES: usize = 3;
/// The most cells of one population (`beta` nodes x label cells x potential cells).
pub const MAX_CELLS: usize = 20_000_000;

// ------------------------------------------------------------------------------------------
// Quadrature of the environment.

/// Gauss quadrature with `m` nodes of the law of one environment coefficient: `(node,
/// probability)` pairs, exact for polynomials of degree `2m - 1` in the law's variable (`z` of
/// the lognormal's `exp(mu + sigma z)`).
pub fn environment_quadrature(law: EnvironmentLaw, m: usize) -> Vec<(f64, f64)> {
    use crate::model::vary::Law;
    let law = match law {
        EnvironmentLaw::Constant(c) => return vec![(c, 1.0)],
        EnvironmentLaw::Uniform { lo, width } => Law::Uniform {
            min: lo,
            max: lo + width,
        },
        EnvironmentLaw::Lognormal { mu, sigma } => Law::Lognormal { mu, s: sigma },
        EnvironmentLaw::Gamma { shape, scale } => Law::Gamma { shape, scale },
    };
    // The rules of the varied parameters' laws, untruncated.
    super::common::law_quadrature(&law, f64::NEG_INFINITY, f64::INFINITY, m)
}

/// The environments of the limit: per node the `K x K` coefficients (row-major, diagonal 0)
/// and its probability, a tensor product over the transitions whose base rate is not zero.
fn environment_nodes(l: &Labels, m: usize) -> Vec<(Vec<f64>, f64)> {
    let k = l.k();
    let rule = environment_quadrature(l.environment(), m);
    let mut nodes = vec![(vec![0.0; k * k], 1.0)];
    for i in 0..k {
        for j in (0..k).filter(|&j| j != i) {
            if l.base_rate(i, j) == 0.0 {
                continue;
            }
            let mut next = Vec::with_capacity(nodes.len() * rule.len());
            for (beta, w) in &nodes {
                for &(x, wx) in &rule {
                    let mut b = beta.clone();
                    b[i * k + j] = x;
                    next.push((b, w * wx));
                }
            }
            nodes = next;
        }
    }
    nodes
}

// ------------------------------------------------------------------------------------------
// The label grid.

/// Finite volumes of the simplex of `k` classes (`k = 1`: one cell).
#[derive(Clone, Debug)]
pub struct LabelGrid {
    k: usize,
    n: usize,
    /// Per cell: the label at its centre (`k` entries used).
    centre: Vec<[f64; MAX_LIMIT_CLASSES]>,
    /// Per cell: the corner `(a, b)` of its square in units of `1/n`.
    corner: Vec<(usize, usize)>,
    /// Interior faces: the cells on the low and high side, the axis (class) across which it
    /// lies, and the label at its centre.
    faces: Vec<(usize, usize, usize, [f64; MAX_LIMIT_CLASSES])>,
    /// Per face: the cell beyond the low one and the cell beyond the high one along its axis
    /// (the cell itself at the edge of the simplex), for the limited slopes.
    beyond: Vec<(usize, usize)>,
}

/// `minmod(x, y)`: the smaller slope where both have one sign, else 0.
#[inline]
fn minmod(x: f64, y: f64) -> f64 {
    if x * y <= 0.0 {
        0.0
    } else if x.abs() < y.abs() {
        x
    } else {
        y
    }
}

/// The density at a face of velocity `u` between cells `a` and `b`, reconstructed from the
/// upwind cell with the minmod-limited slope (`aa` beyond `a`, `bb` beyond `b`): second order
/// where the density is smooth, first order at extrema, never below 0 nor above 1.5 times
/// the upwind cell's value.
#[inline]
fn face_value(u: f64, aa: f64, a: f64, b: f64, bb: f64) -> f64 {
    if u > 0.0 {
        a + 0.5 * minmod(b - a, a - aa)
    } else {
        b - 0.5 * minmod(bb - b, b - a)
    }
}

impl LabelGrid {
    pub fn new(k: usize, n: usize) -> LabelGrid {
        let dl = 1.0 / n as f64;
        let mut g = LabelGrid {
            k,
            n,
            centre: Vec::new(),
            corner: Vec::new(),
            faces: Vec::new(),
            beyond: Vec::new(),
        };
        match k {
            1 => {
                g.centre.push([1.0, 0.0, 0.0]);
                g.corner.push((0, 0));
            }
            2 => {
                for a in 0..n {
                    let l = (a as f64 + 0.5) * dl;
                    g.centre.push([l, 1.0 - l, 0.0]);
                    g.corner.push((a, 0));
                }
                for a in 0..n - 1 {
                    let l = (a + 1) as f64 * dl;
                    g.faces.push((a, a + 1, 0, [l, 1.0 - l, 0.0]));
                    g.beyond.push((a.saturating_sub(1), (a + 2).min(n - 1)));
                }
            }
            _ => {
                let mut index = vec![usize::MAX; n * n];
                for a in 0..n {
                    for b in 0..n - a {
                        index[a * n + b] = g.centre.len();
                        let (x, y) = ((a as f64 + 0.5) * dl, (b as f64 + 0.5) * dl);
                        g.centre.push([x, y, 1.0 - x - y]);
                        g.corner.push((a, b));
                    }
                }
                let at = |a: usize, b: usize| index[a * n + b];
                for a in 0..n {
                    for b in 0..n - a {
                        let here = at(a, b);
                        if a + b + 1 < n {
                            let x = (a + 1) as f64 * dl;
                            let y = (b as f64 + 0.5) * dl;
                            g.faces.push((here, at(a + 1, b), 0, [x, y, 1.0 - x - y]));
                            g.beyond.push((
                                if a > 0 { at(a - 1, b) } else { here },
                                if a + b + 2 < n {
                                    at(a + 2, b)
                                } else {
                                    at(a + 1, b)
                                },
                            ));
                            let x = (a as f64 + 0.5) * dl;
                            let y = (b + 1) as f64 * dl;
                            g.faces.push((here, at(a, b + 1), 1, [x, y, 1.0 - x - y]));
                            g.beyond.push((
                                if b > 0 { at(a, b - 1) } else { here },
                                if a + b + 2 < n {
                                    at(a, b + 2)
                                } else {
                                    at(a, b + 1)
                                },
                            ));
                        }
                    }
                }
            }
        }
        g
    }

    pub fn cells(&self) -> usize {
        self.centre.len()
    }

    fn dl(&self) -> f64 {
        1.0 / self.n as f64
    }

    /// The cells and weights that hold a unit mass at `lambda` (linear interpolation between
    /// the nearest centres, clamped to the simplex).
    fn deposit(&self, lambda: &[f64]) -> Vec<(usize, f64)> {
        if self.k == 1 {
            return vec![(0, 1.0)];
        }
        let n = self.n;
        let split = |x: f64| {
            let y = (x * n as f64 - 0.5).clamp(0.0, (n - 1) as f64);
            let i = (y.floor() as usize).min(n.saturating_sub(2));
            let w = (y - i as f64).clamp(0.0, 1.0);
            [(i, 1.0 - w), ((i + 1).min(n - 1), w)]
        };
        let find = |a: usize, b: usize| self.corner.iter().position(|&c| c == (a, b));
        let mut out: Vec<(usize, f64)> = Vec::new();
        if self.k == 2 {
            for (a, w) in split(lambda[0]) {
                out.push((a, w));
            }
        } else {
            for (a, wa) in split(lambda[0]) {
                for (b, wb) in split(lambda[1]) {
                    if let Some(c) = find(a, b) {
                        out.push((c, wa * wb));
                    }
                }
            }
            let total: f64 = out.iter().map(|x| x.1).sum();
            if total > 0.0 {
                out.iter_mut().for_each(|x| x.1 /= total);
            } else {
                // Every neighbour outside: the cell whose centre is nearest.
                let c = (0..self.cells())
                    .min_by(|&x, &y| {
                        let d = |c: usize| {
                            (0..3)
                                .map(|k| (self.centre[c][k] - lambda[k]).powi(2))
                                .sum::<f64>()
                        };
                        d(x).total_cmp(&d(y))
                    })
                    .unwrap_or(0);
                out = vec![(c, 1.0)];
            }
        }
        out
    }

    /// The densities on `bins` equal bins of [0, 1] of each class's probability, class-major,
    /// of the masses `mass` per cell (the mass of a cell spread uniformly over its square;
    /// the last class of three, `1 - lambda_0 - lambda_1`, by sub-points, clamped at 0).
    fn class_densities(&self, mass: &[f64], bins: usize) -> Vec<f64> {
        const SUB: usize = 8;
        let mut out = vec![0.0; self.k * bins];
        let dl = self.dl();
        let bin = |x: f64| ((x.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        for (c, &m) in mass.iter().enumerate() {
            if m == 0.0 {
                continue;
            }
            let (a, b) = self.corner[c];
            let w = m / (SUB * if self.k == 3 { SUB } else { 1 }) as f64;
            for s in 0..SUB {
                let x = (a as f64 + (s as f64 + 0.5) / SUB as f64) * dl;
                if self.k == 2 {
                    out[bin(x)] += w;
                    out[bins + bin(1.0 - x)] += w;
                    continue;
                }
                for t in 0..SUB {
                    let y = (b as f64 + (t as f64 + 0.5) / SUB as f64) * dl;
                    out[bin(x)] += w;
                    out[bins + bin(y)] += w;
                    out[2 * bins + bin(1.0 - x - y)] += w;
                }
            }
        }
        out.iter_mut().for_each(|x| *x *= bins as f64);
        out
    }
}

/// The rate matrix `Q(x, beta)` of `l` (row-major, with its diagonal).
fn rate_matrix(l: &Labels, beta: &[f64], x: f64) -> [f64; MAX_LIMIT_CLASSES * MAX_LIMIT_CLASSES] {
    let k = l.k();
    let mut q = [0.0; MAX_LIMIT_CLASSES * MAX_LIMIT_CLASSES];
    for i in 0..k {
        let mut exit = 0.0;
        for j in (0..k).filter(|&j| j != i) {
            let r = l.transition_rate(i, j, beta[i * k + j], x);
            q[i * MAX_LIMIT_CLASSES + j] = r;
            exit += r;
        }
        q[i * MAX_LIMIT_CLASSES + i] = -exit;
    }
    q
}

/// `(lambda Q)_axis` at each face of `grid`.
fn face_velocities(grid: &LabelGrid, q: &[f64; MAX_LIMIT_CLASSES * MAX_LIMIT_CLASSES]) -> Vec<f64> {
    grid.faces
        .iter()
        .map(|&(_, _, axis, lambda)| {
            (0..grid.k)
                .map(|m| lambda[m] * q[m * MAX_LIMIT_CLASSES + axis])
                .sum()
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Populations and couplings.

/// One input term of the limit (aggregate or projection).
#[derive(Clone, Debug)]
enum Term {
    /// `-g (v - E_q[V])`.
    Electrical { g: f64 },
    /// `-g E_q[s [e]] (v - reversal)`.
    Chemical { g: f64, reversal: f64 },
    /// `g E_q[s [e]]`.
    Current { g: f64 },
    /// `g r_q^[e]`.
    Spikes { g: f64 },
    /// Mean `K w r^e(t - d)`, variance `K w^2 r^(e^2)(t - d)`.
    Projection { kw: f64, kw2: f64, delay: f64 },
}

#[derive(Clone, Debug)]
struct Input {
    source: usize,
    target: usize,
    term: Term,
    s: RawS,
    efficacy: bool,
    target_efficacy: bool,
}

fn s_of(s: &RawS, v: f64) -> f64 {
    match s {
        RawS::One => 1.0,
        RawS::Potential => v,
        RawS::Sigmoid { theta, delta, max } => max / (1.0 + (-(v - theta) / delta).exp()),
        // Refused by `check` except with `jump`, where the rate stands for it.
        RawS::Intensity | RawS::Spikes => 0.0,
    }
}

/// The state of one population.
struct Pop {
    threshold: bool,
    v_lo: f64,
    h: f64,
    nv: usize,
    /// Intrinsic drift plus external mean at the faces `v_lo + k h`, k = 0..=nv [mV/ms].
    drift_face: Vec<f64>,
    /// Escape intensity at the centres [1/ms] (empty for threshold).
    nu: Vec<f64>,
    /// Intrinsic and external variance [mV^2/ms].
    sigma2: f64,
    v_reset: f64,
    reset: (usize, usize, f64),
    /// Refractory time \[ms\] (a whole number of the run's steps) and in steps of the solver.
    t_ref: f64,
    ref_steps: usize,
    labels: Option<Labels>,
    grid: LabelGrid,
    /// Efficacy of each label cell.
    eff: Vec<f64>,
    /// Per environment node: coefficients and probability.
    nodes: Vec<(Vec<f64>, f64)>,
    /// Density [1/mV per label cell]: `f[(q nc + c) nv + i]`.
    f: Vec<f64>,
    /// Refractory masses per step, `[q nc + c]`, oldest first.
    queue: VecDeque<Vec<f64>>,
    /// Label face velocities where they do not change in time: `[(q nf + face) nv + i]`, and
    /// at `v_reset`: `[q nf + face]`.
    vel: Vec<f64>,
    vel_reset: Vec<f64>,
    /// Mass that fired in the last step per row `q nc + c`.
    fired: Vec<f64>,
    /// Efficacy-weighted rates at the step ends, for delays: `(r^e, r^(e^2))` [1/ms].
    hist: VecDeque<(f64, f64)>,
    /// Rates of the last step [1/ms]: plain, efficacy-weighted, efficacy^2-weighted.
    rates: (f64, f64, f64),
    tri: Tridiagonal,
    scratch: Vec<f64>,
    /// `exp(-nu dt)` per cell for the step `survive_dt` (escape).
    survive: Vec<f64>,
    survive_dt: f64,
    /// The density of V summed over labels and environments, plain and times the efficacy,
    /// and the refractory mass, plain and times the efficacy: kept by [`Pop::summarise`].
    sums: (Vec<f64>, Vec<f64>, f64, f64),
}

impl Pop {
    fn nc(&self) -> usize {
        self.grid.cells()
    }
    fn nq(&self) -> usize {
        self.nodes.len()
    }
    fn centre(&self, i: usize) -> f64 {
        self.v_lo + (i as f64 + 0.5) * self.h
    }
    fn edges(&self) -> Vec<f64> {
        (0..=self.nv)
            .map(|i| self.v_lo + i as f64 * self.h)
            .collect()
    }
    fn refractory(&self) -> f64 {
        self.queue.iter().flatten().sum()
    }
    /// Recomputes [`Pop::sums`] from the state.
    fn summarise(&mut self) {
        let (nv, nc) = (self.nv, self.nc());
        let (mut m0, mut m1) = (vec![0.0; nv], vec![0.0; nv]);
        for (r, row) in self.f.chunks_exact(nv).enumerate() {
            let e = self.eff[r % nc];
            for ((a, b), x) in m0.iter_mut().zip(m1.iter_mut()).zip(row) {
                *a += x;
                *b += e * x;
            }
        }
        let (mut r0, mut r1) = (0.0, 0.0);
        for m in &self.queue {
            for (r, x) in m.iter().enumerate() {
                r0 += x;
                r1 += x * self.eff[r % nc];
            }
        }
        self.sums = (m0, m1, r0, r1);
    }

    /// `E[phi(V)]` (`weighted`: `E[phi(V) e]`) over the population, refractory neurons at
    /// `v_reset`, from [`Pop::sums`].
    fn expect(&self, phi: impl Fn(f64) -> f64, weighted: bool) -> f64 {
        let (m0, m1, r0, r1) = &self.sums;
        let (m, r) = if weighted { (m1, r1) } else { (m0, r0) };
        let inside: f64 = m
            .iter()
            .enumerate()
            .map(|(i, x)| x * phi(self.centre(i)))
            .sum();
        inside * self.h + r * phi(self.v_reset)
    }

    /// The mass in each label cell (potentials, environments and the refractory queue summed).
    fn label_mass(&self) -> Vec<f64> {
        let nc = self.nc();
        let mut m = vec![0.0; nc];
        for (r, row) in self.f.chunks_exact(self.nv).enumerate() {
            m[r % nc] += row.iter().sum::<f64>() * self.h;
        }
        for x in &self.queue {
            for (r, y) in x.iter().enumerate() {
                m[r % nc] += y;
            }
        }
        m
    }
    fn deposit_row(&mut self, row: usize, mass: f64) {
        let (i, j, w) = self.reset;
        let base = row * self.nv;
        self.f[base + i] += w * mass / self.h;
        self.f[base + j] += (1.0 - w) * mass / self.h;
    }
    /// A delayed efficacy-weighted rate pair at `steps` steps before the latest.
    fn delayed(&self, steps: f64) -> (f64, f64) {
        let n = self.hist.len();
        let back = steps.max(0.0);
        let lo = back.floor() as usize;
        let w = back - lo as f64;
        let at = |b: usize| {
            if b < n {
                self.hist[n - 1 - b]
            } else {
                (0.0, 0.0)
            }
        };
        let (x, y) = (at(lo), at(lo + 1));
        ((1.0 - w) * x.0 + w * y.0, (1.0 - w) * x.1 + w * y.1)
    }

    /// Moves every label by `lambda Q` over `dt`: `vel` per (node, face, potential cell) or,
    /// with `uniform`, per (node, face) for every potential cell.
    fn label_step(&mut self, dt: f64, vel: &[f64], uniform: bool) {
        let (nv, nc, nq) = (self.nv, self.nc(), self.nq());
        let nf = self.grid.faces.len();
        if nf == 0 {
            return;
        }
        let sub = self.label_substeps(dt, vel);
        let k = dt / sub as f64 / self.grid.dl();
        for _ in 0..sub {
            for q in 0..nq {
                let block = &mut self.f[q * nc * nv..(q + 1) * nc * nv];
                self.scratch.clear();
                self.scratch.extend_from_slice(block);
                let old = &self.scratch;
                let row = |c: usize| &old[c * nv..(c + 1) * nv];
                for (face, (&(a, b, _, _), &(aa, bb))) in
                    self.grid.faces.iter().zip(&self.grid.beyond).enumerate()
                {
                    // a < b: the two rows apart.
                    let (lo, hi) = block.split_at_mut(b * nv);
                    let (ra, rb) = (&mut lo[a * nv..(a + 1) * nv], &mut hi[..nv]);
                    let (oaa, oa, ob, obb) = (row(aa), row(a), row(b), row(bb));
                    for i in 0..nv {
                        let u = if uniform {
                            vel[q * nf + face]
                        } else {
                            vel[(q * nf + face) * nv + i]
                        };
                        let flux = k * u * face_value(u, oaa[i], oa[i], ob[i], obb[i]);
                        ra[i] -= flux;
                        rb[i] += flux;
                    }
                }
            }
        }
    }

    /// Sub-steps of the label step that keep every value non-negative: a cell loses at most
    /// 90% of its mass through its `2 (K - 1)` faces, each carrying at most 1.5 times its value.
    fn label_substeps(&self, dt: f64, vel: &[f64]) -> usize {
        let vmax = vel.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let per_cell = 2.0 * (self.grid.k - 1) as f64 * 1.5;
        (vmax * dt / self.grid.dl() * per_cell / 0.9)
            .ceil()
            .max(1.0) as usize
    }

    /// The label step of the refractory queue, `vel` per (node, face) at `v_reset`.
    fn queue_label_step(&mut self, dt: f64, vel: &[f64]) {
        let (nc, nq) = (self.nc(), self.nq());
        let nf = self.grid.faces.len();
        if nf == 0 || self.queue.is_empty() {
            return;
        }
        let sub = self.label_substeps(dt, vel);
        let k = dt / sub as f64 / self.grid.dl();
        for m in self.queue.iter_mut() {
            for _ in 0..sub {
                for q in 0..nq {
                    let block = &mut m[q * nc..(q + 1) * nc];
                    let old = block.to_vec();
                    for (face, (&(a, b, _, _), &(aa, bb))) in
                        self.grid.faces.iter().zip(&self.grid.beyond).enumerate()
                    {
                        let u = vel[q * nf + face];
                        let flux = k * u * face_value(u, old[aa], old[a], old[b], old[bb]);
                        block[a] -= flux;
                        block[b] += flux;
                    }
                }
            }
        }
    }

    /// The refresh of the environment over `dt` at `rate` [1/ms].
    fn refresh(&mut self, dt: f64, rate: f64) {
        let nq = self.nq();
        if rate <= 0.0 || nq < 2 {
            return;
        }
        let keep = (-rate * dt).exp();
        let len = self.f.len() / nq;
        let mut total = vec![0.0; len];
        for block in self.f.chunks_exact(len) {
            for (t, x) in total.iter_mut().zip(block) {
                *t += x;
            }
        }
        for (q, block) in self.f.chunks_exact_mut(len).enumerate() {
            let w = (1.0 - keep) * self.nodes[q].1;
            for (x, t) in block.iter_mut().zip(&total) {
                *x = keep * *x + w * t;
            }
        }
        let nc = self.nc();
        for m in self.queue.iter_mut() {
            let mut total = vec![0.0; nc];
            for block in m.chunks_exact(nc) {
                for (t, x) in total.iter_mut().zip(block) {
                    *t += x;
                }
            }
            for (q, block) in m.chunks_exact_mut(nc).enumerate() {
                let w = (1.0 - keep) * self.nodes[q].1;
                for (x, t) in block.iter_mut().zip(&total) {
                    *x = keep * *x + w * t;
                }
            }
        }
    }
}

/// The solver of a labelled network (see the module doc).
pub struct LabelSolver {
    pops: Vec<Pop>,
    inputs: Vec<Input>,
    dt: f64,
    t: f64,
    /// Rates [1/ms] over the last [`LabelSolver::advance_to`]: the rates a run step sees.
    last_rates: Vec<f64>,
}

/// The drift a population receives: `a - c v` for every neuron and `a' - c' v` times its own
/// efficacy, and the synaptic variance.
#[derive(Clone, Copy, Default)]
struct Drive {
    a: f64,
    c: f64,
    a_own: f64,
    c_own: f64,
    var: f64,
}

impl LabelSolver {
    fn drives(&self) -> Vec<Drive> {
        let mut d = vec![Drive::default(); self.pops.len()];
        for inp in &self.inputs {
            let src = &self.pops[inp.source];
            let e = inp.efficacy;
            let (da, dc, var) = match inp.term {
                Term::Electrical { g } => (g * src.expect(|v| v, false), g, 0.0),
                Term::Chemical { g, reversal } => {
                    let s = src.expect(|v| s_of(&inp.s, v), e);
                    (g * s * reversal, g * s, 0.0)
                }
                Term::Current { g } => (g * src.expect(|v| s_of(&inp.s, v), e), 0.0, 0.0),
                Term::Spikes { g } => {
                    let r = if inp.efficacy {
                        src.rates.1
                    } else {
                        src.rates.0
                    };
                    (g * r, 0.0, 0.0)
                }
                Term::Projection { kw, kw2, delay } => {
                    // The input over the step ending at t + dt, read at t + dt - delay.
                    let (r1, r2) = src.delayed(delay / self.dt - 1.0);
                    (kw * r1, 0.0, kw2 * r2)
                }
            };
            let t = &mut d[inp.target];
            if inp.target_efficacy {
                t.a_own += da;
                t.c_own += dc;
            } else {
                t.a += da;
                t.c += dc;
            }
            t.var += var;
        }
        d
    }

    fn step(&mut self) {
        let dt = self.dt;
        let drives = self.drives();
        // Aggregate-dependent labels read the population's mean efficacy at the step start.
        let mean_eff: Vec<f64> = self.pops.iter().map(|p| p.expect(|_| 1.0, true)).collect();
        for (p, pop) in self.pops.iter_mut().enumerate() {
            let (nv, nc, nq) = (pop.nv, pop.nc(), pop.nq());
            // 1. Refractory mass due: what fired `ref_steps` steps ago, deposited before the
            // implicit step as the threshold-LIF solver does (its stationary state is then the
            // continuous one whatever the step).
            while pop.ref_steps > 0 && pop.queue.len() >= pop.ref_steps {
                let m = pop.queue.pop_front().expect("non-empty");
                for (r, x) in m.into_iter().enumerate() {
                    if x > 0.0 {
                        pop.deposit_row(r, x);
                    }
                }
            }
            // 3. Potentials.
            if pop.survive.len() != pop.nu.len() || pop.survive_dt != dt {
                pop.survive = pop.nu.iter().map(|nu| (-nu * dt).exp()).collect();
                pop.survive_dt = dt;
            }
            let dr = drives[p];
            let d = 0.5 * (pop.sigma2 + dr.var);
            let lam = dt / pop.h;
            let variants = if dr.a_own != 0.0 || dr.c_own != 0.0 {
                nc
            } else {
                1
            };
            pop.fired.iter_mut().for_each(|x| *x = 0.0);
            for c in 0..variants {
                let e = if variants == 1 { 0.0 } else { pop.eff[c] };
                let (a, cc) = (dr.a + e * dr.a_own, dr.c + e * dr.c_own);
                let tri = &mut pop.tri;
                tri.cl[0] = 0.0;
                tri.cr[0] = 0.0;
                for k in 1..nv {
                    let v = pop.v_lo + k as f64 * pop.h;
                    let (r, l) = sg_coefficients(pop.drift_face[k] + a - cc * v, d, pop.h);
                    tri.cl[k] = lam * l;
                    tri.cr[k] = lam * r;
                }
                let out = if pop.threshold {
                    let v = pop.v_lo + nv as f64 * pop.h;
                    sg_coefficients(pop.drift_face[nv] + a - cc * v, d, 0.5 * pop.h).1
                } else {
                    0.0
                };
                tri.cl[nv] = lam * out;
                tri.cr[nv] = 0.0;
                tri.factor();
                if variants == 1 {
                    tri.solve_rows(&mut pop.f, &mut pop.scratch);
                } else {
                    for q in 0..nq {
                        let row = q * nc + c;
                        tri.solve(&mut pop.f[row * nv..(row + 1) * nv], &mut pop.scratch);
                    }
                }
                let rows: Vec<usize> = if variants == 1 {
                    (0..nq * nc).collect()
                } else {
                    (0..nq).map(|q| q * nc + c).collect()
                };
                for row in rows {
                    let x = &mut pop.f[row * nv..(row + 1) * nv];
                    let mut gone = dt * out * x[nv - 1];
                    if !pop.threshold {
                        for (xi, s) in x.iter_mut().zip(&pop.survive) {
                            let keep = *xi * s;
                            gone += (*xi - keep) * pop.h;
                            *xi = keep;
                        }
                    }
                    pop.fired[row] = gone;
                }
            }
            let (mut r0, mut r1, mut r2) = (0.0, 0.0, 0.0);
            for (row, &m) in pop.fired.iter().enumerate() {
                let e = pop.eff[row % nc];
                r0 += m;
                r1 += m * e;
                r2 += m * e * e;
            }
            pop.rates = (r0 / dt, r1 / dt, r2 / dt);
            pop.queue.push_back(pop.fired.clone());
            if pop.ref_steps == 0 {
                let m = pop.queue.pop_front().expect("just pushed");
                for (r, x) in m.into_iter().enumerate() {
                    if x > 0.0 {
                        pop.deposit_row(r, x);
                    }
                }
            }
            // 4. Labels.
            if let Some(l) = pop.labels.clone() {
                if l.dependence() == Dependence::Aggregate {
                    let vel: Vec<f64> = pop
                        .nodes
                        .iter()
                        .flat_map(|(beta, _)| {
                            face_velocities(&pop.grid, &rate_matrix(&l, beta, mean_eff[p]))
                        })
                        .collect();
                    pop.label_step(dt, &vel, true);
                    pop.queue_label_step(dt, &vel);
                } else {
                    let vel = std::mem::take(&mut pop.vel);
                    pop.label_step(dt, &vel, false);
                    pop.vel = vel;
                    let vel = std::mem::take(&mut pop.vel_reset);
                    pop.queue_label_step(dt, &vel);
                    pop.vel_reset = vel;
                }
                // 5. Refresh.
                pop.refresh(dt, l.refresh_rate() / 1000.0);
            }
            pop.hist.push_back((pop.rates.1, pop.rates.2));
            pop.summarise();
        }
        let longest = self
            .inputs
            .iter()
            .map(|i| match i.term {
                Term::Projection { delay, .. } => (delay / dt).ceil() as usize + 2,
                _ => 1,
            })
            .max()
            .unwrap_or(1);
        for pop in &mut self.pops {
            while pop.hist.len() > longest {
                pop.hist.pop_front();
            }
        }
        self.t += dt;
    }

    /// Advances to `t` \[ms\]; the rates then are the mean over the steps taken.
    pub fn advance_to(&mut self, t: f64) {
        let start = self.t;
        let mut fired = vec![0.0; self.pops.len()];
        while self.t < t - 1e-9 * self.dt {
            self.step();
            for (f, p) in fired.iter_mut().zip(&self.pops) {
                *f += p.rates.0 * self.dt;
            }
        }
        if self.t > start {
            self.last_rates = fired.iter().map(|f| f / (self.t - start)).collect();
        }
    }

    /// Changes the step to `dt` \[ms\] (a whole fraction of the refractory time).
    pub fn set_step(&mut self, dt: f64) {
        self.dt = dt;
        for p in &mut self.pops {
            p.ref_steps = (p.t_ref / dt).round() as usize;
        }
    }

    /// Rates [1/ms] over the last [`LabelSolver::advance_to`].
    pub fn rates(&self) -> Vec<f64> {
        self.last_rates.clone()
    }

    /// Integrates until the rates averaged over successive 100 ms windows change by less than
    /// `tol` (relative, or 1e-9/ms absolute), for at most `t_max` ms more; whether they did.
    pub fn steady_state(&mut self, tol: f64, t_max: f64) -> bool {
        let end = self.t + t_max;
        let mut prev: Option<Vec<f64>> = None;
        while self.t < end {
            let t = self.t + 100.0;
            self.advance_to(t);
            let r = self.rates();
            if let Some(p) = &prev {
                if r.iter()
                    .zip(p)
                    .all(|(a, b)| (a - b).abs() <= tol * a.abs().max(b.abs()) + 1e-9)
                {
                    return true;
                }
            }
            prev = Some(r);
        }
        false
    }

    /// Total mass of population `p` (1 to round-off).
    pub fn mass(&self, p: usize) -> f64 {
        let pop = &self.pops[p];
        pop.f.iter().sum::<f64>() * pop.h + pop.refractory()
    }

    /// The mean label (class probabilities) of population `p`.
    pub fn mean_label(&self, p: usize) -> Vec<f64> {
        let pop = &self.pops[p];
        let m = pop.label_mass();
        (0..pop.grid.k)
            .map(|k| {
                m.iter()
                    .enumerate()
                    .map(|(c, x)| x * pop.grid.centre[c][k])
                    .sum()
            })
            .collect()
    }

    /// The mean efficacy of population `p`.
    pub fn mean_efficacy(&self, p: usize) -> f64 {
        self.pops[p].expect(|_| 1.0, true)
    }

    /// Cells of population `p` (environment nodes x label cells x potential cells).
    pub fn cells(&self, p: usize) -> usize {
        self.pops[p].f.len()
    }
}

// ------------------------------------------------------------------------------------------
// The family: what it covers, and its limit built from a configuration.

fn no_limit(key: String, reason: &str) -> Error {
    Error::NoLimit {
        key,
        reason: reason.to_string(),
    }
}

/// Whether `config` (in which some population has labels) has this limit; else the first
/// feature without one, named by its key.
pub fn check(config: &Config) -> Result<(), Error> {
    for p in &config.populations {
        let m = &p.model;
        let key = |k: &str| format!("population.{}.{k}", p.name);
        if let Some(l) = &m.labels {
            if l.k() > MAX_LIMIT_CLASSES {
                return Err(no_limit(
                    key("labels.efficacy"),
                    "labels of more than three classes (the limit's simplex grid is at most a triangle)",
                ));
            }
        }
        if m.noise != NoiseKind::Additive {
            return Err(no_limit(key("noise"), "multiplicative noise with labels"));
        }
        if m.synapse != SynapseKind::Delta {
            return Err(no_limit(key("synapse"), "current and conductance synapses"));
        }
        if m.kind == ModelKind::Fhn {
            return Err(no_limit(key("model"), "FitzHugh-Nagumo with labels"));
        }
        if m.spike == SpikeRule::None {
            return Err(no_limit(
                key("spike"),
                "spike = \"none\" in a labelled network (threshold or escape spikes)",
            ));
        }
    }
    for a in &config.aggregates {
        let key = |k: &str| format!("aggregate.{}.{k}", a.name);
        let spikes = a.s == RawS::Spikes;
        match a.kind {
            AggregateKind::Electrical if a.efficacy => {
                return Err(no_limit(
                    key("efficacy"),
                    "efficacy-weighted electrical coupling",
                ))
            }
            AggregateKind::Electrical | AggregateKind::Chemical | AggregateKind::Current
                if !spikes && a.s != RawS::Intensity => {}
            AggregateKind::Jump if spikes => {}
            _ => {
                return Err(no_limit(
                    key("kind"),
                    "in a labelled network: electrical, chemical and current terms of s = one, potential or sigmoid, and jump terms of s = spikes",
                ))
            }
        }
        if a.kernel.iter().any(|&k| k != a.kernel[0]) {
            return Err(no_limit(
                key("kernel"),
                "a kernel in a labelled network (its limit is not spatial)",
            ));
        }
    }
    for proj in &config.projections {
        let key = |k: &str| format!("projection.{}.{k}", proj.name);
        if let ConnRule::File(_) = proj.rule {
            return Err(no_limit(key("file"), "edges read from a file"));
        }
        if proj.kernel.is_some() {
            return Err(no_limit(
                key("kernel"),
                "a kernel in a labelled network (its limit is not spatial)",
            ));
        }
        if proj.per_synapse_weights() {
            return Err(no_limit(
                key("weight_dist"),
                "random weights in a labelled network",
            ));
        }
    }
    Ok(())
}

/// The limit of a configuration that passed [`check`].
pub fn limit(config: &Config) -> Result<LabelLimit, Error> {
    let mf = &config.raw.meanfield;
    let (v_min, v_max, cells) = super::common::grid(config);
    let sub = (config.dt / mf.dt).ceil().max(1.0);
    let dt = config.dt / sub;
    let mut pops = Vec::new();
    for p in &config.populations {
        let m = &p.model;
        let b = &m.base;
        let threshold = m.spike == SpikeRule::Threshold;
        let hi = if threshold { b.v_th } else { v_max };
        let key = |k: &str| format!("population.{}.{k}", p.name);
        let (lo, top) = b.v_init;
        if lo < v_min || top > hi || (threshold && lo >= hi) {
            return Err(Error::Argument {
                key: key("v_init_min"),
                value: format!("{lo} (v_init_max {top})"),
                reason: format!(
                    "the limit starts from initial potentials inside its grid [{v_min}, {hi}) [mV] (meanfield.v_min, {})",
                    if threshold { "v_th" } else { "meanfield.v_max" }
                ),
            });
        }
        if !(v_min..hi).contains(&b.v_reset) {
            return Err(Error::Argument {
                key: key("v_reset"),
                value: b.v_reset.to_string(),
                reason: format!("must lie inside the limit's grid [{v_min}, {hi}) [mV]"),
            });
        }
        let h = (hi - v_min) / cells as f64;
        let ext_mu = b.poisson_rate / 1000.0 * b.poisson_weight;
        let ext_var = b.poisson_rate / 1000.0 * b.poisson_weight * b.poisson_weight;
        let drift_face = (0..=cells)
            .map(|k| m.intrinsic_drift(v_min + k as f64 * h, 0.0) + ext_mu)
            .collect();
        let centre = |i: usize| v_min + (i as f64 + 0.5) * h;
        let nu = match (&m.escape, threshold) {
            (Some(e), false) => (0..cells)
                .map(|i| intensity(e, centre(i)) / 1000.0)
                .collect(),
            _ => Vec::new(),
        };
        let reset = reset_split(b.v_reset, v_min, h, cells);
        let labels = m.labels.clone();
        let k = labels.as_ref().map_or(1, Labels::k);
        let grid = LabelGrid::new(k, mf.label_cells as usize);
        let eff: Vec<f64> = (0..grid.cells())
            .map(|c| {
                labels
                    .as_ref()
                    .map_or(1.0, |l| l.efficacy(&grid.centre[c][..k]))
            })
            .collect();
        let nodes = labels.as_ref().map_or(vec![(Vec::new(), 1.0)], |l| {
            environment_nodes(l, mf.beta_nodes as usize)
        });
        let total = nodes.len() * grid.cells() * cells;
        if total > MAX_CELLS {
            return Err(Error::Argument {
                key: "meanfield.label_cells".into(),
                value: mf.label_cells.to_string(),
                reason: format!(
                    "population {} would need {} environment nodes x {} label cells x {cells} potential cells = {total} cells, more than {MAX_CELLS}: lower meanfield.label_cells, meanfield.beta_nodes or meanfield.cells",
                    p.name,
                    nodes.len(),
                    grid.cells()
                ),
            });
        }
        let (nq, nc, nf) = (nodes.len(), grid.cells(), grid.faces.len());
        // Initial state: the run's law of V, every label at `init`, the environment's law.
        let v0 = super::common::InitialLaw::of(b).histogram(
            &(0..=cells)
                .map(|i| v_min + i as f64 * h)
                .collect::<Vec<_>>(),
        );
        let l0 = labels
            .as_ref()
            .map_or(vec![(0, 1.0)], |l| grid.deposit(l.initial()));
        let mut f = vec![0.0; nq * nc * cells];
        for (q, (_, wq)) in nodes.iter().enumerate() {
            for &(c, wc) in &l0 {
                let row = &mut f[(q * nc + c) * cells..(q * nc + c + 1) * cells];
                for (x, y) in row.iter_mut().zip(&v0) {
                    *x += wq * wc * y;
                }
            }
        }
        let (mut vel, mut vel_reset) = (Vec::new(), Vec::new());
        if let Some(l) = labels
            .as_ref()
            .filter(|l| l.dependence() != Dependence::Aggregate)
        {
            vel = vec![0.0; nq * nf * cells];
            for (q, (beta, _)) in nodes.iter().enumerate() {
                for i in 0..cells {
                    let u = face_velocities(&grid, &rate_matrix(l, beta, centre(i)));
                    for (face, x) in u.into_iter().enumerate() {
                        vel[(q * nf + face) * cells + i] = x;
                    }
                }
                vel_reset.extend(face_velocities(&grid, &rate_matrix(l, beta, b.v_reset)));
            }
        }
        pops.push(Pop {
            threshold,
            v_lo: v_min,
            h,
            nv: cells,
            drift_face,
            nu,
            sigma2: b.sigma * b.sigma + ext_var,
            v_reset: b.v_reset,
            reset,
            t_ref: f64::from(b.ref_steps) * config.dt,
            ref_steps: b.ref_steps as usize * sub as usize,
            labels,
            grid,
            eff,
            nodes,
            f,
            queue: VecDeque::new(),
            vel,
            vel_reset,
            fired: vec![0.0; nq * nc],
            hist: VecDeque::new(),
            rates: (0.0, 0.0, 0.0),
            tri: Tridiagonal::new(cells),
            scratch: Vec::new(),
            survive: Vec::new(),
            survive_dt: 0.0,
            sums: (Vec::new(), Vec::new(), 0.0, 0.0),
        });
        pops.last_mut().expect("just pushed").summarise();
    }
    let mut inputs: Vec<Input> = config
        .aggregates
        .iter()
        .map(|a| {
            let g = a.j
                * config.populations[a.source].size as f64
                * a.kernel.first().copied().unwrap_or(1.0);
            Input {
                source: a.source,
                target: a.target,
                term: match a.kind {
                    AggregateKind::Electrical => Term::Electrical { g },
                    AggregateKind::Chemical => Term::Chemical {
                        g,
                        reversal: a.reversal,
                    },
                    AggregateKind::Current => Term::Current { g },
                    _ => Term::Spikes { g },
                },
                s: a.s.clone(),
                efficacy: a.efficacy,
                target_efficacy: a.target_efficacy,
            }
        })
        .collect();
    for proj in &config.projections {
        let k_in = indegree(config, proj);
        inputs.push(Input {
            source: proj.source,
            target: proj.target,
            term: Term::Projection {
                kw: k_in * proj.weight,
                kw2: k_in * proj.weight * proj.weight,
                delay: f64::from(proj.delay_steps) * config.dt,
            },
            s: RawS::Spikes,
            efficacy: true,
            target_efficacy: false,
        });
    }
    Ok(LabelLimit {
        solver: LabelSolver {
            last_rates: vec![0.0; pops.len()],
            pops,
            inputs,
            dt,
            t: 0.0,
        },
        groups: PopulationGroups::new(config),
    })
}

/// The labelled network's solver seen through the `Limit` trait of `run.rs`.
pub struct LabelLimit {
    pub solver: LabelSolver,
    groups: PopulationGroups,
}

impl Limit for LabelLimit {
    fn advance_to(&mut self, t: f64) {
        self.solver.advance_to(t);
    }
    fn rates(&self) -> Vec<f64> {
        self.solver.rates()
    }
    /// Over every neuron, refractory ones at `v_reset`.
    fn moments(&self) -> Vec<(f64, f64)> {
        self.solver
            .pops
            .iter()
            .map(|p| {
                let m = p.expect(|v| v, false);
                (m, (p.expect(|v| (v - m) * (v - m), false)).max(0.0))
            })
            .collect()
    }
    fn densities(&self, edges: &[f64]) -> Vec<Vec<(Vec<f64>, f64)>> {
        self.solver
            .pops
            .iter()
            .map(|p| {
                let mut d = rebin(&p.sums.0, &p.edges(), edges);
                add_point_mass(&mut d, edges, p.v_reset, p.refractory());
                vec![(d, 1.0)]
            })
            .collect()
    }
    fn groups(&self) -> usize {
        self.groups.groups()
    }
    fn share(&self, g: usize) -> f64 {
        self.groups.share(g)
    }
    fn coupling(&self, k: usize) -> &[Vec<f64>] {
        self.groups.coupling(k)
    }
    fn expectation(&self, g: usize, phi: TestFunction, dt: f64) -> f64 {
        let p = &self.solver.pops[g];
        if phi == TestFunction::Spike && p.threshold {
            return self.solver.rates()[g];
        }
        let nu_at = |v: f64| {
            if p.nu.is_empty() {
                0.0
            } else {
                let i = (((v - p.v_lo) / p.h) as usize).min(p.nv - 1);
                p.nu[i]
            }
        };
        p.expect(|v| phi_at(phi, v, nu_at(v), dt), false)
    }
    fn label_densities(&self, bins: usize) -> Vec<Option<Vec<f64>>> {
        self.solver
            .pops
            .iter()
            .map(|p| {
                p.labels
                    .as_ref()
                    .map(|_| p.grid.class_densities(&p.label_mass(), bins))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gauss-Hermite, -Legendre and -Laguerre rules reproduce the moments of their laws: the
    /// lognormal's `E[beta^j] = exp(j mu + j^2 sigma^2 / 2)`, the uniform's and the gamma's
    /// closed forms, up to the degree the rule integrates exactly.
    #[test]
    fn quadratures_reproduce_moments() {
        let moment =
            |rule: &[(f64, f64)], j: i32| rule.iter().map(|(x, w)| w * x.powi(j)).sum::<f64>();
        let (mu, sigma) = (-0.1, 0.45);
        let rule = environment_quadrature(EnvironmentLaw::Lognormal { mu, sigma }, 6);
        // In z the rule is exact to degree 11; exp(j sigma z) is not a polynomial, so the
        // moments carry the rule's truncation error, which grows with j (a 6-point
        // Gauss-Hermite rule computed elsewhere: 1e-10, 3.4e-7, 3.4e-5 relative for j = 1, 2, 3).
        for (j, tol) in [(0, 1e-12), (1, 1e-9), (2, 1e-6), (3, 1e-4)] {
            let want = (f64::from(j) * mu + 0.5 * f64::from(j * j) * sigma * sigma).exp();
            assert!(
                (moment(&rule, j) - want).abs() < tol * want,
                "lognormal j = {j}"
            );
        }
        let rule = environment_quadrature(
            EnvironmentLaw::Uniform {
                lo: 0.5,
                width: 2.0,
            },
            3,
        );
        for j in 0..=5 {
            let want = (2.5f64.powi(j + 1) - 0.5f64.powi(j + 1)) / (2.0 * f64::from(j + 1));
            assert!(
                (moment(&rule, j) - want).abs() < 1e-12 * want,
                "uniform j = {j}"
            );
        }
        let (shape, scale) = (4.0, 0.25);
        let rule = environment_quadrature(EnvironmentLaw::Gamma { shape, scale }, 3);
        let mut want = 1.0;
        for j in 0..=5 {
            assert!(
                (moment(&rule, j) - want).abs() < 1e-10 * want,
                "gamma j = {j}"
            );
            want *= scale * (shape + f64::from(j));
        }
    }

    /// The label grid of three classes tiles the simplex: its cells' masses spread as class
    /// densities keep the total and the mean of each class at the cell centres.
    #[test]
    fn three_class_grid_keeps_mass_and_means() {
        let g = LabelGrid::new(3, 10);
        assert_eq!(g.cells(), 55);
        let mass: Vec<f64> = (0..g.cells()).map(|c| 1.0 + c as f64 % 3.0).collect();
        let total: f64 = mass.iter().sum();
        let d = g.class_densities(&mass, 50);
        for k in 0..3 {
            let m: f64 = d[k * 50..(k + 1) * 50].iter().sum::<f64>() / 50.0;
            assert!(
                (m - total).abs() < 1e-9 * total,
                "class {k}: {m} vs {total}"
            );
        }
    }
}
