//! Emulated ranks: one process builds and simulates exactly the share of rank `r` of a network
//! distributed over `P` ranks (NEST's dry run, Arbor's dry-run context), so that the memory and
//! the time per phase of one rank of a 1,024- or 16,384-rank job can be measured on one machine.
//!
//! The rank's neurons, synapses, ring buffers and observables are those it would have in the
//! real job, and each window's exchange hands it a message from every one of the `P` ranks,
//! as the all-gather would: its own, and for the others either
//!
//! * spikes drawn at the rates of the model, each neuron of another rank independently in each
//!   step, from a stream keyed by (seed, rank, [`Purpose::Emulation`]) (spikes carry an
//!   efficacy of 1 where spikes carry efficacies). The rates are those given with
//!   `--emulate-rates`, else, for a threshold-LIF network, the stationary rates of its
//!   mean-field limit (the self-consistent Siegert rates, [`crate::meanfield::run::siegert_rates`]),
//!   else the rates the emulated rank's own neurons of each population have fired since the
//!   start (where it holds none of a population, the mean rate of all its neurons); or
//! * the spikes of a real run's output (`--emulate-replay`), step by step as the real ranks
//!   sent them, so that rank `r`'s spikes equal those of the real `P`-rank run.
//!
//! Making up the messages is not counted in the exchange phase (its time is what the
//! all-gather would cost, which the real job measures; a scaling projection models it). The
//! other collectives see one process: the reduced observables of an emulated run sum the
//! emulated rank's neurons only, and its output holds that rank's share (its spikes, its rows
//! of the final state).

use crate::config::Config;
use crate::partition::Partition;
use crate::rng::{self, Purpose, Stream};
use crate::Error;
use rand::RngExt;
use std::ops::Range;
use std::path::PathBuf;

/// What `--emulate-ranks P --as-rank r [--emulate-replay FILE | --emulate-rates ...]` asks
/// for, with the other ranks' spikes resolved once.
#[derive(Clone, Debug)]
pub struct Emulation {
    pub ranks: usize,
    pub rank: usize,
    pub others: Others,
}

/// Where the other ranks' spikes come from.
#[derive(Clone, Debug)]
pub enum Others {
    /// Made up at these rates \[Hz\], one per population; `given` with `--emulate-rates`,
    /// else the limit's stationary rates.
    Rates { hz: Vec<f64>, given: bool },
    /// Made up at the rates the emulated rank's own neurons fire.
    Own,
    /// Replayed from a real run's output.
    Replay(PathBuf),
}

impl Emulation {
    /// `given`: the rates of `--emulate-rates`; without them and without a replay, the limit's
    /// stationary rates of a threshold-LIF network, else the rank's own.
    pub fn new(
        config: &Config,
        ranks: usize,
        rank: usize,
        replay: Option<PathBuf>,
        given: Option<Vec<f64>>,
    ) -> Emulation {
        let others = match (replay, given) {
            (Some(path), _) => Others::Replay(path),
            (None, Some(hz)) => Others::Rates { hz, given: true },
            (None, None) => match limit_rates(config) {
                Some(hz) => Others::Rates { hz, given: false },
                None => Others::Own,
            },
        };
        Emulation {
            ranks,
            rank,
            others,
        }
    }

    /// What the other ranks' spikes are, as the run's banner says it.
    pub fn describe(&self, config: &Config) -> String {
        match &self.others {
            Others::Replay(_) => "replayed".into(),
            Others::Own => "at the emulated rank's own rates".into(),
            Others::Rates { hz, given } => {
                let list: Vec<String> = config
                    .populations
                    .iter()
                    .zip(hz)
                    .map(|(p, r)| format!("{} {r:.3} Hz", p.name))
                    .collect();
                let how = if *given {
                    "given"
                } else {
                    "the limit's stationary rates"
                };
                format!("at {} ({how})", list.join(", "))
            }
        }
    }
}

/// The limit's stationary rates \[Hz\] of a threshold-LIF network (`None` for other families
/// or where the fixed-point iteration does not converge).
fn limit_rates(config: &Config) -> Option<Vec<f64>> {
    if crate::meanfield::run::family(config).ok()? != crate::meanfield::run::Family::Lif {
        return None;
    }
    let (r, converged) = crate::meanfield::run::siegert_rates(config);
    converged.then(|| r.iter().map(|x| x * 1000.0).collect())
}

/// Makes up the other ranks' messages of each window.
pub struct Emulator {
    rank: usize,
    /// Every rank's gids.
    ranges: Vec<Range<u64>>,
    /// Every population's gids.
    populations: Vec<Range<u64>>,
    carries_efficacy: bool,
    source: Source,
}

