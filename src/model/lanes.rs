//! Several neurons per instruction: the random streams of a lane of [`LANES`] neurons stepped
//! side by side, and the branch-free variates the vectorised LIF update draws from them.
//!
//! Each neuron still draws only from its own stream (the rank-invariance contract of
//! [`crate::rng`]): a lane holds the [`LANES`] Xoshiro256++ states of consecutive neurons as
//! structure-of-arrays (word `w` of every stream side by side), so one step of all of them is
//! a handful of vector instructions, and every operation below acts on each lane alone. A
//! neuron's numbers therefore do not depend on its lane or its neighbours.
//!
//! The functions are written on plain arrays for LLVM to vectorise: integer operations and
//! IEEE additions, multiplications, divisions and square roots only, and no fused
//! multiply-add (Rust never contracts), so a build for any instruction set gives the same bits.

use crate::rng::Stream;

/// Neurons per lane of the baseline (non-AVX2) update.
pub const LANES: usize = 8;

/// The Xoshiro256++ states of one lane of streams, word by word.
#[derive(Clone, Debug)]
pub struct Lanes {
    s: [[u64; LANES]; 4],
}

impl Lanes {
    /// The states of `streams` (exactly [`LANES`] of them).
    #[inline(always)]
    pub fn load(streams: &[Stream]) -> Lanes {
        let mut s = [[0u64; LANES]; 4];
        for (j, st) in streams[..LANES].iter().enumerate() {
            for (word, &value) in s.iter_mut().zip(&st.s) {
                word[j] = value;
            }
        }
        Lanes { s }
    }

    /// Writes the states back into `streams` (exactly [`LANES`] of them).
    #[inline(always)]
    pub fn store(&self, streams: &mut [Stream]) {
        for (j, st) in streams[..LANES].iter_mut().enumerate() {
            for (word, value) in self.s.iter().zip(&mut st.s) {
                *value = word[j];
            }
        }
    }

    /// The next 64-bit output of every stream: the same number `Stream::next_u64` returns.
    #[inline(always)]
    pub fn next_words(&mut self) -> [u64; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u64; LANES];
        for j in 0..LANES {
            out[j] = s0[j]
                .wrapping_add(s3[j])
                .rotate_left(23)
                .wrapping_add(s0[j]);
            let t = s1[j] << 17;
            s2[j] ^= s0[j];
            s3[j] ^= s1[j];
            s1[j] ^= s2[j];
            s0[j] ^= s3[j];
            s2[j] ^= t;
            s3[j] = s3[j].rotate_left(45);
        }
        out
    }

    /// Lane `j` as a stream (for the few draws that stay scalar).
    #[inline]
    pub fn stream(&self, j: usize) -> Stream {
        Stream {
            s: [self.s[0][j], self.s[1][j], self.s[2][j], self.s[3][j]],
        }
    }

    /// Sets lane `j` to the position of `stream`.
    #[inline]
    pub fn set_stream(&mut self, j: usize, stream: &Stream) {
        for (word, &value) in self.s.iter_mut().zip(&stream.s) {
            word[j] = value;
        }
    }
}

/// `2^52`, the exponent of the doubles whose last mantissa bit is 1.
const TWO52: f64 = 4_503_599_627_370_496.0;
const TWO52_BITS: u64 = 0x4330_0000_0000_0000;

/// `m + 1/2` for `m < 2^52`, exactly, without a 64-bit integer conversion (which AVX2 lacks):
/// `m` becomes the mantissa of `2^52 + m`.
#[inline(always)]
fn half_plus(m: u64) -> f64 {
    f64::from_bits(TWO52_BITS | m) - (TWO52 - 0.5)
}

/// The small signed integer `k` (`|k| < 2^31`) as a double, exactly (as `half_plus`: the mantissa of `2^52 + 2^31 + k`).
#[inline(always)]
pub fn small_to_f64(k: i64) -> f64 {
    const OFFSET: i64 = 1 << 31;
    f64::from_bits(TWO52_BITS | (k + OFFSET) as u64) - (TWO52 + OFFSET as f64)
}

/// A uniform variate on the open interval (0, 1) from the top 52 bits of `x`: `(m + 1/2) 2^-52`,
/// symmetric about 1/2, never 0 or 1.
#[inline(always)]
pub fn uniform_open(x: u64) -> f64 {
    half_plus(x >> 12) * (1.0 / TWO52)
}

