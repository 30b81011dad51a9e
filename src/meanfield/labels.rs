//! The joint density of potential and label for K = 2 classes: `f(t, v, l)`, `l` the
//! probability of class 0 (`1 - l` of class 1), of an escape-noise population whose labels
//! follow `dl/dt = g(v, l) = -q01(v) l + q10(v) (1 - l)`:
//!
//! ```text
//! d_t f + d_v(b(v) f) + d_l(g(v, l) f) = D d_v^2 f - nu(v) f + delta(v - v_reset) int nu(v') f(t, v', l) dv'
//! ```
//!
//! (a spike resets V and keeps the label). Explicit finite volumes on a `v x l` grid: in `v`
//! upwind advection and central diffusion, zero flux at both ends; in `l` upwind advection,
//! zero flux at `l = 0` and `l = 1` (where `g` points inwards); the loss taken exactly per cell
//! (`f exp(-nu dt)`) and the lost mass of each label row put back at `v_reset` in the same
//! row. Mass is conserved by construction and every value stays non-negative under the step
//! bound of [`JointSolver::stable_dt`]. First order in `dt`, `dv` and `dl`.

/// One population's joint problem.
pub struct Joint {
    /// Drift b(v) [mV/ms].
    pub drift: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// Escape intensity nu(v) [1/ms].
    pub intensity: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// Transition rates q01(v), q10(v) [1/ms].
    pub rates: Box<dyn Fn(f64) -> (f64, f64) + Send + Sync>,
    pub sigma: f64,
    pub v_reset: f64,
}

pub struct JointSolver {
    p: Joint,
    v_min: f64,
    h: f64,
    nv: usize,
    nl: usize,
    /// Density [1/(mV x 1)], row-major `l` major: `f[j * nv + i]`.
    f: Vec<f64>,
    time: f64,
    /// Per cell: drift at the upper face, nu at the centre, (q01, q10) at the centre.
    b_face: Vec<f64>,
    nu: Vec<f64>,
    q: Vec<(f64, f64)>,
    reset: (usize, f64),
}

impl JointSolver {
    /// `initial_v`: cell densities over `v` (the label starts at `l0` for every neuron).
    pub fn new(
        p: Joint,
        v_min: f64,
        v_max: f64,
        nv: usize,
        nl: usize,
        initial_v: &[f64],
        l0: f64,
    ) -> Result<Self, String> {
        if nv < 3 || nl < 2 || initial_v.len() != nv || v_max <= v_min {
            return Err("joint density: bad grid".into());
        }
        let h = (v_max - v_min) / nv as f64;
        let centre = |i: usize| v_min + (i as f64 + 0.5) * h;
        if !(v_min..v_max).contains(&p.v_reset) {
            return Err("joint density: v_reset outside the grid".into());
        }
        let r = ((p.v_reset - v_min) / h - 0.5).clamp(0.0, (nv - 1) as f64);
        let i0 = (r.floor() as usize).min(nv - 2);
        let reset = (i0, r - i0 as f64);
        let b_face = (0..nv)
            .map(|i| (p.drift)(v_min + (i + 1) as f64 * h))
            .collect();
        let nu = (0..nv).map(|i| (p.intensity)(centre(i))).collect();
        let q = (0..nv).map(|i| (p.rates)(centre(i))).collect();
        let mass: f64 = initial_v.iter().sum::<f64>() * h;
        if !(mass > 0.0 && mass.is_finite()) {
            return Err("joint density: initial density without mass".into());
        }
        let dl = 1.0 / nl as f64;
        let j0 = ((l0 * nl as f64) as usize).min(nl - 1);
        let mut f = vec![0.0; nv * nl];
        for (i, &x) in initial_v.iter().enumerate() {
            f[j0 * nv + i] = x / mass / dl;
        }
        Ok(JointSolver {
            p,
            v_min,
            h,
            nv,
            nl,
            f,
            time: 0.0,
            b_face,
            nu,
            q,
            reset,
        })
    }

    fn dl(&self) -> f64 {
        1.0 / self.nl as f64
    }

    /// A step that keeps every value non-negative (each cell loses at most 90% of its mass to
    /// its fluxes), at most `dt_max`.
    pub fn stable_dt(&self, dt_max: f64) -> f64 {
        let d = 0.5 * self.p.sigma * self.p.sigma;
        let bmax = self.b_face.iter().fold(0.0f64, |m, b| m.max(b.abs()));
        let gmax = self.q.iter().fold(0.0f64, |m, (a, b)| m.max(a + b));
        let rate = 2.0 * bmax / self.h + 4.0 * d / (self.h * self.h) + 2.0 * gmax / self.dl();
        if rate > 0.0 {
            dt_max.min(0.9 / rate)
        } else {
            dt_max
        }
    }

