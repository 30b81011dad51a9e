//! The state of a rank's neurons during a run (what the step loop advances and a checkpoint
//! saves and restores), and what a rank holds when the run ends.

use crate::aggregate::Aggregates;
use crate::exchange::RingBuffer;
pub use crate::model::extra::Extra;
use crate::observables::Observers;
use crate::rng::Stream;
use std::ops::Range;

/// The dynamic state of a rank's neurons: everything a checkpoint saves.
pub struct Dynamic {
    /// Membrane potential of each local neuron \[mV\].
    pub v: Vec<f64>,
    /// Remaining refractory steps of each local neuron.
    pub refractory: Vec<u32>,
    /// Each local neuron's dynamics stream.
    pub rngs: Vec<Stream>,
    /// Synaptic input scheduled for the coming steps (negative values, weight times efficacy,
    /// onto current and conductance synapses in `ring_i`).
    pub ring: RingBuffer,
    pub ring_i: Option<RingBuffer>,
    /// Every observable, spike recording included.
    pub observers: Observers,
    /// State beyond V of the general models (empty vectors where no population uses them).
    pub extra: Extra,
    pub aggregates: Aggregates,
}

/// Wall time per phase on one rank \[s\].
#[derive(Clone, Copy, Debug, Default)]
pub struct Timers {
    pub build: f64,
    pub update: f64,
    /// The spike all-gather, without the waiting below.
    pub exchange: f64,
    /// Waiting in the all-gather for slower ranks (load imbalance).
    pub wait: f64,
    pub deliver: f64,
    pub observe: f64,
    pub output: f64,
}

impl Timers {
    pub const NAMES: [&'static str; 7] = [
        "build", "update", "exchange", "wait", "deliver", "observe", "output",
    ];

    pub fn values(&self) -> [f64; 7] {
        [
            self.build,
            self.update,
            self.exchange,
            self.wait,
            self.deliver,
            self.observe,
            self.output,
        ]
    }
}

/// What one rank holds at the end of a run.
pub struct RunResult {
    /// The gids this rank owned.
    pub local: Range<u64>,
    /// Every observable, reduced.
    pub observers: Observers,
    /// Final membrane potential of each local neuron \[mV\].
    pub v: Vec<f64>,
    /// Final remaining refractory steps of each local neuron.
    pub refractory: Vec<u32>,
    /// Final state of general models (labels, recovery variable, synaptic variables).
    pub extra: Extra,
    pub n_synapses: u64,
    /// Synaptic events delivered to this rank's neurons.
    pub events: u64,
    /// Peak resident memory once the network and state are built \[bytes\].
    pub build_memory: u64,
    /// Bytes held by synapse tables, ring buffers and neuron state on this rank.
    pub bytes: u64,
    pub timers: Timers,
    /// (rank, ranks) of an emulated decomposition ([`crate::emulate`]).
    pub emulated: Option<(usize, usize)>,
}
