//! Poisson counts by table inversion, for the small means of per-step spike input.
//!
//! An external Poisson train of rate `r` gives `Poisson(r dt)` arrivals per step, with means of
//! order 1. Inversion of the cumulative distribution with a guide table costs one uniform draw
//! and about one comparison, where the multiplication method costs `mean + 1` draws; on the
//! Brunel benchmark this is the largest part of the neuron update (see BENCHMARKS.md).

use rand_distr::Distribution;

/// Size of the guide table: `guide[j]` is the smallest k with `cdf[k] > j / GUIDE`. With 1024
/// cells nearly all contain no jump of the CDF, so the search after the look-up almost never
/// iterates and its branch is predictable.
const GUIDE: usize = 1 << GUIDE_BITS;
const GUIDE_BITS: u32 = 10;
const TWO53: f64 = 9_007_199_254_740_992.0;

/// Means above this use `rand_distr`'s sampler, whose cost does not grow with the mean.
const TABLE_MAX_MEAN: f64 = 64.0;

#[derive(Clone, Debug)]
pub struct PoissonSampler {
    mean: f64,
    cdf: Vec<f64>,
    /// `cdf[k]` in units of 2^-53, rounded up: for a 53-bit uniform `m 2^-53`,
    /// `m >= cdf_int[k]` exactly when `m 2^-53 >= cdf[k]`, so the search runs on integers.
    cdf_int: Vec<u64>,
    guide: Vec<u32>,
    large: Option<rand_distr::Poisson<f64>>,
}

impl PoissonSampler {
    /// A sampler of Poisson(`mean`), `mean` finite and positive.
    pub fn new(mean: f64) -> Self {
        assert!(
            mean.is_finite() && mean > 0.0,
            "Poisson mean must be finite and positive"
        );
        if mean > TABLE_MAX_MEAN {
            let large = rand_distr::Poisson::new(mean).expect("finite positive mean");
            return PoissonSampler {
                mean,
                cdf: Vec::new(),
                cdf_int: Vec::new(),
                guide: Vec::new(),
                large: Some(large),
            };
        }
        // The table runs until the remaining tail is below 2^-60, far below the resolution of a
        // 53-bit uniform; draws past its end continue the recurrence on the fly.
        let mut cdf = Vec::new();
        let mut p = (-mean).exp();
        let mut c = 0.0;
        let mut k = 0u32;
        loop {
            c += p;
            cdf.push(c);
            k += 1;
            p *= mean / f64::from(k);
            if (f64::from(k) > mean && p < 1e-18) || k > 10_000 {
                break;
            }
        }
        let guide = (0..GUIDE)
            .map(|j| {
                let u = j as f64 / GUIDE as f64;
                cdf.partition_point(|&c| c <= u) as u32
            })
            .collect();
        let cdf_int = cdf.iter().map(|&c| (c * TWO53).ceil() as u64).collect();
        PoissonSampler {
            mean,
            cdf,
            cdf_int,
            guide,
            large: None,
        }
    }

    #[inline]
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        if let Some(large) = &self.large {
            return large.sample(rng) as u32;
        }
        // The uniform is u = m 2^-53 with m the top 53 bits of one draw (as `rng.random::<f64>()`
        // makes it); its guide cell floor(u GUIDE) is the top 10 bits.
        let x = rng.next_u64();
        let m = x >> 11;
        let mut k = self.guide[(x >> (64 - GUIDE_BITS)) as usize] as usize;
        while k < self.cdf_int.len() && m >= self.cdf_int[k] {
            k += 1;
        }
        if k < self.cdf_int.len() {
            return k as u32;
        }
        let u = m as f64 / TWO53;
        self.tail(u, k)
    }

    #[cold]
    fn tail(&self, u: f64, mut k: usize) -> u32 {
        // Past the table (probability below 1e-17): continue the recurrence.
        let mut c = self.cdf[k - 1];
        let mut p = (-self.mean).exp();
        for i in 1..=k {
            p *= self.mean / i as f64;
        }
        while u >= c && p > 0.0 {
            c += p;
            k += 1;
            p *= self.mean / k as f64;
        }
        k as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Purpose};

    /// Empirical frequencies against the exact probability mass function (chi-square), and
    /// the sample mean and variance against the mean.
    #[test]
    fn matches_the_poisson_distribution() {
        for mean in [0.02, 2.0, 7.5, 40.0, 150.0] {
            let s = PoissonSampler::new(mean);
            let mut rng = stream(3, 0, Purpose::Dynamics);
            let n = 400_000;
            let draws: Vec<u32> = (0..n).map(|_| s.sample(&mut rng)).collect();
            let m = draws.iter().map(|&k| f64::from(k)).sum::<f64>() / n as f64;
            let v = draws
                .iter()
                .map(|&k| (f64::from(k) - m).powi(2))
                .sum::<f64>()
                / n as f64;
            let se = (mean / n as f64).sqrt();
            assert!((m - mean).abs() < 5.0 * se, "mean {mean}: sample mean {m}");
            assert!(
                (v / mean - 1.0).abs() < 0.02,
                "mean {mean}: sample variance {v}"
            );
            // Chi-square over the values with expected count >= 20, pooled tails excluded.
            let kmax = (mean + 12.0 * mean.sqrt() + 12.0) as usize;
            let mut counts = vec![0f64; kmax + 1];
            for &k in &draws {
                if (k as usize) <= kmax {
                    counts[k as usize] += 1.0;
                }
            }
            let (mut chi2, mut dof) = (0.0, 0);
            let mut log_p = -mean;
            for (k, &c) in counts.iter().enumerate() {
                if k > 0 {
                    log_p += mean.ln() - (k as f64).ln();
                }
                let e = n as f64 * log_p.exp();
                if e >= 20.0 {
                    chi2 += (c - e).powi(2) / e;
                    dof += 1;
                }
            }
            // Mean + 5 sd of a chi-square with `dof` degrees of freedom.
            let bound = dof as f64 + 5.0 * (2.0 * dof as f64).sqrt();
            assert!(chi2 < bound, "mean {mean}: chi2 {chi2} with {dof} cells");
        }
    }
}
