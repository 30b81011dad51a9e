//! Which rank owns which neuron: contiguous balanced blocks of global ids. Pure data, no MPI.

use std::ops::Range;

/// A decomposition of `n` neurons over `ranks` ranks into contiguous blocks whose sizes differ
/// by at most one (the first `n % ranks` ranks get one more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    n: u64,
    ranks: u64,
}

impl Partition {
    pub fn new(n: u64, ranks: usize) -> Self {
        assert!(ranks > 0, "a partition needs at least one rank");
        Partition {
            n,
            ranks: ranks as u64,
        }
    }

    /// The global ids owned by `rank`.
    pub fn range(&self, rank: usize) -> Range<u64> {
        let r = rank as u64;
        let base = self.n / self.ranks;
        let extra = self.n % self.ranks;
        let start = r * base + r.min(extra);
        let len = base + u64::from(r < extra);
        start..start + len
    }

    /// The rank that owns global id `gid`.
    pub fn owner(&self, gid: u64) -> usize {
        let base = self.n / self.ranks;
        let extra = self.n % self.ranks;
        let big = extra * (base + 1);
        let r = if gid < big {
            gid / (base + 1)
        } else {
            extra + (gid - big) / base.max(1)
        };
        r as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_gid_once_and_are_balanced() {
        for n in [0u64, 1, 5, 12, 12_500] {
            for ranks in 1..=7 {
                let p = Partition::new(n, ranks);
                let mut next = 0;
                let mut sizes = Vec::new();
                for r in 0..ranks {
                    let range = p.range(r);
                    assert_eq!(range.start, next);
                    next = range.end;
                    sizes.push(range.end - range.start);
                    for gid in range {
                        assert_eq!(p.owner(gid), r);
                    }
                }
                assert_eq!(next, n);
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "n={n} ranks={ranks} sizes={sizes:?}");
            }
        }
    }
}
