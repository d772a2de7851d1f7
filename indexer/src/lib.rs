//! The new indexer: replays the command topic into the target cluster, idempotently, from the
//! oldest retained offset, under its own consumer group.
//!
//! Modules, one concern each:
//! - [`config`]: options and defaults (`indexer --help`).
//! - [`consume`]: the Kafka consumer, pausing, rebalance handling, offset storing.
//! - [`offsets`]: contiguous offset tracking across lanes.
//! - [`positions`]: where each partition is read from; out-of-range positions are gaps, never
//!   silent resets.
//! - [`lanes`]: per-document-ordered batching and parallel bulk requests.
//! - [`apply`]: the convergence model (external versions, read-merge-write, tombstones).
//! - [`deadletter`]: the dead-letter topic.
//! - [`invariants`]: reports commands that break the model's assumptions (keying, versions).
//! - [`readiness`]: the gate; the modules that know a reason to keep it closed report to it.
//! - [`lag`], [`http`]: lag per partition, `/ready` and Prometheus metrics.
//! - [`startup`]: the checks that refuse to start on an unfit target.
//! - [`kafka`]: refused librdkafka overrides, the start-up probe of the brokers, fatal client errors.
//!
//! Locks: `parking_lot`'s, in both binaries: a panic on any thread ends the process
//! (`runtime::panic::exit_on_panic`), so there is no poisoned state to recover or to panic on.

pub mod apply;
pub mod config;
pub mod consume;
pub mod deadletter;
pub mod http;
pub mod invariants;
pub mod kafka;
pub mod lag;
pub mod lanes;
pub mod offsets;
pub mod positions;
pub mod readiness;
pub mod startup;

use parking_lot::Mutex;
use rdkafka::consumer::{CommitMode, Consumer};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::IndexerConfig;
use crate::consume::{Ctx, Router};
use crate::deadletter::DeadLetterSink;
use crate::lanes::{LaneLimits, LaneShared};
use crate::offsets::Tracker;
use crate::readiness::Readiness;

/// How often the lag (and so `/ready` and `--exit-when-idle`) is measured. Each measure
/// asks the brokers for the topic's metadata (the watermarks of assigned partitions are cached),
/// so it runs no more often than a readiness probe needs; the idle exit itself does not wait for
/// the next measure once its time is up ([`lag::run`]).
const LAG_INTERVAL: Duration = Duration::from_millis(250);

/// Why the indexer stopped other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// The configuration or the target cluster is unfit; nothing was consumed.
    #[error("refusing to start: {0}")]
    Refused(String),
    /// `--on-poison halt` met a poison record, or the poison breaker tripped (records judged bad
    /// systematically); nothing past it was committed.
    #[error("halted: {0}")]
    Halted(String),
    /// The target refused work for a reason an operator must fix (credentials revoked, index
    /// deleted or closed, retries exhausted); nothing past the refused records was committed.
    #[error("halted: {0}")]
    ClusterRefused(String),
    /// Kafka cannot be used as configured: credentials or TLS refused (at start-up or later),
    /// or no broker reachable within `--kafka-connect-timeout`.
    #[error("kafka unavailable: {0}")]
    KafkaUnavailable(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("metrics endpoint: {0}")]
    Http(#[from] std::io::Error),
}

impl IndexerError {
    /// The process exit code for this error: 2 refused to start, 3 halted on a poison record
    /// (`--on-poison halt`) or by the poison breaker, 4 halted because the cluster (or the
    /// path to it) must be fixed first, 5 Kafka
    /// unavailable (credentials, TLS, unreachable), 1 other.
    pub fn exit_code(&self) -> i32 {
        match self {
            IndexerError::Refused(_) => 2,
            IndexerError::Halted(_) => 3,
            IndexerError::ClusterRefused(_) => 4,
            IndexerError::KafkaUnavailable(_) => 5,
            _ => 1,
        }
    }
}

