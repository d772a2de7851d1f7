//! `backfill`: parse the command line, set up logging, run the library, map the outcome to an
//! exit code (0 ok, 1 error, 2 usage error (clap), 3 verify found differences).

use anyhow::Result;
use backfill::cli::{run, Cli, Outcome};
use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(match run(cli).await? {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Diverged => ExitCode::from(3),
    })
}
