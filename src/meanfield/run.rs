//! `lapicque meanfield CONFIG`: the limit equations of a configuration, solved over the same
//! model time and written in the layout of a particle run (`/populations`, `/rates`,
//! `/moments`, `/histograms`, `/densities`), so that `lapicque compare` and `scripts/plot.py`
//! take either. `/meanfield` holds what only the limit has (stationary and balance rates).
//!
//! Five families of configurations have a limit here:
//!
//! * **threshold LIF** (every population `model = "lif"`, additive noise, delta synapses,
//!   threshold spikes, no labels, no aggregate terms, no kernels, constant weights): the
//!   Fokker-Planck equation of each population with the diffusion approximation of its input
//!   ([`super::lif`]); a population with heterogeneous parameters as the mixture of
//!   sub-populations at quadrature nodes of its laws or bins of its coordinate profiles
//!   (`common::vary_nodes`); also the self-consistent Siegert rates and the balance rates;
//! * **escape noise** (every population `spike = "escape"`, `t_ref = 0`, drift `lif`,
//!   `perfect`, `linear` or `exp_if`, additive noise, delta synapses, no labels, no aggregate
//!   terms, kernels on the ring): the density `f(t, v, xi)` per population and coordinate bin
//!   ([`super::escape`]); synaptic jumps become the drift `S(t, xi)` of the limit (weights
//!   `O(1/K)`), delays are neglected;
//! * **balanced kinetic** (escape noise with `poisson` and `current` aggregate terms of
//!   `alpha = 0.5`, no projections): the balance equations and the Fokker-Planck equation of
//!   the fluctuations per population and coordinate bin ([`super::balanced`]);
//! * **strong coupling** (aggregate terms only, electrical or chemical, populations without
//!   spikes): the McKean-Vlasov density per population ([`super::mckean`]);
//! * **labelled networks** (some population has labels of two or three classes; threshold or
//!   escape spikes, additive noise, delta synapses, electrical, chemical, current and
//!   spike-jump aggregate terms and projections without kernels): the joint density of
//!   potential, label and environment per population ([`super::labels`]).
//!
//! Anything else is refused with one line naming the key of the feature that has no limit.

use super::balanced;
use super::common::{
    add_point_mass, grid, indegree, initial_density, phi_at, rebin, vary_nodes, with_point_mass,
    InitialLaw, Limit, PopulationGroups, Series,
};
use super::escape::{EscapeSolver, Grid, Group};
use super::labels;
use super::lif::{self, Coupling, LifSolver};
use crate::comm::SerialComm;
use crate::config::trees::{TestFunction, TreeSpec};
use crate::config::{Config, ConnRule, ModelKind, NoiseKind, Population, SpikeRule, SynapseKind};
use crate::h5::{attr, attr_str, replicated, RawWrites};
use crate::model::neuron::intensity;
use crate::model::vary::{self, Values};
use crate::space::{self, Geometry};
use crate::Error;
use hdf5::File;
use std::path::Path;

/// The group of a mean-field file with what only the limit has (solver, stationary state).
pub const GROUP: &str = "meanfield";

fn no_limit(key: String, reason: &str) -> Error {
    Error::NoLimit {
        key,
        reason: reason.to_string(),
    }
}

/// Which limit equation a configuration has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Lif,
    Escape,
    /// Escape-noise populations coupled through `poisson` and `current` aggregate terms with
    /// `n^(-1/2)` scaling ([`super::balanced`]).
    Balanced,
    /// Electrical and chemical aggregate coupling ([`super::mckean`]).
    McKean,
    /// Populations with labels ([`super::labels`]).
    Labels,
}

/// The family of `config`, or the first feature without a limit equation. Heterogeneous
/// parameters have a limit in the threshold-LIF family only (a mixture over quadrature nodes);
/// every other family refuses them by key.
pub fn family(config: &Config) -> Result<Family, Error> {
    let family = family_of(config)?;
    if family != Family::Lif {
        for p in &config.populations {
            if let Some(e) = p.model.vary.entries.first() {
                return Err(no_limit(
                    format!("population.{}.vary.{}", p.name, e.name()),
                    &format!(
                        "the {} limit does not take heterogeneous parameters",
                        family_name(family)
                    ),
                ));
            }
        }
    }
    // Stimulation: currents and Poisson drives of whole threshold-LIF populations enter the
    // LIF limit's input; nothing else has a limit here yet.
    for s in &config.stimuli {
        let key = |k: &str| format!("stimulus.{}.{k}", s.name);
        if family != Family::Lif {
            return Err(no_limit(
                key("target"),
                &format!(
                    "stimulation (the {} limit does not take it)",
                    family_name(family)
                ),
            ));
        }
        if let crate::stimulus::Drive::Replay { .. } = s.drive {
            return Err(no_limit(
                key("kind"),
                "replayed spikes (a finite set of spike trains has no diffusion limit)",
            ));
        }
        if s.region.is_some() {
            return Err(no_limit(
                key("region"),
                "a stimulus of part of a population (the LIF limit is not spatial)",
            ));
        }
    }
    Ok(family)
}

/// How the output names a family.
fn family_name(family: Family) -> &'static str {
    match family {
        Family::Lif => "threshold LIF Fokker-Planck",
        Family::Escape => "escape-noise Fokker-Planck",
        Family::Balanced => "balanced kinetic Fokker-Planck",
        Family::McKean => "McKean-Vlasov Fokker-Planck",
        Family::Labels => "labelled-network Fokker-Planck",
    }
}

