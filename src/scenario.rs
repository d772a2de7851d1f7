//! One migration scenario for a test: a legacy index, a target index built from it, a command
//! topic, an indexer group, all uniquely named so tests run in parallel. The legacy and target
//! clusters are parameters ([`Scenario::with_clusters`]): 7.17 -> 9.x by default, or any other
//! pair the version tests run (6.8 and OpenSearch).

use crate::procs::Proc;
use crate::sim::{self, LegacyIndexer, LegacyLayout, SimCommand};
use cluster::{ClusterConfig, Es};
use crate::{kafka, unique, Services};
use std::time::{Duration, Instant};

/// The default lag of the simulated legacy indexer behind the topic.
pub const LEGACY_LAG: Duration = Duration::from_millis(1500);

/// Names and clients of one scenario.
pub struct Scenario {
    pub s: Services,
    /// The legacy cluster of this scenario (`s.legacy_url` unless chosen otherwise).
    pub legacy_url: String,
    /// The target cluster of this scenario (`s.target_url` unless chosen otherwise).
    pub target_url: String,
    /// Mapping type and version location of the legacy index.
    pub layout: LegacyLayout,
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
    /// Creates the legacy index (2 shards), the target index from it, and a topic, on the
    /// default pair (legacy 7.17, target 9.x).
    pub async fn new(name: &str, partitions: i32) -> Scenario {
        Self::on_kafka(name, partitions, None).await
    }

    /// Like [`Scenario::new`], with the topic on other brokers (e.g. the `kafka-secure` node,
    /// registered with [`kafka::register`]); the indexer gets them as `--brokers`.
    pub async fn on_kafka(name: &str, partitions: i32, brokers: Option<&str>) -> Scenario {
        let s = Services::require().await;
        let (legacy_url, target_url) = (s.legacy_url.clone(), s.target_url.clone());
        let sc = Self::build(name, partitions, &legacy_url, &target_url, LegacyLayout::default(), brokers).await;
        sim::create_target_index(&sc.legacy_es(), &sc.legacy_index, &sc.target_es(), &sc.target_index).await.expect("target index");
        sc
    }

    /// A scenario on any pair of clusters: creates the legacy index (2 shards; under
    /// `layout.doc_type` on 6.x) and the topic, but NOT the target index, which the caller
    /// creates as the pair's test requires (e.g. with `backfill create-index`,
    /// [`Scenario::run_create_index`]). Kafka must answer; so must both clusters.
    pub async fn with_clusters(name: &str, partitions: i32, legacy_url: &str, target_url: &str, layout: LegacyLayout) -> Scenario {
        Self::build(name, partitions, legacy_url, target_url, layout, None).await
    }

    async fn build(name: &str, partitions: i32, legacy_url: &str, target_url: &str, layout: LegacyLayout, brokers: Option<&str>) -> Scenario {
        let mut s = Services::require().await;
        if let Some(b) = brokers {
            s.kafka = b.to_string();
        }
        let service = |url: &str| match url {
            u if u == s.legacy6_url => "legacy6",
            u if u == s.opensearch_url => "opensearch",
            u if u == s.target_url => "target",
            _ => "legacy",
        };
        let legacy_es = Services::require_extra(service(legacy_url), legacy_url).await;
        Services::require_extra(service(target_url), target_url).await;
        let legacy_index = unique(&format!("{name}-old"));
        let target_index = unique(&format!("{name}-new"));
        let topic = unique(&format!("{name}-cmds"));
        let group = unique(&format!("{name}-grp"));
        sim::create_legacy_index_typed(&legacy_es, &legacy_index, 2, layout.doc_type.as_deref()).await.expect("legacy index");
        kafka::create_topic(&s.kafka, &topic, partitions).await;
        let legacy = LegacyIndexer::with_layout(legacy_es, &legacy_index, layout.clone());
        Scenario {
            s,
            legacy_url: legacy_url.to_string(),
            target_url: target_url.to_string(),
            layout,
            legacy_index,
            target_index,
            topic,
            group,
            partitions,
            legacy,
            legacy_lag: LEGACY_LAG,
        }
    }

