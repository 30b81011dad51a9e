//! The network description, queried per target neuron: the incoming synapses of `gid` under one
//! projection, drawn from the stream `(seed, gid, Connect(projection))`.
//!
//! A target's stream is used in a fixed order: first its sources (by the rule; a probability
//! kernel adds one uniform per candidate, the acceptance test), then, synapse by synapse in
//! source order, the synapse's weight (if random) and its delay (if uniform). Nothing here knows
//! about ranks, so every decomposition builds the same network (`rule = "file"` projections are
//! read from their file by [`crate::connectivity::Connectivity::build`] instead).

use crate::config::{Config, ConfigError, ConnRule, Population};
use crate::rng::{self, Purpose, Stream};
use crate::space::Kernel;
use rand::seq::index;
use rand::RngExt;

/// The incoming synapses of one neuron under one projection, in synapse order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Synapses {
    /// Offsets into the source population.
    pub sources: Vec<u32>,
    /// \[mV\] One per synapse; empty where every synapse has the projection's `weight`.
    pub weights: Vec<f64>,
    /// \[steps\] One per synapse; empty where every synapse has the projection's `delay_steps`.
    pub delays: Vec<u32>,
}

impl Synapses {
    pub fn clear(&mut self) {
        self.sources.clear();
        self.weights.clear();
        self.delays.clear();
    }
}

/// Appends to `out` the sources (as offsets into the source population) of the synapses of
/// projection `proj` onto the neuron `gid`, which must belong to the target population.
pub fn sources_of(
    config: &Config,
    proj: usize,
    gid: u64,
    out: &mut Vec<u32>,
) -> Result<(), ConfigError> {
    let mut rng = connect_stream(config, proj, gid);
    draw_sources(config, proj, gid, &mut rng, out)
}

/// The synapses of projection `proj` onto the neuron `gid` (which must belong to the target
/// population) into `out`, which is cleared first: the sources as [`sources_of`] gives them,
/// then each synapse's weight and delay where they vary. Fails (naming the in-degree) where a
/// probability kernel leaves the neuron too few sources to draw its fixed in-degree from.
pub fn synapses_of(
    config: &Config,
    proj: usize,
    gid: u64,
    out: &mut Synapses,
) -> Result<(), ConfigError> {
    out.clear();
    let mut rng = connect_stream(config, proj, gid);
    draw_sources(config, proj, gid, &mut rng, &mut out.sources)?;
    let p = &config.projections[proj];
    let random_weight = !p.weights.is_constant();
    let weight_kernel = p.kernel.as_ref().filter(|k| k.weight);
    let random_delay = p.delay_max_steps > p.delay_steps;
    if !random_weight && weight_kernel.is_none() && !random_delay {
        return Ok(());
    }
    let src = &config.populations[p.source];
    let xt = weight_kernel.map(|_| config.populations[p.target].coordinate(config.seed, gid));
    for &s in &out.sources {
        if random_weight || weight_kernel.is_some() {
            let mut w = if random_weight {
                p.weights.draw(&mut rng)
            } else {
                p.weight
            };
            if let (Some(k), Some(xt)) = (weight_kernel, xt) {
                let xs = src.coordinate(config.seed, src.gid_start + u64::from(s));
                w *= k.kernel.eval(k.geometry, xt, xs);
            }
            out.weights.push(w);
        }
        if random_delay {
            out.delays
                .push(rng.random_range(p.delay_steps..=p.delay_max_steps));
        }
    }
    Ok(())
}

fn connect_stream(config: &Config, proj: usize, gid: u64) -> Stream {
    let proj_id = u32::try_from(proj).expect("fewer than 2^32 projections");
    rng::stream(config.seed, gid, Purpose::Connect(proj_id))
}

/// `w(xi_target, xi_source)` for the source at `offset`.
struct KernelAt<'a> {
    kernel: &'a Kernel,
    geometry: crate::space::Geometry,
    xt: [f64; 2],
    src: &'a Population,
    seed: u64,
}

