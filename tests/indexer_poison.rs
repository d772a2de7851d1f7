//! Bad input gets a clear error and loses nothing: every kind of undecodable record, a command
//! naming an index the indexer has no target for, and a document the target's mapping refuses,
//! land in the dead-letter topic with their reason and original bytes; everything else is
//! applied; the offsets pass all of them; no index is created by accident.

use cutover::kafka;
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use rdkafka::Message;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_are_dead_lettered_with_their_reason() {
    let mut sc = Scenario::new("poison", 1).await;
    let good = generate(&WorkloadSpec::new(&sc.legacy_index, 50, 200, 5));
    sc.live(&good[..100]).await;

    let idx = sc.legacy_index.clone();
    let big = "x".repeat(8000);
    let stray = cutover::unique("poison-stray");
    // (expected kind, key, payload)
    type Bad<'a> = (&'a str, Option<&'a str>, Option<Vec<u8>>);
    let bad: Vec<Bad<'_>> = vec![
        ("null_value", Some("p1"), None),
        ("empty_payload", Some("p0"), Some(Vec::new())),
        ("too_large", Some("p2"), Some(json!({"op": "upsert", "id": "p2", "index": idx, "version": 1, "doc": {"title": big}}).to_string().into_bytes())),
        ("invalid_utf8", Some("p3"), Some(vec![b'{', 0xff, 0xfe, b'}'])),
        ("invalid_json", Some("p4"), Some(b"{\"op\": \"upsert\", ".to_vec())),
        ("not_an_object", Some("p5"), Some(b"[1, 2, 3]".to_vec())),
        ("unknown_op", Some("p6"), Some(json!({"op": "frobnicate", "id": "p6", "index": idx, "version": 1}).to_string().into_bytes())),
        ("missing_id", None, Some(json!({"op": "delete", "index": idx, "version": 1}).to_string().into_bytes())),
        ("missing_index", Some("p8"), Some(json!({"op": "delete", "id": "p8", "version": 1}).to_string().into_bytes())),
        ("missing_version", Some("p9"), Some(json!({"op": "delete", "id": "p9", "index": idx}).to_string().into_bytes())),
        ("negative_version", Some("p10"), Some(json!({"op": "delete", "id": "p10", "index": idx, "version": -4}).to_string().into_bytes())),
        ("non_integer_version", Some("p11"), Some(json!({"op": "delete", "id": "p11", "index": idx, "version": "12"}).to_string().into_bytes())),
        (
            "wrong_field_type",
            Some("p12"),
            Some(json!({"op": "upsert", "id": "p12", "index": idx, "version": 1, "doc": "not an object"}).to_string().into_bytes()),
        ),
        // Decodes fine, but the target's mapping refuses it (`n` is a long).
        ("mapping", Some("p13"), Some(json!({"op": "upsert", "id": "p13", "index": idx, "version": 1, "doc": {"n": "not a number"}}).to_string().into_bytes())),
        // An index the indexer has no target for: never auto-created.
        (
            "unknown_index",
            Some("p14"),
            Some(json!({"op": "upsert", "id": "p14", "index": stray, "version": 1, "doc": {"title": "t"}}).to_string().into_bytes()),
        ),
    ];
    let producer = kafka::producer(&sc.s.kafka);
    let mut offsets = BTreeMap::new();
    for (kind, key, payload) in &bad {
        let (_, offset) = match payload {
            Some(p) => kafka::produce(&producer, &sc.topic, key.map(str::as_bytes), p, &[("trace", b"t-1")]).await,
            None => {
                use rdkafka::producer::FutureRecord;
                let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&sc.topic).key(key.unwrap().as_bytes());
                let d = producer.send(rec, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
                (d.partition, d.offset)
            }
        };
        offsets.insert(offset, *kind);
    }
    sc.live(&good[100..]).await;

    sc.run_indexer_to_idle("dlq", &["--max-payload-bytes", "4096"], Duration::from_secs(120));
    sc.assert_converged().await;
    assert_eq!(sc.committed(), vec![(good.len() + bad.len()) as i64], "offsets pass the dead-lettered records");

    let dlq = kafka::read_all(&sc.s.kafka, &format!("{}.dlq", sc.topic), bad.len(), Duration::from_secs(30));
    assert_eq!(dlq.len(), bad.len(), "one dead letter per bad record");
    for m in &dlq {
        let offset: i64 = kafka::header(m, "cutover.offset").unwrap().parse().unwrap();
        let expected = offsets[&offset];
        assert_eq!(kafka::header(m, "cutover.error.kind").as_deref(), Some(expected), "kind of offset {offset}");
        assert!(!kafka::header(m, "cutover.reason").unwrap_or_default().is_empty(), "a reason for {expected}");
        assert_eq!(kafka::header(m, "cutover.topic").as_deref(), Some(sc.topic.as_str()));
        assert_eq!(kafka::header(m, "cutover.partition").as_deref(), Some("0"));
        let (_, key, payload) = bad.iter().find(|(k, _, _)| *k == expected).unwrap();
        assert_eq!(m.key(), key.map(str::as_bytes), "original key kept ({expected})");
        assert_eq!(m.payload(), payload.as_deref(), "original bytes kept ({expected})");
        if payload.is_some() {
            assert_eq!(kafka::header(m, "trace").as_deref(), Some("t-1"), "original headers kept ({expected})");
        }
        if expected == "null_value" || expected == "unknown_index" {
            let reason = kafka::header(m, "cutover.reason").unwrap_or_default();
            let flag = if expected == "null_value" { "--null-value delete" } else { "--index-map" };
            assert!(reason.contains(flag), "the reason names {flag}: {reason}");
        }
    }
    let (status, _) = sc.s.target().request(elasticsearch::http::Method::Get, &format!("/{stray}"), None).await.unwrap();
    assert_eq!(status, 404, "no index auto-created for the unknown one");
    sc.cleanup().await;
}