    /// A client of this scenario's legacy cluster.
    pub fn legacy_es(&self) -> Es {
        Es::connect(&ClusterConfig::plain(self.legacy_url.clone())).expect("valid URL")
    }

    /// A client of this scenario's target cluster.
    pub fn target_es(&self) -> Es {
        Es::connect(&ClusterConfig::plain(self.target_url.clone())).expect("valid URL")
    }

    /// Runs `backfill create-index` (the target definition derived from the legacy index as
    /// the legacy cluster reports it), asserting it exits 0.
    pub fn run_create_index(&self, extra: &[&str]) {
        let mut args: Vec<String> = vec![
            "create-index".into(),
            "--legacy-url".into(), self.legacy_url.clone(),
            "--target-url".into(), self.target_url.clone(),
            "--source-index".into(), self.legacy_index.clone(),
            "--target-index".into(), self.target_index.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = std::process::Command::new(crate::procs::bin("backfill")).args(&args).output().expect("run backfill create-index");
        assert!(
            out.status.success(),
            "backfill create-index exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
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
            "--legacy-version".into(), self.layout.version_arg(),
            "--index-map".into(), format!("{}={}", self.legacy_index, self.target_index),
            "--legacy-url".into(), self.legacy_url.clone(),
            "--target-url".into(), self.target_url.clone(),
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
        let diffs = sim::differences_with(&self.legacy_es(), &self.legacy_index, &self.target_es(), &self.target_index, &self.layout.version_source())
            .await
            .expect("read both clusters");
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
            "--legacy-url".into(), self.legacy_url.clone(),
            "--target-url".into(), self.target_url.clone(),
            "--source-index".into(), self.legacy_index.clone(),
            "--target-index".into(), self.target_index.clone(),
            "--legacy-version".into(), self.layout.version_arg(),
            "--checkpoint-dir".into(), checkpoints.display().to_string(),
            "--progress".into(), "log".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Runs `backfill verify --parity` (the binary, as an operator would) and returns its JSON
    /// report, asserting the exit code says converged (0) and parity passed.
    pub fn run_verify_parity(&self, name: &str) -> backfill::VerifyReport {
        let report = std::env::temp_dir().join(format!("{}-{name}-verify.json", self.topic));
        let args: Vec<String> = vec![
            "verify".into(),
            "--legacy-url".into(), self.legacy_url.clone(),
            "--target-url".into(), self.target_url.clone(),
            "--source-index".into(), self.legacy_index.clone(),
            "--target-index".into(), self.target_index.clone(),
            "--legacy-version".into(), self.layout.version_arg(),
            "--parity".into(),
            "--settle-timeout-secs".into(), "10".into(),
            "--report-json".into(), report.display().to_string(),
        ];
        let log = crate::procs::log_path(&format!("{}-{name}", self.topic));
        let out = std::process::Command::new(crate::procs::bin("backfill")).args(&args).output().expect("run backfill verify");
        let _ = std::fs::write(&log, [out.stdout.as_slice(), out.stderr.as_slice()].concat());
        let parsed: Option<backfill::VerifyReport> = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let _ = std::fs::remove_file(&report);
        let parsed = parsed.unwrap_or_else(|| panic!("backfill verify wrote no report (exit {}); see {}", out.status, log.display()));
        assert!(
            out.status.success() && parsed.converged,
            "backfill verify exit {}: {}",
            out.status,
            serde_json::to_string_pretty(&parsed).unwrap_or_default()
        );
        parsed
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
        let _ = self.legacy_es().request(Method::Delete, &format!("/{}", self.legacy_index), None).await;
        for index in [self.target_index.clone(), schema::tombstone_index(&self.target_index)] {
            let _ = self.target_es().request(Method::Delete, &format!("/{index}"), None).await;
        }
        kafka::delete_topics(&self.s.kafka, &[&self.topic, &format!("{}.dlq", self.topic)]).await;
    }
}
