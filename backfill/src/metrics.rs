//! Prometheus metrics. The exporter is installed by the binary only (a process has one global
//! recorder; the library and tests just emit to whatever recorder is installed, or none).
//!
//! Names: `cutover_backfill_docs_scanned_total` (read from legacy),
//! `cutover_backfill_docs_total{outcome}` (`applied`, `superseded`, `poison`: what became of
//! each document written), `cutover_backfill_slice_scanned{slice}` and
//! `cutover_backfill_slice_done{slice}` (per-slice progress),
//! `cutover_backfill_slices_in_progress` (0: the worker only waits for the job's others), and
//! `cutover_backfill_context_recoveries_total`, and the run's `cutover_backfill_docs_expected`,
//! `cutover_backfill_start_time_seconds` and `cutover_backfill_target_gc_deletes_seconds`
//! (how long the target remembers deletes); the shared writer and retry policy add
//! `cutover_bulk_*` and `cutover_retries_total{what}`. No rate gauges: `rate()` does that.

use std::net::SocketAddr;

/// Counter of documents read from the legacy index.
pub const SCANNED: &str = "cutover_backfill_docs_scanned_total";
/// Counter of documents written, by `outcome`: `applied`, `superseded` (answered 409: a newer
/// version was already there), `poison` (not copied: see the failures file).
pub const DOCS: &str = "cutover_backfill_docs_total";
/// Gauge of documents scanned per slice in this run.
pub const SLICE_SCANNED: &str = "cutover_backfill_slice_scanned";
/// Gauge: 1 when the slice has been read to its end.
pub const SLICE_DONE: &str = "cutover_backfill_slice_done";
/// Gauge of the slices this worker is copying now: 0 while it only waits for the job's other
/// workers (its slices done, or none assigned).
pub const SLICES_IN_PROGRESS: &str = "cutover_backfill_slices_in_progress";
/// Counter of new search contexts opened after a lost context or a scroll failure.
pub const CONTEXT_RECOVERIES: &str = "cutover_backfill_context_recoveries_total";
/// Gauge of the documents this run expects to scan (the progress ETA's total).
pub const EXPECTED: &str = "cutover_backfill_docs_expected";
/// Gauge: when this run started, in seconds since the Unix epoch.
pub const START_TIME: &str = "cutover_backfill_start_time_seconds";
/// Gauge: the target index's `index.gc_deletes` when this run started, in seconds.
pub const TARGET_GC_DELETES: &str = "cutover_backfill_target_gc_deletes_seconds";

/// Records a run's start: now, the target's `gc_deletes` (from its definition; a stale copy
/// written later than that after a delete would resurrect the document) and the documents
/// expected, when counted.
pub fn run_started(target_definition: &serde_json::Value, expected: Option<u64>) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(START_TIME).set(now);
    metrics::gauge!(SLICES_IN_PROGRESS).set(0.0);
    if let Some(ms) = schema::gc_deletes_ms(target_definition) {
        metrics::gauge!(TARGET_GC_DELETES).set(ms as f64 / 1000.0);
    }
    if let Some(n) = expected {
        metrics::gauge!(EXPECTED).set(n as f64);
    }
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the Prometheus exporter on {addr}: {reason}")]
pub struct MetricsError {
    pub addr: SocketAddr,
    pub reason: String,
}

/// Installs the global recorder and serves `/metrics` on `addr` (must run inside a tokio
/// runtime).
/// Every metric carries the `worker` label (the job's worker id).
pub fn install_exporter(addr: SocketAddr, worker: &str) -> Result<(), MetricsError> {
    runtime::telemetry::prometheus_builder()
        .and_then(|b| b.with_http_listener(addr).add_global_label("worker", worker).install())
        .map_err(|e| MetricsError { addr, reason: e.to_string() })?;
    runtime::telemetry::describe_metrics();
    Ok(())
}
