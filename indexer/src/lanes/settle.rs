//! What becomes of each record of an applied batch, decided from its one [`Outcome`]: counted and
//! its ticket completed; proven poison, dead-lettered (or the indexer halts: `--on-poison halt`,
//! the poison breaker); a batch the target refused halts the indexer without completing any.

use super::{Item, LaneShared};
use crate::config::OnPoison;
use crate::deadletter::DeadLetter;
use cluster::{Outcome, Poison, PoisonKind, WriteError};

/// Records by what became of them: `outcome` = `applied`, `superseded` (a newer version was
/// there), `noop` (nothing to change), and `poison` (dead-lettered: counted once the broker
/// acknowledged the dead letter, with its `kind`).
pub const RECORDS: &str = "cutover_indexer_records_total";

/// Why the indexer stopped by itself. Nothing past the record that caused it is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--on-poison halt` met a poison record, or the poison breaker tripped (records judged
    /// bad systematically): exit code 3.
    Poison(String),
    /// The cluster, or the path to it, refused work for a reason an operator must fix
    /// (credentials, a missing or closed index, a missing pipeline, a gateway's 400, an error
    /// nobody listed, exhausted retries): exit code 4.
    Cluster(String),
}

/// A lane stopped before its records were resolved (halted or cancelled): they stay
/// uncommitted and are applied again after a restart.
#[derive(Debug)]
pub struct Stopped;

/// Applies one batch; errors when cancelled or halted (the batch's records stay uncommitted).
pub(super) async fn process(batch: &[Item], shared: &LaneShared) -> Result<(), Stopped> {
    for item in batch {
        if let Err(err) = &item.decoded {
            poison(shared, item, Poison::new(PoisonKind::Decode(err.kind), err.to_string()), 0).await?;
        }
    }
    let good = || batch.iter().filter(|i| i.decoded.is_ok());
    let cmds: Vec<&schema::Command> = good().map(|i| i.decoded.as_ref().expect("decoded")).collect();
    let outcomes = match shared.applier.apply(&cmds).await {
        Ok(o) => o,
        Err(WriteError::Cancelled) => return Err(Stopped),
        Err(reason) => {
            let first = good().next().map(|i| format!(" at {}[{}]@{}", i.ticket.tp.0, i.ticket.tp.1, i.ticket.offset)).unwrap_or_default();
            let msg = format!("the target refused work{first}: {reason}");
            tracing::error!("{msg}; halting without committing past it: fix the cause and restart (records are applied again from the committed offsets)");
            return Err(halt(shared, Stop::Cluster(msg)));
        }
    };
    let (mut applied, mut superseded, mut noop) = (0u64, 0u64, 0u64);
    let mut done = Vec::with_capacity(cmds.len());
    for (item, outcome) in good().zip(outcomes) {
        match outcome {
            Outcome::Applied => applied += 1,
            Outcome::Superseded => superseded += 1,
            Outcome::NoOp => noop += 1,
            Outcome::Poison(p) => {
                // The breaker sees the batch's verdicts in order: the records written since the
                // last poison one first (and they are completed first).
                let written = done.len() as u64;
                shared.tracker.complete_all(done.drain(..));
                poison(shared, item, p, written).await?;
                continue;
            }
        }
        done.push(&item.ticket);
    }
    shared.breaker.lock().good(done.len() as u64);
    shared.tracker.complete_all(done);
    for (outcome, n) in [(Outcome::APPLIED, applied), (Outcome::SUPERSEDED, superseded), (Outcome::NOOP, noop)] {
        if n > 0 {
            metrics::counter!(RECORDS, "outcome" => outcome).increment(n);
        }
    }
    Ok(())
}

/// Records why the indexer stops by itself and stops consuming.
fn halt(shared: &LaneShared, stop: Stop) -> Stopped {
    let cause = match &stop {
        Stop::Poison(_) => "poison",
        Stop::Cluster(_) => "cluster",
    };
    metrics::counter!("cutover_indexer_halts_total", "cause" => cause).increment(1);
    shared.halted.lock().get_or_insert(stop);
    shared.stop.cancel();
    Stopped
}

/// Dead-letters one record proven bad, judged after `written` records that were not (or halts:
/// `--on-poison halt`, or the poison breaker tripped), then completes its ticket.
async fn poison(shared: &LaneShared, item: &Item, poison: Poison, written: u64) -> Result<(), Stopped> {
    let (topic, partition) = &item.ticket.tp;
    let at = format!("{topic}[{partition}]@{}", item.ticket.offset);
    if shared.on_poison == OnPoison::Halt {
        let msg = format!("poison record at {at}: {poison}");
        tracing::error!("{msg}; halting (--on-poison halt)");
        return Err(halt(shared, Stop::Poison(msg)));
    }
    let tripped = shared.breaker.lock().poison_after(written);
    if let Err(tripped) = tripped {
        metrics::counter!("cutover_indexer_breaker_trips_total").increment(1);
        let msg = format!("poison breaker at {at} (last: {poison}): {tripped}");
        tracing::error!("{msg}; halting without dead-lettering it (--max-poison-run, --max-poison-ratio)");
        return Err(halt(shared, Stop::Poison(msg)));
    }
    let dl = DeadLetter {
        topic: topic.to_string(),
        partition: *partition,
        offset: item.ticket.offset,
        key: item.raw.key().map(<[u8]>::to_vec),
        payload: item.raw.payload().map(<[u8]>::to_vec),
        headers: item.raw.headers.clone(),
        kind: poison.kind.as_str().to_string(),
        reason: poison.reason,
    };
    shared.dead_letters.send(&dl).await.map_err(|e| match e.why {
        cluster::GiveUp::Cancelled => Stopped,
        cluster::GiveUp::Exhausted(_) => halt(shared, Stop::Cluster(e.to_string())),
    })?;
    metrics::counter!(RECORDS, "outcome" => Outcome::POISON, "kind" => dl.kind).increment(1);
    shared.tracker.complete(&item.ticket);
    Ok(())
}
