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

/// Exit code of a process that panicked: Rust's own, which scripts already know.
pub const PANIC_EXIT: i32 = 101;

/// Makes a panic on any thread end the process at once with [`PANIC_EXIT`], after logging it
/// as an error event (with a backtrace when `RUST_BACKTRACE` asks for one). Call it right after
/// [`init_logging`].
///
/// A panic is a bug, and tokio keeps a panicked task's panic in its `JoinHandle`: left alone,
/// a lane that panicked holds its records (nothing committed past them) and the indexer stops
/// only when the consumer next has records for that lane, then exits 0 as if it had stopped
/// cleanly; a panic unwinding `main` waits for the consumer's thread and librdkafka's close,
/// which can hang. Exiting is safe where waiting is not: committed offsets and checkpoints only
/// ever pass what was written, so a restart redoes what was in flight, as after kill -9.
pub fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured).then(|| backtrace.to_string());
        let thread = std::thread::current();
        tracing::error!(
            panic = %info,
            thread = thread.name().unwrap_or("unnamed"),
            backtrace = backtrace.as_deref().unwrap_or("RUST_BACKTRACE=1 to record one"),
            "panicked (a bug): exiting now; a restart resumes from what was committed"
        );
        std::process::exit(PANIC_EXIT);
    }));
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

/// Every metric of both binaries, with its HELP text (the unit is in the text and, for
/// seconds and bytes, in the name). Described once, here, so that `/metrics` explains every
/// series a dashboard or an alert reads (README: Metrics).
pub const METRICS: &[(&str, &str)] = &[
    ("cutover_indexer_consumed_total", "Records fetched from the command topic."),
    (
        "cutover_indexer_records_total",
        "Records by what became of them: outcome=applied, superseded (a newer version was there), noop, dead_lettered (with kind).",
    ),
    ("cutover_indexer_lag", "Records of the partition not yet applied by the group (high watermark minus the next offset to apply)."),
    ("cutover_indexer_caught_up", "1 when /ready says caught up (every partition at lag 0, no gap, no target in bulk-load settings), else 0."),
    ("cutover_indexer_in_flight", "Records handed to lanes and not yet resolved."),
    ("cutover_indexer_backlog_bytes", "Bytes fetched and waiting for a lane (capped at 16 MiB)."),
    ("cutover_indexer_paused", "1 while consumption is paused because a lane stayed full (the target is slow or down), else 0."),
    (
        "cutover_indexer_offset_gaps",
        "Offset gaps found and not yet acted on: records retention deleted before the group applied them (the partition stops there).",
    ),
    ("cutover_indexer_offset_gaps_accepted_total", "Offset gaps gone past under --accept-offset-gaps."),
    ("cutover_indexer_breaker_trips_total", "Poison breaker trips: records judged bad systematically (the indexer halts with exit 3)."),
    ("cutover_indexer_commit_failures_total", "Offset commits the group refused."),
    ("cutover_indexer_kafka_errors_total", "Kafka client errors, by cause (authentication, TLS, transport, ...)."),
    ("cutover_indexer_halts_total", "Halts, by cause: poison (exit 3) or cluster (exit 4)."),
    ("cutover_indexer_read_errors_total", "Merge-base _mget documents that answered an error (never read as absent), by class."),
    (
        "cutover_indexer_invariant_violations_total",
        "Commands that break the convergence model's assumptions (topic not keyed by id, versions not increasing), by kind.",
    ),
    ("cutover_backfill_docs_scanned_total", "Documents read from the legacy index."),
    ("cutover_backfill_docs_total", "Documents copied, by outcome: applied, superseded (a newer version was there), failed (listed in the failures file)."),
    ("cutover_backfill_slice_scanned", "Documents scanned per slice in this run."),
    ("cutover_backfill_slice_done", "1 when the slice has been read to its end, else 0."),
    ("cutover_backfill_context_recoveries_total", "Search contexts (PIT or scroll) reopened after one was lost."),
    ("cutover_backfill_breaker_trips_total", "Poison breaker trips: documents failed systematically (the copy stops with exit 5)."),
    ("cutover_bulk_items_total", "Bulk items by outcome: applied, superseded, retryable, halt, split, poison (both writers)."),
    ("cutover_bulk_in_flight", "Bulk requests in flight."),
    ("cutover_bulk_latency_seconds", "Bulk request latency, in seconds."),
    ("cutover_bulk_batch_size", "Items per bulk request."),
    ("cutover_retries_total", "Retry rounds of the one retry policy, by what was retried (bulk, mget, dead_letter, scan, verify_mget)."),
];

/// Describes every metric of [`METRICS`] to the installed recorder (call it once, after
/// installing one: the HELP lines of `/metrics`).
pub fn describe_metrics() {
    for &(name, help) in METRICS {
        let kind = if name.ends_with("_total") {
            0
        } else if name.ends_with("_seconds") || name.ends_with("_size") {
            2
        } else {
            1
        };
        match kind {
            0 => metrics::describe_counter!(name, help),
            1 => metrics::describe_gauge!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_described_once_with_the_naming_scheme() {
        let mut names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "no metric described twice");
        for (name, help) in METRICS {
            assert!(
                name.starts_with("cutover_indexer_")
                    || name.starts_with("cutover_backfill_")
                    || name.starts_with("cutover_bulk_")
                    || *name == "cutover_retries_total",
                "{name}"
            );
            assert!(help.ends_with('.') && help.len() > 20, "{name}: {help}");
        }
    }

    /// Set in the child processes of [`a_panic_on_any_thread_ends_the_process`]: `hooked` or
    /// `default`.
    const CHILD: &str = "CUTOVER_PANIC_TEST_CHILD";

    /// Runs that test in a process of its own (the hook is process-wide, and the process must
    /// end); returns its exit code.
    fn child_exit_code(hooked: bool) -> Option<i32> {
        crate::in_child::rerun("telemetry::tests::a_panic_on_any_thread_ends_the_process", CHILD, if hooked { "hooked" } else { "default" }).status.code()
    }

    /// A worker thread panics while the main thread would go on (here: sleep, then end well,
    /// as a process whose stalled lane nobody notices). With the hook, the process ends at the
    /// panic with [`PANIC_EXIT`]; the control (Rust's default hook) goes on and exits 0.
    #[test]
    fn a_panic_on_any_thread_ends_the_process() {
        match std::env::var(CHILD).as_deref() {
            Ok(mode) => {
                if mode == "hooked" {
                    exit_on_panic();
                }
                let worker = std::thread::spawn(|| panic!("a bug in a worker"));
                assert!(worker.join().is_err(), "the worker panicked");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(_) => {
                assert_eq!(child_exit_code(false), Some(0), "control: without the hook the process goes on past the panic");
                assert_eq!(child_exit_code(true), Some(PANIC_EXIT), "with the hook the panic ends the process");
            }
        }
    }
}
