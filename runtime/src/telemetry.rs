//! The one metrics set-up of both binaries: the Prometheus recorder, with the same histogram
//! buckets in both, and every metric's HELP text, described once.

/// The Prometheus recorder of both binaries. Latencies and batch sizes are histograms with
/// fixed buckets (not summaries), so Prometheus can aggregate them across processes. Every
/// metric is named `cutover_<binary or shared part>_...`, outcomes are labels (docs/indexer.md: Metrics).
pub fn prometheus_builder() -> Result<metrics_exporter_prometheus::PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("cutover_bulk_latency_seconds".into()), &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])?
        .set_buckets_for_metric(Matcher::Full("cutover_bulk_batch_size".into()), &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0])
}

/// Every metric of both binaries, with its HELP text (the unit is in the text and, for
/// seconds and bytes, in the name). Described once, here, so that `/metrics` explains every
/// series a dashboard or an alert reads (docs/indexer.md: Metrics).
pub const METRICS: &[(&str, &str)] = &[
    ("cutover_indexer_consumed_total", "Records fetched from the command topic."),
    (
        "cutover_indexer_records_total",
        "Records by what became of them: outcome=applied, superseded (a newer version was there), noop, poison (dead-lettered, with kind).",
    ),
    ("cutover_indexer_lag", "Records of the partition not yet applied by the group (high watermark minus the next offset to apply)."),
    (
        "cutover_indexer_caught_up",
        "1 when every partition is at lag 0 with nothing in flight, else 0; /ready opens only if cutover_indexer_target_bulk_load is also 0.",
    ),
    (
        "cutover_indexer_target_bulk_load",
        "Target indices the readiness gate last found with periodic refresh off (backfill copy's bulk-load settings: run backfill finalize) or could not read; re-read while the lag is 0.",
    ),
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
    ("cutover_backfill_docs_total", "Documents copied, by outcome: applied, superseded (a newer version was there), poison (listed in the failures file)."),
    ("cutover_backfill_slice_scanned", "Documents scanned per slice in this run."),
    ("cutover_backfill_slice_done", "1 when the slice has been read to its end, else 0."),
    ("cutover_backfill_slices_in_progress", "Slices this worker is copying now; 0 while it only waits for the job's other workers."),
    ("cutover_backfill_context_recoveries_total", "Search contexts (PIT or scroll) reopened after one was lost."),
    (
        "cutover_backfill_docs_expected",
        "Documents this run expects to scan: the legacy index's count at the start times the share of slices assigned (the progress ETA's total).",
    ),
    ("cutover_backfill_start_time_seconds", "When this copy run started, in seconds since the Unix epoch: its scan reads the legacy index as of about then."),
    (
        "cutover_backfill_target_gc_deletes_seconds",
        "The target index's index.gc_deletes when this run started, in seconds: a copy still writing that long after a delete could resurrect the document.",
    ),
    ("cutover_backfill_breaker_trips_total", "Poison breaker trips: documents failed systematically (the copy stops with exit 5)."),
    ("cutover_bulk_items_total", "Bulk items by outcome: applied, superseded, poison, or the class of a failure: retry, halt, split (both writers)."),
    ("cutover_bulk_in_flight", "Bulk requests in flight."),
    ("cutover_bulk_latency_seconds", "Bulk request latency, in seconds."),
    ("cutover_bulk_batch_size", "Items per bulk request."),
    ("cutover_retries_total", "Retry rounds of the one retry policy, by what was retried (bulk, mget, dead_letter, scan, verify_mget, request: a control-plane call)."),
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
}
