//! The mean-field side: the limit equations of a configuration, solved on grids and written in
//! the layout of a particle run (docs/meanfield.md).
//!
//! * [`balanced`]: the balanced kinetic limit (MacLaurin-Vilanova) of `poisson` and `current`
//!   aggregate coupling with `n^(-1/2)` scaling: balance equations and the Fokker-Planck
//!   equation of the fluctuations.
//! * [`escape`]: escape-noise integrate-and-fire populations with a kernel (Jabin-Zhou), the
//!   density `f(t, v, xi)` with the reset as a source.
//! * [`labels`]: labelled networks (D'Onofrio), the joint density of potential, label and
//!   environment with labels that feed back through efficacies and the empirical measure.
//! * [`lif`]: threshold LIF populations (Fokker-Planck with absorbing threshold and
//!   reinjection), coupled through the diffusion approximation of their input.
//! * [`mckean`]: populations without spikes coupled through electrical and chemical aggregate
//!   terms (Quiñinao-Touboul), the McKean-Vlasov density `f(t, v)` or `f(t, v, w)`.

pub mod balanced;
pub mod common;
pub mod escape;
pub mod labels;
pub mod lif;
pub mod mckean;

pub mod run;

pub use run::meanfield;
