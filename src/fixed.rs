//! Exact sums and binning: values cut to a fixed point (multiples of 2^-32) and summed as
//! integers, so that a sum does not depend on the order of its terms, nor on how they are
//! spread over ranks. A leaf module: observables, aggregate sums, delivery, trees and
//! connectivity's balance sums all use it.

/// Fixed-point scale of exact sums: values are cut to multiples of 2^-32 before summing
/// (truncated by [`fixed`], rounded to nearest by [`fixed_moments`]),
/// so the sum is an integer sum, exact and independent of order. An i128 holds 2^32 neurons at
/// |V|^2 up to 2^60 without overflow.
pub(crate) const FIXED: f64 = 4_294_967_296.0;

#[inline]
pub(crate) fn fixed(x: f64) -> i128 {
    // Truncation toward zero: any fixed rule gives order independence. Through i64 where the
    // value fits (|x| < 2^31), which compiles to one instruction; i128 conversion is a call.
    let y = x * FIXED;
    if y.abs() < 9.0e18 {
        y as i64 as i128
    } else {
        y as i128
    }
}

/// The bin `floor((x - lo) / width)` of `x` among `bins` bins from `lo`, if inside (NaN is
/// not). For a non-negative quotient truncation is the floor, without a call to `floor`.
#[inline]
pub(crate) fn bin_of(x: f64, lo: f64, width: f64, bins: usize) -> Option<usize> {
    let y = (x - lo) / width;
    (y >= 0.0 && y < bins as f64).then_some(y as usize)
}

/// `(sum x, sum x^2)` over `xs` in units of 2^-32, each term rounded to the nearest integer
/// (ties to even): exact integer sums, independent of order. Chunks of 1024 values below 512
/// in magnitude (terms below 2^50, a chunk's sums below 2^60) take a fast path that the
/// compiler vectorises: adding `1.5 2^52` to a term below 2^51 rounds it to an integer in the
/// low bits of the sum's representation. Other chunks go term by term through `i128`.
pub(crate) fn fixed_moments(xs: &[f64]) -> (i128, i128) {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    let magic = MAGIC.to_bits() as i64;
    let round = |y: f64| (y + MAGIC).to_bits() as i64 - magic;
    let (mut s1, mut s2) = (0i128, 0i128);
    for chunk in xs.chunks(1024) {
        if chunk.iter().all(|x| x.abs() < 512.0) {
            let (mut a, mut b) = (0i64, 0i64);
            for &x in chunk {
                a += round(x * FIXED);
                b += round(x * x * FIXED);
            }
            s1 += i128::from(a);
            s2 += i128::from(b);
        } else {
            // Non-finite terms count as 0, as in `fixed`.
            let exact = |y: f64| {
                if y.is_finite() {
                    y.round_ties_even() as i128
                } else {
                    0
                }
            };
            for &x in chunk {
                s1 += exact(x * FIXED);
                s2 += exact(x * x * FIXED);
            }
        }
    }
    (s1, s2)
}

pub(crate) fn unfixed(x: i128) -> f64 {
    x as f64 / FIXED
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked sums equal term-by-term sums of the terms rounded to the nearest multiple of
    /// 2^-32 (ties to even, computed here through `i128` directly), for chunks inside the fast
    /// range, chunks with a value outside it (large, infinite, NaN), values exactly halfway
    /// between two multiples, and a partial last chunk.
    #[test]
    fn fixed_moments_equal_term_by_term_sums() {
        let mut xs: Vec<f64> = (0..5000)
            .map(|i| ((i * 7919) % 2001) as f64 * 0.5 - 500.3 + 1e-7 * i as f64)
            .collect();
        xs[1500] = 3.0e4;
        xs[2100] = -511.999;
        xs[2101] = 2.5 / FIXED;
        xs[2102] = -3.5 / FIXED;
        xs[3100] = f64::NAN;
        xs[4200] = 5.0e12;
        xs[4300] = f64::INFINITY;
        let term = |y: f64| {
            if y.is_finite() {
                y.round_ties_even() as i128
            } else {
                0
            }
        };
        let naive = |s: &[f64]| {
            s.iter().fold((0i128, 0i128), |(a, b), &x| {
                (a + term(x * FIXED), b + term(x * x * FIXED))
            })
        };
        assert_eq!(fixed_moments(&xs), naive(&xs));
        assert_eq!(fixed_moments(&xs[2048..2900]), naive(&xs[2048..2900]));
        assert_eq!(fixed_moments(&xs[..700]), naive(&xs[..700]));
        // The fast path itself, on a chunk it takes: halfway terms round to even.
        assert_eq!(
            fixed_moments(&[2.5 / FIXED, 3.5 / FIXED, -2.5 / FIXED]).0,
            2 + 4 - 2
        );
    }

    #[test]
    fn fixed_point_sums_are_order_independent() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 * 0.0137 - 5.3)
            .collect();
        let fwd: i128 = xs.iter().map(|&x| fixed(x)).sum();
        let rev: i128 = xs.iter().rev().map(|&x| fixed(x)).sum();
        assert_eq!(fwd, rev);
        let naive: f64 = xs.iter().sum();
        assert!((unfixed(fwd) - naive).abs() < 1e-6);
    }
}
