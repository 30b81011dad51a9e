//! The balanced kinetic limit (MacLaurin-Vilanova) of escape-noise populations coupled through
//! `poisson` and `current` aggregate terms with `n^(-1/2)` scaling: the leading-order balance
//! equations for the rates, and the Fokker-Planck equation of the O(1) fluctuations.
//!
//! # Balance equations
//!
//! With `J_t = j0_t n_q^(-1/2)` (`alpha = 1/2`), `n_qb` the neurons of source population `q` in
//! coordinate bin `b` and `K_t(c, b)` the term's kernel (1 without), the mean aggregate input
//! [mV/ms] of a neuron of population `p` in bin `c` is linear in the mean intensities `r_qb`
//! [1/ms] of the sources:
//!
//! ```text
//! m_pc = sum_(q,b) M[(p,c),(q,b)] r_qb + d_pc
//! poisson, s = intensity:  M += J K(c,b) n_qb            (events per ms times the jump)
//! current, s = intensity:  M += 1000 J K(c,b) n_qb       (s is in Hz)
//! poisson, s = one:        d += J K(c,b) n_qb / 1000     (a Poisson drive of 1 Hz per source)
//! current, s = one:        d += J K(c,b) n_qb            (a constant O(sqrt n) drive)
//! ```
//!
//! Every entry is `O(sqrt n)`. At leading order the mean inputs cancel: `M r + d = 0`, one
//! equation per population and coordinate bin (`bins` of the aggregate terms where a kernel is
//! present; one bin per population without kernels, where every bin receives the same input).
//! Its solution `r*` is the balanced state; a solution with a rate `<= 0` means there is none.
//!
//! # The kinetic limit of the fluctuations
//!
//! At finite `n` the rates are `r* + O(n^(-1/2))` and the mean input `mu = m(r)` is O(1): it is
//! the unknown that keeps the population's mean intensity at its balanced rate. Per population
//! and coordinate bin, the density `f(t, v)` of V obeys (Ito, as the particle's step, which
//! evaluates `g` at the start of the step)
//!
//! ```text
//! d_t f = -d_v[(b(v) + mu(t)) f] + d_v^2[D(v) f] - nu(v) f + reinjection at v_reset after t_ref
//! D(v)  = g(v)^2 / 2 + (s_syn^2 + s_ext^2) / 2
//! s_syn^2 = sum_(q,b) J^2 K(c,b) n_qb r*_qb  (+ J^2 K n_qb / 1000 for s = one)  [mV^2/ms]
//! E[nu(V)] = r*_pc   (neurons in their refractory time sit at v_reset, as in the particle)
//! ```
//!
//! `b` the model's own drift (with `i_e` and the mean of external Poisson input), `g` its noise
//! (`additive`, `affine` or `sqrt`), `nu` its escape intensity. `s_syn^2 = J^2` times the
//! Poisson event rate is O(1) under `n^(-1/2)` scaling (the jumps `J -> 0`, their variance
//! does not vanish); their third cumulant `J^3 rate` is `O(n^(-1/2))`. Current terms add no
//! variance.
//!
//! At `t = 0+` the O(sqrt n) imbalance of the initial state acts for a vanishing time: in the
//! limit it translates each density by the shift that makes its mean intensity `r*` (no time
//! to spike or diffuse). Afterwards the rates stay at `r*` and `mu(t)` follows from the
//! constraint.
//!
//! # Numerics
//!
//! Finite volumes on the uniform grid of the escape solver ([`super::escape`]): the flux
//! `(b + mu - D') f - D d_v f` through a face is the Scharfetter-Gummel flux with velocity
//! `b + mu - D'` (`D'` by the centred difference of `D` at the cell centres) and diffusion
//! `D` at the face; zero flux at the ends. Every operator below is a tridiagonal M-matrix,
//! solved by one Thomas sweep with non-negative updates (positivity for any step).
//!
//! * **Time** (the run's `dt`, mirroring the particle's step): the transport is backward Euler,
//!   then a neuron spikes with probability `1 - exp(-nu dt)` and sits at `v_reset` for
//!   `ref_steps` steps before it moves again. The mean input of each step is the root of
//!   `E[nu(V)] = r*` after the step (monotone in `mu` for an increasing intensity; a bracketed
//!   secant, relative tolerance 1e-11). First order in `dt`.
//! * **Stationary state**: the continuous-time equation with refractory mass `N t_ref`,
//!   `(A(mu) + diag(nu)) u = delta_reset`, `f = N u`, `N = 1/(int u + t_ref)`; `mu` is the root
//!   of `int u = 1/N - t_ref` with `N (1 + nu(v_reset) t_ref) = r*`.
//!
//! Measured order in the cell width (unit tests): 2.0 for the mean and 2.0 for the variance of
//! the stationary density against the closed form of a linear drift with affine noise and a
//! constant intensity.

use super::common::{add_point_mass, initial_density, rebin, Limit, Series};
use crate::aggregate::{Aggregate, AggregateKind, RawS};
use crate::config::trees::TestFunction;
use crate::config::{Config, ModelKind, NoiseKind, SpikeRule};
use crate::h5::{replicated, RawWrites};
use crate::model::neuron::{intensity, Neuron};
use crate::space;
use crate::Error;

fn no_limit(key: String, reason: &str) -> Error {
    Error::NoLimit {
        key,
        reason: reason.to_string(),
    }
}

/// Whether every aggregate term of `config` is of the kinds this limit covers (so that the
/// configuration belongs to this family, or to none).
pub fn covers(config: &Config) -> bool {
    !config.aggregates.is_empty()
        && config
            .aggregates
            .iter()
            .all(|a| matches!(a.kind, AggregateKind::Poisson | AggregateKind::Current))
}

/// The first feature of `config` (all of whose aggregate terms are `poisson` or `current`)
/// that this limit does not cover.
pub fn check(config: &Config) -> Result<(), Error> {
    for t in &config.aggregates {
        let key = |k: &str| format!("aggregate.{}.{k}", t.name);
        let alpha = config
            .raw
            .aggregate
            .get(&t.name)
            .map_or(f64::NAN, |r| r.alpha);
        if alpha != 0.5 {
            return Err(no_limit(
                key("alpha"),
                "the balanced limit needs n^(-1/2) scaling (alpha = 0.5) on every term",
            ));
        }
        if t.efficacy || t.target_efficacy {
            return Err(no_limit(
                key("efficacy"),
                "label-weighted balanced coupling",
            ));
        }
        if !matches!(t.s, RawS::Intensity | RawS::One) {
            return Err(no_limit(
                key("s"),
                "balanced coupling through s other than \"intensity\" (the rates) or \"one\" (a drive)",
            ));
        }
    }
    let kernel_bins: Vec<usize> = config
        .aggregates
        .iter()
        .filter(|t| has_kernel(t))
        .map(|t| t.bins)
        .collect();
    if let Some(t) = config
        .aggregates
        .iter()
        .find(|t| has_kernel(t) && t.bins != kernel_bins[0])
    {
        return Err(no_limit(
            format!("aggregate.{}.bins", t.name),
            "terms with kernels on different numbers of coordinate bins",
        ));
    }
    if let Some(p) = config.projections.first() {
        return Err(no_limit(
            format!("projection.{}", p.name),
            "synaptic projections in a network with balanced aggregate coupling",
        ));
    }
    if let Some(t) = config.trees.trees.first() {
        return Err(no_limit(
            format!("observables.tree.{}", t.name),
            "tree observables of the balanced limit",
        ));
    }
    for (pi, p) in config.populations.iter().enumerate() {
        let m = &p.model;
        let key = |k: &str| format!("population.{}.{k}", p.name);
        if m.spike != SpikeRule::Escape {
            return Err(no_limit(
                key("spike"),
                "the balanced limit covers escape noise (spike = \"escape\")",
            ));
        }
        if m.kind == ModelKind::Fhn {
            return Err(no_limit(key("model"), "FitzHugh-Nagumo"));
        }
        if m.labels.is_some() {
            return Err(no_limit(key("labels"), "labels in a balanced network"));
        }
        match m.escape {
            Some(crate::config::RawEscape::Constant { .. }) => {
                return Err(no_limit(
                    key("escape"),
                    "a constant intensity: no mean input can steer it to the balanced rate",
                ))
            }
            Some(crate::config::RawEscape::Sigmoid { beta, .. }) if beta <= 0.0 => {
                return Err(no_limit(
                    key("escape.beta"),
                    "a sigmoid intensity that does not increase with V",
                ))
            }
            _ => {}
        }
        if !config.aggregates.iter().any(|t| t.target == pi) {
            return Err(no_limit(
                key("size"),
                "a population that no balanced aggregate term reaches",
            ));
        }
    }
    Ok(())
}

