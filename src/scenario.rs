//! One migration scenario for a test: a legacy index, a target index built from it, a command
//! topic, an indexer group, all uniquely named so tests run in parallel. The legacy and target
//! clusters are parameters ([`Scenario::with_clusters`]): 7.17 -> 9.x by default, or any other
//! pair the version tests run (6.8 and OpenSearch).

use crate::procs::Proc;
use crate::sim::{self, LegacyBehaviour, LegacyIndexer, SimCommand};
use crate::{kafka, unique, Services};
use cluster::{ClusterConfig, Es};
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
    /// Where the writers (the indexer, `backfill copy`) send their target requests, when not
    /// straight to `target_url`: e.g. a [`crate::relay::Relay`] in front of it. Everything
    /// else (the scenario's clients, `create-index`, `verify`, `finalize`) goes straight.
    pub writers_target_url: Option<String>,
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

/// What a `backfill copy` run left ([`Scenario::run_copy_in`]).
#[derive(Debug)]
pub struct CopyRun {
    /// The exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// Its stdout and stderr.
    pub text: String,
    /// The lines of its failures file (documents not copied).
    pub failed: Vec<String>,
}

/// The indexer options that describe the legacy system.
#[derive(Clone, Debug)]
pub struct IndexerFlags {
    pub version_source: String,
    pub legacy_version: String,
    pub merge_absent: String,
    pub null_value: String,
    /// Further options (a control run that must get past a safety net to show what an option
    /// changes, e.g. the poison breaker).
    pub extra: Vec<String>,
}

impl IndexerFlags {
    /// The options matching a legacy behaviour.
    pub fn for_behaviour(b: &LegacyBehaviour) -> Self {
        IndexerFlags {
            // Null-value records have no body: their version comes from a header.
            version_source: if b.null_deletes { "header:version" } else { "field:version" }.into(),
            legacy_version: b.version_arg(),
            merge_absent: if b.merge_creates { "create" } else { "ignore" }.into(),
            null_value: if b.null_deletes { "delete" } else { "dead-letter" }.into(),
            extra: Vec::new(),
        }
    }
}

impl Scenario {
    /// Creates the legacy index (2 shards), the target index from it, and a topic, on the
    /// default pair (legacy 7.17, target 9.x).
    pub async fn new(name: &str, partitions: i32) -> Scenario {
        Self::with_behaviour(name, partitions, LegacyBehaviour::default()).await
    }

    /// [`Scenario::new`] with a legacy system behaving as `behaviour`.
    pub async fn with_behaviour(name: &str, partitions: i32, behaviour: LegacyBehaviour) -> Scenario {
        Self::on_default_pair(name, partitions, behaviour, None).await
    }

    /// Like [`Scenario::new`], with the topic on other brokers (e.g. the `kafka-secure` node,
    /// registered with [`kafka::register`]); the indexer gets them as `--brokers`.
    pub async fn on_kafka(name: &str, partitions: i32, brokers: Option<&str>) -> Scenario {
        Self::on_default_pair(name, partitions, LegacyBehaviour::default(), brokers).await
    }

    async fn on_default_pair(name: &str, partitions: i32, behaviour: LegacyBehaviour, brokers: Option<&str>) -> Scenario {
        let s = Services::require().await;
        let (legacy_url, target_url) = (s.legacy_url.clone(), s.target_url.clone());
        let sc = Self::build(name, partitions, &legacy_url, &target_url, behaviour, brokers).await;
        sim::create_target_index(&sc.legacy_es(), &sc.legacy_index, &sc.target_es(), &sc.target_index).await.expect("target index");
        sc
    }

    /// A scenario on any pair of clusters: creates the legacy index (2 shards; under
    /// `behaviour.doc_type` on 6.x) and the topic, but NOT the target index, which the caller
    /// creates as the pair's test requires (e.g. with `backfill create-index`,
    /// [`Scenario::run_create_index`]). Kafka must answer; so must both clusters.
    pub async fn with_clusters(name: &str, partitions: i32, legacy_url: &str, target_url: &str, behaviour: LegacyBehaviour) -> Scenario {
        Self::build(name, partitions, legacy_url, target_url, behaviour, None).await
    }