impl KernelAt<'_> {
    fn w(&self, offset: u64) -> f64 {
        let xs = self.src.coordinate(self.seed, self.src.gid_start + offset);
        self.kernel.eval(self.geometry, self.xt, xs)
    }
}

fn draw_sources(
    config: &Config,
    proj: usize,
    gid: u64,
    rng: &mut Stream,
    out: &mut Vec<u32>,
) -> Result<(), ConfigError> {
    let p = &config.projections[proj];
    let src = &config.populations[p.source];
    let n = src.size;
    // Without autapses the target itself is removed from the candidates: candidates are
    // 0..n-1 and those at or above its own offset shift up by one.
    let own = (p.source == p.target).then(|| gid - src.gid_start);
    let skip_self = |c: u64, autapses: bool| match own {
        Some(o) if !autapses && c >= o => c + 1,
        _ => c,
    };
    let kernel = p.probability_kernel().map(|k| {
        let at = KernelAt {
            kernel: &k.kernel,
            geometry: k.geometry,
            xt: config.populations[p.target].coordinate(config.seed, gid),
            src,
            seed: config.seed,
        };
        (at, k.max)
    });
    match p.rule {
        ConnRule::FixedIndegree {
            indegree,
            autapses,
            multapses,
        } => {
            let candidates = if own.is_some() && !autapses { n - 1 } else { n };
            if let Some((at, max)) = kernel {
                let skip = |c: u64| skip_self(c, autapses);
                let picked =
                    kernel_indegree(&at, max, candidates, indegree, multapses, skip, rng).map_err(
                        |_| ConfigError::Invalid {
                            key: format!("projection.{}.indegree", p.name),
                            value: indegree.to_string(),
                            reason: format!(
                            "neuron {gid} has too few sources with kernel weight w > 0 to draw \
                             them from{}; lower the in-degree or widen the kernel",
                            if multapses { "" } else { " (each once: multapses = false)" }
                        ),
                        },
                    )?;
                out.extend(picked.into_iter().map(|c| c as u32));
            } else if multapses {
                for _ in 0..indegree {
                    let c = rng.random_range(0..candidates);
                    out.push(skip_self(c, autapses) as u32);
                }
            } else {
                let picked = index::sample(rng, candidates as usize, indegree as usize);
                out.extend(
                    picked
                        .into_iter()
                        .map(|c| skip_self(c as u64, autapses) as u32),
                );
            }
        }
        ConnRule::Bernoulli { p, autapses } => {
            let candidates = if own.is_some() && !autapses { n - 1 } else { n };
            // With a kernel, candidates come at rate p max(w) and each is kept with probability
            // w / max(w) (thinning), so the pair is connected with probability p w.
            let (rate, keep) = match &kernel {
                None => (p, None),
                Some((at, max)) => (p * max, Some((at, *max))),
            };
            let mut take = |c: u64, rng: &mut Stream| {
                let s = skip_self(c, autapses);
                let kept = match keep {
                    None => true,
                    Some((at, max)) => {
                        let u: f64 = rng.random();
                        u < at.w(s) / max
                    }
                };
                if kept {
                    out.push(s as u32);
                }
            };
            if rate >= 1.0 {
                for c in 0..candidates {
                    take(c, rng);
                }
            } else if rate > 0.0 {
                // Geometric skipping: the gap to the next connected candidate is geometric, so
                // the cost is proportional to the synapses made, not to the candidates scanned.
                let log_q = (-rate).ln_1p();
                let mut c: u64 = 0;
                loop {
                    let u: f64 = rng.random();
                    let gap = ((-u).ln_1p() / log_q).floor();
                    if gap >= (candidates - c) as f64 {
                        break;
                    }
                    c += gap as u64;
                    take(c, rng);
                    c += 1;
                    if c >= candidates {
                        break;
                    }
                }
            }
        }
        ConnRule::File(_) => {
            unreachable!(
                "projection {}: file edges are read by Connectivity::build",
                p.name
            )
        }
    }
    Ok(())
}

