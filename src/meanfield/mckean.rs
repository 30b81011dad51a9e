//! The McKean-Vlasov limit of strongly coupled networks (Quiñinao-Touboul): populations
//! without spikes (`spike = "none"`), additive noise, coupled only through electrical and
//! separable chemical aggregate terms, in the limit `n -> infinity` at fixed `J n`.
//!
//! The sums of [`crate::aggregate`] become expectations under the limit density `f_q` of the
//! source population `q`: a neuron of population `p` at potential `v` receives the drift
//!
//! ```text
//! electrical:  -g (v - E_q[V])            g = J n_q  (= j0 n_q^alpha)
//! chemical:    -g E_q[s(V)] (v - v_q)     s = one, potential or sigmoid
//! ```
//!
//! and `f_p(t, v)` (or `f_p(t, v, w)` for FitzHugh-Nagumo) solves the Fokker-Planck equation
//!
//! ```text
//! d_t f = -d_v [(f(v, w) + input(v)) f] + (sigma^2 / 2) d_vv f - d_w [eps (v + a - b w) f]
//! ```
//!
//! with `f(v, w)` the model's own intrinsic drift ([`crate::model::neuron::Neuron`]).
//!
//! **Scheme.** Finite volumes with Scharfetter-Gummel fluxes in `v` (exponential fitting:
//! positive, exact for the stationary flux-free profile of each face), backward Euler in time
//! on the particle run's step, zero flux at the ends of the grid. The coupling enters the
//! drift, so the part linear in `v`, however stiff (`J n dt >> 1`), is implicit. The
//! chemical coefficients `E_q[s]` are taken at the start of the step (explicit, first order).
//! The electrical centre `E_q[V]` is implicit: the means at the end of the step are the
//! unknowns of a small nonlinear system (one per source population of electrical terms),
//! solved by Newton's method with a finite-difference Jacobian, because an electrical centre
//! frozen at the start of the step pins the mean where the step began when `J n dt >> 1`
//! (the error the particle integrator once had). FitzHugh-Nagumo adds an implicit upwind step
//! in `w` (Lie splitting; `w` has no noise). Measured accuracy (`tests/mckean.rs`): against
//! the closed-form mean and variance of the linear (Ornstein-Uhlenbeck) case, fitted order 1.8
//! in the cell width `h` (mean error 0.0070 mV on 480 cells of 12 mV) and first order in the
//! time step, unchanged at `g dt = 10`; FitzHugh-Nagumo about first order in the cell width
//! (the upwinded `w`). The grid must resolve the spread `sigma / sqrt(2 g)`: a density
//! narrower than a cell cannot move across cells, and its mean is pinned to the grid.
//!
//! **Rate.** A population without spikes has no flux through a threshold; the particle run
//! counts upward crossings of `v_th` between consecutive steps, a number that grows like
//! `dt^(-1/2)` for a diffusion. The limit writes the same quantity at the run's `dt`: the
//! probability that one step of the particle scheme (exponential Euler, mean
//! `v + b(v) phi(C, dt)`, standard deviation `sigma sqrt(phi(2 C, dt))`) takes a neuron at
//! `v < v_th` to `v >= v_th`, integrated against the limit density, per unit time. Like for like
//! with the run at the same `dt`; not a rate of the continuous-time limit.

use super::common::{phi_at, rebin, Limit, PopulationGroups};
use crate::aggregate::{AggregateKind, RawS};
use crate::config::trees::TestFunction;
use crate::config::{Config, ModelKind, NoiseKind, SpikeRule};
use crate::model::neuron::Neuron;
use crate::Error;

/// One coupling term of the limit.
#[derive(Clone, Debug)]
pub struct Term {
    pub source: usize,
    pub target: usize,
    pub electrical: bool,
    /// `J n_q` times the kernel's mean [1/ms].
    pub g: f64,
    /// Chemical reversal `v_q` \[mV\].
    pub reversal: f64,
    pub s: RawS,
}

impl Term {
    fn s_of(&self, v: f64) -> f64 {
        match &self.s {
            RawS::One => 1.0,
            RawS::Potential => v,
            RawS::Sigmoid { theta, delta, max } => max / (1.0 + (-(v - theta) / delta).exp()),
            // Refused by the family check in `run.rs`.
            RawS::Intensity | RawS::Spikes => 0.0,
        }
    }
}

