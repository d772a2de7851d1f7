//! Each legacy indexer behaviour cutover supports, end to end against real Kafka and real
//! clusters: the legacy system is simulated with the behaviour (`sim::LegacyBehaviour`), its
//! indexer lags the topic by 1.5 s, retention removes the oldest half of the topic, backfill
//! and replay run concurrently under live traffic, and once the readiness gate opens both
//! clusters are read back with the harness's own reader and compared with the simulator's
//! final model (not with `backfill verify` alone). Three seeds per behaviour, and a control per
//! option that fails without it.

use cutover::kafka;
use cutover::procs::Proc;
use cutover::scenario::Scenario;
use cutover::sim::{generate, LegacyBehaviour, SimCommand, WorkloadSpec};
use std::time::Duration;

const DOCS: usize = 400;
const COMMANDS: usize = 3000;
const HISTORY: usize = 2000;

/// The legacy system's history, then retention cuts the oldest half of the topic.
async fn history(name: &str, behaviour: LegacyBehaviour, seed: u64, shape: impl FnOnce(&mut WorkloadSpec)) -> (Scenario, Vec<SimCommand>) {
    let mut sc = Scenario::with_behaviour(name, 3, behaviour).await;
    let mut spec = WorkloadSpec::new(&sc.legacy_index, DOCS, COMMANDS, seed);
    spec.upsert_pct = 35;
    spec.merge_pct = 45;
    shape(&mut spec);
    let cmds = generate(&spec);
    sc.live(&cmds[..HISTORY]).await;
    let low = kafka::expire_oldest(&sc.s.kafka, &sc.topic, sc.partitions, 0.5).await;
    assert!(low.iter().all(|&o| o > 0), "retention removed records: {low:?}");
    (sc, cmds)
}

