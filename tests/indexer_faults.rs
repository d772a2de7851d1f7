//! Real faults on real servers: a cluster that is sick or misconfigured makes the indexer wait,
//! retry or halt (exit code 4) — never dead-letter a good record, never commit past one, never
//! read a failed read as "absent". Every test ends with the harness's own comparison of both
//! clusters after recovery.

use cutover::procs::{http_get, log_of, services, Proc};
use cutover::scenario::Scenario;
use cutover::sim::{self, generate, SimCommand, WorkloadSpec};
use cutover::{kafka, unique};
use elasticsearch::http::Method;
use serde_json::json;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(240);

fn dlq(sc: &Scenario) -> String {
    format!("{}.dlq", sc.topic)
}

/// The first half of a target-fault test: 800 of 2000 commands produced, an indexer making
/// progress on them, then `fault` done to the target and the other 1200 produced. Asserts the
/// indexer halts with exit code 4, its log naming `cause`, with nothing dead-lettered and
/// nothing committed past the unapplied records.
async fn halt_at_a_target_fault(sc: &mut Scenario, cmds: &[SimCommand], fault: impl std::future::Future<Output = ()>, cause: &str) {
    assert_eq!(cmds.len(), 2000);
    sc.live(&cmds[..800]).await;
    let indexer = sc.start_indexer("main", &["--batch-max-docs", "50", "--linger", "0ms", "--max-backoff", "1000ms"]);
    Scenario::eventually("progress before the fault", RUN, || indexer.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 100.0)
        .await;
    fault.await;
    sc.live(&cmds[800..]).await;

    let status = indexer.wait(Duration::from_secs(120));
    assert_eq!(status.code(), Some(4), "the indexer halts with exit code 4 at the fault: {status}");
    assert!(log_of(&format!("{}-main", sc.topic)).contains(cause), "the halt names the cause, {cause}");
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(sc)), 0, "nothing dead-lettered");
    let committed: i64 = sc.committed().iter().map(|&c| c.max(0)).sum();
    assert!(committed < 2000, "nothing committed past the unapplied records ({committed} of 2000)");
}

/// The second half of a target-fault test, once the cause is fixed: a restart applies every
/// command (all 2000 committed), still nothing dead-lettered, and the target converges.
async fn resume_and_converge(sc: &Scenario) {
    sc.run_indexer_to_idle("resume", &[], RUN);
    assert_eq!(sc.committed().iter().sum::<i64>(), 2000);
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(sc)), 0, "still nothing dead-lettered");
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// The target index deleted mid-replay on a cluster that does not auto-create it: the indexer
/// halts with exit code 4, nothing is dead-lettered, nothing committed past; once the index is
/// recreated (and backfilled, since its content was lost), a restart applies every command.
#[tokio::test(flavor = "multi_thread")]
async fn deleted_target_index_halts_and_converges_after_recreate() {
    let mut sc = Scenario::new("fdel", 2).await;
    let target = sc.s.target();
    // Production clusters commonly refuse to auto-create indices; here, only this one.
    let auto = json!({"persistent": {"action.auto_create_index": format!("-{},+*", sc.target_index)}});
    target.ok(Method::Put, "/_cluster/settings", Some(&auto)).await.expect("auto-create off for the target");
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 200, 2000, 51));
    let index = format!("/{}", sc.target_index);
    let delete = async {
        target.ok(Method::Delete, &index, None).await.expect("delete the target index");
    };
    halt_at_a_target_fault(&mut sc, &cmds, delete, "index_not_found_exception").await;
    assert!(target.request(Method::Head, &format!("/{}", sc.target_index), None).await.unwrap().0 == 404, "no index was auto-created");

    // Recovery as docs/indexer.md says: recreate, backfill what the deleted index held, restart.
    sim::create_target_index(&sc.s.legacy(), &sc.legacy_index, &target, &sc.target_index).await.expect("recreate");
    sc.run_backfill("copy", &[]);
    sc.run_indexer_to_idle("resume", &[], RUN);
    assert_eq!(sc.committed().iter().sum::<i64>(), 2000);
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(&sc)), 0, "still nothing dead-lettered");
    sc.assert_converged().await;
    target.ok(Method::Put, "/_cluster/settings", Some(&json!({"persistent": {"action.auto_create_index": null}}))).await.unwrap();
    sc.cleanup().await;
}

