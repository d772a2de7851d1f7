//! Lanes: the parallel, order-keeping part of the indexer.
//!
//! Commands are spread over lanes by (target index, document id), so each lane sees one
//! document's commands in topic order while several bulk requests are in flight. A lane
//! batches by count, bytes and linger time, applies the batch, dead-letters what cannot be
//! applied, and only then completes the records' offset tickets.

use futures::stream::{FuturesUnordered, StreamExt};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::Applier;
use crate::config::OnPoison;
use crate::deadletter::{DeadLetter, DeadLetterSink};
use crate::invariants::Watch;
use crate::offsets::{Ticket, Tracker};
use cluster::{Breaker, Outcome, Poison, PoisonKind, WriteError};

/// Records by what became of them: `outcome` = `applied`, `superseded` (a newer version was
/// there), `noop` (nothing to change), and `dead_lettered` (counted once
/// the broker acknowledged the dead letter, with its `kind`).
pub const RECORDS: &str = "cutover_indexer_records_total";

/// A record as the consumer hands it to a lane: decoded, or with the reason it is not.
pub struct Item {
    pub ticket: Ticket,
    pub raw: RawOwned,
    pub decoded: Result<schema::Command, schema::DecodeError>,
    /// The document's identity, hashed once when the record is decoded
    /// ([`crate::invariants::doc_key`] of its target index and id): it picks the lane, keeps
    /// the document's order in the lane's pipeline, and keys the invariant watch.
    pub doc: Option<u64>,
}

/// The bytes of a record, kept so a dead letter can carry them unchanged: key and payload in
/// one buffer (one allocation per record, where the record is copied out of librdkafka's).
#[derive(Clone, Debug, Default)]
pub struct RawOwned {
    /// The key's bytes, then the payload's.
    bytes: Box<[u8]>,
    /// Length of the key; None for a null key.
    key_len: Option<usize>,
    /// Whether there is a payload (false for a null one; an empty one is there).
    has_payload: bool,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawOwned {
    pub fn new(key: Option<&[u8]>, payload: Option<&[u8]>, headers: Vec<(String, Option<Vec<u8>>)>) -> Self {
        let (k, p) = (key.unwrap_or_default(), payload.unwrap_or_default());
        let mut bytes = Vec::with_capacity(k.len() + p.len());
        bytes.extend_from_slice(k);
        bytes.extend_from_slice(p);
        Self { bytes: bytes.into_boxed_slice(), key_len: key.map(<[u8]>::len), has_payload: payload.is_some(), headers }
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.bytes[..n])
    }

    pub fn payload(&self) -> Option<&[u8]> {
        self.has_payload.then(|| &self.bytes[self.key_len.unwrap_or(0)..])
    }

    fn len(&self) -> usize {
        self.payload().map_or(0, <[u8]>::len)
    }

    /// Bytes this record holds (key, payload, headers): what a backlog of it costs.
    pub fn size(&self) -> usize {
        self.bytes.len() + self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>()
    }
}

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

/// Most emptied batch buffers kept for the lanes (more than the batches in flight at once).
const KEPT_BUFFERS: usize = 16;

/// Applied batches on their way back to the consumer's thread, and their emptied buffers on
/// their way back to the lanes.
///
/// A record's buffers (its bytes, its decoded command) are allocated on the consumer's thread,
/// where it is read and decoded. mimalloc frees a block fastest on the thread that allocated
/// it: a free from another thread goes through an atomic list that the owner collects later,
/// and dropping the records in the lanes cost about 6% of the indexer's CPU that way. And a
/// batch's buffer (thousands of records) allocated anew for each batch is fresh pages, each
/// faulted in and cleared by the kernel as the batch fills (another 2%). So lanes hand applied
/// batches to [`Recycler`], which frees their records on the consumer's thread and keeps the
/// emptied buffers for the lanes' next batches. The records' fate is settled before (their
/// tickets are completed or they stay uncommitted): dropping them later changes nothing else.
#[derive(Clone)]
pub struct Spent {
    back: mpsc::UnboundedSender<Vec<Item>>,
    buffers: Arc<Mutex<Vec<Vec<Item>>>>,
}

