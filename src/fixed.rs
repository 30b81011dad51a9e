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
