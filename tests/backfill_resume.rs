//! kill -9 of the `backfill` binary mid-run, then a restart on a fresh working directory (no
//! local state at all, as on another host): the checkpoints kept in Kafka are used (fewer
//! documents scanned than the index holds, every slice resumed), nothing is skipped (exact
//! verify), and a third run rescans nothing because every slice is done. The checkpoints are
//! read back from the broker by the harness's own client (the job group's committed offsets).

mod backfill_support;

use backfill::Summary;
use backfill_support::*;
use cutover::{unique, Services};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DOCS: usize = 40_000;

/// The job's checkpoints as the broker holds them: (scanned, done) of each slice committed so far.
fn checkpoints(s: &Services, job: &str) -> Vec<(u64, bool)> {
    let group = format!("cutover-backfill.{job}");
    cutover::kafka::committed_metadata(&s.kafka, &group, &group, 4)
        .into_iter()
        .flatten()
        .map(|(_, meta)| {
            let v: Value = serde_json::from_str(&meta).expect("checkpoint JSON");
            (v["scanned"].as_u64().unwrap(), v["done"].as_bool().unwrap())
        })
        .collect()
}

fn copy_command(s: &Services, source: &str, dest: &str, dir: &Path, job: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new(backfill_bin());
    cmd.current_dir(cwd);
    cmd.args(["copy", "--legacy-url", &s.legacy_url, "--target-url", &s.target_url, "--source-index", source, "--target-index", dest])
        .args(["--legacy-version", "field:version", "--slices", "4", "--batch-size", "500", "--bulk-concurrency", "2"])
        .args(["--brokers", &s.kafka, "--job", job, "--session-timeout", "6s"])
        .arg("--failures-file")
        .arg(dir.join("failures.jsonl"))
        .args(["--no-metrics", "--progress", "log", "--log-interval", "1s"]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_uses_checkpoints_and_verifies_exactly() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let source = unique("bf-kill-src");
    let dest = unique("bf-kill-dst");
    load_legacy(&legacy, &source, &Spec { docs: DOCS, shards: 3, keys: 500 }).await;
    create_target(&legacy, &target, &source, &dest).await;
    let dir = scratch("kill");
    let job = cutover::job_name(&dir);
    let (host1, host2) = (dir.join("host1"), dir.join("host2"));
    std::fs::create_dir_all(&host1).unwrap();
    std::fs::create_dir_all(&host2).unwrap();

    // Run 1: rate-limited so it is surely mid-run when killed.
    let log1 = std::fs::File::create(dir.join("run1.log")).unwrap();
    let mut child = copy_command(&s, &source, &dest, &dir, &job, &host1)
        .args(["--max-docs-per-sec", "4000"])
        .stdout(Stdio::null())
        .stderr(log1)
        .spawn()
        .expect("spawn backfill");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let scanned: u64 = checkpoints(&s, &job).iter().map(|c| c.0).sum();
        if scanned >= (DOCS as u64) * 3 / 10 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "backfill exited early: {}", std::fs::read_to_string(dir.join("run1.log")).unwrap());
        assert!(Instant::now() < deadline, "no checkpoint progress: {}", std::fs::read_to_string(dir.join("run1.log")).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("kill -9"); // SIGKILL on Unix: no chance to clean up
    child.wait().unwrap();
    let after_kill = checkpoints(&s, &job);
    assert_eq!(after_kill.len(), 4, "one checkpoint per slice");
    assert!(after_kill.iter().all(|c| !c.1), "killed mid-run: {after_kill:?}");
    let checkpointed: u64 = after_kill.iter().map(|c| c.0).sum();
    eprintln!("killed after {checkpointed} checkpointed docs");
    let refresh = |body: Value| body.as_object().and_then(|o| o.values().next()).map(|v| v["settings"]["index.refresh_interval"].clone());
    let bulk_load = || async { refresh(target.get(&format!("/{dest}/_settings?flat_settings=true")).await.unwrap()) };
    assert_eq!(bulk_load().await, Some(json!("-1")), "the killed copy left the target in bulk-load settings");

    // Run 2, on "another host" (a fresh working directory): resumes every slice from its
    // checkpoint in Kafka. The killed member's session must time out before its slices move.
    let summary_path = dir.join("summary2.json");
    let out = copy_command(&s, &source, &dest, &dir, &job, &host2).arg("--summary-json").arg(&summary_path).output().expect("run 2");
    assert!(out.status.success(), "run 2 failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("target already in bulk-load settings"), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Summary = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    eprintln!("{summary}");
    assert_eq!(summary.slices_resumed, vec![0, 1, 2, 3]);
    assert!(summary.scanned < DOCS as u64, "resume rescanned everything: {summary:?}");
    // Nothing skipped: run 2 covered at least what the checkpoints did not.
    assert!(summary.scanned + checkpointed >= DOCS as u64, "{summary:?} after {checkpointed}");
    assert_eq!(summary.failed, 0);
    assert!(checkpoints(&s, &job).iter().all(|c| c.1));

    // Verified while the target's refresh is still off (no finalize yet).
    assert_eq!(bulk_load().await, Some(json!("-1")));
    let report = backfill::verify(&legacy, &target, &verify_config(&source, &dest)).await.unwrap();
    assert!(report.converged, "{report:?}");
    assert_eq!(report.legacy_docs_scanned, DOCS as u64);

    // Run 3: the job is complete; nothing is rescanned.
    let summary_path = dir.join("summary3.json");
    let out = copy_command(&s, &source, &dest, &dir, &job, &host1).arg("--summary-json").arg(&summary_path).output().expect("run 3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Summary = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary.scanned, 0, "{summary:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("every slice of the job is done"), "{}", String::from_utf8_lossy(&out.stderr));

    // create-index stays idempotent in bulk-load settings; finalize restores the legacy's.
    create_target(&legacy, &target, &source, &dest).await;
    let cfg = backfill::FinalizeConfig {
        source_index: source.clone(),
        target_index: dest.clone(),
        refresh_interval: None,
        replicas: None,
        allow_yellow: false,
        timeout: Duration::from_secs(60),
    };
    let done = backfill::finalize(&legacy, &target, &cfg).await.unwrap();
    eprintln!("{done}");
    assert_eq!(bulk_load().await, Some(json!("1s")), "the legacy index's refresh_interval");
    create_target(&legacy, &target, &source, &dest).await;

    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}
