//! The indexer against real Kafka and real clusters: replay, restart, crashes, rebalances,
//! poison records, and deletes that must stay deleted.

use cutover::procs::{http_get, log_of};
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use rand::{Rng, SeedableRng};
use std::time::Duration;

const RUN: Duration = Duration::from_secs(180);

/// Replay from offset zero while the legacy indexer keeps applying new commands: upserts,
/// merges (many on documents the target does not have yet) and deletes end exactly as the
/// legacy cluster holds them.
#[tokio::test(flavor = "multi_thread")]
async fn replay_converges_while_the_legacy_indexer_runs() {
    let mut sc = Scenario::new("replay", 3).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 400, 4000, 7));
    sc.live(&cmds[..2000]).await;
    let indexer = sc.start_indexer("main", &[]);
    for chunk in cmds[2000..].chunks(500) {
        sc.live(chunk).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    sc.drain_and_stop(indexer).await;
    sc.assert_converged().await;
    let committed: i64 = sc.committed().iter().sum();
    assert_eq!(committed, 4000, "every record committed");
}

/// A SIGTERM mid-topic stops cleanly with offsets committed part-way (read from Kafka); the
/// restart resumes there, consumes only the rest, and the end state is exact.
#[tokio::test(flavor = "multi_thread")]
async fn restart_resumes_from_committed_offsets() {
    let mut sc = Scenario::new("restart", 2).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 300, 3000, 11));
    sc.live(&cmds).await;
    let slow = ["--batch-max-docs", "20", "--linger", "0ms", "--max-in-flight", "1", "--refresh"];
    let first = sc.start_indexer("first", &slow);
    Scenario::eventually("some progress", RUN, || first.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 300.0).await;
    first.signal("TERM");
    let status = first.wait(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM exit: {status}");
    let after_first: i64 = sc.committed().iter().map(|&o| o.max(0)).sum();
    assert!(after_first > 0 && after_first < 3000, "committed part-way: {after_first}");

    let second_started = std::time::Instant::now();
    let mut second = sc.start_indexer("second", &["--exit-when-idle", "2s"]);
    let mut consumed = 0.0;
    while second.running() {
        consumed = second.metric("cutover_indexer_consumed_total").unwrap_or(consumed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second_wall = second_started.elapsed();
    assert!(second.wait(Duration::from_secs(5)).success());
    assert!(consumed as i64 <= 3000 - after_first, "second run consumed {consumed}, but {after_first} were committed");
    assert_eq!(sc.committed().iter().sum::<i64>(), 3000);
    // Its summary at the clean stop counts what it completed: exactly the records past the
    // offsets the first run committed (read from Kafka above), over a working time that leaves
    // out the idle wait before the exit.
    let log = cutover::procs::log_of(&format!("{}-second", sc.topic));
    let (records, span) = stop_summary(&log).expect("a summary on the clean-stop line");
    assert_eq!(records as i64, 3000 - after_first, "summary: {records} records completed");
    assert!(span > 0.0 && span < second_wall.as_secs_f64() - 2.0, "span {span} s, within the run less its 2 s idle wait ({second_wall:?})");
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// `records` and `span_secs` of the indexer's "indexer stopped cleanly" line (text log format).
fn stop_summary(log: &str) -> Option<(u64, f64)> {
    let line = log.lines().rfind(|l| l.contains("indexer stopped cleanly"))?;
    let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('=').map(str::to_owned));
    Some((field("records")?.parse().ok()?, field("span_secs")?.parse().ok()?))
}

/// kill -9 at five seeded random instants while the indexer is working (each run first
/// waits for its assignment: the previous, killed member holds the group until its session
/// times out), then a final run: nothing lost, nothing extra.
#[tokio::test(flavor = "multi_thread")]
async fn kill_nine_at_random_points_loses_nothing() {
    let mut sc = Scenario::new("kill9", 3).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 500, 6000, 23));
    sc.live(&cmds).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    let slow = ["--batch-max-docs", "20", "--linger", "0ms", "--max-in-flight", "2", "--refresh"];
    let mut progress = Vec::new();
    for round in 0..5 {
        let p = sc.start_indexer(&format!("crash{round}"), &slow);
        Scenario::eventually("the run to be working", RUN, || p.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 0.0).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
        p.kill9();
        progress.push(sc.committed().iter().map(|&o| o.max(0)).sum::<i64>());
    }
    sc.run_indexer_to_idle("final", &[], RUN);
    let mid = *progress.last().unwrap();
    assert!(mid > 0 && mid < 6000, "the crashes happened mid-run (committed after each crash: {progress:?})");
    assert_eq!(sc.committed().iter().sum::<i64>(), 6000);
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// Two processes in one group; one is killed mid-run; the survivor takes its partitions over.
/// The commands are produced once both hold their share of the partitions: a member alone in
/// the group would otherwise fetch the whole topic into its backlog before the other joins, and
/// the other would have nothing to do (a race on which one the group assigned first).
#[tokio::test(flavor = "multi_thread")]
async fn two_indexers_one_killed_mid_run() {
    let mut sc = Scenario::new("pair", 4).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 300, 3000, 31));
    let slow = ["--batch-max-docs", "20", "--linger", "0ms", "--refresh"];
    let a = sc.start_indexer("a", &slow);
    let b = sc.start_indexer("b", &slow);
    let names = [format!("{}-a", sc.topic), format!("{}-b", sc.topic)];
    Scenario::eventually("both assigned two partitions", RUN, || names.iter().all(|n| partitions_held(n) == 2)).await;
    sc.live(&cmds).await;
    Scenario::eventually("both consuming", RUN, || {
        a.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 50.0
            && b.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 50.0
    })
    .await;
    a.kill9();
    Scenario::eventually("the survivor caught up", RUN, || http_get(b.metrics_port, "/ready").is_some_and(|r| r.contains("\"caught_up\":true"))).await;
    b.signal("TERM");
    assert!(b.wait(RUN).success());
    assert_eq!(sc.committed().iter().sum::<i64>(), 3000);
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// How many partitions the indexer whose log is `name` holds, from its last assignment or
/// revoke line.
fn partitions_held(name: &str) -> usize {
    let log = log_of(name);
    let last = log.lines().rfind(|l| l.contains("partitions assigned") || l.contains("partitions revoked"));
    last.filter(|l| l.contains("partitions assigned")).map_or(0, |l| l.matches("(\"").count())
}

