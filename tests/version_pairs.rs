//! The versions teams actually migrate, end to end: Elasticsearch 2.4, 5.6 and 6.8 as the
//! legacy cluster (mapping types; 2.4's `string` fields; no `_seq_no` before 6.0, so a `_doc`
//! scroll, sliced on 5.6, one scroll on 2.4; the version in `_version` or in a `_source`
//! field), Elasticsearch 8.19 and OpenSearch 2.x/3.x as targets, OpenSearch 2.x as a source.
//!
//! Each pair runs the scenario of tests/convergence.rs: a history the legacy system wrote, the
//! oldest half of the topic removed by retention, the indexer and the backfill concurrent with
//! live traffic applied by a legacy indexer that LAGS the topic, the readiness gate; then the
//! harness's own comparison of both clusters and `backfill verify --parity`. The target index is
//! made by `backfill create-index` from the definition the legacy server reports. Before the
//! backfill starts, merges of documents that only the legacy cluster holds (their upserts lie
//! beyond retention) must be applied by the indexer from bases it reads on that legacy server.
//!
//! Needs the on-demand servers of each pair (`dev/services.sh up legacy6 opensearch`, `up
//! legacy5 target8`, `up opensearch3`, `up legacy2`) besides the usual services: dev/test.sh
//! starts each group for its tests only, in turn, and stops it after. Unreachable servers
//! fail, never skip.

mod backfill_support;

use cutover::kafka;
use cutover::procs::{self, Proc};
use cutover::scenario::Scenario;
use cutover::sim::{self, generate, LegacyBehaviour, SimCommand, WorkloadSpec};
use cutover::Services;
use serde_json::json;
use std::time::Duration;

const DOCS: usize = 500;
const COMMANDS: usize = 3000;
const HISTORY: usize = 2000;
const RUN: Duration = Duration::from_secs(180);

/// One source -> target pair and what must be observed on it.
struct Pair {
    name: &'static str,
    legacy_url: String,
    target_url: String,
    behaviour: LegacyBehaviour,
    seed: u64,
    /// The scan method the backfill must log (`method="..."`).
    scan_method: &'static str,
}

/// Documents only the legacy cluster holds (written there, never produced: their history is
/// past retention), and a merge of each, produced live. Some are routed.
fn probes(index: &str) -> (Vec<SimCommand>, Vec<SimCommand>) {
    let mut upserts = Vec::new();
    let mut merges = Vec::new();
    for i in 0..12u64 {
        let id = format!("probe{i}");
        let routing = (i % 3 == 0).then(|| format!("r{i}"));
        let mut up = json!({"op": "upsert", "id": id, "index": index, "version": 100_000 + i, "doc": {
            "title": format!("probe {i}"), "status": "new", "n": i,
            "actions": {"tags": {"k1": "v1", "scope:team": format!("t{i}")}, "clicks": i}
        }});
        let mut merge = json!({"op": "merge", "id": id, "index": index, "version": 100_100 + i,
            "set": {"status": "open", "touched": 100_100 + i}, "tags_add": {"k2": "v2"}, "tags_remove": ["k1"]});
        if let Some(r) = &routing {
            up["routing"] = json!(r);
            merge["routing"] = json!(r);
        }
        upserts.push(SimCommand { id: id.clone(), version: 100_000 + i, envelope: up, null_value: false });
        merges.push(SimCommand { id, version: 100_100 + i, envelope: merge, null_value: false });
    }
    (upserts, merges)
}

async fn gate(indexer: &Proc) {
    Scenario::eventually("indexer caught up", RUN, || procs::http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains("\"caught_up\":true"))).await;
}

/// The `backfill starting` line of a backfill log (it names the server and the scan method).
fn start_line(log_name: &str) -> String {
    let log = std::fs::read_to_string(procs::log_path(log_name)).unwrap_or_default();
    log.lines().find(|l| l.contains("backfill starting")).unwrap_or_default().to_string()
}

