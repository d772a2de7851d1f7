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

use crate::apply::{Applier, ApplyError, Outcome};
use crate::config::OnPoison;
use crate::deadletter::{DeadLetter, DeadLetterSink};
use crate::invariants::Watch;
use crate::offsets::{Ticket, Tracker};

/// Records by what became of them: `outcome` = `applied`, `superseded` (a newer version was
/// there), `noop` (nothing to change), `dead_lettered` (with the dead letter's `kind`).
pub const RECORDS: &str = "cutover_indexer_records_total";

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

    /// Bytes this record holds (key, payload, headers): what a backlog of it costs.
    pub fn size(&self) -> usize {
        self.len() + self.key.as_ref().map_or(0, Vec::len) + self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>()
    }
}

/// Why the indexer stopped by itself. Nothing past the record that caused it is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--on-poison halt` met a poison record.
    Poison(String),
    /// The cluster refused work for a reason an operator must fix (credentials, a missing or
    /// closed index, exhausted retries).
    Cluster(String),
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
    /// Set when the indexer stops by itself (a poison record under `--on-poison halt`, or a
    /// cluster that must be fixed first): why.
    pub halted: Arc<Mutex<Option<Stop>>>,
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

/// Applies one batch; errors when cancelled or halted (the batch's records stay uncommitted).
async fn process(batch: Vec<Item>, shared: &LaneShared) -> Result<(), ApplyError> {
    let (good, bad): (Vec<Item>, Vec<Item>) = batch.into_iter().partition(|i| i.decoded.is_ok());
    for item in &bad {
        let err = item.decoded.as_ref().expect_err("partitioned on errors");
        poison(shared, item, err.kind.as_str(), &err.to_string()).await?;
    }
    let outcomes = match apply_splitting(&shared.applier, &good).await {
        Ok(o) => o,
        Err(ApplyError::Halt(reason)) => {
            let first = good.first().map(|i| format!(" at {}[{}]@{}", i.ticket.tp.0, i.ticket.tp.1, i.ticket.offset)).unwrap_or_default();
            let msg = format!("the target refused work{first}: {reason}");
            tracing::error!("{msg}; halting without committing past it: fix the cause and restart (records are applied again from the committed offsets)");
            return Err(halt(shared, Stop::Cluster(msg)));
        }
        Err(e) => return Err(e),
    };
    for (item, outcome) in good.iter().zip(outcomes) {
        match outcome {
            Outcome::Applied => metrics::counter!(RECORDS, "outcome" => "applied").increment(1),
            Outcome::Superseded => metrics::counter!(RECORDS, "outcome" => "superseded").increment(1),
            Outcome::NoOp => metrics::counter!(RECORDS, "outcome" => "noop").increment(1),
            Outcome::Poison { kind, reason } => {
                poison(shared, item, kind, &reason).await?;
                continue;
            }
        }
        shared.tracker.complete(&item.ticket);
    }
    Ok(())
}

/// Applies a batch; when the whole request is refused in a way a smaller request can pass
/// (413, a 400 on the request itself), halves it until the refused command is alone, and that
/// command is poison. Every other failure (cancel, halt) is returned as it is: a cluster that
/// refuses everything must never drain the topic into the dead-letter topic.
async fn apply_splitting(applier: &Applier, items: &[Item]) -> Result<Vec<Outcome>, ApplyError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let cmds: Vec<&schema::Command> = items.iter().map(|i| i.decoded.as_ref().expect("decoded")).collect();
    match applier.apply(&cmds).await {
        Ok(o) => Ok(o),
        Err(ApplyError::Split(e)) if items.len() == 1 => Ok(vec![Outcome::Poison { kind: "request", reason: e.to_string() }]),
        Err(e @ (ApplyError::Cancelled | ApplyError::Halt(_))) => Err(e),
        Err(ApplyError::Split(e)) => {
            tracing::warn!(error = %e, size = items.len(), "bulk request refused; splitting the batch");
            let (a, b) = items.split_at(items.len() / 2);
            let mut out = Box::pin(apply_splitting(applier, a)).await?;
            out.extend(Box::pin(apply_splitting(applier, b)).await?);
            Ok(out)
        }
    }
}

/// Records why the indexer stops by itself and stops consuming.
fn halt(shared: &LaneShared, stop: Stop) -> ApplyError {
    let (cause, reason) = match &stop {
        Stop::Poison(r) => ("poison", r.clone()),
        Stop::Cluster(r) => ("cluster", r.clone()),
    };
    metrics::counter!("cutover_indexer_halts_total", "cause" => cause).increment(1);
    shared.halted.lock().expect("halt lock").get_or_insert(stop);
    shared.stop.cancel();
    ApplyError::Halt(reason)
}

/// Dead-letters one record (or halts), then completes its ticket.
async fn poison(shared: &LaneShared, item: &Item, kind: &str, reason: &str) -> Result<(), ApplyError> {
    let (topic, partition) = &item.ticket.tp;
    if shared.on_poison == OnPoison::Halt {
        let msg = format!("poison record at {topic}[{partition}]@{}: {kind}: {reason}", item.ticket.offset);
        tracing::error!("{msg}; halting (--on-poison halt)");
        return Err(halt(shared, Stop::Poison(msg)));
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
    shared.dead_letters.send(&dl).await.map_err(|e| match e.why {
        cluster::GiveUp::Cancelled => ApplyError::Cancelled,
        cluster::GiveUp::Exhausted(_) => halt(shared, Stop::Cluster(e.to_string())),
    })?;
    shared.tracker.complete(&item.ticket);
    Ok(())
}
