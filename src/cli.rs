//! Command-line interface (definitions only).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "lapicque", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LAPICQUE_GIT_COMMIT"), ")"))]
#[command(
    about = "Distributed simulator of noisy integrate-and-fire networks and their mean-field limits"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a simulation (under `mpirun -n R` or `srun` for R ranks).
    Run(RunArgs),
    /// Validate a configuration and print the resolved network without running.
    Check(CheckArgs),
    /// Print a summary of an output file.
    Inspect(InspectArgs),
    /// Distances between two output files' rates and empirical measures of V over time.
    Compare(CompareArgs),
    /// Solve the mean-field limit of a configuration and write it in the layout of a run.
    Meanfield(MeanfieldArgs),
    /// Build the network of a configuration (under mpirun, on any number of ranks) and write
    /// its synapses as a SONATA edges file, which `rule = "file"` reads back.
    Edges(EdgesArgs),
}

#[derive(Args, Debug)]
pub struct EdgesArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Edges file (HDF5, SONATA layout).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace the file if it exists (it is replaced only when the new one is complete).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct MeanfieldArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output file (HDF5); default: `output.path` of the configuration with `.h5` replaced by
    /// `.meanfield.h5`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the balance equations' solution (balance voltages of chemical coupling, balance
    /// rates of LIF networks) instead of solving and writing the limit.
    #[arg(long)]
    pub balance: bool,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Configuration file (TOML).
    pub config: PathBuf,
    /// Override a key, e.g. `--set simulation.t_stop=200` or `--set population.E.size=800`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Let `--set` define populations, projections, aggregate terms and tree observables the
    /// configuration does not have (without it, such a `--set` is an error, so that a misspelt
    /// name does not become a new population).
    #[arg(long)]
    pub create: bool,
}

impl ConfigArgs {
    /// The configuration `text` (of the file `config`) with this command line's overrides,
    /// validated; relative paths in it are relative to the file's directory.
    pub fn apply(&self, text: &str) -> Result<crate::config::Config, crate::error::ConfigError> {
        let dir = self.config.parent().unwrap_or(std::path::Path::new(""));
        crate::config::Config::from_file_text(text, &self.set, self.create, dir)
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the resolved configuration (every key, defaults filled in) as TOML instead.
    #[arg(long)]
    pub resolved: bool,
    /// Estimate the memory of one rank of a run on this many ranks.
    #[arg(long, default_value_t = 1, value_name = "P")]
    pub ranks: usize,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output file (HDF5); default: `output.path` of the configuration.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists (it is replaced only when the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Continue from this checkpoint (written by a run of the same configuration, on any
    /// number of ranks); the output is identical to that of an uninterrupted run.
    #[arg(long, value_name = "CHECKPOINT")]
    pub restart: Option<PathBuf>,
    /// Emulate one rank of a job on P ranks, in this one process: build and simulate exactly
    /// that rank's share, with the other ranks' spikes made up at the model's rates (or
    /// replayed), to measure one rank's memory and time per phase of a large job.
    #[arg(long, value_name = "P")]
    pub emulate_ranks: Option<usize>,
    /// The rank to emulate, 0 to P - 1 (default 0).
    #[arg(long, value_name = "R", requires = "emulate_ranks")]
    pub as_rank: Option<usize>,
    /// Replay the other ranks' spikes from this output of a real run of the same
    /// configuration, step by step (default: made up at the model's rates).
    #[arg(long, value_name = "OUTPUT", requires = "emulate_ranks")]
    pub emulate_replay: Option<PathBuf>,
    /// The rates of the other ranks' made-up spikes, per population, as `E=8.5,I=12` in Hz
    /// (default: the limit's stationary rates of a threshold-LIF network, else the emulated
    /// rank's own).
    #[arg(
        long,
        value_name = "POP=HZ,...",
        requires = "emulate_ranks",
        conflicts_with = "emulate_replay"
    )]
    pub emulate_rates: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Output file of `lapicque run` or `lapicque meanfield`.
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Output file A (a run, or a mean-field solution in the same layout).
    pub a: PathBuf,
    /// Output file B, with the same populations (sizes, seeds and durations may differ).
    pub b: PathBuf,
    /// Compare only times at or after this one, in ms (also the start of the time averages).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub from: f64,
    /// Write the series to this CSV file (subject,quantity,time_ms,value).
    #[arg(short, long, value_name = "RESULT.csv")]
    pub output: Option<PathBuf>,
}