/// Runs the indexer until `shutdown` fires (SIGTERM/SIGINT in the binary), it is caught up and
/// idle (`--exit-when-idle`), or `--on-poison halt` stops it.
pub async fn run(cfg: IndexerConfig, prometheus: metrics_exporter_prometheus::PrometheusHandle, shutdown: CancellationToken) -> Result<(), IndexerError> {
    let stop = shutdown.child_token(); // stop fetching
    let abort = CancellationToken::new(); // give up retries (after the shutdown timeout)
                                          // Every configuration read and check happens in `prepare`, before any connection, bind or
                                          // subscribe.
    let startup::Prepared { applier, props, decode } = startup::prepare(&cfg, abort.clone(), &stop).await?;

    let tracker = Arc::new(Tracker::default());
    let readiness = Arc::new(Readiness::default());
    let paused = Arc::new(AtomicBool::new(false));
    let watch = Arc::new(kafka::Watch::new(stop.clone()));
    let ctx = Ctx {
        tracker: tracker.clone(),
        drain_timeout: cfg.shutdown_timeout(),
        readiness: readiness.clone(),
        paused: paused.clone(),
        watch: watch.clone(),
        accept_gaps: cfg.ops.accept_offset_gaps,
    };
    let consumer = Arc::new(consume::build_consumer(&cfg.kafka.brokers, &cfg.kafka.group, cfg.kafka.session_timeout, cfg.kafka.commit_interval, &props, ctx)?);
    report_offset_gaps(consumer.clone(), &cfg.kafka.topic, &readiness, cfg.ops.accept_offset_gaps).await;
    // The dead-letter producer's properties are checked (by making one) before joining the group.
    let dead_letters = DeadLetterSink::new(&cfg.kafka.brokers, &props, cfg.dead_letter_topic(), cfg.retry_policy(), abort.clone())?;
    consumer.subscribe(&[cfg.kafka.topic.as_str()])?;
    let server = http::serve(cfg.ops.metrics_addr, prometheus, readiness.clone(), abort.clone()).await?;

    let halted = Arc::new(Mutex::new(None));
    // The gate's poll reports a target it cannot read at once (the gate closes) instead of
    // waiting it out: sent once.
    let target_refresh = lag::TargetRefresh { es: applier.writer.es().once(), indices: applier.known_targets.clone() };
    let (spent, recycler) = lanes::recycling();
    let shared = LaneShared {
        applier,
        dead_letters,
        tracker: tracker.clone(),
        on_poison: cfg.ops.on_poison,
        halted: halted.clone(),
        stop: stop.clone(),
        breaker: Arc::new(Mutex::new(cluster::Breaker::new((&cfg.ops.breaker).into()))),
        spent,
    };
    let (lanes, depth) = lanes::layout(cfg.batch.max_in_flight);
    let (senders, workers) = start_lanes(&cfg, lanes, depth, &shared);
    let lag_task = tokio::spawn(lag::run(
        cfg.kafka.topic.clone(),
        consumer.clone(),
        tracker.clone(),
        readiness,
        target_refresh,
        LAG_INTERVAL,
        stop.clone(),
        cfg.ops.exit_when_idle,
    ));

    let router = Router { decoder: schema::Decoder::new(decode), lanes };
    tracing::info!(topic = %cfg.kafka.topic, group = %cfg.kafka.group, lanes, depth, "indexer started");
    // The consumer is polled on a thread of its own: its rebalance callback may block (see
    // `consume::Ctx::pre_rebalance`), which an async worker must not.
    let consumer_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| IndexerError::Refused(format!("cannot start the consumer's runtime: {e}")))?;
    let commit_interval = cfg.kafka.commit_interval;
    let consuming =
        consume::spawn_consume_loop(consumer_runtime, consumer.clone(), router, senders, tracker.clone(), stop.clone(), commit_interval, paused, recycler);
    if let Err(e) = consuming.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    // Shutdown: stop fetching (done; the lane senders are dropped), let lanes finish what they
    // hold, commit, exit.
    drain_and_commit(workers, &consumer, &tracker, cfg.shutdown_timeout(), &abort).await;
    let _ = lag_task.await;
    let _ = server.await;
    // Dropping the last handle closes the consumer: librdkafka serves the final revoke, and
    // its callback (which may wait and commit), on the dropping thread: the blocking pool.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    match halted.lock().take() {
        Some(lanes::Stop::Poison(reason)) => return Err(IndexerError::Halted(reason)),
        Some(lanes::Stop::Cluster(reason)) => return Err(IndexerError::ClusterRefused(reason)),
        None => {}
    }
    if let Some(reason) = watch.fatal() {
        return Err(IndexerError::KafkaUnavailable(reason));
    }
    // What this run did (`span`: from the first record received to the last completed, the
    // start-up and the idle wait before an exit left out).
    let done = tracker.activity();
    let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    tracing::info!(records = done.records, span_secs = done.span.map(secs), records_per_sec = done.rate().map(|r| r.round() as u64), "indexer stopped cleanly");
    Ok(())
}