/// The family of the network without its stimuli and variation.
fn family_of(config: &Config) -> Result<Family, Error> {
    if config.populations.iter().any(|p| p.model.labels.is_some()) {
        return labels::check(config).map(|()| Family::Labels);
    }
    if balanced::covers(config) {
        return balanced::check(config).map(|()| Family::Balanced);
    }
    if !config.aggregates.is_empty() {
        super::mckean::check(config)?;
        return Ok(Family::McKean);
    }
    let escape = config.populations[0].model.spike == SpikeRule::Escape;
    for p in &config.populations {
        let m = &p.model;
        let key = |k: &str| format!("population.{}.{k}", p.name);
        if m.noise != NoiseKind::Additive {
            return Err(no_limit(key("noise"), "multiplicative noise"));
        }
        if m.synapse != SynapseKind::Delta {
            return Err(no_limit(key("synapse"), "current and conductance synapses"));
        }
        if (m.spike == SpikeRule::Escape) != escape {
            return Err(no_limit(
                key("spike"),
                "populations with different spike rules in one network",
            ));
        }
        match (escape, m.kind) {
            (_, ModelKind::Fhn) => return Err(no_limit(key("model"), "FitzHugh-Nagumo")),
            (false, ModelKind::Lif) => {}
            (false, _) => {
                return Err(no_limit(
                    key("model"),
                    "threshold spikes with a drift other than lif",
                ))
            }
            (true, _) => {}
        }
        if !escape && m.spike == SpikeRule::None {
            return Err(no_limit(key("spike"), "spike = \"none\""));
        }
        if escape && m.base.ref_steps > 0 {
            return Err(no_limit(
                key("t_ref"),
                "a refractory period with escape noise; set t_ref = 0",
            ));
        }
        if escape && p.layout.geometry == Geometry::Torus {
            return Err(no_limit(
                key("coordinates"),
                "the torus; the escape-noise limit bins the ring coordinate",
            ));
        }
    }
    for proj in &config.projections {
        let key = |k: &str| format!("projection.{}.{k}", proj.name);
        if let ConnRule::File(_) = proj.rule {
            return Err(no_limit(key("file"), "edges read from a file"));
        }
        if !escape {
            if proj.kernel.is_some() {
                return Err(no_limit(
                    key("kernel"),
                    "kernels with threshold LIF neurons (the LIF limit is not spatial)",
                ));
            }
            if proj.per_synapse_weights() {
                return Err(no_limit(
                    key("weight_dist"),
                    "random weights with threshold LIF neurons",
                ));
            }
        }
    }
    Ok(if escape { Family::Escape } else { Family::Lif })
}

/// The value of a tree observable under the limit: with groups independent and large, the
/// message of vertex `a` to a neuron of group `g` is `E_g[phi_a] prod_(c child of a)
/// sum_h W_(g h) m_c(h)` (W the expected summed weight through the tree's projections) and the
/// value is `sum_g share_g m_root(g)`, the limit of the exact sum over index tuples.
fn tree_value(limit: &dyn Limit, spec: &TreeSpec, dt: f64) -> f64 {
    let n = limit.groups();
    let mut w = vec![vec![0.0; n]; n];
    for &k in &spec.projections {
        for (row, r) in w.iter_mut().zip(limit.coupling(k)) {
            for (x, y) in row.iter_mut().zip(r) {
                *x += y;
            }
        }
    }
    let children = spec.children();
    let mut messages: Vec<Vec<f64>> = vec![Vec::new(); spec.parents.len()];
    for a in (0..spec.parents.len()).rev() {
        messages[a] = (0..n)
            .map(|g| {
                let mut m = limit.expectation(g, spec.functions[a], dt);
                for &c in &children[a] {
                    m *= w[g]
                        .iter()
                        .zip(&messages[c])
                        .map(|(x, y)| x * y)
                        .sum::<f64>();
                }
                m
            })
            .collect();
    }
    (0..n).map(|g| limit.share(g) * messages[0][g]).sum()
}

/// The threshold-LIF limit: one Fokker-Planck solve per population, or per sub-population
/// of a heterogeneous one ([`vary_nodes`]), whose outputs are mixed with the sub-populations'
/// shares.
struct LifLimit {
    solver: LifSolver,
    groups: PopulationGroups,
    /// Per population, its sub-populations in the solver and their shares.
    members: Vec<Vec<(usize, f64)>>,
    /// Per sub-population.
    v_reset: Vec<f64>,
}

impl LifLimit {
    /// The mixture over population `p`'s sub-populations of `f(sub-population)`.
    fn mix(&self, p: usize, f: impl Fn(usize) -> f64) -> f64 {
        self.members[p].iter().map(|&(q, w)| w * f(q)).sum()
    }
}