/// The target index closed mid-replay (an operator's `_close`, a snapshot restore in
/// progress): the bulk items fail with `index_closed_exception`, which is the cluster's
/// problem, never the records': the indexer halts with exit code 4, nothing dead-lettered,
/// nothing committed past; `backfill copy` against the closed index fails naming the cause and
/// records no document as rejected. Once the index is reopened, a restart applies every command.
#[tokio::test(flavor = "multi_thread")]
async fn closed_target_index_halts_and_converges_after_reopen() {
    let mut sc = Scenario::new("fcls", 2).await;
    let target = sc.s.target();
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 200, 2000, 53));
    let index = format!("/{}", sc.target_index);
    let close = async {
        target.ok(Method::Post, &format!("{index}/_close"), None).await.expect("close the target index");
    };
    halt_at_a_target_fault(&mut sc, &cmds, close, "index_closed_exception").await;

    let dir = std::env::temp_dir().join(format!("{}-closed-copy", sc.topic));
    let run = sc.run_copy_in(&dir, "copy", &[]);
    assert!(run.code.is_some_and(|c| c != 0), "backfill copy into a closed index must fail: {}", run.text);
    assert!(run.text.contains("closed"), "the failure names the closed index: {}", run.text);
    assert!(run.failed.is_empty(), "no document recorded as rejected: {:?}", run.failed);
    let _ = std::fs::remove_dir_all(&dir);

    target.ok(Method::Post, &format!("/{}/_open", sc.target_index), None).await.expect("reopen the target index");
    resume_and_converge(&sc).await;
}