fn has_kernel(t: &Aggregate) -> bool {
    t.kernel.iter().any(|&k| k != 1.0)
}

/// The leading-order balance equations of a configuration and their solution.
#[derive(Clone, Debug)]
pub struct Balance {
    /// Coordinate bins per population (1 without kernels).
    pub bins: usize,
    /// Neurons per population and bin, `n_qb` (population-major).
    pub counts: Vec<f64>,
    /// `M` [mV/ms per 1/ms], rows and columns population-major over bins.
    pub matrix: Vec<Vec<f64>>,
    /// `d` [mV/ms].
    pub drive: Vec<f64>,
    /// Per group: the positive and negative parts of `M r* + d` [mV/ms] (each O(sqrt n)).
    pub sides: Vec<(f64, f64)>,
    /// `s_syn^2 = V r + v0`: `V` [mV^2/ms per 1/ms] and `v0` [mV^2/ms].
    pub variance_matrix: Vec<Vec<f64>>,
    pub variance0: Vec<f64>,
    /// The balanced rates `r*` [1/ms] per population and bin.
    pub rates: Vec<f64>,
    /// Per group, the first group of its population with the same input row: they share a
    /// rate.
    pub class: Vec<usize>,
}

impl Balance {
    /// `s_syn^2` [mV^2/ms] of each group at the balanced rates.
    pub fn variance(&self) -> Vec<f64> {
        self.variance_matrix
            .iter()
            .zip(&self.variance0)
            .map(|(row, v0)| v0 + row.iter().zip(&self.rates).map(|(a, r)| a * r).sum::<f64>())
            .collect()
    }
}

/// Solves `a x = rhs` by Gaussian elimination with partial pivoting; `None` if a pivot is below
/// `1e-12` times the largest entry (singular to working precision).
fn solve_dense(mut a: Vec<Vec<f64>>, mut rhs: Vec<f64>) -> Option<Vec<f64>> {
    let n = rhs.len();
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |m, x| m.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 * scale {
            return None;
        }
        a.swap(col, piv);
        rhs.swap(col, piv);
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let f = a[row][col] / pivot_row[col];
            if f != 0.0 {
                for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * p;
                }
                rhs[row] -= f * rhs[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (rhs[row] - s) / a[row][row];
    }
    Some(x)
}

/// Solves `matrix x = rhs` with the groups of one class (`class[g]`: its first group) sharing
/// one unknown and the equation of their first group; `None` if singular.
fn solve_classes(matrix: &[Vec<f64>], class: &[usize], rhs: &[f64]) -> Option<Vec<f64>> {
    let reps: Vec<usize> = (0..class.len()).filter(|&g| class[g] == g).collect();
    let index = |g: usize| reps.iter().position(|&r| r == class[g]).expect("a class");
    let reduced: Vec<Vec<f64>> = reps
        .iter()
        .map(|&g| {
            let mut row = vec![0.0; reps.len()];
            for (h, m) in matrix[g].iter().enumerate() {
                row[index(h)] += m;
            }
            row
        })
        .collect();
    let x = solve_dense(reduced, reps.iter().map(|&g| rhs[g]).collect())?;
    Some((0..class.len()).map(|g| x[index(g)]).collect())
}

/// The balance equations of `config` (which [`check`] accepted) and their positive solution.
pub fn balance(config: &Config) -> Result<Balance, Error> {
    let bins = config
        .aggregates
        .iter()
        .find(|t| has_kernel(t))
        .map_or(1, |t| t.bins);
    let n_pop = config.populations.len();
    let groups = n_pop * bins;
    let mut counts = vec![0.0; groups];
    for (q, p) in config.populations.iter().enumerate() {
        for gid in p.gids() {
            counts[q * bins + space::bin(p.coordinate(config.seed, gid), bins)] += 1.0;
        }
    }
    let mut matrix = vec![vec![0.0; groups]; groups];
    let mut drive = vec![0.0; groups];
    let mut variance_matrix = vec![vec![0.0; groups]; groups];
    let mut variance0 = vec![0.0; groups];
    for t in &config.aggregates {
        let kernel = |c: usize, b: usize| {
            if has_kernel(t) {
                t.kernel[c * bins + b]
            } else {
                1.0
            }
        };
        for c in 0..bins {
            let row = t.target * bins + c;
            for b in 0..bins {
                let col = t.source * bins + b;
                let kn = kernel(c, b) * counts[col];
                match (t.kind, &t.s) {
                    (AggregateKind::Poisson, RawS::Intensity) => {
                        matrix[row][col] += t.j * kn;
                        variance_matrix[row][col] += t.j * t.j * kn;
                    }
                    (AggregateKind::Current, RawS::Intensity) => {
                        matrix[row][col] += 1000.0 * t.j * kn;
                    }
                    (AggregateKind::Poisson, RawS::One) => {
                        drive[row] += t.j * kn / 1000.0;
                        variance0[row] += t.j * t.j * kn / 1000.0;
                    }
                    (AggregateKind::Current, RawS::One) => drive[row] += t.j * kn,
                    _ => unreachable!("refused by check"),
                }
            }
        }
    }
    let name = |g: usize| {
        let p = &config.populations[g / bins].name;
        if bins > 1 {
            format!("population {p} in coordinate bin {} of {bins}", g % bins)
        } else {
            format!("population {p}")
        }
    };
    if let Some(g) = (0..groups).find(|&g| matrix[g].iter().all(|&x| x == 0.0)) {
        return Err(no_limit(
            format!("population.{}", config.populations[g / bins].name),
            &format!(
                "no balanced state: no term with s = \"intensity\" reaches {}",
                name(g)
            ),
        ));
    }
    // Bins of one population with the same input row (no kernel on any term reaching it) hold
    // the same neurons under the same input: one rate, one equation (else the system would be
    // singular for a reason that is no absence of balance).
    let class: Vec<usize> = (0..groups)
        .map(|g| {
            (0..=g)
                .find(|&h| h / bins == g / bins && matrix[h] == matrix[g] && drive[h] == drive[g])
                .expect("g itself")
        })
        .collect();
    let rates = solve_classes(&matrix, &class, &drive.iter().map(|d| -d).collect::<Vec<_>>())
        .ok_or_else(|| Error::Argument {
            key: "aggregate".into(),
            value: "(balance equations)".into(),
            reason: "no balanced state: the linear system that cancels the O(sqrt n) mean inputs is singular (populations with proportional input rows)".into(),
        })?;
    if let Some(g) = (0..groups).find(|&g| rates[g].is_nan() || rates[g] <= 0.0) {
        return Err(Error::Argument {
            key: "aggregate".into(),
            value: format!("balance rate {:.6} Hz of {}", 1000.0 * rates[g], name(g)),
            reason: "no balanced state: the linear system that cancels the O(sqrt n) mean inputs has no positive solution (change the drives or the j0 of the terms)".into(),
        });
    }
    let sides = (0..groups)
        .map(|g| {
            let (mut pos, mut neg) = (drive[g].max(0.0), drive[g].min(0.0));
            for (m, r) in matrix[g].iter().zip(&rates) {
                let x = m * r;
                if x > 0.0 {
                    pos += x;
                } else {
                    neg += x;
                }
            }
            (pos, neg)
        })
        .collect();
    Ok(Balance {
        bins,
        counts,
        matrix,
        drive,
        sides,
        variance_matrix,
        variance0,
        rates,
        class,
    })
}

