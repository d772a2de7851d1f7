//! `backfill`: parse the command line, set up logging, run the library, map the outcome to an
//! exit code (0 ok, 1 error, 2 usage error (clap), 3 verify found differences (or cutover-check said no go), 4 copy finished
//! but documents failed (listed in the failures file), 5 copy stopped by the poison breaker,
//! 101 a panic: `runtime::panic::exit_on_panic`).

use backfill::cli::{run, Cli};
use clap::Parser;
use std::process::ExitCode;

/// mimalloc: decoding, rewriting and encoding allocate many small, short-lived values per
/// document; glibc's allocator spent ~40 % of the indexer's CPU on them (perf, dev/bench.sh).
/// Set up in `runtime::alloc`.
#[global_allocator]
static ALLOCATOR: runtime::alloc::MiMalloc = runtime::alloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    runtime::alloc::tune();
    let cli = Cli::parse();
    runtime::init_logging(cli.log_format);
    runtime::panic::exit_on_panic();
    match run(cli).await {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
