//! Lanes: the parallel, order-keeping part of the indexer.
//!
//! Commands are spread over lanes by (target index, document id), so each lane sees one
//! document's commands in topic order while several bulk requests are in flight. A lane
//! batches by count, bytes and linger time, applies the batch, dead-letters what cannot be
//! applied, and only then completes the records' offset tickets.
//!
//! - this module: the lane loop (collecting, lingering, the batches in flight);
//! - [`record`]: a record as the lanes hold it;
//! - [`pipeline`]: the per-document order within a lane;
//! - [`settle`]: what becomes of each record of an applied batch (outcome, dead letter, halt);
//! - [`recycle`]: applied batches freed on the consumer's thread, their buffers reused.

mod pipeline;
pub mod record;
pub mod recycle;
pub mod settle;

pub use record::{Item, RawOwned};
pub use recycle::{recycling, Recycler, Spent};
pub use settle::{Stop, Stopped, RECORDS};

use futures::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::Applier;
use crate::config::OnPoison;
use crate::deadletter::DeadLetterSink;
use crate::invariants::Watch;
use crate::offsets::Tracker;
use cluster::Breaker;
use pipeline::{Batch, DocHash, Pipeline};
use settle::process;

/// Batching limits of a lane.
#[derive(Clone, Debug)]
pub struct LaneLimits {
    pub max_docs: usize,
    pub max_bytes: usize,
    pub linger: Duration,
    /// Batches in flight at once (see [`layout`]).
    pub depth: usize,
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
    /// The poison breaker, shared by every lane: verdicts in the order lanes reach them.
    pub breaker: Arc<Mutex<Breaker>>,
    /// Where applied batches go (see [`Spent`]).
    pub spent: Spent,
}

/// Batches a lane keeps in flight (when `--max-in-flight` allows): it sends its next batch
/// while the previous one is being answered, so the target never waits for the client to
/// collect, plan and encode.
pub const PIPELINE_DEPTH: usize = 2;

/// How `--max-in-flight` bulk requests are spread: (lanes, batches in flight per lane).
pub fn layout(max_in_flight: usize) -> (usize, usize) {
    let depth = PIPELINE_DEPTH.min(max_in_flight.max(1));
    (max_in_flight.max(1).div_ceil(depth), depth)
}

/// Runs one lane until its channel closes (shutdown) or a write is cancelled or halted.
///
/// A lane keeps up to `limits.depth` batches in flight and collects the next one meanwhile.
/// Order per document is kept by never sending a document's command while a batch holding the
/// same document is in flight: such records wait (in arrival order) and join a later batch.
/// This also keeps the merge-base rule: a merge reads its base only when no write of its
/// document is in flight. Records complete out of order across batches, which the offset
/// tracker allows (it stores only below the lowest record not yet completed).
pub async fn run_lane(rx: mpsc::Receiver<Vec<Item>>, limits: LaneLimits, shared: LaneShared) {
    let tracker = shared.tracker.clone();
    if lane(rx, limits, shared).await.is_err() {
        // The records this lane held will never complete: a revoke must not wait for them.
        tracker.abandon_lanes();
    }
}

