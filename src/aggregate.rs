//! Aggregate (mean-field) coupling: input that depends on the other neurons only through sums
//! over a source population, per coordinate bin, of a function `s` of their state. No synapse
//! is stored: each rank sums over its own neurons, one all-reduce per step makes the sums
//! global, and every target neuron reads them.
//!
//! With `S_b = sum_{j in source, bin b} s(x_j) [e_j]` (`e_j` the source's label efficacy when
//! `efficacy = true`), `n_b` the number of source neurons in bin `b`, `K(c, b)` the kernel at
//! the centres of target bin `c` and source bin `b` (1 without a kernel), `J = j0 n^(alpha - 1)`
//! with `n` the source population size, a target neuron `i` in bin `c` receives
//!
//! | kind         | input                                                        |
//! |--------------|--------------------------------------------------------------|
//! | `electrical` | drift `-J sum_b K(c,b) (n_b V_i - S_b)`, `s = V`: `-J sum_j (V_i - V_j)` |
//! | `chemical`   | drift `-J sum_b K(c,b) S_b (V_i - reversal)`                 |
//! | `current`    | drift `J sum_b K(c,b) S_b`                                   |
//! | `jump`       | a jump of V by `J sum_b K(c,b) S_b` each step                |
//! | `poisson`    | a jump `J` times a Poisson count of mean `dt sum_b K(c,b) S_b` (`s` in Hz) |
//!
//! times its own efficacy `e_i` when `target_efficacy = true`. The sums are taken from the state
//! at the start of the step (after the previous step, whose spikes `s = "spikes"` counts); for
//! electrical coupling also the sources' summed drift `D_b` (intrinsic, plus every non-electrical
//! aggregate input, whose sums come first in a separate all-reduce) and summed linear rate
//! `R_b`: the bin's mean moves over the step as `m_0 + (D_b / n_b) phi(R_b / n_b, t)`, which
//! enters the step as a forcing `J sum_b K(c,b) D_b phi(R, t)`; the part linear in `V_i` enters
//! the exponential step of [`crate::model::neuron`], so any coupling strength is stable at the
//! user's `dt`, and the mean follows its own dynamics when electrical and chemical coupling are
//! both stiff. Sums are exact fixed-point integers
//! ([`crate::observables`]), so every rank count gives the same input, bit for bit.

use crate::comm::Comm;
use crate::config::{ConfigError, Population};
use crate::fixed::{fixed, unfixed};
use crate::model::neuron::{intensity, poisson_count};
use crate::rng::Stream;
use crate::space::{self, Kernel};
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    Electrical,
    Chemical,
    Current,
    Jump,
    Poisson,
}

/// The function `s(x_j)` summed over the source population.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawS {
    /// 1 (the number of neurons).
    One,
    /// The potential V \[mV\].
    #[default]
    Potential,
    /// `max / (1 + exp(-(V - theta)/delta))`.
    Sigmoid { theta: f64, delta: f64, max: f64 },
    /// The source population's escape intensity `nu(V)` \[Hz\].
    Intensity,
    /// 1 if the neuron spiked in the previous step, else 0.
    Spikes,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregate {
    /// Source population name.
    pub source: String,
    /// Target population name.
    pub target: String,
    pub kind: AggregateKind,
    /// Coupling constant `j0`; `J = j0 n^(alpha - 1)`. Units: electrical and chemical [1/ms],
    /// current [mV/ms per unit of s], jump and poisson [mV per unit of s, per event].
    pub j0: f64,
    /// Scaling exponent: `alpha = 0` is the mean-field `1/n`, `alpha = 1/2` the balanced
    /// `n^(-1/2)`, `alpha > 0` strong coupling.
    #[serde(default)]
    pub alpha: f64,
    /// Reversal potential `v_q` of chemical coupling \[mV\].
    #[serde(default)]
    pub reversal: f64,
    /// The function of the source's state that is summed (default: the potential).
    #[serde(default)]
    pub s: RawS,
    /// Multiply each source's `s` by its label efficacy `sum_k lambda_k u_k`.
    #[serde(default)]
    pub efficacy: bool,
    /// Multiply each target's input by its own label efficacy.
    #[serde(default)]
    pub target_efficacy: bool,
    /// Spatial kernel `K(xi_target, xi_source)` evaluated at bin centres.
    pub kernel: Option<Kernel>,
    /// Coordinate bins of `[0, 1)` (first coordinate) over which the sums are taken.
    #[serde(default = "one")]
    pub bins: u64,
}

