use clap::Parser;
use lapicque::cli::{Cli, Command};
use lapicque::comm::MpiComm;
use std::process::ExitCode;

fn report(result: Result<(), lapicque::Error>, speaks: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if speaks {
                eprintln!("lapicque: error: {}", e.to_string().replace('\n', " "));
            }
            ExitCode::from(e.exit_code())
        }
    }
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
            let comm = MpiComm::new(universe.world());
            let result = lapicque::app::run(&args, &comm);
            report(result, lapicque::comm::Comm::rank(&comm) == 0)
        }
        Command::Check(args) => report(lapicque::app::check(&args).map(print), true),
        Command::Inspect(args) => report(lapicque::inspect::inspect(&args.file).map(print), true),
    }
}