/// A delete applied by the indexer is not resurrected by a stale (older-version) write that
/// arrives more than 60 s later, because the target index runs with a raised `gc_deletes`.
/// A control index with a 1 s `gc_deletes` shows the hazard is real: there the same stale
/// write brings the document back.
#[tokio::test(flavor = "multi_thread")]
async fn delete_is_not_resurrected_after_sixty_seconds() {
    use serde_json::json;
    let mut sc = Scenario::new("tomb", 1).await;
    let idx = sc.legacy_index.clone();
    let cmds: Vec<cutover::sim::SimCommand> = [
        json!({"op": "upsert", "id": "gone", "index": idx, "version": 1, "doc": {"title": "soon deleted", "actions": {"tags": {"k": "v"}}}}),
        json!({"op": "delete", "id": "gone", "index": idx, "version": 2}),
    ]
    .into_iter()
    .map(|e| cutover::sim::SimCommand { id: "gone".into(), version: e["version"].as_u64().unwrap(), envelope: e, ..Default::default() })
    .collect();
    sc.live(&cmds).await;
    sc.run_indexer_to_idle("tomb", &[], RUN);
    let target = sc.s.target();
    assert!(cutover::sim::get_doc(&target, &sc.target_index, "gone", None).await.unwrap().is_none());

    // Control: same delete, gc_deletes of 1 s.
    let control = cutover::unique("tomb-control");
    target
        .ok(
            elasticsearch::http::Method::Put,
            &format!("/{control}"),
            Some(&json!({"settings": {"index": {"gc_deletes": "1s", "number_of_shards": 1, "number_of_replicas": 0}}})),
        )
        .await
        .unwrap();
    let write = |index: &str, action: &str, version: u64| {
        let meta = json!({action: {"_index": index, "_id": "gone", "version": version, "version_type": "external"}});
        if action == "delete" {
            format!("{meta}\n")
        } else {
            format!("{meta}\n{}\n", json!({"title": "stale", "tags": []}))
        }
    };
    target.bulk(format!("{}{}", write(&control, "index", 1), write(&control, "delete", 2)).into(), true).await.unwrap();

    tokio::time::sleep(Duration::from_secs(65)).await;
    for index in [&sc.target_index, &control] {
        target.refresh(index).await.unwrap();
        target.ok(elasticsearch::http::Method::Post, &format!("/{index}/_flush"), None).await.unwrap();
    }
    // The backfill's view of the document from before the delete arrives now.
    let stale = target.bulk(write(&sc.target_index, "index", 1).into(), true).await.unwrap();
    assert_eq!(stale["items"][0]["index"]["status"], 409, "stale write superseded: {stale}");
    assert!(cutover::sim::get_doc(&target, &sc.target_index, "gone", None).await.unwrap().is_none(), "delete stays deleted");
    let resurrected = target.bulk(write(&control, "index", 1).into(), true).await.unwrap();
    assert_eq!(resurrected["items"][0]["index"]["status"], 201, "control: with gc_deletes=1s the stale write resurrects: {resurrected}");
}