/// The density of one population on its grid: `nw` rows (1 without `w`) of `nv` cells in `v`.
#[derive(Clone, Debug)]
pub struct Pop {
    pub model: Neuron,
    pub nv: usize,
    pub nw: usize,
    /// Lower grid ends \[mV\], \[1\] and cell widths.
    pub v_lo: f64,
    pub hv: f64,
    pub w_lo: f64,
    pub hw: f64,
    /// Density [1/(mV w)], row-major in `w`: `f[j nv + i]`.
    pub f: Vec<f64>,
}

impl Pop {
    fn v(&self, i: usize) -> f64 {
        self.v_lo + (i as f64 + 0.5) * self.hv
    }
    fn w(&self, j: usize) -> f64 {
        self.w_lo + (j as f64 + 0.5) * self.hw
    }
    fn cell(&self) -> f64 {
        self.hv * self.hw
    }
    /// `E[phi(V)]`.
    fn expect(&self, phi: impl Fn(f64) -> f64) -> f64 {
        let mut s = 0.0;
        for j in 0..self.nw {
            let row = &self.f[j * self.nv..(j + 1) * self.nv];
            for (i, x) in row.iter().enumerate() {
                s += x * phi(self.v(i));
            }
        }
        s * self.cell()
    }
    pub fn mean(&self) -> f64 {
        self.expect(|v| v)
    }
    /// The marginal density of V [1/mV] on the cells.
    pub fn marginal(&self) -> Vec<f64> {
        let mut m = vec![0.0; self.nv];
        for j in 0..self.nw {
            for (x, y) in m.iter_mut().zip(&self.f[j * self.nv..(j + 1) * self.nv]) {
                *x += y * self.hw;
            }
        }
        m
    }
    pub fn edges(&self) -> Vec<f64> {
        (0..=self.nv)
            .map(|i| self.v_lo + i as f64 * self.hv)
            .collect()
    }
}

/// The drift a population receives from the coupling, `a - c v` [mV/ms, 1/ms].
#[derive(Clone, Copy, Debug, Default)]
struct Input {
    a: f64,
    c: f64,
}

/// `z / (e^z - 1)`, continuous at 0.
fn bernoulli(z: f64) -> f64 {
    if z.abs() < 1e-8 {
        1.0 - 0.5 * z
    } else {
        z / z.exp_m1()
    }
}

/// Flux coefficients `(alpha, beta)` of a face with drift `b` and diffusion `d` over width
/// `h`: the flux is `alpha f_left - beta f_right` (Scharfetter-Gummel; upwind when `d = 0`).
fn fluxes(b: f64, d: f64, h: f64) -> (f64, f64) {
    if d <= 0.0 {
        return (b.max(0.0), (-b).max(0.0));
    }
    let z = b * h / d;
    // B(-z) = B(z) + z: one exponential per face.
    let bz = bernoulli(z);
    (d / h * (bz + z), d / h * bz)
}

/// Solves `x_i + (dt/h) (F_{i+1/2} - F_{i-1/2}) = rhs_i` in place, `F_{i+1/2} = alpha_i x_i -
/// beta_i x_{i+1}` for the `n - 1` inner faces, zero flux at the ends (Thomas algorithm; the
/// matrix is an M-matrix, diagonally dominant by columns, so no pivoting is needed).
fn implicit(alpha: &[f64], beta: &[f64], k: f64, x: &mut [f64], cp: &mut Vec<f64>) {
    let n = x.len();
    cp.clear();
    cp.resize(n, 0.0);
    let diag = |i: usize| {
        1.0 + k * (if i + 1 < n { alpha[i] } else { 0.0 } + if i > 0 { beta[i - 1] } else { 0.0 })
    };
    // Forward sweep: row i has lower -k alpha_{i-1}, upper -k beta_i.
    let mut denom = diag(0);
    cp[0] = if n > 1 { -k * beta[0] / denom } else { 0.0 };
    x[0] /= denom;
    for i in 1..n {
        let lower = -k * alpha[i - 1];
        denom = diag(i) - lower * cp[i - 1];
        cp[i] = if i + 1 < n { -k * beta[i] / denom } else { 0.0 };
        x[i] = (x[i] - lower * x[i - 1]) / denom;
    }
    for i in (0..n - 1).rev() {
        x[i] -= cp[i] * x[i + 1];
    }
}

/// Standard normal upper tail `P(Z > x)` (Abramowitz-Stegun 7.1.26 on `erfc`, absolute error
/// below 1e-7).
fn upper_tail(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * erfc
    } else {
        1.0 - 0.5 * erfc
    }
}

