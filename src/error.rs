//! The library's error type and the exit code each kind of error maps to.

use crate::config::ConfigError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{key} = {value}: {reason}")]
    Argument {
        key: String,
        value: String,
        reason: String,
    },
    #[error("HDF5: {0}")]
    Hdf5(#[from] hdf5::Error),
    #[error("neuron {gid} (population {population}) has a non-finite membrane potential at t = {time} ms: the dynamics diverged; check weights, drive and dt")]
    Diverged {
        gid: u64,
        population: String,
        time: f64,
    },
}

impl Error {
    /// 2 for bad input (configuration, arguments, unreadable files), 3 for a run whose
    /// dynamics diverged, 1 for failures while writing.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Read { .. } | Error::Argument { .. } => 2,
            Error::Diverged { .. } => 3,
            Error::Hdf5(_) => 1,
        }
    }
}