/// A command naming an index without a target halts under `--on-poison halt` (exit 3), before
/// anything is created or committed past it.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_index_halts_under_on_poison_halt() {
    let mut sc = Scenario::new("unknown-halt", 1).await;
    let good = generate(&WorkloadSpec::new(&sc.legacy_index, 20, 50, 11));
    sc.live(&good).await;
    let stray = cutover::unique("halt-stray");
    let producer = kafka::producer(&sc.s.kafka);
    let env = json!({"op": "upsert", "id": "s1", "index": stray, "version": 1, "doc": {"title": "t"}});
    kafka::produce(&producer, &sc.topic, Some(b"s1"), env.to_string().as_bytes(), &[]).await;
    let p = sc.start_indexer("halt", &["--on-poison", "halt"]);
    assert_eq!(p.wait(Duration::from_secs(60)).code(), Some(3), "halt exit code");
    assert!(sc.committed()[0] <= 50, "never committed past the stray command at offset 50");
    let log = std::fs::read_to_string(cutover::procs::log_path(&format!("{}-halt", sc.topic))).unwrap();
    assert!(log.contains("unknown_index"), "the halt names the kind: {log}");
    let (status, _) = sc.s.target().request(elasticsearch::http::Method::Get, &format!("/{stray}"), None).await.unwrap();
    assert_eq!(status, 404, "no index auto-created");
    sc.cleanup().await;
}

/// `--on-poison halt` stops at the first poison record without committing past it.
#[tokio::test(flavor = "multi_thread")]
async fn halt_mode_stops_before_the_poison_record() {
    let mut sc = Scenario::new("halt", 1).await;
    let good = generate(&WorkloadSpec::new(&sc.legacy_index, 20, 50, 9));
    sc.live(&good).await;
    let producer = kafka::producer(&sc.s.kafka);
    kafka::produce(&producer, &sc.topic, Some(b"x"), b"{broken", &[]).await;
    sc.live(&generate(&WorkloadSpec::new(&sc.legacy_index, 20, 10, 10))).await;
    let p = sc.start_indexer("halt", &["--on-poison", "halt"]);
    let status = p.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "halt exit code");
    let committed = sc.committed()[0];
    assert!(committed <= 50, "never committed past the poison record at offset 50 (committed {committed})");
    let dlq = kafka::read_all(&sc.s.kafka, &format!("{}.dlq", sc.topic), 1, Duration::from_secs(3));
    assert!(dlq.is_empty(), "halt mode writes no dead letter");
}

