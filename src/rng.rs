//! Random streams keyed by `(seed, gid, purpose)`: the rank-invariance contract.
//!
//! Every random number lapicque draws comes from a stream that belongs to one neuron (its global
//! id) and one purpose. Nothing depends on which rank owns the neuron or on how many ranks there
//! are, so the network and every trajectory are the same for any decomposition.
//!
//! A stream is a Xoshiro256++ generator whose 256-bit state is filled by SplitMix64 from a 64-bit
//! key; the key mixes seed, gid and purpose through SplitMix64's finaliser, one word at a time.

use rand::rand_core::{utils, Infallible};
use rand::{SeedableRng, TryRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The generator used for every stream: Xoshiro256++ (Blackman and Vigna 2018), the same
/// numbers as `rand_xoshiro::Xoshiro256PlusPlus` from the same seed, with its four state words
/// stored in the open so that the vectorised neuron update (`model::lanes`) can load and store
/// them as plain words (the crate's type has them private, and its accessor is not inlined
/// across crates, which cost more than the whole update of a neuron).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Stream {
    pub(crate) s: [u64; 4],
}

impl Stream {
    /// The rand_xoshiro generator at the same position (for seeding through its code).
    fn from_xoshiro(x: &Xoshiro256PlusPlus) -> Stream {
        let bytes = x.state();
        Stream {
            s: std::array::from_fn(|i| {
                u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"))
            }),
        }
    }
}

impl TryRng for Stream {
    type Error = Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        Ok(out)
    }

    #[inline]
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        utils::fill_bytes_via_next_word(dst, || self.try_next_u64())
    }
}

impl SeedableRng for Stream {
    type Seed = [u8; 32];

    /// As `Xoshiro256PlusPlus::from_seed`: the words little-endian, the all-zero seed (whose
    /// stream would be all zeros) replaced by `seed_from_u64(0)`'s.
    fn from_seed(seed: [u8; 32]) -> Stream {
        Stream::from_xoshiro(&Xoshiro256PlusPlus::from_seed(seed))
    }

    /// As `Xoshiro256PlusPlus::seed_from_u64`: the words drawn from SplitMix64.
    fn seed_from_u64(seed: u64) -> Stream {
        Stream::from_xoshiro(&Xoshiro256PlusPlus::seed_from_u64(seed))
    }
}

/// What a stream is used for. Distinct purposes give statistically independent streams for the
/// same neuron, so adding a new use never shifts the numbers an existing use draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Membrane noise, Poisson input and bridge-crossing draws during the run.
    Dynamics,
    /// Initial state (membrane potential).
    Init,
    /// A randomly placed neuron's coordinate.
    Position,
    /// A neuron's random environment at the start (label rate coefficients).
    Environment,
    /// The incoming synapses of projection number `k` onto this neuron.
    Connect(u32),
    /// The neuron's value of varied parameter number `k` (`model::vary::PARAMETERS`).
    Parameter(u32),
    /// The made-up spikes of another rank in an emulated run (keyed by that rank, not a gid).
    Emulation,
}

impl Purpose {
    fn code(self) -> u64 {
        match self {
            Purpose::Dynamics => 1,
            Purpose::Init => 2,
            Purpose::Position => 3,
            Purpose::Environment => 4,
            Purpose::Emulation => 5,
            Purpose::Connect(k) => 0x1_0000_0000 | u64::from(k),
            Purpose::Parameter(k) => 0x2_0000_0000 | u64::from(k),
        }
    }
}

/// SplitMix64's output function (Steele, Lea and Flood 2014): a bijective 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64-bit key of the stream `(seed, gid, purpose)`.
pub fn key(seed: u64, gid: u64, purpose: Purpose) -> u64 {
    mix(mix(mix(seed) ^ gid) ^ purpose.code())
}

/// The stream `(seed, gid, purpose)`, positioned at its start.
pub fn stream(seed: u64, gid: u64, purpose: Purpose) -> Stream {
    Stream::seed_from_u64(key(seed, gid, purpose))
}

/// The position of a stream: its 256-bit state as four words (for checkpoints).
#[inline]
pub fn state_words(s: &Stream) -> [u64; 4] {
    s.s
}

/// The stream at the position [`state_words`] returned. The all-zero state, which no stream
/// reaches, is replaced as by `from_seed`.
#[inline]
pub fn from_state_words(words: [u64; 4]) -> Stream {
    if words == [0; 4] {
        return Stream::from_seed([0; 32]);
    }
    Stream { s: words }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |s: &mut Stream| -> Vec<u64> { (0..4).map(|_| s.random()).collect() };
        let a = draw(&mut stream(7, 3, Purpose::Dynamics));
        assert_eq!(a, draw(&mut stream(7, 3, Purpose::Dynamics)));
        assert_ne!(a, draw(&mut stream(7, 4, Purpose::Dynamics)));
        assert_ne!(a, draw(&mut stream(8, 3, Purpose::Dynamics)));
        assert_ne!(a, draw(&mut stream(7, 3, Purpose::Init)));
        assert_ne!(
            draw(&mut stream(7, 3, Purpose::Connect(0))),
            draw(&mut stream(7, 3, Purpose::Connect(1)))
        );
    }

    /// A stream rebuilt from its state words continues with the same numbers as the original.
    #[test]
    fn state_words_restore_the_position() {
        let mut a = stream(3, 9, Purpose::Dynamics);
        for _ in 0..17 {
            let _: u64 = a.random();
        }
        let mut b = from_state_words(state_words(&a));
        let (x, y): (Vec<u64>, Vec<u64>) = (0..8)
            .map(|_| (a.random::<u64>(), b.random::<u64>()))
            .unzip();
        assert_eq!(x, y);
    }

    /// The stream gives rand_xoshiro's Xoshiro256++ numbers from the same seeds, and its state
    /// words are that generator's (so checkpoints written before stay readable).
    #[test]
    fn stream_is_rand_xoshiro_s_xoshiro256plusplus() {
        use rand::Rng;
        for seed in [0u64, 1, 42, u64::MAX] {
            let mut a = Stream::seed_from_u64(seed);
            let mut b = Xoshiro256PlusPlus::seed_from_u64(seed);
            for _ in 0..1000 {
                assert_eq!(a.next_u64(), b.next_u64());
            }
            assert_eq!(a.next_u32(), b.next_u32());
            let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
            a.fill_bytes(&mut x);
            b.fill_bytes(&mut y);
            assert_eq!(x, y);
            assert_eq!(Stream::from_xoshiro(&b), a);
        }
        assert_eq!(Stream::from_seed([0; 32]), Stream::seed_from_u64(0));
        assert_eq!(from_state_words([0; 4]), Stream::seed_from_u64(0));
    }

    #[test]
    fn keys_do_not_collide_on_a_grid() {
        let mut keys: Vec<u64> = (0..64)
            .flat_map(|seed| (0..1000).map(move |gid| key(seed, gid, Purpose::Dynamics)))
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