enum Source {
    /// Each population's probability of a spike per neuron and step, fixed; one stream per
    /// rank (the emulated rank's unused).
    Fixed {
        p_step: Vec<f64>,
        streams: Vec<Stream>,
    },
    /// At the emulated rank's own rates: its spikes per population so far, its neurons per
    /// population and the steps so far.
    Own {
        spikes: Vec<u64>,
        neurons: Vec<u64>,
        steps: u64,
        streams: Vec<Stream>,
    },
    /// (step, gid) of every spike of the other ranks, sorted; the next unread.
    Replay {
        spikes: Vec<(u64, u32)>,
        next: usize,
    },
}

impl Emulator {
    pub fn new(
        config: &Config,
        emulation: &Emulation,
        partition: &Partition,
        carries_efficacy: bool,
    ) -> Result<Emulator, Error> {
        let ranges: Vec<Range<u64>> = (0..emulation.ranks).map(|q| partition.range(q)).collect();
        let local = ranges[emulation.rank].clone();
        let populations: Vec<Range<u64>> = config.populations.iter().map(|p| p.gids()).collect();
        let streams = || -> Vec<Stream> {
            (0..emulation.ranks)
                .map(|q| rng::stream(config.seed, q as u64, Purpose::Emulation))
                .collect()
        };
        let source = match &emulation.others {
            Others::Rates { hz, .. } => Source::Fixed {
                p_step: hz.iter().map(|r| r * config.dt / 1000.0).collect(),
                streams: streams(),
            },
            Others::Own => Source::Own {
                spikes: vec![0; populations.len()],
                neurons: populations
                    .iter()
                    .map(|p| {
                        p.end
                            .min(local.end)
                            .saturating_sub(p.start.max(local.start))
                    })
                    .collect(),
                steps: 0,
                streams: streams(),
            },
            Others::Replay(path) => {
                let refuse = |reason: String| Error::Argument {
                    key: "--emulate-replay".into(),
                    value: path.display().to_string(),
                    reason,
                };
                if carries_efficacy {
                    return Err(refuse(
                        "spikes of populations with labels carry efficacies, which an output \
                         does not hold; emulate them at the model's rates instead"
                            .into(),
                    ));
                }
                let text = path.to_string_lossy();
                let mut spikes = Vec::new();
                for (p, pop) in config.populations.iter().enumerate() {
                    let read =
                        crate::stimulus::read_spikes(&text, &pop.name, pop.size).map_err(refuse)?;
                    for (id, t) in read {
                        let gid = populations[p].start + id;
                        // Stamped at the end of the step: t = (n + 1) dt.
                        let step = ((t / config.dt).round() as u64).saturating_sub(1);
                        if !local.contains(&gid) {
                            spikes.push((step, gid as u32));
                        }
                    }
                }
                spikes.sort_unstable();
                Source::Replay { spikes, next: 0 }
            }
        };
        Ok(Emulator {
            rank: emulation.rank,
            ranges,
            populations,
            carries_efficacy,
            source,
        })
    }
}

impl crate::exchange::OtherRanks for Emulator {
    fn messages(&mut self, own: &[u32], first_step: u64, steps: usize, out: &mut Vec<u32>) {
        use crate::exchange::HEADER;
        out.clear();
        let words = if self.carries_efficacy { 3 } else { 1 };
        // Each population's probability of a spike per neuron and step.
        let mut p_step = match &self.source {
            Source::Fixed { p_step, .. } => p_step.clone(),
            _ => Vec::new(),
        };
        if let Source::Own {
            spikes,
            neurons,
            steps: so_far,
            ..
        } = &mut self.source
        {
            let mut at = HEADER + steps;
            for k in 0..steps {
                let n = own[HEADER + k] as usize;
                for &g in &own[at..at + n] {
                    let p = self.populations.partition_point(|r| r.end <= u64::from(g));
                    spikes[p] += 1;
                }
                at += words * n;
            }
            *so_far += steps as u64;
            let all = spikes.iter().sum::<u64>() as f64
                / (neurons.iter().sum::<u64>() as f64 * *so_far as f64).max(1.0);
            p_step = spikes
                .iter()
                .zip(neurons.iter())
                .map(|(&s, &n)| {
                    if n > 0 {
                        s as f64 / (n as f64 * *so_far as f64)
                    } else {
                        all
                    }
                })
                .collect();
        }
        let mut window_end = 0;
        for (q, range) in self.ranges.iter().enumerate() {
            if q == self.rank {
                out.extend_from_slice(own);
                continue;
            }
            let start = out.len();
            // No divergence, no stop; as busy as the emulated rank, so that it never waits.
            out.extend_from_slice(&[0, 0, 0, own[3]]);
            out.resize(start + HEADER + steps, 0);
            for k in 0..steps {
                let before = out.len();
                match &mut self.source {
                    Source::Fixed { streams, .. } | Source::Own { streams, .. } => {
                        for (p, pop) in self.populations.iter().enumerate() {
                            let (lo, hi) = (pop.start.max(range.start), pop.end.min(range.end));
                            if lo < hi {
                                bernoulli_run(&mut streams[q], lo..hi, p_step[p], out);
                            }
                        }
                    }
                    Source::Replay { spikes, next } => {
                        let step = first_step + k as u64;
                        let from = *next + spikes[*next..].partition_point(|s| s.0 < step);
                        let to = from + spikes[from..].partition_point(|s| s.0 == step);
                        let of_step = &spikes[from..to];
                        let a = of_step.partition_point(|s| u64::from(s.1) < range.start);
                        let b = of_step.partition_point(|s| u64::from(s.1) < range.end);
                        out.extend(of_step[a..b].iter().map(|s| s.1));
                        window_end = window_end.max(to);
                    }
                }
                let n = out.len() - before;
                if self.carries_efficacy {
                    let one = 1.0f64.to_bits();
                    for _ in 0..n {
                        out.extend_from_slice(&[one as u32, (one >> 32) as u32]);
                    }
                }
                out[start + HEADER + k] = n as u32;
            }
        }
        if let Source::Replay { next, .. } = &mut self.source {
            *next = (*next).max(window_end);
        }
    }
}

