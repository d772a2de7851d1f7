//! Legacy index settings that depend on the cluster around the index (docs/legacy-settings.md):
//! an ingest pipeline the target lacks, a node the target does not have, async translog
//! durability. `backfill create-index` refuses each, with its fix, and creates nothing; its
//! flags (`--copy-pipelines`, `--drop-setting`, `--setting`) make it pass; and the writers'
//! start-up check (`backfill copy`, the indexer) refuses a target index whose pipeline is
//! missing or whose translog is async.
//!
//! The test servers are `integ-test-zip` builds without the ingest-common module: the pipelines
//! here have no processors (accepted by both 7.17 and 9.x), which is enough, since what matters
//! is whether the cluster has a pipeline of that id at all.

use cluster::{Es, Method};
use cutover::procs::{self, Proc};
use cutover::scenario::Scenario;
use cutover::sim::{self, generate, LegacyBehaviour, WorkloadSpec};
use cutover::{unique, Services};
use serde_json::{json, Value};
use std::process::Output;
use std::time::Duration;

async fn scenario(name: &str) -> Scenario {
    let s = Services::require().await;
    Scenario::with_clusters(name, 1, &s.legacy_url, &s.target_url, LegacyBehaviour::default()).await
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Asserts that create-index failed, saying each of `needles`, and created no target index.
async fn assert_refused(sc: &Scenario, out: &Output, needles: &[&str]) {
    let said = text(out);
    assert!(!out.status.success(), "create-index must refuse, exited {}: {said}", out.status);
    for needle in needles {
        assert!(said.contains(needle), "the refusal must say `{needle}`:\n{said}");
    }
    assert!(sc.target_es().get_index(&sc.target_index).await.unwrap().is_none(), "a refused create-index created the target index");
}

/// A pipeline without processors (the test servers have no ingest-common), told apart by its
/// description.
fn pipeline_body(description: &str) -> Value {
    json!({"description": description, "processors": []})
}

async fn put_pipeline(es: &Es, id: &str, body: &Value) {
    es.ok(Method::Put, &format!("/_ingest/pipeline/{id}"), Some(body)).await.unwrap_or_else(|e| panic!("PUT pipeline {id}: {e}"));
}

async fn delete_pipelines(sc: &Scenario, ids: &[&str]) {
    for es in [sc.legacy_es(), sc.target_es()] {
        for id in ids {
            let _ = es.request(Method::Delete, &format!("/_ingest/pipeline/{id}"), None).await;
        }
    }
}

/// The pipeline as a cluster reports it, without the fields 9.x adds (`*_date_millis`).
async fn pipeline(es: &Es, id: &str) -> Option<Value> {
    let mut p = cluster::readiness::get_pipeline(es, id).await.unwrap()?;
    let m = p.as_object_mut().unwrap();
    m.retain(|k, _| !k.ends_with("_date_millis"));
    Some(p)
}

async fn put_settings(es: &Es, index: &str, settings: Value) {
    es.ok(Method::Put, &format!("/{index}/_settings"), Some(&settings)).await.unwrap_or_else(|e| panic!("PUT {index}/_settings {settings}: {e}"));
}

/// One flat setting of an index (`index.x`), None when unset.
async fn setting(es: &Es, index: &str, key: &str) -> Option<String> {
    let body = es.get(&format!("/{index}/_settings?flat_settings=true")).await.unwrap();
    body.as_object().unwrap().values().next()?.pointer("/settings")?.get(key)?.as_str().map(str::to_owned)
}

/// Writes a small history to the legacy index (straight to the legacy cluster, through its
/// default pipeline when it has one).
async fn legacy_docs(sc: &mut Scenario, seed: u64) {
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 150, 400, seed));
    sc.legacy.apply(&cmds).await.expect("legacy writes");
}

