//! Real per-item 429s: a 9.x node whose write thread pool has one thread and a one-slot queue
//! (`dev/services.sh up tiny`) rejects shard-level bulk work under concurrency. The indexer must
//! retry those items, never drop them.

use cluster::{ClusterConfig, Es};
use cutover::procs::services;
use cutover::scenario::Scenario;
use cutover::sim::{self, generate, WorkloadSpec};
use std::time::Duration;

async fn write_rejections(es: &Es) -> u64 {
    let stats = es.get("/_nodes/stats/thread_pool").await.expect("node stats");
    stats["nodes"].as_object().unwrap().values().map(|n| n["thread_pool"]["write"]["rejected"].as_u64().unwrap_or(0)).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn per_item_429s_are_retried_not_dropped() {
    services(&["up", "tiny"]);
    let tiny_url = std::env::var("CUTOVER_TINY_URL").unwrap_or_else(|_| "http://127.0.0.1:9202".into());
    let tiny = Es::connect(&ClusterConfig::plain(tiny_url.clone())).unwrap();
    let mut sc = Scenario::new("pressure", 4).await;
    // The target index lives on the tiny node, with many shards so one bulk fans out.
    let target_index = sc.target_index.clone();
    let legacy_def = sc.s.legacy().get(&format!("/{}", sc.legacy_index)).await.unwrap();
    let mut def = schema::target_definition(&legacy_def[&sc.legacy_index], &schema::TargetDefinitionConfig::default()).unwrap();
    def["settings"]["index"]["number_of_shards"] = 6.into();
    tiny.ok(elasticsearch::http::Method::Put, &format!("/{target_index}"), Some(&def)).await.expect("target on tiny");

    let cmds = generate(&WorkloadSpec { upsert_pct: 90, merge_pct: 5, ..WorkloadSpec::new(&sc.legacy_index, 3000, 6000, 51) });
    sc.live(&cmds).await;
    let before = write_rejections(&tiny).await;
    let mut args = sc.indexer_args(&["--max-in-flight", "8", "--batch-max-docs", "200", "--max-backoff", "1000ms", "--exit-when-idle", "3s"]);
    let at = args.iter().position(|a| a == "--target-url").unwrap();
    args[at + 1] = tiny_url;
    let p = cutover::procs::Proc::start("indexer", &format!("{}-main", sc.topic), &args);
    let retries_seen = {
        let mut last = 0.0;
        let mut p = p;
        while p.running() {
            last = p.metric("cutover_bulk_items_total{outcome=\"retry\"}").unwrap_or(last);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(p.wait(Duration::from_secs(5)).success());
        last
    };
    let rejected = write_rejections(&tiny).await - before;
    assert!(rejected > 0, "the node rejected writes (429): {rejected}");
    assert!(retries_seen > 0.0, "the indexer saw retryable items");
    let diffs = sim::differences(&sc.s.legacy(), &sc.legacy_index, &tiny, &target_index).await.unwrap();
    assert!(diffs.is_empty(), "{} differences: {:?}", diffs.len(), &diffs[..diffs.len().min(5)]);
    assert_eq!(sc.committed().iter().sum::<i64>(), 6000);
}
