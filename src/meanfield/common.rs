//! What the limit solvers share: the one interface through which `run.rs` samples any of
//! them (`Limit`), the series it samples into, the run's initial law, the potential grid of
//! the `[meanfield]` table, and re-binning onto a run's histogram bins.

use crate::config::trees::TestFunction;
use crate::config::Config;

/// Time series of the limit on the particle run's sampling grid.
pub(super) struct Series {
    pub(super) rate_sums: Vec<Vec<f64>>,
    pub(super) moment_times: Vec<f64>,
    pub(super) means: Vec<Vec<f64>>,
    pub(super) variances: Vec<Vec<f64>>,
    pub(super) histogram_times: Vec<f64>,
    pub(super) histograms: Vec<Vec<f64>>,
    pub(super) densities: Vec<Vec<f64>>,
    /// Per tree observable: sample times \[ms\] and values.
    pub(super) trees: Vec<(Vec<f64>, Vec<f64>)>,
    /// Per population: label densities at the histogram times (class x bin per sample).
    pub(super) labels: Vec<Vec<f64>>,
}

/// The mass of a piecewise-constant density (`density` [1/mV] on cells with edges `from`)
/// inside each bin of `to`, divided by the bin width: the density re-binned, mass-preserving.
pub fn rebin(density: &[f64], from: &[f64], to: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; to.len() - 1];
    let mut j = 0;
    for (i, &f) in density.iter().enumerate() {
        let (a, b) = (from[i], from[i + 1]);
        while j + 1 < to.len() && to[j + 1] <= a {
            j += 1;
        }
        let mut k = j;
        while k + 1 < to.len() && to[k] < b {
            let lo = a.max(to[k]);
            let hi = b.min(to[k + 1]);
            if hi > lo {
                out[k] += f * (hi - lo);
            }
            k += 1;
        }
    }
    for (k, x) in out.iter_mut().enumerate() {
        *x /= to[k + 1] - to[k];
    }
    out
}

/// Adds a point mass `mass` at `v` \[mV\] to a density [1/mV] on equal bins with `edges`, in
/// the bin a run puts a neuron at `v` in (nothing when `v` is outside).
pub(super) fn add_point_mass(density: &mut [f64], edges: &[f64], v: f64, mass: f64) {
    let bins = density.len();
    if bins == 0 || mass == 0.0 {
        return;
    }
    let width = (edges[bins] - edges[0]) / bins as f64;
    if let Some(b) = crate::fixed::bin_of(v, edges[0], width, bins) {
        density[b] += mass / width;
    }
}

/// Mean and variance of a law of which a fraction `mass` sits at `v` and the rest has
/// `(mean, variance)` (a law with no mass outside the point has NaN moments: only the point
/// counts then).
pub(super) fn with_point_mass((mean, var): (f64, f64), mass: f64, v: f64) -> (f64, f64) {
    if mass <= 0.0 {
        return (mean, var);
    }
    if !(mean.is_finite() && var.is_finite()) || mass >= 1.0 {
        return (v, 0.0);
    }
    let rest = 1.0 - mass;
    let m = rest * mean + mass * v;
    let second = rest * (var + mean * mean) + mass * v * v;
    (m, (second - m * m).max(0.0))
}

/// The law of V of population `b` at t = 0 in a run: uniform on `[v_init_min, v_init_max]`,
/// or all at `v_init_min`.
pub(super) struct InitialLaw {
    pub(super) lo: f64,
    pub(super) hi: f64,
}

impl InitialLaw {
    pub(super) fn of(b: &crate::model::lif::Lif) -> Self {
        InitialLaw {
            lo: b.v_init.0,
            hi: b.v_init.1,
        }
    }