fn one() -> u64 {
    1
}

/// The most coordinate bins of an aggregate term.
pub const MAX_BINS: u64 = 4096;

/// A validated aggregate term.
#[derive(Clone, Debug)]
pub struct Aggregate {
    pub name: String,
    pub source: usize,
    pub target: usize,
    pub kind: AggregateKind,
    /// `j0 n^(alpha - 1)`.
    pub j: f64,
    pub reversal: f64,
    pub s: RawS,
    pub efficacy: bool,
    pub target_efficacy: bool,
    /// `K(c, b)` row-major, `bins x bins`.
    pub kernel: Vec<f64>,
    pub bins: usize,
}

impl Aggregate {
    /// Validates `raw` against the populations (`name`: the table's name).
    pub fn from_raw(
        name: &str,
        raw: &RawAggregate,
        populations: &[Population],
    ) -> Result<Aggregate, ConfigError> {
        let key = |k: &str| format!("aggregate.{name}.{k}");
        let bad = |k: &str, v: String, why: &str| ConfigError::Invalid {
            key: key(k),
            value: v,
            reason: why.to_string(),
        };
        let index = |k: &str, n: &str| {
            populations
                .iter()
                .position(|p| p.name == n)
                .ok_or_else(|| bad(k, format!("{n:?}"), "no such population"))
        };
        let source = index("source", &raw.source)?;
        let target = index("target", &raw.target)?;
        crate::config::finite(&key("j0"), raw.j0, "")?;
        crate::config::finite(&key("alpha"), raw.alpha, "[1]")?;
        crate::config::finite(&key("reversal"), raw.reversal, "[mV]")?;
        // The kernel holds bins x bins values, evaluated here: 4096 bins are 128 MiB and
        // 1.7e7 kernel evaluations; 65536 would be 32 GiB.
        if raw.bins == 0 || raw.bins > MAX_BINS {
            return Err(bad(
                "bins",
                raw.bins.to_string(),
                &format!("must be between 1 and {MAX_BINS} (the kernel holds bins x bins values)"),
            ));
        }
        match &raw.s {
            RawS::Sigmoid { theta, delta, max } => {
                crate::config::finite(&key("s.theta"), *theta, "[mV]")?;
                crate::config::positive(&key("s.delta"), *delta, "[mV]")?;
                crate::config::finite(&key("s.max"), *max, "")?;
            }
            RawS::Intensity if populations[source].model.escape.is_none() => {
                return Err(bad(
                    "s",
                    "\"intensity\"".into(),
                    "the source population has no escape intensity (spike = \"escape\")",
                ))
            }
            _ => {}
        }
        if raw.efficacy && populations[source].model.labels.is_none() {
            return Err(bad(
                "efficacy",
                "true".into(),
                "the source population has no labels",
            ));
        }
        if raw.target_efficacy && populations[target].model.labels.is_none() {
            return Err(bad(
                "target_efficacy",
                "true".into(),
                "the target population has no labels",
            ));
        }
        let bins = raw.bins as usize;
        let geometry = populations[target].layout.geometry;
        let kernel = match &raw.kernel {
            Some(k) => {
                k.validate(&key("kernel"))?;
                let centre = |b: usize| [(b as f64 + 0.5) / bins as f64, 0.0];
                (0..bins * bins)
                    .map(|cb| k.eval(geometry, centre(cb / bins), centre(cb % bins)))
                    .collect()
            }
            None => vec![1.0; bins * bins],
        };
        let n = populations[source].size as f64;
        Ok(Aggregate {
            name: name.to_string(),
            source,
            target,
            kind: raw.kind,
            j: raw.j0 * n.powf(raw.alpha - 1.0),
            reversal: raw.reversal,
            s: if raw.kind == AggregateKind::Electrical {
                RawS::Potential
            } else {
                raw.s.clone()
            },
            efficacy: raw.efficacy,
            target_efficacy: raw.target_efficacy,
            kernel,
            bins,
        })
    }
}