/// The natural logarithm of a positive, finite, normal `x`, branch-free.
///
/// fdlibm's `__ieee754_log` (Sun Microsystems, 1993) without its special cases: `x = 2^k (1 +
/// f)` with `sqrt(2)/2 <= 1 + f < sqrt(2)`, `log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2))` with
/// `s = f / (2 + f)` and fdlibm's minimax polynomial R; error below 1 ulp. Zero, subnormal,
/// negative and non-finite arguments give meaningless values: callers never pass them.
// The published constants, digit for digit.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const LG1: f64 = 6.666_666_666_666_735_130e-1;
    const LG2: f64 = 3.999_999_999_940_941_908e-1;
    const LG3: f64 = 2.857_142_874_366_239_149e-1;
    const LG4: f64 = 2.222_219_843_214_978_396e-1;
    const LG5: f64 = 1.818_357_216_161_805_012e-1;
    const LG6: f64 = 1.531_383_769_920_937_332e-1;
    const LG7: f64 = 1.479_819_860_511_658_591e-1;
    let bits = x.to_bits();
    let hx = (bits >> 32) & 0x000f_ffff;
    // 0x10_0000 when the mantissa is at least sqrt(2): then x is halved (and k raised by one).
    let i = (hx + 0x9_5f64) & 0x10_0000;
    let mantissa = f64::from_bits(((hx | (i ^ 0x3ff0_0000)) << 32) | (bits & 0xffff_ffff));
    let k = (bits >> 52) as i64 - 1023 + (i >> 20) as i64;
    let f = mantissa - 1.0;
    let s = f / (2.0 + f);
    let dk = small_to_f64(k);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// `c[0] + c[1] x + ... + c[7] x^7` by Horner's rule.
#[inline(always)]
fn poly(c: &[f64; 8], x: f64) -> f64 {
    let mut y = c[7];
    for &ck in c[..7].iter().rev() {
        y = y * x + ck;
    }
    y
}