impl Limit for LifLimit {
    fn advance_to(&mut self, t: f64) {
        self.solver.advance_to(t);
    }
    fn rates(&self) -> Vec<f64> {
        let r = self.solver.rates();
        (0..self.members.len())
            .map(|p| self.mix(p, |q| r[q]))
            .collect()
    }
    /// Over every neuron, refractory ones at `v_reset` as in a run; a heterogeneous
    /// population's the moments of the mixture.
    fn moments(&self) -> Vec<(f64, f64)> {
        let sub: Vec<(f64, f64)> = (0..self.v_reset.len())
            .map(|q| {
                let (m, v) = self.solver.moments(q);
                with_point_mass((m, v), self.solver.refractory_mass(q), self.v_reset[q])
            })
            .collect();
        (0..self.members.len())
            .map(|p| {
                let m1 = self.mix(p, |q| sub[q].0);
                let m2 = self.mix(p, |q| sub[q].1 + sub[q].0 * sub[q].0);
                (m1, m2 - m1 * m1)
            })
            .collect()
    }
    /// The density below threshold plus the refractory mass in the bin of `v_reset`, where a
    /// run counts its refractory neurons (the mixture, for a heterogeneous population).
    fn densities(&self, edges: &[f64]) -> Vec<Vec<(Vec<f64>, f64)>> {
        self.members
            .iter()
            .map(|members| {
                let mut mixed = vec![0.0; edges.len().saturating_sub(1)];
                for &(q, w) in members {
                    let mut d = rebin(self.solver.density(q), &self.solver.edges(q), edges);
                    add_point_mass(
                        &mut d,
                        edges,
                        self.v_reset[q],
                        self.solver.refractory_mass(q),
                    );
                    for (x, y) in mixed.iter_mut().zip(&d) {
                        *x += w * y;
                    }
                }
                vec![(mixed, 1.0)]
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
        self.mix(g, |q| {
            if phi == TestFunction::Spike {
                // The flux through threshold: spikes per neuron per ms.
                return self.solver.rates()[q];
            }
            let edges = self.solver.edges(q);
            let inside: f64 = self
                .solver
                .density(q)
                .iter()
                .zip(edges.windows(2))
                .map(|(d, e)| d * (e[1] - e[0]) * phi_at(phi, 0.5 * (e[0] + e[1]), 0.0, dt))
                .sum();
            // Refractory neurons sit at the reset potential.
            inside + self.solver.refractory_mass(q) * phi_at(phi, self.v_reset[q], 0.0, dt)
        })
    }
}

struct EscapeLimit {
    solver: EscapeSolver,
    /// Groups per population (coordinate bins) and each group's share of its population.
    bins: usize,
    shares: Vec<Vec<f64>>,
    edges: Vec<f64>,
    couplings: Vec<Vec<Vec<f64>>>,
    /// Each group's fraction of all neurons.
    group_shares: Vec<f64>,
    /// Escape intensity [1/ms] of each group's population at each cell centre.
    intensities: Vec<Vec<f64>>,
}

impl Limit for EscapeLimit {
    fn advance_to(&mut self, t: f64) {
        self.solver.advance_to(t);
    }
    fn rates(&self) -> Vec<f64> {
        let r = self.solver.rates();
        self.shares
            .iter()
            .enumerate()
            .map(|(p, s)| (0..self.bins).map(|c| s[c] * r[p * self.bins + c]).sum())
            .collect()
    }
    fn moments(&self) -> Vec<(f64, f64)> {
        self.shares
            .iter()
            .enumerate()
            .map(|(p, s)| {
                let (mut m1, mut m2) = (0.0, 0.0);
                for (c, &w) in s.iter().enumerate() {
                    let (m, v) = self.solver.moments(p * self.bins + c);
                    m1 += w * m;
                    m2 += w * (v + m * m);
                }
                (m1, m2 - m1 * m1)
            })
            .collect()
    }
    fn densities(&self, edges: &[f64]) -> Vec<Vec<(Vec<f64>, f64)>> {
        self.shares
            .iter()
            .enumerate()
            .map(|(p, s)| {
                (0..self.bins)
                    .map(|c| {
                        let d = rebin(self.solver.density(p * self.bins + c), &self.edges, edges);
                        (d, s[c])
                    })
                    .collect()
            })
            .collect()
    }
    fn groups(&self) -> usize {
        self.group_shares.len()
    }
    fn share(&self, g: usize) -> f64 {
        self.group_shares[g]
    }
    fn coupling(&self, k: usize) -> &[Vec<f64>] {
        &self.couplings[k]
    }
    fn expectation(&self, g: usize, phi: TestFunction, dt: f64) -> f64 {
        let width = self.edges[1] - self.edges[0];
        self.solver
            .density(g)
            .iter()
            .zip(self.edges.windows(2))
            .zip(&self.intensities[g])
            .map(|((d, e), &nu)| d * width * phi_at(phi, 0.5 * (e[0] + e[1]), nu, dt))
            .sum()
    }
}

/// The LIF limit of `config`, with its stimuli or without them (the stationary state is that
/// of the unstimulated network).
fn lif_limit(config: &Config, stimulated: bool) -> Result<LifLimit, Error> {
    let nodes: Vec<Vec<(Values, f64)>> = (0..config.populations.len())
        .map(|p| vary_nodes(config, p))
        .collect::<Result<_, _>>()?;
    let mut pops = Vec::new();
    let mut members = Vec::new();
    for (pop, nodes) in config.populations.iter().zip(&nodes) {
        let b = &pop.model.base;
        let mut m = Vec::new();
        for (v, w) in nodes {
            m.push((pops.len(), *w));
            pops.push(lif::Population {
                tau_m: v[vary::TAU_M],
                e_l: v[vary::E_L],
                v_th: v[vary::V_TH],
                v_reset: v[vary::V_RESET],
                t_ref: if pop.model.vary.get(vary::T_REF).is_some() {
                    v[vary::T_REF]
                } else {
                    f64::from(b.ref_steps) * config.dt
                },
                i_e: v[vary::I_E],
                sigma: v[vary::SIGMA],
                rate_ext: v[vary::POISSON_RATE] / 1000.0,
                j_ext: v[vary::POISSON_WEIGHT],
            });
        }
        members.push(m);
    }
    // A heterogeneous source is felt through the mixture of its sub-populations' rates.
    let mut mixtures = Vec::new();
    let source: Vec<usize> = members
        .iter()
        .map(|m| {
            if m.len() == 1 {
                m[0].0
            } else {
                mixtures.push(m.clone());
                pops.len() + mixtures.len() - 1
            }
        })
        .collect();
    let couplings = config
        .projections
        .iter()
        .flat_map(|proj| {
            let c = Coupling {
                source: source[proj.source],
                target: 0,
                indegree: indegree(config, proj),
                weight: proj.weight,
                delay: f64::from(proj.delay_steps) * config.dt,
            };
            members[proj.target]
                .iter()
                .map(move |&(q, _)| Coupling { target: q, ..c })
        })
        .collect();
    let (v_min, _, cells) = grid(config);
    let v_reset: Vec<f64> = pops.iter().map(|p| p.v_reset).collect();
    let mut solver =
        LifSolver::new_mixed(pops, mixtures, couplings, v_min, cells).map_err(|e| {
            Error::Argument {
                key: "meanfield".into(),
                value: config.raw.meanfield.cells.to_string(),
                reason: e,
            }
        })?;
    solver.set_dt(config.raw.meanfield.dt);
    if stimulated {
        // A stimulus of a heterogeneous population drives each of its nodes.
        for s in &config.stimuli {
            for &(q, _) in &members[s.target] {
                solver
                    .add_stimulus(q, s.clone())
                    .map_err(|e| no_limit(format!("stimulus.{}.kind", s.name), &e))?;
            }
        }
    }
    // The run's initial law of V, on the solver's own cells.
    for (pop, m) in config.populations.iter().zip(&members) {
        let b = &pop.model.base;
        let (lo, hi) = b.v_init;
        for &(q, _) in m {
            let v_th = solver.edges(q).last().copied().expect("cells");
            if lo < v_min || hi >= v_th {
                return Err(Error::Argument {
                    key: format!("population.{}.v_init_min", pop.name),
                    value: format!("{lo} (v_init_max {hi})"),
                    reason: format!(
                        "the limit starts from initial potentials inside [meanfield.v_min, v_th) = [{v_min}, {v_th}) [mV]{}",
                        if m.len() > 1 { " at every quadrature node of the varied parameters" } else { "" }
                    ),
                });
            }
            let density = InitialLaw::of(b).histogram(&solver.edges(q));
            solver
                .set_density(q, &density)
                .map_err(|e| Error::Argument {
                    key: format!("population.{}.v_init_min", pop.name),
                    value: lo.to_string(),
                    reason: e,
                })?;
        }
    }
    Ok(LifLimit {
        solver,
        groups: PopulationGroups::new(config),
        members,
        v_reset,
    })
}

/// Number of neurons of population `p` in each of `bins` coordinate bins.
fn bin_counts(config: &Config, p: &Population, bins: usize) -> Vec<f64> {
    let mut c = vec![0.0; bins];
    for gid in p.gids() {
        c[space::bin(p.coordinate(config.seed, gid), bins)] += 1.0;
    }
    c
}

/// The expected summed weight \[mV\] onto a neuron of coordinate bin `c` of the target
/// population from the neurons of bin `b` of the source, through projection `k`, as a matrix
/// over groups `population x bins + bin`: for a target at `x`, `p n_b <K(x, .)>_b` synapses for
/// `bernoulli` (probability kernel `K`, 1 without), `indegree n_b <K(x, .)>_b / sum_b' n_b'
/// <K(x, .)>_b'` for `fixed_indegree`, times the mean weight (and the weight kernel inside the
/// mean), averaged over `x` in bin `c`; `<.>_b` is the mean over bin `b`. The means are taken
/// by the midpoint rule on [`kernel_points`] sub-points per bin, so a kernel that changes
/// inside a bin (a block boundary that falls inside it) enters with the share of the bin on
/// each side instead of its value at the bin's centre.
fn projection_coupling(
    config: &Config,
    k: usize,
    bins: usize,
    counts: &[Vec<f64>],
) -> Vec<Vec<f64>> {
    let proj = &config.projections[k];
    let n_groups = config.populations.len() * bins;
    let mut coupling = vec![vec![0.0; n_groups]; n_groups];
    let (p, q) = (proj.target, proj.source);
    let m = if proj.kernel.is_some() {
        kernel_points(bins)
    } else {
        1
    };
    let point = |b: usize, s: usize| [(b as f64 + (s as f64 + 0.5) / m as f64) / bins as f64, 0.0];
    let kernel = |x: [f64; 2], y: [f64; 2], use_it: bool| match &proj.kernel {
        Some(k) if use_it => k.kernel.eval(k.geometry, x, y),
        _ => 1.0,
    };
    let prob = proj.kernel.as_ref().is_some_and(|k| k.probability);
    let wker = proj.kernel.as_ref().is_some_and(|k| k.weight);
    let (mut reach, mut weighted) = (vec![0.0; bins], vec![0.0; bins]);
    for c in 0..bins {
        let mut synapses = vec![0.0; bins];
        for sx in 0..m {
            let x = point(c, sx);
            for b in 0..bins {
                let (mut kp, mut kw) = (0.0, 0.0);
                for sy in 0..m {
                    let y = point(b, sy);
                    let pk = kernel(x, y, prob);
                    kp += pk;
                    kw += pk * kernel(x, y, wker);
                }
                reach[b] = counts[q][b] * kp / m as f64;
                weighted[b] = counts[q][b] * kw / m as f64;
            }
            let total: f64 = reach.iter().sum();
            for b in 0..bins {
                synapses[b] += match &proj.rule {
                    ConnRule::Bernoulli { p, .. } => p * weighted[b],
                    ConnRule::FixedIndegree { indegree, .. } if total > 0.0 => {
                        *indegree as f64 * weighted[b] / total
                    }
                    _ => 0.0,
                } / m as f64;
            }
        }
        for (b, s) in synapses.iter().enumerate() {
            coupling[p * bins + c][q * bins + b] += s * proj.weight;
        }
    }
    coupling
}

/// Sub-points per coordinate bin at which kernels are averaged: 64 for up to 128 bins, fewer
/// for finer grids (at least 1), so that a projection costs at most about 6e7 kernel values.
fn kernel_points(bins: usize) -> usize {
    (8192 / bins.max(1)).clamp(1, 64)
}

fn escape_limit(config: &Config) -> Result<EscapeLimit, Error> {
    let any_kernel = config.projections.iter().any(|p| p.kernel.is_some());
    let bins = match config.histogram.as_ref().map_or(1, |h| h.xi_bins) {
        1 if any_kernel => config.raw.meanfield.xi_bins as usize,
        b => b,
    };
    let counts: Vec<Vec<f64>> = config
        .populations
        .iter()
        .map(|p| bin_counts(config, p, bins))
        .collect();
    let per_projection: Vec<Vec<Vec<f64>>> = (0..config.projections.len())
        .map(|k| projection_coupling(config, k, bins, &counts))
        .collect();
    let n_groups = config.populations.len() * bins;
    let mut coupling = vec![vec![0.0; n_groups]; n_groups];
    for m in &per_projection {
        for (row, r) in coupling.iter_mut().zip(m) {
            for (x, y) in row.iter_mut().zip(r) {
                *x += y;
            }
        }
    }
    let (v_min, v_max, cells) = grid(config);
    let width = (v_max - v_min) / cells as f64;
    let centres: Vec<f64> = (0..cells)
        .map(|k| v_min + (k as f64 + 0.5) * width)
        .collect();
    let mut groups = Vec::new();
    let mut initial = Vec::new();
    for p in &config.populations {
        let m = p.model.clone();
        let b = &m.base;
        let ext_drift = b.poisson_rate / 1000.0 * b.poisson_weight;
        let ext_var = b.poisson_rate / 1000.0 * b.poisson_weight * b.poisson_weight;
        let init = initial_density(b, &centres, width);
        for _ in 0..bins {
            let (md, mi) = (m.clone(), m.clone());
            groups.push(Group {
                drift: Box::new(move |v| md.intrinsic_drift(v, 0.0) + ext_drift),
                intensity: Box::new(move |v| {
                    intensity(mi.escape.as_ref().expect("escape family"), v) / 1000.0
                }),
                sigma: (b.sigma * b.sigma + ext_var).sqrt(),
                v_reset: b.v_reset,
            });
            initial.push(init.clone());
        }
    }
    let solver = EscapeSolver::new(
        groups,
        coupling,
        Grid {
            v_min,
            v_max,
            cells,
        },
        initial,
    )
    .map_err(|e| Error::Argument {
        key: "meanfield".into(),
        value: format!("[{v_min}, {v_max}] mV, {cells} cells"),
        reason: e,
    })?;
    let shares = counts
        .iter()
        .zip(&config.populations)
        .map(|(c, p)| c.iter().map(|&n| n / p.size as f64).collect())
        .collect();
    let edges = (0..=cells).map(|k| v_min + k as f64 * width).collect();
    let total = config.n_neurons() as f64;
    let group_shares = counts.iter().flatten().map(|n| n / total).collect();
    let intensities = config
        .populations
        .iter()
        .flat_map(|p| {
            let e = p.model.escape.clone().expect("escape family");
            let row: Vec<f64> = centres.iter().map(|&v| intensity(&e, v) / 1000.0).collect();
            std::iter::repeat_n(row, bins)
        })
        .collect();
    Ok(EscapeLimit {
        solver,
        bins,
        shares,
        edges,
        couplings: per_projection,
        group_shares,
        intensities,
    })
}

/// Follows the limit over `[0, t_stop]` on the particle run's step, sampling as it would.
pub(super) fn follow(config: &Config, limit: &mut dyn Limit) -> Series {
    let n_pop = config.populations.len();
    let n_bins = config.rates.bins();
    let mut s = Series {
        rate_sums: vec![vec![0.0; n_bins]; n_pop],
        moment_times: Vec::new(),
        means: vec![Vec::new(); n_pop],
        variances: vec![Vec::new(); n_pop],
        histogram_times: Vec::new(),
        histograms: vec![Vec::new(); n_pop],
        densities: vec![Vec::new(); n_pop],
        trees: vec![(Vec::new(), Vec::new()); config.trees.trees.len()],
        labels: vec![Vec::new(); n_pop],
    };
    let edges: Vec<f64> = config
        .histogram
        .as_ref()
        .map_or(Vec::new(), crate::config::HistogramSpec::edges);
    let xi_bins = config.histogram.as_ref().map_or(1, |h| h.xi_bins);
    let shares: Vec<Vec<f64>> = config
        .populations
        .iter()
        .map(|p| {
            let c = bin_counts(config, p, xi_bins);
            c.iter().map(|n| n / p.size as f64).collect()
        })
        .collect();
    // At t = 0 the limit is the run's initial law itself: written exactly rather than as the
    // solver's cells re-binned, which would spread a point mass over two bins.
    let initial: Vec<InitialLaw> = config
        .populations
        .iter()
        .map(|p| InitialLaw::of(&p.model.base))
        .collect();
    let sample = |b: u64, limit: &dyn Limit, s: &mut Series| {
        let t = config.time(b);
        for (spec, (times, values)) in config.trees.trees.iter().zip(&mut s.trees) {
            if spec.schedule.fires(b) {
                times.push(t);
                values.push(tree_value(limit, spec, config.dt));
            }
        }
        if config.moments.is_some_and(|m| m.fires(b)) {
            s.moment_times.push(t);
            let moments = if b == 0 {
                initial.iter().map(InitialLaw::moments).collect()
            } else {
                limit.moments()
            };
            for (p, (m, v)) in moments.into_iter().enumerate() {
                s.means[p].push(m);
                s.variances[p].push(v);
            }
        }
        if let Some(h) = config.histogram.as_ref().filter(|h| h.schedule.fires(b)) {
            s.histogram_times.push(t);
            for (p, d) in limit.label_densities(h.label_bins).into_iter().enumerate() {
                let Some(d) = d else { continue };
                match config.populations[p]
                    .model
                    .labels
                    .as_ref()
                    .filter(|_| b == 0)
                {
                    // Every label starts at `init`: each class's point mass in its bin.
                    Some(l) => {
                        let lb = h.label_bins;
                        for &x in l.initial() {
                            let mut row = vec![0.0; lb];
                            row[((x * lb as f64) as usize).min(lb - 1)] = lb as f64;
                            s.labels[p].extend(row);
                        }
                    }
                    None => s.labels[p].extend(d),
                }
            }
            let densities = if b == 0 {
                // The initial potentials do not depend on the coordinate.
                initial
                    .iter()
                    .map(|law| vec![(law.histogram(&edges), 1.0)])
                    .collect()
            } else {
                limit.densities(&edges)
            };
            for (p, parts) in densities.into_iter().enumerate() {
                let mut marginal = vec![0.0; h.bins];
                for (d, share) in &parts {
                    for (m, x) in marginal.iter_mut().zip(d) {
                        *m += share * x;
                    }
                }
                if xi_bins > 1 {
                    // f(t, v, xi): each bin's density times its share, per unit xi; a limit
                    // without space has the same density of V in every bin.
                    for c in 0..xi_bins {
                        let (d, share) = if parts.len() == xi_bins {
                            (&parts[c].0, parts[c].1)
                        } else {
                            (&marginal, shares[p][c])
                        };
                        s.densities[p].extend(d.iter().map(|x| x * share * xi_bins as f64));
                    }
                }
                s.histograms[p].extend(marginal);
            }
        }
    };
    sample(0, limit, &mut s);
    // Progress on stderr, as a run reports it: a limit can take minutes.
    let mut progress = crate::progress::Progress::new(
        true,
        config.n_steps,
        config.dt,
        config.raw.output.progress_interval,
    );
    for n in 0..config.n_steps {
        limit.advance_to((n + 1) as f64 * config.dt);
        if let Some(bin) = config.rates.bin_of_spike(n) {
            for (p, r) in limit.rates().into_iter().enumerate() {
                s.rate_sums[p][bin] += r * config.dt;
            }
        }
        sample(n + 1, limit, &mut s);
        progress.tick(n + 1);
    }
    progress.finish();
    s
}

/// The stationary state of the limit (a fresh solver run to its steady state).
struct Stationary {
    /// Per population [1/ms].
    rates: Vec<f64>,
    /// Per population and coordinate bin [1/ms] (escape noise; one bin for LIF).
    by_bin: Vec<Vec<f64>>,
    converged: bool,
}

impl Stationary {
    /// The stationary state of a limit without coordinate bins (one bin per population).
    fn without_bins(rates: Vec<f64>, converged: bool) -> Self {
        Stationary {
            by_bin: rates.iter().map(|&r| vec![r]).collect(),
            rates,
            converged,
        }
    }
}

fn stationary(config: &Config, family: Family) -> Result<Stationary, Error> {
    let t_max = 20_000.0;
    Ok(match family {
        Family::Lif => {
            let mut l = lif_limit(config, false)?;
            // The stationary point of the implicit step does not depend on its length.
            l.solver.set_dt(0.1);
            let converged = l.solver.steady_state(1e-6, t_max);
            Stationary::without_bins(l.rates(), converged)
        }
        Family::Escape => {
            let mut l = escape_limit(config)?;
            let converged = l.solver.steady_state(1e-6, t_max);
            let groups = l.solver.rates();
            Stationary {
                rates: l.rates(),
                by_bin: groups.chunks(l.bins).map(<[f64]>::to_vec).collect(),
                converged,
            }
        }
        Family::Balanced => {
            let l = balanced::limit(config)?;
            let (groups, _) = balanced::stationary(config)?;
            let by_bin: Vec<Vec<f64>> =
                groups.chunks(l.balance.bins).map(<[f64]>::to_vec).collect();
            Stationary {
                rates: balanced::per_population(config, &l.balance, &groups),
                by_bin,
                converged: true,
            }
        }
        Family::McKean => {
            let mut l = super::mckean::limit(config);
            let converged = l.solver.steady_state(1e-6, t_max);
            Stationary::without_bins(l.rates(), converged)
        }
        Family::Labels => {
            // On the run's step: the stationary state of the splitting barely depends on it.
            let mut l = labels::limit(config)?;
            l.solver.set_step(config.dt);
            let converged = l.solver.steady_state(1e-4, t_max);
            Stationary::without_bins(l.rates(), converged)
        }
    })
}

/// The self-consistent Siegert rates [1/ms] of a LIF network (damped fixed-point iteration
/// of `r_p = siegert(mu_p(r), sigma_p(r))`), and whether the iteration converged.
pub fn siegert_rates(config: &Config) -> (Vec<f64>, bool) {
    let n = config.populations.len();
    // A heterogeneous population's rate is the mixture over its quadrature nodes.
    let nodes: Vec<Vec<(Values, f64)>> = (0..n).map(|p| nodes_or_scalars(config, p)).collect();
    let mut r = vec![0.01; n];
    for _ in 0..20_000 {
        let mut next = vec![0.0; n];
        for (p, nodes) in nodes.iter().enumerate() {
            for (v, w) in nodes {
                let ext = v[vary::POISSON_RATE] / 1000.0;
                let j = v[vary::POISSON_WEIGHT];
                let (mut mu, mut var) = (
                    v[vary::I_E] + ext * j,
                    v[vary::SIGMA] * v[vary::SIGMA] + ext * j * j,
                );
                for proj in config.projections.iter().filter(|x| x.target == p) {
                    let k = indegree(config, proj);
                    mu += k * proj.weight * r[proj.source];
                    var += k * proj.weight * proj.weight * r[proj.source];
                }
                let tau = v[vary::TAU_M];
                next[p] += w * lif::siegert_rate(
                    v[vary::E_L] + tau * mu,
                    (var * tau).sqrt(),
                    tau,
                    v[vary::V_TH],
                    v[vary::V_RESET],
                    v[vary::T_REF],
                );
            }
        }
        let change: f64 = next
            .iter()
            .zip(&r)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        for (x, y) in r.iter_mut().zip(&next) {
            *x += 0.1 * (y - *x);
        }
        if change < 1e-12 {
            return (r, true);
        }
    }
    (r, false)
}

/// The sub-populations of population `p` ([`vary_nodes`]), or its scalars alone where they
/// cannot be formed (the limit itself reports why).
fn nodes_or_scalars(config: &Config, p: usize) -> Vec<(Values, f64)> {
    vary_nodes(config, p).unwrap_or_else(|_| {
        vec![(
            vary::base_values(&config.populations[p].model.base, config.dt),
            1.0,
        )]
    })
}

/// The balance rates [1/ms] of a LIF network: the rates at which the recurrent and external
/// mean inputs cancel, `sum_q K_pq J_pq r_q + i_e_p + rate_ext_p J_ext_p = 0` (the leading
/// order for large in-degrees with `J ~ 1/sqrt(K)`). Populations alike in their neurons and in
/// their input (Brunel's E and I) share one rate, which makes their equal equations one;
/// `None` when the system is still singular.
pub fn balance_rates(config: &Config) -> Option<Vec<f64>> {
    let n = config.populations.len();
    let mut a = vec![vec![0.0; n + 1]; n];
    for (p, row) in a.iter_mut().enumerate() {
        // The mean over a heterogeneous population's nodes.
        row[n] = -nodes_or_scalars(config, p)
            .iter()
            .map(|(v, w)| {
                w * (v[vary::I_E] + v[vary::POISSON_RATE] / 1000.0 * v[vary::POISSON_WEIGHT])
            })
            .sum::<f64>();
    }
    for proj in &config.projections {
        a[proj.target][proj.source] += indegree(config, proj) * proj.weight;
    }
    // Classes of alike populations: the first of each class stands for it.
    let class: Vec<usize> = (0..n)
        .map(|p| {
            (0..=p)
                .find(|&q| {
                    a[q] == a[p]
                        && config.populations[q].model.base == config.populations[p].model.base
                        && config.populations[q].model.vary == config.populations[p].model.vary
                })
                .expect("p itself matches")
        })
        .collect();
    let reps: Vec<usize> = (0..n).filter(|&p| class[p] == p).collect();
    let m = reps.len();
    let mut r: Vec<Vec<f64>> = reps
        .iter()
        .map(|&p| {
            let mut row = vec![0.0; m + 1];
            for q in 0..n {
                let c = reps.iter().position(|&x| x == class[q]).expect("a class");
                row[c] += a[p][q];
            }
            row[m] = a[p][n];
            row
        })
        .collect();
    // Gaussian elimination with partial pivoting.
    for col in 0..m {
        let piv = (col..m).max_by(|&i, &j| r[i][col].abs().total_cmp(&r[j][col].abs()))?;
        if r[piv][col].abs() < 1e-300 {
            return None;
        }
        r.swap(col, piv);
        let pivot = r[col].clone();
        for (row, x) in r.iter_mut().enumerate() {
            if row != col {
                let f = x[col] / pivot[col];
                for (y, &z) in x[col..].iter_mut().zip(&pivot[col..]) {
                    *y -= f * z;
                }
            }
        }
    }
    let solved: Vec<f64> = (0..m).map(|i| r[i][m] / r[i][i]).collect();
    Some(
        (0..n)
            .map(|p| solved[reps.iter().position(|&x| x == class[p]).expect("a class")])
            .collect(),
    )
}

/// Solves the limit of `config` and writes it to `path` (`.partial`, renamed when complete).
pub fn meanfield(config: &Config, path: &Path) -> Result<String, Error> {
    let family = family(config)?;
    let series = match family {
        Family::Lif => follow(config, &mut lif_limit(config, true)?),
        Family::Escape => follow(config, &mut escape_limit(config)?),
        Family::Balanced => balanced::follow(config, follow)?,
        Family::McKean => follow(config, &mut super::mckean::limit(config)),
        Family::Labels => follow(config, &mut labels::limit(config)?),
    };
    let stationary = stationary(config, family)?;
    let (siegert, balance) = match family {
        Family::Lif => (Some(siegert_rates(config)), balance_rates(config)),
        Family::Escape | Family::McKean | Family::Labels => (None, None),
        Family::Balanced => {
            let b = balanced::balance(config)?;
            (None, Some(balanced::per_population(config, &b, &b.rates)))
        }
    };
    crate::h5::write_file(path, &SerialComm, |file, w| {
        write(
            file,
            config,
            family,
            &series,
            &stationary,
            siegert.as_ref(),
            balance.as_deref(),
            w,
        )?;
        if family == Family::Balanced {
            balanced::write(file, config, w)?;
        }
        Ok(())
    })?;
    let mut out = format!(
        "lapicque: wrote {} ({} limit, {} ms)\n",
        path.display(),
        family_name(family),
        config.n_steps as f64 * config.dt
    );
    for (p, pop) in config.populations.iter().enumerate() {
        let mean: f64 =
            series.rate_sums[p].iter().sum::<f64>() / (config.n_steps as f64 * config.dt);
        out += &format!(
            "lapicque:   population {:<12} mean rate {:.3} Hz, stationary {:.3} Hz{}{}\n",
            pop.name,
            1000.0 * mean,
            1000.0 * stationary.rates[p],
            siegert.as_ref().map_or(String::new(), |(r, _)| format!(
                ", Siegert {:.3} Hz",
                1000.0 * r[p]
            )),
            balance.as_ref().map_or(String::new(), |r| format!(
                ", balance {:.3} Hz",
                1000.0 * r[p]
            )),
        );
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn write(
    file: &File,
    config: &Config,
    family: Family,
    s: &Series,
    stationary: &Stationary,
    siegert: Option<&(Vec<f64>, bool)>,
    balance: Option<&[f64]>,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    crate::output::write_common(file, config, crate::output::Kind::Meanfield)?;
    let n_pop = config.populations.len();
    let rates: Vec<Vec<f64>> = s
        .rate_sums
        .iter()
        .map(|sums| {
            sums.iter()
                .enumerate()
                .map(|(b, &x)| 1000.0 * x / (config.rates.spike_steps(b) as f64 * config.dt))
                .collect()
        })
        .collect();
    crate::observables::rates::write_series(file, config, &rates, w)?;
    crate::observables::moments::write_series(
        file,
        config,
        &s.moment_times,
        &s.means,
        &s.variances,
        w,
    )?;
    crate::observables::histograms::write_series(
        file,
        config,
        &s.histogram_times,
        &s.histograms,
        &s.densities,
        w,
    )?;
    let classes: Vec<usize> = s
        .labels
        .iter()
        .zip(&config.populations)
        .map(|(l, p)| {
            if l.is_empty() {
                0
            } else {
                p.model
                    .labels
                    .as_ref()
                    .map_or(0, crate::model::labels::Labels::k)
            }
        })
        .collect();
    crate::observables::histograms::write_labels(
        file,
        config,
        s.histogram_times.len(),
        &classes,
        &s.labels,
        w,
    )?;
    if !config.trees.trees.is_empty() {
        let group = file.create_group(crate::observables::trees::GROUP)?;
        for (spec, (times, values)) in config.trees.trees.iter().zip(&s.trees) {
            crate::observables::trees::write_tree(&group, config, spec, times, values, None, w)?;
        }
    }
    let mf = file.create_group(GROUP)?;
    attr_str(
        &mf,
        "solver",
        match family {
            Family::Lif => "lif_fokker_planck",
            Family::Escape => "escape_fokker_planck",
            Family::Balanced => "balanced_kinetic",
            Family::McKean => "mckean_vlasov_fokker_planck",
            Family::Labels => "labelled_fokker_planck",
        },
    )?;
    let (v_min, v_max, cells) = grid(config);
    attr(&mf, "v_min", v_min)?;
    attr(&mf, "v_max", v_max)?;
    attr(&mf, "cells", cells as u64)?;
    attr(&mf, "converged", u8::from(stationary.converged))?;
    let hz = |r: &[f64]| r.iter().map(|x| 1000.0 * x).collect::<Vec<f64>>();
    replicated(
        &mf,
        "stationary_rate",
        &hz(&stationary.rates),
        &[n_pop],
        "Hz",
        "stationary rate of the limit, per population (attribute converged)",
        w,
    )?;
    let bins = stationary.by_bin.first().map_or(1, Vec::len);
    replicated(
        &mf,
        "stationary_rate_by_bin",
        &hz(&stationary.by_bin.concat()),
        &[n_pop, bins],
        "Hz",
        "stationary rate per population and coordinate bin of [0, 1) (one bin without space)",
        w,
    )?;
    if let Some((r, ok)) = siegert {
        replicated(
            &mf,
            "siegert_rate",
            &hz(r),
            &[n_pop],
            "Hz",
            "self-consistent Siegert rates (diffusion approximation)",
            w,
        )?;
        attr(&mf, "siegert_converged", u8::from(*ok))?;
    }
    if let Some(r) = balance {
        replicated(&mf, "balance_rate", &hz(r), &[n_pop], "Hz", "rates at which recurrent and external mean inputs cancel (large in-degree balance equations)", w)?;
    }
    Ok(())
}

/// The balance voltages of separable chemical coupling: as the coupling grows, each targeted
/// population collapses onto the potential `x_p` where its chemical inputs cancel,
///
/// ```text
/// sum_t J_t K_t S_t (x_p - v_t) = 0,   S_t = n_q s_t(x_q)
/// ```
///
/// (terms `t` from population `q` onto `p`, reversal `v_t`, `K_t` the kernel's mean, every
/// source neuron at its population's balance voltage), a fixed point found by damped iteration.
/// `None` for populations that no chemical term reaches; an error names a term whose `s` or
/// efficacy weighting the fixed point does not cover.
pub fn balance_voltages(config: &Config) -> Result<Vec<Option<f64>>, Error> {
    use crate::aggregate::{AggregateKind, RawS};
    let terms: Vec<_> = config
        .aggregates
        .iter()
        .filter(|a| a.kind == AggregateKind::Chemical)
        .collect();
    for t in &terms {
        if t.efficacy || t.target_efficacy {
            return Err(no_limit(
                format!("aggregate.{}.efficacy", t.name),
                "balance voltages with label-weighted coupling",
            ));
        }
        if matches!(t.s, RawS::Intensity | RawS::Spikes) {
            return Err(no_limit(
                format!("aggregate.{}.s", t.name),
                "balance voltages with s = intensity or spikes",
            ));
        }
    }
    let n = config.populations.len();
    let reached: Vec<bool> = (0..n)
        .map(|p| terms.iter().any(|t| t.target == p))
        .collect();
    let mut x: Vec<f64> = config
        .populations
        .iter()
        .map(|p| 0.5 * (p.model.base.v_init.0 + p.model.base.v_init.1))
        .collect();
    let s_of = |t: &crate::aggregate::Aggregate, v: f64| match &t.s {
        RawS::One => 1.0,
        RawS::Potential => v,
        RawS::Sigmoid { theta, delta, max } => max / (1.0 + (-(v - theta) / delta).exp()),
        RawS::Intensity | RawS::Spikes => unreachable!("refused above"),
    };
    for _ in 0..100_000 {
        let mut change: f64 = 0.0;
        for p in (0..n).filter(|&p| reached[p]) {
            let (mut num, mut den) = (0.0, 0.0);
            for t in terms.iter().filter(|t| t.target == p) {
                let kmean = t.kernel.iter().sum::<f64>() / t.kernel.len() as f64;
                let g =
                    t.j * kmean * config.populations[t.source].size as f64 * s_of(t, x[t.source]);
                num += g * t.reversal;
                den += g;
            }
            if den.abs() > 0.0 {
                let next = num / den;
                change = change.max((next - x[p]).abs());
                x[p] += 0.2 * (next - x[p]);
            }
        }
        if change < 1e-13 {
            break;
        }
    }
    Ok((0..n).map(|p| reached[p].then_some(x[p])).collect())
}

/// `lapicque meanfield --balance`: the balance rates of a LIF network (where it has a limit),
/// the balance voltages of chemical coupling, or the balanced state of `poisson` and `current`
/// aggregate coupling ([`balanced::report`]), as text.
pub fn balance_report(config: &Config) -> Result<String, Error> {
    if balanced::covers(config) {
        balanced::check(config)?;
        return balanced::report(config);
    }
    let mut out = String::new();
    let voltages = balance_voltages(config)?;
    let lif = config.aggregates.is_empty() && family(config).ok() == Some(Family::Lif);
    let rates = if lif { balance_rates(config) } else { None };
    if voltages.iter().all(Option::is_none) && rates.is_none() {
        return Err(no_limit(
            "aggregate".into(),
            if lif {
                "the balance equations of this LIF network are singular (populations with identical input)"
            } else {
                "balance equations need chemical aggregate coupling or a threshold-LIF network"
            },
        ));
    }
    for (p, pop) in config.populations.iter().enumerate() {
        out += &format!("population {:<12}", pop.name);
        if let Some(v) = voltages[p] {
            out += &format!(" balance voltage {v:.6} mV");
        }
        if let Some(r) = &rates {
            out += &format!(" balance rate {:.4} Hz", 1000.0 * r[p]);
        }
        out += "\n";
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brunel's E and I are alike (same neurons, same input): they share one balance rate,
    /// from the single equation K_E J r - K_I g J r + rate_ext J = 0, i.e. with smoke.toml's
    /// numbers 160 x 0.25 r - 40 x 1.25 r + 20 x 0.1 = 0, r = 0.2 per ms.
    #[test]
    fn alike_populations_share_a_balance_rate() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke.toml"))
                .unwrap();
        let c = Config::from_toml(&text, &[]).unwrap();
        let r = balance_rates(&c).unwrap();
        assert!(
            (r[0] - 0.2).abs() < 1e-12 && (r[1] - 0.2).abs() < 1e-12,
            "{r:?}"
        );
    }

    /// A 5-block probability kernel on 24 coordinate bins (block edges at multiples of 0.2,
    /// inside bins 4, 9, 14 and 19): the coupling onto each bin is the closed form
    /// `p w n sum_A |c & A| / |c| (1/5) sum_k M[A][k]` (the share of the bin in each block A,
    /// times the block's mean kernel over the sources), to the midpoint rule's resolution of
    /// 1/64 of a bin. Evaluating the kernel at the bins' centres, as the limit once did, is off
    /// by up to 9.5% in the four bins that straddle a block edge.
    #[test]
    fn kernels_are_averaged_over_the_bins() {
        let m = [
            [1.0, 0.2, 0.5, 0.1, 0.3],
            [0.2, 1.0, 0.2, 0.4, 0.1],
            [0.5, 0.2, 1.0, 0.2, 0.6],
            [0.1, 0.4, 0.2, 1.0, 0.2],
            [0.3, 0.1, 0.6, 0.2, 1.0],
        ];
        let matrix = format!("{m:?}");
        let text = format!(
            "[population.E]\nsize = 24000\ncoordinates = \"ring\"\n\
             [projection.EE]\nsource = \"E\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 0.01\n\
             weight = 0.05\ndelay = 1.0\nkernel = {{ kind = \"blocks\", matrix = {matrix} }}\n"
        );
        let c = Config::from_toml(&text, &[]).unwrap();
        let bins = 24;
        let counts = vec![bin_counts(&c, &c.populations[0], bins)];
        let w = projection_coupling(&c, 0, bins, &counts);
        let (mut worst, mut straddling) = (0.0f64, 0);
        for (cb, row) in w.iter().enumerate() {
            let (lo, hi) = (cb as f64 / 24.0, (cb + 1) as f64 / 24.0);
            let mut exact = 0.0;
            for (a, ma) in m.iter().enumerate() {
                let (x0, x1) = (a as f64 / 5.0, (a + 1) as f64 / 5.0);
                let share = (hi.min(x1) - lo.max(x0)).max(0.0) * 24.0;
                exact += share * ma.iter().sum::<f64>() / 5.0;
            }
            exact *= 0.01 * 0.05 * 24000.0;
            let got: f64 = row.iter().sum();
            worst = worst.max((got / exact - 1.0).abs());
            straddling += usize::from((lo * 5.0).floor() != (hi * 5.0 - 1e-12).floor());
        }
        assert_eq!(straddling, 4);
        assert!(worst < 1.0 / 64.0, "largest relative error {worst}");
    }

    /// Re-binning keeps the mass of every overlap: a density uniform on [0, 2) re-binned onto
    /// [-1, 0.5, 1.5, 3) gives masses 0.25, 0.5, 0.25.
    #[test]
    fn rebin_preserves_mass() {
        let d = rebin(&[0.5, 0.5], &[0.0, 1.0, 2.0], &[-1.0, 0.5, 1.5, 3.0]);
        let masses: Vec<f64> = d.iter().zip([1.5, 1.0, 1.5]).map(|(f, w)| f * w).collect();
        assert_eq!(masses, [0.25, 0.5, 0.25]);
    }

    /// The balance rates solve the linear balance equations, written out by hand here:
    /// E: 40 x 0.1 r_E - 10 x 0.9 r_I + 20 x 0.1 = 0, I: 40 x 0.1 r_E - 10 x 0.6 r_I + 10 x 0.1 = 0,
    /// so r_I = 1/3 and r_E = 1/4 per ms.
    #[test]
    fn balance_rates_solve_the_balance_equations() {
        let text = "[population.E]\nsize = 400\npoisson_rate = 20000.0\npoisson_weight = 0.1\n\
            [population.I]\nsize = 100\npoisson_rate = 10000.0\npoisson_weight = 0.1\n\
            [projection.EE]\nsource = \"E\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\nindegree = 40\nweight = 0.1\ndelay = 1.0\n\
            [projection.IE]\nsource = \"I\"\ntarget = \"E\"\nrule = \"fixed_indegree\"\nindegree = 10\nweight = -0.9\ndelay = 1.0\n\
            [projection.EI]\nsource = \"E\"\ntarget = \"I\"\nrule = \"fixed_indegree\"\nindegree = 40\nweight = 0.1\ndelay = 1.0\n\
            [projection.II]\nsource = \"I\"\ntarget = \"I\"\nrule = \"fixed_indegree\"\nindegree = 10\nweight = -0.6\ndelay = 1.0\n";
        let c = Config::from_toml(text, &[]).unwrap();
        let r = balance_rates(&c).unwrap();
        assert!(
            (r[0] - 0.25).abs() < 1e-12 && (r[1] - 1.0 / 3.0).abs() < 1e-12,
            "{r:?}"
        );
    }
}
