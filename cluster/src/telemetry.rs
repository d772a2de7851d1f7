//! The one logging and metrics set-up of both binaries: `tracing` to stderr, levels from
//! `RUST_LOG` (default `info`, librdkafka's own chatter at `warn`), text or JSON lines; and
//! the Prometheus recorder, with the same histogram buckets in both.

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

/// The Prometheus recorder of both binaries. Latencies and batch sizes are histograms with
/// fixed buckets (not summaries), so Prometheus can aggregate them across processes. Every
/// metric is named `cutover_<binary or shared part>_...`, outcomes are labels (README: Metrics).
pub fn prometheus_builder() -> Result<metrics_exporter_prometheus::PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("cutover_bulk_latency_seconds".into()), &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])?
        .set_buckets_for_metric(Matcher::Full("cutover_bulk_batch_size".into()), &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0])
}
