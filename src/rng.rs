//! Random streams keyed by `(seed, gid, purpose)`: the rank-invariance contract.
//!
//! Every random number lapicque draws comes from a stream that belongs to one neuron (its global
//! id) and one purpose. Nothing depends on which rank owns the neuron or on how many ranks there
//! are, so the network and every trajectory are the same for any decomposition.
//!
//! A stream is a Xoshiro256++ generator whose 256-bit state is filled by SplitMix64 from a 64-bit
//! key; the key mixes seed, gid and purpose through SplitMix64's finaliser, one word at a time.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The generator used for every stream.
pub type Stream = Xoshiro256PlusPlus;

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
pub fn state_words(s: &Stream) -> [u64; 4] {
    let bytes = s.state();
    std::array::from_fn(|i| {
        u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"))
    })
}

/// The stream at the position [`state_words`] returned.
pub fn from_state_words(words: [u64; 4]) -> Stream {
    let mut bytes = [0u8; 32];
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    Stream::from_seed(bytes)
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
