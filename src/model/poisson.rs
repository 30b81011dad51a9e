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

/// Poisson counts by Walker's alias method on 64-bit integers: one table load per draw and no
/// branch, for the vectorised neuron update ([`super::lanes`]).
///
/// The top `bits` bits of a 64-bit draw pick one of `2^bits` cells, each of probability
/// `2^-bits`; the remaining bits, as a fraction of the cell, either keep the cell's own count
/// or send it to the cell's alias. The drawn probabilities are exact multiples of `2^-64`:
/// each `P(k)` (computed in double precision, as [`PoissonSampler`]'s table) rounded to the
/// nearest, the rounding remainder given to the mode; counts whose probability rounds to zero
/// are never drawn. The resolution is thus finer than [`PoissonSampler`]'s 53-bit uniform.
#[derive(Clone, Debug)]
pub struct PoissonAlias {
    bits: u32,
    /// Cell `c`: the threshold `t` (the cell keeps `c` with probability `t 2^-(64 - bits)`) in
    /// the high `64 - bits` bits and the alias in the low `bits` bits; a full cell (`t = 2^(64 -
    /// bits)`) is stored as threshold 0 and alias `c`.
    cells: Box<[u64; ALIAS_CELLS]>,
}

/// The most cells of a [`PoissonAlias`] table; enough for every mean up to [`TABLE_MAX_MEAN`]
/// (64 needs the counts 0 to about 160).
const ALIAS_CELLS: usize = 256;

