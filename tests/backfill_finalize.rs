//! Bulk-load settings during the copy and `backfill finalize`: the copy turns the target's
//! refresh and replicas off, the indexer's `/ready` stays closed while refresh is off (even
//! with the lag at 0), `finalize` restores the legacy index's values (or refuses, changing
//! nothing, when the target cluster could never allocate them), and `verify` reads correctly
//! while refresh is off.

mod backfill_support;

use backfill::FinalizeConfig;
use backfill_support::*;
use cutover::procs::http_get;
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use cutover::{unique, Services};
use serde_json::{json, Value};
use std::time::Duration;

const RUN: Duration = Duration::from_secs(120);

/// `(index.refresh_interval, index.number_of_replicas)` as the cluster reports them (`None`:
/// unset).
async fn settings(es: &cluster::Es, index: &str) -> (Option<String>, Option<String>) {
    let body = es.get(&format!("/{index}/_settings?flat_settings=true")).await.unwrap();
    let s = body.as_object().and_then(|o| o.values().next()).map(|v| v["settings"].clone()).unwrap_or(Value::Null);
    let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
    (text("index.refresh_interval"), text("index.number_of_replicas"))
}

/// The gate stays closed while the copy's bulk-load settings are on, although the lag is 0
/// (control); `finalize` restores the legacy index's values and the gate opens.
#[tokio::test(flavor = "multi_thread")]
async fn finalize_restores_the_legacy_settings_and_opens_the_gate() {
    let mut sc = Scenario::new("final", 2).await;
    let legacy = sc.legacy_es();
    let target = sc.target_es();
    // A legacy value finalize must restore (the default, unset, is covered by every other
    // scenario: drain_and_stop finalizes).
    legacy.ok(cluster::Method::Put, &format!("/{}/_settings", sc.legacy_index), Some(&json!({"index": {"refresh_interval": "7s"}}))).await.unwrap();
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 150, 600, 91));
    sc.live(&cmds).await;
    let indexer = sc.start_indexer("replay", &[]);
    sc.run_backfill("copy", &[]);
    assert_eq!(settings(&target, &sc.target_index).await, (Some("-1".into()), Some("0".into())), "bulk-load settings after the copy");
    let log = std::fs::read_to_string(cutover::procs::log_path(&format!("{}-copy", sc.topic))).unwrap();
    assert!(log.contains("bulk-load settings for the copy") && log.contains("index.refresh_interval"), "the copy logs what it changed:\n{log}");

    // Control: the replay is caught up (lag 0), yet the gate stays closed and names the fix.
    Scenario::eventually("replay caught up", RUN, || indexer.metric("cutover_indexer_caught_up") == Some(1.0)).await;
    Scenario::eventually("the gate names the bulk-load settings", RUN, || {
        http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains("backfill finalize"))
    })
    .await;
    let closed = http_get(indexer.metrics_port, "/ready").unwrap();
    assert!(closed.contains(" 503 ") && closed.contains("\"caught_up\":false") && closed.contains("backfill finalize"), "gate closed in bulk-load: {closed}");
    assert_eq!(settings(&target, &sc.target_index).await.0.as_deref(), Some("-1"));

    let out = sc.run_finalize();
    assert!(out.contains("index.refresh_interval: -1 -> 7s"), "finalize reports what it set: {out}");
    assert_eq!(settings(&target, &sc.target_index).await, (Some("7s".into()), Some("0".into())), "the legacy index's values");
    Scenario::eventually("gate open after finalize", Duration::from_secs(30), || {
        http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains(" 200 ") && r.contains("\"caught_up\":true"))
    })
    .await;
    // Idempotent.
    let again = sc.run_finalize();
    assert!(again.contains("index.refresh_interval: 7s -> 7s"), "{again}");
    // --no-bulk-load keeps the target's settings (the first copy, without it, is the control:
    // it turned them off). A fresh checkpoint directory: a whole second copy.
    sc.run_backfill("copy-keep", &["--no-bulk-load"]);
    assert_eq!(settings(&target, &sc.target_index).await, (Some("7s".into()), Some("0".into())), "--no-bulk-load left the settings alone");
    // create-index stays idempotent across the whole cycle.
    sc.run_create_index(&[]);
    sc.drain_and_stop(indexer).await;
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// More replicas than the target cluster can allocate (the single-node test cluster, a legacy
/// index with 1 replica): refused with the fixes named, nothing changed; `--replicas 0` and
/// `--allow-yellow` each proceed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_refuses_replicas_the_target_cannot_allocate() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-fin-src");
    let dest = unique("bf-fin-dst");
    load_legacy(&legacy, &source, &Spec { docs: 300, shards: 1, keys: 20 }).await;
    create_target(&legacy, &target, &source, &dest).await;
    let dir = scratch("finalize");
    let cfg = copy_config(&source, &dest, &dir);
    backfill::copy(&legacy, &target, cfg, tokio_util::sync::CancellationToken::new()).await.unwrap();
    assert_eq!(settings(&target, &dest).await, (Some("-1".into()), Some("0".into())));
    legacy.ok(cluster::Method::Put, &format!("/{source}/_settings"), Some(&json!({"index": {"number_of_replicas": 1}}))).await.unwrap();

    let fin = |replicas: Option<u64>, allow_yellow: bool| FinalizeConfig {
        source_index: source.clone(),
        target_index: dest.clone(),
        refresh_interval: None,
        replicas,
        allow_yellow,
        timeout: Duration::from_secs(60),
    };
    let err = backfill::finalize(&legacy, &target, &fin(None, false)).await.unwrap_err().to_string();
    assert!(err.contains("needs 2 data nodes") && err.contains("--replicas 0") && err.contains("--allow-yellow"), "{err}");
    assert_eq!(settings(&target, &dest).await, (Some("-1".into()), Some("0".into())), "a refusal changes nothing");

    let done = backfill::finalize(&legacy, &target, &fin(Some(0), false)).await.unwrap();
    assert_eq!((done.status.as_str(), done.waited_for.as_str()), ("green", "green"));
    assert_eq!(settings(&target, &dest).await, (Some("1s".into()), Some("0".into())), "legacy refresh_interval, replicas as told");

    let done = backfill::finalize(&legacy, &target, &fin(None, true)).await.unwrap();
    assert_eq!(done.waited_for, "yellow");
    assert_eq!(settings(&target, &dest).await.1.as_deref(), Some("1"), "the legacy index's replicas");

    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// While refresh is off, verify still sees every write: a document written to the target after