/// `indegree` sources (after `skip`, offsets into the source population), each drawn with
/// probability proportional to `w` by rejection: a uniform candidate, kept with probability
/// `w / max`; without multapses, repeats are rejected too. After as many consecutive
/// rejections as there are candidates (at least 64), the remaining sources are drawn exactly
/// from the cumulative weights of all candidates, which has the same distribution (the draws of
/// rejection sampling are independent of the failures before them). `Err(n)`: only `n`
/// candidates with `w > 0` remain, too few.
fn kernel_indegree(
    at: &KernelAt,
    max: f64,
    candidates: u64,
    indegree: u64,
    multapses: bool,
    skip: impl Fn(u64) -> u64,
    rng: &mut Stream,
) -> Result<Vec<u64>, usize> {
    let mut picked = Vec::with_capacity(indegree as usize);
    let mut used = std::collections::HashSet::new();
    let limit = candidates.max(64);
    let mut fails = 0u64;
    while (picked.len() as u64) < indegree {
        if fails >= limit {
            exact_indegree(at, candidates, indegree, multapses, &skip, rng, &mut picked)?;
            break;
        }
        let s = skip(rng.random_range(0..candidates));
        let u: f64 = rng.random();
        if u < at.w(s) / max && (multapses || used.insert(s)) {
            picked.push(s);
            fails = 0;
        } else {
            fails += 1;
        }
    }
    Ok(picked)
}

