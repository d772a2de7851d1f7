//! `indexer`: parses the configuration, sets up logs and metrics, and runs the library until
//! SIGTERM/SIGINT.

use clap::Parser;
use indexer::config::IndexerConfig;
use tokio_util::sync::CancellationToken;

/// mimalloc: decoding, rewriting and encoding allocate many small, short-lived values per
/// document; glibc's allocator spent ~40 % of the indexer's CPU on them (perf, dev/bench.sh).
/// Set up in `runtime::alloc`.
#[global_allocator]
static ALLOCATOR: runtime::alloc::MiMalloc = runtime::alloc::MiMalloc;

#[tokio::main]
async fn main() {
    runtime::alloc::tune();
    let cfg = IndexerConfig::parse();
    runtime::init_logging(cfg.ops.log_format);
    runtime::panic::exit_on_panic();
    let prometheus = match indexer::http::recorder() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cannot install the metrics recorder: {e}");
            std::process::exit(1);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    if let Err(e) = indexer::run(cfg, prometheus, shutdown).await {
        tracing::error!("{e}");
        std::process::exit(e.exit_code());
    }
}

/// Fires `token` on SIGTERM or SIGINT.
async fn signals(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    token.cancel();
}