/// Starts `lanes` lanes of `depth` batches in flight each: their senders (for the consumer)
/// and their tasks.
fn start_lanes(
    cfg: &IndexerConfig,
    lanes: usize,
    depth: usize,
    shared: &LaneShared,
) -> (Vec<mpsc::Sender<Vec<lanes::Item>>>, Vec<tokio::task::JoinHandle<()>>) {
    let limits = LaneLimits { max_docs: cfg.batch.batch_max_docs, max_bytes: cfg.batch.batch_max_bytes, linger: cfg.batch.linger, depth };
    (0..lanes)
        .map(|_| {
            let (tx, rx) = mpsc::channel(consume::lane_channel_chunks(cfg.batch.batch_max_docs));
            (tx, tokio::spawn(lanes::run_lane(rx, limits.clone(), shared.clone())))
        })
        .unzip()
}

/// Lets the lanes finish what they hold (up to `timeout`, then gives up their retries through
/// `abort`: what is unfinished stays uncommitted and is replayed), then stores and commits the
/// offsets of everything completed.
async fn drain_and_commit(
    workers: Vec<tokio::task::JoinHandle<()>>,
    consumer: &Arc<consume::IndexerConsumer>,
    tracker: &Arc<Tracker>,
    timeout: Duration,
    abort: &CancellationToken,
) {
    tracing::info!(in_flight = tracker.total_in_flight(), "stopping: finishing in-flight writes");
    let drained = tokio::time::timeout(timeout, futures::future::join_all(workers)).await;
    if drained.is_err() {
        tracing::warn!(left = tracker.total_in_flight(), "shutdown timeout: abandoning unfinished writes (they will be replayed)");
    }
    abort.cancel();
    // The final store and synchronous commit block: on the blocking pool.
    let (committing, committed) = (consumer.clone(), tracker.clone());
    let commit = tokio::task::spawn_blocking(move || {
        consume::store(committing.as_ref(), &committed);
        committing.commit_consumer_state(CommitMode::Sync)
    });
    match commit.await.unwrap_or(Err(rdkafka::error::KafkaError::Canceled)) {
        Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            metrics::counter!("cutover_indexer_commit_failures_total").increment(1);
            tracing::warn!(error = %e, "final offset commit failed: records applied since the last commit will be applied again after a restart (harmless: writes are versioned)");
        }
    }
}

/// Before joining the group: a partition whose committed offset is older than the log start
/// lost records to retention while this group was stopped. Said loudly (error log, metric,
/// `/ready` stays closed, the partition stops at its first fetch): only a backfill that runs
/// after the gap covers those records; `--accept-offset-gaps` says one did.
async fn report_offset_gaps(consumer: Arc<consume::IndexerConsumer>, topic: &str, readiness: &Readiness, accept: bool) {
    let name = topic.to_string();
    metrics::gauge!(positions::OFFSET_GAPS).set(0.0);
    match tokio::task::spawn_blocking(move || positions::startup_gaps(consumer.as_ref(), &name)).await {
        Ok(Ok(gaps)) => {
            for (tp, from, what) in gaps {
                match accept {
                    true => positions::accept_gap(&what),
                    false => positions::report_gap(readiness, &tp, from, what),
                }
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "could not check committed offsets against the log start"),
        Err(e) => tracing::warn!(error = %e, "offset gap check did not finish"),
    }
}