/// `backfill copy` of the scenario as a process: its exit status and its log.
fn copy(sc: &Scenario, name: &str) -> (std::process::ExitStatus, String) {
    let dir = std::env::temp_dir().join(format!("{}-{name}-checkpoints", sc.topic));
    let log = format!("{}-{name}", sc.topic);
    let status = Proc::start("backfill", &log, &sc.backfill_args(&dir, &[])).wait(Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&dir);
    (status, procs::log_of(&log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_refuses_a_pipeline_the_target_lacks() {
    let sc = scenario("ls-refuse").await;
    let id = unique("ls-stamp");
    put_pipeline(&sc.legacy_es(), &id, &pipeline_body("stamps documents on the legacy cluster")).await;
    put_settings(&sc.legacy_es(), &sc.legacy_index, json!({"index.default_pipeline": id})).await;

    let out = sc.create_index_output(&[]);
    assert_refused(
        &sc,
        &out,
        &[
            &format!("index.default_pipeline names ingest pipeline `{id}`, which the target cluster does not have"),
            "--copy-pipelines",
            "--drop-setting index.default_pipeline",
            "docs/legacy-settings.md",
        ],
    )
    .await;
    assert!(pipeline(&sc.target_es(), &id).await.is_none(), "nothing copied without --copy-pipelines");

    // A pipeline the target already has is fine, whoever made it.
    put_pipeline(&sc.target_es(), &id, &pipeline_body("the target's own")).await;
    sc.run_create_index(&[]);
    assert_eq!(setting(&sc.target_es(), &sc.target_index, "index.default_pipeline").await.as_deref(), Some(id.as_str()));

    sc.cleanup().await;
    delete_pipelines(&sc, &[&id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_pipelines_copies_them_before_the_index_and_the_backfill_writes_through_them() {
    let mut sc = scenario("ls-copy").await;
    let (stamp, audit) = (unique("ls-stamp"), unique("ls-audit"));
    let legacy = sc.legacy_es();
    put_pipeline(&legacy, &stamp, &pipeline_body("stamps documents")).await;
    put_pipeline(&legacy, &audit, &json!({"description": "audits documents", "version": 3, "_meta": {"owner": "search-team"}, "processors": []})).await;
    put_settings(&legacy, &sc.legacy_index, json!({"index.default_pipeline": stamp, "index.final_pipeline": audit})).await;
    legacy_docs(&mut sc, 11).await;

    // The target already has a pipeline of that id with another definition: never overwritten.
    put_pipeline(&sc.target_es(), &audit, &pipeline_body("something else entirely")).await;
    let out = sc.create_index_output(&["--copy-pipelines"]);
    assert_refused(&sc, &out, &[&format!("index.final_pipeline names ingest pipeline `{audit}`"), "different definition"]).await;
    assert!(pipeline(&sc.target_es(), &stamp).await.is_none(), "a refused create-index copies nothing");
    assert_eq!(pipeline(&sc.target_es(), &audit).await, Some(pipeline_body("something else entirely")), "left as it was");
    sc.target_es().ok(Method::Delete, &format!("/_ingest/pipeline/{audit}"), None).await.unwrap();

    sc.run_create_index(&["--copy-pipelines"]);
    for id in [&stamp, &audit] {
        let copied = pipeline(&sc.target_es(), id).await.unwrap_or_else(|| panic!("pipeline {id} not copied to the target"));
        assert_eq!(Some(copied), pipeline(&legacy, id).await, "{id} copied as the legacy cluster has it");
    }
    assert_eq!(setting(&sc.target_es(), &sc.target_index, "index.default_pipeline").await.as_deref(), Some(stamp.as_str()));
    assert_eq!(setting(&sc.target_es(), &sc.target_index, "index.final_pipeline").await.as_deref(), Some(audit.as_str()));
    // Idempotent: the same command again (pipelines and index already there) is a no-op.
    sc.run_create_index(&["--copy-pipelines"]);

    // Every backfill write goes through both pipelines on the target: they exist, so it works.
    let (status, log) = copy(&sc, "copy");
    assert!(status.success(), "backfill copy exited {status}:\n{log}");
    sc.assert_converged().await;
    assert!(!sim::read_all(&sc.target_es(), &sc.target_index).await.unwrap().is_empty(), "documents were copied");

    sc.cleanup().await;
    delete_pipelines(&sc, &[&stamp, &audit]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_setting_leaves_the_pipeline_out() {
    let sc = scenario("ls-drop").await;
    let id = unique("ls-stamp");
    put_pipeline(&sc.legacy_es(), &id, &pipeline_body("stamps documents")).await;
    put_settings(&sc.legacy_es(), &sc.legacy_index, json!({"index.default_pipeline": id, "index.refresh_interval": "2s"})).await;

    sc.run_create_index(&["--drop-setting", "index.default_pipeline"]);
    let target = sc.target_es();
    assert_eq!(setting(&target, &sc.target_index, "index.default_pipeline").await, None, "the setting is left out");
    assert_eq!(setting(&target, &sc.target_index, "index.refresh_interval").await.as_deref(), Some("2s"), "the others are copied");
    assert!(pipeline(&target, &id).await.is_none(), "nothing copied");
    // Idempotent with the setting left out, with or without the `index.` prefix...
    sc.run_create_index(&["--drop-setting", "index.default_pipeline"]);
    sc.run_create_index(&["--drop-setting", "default_pipeline"]);
    // ... and without the flag, the setting (and the pipeline the target lacks) is back.
    let out = sc.create_index_output(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("names ingest pipeline `{id}`")), "{}", text(&out));

    sc.cleanup().await;
    delete_pipelines(&sc, &[&id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_translog_is_refused_until_set_to_request() {
    let sc = scenario("ls-translog").await;
    put_settings(&sc.legacy_es(), &sc.legacy_index, json!({"index.translog.durability": "async"})).await;

    let out = sc.create_index_output(&[]);
    assert_refused(&sc, &out, &["index.translog.durability is `async`", "node crash", "--setting index.translog.durability=request"]).await;

    sc.run_create_index(&["--setting", "index.translog.durability=request"]);
    assert_eq!(setting(&sc.target_es(), &sc.target_index, "index.translog.durability").await.as_deref(), Some("request"));
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_to_a_node_the_target_lacks_is_refused() {
    let sc = scenario("ls-alloc").await;
    let node_name = |nodes: Value| nodes["nodes"].as_object().unwrap().values().next().unwrap()["name"].as_str().unwrap().to_owned();
    let legacy_node = node_name(sc.legacy_es().get("/_nodes/_local").await.unwrap());
    let target_node = node_name(sc.target_es().get("/_nodes/_local").await.unwrap());
    assert_ne!(legacy_node, target_node, "the test needs nodes named differently");
    // Pinned to the legacy node by name, as operators pin indices before a shrink.
    put_settings(&sc.legacy_es(), &sc.legacy_index, json!({"index.routing.allocation.require._name": legacy_node})).await;

    let key = "index.routing.allocation.require._name";
    let out = sc.create_index_output(&[]);
    assert_refused(&sc, &out, &[&format!("{key} is `{legacy_node}`"), &format!("_name: {target_node}"), &format!("--drop-setting {key}"), "--setting"]).await;

    sc.run_create_index(&["--setting", &format!("{key}={target_node}")]);
    let health = sc.target_es().get(&format!("/_cluster/health/{}?wait_for_status=yellow&timeout=30s", sc.target_index)).await.unwrap();
    assert_eq!(health["timed_out"], json!(false), "the target's primaries are assigned: {health}");
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_refuse_a_target_whose_pipeline_is_missing_or_translog_async() {
    let mut sc = scenario("ls-start").await;
    legacy_docs(&mut sc, 12).await;
    let id = unique("ls-gone");
    // Made by hand (not by create-index): Elasticsearch accepts an index naming a pipeline it
    // does not have, then refuses every write to it.
    let legacy_def = sc.legacy_es().get_index(&sc.legacy_index).await.unwrap().unwrap();
    let mut def = schema::target_definition(&legacy_def, &schema::TargetDefinitionConfig::default()).unwrap();
    def["settings"]["index"]["default_pipeline"] = json!(id);
    let target = sc.target_es();
    target.ok(Method::Put, &format!("/{}", sc.target_index), Some(&def)).await.unwrap();

    let (status, log) = copy(&sc, "missing");
    assert!(!status.success(), "backfill copy must refuse to start:\n{log}");
    assert!(log.contains(&format!("index.default_pipeline names ingest pipeline `{id}`, which this cluster does not have")), "{log}");
    assert!(sim::read_all(&target, &sc.target_index).await.unwrap().is_empty(), "nothing written");
    // The indexer runs the same check at start-up: exit 2 (refused to start), naming the pipeline.
    let indexer = sc.start_indexer("missing", &[]);
    let log_name = indexer.name.clone();
    let status = indexer.wait(Duration::from_secs(60));
    let log = procs::log_of(&log_name);
    assert_eq!(status.code(), Some(2), "the indexer must refuse to start:\n{log}");
    assert!(log.contains(&format!("index.default_pipeline names ingest pipeline `{id}`")), "{log}");

    // With the pipeline there, the next refusal is the async translog.
    put_pipeline(&target, &id, &pipeline_body("now it exists")).await;
    put_settings(&target, &sc.target_index, json!({"index.translog.durability": "async"})).await;
    let (status, log) = copy(&sc, "async");
    assert!(!status.success(), "backfill copy must refuse to start:\n{log}");
    assert!(log.contains("index.translog.durability is `async`") && !log.contains(&format!("`{id}`, which")), "{log}");

    put_settings(&target, &sc.target_index, json!({"index.translog.durability": "request"})).await;
    let (status, log) = copy(&sc, "fit");
    assert!(status.success(), "backfill copy exited {status}:\n{log}");
    sc.assert_converged().await;

    sc.cleanup().await;
    delete_pipelines(&sc, &[&id]).await;
}