    /// Its density [1/mV] on equal bins with `edges`, exactly: a point mass falls in the bin a
    /// run puts it in.
    pub(super) fn histogram(&self, edges: &[f64]) -> Vec<f64> {
        let mut d = vec![0.0; edges.len().saturating_sub(1)];
        if self.hi > self.lo {
            for (x, e) in d.iter_mut().zip(edges.windows(2)) {
                *x = (e[1].min(self.hi) - e[0].max(self.lo)).max(0.0)
                    / (self.hi - self.lo)
                    / (e[1] - e[0]);
            }
        } else {
            add_point_mass(&mut d, edges, self.lo, 1.0);
        }
        d
    }

    pub(super) fn moments(&self) -> (f64, f64) {
        (
            0.5 * (self.lo + self.hi),
            (self.hi - self.lo).powi(2) / 12.0,
        )
    }
}

/// The state of one solver seen through one interface.
pub(super) trait Limit {
    fn advance_to(&mut self, t: f64);
    /// Per population: rate [1/ms].
    fn rates(&self) -> Vec<f64>;
    /// Per population: (mean, variance) of V.
    fn moments(&self) -> Vec<(f64, f64)>;
    /// Per population and coordinate bin: the density [1/mV] on `edges`, each bin's share of
    /// the population.
    fn densities(&self, edges: &[f64]) -> Vec<Vec<(Vec<f64>, f64)>>;
    /// Groups of neurons the limit resolves (populations, or populations x coordinate bins).
    fn groups(&self) -> usize;
    /// The fraction of all neurons in group `g`.
    fn share(&self, g: usize) -> f64;
    /// The expected summed weight onto a neuron of each group from each group through
    /// projection `k` \[mV\].
    fn coupling(&self, k: usize) -> &[Vec<f64>];
    /// The mean of the test function `phi` over the neurons of group `g` (`dt`: the particle
    /// step, for `spike`, which is 1/dt in a step with a spike).
    fn expectation(&self, g: usize, phi: TestFunction, dt: f64) -> f64;
    /// Per population: the densities on [0, 1] of each label class's probability in `bins`
    /// bins (class-major), where the limit has labels.
    fn label_densities(&self, bins: usize) -> Vec<Option<Vec<f64>>> {
        let _ = bins;
        Vec::new()
    }
}

/// `phi` at potential `v`, for the test functions that depend on V alone; `nu` [1/ms] is the
/// escape intensity there (`spike` counts `1 - exp(-nu dt)` spikes per step).
pub(super) fn phi_at(phi: TestFunction, v: f64, nu: f64, dt: f64) -> f64 {
    match phi {
        TestFunction::Spike => -(-nu * dt).exp_m1() / dt,
        TestFunction::Intensity => nu,
        _ => phi.eval(v, false, 0.0, 0.0),
    }
}

pub(super) fn grid(config: &Config) -> (f64, f64, usize) {
    let (hmin, hmax) = config
        .histogram
        .as_ref()
        .map_or((-20.0, 20.0), |h| (h.v_min, h.v_max));
    let mf = &config.raw.meanfield;
    (
        mf.v_min.unwrap_or(hmin - 20.0),
        mf.v_max.unwrap_or(hmax + 20.0),
        mf.cells as usize,
    )
}

/// The density [1/mV] on cells of `width` around `centres` of the particle run's initial
/// potentials ([`InitialLaw`]).
pub(super) fn initial_density(b: &crate::model::lif::Lif, centres: &[f64], width: f64) -> Vec<f64> {
    let mut edges: Vec<f64> = centres.iter().map(|&v| v - 0.5 * width).collect();
    edges.extend(centres.last().map(|&v| v + 0.5 * width));
    InitialLaw::of(b).histogram(&edges)
}

/// The groups of a limit that does not resolve coordinates: whole populations, each one's
/// share of all neurons and, per projection, the expected summed weight `K w` \[mV\] onto a
/// neuron of the target population from the source (the tree observables' coupling).
pub(super) struct PopulationGroups {
    shares: Vec<f64>,
    couplings: Vec<Vec<Vec<f64>>>,
}

