//! The library's error type and the exit code each kind of error maps to.

use thiserror::Error;

/// A configuration that cannot be used: a key with its value and the reason, or text that
/// does not parse.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{key} = {value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Parse(String),
}

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
    #[error("cannot compare {a} with {b}: {reason}")]
    Mismatch {
        a: String,
        b: String,
        reason: String,
    },
    #[error("{key}: no limit equation is implemented for this ({reason})")]
    NoLimit { key: String, reason: String },
    #[error("HDF5: {0}")]
    Hdf5(#[from] hdf5::Error),
    /// A file operation outside HDF5 (renaming the finished output, claiming the output path)
    /// that failed while writing.
    #[error("{doing} {path}: {reason}")]
    Io {
        doing: String,
        path: String,
        reason: String,
    },
    /// The error another rank met, as every rank learns it (see [`crate::comm::agree`]): its
    /// message and exit code, so that every rank exits with the same code.
    #[error("{message}")]
    Elsewhere { message: String, code: u8 },
    #[error("neuron {gid} (population {population}) has a non-finite membrane potential at t = {time} ms: the dynamics diverged; check weights, drive and dt")]
    Diverged {
        gid: u64,
        population: String,
        time: f64,
    },
    #[error("stopped by a signal at t = {time} ms after writing checkpoint {checkpoint}; continue with `lapicque run ... --restart {checkpoint}`")]
    Stopped { time: f64, checkpoint: String },
    #[error("stopped by a signal at t = {time} ms (an emulated run writes no checkpoint)")]
    StoppedEmulated { time: f64 },
}

impl Error {
    /// 2 for bad input (configuration, arguments, unreadable files, files that cannot be
    /// compared), 3 for a run whose dynamics diverged, 4 for a run stopped by a signal after
    /// writing a checkpoint, 1 for failures while writing.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::Read { .. }
            | Error::Argument { .. }
            | Error::Mismatch { .. }
            | Error::NoLimit { .. } => 2,
            Error::Diverged { .. } => 3,
            Error::Stopped { .. } | Error::StoppedEmulated { .. } => 4,
            Error::Hdf5(_) | Error::Io { .. } => 1,
            Error::Elsewhere { code, .. } => *code,
        }
    }
}