/// `int_u^inf Q(x) dx = pdf(u) - u Q(u)` (`Q` the standard normal upper tail): so that
/// `int_a^b Q(x) dx = tail_integral(a) - tail_integral(b)`.
fn tail_integral(u: f64) -> f64 {
    let pdf = (-0.5 * u * u).exp() / (2.0 * std::f64::consts::PI).sqrt();
    pdf - u * upper_tail(u)
}

/// `(1 - e^{-c dt}) / c`, continuous at 0.
fn phi(c: f64, dt: f64) -> f64 {
    if (c * dt).abs() < 1e-12 {
        dt
    } else {
        -(-c * dt).exp_m1() / c
    }
}

/// The McKean-Vlasov system of a configuration.
pub struct McKeanSolver {
    pub pops: Vec<Pop>,
    pub terms: Vec<Term>,
    /// Source populations of electrical terms: the unknowns of each step's Newton solve.
    centres: Vec<usize>,
    pub t: f64,
    /// Time step \[ms\] (the particle run's).
    pub dt: f64,
    scratch: (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>),
}

impl McKeanSolver {
    pub fn new(pops: Vec<Pop>, terms: Vec<Term>, dt: f64) -> McKeanSolver {
        let mut centres: Vec<usize> = terms
            .iter()
            .filter(|t| t.electrical)
            .map(|t| t.source)
            .collect();
        centres.sort_unstable();
        centres.dedup();
        McKeanSolver {
            pops,
            terms,
            centres,
            t: 0.0,
            dt,
            scratch: Default::default(),
        }
    }

    /// The coupling drift of each population, with the electrical centres `m` (per entry of
    /// `centres`) and the chemical coefficients of the current densities.
    fn inputs(&self, chem: &[f64], m: &[f64]) -> Vec<Input> {
        let mut inp = vec![Input::default(); self.pops.len()];
        for (t, &es) in self.terms.iter().zip(chem) {
            let x = &mut inp[t.target];
            if t.electrical {
                let k = self
                    .centres
                    .iter()
                    .position(|&q| q == t.source)
                    .expect("every electrical source is a centre");
                x.a += t.g * m[k];
                x.c += t.g;
            } else {
                x.a += t.g * es * t.reversal;
                x.c += t.g * es;
            }
        }
        inp
    }

    /// `E_q[s]` of each chemical term (0 for electrical ones) under the current densities.
    fn chemical(&self) -> Vec<f64> {
        self.terms
            .iter()
            .map(|t| {
                if t.electrical {
                    0.0
                } else {
                    self.pops[t.source].expect(|v| t.s_of(v))
                }
            })
            .collect()
    }

    /// The implicit step in `v` of population `p` from `old` with coupling `inp`, into `new`.
    fn v_step(&mut self, p: usize, inp: Input, old: &[f64], new: &mut Vec<f64>) {
        let pop = &self.pops[p];
        let (nv, hv, dt) = (pop.nv, pop.hv, self.dt);
        let d = 0.5 * pop.model.base.sigma * pop.model.base.sigma;
        let (alpha, beta, cp, _) = &mut self.scratch;
        new.clear();
        new.extend_from_slice(old);
        alpha.resize(nv.saturating_sub(1), 0.0);
        beta.resize(nv.saturating_sub(1), 0.0);
        for j in 0..pop.nw {
            let w = if pop.nw > 1 { pop.w(j) } else { 0.0 };
            for i in 0..nv.saturating_sub(1) {
                let v = pop.v_lo + (i + 1) as f64 * hv;
                let b = pop.model.intrinsic_drift(v, w) + inp.a - inp.c * v;
                (alpha[i], beta[i]) = fluxes(b, d, hv);
            }
            implicit(alpha, beta, dt / hv, &mut new[j * nv..(j + 1) * nv], cp);
        }
    }