impl PopulationGroups {
    pub(super) fn new(config: &Config) -> Self {
        let n = config.populations.len();
        let total = config.n_neurons() as f64;
        PopulationGroups {
            shares: config
                .populations
                .iter()
                .map(|p| p.size as f64 / total)
                .collect(),
            couplings: config
                .projections
                .iter()
                .map(|proj| {
                    let mut m = vec![vec![0.0; n]; n];
                    m[proj.target][proj.source] = indegree(config, proj) * proj.weight;
                    m
                })
                .collect(),
        }
    }
    pub(super) fn groups(&self) -> usize {
        self.shares.len()
    }
    pub(super) fn share(&self, g: usize) -> f64 {
        self.shares[g]
    }
    pub(super) fn coupling(&self, k: usize) -> &[Vec<f64>] {
        &self.couplings[k]
    }
}

/// The expected in-degree of a neuron of the target population through `proj` (no kernel).
pub(super) fn indegree(config: &Config, proj: &crate::config::Projection) -> f64 {
    config.expected_synapses(proj) / config.populations[proj.target].size as f64
}

// ------------------------------------------------------------------------------------------
// Gauss quadrature (the labels' random environment, heterogeneous parameters).

/// Eigenvalues and the squared first components of the eigenvectors of the symmetric
/// tridiagonal matrix with diagonal `diag` and off-diagonal `off` (cyclic Jacobi rotations).
pub(super) fn golub_welsch(diag: &[f64], off: &[f64]) -> Vec<(f64, f64)> {
    let m = diag.len();
    let mut a = vec![vec![0.0; m]; m];
    let mut v = vec![vec![0.0; m]; m];
    for i in 0..m {
        a[i][i] = diag[i];
        v[i][i] = 1.0;
        if i + 1 < m {
            a[i][i + 1] = off[i];
            a[i + 1][i] = off[i];
        }
    }
    for _sweep in 0..100 {
        let offn: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let scale: f64 = (0..m).map(|i| a[i][i] * a[i][i]).sum::<f64>().max(1.0);
        if offn <= 1e-30 * scale {
            break;
        }
        for p in 0..m {
            for q in p + 1..m {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (rp, rq) = (a[p].clone(), a[q].clone());
                for (k, (apk, aqk)) in rp.iter().zip(&rq).enumerate() {
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    let mut out: Vec<(f64, f64)> = (0..m).map(|i| (a[i][i], v[0][i] * v[0][i])).collect();
    out.sort_by(|x, y| x.0.total_cmp(&y.0));
    out
}

/// Gauss quadrature with `m` nodes of a law of a varied parameter: `(node, probability)`
/// pairs, exact for polynomials of degree `2m - 1` in the law's variable (`z` of the
/// lognormal's `exp(mu + s z)`): Hermite for normal and lognormal, Legendre for uniform,
/// generalised Laguerre for gamma. A law truncated to `[low, high]` gets the Gauss rule of the
/// truncated law itself, from its recurrence computed by the discretised Stieltjes procedure
/// on [`STIELTJES_POINTS`] midpoints of the truncated support (cut 12 standard deviations out
/// where it is unbounded).
pub(super) fn law_quadrature(
    law: &crate::model::vary::Law,
    low: f64,
    high: f64,
    m: usize,
) -> Vec<(f64, f64)> {
    use crate::model::vary::Law;
    let m = m.max(1);
    let idx = |n: usize| n as f64;
    let hermite = || {
        let off: Vec<f64> = (1..m).map(|n| idx(n).sqrt()).collect();
        golub_welsch(&vec![0.0; m], &off)
    };
    let legendre = |lo: f64, hi: f64| -> Vec<(f64, f64)> {
        let off: Vec<f64> = (1..m)
            .map(|n| idx(n) / (4.0 * idx(n) * idx(n) - 1.0).sqrt())
            .collect();
        golub_welsch(&vec![0.0; m], &off)
            .into_iter()
            .map(|(x, w)| (lo + (hi - lo) * 0.5 * (x + 1.0), w))
            .collect()
    };
    if let Law::Uniform { min, max } = *law {
        return legendre(min.max(low), max.min(high));
    }
    if low.is_finite() || high.is_finite() {
        let (mean, sd) = (law.mean(), law.sd());
        let (floor, ceil) = match law {
            Law::Normal { .. } => (mean - 12.0 * sd, mean + 12.0 * sd),
            Law::Lognormal { mu, s } => ((mu - 12.0 * s).exp(), (mu + 12.0 * s).exp()),
            _ => (0.0, mean + 40.0 * sd),
        };
        let (a, b) = (low.max(floor), high.min(ceil));
        let n = STIELTJES_POINTS;
        let h = (b - a) / n as f64;
        let x: Vec<f64> = (0..n).map(|i| a + (i as f64 + 0.5) * h).collect();
        let w: Vec<f64> = x
            .iter()
            .map(|&x| match *law {
                Law::Normal { mean, sd } => (-0.5 * ((x - mean) / sd).powi(2)).exp(),
                Law::Lognormal { mu, s } => (-0.5 * ((x.ln() - mu) / s).powi(2)).exp() / x,
                Law::Gamma { shape, scale } => ((shape - 1.0) * x.ln() - x / scale).exp(),
                Law::Uniform { .. } => 1.0,
            })
            .collect();
        return stieltjes(&x, &w, m);
    }
    match *law {
        Law::Normal { mean, sd } => hermite()
            .into_iter()
            .map(|(z, w)| (mean + sd * z, w))
            .collect(),
        Law::Lognormal { mu, s } => hermite()
            .into_iter()
            .map(|(z, w)| ((mu + s * z).exp(), w))
            .collect(),
        Law::Gamma { shape, scale } => {
            let diag: Vec<f64> = (0..m).map(|n| 2.0 * idx(n) + shape).collect();
            let off: Vec<f64> = (1..m)
                .map(|n| (idx(n) * (idx(n) + shape - 1.0)).sqrt())
                .collect();
            golub_welsch(&diag, &off)
                .into_iter()
                .map(|(x, w)| (scale * x, w))
                .collect()
        }
        Law::Uniform { .. } => unreachable!("handled above"),
    }
}

/// Midpoints on which a truncated law is discretised for its Gauss rule.
pub const STIELTJES_POINTS: usize = 20_000;

/// The `m`-point Gauss rule of the discrete measure with points `x` and (unnormalised)
/// weights `w`: the Jacobi matrix from the Stieltjes procedure with orthonormal polynomials,
/// then Golub-Welsch.
fn stieltjes(x: &[f64], w: &[f64], m: usize) -> Vec<(f64, f64)> {
    let total: f64 = w.iter().sum();
    let m = m.min(x.len());
    let mut q = vec![1.0 / total.sqrt(); x.len()];
    let mut q_prev = vec![0.0; x.len()];
    let (mut diag, mut off) = (Vec::with_capacity(m), Vec::with_capacity(m));
    let mut b_prev = 0.0;
    for k in 0..m {
        let a: f64 = x
            .iter()
            .zip(w)
            .zip(&q)
            .map(|((x, w), q)| w * x * q * q)
            .sum();
        diag.push(a);
        if k + 1 == m {
            break;
        }
        let r: Vec<f64> = (0..x.len())
            .map(|i| (x[i] - a) * q[i] - b_prev * q_prev[i])
            .collect();
        let b = r.iter().zip(w).map(|(r, w)| w * r * r).sum::<f64>().sqrt();
        off.push(b);
        q_prev = std::mem::replace(&mut q, r.iter().map(|r| r / b).collect());
        b_prev = b;
    }
    golub_welsch(&diag, &off)
}

/// One node of a factor of the tensor product: `(parameter index, value)` pairs and a weight.
type Node = (Vec<(usize, f64)>, f64);

/// The most sub-populations one heterogeneous population is split into in the threshold-LIF
/// limit (the tensor product of `meanfield.vary_nodes` per varied parameter).
pub const MAX_VARY_NODES: usize = 1024;

/// The sub-populations of population `p` in the threshold-LIF limit: `(parameters, share)`
/// with shares summing to 1; one, with the scalars, for a homogeneous population. A random law
/// gives its Gauss nodes ([`law_quadrature`], `meanfield.vary_nodes` of them); a function of
/// the coordinate gives one node per block (`blocks`) or per each of `vary_nodes` equal bins
/// of the coordinate (`cosine`, `linear`), at the mean of the function over the population's
/// neurons in the bin, with the bin's share of them; the functions of one axis are binned
/// together (one node per distinct tuple of block values, or per bin, carrying every function
/// of that axis), since they are functions of the same coordinate. Several random laws, and
/// the two axes of the torus, are independent: the tensor product. `t_ref` nodes are rounded
/// to whole steps of the run, as each neuron's is.
pub(super) fn vary_nodes(
    config: &Config,
    p: usize,
) -> Result<Vec<(crate::model::vary::Values, f64)>, crate::Error> {
    use crate::model::vary::{self, Profile, Source};
    let pop = &config.populations[p];
    let base = vary::base_values(&pop.model.base, config.dt);
    let m = config.raw.meanfield.vary_nodes as usize;
    // Factors of the tensor product: `(values of some parameters, weight)` rules. A random law
    // is one factor; the functions of one coordinate axis form one factor together, binned
    // jointly (they are functions of the same x, not independent).
    let mut factors: Vec<Vec<Node>> = Vec::new();
    for e in &pop.model.vary.entries {
        if let Source::Random { law, low, high } = &e.source {
            factors.push(
                law_quadrature(law, *low, *high, m)
                    .into_iter()
                    .map(|(x, w)| (vec![(e.param, x)], w))
                    .collect(),
            );
        }
    }
    for axis in 0..2 {
        let profiles: Vec<(usize, &Profile)> = pop
            .model
            .vary
            .entries
            .iter()
            .filter_map(|e| match &e.source {
                Source::Coordinate { axis: a, profile } if *a == axis => Some((e.param, profile)),
                _ => None,
            })
            .collect();
        if profiles.is_empty() {
            continue;
        }
        let xs: Vec<f64> = pop
            .gids()
            .map(|g| pop.coordinate(config.seed, g)[axis])
            .collect();
        let n = xs.len() as f64;
        let rule = if profiles
            .iter()
            .all(|(_, p)| matches!(p, Profile::Blocks(_)))
        {
            // Blocks: one node per distinct tuple of values, with its share of the neurons:
            // exact for the configured network.
            let mut groups: Vec<(Vec<f64>, f64)> = Vec::new();
            for &x in &xs {
                let t: Vec<f64> = profiles.iter().map(|(_, p)| p.at(x)).collect();
                match groups.iter_mut().find(|(u, _)| *u == t) {
                    Some(g) => g.1 += 1.0,
                    None => groups.push((t, 1.0)),
                }
            }
            groups
                .into_iter()
                .map(|(t, c)| {
                    let vals = profiles.iter().zip(t).map(|((q, _), x)| (*q, x)).collect();
                    (vals, c / n)
                })
                .collect()
        } else {
            // `m` equal bins of the axis, each function at its mean over the bin's neurons.
            let mut sums = vec![vec![0.0; profiles.len()]; m];
            let mut count = vec![0.0; m];
            for &x in &xs {
                let b = ((x * m as f64) as usize).min(m - 1);
                for (s, (_, p)) in sums[b].iter_mut().zip(&profiles) {
                    *s += p.at(x);
                }
                count[b] += 1.0;
            }
            (0..m)
                .filter(|&b| count[b] > 0.0)
                .map(|b| {
                    let vals = profiles
                        .iter()
                        .zip(&sums[b])
                        .map(|((q, _), s)| (*q, s / count[b]))
                        .collect();
                    (vals, count[b] / n)
                })
                .collect()
        };
        factors.push(rule);
    }
    let mut nodes = vec![(base, 1.0)];
    for rule in &factors {
        if nodes.len() * rule.len() > MAX_VARY_NODES {
            return Err(crate::Error::Argument {
                key: "meanfield.vary_nodes".into(),
                value: m.to_string(),
                reason: format!(
                    "more than {MAX_VARY_NODES} sub-populations for population {} (the tensor product over its varied parameters); lower meanfield.vary_nodes",
                    pop.name
                ),
            });
        }
        nodes = nodes
            .iter()
            .flat_map(|(v, w)| {
                rule.iter().map(move |(vals, wx)| {
                    let mut v = *v;
                    for &(q, x) in vals {
                        v[q] = if q == vary::T_REF {
                            f64::from(vary::ref_steps(x, config.dt)) * config.dt
                        } else {
                            x
                        };
                    }
                    (v, w * wx)
                })
            })
            .collect();
    }
    let key = |k: &str| format!("population.{}.{k}", pop.name);
    for (v, _) in &nodes {
        vary::check_values(
            v,
            &pop.model.vary,
            config.dt,
            &key,
            "at a quadrature node of the limit",
        )?;
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::vary::Law;

    fn moment(rule: &[(f64, f64)], k: i32) -> f64 {
        rule.iter().map(|(x, w)| w * x.powi(k)).sum()
    }

    /// The Gauss rules of the varied parameters' laws reproduce their moments: exactly the
    /// polynomial ones up to degree 2m - 1, and, for a truncated law, the moments of the
    /// truncation in closed form (half-normal: mean sqrt(2/pi) sd, second moment sd^2 above
    /// the cut).
    #[test]
    fn law_quadratures_reproduce_moments() {
        let inf = f64::INFINITY;
        let rule = law_quadrature(&Law::Normal { mean: 2.0, sd: 3.0 }, -inf, inf, 4);
        assert!((moment(&rule, 0) - 1.0).abs() < 1e-12);
        assert!((moment(&rule, 1) - 2.0).abs() < 1e-12);
        // E[X^4] of N(2, 9): mu^4 + 6 mu^2 s^2 + 3 s^4.
        assert!((moment(&rule, 4) - (16.0 + 6.0 * 4.0 * 9.0 + 3.0 * 81.0)).abs() < 1e-9);
        let rule = law_quadrature(&Law::Uniform { min: 1.0, max: 3.0 }, -inf, inf, 3);
        assert!((moment(&rule, 4) - (243.0 - 1.0) / 10.0).abs() < 1e-12);
        let rule = law_quadrature(
            &Law::Gamma {
                shape: 4.0,
                scale: 0.5,
            },
            -inf,
            inf,
            3,
        );
        // E[X^2] = k (k + 1) theta^2.
        assert!((moment(&rule, 2) - 20.0 * 0.25).abs() < 1e-10);
        let (mean, sd) = (20.0, 4.0);
        let rule = law_quadrature(&Law::Normal { mean, sd }, mean, inf, 6);
        let want = mean + sd * (2.0 / std::f64::consts::PI).sqrt();
        assert!((moment(&rule, 0) - 1.0).abs() < 1e-12);
        assert!(
            (moment(&rule, 1) - want).abs() < 1e-6,
            "{}",
            moment(&rule, 1)
        );
        let second = moment(&rule, 2) - 2.0 * mean * moment(&rule, 1) + mean * mean;
        assert!((second - sd * sd).abs() < 1e-5, "{second}");
        assert!(rule.iter().all(|(x, _)| *x >= mean));
    }
}