/// The noise amplitude `g(V)` of the particle step (`crate::model::neuron`), evaluated at the
/// start of a step (Ito).
pub fn noise_amplitude(m: &Neuron, v: f64) -> f64 {
    let s = m.base.sigma;
    match m.noise {
        NoiseKind::Additive => s,
        NoiseKind::Affine => (s + m.sigma_v * v).max(0.0),
        NoiseKind::Sqrt => s * (v - m.e_noise).abs().sqrt(),
    }
}

/// One group of the kinetic limit (a population, or one of its coordinate bins).
pub struct Group {
    /// Drift `b(v)` [mV/ms] without the balanced input.
    pub drift: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// Diffusion `D(v)` [mV^2/ms] (Ito: `d_v^2 (D f)`).
    pub diffusion: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// Escape intensity `nu(v)` [1/ms], increasing.
    pub intensity: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// Reset potential \[mV\].
    pub v_reset: f64,
    /// Steps a neuron spends at `v_reset` after its spike step.
    pub ref_steps: usize,
    /// The mean intensity `E[nu(V)]` the mean input must hold [1/ms] (`None`: the mean input
    /// is given instead, see [`Kinetic::set_input`]).
    pub target: Option<f64>,
}

/// The uniform grid \[mV\].
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub v_min: f64,
    pub v_max: f64,
    pub cells: usize,
}

/// `x / (e^x - 1)`.
fn bernoulli(x: f64) -> f64 {
    if x.abs() < 1e-8 {
        1.0 - 0.5 * x
    } else {
        x / x.exp_m1()
    }
}

/// The kinetic Fokker-Planck equation of one group on its grid (module doc).
pub struct Kinetic {
    v_min: f64,
    h: f64,
    cells: usize,
    /// At the interior faces: drift `b - D'` and diffusion `D`.
    face_drift: Vec<f64>,
    face_diffusion: Vec<f64>,
    nu: Vec<f64>,
    nu_reset: f64,
    reset_cell: usize,
    reset_weights: [f64; 2],
    v_reset: f64,
    ref_steps: usize,
    target: Option<f64>,
    /// The active density [1/mV] (neurons not at v_reset in their refractory time).
    density: Vec<f64>,
    /// Mass lost to spikes in each of the last `ref_steps + 1` steps, oldest first.
    pending: std::collections::VecDeque<f64>,
    /// Mean input `mu` [mV/ms] of the last step.
    input: f64,
    /// Spikes per neuron in the last step.
    spikes: f64,
    /// Whether the initial layer (the shift at t = 0+) is still to come.
    layer: bool,
    work: Vec<f64>,
}

/// Thomas sweep of the tridiagonal system `-l_i x_(i-1) + d_i x_i - u_i x_(i+1) = rhs_i`, all
/// coefficients non-negative and the matrix column diagonally dominant (pivots positive,
/// updates non-negative).
fn thomas(lower: &[f64], diag: &[f64], upper: &[f64], rhs: &mut [f64], scratch: &mut Vec<f64>) {
    let n = rhs.len();
    scratch.resize(n, 0.0);
    let mut up_prev = 0.0;
    let mut x_prev = 0.0;
    for i in 0..n {
        let from_left = if i > 0 { lower[i] } else { 0.0 };
        let pivot = diag[i] - from_left * up_prev;
        up_prev = if i + 1 < n { upper[i] / pivot } else { 0.0 };
        x_prev = (rhs[i] + from_left * x_prev) / pivot;
        scratch[i] = up_prev;
        rhs[i] = x_prev;
    }
    for i in (0..n - 1).rev() {
        rhs[i] += scratch[i] * rhs[i + 1];
    }
}

