//! A compacted command topic, compacted for real by the broker's log cleaner: a legacy system
//! that deletes with null-value records keyed by document id (the version in a `version`
//! header), a topic with `cleanup.policy=compact`, segments rolled every second and cleaned as
//! soon as they are, tombstones removed one second after the cleaner first sees them. Once a
//! fresh consumer reading from offset 0 proves the cleaner has run (fewer records than were
//! produced, holes in the offsets, documents whose every record is gone), the indexer replays
//! the topic from offset 0 in a group of its own while the backfill copies the legacy index and
//! live traffic continues; the readiness gate must open (compaction's holes are no offset gaps)
//! and both clusters must equal the simulator's model.

use cutover::kafka;
use cutover::procs::{http_get, Proc};
use cutover::scenario::Scenario;
use cutover::sim::{generate, LegacyBehaviour, SimCommand, WorkloadSpec};
use cutover::unique;
use rdkafka::message::{Message, OwnedMessage};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const DOCS: usize = 200;
const COMMANDS: usize = 3000;
/// Commands produced (and applied by the legacy indexer) before the cleaner is waited for.
const HISTORY: usize = 2000;
/// Commands produced at each tick while waiting for the cleaner: live traffic, which also rolls
/// the active segment (`segment.ms` has passed since its first record), so the log is dirty
/// again and the cleaner keeps working.
const TRICKLE: usize = 10;
/// The broker's cleaner sleeps `log.cleaner.backoff.ms` (15 s by default) when it finds
/// nothing to clean; tombstones need a second pass after `delete.retention.ms`.
const COMPACTION_WAIT: Duration = Duration::from_secs(90);
/// The whole test.
const WHOLE: Duration = Duration::from_secs(180);

