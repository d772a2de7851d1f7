//! Prometheus metrics. The exporter is installed by the binary only (a process has one global
//! recorder; the library and tests just emit to whatever recorder is installed, or none).
//!
//! Names: `cutover_backfill_docs_scanned_total` (read from legacy),
//! `cutover_backfill_docs_total{outcome}` (`applied`, `superseded`, `failed`: what became of
//! each document written), `cutover_backfill_slice_scanned{slice}` and
//! `cutover_backfill_slice_done{slice}` (per-slice progress), and
//! `cutover_backfill_context_recoveries_total`; the shared writer and retry policy add
//! `cutover_bulk_*` and `cutover_retries_total{what}`. No rate gauges: `rate()` does that.

use std::net::SocketAddr;

/// Counter of documents read from the legacy index.
pub const SCANNED: &str = "cutover_backfill_docs_scanned_total";
/// Counter of documents written, by `outcome`: `applied`, `superseded` (answered 409: a newer
/// version was already there), `failed` (not copied: see the failures file).
pub const DOCS: &str = "cutover_backfill_docs_total";
/// Gauge of documents scanned per slice in this run.
pub const SLICE_SCANNED: &str = "cutover_backfill_slice_scanned";
/// Gauge: 1 when the slice has been read to its end.
pub const SLICE_DONE: &str = "cutover_backfill_slice_done";
/// Counter of new search contexts opened after a lost context or a scroll failure.
pub const CONTEXT_RECOVERIES: &str = "cutover_backfill_context_recoveries_total";

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the Prometheus exporter on {addr}: {reason}")]
pub struct MetricsError {
    pub addr: SocketAddr,
    pub reason: String,
}

/// Installs the global recorder and serves `/metrics` on `addr` (must run inside a tokio
/// runtime).
pub fn install_exporter(addr: SocketAddr) -> Result<(), MetricsError> {
    cluster::telemetry::prometheus_builder().and_then(|b| b.with_http_listener(addr).install()).map_err(|e| MetricsError { addr, reason: e.to_string() })?;
    cluster::telemetry::describe_metrics();
    Ok(())
}
