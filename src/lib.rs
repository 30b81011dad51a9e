//! # lapicque
//!
//! A distributed simulator of large networks of noisy integrate-and-fire neurons, seen as
//! interacting particles, for studying their mean-field limit.
//!
//! ## The model
//!
//! Neuron `i` of population `p` follows, between spikes,
//!
//! ```text
//! dV_i = [f_p(V_i, w_i) + I_syn,i + I_agg,i] dt + g_p(V_i) dB_i + delta inputs
//! ```
//!
//! with a threshold, escape or no spike rule ([`model::neuron`]; plain LIF populations take the
//! fast step of [`model::lif`]), optional labels ([`model::labels`]), synapses from projections
//! between named populations ([`network`]) and aggregate input through population sums
//! ([`aggregate`]). `docs/models.md` lists every model and its integrator.
//!
//! ## Invariants
//!
//! * Every random number comes from a stream keyed by `(seed, gid, purpose)` ([`rng`]), never
//!   by rank; each rank builds only the incoming synapses of its own neurons ([`connectivity`]).
//! * Spikes are exchanged as globally sorted gid lists and delivered in a fixed order
//!   ([`exchange`]); reductions of floating-point observables are exact fixed-point sums
//!   ([`observables`]). Hence spikes, final state and outputs are bit-identical for every
//!   number of ranks.
//! * The step schedule is written down in [`simulation`].
//!
//! ## Modules
//!
//! [`config`] (TOML -> validated config), [`model`] (neuron dynamics), [`aggregate`]
//! (mean-field coupling), [`space`] (coordinates and kernels), [`stimulus`] (time-dependent
//! currents, Poisson drives and replayed spikes), [`network`] (per-target
//! synapse generation), [`sonata`] (the network as a SONATA edges file), [`partition`]
//! (gid <-> rank), [`connectivity`] (per-rank CSR tables),
//! [`comm`] (collectives, serial and MPI), [`exchange`] (the spike exchange: each rank's message,
//! its route, ring buffers and delivery), [`emulate`] (one rank of a large job in one process), [`fixed`] (exact order-free sums), [`rng`],
//! [`simulation`] (the step loop), [`state`] (what it advances and a checkpoint saves), [`observables`] (one
//! file per observable behind one interface: rates, moments, histograms, trees, pair histogram,
//! balance, statistics, snapshots, recorded neurons, spikes in bounded memory),
//! [`output`] (the HDF5 layout of a run), [`h5`] (writing HDF5 files collectively), [`inspect`], [`compare`] (distances between two outputs),
//! [`checkpoint`] (save and resume the state), [`meanfield`] (the limit equations, solved on
//! grids), [`app`] (the commands), [`cli`], [`progress`], and the fault handling: [`claim`]
//! (exclusive output paths), [`memory`] (estimates against what is available), [`watchdog`]
//! (no collective waits forever), [`error`].

pub mod aggregate;
pub mod app;
pub mod checkpoint;
pub mod claim;
pub mod cli;
pub mod comm;
pub mod compare;
pub mod config;
pub mod connectivity;
pub mod emulate;
pub mod error;
pub mod exchange;
pub mod fixed;
pub mod h5;
pub mod inspect;
pub mod meanfield;
pub mod memory;
pub mod model;
pub mod network;
pub mod observables;
pub mod output;
pub mod partition;
pub mod progress;
pub mod rng;
pub mod simulation;
pub mod sonata;
pub mod space;
pub mod spill;
pub mod state;
pub mod stimulus;
pub mod watchdog;

pub use error::Error;

/// The git commit the binary was built from (`git describe --always --dirty`).
pub const GIT_COMMIT: &str = env!("LAPICQUE_GIT_COMMIT");

/// The MPI library's own version string, on one line.
pub fn mpi_library_version() -> String {
    let s = mpi::environment::library_version()
        .unwrap_or_else(|_| "unknown".into())
        .replace('\0', "");
    s.lines()
        .next()
        .unwrap_or("unknown")
        .trim()
        .trim_end_matches(',')
        .to_string()
}
