//! The network description, queried per target neuron: the sources of the incoming synapses of
//! `gid` under one projection, drawn from the stream `(seed, gid, Connect(projection))`.
//!
//! Nothing here knows about ranks, so every decomposition builds the same network.

use crate::config::{Config, ConnRule};
use crate::rng::{self, Purpose};
use rand::seq::index;
use rand::RngExt;

/// Appends to `out` the sources (as offsets into the source population) of the synapses of
/// projection `proj` onto the neuron `gid`, which must belong to the target population.
pub fn sources_of(config: &Config, proj: usize, gid: u64, out: &mut Vec<u32>) {
    let p = &config.projections[proj];
    let src = &config.populations[p.source];
    let n = src.size;
    // Without autapses the target itself is removed from the candidates: candidates are
    // 0..n-1 and those at or above its own offset shift up by one.
    let own = (p.source == p.target).then(|| gid - src.gid_start);
    let proj_id = u32::try_from(proj).expect("fewer than 2^32 projections");
    let mut rng = rng::stream(config.seed, gid, Purpose::Connect(proj_id));
    let skip_self = |c: u64, autapses: bool| match own {
        Some(o) if !autapses && c >= o => c + 1,
        _ => c,
    };
    match p.rule {
        ConnRule::FixedIndegree {
            indegree,
            autapses,
            multapses,
        } => {
            let candidates = if own.is_some() && !autapses { n - 1 } else { n };
            if multapses {
                for _ in 0..indegree {
                    let c = rng.random_range(0..candidates);
                    out.push(skip_self(c, autapses) as u32);
                }
            } else {
                let picked = index::sample(&mut rng, candidates as usize, indegree as usize);
                out.extend(
                    picked
                        .into_iter()
                        .map(|c| skip_self(c as u64, autapses) as u32),
                );
            }
        }
        ConnRule::Bernoulli { p, autapses } => {
            let candidates = if own.is_some() && !autapses { n - 1 } else { n };
            if p >= 1.0 {
                out.extend((0..candidates).map(|c| skip_self(c, autapses) as u32));
            } else if p > 0.0 {
                // Geometric skipping: the gap to the next connected candidate is geometric, so
                // the cost is proportional to the synapses made, not to the candidates scanned.
                let log_q = (-p).ln_1p();
                let mut c: u64 = 0;
                loop {
                    let u: f64 = rng.random();
                    let gap = ((-u).ln_1p() / log_q).floor();
                    if gap >= (candidates - c) as f64 {
                        break;
                    }
                    c += gap as u64;
                    out.push(skip_self(c, autapses) as u32);
                    c += 1;
                    if c >= candidates {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rule: &str) -> Config {
        let text = format!(
            "[population.E]\nsize = 200\n[population.I]\nsize = 50\n\
             [projection.P]\nsource = \"E\"\ntarget = \"E\"\nweight = 0.1\ndelay = 1.0\n{rule}\n"
        );
        Config::from_toml(&text, &[]).unwrap()
    }

    #[test]
    fn fixed_indegree_without_autapses_or_multapses() {
        let c = config(
            "rule = \"fixed_indegree\"\nindegree = 199\nautapses = false\nmultapses = false",
        );
        for gid in [0u64, 17, 199] {
            let mut s = Vec::new();
            sources_of(&c, 0, gid, &mut s);
            s.sort_unstable();
            let expect: Vec<u32> = (0..200).filter(|&x| x != gid as u32).collect();
            assert_eq!(s, expect, "gid {gid}: every other neuron exactly once");
        }
    }

    #[test]
    fn fixed_indegree_with_multapses_is_uniform() {
        let c = config("rule = \"fixed_indegree\"\nindegree = 50");
        let mut counts = vec![0u32; 200];
        for gid in 0..200 {
            let mut s = Vec::new();
            sources_of(&c, 0, gid, &mut s);
            assert_eq!(s.len(), 50);
            for x in s {
                counts[x as usize] += 1;
            }
        }
        // 10,000 draws over 200 sources: each count is Binomial(10000, 1/200), mean 50, sd ~7.
        let chi2: f64 = counts
            .iter()
            .map(|&k| (f64::from(k) - 50.0).powi(2) / 50.0)
            .sum();
        assert!(chi2 < 280.0, "chi^2 = {chi2} with 199 degrees of freedom");
    }

    #[test]
    fn bernoulli_matches_its_probability() {
        let c = config("rule = \"bernoulli\"\np = 0.1\nautapses = false");
        let mut total = 0usize;
        for gid in 0..200 {
            let mut s = Vec::new();
            sources_of(&c, 0, gid, &mut s);
            assert!(!s.contains(&(gid as u32)), "autapse at {gid}");
            assert!(
                s.windows(2).all(|w| w[0] < w[1]),
                "sources ascend without repeats"
            );
            total += s.len();
        }
        // 200 * 199 pairs at p = 0.1: mean 3980, sd ~ 60.
        assert!((total as f64 - 3980.0).abs() < 300.0, "{total}");
    }

    #[test]
    fn same_gid_same_sources() {
        let c = config("rule = \"fixed_indegree\"\nindegree = 20");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sources_of(&c, 0, 42, &mut a);
        sources_of(&c, 0, 42, &mut b);
        assert_eq!(a, b);
    }
}