    /// The implicit upwind step in `w` (FitzHugh-Nagumo) of population `p`.
    fn w_step(&mut self, p: usize) {
        let pop = &self.pops[p];
        if pop.nw < 2 {
            return;
        }
        let (fa, fb, eps) = pop.model.fhn;
        let (nv, nw, hw, dt) = (pop.nv, pop.nw, pop.hw, self.dt);
        let (v_lo, hv, w_lo) = (pop.v_lo, pop.hv, pop.w_lo);
        let (alpha, beta, cp, col) = &mut self.scratch;
        alpha.resize(nw - 1, 0.0);
        beta.resize(nw - 1, 0.0);
        let f = &mut self.pops[p].f;
        for i in 0..nv {
            let v = v_lo + (i as f64 + 0.5) * hv;
            for j in 0..nw - 1 {
                let w = w_lo + (j + 1) as f64 * hw;
                (alpha[j], beta[j]) = fluxes(eps * (v + fa - fb * w), 0.0, hw);
            }
            col.clear();
            col.extend((0..nw).map(|j| f[j * nv + i]));
            implicit(alpha, beta, dt / hw, col, cp);
            for (j, x) in col.iter().enumerate() {
                f[j * nv + i] = *x;
            }
        }
    }

    /// One step of length `dt`.
    pub fn step(&mut self) {
        let chem = self.chemical();
        let n = self.pops.len();
        let olds: Vec<Vec<f64>> = self.pops.iter().map(|p| p.f.clone()).collect();
        let mut news: Vec<Vec<f64>> = vec![Vec::new(); n];
        let k = self.centres.len();
        // Populations whose drift depends on the electrical centres are solved again for each
        // trial centre; the others once.
        let moved: Vec<bool> = (0..n)
            .map(|p| self.terms.iter().any(|t| t.electrical && t.target == p))
            .collect();
        let m0: Vec<f64> = self.centres.iter().map(|&q| self.pops[q].mean()).collect();
        let inp = self.inputs(&chem, &m0);
        for p in (0..n).filter(|&p| !moved[p]) {
            self.v_step(p, inp[p], &olds[p], &mut news[p]);
        }
        // The residual of the electrical centres: mean after the step minus the centre used.
        let solve = |s: &mut Self, m: &[f64], news: &mut Vec<Vec<f64>>| -> Vec<f64> {
            let inp = s.inputs(&chem, m);
            for p in (0..n).filter(|&p| moved[p]) {
                s.v_step(p, inp[p], &olds[p], &mut news[p]);
            }
            s.centres
                .iter()
                .zip(m)
                .map(|(&q, &mq)| {
                    let pop = &s.pops[q];
                    let mut mean = 0.0;
                    for j in 0..pop.nw {
                        for i in 0..pop.nv {
                            mean += news[q][j * pop.nv + i] * pop.v(i);
                        }
                    }
                    mean * pop.cell() - mq
                })
                .collect()
        };
        let mut m = m0;
        let mut r = solve(self, &m, &mut news);
        if k > 0 {
            // Finite-difference Jacobian at the start (the map is nearly affine in m), then
            // chord iterations.
            let mut jac = vec![vec![0.0; k]; k];
            for c in 0..k {
                let h = 1e-6 * (1.0 + m[c].abs());
                let mut mc = m.clone();
                mc[c] += h;
                let rc = solve(self, &mc, &mut news);
                for row in 0..k {
                    jac[row][c] = (rc[row] - r[row]) / h;
                }
            }
            let norm = |r: &[f64]| r.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            for _ in 0..8 {
                let delta = linear_solve(&jac, &r);
                for (x, d) in m.iter_mut().zip(&delta) {
                    *x -= d;
                }
                let before = norm(&r);
                r = solve(self, &m, &mut news);
                let scale = 1.0 + norm(&m);
                // Converged, or at the round-off floor of the finite-difference Jacobian.
                if norm(&r) < 1e-11 * scale || norm(&r) > 0.5 * before {
                    break;
                }
            }
        }
        for (p, f) in self.pops.iter_mut().zip(news) {
            p.f = f;
        }
        for p in 0..n {
            self.w_step(p);
        }
        self.t += self.dt;
    }

    /// Marches with at most 2000 steps of `t_max / 2000` (at least one particle step; the
    /// scheme is implicit, and backward Euler's fixed points do not depend on the step) until
    /// the density changes by less than `tol` (L1) per ms, or `t_max` \[ms\]; whether it
    /// converged. The rates keep the particle step.
    pub fn steady_state(&mut self, tol: f64, t_max: f64) -> bool {
        let dt = self.dt;
        self.dt = dt.max(t_max / 2000.0);
        let mut converged = false;
        let start = self.t;
        while self.t - start < t_max {
            let before: Vec<Vec<f64>> = self.pops.iter().map(|p| p.f.clone()).collect();
            self.step();
            let change = self
                .pops
                .iter()
                .zip(&before)
                .map(|(p, b)| p.f.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() * p.cell())
                .fold(0.0, f64::max);
            if change < tol * self.dt {
                converged = true;
                break;
            }
        }
        self.dt = dt;
        converged
    }

