//! The mean-field limit of escape-noise integrate-and-fire populations with a kernel
//! (`lapicque meanfield`, docs/meanfield.md): groups `g = 1..G` (a population, or one
//! coordinate bin of a population) with densities `f_g(t, v)` obeying
//!
//! ```text
//! d_t f_g + d_v((b_g(v) + S_g(t)) f_g) = D_g d_v^2 f_g - nu_g(v) f_g + delta(v - v_reset_g) N_g(t)
//! N_g(t) = int nu_g(v) f_g(t, v) dv            (rate per neuron [1/ms])
//! S_g(t) = sum_h coupling[g][h] N_h(t)          ([mV/ms]; coupling in mV)
//! D_g    = sigma_g^2 / 2
//! ```
//!
//! With noise the reset is the source `delta(v - v_reset) N`, not a boundary condition; each
//! `f_g` keeps mass 1.
//!
//! # Numerics
//!
//! * **Space**: finite volumes on a uniform grid of `cells` cells of width `h` on
//!   `[v_min, v_max]`, cell averages `f_i`; the drift is sampled at the faces, the intensity at
//!   the centres. The advective-diffusive flux through a face is the Scharfetter–Gummel
//!   (exponential fitting, Il'in / Chang–Cooper) flux
//!   `F = (D/h) [B(-P) f_i - B(P) f_{i+1}]`, `P = a h / D`, `B(x) = x / (e^x - 1)`,
//!   `a = b + S`. It is exact for constant coefficients without loss, reduces to upwinding as
//!   `D -> 0` (used verbatim for `sigma = 0`) and to central differences as `P -> 0`; both
//!   weights are non-negative for every Peclet number (an M-matrix, hence positivity). The two
//!   end faces carry zero flux. The reinjection `N(t)` is split linearly between the two cell
//!   centres nearest to `v_reset` (the delta's position to second order).
//!   Order in `h`: 2 where the cell Peclet number is small (noise resolved), degrading to 1 in
//!   the advection-dominated regime (the SG flux's numerical diffusion is `~ |a| h / 2 - D` when
//!   `|P| >> 1`). Measured (unit tests below): 2.0 for the L1 error of the two-sided exponential
//!   stationary density, 2.0 for the stationary rate of a noisy exponential-escape LIF (and
//!   about 2 for its error against the renewal formula at `sigma = 0.05`, where the rate
//!   happens to be insensitive to the numerical diffusion).
//! * **Time**: backward Euler for the whole linear operator of a group at frozen input `S_g`,
//!   i.e. advection, diffusion, the loss `-nu f` *and* the reinjection `N(t^{n+1})` implicit:
//!   `(I + dt A + dt diag(nu)) f^{n+1} = f^n + dt N^{n+1} r / h`, with `A` tridiagonal and `r`
//!   the two reinjection weights. The rank-one reinjection is eliminated by Sherman–Morrison:
//!   with `T x = f^n` and `T y = r / h` (one Thomas factorisation, two right-hand sides),
//!   `N^{n+1} = sum(nu x) / sum(y)` and `f^{n+1} = x + dt N^{n+1} y`. Since every column of `T`
//!   sums to `1 + dt nu_j`, `sum(y) = (1 - dt h nu.y) / h > 0` and the mass removed by the
//!   loss equals the mass reinjected: mass is conserved algebraically. In floating point the
//!   sweeps leave a defect of a few `1e-15` per step (measured: `3e-15` at `stable_dt`, `1.5e-14`
//!   at 25 ms steps), which accumulates with a bias if left alone (`1e-12` after a few hundred
//!   large steps on 1200 cells); each step therefore divides by the computed mass, a relative
//!   change of that size ([`EscapeSolver::max_mass_defect`] reports the largest). `T` is a strictly column-diagonally-dominant M-matrix:
//!   the Thomas pivots are `>= 1`, and the sweep only adds non-negative numbers, so
//!   `x, y, f^{n+1} >= 0` for *any* `dt`, exactly in floating point. The input
//!   `S_g = sum_h coupling[g][h] N_h` is taken from the rates at the start of each step (the
//!   only explicit part). First order in `dt` (measured: 0.99, 1.00 on a coupled transient).
//!
//!   Why implicit: the diffusive CFL `D dt / h^2 <= 1/2` and the loss bound `nu dt <= 1` (which
//!   for exponential intensities is set by nearly empty cells at the top of the grid) would
//!   make an explicit scheme slow; the implicit step is positivity-preserving and conservative
//!   at any `dt`, and its fixed point is the stationary discrete solution for every `dt`, so
//!   [`EscapeSolver::steady_state`] can march in large pseudo-time steps.
//! * **Step size**: the only stability constraint left is the explicit coupling loop; its gain
//!   is bounded by `kappa = max_g sum_h |coupling[g][h]| <|nu'|>_h` (the rate of change of
//!   `N_h` per unit input), and [`EscapeSolver::step`] sub-steps so that `kappa dt <= 1/2`.
//!   [`EscapeSolver::stable_dt`] adds the accuracy limits of the explicit CFL conditions, over
//!   cells carrying mass (`> 1e-12`): advective Courant number `|b + S| dt / h <= 1`, diffusive
//!   mesh ratio `D dt / h^2 <= 1/2`, and loss `<nu>_nu dt <= 1` (`<nu>_nu` the nu-weighted mean
//!   of `nu`, i.e. the intensity seen by the neurons that fire). Strong excitation can make
//!   the rate blow up (the density runs against `v_max`, see [`EscapeSolver::edge_mass`]); the
//!   coupling bound then makes the steps tiny.
//! * **Steady state**: pseudo-time steps of `min(coupling bound, 50 stable_dt)`; since
//!   `(f^{n+1} - f^n) / dt` is the residual of the stationary equation at `f^{n+1}`, the
//!   criterion `|N^{n+1} - N^n| <= tol dt N` and `||f^{n+1} - f^n||_1 <= tol dt` for every
//!   group (held for 3 consecutive steps) is a residual test independent of the step size. The
//!   density test matters: with a constant intensity the rate is constant from the start.