/// The consumer's end of [`Spent`].
pub struct Recycler {
    spent: mpsc::UnboundedReceiver<Vec<Item>>,
    buffers: Arc<Mutex<Vec<Vec<Item>>>>,
}

/// A connected [`Spent`] (for the lanes) and [`Recycler`] (for the consumer's thread).
pub fn recycling() -> (Spent, Recycler) {
    let (back, spent) = mpsc::unbounded_channel();
    let buffers = Arc::new(Mutex::new(Vec::new()));
    (Spent { back, buffers: buffers.clone() }, Recycler { spent, buffers })
}

impl Spent {
    /// Hands an applied batch back (dropped here once the consumer's thread is gone).
    fn give(&self, batch: Vec<Item>) {
        let _ = self.back.send(batch);
    }

    /// An empty buffer for a batch of about `capacity` records: an emptied one when there is one.
    fn buffer(&self, capacity: usize) -> Vec<Item> {
        let kept = self.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut buffer = kept.unwrap_or_default();
        buffer.reserve(capacity);
        buffer
    }
}

impl Recycler {
    /// Frees the records of every batch handed back so far (call it on the consumer's thread).
    pub fn free(&mut self) {
        while let Ok(batch) = self.spent.try_recv() {
            self.keep(batch);
        }
    }

    /// The next batch handed back (for a `select!`; pass it to [`Self::keep`]). Pending
    /// forever once every lane is gone.
    pub async fn next(&mut self) -> Vec<Item> {
        match self.spent.recv().await {
            Some(batch) => batch,
            None => std::future::pending().await,
        }
    }

    /// Frees a batch's records here and keeps its buffer for a lane.
    pub fn keep(&self, mut batch: Vec<Item>) {
        batch.clear();
        let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        if buffers.len() < KEPT_BUFFERS {
            buffers.push(batch);
        }
    }
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

/// A document's identity within a lane ([`Item::doc`]). Two documents sharing a hash only
/// wait for each other, which is safe; a document never escapes its own hash.
type DocHash = u64;

/// What a lane holds between batches: documents with a batch in flight, and the records that
/// wait for them.
#[derive(Default)]
struct Pipeline {
    /// Documents written by a batch in flight, with how many of its commands.
    busy: FxHashMap<DocHash, u32>,
    /// Records of busy documents (or behind a held record of the same document), in arrival
    /// order: they join a batch once their document is no longer in flight.
    held: VecDeque<Item>,
    /// Documents with a record in `held`: every later record of theirs is held too.
    waiting: FxHashMap<DocHash, u32>,
}

impl Pipeline {
    /// Where a received record goes: into the batch being collected, or held behind its
    /// document's batch in flight (or behind its own held records), keeping per-document order.
    fn admit(&mut self, item: Item, batch: &mut Batch) {
        match item.doc {
            Some(h) if self.busy.contains_key(&h) || self.waiting.contains_key(&h) => {
                *self.waiting.entry(h).or_default() += 1;
                self.held.push_back(item);
            }
            _ => batch.push(item),
        }
    }

    /// Whether another record may be admitted: the batch is not full and fewer than a batch's
    /// worth of records are held.
    fn can_admit(&self, batch: &Batch, limits: &LaneLimits) -> bool {
        !batch.is_full(limits) && self.held.len() < limits.max_docs
    }

    /// Admits received records in order while [`Self::can_admit`]; the rest stay in `inbox`
    /// for the next batch.
    fn admit_from(&mut self, inbox: &mut VecDeque<Item>, batch: &mut Batch, limits: &LaneLimits) {
        while self.can_admit(batch, limits) {
            let Some(item) = inbox.pop_front() else { break };
            self.admit(item, batch);
        }
    }

    /// Moves held records whose document is no longer in flight (and that no earlier held
    /// record of theirs still waits for) into `batch`.
    fn release(&mut self, batch: &mut Batch) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        self.waiting.clear();
        for item in held {
            self.admit(item, batch);
        }
    }

    /// Marks a batch's documents in flight.
    fn launch(&mut self, batch: &[Item]) -> Vec<DocHash> {
        let hashes: Vec<DocHash> = batch.iter().filter_map(|i| i.doc).collect();
        for h in &hashes {
            *self.busy.entry(*h).or_default() += 1;
        }
        hashes
    }