impl Kinetic {
    /// `initial`: cell densities [1/mV] (normalised here to mass 1).
    pub fn new(group: &Group, grid: Grid, initial: &[f64]) -> Result<Kinetic, String> {
        let Grid {
            v_min,
            v_max,
            cells,
        } = grid;
        if !(v_min.is_finite() && v_max > v_min && cells >= 3) {
            return Err(format!(
                "grid [{v_min}, {v_max}] mV with {cells} cells: need v_max > v_min, 3 cells"
            ));
        }
        let h = (v_max - v_min) / cells as f64;
        let centre = |i: usize| v_min + (i as f64 + 0.5) * h;
        let d_centre: Vec<f64> = (0..cells).map(|i| (group.diffusion)(centre(i))).collect();
        let mut face_drift = Vec::with_capacity(cells - 1);
        let mut face_diffusion = Vec::with_capacity(cells - 1);
        for j in 0..cells - 1 {
            let v = v_min + (j + 1) as f64 * h;
            let d = (group.diffusion)(v);
            let b = (group.drift)(v) - (d_centre[j + 1] - d_centre[j]) / h;
            if !(b.is_finite() && d.is_finite() && d >= 0.0) {
                return Err(format!("drift {b} or diffusion {d} at {v} mV not finite"));
            }
            face_drift.push(b);
            face_diffusion.push(d);
        }
        let nu: Vec<f64> = (0..cells).map(|i| (group.intensity)(centre(i))).collect();
        if nu.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err("the escape intensity is not finite and >= 0 on the grid".into());
        }
        let vr = group.v_reset;
        if !(vr >= v_min && vr <= v_max) {
            return Err(format!(
                "v_reset = {vr} mV lies outside the grid [{v_min}, {v_max}]"
            ));
        }
        let p = (vr - v_min) / h - 0.5;
        let (reset_cell, reset_weights) = if p <= 0.0 {
            (0, [1.0, 0.0])
        } else if p >= (cells - 1) as f64 {
            (cells - 2, [0.0, 1.0])
        } else {
            let i = (p.floor() as usize).min(cells - 2);
            (i, [1.0 - (p - i as f64), p - i as f64])
        };
        if initial.len() != cells || initial.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err("the initial density must have one finite value >= 0 per cell".into());
        }
        let mass = h * initial.iter().sum::<f64>();
        if mass <= 0.0 {
            return Err("the initial density has no mass on the grid".into());
        }
        Ok(Kinetic {
            v_min,
            h,
            cells,
            face_drift,
            face_diffusion,
            nu,
            nu_reset: (group.intensity)(vr),
            reset_cell,
            reset_weights,
            v_reset: vr,
            ref_steps: group.ref_steps,
            target: group.target,
            density: initial.iter().map(|x| x / mass).collect(),
            pending: std::iter::repeat_n(0.0, group.ref_steps + 1).collect(),
            input: 0.0,
            spikes: 0.0,
            layer: group.target.is_some(),
            work: Vec::new(),
        })
    }

    /// Fixes the mean input [mV/ms] (for a group without a target).
    pub fn set_input(&mut self, mu: f64) {
        self.input = mu;
    }

    /// The matrix `identity I + scale A(mu) + diag(loss)` as (lower, diag, upper), with `A` the
    /// Scharfetter-Gummel transport operator (cell densities; column sums of `A` vanish).
    fn operator(&self, mu: f64, identity: f64, scale: f64, loss: &[f64]) -> [Vec<f64>; 3] {
        let n = self.cells;
        let (mut lower, mut diag, mut upper) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            diag[i] = identity + loss[i];
        }
        let lam = scale / self.h;
        for j in 0..n - 1 {
            let a = self.face_drift[j] + mu;
            let d = self.face_diffusion[j];
            // Flux through face j: w_l f_j - w_r f_(j+1); B(-P) = B(P) + P.
            let (wl, wr) = if d > 0.0 {
                let p = a * self.h / d;
                let br = bernoulli(p);
                (d / self.h * (br + p), d / self.h * br)
            } else {
                (a.max(0.0), (-a).max(0.0))
            };
            // Row j loses w_l f_j and gains w_r f_(j+1); row j+1 the opposite.
            diag[j] += lam * wl;
            upper[j] = lam * wr;
            diag[j + 1] += lam * wr;
            lower[j + 1] = lam * wl;
        }
        [lower, diag, upper]
    }

    /// The reinjection profile: mass 1 at `v_reset` as a cell density.
    fn reset_profile(&self, out: &mut [f64], mass: f64) {
        out[self.reset_cell] += mass * self.reset_weights[0] / self.h;
        out[self.reset_cell + 1] += mass * self.reset_weights[1] / self.h;
    }

    /// One step of `dt` at mean input `mu` from the current state: the new active density, the
    /// mass that spiked, and the mean intensity after the step.
    fn trial(&mut self, mu: f64, dt: f64) -> (Vec<f64>, f64, f64) {
        let n = self.cells;
        let [lower, diag, upper] = self.operator(mu, 1.0, dt, &vec![0.0; n]);
        let mut g = self.density.clone();
        let back = self.pending.front().copied().unwrap_or(0.0);
        self.reset_profile(&mut g, back);
        let mut scratch = std::mem::take(&mut self.work);
        thomas(&lower, &diag, &upper, &mut g, &mut scratch);
        self.work = scratch;
        let mut lost = 0.0;
        let mut nu_mean = 0.0;
        for (gi, &nu) in g.iter_mut().zip(&self.nu) {
            let p = -(-nu * dt).exp_m1();
            let l = p * *gi;
            lost += l;
            *gi -= l;
            nu_mean += nu * *gi;
        }
        lost *= self.h;
        let waiting: f64 = self.pending.iter().skip(1).sum::<f64>() + lost;
        nu_mean = self.h * nu_mean + self.nu_reset * waiting;
        (g, lost, nu_mean)
    }

    /// The mean intensity if the active density were shifted by `s` \[mV\].
    fn shifted(&self, s: f64) -> Vec<f64> {
        let from: Vec<f64> = (0..=self.cells)
            .map(|k| self.v_min + k as f64 * self.h + s)
            .collect();
        let to: Vec<f64> = (0..=self.cells)
            .map(|k| self.v_min + k as f64 * self.h)
            .collect();
        let mut d = rebin(&self.density, &from, &to);
        // Mass pushed beyond the grid stays in the end cells.
        let mass = self.h * d.iter().sum::<f64>();
        let total = self.h * self.density.iter().sum::<f64>();
        let missing = total - mass;
        if missing > 0.0 {
            let end = if s > 0.0 { self.cells - 1 } else { 0 };
            d[end] += missing / self.h;
        }
        d
    }

    fn mean_intensity(&self, d: &[f64]) -> f64 {
        self.h * d.iter().zip(&self.nu).map(|(f, n)| f * n).sum::<f64>()
            + self.nu_reset * self.pending.iter().sum::<f64>()
    }

    /// The initial layer: the translation that brings the mean intensity to its target.
    fn apply_layer(&mut self) -> Result<(), String> {
        let Some(target) = self.target else {
            return Ok(());
        };
        let f = |s: f64| self.mean_intensity(&self.shifted(s)) - target;
        let span = self.h * self.cells as f64;
        let s = root(f, 0.0, 0.05 * span, span, 1e-11 * target.max(1e-300))
            .ok_or_else(|| format!("no shift of the initial density reaches the balanced rate {:.6} Hz (the escape intensity's range on the grid)", 1000.0 * target))?;
        self.density = self.shifted(s);
        self.layer = false;
        Ok(())
    }

    /// Advances by one step of `dt` \[ms\] (the first one begins with the initial layer).
    pub fn step(&mut self, dt: f64) -> Result<(), String> {
        if self.layer {
            self.apply_layer()?;
        }
        let mu = match self.target {
            Some(target) => {
                let (start, width) = (self.input, 0.5 + self.input.abs() * 0.1);
                root(
                    |mu| self.trial_nu(mu, dt) - target,
                    start,
                    width,
                    1e6,
                    1e-11 * target,
                )
                .ok_or_else(|| {
                    format!(
                        "no mean input holds the balanced rate {:.6} Hz (the escape intensity's range on the grid)",
                        1000.0 * target
                    )
                })?
            }
            None => self.input,
        };
        let (g, lost, _) = self.trial(mu, dt);
        self.density = g;
        self.pending.pop_front();
        self.pending.push_back(lost);
        self.spikes = lost;
        self.input = mu;
        Ok(())
    }

    /// The mean intensity after a step at mean input `mu`.
    fn trial_nu(&mut self, mu: f64, dt: f64) -> f64 {
        self.trial(mu, dt).2
    }

    /// The continuous-time stationary state (module doc) at `t_ref` \[ms\]: sets the density
    /// and the mean input, returns the stationary spike rate [1/ms].
    pub fn stationary(&mut self, t_ref: f64) -> Result<f64, String> {
        let solve = |k: &Kinetic, mu: f64| -> Vec<f64> {
            let [lower, diag, upper] = k.operator(mu, 0.0, 1.0, &k.nu);
            let mut u = vec![0.0; k.cells];
            k.reset_profile(&mut u, 1.0);
            let mut scratch = Vec::new();
            thomas(&lower, &diag, &upper, &mut u, &mut scratch);
            u
        };
        let mu = match self.target {
            Some(target) => {
                let rate = target / (1.0 + self.nu_reset * t_ref);
                let want = 1.0 / rate - t_ref;
                if want <= 0.0 {
                    return Err(format!(
                        "the balanced rate {:.6} Hz exceeds 1/t_ref",
                        1000.0 * target
                    ));
                }
                // int u is the mean time from reset to the next spike, decreasing in mu.
                root(
                    |mu| want - self.h * solve(self, mu).iter().sum::<f64>(),
                    self.input,
                    1.0,
                    1e6,
                    1e-12 * want,
                )
                .ok_or_else(|| {
                    format!(
                        "no mean input gives the balanced rate {:.6} Hz in the stationary state",
                        1000.0 * target
                    )
                })?
            }
            None => self.input,
        };
        let u = solve(self, mu);
        let rate = 1.0 / (self.h * u.iter().sum::<f64>() + t_ref);
        self.density = u.iter().map(|x| rate * x).collect();
        // The refractory mass rate * t_ref sits at v_reset, spread as the steps of a run.
        let steps = self.ref_steps + 1;
        self.pending = std::iter::repeat_n(rate * t_ref / steps as f64, steps).collect();
        self.input = mu;
        self.spikes = 0.0;
        self.layer = false;
        Ok(rate)
    }

    /// The mean input `mu` [mV/ms] of the last step (or of the stationary state).
    pub fn input(&self) -> f64 {
        self.input
    }

    /// Spikes per neuron in the last step.
    pub fn spikes(&self) -> f64 {
        self.spikes
    }

    /// The active density [1/mV].
    pub fn density(&self) -> &[f64] {
        &self.density
    }

    /// The mass at `v_reset` (refractory, or just reset).
    pub fn reset_mass(&self) -> f64 {
        self.pending.iter().sum()
    }

    pub fn v_reset(&self) -> f64 {
        self.v_reset
    }

    /// Cell centres \[mV\].
    pub fn centres(&self) -> Vec<f64> {
        (0..self.cells)
            .map(|i| self.v_min + (i as f64 + 0.5) * self.h)
            .collect()
    }

    /// Cell width \[mV\].
    pub fn cell_width(&self) -> f64 {
        self.h
    }

    /// Mean and variance of V over all neurons (the reset mass at `v_reset`).
    pub fn moments(&self) -> (f64, f64) {
        let c = self.centres();
        let r = self.reset_mass();
        let m1 = self.h * self.density.iter().zip(&c).map(|(f, v)| f * v).sum::<f64>()
            + r * self.v_reset;
        let m2 = self.h
            * self
                .density
                .iter()
                .zip(&c)
                .map(|(f, v)| f * v * v)
                .sum::<f64>()
            + r * self.v_reset * self.v_reset;
        let mass = self.h * self.density.iter().sum::<f64>() + r;
        let mean = m1 / mass;
        (mean, m2 / mass - mean * mean)
    }

    /// `E[nu(V)]` [1/ms] over all neurons.
    pub fn mean_nu(&self) -> f64 {
        self.mean_intensity(&self.density)
    }

    /// Mass on the two end cells (the grid is wide enough when this is negligible).
    pub fn edge_mass(&self) -> f64 {
        self.h * (self.density[0] + self.density[self.cells - 1])
    }
}

