//! Faults of what stands in front of the target, on real servers: a gateway (the harness's
//! [`Relay`]) that answers every bulk request with 400 and an HTML page. Nothing is lost unless
//! proven bad: a 400 on a whole bulk request is not evidence against any record, so both
//! writers stop (the indexer with exit code 4, `backfill copy` with 1) without dead-lettering,
//! recording a failure, committing or checkpointing past the refused writes; once the gateway
//! passes again, the same commands converge. (Before, issue 29: each refused batch was split
//! down to single records and every one dead-lettered: 472 of 2,000 good records dead-lettered
//! and committed.)

use cutover::kafka;
use cutover::procs::log_of;
use cutover::relay::Relay;
use cutover::scenario::Scenario;
use cutover::sim::{generate, read_all, WorkloadSpec};
use std::time::Duration;

const RUN: Duration = Duration::from_secs(240);

fn dlq(sc: &Scenario) -> String {
    format!("{}.dlq", sc.topic)
}

/// The indexer writes through a gateway; 800 of 2000 commands in, the gateway starts refusing
/// every bulk request with 400: the indexer halts with exit code 4, its log naming the 400 and
/// the gateway's page, nothing dead-lettered, nothing committed past the unapplied records.
/// With the gateway passing again, a restart through it applies every command.
#[tokio::test(flavor = "multi_thread")]
async fn indexer_halts_on_a_gateways_400_and_converges_after() {
    let mut sc = Scenario::new("rgw", 2).await;
    let relay = Relay::start(&sc.target_url);
    sc.writers_target_url = Some(relay.url().to_string());
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 200, 2000, 61));

    sc.live(&cmds[..800]).await;
    let indexer = sc.start_indexer("main", &["--batch-max-docs", "50", "--linger", "0ms", "--max-backoff", "1000ms"]);
    Scenario::eventually("progress through the gateway", RUN, || indexer.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 100.0)
        .await;
    assert!(relay.forwarded() > 0, "the indexer writes through the relay");
    relay.refuse("/_bulk");
    sc.live(&cmds[800..]).await;

    let status = indexer.wait(Duration::from_secs(120));
    assert_eq!(status.code(), Some(4), "the indexer halts with exit code 4 at the gateway's 400: {status}");
    assert!(relay.refused() > 0, "the gateway refused bulk requests");
    let log = log_of(&format!("{}-main", sc.topic));
    assert!(log.contains("HTTP 400") && log.contains("blocked by gateway rule"), "the halt names the cause (the 400 and the gateway's page)");
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(&sc)), 0, "nothing dead-lettered");
    let committed: i64 = sc.committed().iter().map(|&c| c.max(0)).sum();
    assert!(committed < 2000, "nothing committed past the unapplied records ({committed} of 2000)");

    relay.pass();
    let refused = relay.refused();
    sc.run_indexer_to_idle("resume", &[], RUN);
    assert_eq!(relay.refused(), refused, "nothing refused after the gateway passes again");
    assert_eq!(sc.committed().iter().sum::<i64>(), 2000);
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(&sc)), 0, "still nothing dead-lettered");
    // Read straight from the target, not through the relay.
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// `backfill copy` writes through a gateway that refuses every bulk request with 400: it exits
/// non-zero, records no document in its failures file and leaves the target empty; the same
/// command (same checkpoints) once the gateway passes copies every legacy document, which also
/// shows that no checkpoint moved past a refused batch (its documents would be missing).
#[tokio::test(flavor = "multi_thread")]
async fn backfill_copy_stops_on_a_gateways_400_without_recording_failures() {
    let mut sc = Scenario::new("rgwcopy", 1).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 300, 1500, 62));
    sc.legacy.apply(&cmds).await.expect("legacy documents");
    let legacy_docs = read_all(&sc.legacy_es(), &sc.legacy_index).await.expect("read legacy").len();
    assert!(legacy_docs > 100, "legacy documents to copy ({legacy_docs})");
    let relay = Relay::start(&sc.target_url);
    sc.writers_target_url = Some(relay.url().to_string());

    let dir = std::env::temp_dir().join(format!("{}-gateway-copy", sc.topic));
    // The same command twice: same checkpoints, same failures file.
    let copy = || sc.run_copy_in(&dir, "copy", &["--batch-size", "100"]);
    relay.refuse("/_bulk");
    let run = copy();
    assert!(run.code.is_some_and(|c| c != 0), "backfill copy through a gateway refusing its bulks must fail: {}", run.text);
    assert!(relay.refused() > 0, "the gateway refused bulk requests: {}", run.text);
    assert!(run.text.contains("400"), "the failure names the 400: {}", run.text);
    assert!(run.failed.is_empty(), "no document recorded as failed: {:?}", run.failed);
    let copied = read_all(&sc.target_es(), &sc.target_index).await.expect("read target").len();
    assert_eq!(copied, 0, "the target holds none of the documents");

    relay.pass();
    let refused = relay.refused();
    let run = copy();
    assert_eq!(run.code, Some(0), "the same copy through the passing gateway exits 0: {}", run.text);
    assert_eq!(relay.refused(), refused, "nothing refused after the gateway passes again");
    assert!(run.failed.is_empty(), "still no document recorded as failed: {:?}", run.failed);
    let copied = read_all(&sc.target_es(), &sc.target_index).await.expect("read target").len();
    assert_eq!(copied, legacy_docs, "the target holds every legacy document");
    sc.assert_converged().await;
    let _ = std::fs::remove_dir_all(&dir);
    sc.cleanup().await;
}