    /// A batch was answered: its documents may be written again.
    fn landed(&mut self, hashes: Vec<DocHash>) {
        for h in hashes {
            if let Entry::Occupied(mut e) = self.busy.entry(h) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }
}

/// The records of the batch being collected, and their payload bytes.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, item: Item) {
        self.bytes += item.raw.len();
        self.items.push(item);
    }
    fn is_full(&self, limits: &LaneLimits) -> bool {
        self.items.len() >= limits.max_docs || self.bytes >= limits.max_bytes
    }
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

/// Applies one batch; errors when cancelled or halted (the batch's records stay uncommitted).
async fn process(batch: &[Item], shared: &LaneShared) -> Result<(), Stopped> {
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
    shared.breaker.lock().unwrap_or_else(|e| e.into_inner()).good(done.len() as u64);
    shared.tracker.complete_all(done);
    for (outcome, n) in [("applied", applied), ("superseded", superseded), ("noop", noop)] {
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
    shared.halted.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(stop);
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
    let tripped = shared.breaker.lock().unwrap_or_else(|e| e.into_inner()).poison_after(written);
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
    metrics::counter!(RECORDS, "outcome" => "dead_lettered", "kind" => dl.kind).increment(1);
    shared.tracker.complete(&item.ticket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_record_gives_back_its_key_and_payload_null_empty_or_not() {
        type KeyAndPayload = (Option<&'static [u8]>, Option<&'static [u8]>);
        let cases: [KeyAndPayload; 6] =
            [(None, None), (Some(b""), Some(b"")), (Some(b"k1"), None), (None, Some(b"{}")), (Some(b"key"), Some(b"payload")), (Some(b""), Some(b"p"))];
        for (key, payload) in cases {
            let raw = RawOwned::new(key, payload, vec![("h".into(), Some(b"v".to_vec()))]);
            assert_eq!((raw.key(), raw.payload()), (key, payload));
            assert_eq!(raw.size(), key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len) + 2);
        }
        assert_eq!((RawOwned::default().key(), RawOwned::default().payload()), (None, None));
    }

    fn item(id: &str, offset: i64) -> Item {
        let cmd = schema::Command {
            id: id.into(),
            index: "legacy".into(),
            target_index: "target".into(),
            version: offset as u64,
            routing: None,
            op: schema::Op::Delete,
        };
        let doc = Some(crate::invariants::doc_key(&cmd.target_index, &cmd.id));
        Item { ticket: Ticket { tp: ("t".into(), 0), offset, generation: 1 }, raw: RawOwned::default(), decoded: Ok(cmd), doc }
    }

    /// An applied batch's records are freed where the recycler runs (the consumer's thread),
    /// not by the lane that gave it back, and its emptied buffer is the next batch's; a lane
    /// whose consumer is gone drops the batch itself; the pool keeps a bounded number.
    #[test]
    fn applied_batches_are_freed_by_the_recycler_and_their_buffers_reused() {
        let (spent, mut recycler) = recycling();
        let batch = vec![item("a", 0), item("b", 1)];
        let buffer = batch.as_ptr();
        let topic = batch[0].ticket.tp.0.clone();
        let lane = std::thread::spawn(move || {
            spent.give(batch);
            spent
        });
        let spent = lane.join().unwrap();
        assert_eq!(Arc::strong_count(&topic), 2, "the lane's thread has not dropped the records");
        let fresh = spent.buffer(2);
        assert!(fresh.as_ptr() != buffer, "nothing is kept before the recycler ran");
        recycler.free();
        assert_eq!(Arc::strong_count(&topic), 1, "the recycler's thread dropped the records");
        let reused = spent.buffer(2);
        assert_eq!((reused.as_ptr(), reused.len()), (buffer, 0), "the emptied buffer comes back");
        assert!(reused.capacity() >= 2);

        for _ in 0..KEPT_BUFFERS + 4 {
            spent.give(Vec::with_capacity(1));
        }
        recycler.free();
        assert_eq!(recycler.buffers.lock().unwrap().len(), KEPT_BUFFERS);
        drop(recycler);
        spent.give(vec![item("c", 2)]);
    }

    fn offsets(items: &[Item]) -> Vec<i64> {
        items.iter().map(|i| i.ticket.offset).collect()
    }

    /// A document with a batch in flight is held back, and so is every later command of it,
    /// while other documents go into the next batch.
    #[test]
    fn commands_of_documents_in_flight_wait_in_order() {
        let mut pipe = Pipeline::default();
        let mut first = Batch::default();
        pipe.admit(item("a", 0), &mut first);
        pipe.admit(item("b", 1), &mut first);
        let in_flight = pipe.launch(&first.items);

        let mut next = Batch::default();
        for (id, offset) in [("a", 2), ("c", 3), ("a", 4), ("b", 5), ("d", 6)] {
            pipe.admit(item(id, offset), &mut next);
        }
        assert_eq!(offsets(&next.items), vec![3, 6], "only documents not in flight");
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![2, 4, 5]);

        // Nothing changes until the batch in flight lands.
        let mut again = Batch::default();
        pipe.release(&mut again);
        assert!(again.items.is_empty());
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![2, 4, 5]);

        pipe.landed(in_flight);
        let mut after = Batch::default();
        pipe.release(&mut after);
        assert_eq!(offsets(&after.items), vec![2, 4, 5], "released in arrival order, per document too");
        assert!(pipe.held.is_empty() && pipe.waiting.is_empty());
    }

    /// A later command of a held document stays behind it even once the document is no longer
    /// in flight, until the held one has been released into a batch.
    #[test]
    fn a_later_command_never_overtakes_a_held_one() {
        let mut pipe = Pipeline::default();
        let mut first = Batch::default();
        pipe.admit(item("a", 0), &mut first);
        let in_flight = pipe.launch(&first.items);
        let mut next = Batch::default();
        pipe.admit(item("a", 1), &mut next);
        pipe.landed(in_flight);
        // "a" is no longer in flight, but offset 1 is still held: offset 2 must wait behind it.
        pipe.admit(item("a", 2), &mut next);
        assert!(next.items.is_empty());
        pipe.release(&mut next);
        assert_eq!(offsets(&next.items), vec![1, 2]);
    }

    /// Two batches in flight holding the same document (possible only through a hash collision)
    /// keep it busy until both land.
    #[test]
    fn busy_counts_every_batch_in_flight() {
        let mut pipe = Pipeline::default();
        let one = pipe.launch(&[item("a", 0)]);
        let two = pipe.launch(&[item("a", 1)]);
        pipe.landed(one);
        let mut next = Batch::default();
        pipe.admit(item("a", 2), &mut next);
        assert!(next.items.is_empty(), "still in flight in the second batch");
        pipe.landed(two);
        pipe.release(&mut next);
        assert_eq!(offsets(&next.items), vec![2]);
    }

    /// A chunk larger than a batch fills it to the limit and leaves the rest, in order, for the
    /// next one; records of busy documents count against the held limit, not the batch.
    #[test]
    fn a_chunk_is_admitted_up_to_the_batch_limits() {
        let limits = LaneLimits { max_docs: 3, max_bytes: usize::MAX, linger: Duration::ZERO, depth: 2 };
        let mut pipe = Pipeline::default();
        let busy = pipe.launch(&[item("a", 0)]);
        let mut inbox: VecDeque<Item> = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("d", 5), ("e", 6), ("f", 7)].into_iter().map(|(id, o)| item(id, o)).collect();
        let mut batch = Batch::default();
        pipe.admit_from(&mut inbox, &mut batch, &limits);
        assert_eq!(offsets(&batch.items), vec![2, 4, 5], "full at max_docs");
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![1, 3]);
        assert_eq!(offsets(inbox.make_contiguous()), vec![6, 7], "the rest waits, in order");

        // Held records are bounded too: with a batch's worth held, nothing more is admitted.
        let mut next = Batch::default();
        inbox.push_front(item("a", 8));
        pipe.admit_from(&mut inbox, &mut next, &limits);
        assert!(next.items.is_empty());
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![1, 3, 8]);
        assert_eq!(offsets(inbox.make_contiguous()), vec![6, 7]);

        pipe.landed(busy);
        pipe.release(&mut next);
        pipe.admit_from(&mut inbox, &mut next, &limits);
        assert_eq!(offsets(&next.items), vec![1, 3, 8], "released first, then the inbox, within the limit");
        assert_eq!(offsets(inbox.make_contiguous()), vec![6, 7]);
    }

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