/// The root of the increasing function `f` near `x0`: brackets by doubling steps from `step`
/// (up to `limit` away), then regula falsi (Illinois) to `|f| <= tol`.
fn root(mut f: impl FnMut(f64) -> f64, x0: f64, step: f64, limit: f64, tol: f64) -> Option<f64> {
    let f0 = f(x0);
    if f0.abs() <= tol {
        return Some(x0);
    }
    let dir = if f0 < 0.0 { 1.0 } else { -1.0 };
    let (mut a, mut fa) = (x0, f0);
    let mut width = step;
    let (mut b, mut fb);
    loop {
        b = x0 + dir * width;
        fb = f(b);
        if fb.is_nan() {
            return None;
        }
        if fb.signum() != fa.signum() || fb.abs() <= tol {
            break;
        }
        a = b;
        fa = fb;
        width *= 2.0;
        if width > limit {
            return None;
        }
    }
    if fb.abs() <= tol {
        return Some(b);
    }
    let mut side = 0;
    for _ in 0..200 {
        let x = (a * fb - b * fa) / (fb - fa);
        let fx = f(x);
        if fx.abs() <= tol || (b - a).abs() <= 1e-14 * (1.0 + x.abs()) {
            return Some(x);
        }
        if fx.signum() == fb.signum() {
            b = x;
            fb = fx;
            if side == -1 {
                fa *= 0.5;
            }
            side = -1;
        } else {
            a = x;
            fa = fx;
            if side == 1 {
                fb *= 0.5;
            }
            side = 1;
        }
    }
    None
}

/// The balanced kinetic limit of a configuration, seen through the `Limit` trait of `run.rs`.
pub struct BalancedLimit {
    pub balance: Balance,
    /// One solver per distinct group (groups with the same population, balanced rate and
    /// Poisson variance share one), and each group's solver.
    solvers: Vec<Kinetic>,
    solver_of: Vec<usize>,
    bins: usize,
    /// Per population: each group bin's share of the population.
    shares: Vec<Vec<f64>>,
    /// Per population, with `xi_bins > 1` histogram bins: per histogram bin its share of the
    /// population and the weights of the group bins in it.
    mixes: Vec<Vec<(f64, Vec<f64>)>>,
    /// Histogram bins of the coordinate (1: none).
    xi_bins: usize,
    total: f64,
    dt: f64,
    time: f64,
    steps: u64,
    /// The first error of a step (the trait's `advance_to` cannot return one).
    pub failure: Option<String>,
}

/// `(v_min, v_max, cells)` of the limit's grid.
fn grid_of(config: &Config) -> Grid {
    let (v_min, v_max, cells) = super::common::grid(config);
    Grid {
        v_min,
        v_max,
        cells,
    }
}

/// The groups of the limit (population-major over bins), from the balance.
fn groups(config: &Config, balance: &Balance, targets: bool) -> Vec<Group> {
    let variance = balance.variance();
    let mut out = Vec::new();
    for (p, pop) in config.populations.iter().enumerate() {
        let m = pop.model.clone();
        let b = &m.base;
        let ext_mean = b.poisson_rate / 1000.0 * b.poisson_weight;
        let ext_var = b.poisson_rate / 1000.0 * b.poisson_weight * b.poisson_weight;
        for c in 0..balance.bins {
            let g = p * balance.bins + c;
            let syn = variance[g];
            let (md, mn, mi) = (m.clone(), m.clone(), m.clone());
            out.push(Group {
                drift: Box::new(move |v| md.intrinsic_drift(v, 0.0) + ext_mean),
                diffusion: Box::new(move |v| {
                    let g = noise_amplitude(&mn, v);
                    0.5 * (g * g + syn + ext_var)
                }),
                intensity: Box::new(move |v| {
                    intensity(mi.escape.as_ref().expect("escape family"), v) / 1000.0
                }),
                v_reset: b.v_reset,
                ref_steps: b.ref_steps as usize,
                target: targets.then_some(balance.rates[g]),
            });
        }
    }
    out
}

fn solver_error(config: &Config, e: String) -> Error {
    let g = grid_of(config);
    Error::Argument {
        key: "meanfield".into(),
        value: format!("[{}, {}] mV, {} cells", g.v_min, g.v_max, g.cells),
        reason: e,
    }
}

/// Builds the limit of `config` from the run's initial condition.
pub fn limit(config: &Config) -> Result<BalancedLimit, Error> {
    let balance = balance(config)?;
    let grid = grid_of(config);
    let h = (grid.v_max - grid.v_min) / grid.cells as f64;
    let centres: Vec<f64> = (0..grid.cells)
        .map(|k| grid.v_min + (k as f64 + 0.5) * h)
        .collect();
    let bins = balance.bins;
    let variance = balance.variance();
    let mut solvers = Vec::new();
    let mut keys: Vec<(usize, f64, f64)> = Vec::new();
    let mut solver_of = Vec::new();
    for (g, group) in groups(config, &balance, true).into_iter().enumerate() {
        let p = g / bins;
        let (r, v) = (balance.rates[g], variance[g]);
        let same = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
        if let Some(k) = keys
            .iter()
            .position(|&(q, r2, v2)| q == p && same(r, r2) && same(v, v2))
        {
            solver_of.push(k);
            continue;
        }
        let init = initial_density(&config.populations[p].model.base, &centres, h);
        solvers.push(Kinetic::new(&group, grid, &init).map_err(|e| solver_error(config, e))?);
        keys.push((p, r, v));
        solver_of.push(solvers.len() - 1);
    }
    let shares = config
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| {
            (0..bins)
                .map(|c| balance.counts[p * bins + c] / pop.size as f64)
                .collect()
        })
        .collect();
    let xi_bins = config.histogram.as_ref().map_or(1, |h| h.xi_bins);
    let mixes = config
        .populations
        .iter()
        .map(|pop| {
            if xi_bins == 1 {
                return Vec::new();
            }
            let mut w = vec![vec![0.0; bins]; xi_bins];
            for gid in pop.gids() {
                let xi = pop.coordinate(config.seed, gid);
                w[space::bin(xi, xi_bins)][space::bin(xi, bins)] += 1.0;
            }
            w.into_iter()
                .map(|row| {
                    let n: f64 = row.iter().sum();
                    let weights = row.iter().map(|x| x / n.max(1.0)).collect();
                    (n / pop.size as f64, weights)
                })
                .collect()
        })
        .collect();
    Ok(BalancedLimit {
        balance,
        solvers,
        solver_of,
        bins,
        shares,
        mixes,
        xi_bins,
        total: config.n_neurons() as f64,
        dt: config.dt,
        time: 0.0,
        steps: 0,
        failure: None,
    })
}