/// A standard normal variate from 64 random bits, by inversion of the normal distribution
/// function, branch-free.
///
/// The uniform is `u = (m + 1/2) 2^-52` with `m` the top 52 bits (so `u` and `1 - u` are both
/// exact, and the variate is exactly antisymmetric in `u`); the quantile is Wichura's
/// algorithm AS 241 (PPND16, Applied Statistics 37, 1988), relative error about 1e-16: a
/// rational function of `(u - 1/2)^2` for `|u - 1/2| <= 0.425`, and of `sqrt(-ln p)`,
/// `p = min(u, 1 - u)`, in the tails. All three pieces are computed and one is selected, so the
/// cost is the same for every draw. The smallest `p` is `2^-53`: variates reach 8.3 standard
/// deviations (a normal exceeds that with probability 1e-16).
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn normal(x: u64) -> f64 {
    const A: [f64; 8] = [
        3.387_132_872_796_366_608_0,
        1.331_416_678_917_843_774_5e2,
        1.971_590_950_306_551_442_7e3,
        1.373_169_376_550_946_112_5e4,
        4.592_195_393_154_987_145_7e4,
        6.726_577_092_700_870_085_3e4,
        3.343_057_558_358_812_810_5e4,
        2.509_080_928_730_122_672_7e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.231_333_070_160_091_125_2e1,
        6.871_870_074_920_579_083_0e2,
        5.394_196_021_424_751_107_7e3,
        2.121_379_430_158_659_586_7e4,
        3.930_789_580_009_271_061_0e4,
        2.872_908_573_572_194_267_4e4,
        5.226_495_278_852_854_561_0e3,
    ];
    const C: [f64; 8] = [
        1.423_437_110_749_683_577_34,
        4.630_337_846_156_545_295_90,
        5.769_497_221_460_691_405_50,
        3.647_848_324_763_204_605_04,
        1.270_458_252_452_368_382_58,
        2.417_807_251_774_506_117_70e-1,
        2.272_384_498_926_918_458_33e-2,
        7.745_450_142_783_414_076_40e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.053_191_626_637_758_821_87,
        1.676_384_830_183_803_849_40,
        6.897_673_349_851_000_045_50e-1,
        1.481_039_764_274_800_745_90e-1,
        1.519_866_656_361_645_719_66e-2,
        5.475_938_084_995_344_946_00e-4,
        1.050_750_071_644_416_843_24e-9,
    ];
    const E: [f64; 8] = [
        6.657_904_643_501_103_777_20,
        5.463_784_911_164_114_369_90,
        1.784_826_539_917_291_335_80,
        2.965_605_718_285_048_912_30e-1,
        2.653_218_952_657_612_309_30e-2,
        1.242_660_947_388_078_438_60e-3,
        2.711_555_568_743_487_578_15e-5,
        2.010_334_399_292_288_132_65e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.998_322_065_558_879_376_90e-1,
        1.369_298_809_227_358_053_10e-1,
        1.487_536_129_085_061_485_25e-2,
        7.868_691_311_456_132_591_00e-4,
        1.846_318_317_510_054_681_80e-5,
        1.421_511_758_316_445_888_70e-7,
        2.044_263_103_389_939_785_64e-15,
    ];
    const HALF: u64 = 1 << 51;
    let m = x >> 12;
    let lower = m < HALF;
    // min(m, 2^52 - 1 - m): p = min(u, 1 - u) exactly.
    let mm = if lower { m } else { m ^ ((1 << 52) - 1) };
    let p = half_plus(mm) * (1.0 / TWO52);
    let q = 0.5 - p;
    let r = 0.180_625 - q * q;
    let central = q * poly(&A, r) / poly(&B, r);
    let t = (-ln(p)).sqrt();
    let near = t - 1.6;
    let far = t - 5.0;
    let tail_near = poly(&C, near) / poly(&D, near);
    let tail_far = poly(&E, far) / poly(&F, far);
    let tail = if t <= 5.0 { tail_near } else { tail_far };
    let z = if q <= 0.425 { central } else { tail };
    if lower {
        -z
    } else {
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Purpose};
    use rand::Rng;

    /// The lane generator gives each stream's own sequence.
    #[test]
    fn lanes_step_like_the_scalar_generator() {
        let mut streams: Vec<Stream> = (0..LANES as u64)
            .map(|g| stream(5, g, Purpose::Dynamics))
            .collect();
        let mut reference = streams.clone();
        let mut lanes = Lanes::load(&streams);
        for _ in 0..100 {
            let x = lanes.next_words();
            for (j, r) in reference.iter_mut().enumerate() {
                assert_eq!(x[j], r.next_u64());
            }
        }
        lanes.store(&mut streams);
        assert_eq!(streams, reference);
    }

    /// `ln` against the standard library's logarithm over many binades, to within 1 ulp.
    #[test]
    fn ln_is_within_one_ulp() {
        let mut rng = stream(1, 2, Purpose::Dynamics);
        let mut worst = 0.0f64;
        for i in 0..1_000_000 {
            let x = match i {
                0 => 1.0,
                1 => f64::MIN_POSITIVE,
                2 => f64::MAX,
                3 => 2f64.sqrt(),
                _ => {
                    let e = (rng.next_u64() % 200) as i32 - 100;
                    uniform_open(rng.next_u64()) * 2f64.powi(e)
                }
            };
            let (got, want) = (ln(x), x.ln());
            let ulp = if want == 0.0 {
                f64::MIN_POSITIVE
            } else {
                f64::from_bits(want.abs().to_bits() + 1) - want.abs()
            };
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
    }

    /// The quantile inverts the normal distribution function: `Phi(normal(u)) = u` to a
    /// relative 1e-13 of the smaller tail probability, `Phi` by libm's erfc, across the range
    /// of `u` including the extreme 52-bit uniforms.
    #[test]
    fn normal_inverts_the_distribution_function() {
        let phi = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
        let mut rng = stream(4, 0, Purpose::Dynamics);
        let extremes = [
            0u64,
            1 << 12,
            u64::MAX,
            u64::MAX - (1 << 12),
            1 << 63,
            (1 << 63) - 1,
        ];
        let mut worst = 0.0f64;
        for i in 0..200_000 {
            let x = match extremes.get(i) {
                Some(&x) => x,
                // Half of the draws with many leading zeros or ones, to reach the far tails.
                None if i % 2 == 0 => rng.next_u64() >> (rng.next_u64() % 52),
                None => rng.next_u64(),
            };
            let u = uniform_open(x);
            let z = normal(x);
            let (p, got) = if u < 0.5 {
                (u, phi(z))
            } else {
                (1.0 - u, phi(-z))
            };
            worst = worst.max((got - p).abs() / p);
        }
        assert!(worst < 1e-13, "worst relative error {worst}");
        // Antisymmetric and beyond 8 standard deviations at the ends.
        assert_eq!(normal(0), -normal(u64::MAX));
        assert!(normal(0) < -8.2 && normal(0) > -8.3, "{}", normal(0));
    }

    /// Moments and the Kolmogorov-Smirnov statistic of 10^6 draws against N(0, 1).
    #[test]
    fn normal_matches_the_standard_normal() {
        let phi = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
        let mut rng = stream(9, 1, Purpose::Dynamics);
        let n = 1_000_000;
        let mut z: Vec<f64> = (0..n).map(|_| normal(rng.next_u64())).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = z.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        // Standard errors: 1e-3 for the mean, 1.4e-3 for the variance, 5e-3 for the kurtosis.
        assert!(mean.abs() < 5e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 7e-3, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.025, "kurtosis {kurt}");
        z.sort_by(f64::total_cmp);
        let d = z
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = phi(x);
                (f - i as f64 / n as f64).max((i + 1) as f64 / n as f64 - f)
            })
            .fold(0.0f64, f64::max);
        // sqrt(n) D exceeds 1.95 with probability 0.001 (Kolmogorov's distribution).
        assert!(d * (n as f64).sqrt() < 1.95, "KS statistic {d}");
    }

    #[test]
    fn small_integers_convert_exactly() {
        for k in [-1_100i64, -1, 0, 1, 2, 7, 1023, 1 << 30] {
            assert_eq!(small_to_f64(k), k as f64);
        }
        assert_eq!(uniform_open(0), 0.5 / TWO52);
        assert_eq!(uniform_open(u64::MAX), 1.0 - 0.5 / TWO52);
    }
}