impl PoissonAlias {
    /// The table of Poisson(`mean`), or `None` when the counts of non-zero probability do not
    /// fit in its 256 cells (means above about 100) or `mean` is not positive.
    pub fn new(mean: f64) -> Option<Self> {
        if !(mean.is_finite() && mean > 0.0) {
            return None;
        }
        const TWO64: f64 = 18_446_744_073_709_551_616.0;
        // Weights in units of 2^-64, until past the mean they round to zero.
        let mut w: Vec<u128> = Vec::new();
        let mut p = (-mean).exp();
        let mut k = 0u32;
        loop {
            w.push((p * TWO64).round() as u128);
            k += 1;
            p *= mean / f64::from(k);
            if f64::from(k) > mean && p * TWO64 < 0.5 {
                break;
            }
            if w.len() > ALIAS_CELLS {
                return None;
            }
        }
        let total: u128 = w.iter().sum();
        let mode = (0..w.len())
            .max_by_key(|&i| w[i])
            .expect("one count at least");
        // The remainder of the rounding (a few units) goes to the mode.
        w[mode] = (w[mode] as i128 + ((1i128 << 64) - total as i128)) as u128;
        let bits = (w.len().next_power_of_two().trailing_zeros()).max(1);
        let n = 1usize << bits;
        if n > ALIAS_CELLS {
            return None;
        }
        w.resize(n, 0);
        // Vose's construction on integers: every cell holds `cap` units.
        let cap: u128 = 1u128 << (64 - bits);
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| w[i] < cap);
        let mut cells = Box::new([0u64; ALIAS_CELLS]);
        for (c, cell) in cells.iter_mut().enumerate().take(n) {
            *cell = c as u64; // full until filled in below
        }
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            cells[s] = ((w[s] as u64) << bits) | l as u64;
            w[l] -= cap - w[s];
            if w[l] < cap {
                large.pop();
                small.push(l);
            }
        }
        // Exact arithmetic leaves only full cells.
        debug_assert!(small.iter().chain(&large).all(|&i| w[i] == cap));
        Some(PoissonAlias { bits, cells })
    }

    /// The number of bits that pick a cell, and the cells (for the vectorised draw).
    pub fn parts(&self) -> (u32, &[u64; ALIAS_CELLS]) {
        (self.bits, &self.cells)
    }

    /// The count drawn by the 64 random bits `x`.
    #[inline(always)]
    pub fn count(&self, x: u64) -> u32 {
        let mask = (1u64 << self.bits) - 1;
        let cell = (x >> (64 - self.bits)) as usize;
        let e = self.cells[cell % ALIAS_CELLS];
        // The fraction of the cell with the low bits set: below `e` exactly when below the
        // threshold in `e`'s high bits, whatever the alias in its low bits.
        let keep = ((x << self.bits) | mask) < e;
        (if keep { cell as u64 } else { e & mask }) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Purpose};

    /// Draws of Poisson(`mean`): their mean within 5 standard errors, their variance within
    /// `var_tol` of the mean (relative), and a chi-square over the values expected at least 20
    /// times below its mean + 5 sd.
    fn assert_poisson(draws: &[u32], mean: f64, var_tol: f64) {
        let n = draws.len() as f64;
        let m = draws.iter().map(|&k| f64::from(k)).sum::<f64>() / n;
        let v = draws
            .iter()
            .map(|&k| (f64::from(k) - m).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            (m - mean).abs() < 5.0 * (mean / n).sqrt(),
            "mean {mean}: sample mean {m}"
        );
        assert!(
            (v / mean - 1.0).abs() < var_tol,
            "mean {mean}: sample variance {v}"
        );
        let top = draws.iter().copied().max().unwrap_or(0) as usize;
        let mut counts = vec![0f64; top + 1];
        for &k in draws {
            counts[k as usize] += 1.0;
        }
        let (mut chi2, mut dof) = (0.0, 0);
        let mut log_p = -mean;
        for (k, &c) in counts.iter().enumerate() {
            if k > 0 {
                log_p += mean.ln() - (k as f64).ln();
            }
            let e = n * log_p.exp();
            if e >= 20.0 {
                chi2 += (c - e).powi(2) / e;
                dof += 1;
            }
        }
        let bound = dof as f64 + 5.0 * (2.0 * dof as f64).sqrt();
        assert!(chi2 < bound, "mean {mean}: chi2 {chi2} with {dof} cells");
    }

    /// Empirical frequencies against the exact probability mass function (chi-square), and
    /// the sample mean and variance against the mean.
    #[test]
    fn matches_the_poisson_distribution() {
        for mean in [0.02, 2.0, 7.5, 40.0, 150.0] {
            let s = PoissonSampler::new(mean);
            let mut rng = stream(3, 0, Purpose::Dynamics);
            let n = 400_000;
            let draws: Vec<u32> = (0..n).map(|_| s.sample(&mut rng)).collect();
            assert_poisson(&draws, mean, 0.02);
        }
    }

    /// The alias table's probabilities, summed over its cells, are the Poisson probabilities to
    /// within the double-precision error of their computation (and exact multiples of 2^-64 summing to
    /// one); draws from it pass the same chi-square and moment tests as the guide table.
    #[test]
    fn alias_table_matches_the_poisson_distribution() {
        use rand::Rng;
        for mean in [1e-9, 0.02, 2.0, 7.5, 40.0, 64.0] {
            let t = PoissonAlias::new(mean).expect("a table up to mean 64");
            let (bits, cells) = t.parts();
            let mask = (1u64 << bits) - 1;
            let cap = 1u128 << (64 - bits);
            // Units of 2^-64 per count: a cell keeps `t` units and gives `cap - t` to its alias.
            let mut units = vec![0u128; 1 << bits];
            for (c, &e) in cells.iter().take(1 << bits).enumerate() {
                let keep = if e & mask == c as u64 && e >> bits == 0 {
                    cap
                } else {
                    u128::from(e >> bits)
                };
                units[c] += keep;
                units[(e & mask) as usize] += cap - keep;
            }
            assert_eq!(units.iter().sum::<u128>(), 1u128 << 64, "mean {mean}");
            let mut log_p = -mean;
            for (k, &u) in units.iter().enumerate() {
                if k > 0 {
                    log_p += mean.ln() - (k as f64).ln();
                }
                let got = u as f64 / 18_446_744_073_709_551_616.0;
                let want = log_p.exp();
                // Both sides accumulate one rounding per count up to k (the table's recurrence,
                // the reference's sum of logarithms): at most ~200 ulps, 5e-14, plus 2^-64.
                assert!(
                    (got - want).abs() <= 5e-14 * want + 1e-19,
                    "mean {mean}, k {k}: {got} against {want}"
                );
            }
            // Draws: mean, variance and chi-square as for the guide table.
            let mut rng = stream(5, 0, Purpose::Dynamics);
            let n = 400_000;
            let draws: Vec<u32> = (0..n).map(|_| t.count(rng.next_u64())).collect();
            assert_poisson(&draws, mean, if mean > 0.01 { 0.03 } else { f64::INFINITY });
        }
        assert!(PoissonAlias::new(500.0).is_none());
    }
}
