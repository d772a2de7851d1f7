//! The one logging set-up of both binaries: `tracing` to stderr, levels from `RUST_LOG`
//! (default `info`, librdkafka's own chatter at `warn`), text or JSON lines.

/// Log line format on stderr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global `tracing` subscriber. Call once, first thing in `main`.
///
/// A log line that cannot be written (stderr a pipe whose reader went away: a log shipper
/// restarted, `indexer 2>&1 | tee` with `tee` killed) is dropped. By default the subscriber
/// reports such a failure with `eprintln!`, which panics on the same broken stderr: the
/// indexer died (exit 101) or, with the panic unwinding through the runtime while the Kafka
/// consumer was dropped, hung at exit. Writing the data matters; writing the log does not.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rdkafka=warn".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).log_internal_errors(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
