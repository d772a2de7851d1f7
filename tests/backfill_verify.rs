//! verify tells each kind of divergence apart when one of each is planted after an exact copy:
//! a missing document, a changed field (same version), an extra document, a resurrected delete,
//! and in-flight updates (one that settles during the re-check window, one that does not).
//! Also through the binary: exit code 2 and the JSON report.

mod backfill_support;

use backfill::VerifyReport;
use backfill_support::*;
use cluster::client::enc;
use cutover::{unique, Services};
use elasticsearch::http::Method;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DOCS: usize = 2_000;
const KEYS: usize = 200;

/// The join of both sides' digests classifies each planted divergence, in memory (the
/// default buffer holds every digest) and spilled to sorted runs on disk (a buffer of 97
/// digests: about 20 runs per side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_classifies_each_planted_divergence() {
    planted_divergences(backfill::verify::DIGEST_BUFFER, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_classifies_each_planted_divergence_with_spilled_digests() {
    planted_divergences(97, true).await;
}

async fn planted_divergences(digest_buffer: usize, spills: bool) {
    let spill_dir = scratch(&format!("verify-spill-{digest_buffer}"));
    let verify_config = |source: &str, dest: &str| {
        let mut cfg = verify_config(source, dest);
        cfg.digest_buffer = digest_buffer;
        cfg.spill_dir = spill_dir.clone();
        cfg
    };
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-verify-src");
    let dest = unique("bf-verify-dst");
    load_legacy(&legacy, &source, &Spec { docs: DOCS, shards: 2, keys: KEYS }).await;
    create_target(&legacy, &target, &source, &dest).await;
    let dir = scratch("verify");
    backfill::copy(&legacy, &target, copy_config(&source, &dest, &dir), CancellationToken::new()).await.unwrap();
    let clean = backfill::verify(&legacy, &target, &verify_config(&source, &dest)).await.unwrap();
    assert!(clean.converged, "{clean:?}");
    assert_eq!(clean.spilled_runs > 0, spills, "{clean:?}");

    // missing: gone from the target only.
    let (status, _) = target.request(Method::Delete, &format!("/{dest}/_doc/{}", enc(&id_of(10))), None).await.unwrap();
    assert_eq!(status, 200);
    // different: same version, one field changed (a routed document, to exercise routing).
    let i = 23;
    let mut doc = schema::TagRewrite::default().to_target(source_of(i, KEYS).as_object().unwrap()).unwrap();
    doc.insert("status".into(), json!("tampered"));
    let path = format!("/{dest}/_doc/{}?routing={}&version={}&version_type=external_gte", enc(&id_of(i)), routing_of(i).unwrap(), version_of(i));
    let (status, resp) = target.request(Method::Put, &path, Some(&json!(doc))).await.unwrap();
    assert_eq!(status, 200, "{resp}");
    // extra: only in the target.
    let (status, _) = target.request(Method::Put, &format!("/{dest}/_doc/ghost-1?version=5&version_type=external"), Some(&json!({"tags": []}))).await.unwrap();
    assert_eq!(status, 201);
    // resurrected: deleted in legacy at a newer version; the target still holds the old copy.
    let dead = 30;
    let (status, _) =
        legacy.request(Method::Delete, &format!("/{source}/_doc/{}?version={}&version_type=external", id_of(dead), version_of(dead) + 1), None).await.unwrap();
    assert_eq!(status, 200);
    // in flight: legacy moved on; one will be replayed into the target during the re-check.
    for i in [40, 50] {
        let mut src = source_of(i, KEYS);
        src["version"] = json!(version_of(i) + 1);
        src["status"] = json!("updated");
        put_legacy(&legacy, &source, &id_of(i), routing_of(i).as_deref(), version_of(i) + 1, &src).await;
    }
    legacy.refresh(&source).await.unwrap();
    target.refresh(&dest).await.unwrap();

    // A first verify that does not wait: both 40 and 50 are in flight, and it times one pass,
    // so that the replay of 50 below lands after the next verify's first pass (else 50 would
    // never be in flight there, and "settled during the re-check" would test nothing).
    let mut probe = verify_config(&source, &dest);
    probe.settle_timeout = Duration::ZERO;
    probe.known_deletes.insert(id_of(dead), version_of(dead) + 1);
    let started = std::time::Instant::now();
    let first = backfill::verify(&legacy, &target, &probe).await.unwrap();
    let pass = started.elapsed();
    let mut behind = first.in_flight.sample_ids.clone();
    behind.sort();
    assert_eq!(behind, vec![id_of(40), id_of(50)], "both legacy updates are in flight at first");
    let delay = (pass * 2).max(Duration::from_millis(500));
    let replay = {
        let (target, dest) = (target.clone(), dest.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut src = source_of(50, KEYS);
            src["version"] = json!(version_of(50) + 1);
            src["status"] = json!("updated");
            let doc = schema::TagRewrite::default().to_target(src.as_object().unwrap()).unwrap();
            let path = format!("/{dest}/_doc/{}?version={}&version_type=external", id_of(50), version_of(50) + 1);
            let (status, resp) = target.request(Method::Put, &path, Some(&json!(doc))).await.unwrap();
            assert_eq!(status, 200, "{resp}");
        })
    };
    let mut cfg = verify_config(&source, &dest);
    cfg.settle_timeout = delay + Duration::from_secs(5);
    cfg.known_deletes.insert(id_of(dead), version_of(dead) + 1);
    let report = backfill::verify(&legacy, &target, &cfg).await.unwrap();
    replay.await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(!report.converged);
    assert_eq!(report.missing.sample_ids, vec![id_of(10)]);
    assert_eq!(report.different.sample_ids, vec![id_of(23)]);
    assert_eq!(report.extra.sample_ids, vec!["ghost-1".to_string()]);
    assert_eq!(report.resurrected.sample_ids, vec![id_of(dead)]);
    assert_eq!(report.in_flight.sample_ids, vec![id_of(40)], "doc 50 settled during the re-check");
    assert!(report.rechecks >= 2);
    assert_eq!(report.untransformable.count, 0);

    // The binary: exit code 2 (not converged) and the JSON report. Without known deletes the
    // resurrected document can only be reported as extra.
    let report_path = dir.join("report.json");
    let out = std::process::Command::new(backfill_bin())
        .args(["verify", "--legacy-url", &s.legacy_url, "--target-url", &s.target_url, "--source-index", &source, "--target-index", &dest])
        .args(["--legacy-version", "field:version", "--settle-timeout", "1s"])
        .arg("--report-json")
        .arg(&report_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let from_cli: VerifyReport = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!((from_cli.missing.count, from_cli.different.count, from_cli.extra.count, from_cli.resurrected.count), (1, 1, 2, 0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT CONVERGED"));

    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0, "every verify removed its runs");
    let _ = std::fs::remove_dir_all(&spill_dir);
    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `backfill verify` on the binary: exit code and the JSON report it wrote.
fn verify_bin(s: &Services, source: &str, dest: &str, report_path: &std::path::Path) -> (Option<i32>, String, VerifyReport) {
    let out = std::process::Command::new(backfill_bin())
        .args(["verify", "--legacy-url", &s.legacy_url, "--target-url", &s.target_url, "--source-index", source, "--target-index", dest])
        .args(["--legacy-version", "field:version", "--settle-timeout", "1s"])
        .arg("--report-json")
        .arg(report_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = serde_json::from_slice(&std::fs::read(report_path).unwrap())
        .unwrap_or_else(|e| panic!("no report ({e}); stdout: {stdout}; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), stdout, report)
}

/// The shard a routing value sends documents to.
async fn shard_of(es: &cluster::Es, index: &str, routing: &str) -> u64 {
    let (status, resp) = es.request(Method::Get, &format!("/{index}/_search_shards?routing={routing}"), None).await.unwrap();
    assert_eq!(status, 200, "{resp}");
    resp["shards"][0][0]["shard"].as_u64().unwrap_or_else(|| panic!("{resp}"))
}

/// The `status` of the document stored under (id, routing), if any.
async fn status_at(es: &cluster::Es, index: &str, id: &str, routing: &str) -> Option<String> {
    let (status, resp) = es.request(Method::Get, &format!("/{index}/_doc/{id}?routing={routing}"), None).await.unwrap();
    (status == 200).then(|| resp["_source"]["status"].as_str().unwrap().to_string())
}

/// A document is (`_id`, `_routing`): two legacy documents with one id and different routings
/// (on different shards) are two documents, and when the target holds only one of them verify
/// reports the other as missing, naming its routing; a changed copy of the first is reported
/// as different besides (keyed by id alone, one finding hid the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_tells_apart_one_id_under_two_routings() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-verify-rt-src");
    let dest = unique("bf-verify-rt-dst");
    let keys = 20;
    legacy.ok(Method::Put, &format!("/{source}"), Some(&legacy_body(&Spec { docs: 0, shards: 4, keys }))).await.expect("create legacy index");
    // Two routing values that land on different shards.
    let ra = "tenant-a".to_string();
    let shard_a = shard_of(&legacy, &source, &ra).await;
    let mut rb = None;
    for n in 0..64 {
        let r = format!("tenant-b{n}");
        if shard_of(&legacy, &source, &r).await != shard_a {
            rb = Some(r);
            break;
        }
    }
    let rb = rb.expect("a routing on another shard");

    // The legacy index: two documents with id `dup` (routings ra and rb, different content and
    // versions) and a few plain ones.
    let id = "dup";
    let docs: Vec<(String, Option<String>, usize)> =
        vec![(id.into(), Some(ra.clone()), 101), (id.into(), Some(rb.clone()), 102), (id_of(1), None, 1), (id_of(2), None, 2), (id_of(3), routing_of(3), 3)];
    for (doc_id, routing, i) in &docs {
        put_legacy(&legacy, &source, doc_id, routing.as_deref(), version_of(*i), &source_of(*i, keys)).await;
    }
    legacy.refresh(&source).await.unwrap();
    let (status_a, status_b) = (source_of(101, keys)["status"].as_str().unwrap().to_string(), source_of(102, keys)["status"].as_str().unwrap().to_string());
    assert_ne!(status_a, status_b);
    assert_eq!(status_at(&legacy, &source, id, &ra).await, Some(status_a.clone()), "legacy stores (dup, {ra})");
    assert_eq!(status_at(&legacy, &source, id, &rb).await, Some(status_b.clone()), "legacy stores (dup, {rb}) apart");

    // The target: every document copied as the copy would (rewritten, external version).
    create_target(&legacy, &target, &source, &dest).await;
    let put_target = |doc_id: String, routing: Option<String>, i: usize, status: Option<&'static str>| {
        let (target, dest) = (target.clone(), dest.clone());
        async move {
            let mut doc = schema::TagRewrite::default().to_target(source_of(i, keys).as_object().unwrap()).unwrap();
            if let Some(st) = status {
                doc.insert("status".into(), json!(st));
            }
            let routing = routing.map(|r| format!("&routing={r}")).unwrap_or_default();
            let path = format!("/{dest}/_doc/{}?version={}&version_type=external_gte{routing}", enc(&doc_id), version_of(i));
            let (status, resp) = target.request(Method::Put, &path, Some(&json!(doc))).await.unwrap();
            assert!(status == 200 || status == 201, "{resp}");
        }
    };
    for (doc_id, routing, i) in &docs {
        put_target(doc_id.clone(), routing.clone(), *i, None).await;
    }
    target.refresh(&dest).await.unwrap();
    assert_eq!(status_at(&target, &dest, id, &ra).await, Some(status_a.clone()));
    assert_eq!(status_at(&target, &dest, id, &rb).await, Some(status_b.clone()), "the target stores both copies apart too");
    let dir = scratch("verify-routing");
    let report_path = dir.join("report.json");

    // Control: both copied, verify passes.
    let (code, stdout, report) = verify_bin(&s, &source, &dest, &report_path);
    assert_eq!(code, Some(0), "{stdout}\n{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(report.converged);
    assert_eq!((report.legacy_docs_scanned, report.target_docs_scanned), (docs.len() as u64, docs.len() as u64));

    // The target loses (dup, rb) and keeps (dup, ra): (dup, rb) is missing.
    let (status, resp) = target.request(Method::Delete, &format!("/{dest}/_doc/{id}?routing={rb}"), None).await.unwrap();
    assert_eq!(status, 200, "{resp}");
    target.refresh(&dest).await.unwrap();
    assert_eq!(status_at(&target, &dest, id, &ra).await, Some(status_a.clone()), "the target still holds (dup, {ra})");
    assert_eq!(status_at(&target, &dest, id, &rb).await, None);
    let (code, stdout, report) = verify_bin(&s, &source, &dest, &report_path);
    eprintln!("{stdout}");
    assert_eq!(code, Some(3), "{stdout}\n{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(!report.converged);
    assert_eq!(report.missing.count, 1, "{report:?}");
    assert_eq!(report.missing.samples, vec![backfill::verify::DocRef::new(id, Some(&rb))]);
    assert_eq!(report.missing.sample_ids, vec![id.to_string()], "sample_ids keeps plain ids");
    let counts = |r: &VerifyReport| (r.extra.count, r.resurrected.count, r.different.count, r.in_flight.count, r.untransformable.count);
    assert_eq!(counts(&report), (0, 0, 0, 0, 0), "{report:?}");
    assert!(stdout.contains(&format!("missing: 1 (e.g. {id} (routing {rb}))")), "{stdout}");

    // And (dup, ra) changed at the same version: different, while (dup, rb) stays missing.
    put_target(id.into(), Some(ra.clone()), 101, Some("tampered")).await;
    target.refresh(&dest).await.unwrap();
    let report = backfill::verify(&legacy, &target, &verify_config(&source, &dest)).await.unwrap();
    assert_eq!(report.missing.samples, vec![backfill::verify::DocRef::new(id, Some(&rb))], "{report:?}");
    assert_eq!(report.different.samples, vec![backfill::verify::DocRef::new(id, Some(&ra))], "{report:?}");
    assert_eq!((report.missing.count, report.different.count), (1, 1));

    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}
