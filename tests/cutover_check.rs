//! `backfill cutover-check`, the go/no-go answer before reads switch, on real clusters and a
//! real indexer: no go after the copy (the target still in bulk-load settings, the indexer's
//! gate closed because of them), go after `finalize` with the gate open and a fresh verify
//! report; controls: a stale verify report, an indexer instance that does not answer, a used-up
//! gc_deletes window, and no verify report, are each a no go on their own.

use cutover::procs::{bin, free_port, http_get, log_path};
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use std::path::Path;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(60);

/// `backfill cutover-check` for the scenario: its exit code and stdout + stderr (also logged
/// to target/test-logs/<topic>-<name>.log).
fn cutover_check(sc: &Scenario, name: &str, extra: &[String]) -> (Option<i32>, String) {
    let mut args: Vec<String> = ["cutover-check", "--legacy-url", &sc.legacy_url, "--target-url", &sc.target_url, "--source-index", &sc.legacy_index]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--target-index".to_string(), sc.target_index.clone(), "--read-alias".into(), "items-read".into()]);
    args.extend(extra.iter().cloned());
    let out = std::process::Command::new(bin("backfill")).args(&args).output().expect("run backfill cutover-check");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::write(log_path(&format!("{}-{name}", sc.topic)), &text);
    (out.status.code(), text)
}

/// `backfill verify --report-json report`, asserting it converged.
fn verify(sc: &Scenario, report: &Path) {
    let args = [
        "verify",
        "--legacy-url",
        &sc.legacy_url,
        "--target-url",
        &sc.target_url,
        "--source-index",
        &sc.legacy_index,
        "--target-index",
        &sc.target_index,
        "--legacy-version",
        &sc.legacy.behaviour.version_arg(),
        "--settle-timeout",
        "20s",
        "--report-json",
        &report.display().to_string(),
    ];
    let out = std::process::Command::new(bin("backfill")).args(args).output().expect("run backfill verify");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "verify did not converge: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cutover_check_is_no_go_before_finalize_and_go_after() {
    let started = Instant::now();
    let mut sc = Scenario::new("cchk", 2).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 80, 300, 31));
    sc.live(&cmds).await;
    let indexer = sc.start_indexer("replay", &[]);
    sc.run_backfill("copy", &[]);
    Scenario::eventually("replay caught up", RUN, || indexer.metric("cutover_indexer_caught_up") == Some(1.0)).await;
    Scenario::eventually("the gate closed on the bulk-load settings", RUN, || {
        http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains(" 503 ") && r.contains("backfill finalize"))
    })
    .await;
    let report = std::env::temp_dir().join(format!("{}-verify.json", sc.topic));
    verify(&sc, &report);
    let gate = format!("http://127.0.0.1:{}/ready", indexer.metrics_port);
    let flags = |extra: &[&str]| -> Vec<String> {
        let mut f = vec!["--indexer-ready-url".to_string(), gate.clone(), "--verify-report".into(), report.display().to_string()];
        f.extend(extra.iter().map(|s| s.to_string()));
        f
    };

    // After the copy, before finalize: no go, on the finalize state and on the gate, each with
    // its reason and fix; the fresh verify report alone is fine.
    let (code, out) = cutover_check(&sc, "before-finalize", &flags(&[]));
    assert_eq!(code, Some(3), "no go before finalize:\n{out}");
    assert!(out.contains("FAIL finalize: index.refresh_interval is -1 (the copy's bulk-load setting)"), "{out}");
    assert!(out.contains(&format!("FAIL indexer gate {gate}: closed (503)")) && out.contains("target in bulk-load settings"), "{out}");
    assert!(out.contains("fix: run `backfill finalize`"), "{out}");
    assert!(out.contains("ok   verify") && out.contains("ok   gc_deletes"), "{out}");
    assert!(out.contains("NO GO"), "{out}");

    sc.run_finalize();
    Scenario::eventually("gate open after finalize", RUN, || {
        http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains(" 200 ") && r.contains("\"caught_up\":true"))
    })
    .await;
    let (code, out) = cutover_check(&sc, "after-finalize", &flags(&[]));
    assert_eq!(code, Some(0), "go after finalize with the gate open and a fresh verify:\n{out}");
    for line in ["ok   finalize", &format!("ok   indexer gate {gate}: caught up"), "ok   gc_deletes", "ok   verify"] {
        assert!(out.contains(line), "lacks `{line}`:\n{out}");
    }
    assert!(out.contains("GO: every check passed"), "{out}");
    // Two clusters: the alias is added on the target, the read endpoint moves, and back.
    let add = format!(r#"{{"actions": [{{"add": {{"index": "{}", "alias": "items-read"}}}}]}}"#, sc.target_index);
    let swap = format!(
        r#"{{"remove": {{"index": "{}", "alias": "items-read"}}}}, {{"add": {{"index": "{}", "alias": "items-read"}}}}"#,
        sc.target_index, sc.legacy_index
    );
    assert!(out.contains("POST /_aliases") && out.contains(&add), "{out}");
    assert!(out.contains(&format!("from {} to {}", sc.legacy_url, sc.target_url)), "{out}");
    assert!(out.contains(&format!("Rollback: point the read endpoint back at {}", sc.legacy_url)) && out.contains(&swap), "{out}");

    // Controls, everything else unchanged: a verify report older than --max-report-age ...
    let (code, out) = cutover_check(&sc, "stale-verify", &flags(&["--max-report-age", "1ms"]));
    assert_eq!(code, Some(3), "a stale verify report is no go:\n{out}");
    assert!(out.contains("FAIL verify") && out.contains("old (> --max-report-age 1ms)"), "{out}");
    // ... a second indexer instance that does not answer ...
    let absent = format!("http://127.0.0.1:{}/ready", free_port());
    let (code, out) = cutover_check(&sc, "absent-indexer", &flags(&["--indexer-ready-url", &absent]));
    assert_eq!(code, Some(3), "an indexer instance that does not answer is no go:\n{out}");
    assert!(out.contains(&format!("FAIL indexer gate {absent}: no answer")), "{out}");
    // ... a gc_deletes window the migration has used up (the target created seconds ago) ...
    sc.target_es()
        .ok(cluster::Method::Put, &format!("/{}/_settings", sc.target_index), Some(&serde_json::json!({"index": {"gc_deletes": "1s"}})))
        .await
        .unwrap();
    let (code, out) = cutover_check(&sc, "gc-used-up", &flags(&[]));
    assert_eq!(code, Some(3), "a used-up gc_deletes window is no go:\n{out}");
    assert!(out.contains("FAIL gc_deletes: index.gc_deletes 1s") && out.contains("0s left") && out.contains("resurrected"), "{out}");
    // ... and no verify report at all.
    let (code, out) = cutover_check(&sc, "no-verify", &["--indexer-ready-url".to_string(), gate.clone()]);
    assert_eq!(code, Some(3), "no verify report is no go:\n{out}");
    assert!(out.contains("FAIL verify: no verify report given"), "{out}");

    indexer.signal("TERM");
    let status = indexer.wait(Duration::from_secs(30));
    assert!(status.success(), "indexer exit after SIGTERM: {status}");
    let _ = std::fs::remove_file(&report);
    sc.cleanup().await;
    eprintln!("cutover_check scenario took {:?}", started.elapsed());
}
