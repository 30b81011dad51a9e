//! Tree-indexed observables (Jabin and Zhou) and the weighted pair histogram, computed exactly
//! and distributed across ranks.

use crate::comm::Comm;
use crate::config::Config;
use crate::connectivity::Connectivity;
use crate::output::RawWrites;
use hdf5::{File, Group};
use std::ops::Range;

/// Samples and holds the series of every configured tree observable and pair histogram.
pub struct TreeRecorder {}

impl TreeRecorder {
    pub fn new(_config: &Config, _local: Range<u64>) -> Self {
        TreeRecorder {}
    }

    /// Whether anything is sampled at step boundary `b` (the same answer on every rank).
    pub fn fires(&self, _b: u64) -> bool {
        false
    }

    /// Samples at boundary `b` (a collective: every rank calls it at the same boundaries).
    /// `v`: the potentials of the local neurons; `fired`: the local gids that spiked in the
    /// step ending at `b`, ascending.
    pub fn sample(
        &mut self,
        _b: u64,
        _v: &[f64],
        _fired: &[u32],
        _conn: &Connectivity,
        _comm: &dyn Comm,
    ) {
    }

    /// Writes the series into the output file (collective).
    pub(crate) fn write(
        &self,
        _file: &File,
        _config: &Config,
        _comm: &dyn Comm,
        _w: &mut RawWrites,
    ) -> hdf5::Result<()> {
        Ok(())
    }

    /// Saves the series so far into a checkpoint group (collective).
    pub(crate) fn save(&self, _group: &Group, _w: &mut RawWrites) -> hdf5::Result<()> {
        Ok(())
    }

    /// Restores the series from [`TreeRecorder::save`].
    pub fn restore(&mut self, _group: &Group) -> hdf5::Result<()> {
        Ok(())
    }
}
