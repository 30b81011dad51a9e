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