/// the copy's final refresh (no refresh since) is found as extra (its search view is refreshed
/// first), and once the legacy side has it too, verify is CONVERGED with refresh still off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_correctly_while_refresh_is_off() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-finv-src");
    let dest = unique("bf-finv-dst");
    load_legacy(&legacy, &source, &Spec { docs: 500, shards: 2, keys: 20 }).await;
    create_target(&legacy, &target, &source, &dest).await;
    let dir = scratch("finalize-verify");
    backfill::copy(&legacy, &target, copy_config(&source, &dest, &dir), tokio_util::sync::CancellationToken::new()).await.unwrap();
    assert_eq!(settings(&target, &dest).await.0.as_deref(), Some("-1"));

    // As the indexer writes: externally versioned, no refresh.
    let doc = json!({"title": "late", "status": "open", "n": 1, "version": 7, "actions": {"count": 1}});
    let target_doc = schema::TagRewrite::default().to_target(doc.as_object().unwrap()).unwrap();
    let body = format!("{}\n{}\n", json!({"index": {"_index": dest, "_id": "late", "version": 7, "version_type": "external"}}), Value::Object(target_doc));
    let resp = target.bulk(body.into(), false).await.unwrap();
    assert_eq!(resp["errors"], json!(false), "{resp}");
    let hits = target.ok(cluster::Method::Post, &format!("/{dest}/_search"), Some(&json!({"query": {"ids": {"values": ["late"]}}}))).await.unwrap();
    assert_eq!(hits["hits"]["hits"].as_array().map(Vec::len), Some(0), "refresh is off: searches do not see it yet");

    let mut cfg = verify_config(&source, &dest);
    cfg.settle_timeout = Duration::from_secs(1);
    let report = backfill::verify(&legacy, &target, &cfg).await.unwrap();
    assert!(!report.converged && report.extra.count == 1, "the unrefreshed target write is seen: {report:?}");

    put_legacy(&legacy, &source, "late", None, 7, &doc).await;
    let report = backfill::verify(&legacy, &target, &verify_config(&source, &dest)).await.unwrap();
    assert!(report.converged, "{report:?}");
    assert_eq!(report.legacy_docs_scanned, 501);
    assert_eq!(settings(&target, &dest).await.0.as_deref(), Some("-1"), "still in bulk-load settings");

    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}
