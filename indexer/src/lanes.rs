//! Lanes: the parallel, order-keeping part of the indexer.
//!
//! Commands are spread over lanes by (target index, document id), so each lane sees one
//! document's commands in topic order while several bulk requests are in flight. A lane
//! batches by count, bytes and linger time, applies the batch, dead-letters what cannot be
//! applied, and only then completes the records' offset tickets.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyError, Applier, Outcome};
use crate::config::OnPoison;
use crate::deadletter::{DeadLetter, DeadLetterSink};
use crate::invariants::Watch;
use crate::offsets::{Ticket, Tracker};

/// A record as the consumer hands it to a lane: decoded, or with the reason it is not.
pub struct Item {
    pub ticket: Ticket,
    pub raw: RawOwned,
    pub decoded: Result<schema::Command, schema::DecodeError>,
}

/// The bytes of a record, kept so a dead letter can carry them unchanged.
#[derive(Clone, Debug, Default)]
pub struct RawOwned {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawOwned {
    fn len(&self) -> usize {
        self.payload.as_ref().map_or(0, Vec::len)
    }
}

/// Batching limits of a lane.
#[derive(Clone, Debug)]
pub struct LaneLimits {
    pub max_docs: usize,
    pub max_bytes: usize,
    pub linger: Duration,
}

/// What every lane shares.
#[derive(Clone)]
pub struct LaneShared {
    pub applier: Applier,
    pub dead_letters: DeadLetterSink,
    pub tracker: Arc<Tracker>,
    pub on_poison: OnPoison,
    /// Set when `--on-poison halt` stops the indexer: the reason.
    pub halted: Arc<Mutex<Option<String>>>,
    /// Fired to stop consumption (halt).
    pub stop: CancellationToken,
}

/// Runs one lane until its channel closes (shutdown) or a write is cancelled.
pub async fn run_lane(mut rx: mpsc::Receiver<Item>, limits: LaneLimits, shared: LaneShared) {
    let mut watch = Watch::new(WATCHED_DOCUMENTS);
    while let Some(first) = rx.recv().await {
        let mut bytes = first.raw.len();
        let mut batch = vec![first];
        let deadline = Instant::now() + limits.linger;
        while batch.len() < limits.max_docs && bytes < limits.max_bytes {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(item) => { bytes += item.raw.len(); batch.push(item); }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        check_invariants(&mut watch, &batch);
        if process(batch, &shared).await.is_err() {
            return; // cancelled: the records stay uncommitted and are replayed after restart
        }
    }
}

/// Documents each lane remembers to detect invariant violations.
const WATCHED_DOCUMENTS: usize = 100_000;

/// Reports commands that break the model's assumptions (they are still applied: the versions
/// decide, and the report tells the user their topic is not what the model needs).
fn check_invariants(watch: &mut Watch, batch: &[Item]) {
    for item in batch {
        let Ok(cmd) = &item.decoded else { continue };
        if let Some(v) = watch.observe(&cmd.index, &cmd.id, item.ticket.tp.1, item.ticket.offset, cmd.version) {
            metrics::counter!("cutover_indexer_invariant_violations_total", "kind" => v.kind()).increment(1);
            tracing::warn!(index = %cmd.index, id = %cmd.id, partition = item.ticket.tp.1, offset = item.ticket.offset, violation = ?v,
                "command breaks the convergence model (topic not keyed by document id, or versions not increasing)");
        }
    }
}

/// Applies one batch; errors only when cancelled.
async fn process(batch: Vec<Item>, shared: &LaneShared) -> Result<(), ApplyError> {
    let (good, bad): (Vec<Item>, Vec<Item>) = batch.into_iter().partition(|i| i.decoded.is_ok());
    for item in &bad {
        let err = item.decoded.as_ref().err().expect("partitioned on errors");
        poison(shared, item, err.kind.as_str(), &err.to_string()).await?;
    }
    let outcomes = apply_splitting(&shared.applier, &good).await?;
    for (item, outcome) in good.iter().zip(outcomes) {
        match outcome {
            Outcome::Applied => metrics::counter!("cutover_indexer_applied_total").increment(1),
            Outcome::Superseded => metrics::counter!("cutover_indexer_superseded_total").increment(1),
            Outcome::NoOp => metrics::counter!("cutover_indexer_noop_total").increment(1),
            Outcome::Poison { kind, reason } => {
                poison(shared, item, kind, &reason).await?;
                continue;
            }
        }
        shared.tracker.complete(&item.ticket);
    }
    Ok(())
}

/// Applies a batch; when the whole request is refused (not an item: e.g. too large), halves
/// it until the refused command is alone, and that command is poison.
async fn apply_splitting(applier: &Applier, items: &[Item]) -> Result<Vec<Outcome>, ApplyError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let cmds: Vec<&schema::Command> = items.iter().map(|i| i.decoded.as_ref().expect("decoded")).collect();
    match applier.apply(&cmds).await {
        Ok(o) => Ok(o),
        Err(ApplyError::Cancelled) => Err(ApplyError::Cancelled),
        Err(e) if items.len() == 1 => Ok(vec![Outcome::Poison { kind: "request", reason: e.to_string() }]),
        Err(e) => {
            tracing::warn!(error = %e, size = items.len(), "bulk request refused; splitting the batch");
            let (a, b) = items.split_at(items.len() / 2);
            let mut out = Box::pin(apply_splitting(applier, a)).await?;
            out.extend(Box::pin(apply_splitting(applier, b)).await?);
            Ok(out)
        }
    }
}

/// Dead-letters one record (or halts), then completes its ticket.
async fn poison(shared: &LaneShared, item: &Item, kind: &str, reason: &str) -> Result<(), ApplyError> {
    let (topic, partition) = &item.ticket.tp;
    if shared.on_poison == OnPoison::Halt {
        let msg = format!("poison record at {topic}[{partition}]@{}: {kind}: {reason}", item.ticket.offset);
        tracing::error!("{msg}; halting (--on-poison halt)");
        shared.halted.lock().expect("halt lock").get_or_insert(msg);
        shared.stop.cancel();
        return Err(ApplyError::Cancelled);
    }
    let dl = DeadLetter {
        topic: topic.clone(),
        partition: *partition,
        offset: item.ticket.offset,
        key: item.raw.key.clone(),
        payload: item.raw.payload.clone(),
        headers: item.raw.headers.clone(),
        kind: kind.to_string(),
        reason: reason.to_string(),
    };
    shared.dead_letters.send(&dl).await.map_err(|_| ApplyError::Cancelled)?;
    shared.tracker.complete(&item.ticket);
    Ok(())
}