async fn run_pair(p: Pair) {
    let mut sc = Scenario::with_clusters(p.name, 3, &p.legacy_url, &p.target_url, p.behaviour.clone()).await;
    let source = cluster::version::detect(&sc.legacy_es()).await.expect("legacy version");
    let target = cluster::version::detect(&sc.target_es()).await.expect("target version");
    eprintln!("[{}] source {source} -> target {target}, legacy version {}, type {:?}", p.name, p.behaviour.version_arg(), p.behaviour.doc_type);

    // The target definition from what the legacy server reports; idempotent on a second run.
    sc.run_create_index(&[]);
    sc.run_create_index(&[]);

    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, DOCS, COMMANDS, p.seed));
    sc.live(&cmds[..HISTORY]).await;
    let low = kafka::expire_oldest(&sc.s.kafka, &sc.topic, sc.partitions, 0.5).await;
    assert!(low.iter().all(|&o| o > 0), "retention removed records: {low:?}");

    // Merges whose base only the legacy server has: applied from bases read there.
    let (upserts, merges) = probes(&sc.legacy_index);
    sc.legacy.apply(&upserts).await.expect("legacy-only documents");
    let indexer = sc.start_indexer("replay", &["--batch-max-docs", "100"]);
    gate(&indexer).await; // caught up first, so it meets the merges before the lagging legacy indexer
    sc.live(&merges).await;
    gate(&indexer).await;
    // The gate reads lag a moment old: allow the last merges a few seconds to land.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let diffs = loop {
        let diffs = sim::differences_with(&sc.legacy_es(), &sc.legacy_index, &sc.target_es(), &sc.target_index, &sc.legacy_version()).await.unwrap();
        if !diffs.iter().any(|d| d.starts_with("probe")) || std::time::Instant::now() > deadline {
            break diffs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let probe_diffs: Vec<&String> = diffs.iter().filter(|d| d.starts_with("probe")).collect();
    assert!(probe_diffs.is_empty(), "merges of legacy-only documents, bases read on {source}:\n{probe_diffs:#?}");
    assert!(diffs.iter().any(|d| d.contains("missing in target")), "before the backfill, the expired history is missing");

    // Backfill concurrent with replay and live traffic.
    let dir = std::env::temp_dir().join(format!("{}-checkpoints", sc.topic));
    let copy_log = format!("{}-copy", sc.topic);
    let backfill = Proc::start("backfill", &copy_log, &sc.backfill_args(&dir, &["--batch-size", "200"]));
    for chunk in cmds[HISTORY..].chunks(500) {
        sc.live(chunk).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(backfill.wait(RUN).success(), "backfill failed (see target/test-logs/{copy_log}.log)");
    sc.drain_and_stop(indexer).await;
    let _ = std::fs::remove_dir_all(&dir);

    let started = start_line(&copy_log);
    assert!(started.contains(&format!("method=\"{}\"", p.scan_method)), "expected scan method {}: {started}", p.scan_method);
    sc.assert_converged().await;
    let docs = sim::read_all(&sc.target_es(), &sc.target_index).await.unwrap().len();
    let report = sc.run_verify_parity("verify");
    let parity = report.parity.as_ref().expect("parity ran");
    eprintln!(
        "[{}] {source} -> {target}: {docs} documents converged; verify scanned {} legacy / {} target, parity {} queries, {} compared ({} by ids), 0 mismatches; backfill: {}",
        p.name, report.legacy_docs_scanned, report.target_docs_scanned, parity.queries, parity.compared, parity.compared_by_ids, started
    );
    assert!(parity.compared >= 20, "parity compared only {} queries", parity.compared);
    sc.cleanup().await;
}

fn legacy6_url() -> String {
    Services::from_env().legacy6_url
}

fn opensearch_url() -> String {
    Services::from_env().opensearch_url
}

/// 6.8 -> 9.x, mapping type `_doc`, the version kept in the document (`field:version`,
/// internal versions on the legacy side): the indexer writes the command's version at the
/// `--legacy-version` field of every document it writes, as the legacy indexer does.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es68_doc_type_field_version_to_es9() {
    let s = Services::from_env();
    let layout = LegacyBehaviour { doc_type: Some("_doc".into()), version_field: Some("version".into()), ..Default::default() };
    run_pair(Pair { name: "p68doc", legacy_url: legacy6_url(), target_url: s.target_url, behaviour: layout, seed: 61, scan_method: "scroll" }).await;
}

