//! Scatter-add bound for spike delivery: the time per event of the plainest loop that adds a
//! weight into a random target of an array of potentials, with the target indices streamed
//! from memory as lapicque's synapse tables are (runs of ascending indices, one run per
//! source). `scripts/bench_brunel.py` compares lapicque's delivery time per event with it.
//!
//!     cargo run --release --example scatter_add -- EVENTS TARGETS SYNAPSES OUTDEGREE
//!
//! Prints one line of JSON: {"events": .., "seconds": .., "ns_per_event": ..}.

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Instant;

fn arg(i: usize, name: &str) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({name}) must be a positive integer"))
}

fn main() {
    let (events, targets, synapses, outdegree) = (
        arg(1, "EVENTS"),
        arg(2, "TARGETS"),
        arg(3, "SYNAPSES"),
        arg(4, "OUTDEGREE"),
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut index: Vec<u32> = (0..synapses)
        .map(|_| rng.random_range(0..targets as u32))
        .collect();
    for run in index.chunks_mut(outdegree as usize) {
        run.sort_unstable();
    }
    let mut acc = vec![0.0f64; targets as usize];
    let t = Instant::now();
    let mut done = 0u64;
    let mut start = 0usize;
    while done < events {
        // One "spike": a run of `outdegree` targets from a random place in the table.
        let len = (outdegree as usize).min((events - done) as usize);
        if start + len > index.len() {
            start = 0;
        }
        for &i in &index[start..start + len] {
            acc[i as usize] += 0.1;
        }
        done += len as u64;
        start += len;
    }
    let seconds = t.elapsed().as_secs_f64();
    let checksum: f64 = acc.iter().sum();
    assert!((checksum - 0.1 * events as f64).abs() < 1e-6 * events as f64);
    println!(
        "{{\"events\": {events}, \"seconds\": {seconds:.6}, \"ns_per_event\": {:.4}}}",
        seconds * 1e9 / events as f64
    );
}
