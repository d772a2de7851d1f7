//! kill -9 of the `backfill` binary mid-run, then a restart: the checkpoints are used (fewer
//! documents scanned than the index holds, every slice resumed), nothing is skipped (exact
//! verify), and a third run rescans nothing because every slice is done.

mod backfill_support;

use backfill::{SliceCheckpoint, Summary};
use backfill_support::*;
use cutover::{unique, Services};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DOCS: usize = 40_000;

fn checkpoints(dir: &Path) -> Vec<SliceCheckpoint> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

fn copy_command(s: &Services, source: &str, dest: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(backfill_bin());
    cmd.args(["copy", "--legacy-url", &s.legacy_url, "--target-url", &s.target_url, "--source-index", source, "--target-index", dest])
        .args(["--legacy-version", "field:version", "--slices", "4", "--batch-size", "500", "--bulk-concurrency", "2"])
        .arg("--checkpoint-dir")
        .arg(dir.join("checkpoints"))
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
    let cp_dir = dir.join("checkpoints");

    // Run 1: rate-limited so it is surely mid-run when killed.
    let log1 = std::fs::File::create(dir.join("run1.log")).unwrap();
    let mut child =
        copy_command(&s, &source, &dest, &dir).args(["--max-docs-per-sec", "4000"]).stdout(Stdio::null()).stderr(log1).spawn().expect("spawn backfill");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let scanned: u64 = checkpoints(&cp_dir).iter().map(|c| c.scanned).sum();
        if scanned >= (DOCS as u64) * 3 / 10 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "backfill exited early: {}", std::fs::read_to_string(dir.join("run1.log")).unwrap());
        assert!(Instant::now() < deadline, "no checkpoint progress: {}", std::fs::read_to_string(dir.join("run1.log")).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("kill -9"); // SIGKILL on Unix: no chance to clean up
    child.wait().unwrap();
    let after_kill = checkpoints(&cp_dir);
    assert_eq!(after_kill.len(), 4, "one checkpoint per slice");
    assert!(after_kill.iter().all(|c| !c.done), "killed mid-run: {after_kill:?}");
    let checkpointed: u64 = after_kill.iter().map(|c| c.scanned).sum();
    eprintln!("killed after {checkpointed} checkpointed docs");
    let refresh = |body: Value| body.as_object().and_then(|o| o.values().next()).map(|v| v["settings"]["index.refresh_interval"].clone());
    let bulk_load = || async { refresh(target.get(&format!("/{dest}/_settings?flat_settings=true")).await.unwrap()) };
    assert_eq!(bulk_load().await, Some(json!("-1")), "the killed copy left the target in bulk-load settings");

    // Run 2: resumes every slice from its checkpoint.
    let summary_path = dir.join("summary2.json");
    let out = copy_command(&s, &source, &dest, &dir).arg("--summary-json").arg(&summary_path).output().expect("run 2");
    assert!(out.status.success(), "run 2 failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("target already in bulk-load settings"), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Summary = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    eprintln!("{summary}");
    assert_eq!(summary.slices_resumed, vec![0, 1, 2, 3]);
    assert!(summary.scanned < DOCS as u64, "resume rescanned everything: {summary:?}");
    // Nothing skipped: run 2 covered at least what the checkpoints did not.
    assert!(summary.scanned + checkpointed >= DOCS as u64, "{summary:?} after {checkpointed}");
    assert_eq!(summary.failed, 0);
    assert!(checkpoints(&cp_dir).iter().all(|c| c.done));

    // Verified while the target's refresh is still off (no finalize yet).
    assert_eq!(bulk_load().await, Some(json!("-1")));
    let report = backfill::verify(&legacy, &target, &verify_config(&source, &dest)).await.unwrap();
    assert!(report.converged, "{report:?}");
    assert_eq!(report.legacy_docs_scanned, DOCS as u64);

    // Run 3: every slice done; nothing is rescanned.
    let summary_path = dir.join("summary3.json");
    let out = copy_command(&s, &source, &dest, &dir).arg("--summary-json").arg(&summary_path).output().expect("run 3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Summary = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!((summary.scanned, summary.slices_already_done.len()), (0, 4));

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
