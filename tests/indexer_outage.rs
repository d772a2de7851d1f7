//! The target cluster is stopped for 30 s mid-run (with the project's own script) and started
//! again: the indexer pauses, retries, recovers by itself, and loses nothing.
//! Its own test binary: it takes the shared target cluster down, so nothing else may run.

use cutover::procs::services;
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn target_outage_pauses_and_recovers() {
    let mut sc = Scenario::new("outage", 2).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 300, 3000, 41));
    sc.live(&cmds[..1500]).await;
    let indexer = sc.start_indexer("main", &["--batch-max-docs", "50", "--linger", "0ms", "--max-backoff", "5000ms", "--exit-when-idle", "3s"]);
    Scenario::eventually("progress before the outage", Duration::from_secs(120), || {
        indexer.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 100.0
    })
    .await;
    services(&["down", "target"]);
    // The legacy side keeps living during the outage.
    sc.live(&cmds[1500..]).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let retries_during = indexer.metric("cutover_retries_total").unwrap_or(0.0);
    let paused_during = indexer.metric(indexer::consume::PAUSED);
    services(&["up", "target"]);
    assert!(indexer.wait(Duration::from_secs(240)).success(), "indexer recovered and finished by itself");
    assert!(retries_during > 0.0, "the outage was met with retries");
    assert_eq!(paused_during, Some(1.0), "consumption was paused during the outage (lanes full for more than a second)");
    assert_eq!(sc.committed().iter().sum::<i64>(), 3000);
    sc.assert_converged().await;
    sc.cleanup().await;
}
