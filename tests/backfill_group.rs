//! A copy job shared by three `backfill copy` workers through the job's Kafka consumer group
//! (issue 33), with real faults:
//!
//! - three workers share 12 slices; one is killed with SIGKILL mid-run, another is SIGSTOPped
//!   past its session timeout and later SIGCONTed. The job completes: every slice is marked
//!   done exactly once in the job's state, no slice's checkpoint ever goes backwards, and the
//!   target equals transform(legacy) read back by the harness's own reader. The woken
//!   worker's late checkpoint is refused (its log says so and its metric counts it).
//! - `backfill status` during the job (slices in progress, by which worker) and after it
//!   (complete, every slice done, every document counted).
//! - Control: the same with the woken worker's fence disabled (`--unsafe-unfenced-checkpoints`:
//!   no ownership check, a refused commit retried until the group takes it): its late
//!   checkpoint lands and a slice's checkpoint goes backwards, which is what the fence
//!   prevents.
//!
//! Every checkpoint the broker ever accepted is read from `__consumer_offsets` by the
//! harness's own decoder ([`cutover::kafka::commit_history`]), not through the backfill.

mod backfill_support;

use backfill_support::*;
use cutover::procs::{log_of, Proc};
use cutover::{unique, Services};
use schema::LegacyVersionSource;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DOCS: usize = 60_000;
const SLICES: u32 = 12;
const SESSION: &str = "6s";

struct Job {
    s: Services,
    source: String,
    dest: String,
    job: String,
}

impl Job {
    fn group(&self) -> String {
        format!("cutover-backfill.{}", self.job)
    }