/// Completes `picked` to `indegree` sources drawn from the exact weights of all candidates.
fn exact_indegree(
    at: &KernelAt,
    candidates: u64,
    indegree: u64,
    multapses: bool,
    skip: &impl Fn(u64) -> u64,
    rng: &mut Stream,
    picked: &mut Vec<u64>,
) -> Result<(), usize> {
    let sources: Vec<u64> = (0..candidates).map(skip).collect();
    let mut w: Vec<f64> = sources.iter().map(|&s| at.w(s).max(0.0)).collect();
    if !multapses {
        for (i, s) in sources.iter().enumerate() {
            if picked.contains(s) {
                w[i] = 0.0;
            }
        }
    }
    let positive = |w: &[f64]| w.iter().filter(|&&x| x > 0.0).count();
    if multapses {
        let mut cum = Vec::with_capacity(w.len());
        let mut total = 0.0;
        for &x in &w {
            total += x;
            cum.push(total);
        }
        if total <= 0.0 {
            return Err(0);
        }
        while (picked.len() as u64) < indegree {
            let u: f64 = rng.random();
            let mut i = cum.partition_point(|&c| c <= u * total).min(cum.len() - 1);
            // Rounding can only push past the end: step back to a candidate with w > 0.
            while w[i] <= 0.0 {
                i -= 1;
            }
            picked.push(sources[i]);
        }
    } else {
        let needed = indegree as usize - picked.len();
        let have = positive(&w);
        if have < needed {
            return Err(have + picked.len());
        }
        while (picked.len() as u64) < indegree {
            let total: f64 = w.iter().sum();
            let u: f64 = rng.random();
            let target = u * total;
            let mut acc = 0.0;
            let mut chosen = None;
            for (i, &x) in w.iter().enumerate() {
                if x > 0.0 {
                    acc += x;
                    chosen = Some(i);
                    if target < acc {
                        break;
                    }
                }
            }
            let i = chosen.expect("a candidate with w > 0 remains");
            picked.push(sources[i]);
            w[i] = 0.0;
        }
    }
    Ok(())
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
            sources_of(&c, 0, gid, &mut s).unwrap();
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
            sources_of(&c, 0, gid, &mut s).unwrap();
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
            sources_of(&c, 0, gid, &mut s).unwrap();
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

    /// `[population.E]` of `n` neurons on the ring and one projection `P` onto itself with the
    /// given keys.
    fn ring(n: u64, placement: &str, keys: &str) -> Config {
        let text = format!(
            "[population.E]\nsize = {n}\nplacement = \"{placement}\"\n\
             [projection.P]\nsource = \"E\"\ntarget = \"E\"\n{keys}\n"
        );
        Config::from_toml(&text, &[]).unwrap()
    }

    /// The block of neuron `k` of 400 evenly placed on the ring, among 2 equal blocks, written
    /// out: coordinate k / 400 < 1/2.
    fn block_of(k: u64) -> usize {
        usize::from(k >= 200)
    }

    /// Bernoulli with a block kernel: the connection frequency of each (target block, source
    /// block) is p * matrix within 5 binomial standard deviations; a zero entry gives none.
    #[test]
    fn block_kernel_sets_the_bernoulli_probability_per_block() {
        let c = ring(
            400,
            "even",
            "rule = \"bernoulli\"\np = 0.5\nweight = 0.1\ndelay = 1.0\n\
             kernel = { kind = \"blocks\", matrix = [[0.8, 0.0], [0.4, 2.0]] }",
        );
        let probs = [[0.4, 0.0], [0.2, 1.0]];
        let mut counts = [[0u64; 2]; 2];
        for gid in 0..400 {
            let mut s = Vec::new();
            sources_of(&c, 0, gid, &mut s).unwrap();
            assert!(s.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
            for x in s {
                counts[block_of(gid)][block_of(u64::from(x))] += 1;
            }
        }
        let pairs = 200.0 * 200.0;
        for a in 0..2 {
            for b in 0..2 {
                let p: f64 = probs[a][b];
                let (mean, sd) = (pairs * p, (pairs * p * (1.0 - p)).sqrt());
                let k = counts[a][b] as f64;
                assert!(
                    (k - mean).abs() <= 5.0 * sd,
                    "block ({a}, {b}): {k} connections, expected {mean} +- {sd}"
                );
            }
        }
        assert_eq!(counts[0][1], 0, "a zero kernel entry connects nothing");
        assert_eq!(counts[1][1], 200 * 200, "probability 1 connects every pair");
    }

    /// Fixed in-degree with a block kernel: a target of block 0 draws its sources in
    /// proportion to its row [1, 3] of the matrix, and never from a zero entry.
    #[test]
    fn block_kernel_weights_the_indegree_sources() {
        for multapses in [true, false] {
            let c = ring(
                400,
                "even",
                &format!(
                    "rule = \"fixed_indegree\"\nindegree = 40\nmultapses = {multapses}\n\
                     weight = 0.1\ndelay = 1.0\n\
                     kernel = {{ kind = \"blocks\", matrix = [[1.0, 3.0], [0.0, 1.0]] }}"
                ),
            );
            let mut from_one = [0u64; 2];
            for gid in 0..400 {
                let mut s = Vec::new();
                sources_of(&c, 0, gid, &mut s).unwrap();
                assert_eq!(s.len(), 40);
                if !multapses {
                    let mut u = s.clone();
                    u.sort_unstable();
                    u.dedup();
                    assert_eq!(u.len(), 40, "gid {gid}: repeated sources without multapses");
                }
                for &x in &s {
                    let b = block_of(u64::from(x));
                    if block_of(gid) == 1 {
                        assert_eq!(b, 1, "gid {gid}: source {x} from a zero entry");
                    } else {
                        from_one[b] += 1;
                    }
                }
            }
            // 200 targets x 40 draws, each from block 1 with probability 3/4.
            let n = (from_one[0] + from_one[1]) as f64;
            let f = from_one[1] as f64 / n;
            let sd = (0.75 * 0.25 / n).sqrt();
            assert!((f - 0.75).abs() < 5.0 * sd, "multapses {multapses}: {f}");
        }
    }

    /// A target whose kernel row is zero has no source to draw: an error naming the in-degree,
    /// not a hang; a target with a positive row draws.
    #[test]
    fn fixed_indegree_without_any_positive_source_fails() {
        let c = ring(
            4,
            "even",
            "rule = \"fixed_indegree\"\nindegree = 1\nweight = 0.1\ndelay = 1.0\n\
             kernel = { kind = \"blocks\", matrix = [[0.0, 0.0], [1.0, 1.0]] }",
        );
        let e = sources_of(&c, 0, 0, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("projection.P.indegree = 1: neuron 0 has too few sources"),
            "{e}"
        );
        let mut s = Vec::new();
        sources_of(&c, 0, 2, &mut s).unwrap();
        assert_eq!(s.len(), 1);
    }

    /// With `kernel_use = "weight"`, each synapse's weight is `weight * w(xi_i, xi_j)`,
    /// recomputed here from the coordinates with the kernel's formula written out.
    #[test]
    fn weight_kernel_multiplies_each_weight() {
        let c = ring(
            300,
            "random",
            "rule = \"fixed_indegree\"\nindegree = 20\nweight = -0.4\ndelay = 1.0\n\
             kernel = { kind = \"cosine\", a = 1.0, b = 0.5 }\nkernel_use = \"weight\"",
        );
        let pop = &c.populations[0];
        let mut syn = Synapses::default();
        let mut checked = 0;
        for gid in [0u64, 7, 299] {
            synapses_of(&c, 0, gid, &mut syn).unwrap();
            assert_eq!(syn.weights.len(), 20);
            assert!(syn.delays.is_empty());
            let xt = pop.coordinate(c.seed, gid)[0];
            for (&s, &w) in syn.sources.iter().zip(&syn.weights) {
                let xs = pop.coordinate(c.seed, u64::from(s))[0];
                let expect = -0.4 * (1.0 + 0.5 * (2.0 * std::f64::consts::PI * (xt - xs)).cos());
                assert!((w - expect).abs() <= 1e-15, "{w} vs {expect}");
                checked += 1;
            }
        }
        assert_eq!(checked, 60);
        // Gaussian on the torus, used for both: sources are still drawn, weights multiplied.
        let text = "[population.E]\nsize = 100\ncoordinates = \"torus\"\n\
            [projection.P]\nsource = \"E\"\ntarget = \"E\"\nrule = \"bernoulli\"\np = 1.0\n\
            weight = 0.2\ndelay = 1.0\nkernel_use = \"both\"\n\
            kernel = { kind = \"gaussian\", amplitude = 1.0, width = 0.2 }\n";
        let c = Config::from_toml(text, &[]).unwrap();
        synapses_of(&c, 0, 55, &mut syn).unwrap();
        assert!(!syn.sources.is_empty() && syn.sources.len() < 100);
        // Even 10 x 10 grid: neuron k at ((k mod 10) / 10, (k div 10) / 10).
        let xy = |k: u64| [(k % 10) as f64 / 10.0, (k / 10) as f64 / 10.0];
        let per = |a: f64, b: f64| {
            let d = (a - b).rem_euclid(1.0);
            d.min(1.0 - d)
        };
        for (&s, &w) in syn.sources.iter().zip(&syn.weights) {
            let (t, x) = (xy(55), xy(u64::from(s)));
            let d2 = per(t[0], x[0]).powi(2) + per(t[1], x[1]).powi(2);
            let expect = 0.2 * (-d2 / (2.0 * 0.04)).exp();
            assert!((w - expect).abs() <= 1e-15, "source {s}: {w} vs {expect}");
        }
    }

    /// Sample mean and standard deviation of the weights match the requested ones within 5
    /// standard errors (that of the sd from the sample's fourth moment); the sign follows
    /// `weight` and the support is respected.
    #[test]
    fn weight_distributions_match_mean_and_sd() {
        for (dist, weight, sd) in [
            ("normal", 0.5, 0.1),
            ("lognormal", -0.5, 0.3),
            ("uniform", 0.5, 0.2),
        ] {
            let c = ring(
                200,
                "even",
                &format!(
                    "rule = \"fixed_indegree\"\nindegree = 100\nweight = {weight}\n\
                     weight_dist = \"{dist}\"\nweight_sd = {sd}\ndelay = 1.0"
                ),
            );
            let mut syn = Synapses::default();
            let mut w = Vec::new();
            for gid in 0..200 {
                synapses_of(&c, 0, gid, &mut syn).unwrap();
                assert_eq!(syn.weights.len(), syn.sources.len());
                w.extend_from_slice(&syn.weights);
            }
            let sign: f64 = if weight < 0.0 { -1.0 } else { 1.0 };
            assert!(
                w.iter().all(|&x| x * sign >= 0.0),
                "{dist}: a weight of the wrong sign"
            );
            let m: Vec<f64> = w.iter().map(|x| x * sign).collect();
            if dist == "uniform" {
                let h = 3f64.sqrt() * sd;
                assert!(
                    m.iter().all(|&x| x >= 0.5 - h && x <= 0.5 + h),
                    "{dist}: support"
                );
            }
            if dist == "lognormal" {
                assert!(m.iter().all(|&x| x > 0.0));
            }
            let n = m.len() as f64;
            let mean = m.iter().sum::<f64>() / n;
            let var = m.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let m4 = m.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
            let se_mean = (var / n).sqrt();
            let se_sd = ((m4 - var * var) / (4.0 * n * var)).sqrt();
            let s = var.sqrt();
            assert!(
                (mean - 0.5).abs() < 5.0 * se_mean,
                "{dist}: mean {mean} +- {se_mean}"
            );
            assert!((s - sd).abs() < 5.0 * se_sd, "{dist}: sd {s} +- {se_sd}");
        }
    }

    /// Delays uniform over the whole steps from `delay` to `delay_max`: every delay in range,
    /// each value about equally frequent (chi^2 with 5 degrees of freedom).
    #[test]
    fn uniform_delays_cover_the_range_evenly() {
        let c = ring(
            200,
            "even",
            "rule = \"fixed_indegree\"\nindegree = 60\nweight = 0.1\ndelay = 1.0\ndelay_max = 1.5",
        );
        assert_eq!(
            (
                c.projections[0].delay_steps,
                c.projections[0].delay_max_steps
            ),
            (10, 15)
        );
        let mut counts = [0u64; 6];
        let mut syn = Synapses::default();
        for gid in 0..200 {
            synapses_of(&c, 0, gid, &mut syn).unwrap();
            assert!(
                syn.weights.is_empty(),
                "constant weights are not stored per synapse"
            );
            assert_eq!(syn.delays.len(), 60);
            for &d in &syn.delays {
                assert!((10..=15).contains(&d), "delay {d}");
                counts[(d - 10) as usize] += 1;
            }
        }
        let e = 12_000.0 / 6.0;
        let chi2: f64 = counts.iter().map(|&k| (k as f64 - e).powi(2) / e).sum();
        // P(chi^2_5 > 25) ~ 1.4e-4.
        assert!(chi2 < 25.0, "chi^2 = {chi2}, counts {counts:?}");
    }

    /// The sources are drawn first: adding random weights and delays leaves them unchanged.
    #[test]
    fn weights_and_delays_are_drawn_after_the_sources() {
        let plain = ring(
            100,
            "even",
            "rule = \"bernoulli\"\np = 0.2\nweight = 0.1\ndelay = 1.0",
        );
        let rich = ring(
            100,
            "even",
            "rule = \"bernoulli\"\np = 0.2\nweight = 0.1\ndelay = 1.0\ndelay_max = 2.0\n\
             weight_dist = \"normal\"\nweight_sd = 0.02",
        );
        let mut syn = Synapses::default();
        for gid in [3u64, 50] {
            let mut s = Vec::new();
            sources_of(&plain, 0, gid, &mut s).unwrap();
            synapses_of(&rich, 0, gid, &mut syn).unwrap();
            assert_eq!(s, syn.sources);
            assert_eq!(syn.weights.len(), s.len());
            assert_eq!(syn.delays.len(), s.len());
        }
    }

    #[test]
    fn same_gid_same_sources() {
        let c = config("rule = \"fixed_indegree\"\nindegree = 20");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sources_of(&c, 0, 42, &mut a).unwrap();
        sources_of(&c, 0, 42, &mut b).unwrap();
        assert_eq!(a, b);
    }
}
