//! One migration scenario for a test: a legacy index, a target index built from it, a command
//! topic, an indexer group, all uniquely named so tests run in parallel.

use crate::procs::Proc;
use crate::sim::{self, LegacyIndexer, SimCommand};
use crate::{kafka, unique, Services};
use std::time::{Duration, Instant};

/// The default lag of the simulated legacy indexer behind the topic.
pub const LEGACY_LAG: Duration = Duration::from_millis(1500);

/// Names and clients of one scenario.
pub struct Scenario {
    pub s: Services,
    pub legacy_index: String,
    pub target_index: String,
    pub topic: String,
    pub group: String,
    pub partitions: i32,
    pub legacy: LegacyIndexer,
    /// How far the legacy indexer lags the topic in [`Scenario::live`]: commands are produced
    /// first and applied to the legacy cluster this much later, so the new indexer is already
    /// replaying them (as a real legacy consumer a few seconds behind would let it).
    pub legacy_lag: Duration,
}

impl Scenario {
    /// Creates the legacy index (2 shards), the target index from it, and a topic.
    pub async fn new(name: &str, partitions: i32) -> Scenario {
        Self::on_kafka(name, partitions, None).await
    }

    /// Like [`Scenario::new`], with the topic on other brokers (e.g. the `kafka-secure` node,
    /// registered with [`kafka::register`]); the indexer gets them as `--brokers`.
    pub async fn on_kafka(name: &str, partitions: i32, brokers: Option<&str>) -> Scenario {
        let mut s = Services::require().await;
        if let Some(b) = brokers {
            s.kafka = b.to_string();
        }
        let legacy_index = unique(&format!("{name}-old"));
        let target_index = unique(&format!("{name}-new"));
        let topic = unique(&format!("{name}-cmds"));
        let group = unique(&format!("{name}-grp"));
        sim::create_legacy_index(&s.legacy(), &legacy_index, 2).await.expect("legacy index");
        sim::create_target_index(&s.legacy(), &legacy_index, &s.target(), &target_index).await.expect("target index");
        kafka::create_topic(&s.kafka, &topic, partitions).await;
        let legacy = LegacyIndexer::new(s.legacy(), &legacy_index);
        Scenario { s, legacy_index, target_index, topic, group, partitions, legacy, legacy_lag: LEGACY_LAG }
    }

    /// Produces commands to the topic, keyed by document id.
    pub async fn produce(&self, cmds: &[SimCommand]) {
        let p = kafka::producer(&self.s.kafka);
        let sends = cmds.iter().map(|c| {
            let payload = c.payload();
            let p = &p;
            async move { kafka::produce(p, &self.topic, Some(c.id.as_bytes()), &payload, &[]).await }
        });
        futures::future::join_all(sends).await;
    }

    /// The live system: commands are produced to the topic, and the legacy indexer applies them
    /// `legacy_lag` later (it lags the new indexer, which may already have applied them).
    pub async fn live(&mut self, cmds: &[SimCommand]) {
        self.produce(cmds).await;
        tokio::time::sleep(self.legacy_lag).await;
        self.legacy.apply(cmds).await.expect("legacy indexer");
    }

