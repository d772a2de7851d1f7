//! The convergence model end to end: backfill and replay together reach exactly
//! `transform(legacy)` whatever their interleaving, with the topic's oldest records gone
//! (retention), live traffic throughout, and merges on documents only the old cluster has.

use cutover::kafka;
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use std::time::Duration;

const RUN: Duration = Duration::from_secs(240);

/// History written by the legacy system, then retention removes the oldest half of the topic.
async fn history_with_retention(name: &str, seed: u64) -> (Scenario, Vec<cutover::sim::SimCommand>) {
    let mut sc = Scenario::new(name, 3).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 1500, 9000, seed));
    sc.live(&cmds[..6000]).await;
    let low = kafka::expire_oldest(&sc.s.kafka, &sc.topic, sc.partitions, 0.5).await;
    assert!(low.iter().all(|&o| o > 0), "retention removed records: {low:?}");
    (sc, cmds)
}

/// The live tail of the workload, in a few bursts.
async fn live_tail(sc: &mut Scenario, cmds: &[cutover::sim::SimCommand]) {
    for chunk in cmds[6000..].chunks(1000) {
        sc.live(chunk).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replay alone cannot rebuild the expired history: the control shows the gap is real.
#[tokio::test(flavor = "multi_thread")]
async fn replay_alone_misses_expired_history() {
    let (sc, _) = history_with_retention("gap", 1).await;
    sc.run_indexer_to_idle("only", &[], RUN);
    let diffs = cutover::sim::differences(&sc.s.legacy(), &sc.legacy_index, &sc.s.target(), &sc.target_index).await.unwrap();
    assert!(diffs.iter().any(|d| d.contains("missing in target")), "without a backfill, documents are missing");
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_before_replay() {
    let (mut sc, cmds) = history_with_retention("before", 2).await;
    sc.run_backfill("copy", &[]);
    let indexer = sc.start_indexer("replay", &[]);
    live_tail(&mut sc, &cmds).await;
    sc.drain_and_stop(indexer).await;
    sc.assert_converged().await;
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_during_replay() {
    let (mut sc, cmds) = history_with_retention("during", 3).await;
    let indexer = sc.start_indexer("replay", &["--batch-max-docs", "100"]);
    let dir = std::env::temp_dir().join(format!("{}-checkpoints", sc.topic));
    let backfill = cutover::procs::Proc::start("backfill", &format!("{}-copy", sc.topic), &sc.backfill_args(&dir, &["--batch-size", "200"]));
    live_tail(&mut sc, &cmds).await;
    assert!(backfill.wait(RUN).success());
    sc.drain_and_stop(indexer).await;
    sc.assert_converged().await;
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_after_replay_caught_up() {
    let (mut sc, cmds) = history_with_retention("after", 4).await;
    let indexer = sc.start_indexer("replay", &[]);
    Scenario::eventually("indexer caught up", RUN, || {
        cutover::procs::http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains("\"caught_up\":true"))
    })
    .await;
    sc.run_backfill("copy", &[]);
    live_tail(&mut sc, &cmds).await;
    sc.drain_and_stop(indexer).await;
    sc.assert_converged().await;
    sc.cleanup().await;
}
