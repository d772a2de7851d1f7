//! A search context that disappears mid-run (the PIT or scroll deleted through the real API
//! between two pages, as an expired keep-alive or a restarted node would do) is detected and
//! recovered from: the scan reopens at its `_seq_no` floor, and the copy verifies exactly.

mod backfill_support;

use backfill::scan::{ContextRef, ScanEvent};
use backfill::ScanMethodChoice;
use backfill_support::*;
use cluster::Es;
use cutover::{unique, Services};
use elasticsearch::http::Method;
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const DOCS: usize = 12_000;

/// A hook deleting the context after pages 2 and 5 of every slice.
fn deleting_hook(es: Es) -> backfill::ScanHook {
    Arc::new(move |e: ScanEvent| {
        let es = es.clone();
        Box::pin(async move {
            if e.page != 2 && e.page != 5 {
                return;
            }
            let (path, body) = match &e.context {
                ContextRef::Pit(id) => ("/_pit", json!({"id": id})),
                ContextRef::Scroll(id) => ("/_search/scroll", json!({"scroll_id": [id]})),
            };
            let (status, resp) = es.request(Method::Delete, path, Some(&body)).await.unwrap();
            assert_eq!(status, 200, "deleting the context: {resp}");
        })
    })
}

async fn lost_context_is_recovered(method: ScanMethodChoice) {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-ctx-src");
    let dest = unique("bf-ctx-dst");
    load_legacy(&legacy, &source, &Spec { docs: DOCS, shards: 2, keys: 300 }).await;
    create_target(&legacy, &target, &source, &dest).await;
    let dir = scratch("ctx");
    let mut cfg = copy_config(&source, &dest, &dir);
    cfg.scan_method = method;
    cfg.slices = Some(3); // more slices than shards: slicing on _seq_no values
    cfg.batch_size = 500;
    cfg.on_page = Some(deleting_hook(legacy.clone()));
    let summary = backfill::copy(&legacy, &target, cfg, CancellationToken::new()).await.expect("copy survives lost contexts");
    eprintln!("{summary}");
    assert_eq!(summary.method, if method == ScanMethodChoice::Scroll { "scroll" } else { "pit" });
    assert_eq!(summary.context_recoveries, 6, "two losses per slice, each detected and recovered: {summary:?}");
    assert!(summary.scanned >= DOCS as u64, "{summary:?}");
    assert_eq!(summary.failed, 0);
    let report = backfill::verify(&legacy, &target, &verify_config(&source, &dest)).await.unwrap();
    assert!(report.converged, "{report:?}");
    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pit_mid_run_is_recovered() {
    lost_context_is_recovered(ScanMethodChoice::Pit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_scroll_mid_run_is_recovered() {
    lost_context_is_recovered(ScanMethodChoice::Scroll).await;
}