/// `backfill verify` reads the target through something that answers its scan pages
/// (`_search`) 429 for a while (a busy cluster): it waits them out under its retry policy and
/// still proves the copy converged. Control: with `--max-retries 0` the same verify fails on
/// the first 429.
#[tokio::test(flavor = "multi_thread")]
async fn verify_waits_out_a_busy_cluster() {
    verify_through_a_busy_gateway("/_search").await;
}

async fn verify_through_a_busy_gateway(busy_path: &str) {
    let mut sc = Scenario::new("rgwverify", 1).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 100, 300, 63));
    sc.legacy.apply(&cmds).await.expect("legacy documents");
    sc.run_backfill("copy", &["--no-bulk-load"]);
    let relay = Relay::start(&sc.target_url);
    let verify = |extra: &[&str]| {
        let mut args: Vec<String> =
            ["verify", "--legacy-url", &sc.legacy_url, "--target-url", relay.url(), "--source-index", &sc.legacy_index].iter().map(|s| s.to_string()).collect();
        args.extend(["--target-index", &sc.target_index, "--legacy-version", &sc.legacy.behaviour.version_arg()].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = std::process::Command::new(cutover::procs::bin("backfill")).args(&args).output().expect("run backfill verify");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    relay.throttle(busy_path, 3);
    let (code, text) = verify(&[]);
    assert_eq!(code, Some(0), "verify waits out the 429s and converges: {text}");
    assert_eq!(relay.refused(), 3, "three {busy_path} requests were answered 429");
    assert!(text.contains("CONVERGED"), "{text}");

    relay.throttle(busy_path, 3);
    let (code, text) = verify(&["--max-retries", "0"]);
    assert_eq!(code, Some(1), "control: without retries the first 429 ends verify: {text}");
    assert!(text.contains("es_rejected_execution_exception"), "it names the cause: {text}");
    sc.cleanup().await;
}

/// The one-shot steps' control-plane calls wait out a busy cluster: `backfill finalize` through
/// something that answers its first three `_settings` requests 429 still restores the target's
/// settings (before, one 429 ended it with exit 1). Control: a cluster that stays busy ends it
/// after its bounded retries (exit 1), naming the rejection, instead of hanging; a gateway's
/// HTML 400 ends it at once.
#[tokio::test(flavor = "multi_thread")]
async fn finalize_waits_out_a_busy_cluster_within_a_bound() {
    let mut sc = Scenario::new("rgwfinal", 1).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 50, 100, 64));
    sc.legacy.apply(&cmds).await.expect("legacy documents");
    sc.run_backfill("copy", &[]);
    let relay = Relay::start(&sc.target_url);
    let finalize = || {
        let args =
            ["finalize", "--legacy-url", &sc.legacy_url, "--target-url", relay.url(), "--source-index", &sc.legacy_index, "--target-index", &sc.target_index];
        let out = std::process::Command::new(cutover::procs::bin("backfill")).args(args).args(["--timeout", "60s"]).output().expect("run backfill finalize");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    relay.throttle("/_settings", 3);
    let (code, text) = finalize();
    assert_eq!(code, Some(0), "finalize waits out three 429s: {text}");
    assert_eq!(relay.refused(), 3, "three _settings requests were answered 429");
    let settings = sc.target_es().get(&format!("/{}/_settings?flat_settings=true", sc.target_index)).await.expect("target settings");
    let refresh = &settings[&sc.target_index]["settings"]["index.refresh_interval"];
    assert_ne!(refresh.as_str(), Some("-1"), "bulk-load refresh_interval restored: {settings}");

    relay.throttle("/_settings", 1_000);
    let started = std::time::Instant::now();
    let (code, text) = finalize();
    assert_eq!(code, Some(1), "control: a cluster that stays busy ends finalize: {text}");
    assert!(text.contains("es_rejected_execution_exception"), "it names the cause: {text}");
    assert!(text.contains("retrying"), "after retrying: {text}");
    assert!(started.elapsed() < Duration::from_secs(90), "within its bound: {:?}", started.elapsed());

    // A gateway's 400 (an HTML page, not Elasticsearch's answer) is not something that passes:
    // finalize stops at once, naming the page, without retrying.
    relay.throttle("/_settings", 0);
    relay.refuse("/_settings");
    let started = std::time::Instant::now();
    let (code, text) = finalize();
    assert_eq!(code, Some(1), "a gateway's 400 ends finalize: {text}");
    assert!(text.contains("request blocked by gateway rule") && !text.contains("retrying"), "named, not retried: {text}");
    assert!(started.elapsed() < Duration::from_secs(10), "at once: {:?}", started.elapsed());
    sc.cleanup().await;
}