/// Backfill and replay together while the live tail is produced (the legacy indexer applying
/// each burst 1.5 s after it is on the topic), then the readiness gate, then SIGTERM.
async fn migrate(sc: &mut Scenario, cmds: &[SimCommand]) {
    let indexer = sc.start_indexer("replay", &["--batch-max-docs", "200"]);
    let dir = std::env::temp_dir().join(format!("{}-checkpoints", sc.topic));
    let backfill = Proc::start("backfill", &format!("{}-copy", sc.topic), &sc.backfill_args(&dir, &["--batch-size", "200"]));
    for chunk in cmds[HISTORY..].chunks(250) {
        sc.live(chunk).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(backfill.wait(Duration::from_secs(120)).success(), "backfill failed (see target/test-logs)");
    sc.drain_and_stop(indexer).await;
}

/// The whole scenario must end with both clusters equal to the simulator's model.
async fn converges(name: &str, behaviour: LegacyBehaviour, seed: u64, shape: impl FnOnce(&mut WorkloadSpec)) -> Scenario {
    let (mut sc, cmds) = history(name, behaviour, seed, shape).await;
    migrate(&mut sc, &cmds).await;
    sc.assert_converged_to_model().await;
    sc
}

/// The same scenario with the indexer told something else about the legacy system: it must
/// NOT converge (so the option matters). Returns the differences.
async fn diverges(name: &str, behaviour: LegacyBehaviour, seed: u64, shape: impl FnOnce(&mut WorkloadSpec), wrong: impl FnOnce(&mut Scenario)) -> Vec<String> {
    let (mut sc, cmds) = history(name, behaviour, seed, shape).await;
    wrong(&mut sc);
    migrate(&mut sc, &cmds).await;
    let diffs = sc.differences().await;
    assert!(!diffs.is_empty(), "the control converged: the option would not matter");
    sc.cleanup().await;
    diffs
}

fn merge_creates() -> LegacyBehaviour {
    LegacyBehaviour { merge_creates: true, ..Default::default() }
}

fn null_deletes() -> LegacyBehaviour {
    LegacyBehaviour { null_deletes: true, ..Default::default() }
}

fn version_field() -> LegacyBehaviour {
    LegacyBehaviour { version_field: Some("meta.seq".into()), ..Default::default() }
}

fn transactional() -> LegacyBehaviour {
    LegacyBehaviour { transactional: true, ..Default::default() }
}

fn long_tags() -> LegacyBehaviour {
    LegacyBehaviour { long_tags: true, ..Default::default() }
}

fn with_null_deletes(s: &mut WorkloadSpec) {
    s.null_deletes = true;
}

fn with_long_tags(s: &mut WorkloadSpec) {
    s.long_tag_pct = 3;
}

// ---- merges that create (doc_as_upsert) ----

async fn merge_creates_seed(seed: u64) {
    let sc = converges("mcreate", merge_creates(), seed, |_| {}).await;
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_creates_converges_seed_1() {
    merge_creates_seed(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_creates_converges_seed_2() {
    merge_creates_seed(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_creates_converges_seed_3() {
    merge_creates_seed(3).await;
}

/// Control: a merge-creates legacy system replayed with `--merge-absent ignore` leaves the
/// documents its merges created missing.
#[tokio::test(flavor = "multi_thread")]
async fn merge_creates_control_with_ignore_loses_documents() {
    let diffs = diverges("mcreate-ctl", merge_creates(), 1, |_| {}, |sc| sc.flags.merge_absent = "ignore".into()).await;
    assert!(diffs.iter().any(|d| d.contains("missing in target")), "documents missing: {diffs:?}");
}

/// The default legacy system (merges of absent documents ignored) with `--merge-absent
/// ignore`: the other policy, same scenario.
#[tokio::test(flavor = "multi_thread")]
async fn merge_ignores_converges() {
    let sc = converges("mignore", LegacyBehaviour::default(), 4, |_| {}).await;
    sc.cleanup().await;
}

// ---- null-value deletes (compacted topics) ----

async fn null_deletes_seed(seed: u64) {
    let sc = converges("nulldel", null_deletes(), seed, with_null_deletes).await;
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn null_deletes_converge_seed_1() {
    null_deletes_seed(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn null_deletes_converge_seed_2() {
    null_deletes_seed(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn null_deletes_converge_seed_3() {
    null_deletes_seed(3).await;
}

/// Control: with the default `--null-value dead-letter`, the deletes are dead-lettered and the
/// documents the legacy system deleted stay in the target. (So many dead letters trip the
/// poison breaker, which would halt the run before it shows that: it is set out of the way.)
#[tokio::test(flavor = "multi_thread")]
async fn null_deletes_control_dead_lettered_leaves_extra_documents() {
    let diffs = diverges("nulldel-ctl", null_deletes(), 1, with_null_deletes, |sc| {
        sc.flags.null_value = "dead-letter".into();
        sc.flags.extra = ["--max-poison-run", "1000000", "--max-poison-ratio", "1"].map(String::from).to_vec();
    })
    .await;
    assert!(diffs.iter().any(|d| d.contains("extra in target")), "deleted documents remain: {diffs:?}");
}

// ---- the version kept in the document ----

async fn version_field_seed(seed: u64) {
    let sc = converges("vfield", version_field(), seed, |_| {}).await;
    // The field is really there, at the version the target carries.
    let docs = cutover::sim::read_all(&sc.s.target(), &sc.target_index).await.unwrap();
    assert!(!docs.is_empty());
    for (id, (v, src)) in &docs {
        assert_eq!(src["meta"]["seq"].as_u64(), Some(*v), "{id}");
    }
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn version_field_converges_seed_1() {
    version_field_seed(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn version_field_converges_seed_2() {
    version_field_seed(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn version_field_converges_seed_3() {
    version_field_seed(3).await;
}

/// Control: the same legacy system replayed as if it used external versions (`--legacy-version
/// _version`): documents lack the version field and merge bases are misread.
#[tokio::test(flavor = "multi_thread")]
async fn version_field_control_with_version_diverges() {
    let diffs = diverges("vfield-ctl", version_field(), 1, |_| {}, |sc| sc.flags.legacy_version = "_version".into()).await;
    assert!(diffs.iter().any(|d| d.contains("!=")), "documents differ: {diffs:?}");
}

// ---- transactional producers ----

async fn transactional_seed(seed: u64) {
    let sc = converges("txn", transactional(), seed, |_| {}).await;
    if seed == 1 {
        // `--exit-when-idle` fires too: a fresh group replays the retained topic and exits.
        let mut again = sc.indexer_args(&["--exit-when-idle", "2s"]);
        let at = again.iter().position(|a| a == "--group").unwrap();
        again[at + 1] = format!("{}-again", sc.group);
        let p = Proc::start("indexer", &format!("{}-again", sc.topic), &again);
        assert!(p.wait(Duration::from_secs(90)).success(), "idle exit on a transactional topic");
        sc.assert_converged_to_model().await;
    }
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transactional_topic_converges_seed_1() {
    transactional_seed(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transactional_topic_converges_seed_2() {
    transactional_seed(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transactional_topic_converges_seed_3() {
    transactional_seed(3).await;
}

/// Control: on a transactional topic the high watermark lies past the last record (commit
/// markers occupy offsets), so "next offset after the last record received" never reaches it:
/// the lag the gate used to compute stays above 0 on every partition.
#[tokio::test(flavor = "multi_thread")]
async fn transactional_control_markers_leave_a_gap() {
    let mut sc = Scenario::with_behaviour("txn-ctl", 2, transactional()).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 50, 300, 7));
    sc.live(&cmds).await;
    let records = kafka::read_all(&sc.s.kafka, &sc.topic, cmds.len(), Duration::from_secs(30));
    assert_eq!(records.len(), cmds.len(), "every committed record is delivered");
    let poison = records.iter().filter(|m| m.payload().is_some_and(|p| String::from_utf8_lossy(p).contains("\"version\":10000"))).count();
    assert_eq!(poison, 0, "aborted records are never delivered");
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &sc.s.kafka).create().unwrap();
    for p in 0..sc.partitions {
        let last = records.iter().filter(|m| m.partition() == p).map(|m| m.offset()).max().unwrap();
        let (_, high) = c.fetch_watermarks(&sc.topic, p, Duration::from_secs(10)).unwrap();
        assert!(high > last + 1, "partition {p}: high watermark {high}, last record {last}");
    }
    sc.cleanup().await;
}

// ---- tag values over Lucene's term limit ----

async fn long_tags_seed(seed: u64) {
    let sc = converges("longtag", long_tags(), seed, with_long_tags).await;
    let docs = cutover::sim::read_all(&sc.s.target(), &sc.target_index).await.unwrap();
    let long = docs
        .values()
        .filter(|(_, src)| src["tags"].as_array().is_some_and(|t| t.iter().any(|t| t["value"].as_str().is_some_and(|v| v.len() > 32_766))))
        .count();
    assert!(long > 0, "some documents keep a tag over the term limit");
    // verify agrees, counting them equal.
    let args: Vec<String> = [
        "verify",
        "--legacy-url",
        &sc.s.legacy_url,
        "--target-url",
        &sc.s.target_url,
        "--source-index",
        &sc.legacy_index,
        "--target-index",
        &sc.target_index,
        "--legacy-version",
        "_version",
        "--settle-timeout",
        "5s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = cutover::procs::log_file(&format!("{}-verify", sc.topic));
    let status = std::process::Command::new(cutover::procs::bin("backfill")).args(&args).stdout(log.try_clone().unwrap()).stderr(log).status().unwrap();
    assert!(status.success(), "verify reports convergence: {status} (see target/test-logs)");
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_tags_converge_seed_1() {
    long_tags_seed(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_tags_converge_seed_2() {
    long_tags_seed(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_tags_converge_seed_3() {
    long_tags_seed(3).await;
}

/// Control: the target mapping as it was (keyword tag fields without `ignore_above`) refuses
/// the whole document when one tag exceeds the term limit; the derived mapping keeps it.
#[tokio::test(flavor = "multi_thread")]
async fn long_tags_control_without_ignore_above_loses_the_document() {
    use elasticsearch::http::Method;
    use serde_json::json;
    let sc = Scenario::with_behaviour("longtag-ctl", 1, long_tags()).await;
    let target = sc.s.target();
    let def = target.get(&format!("/{}", sc.target_index)).await.unwrap();
    let mut mappings = def[&sc.target_index]["mappings"].clone();
    for f in ["keyToValue", "value"] {
        assert!(mappings["properties"]["tags"]["properties"][f]["ignore_above"].is_u64(), "derived mapping sets ignore_above on {f}");
        mappings["properties"]["tags"]["properties"][f] = json!({"type": "keyword"});
    }
    let old = cutover::unique("longtag-old-mapping");
    target.ok(Method::Put, &format!("/{old}"), Some(&json!({"mappings": mappings, "settings": {"number_of_replicas": 0}}))).await.unwrap();
    let legacy = json!({"title": "t", "actions": {"tags": {"long": "x".repeat(33_000), "k": "v"}}});
    let doc = schema::TagRewrite::default().to_target(legacy.as_object().unwrap()).unwrap();
    let write = |index: &str| {
        format!(
            "{}\n{}\n",
            json!({"index": {"_index": index, "_id": "long", "version": 1, "version_type": "external"}}),
            serde_json::Value::Object(doc.clone())
        )
    };
    let refused = target.bulk(write(&old).into(), true).await.unwrap();
    assert_eq!(refused["items"][0]["index"]["status"], 400, "the old mapping refuses the document: {refused}");
    let kept = target.bulk(write(&sc.target_index).into(), true).await.unwrap();
    assert_eq!(kept["items"][0]["index"]["status"], 201, "the derived mapping keeps it: {kept}");
    let _ = target.request(Method::Delete, &format!("/{old}"), None).await;
    sc.cleanup().await;
}