/// The state of the local neurons that aggregate sums read.
pub struct Sources<'a> {
    /// Potentials \[mV\].
    pub v: &'a [f64],
    /// FitzHugh-Nagumo recovery variables (empty without).
    pub w: &'a [f64],
    /// Label efficacies (empty without labels).
    pub efficacy: &'a [f64],
}

/// The aggregate input of the coming step, per local neuron: drift
/// `a - c V + slope phi(slope_rate, t)` (`t` the time into the step) and a jump of V.
pub struct Input<'a> {
    pub a: &'a mut [f64],
    pub c: &'a mut [f64],
    pub jump: &'a mut [f64],
    /// [mV/ms^2]
    pub slope: &'a mut [f64],
    /// [1/ms]
    pub slope_rate: &'a mut [f64],
}

/// The aggregate terms of a run on one rank, with the neurons they read and write.
pub struct Aggregates {
    terms: Vec<Aggregate>,
    /// Per term: the local source neurons and target neurons, as (local index, bin).
    sources: Vec<Vec<(usize, usize)>>,
    targets: Vec<Vec<(usize, usize)>>,
    /// Per term and source bin: the number of source neurons (global).
    counts: Vec<Vec<f64>>,
    /// Per population with aggregate-dependent labels: its local neurons and size.
    label_pops: Vec<(usize, Range<usize>, u64)>,
    buf: Vec<i128>,
    /// Whether a local neuron spiked in the previous step.
    spiked: Vec<bool>,
    escape: Vec<Option<crate::config::RawEscape>>,
    /// The input of the last step summed over each target population's local neurons,
    /// positive and negative contributions apart [mV/ms, fixed point]: `2 p` and `2 p + 1`.
    balance: Vec<i128>,
}