/// One group: a population (or a coordinate bin of one) with escape noise.
pub struct Group {
    /// Drift b(v) [mV/ms] (intrinsic drift with constant drive), e.g. -(v - e_l)/tau_m + i_e.
    pub drift: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// Escape intensity nu(v) [1/ms].
    pub intensity: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// Noise coefficient of dB [mV/ms^(1/2)]; the diffusion coefficient is `sigma^2 / 2`.
    pub sigma: f64,
    /// Reset potential \[mV\], where the firing neurons are reinjected.
    pub v_reset: f64,
}

/// The uniform grid of `cells` cells on `[v_min, v_max]` \[mV\].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub v_min: f64,
    pub v_max: f64,
    pub cells: usize,
}

/// Cells with a mass below this do not constrain [`EscapeSolver::stable_dt`].
const OCCUPIED: f64 = 1e-12;
/// `kappa dt` bound of the explicit coupling loop.
const COUPLING_SAFETY: f64 = 0.5;
/// Pseudo-time steps of [`EscapeSolver::steady_state`], in units of the accuracy limit.
const PSEUDO_FACTOR: f64 = 50.0;
/// Consecutive calm steps for [`EscapeSolver::steady_state`] to declare convergence.
const CALM_STEPS: usize = 3;
/// Largest pseudo-time step \[ms\] when no other limit applies.
const PSEUDO_CAP: f64 = 1e3;

/// What the solver keeps of a [`Group`]: its coefficients sampled on the grid.
struct Sampled {
    diffusion: f64,
    /// Drift at the interior faces `v_min + (j + 1) h`, `j = 0..cells - 1`.
    drift: Vec<f64>,
    /// Intensity at the cell centres.
    nu: Vec<f64>,
    /// `|nu'|` at the cell centres (finite differences).
    slope: Vec<f64>,
    /// The reinjection: cell `reset_cell` gets weight `reset_weights[0]`, the next one
    /// `reset_weights[1]`.
    reset_cell: usize,
    reset_weights: [f64; 2],
}

/// Scratch arrays of the Thomas sweeps.
struct Workspace {
    /// `dt/h` times the Scharfetter–Gummel weights of the face to the right of each cell.
    alpha: Vec<f64>,
    beta: Vec<f64>,
    /// Normalised super-diagonal of the elimination.
    upper: Vec<f64>,
    x: Vec<f64>,
    y: Vec<f64>,
}

/// Finite-volume solver of the coupled escape-noise mean-field equations (see the module doc).
pub struct EscapeSolver {
    v_min: f64,
    h: f64,
    cells: usize,
    groups: Vec<Sampled>,
    coupling: Vec<Vec<f64>>,
    density: Vec<Vec<f64>>,
    rates: Vec<f64>,
    input: Vec<f64>,
    time: f64,
    work: Workspace,
    /// Largest round-off mass defect removed by a step (diagnostic).
    max_defect: f64,
}

/// The Bernoulli function `x / (e^x - 1)` (1 at 0; `-x` for `x -> -inf`, 0 for `x -> inf`).
fn bernoulli(x: f64) -> f64 {
    if x.abs() < 1e-8 {
        1.0 - 0.5 * x
    } else {
        x / x.exp_m1()
    }
}

/// The Scharfetter–Gummel weights `(w_left, w_right)` of the flux `w_left f_i - w_right f_{i+1}`
/// through a face with velocity `a`, diffusion `d` and spacing `h`; `w_left - w_right = a`.
fn sg_weights(a: f64, d: f64, h: f64) -> (f64, f64) {
    if d > 0.0 {
        let p = a * h / d;
        let q = d / h;
        (q * bernoulli(-p), q * bernoulli(p))
    } else {
        (a.max(0.0), (-a).max(0.0))
    }
}