    pub fn advance_to(&mut self, t: f64) {
        while self.t < t - 1e-9 * self.dt {
            self.step();
        }
    }

    /// Per population: (mean, variance) of V.
    pub fn moments(&self) -> Vec<(f64, f64)> {
        self.pops
            .iter()
            .map(|p| {
                let m = p.mean();
                (m, p.expect(|v| (v - m) * (v - m)))
            })
            .collect()
    }

    /// Per population: upward crossings of `v_th` per ms by one step of the particle scheme
    /// at step `dt` (see the module doc).
    pub fn rates(&self) -> Vec<f64> {
        let chem = self.chemical();
        let m: Vec<f64> = self.centres.iter().map(|&q| self.pops[q].mean()).collect();
        let inp = self.inputs(&chem, &m);
        let dt = self.dt;
        self.pops
            .iter()
            .zip(inp)
            .map(|(pop, x)| {
                let model = &pop.model;
                let v_th = model.base.v_th;
                let c = model.linear_rate() + x.c;
                let sd = model.base.sigma * phi(2.0 * c, dt).sqrt();
                let ph = phi(c, dt);
                // Per cell, the density is constant and the drift taken at the centre: the
                // crossing probability integrates in closed form over the part of the cell
                // below v_th (the step's spread is often far below the cell width).
                let mut p = 0.0;
                for j in 0..pop.nw {
                    let w = if pop.nw > 1 { pop.w(j) } else { 0.0 };
                    for i in 0..pop.nv {
                        let lo = pop.v_lo + i as f64 * pop.hv;
                        if lo >= v_th {
                            break;
                        }
                        let f = pop.f[j * pop.nv + i];
                        if f == 0.0 {
                            continue;
                        }
                        let hi = (lo + pop.hv).min(v_th);
                        let v = pop.v(i);
                        let shift = (model.intrinsic_drift(v, w) + x.a - x.c * v) * ph;
                        // Crossing from v: P(v + shift + sd Z >= v_th) = Q((v_th - shift - v) / sd).
                        let mass = if sd > 0.0 {
                            let u = |y: f64| (v_th - shift - y) / sd;
                            if u(hi) > 9.0 {
                                continue;
                            }
                            sd * (tail_integral(u(hi)) - tail_integral(u(lo)))
                        } else {
                            (hi - (v_th - shift).max(lo)).max(0.0)
                        };
                        p += f * mass * pop.hw;
                    }
                }
                p / dt
            })
            .collect()
    }
}

/// Solves the small dense system `a x = b` (Gaussian elimination with partial pivoting; a
/// singular pivot gives a zero update for that unknown).
fn linear_solve(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let k = b.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(row, &y)| {
            let mut r = row.clone();
            r.push(y);
            r
        })
        .collect();
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap_or(col);
        m.swap(col, piv);
        if m[col][col].abs() < 1e-300 {
            continue;
        }
        for row in 0..k {
            if row != col {
                let f = m[row][col] / m[col][col];
                let pivot = m[col].clone();
                for (x, y) in m[row][col..].iter_mut().zip(&pivot[col..]) {
                    *x -= f * y;
                }
            }
        }
    }
    (0..k)
        .map(|i| {
            if m[i][i].abs() < 1e-300 {
                0.0
            } else {
                m[i][k] / m[i][i]
            }
        })
        .collect()
}

/// The mass of the uniform law on `[lo, hi]` (a point mass when `lo = hi`) in each of `n`
/// cells of width `h` from `x0`, as a density [1/h].
fn uniform_cells(lo: f64, hi: f64, x0: f64, h: f64, n: usize) -> Vec<f64> {
    let edges: Vec<f64> = (0..=n).map(|i| x0 + i as f64 * h).collect();
    super::common::InitialLaw { lo, hi }.histogram(&edges)
}

