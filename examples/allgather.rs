//! The cost of the spike exchange's collective on this machine: the time of one all-gather-v
//! of `words` 32-bit words per rank, for message sizes from 0 to 2^20 words, through the same
//! `Comm` lapicque's exchange calls. `scripts/weak_scaling.py` fits latency and inverse
//! bandwidth to it (`t = alpha + beta * bytes received`).
//!
//!     mpirun -n 2 target/release/examples/allgather
//!
//! Rank 0 prints one JSON line per size: {"ranks": .., "words": .., "seconds": ..} (the median
//! of the repetitions, each timed between barriers).

use lapicque::comm::{Comm, MpiComm};
use std::time::Instant;

fn main() {
    let universe = mpi::initialize().expect("MPI initialises");
    let comm = MpiComm::new(universe.world());
    let mut out = Vec::new();
    for shift in (0..=20).step_by(2) {
        let words = if shift == 0 { 0 } else { 1usize << shift };
        let send = vec![7u32; words];
        let reps = if words > 1 << 16 { 20 } else { 200 };
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            comm.barrier();
            let t = Instant::now();
            comm.all_gather_u32(&send, &mut out);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        if comm.rank() == 0 {
            println!(
                "{{\"ranks\": {}, \"words\": {words}, \"seconds\": {:.9}}}",
                comm.size(),
                times[reps / 2]
            );
        }
    }
}