    async fn build(name: &str, partitions: i32, legacy_url: &str, target_url: &str, behaviour: LegacyBehaviour, brokers: Option<&str>) -> Scenario {
        let mut s = Services::require().await;
        if let Some(b) = brokers {
            s.kafka = b.to_string();
        }
        let legacy_es = Services::require_extra(s.service_name(legacy_url), legacy_url).await;
        Services::require_extra(s.service_name(target_url), target_url).await;
        let legacy_index = unique(&format!("{name}-old"));
        let target_index = unique(&format!("{name}-new"));
        let topic = unique(&format!("{name}-cmds"));
        let group = unique(&format!("{name}-grp"));
        sim::create_legacy_index_for(&legacy_es, &legacy_index, 2, &behaviour).await.expect("legacy index");
        kafka::create_topic(&s.kafka, &topic, partitions).await;
        let flags = IndexerFlags::for_behaviour(&behaviour);
        let legacy = LegacyIndexer::with_behaviour(legacy_es, &legacy_index, behaviour);
        Scenario {
            s,
            legacy_url: legacy_url.to_string(),
            target_url: target_url.to_string(),
            writers_target_url: None,
            legacy_index,
            target_index,
            topic,
            group,
            partitions,
            legacy,
            legacy_lag: LEGACY_LAG,
            flags,
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
        let out = self.create_index_output(extra);
        assert!(
            out.status.success(),
            "backfill create-index exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `backfill create-index` with `extra` flags and returns its output, whatever its
    /// exit status (for the refusals).
    pub fn create_index_output(&self, extra: &[&str]) -> std::process::Output {
        let mut args = self.backfill_command("create-index");
        args.extend(extra.iter().map(|s| s.to_string()));
        std::process::Command::new(crate::procs::bin("backfill")).args(&args).output().expect("run backfill create-index")
    }

    /// The legacy version source that truly reads the legacy documents.
    pub fn legacy_version(&self) -> schema::LegacyVersionSource {
        self.legacy.behaviour.version_source()
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
            "--brokers".into(),
            self.s.kafka.clone(),
            "--topic".into(),
            self.topic.clone(),
            "--group".into(),
            self.group.clone(),
            "--version-source".into(),
            self.flags.version_source.clone(),
            "--legacy-version".into(),
            self.flags.legacy_version.clone(),
            "--merge-absent".into(),
            self.flags.merge_absent.clone(),
            "--null-value".into(),
            self.flags.null_value.clone(),
            "--index-map".into(),
            format!("{}={}", self.legacy_index, self.target_index),
            "--legacy-url".into(),
            self.legacy_url.clone(),
            "--target-url".into(),
            self.writers_target().to_string(),
            "--session-timeout".into(),
            "6000ms".into(),
            "--shutdown-timeout".into(),
            "10s".into(),
        ];
        if self.legacy.behaviour.null_deletes {
            // A null-value record names no index.
            a.extend(["--default-index".to_string(), self.legacy_index.clone()]);
        }
        a.extend(self.flags.extra.iter().cloned());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// The target URL the writers get as `--target-url`: `writers_target_url`, else
    /// `target_url`.
    pub fn writers_target(&self) -> &str {
        self.writers_target_url.as_deref().unwrap_or(&self.target_url)
    }

    /// Starts an indexer process for this scenario.
    pub fn start_indexer(&self, name: &str, extra: &[&str]) -> Proc {
        Proc::start("indexer", &format!("{}-{name}", self.topic), &self.indexer_args(extra))
    }

    /// Runs an indexer until it is caught up and idle, asserting it exits 0.
    pub fn run_indexer_to_idle(&self, name: &str, extra: &[&str], timeout: Duration) {
        let mut args = vec!["--exit-when-idle", "2s"];
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
        sim::differences_with(&self.legacy_es(), &self.legacy_index, &self.target_es(), &self.target_index, &self.legacy_version())
            .await
            .expect("read both clusters")
    }

    /// Asserts that both clusters hold exactly the simulator's final model (the legacy cluster
    /// as stored, the target transformed), read back with the harness's own reader, and that
    /// they agree with each other.
    pub async fn assert_converged_to_model(&self) {
        let version = self.legacy_version();
        let legacy = sim::read_all(&self.legacy_es(), &self.legacy_index).await.expect("read legacy");
        let diffs = sim::model_differences(&self.legacy.state, &legacy, false, &version).expect("compare legacy");
        assert!(diffs.is_empty(), "legacy cluster != simulator model: {} differences, first: {:?}", diffs.len(), &diffs[..diffs.len().min(5)]);
        let target = sim::read_all(&self.target_es(), &self.target_index).await.expect("read target");
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
    /// `backfill <command>` with this scenario's two clusters and two indices: what every
    /// backfill command takes.
    fn backfill_command(&self, command: &str) -> Vec<String> {
        self.backfill_command_to(command, &self.target_url)
    }

    /// [`Scenario::backfill_command`] with `target_url` as the `--target-url`.
    fn backfill_command_to(&self, command: &str, target_url: &str) -> Vec<String> {
        [command, "--legacy-url", &self.legacy_url, "--target-url", target_url, "--source-index", &self.legacy_index, "--target-index", &self.target_index]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Backfill arguments for this scenario (`copy`, writing to
    /// [`Scenario::writers_target`]), plus `extra`. `job` names the copy job (its last path
    /// component: a run with the same one resumes it, another starts a new job).
    pub fn backfill_args(&self, job: &std::path::Path, extra: &[&str]) -> Vec<String> {
        let mut a = self.backfill_command_to("copy", self.writers_target());
        a.extend(["--legacy-version".into(), self.legacy.behaviour.version_arg(), "--job".into(), crate::job_name(job), "--progress".into(), "log".into()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Runs `backfill verify --parity` (the binary, as an operator would) and returns its JSON
    /// report, asserting the exit code says converged (0) and parity passed.
    pub fn run_verify_parity(&self, name: &str) -> backfill::VerifyReport {
        let report = std::env::temp_dir().join(format!("{}-{name}-verify.json", self.topic));
        let mut args = self.backfill_command("verify");
        args.extend([
            "--legacy-version".into(),
            self.legacy.behaviour.version_arg(),
            "--parity".into(),
            "--settle-timeout".into(),
            "10s".into(),
            "--report-json".into(),
            report.display().to_string(),
        ]);
        let log = crate::procs::log_path(&format!("{}-{name}", self.topic));
        let out = std::process::Command::new(crate::procs::bin("backfill")).args(&args).output().expect("run backfill verify");
        let _ = std::fs::write(&log, [out.stdout.as_slice(), out.stderr.as_slice()].concat());
        let parsed: Option<backfill::VerifyReport> = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let _ = std::fs::remove_file(&report);
        let parsed = parsed.unwrap_or_else(|| panic!("backfill verify wrote no report (exit {}); see {}", out.status, log.display()));
        assert!(out.status.success() && parsed.converged, "backfill verify exit {}: {}", out.status, serde_json::to_string_pretty(&parsed).unwrap_or_default());
        parsed
    }

    /// Runs `backfill finalize` (the legacy index's refresh_interval and replicas restored on
    /// the target, which the copy's bulk-load settings changed), asserting it exits 0; returns
    /// its output.
    pub fn run_finalize(&self) -> String {
        let out = std::process::Command::new(crate::procs::bin("backfill"))
            .args(self.backfill_command("finalize"))
            .args(["--timeout", "60s"])
            .output()
            .expect("run backfill finalize");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "backfill finalize exited with {}: {text}", out.status);
        text
    }

    /// Runs `backfill copy` as job `<dir>-<name>` and with its failures file at
    /// `dir/<name>.jsonl`, whatever its exit: the exit code, what it printed (stdout and
    /// stderr), and the failures file's lines.
    pub fn run_copy_in(&self, dir: &std::path::Path, name: &str, extra: &[&str]) -> CopyRun {
        let failures = dir.join(format!("{name}.jsonl"));
        let mut args = self.backfill_args(&dir.join(name), extra);
        // No metrics: tests running at the same time would share the default port.
        args.extend(["--failures-file".to_string(), failures.display().to_string(), "--no-metrics".to_string()]);
        let out = std::process::Command::new(crate::procs::bin("backfill")).args(&args).output().expect("run backfill copy");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let failed = std::fs::read_to_string(&failures).unwrap_or_default().lines().map(str::to_string).collect();
        CopyRun { code: out.status.code(), text, failed }
    }

    /// Runs `backfill copy` to completion, asserting it exits 0.
    pub fn run_backfill(&self, name: &str, extra: &[&str]) {
        self.run_backfill_started_by(Proc::start, name, extra)
    }

    /// [`Scenario::run_backfill`], the process started by `start` (e.g.
    /// [`Proc::start_then_lose_the_log_reader`]).
    pub fn run_backfill_started_by(&self, start: fn(&str, &str, &[String]) -> Proc, name: &str, extra: &[&str]) {
        let dir = std::env::temp_dir().join(format!("{}-{name}-checkpoints", self.topic));
        let p = start("backfill", &format!("{}-{name}", self.topic), &self.backfill_args(&dir, extra));
        let status = p.wait(Duration::from_secs(300));
        assert!(status.success(), "backfill {name} exited with {status} (see target/test-logs)");
    }
}

impl Scenario {
    /// Once all commands are produced (and every `backfill copy` has ended): the cutover steps.
    /// `backfill finalize` (restores the target settings the copy turned off; the gate stays
    /// closed without it), then waits for the indexer's readiness gate (the whole group caught
    /// up), then stops it with SIGTERM and asserts a clean exit. Unlike
    /// `--exit-when-idle`, this cannot stop an indexer that caught up between two bursts
    /// of live traffic.
    pub async fn drain_and_stop(&self, p: Proc) {
        self.run_finalize();
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
