//! Prometheus metrics. The exporter is installed by the binary only (a process has one global
//! recorder; the library and tests just emit to whatever recorder is installed, or none).
//!
//! Names (all prefixed `backfill_`): `docs_scanned_total`, `docs_written_total`,
//! `docs_superseded_total`, `docs_failed_total` (counters), `docs_per_second` (gauge, over the
//! last reporting interval), `slice_scanned{slice}` and `slice_done{slice}` (gauges: per-slice
//! progress), `context_recoveries_total` (lost PIT/scroll contexts recovered from); the shared
//! writer adds `cutover_bulk_*`.

use std::net::SocketAddr;

/// Counter of documents read from the legacy index.
pub const SCANNED: &str = "backfill_docs_scanned_total";
/// Counter of documents written (applied) to the target.
pub const WRITTEN: &str = "backfill_docs_written_total";
/// Counter of writes answered 409 (a newer version was already there).
pub const SUPERSEDED: &str = "backfill_docs_superseded_total";
/// Counter of documents not copied (see the failures file).
pub const FAILED: &str = "backfill_docs_failed_total";
/// Gauge of scanned documents per second over the last interval.
pub const RATE: &str = "backfill_docs_per_second";
/// Gauge of documents scanned per slice in this run.
pub const SLICE_SCANNED: &str = "backfill_slice_scanned";
/// Gauge: 1 when the slice has been read to its end.
pub const SLICE_DONE: &str = "backfill_slice_done";

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
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| MetricsError { addr, reason: e.to_string() })
}