/// The limit system of `config`, whose family check ([`check`]) has passed: one-dimensional
/// populations on `cells` cells of `[v_lo, v_hi]`, FitzHugh-Nagumo populations on
/// `cells_2d x cells_2d` cells of `[v_lo, v_hi] x [w_lo(p), w_hi(p)]`.
pub fn build(
    config: &Config,
    (v_lo, v_hi): (f64, f64),
    cells_1d: usize,
    cells_2d: usize,
    w_range: &dyn Fn(usize) -> (f64, f64),
) -> McKeanSolver {
    let pops = config
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| {
            let m = &pop.model;
            let fhn = m.kind == ModelKind::Fhn;
            let cells = if fhn { cells_2d } else { cells_1d };
            let cells_w = cells_2d;
            let hv = (v_hi - v_lo) / cells as f64;
            let fv = uniform_cells(m.base.v_init.0, m.base.v_init.1, v_lo, hv, cells);
            if fhn {
                let (w_lo, w_hi) = w_range(p);
                let hw = (w_hi - w_lo) / cells_w as f64;
                let fw = uniform_cells(m.w_init, m.w_init, w_lo, hw, cells_w);
                let f = fw
                    .iter()
                    .flat_map(|a| fv.iter().map(move |b| a * b))
                    .collect();
                Pop {
                    model: m.clone(),
                    nv: cells,
                    nw: cells_w,
                    v_lo,
                    hv,
                    w_lo,
                    hw,
                    f,
                }
            } else {
                Pop {
                    model: m.clone(),
                    nv: cells,
                    nw: 1,
                    v_lo,
                    hv,
                    w_lo: 0.0,
                    hw: 1.0,
                    f: fv,
                }
            }
        })
        .collect();
    let terms = config
        .aggregates
        .iter()
        .map(|a| Term {
            source: a.source,
            target: a.target,
            electrical: a.kind == AggregateKind::Electrical,
            g: a.j
                * config.populations[a.source].size as f64
                * (a.kernel.iter().sum::<f64>() / a.kernel.len() as f64),
            reversal: a.reversal,
            s: a.s.clone(),
        })
        .collect();
    McKeanSolver::new(pops, terms, config.dt)
}

fn no_limit(key: String, reason: &str) -> Error {
    Error::NoLimit {
        key,
        reason: reason.to_string(),
    }
}

/// Whether `config` (which has aggregate terms) has this limit; else the first feature
/// without one, named by its key.
pub fn check(config: &Config) -> Result<(), Error> {
    for a in &config.aggregates {
        let key = |k: &str| format!("aggregate.{}.{k}", a.name);
        if !matches!(a.kind, AggregateKind::Electrical | AggregateKind::Chemical) {
            return Err(no_limit(
                key("kind"),
                "current, jump and poisson aggregate terms (the McKean-Vlasov limit covers electrical and chemical coupling)",
            ));
        }
        if matches!(a.s, RawS::Intensity | RawS::Spikes) {
            return Err(no_limit(
                key("s"),
                "s = intensity or spikes in the McKean-Vlasov limit (one, potential, sigmoid)",
            ));
        }
        if a.efficacy || a.target_efficacy {
            return Err(no_limit(
                key("efficacy"),
                "label-weighted aggregate coupling",
            ));
        }
        if a.kernel.iter().any(|&k| k != a.kernel[0]) {
            return Err(no_limit(
                key("kernel"),
                "a kernel with aggregate coupling (the McKean-Vlasov limit is not spatial)",
            ));
        }
    }
    if let Some(proj) = config.projections.first() {
        return Err(no_limit(
            format!("projection.{}", proj.name),
            "synaptic projections together with aggregate coupling",
        ));
    }
    for p in &config.populations {
        let m = &p.model;
        let key = |k: &str| format!("population.{}.{k}", p.name);
        if m.labels.is_some() {
            return Err(no_limit(key("labels"), "labels with aggregate coupling"));
        }
        if m.spike != SpikeRule::None {
            return Err(no_limit(
                key("spike"),
                "threshold or escape spikes with aggregate coupling (the McKean-Vlasov limit needs spike = \"none\")",
            ));
        }
        if m.noise != NoiseKind::Additive {
            return Err(no_limit(key("noise"), "multiplicative noise"));
        }
        if m.kind == ModelKind::ExpIf {
            return Err(no_limit(key("model"), "exp_if without spikes (V blows up)"));
        }
        if m.kind == ModelKind::Fhn && m.fhn.1 <= 0.0 {
            return Err(no_limit(
                key("fhn_b"),
                "FitzHugh-Nagumo with fhn_b <= 0 (w has no bounded range for the grid)",
            ));
        }
        if m.base.poisson_rate > 0.0 {
            return Err(no_limit(
                key("poisson_rate"),
                "external Poisson input with aggregate coupling",
            ));
        }
    }
    Ok(())
}

