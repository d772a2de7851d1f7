//! Shared pieces of the backfill end-to-end tests: a fast generator of legacy data (with
//! thousands of distinct tag keys, custom routing on some documents, several shards, external
//! versions), target creation, and configs with test-friendly defaults.
#![allow(dead_code)]

use backfill::{CopyConfig, CreateIndexConfig, ProgressMode, VerifyConfig};
use cluster::Es;
use elasticsearch::http::Method;
use futures::stream::{self, StreamExt};
use schema::{LegacyVersionSource, TagRewrite};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Shape of a generated legacy index.
#[derive(Clone, Debug)]
pub struct Spec {
    pub docs: usize,
    pub shards: u32,
    /// Distinct tag keys (all mapped up front, as the exploded legacy mapping would be).
    pub keys: usize,
}

/// The legacy version of document `i` (also its external `_version`).
pub fn version_of(i: usize) -> u64 {
    1_000 + i as u64 * 3
}

/// The id of document `i`: mostly plain, some with characters that need URL encoding.
pub fn id_of(i: usize) -> String {
    if i % 997 == 5 {
        format!("doc/{i} ü?")
    } else {
        format!("doc-{i}")
    }
}

/// The custom routing of document `i` (every tenth document has one).
pub fn routing_of(i: usize) -> Option<String> {
    (i % 10 == 3).then(|| format!("tenant-{}", i % 13))
}

const STATUSES: [&str; 5] = ["open", "closed", "pending", "archived", "draft"];

/// The legacy `_source` of document `i`: 1-4 tags out of `keys`, a few nested tag objects and
/// arrays, a low-cardinality `status`, a number and the version field.
pub fn source_of(i: usize, keys: usize) -> Value {
    let mut tags = Map::new();
    let n = 1 + i % 4;
    for j in 0..n {
        let k = (i.wrapping_mul(7919) + j * 104_729) % keys;
        tags.insert(format!("key-{k}"), json!(format!("val-{}", (i + j) % 50)));
    }
    tags.insert("color".into(), json!(["red", "green", "blue"][i % 3]));
    if i % 50 == 7 {
        tags.insert("geo".into(), json!({"country": format!("c{}", i % 9), "city": "x"}));
    }
    if i % 40 == 1 {
        tags.insert("multi".into(), json!(["a", format!("m{}", i % 6)]));
    }
    json!({
        "title": format!("document number {i}"),
        "status": STATUSES[i % STATUSES.len()],
        "n": i,
        "version": version_of(i),
        "actions": {"tags": tags, "count": i % 11}
    })
}

/// The legacy index body: keyword dynamic templates under the tag map (the classic setup that
/// explodes), every generated key mapped up front (one cluster-state update instead of
/// thousands), and a total-fields limit high enough for them.
pub fn legacy_body(spec: &Spec) -> Value {
    let mut tag_props = Map::new();
    for k in 0..spec.keys {
        tag_props.insert(format!("key-{k}"), json!({"type": "keyword"}));
    }
    // A legacy field that ignores very long values: the target's keyword does not, which lets
    // tests plant a document the target rejects as poison.
    tag_props.insert("big".into(), json!({"type": "keyword", "ignore_above": 256}));
    json!({
        "settings": {
            "number_of_shards": spec.shards,
            "number_of_replicas": 0,
            "refresh_interval": "-1",
            "mapping": {"total_fields": {"limit": spec.keys + 1000}}
        },
        "mappings": {
            "dynamic_templates": [
                {"tags_string": {"path_match": "actions.tags.*", "match_mapping_type": "string", "mapping": {"type": "keyword"}}}
            ],
            "properties": {
                "title": {"type": "text"},
                "status": {"type": "keyword"},
                "n": {"type": "long"},
                "version": {"type": "long"},
                "actions": {"properties": {"count": {"type": "integer"}, "tags": {"properties": tag_props}}}
            }
        }
    })
}

