//! Neuron models: parameters validated from the configuration and the per-step update of a
//! population's state, stored as struct-of-arrays.

pub mod extra;
pub mod labels;
pub mod lanes;
pub mod lif;
pub mod neuron;
pub mod poisson;
pub mod vary;