/// The indexer refuses to start (exit code 2, a message saying why) when the target index is
/// missing, or when its `gc_deletes` is too short to keep deletes for the migration window.
#[tokio::test(flavor = "multi_thread")]
async fn refuses_an_unfit_target() {
    use cutover::procs::Proc;
    let sc = Scenario::new("refuse", 1).await;
    let target = sc.s.target();
    target.ok(elasticsearch::http::Method::Put, &format!("/{}/_settings", sc.target_index), Some(&json!({"index": {"gc_deletes": "60s"}}))).await.unwrap();
    let p = sc.start_indexer("gc", &[]);
    let status = p.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2));
    let log = std::fs::read_to_string(cutover::procs::log_path(&format!("{}-gc", sc.topic))).unwrap();
    assert!(log.contains("gc_deletes"), "the refusal names gc_deletes: {log}");

    let mut args = sc.indexer_args(&[]);
    let at = args.iter().position(|a| a == "--index-map").unwrap();
    args[at + 1] = format!("{}=does-not-exist-{}", sc.legacy_index, sc.topic);
    let p = Proc::start("indexer", &format!("{}-missing", sc.topic), &args);
    assert_eq!(p.wait(Duration::from_secs(30)).code(), Some(2));
    let log = std::fs::read_to_string(cutover::procs::log_path(&format!("{}-missing", sc.topic))).unwrap();
    assert!(log.contains("does not exist") && log.contains("create-index"), "the refusal says how to fix it: {log}");

    // No guessing the legacy indexer: without --merge-absent or --legacy-version, refused.
    for flag in ["--merge-absent", "--legacy-version"] {
        let mut args = sc.indexer_args(&[]);
        let at = args.iter().position(|a| a == flag).unwrap();
        args.drain(at..at + 2);
        let name = format!("{}-no{flag}", sc.topic);
        let p = Proc::start("indexer", &name, &args);
        assert_eq!(p.wait(Duration::from_secs(30)).code(), Some(2), "refused without {flag}");
        let log = std::fs::read_to_string(cutover::procs::log_path(&name)).unwrap();
        assert!(log.contains(flag), "the refusal names {flag}: {log}");
    }
}

/// `/ready` answers 503 while records are unapplied and 200 once the lag is 0 everywhere.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_gate_follows_the_lag() {
    use cutover::procs::http_get;
    let mut sc = Scenario::new("ready", 2).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 100, 1500, 77));
    sc.live(&cmds).await;
    let p = sc.start_indexer("gate", &["--batch-max-docs", "20", "--linger", "0ms", "--max-in-flight", "1", "--refresh"]);
    Scenario::eventually("metrics endpoint up", Duration::from_secs(30), || http_get(p.metrics_port, "/health").is_some()).await;
    // A lag measured above 0 (before the first measurement the gate is closed anyway, which
    // would prove nothing), and the gate closed with it.
    let lagging = |r: &str| {
        let body: serde_json::Value = r.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or_default();
        body["lag"].as_object().is_some_and(|lag| lag.values().any(|v| v.as_i64() > Some(0)))
    };
    let mut early = String::new();
    Scenario::eventually("a lag measured", Duration::from_secs(30), || {
        early = http_get(p.metrics_port, "/ready").unwrap_or_default();
        lagging(&early)
    })
    .await;
    assert!(early.starts_with("HTTP/1.0 503") || early.starts_with("HTTP/1.1 503"), "not ready while lagging: {early}");
    Scenario::eventually("caught up", Duration::from_secs(120), || {
        http_get(p.metrics_port, "/ready").is_some_and(|r| r.contains(" 200 ") && r.contains("\"caught_up\":true"))
    })
    .await;
    sc.assert_converged().await;
    let metrics = http_get(p.metrics_port, "/metrics").unwrap();
    for name in [
        "cutover_indexer_consumed_total",
        "cutover_indexer_records_total",
        "cutover_bulk_latency_seconds_bucket",
        "cutover_indexer_lag",
        "cutover_bulk_in_flight",
    ] {
        assert!(metrics.contains(name), "/metrics exposes {name}");
    }
    // Every family the indexer exposes says what it measures (runtime::telemetry::METRICS).
    let families: Vec<&str> = metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    assert!(families.len() >= 8, "families: {families:?}");
    for family in families {
        assert!(metrics.contains(&format!("# HELP {family} ")), "{family} has HELP text:\n{metrics}");
    }
    p.signal("TERM");
    assert!(p.wait(Duration::from_secs(30)).success());
}