/// Retries exhausted (`--max-retries`) against a write-blocked index: a halt (exit 4), not
/// dead letters; the same records are applied once the block is lifted.
#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_halt_instead_of_dead_lettering() {
    let mut sc = Scenario::new("fexh", 1).await;
    let target = sc.s.target();
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 50, 300, 52));
    sc.live(&cmds).await;
    let block = |on: bool| json!({"index.blocks.write": on});
    target.ok(Method::Put, &format!("/{}/_settings", sc.target_index), Some(&block(true))).await.unwrap();
    let indexer = sc.start_indexer("main", &["--max-retries", "2", "--max-backoff", "200ms"]);
    let status = indexer.wait(Duration::from_secs(90));
    assert_eq!(status.code(), Some(4), "exhausted retries halt: {status}");
    assert!(log_of(&format!("{}-main", sc.topic)).contains("gave up after 2 retries"), "the halt says why");
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(&sc)), 0, "nothing dead-lettered");
    assert!(sc.committed().iter().all(|&c| c <= 0), "nothing committed: {:?}", sc.committed());
    target.ok(Method::Put, &format!("/{}/_settings", sc.target_index), Some(&block(false))).await.unwrap();
    sc.run_indexer_to_idle("resume", &[], RUN);
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// The tombstone index's only shard unavailable (an allocation filter no node matches) while
/// merges of documents the target lacks need their base (the legacy copy plus the tombstone
/// record) and deletes write tombstones: the `_mget` answers carry per-document errors, which
/// are retried until the shard is back (never read as "no tombstone", never dead-lettered, never
/// a halt); the tombstone writes wait. The legacy indexer lags: it applies the tail only after
/// the backfill has copied the older states.
#[tokio::test(flavor = "multi_thread")]
async fn unavailable_tombstone_shard_is_waited_for_not_read_as_absent() {
    let mut sc = Scenario::new("fshard", 2).await;
    let target = sc.s.target();
    let mut spec = WorkloadSpec::new(&sc.legacy_index, 300, 3000, 53);
    (spec.upsert_pct, spec.merge_pct) = (30, 50);
    let cmds = generate(&spec);
    sc.live(&cmds[..2000]).await;
    kafka::expire_oldest(&sc.s.kafka, &sc.topic, sc.partitions, 0.9).await;
    sc.produce(&cmds[2000..]).await; // the legacy indexer has not applied these yet

    let tombstones = schema::tombstone_index(&sc.target_index);
    let unassigned = json!({
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0, "gc_deletes": "48h", "routing.allocation.require._name": "nowhere"}},
        "mappings": {"dynamic": false, "properties": {"version": {"type": "long"}}}
    });
    target.ok(Method::Put, &format!("/{tombstones}?wait_for_active_shards=0"), Some(&unassigned)).await.expect("tombstone index");
    let health = target.get(&format!("/_cluster/health/{tombstones}")).await.unwrap();
    assert_eq!(health["status"], "red", "the tombstone shard is unavailable: {health}");

    let indexer = sc.start_indexer("main", &["--batch-max-docs", "100", "--max-backoff", "1000ms"]);
    Scenario::eventually("merge-base reads meet the unavailable shard", RUN, || indexer.metric("cutover_indexer_read_errors_total").unwrap_or(0.0) > 0.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ready = http_get(indexer.metrics_port, "/ready").unwrap_or_default();
    assert!(ready.contains("\"caught_up\":false"), "the gate stays closed while reads fail: {ready}");
    let lift = json!({"index.routing.allocation.require._name": null});
    target.ok(Method::Put, &format!("/{tombstones}/_settings"), Some(&lift)).await.unwrap();
    sc.run_backfill("copy", &[]);
    sc.legacy.apply(&cmds[2000..]).await.expect("the lagging legacy indexer catches up");
    sc.drain_and_stop(indexer).await;
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(&sc)), 0, "nothing dead-lettered");
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// Credentials revoked mid-run (a file-realm user removed on the secured node): the indexer
/// halts with a message naming the cause, nothing is dead-lettered, and with new credentials it
/// resumes from the committed offsets and converges.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_credentials_halt_then_resume_with_new_ones() {
    let s = cutover::Services::require().await;
    let sec = cutover::SecureEs::require();
    let (ca, secure_url, admin) = (sec.ca.clone(), sec.url.clone(), sec.admin());
    let user = unique("writer").replace('-', "_");
    let (first, second) = (format!("first-{}", unique("pw")), format!("second-{}", unique("pw")));
    services(&["es-users", "secure", "useradd", &user, "-p", &first, "-r", "superuser"]);

    let legacy_index = unique("frev-old");
    let target_index = unique("frev-new");
    let topic = unique("frev-cmds");
    let group = unique("frev-grp");
    sim::create_legacy_index(&s.legacy(), &legacy_index, 1).await.unwrap();
    sim::create_target_index(&s.legacy(), &legacy_index, &admin, &target_index).await.unwrap();
    kafka::create_topic(&s.kafka, &topic, 1).await;
    let cmds = generate(&WorkloadSpec::new(&legacy_index, 100, 1200, 54));
    let mut legacy = sim::LegacyIndexer::new(s.legacy(), &legacy_index);
    legacy.apply(&cmds).await.unwrap();
    let p = kafka::producer(&s.kafka);
    for c in &cmds[..600] {
        kafka::produce(&p, &topic, Some(c.id.as_bytes()), &c.payload(), &[]).await;
    }
    let ca_arg = ca.display().to_string();
    let args: Vec<String> = [
        "--brokers",
        &s.kafka,
        "--topic",
        &topic,
        "--group",
        &group,
        "--version-source",
        "field:version",
        "--legacy-version",
        "_version",
        "--merge-absent",
        "ignore",
        "--index-map",
        &format!("{legacy_index}={target_index}"),
        "--legacy-url",
        &s.legacy_url,
        "--target-url",
        &secure_url,
        "--target-ca-file",
        &ca_arg,
        "--target-username",
        &user,
        "--batch-max-docs",
        "20",
        "--linger",
        "0ms",
        "--max-backoff",
        "1000ms",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let start = |name: &str, password: &str, extra: &[&str]| {
        let mut a = args.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        std::env::set_var("CUTOVER_TARGET_PASSWORD", password);
        let proc = Proc::start("indexer", &format!("{topic}-{name}"), &a);
        std::env::remove_var("CUTOVER_TARGET_PASSWORD");
        proc
    };
    let connect = |password: &str| {
        cluster::Es::connect(&cluster::ClusterConfig {
            username: Some(user.clone()),
            password: Some(password.to_string()),
            ca_file: Some(ca.clone()),
            ..cluster::ClusterConfig::plain(secure_url.clone())
        })
        .unwrap()
    };
    realm_answers(&connect(&first), true).await;
    let indexer = start("first", &first, &[]);
    Scenario::eventually("progress with the first credentials", RUN, || {
        indexer.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 50.0
    })
    .await;
    services(&["es-users", "secure", "userdel", &user]);
    // The rest of the traffic goes only once the first credentials are refused, or a fast
    // indexer could apply it all before the reload.
    realm_answers(&connect(&first), false).await;
    for c in &cmds[600..] {
        kafka::produce(&p, &topic, Some(c.id.as_bytes()), &c.payload(), &[]).await;
    }
    let status = indexer.wait(Duration::from_secs(120));
    assert_eq!(status.code(), Some(4), "revoked credentials halt the indexer: {status}");
    let log = log_of(&format!("{topic}-first"));
    assert!(log.contains("401"), "the halt names the cause (HTTP 401)");
    assert!(!log.contains(&first), "the password never reaches the logs");
    assert_eq!(kafka::records_in(&s.kafka, &format!("{topic}.dlq")), 0, "nothing dead-lettered");
    let committed = kafka::committed(&s.kafka, &group, &topic, 1)[0];
    assert!(committed < 1200, "nothing committed past the refused records ({committed})");

    services(&["es-users", "secure", "useradd", &user, "-p", &second, "-r", "superuser"]);
    realm_answers(&connect(&second), true).await;
    let resumed = start("second", &second, &["--exit-when-idle", "2s"]);
    assert!(resumed.wait(RUN).success(), "resumes with the new credentials");
    assert_eq!(kafka::committed(&s.kafka, &group, &topic, 1)[0], 1200);
    let diffs = sim::differences(&s.legacy(), &legacy_index, &admin, &target_index).await.unwrap();
    assert!(diffs.is_empty(), "{} differences: {:?}", diffs.len(), diffs.iter().take(5).collect::<Vec<_>>());
    services(&["es-users", "secure", "userdel", &user]);
    let _ = admin.request(Method::Delete, &format!("/{target_index},{}", schema::tombstone_index(&target_index)), None).await;
    let _ = s.legacy().request(Method::Delete, &format!("/{legacy_index}"), None).await;
    kafka::delete_topics(&s.kafka, &[&topic]).await;
}