    /// Advances by `dt` (which must not exceed [`JointSolver::stable_dt`]).
    pub fn step(&mut self, dt: f64) {
        let (nv, nl, h, dl) = (self.nv, self.nl, self.h, self.dl());
        let d = 0.5 * self.p.sigma * self.p.sigma;
        let mut next = self.f.clone();
        for j in 0..nl {
            let row = &self.f[j * nv..(j + 1) * nv];
            let out = &mut next[j * nv..(j + 1) * nv];
            // v fluxes through the interior faces.
            for i in 0..nv - 1 {
                let b = self.b_face[i];
                let up = if b > 0.0 { row[i] } else { row[i + 1] };
                let flux = b * up - d * (row[i + 1] - row[i]) / h;
                out[i] -= dt * flux / h;
                out[i + 1] += dt * flux / h;
            }
        }
        // l fluxes through the interior faces: g(v, l) at the face l = (j + 1) dl.
        for j in 0..nl - 1 {
            let l = (j + 1) as f64 * dl;
            for i in 0..nv {
                let (q01, q10) = self.q[i];
                let g = -q01 * l + q10 * (1.0 - l);
                let up = if g > 0.0 {
                    self.f[j * nv + i]
                } else {
                    self.f[(j + 1) * nv + i]
                };
                let flux = g * up;
                next[j * nv + i] -= dt * flux / dl;
                next[(j + 1) * nv + i] += dt * flux / dl;
            }
        }
        // Spikes: the loss of each cell, reinjected at v_reset in its label row.
        let (i0, w) = self.reset;
        for j in 0..nl {
            let mut lost = 0.0;
            for i in 0..nv {
                let x = &mut next[j * nv + i];
                let keep = *x * (-self.nu[i] * dt).exp();
                lost += *x - keep;
                *x = keep;
            }
            next[j * nv + i0] += (1.0 - w) * lost;
            next[j * nv + i0 + 1] += w * lost;
        }
        self.f = next;
        self.time += dt;
    }

    /// Advances to time `t` with stable sub-steps.
    pub fn advance_to(&mut self, t: f64) {
        while self.time < t - 1e-12 {
            let dt = self.stable_dt(t - self.time);
            self.step(dt);
        }
    }

    /// Total mass (1 to round-off).
    pub fn mass(&self) -> f64 {
        self.f.iter().sum::<f64>() * self.h * self.dl()
    }

    /// The density of the class-0 probability `l` over the population, re-binned onto
    /// `bins` equal bins of [0, 1] (per unit l).
    pub fn label_density(&self, bins: usize) -> Vec<f64> {
        let (nv, nl, h) = (self.nv, self.nl, self.h);
        let rows: Vec<f64> = (0..nl)
            .map(|j| self.f[j * nv..(j + 1) * nv].iter().sum::<f64>() * h)
            .collect();
        let from: Vec<f64> = (0..=nl).map(|j| j as f64 / nl as f64).collect();
        let to: Vec<f64> = (0..=bins).map(|b| b as f64 / bins as f64).collect();
        super::run::rebin(&rows, &from, &to)
    }

    /// The mean class-0 probability over the population.
    pub fn mean_label(&self) -> f64 {
        let (nv, h, dl) = (self.nv, self.h, self.dl());
        (0..self.nl)
            .map(|j| {
                (j as f64 + 0.5) * dl * self.f[j * nv..(j + 1) * nv].iter().sum::<f64>() * h * dl
            })
            .sum()
    }

    /// The density of V (the label integrated out) [1/mV] and the cell edges.
    pub fn v_density(&self) -> (Vec<f64>, Vec<f64>) {
        let (nv, dl) = (self.nv, self.dl());
        let d = (0..nv)
            .map(|i| (0..self.nl).map(|j| self.f[j * nv + i]).sum::<f64>() * dl)
            .collect();
        let edges = (0..=nv).map(|i| self.v_min + i as f64 * self.h).collect();
        (d, edges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solver(q01: f64, q10: f64, gain: f64) -> JointSolver {
        let p = Joint {
            drift: Box::new(|v| -v / 20.0 + 0.5),
            intensity: Box::new(|v| 0.01 * ((v - 10.0) / 2.0).exp()),
            rates: Box::new(move |v| (q01 / (1.0 + (-gain * (v - 5.0)).exp()), q10)),
            sigma: 1.0,
            v_reset: 0.0,
        };
        let nv = 150;
        let init: Vec<f64> = (0..nv).map(|i| if i == 50 { 1.0 } else { 0.0 }).collect();
        JointSolver::new(p, -10.0, 20.0, nv, 100, &init, 0.0).unwrap()
    }

    /// Mass is conserved to round-off and no value turns negative.
    #[test]
    fn mass_is_conserved_and_positive() {
        let mut s = solver(0.2, 0.1, 1.0);
        for k in 1..=200 {
            s.advance_to(k as f64);
            assert!((s.mass() - 1.0).abs() < 1e-12, "{}", s.mass());
            assert!(s.f.iter().all(|&x| x >= 0.0));
        }
    }

    /// Constant rates (gain 0 makes q01 half its base): every label follows
    /// l' = -q01 l + q10 (1 - l) from l = 0 whatever its potential, so the mean label is
    /// pi + (0 - pi) exp(-(q01 + q10) t), pi = q10 / (q01 + q10): the closed form, to the
    /// first-order error of the upwind label flux (cells of 0.01).
    #[test]
    fn constant_rates_reach_the_stationary_label() {
        let (q01, q10) = (0.5 * 0.2, 0.1);
        let mut s = solver(0.2, 0.1, 0.0);
        let pi = q10 / (q01 + q10);
        for t in [2.0, 5.0, 50.0] {
            s.advance_to(t);
            let want = pi * (1.0 - (-(q01 + q10) * t).exp());
            let got = s.mean_label();
            assert!((got - want).abs() < 0.01, "t = {t}: {got} vs {want}");
        }
        assert!((s.mean_label() - 0.5).abs() < 0.01);
    }
}