/// Creates the legacy index and bulk-loads `spec.docs` documents with external versions
/// (`_version == version field`), then refreshes.
pub async fn load_legacy(es: &Es, index: &str, spec: &Spec) {
    es.ok(Method::Put, &format!("/{index}"), Some(&legacy_body(spec))).await.expect("create legacy index");
    let batch = 5_000;
    let batches: Vec<(usize, usize)> = (0..spec.docs).step_by(batch).map(|s| (s, (s + batch).min(spec.docs))).collect();
    let results: Vec<()> = stream::iter(batches)
        .map(|(start, end)| {
            let es = es.clone();
            let index = index.to_string();
            let keys = spec.keys;
            async move {
                let mut body = Vec::with_capacity((end - start) * 300);
                for i in start..end {
                    let mut meta = json!({"_index": index, "_id": id_of(i), "version": version_of(i), "version_type": "external"});
                    if let Some(r) = routing_of(i) {
                        meta["routing"] = json!(r);
                    }
                    serde_json::to_writer(&mut body, &json!({"index": meta})).unwrap();
                    body.push(b'\n');
                    serde_json::to_writer(&mut body, &source_of(i, keys)).unwrap();
                    body.push(b'\n');
                }
                let resp = cutover::sim::bulk_retrying(&es, body.into()).await.expect("legacy bulk");
                assert_eq!(resp["errors"], json!(false), "legacy bulk errors: {}", &resp.to_string()[..2000.min(resp.to_string().len())]);
            }
        })
        .buffer_unordered(2)
        .collect()
        .await;
    assert_eq!(results.len(), spec.docs.div_ceil(batch));
    es.ok(Method::Put, &format!("/{index}/_settings"), Some(&json!({"index": {"refresh_interval": "1s"}}))).await.unwrap();
    es.refresh(index).await.unwrap();
}

/// Indexes one legacy document as the legacy indexer would (external version, refresh).
pub async fn put_legacy(es: &Es, index: &str, id: &str, routing: Option<&str>, version: u64, source: &Value) {
    let mut meta = json!({"_index": index, "_id": id, "version": version, "version_type": "external"});
    if let Some(r) = routing {
        meta["routing"] = json!(r);
    }
    let body = format!("{}\n{}\n", json!({"index": meta}), source);
    let resp = es.bulk(body.into(), true).await.unwrap();
    assert_eq!(resp["errors"], json!(false), "{resp}");
}

/// Creates the target index from the legacy one with the library's `create_index`.
pub async fn create_target(legacy: &Es, target: &Es, source: &str, dest: &str) {
    let mut extra = Map::new();
    extra.insert("index.number_of_replicas".into(), json!(0));
    let cfg = CreateIndexConfig {
        source_index: source.into(),
        target_index: dest.into(),
        tags: TagRewrite::default(),
        gc_deletes: "48h".into(),
        extra_settings: extra,
        drop_settings: Vec::new(),
        copy_pipelines: false,
    };
    backfill::create_index(legacy, target, &cfg).await.expect("create target index");
}

/// A scratch directory unique to this test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(cutover::unique(&format!("backfill-{name}")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy config for tests: version from the `version` field, no progress output, the job
/// named after `dir` (its checkpoints in the dev Kafka), failures in `dir`.
pub fn copy_config(source: &str, dest: &str, dir: &std::path::Path) -> CopyConfig {
    let mut cfg = CopyConfig::new(source, dest, Some(LegacyVersionSource::Field("version".into())));
    cfg.job.kafka.brokers = cutover::Services::from_env().kafka;
    cfg.job.name = Some(cutover::job_name(dir));
    cfg.failures_file = dir.join("failures.jsonl");
    cfg.progress = ProgressMode::Off;
    cfg
}

/// A verify config for tests (short settle timeout: the legacy side is static).
pub fn verify_config(source: &str, dest: &str) -> VerifyConfig {
    let mut cfg = VerifyConfig::new(source, dest, LegacyVersionSource::Field("version".into()));
    cfg.settle_timeout = std::time::Duration::from_secs(3);
    cfg.recheck_interval = std::time::Duration::from_millis(300);
    cfg
}

/// Deletes test indices (best effort) so repeated runs do not fill the dev clusters.
pub async fn cleanup(es: &Es, index: &str) {
    let _ = es.request(Method::Delete, &format!("/{index}"), None).await;
}

/// The `backfill` binary next to this test executable (`dev/test.sh` builds every binary first).
pub fn backfill_bin() -> PathBuf {
    cutover::procs::bin("backfill")
}
