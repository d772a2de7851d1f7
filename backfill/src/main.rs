//! `backfill`: parse the command line, set up logging, run the library, map the outcome to an
//! exit code (0 ok, 1 error, 2 usage error (clap), 3 verify found differences, 101 a panic:
//! `cluster::telemetry::exit_on_panic`).

use anyhow::Result;
use backfill::cli::{run, Cli, Outcome};
use clap::Parser;
use std::process::ExitCode;

/// mimalloc: decoding, rewriting and encoding allocate many small, short-lived values per
/// document; glibc's allocator spent ~40 % of the indexer's CPU on them (perf, dev/bench.sh).
/// Set up in `cluster::alloc`.
#[global_allocator]
static ALLOCATOR: cluster::alloc::MiMalloc = cluster::alloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<ExitCode> {
    cluster::alloc::tune();
    let cli = Cli::parse();
    cluster::telemetry::init_logging(cli.log_format);
    cluster::telemetry::exit_on_panic();
    Ok(match run(cli).await? {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Diverged => ExitCode::from(3),
    })
}