    /// Indexer arguments for this scenario, plus `extra`.
    pub fn indexer_args(&self, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--brokers".into(), self.s.kafka.clone(),
            "--topic".into(), self.topic.clone(),
            "--group".into(), self.group.clone(),
            "--version-source".into(), "field:version".into(),
            "--legacy-version".into(), "_version".into(),
            "--index-map".into(), format!("{}={}", self.legacy_index, self.target_index),
            "--legacy-url".into(), self.s.legacy_url.clone(),
            "--target-url".into(), self.s.target_url.clone(),
            "--session-timeout-ms".into(), "6000".into(),
            "--shutdown-timeout-secs".into(), "10".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Starts an indexer process for this scenario.
    pub fn start_indexer(&self, name: &str, extra: &[&str]) -> Proc {
        Proc::start("indexer", &format!("{}-{name}", self.topic), &self.indexer_args(extra))
    }

    /// Runs an indexer until it is caught up and idle, asserting it exits 0.
    pub fn run_indexer_to_idle(&self, name: &str, extra: &[&str], timeout: Duration) {
        let mut args = vec!["--exit-when-idle-secs", "2"];
        args.extend_from_slice(extra);
        let p = self.start_indexer(name, &args);
        let status = p.wait(timeout);
        assert!(status.success(), "indexer {name} exited with {status} (see target/test-logs)");
    }

    /// Asserts `target == transform(legacy)` document by document, versions included.
    pub async fn assert_converged(&self) {
        let diffs = sim::differences(&self.s.legacy(), &self.legacy_index, &self.s.target(), &self.target_index).await.expect("read both clusters");
        assert!(diffs.is_empty(), "{} differences, first ones:\n{}", diffs.len(), diffs.iter().take(10).cloned().collect::<Vec<_>>().join("\n"));
    }

    /// Committed offsets of the indexer group, per partition.
    pub fn committed(&self) -> Vec<i64> {
        kafka::committed(&self.s.kafka, &self.group, &self.topic, self.partitions)
    }

    /// Waits until `f()` is true or panics after `timeout`.
    pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Scenario {
    /// Backfill arguments for this scenario (`copy`), plus `extra`.
    pub fn backfill_args(&self, checkpoints: &std::path::Path, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "copy".into(),
            "--legacy-url".into(), self.s.legacy_url.clone(),
            "--target-url".into(), self.s.target_url.clone(),
            "--source-index".into(), self.legacy_index.clone(),
            "--target-index".into(), self.target_index.clone(),
            "--legacy-version".into(), "_version".into(),
            "--checkpoint-dir".into(), checkpoints.display().to_string(),
            "--progress".into(), "log".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Runs `backfill copy` to completion, asserting it exits 0.
    pub fn run_backfill(&self, name: &str, extra: &[&str]) {
        let dir = std::env::temp_dir().join(format!("{}-{name}-checkpoints", self.topic));
        let p = Proc::start("backfill", &format!("{}-{name}", self.topic), &self.backfill_args(&dir, extra));
        let status = p.wait(Duration::from_secs(300));
        assert!(status.success(), "backfill {name} exited with {status} (see target/test-logs)");
    }
}

impl Scenario {
    /// Once all commands are produced: waits for the indexer's readiness gate (the whole group
    /// caught up), then stops it with SIGTERM and asserts a clean exit. Unlike
    /// `--exit-when-idle-secs`, this cannot stop an indexer that caught up between two bursts
    /// of live traffic.
    pub async fn drain_and_stop(&self, p: Proc) {
        Scenario::eventually("indexer caught up", Duration::from_secs(240), || {
            crate::procs::http_get(p.metrics_port, "/ready").is_some_and(|r| r.contains("\"caught_up\":true"))
        })
        .await;
        p.signal("TERM");
        let status = p.wait(Duration::from_secs(30));
        assert!(status.success(), "indexer exit after SIGTERM: {status}");
    }
}

impl Scenario {
    /// Deletes what the scenario created (indices on both clusters, the tombstone index, the
    /// topic and its dead-letter topic), so a long test run does not fill the small test heaps.
    /// Called at the end of a passing test; a failing one leaves its state for inspection.
    pub async fn cleanup(&self) {
        use elasticsearch::http::Method;
        let _ = self.s.legacy().request(Method::Delete, &format!("/{}", self.legacy_index), None).await;
        for index in [self.target_index.clone(), schema::tombstone_index(&self.target_index)] {
            let _ = self.s.target().request(Method::Delete, &format!("/{index}"), None).await;
        }
        kafka::delete_topics(&self.s.kafka, &[&self.topic, &format!("{}.dlq", self.topic)]).await;
    }
}
