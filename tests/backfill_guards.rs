//! What the backfill refuses to do and what it must never lose: no version source, a target
//! that is missing or forgets deletes too early, a target created with another definition;
//! poison documents (counted, logged, written to the failures file), 409s counted as
//! superseded, slices split across two workers, and the Prometheus endpoint of the binary.

mod backfill_support;

use backfill::{CopyError, IndexError};
use backfill_support::*;
use cutover::{unique, Services};
use elasticsearch::http::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const KEYS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_without_version_source_or_ready_target() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-guard-src");
    load_legacy(&legacy, &source, &Spec { docs: 50, shards: 1, keys: KEYS }).await;
    let dir = scratch("guard");

    // No version source: refused, with the reason.
    let mut cfg = copy_config(&source, "whatever", &dir);
    cfg.legacy_version = None;
    let err = backfill::copy(&legacy, &target, cfg, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, CopyError::NoVersionSource));
    assert!(err.to_string().contains("external version"), "{err}");
    let out = std::process::Command::new(backfill_bin())
        .args(["copy", "--legacy-url", &s.legacy_url, "--target-url", &s.target_url, "--source-index", &source, "--target-index", "x", "--no-metrics"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to start"), "{}", String::from_utf8_lossy(&out.stderr));

    // Target missing.
    let missing = unique("bf-guard-none");
    let err = backfill::copy(&legacy, &target, copy_config(&source, &missing, &dir), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, CopyError::Index(IndexError::TargetMissing(_))), "{err}");

    // Target whose gc_deletes is the 60 s default: deletes would be resurrected.
    let low = unique("bf-guard-low");
    let cfg = backfill::CreateIndexConfig {
        source_index: source.clone(),
        target_index: low.clone(),
        tags: Default::default(),
        gc_deletes: "60s".into(),
        extra_settings: Default::default(),
        drop_settings: Vec::new(),
        copy_pipelines: false,
    };
    assert_eq!(backfill::create_index(&legacy, &target, &cfg).await.unwrap(), backfill::CreateOutcome::Created);
    let err = backfill::copy(&legacy, &target, copy_config(&source, &low, &dir), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, CopyError::Index(IndexError::NotReady { .. })), "{err}");
    assert!(err.to_string().contains("gc_deletes"), "{err}");

    // create-index against an index with another definition: an error naming the differences.
    let cfg48 = backfill::CreateIndexConfig { gc_deletes: "48h".into(), ..cfg };
    let err = backfill::create_index(&legacy, &target, &cfg48).await.unwrap_err();
    let IndexError::DefinitionMismatch { differences, .. } = &err else { panic!("{err}") };
    assert!(differences.iter().any(|d| d.contains("gc_deletes")), "{differences:?}");
    // ... and the same through the binary (exit code non-zero, differences on stderr).
    let out = std::process::Command::new(backfill_bin())
        .args(["create-index", "--legacy-url", &s.legacy_url, "--target-url", &s.target_url, "--source-index", &source, "--target-index", &low])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different definition"), "{}", String::from_utf8_lossy(&out.stderr));

    cleanup(&legacy, &source).await;
    cleanup(&target, &low).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_documents_are_counted_logged_and_kept_and_409_is_superseded() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-poison-src");
    let dest = unique("bf-poison-dst");
    let docs = 1_000;
    load_legacy(&legacy, &source, &Spec { docs, shards: 2, keys: KEYS }).await;
    // Poison 1: no version at all.
    let mut no_version = source_of(1, KEYS);
    no_version.as_object_mut().unwrap().remove("version");
    put_legacy(&legacy, &source, "no-version", None, 7, &no_version).await;
    // Not poison: a tag value the legacy field ignores (ignore_above) and that is longer than
    // Lucene's 32 766-byte term limit; the target's tag keywords have ignore_above too, so the
    // document is kept whole.
    let mut huge = source_of(2, KEYS);
    huge["actions"]["tags"]["big"] = json!("x".repeat(40_000));
    huge["version"] = json!(9);
    put_legacy(&legacy, &source, "huge-tag", None, 9, &huge).await;
    // Poison 2: a field the target maps more strictly than the legacy cluster (a field
    // added to the target's mapping, then a legacy document the legacy mapping accepts).
    create_target(&legacy, &target, &source, &dest).await;
    target.ok(Method::Put, &format!("/{dest}/_mapping"), Some(&json!({"properties": {"conflict": {"type": "long"}}}))).await.unwrap();
    let mut conflict = source_of(3, KEYS);
    conflict["conflict"] = json!("not a number");
    conflict["version"] = json!(11);
    put_legacy(&legacy, &source, "conflict", None, 11, &conflict).await;
    // A newer version already in the target (as if the replay got there first): 409.
    let newer = schema::TagRewrite::default().to_target(source_of(0, KEYS).as_object().unwrap()).unwrap();
    let path = format!("/{dest}/_doc/{}?version={}&version_type=external", id_of(0), version_of(0) + 100);
    let (status, resp) = target.request(Method::Put, &path, Some(&json!(newer))).await.unwrap();
    assert_eq!(status, 201, "{resp}");

    let dir = scratch("poison");
    let summary = backfill::copy(&legacy, &target, copy_config(&source, &dest, &dir), CancellationToken::new()).await.unwrap();
    eprintln!("{summary}");
    assert_eq!(summary.scanned, docs as u64 + 3);
    assert_eq!(summary.failed, 2);
    assert_eq!(summary.superseded, 1);
    assert_eq!(summary.written, docs as u64);
    let lines: Vec<Value> = std::fs::read_to_string(dir.join("failures.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let by_id = |id: &str| lines.iter().find(|l| l["id"] == id).unwrap_or_else(|| panic!("{id} not in {lines:?}")).clone();
    assert_eq!(by_id("no-version")["kind"], "version");
    assert!(by_id("no-version")["reason"].as_str().unwrap().contains("version"));
    assert_eq!(by_id("conflict")["kind"], "rejected");
    assert!(!by_id("conflict")["reason"].as_str().unwrap().is_empty());
    let (_, kept) = cutover::sim::get_doc(&target, &dest, "huge-tag", None).await.unwrap().expect("the long tag's document is kept");
    let tags = kept["tags"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["value"].as_str().is_some_and(|v| v.len() == 40_000)), "with its _source intact");

    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two workers of one job (one group): the second, started while the first runs, gets slices
/// too (more slices than workers), each document is read about once, every slice is done once,
/// and the copy verifies. A third run with another slice count is refused, naming the job's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_of_one_job_share_the_slices() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-split-src");
    let dest = unique("bf-split-dst");
    let docs = 6_000;
    load_legacy(&legacy, &source, &Spec { docs, shards: 2, keys: KEYS }).await;
    create_target(&legacy, &target, &source, &dest).await;
    let dir = scratch("split");
    let worker = |id: &str| {
        let mut cfg = copy_config(&source, &dest, &dir);
        cfg.slices = Some(6);
        cfg.batch_size = 200;
        cfg.max_docs_per_sec = Some(1_500);
        cfg.job.worker = id.into();
        cfg.job.kafka.session_timeout = Duration::from_secs(6);
        cfg
    };
    let first = tokio::spawn({
        let (legacy, target, cfg) = (legacy.clone(), target.clone(), worker("first"));
        async move { backfill::copy(&legacy, &target, cfg, CancellationToken::new()).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = backfill::copy(&legacy, &target, worker("second"), CancellationToken::new()).await.unwrap();
    let first = first.await.unwrap().unwrap();
    eprintln!("first: {first}\nsecond: {second}");
    assert!(!second.slices_assigned.is_empty() && second.scanned > 0, "the worker that joined later got no slice: {second:?}");
    assert_eq!(first.failed_in_slices + second.failed_in_slices, 0);
    let total = first.scanned + second.scanned;
    // A slice moved while it ran is re-read from its last checkpoint: at most the batches in
    // flight (2 per slice) are read twice.
    assert!(total >= docs as u64 && total <= docs as u64 + 6 * 2 * 200, "each document read about once across workers: {total}");
    let report = backfill::verify(&legacy, &target, &verify_config(&source, &dest)).await.unwrap();
    assert!(report.converged, "{report:?}");

    let mut other = copy_config(&source, &dest, &dir);
    other.slices = Some(4);
    let err = backfill::copy(&legacy, &target, other, CancellationToken::new()).await.unwrap_err().to_string();
    assert!(err.contains("has 6 slices") && err.contains("--slices 6"), "{err}");
    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET /metrics` over a plain TCP connection.
async fn scrape(addr: &str) -> Option<String> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").await.ok()?;
    let mut out = String::new();
    conn.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_prometheus_metrics_and_writes_the_summary() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-metrics-src");
    let dest = unique("bf-metrics-dst");
    let docs = 4_000;
    load_legacy(&legacy, &source, &Spec { docs, shards: 2, keys: KEYS }).await;
    create_target(&legacy, &target, &source, &dest).await;
    let dir = scratch("metrics");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(backfill_bin())
        .args(["copy", "--legacy-url", &s.legacy_url, "--target-url", &s.target_url, "--source-index", &source, "--target-index", &dest])
        .args(["--legacy-version", "_version", "--batch-size", "200", "--max-docs-per-sec", "1500", "--log-interval", "1s", "--metrics-addr", &addr])
        .arg("--failures-file")
        .arg(dir.join("f.jsonl"))
        .arg("--summary-json")
        .arg(dir.join("summary.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        if let Some(body) = scrape(&addr).await.filter(|b| b.contains("cutover_backfill_docs_scanned_total") && b.contains("cutover_backfill_slice_scanned")) {
            seen = Some(body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let child_id = child.id().expect("running");
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = seen.expect("metrics endpoint never showed backfill metrics");
    // Every metric carries the worker's name (the job's `--worker-id`, default host:pid).
    let worker = format!("worker=\"{}:{}\"", std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(), child_id);
    assert!(body.contains(&format!("cutover_backfill_docs_total{{{worker},outcome=\"applied\"}}")), "{body}");
    assert!(body.contains(&format!("cutover_bulk_latency_seconds_bucket{{{worker},le=")), "bulk latency is a histogram with buckets, not a summary: {body}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("scanned {docs}")), "{stdout}");
    let summary: backfill::Summary = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary.scanned, summary.written, summary.failed), (docs as u64, docs as u64, 0));
    // Not a terminal: progress went to the log as lines.
    assert!(String::from_utf8_lossy(&out.stderr).contains("backfill progress"));
    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}