impl Sampled {
    fn new(g: usize, group: &Group, v_min: f64, h: f64, cells: usize) -> Result<Self, String> {
        let Group {
            drift,
            intensity,
            sigma,
            v_reset,
        } = group;
        if !(sigma.is_finite() && *sigma >= 0.0) {
            return Err(format!(
                "group {g}: sigma = {sigma} must be finite and >= 0"
            ));
        }
        let v_max = v_min + h * cells as f64;
        if !(v_reset.is_finite() && *v_reset >= v_min && *v_reset <= v_max) {
            return Err(format!(
                "group {g}: v_reset = {v_reset} mV lies outside the grid [{v_min}, {v_max}]"
            ));
        }
        let mut faces = Vec::with_capacity(cells - 1);
        for j in 1..cells {
            let v = v_min + j as f64 * h;
            let b = drift(v);
            if !b.is_finite() {
                return Err(format!("group {g}: drift({v}) = {b} is not finite"));
            }
            faces.push(b);
        }
        let mut nu = Vec::with_capacity(cells);
        for i in 0..cells {
            let v = v_min + (i as f64 + 0.5) * h;
            let r = intensity(v);
            if !(r.is_finite() && r >= 0.0) {
                return Err(format!(
                    "group {g}: intensity({v}) = {r} must be finite and >= 0 (narrow the grid?)"
                ));
            }
            nu.push(r);
        }
        let slope = (0..cells)
            .map(|i| {
                let (lo, hi) = (i.saturating_sub(1), (i + 1).min(cells - 1));
                ((nu[hi] - nu[lo]) / ((hi - lo) as f64 * h)).abs()
            })
            .collect();
        // Linear split between the two nearest centres (clamped to the end cells).
        let p = (v_reset - v_min) / h - 0.5;
        let (reset_cell, reset_weights) = if p <= 0.0 {
            (0, [1.0, 0.0])
        } else if p >= (cells - 1) as f64 {
            (cells - 2, [0.0, 1.0])
        } else {
            let i = (p.floor() as usize).min(cells - 2);
            let w = p - i as f64;
            (i, [1.0 - w, w])
        };
        Ok(Sampled {
            diffusion: 0.5 * sigma * sigma,
            drift: faces,
            nu,
            slope,
            reset_cell,
            reset_weights,
        })
    }

    /// One backward-Euler step of `dt` at input `s` (module doc) of a density of mass 1; returns
    /// `N^{n+1}` and the round-off mass defect removed.
    fn implicit_step(
        &self,
        f: &mut [f64],
        s: f64,
        dt: f64,
        h: f64,
        w: &mut Workspace,
    ) -> (f64, f64) {
        let n = f.len();
        let lam = dt / h;
        for (j, &b) in self.drift.iter().enumerate() {
            let (l, r) = sg_weights(b + s, self.diffusion, h);
            w.alpha[j] = lam * l;
            w.beta[j] = lam * r;
        }
        // Row i: -alpha[i-1] f[i-1] + (1 + beta[i-1] + alpha[i] + dt nu_i) f[i] - beta[i] f[i+1].
        // Forward elimination (pivots >= 1: strictly column-diagonally dominant M-matrix); every
        // update adds non-negative terms.
        let (mut up_prev, mut x_prev, mut y_prev) = (0.0, 0.0, 0.0);
        for (i, &fi) in f.iter().enumerate() {
            let (from_left, left_out) = if i > 0 {
                (w.alpha[i - 1], w.beta[i - 1])
            } else {
                (0.0, 0.0)
            };
            let (right_out, from_right) = if i + 1 < n {
                (w.alpha[i], w.beta[i])
            } else {
                (0.0, 0.0)
            };
            let diag = 1.0 + left_out + right_out + dt * self.nu[i];
            // lower = -from_left, upper = -from_right; up_prev = -(normalised upper) >= 0.
            let pivot = diag - from_left * up_prev;
            let source = if i == self.reset_cell {
                self.reset_weights[0] / h
            } else if i == self.reset_cell + 1 {
                self.reset_weights[1] / h
            } else {
                0.0
            };
            up_prev = from_right / pivot;
            x_prev = (fi + from_left * x_prev) / pivot;
            y_prev = (source + from_left * y_prev) / pivot;
            w.upper[i] = up_prev;
            w.x[i] = x_prev;
            w.y[i] = y_prev;
        }
        for i in (0..n - 1).rev() {
            w.x[i] += w.upper[i] * w.x[i + 1];
            w.y[i] += w.upper[i] * w.y[i + 1];
        }
        let sum_y: f64 = w.y.iter().sum();
        let nu_x: f64 = self.nu.iter().zip(&w.x).map(|(a, b)| a * b).sum();
        let rate = nu_x / sum_y;
        let k = dt * rate;
        for ((fi, &xi), &yi) in f.iter_mut().zip(&w.x).zip(&w.y) {
            *fi = xi + k * yi;
        }
        // Mass is conserved algebraically; remove the floating-point defect of the sweeps so
        // that it cannot accumulate (a relative change ~1e-15, positivity kept).
        let mass = h * f.iter().sum::<f64>();
        f.iter_mut().for_each(|x| *x /= mass);
        (rate, mass - 1.0)
    }
}