/// The limit of a configuration that passed [`check`], on the grid of its `[meanfield]`
/// table: `[v_min, v_max]` (default: the histogram's range widened by a quarter of its width
/// on each side), `cells` cells for one-dimensional populations, `cells / 4` in each of `v`
/// and `w` for FitzHugh-Nagumo, whose `w` range is `[(h_min + a)/b, (h_max + a)/b]` (`h` the
/// histogram's range: where `dw/dt` points inwards while V stays in it), widened to hold
/// `w_init`.
pub fn limit(config: &Config) -> McKeanLimit {
    let (hmin, hmax) = config
        .histogram
        .as_ref()
        .map_or((-20.0, 20.0), |h| (h.v_min, h.v_max));
    let mf = &config.raw.meanfield;
    let width = hmax - hmin;
    let v = (
        mf.v_min.unwrap_or(hmin - 0.25 * width),
        mf.v_max.unwrap_or(hmax + 0.25 * width),
    );
    let cells = (mf.cells as usize).max(8);
    let w_range = |p: usize| {
        let m = &config.populations[p].model;
        let (a, b, _) = m.fhn;
        let (lo, hi) = ((hmin + a) / b, (hmax + a) / b);
        (lo.min(m.w_init - 0.1), hi.max(m.w_init + 0.1))
    };
    McKeanLimit {
        solver: build(config, v, cells, cells / 4, &w_range),
        groups: PopulationGroups::new(config),
    }
}

/// The McKean-Vlasov solver seen through the `Limit` trait of `run.rs`.
pub struct McKeanLimit {
    pub solver: McKeanSolver,
    groups: PopulationGroups,
}

impl Limit for McKeanLimit {
    fn advance_to(&mut self, t: f64) {
        self.solver.advance_to(t);
    }
    fn rates(&self) -> Vec<f64> {
        self.solver.rates()
    }
    fn moments(&self) -> Vec<(f64, f64)> {
        self.solver.moments()
    }
    fn densities(&self, edges: &[f64]) -> Vec<Vec<(Vec<f64>, f64)>> {
        self.solver
            .pops
            .iter()
            .map(|p| vec![(rebin(&p.marginal(), &p.edges(), edges), 1.0)])
            .collect()
    }
    fn groups(&self) -> usize {
        self.groups.groups()
    }
    fn share(&self, g: usize) -> f64 {
        self.groups.share(g)
    }
    fn coupling(&self, _k: usize) -> &[Vec<f64>] {
        // No synaptic projections in this family (refused by `check`).
        &[]
    }
    fn expectation(&self, g: usize, phi: TestFunction, dt: f64) -> f64 {
        self.solver.pops[g].expect(|v| phi_at(phi, v, 0.0, dt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tail_integral(a) - tail_integral(b)` against a midpoint sum of `Q`.
    #[test]
    fn tail_integral_integrates_the_upper_tail() {
        let (a, b, n) = (-1.5, 2.0, 100_000);
        let h = (b - a) / n as f64;
        let sum: f64 = (0..n)
            .map(|k| upper_tail(a + (k as f64 + 0.5) * h) * h)
            .sum();
        let closed = tail_integral(a) - tail_integral(b);
        assert!((sum - closed).abs() < 1e-6, "{sum} {closed}");
    }

    #[test]
    fn upper_tail_matches_known_values() {
        assert!((upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((upper_tail(1.0) - 0.158_655_253_931_457).abs() < 2e-7);
        assert!((upper_tail(-2.0) - 0.977_249_868_051_821).abs() < 2e-7);
    }

    /// The implicit step conserves mass and keeps the density positive at any `dt`.
    #[test]
    fn implicit_step_conserves_mass() {
        let n = 50;
        let (alpha, beta): (Vec<f64>, Vec<f64>) = (0..n - 1)
            .map(|i| fluxes(3.0 - 0.2 * i as f64, 0.1, 0.1))
            .unzip();
        let mut x: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
        let before: f64 = x.iter().sum();
        let mut cp = Vec::new();
        implicit(&alpha, &beta, 1e4, &mut x, &mut cp);
        let after: f64 = x.iter().sum();
        assert!((after - before).abs() < 1e-9 * before, "{before} {after}");
        assert!(x.iter().all(|&v| v >= 0.0));
    }
}