/// Waits until the secured node answers `es`'s credentials as `accepted` (2xx) or refused (401):
/// its file realm reloads the users file on a timer (5 s), so every change is waited for.
async fn realm_answers(es: &cluster::Es, accepted: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match es.get("/_cluster/health").await {
            Ok(_) if accepted => return,
            Err(e) if !accepted && e.status() == Some(401) => return,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the file realm never reloaded (credentials accepted: {accepted})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Peak resident memory of a running process, in bytes (Linux `VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// Two indexers in one group, the target refusing writes (write block), one member killed: the
/// survivor gains its partitions while paused, and its memory stays bounded (the backlog would
/// otherwise take every record of the gained partitions). After the block is lifted: converged.
#[tokio::test(flavor = "multi_thread")]
async fn paused_member_gaining_partitions_stays_bounded() {
    const BOUND: u64 = 160 * 1024 * 1024;
    let mut sc = Scenario::new("fpause", 12).await;
    let target = sc.s.target();
    target.ok(Method::Put, &format!("/{}/_settings", sc.target_index), Some(&json!({"index.blocks.write": true}))).await.unwrap();
    let big = "x".repeat(3000);
    let cmds: Vec<SimCommand> = (0..36_000u64)
        .map(|n| {
            let id = format!("d{}", n % 3000);
            let envelope = json!({"op": "upsert", "id": id, "index": sc.legacy_index, "version": n + 1, "doc": {"title": big, "n": n}});
            SimCommand { id, version: n + 1, envelope, null_value: false }
        })
        .collect();
    let args = ["--batch-max-docs", "100", "--linger", "0ms", "--max-backoff", "1000ms"];
    let a = sc.start_indexer("a", &args);
    let mut b = sc.start_indexer("b", &args);
    // `/ready` reports the whole group's lag, so each member's own log says what it was given.
    let assigned = |name: &str| log_of(&format!("{}-{name}", sc.topic)).lines().any(|l| l.contains("partitions assigned") && l.contains(&sc.topic));
    Scenario::eventually("both members assigned", RUN, || assigned("a") && assigned("b")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    sc.live(&cmds).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.kill9();
    // The survivor gains the dead member's partitions once its session times out (6 s), and
    // gains them paused: its lanes have been full (the write block) for longer than it waits
    // before pausing, and a paused consumer is still polled, so it serves the rebalance.
    let log = format!("{}-b", sc.topic);
    let gained = || log_of(&log).lines().any(|l| l.contains("partitions assigned") && l.contains("paused=true"));
    Scenario::eventually("the survivor gains the partitions while paused", Duration::from_secs(60), gained).await;
    let until = Instant::now() + Duration::from_secs(15);
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(peak_rss(b.child.id()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(b.running(), "the survivor keeps running while paused");
    eprintln!("survivor peak RSS while paused: {} MB", peak / (1024 * 1024));
    assert!(peak > 0 && peak < BOUND, "survivor peak RSS {} MB exceeds {} MB", peak / (1024 * 1024), BOUND / (1024 * 1024));
    target.ok(Method::Put, &format!("/{}/_settings", sc.target_index), Some(&json!({"index.blocks.write": false}))).await.unwrap();
    sc.drain_and_stop(b).await;
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// The group's committed position deleted by retention during a long stop: the restarted
/// indexer says so loudly (error log, metric, `/ready` closed with the gap in its body).
#[tokio::test(flavor = "multi_thread")]
async fn offset_gap_after_a_long_stop_is_loud() {
    let mut sc = Scenario::new("fgap", 1).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 100, 1000, 55));
    sc.live(&cmds[..400]).await;
    sc.run_indexer_to_idle("first", &[], RUN);
    assert_eq!(sc.committed(), vec![400]);
    sc.live(&cmds[400..]).await;
    let low = kafka::expire_oldest(&sc.s.kafka, &sc.topic, 1, 0.8).await;
    assert_eq!(low, vec![800]);
    let indexer = sc.start_indexer("second", &[]);
    Scenario::eventually("the gap reported by /ready", RUN, || {
        http_get(indexer.metrics_port, "/ready").is_some_and(|r| {
            r.contains("offset_gaps") && r.lines().next().is_some_and(|l| l.contains(" 503")) && r.contains("committed offset 400 < log start 800")
        })
    })
    .await;
    Scenario::eventually("the gap metric", RUN, || indexer.metric("cutover_indexer_offset_gaps") == Some(1.0)).await;
    indexer.signal("TERM");
    assert!(indexer.wait(Duration::from_secs(30)).success());
    assert!(log_of(&format!("{}-second", sc.topic)).contains("offset gap"), "an error log names the gap");
    sc.cleanup().await;
}

/// Re-driving the dead-letter topic once the cause is fixed: the indexer consumes `<topic>.dlq`
/// with the same flags (dead letters keep the original key, bytes and headers; versions make a
/// late re-apply safe). Here the cause is a too small `--max-payload-bytes`; the workload is
/// upserts and deletes (a dead-lettered merge followed by newer commands cannot be re-applied
/// in order: docs/indexer.md says how to repair those documents).
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_redriven_after_the_fix() {
    let mut sc = Scenario::new("fredrive", 2).await;
    let mut spec = WorkloadSpec::new(&sc.legacy_index, 150, 1200, 56);
    (spec.upsert_pct, spec.merge_pct) = (80, 0);
    let cmds = generate(&spec);
    sc.live(&cmds).await;
    // A limit this small dead-letters a large share of the records: systematic, so the poison
    // breaker would halt the run (tests/indexer_poison.rs); here the dead letters are the point.
    sc.run_indexer_to_idle("small", &["--max-payload-bytes", "200", "--max-poison-run", "1000000", "--max-poison-ratio", "1"], RUN);
    let dead = kafka::records_in(&sc.s.kafka, &dlq(&sc));
    assert!(dead > 10, "the too small limit dead-lettered records ({dead})");
    let before = sim::differences(&sc.s.legacy(), &sc.legacy_index, &sc.s.target(), &sc.target_index).await.unwrap();
    assert!(!before.is_empty(), "control: without the re-drive the target differs");

    // The same flags, but the dead-letter topic as the source, in a group of its own.
    let mut args = sc.indexer_args(&["--dead-letter-topic", &format!("{}.again", dlq(&sc)), "--exit-when-idle", "2s"]);
    for (flag, value) in [("--topic", dlq(&sc)), ("--group", unique("fredrive-again"))] {
        let at = args.iter().position(|a| a == flag).expect("flag present") + 1;
        args[at] = value;
    }
    let p = Proc::start("indexer", &format!("{}-redrive", sc.topic), &args);
    assert!(p.wait(RUN).success(), "re-drive finished");
    assert_eq!(kafka::records_in(&sc.s.kafka, &format!("{}.again", dlq(&sc))), 0, "every dead letter applied");
    sc.assert_converged().await;
    kafka::delete_topics(&sc.s.kafka, &[&format!("{}.again", dlq(&sc))]).await;
    sc.cleanup().await;
}

/// A commit the group refuses (the member was frozen past its session timeout, so the group
/// fenced it): a warning, `cutover_indexer_commit_failures_total`, and the failure in `/ready`
/// until a commit succeeds again; nothing is lost (the records are replayed, versions make that
/// harmless) and the target converges.
#[tokio::test(flavor = "multi_thread")]
async fn refused_commit_is_visible_and_loses_nothing() {
    let mut sc = Scenario::new("fcommit", 2).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 200, 1600, 57));
    // Offsets are stored as records are applied but committed only every 10 minutes: the
    // freeze below comes while stored offsets wait for their commit, however long the first
    // half takes.
    let indexer = sc.start_indexer("a", &["--commit-interval", "600000ms"]);
    sc.live(&cmds[..800]).await;
    Scenario::eventually("the first half applied", RUN, || http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains("\"caught_up\":true"))).await;
    indexer.signal("STOP");
    // Session timeout 6 s: the coordinator drops the frozen member and its generation.
    tokio::time::sleep(Duration::from_secs(15)).await;
    indexer.signal("CONT");
    Scenario::eventually("the refused commit counted", RUN, || indexer.metric("cutover_indexer_commit_failures_total").unwrap_or(0.0) >= 1.0).await;
    assert!(log_of(&format!("{}-a", sc.topic)).contains("offset commit failed"), "a warning names the failure");
    sc.live(&cmds[800..]).await;
    sc.drain_and_stop(indexer).await;
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(&sc)), 0, "nothing dead-lettered");
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// Partitions this consumer paused, revoked in a rebalance and given back while it is no longer
/// paused are consumed again. librdkafka keeps a partition's pause across a rebalance when the
/// partition comes back, and the consume loop may resume while nothing is assigned (between an
/// eager revoke and the assign), which resumes nothing: the assign callback sets the pause
/// both ways. (CI caught a member that so stopped reading two partitions and never caught up.)
#[tokio::test(flavor = "multi_thread")]
async fn partitions_paused_before_a_rebalance_are_resumed_when_they_come_back() {
    use indexer::consume::{build_consumer, Ctx, IndexerConsumer};
    use rdkafka::consumer::Consumer;
    use rdkafka::Message;
    use std::sync::{atomic::AtomicBool, Arc};

    let s = cutover::Services::require().await;
    let (topic, group) = (unique("frepause"), unique("frepause-grp"));
    kafka::create_topic(&s.kafka, &topic, 2).await;
    let member = || {
        let ctx = Ctx {
            tracker: Arc::default(),
            drain_timeout: Duration::from_secs(1),
            readiness: Arc::default(),
            paused: Arc::new(AtomicBool::new(false)),
            watch: Arc::new(indexer::kafka::Watch::new(tokio_util::sync::CancellationToken::new())),
            accept_gaps: false,
        };
        let c = build_consumer(&s.kafka, &group, Duration::from_secs(6), Duration::from_secs(5), &[], ctx).unwrap();
        c.subscribe(&[topic.as_str()]).unwrap();
        c
    };
    // Polls the members (rebalances are served while polling) until `done`; the partitions of
    // the records received.
    async fn drive(members: &[&IndexerConsumer], what: &str, done: impl Fn(&[i32]) -> bool) -> Vec<i32> {
        let (deadline, mut seen) = (Instant::now() + Duration::from_secs(60), Vec::new());
        while !done(&seen) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            for m in members {
                if let Ok(Ok(record)) = tokio::time::timeout(Duration::from_millis(100), m.recv()).await {
                    seen.push(record.partition());
                }
            }
        }
        seen
    }
    let assigned = |c: &IndexerConsumer| c.assignment().map(|a| a.count()).unwrap_or(0);
    let a = member();
    drive(&[&a], "the first member assigned", |_| assigned(&a) == 2).await;
    // The state the consume loop can leave: partitions paused in librdkafka, the flag not.
    a.pause(&a.assignment().unwrap()).unwrap();
    let b = member();
    drive(&[&a, &b], "a second member sharing the partitions", |_| assigned(&a) == 1 && assigned(&b) == 1).await;
    drop(b);
    drive(&[&a], "both partitions back with the first member", |_| assigned(&a) == 2).await;
    let p = kafka::producer(&s.kafka);
    let mut produced = Vec::new();
    for n in 0.. {
        produced.push(kafka::produce(&p, &topic, Some(format!("k{n}").as_bytes()), b"{}", &[]).await.0);
        if produced.contains(&0) && produced.contains(&1) {
            break;
        }
    }
    drive(&[&a], "records of both partitions", |seen| seen.contains(&0) && seen.contains(&1)).await;
    kafka::delete_topics(&s.kafka, &[&topic]).await;
}

/// The reader of the logs goes away (stderr a pipe nobody reads any more: a log shipper that
/// died), and stdout has no reader at all: both binaries go on without their logs. Before
/// `runtime::telemetry` dropped lines it could not write, the first such line made the logger
/// report the failure on the same broken stderr, which panicked: the indexer exited 101 having
/// applied nothing. Before the backfill's result lines did the same (`say!`), its closing
/// summary panicked on the closed stdout: exit 101 after a complete copy.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_reader_that_goes_away_stops_neither_binary() {
    let mut sc = Scenario::new("flog", 2).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 100, 1000, 57));
    let mut indexer = Proc::start_then_lose_the_log_reader("indexer", &format!("{}-main", sc.topic), &sc.indexer_args(&["--batch-max-docs", "50"]));
    sc.live(&cmds).await;
    Scenario::eventually("every record committed", RUN, || {
        assert!(indexer.running(), "the indexer died once its log reader was gone");
        sc.committed().iter().sum::<i64>() == 1000
    })
    .await;
    indexer.signal("TERM");
    let status = indexer.wait(Duration::from_secs(60));
    assert!(status.success(), "the indexer went on without its logs and stops cleanly on SIGTERM: {status}");
    sc.assert_converged().await;

    // The backfill, over a target the copy must fill: its progress lines meet the broken pipe.
    let target = sc.s.target();
    target.ok(Method::Delete, &format!("/{}", sc.target_index), None).await.expect("drop the target index");
    sim::create_target_index(&sc.s.legacy(), &sc.legacy_index, &target, &sc.target_index).await.expect("recreate it empty");
    sc.run_backfill_started_by(Proc::start_then_lose_the_log_reader, "copy", &[]);
    sc.assert_converged().await;
    sc.cleanup().await;
}

/// A legacy-style ingest pipeline forced onto the target mid-replay (`index.default_pipeline`
/// naming a pipeline the target does not have): every bulk item fails with "pipeline with id
/// [..] does not exist", which is not proven to be the records' fault. The indexer halts with
/// exit code 4, nothing dead-lettered, nothing committed past; `backfill copy` fails naming the
/// cause, with no document recorded as failed. Once the setting is removed, a restart
/// converges. (Before: 2,000 of 2,000 commands dead-lettered, exit 0.)
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_pipeline_halts_both_writers_without_dead_letters() {
    let mut sc = Scenario::new("fpipe", 2).await;
    let target = sc.s.target();
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 200, 2000, 57));
    let pipeline = unique("missing-stamp");
    let settings = format!("/{}/_settings", sc.target_index);
    let force = async {
        target.ok(Method::Put, &settings, Some(&json!({"index.default_pipeline": pipeline}))).await.expect("force the setting");
    };
    halt_at_a_target_fault(&mut sc, &cmds, force, "does not exist").await;

    // The copy meets the same refusal: at its start-up check, or (forced after it) at its writes.
    let dir = std::env::temp_dir().join(format!("{}-pipeline-copy", sc.topic));
    let run = sc.run_copy_in(&dir, "copy", &["--no-bulk-load"]);
    assert!(run.code.is_some_and(|c| c != 0), "backfill copy into an index with a missing pipeline must fail: {}", run.text);
    assert!(run.text.contains(&pipeline), "the failure names the pipeline: {}", run.text);
    assert!(run.failed.is_empty(), "no document recorded as failed: {:?}", run.failed);
    let _ = std::fs::remove_dir_all(&dir);

    target.ok(Method::Put, &settings, Some(&json!({"index.default_pipeline": null}))).await.expect("remove the setting");
    resume_and_converge(&sc).await;
}

/// Retention overtakes a paused indexer: the target refuses writes for a while (a write block),
/// the indexer pauses, the topic grows and retention deletes records the indexer had not yet
/// fetched. When writes resume, the fetch finds its position deleted: a gap, reported with the
/// partition and the lost range (error log, `cutover_indexer_offset_gaps`, `/ready` closed with
/// the gap in its body), and the partition stops there: nothing after the gap is applied or
/// committed (later merges would read bases missing the lost commands). After the documented
/// remedy (run `backfill copy` again, then restart with `--accept-offset-gaps`) the gate opens
/// and the target converges. (Before: "offset reset" in one WARN line, `/ready` caught up 10 s
/// later, 49,732 documents missing.) The workload has no deletes: a delete lost in a gap
/// leaves a document the backfill cannot know of (`verify` reports it as extra; docs/indexer.md, "Offset gaps").
#[tokio::test(flavor = "multi_thread")]
async fn retention_overtaking_a_paused_indexer_is_a_gap_not_progress() {
    let mut sc = Scenario::new("fret", 1).await;
    let target = sc.s.target();
    let mut spec = WorkloadSpec::new(&sc.legacy_index, 400, 4000, 58);
    (spec.upsert_pct, spec.merge_pct) = (65, 35);
    let cmds = generate(&spec);
    sc.live(&cmds[..1000]).await;
    let flags = ["--batch-max-docs", "50", "--linger", "0ms", "--max-backoff", "500ms", "--max-in-flight", "2"];
    let indexer = sc.start_indexer("main", &flags);
    Scenario::eventually("progress before the block", RUN, || indexer.metric("cutover_indexer_records_total{outcome=\"applied\"}").unwrap_or(0.0) > 50.0).await;
    let block = |on: bool| json!({"index.blocks.write": on});
    target.ok(Method::Put, &format!("/{}/_settings", sc.target_index), Some(&block(true))).await.unwrap();
    // More than the lanes hold: the consumer's backlog waits for them, and it pauses.
    sc.live(&cmds[1000..2500]).await;
    Scenario::eventually("the indexer pauses", RUN, || indexer.metric(indexer::consume::PAUSED) == Some(1.0)).await;
    let consumed = indexer.metric("cutover_indexer_consumed_total").unwrap_or(0.0) as i64;
    // The topic grows while it is paused, and retention deletes past its position.
    sc.live(&cmds[2500..]).await;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(indexer.metric("cutover_indexer_consumed_total").unwrap_or(0.0) as i64, consumed, "nothing fetched while paused");
    let start = consumed + 750;
    let low = kafka::expire_oldest(&sc.s.kafka, &sc.topic, 1, start as f64 / 4000.0 + 1e-9).await;
    assert_eq!(low, vec![start]);
    target.ok(Method::Put, &format!("/{}/_settings", sc.target_index), Some(&block(false))).await.unwrap();

    let expected = format!("next offset {consumed} < log start {start}");
    Scenario::eventually("the gap in /ready", RUN, || {
        let ready = http_get(indexer.metrics_port, "/ready").unwrap_or_default();
        ready.lines().next().is_some_and(|l| l.contains(" 503")) && ready.contains(&expected)
    })
    .await;
    Scenario::eventually("what was fetched before the gap applied", RUN, || sc.committed() == vec![consumed]).await;
    assert_eq!(indexer.metric("cutover_indexer_offset_gaps"), Some(1.0));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sc.committed(), vec![consumed], "nothing after the gap applied or committed");
    let ready = http_get(indexer.metrics_port, "/ready").unwrap_or_default();
    assert!(ready.contains("\"caught_up\":false") && ready.contains(&expected), "the gate stays closed over the hole: {ready}");
    assert!(!sc.differences().await.is_empty(), "the hole is real: the target lacks what the deleted records did");
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq(&sc)), 0, "nothing dead-lettered");
    indexer.signal("TERM");
    assert!(indexer.wait(Duration::from_secs(60)).success());
    assert!(log_of(&format!("{}-main", sc.topic)).contains("offset gap"), "an error log names the gap");

    // The remedy docs/indexer.md gives: copy again (after the gap), then restart accepting the gap.
    sc.run_backfill("after-gap", &[]);
    let restarted = sc.start_indexer("restarted", &["--accept-offset-gaps"]);
    sc.drain_and_stop(restarted).await;
    assert!(log_of(&format!("{}-restarted", sc.topic)).contains("offset gap accepted"), "the accepted gap is logged");
    assert_eq!(sc.committed(), vec![4000]);
    sc.assert_converged().await;
    sc.cleanup().await;
}