impl EscapeSolver {
    /// `initial[g]`: cell densities [1/mV] of group g (normalised by the solver to mass 1).
    pub fn new(
        groups: Vec<Group>,
        coupling: Vec<Vec<f64>>,
        grid: Grid,
        initial: Vec<Vec<f64>>,
    ) -> Result<Self, String> {
        let Grid {
            v_min,
            v_max,
            cells,
        } = grid;
        if !(v_min.is_finite() && v_max.is_finite() && v_max > v_min) {
            return Err(format!(
                "grid [{v_min}, {v_max}] must be finite with v_max > v_min"
            ));
        }
        if cells < 3 {
            return Err(format!("grid: {cells} cells, need at least 3"));
        }
        let ng = groups.len();
        if ng == 0 {
            return Err("no groups".into());
        }
        if coupling.len() != ng || coupling.iter().any(|row| row.len() != ng) {
            return Err(format!("coupling must be a {ng} x {ng} matrix"));
        }
        if coupling.iter().flatten().any(|c| !c.is_finite()) {
            return Err("coupling must be finite".into());
        }
        if initial.len() != ng {
            return Err(format!(
                "{} initial densities for {ng} groups",
                initial.len()
            ));
        }
        let h = (v_max - v_min) / cells as f64;
        let sampled = groups
            .iter()
            .enumerate()
            .map(|(g, group)| Sampled::new(g, group, v_min, h, cells))
            .collect::<Result<Vec<_>, _>>()?;
        let mut density = initial;
        for (g, f) in density.iter_mut().enumerate() {
            if f.len() != cells {
                return Err(format!(
                    "initial density {g}: {} values for {cells} cells",
                    f.len()
                ));
            }
            if f.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(format!("initial density {g} must be finite and >= 0"));
            }
            let mass: f64 = h * f.iter().sum::<f64>();
            if mass <= 0.0 || !mass.is_finite() {
                return Err(format!("initial density {g} has no (or infinite) mass"));
            }
            f.iter_mut().for_each(|x| *x /= mass);
        }
        let work = Workspace {
            alpha: vec![0.0; cells - 1],
            beta: vec![0.0; cells - 1],
            upper: vec![0.0; cells],
            x: vec![0.0; cells],
            y: vec![0.0; cells],
        };
        let mut solver = EscapeSolver {
            v_min,
            h,
            cells,
            groups: sampled,
            coupling,
            density,
            rates: vec![0.0; ng],
            input: vec![0.0; ng],
            time: 0.0,
            work,
            max_defect: 0.0,
        };
        solver.rates = (0..ng)
            .map(|g| solver.integrate(g, |i, f| solver.groups[g].nu[i] * f))
            .collect();
        solver.input = solver.drive();
        Ok(solver)
    }

    /// `int phi(i, f_i) dv` over group `g`'s density (midpoint rule on the cells).
    fn integrate(&self, g: usize, phi: impl Fn(usize, f64) -> f64) -> f64 {
        self.h
            * self.density[g]
                .iter()
                .enumerate()
                .map(|(i, &f)| phi(i, f))
                .sum::<f64>()
    }

    /// `S_g = sum_h coupling[g][h] N_h` from the current rates.
    fn drive(&self) -> Vec<f64> {
        self.coupling
            .iter()
            .map(|row| row.iter().zip(&self.rates).map(|(c, n)| c * n).sum())
            .collect()
    }

    /// The largest step of the explicit coupling loop: `kappa dt <= 1/2` (module doc).
    fn coupling_dt(&self) -> f64 {
        let gains: Vec<f64> = (0..self.groups.len())
            .map(|g| self.integrate(g, |i, f| self.groups[g].slope[i] * f))
            .collect();
        let kappa = self
            .coupling
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&gains)
                    .map(|(c, k)| c.abs() * k)
                    .sum::<f64>()
            })
            .fold(0.0, f64::max);
        if kappa > 0.0 {
            COUPLING_SAFETY / kappa
        } else {
            f64::INFINITY
        }
    }

    /// The accuracy limits of the explicit CFL conditions over occupied cells (module doc).
    fn accuracy_dt(&self) -> f64 {
        let h = self.h;
        let drive = self.drive();
        let mut dt = f64::INFINITY;
        for (g, sampled) in self.groups.iter().enumerate() {
            let f = &self.density[g];
            let occupied = |i: usize| h * f[i] > OCCUPIED;
            let speed = sampled
                .drift
                .iter()
                .enumerate()
                .filter(|&(j, _)| occupied(j) || occupied(j + 1))
                .map(|(_, b)| (b + drive[g]).abs())
                .fold(0.0, f64::max);
            if speed > 0.0 {
                dt = dt.min(h / speed);
            }
            if sampled.diffusion > 0.0 {
                dt = dt.min(0.5 * h * h / sampled.diffusion);
            }
            let (nu1, nu2) = f
                .iter()
                .zip(&sampled.nu)
                .fold((0.0, 0.0), |(a, b), (fi, r)| (a + r * fi, b + r * r * fi));
            if nu2 > 0.0 {
                dt = dt.min(nu1 / nu2);
            }
        }
        dt
    }

    /// A stable time step \[ms\] for the current state (CFL for advection and diffusion and the
    /// loss term), at most `dt_max`.
    ///
    /// The scheme is stable and positivity-preserving for any `dt` except for the explicit
    /// coupling loop; the advective, diffusive and loss limits bound the time error (module
    /// doc). Infinite only if `dt_max` is and no limit applies.
    pub fn stable_dt(&self, dt_max: f64) -> f64 {
        dt_max.min(self.accuracy_dt()).min(self.coupling_dt())
    }

    /// Advances by `dt` \[ms\] (the caller picks dt <= stable_dt; sub-step internally if needed).
    ///
    /// Sub-steps only to keep the explicit coupling loop stable; non-positive `dt` does nothing.
    pub fn step(&mut self, dt: f64) {
        assert!(!dt.is_nan(), "EscapeSolver::step: dt is NaN");
        if dt <= 0.0 {
            return;
        }
        let bound = self.coupling_dt();
        let n = if bound.is_finite() && dt > bound {
            (dt / bound).ceil() as usize
        } else {
            1
        };
        let sub = dt / n as f64;
        for _ in 0..n {
            self.substep(sub);
        }
        self.time += dt;
    }

    fn substep(&mut self, dt: f64) {
        self.input = self.drive();
        for (g, sampled) in self.groups.iter().enumerate() {
            let (rate, defect) = sampled.implicit_step(
                &mut self.density[g],
                self.input[g],
                dt,
                self.h,
                &mut self.work,
            );
            self.rates[g] = rate;
            self.max_defect = self.max_defect.max(defect.abs());
        }
    }

    /// Advances to time `t` \[ms\] from the current time with stable sub-steps.
    pub fn advance_to(&mut self, t: f64) {
        while self.time < t {
            let remaining = t - self.time;
            let mut dt = self.stable_dt(remaining);
            assert!(
                dt > 0.0 && dt.is_finite(),
                "EscapeSolver::advance_to: no valid step (rates {:?})",
                self.rates
            );
            let last = remaining - dt <= 1e-9 * remaining;
            if last {
                dt = remaining;
            }
            self.step(dt);
            if last {
                self.time = t;
            }
        }
    }

    /// Model time \[ms\].
    pub fn time(&self) -> f64 {
        self.time
    }

    /// Cell densities [1/mV] of group g.
    pub fn density(&self, g: usize) -> &[f64] {
        &self.density[g]
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

    /// The rates `N_g = int nu_g f_g` [1/ms] of the current state.
    pub fn rates(&self) -> Vec<f64> {
        self.rates.clone()
    }

    /// The drive `S_g` [mV/ms] used by the last step (from the rates at its start; at time 0,
    /// from the initial rates).
    pub fn input(&self) -> Vec<f64> {
        self.input.clone()
    }

    /// Mean and variance of v for group g (cell-centre quadrature).
    pub fn moments(&self, g: usize) -> (f64, f64) {
        let c = self.centres();
        let m = self.mass(g);
        let mean = self.integrate(g, |i, f| c[i] * f) / m;
        let var = self.integrate(g, |i, f| (c[i] - mean).powi(2) * f) / m;
        (mean, var)
    }

    /// Total mass of group g (1 to round-off).
    pub fn mass(&self, g: usize) -> f64 {
        self.integrate(g, |_, f| f)
    }

    /// Mass of group g in the two end cells: the grid is wide enough if this is negligible (it
    /// is not when strong excitation drives the density against `v_max`, where the mean-field
    /// rate blows up and the truncated problem piles mass against the zero-flux wall).
    pub fn edge_mass(&self, g: usize) -> f64 {
        let f = &self.density[g];
        self.h * (f[0] + f[self.cells - 1])
    }

    /// The largest mass defect `|mass - 1|` any step has produced before its round-off
    /// correction (module doc): a measure of how well the scheme conserves mass by itself.
    pub fn max_mass_defect(&self) -> f64 {
        self.max_defect
    }

    /// Runs until the rates change by less than `tol` (relative, per ms of model time) or `t_max`
    /// \[ms\] passes; returns whether it converged.
    ///
    /// Marches in pseudo-time steps of `min(coupling bound, 50 stable_dt)` (the fixed point of
    /// the implicit step does not depend on `dt`); converged when
    /// `|N^{n+1} - N^n| <= tol dt max(N^n, N^{n+1})` and, since a rate can be stationary before
    /// its density is (constant intensity), `||f^{n+1} - f^n||_1 <= tol dt` for every group on 3
    /// consecutive steps.
    pub fn steady_state(&mut self, tol: f64, t_max: f64) -> bool {
        let t_end = self.time + t_max;
        let mut calm = 0;
        while self.time < t_end {
            let remaining = t_end - self.time;
            let pseudo = (PSEUDO_FACTOR * self.accuracy_dt())
                .min(self.coupling_dt())
                .min(PSEUDO_CAP);
            let last = pseudo >= remaining;
            let dt = pseudo.min(remaining);
            let before = self.rates.clone();
            let densities = self.density.clone();
            self.step(dt);
            if last {
                self.time = t_end;
            }
            let rates_quiet = before
                .iter()
                .zip(&self.rates)
                .all(|(&a, &b)| (b - a).abs() <= tol * dt * a.abs().max(b.abs()));
            let densities_quiet = densities.iter().zip(&self.density).all(|(a, b)| {
                let l1: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum();
                self.h * l1 <= tol * dt
            });
            let quiet = rates_quiet && densities_quiet;
            calm = if quiet { calm + 1 } else { 0 };
            if calm >= CALM_STEPS {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn leaky(e_l: f64, tau: f64, i_e: f64) -> Box<dyn Fn(f64) -> f64 + Send + Sync> {
        Box::new(move |v| -(v - e_l) / tau + i_e)
    }

    fn exp_escape(rate: f64, theta: f64, delta: f64) -> Box<dyn Fn(f64) -> f64 + Send + Sync> {
        Box::new(move |v| rate * ((v - theta) / delta).exp())
    }

    fn gaussian(grid: Grid, mean: f64, sd: f64) -> Vec<f64> {
        let h = (grid.v_max - grid.v_min) / grid.cells as f64;
        (0..grid.cells)
            .map(|i| {
                let v = grid.v_min + (i as f64 + 0.5) * h;
                (-0.5 * ((v - mean) / sd).powi(2)).exp()
            })
            .collect()
    }

    /// A leaky group with exponential escape rate `0.1 exp((v + 50)/2)` /ms, reset at -65 mV.
    fn lif_group(i_e: f64, sigma: f64) -> Group {
        Group {
            drift: leaky(-65.0, 10.0, i_e),
            intensity: exp_escape(0.1, -50.0, 2.0),
            sigma,
            v_reset: -65.0,
        }
    }

    fn two_groups(cells: usize) -> EscapeSolver {
        let grid = Grid {
            v_min: -95.0,
            v_max: -30.0,
            cells,
        };
        let groups = vec![lif_group(1.2, 1.5), lif_group(0.8, 2.5)];
        // Signed coupling [mV]: group 0 excitatory onto both, group 1 inhibitory.
        let coupling = vec![vec![20.0, -40.0], vec![30.0, -15.0]];
        let initial = vec![gaussian(grid, -60.0, 2.0), gaussian(grid, -70.0, 4.0)];
        EscapeSolver::new(groups, coupling, grid, initial).unwrap()
    }

    /// Test 1. Independent check: the exact mass 1 (the equation conserves it) and the sign of a
    /// density; nonlinear case (exponential intensity, leaky drift, two groups, signed coupling).
    #[test]
    fn mass_is_conserved_and_densities_stay_positive() {
        let mut s = two_groups(300);
        let mut worst: f64 = 0.0;
        let steps = 20_000;
        for _ in 0..steps {
            let dt = s.stable_dt(0.05);
            s.step(dt);
            for g in 0..2 {
                worst = worst.max((s.mass(g) - 1.0).abs());
                assert!(s.density(g).iter().all(|&f| f >= 0.0), "negative density");
            }
        }
        let defect = s.max_mass_defect();
        println!(
            "mass: max |mass - 1| = {worst:.2e} over {steps} steps to t = {:.1} ms (largest \
             per-step defect before the round-off correction {defect:.2e}), rates {:?}",
            s.time(),
            s.rates()
        );
        assert!(worst < 1e-12, "mass drift {worst:e}");
        assert!(defect < 1e-13, "the step itself loses mass: {defect:e}");
        // Huge steps (sub-stepped only for the coupling loop) keep both properties.
        for _ in 0..50 {
            s.step(25.0);
            for g in 0..2 {
                assert!((s.mass(g) - 1.0).abs() < 1e-12);
                assert!(s.density(g).iter().all(|&f| f >= 0.0));
            }
        }
        println!(
            "after 50 steps of 25 ms: largest per-step defect {:.2e}",
            s.max_mass_defect()
        );
        assert!(s.max_mass_defect() < 1e-11);
        assert!(s.rates().iter().all(|r| r.is_finite() && *r > 0.0));
        // After 1.25 s of model time the state is stationary (same fixed point at any dt).
        let before = s.rates();
        assert!(s.steady_state(1e-9, 1e3));
        for (a, b) in before.iter().zip(s.rates()) {
            assert!((a - b).abs() < 1e-8 * b, "{a} vs {b}");
        }
    }

    /// The exact stationary density of the perfect integrator with constant intensity.
    struct TwoSided {
        lp: f64,
        lm: f64,
        c: f64,
        vr: f64,
    }

    impl TwoSided {
        fn new(b: f64, d: f64, nu: f64, vr: f64) -> Self {
            let root = (b * b + 4.0 * d * nu).sqrt();
            let (lp, lm) = ((b + root) / (2.0 * d), (b - root) / (2.0 * d));
            TwoSided {
                lp,
                lm,
                c: nu / (d * (lp - lm)),
                vr,
            }
        }
        /// `int_lo^hi f`.
        fn integral(&self, lo: f64, hi: f64) -> f64 {
            let piece = |l: f64, a: f64, b: f64| {
                self.c / l * ((l * (b - self.vr)).exp() - (l * (a - self.vr)).exp())
            };
            let left = if lo < self.vr {
                piece(self.lp, lo, hi.min(self.vr))
            } else {
                0.0
            };
            let right = if hi > self.vr {
                piece(self.lm, lo.max(self.vr), hi)
            } else {
                0.0
            };
            left + right
        }
    }

    /// Test 2. Independent check: the closed-form two-sided exponential (perfect integrator,
    /// constant intensity, no coupling); L1 distance of the cell masses to the exact cell
    /// integrals, decreasing under refinement.
    #[test]
    fn perfect_integrator_matches_two_sided_exponential() {
        let (b, sigma, nu, vr) = (1.0, 2.0_f64.sqrt(), 1.0, 0.0);
        let d = 0.5 * sigma * sigma;
        let exact = TwoSided::new(b, d, nu, vr);
        assert!((exact.integral(-100.0, 200.0) - 1.0).abs() < 1e-12);
        let mut errors = Vec::new();
        for cells in [75, 150, 300, 600, 1200] {
            let grid = Grid {
                v_min: -20.0,
                v_max: 40.0,
                cells,
            };
            let group = Group {
                drift: Box::new(move |_| b),
                intensity: Box::new(move |_| nu),
                sigma,
                v_reset: vr,
            };
            let init = gaussian(grid, 5.0, 3.0);
            let mut s = EscapeSolver::new(vec![group], vec![vec![0.0]], grid, vec![init]).unwrap();
            assert!(s.steady_state(1e-12, 1e4));
            assert!((s.rates()[0] - nu).abs() < 1e-12, "rate {:?}", s.rates());
            let h = s.cell_width();
            let l1: f64 = s
                .density(0)
                .iter()
                .enumerate()
                .map(|(i, &f)| {
                    let lo = grid.v_min + i as f64 * h;
                    (h * f - exact.integral(lo, lo + h)).abs()
                })
                .sum();
            errors.push((cells, l1));
        }
        for w in errors.windows(2) {
            let order = (w[0].1 / w[1].1).log2();
            println!(
                "two-sided exponential: cells {:5} L1 {:.3e} -> cells {:5} L1 {:.3e}: order {order:.2}",
                w[0].0, w[0].1, w[1].0, w[1].1
            );
            assert!(w[1].1 < w[0].1);
        }
        let last = errors.len() - 1;
        let order = (errors[last - 1].1 / errors[last].1).log2();
        assert!(order > 1.8, "observed order {order}");
        assert!(errors[last].1 < 3e-4);
    }

    fn stationary_rate(cells: usize, sigma: f64, i_e: f64, grid: (f64, f64)) -> (f64, f64) {
        let grid = Grid {
            v_min: grid.0,
            v_max: grid.1,
            cells,
        };
        let init = gaussian(grid, -60.0, 3.0);
        let mut s = EscapeSolver::new(
            vec![lif_group(i_e, sigma)],
            vec![vec![0.0]],
            grid,
            vec![init],
        )
        .unwrap();
        let start = Instant::now();
        assert!(s.steady_state(1e-10, 1e4));
        (s.rates()[0], start.elapsed().as_secs_f64())
    }

    /// Test 3. Independent check: self-convergence under refinement (the differences of
    /// successive rates must shrink at the observed order).
    #[test]
    fn stationary_rate_converges_under_refinement() {
        let rates: Vec<(usize, f64)> = [200, 400, 800, 1600]
            .iter()
            .map(|&n| (n, stationary_rate(n, 2.0, 1.2, (-95.0, -30.0)).0))
            .collect();
        for (n, r) in &rates {
            println!("exp-escape LIF: cells {n:5} rate {r:.10} /ms");
        }
        let d1 = (rates[1].1 - rates[0].1).abs();
        let d2 = (rates[2].1 - rates[1].1).abs();
        let d3 = (rates[3].1 - rates[2].1).abs();
        let order = (d1 / d2).log2();
        println!(
            "differences 200->400 {d1:.3e}, 400->800 {d2:.3e}, 800->1600 {d3:.3e}; \
             order {order:.2}, then {:.2}; finest two (400, 800) differ by {:.3e} relative",
            (d2 / d3).log2(),
            d2 / rates[2].1
        );
        assert!(order >= 0.9, "order {order}");
        assert!(
            d2 / rates[2].1 < 5e-3,
            "finest two differ by more than 0.5%"
        );
    }

    /// Test 4. Independent check: the renewal formula `1 / int_0^inf S(a) da` along the
    /// deterministic trajectory from reset, by quadrature; tolerance 1% (sigma = 0.05 adds an
    /// O(sigma^2) correction, the grid an O(h) numerical diffusion).
    #[test]
    fn small_noise_rate_matches_renewal_formula() {
        let (e_l, tau, i_e, vr) = (-65.0, 10.0, 2.0, -65.0);
        let nu = |v: f64| 0.1 * ((v + 50.0) / 2.0).exp();
        // V(s) = v_inf + (vr - v_inf) e^{-s/tau}; hazard integrated by the trapezoidal rule.
        let v_inf = e_l + tau * i_e;
        let traj = |s: f64| v_inf + (vr - v_inf) * (-s / tau).exp();
        let da = 1e-3;
        let (mut hazard, mut mean_isi, mut a) = (0.0, 0.0, 0.0);
        let mut surv_prev = 1.0;
        while surv_prev > 1e-16 {
            hazard += 0.5 * da * (nu(traj(a)) + nu(traj(a + da)));
            let surv = (-hazard).exp();
            mean_isi += 0.5 * da * (surv_prev + surv);
            surv_prev = surv;
            a += da;
        }
        let renewal = 1.0 / mean_isi;
        for cells in [500, 2000] {
            let (rate, secs) = stationary_rate(cells, 0.05, i_e, (-67.0, -40.0));
            let rel = (rate - renewal) / renewal;
            println!(
                "small noise: cells {cells}: rate {rate:.6} /ms vs renewal {renewal:.6} /ms: \
                 relative error {rel:+.3e} ({secs:.3} s)"
            );
            assert!(rel.abs() < 0.01, "relative error {rel}");
        }
    }

    /// Test 5. Independent checks at the coupled steady state: the drive equals
    /// `coupling x rates`, the rates equal `int nu f` recomputed here from the group's intensity,
    /// and each group alone with the constant drive `S_g` (no coupling) has the rate `N_g`.
    #[test]
    fn coupled_steady_state_is_self_consistent() {
        let cells = 400;
        let mut s = two_groups(cells);
        let start = Instant::now();
        assert!(s.steady_state(1e-10, 1e4), "no convergence");
        let secs = start.elapsed().as_secs_f64();
        let (rates, input) = (s.rates(), s.input());
        println!(
            "coupled: t = {:.1} ms, rates {rates:?} /ms, drive {input:?} mV/ms ({secs:.3} s)",
            s.time()
        );
        let coupling = [[20.0, -40.0], [30.0, -15.0]];
        let h = s.cell_width();
        let nu = |v: f64| 0.1 * ((v + 50.0) / 2.0).exp();
        for g in 0..2 {
            let sg = coupling[g][0] * rates[0] + coupling[g][1] * rates[1];
            assert!((input[g] - sg).abs() < 1e-8 * (1.0 + sg.abs()), "S_{g}");
            let n: f64 = h * s
                .centres()
                .iter()
                .zip(s.density(g))
                .map(|(&v, &f)| nu(v) * f)
                .sum::<f64>();
            assert!((n - rates[g]).abs() < 1e-12 * rates[g], "N_{g}");
            assert!(s.edge_mass(g) < 1e-9, "grid too narrow: {}", s.edge_mass(g));
            let i_e = [1.2, 0.8][g];
            let sigma = [1.5, 2.5][g];
            let grid = Grid {
                v_min: -95.0,
                v_max: -30.0,
                cells,
            };
            let alone = Group {
                drift: leaky(-65.0, 10.0, i_e + input[g]),
                ..lif_group(i_e, sigma)
            };
            let mut single = EscapeSolver::new(
                vec![alone],
                vec![vec![0.0]],
                grid,
                vec![gaussian(grid, -60.0, 3.0)],
            )
            .unwrap();
            assert!(single.steady_state(1e-12, 1e4));
            let rel = (single.rates()[0] - rates[g]).abs() / rates[g];
            println!(
                "group {g}: alone with S = {:.6}: rate {:.10} vs {:.10}",
                input[g],
                single.rates()[0],
                rates[g]
            );
            assert!(rel < 1e-7, "group {g}: {rel}");
        }
    }

    /// Performance: a steady state of 1 group on 400 cells.
    #[test]
    fn steady_state_is_fast() {
        let (rate, secs) = stationary_rate(400, 2.0, 1.2, (-95.0, -30.0));
        println!("steady state, 1 group, 400 cells: rate {rate:.6} /ms in {secs:.4} s");
        assert!(secs < 2.0);
    }

    /// Backward Euler is first order in `dt`: self-convergence of a coupled transient.
    #[test]
    fn transient_is_first_order_in_time() {
        let t_end: f64 = 10.0;
        let rates: Vec<Vec<f64>> = [0.04, 0.02, 0.01, 0.005]
            .iter()
            .map(|&dt| {
                let mut s = two_groups(200);
                let n = (t_end / dt).round() as usize;
                for _ in 0..n {
                    s.step(dt);
                }
                s.rates()
            })
            .collect();
        let diff = |a: &Vec<f64>, b: &Vec<f64>| (a[0] - b[0]).abs() + (a[1] - b[1]).abs();
        let d: Vec<f64> = rates.windows(2).map(|w| diff(&w[0], &w[1])).collect();
        let orders: Vec<f64> = d.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
        println!(
            "transient to t = {t_end} ms, dt = 0.04 .. 0.005 ms: successive rate differences \
             {:?}, orders {orders:.2?}",
            d.iter().map(|x| format!("{x:.3e}")).collect::<Vec<_>>()
        );
        assert!(
            orders.iter().all(|&p| (p - 1.0).abs() < 0.2),
            "orders {orders:?}"
        );
    }

    #[test]
    fn advance_to_lands_on_time_and_relaxes() {
        let mut s = two_groups(200);
        s.advance_to(3.7);
        assert_eq!(s.time(), 3.7);
        s.advance_to(200.0);
        assert_eq!(s.time(), 200.0);
        let (mean, var) = s.moments(0);
        assert!(mean > -95.0 && mean < -30.0 && var > 0.0);
        assert!(s.stable_dt(1e-3) <= 1e-3);
    }

    #[test]
    fn rejects_bad_input() {
        let grid = Grid {
            v_min: -80.0,
            v_max: -40.0,
            cells: 100,
        };
        let ok = || vec![vec![1.0; 100]];
        let bad_reset = Group {
            v_reset: -30.0,
            ..lif_group(1.0, 1.0)
        };
        assert!(EscapeSolver::new(vec![bad_reset], vec![vec![0.0]], grid, ok()).is_err());
        let overflow = Group {
            intensity: exp_escape(1.0, -50.0, 0.01),
            ..lif_group(1.0, 1.0)
        };
        assert!(EscapeSolver::new(vec![overflow], vec![vec![0.0]], grid, ok()).is_err());
        let g = || vec![lif_group(1.0, 1.0)];
        assert!(EscapeSolver::new(g(), vec![vec![0.0, 1.0]], grid, ok()).is_err());
        assert!(EscapeSolver::new(g(), vec![vec![0.0]], grid, vec![vec![0.0; 100]]).is_err());
        assert!(EscapeSolver::new(g(), vec![vec![0.0]], grid, vec![vec![1.0; 99]]).is_err());
        assert!(EscapeSolver::new(g(), vec![vec![0.0]], grid, ok()).is_ok());
    }
}
