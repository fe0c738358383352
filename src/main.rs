//! The `tokenhub` binary: parse the command line, set up logging, run.

use clap::Parser;
use tokenhub::cli::{run, Cli};

/// mimalloc instead of the system allocator: under command load glibc's malloc took about a
/// quarter of the server's CPU (profiled with `perf`, see README *Performance*).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tokenhub::telemetry::init_logging(&cli.config.log_level, cli.config.log_format != "text");
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tokenhub failed");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
