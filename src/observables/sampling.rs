//! Random subsets of the sources for the sampled estimates of the tree observables and the
//! pair histogram (`sample < 1`).
//!
//! Whether a neuron is kept is a counter-based hash of the simulation seed, a purpose, the
//! sample's step boundary, the replicate, the place in the observable and the neuron's gid:
//! it depends on nothing else, in particular not on the rank or the decomposition, so that a
//! sampled estimate is the same on any number of ranks.

/// Purpose of the masks of the tree observables.
pub const TREES: u64 = 0x7472_6565_7300_0001;

/// Purpose of the masks of the pair histogram.
pub const PAIR_HISTOGRAM: u64 = 0x7061_6972_0000_0002;

/// The splitmix64 output function of `z` (one step of the generator from state `z`).
fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream of one mask: a splitmix64 chain through `parts` (seed, purpose, boundary, ...).
pub fn stream(parts: &[u64]) -> u64 {
    parts.iter().fold(0, |h, &x| splitmix64(h ^ x))
}

/// A uniform number in \[0, 1) for neuron `gid` in the mask `stream` (53 random bits).
pub fn uniform(stream: u64, gid: u64) -> f64 {
    (splitmix64(stream ^ gid) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Whether neuron `gid` is kept in the mask `stream` with probability `q`.
pub fn kept(stream: u64, gid: u64, q: f64) -> bool {
    uniform(stream, gid) < q
}

/// The mean of the replicate estimates and its standard error: the sample standard deviation
/// (divisor R - 1) over sqrt(R). At least two estimates.
pub fn mean_and_stderr(estimates: &[f64]) -> (f64, f64) {
    let r = estimates.len() as f64;
    let mean = estimates.iter().sum::<f64>() / r;
    let ss: f64 = estimates.iter().map(|&x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (r - 1.0) / r).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept fraction matches q, and masks of different streams are uncorrelated.
    #[test]
    fn masks_keep_the_fraction_and_are_independent() {
        let (a, b) = (stream(&[1, TREES, 10, 0]), stream(&[1, TREES, 10, 1]));
        let n = 200_000u64;
        let q = 0.05;
        let ka = (0..n).filter(|&g| kept(a, g, q)).count() as f64;
        let both = (0..n).filter(|&g| kept(a, g, q) && kept(b, g, q)).count() as f64;
        // Binomial: sd of the count sqrt(n q (1 - q)) = 97; of the joint count sqrt(n q^2) = 22.
        assert!((ka - n as f64 * q).abs() < 5.0 * 97.5, "{ka}");
        assert!((both - n as f64 * q * q).abs() < 5.0 * 22.4, "{both}");
        let mean = (0..n).map(|g| uniform(a, g)).sum::<f64>() / n as f64;
        assert!(
            (mean - 0.5).abs() < 5.0 * (1.0 / 12.0 / n as f64).sqrt(),
            "{mean}"
        );
    }

    #[test]
    fn stderr_is_the_sample_sd_over_sqrt_r() {
        let (m, s) = mean_and_stderr(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(m, 3.0);
        // Squares of deviations 4 + 1 + 0 + 9 = 14; 14 / 3 / 4 = 7/6.
        assert!((s - (7.0f64 / 6.0).sqrt()).abs() < 1e-15);
    }
}