/// [`run_lane`]'s loop: `Err` when a write was cancelled or halted.
async fn lane(mut rx: mpsc::Receiver<Vec<Item>>, limits: LaneLimits, shared: LaneShared) -> Result<(), Stopped> {
    let mut watch = Watch::new(WATCHED_DOCUMENTS);
    let mut pipe = Pipeline::default();
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    // Records received (the consumer hands them over in chunks) and not yet admitted.
    let mut inbox: VecDeque<Item> = VecDeque::new();
    // Room for as many records as the last batch held: a batch is collected one push at a
    // time, and growing it by doubling would copy each record twice on the way to a full one.
    let mut last_len = 0;
    loop {
        let mut batch = Batch { items: shared.spent.buffer(last_len), bytes: 0 };
        pipe.release(&mut batch);
        let linger = tokio::time::sleep(limits.linger);
        tokio::pin!(linger);
        let mut lingering = !batch.items.is_empty();
        let mut lingered = false;
        // Collect until the batch is full, the channel closed, or the linger time is up and the
        // pipeline has room for the batch: while every batch in flight is still unanswered, the
        // batch could not go anyway, so it keeps filling. Under load batches so grow with the
        // bulk latency (larger bulks cost the target less per document), and when traffic is
        // light the linger time still bounds the wait. Held records are bounded by one batch's
        // worth (then the lane stops admitting).
        loop {
            pipe.admit_from(&mut inbox, &mut batch, &limits);
            // The linger time runs from the batch's first record, received or released (a
            // batch of released records must not wait for a record that may never come).
            if !lingering && !batch.items.is_empty() {
                linger.as_mut().reset(Instant::now() + limits.linger);
                lingering = true;
            }
            let full = !inbox.is_empty() || !pipe.can_admit(&batch, &limits);
            if collected(full, !open, lingered, in_flight.len(), limits.depth) {
                break;
            }
            tokio::select! {
                landed = in_flight.next(), if !in_flight.is_empty() => {
                    let Some((hashes, result)): Option<(Vec<DocHash>, Result<(), Stopped>)> = landed else { continue };
                    pipe.landed(hashes);
                    // Cancelled or halted: the records stay uncommitted and are replayed after restart.
                    result?;
                    pipe.release(&mut batch);
                }
                next = rx.recv() => match next {
                    // An empty inbox takes the chunk's buffer as it is (no copy of its records).
                    Some(chunk) if inbox.is_empty() => inbox = VecDeque::from(chunk),
                    Some(chunk) => inbox.extend(chunk),
                    None => open = false,
                },
                _ = &mut linger, if lingering && !lingered => lingered = true,
            }
        }
        if !batch.items.is_empty() {
            // Room for the batch: wait for the oldest in flight to land when the pipeline is full.
            while in_flight.len() >= limits.depth {
                let Some((hashes, result)) = in_flight.next().await else { break };
                pipe.landed(hashes);
                result?;
            }
            last_len = batch.items.len();
            check_invariants(&mut watch, &batch.items);
            let hashes = pipe.launch(&batch.items);
            let shared = shared.clone();
            in_flight.push(async move {
                let result = process(&batch.items, &shared).await;
                shared.spent.give(batch.items);
                (hashes, result)
            });
        } else if !open || pipe.held.len() >= limits.max_docs {
            // Nothing can be sent until a batch lands (everything held, and what was received
            // behind it, waits for one), or the channel is closed and only what is in flight
            // and held is left.
            match in_flight.next().await {
                Some((hashes, result)) => {
                    pipe.landed(hashes);
                    result?;
                }
                None if pipe.held.is_empty() && inbox.is_empty() && !open => return Ok(()),
                None => {}
            }
        }
    }
}

/// Whether the batch being collected is done (see [`run_lane`]): it is `full` (or nothing more
/// may be admitted), the channel is `closed`, or the linger time is up and one of the `depth`
/// pipeline slots is free (with every slot taken the batch could not go, so it keeps filling).
fn collected(full: bool, closed: bool, lingered: bool, in_flight: usize, depth: usize) -> bool {
    full || closed || (lingered && in_flight < depth)
}

/// Documents each lane remembers to detect invariant violations.
const WATCHED_DOCUMENTS: usize = 100_000;

/// Reports commands that break the model's assumptions (they are still applied: the versions
/// decide, and the report tells the user their topic is not what the model needs).
fn check_invariants(watch: &mut Watch, batch: &[Item]) {
    for item in batch {
        let (Ok(cmd), Some(doc)) = (&item.decoded, item.doc) else { continue };
        if let Some(v) = watch.observe(doc, item.ticket.tp.1, item.ticket.offset, cmd.version) {
            metrics::counter!("cutover_indexer_invariant_violations_total", "kind" => v.kind()).increment(1);
            tracing::warn!(index = %cmd.index, id = %cmd.id, partition = item.ticket.tp.1, offset = item.ticket.offset, violation = ?v,
                "command breaks the convergence model (topic not keyed by document id, or versions not increasing)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past its linger time a batch goes as soon as the pipeline has room, and keeps filling
    /// while every slot is taken (so batches grow with the bulk latency under load); a full
    /// batch or a closed channel ends collecting at once.
    #[test]
    fn a_lingered_batch_keeps_filling_while_the_pipeline_is_full() {
        let depth = 2;
        assert!(!collected(false, false, false, 0, depth), "before the linger time: collect");
        assert!(collected(false, false, true, 1, depth), "lingered, a slot free: send");
        assert!(!collected(false, false, true, 2, depth), "lingered, every slot taken: keep filling");
        assert!(collected(true, false, false, 2, depth), "full: done (it waits for a slot after)");
        assert!(collected(false, true, false, 2, depth), "channel closed: done");
    }

    #[test]
    fn max_in_flight_is_spread_over_pipelined_lanes() {
        assert_eq!(layout(1), (1, 1));
        assert_eq!(layout(2), (1, 2));
        assert_eq!(layout(4), (2, 2));
        assert_eq!(layout(5), (3, 2));
        assert_eq!(layout(8), (4, 2));
        assert_eq!(layout(0), (1, 1));
    }
}
