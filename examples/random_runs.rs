//! Floor for delivery at many ranks: the time per event of counting arrivals from runs that lie
//! at random places of a large synapse table, as a rank of a 1,024-rank job sees them (each
//! received spike has a few local targets, its run anywhere in gigabytes of table).
//!
//!     cargo run --release --example random_runs -- EVENTS TARGETS SYNAPSES RUN LOOKUPS
//!
//! The table holds SYNAPSES 4-byte targets among TARGETS neurons (on transparent huge pages, as
//! lapicque's tables), each spike's run is RUN targets at a random place, and the spikes are
//! handled in a pipeline that prefetches sixteen spikes ahead. LOOKUPS = 0: the run's position
//! is known (as if the sender had written it into the message); 1: it is read first from a
//! dense array of 4-byte starts of one per source (SYNAPSES / RUN sources), one more cache
//! miss per spike, as a one-line index costs. lapicque's own index reads a block and a start.
//!
//! Prints one line of JSON: {"events": .., "seconds": .., "ns_per_event": .., "ns_per_spike": ..}.

use lapicque::connectivity::prefetch;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Instant;

fn arg(i: usize, name: &str) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({name}) must be a non-negative integer"))
}

const AHEAD: usize = 16;

fn main() {
    let (events, targets, synapses, run, lookups) = (
        arg(1, "EVENTS"),
        arg(2, "TARGETS") as usize,
        arg(3, "SYNAPSES") as usize,
        arg(4, "RUN") as usize,
        arg(5, "LOOKUPS"),
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut table: Vec<u32> = lapicque::memory::huge(vec![0; synapses]);
    for t in table.iter_mut() {
        *t = rng.random_range(0..targets as u32);
    }
    let sources = synapses / run;
    let starts: Vec<u32> = if lookups > 0 {
        let mut s = lapicque::memory::huge(vec![0u32; sources]);
        for (i, x) in s.iter_mut().enumerate() {
            *x = (i * run) as u32;
        }
        s
    } else {
        Vec::new()
    };
    let spikes = (events as usize).div_ceil(run);
    let mut sources_of: Vec<u32> = (0..spikes)
        .map(|_| rng.random_range(0..sources as u32))
        .collect();
    if let Some(group) = std::env::args()
        .nth(6)
        .and_then(|a| a.parse::<usize>().ok())
    {
        for g in sources_of.chunks_mut(group) {
            g.sort_unstable();
        }
    }
    let mut counts = vec![0u32; targets];
    let t = Instant::now();
    if lookups == 0 {
        let at = |k: usize| sources_of[k] as usize * run;
        for k in 0..spikes {
            if k + AHEAD < spikes {
                prefetch(table.as_ptr().wrapping_add(at(k + AHEAD)));
            }
            for &x in &table[at(k)..at(k) + run] {
                counts[x as usize] += 1;
            }
        }
    } else {
        let mut pos = vec![0usize; spikes];
        for k in 0..spikes + AHEAD {
            if k + 2 * AHEAD < spikes {
                prefetch(
                    starts
                        .as_ptr()
                        .wrapping_add(sources_of[k + 2 * AHEAD] as usize),
                );
            }
            if k + AHEAD < spikes {
                let p = starts[sources_of[k + AHEAD] as usize] as usize;
                pos[k + AHEAD] = p;
                prefetch(table.as_ptr().wrapping_add(p));
            }
            if k < spikes {
                for &x in &table[pos[k]..pos[k] + run] {
                    counts[x as usize] += 1;
                }
            }
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    assert_eq!(total, (spikes * run) as u64);
    let n = (spikes * run) as f64;
    println!(
        "{{\"events\": {}, \"seconds\": {seconds:.6}, \"ns_per_event\": {:.4}, \"ns_per_spike\": {:.3}}}",
        spikes * run,
        seconds * 1e9 / n,
        seconds * 1e9 / spikes as f64
    );
}