    fn worker(&self, id: &str, extra: &[&str]) -> Proc {
        let mut args: Vec<String> = [
            "copy",
            "--legacy-url",
            &self.s.legacy_url,
            "--target-url",
            &self.s.target_url,
            "--source-index",
            &self.source,
            "--target-index",
            &self.dest,
            "--legacy-version",
            "field:version",
            "--brokers",
            &self.s.kafka,
            "--job",
            &self.job,
            "--worker-id",
            id,
            "--slices",
            "12",
            "--session-timeout",
            SESSION,
            "--batch-size",
            "250",
            "--bulk-concurrency",
            "2",
            "--max-docs-per-sec",
            "1500",
            "--progress",
            "log",
            "--log-interval",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--failures-file".into(), std::env::temp_dir().join(format!("{}-{id}.jsonl", self.job)).display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Proc::start("backfill", &format!("{}-{id}", self.job), &args)
    }

    /// (scanned, done) of each slice as the broker holds it now.
    fn checkpoints(&self) -> Vec<Option<(u64, bool)>> {
        cutover::kafka::committed_metadata(&self.s.kafka, &self.group(), &self.group(), SLICES as i32)
            .into_iter()
            .map(|c| {
                c.map(|(_, meta)| {
                    let v: Value = serde_json::from_str(&meta).expect("checkpoint JSON");
                    (v["scanned"].as_u64().unwrap(), v["done"].as_bool().unwrap())
                })
            })
            .collect()
    }

    fn scanned(&self) -> u64 {
        self.checkpoints().iter().flatten().map(|c| c.0).sum()
    }

    fn status(&self) -> Value {
        let out = std::process::Command::new(backfill_bin())
            .args(["status", "--brokers", &self.s.kafka, "--job", &self.job, "--json"])
            .output()
            .expect("run backfill status");
        assert!(out.status.success(), "backfill status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Per slice, every checkpoint the broker accepted, in order: (scanned, done, worker).
    fn history(&self) -> BTreeMap<i32, Vec<(u64, bool, String)>> {
        let mut out: BTreeMap<i32, Vec<(u64, bool, String)>> = BTreeMap::new();
        for c in cutover::kafka::commit_history(&self.s.kafka, &self.group(), &self.group()) {
            let v: Value = serde_json::from_str(&c.metadata).expect("checkpoint JSON");
            out.entry(c.partition).or_default().push((v["scanned"].as_u64().unwrap(), v["done"].as_bool().unwrap(), v["worker"].as_str().unwrap_or("").into()));
        }
        out
    }
}

/// Slices whose checkpoint went backwards at some point: (slice, from, to, by).
fn regressions(history: &BTreeMap<i32, Vec<(u64, bool, String)>>) -> Vec<(i32, u64, u64, String)> {
    let mut out = Vec::new();
    for (slice, cps) in history {
        for w in cps.windows(2) {
            if w[1].0 < w[0].0 || (w[0].1 && !w[1].1) {
                out.push((*slice, w[0].0, w[1].0, w[1].2.clone()));
            }
        }
    }
    out
}

async fn setup(name: &str) -> Job {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique(&format!("bf-{name}-src"));
    let dest = unique(&format!("bf-{name}-dst"));
    load_legacy(&legacy, &source, &Spec { docs: DOCS, shards: 3, keys: 300 }).await;
    create_target(&legacy, &target, &source, &dest).await;
    Job { s, job: unique(&format!("job-{name}")), source, dest }
}

/// Starts three workers, waits for progress, SIGKILLs w1 and SIGSTOPs w2 past its session
/// timeout while w3 carries on, then SIGCONTs w2. Returns w2 and w3, still running.
async fn kill_one_pause_one(job: &Job, w2_extra: &[&str]) -> (Proc, Proc, Value) {
    let w1 = job.worker("w1", &[]);
    let w2 = job.worker("w2", w2_extra);
    let w3 = job.worker("w3", &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while job.scanned() < DOCS as u64 / 5 {
        assert!(Instant::now() < deadline, "no progress: {}", log_of(&w3.name));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = job.status();
    w1.kill9();
    w2.signal("STOP");
    let before = job.scanned();
    // Past the session timeout (6 s), and long enough for w3 to move the slices it took over
    // well past where w2 left them.
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert!(job.scanned() > before, "w3 went on alone: {}", log_of(&w3.name));
    w2.signal("CONT");
    (w2, w3, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_one_paused_the_job_completes_once() {
    let job = setup("group").await;
    let (w2, w3, during) = kill_one_pause_one(&job, &[]).await;
    // During the job: slices in progress by the three workers, none done yet (20% in).
    eprintln!("status during the job: {during}");
    assert_eq!(during["slices"], 12);
    assert!(during["in_progress"].as_u64().unwrap() >= 3, "{during}");
    assert_eq!(during["workers"].as_array().unwrap().len(), 3, "{during}");
    assert!(during["scanned"].as_u64().unwrap() >= DOCS as u64 / 5, "{during}");

    let (n2, n3) = (w2.name.clone(), w3.name.clone());
    let port2 = w2.metrics_port;
    let refused_metric = {
        // The woken worker's late checkpoint: refused, never written.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = cutover::procs::http_get(port2, "/metrics").map(|b| cutover::procs::metric_sum(&b, "cutover_backfill_checkpoints_refused_total"));
            if m.unwrap_or(0.0) >= 1.0 || Instant::now() > deadline {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert!(w3.wait(Duration::from_secs(180)).success(), "w3: {}", log_of(&n3));
    assert!(w2.wait(Duration::from_secs(60)).success(), "w2: {}", log_of(&n2));
    let log2 = log_of(&n2);
    assert!(log2.contains("checkpoint refused"), "the woken worker's late checkpoint was not refused:\n{log2}");
    assert!(refused_metric.unwrap_or(0.0) >= 1.0, "cutover_backfill_checkpoints_refused_total of w2: {refused_metric:?}");

    // The job's state: every slice done exactly once, no checkpoint ever went backwards.
    let history = job.history();
    assert_eq!(history.len(), SLICES as usize, "every slice checkpointed");
    for (slice, cps) in &history {
        let done = cps.iter().filter(|c| c.1).count();
        assert_eq!(done, 1, "slice {slice} marked done {done} times: {cps:?}");
        assert!(cps.last().unwrap().1, "slice {slice}'s last checkpoint is not done: {cps:?}");
    }
    assert_eq!(regressions(&history), vec![], "a checkpoint went backwards");
    let workers: std::collections::BTreeSet<String> = history.values().flatten().map(|c| c.2.clone()).collect();
    assert!(workers.contains("w1") && workers.contains("w3"), "{workers:?}");

    // Converged, read back from both clusters by the harness's own reader.
    let (legacy, target) = (job.s.legacy(), job.s.target());
    let diffs = cutover::sim::differences_with(&legacy, &job.source, &target, &job.dest, &LegacyVersionSource::Field("version".into())).await.unwrap();
    assert!(diffs.is_empty(), "{} differences, first: {:?}", diffs.len(), &diffs[..diffs.len().min(5)]);

    // After the job: complete, from any host.
    let after = job.status();
    eprintln!("status after the job: {after}");
    assert_eq!((after["done"].as_u64(), after["pending"].as_u64(), after["in_progress"].as_u64()), (Some(12), Some(0), Some(0)), "{after}");
    assert!(after["scanned"].as_u64().unwrap() >= DOCS as u64, "{after}");
    assert_eq!(after["failed"], 0);
    assert_eq!(after["eta_secs"], Value::Null);

    cleanup(&legacy, &job.source).await;
    cleanup(&target, &job.dest).await;
}

/// Control: the woken worker without the fence overwrites a newer checkpoint with its late one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_the_fence_a_late_checkpoint_goes_backwards() {
    let job = setup("nofence").await;
    let (w2, w3, _) = kill_one_pause_one(&job, &["--unsafe-unfenced-checkpoints"]).await;
    let (n2, n3) = (w2.name.clone(), w3.name.clone());
    assert!(w3.wait(Duration::from_secs(180)).success(), "w3: {}", log_of(&n3));
    let _ = w2.wait(Duration::from_secs(60));
    let history = job.history();
    let back = regressions(&history);
    eprintln!("regressions without the fence: {back:?}");
    assert!(back.iter().any(|r| r.3 == "w2"), "no late checkpoint of w2 went backwards without the fence:\n{}", log_of(&n2));
    let (legacy, target) = (job.s.legacy(), job.s.target());
    cleanup(&legacy, &job.source).await;
    cleanup(&target, &job.dest).await;
}
