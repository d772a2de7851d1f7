//! The HTTP endpoint: `/metrics` for Prometheus, `/ready` for the cut-over gate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::readiness::Readiness;

/// Installs the global Prometheus recorder (buckets shared with the backfill).
pub fn recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = runtime::telemetry::prometheus_builder()?.install_recorder()?;
    runtime::telemetry::describe_metrics();
    Ok(handle)
}

#[derive(Clone)]
struct AppState {
    prometheus: PrometheusHandle,
    readiness: Arc<Readiness>,
}

/// Binds `addr` and serves until `stop`. Binding errors are returned (a port in use is a
/// configuration error the user must see at start).
pub async fn serve(
    addr: SocketAddr,
    prometheus: PrometheusHandle,
    readiness: Arc<Readiness>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .route("/health", get(|| async { "ok" }))
        .with_state(AppState { prometheus, readiness });
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    }))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    s.prometheus.render()
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let snap = s.readiness.snapshot();
    let code = if snap.caught_up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(snap))
}
