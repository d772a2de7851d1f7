//! One migration scenario for a test: a legacy index, a target index built from it, a command
//! topic, an indexer group, all uniquely named so tests run in parallel.

use crate::procs::Proc;
use crate::sim::{self, LegacyBehaviour, LegacyIndexer, SimCommand};
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
    /// How the indexer is told about the legacy system (derived from the legacy behaviour;
    /// control runs change them to show each option matters).
    pub flags: IndexerFlags,
}

/// The indexer options that describe the legacy system.
#[derive(Clone, Debug)]
pub struct IndexerFlags {
    pub version_source: String,
    pub legacy_version: String,
    pub merge_absent: String,
    pub null_value: String,
}

impl IndexerFlags {
    /// The options matching a legacy behaviour.
    pub fn for_behaviour(b: &LegacyBehaviour) -> Self {
        IndexerFlags {
            // Null-value records have no body: their version comes from a header.
            version_source: if b.null_deletes { "header:version" } else { "field:version" }.into(),
            legacy_version: b.legacy_version(),
            merge_absent: if b.merge_creates { "create" } else { "ignore" }.into(),
            null_value: if b.null_deletes { "delete" } else { "dead-letter" }.into(),
        }
    }
}

impl Scenario {
    /// Creates the legacy index (2 shards), the target index from it, and a topic.
    pub async fn new(name: &str, partitions: i32) -> Scenario {
        Self::with_behaviour(name, partitions, LegacyBehaviour::default()).await
    }

    /// [`Scenario::new`] with a legacy system behaving as `behaviour`.
    pub async fn with_behaviour(name: &str, partitions: i32, behaviour: LegacyBehaviour) -> Scenario {
        let s = Services::require().await;
        let legacy_index = unique(&format!("{name}-old"));
        let target_index = unique(&format!("{name}-new"));
        let topic = unique(&format!("{name}-cmds"));
        let group = unique(&format!("{name}-grp"));
        sim::create_legacy_index_for(&s.legacy(), &legacy_index, 2, &behaviour).await.expect("legacy index");
        sim::create_target_index(&s.legacy(), &legacy_index, &s.target(), &target_index).await.expect("target index");
        kafka::create_topic(&s.kafka, &topic, partitions).await;
        let flags = IndexerFlags::for_behaviour(&behaviour);
        let legacy = LegacyIndexer::with_behaviour(s.legacy(), &legacy_index, behaviour);
        Scenario { s, legacy_index, target_index, topic, group, partitions, legacy, legacy_lag: LEGACY_LAG, flags }
    }

    /// The legacy version source that truly reads the legacy documents.
    pub fn legacy_version(&self) -> schema::LegacyVersionSource {
        self.legacy.behaviour.legacy_version().parse().expect("legacy version source")
    }

    /// Produces commands to the topic, keyed by document id, with the version also in a
    /// `version` header; null-value commands without a value. A transactional legacy system
    /// produces them in transactions of 50, and after every other one aborts a transaction of
    /// poison (deletes of the same documents at versions far ahead) that must never be applied.
    pub async fn produce(&self, cmds: &[SimCommand]) {
        let record = |c: &SimCommand| kafka::Rec { key: Some(c.id.clone().into_bytes()), value: c.value(), headers: c.headers() };
        if self.legacy.behaviour.transactional {
            let records: Vec<kafka::Rec> = cmds.iter().map(record).collect();
            let poison = |chunk: &[SimCommand]| -> Vec<kafka::Rec> {
                chunk
                    .iter()
                    .map(|c| {
                        let env = serde_json::json!({"op": "delete", "id": c.id, "index": self.legacy_index, "version": c.version + 1_000_000_000});
                        let headers = vec![("version", (c.version + 1_000_000_000).to_string().into_bytes())];
                        kafka::Rec { key: Some(c.id.clone().into_bytes()), value: Some(env.to_string().into_bytes()), headers }
                    })
                    .collect()
            };
            let aborted: Vec<Vec<kafka::Rec>> = cmds.chunks(50).step_by(2).map(poison).collect();
            kafka::produce_transactions(&self.s.kafka, &self.topic, &records, 50, &aborted).await;
            return;
        }
        let p = kafka::producer(&self.s.kafka);
        let sends = cmds.iter().map(|c| {
            let rec = record(c);
            let p = &p;
            async move { kafka::produce_rec(p, &self.topic, &rec).await }
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
            "--version-source".into(), self.flags.version_source.clone(),
            "--legacy-version".into(), self.flags.legacy_version.clone(),
            "--merge-absent".into(), self.flags.merge_absent.clone(),
            "--null-value".into(), self.flags.null_value.clone(),
            "--index-map".into(), format!("{}={}", self.legacy_index, self.target_index),
            "--legacy-url".into(), self.s.legacy_url.clone(),
            "--target-url".into(), self.s.target_url.clone(),
            "--session-timeout-ms".into(), "6000".into(),
            "--shutdown-timeout-secs".into(), "10".into(),
        ];
        if self.legacy.behaviour.null_deletes {
            // A null-value record names no index.
            a.extend(["--default-index".to_string(), self.legacy_index.clone()]);
        }
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
        let diffs = self.differences().await;
        assert!(diffs.is_empty(), "{} differences, first ones:\n{}", diffs.len(), diffs.iter().take(10).cloned().collect::<Vec<_>>().join("\n"));
    }

    /// The differences between the target and `transform(legacy)` (versions read as the
    /// legacy behaviour stores them).
    pub async fn differences(&self) -> Vec<String> {
        sim::differences_by(&self.s.legacy(), &self.legacy_index, &self.s.target(), &self.target_index, &self.legacy_version())
            .await
            .expect("read both clusters")
    }

    /// Asserts that both clusters hold exactly the simulator's final model (the legacy cluster
    /// as stored, the target transformed), read back with the harness's own reader, and that
    /// they agree with each other.
    pub async fn assert_converged_to_model(&self) {
        let version = self.legacy_version();
        let legacy = sim::read_all(&self.s.legacy(), &self.legacy_index).await.expect("read legacy");
        let diffs = sim::model_differences(&self.legacy.state, &legacy, false, &version).expect("compare legacy");
        assert!(diffs.is_empty(), "legacy cluster != simulator model: {} differences, first: {:?}", diffs.len(), &diffs[..diffs.len().min(5)]);
        let target = sim::read_all(&self.s.target(), &self.target_index).await.expect("read target");
        let diffs = sim::model_differences(&self.legacy.state, &target, true, &version).expect("compare target");
        assert!(diffs.is_empty(), "target != transform(model): {} differences, first: {:?}", diffs.len(), &diffs[..diffs.len().min(10)]);
        self.assert_converged().await;
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
            "--legacy-version".into(), self.legacy.behaviour.legacy_version(),
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