/// The rates \[Hz\] of `--emulate-rates`: `POP=HZ` for every population, comma-separated.
pub fn parse_rates(text: &str, config: &Config) -> Result<Vec<f64>, String> {
    let mut rates = vec![None; config.populations.len()];
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not POP=HZ"))?;
        let p = config
            .populations
            .iter()
            .position(|p| p.name == name.trim())
            .ok_or_else(|| format!("the configuration has no population {:?}", name.trim()))?;
        let r: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r >= 0.0 && r * config.dt / 1000.0 <= 1.0)
            .ok_or_else(|| format!("{value:?} is not a rate in Hz between 0 and 1/dt"))?;
        rates[p] = Some(r);
    }
    rates
        .iter()
        .zip(&config.populations)
        .map(|(r, p)| r.ok_or_else(|| format!("gives no rate for population {:?}", p.name)))
        .collect()
}

/// Appends, ascending, the gids of `gids` that spike in one step when each does with
/// probability `p`, independently: the gaps between spiking neurons are geometric, one draw
/// per spike.
fn bernoulli_run(rng: &mut Stream, gids: Range<u64>, p: f64, out: &mut Vec<u32>) {
    if p <= 0.0 {
        return;
    }
    if p >= 1.0 {
        out.extend(gids.map(|g| g as u32));
        return;
    }
    let log_q = (-p).ln_1p();
    let mut g = gids.start;
    loop {
        let u: f64 = rng.random();
        // P(gap >= k) = (1 - p)^k.
        let gap = ((1.0 - u).ln() / log_q).floor();
        if gap >= (gids.end - g) as f64 {
            return;
        }
        g += gap as u64;
        out.push(g as u32);
        g += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The made-up spikes of a block are independent Bernoulli(p) per neuron: the count over
    /// many steps has mean n p and the variance of a binomial, and every neuron fires at p.
    #[test]
    fn bernoulli_runs_have_the_rate_and_independence_asked() {
        let mut rng = Stream::seed_from_u64(7);
        let (n, p, steps) = (1000u64, 0.013, 4000);
        let mut per_step = Vec::new();
        let mut per_neuron = vec![0u64; n as usize];
        let mut out = Vec::new();
        for _ in 0..steps {
            out.clear();
            bernoulli_run(&mut rng, 100..100 + n, p, &mut out);
            assert!(out.windows(2).all(|w| w[0] < w[1]), "ascending, distinct");
            assert!(out.iter().all(|&g| (100..1100).contains(&g)));
            per_step.push(out.len() as f64);
            for &g in &out {
                per_neuron[(g - 100) as usize] += 1;
            }
        }
        let mean = per_step.iter().sum::<f64>() / steps as f64;
        let var = per_step.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (steps - 1) as f64;
        let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
        // Standard errors: of the mean sqrt(v / steps) = 0.057; of the variance about
        // v sqrt(2 / steps) = 0.29.
        assert!(
            (mean - m).abs() < 4.0 * (v / steps as f64).sqrt(),
            "{mean} vs {m}"
        );
        assert!(
            (var - v).abs() < 4.0 * v * (2.0 / steps as f64).sqrt(),
            "{var} vs {v}"
        );
        // The first and the last neurons of the block fire at p too (no edge effect): 52 +- 7.
        let ends = (per_neuron[0] + per_neuron[n as usize - 1]) as f64;
        assert!((ends - 2.0 * p * steps as f64).abs() < 4.0 * (2.0 * p * steps as f64).sqrt());
        out.clear();
        bernoulli_run(&mut rng, 5..9, 1.0, &mut out);
        assert_eq!(out, [5, 6, 7, 8]);
        bernoulli_run(&mut rng, 5..9, 0.0, &mut out);
        assert_eq!(out.len(), 4);
    }
}