/// The stationary state per group: (spike rate [1/ms], mean input mu [mV/ms], the solver in
/// that state).
pub fn stationary(config: &Config) -> Result<(Vec<f64>, Vec<f64>), Error> {
    let mut l = limit(config)?;
    let t_ref: Vec<f64> = config
        .populations
        .iter()
        .map(|p| f64::from(p.model.base.ref_steps) * config.dt)
        .collect();
    let mut rates = Vec::new();
    for (k, s) in l.solvers.iter_mut().enumerate() {
        let p = l.solver_of.iter().position(|&x| x == k).expect("used") / l.bins;
        rates.push(
            s.stationary(t_ref[p])
                .map_err(|e| solver_error(config, e))?,
        );
    }
    let by_group = l.solver_of.iter().map(|&k| rates[k]).collect();
    let inputs = l.solver_of.iter().map(|&k| l.solvers[k].input()).collect();
    Ok((by_group, inputs))
}

/// Per population: the share-weighted mean over its coordinate bins of a per-group quantity.
pub fn per_population(config: &Config, balance: &Balance, by_group: &[f64]) -> Vec<f64> {
    let bins = balance.bins;
    config
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| {
            (0..bins)
                .map(|c| balance.counts[p * bins + c] * by_group[p * bins + c])
                .sum::<f64>()
                / pop.size as f64
        })
        .collect()
}

/// The time-dependent solution of `config` from the run's initial condition, sampled by
/// `sample` (the run's schedules).
pub(super) fn follow(
    config: &Config,
    sample: fn(&Config, &mut dyn Limit) -> Series,
) -> Result<Series, Error> {
    let mut l = limit(config)?;
    let series = sample(config, &mut l);
    match l.failure {
        Some(e) => Err(solver_error(config, e)),
        None => Ok(series),
    }
}

/// What only this limit has, in `/meanfield`: the balance per population and coordinate bin.
pub(super) fn write(file: &hdf5::File, config: &Config, w: &mut RawWrites) -> hdf5::Result<()> {
    // Validated before the file was opened.
    let Ok(b) = balance(config) else {
        return Ok(());
    };
    let Ok((_, inputs)) = stationary(config) else {
        return Ok(());
    };
    let mf = file.group(super::run::GROUP)?;
    let shape = [config.populations.len(), b.bins];
    let hz: Vec<f64> = b.rates.iter().map(|r| 1000.0 * r).collect();
    replicated(&mf, "balance_rate_by_bin", &hz, &shape, "Hz", "balanced rates r* per population and coordinate bin: the solution of the leading-order balance equations M r + d = 0", w)?;
    let pos: Vec<f64> = b.sides.iter().map(|s| s.0).collect();
    let neg: Vec<f64> = b.sides.iter().map(|s| s.1).collect();
    replicated(&mf, "balance_positive_input", &pos, &shape, "mV/ms", "positive part of the O(sqrt n) mean aggregate input at the balanced rates, per population and coordinate bin", w)?;
    replicated(&mf, "balance_negative_input", &neg, &shape, "mV/ms", "negative part of the O(sqrt n) mean aggregate input at the balanced rates (cancels the positive part)", w)?;
    replicated(&mf, "poisson_variance", &b.variance(), &shape, "mV^2/ms", "variance rate of the Poisson aggregate input, J^2 times the event rate, at the balanced rates", w)?;
    replicated(&mf, "mean_input", &inputs, &shape, "mV/ms", "the O(1) mean aggregate input of the stationary kinetic limit (holds each group's mean intensity at its balanced rate)", w)?;
    Ok(())
}

impl BalancedLimit {
    fn group_density(&self, k: usize, edges: &[f64]) -> Vec<f64> {
        let s = &self.solvers[k];
        let h = s.cell_width();
        let c = s.centres();
        let from: Vec<f64> = (0..=c.len())
            .map(|i| c[0] - 0.5 * h + i as f64 * h)
            .collect();
        let mut d = rebin(s.density(), &from, edges);
        // The neurons at v_reset fall in the bin that holds it, as a run's histogram counts them.
        add_point_mass(&mut d, edges, s.v_reset(), s.reset_mass());
        d
    }
}

impl Limit for BalancedLimit {
    fn advance_to(&mut self, t: f64) {
        while self.time < t - 1e-9 * self.dt && self.failure.is_none() {
            for s in &mut self.solvers {
                if let Err(e) = s.step(self.dt) {
                    self.failure = Some(e);
                }
            }
            self.steps += 1;
            self.time = self.steps as f64 * self.dt;
        }
    }
    fn rates(&self) -> Vec<f64> {
        self.shares
            .iter()
            .enumerate()
            .map(|(p, sh)| {
                sh.iter()
                    .enumerate()
                    .map(|(c, w)| w * self.solvers[self.solver_of[p * self.bins + c]].spikes())
                    .sum::<f64>()
                    / self.dt
            })
            .collect()
    }
    fn moments(&self) -> Vec<(f64, f64)> {
        self.shares
            .iter()
            .enumerate()
            .map(|(p, sh)| {
                let (mut m1, mut m2) = (0.0, 0.0);
                for (c, w) in sh.iter().enumerate() {
                    let (m, v) = self.solvers[self.solver_of[p * self.bins + c]].moments();
                    m1 += w * m;
                    m2 += w * (v + m * m);
                }
                (m1, m2 - m1 * m1)
            })
            .collect()
    }
    fn densities(&self, edges: &[f64]) -> Vec<Vec<(Vec<f64>, f64)>> {
        (0..self.shares.len())
            .map(|p| {
                let per_bin: Vec<Vec<f64>> = (0..self.bins)
                    .map(|c| self.group_density(self.solver_of[p * self.bins + c], edges))
                    .collect();
                if self.xi_bins == 1 {
                    return per_bin
                        .into_iter()
                        .zip(&self.shares[p])
                        .map(|(d, &s)| (d, s))
                        .collect();
                }
                self.mixes[p]
                    .iter()
                    .map(|(share, weights)| {
                        let mut d = vec![0.0; edges.len() - 1];
                        for (w, part) in weights.iter().zip(&per_bin) {
                            for (x, y) in d.iter_mut().zip(part) {
                                *x += w * y;
                            }
                        }
                        (d, *share)
                    })
                    .collect()
            })
            .collect()
    }
    fn groups(&self) -> usize {
        self.solver_of.len()
    }
    fn share(&self, g: usize) -> f64 {
        self.balance.counts[g] / self.total
    }
    fn coupling(&self, _k: usize) -> &[Vec<f64>] {
        // No projections in this family (refused by `check`).
        &[]
    }
    fn expectation(&self, g: usize, phi: TestFunction, _dt: f64) -> f64 {
        let s = &self.solvers[self.solver_of[g]];
        let h = s.cell_width();
        let inside: f64 = s
            .centres()
            .iter()
            .zip(s.density())
            .map(|(&v, f)| h * f * phi.eval(v, false, 0.0, 0.0))
            .sum();
        inside + s.reset_mass() * phi.eval(s.v_reset(), false, 0.0, 0.0)
    }
}