/// The command topic's configuration: compacted, small segments (1 MiB is the broker's
/// minimum `segment.bytes`, so segments roll on time: every second), cleanable as soon as
/// rolled, tombstones kept only one second after the first pass that sees them.
const COMPACTED: [(&str, &str); 6] = [
    ("cleanup.policy", "compact"),
    ("segment.bytes", "1048576"),
    ("segment.ms", "1000"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("min.compaction.lag.ms", "0"),
    ("delete.retention.ms", "1000"),
];

/// What a fresh consumer reads from offset 0, against what was produced.
#[derive(Debug)]
struct LogShape {
    produced: usize,
    read: usize,
    /// Runs of missing offsets below the last record read (or before the first), over every
    /// partition: a non-transactional log has none unless the cleaner removed records.
    holes: usize,
    /// Null-value records still in the log.
    tombstones: usize,
    /// Documents produced of which no record is left: their last record, a null-value delete,
    /// was removed after `delete.retention.ms` (compaction keeps the last record of each key).
    keys_gone: usize,
}

impl LogShape {
    fn of(records: &[OwnedMessage], produced: &[SimCommand]) -> LogShape {
        let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for m in records {
            offsets.entry(m.partition()).or_default().push(m.offset());
        }
        let mut holes = 0;
        for o in offsets.values_mut() {
            o.sort_unstable();
            holes += usize::from(o[0] > 0) + o.windows(2).filter(|w| w[1] > w[0] + 1).count();
        }
        let keys: BTreeSet<&[u8]> = records.iter().filter_map(|m| m.key()).collect();
        let ids: BTreeSet<&str> = produced.iter().map(|c| c.id.as_str()).collect();
        LogShape {
            produced: produced.len(),
            read: records.len(),
            holes,
            tombstones: records.iter().filter(|m| m.payload().is_none()).count(),
            keys_gone: ids.iter().filter(|id| !keys.contains(id.as_bytes())).count(),
        }
    }

    /// The cleaner has compacted (records gone, holes left) and removed tombstones.
    fn compacted(&self) -> bool {
        self.read < self.produced && self.holes > 0 && self.keys_gone > 0
    }
}

fn read_shape(sc: &Scenario, produced: &[SimCommand]) -> LogShape {
    let records = tokio::task::block_in_place(|| kafka::read_to_end(&sc.s.kafka, &sc.topic, Duration::from_secs(30)));
    LogShape::of(&records, produced)
}

#[tokio::test(flavor = "multi_thread")]
async fn compacted_topic_converges_with_the_gate_open() {
    tokio::time::timeout(WHOLE, compacted_topic_converges()).await.expect("the whole test took too long");
}

async fn compacted_topic_converges() {
    let start = Instant::now();
    let behaviour = LegacyBehaviour { null_deletes: true, ..Default::default() };
    let mut sc = Scenario::with_behaviour("compact", 2, behaviour).await;
    // The scenario made a plain topic: a compacted one replaces it (a new name: a deleted
    // topic's name is not free again at once).
    let plain = std::mem::replace(&mut sc.topic, unique("compact-cmds"));
    kafka::delete_topics(&sc.s.kafka, &[&plain]).await;
    kafka::create_topic_with_config(&sc.s.kafka, &sc.topic, sc.partitions, &COMPACTED).await;
    assert_eq!(sc.flags.version_source, "header:version");
    assert_eq!(sc.flags.null_value, "delete");

    let mut spec = WorkloadSpec::new(&sc.legacy_index, DOCS, COMMANDS, 29);
    spec.null_deletes = true;
    (spec.upsert_pct, spec.merge_pct) = (40, 35);
    let cmds = generate(&spec);
    assert!(cmds[..HISTORY].iter().filter(|c| c.null_value).count() > 100, "the history deletes with null values");

    // The history, applied by the legacy indexer 1.5 s after each burst (so the bursts land in
    // several segments).
    for chunk in cmds[..HISTORY].chunks(500) {
        sc.live(chunk).await;
    }
    let history_at = start.elapsed();

    // Live traffic trickles in until a fresh consumer proves the cleaner has run.
    let mut next = HISTORY;
    let deadline = Instant::now() + COMPACTION_WAIT;
    let shape = loop {
        let shape = read_shape(&sc, &cmds[..next]);
        if shape.compacted() {
            break shape;
        }
        assert!(Instant::now() < deadline, "the broker's cleaner did not compact the topic within {COMPACTION_WAIT:?}: {shape:?}");
        assert!(next + TRICKLE <= COMMANDS, "workload exhausted while waiting for the cleaner: {shape:?}");
        sc.live(&cmds[next..next + TRICKLE]).await;
        next += TRICKLE;
    };
    let compacted_at = start.elapsed();
    eprintln!("compacted: {shape:?}, {} null-value records left (history produced at {history_at:?}, compaction proven at {compacted_at:?})", shape.tombstones);

    // Replay from offset 0 (a fresh group) and the backfill, under the rest of the traffic.
    let indexer = sc.start_indexer("replay", &["--batch-max-docs", "200"]);
    let dir = std::env::temp_dir().join(format!("{}-checkpoints", sc.topic));
    let backfill = Proc::start("backfill", &format!("{}-copy", sc.topic), &sc.backfill_args(&dir, &["--batch-size", "200"]));
    for chunk in cmds[next..].chunks(250) {
        sc.live(chunk).await;
    }
    assert!(backfill.wait(Duration::from_secs(120)).success(), "backfill failed (see target/test-logs)");
    let _ = std::fs::remove_dir_all(&dir);

    // The gate: finalize, then /ready answers 200 with caught_up, and no offset gap.
    sc.run_finalize();
    Scenario::eventually("the readiness gate opens", Duration::from_secs(60), || {
        http_get(indexer.metrics_port, "/ready").is_some_and(|r| r.contains("\"caught_up\":true"))
    })
    .await;
    let gate_at = start.elapsed();
    let ready = http_get(indexer.metrics_port, "/ready").expect("/ready answers");
    assert!(ready.lines().next().is_some_and(|l| l.contains(" 200")), "/ready answers 200: {ready}");
    assert!(ready.contains("\"caught_up\":true") && !ready.contains("offset_gaps"), "caught up, no offset gap: {ready}");
    let metrics = http_get(indexer.metrics_port, "/metrics").expect("/metrics answers");
    assert!(metrics.lines().any(|l| l == "cutover_indexer_offset_gaps 0"), "cutover_indexer_offset_gaps is 0: {metrics}");
    // The indexer itself read the compacted log, not the whole history.
    let consumed = indexer.metric("cutover_indexer_consumed_total").expect("metrics");
    assert!(consumed > 0.0 && consumed < COMMANDS as f64, "the indexer consumed {consumed} records of {COMMANDS} produced");
    indexer.signal("TERM");
    let status = indexer.wait(Duration::from_secs(30));
    assert!(status.success(), "indexer exit after SIGTERM: {status}");

    sc.assert_converged_to_model().await;
    eprintln!("gate open at {gate_at:?}, converged at {:?}; the indexer consumed {consumed} of {COMMANDS} records", start.elapsed());
    sc.cleanup().await;
}