/// Commands that break the model's assumptions are reported: a document on two partitions
/// (topic not keyed by id) and a version going backwards along a partition.
#[tokio::test(flavor = "multi_thread")]
async fn invariant_violations_are_reported() {
    let sc = Scenario::new("invariants", 2).await;
    let idx = sc.legacy_index.clone();
    let p = kafka::producer(&sc.s.kafka);
    let doc = |v: u64| json!({"op": "upsert", "id": "x", "index": idx, "version": v, "doc": {"title": "t"}}).to_string().into_bytes();
    kafka::produce_to(&p, &sc.topic, 0, b"x", &doc(5)).await;
    kafka::produce_to(&p, &sc.topic, 0, b"x", &doc(3)).await; // backwards on partition 0
    let p2 = kafka::producer(&sc.s.kafka);
    kafka::produce_to(&p2, &sc.topic, 1, b"x", &doc(9)).await; // same document, other partition
    let mut indexer = sc.start_indexer("inv", &["--exit-when-idle", "3s", "--max-in-flight", "1"]);
    let mut seen = (0.0, 0.0);
    while indexer.running() {
        if let (Some(a), Some(b)) = (
            indexer.metric("cutover_indexer_invariant_violations_total{kind=\"version_backwards\"}"),
            indexer.metric("cutover_indexer_invariant_violations_total{kind=\"partition\"}"),
        ) {
            seen = (a, b);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(indexer.wait(Duration::from_secs(5)).success());
    assert!(seen.0 >= 1.0 && seen.1 >= 1.0, "both violations reported: {seen:?}");
    let got = cutover::sim::get_doc(&sc.s.target(), &sc.target_index, "x", None).await.unwrap().expect("document written");
    assert_eq!(got.0, 9, "the highest version wins regardless");
}

/// The chain from the indexer's tombstone records to `verify`: a delete the indexer applied,
/// then (with the tombstone forgotten by a too-short `gc_deletes`) a stale write brings the
/// document back; verify reads the tombstone index by itself and reports it as resurrected,
/// not merely extra.
#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_a_resurrected_delete_from_indexer_tombstones() {
    let sc = Scenario::new("resurrect", 1).await;
    let idx = sc.legacy_index.clone();
    let p = kafka::producer(&sc.s.kafka);
    for (v, op) in [(1u64, "upsert"), (2, "delete")] {
        let env = json!({"op": op, "id": "r", "index": idx, "version": v, "doc": {"title": "t"}});
        kafka::produce(&p, &sc.topic, Some(b"r"), env.to_string().as_bytes(), &[]).await;
    }
    sc.run_indexer_to_idle("tomb", &[], Duration::from_secs(60));
    let target = sc.s.target();
    let settings = json!({"index": {"gc_deletes": "1s"}});
    target.ok(elasticsearch::http::Method::Put, &format!("/{}/_settings", sc.target_index), Some(&settings)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    target.refresh(&sc.target_index).await.unwrap();
    let stale = format!(
        "{}\n{}\n",
        json!({"index": {"_index": sc.target_index, "_id": "r", "version": 1, "version_type": "external"}}),
        json!({"title": "t", "tags": []})
    );
    let resp = target.bulk(stale.into(), true).await.unwrap();
    assert_eq!(resp["items"][0]["index"]["status"], 201, "the stale write resurrected the document: {resp}");

    let mut cfg = backfill::verify::VerifyConfig::new(&sc.legacy_index, &sc.target_index, schema::LegacyVersionSource::Version);
    cfg.known_deletes = backfill::verify::indexer_tombstones(&target, &sc.target_index).await.unwrap();
    assert_eq!(cfg.known_deletes.get("r"), Some(&2), "the indexer recorded the delete");
    cfg.settle_timeout = Duration::from_secs(2);
    let report = backfill::verify::verify(&sc.s.legacy(), &target, &cfg).await.unwrap();
    assert!(!report.converged);
    assert_eq!(report.resurrected.count, 1, "{report:?}");
    assert_eq!(report.resurrected.sample_ids, vec!["r".to_string()]);
    assert_eq!(report.extra.count, 0);
    sc.cleanup().await;
}

/// A systematic mapping conflict (every record's `n` is a string, the target maps `n` as a
/// long) is a fault, not 400 bad records: the poison breaker halts the indexer (exit 3) at the
/// 50th record in a row judged bad (`--max-poison-run`), with the 49 before it dead-lettered
/// and nothing past them committed. Control: with limits no stream reaches, the same indexer
/// dead-letters every record and exits 0, which is what the breaker prevents.
#[tokio::test(flavor = "multi_thread")]
async fn a_systematic_mapping_conflict_trips_the_breaker() {
    let sc = Scenario::new("breaker", 1).await;
    let producer = kafka::producer(&sc.s.kafka);
    for i in 0..400 {
        let env = json!({"op": "upsert", "id": format!("b{i}"), "index": sc.legacy_index, "version": 1, "doc": {"n": "not a number", "title": "t"}});
        kafka::produce(&producer, &sc.topic, Some(format!("b{i}").as_bytes()), env.to_string().as_bytes(), &[]).await;
    }
    let dlq = format!("{}.dlq", sc.topic);
    let p = sc.start_indexer("tripped", &[]);
    assert_eq!(p.wait(Duration::from_secs(90)).code(), Some(3), "the breaker halts with exit code 3");
    let log = cutover::procs::log_of(&format!("{}-tripped", sc.topic));
    assert!(log.contains("poison breaker") && log.contains("50 records in a row") && log.contains("mapping"), "the halt says what it saw: {log}");
    assert_eq!(kafka::records_in(&sc.s.kafka, &dlq), 49, "dead letters up to the threshold, not 100 %");
    assert!(sc.committed()[0] <= 49, "nothing committed past the records judged bad: {:?}", sc.committed());

    let p = sc.start_indexer("control", &["--max-poison-run", "1000000", "--max-poison-ratio", "1", "--exit-when-idle", "2s"]);
    assert_eq!(p.wait(Duration::from_secs(120)).code(), Some(0), "without the breaker the indexer stops cleanly");
    // At least once: records dead-lettered past the first run's committed offset come again.
    let letters = kafka::read_all(&sc.s.kafka, &dlq, kafka::records_in(&sc.s.kafka, &dlq) as usize, Duration::from_secs(30));
    let offsets: std::collections::BTreeSet<String> = letters.iter().filter_map(|m| kafka::header(m, "cutover.offset")).collect();
    assert_eq!(offsets.len(), 400, "without the breaker every record is dead-lettered");
    sc.cleanup().await;
}

/// `backfill copy` applies the same rule to documents the target refuses (the target maps `n`
/// as an `ip`, the legacy documents hold numbers; those without `n` pass): it stops with exit
/// code 5 once the failed documents are systematic, the batch that tripped it neither recorded
/// nor checkpointed. Control: with limits no stream reaches, the copy finishes, lists every
/// refused document in the failures file, and exits 4 (documents failed), never 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_systematic_mapping_conflict_stops_the_copy() {
    use elasticsearch::http::Method;
    let mut sc = Scenario::new("cbreaker", 1).await;
    sc.live(&generate(&WorkloadSpec::new(&sc.legacy_index, 200, 400, 61))).await;
    let (legacy, target) = (sc.s.legacy(), sc.s.target());
    let got = legacy.get(&format!("/{}", sc.legacy_index)).await.unwrap();
    let mut def = schema::target_definition(&got[&sc.legacy_index], &schema::TargetDefinitionConfig::default()).unwrap();
    def["mappings"]["properties"]["n"] = json!({"type": "ip"});
    target.ok(Method::Delete, &format!("/{}", sc.target_index), None).await.unwrap();
    target.ok(Method::Put, &format!("/{}", sc.target_index), Some(&def)).await.unwrap();

    let dir = std::env::temp_dir().join(format!("{}-breaker-copy", sc.topic));
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["--batch-size", "20", "--bulk-concurrency", "1", "--slices", "1"];
        args.extend_from_slice(extra);
        let run = sc.run_copy_in(&dir, name, &args);
        (run.code, run.text, run.failed.len())
    };
    let (code, text, tripped) = run("tripped", &[]);
    assert_eq!(code, Some(5), "the breaker stops the copy with exit code 5: {text}");
    assert!(text.contains("systematic failures") && text.contains("check the target's mapping"), "it says what it saw: {text}");
    assert!(tripped < 101, "no more than the breaker allows is recorded ({tripped})");

    let (code, text, failed) = run("control", &["--max-poison-run", "1000000", "--max-poison-ratio", "1"]);
    assert_eq!(code, Some(4), "failed documents make the copy exit 4: {text}");
    assert!(text.contains("failures file"), "it says where they are listed: {text}");
    let copied = legacy_count(&target, &sc.target_index).await;
    assert_eq!(failed as u64 + copied, legacy_count(&legacy, &sc.legacy_index).await, "every document copied or listed");
    assert!(failed > 100 && failed > tripped, "the breaker stopped what would have failed on: {failed} vs {tripped}");
    // The same command again: every slice is done, nothing fails in this run, and the copy
    // still exits 4 (its checkpoints remember the documents it could not copy).
    let (code, text, _) = run("control", &["--max-poison-run", "1000000", "--max-poison-ratio", "1"]);
    assert_eq!(code, Some(4), "a rerun past failed documents still exits 4: {text}");
    assert!(text.contains(&format!("{failed} failed over every run")), "it says how many: {text}");
    let _ = std::fs::remove_dir_all(&dir);
    sc.cleanup().await;
}

async fn legacy_count(es: &cluster::Es, index: &str) -> u64 {
    es.refresh(index).await.unwrap();
    es.get(&format!("/{index}/_count")).await.unwrap()["count"].as_u64().unwrap()
}
