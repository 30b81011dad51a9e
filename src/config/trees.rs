//! Configuration of the tree-indexed observables and the pair histogram
//! (`[observables.tree.NAME]`, `[observables.pair_histogram]`).

use super::{Population, Projection, RawObservables, Result};
use serde::{Deserialize, Serialize};

/// One tree-indexed observable as written by the user.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTree {}

/// The weighted two-vertex histogram as written by the user.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPairHistogram {}

/// The validated tree observables and pair histogram.
#[derive(Clone, Debug, Default)]
pub struct TreeObservables {}

/// Validates `observables.tree.*` and `observables.pair_histogram`.
pub fn validate(
    _obs: &RawObservables,
    _populations: &[Population],
    _projections: &[Projection],
    _dt: f64,
    _n_steps: u64,
) -> Result<TreeObservables> {
    Ok(TreeObservables {})
}