/// 6.8 -> 9.x, a custom mapping type (`item`, as 6.x indices created on 5.x carry), external
/// versions. Also: asking for a PIT scan of 6.8 is refused with the fix named.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es68_item_type_to_es9() {
    let s = Services::from_env();
    let layout = LegacyBehaviour { doc_type: Some("item".into()), version_field: None, ..Default::default() };
    let url = legacy6_url();
    run_pair(Pair { name: "p68item", legacy_url: url.clone(), target_url: s.target_url.clone(), behaviour: layout.clone(), seed: 62, scan_method: "scroll" })
        .await;

    let sc = Scenario::with_clusters("p68pit", 1, &url, &s.target_url, layout).await;
    sc.run_create_index(&[]);
    let dir = std::env::temp_dir().join(format!("{}-checkpoints", sc.topic));
    let name = format!("{}-pit", sc.topic);
    let status = Proc::start("backfill", &name, &sc.backfill_args(&dir, &["--scan-method", "pit"])).wait(Duration::from_secs(60));
    let log = std::fs::read_to_string(procs::log_path(&name)).unwrap_or_default();
    assert!(!status.success() && log.contains("use --scan-method scroll"), "PIT on 6.8 must be refused: {status}\n{log}");
    sc.cleanup().await;
}

/// 7.17 -> OpenSearch 2.x: the indexer and the backfill write to OpenSearch; verify walks it
/// with OpenSearch's PIT.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es717_to_opensearch2() {
    let s = Services::from_env();
    run_pair(Pair {
        name: "p717os",
        legacy_url: s.legacy_url,
        target_url: opensearch_url(),
        behaviour: LegacyBehaviour::default(),
        seed: 63,
        scan_method: "pit",
    })
    .await;
}

/// OpenSearch 2.x -> 9.x: the backfill reads OpenSearch with its PIT API.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_opensearch2_to_es9() {
    let s = Services::from_env();
    run_pair(Pair {
        name: "pos9",
        legacy_url: opensearch_url(),
        target_url: s.target_url,
        behaviour: LegacyBehaviour::default(),
        seed: 64,
        scan_method: "opensearch-pit",
    })
    .await;
}

/// 5.6 -> 8.19: a typed 5.x index (`doc`), no `_seq_no`: the backfill reads it with a sliced
/// scroll sorted on `_doc` and restarts an interrupted slice from its start.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es56_to_es819() {
    let s = Services::from_env();
    let layout = LegacyBehaviour { doc_type: Some("doc".into()), ..Default::default() };
    run_pair(Pair { name: "p56", legacy_url: s.legacy5_url, target_url: s.target8_url, behaviour: layout, seed: 65, scan_method: "scroll-doc" }).await;
}

/// 5.6 has no `_seq_no`: a `_doc` scroll lost mid-slice (deleted through the real API after
/// pages 2 and 5 of each slice) restarts its slice from the start, and nothing is lost: the
/// harness's own reader finds the target equal to the legacy index.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es56_lost_scroll_restarts_slice() {
    use backfill::scan::ContextRef;
    use backfill::ScanEvent;
    let s = Services::from_env();
    let sc = Scenario::with_clusters("p56ctx", 1, &s.legacy5_url, &s.target8_url, LegacyBehaviour { doc_type: Some("doc".into()), ..Default::default() }).await;
    sc.run_create_index(&[]);
    let mut legacy = cutover::sim::LegacyIndexer::with_behaviour(sc.legacy_es(), &sc.legacy_index, sc.legacy.behaviour.clone());
    legacy.apply(&generate(&WorkloadSpec::new(&sc.legacy_index, DOCS, COMMANDS, 70))).await.expect("legacy documents");
    let es = sc.legacy_es();
    let hook: backfill::ScanHook = std::sync::Arc::new(move |e: ScanEvent| {
        let es = es.clone();
        Box::pin(async move {
            if let (2 | 5, ContextRef::Scroll(id)) = (e.page, &e.context) {
                let (status, resp) = es.request(cluster::Method::Delete, "/_search/scroll", Some(&json!({"scroll_id": [id]}))).await.unwrap();
                assert_eq!(status, 200, "deleting the scroll: {resp}");
            }
        })
    });
    let dir = backfill_support::scratch("p56ctx");
    let mut cfg = backfill_support::copy_config(&sc.legacy_index, &sc.target_index, &dir);
    cfg.legacy_version = Some(schema::LegacyVersionSource::Version);
    cfg.slices = Some(2);
    cfg.batch_size = 20;
    cfg.on_page = Some(hook);
    let summary = backfill::copy(&sc.legacy_es(), &sc.target_es(), cfg, tokio_util::sync::CancellationToken::new()).await.expect("copy survives lost scrolls");
    assert_eq!(summary.method, "scroll-doc");
    assert_eq!(summary.context_recoveries, 4, "two losses per slice, each recovered: {summary:?}");
    assert_eq!(summary.failed, 0);
    let diffs = sim::differences_with(&sc.legacy_es(), &sc.legacy_index, &sc.target_es(), &sc.target_index, &sc.legacy_version()).await.unwrap();
    assert!(diffs.is_empty(), "after restarted slices the target equals the legacy index: {diffs:#?}");
    let _ = std::fs::remove_dir_all(&dir);
    sc.cleanup().await;
}