impl Aggregates {
    pub fn new(config: &crate::config::Config, local: &Range<u64>) -> Aggregates {
        let pops = &config.populations;
        let locate = |p: usize, bins: usize| -> Vec<(usize, usize)> {
            let g = pops[p].gids();
            (g.start.max(local.start)..g.end.min(local.end))
                .map(|gid| {
                    let xi = pops[p].coordinate(config.seed, gid);
                    ((gid - local.start) as usize, space::bin(xi, bins))
                })
                .collect()
        };
        let terms = config.aggregates.clone();
        let sources = terms.iter().map(|t| locate(t.source, t.bins)).collect();
        let targets = terms.iter().map(|t| locate(t.target, t.bins)).collect();
        let counts = terms
            .iter()
            .map(|t| {
                let p = &pops[t.source];
                let mut c = vec![0.0; t.bins];
                for gid in p.gids() {
                    c[space::bin(p.coordinate(config.seed, gid), t.bins)] += 1.0;
                }
                c
            })
            .collect();
        let label_pops =
            pops.iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.model.labels.as_ref().is_some_and(|l| {
                        l.dependence() == crate::model::labels::Dependence::Aggregate
                    })
                })
                .map(|(i, p)| (i, p.local_range(local), p.size))
                .collect();
        Aggregates {
            escape: pops.iter().map(|p| p.model.escape.clone()).collect(),
            terms,
            sources,
            targets,
            counts,
            label_pops,
            buf: Vec::new(),
            balance: vec![0; 2 * pops.len()],
            spiked: vec![false; (local.end - local.start) as usize],
        }
    }

    /// The aggregate input of the last step per target population, summed over the local
    /// neurons: (positive, negative) parts at `2 p`, `2 p + 1` [mV/ms, fixed point].
    pub fn balance(&self) -> &[i128] {
        &self.balance
    }

    /// Whether a step needs the all-reduce at all.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.label_pops.is_empty()
    }

    /// Whether aggregate input reaches population `p`.
    pub fn reaches(config: &crate::config::Config, p: usize) -> bool {
        config.aggregates.iter().any(|t| t.target == p)
    }

    /// Marks the local neurons that spiked in the step just taken (`fired`: local indices).
    pub fn set_spiked(&mut self, fired: impl Iterator<Item = usize>) {
        self.spiked.fill(false);
        for i in fired {
            self.spiked[i] = true;
        }
    }

    /// The local neurons marked by [`Aggregates::set_spiked`].
    pub fn spiked(&self) -> &[bool] {
        &self.spiked
    }

    /// Restores the marks (from a checkpoint).
    pub fn set_spiked_flags(&mut self, flags: &[bool]) {
        self.spiked.copy_from_slice(flags);
    }

    /// The input of the coming step, from the state after the previous one (collective):
    /// fills `a`, `c`, `jump`, `slope`, `slope_rate` for every local neuron (zero where nothing
    /// reaches it) and `label_x` with the mean efficacy of each population with
    /// aggregate-dependent labels.
    ///
    /// Two all-reduces when there are electrical terms: the other terms first, because the
    /// motion of the mean that electrical coupling pulls towards includes the input those
    /// terms give the sources (chemical drive moves the mean; only the electrical coupling of a
    /// population with itself cancels in it).
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        &mut self,
        comm: &dyn Comm,
        pops: &[Population],
        dt: f64,
        st: Sources,
        rngs: &mut [Stream],
        out: Input,
        label_x: &mut [f64],
    ) {
        let Sources { v, w, efficacy } = st;
        let Input {
            a,
            c,
            jump,
            slope,
            slope_rate,
        } = out;
        a.fill(0.0);
        c.fill(0.0);
        jump.fill(0.0);
        slope.fill(0.0);
        slope_rate.fill(0.0);
        self.balance.fill(0);
        if self.is_empty() {
            return;
        }
        let is_electrical = |t: &Aggregate| t.kind == AggregateKind::Electrical;
        // Phase 1: every term but the electrical ones.
        self.buf.clear();
        for (t, src) in self.terms.iter().zip(&self.sources) {
            if is_electrical(t) {
                continue;
            }
            let start = self.buf.len();
            self.buf.resize(start + t.bins, 0);
            for &(i, b) in src {
                let x = v[i];
                let mut s = match &t.s {
                    RawS::One => 1.0,
                    RawS::Potential => x,
                    RawS::Sigmoid { theta, delta, max } => {
                        max / (1.0 + (-(x - theta) / delta).exp())
                    }
                    RawS::Intensity => {
                        intensity(self.escape[t.source].as_ref().expect("validated"), x)
                    }
                    RawS::Spikes => f64::from(u8::from(self.spiked[i])),
                };
                if t.efficacy {
                    s *= efficacy[i];
                }
                self.buf[start + b] += fixed(s);
            }
        }
        for (_, r, _) in &self.label_pops {
            let sum: i128 = efficacy[r.clone()].iter().map(|&e| fixed(e)).sum();
            self.buf.push(sum);
        }
        comm.sum_i128(&mut self.buf);
        let mut pos = 0;
        let mut field = Vec::new();
        for ((t, tgt), counts) in self.terms.iter().zip(&self.targets).zip(&self.counts) {
            if is_electrical(t) {
                continue;
            }
            let sums: Vec<f64> = self.buf[pos..pos + t.bins]
                .iter()
                .map(|&x| unfixed(x))
                .collect();
            pos += t.bins;
            // Per target bin: K S and K n.
            field.clear();
            for cb in 0..t.bins {
                let row = &t.kernel[cb * t.bins..(cb + 1) * t.bins];
                let ks: f64 = row.iter().zip(&sums).map(|(k, s)| k * s).sum();
                let kn: f64 = row.iter().zip(counts).map(|(k, n)| k * n).sum();
                field.push((ks, kn));
            }
            for &(i, cb) in tgt {
                let (ks, _) = field[cb];
                let e = if t.target_efficacy { efficacy[i] } else { 1.0 };
                // The input this term gives [mV/ms] (at the start of the step; jumps per dt).
                let input = match t.kind {
                    AggregateKind::Electrical => unreachable!("electrical terms come next"),
                    AggregateKind::Chemical => {
                        c[i] += e * t.j * ks;
                        a[i] += e * t.j * ks * t.reversal;
                        e * t.j * ks * (t.reversal - v[i])
                    }
                    AggregateKind::Current => {
                        a[i] += e * t.j * ks;
                        e * t.j * ks
                    }
                    AggregateKind::Jump => {
                        jump[i] += e * t.j * ks;
                        e * t.j * ks / dt
                    }
                    AggregateKind::Poisson => {
                        let count = poisson_count(ks * dt / 1000.0, &mut rngs[i]);
                        jump[i] += e * t.j * f64::from(count);
                        e * t.j * f64::from(count) / dt
                    }
                };
                let side = 2 * t.target + usize::from(input < 0.0);
                self.balance[side] += fixed(input);
            }
        }
        for ((p, _, size), x) in self.label_pops.iter().zip(&self.buf[pos..]) {
            label_x[*p] = unfixed(*x) / *size as f64;
        }
        if !self.terms.iter().any(is_electrical) {
            return;
        }
        // Phase 2: electrical terms. Per source bin: the sum of V, of the sources' drift at
        // the start of the step without electrical input (intrinsic and the input of phase 1),
        // and of their linear rate, which together give the path of the bin's mean over the
        // step, m(t) = m_0 + D phi(R, t) (exact for the linear part when the rate is common
        // to the bin, as it is without target efficacies).
        self.buf.clear();
        for (t, src) in self.terms.iter().zip(&self.sources) {
            if !is_electrical(t) {
                continue;
            }
            let start = self.buf.len();
            self.buf.resize(start + 3 * t.bins, 0);
            let m = &pops[t.source].model;
            let c0 = m.linear_rate();
            for &(i, b) in src {
                let x = v[i];
                let d = m.intrinsic_drift(x, w.get(i).copied().unwrap_or(0.0)) + a[i] - c[i] * x;
                self.buf[start + b] += fixed(x);
                self.buf[start + t.bins + b] += fixed(d);
                self.buf[start + 2 * t.bins + b] += fixed(c0 + c[i]);
            }
        }
        comm.sum_i128(&mut self.buf);
        // Phase-1 input is final: the electrical terms add to it below.
        let mut pos = 0;
        let mut weight = vec![0.0; slope_rate.len()];
        for ((t, tgt), counts) in self.terms.iter().zip(&self.targets).zip(&self.counts) {
            if !is_electrical(t) {
                continue;
            }
            let part = |k: usize| -> Vec<f64> {
                self.buf[pos + k * t.bins..pos + (k + 1) * t.bins]
                    .iter()
                    .map(|&x| unfixed(x))
                    .collect()
            };
            let (sums, drifts, rates) = (part(0), part(1), part(2));
            pos += 3 * t.bins;
            field.clear();
            let mut field_r = Vec::with_capacity(t.bins);
            for cb in 0..t.bins {
                let row = &t.kernel[cb * t.bins..(cb + 1) * t.bins];
                let dot = |x: &[f64]| -> f64 { row.iter().zip(x).map(|(k, y)| k * y).sum() };
                field.push((dot(&sums), dot(counts)));
                field_r.push((dot(&drifts), dot(&rates)));
            }
            for &(i, cb) in tgt {
                let ((ks, kn), (kd, kr)) = (field[cb], field_r[cb]);
                let e = if t.target_efficacy { efficacy[i] } else { 1.0 };
                c[i] += e * t.j * kn;
                a[i] += e * t.j * ks;
                slope[i] += e * t.j * kd;
                // The mean rate of the sources, weighted by their share of this input.
                slope_rate[i] += e * t.j * kr;
                weight[i] += e * t.j * kn;
                let input = e * t.j * (ks - kn * v[i]);
                let side = 2 * t.target + usize::from(input < 0.0);
                self.balance[side] += fixed(input);
            }
        }
        for (r, w) in slope_rate.iter_mut().zip(&weight) {
            if *w != 0.0 {
                *r /= w;
            }
        }
    }
}