/// `lapicque meanfield --balance` for this family: per population (and coordinate bin) the
/// balanced rate, the two O(sqrt n) sides of the mean input at balance, the Poisson variance,
/// the stationary O(1) mean input and the first-order finite-size rate `r* + M^(-1) mu`.
pub fn report(config: &Config) -> Result<String, Error> {
    let l = limit(config)?;
    let b = &l.balance;
    let (_, inputs) = stationary(config)?;
    let shift = solve_classes(&b.matrix, &b.class, &inputs).unwrap_or_default();
    let variance = b.variance();
    let mut out = format!(
        "balanced state: M r + d = 0 (the O(sqrt n) mean inputs cancel), {} populations x {} coordinate bins\n",
        config.populations.len(),
        b.bins
    );
    let line = |g: usize| {
        format!(
            "balance rate {:.6} Hz, inputs +{:.6} and {:.6} mV/ms, Poisson variance {:.6} mV^2/ms, mean input mu {:.6} mV/ms, finite-n rate {:.6} Hz",
            1000.0 * b.rates[g],
            b.sides[g].0,
            b.sides[g].1,
            variance[g],
            inputs[g],
            1000.0 * (b.rates[g] + shift.get(g).copied().unwrap_or(f64::NAN)),
        )
    };
    for (p, pop) in config.populations.iter().enumerate() {
        let groups: Vec<usize> = (p * b.bins..(p + 1) * b.bins).collect();
        // Bins that agree to the printed digits are one line.
        if b.bins > 1 && groups.iter().all(|&g| line(g) == line(groups[0])) {
            out += &format!(
                "population {} (all {} bins): {}\n",
                pop.name,
                b.bins,
                line(groups[0])
            );
            continue;
        }
        for g in groups {
            let bin = if b.bins > 1 {
                format!(" bin {}", g % b.bins)
            } else {
                String::new()
            };
            out += &format!("population {}{bin}: {}\n", pop.name, line(g));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear drift `a - c v` (plus the mean input `mu`), affine noise `g = s + s_v v` (Ito),
    /// extra Poisson variance `q`, constant intensity `nu`, reset at `v_r`, no refractory time.
    /// The stationary moments close: with `m = E V`, `w = E V^2`,
    ///
    /// ```text
    /// 0 = a + mu - c m - nu (m - v_r)
    /// 0 = 2 (a + mu) m - 2 c w + s^2 + 2 s s_v m + s_v^2 w + q - nu (w - v_r^2)
    /// ```
    fn closed_form(a: f64, c: f64, s: f64, sv: f64, q: f64, nu: f64, vr: f64) -> (f64, f64) {
        let m = (a + nu * vr) / (c + nu);
        let w =
            (2.0 * a * m + s * s + 2.0 * s * sv * m + q + nu * vr * vr) / (2.0 * c - sv * sv + nu);
        (m, w - m * m)
    }

    fn affine_group(a: f64, c: f64, s: f64, sv: f64, q: f64, nu: f64, vr: f64) -> Group {
        Group {
            drift: Box::new(move |v| a - c * v),
            diffusion: Box::new(move |v| {
                let g = (s + sv * v).max(0.0);
                0.5 * (g * g + q)
            }),
            intensity: Box::new(move |_| nu),
            v_reset: vr,
            ref_steps: 0,
            target: None,
        }
    }

    /// The stationary state against the closed form of the moments: Ito affine noise, the extra
    /// (Poisson) variance and the reset all change them; the errors fall at second order.
    #[test]
    fn stationary_moments_match_the_closed_form_at_second_order() {
        let (a, c, s, sv, q, nu, vr) = (1.0, 0.1, 3.0, 0.05, 2.0, 0.05, 2.0);
        let (m, var) = closed_form(a, c, s, sv, q, nu, vr);
        let mut errors = Vec::new();
        for cells in [100, 200, 400, 800] {
            let grid = Grid {
                v_min: -50.0,
                v_max: 90.0,
                cells,
            };
            let mut k = Kinetic::new(
                &affine_group(a, c, s, sv, q, nu, vr),
                grid,
                &vec![1.0; cells],
            )
            .unwrap();
            k.set_input(0.0);
            let rate = k.stationary(0.0).unwrap();
            assert!((rate - nu).abs() < 1e-10, "rate {rate}");
            assert!(k.edge_mass() < 1e-9, "grid too narrow: {}", k.edge_mass());
            let (km, kv) = k.moments();
            errors.push(((km - m).abs(), (kv - var).abs()));
            println!(
                "cells {cells}: mean {km:.8} (exact {m:.8}), variance {kv:.8} (exact {var:.8})"
            );
        }
        for w in errors.windows(2) {
            let (om, ov) = ((w[0].0 / w[1].0).log2(), (w[0].1 / w[1].1).log2());
            println!("orders: mean {om:.2}, variance {ov:.2}");
        }
        let last = errors.len() - 1;
        let om = (errors[last - 1].0 / errors[last].0).log2();
        let ov = (errors[last - 1].1 / errors[last].1).log2();
        assert!(om > 1.8 && ov > 1.8, "orders {om} {ov}");
        assert!(
            errors[last].0 < 1e-3 && errors[last].1 / var < 1e-3,
            "{errors:?}"
        );
    }

    /// The time-dependent scheme relaxes to the same moments (first order in dt), and the
    /// mean input found from a target rate reproduces the rate.
    #[test]
    fn time_dependent_solution_relaxes_to_the_closed_form() {
        let (a, c, s, sv, q, nu, vr) = (1.0, 0.1, 3.0, 0.05, 2.0, 0.05, 2.0);
        let (m, var) = closed_form(a, c, s, sv, q, nu, vr);
        let grid = Grid {
            v_min: -50.0,
            v_max: 90.0,
            cells: 800,
        };
        let mut k =
            Kinetic::new(&affine_group(a, c, s, sv, q, nu, vr), grid, &vec![1.0; 800]).unwrap();
        for _ in 0..20_000 {
            k.step(0.01).unwrap();
        }
        let (km, kv) = k.moments();
        println!("t = 200 ms: mean {km:.6} ({m:.6}), variance {kv:.6} ({var:.6})");
        assert!((km - m).abs() < 2e-3 * m.abs() && (kv - var).abs() < 5e-3 * var);
    }

    /// A sigmoid intensity with a target: the mean input found holds the mean intensity at the
    /// target in every step and in the stationary state; with refractory steps the mass at
    /// v_reset is the rate times (ref_steps + 1) steps.
    #[test]
    fn mean_input_holds_the_target_rate() {
        let group = Group {
            drift: Box::new(|v| -v / 20.0),
            diffusion: Box::new(|v| 0.5 * (0.09 * (v + 10.0).abs() + 0.5)),
            intensity: Box::new(|v| 0.1 / (1.0 + (-0.5 * (v - 15.0)).exp())),
            v_reset: 0.0,
            ref_steps: 20,
            target: Some(0.008),
        };
        let grid = Grid {
            v_min: -30.0,
            v_max: 50.0,
            cells: 400,
        };
        let init: Vec<f64> = (0..400)
            .map(|i| {
                let v = -30.0 + (i as f64 + 0.5) * 0.2;
                if (0.0..15.0).contains(&v) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mut k = Kinetic::new(&group, grid, &init).unwrap();
        for n in 0..3000 {
            k.step(0.1).unwrap();
            assert!(
                (k.mean_nu() - 0.008).abs() < 1e-10,
                "step {n}: {}",
                k.mean_nu()
            );
            assert!(k.density().iter().all(|&f| f >= 0.0));
        }
        let mass = k.cell_width() * k.density().iter().sum::<f64>() + k.reset_mass();
        assert!((mass - 1.0).abs() < 1e-10, "mass {mass}");
        let spikes = k.spikes() / 0.1;
        assert!((k.reset_mass() - 21.0 * 0.1 * spikes).abs() < 1e-3 * k.reset_mass());
        let mu_t = k.input();
        let rate = k.stationary(2.0).unwrap();
        println!(
            "mu after 300 ms {mu_t:.6} mV/ms, stationary {:.6} mV/ms; spike rate {rate:.6}/ms",
            k.input()
        );
        assert!((k.mean_nu() - 0.008).abs() < 1e-10);
        // Equal to O(dt) (the run's discrete step against the continuous equation).
        assert!((mu_t - k.input()).abs() < 0.02 * k.input().abs().max(0.1));
    }

    /// The balance matrix, drive, rates and Poisson variance of a two-population network
    /// without kernels, written out by hand: `J = j0 / sqrt(n_q)`, `M_pq = J n_q` (poisson),
    /// `d = j0 sqrt(n)` (current of s = one) or `J n / 1000` (poisson of s = one, 1 Hz per
    /// source), variance `J^2 n_q r_q` (+ `J^2 n / 1000`); and the diffusion of each group
    /// is `g(v)^2 / 2` of the particle's sqrt noise plus half that variance.
    #[test]
    fn balance_and_poisson_variance_from_the_config() {
        let pop = "spike = \"escape\"\nescape = { kind = \"sigmoid\", rate = 100.0, theta = 15.0, beta = 0.5 }\nnoise = \"sqrt\"\nsigma = 0.3\ne_noise = -10.0\n";
        let term = |name: &str, s: &str, t: &str, kind: &str, f: &str, j0: f64| {
            format!("[aggregate.{name}]\nsource = \"{s}\"\ntarget = \"{t}\"\nkind = \"{kind}\"\ns = {{ kind = \"{f}\" }}\nj0 = {j0}\nalpha = 0.5\n")
        };
        let text = format!(
            "[population.E]\nsize = 400\n{pop}[population.I]\nsize = 100\n{pop}{}{}{}{}{}{}",
            term("EE", "E", "E", "poisson", "intensity", 2.0),
            term("IE", "I", "E", "poisson", "intensity", -4.0),
            term("EI", "E", "I", "poisson", "intensity", 3.0),
            term("II", "I", "I", "poisson", "intensity", -5.0),
            term("XE", "E", "E", "current", "one", 0.05),
            term("XI", "I", "I", "poisson", "one", 1.0),
        );
        let config = Config::from_toml(&text, &[]).unwrap();
        assert!(covers(&config));
        check(&config).unwrap();
        let b = balance(&config).unwrap();
        let (jee, jie, jei, jii, jxi) = (2.0 / 20.0, -4.0 / 10.0, 3.0 / 20.0, -5.0 / 10.0, 0.1);
        let m = [[jee * 400.0, jie * 100.0], [jei * 400.0, jii * 100.0]];
        let d = [0.05 * 20.0, jxi * 100.0 / 1000.0];
        // Cramer's rule for m r = -d.
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let r = [
            (-d[0] * m[1][1] + d[1] * m[0][1]) / det,
            (-d[1] * m[0][0] + d[0] * m[1][0]) / det,
        ];
        for g in 0..2 {
            assert!((b.rates[g] - r[g]).abs() < 1e-12, "{:?} vs {r:?}", b.rates);
            assert!((b.drive[g] - d[g]).abs() < 1e-12);
        }
        let var = [
            jee * jee * 400.0 * r[0] + jie * jie * 100.0 * r[1],
            jei * jei * 400.0 * r[0] + jii * jii * 100.0 * r[1] + jxi * jxi * 100.0 / 1000.0,
        ];
        let v = b.variance();
        for g in 0..2 {
            assert!((v[g] - var[g]).abs() < 1e-12, "{v:?} vs {var:?}");
            let (pos, neg) = b.sides[g];
            assert!(
                pos > 0.5 && (pos + neg).abs() < 1e-12 * pos,
                "{:?}",
                b.sides[g]
            );
        }
        let groups = groups(&config, &b, true);
        for (g, group) in groups.iter().enumerate() {
            let v = 4.0;
            let want = 0.5 * (0.09 * (v + 10.0) + var[g]);
            assert!(((group.diffusion)(v) - want).abs() < 1e-12);
            assert!((group.target.unwrap() - r[g]).abs() < 1e-12);
        }
    }

    /// No positive solution, and a singular system, are refused with a line that says so.
    #[test]
    fn no_balanced_state_is_reported() {
        let pop = "spike = \"escape\"\nescape = { kind = \"sigmoid\", rate = 100.0, theta = 15.0, beta = 0.5 }\n";
        let text = |xe: f64, ie: f64| {
            format!("[population.E]\nsize = 400\n{pop}[population.I]\nsize = 100\n{pop}\
                 [aggregate.EE]\nsource = \"E\"\ntarget = \"E\"\nkind = \"poisson\"\ns = {{ kind = \"intensity\" }}\nj0 = 2.0\nalpha = 0.5\n\
                 [aggregate.IE]\nsource = \"I\"\ntarget = \"E\"\nkind = \"poisson\"\ns = {{ kind = \"intensity\" }}\nj0 = {ie}\nalpha = 0.5\n\
                 [aggregate.EI]\nsource = \"E\"\ntarget = \"I\"\nkind = \"poisson\"\ns = {{ kind = \"intensity\" }}\nj0 = 3.0\nalpha = 0.5\n\
                 [aggregate.II]\nsource = \"I\"\ntarget = \"I\"\nkind = \"poisson\"\ns = {{ kind = \"intensity\" }}\nj0 = -5.0\nalpha = 0.5\n\
                 [aggregate.XE]\nsource = \"E\"\ntarget = \"E\"\nkind = \"current\"\ns = {{ kind = \"one\" }}\nj0 = {xe}\nalpha = 0.5\n")
        };
        // A negative drive: the rates that cancel it are negative.
        let c = Config::from_toml(&text(-0.05, -4.0), &[]).unwrap();
        let e = balance(&c).unwrap_err().to_string();
        assert!(
            e.contains("no balanced state") && e.contains("no positive solution"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        // E's row proportional to I's: M_EE / M_IE = M_EI / M_II (40 / -40 = 60 / -60).
        let c = Config::from_toml(&text(0.05, -4.0), &["aggregate.II.j0=-6.0".into()]).unwrap();
        let e = balance(&c).unwrap_err().to_string();
        assert!(
            e.contains("no balanced state") && e.contains("singular"),
            "{e}"
        );
    }

    #[test]
    fn dense_solver_and_root_finder() {
        let x = solve_dense(
            vec![
                vec![0.0, 2.0, 1.0],
                vec![1.0, 1.0, 0.0],
                vec![3.0, 0.0, 1.0],
            ],
            vec![5.0, 3.0, 6.0],
        )
        .unwrap();
        // By hand: x1 + x2 = 3, 3 x1 + x3 = 6, 2 x2 + x3 = 5, so x3 = 6 - 3 x1 and
        // 2 (3 - x1) + 6 - 3 x1 = 5: x1 = 7/5 (the first pivot is zero: pivoting needed).
        let want = [1.4, 1.6, 1.8];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{x:?}");
        }
        assert!(solve_dense(vec![vec![1.0, 2.0], vec![2.0, 4.0]], vec![1.0, 2.0]).is_none());
        let r = root(|x| x * x * x - 8.0, 0.0, 0.5, 100.0, 1e-13).unwrap();
        assert!((r - 2.0).abs() < 1e-12, "{r}");
    }
}