/// A 5.6 index with two mapping types has no single target mapping: `create-index` refuses it
/// and names the fix.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es56_two_types_refused() {
    let s = Services::from_env();
    let sc =
        Scenario::with_clusters("p56types", 1, &s.legacy5_url, &s.target8_url, LegacyBehaviour { doc_type: Some("doc".into()), ..Default::default() }).await;
    let es = sc.legacy_es();
    es.ok(cluster::Method::Delete, &format!("/{}", sc.legacy_index), None).await.expect("drop the scenario's index");
    let body = json!({"mappings": {"item": {"properties": {"title": {"type": "text"}}}, "user": {"properties": {"name": {"type": "keyword"}}}}});
    es.ok(cluster::Method::Put, &format!("/{}", sc.legacy_index), Some(&body)).await.expect("two-type index on 5.6");
    let out = sc.create_index_output(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two mapping types must be refused: {stderr}");
    assert!(stderr.contains("item") && stderr.contains("user") && stderr.contains("own legacy index"), "the refusal names the types and the fix: {stderr}");
    sc.cleanup().await;
}

/// 7.17 -> 8.19.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es717_to_es819() {
    let s = Services::from_env();
    run_pair(Pair { name: "p819", legacy_url: s.legacy_url, target_url: s.target8_url, behaviour: LegacyBehaviour::default(), seed: 66, scan_method: "pit" })
        .await;
}

/// 7.17 -> OpenSearch 3.x.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es717_to_opensearch3() {
    let s = Services::from_env();
    run_pair(Pair {
        name: "pos3",
        legacy_url: s.legacy_url,
        target_url: s.opensearch3_url,
        behaviour: LegacyBehaviour::default(),
        seed: 67,
        scan_method: "pit",
    })
    .await;
}

/// 2.4 -> 9.x: `string` fields become `text`/`keyword`; 2.4 cannot slice a scroll, so the
/// backfill reads it in one `_doc` scroll.
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es24_to_es9() {
    let s = Services::from_env();
    let layout = LegacyBehaviour { doc_type: Some("doc".into()), string_fields: true, ..Default::default() };
    run_pair(Pair { name: "p24", legacy_url: s.legacy2_url, target_url: s.target_url, behaviour: layout, seed: 68, scan_method: "scroll-doc" }).await;
}

/// 2.4 -> 6.8, the field report's own era: the target is typed (6.x), written typeless
/// (`_doc`, `include_type_name=false`).
#[tokio::test(flavor = "multi_thread")]
async fn version_pair_es24_to_es68() {
    let s = Services::from_env();
    let layout = LegacyBehaviour { doc_type: Some("doc".into()), string_fields: true, ..Default::default() };
    run_pair(Pair { name: "p2468", legacy_url: s.legacy2_url, target_url: s.target6_url, behaviour: layout, seed: 69, scan_method: "scroll-doc" }).await;
}
