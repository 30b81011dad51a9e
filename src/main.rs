//! The command line: parses arguments, starts MPI for `run`, calls the library, and decides
//! exit codes (one place: [`report`]).

use clap::Parser;
use lapicque::cli::{Cli, Command};
use lapicque::comm::MpiComm;
use signal_hook::consts::{SIGTERM, SIGUSR1};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn report(result: Result<(), lapicque::Error>, speaks: bool) -> u8 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            if speaks {
                // A stop on a signal is an outcome the user asked for, not an error.
                let kind = if matches!(
                    e,
                    lapicque::Error::Stopped { .. } | lapicque::Error::StoppedEmulated { .. }
                ) {
                    ""
                } else {
                    "error: "
                };
                eprintln!("lapicque: {kind}{}", e.to_string().replace('\n', " "));
            }
            e.exit_code()
        }
    }
}

/// Ends a rank whose run failed (or stopped on a signal) with `code`, finalising MPI under a
/// watchdog: a rank that never arrives (it died, or waits elsewhere) must not keep this one
/// waiting forever.
fn leave(code: u8, universe: mpi::environment::Universe) -> ExitCode {
    let _guard = lapicque::watchdog::arm(code);
    lapicque::h5::abandon_hdf5();
    drop(universe);
    ExitCode::from(code)
}

/// A panic (a bug) on one rank must not leave the other ranks waiting in a collective forever,
/// nor the rank itself, whose unwinding closes HDF5 files collectively: after the usual panic
/// message the whole job is aborted (`MPI_Abort`, exit code 101). Installed once MPI is
/// initialised.
fn abort_job_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("lapicque: error: internal error (a bug: please report it); aborting every rank");
        // SAFETY: MPI is initialised (the hook is set after `mpi::initialize`) and not yet
        // finalised (the universe lives until `main` returns); MPI_Abort does not return.
        unsafe {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 101);
        }
    }));
}

/// Prints a report to stdout; a reader that has gone (`lapicque inspect F | head`) is not an
/// error.
fn print(text: String) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let Some(universe) = mpi::initialize() else {
                eprintln!("lapicque: error: MPI could not be initialised");
                return ExitCode::from(1);
            };
            abort_job_on_panic();
            let comm = MpiComm::new(universe.world());
            // SIGUSR1 (what Slurm's `--signal` sends before the time limit) and SIGTERM
            // (preemption, `scancel`, the time limit itself) ask for a checkpoint and a clean
            // stop. Repeated signals change nothing: at its time limit Slurm sends SIGTERM twice
            // in a few milliseconds, and follows with SIGKILL after its KillWait anyway.
            let stop = Arc::new(AtomicBool::new(false));
            let registered = signal_hook::flag::register(SIGTERM, Arc::clone(&stop))
                .and_then(|_| signal_hook::flag::register(SIGUSR1, Arc::clone(&stop)));
            if let Err(e) = registered {
                eprintln!("lapicque: error: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
            let result = lapicque::app::run(&args, &comm, &stop);
            match report(result, lapicque::comm::Comm::rank(&comm) == 0) {
                0 => ExitCode::SUCCESS,
                code => {
                    drop(comm);
                    leave(code, universe)
                }
            }
        }
        Command::Edges(args) => {
            let Some(universe) = mpi::initialize() else {
                eprintln!("lapicque: error: MPI could not be initialised");
                return ExitCode::from(1);
            };
            abort_job_on_panic();
            let comm = MpiComm::new(universe.world());
            let result = lapicque::app::edges(&args, &comm);
            match report(result, lapicque::comm::Comm::rank(&comm) == 0) {
                0 => ExitCode::SUCCESS,
                code => {
                    drop(comm);
                    leave(code, universe)
                }
            }
        }
        Command::Check(args) => {
            ExitCode::from(report(lapicque::app::check(&args).map(print), true))
        }
        Command::Inspect(args) => ExitCode::from(report(
            lapicque::inspect::inspect(&args.file).map(print),
            true,
        )),
        Command::Meanfield(args) => {
            ExitCode::from(report(lapicque::app::meanfield(&args).map(print), true))
        }
        Command::Compare(args) => ExitCode::from(report(
            lapicque::compare::compare_files(&args.a, &args.b, args.from, args.output.as_deref())
                .map(print),
            true,
        )),
    }
}
