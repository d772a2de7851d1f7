//! The consumer: reads the command topic in its own group, decodes, hands records to lanes,
//! and stores offsets as the tracker allows.
//!
//! It never blocks on a full lane for long: it pauses the assignment and keeps polling (so the
//! group's liveness checks and rebalances go on) until the lane has room, which bounds memory
//! during a cluster outage. On revoke it waits for the revoked partitions' in-flight records
//! (bounded), then stores and commits synchronously, so the next owner starts exactly after
//! the last applied record.

use futures::{FutureExt, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, MessageStream, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::lanes::{Item, RawOwned, Recycler};
use crate::offsets::{Tp, Tracker};
use crate::readiness::Readiness;

/// Consumer callbacks: keep the tracker in step with the assignment, keep a pause across
/// rebalances, and make commit failures visible.
pub struct Ctx {
    pub tracker: Arc<Tracker>,
    /// How long a revoke waits for in-flight records of the revoked partitions.
    pub drain_timeout: Duration,
    /// Where commit failures are reported (`/ready`).
    pub readiness: Arc<Readiness>,
    /// True while the consume loop holds the assignment paused (lanes full: the cluster is slow
    /// or down). Partitions assigned meanwhile are paused as they arrive, so a rebalance never
    /// lets the backlog grow.
    pub paused: Arc<AtomicBool>,
    /// Counts librdkafka's errors; stops the indexer on credentials or TLS refused.
    pub watch: Arc<crate::kafka::Watch>,
    /// `--accept-offset-gaps`: a backfill ran after the gaps; go on past them.
    pub accept_gaps: bool,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.report(&error, reason);
    }
}

impl Ctx {
    fn commit_result(&self, result: &KafkaResult<()>, when: &str) {
        match result {
            Ok(()) => self.readiness.commit_succeeded(),
            // Nothing stored since the last commit: not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                metrics::counter!("cutover_indexer_commit_failures_total").increment(1);
                tracing::warn!(error = %e, when, "offset commit failed (records stay applied; they are replayed after a restart unless a later commit succeeds)");
                self.readiness.commit_failed(format!("{when}: {e}"));
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        self.commit_result(&result, "auto-commit");
    }

    /// Which thread runs this: rdkafka serves rebalance events while the consumer is polled
    /// (`BaseConsumer::poll_queue`, which `StreamConsumer::recv` calls from its future's
    /// `poll`), so on the thread that polls it, and, when the consumer is dropped, on the
    /// dropping thread (its `Drop` closes the consumer and polls until closed). The indexer
    /// polls only from [`spawn_consume_loop`]'s thread of the blocking pool, and drops the
    /// consumer, and makes its final commit, in `spawn_blocking` (see [`crate::run`]): so the
    /// wait and the synchronous commit below block no async worker, and work on any runtime
    /// flavour (the `block_in_place` used before panics on a current-thread runtime). The wait
    /// has to be synchronous: librdkafka hands the partitions on when this returns.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let tps = tps_of(tpl);
            // Lanes finish what they hold; records the consumer still holds are dropped (their
            // offsets are not committed, so the next owner reads them).
            let left = wait_for_lanes(&self.tracker, &tps, self.drain_timeout);
            if left > 0 {
                tracing::warn!(left, "revoke: records still in flight after the drain timeout; they will be replayed by the next owner");
            }
            store(consumer, &self.tracker);
            self.commit_result(&consumer.commit_consumer_state(CommitMode::Sync), "commit on revoke");
            self.tracker.revoke(&tps);
            tracing::info!(partitions = ?tps, "partitions revoked");
        }
        if let Rebalance::Assign(tpl) = rebalance {
            // Before librdkafka starts fetching: a partition never committed starts at the
            // log start, set here (`auto.offset.reset` is `error`: nothing resets silently).
            crate::positions::start_at_log_start(consumer, tpl);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let tps = tps_of(tpl);
            self.tracker.assign(&tps);
            if let Ok(positions) = consumer.position() {
                for e in positions.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        self.tracker.position_at_assign(&(e.topic().into(), e.partition()), o);
                    }
                }
            }
            // Both ways: librdkafka keeps a partition's pause across a rebalance when the
            // partition comes back to this consumer, and the loop may have resumed while nothing
            // was assigned (between an eager revoke and the assign), which resumed nothing.
            let paused = self.paused.load(Ordering::SeqCst);
            let set = if paused { consumer.pause(tpl) } else { consumer.resume(tpl) };
            if let Err(e) = set {
                tracing::warn!(error = %e, paused, "setting the pause of newly assigned partitions");
            }
            tracing::info!(partitions = ?tps, paused, "partitions assigned");
        }
    }
}

/// The indexer's consumer type.
pub type IndexerConsumer = StreamConsumer<Ctx>;

/// Waits on the calling thread until the lanes hold no record of `tps`, or `timeout` passed;
/// returns how many records they still hold. Blocks: call it only where blocking is allowed
/// (the rebalance callback, see [`Ctx::pre_rebalance`]).
pub fn wait_for_lanes(tracker: &Tracker, tps: &[Tp], timeout: Duration) -> usize {
    let started = Instant::now();
    loop {
        let left = tracker.in_lanes(tps);
        if left == 0 || started.elapsed() >= timeout {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs [`consume_loop`] on a thread of tokio's blocking pool, driving it with `runtime` (a
/// current-thread runtime, for the loop's timers), so that the rebalance callbacks its polling
/// runs may block (see [`Ctx::pre_rebalance`]) while the lanes go on on the main runtime.
/// The lane senders are dropped when the loop returns: the lanes then finish and exit.
#[allow(clippy::too_many_arguments)]
pub fn spawn_consume_loop(
    runtime: tokio::runtime::Runtime,
    consumer: Arc<IndexerConsumer>,
    router: Router,
    lanes: Vec<mpsc::Sender<Vec<Item>>>,
    tracker: Arc<Tracker>,
    stop: CancellationToken,
    commit_interval: Duration,
    paused: Arc<AtomicBool>,
    mut recycler: Recycler,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        runtime.block_on(consume_loop(&consumer, &router, &lanes, &tracker, &stop, commit_interval, &paused, &mut recycler));
    })
}

fn tps_of(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements().iter().map(|e| (e.topic().into(), e.partition())).collect()
}

/// Moves idle partitions past offsets the consumer will never deliver (transaction markers,
/// aborted records), from the consumer's position. Only the consume loop may call this,
/// between two `recv`s: there every record the position has passed was returned by `recv` and
/// registered. Never from a rebalance callback or at shutdown: closing the consumer serves
/// (and discards) the records still queued, which moves the position past records this
/// process never saw — skipping there would commit past them (a test that restarts mid-topic
/// caught exactly that).
pub fn skip_markers<C: ConsumerContext>(consumer: &impl Consumer<C>, tracker: &Tracker) {
    if let Ok(positions) = consumer.position() {
        for e in positions.elements() {
            if let Offset::Offset(position) = e.offset() {
                tracker.skip_to(&(e.topic().into(), e.partition()), position);
            }
        }
    }
}

/// Hands advanced offsets (what the tracker saw completed, contiguously) to librdkafka's offset
/// store; auto-commit sends them on its interval. Safe anywhere.
pub fn store<C: ConsumerContext>(consumer: &impl Consumer<C>, tracker: &Tracker) {
    let advanced = tracker.take_advanced();
    if advanced.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in &advanced {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        tracing::debug!(error = %e, "storing offsets (partition no longer assigned?)");
    }
}

/// Builds the consumer: own group, manual offset store, auto-commit of stored offsets, the
/// user's librdkafka properties, and `auto.offset.reset=error` last (over the user's: a
/// position librdkafka cannot fetch must stop the partition and be reported as a gap, never
/// jump silently; [`crate::positions`] starts new partitions at the log start itself).
pub fn build_consumer(
    brokers: &str,
    group: &str,
    session_timeout: Duration,
    commit_interval: Duration,
    props: &[(String, String)],
    ctx: Ctx,
) -> rdkafka::error::KafkaResult<IndexerConsumer> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", commit_interval.as_millis().to_string())
        .set("session.timeout.ms", session_timeout.as_millis().to_string())
        .set("heartbeat.interval.ms", (session_timeout.as_millis() / 4).max(100).to_string())
        .set("enable.partition.eof", "false")
        .set("queued.max.messages.kbytes", "16384");
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg.set("auto.offset.reset", "error");
    cfg.create_with_context(ctx)
}

/// Copies what a dead letter needs out of a borrowed message.
fn raw_owned(m: &BorrowedMessage<'_>) -> RawOwned {
    let headers = m.headers().map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect()).unwrap_or_default();
    RawOwned::new(m.key(), m.payload(), headers)
}

/// Decodes a message and picks its lane. Decoding maps the command's index to its target
/// index ([`schema::DecodeConfig::target_index`], `--index-map`) once, here: lanes, the
/// applier and the writes use [`schema::Command::target_index`].
pub struct Router {
    pub decoder: schema::Decoder,
    pub lanes: usize,
}

impl Router {
    fn route(&self, m: &BorrowedMessage<'_>, tracker: &Tracker) -> (usize, Item) {
        let raw = raw_owned(m);
        let headers: Vec<(&str, Option<&[u8]>)> = raw.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let rec = schema::RawRecord { topic: m.topic(), partition: m.partition(), offset: m.offset(), key: raw.key(), payload: raw.payload(), headers };
        let decoded = self.decoder.decode(&rec);
        let doc = decoded.as_ref().ok().map(|cmd| crate::invariants::doc_key(&cmd.target_index, &cmd.id));
        // A record that does not decode has no document: any lane will do (it is dead-lettered).
        let lane = (doc.unwrap_or(m.partition() as u64) % self.lanes as u64) as usize;
        let ticket = tracker.receive(m.topic(), m.partition(), m.offset());
        (lane, Item { ticket, raw, decoded, doc })
    }
}

/// 1 while consumption is paused (a lane stayed full for `PAUSE_AFTER`), else 0.
pub const PAUSED: &str = "cutover_indexer_paused";

/// How long a full lane may block the consumer before it pauses the assignment.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// Most payload bytes the consumer holds for full lanes before it pauses at once.
pub const MAX_BACKLOG_BYTES: usize = 16 * 1024 * 1024;

/// Most records taken from the consumer's queue in one go (those already fetched, without
/// waiting): they are decoded and handed to each lane as one chunk, so a lane wakes once per
/// chunk rather than once per record.
pub const BURST: usize = 256;

/// Chunks a lane's channel holds for a lane limit of `max_docs` records per batch: about one
/// batch's worth of records in full chunks (at least two chunks, so the consumer can hand over
/// the next while the lane takes the last).
pub fn lane_channel_chunks(max_docs: usize) -> usize {
    max_docs.div_ceil(BURST).max(2)
}

/// Records decoded but not yet handed over, per lane (in arrival order within a lane, which
/// is all the order the lanes need), with their payload size.
struct Backlog {
    lanes: Vec<Vec<Item>>,
    bytes: usize,
}

impl Backlog {
    fn new(lanes: usize) -> Self {
        Self { lanes: (0..lanes).map(|_| Vec::new()).collect(), bytes: 0 }
    }
    fn push(&mut self, lane: usize, item: Item) {
        self.bytes += item.raw.size();
        self.lanes[lane].push(item);
    }
    /// The first lane with records waiting.
    fn waiting_lane(&self) -> Option<usize> {
        self.lanes.iter().position(|l| !l.is_empty())
    }
    /// Hands `lane`'s records over as one chunk, dropping records of partitions revoked
    /// meanwhile (an empty chunk is not sent).
    fn send(&mut self, lane: usize, permit: mpsc::Permit<'_, Vec<Item>>, tracker: &Tracker) {
        // The next chunk is about as long as this one: room for it (no growing by doubling).
        let capacity = self.lanes[lane].len();
        let mut chunk = std::mem::replace(&mut self.lanes[lane], Vec::with_capacity(capacity));
        self.bytes -= chunk.iter().map(|i| i.raw.size()).sum::<usize>();
        chunk.retain(|item| tracker.dispatch(&item.ticket));
        if !chunk.is_empty() {
            permit.send(chunk);
        }
    }
    /// Hands over every lane's records that its channel has room for; `Err` when a lane has
    /// closed (shutdown).
    fn hand_over(&mut self, lanes: &[mpsc::Sender<Vec<Item>>], tracker: &Tracker) -> Result<(), ()> {
        for (lane, tx) in lanes.iter().enumerate() {
            if self.lanes[lane].is_empty() {
                continue;
            }
            match tx.try_reserve() {
                Ok(permit) => self.send(lane, permit, tracker),
                Err(mpsc::error::TrySendError::Full(())) => {}
                Err(mpsc::error::TrySendError::Closed(())) => return Err(()),
            }
        }
        Ok(())
    }
}

/// Consumes until `stop` fires. Returns when the loop has stopped fetching. Batches the lanes
/// have applied come back to `recycler` and are freed here, on the thread that decoded them
/// (see [`crate::lanes::Spent`]).
#[allow(clippy::too_many_arguments)]
pub async fn consume_loop(
    consumer: &IndexerConsumer,
    router: &Router,
    lanes: &[mpsc::Sender<Vec<Item>>],
    tracker: &Tracker,
    stop: &CancellationToken,
    commit_interval: Duration,
    paused_flag: &AtomicBool,
    recycler: &mut Recycler,
) {
    let mut store_tick = tokio::time::interval(commit_interval.min(Duration::from_millis(500)));
    let mut backlog = Backlog::new(lanes.len());
    let mut paused = false;
    // When a lane that is full (and has been since) gets the consumer's assignment paused.
    let mut pause_at: Option<tokio::time::Instant> = None;
    // One stream for the loop's life (each `recv` would register and drop a waker).
    let mut messages = consumer.stream();
    // Handles looked up once: the loop runs once per burst of records.
    let consumed = metrics::counter!("cutover_indexer_consumed_total");
    let backlog_bytes = metrics::gauge!("cutover_indexer_backlog_bytes");
    metrics::gauge!(PAUSED).set(0.0);
    loop {
        recycler.free();
        backlog_bytes.set(backlog.bytes as f64);
        // Hand over what is waiting first.
        if backlog.hand_over(lanes, tracker).is_err() {
            return;
        }
        let waiting = backlog.waiting_lane();
        if waiting.is_none() {
            pause_at = None;
            if paused {
                pause(consumer, paused_flag, false);
                paused = false;
            }
        }
        if !paused && backlog.bytes > MAX_BACKLOG_BYTES {
            pause(consumer, paused_flag, true);
            paused = true;
        }
        if let Some(lane) = waiting {
            // A full lane is ordinary backpressure: wait for room. Only when it lasts (the
            // cluster is slow or down) pause the assignment and keep polling, so the group's
            // liveness checks go on; pausing discards prefetched records, so not sooner. The
            // deadline holds across the loop's other wake-ups (the store tick, spent batches):
            // only room in a lane moves it.
            let deadline = *pause_at.get_or_insert_with(|| tokio::time::Instant::now() + PAUSE_AFTER);
            tokio::select! {
                permit = lanes[lane].reserve() => {
                    let Ok(permit) = permit else { return };
                    backlog.send(lane, permit, tracker);
                    pause_at = None;
                }
                _ = tokio::time::sleep_until(deadline), if !paused => {
                    pause(consumer, paused_flag, true);
                    paused = true;
                }
                m = messages.next(), if paused => {
                    let Some(m) = m else { return };
                    if accept(m, &mut messages, router, tracker, &mut backlog, &consumed) {
                        reposition(consumer, tracker);
                    }
                    // Paused partitions deliver nothing new; if records keep coming (a partition
                    // whose pause was lost), pause the whole assignment again.
                    if backlog.bytes > MAX_BACKLOG_BYTES {
                        pause(consumer, paused_flag, true);
                    }
                }
                _ = store_tick.tick() => { skip_markers(consumer, tracker); store(consumer, tracker) }
                spent = recycler.next() => recycler.keep(spent),
                _ = stop.cancelled() => return,
            }
            continue;
        }
        tokio::select! {
            m = messages.next() => {
                let Some(m) = m else { return };
                if accept(m, &mut messages, router, tracker, &mut backlog, &consumed) {
                    reposition(consumer, tracker);
                }
            }
            _ = store_tick.tick() => { skip_markers(consumer, tracker); store(consumer, tracker) }
            spent = recycler.next() => recycler.keep(spent),
            _ = stop.cancelled() => return,
        }
    }
}

/// Takes `first` and the records already fetched behind it (up to [`BURST`], without
/// waiting, and none once the backlog holds more than [`MAX_BACKLOG_BYTES`]), decodes them and
/// puts each in its lane's backlog.
fn accept<'a>(
    first: KafkaResult<BorrowedMessage<'a>>,
    messages: &mut MessageStream<'a, Ctx>,
    router: &Router,
    tracker: &Tracker,
    backlog: &mut Backlog,
    consumed: &metrics::Counter,
) -> bool {
    let mut out_of_range = false;
    let mut next = Some(first);
    let (mut taken, mut n) = (0, 0);
    while let Some(m) = next.take() {
        taken += 1;
        match m {
            Ok(m) => {
                n += 1;
                let (lane, item) = router.route(&m, tracker);
                backlog.push(lane, item);
            }
            // A position librdkafka could not fetch (`auto.offset.reset=error`): the partition
            // stopped; the loop positions it and reports the gap ([`crate::positions`]).
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)) => out_of_range = true,
            Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
        }
        // A burst ends early past the backlog limit, so that limit still bounds what is held.
        if taken < BURST && backlog.bytes <= MAX_BACKLOG_BYTES {
            // Ready now or not at all (`None` also when the poll served an event instead).
            next = messages.next().now_or_never().flatten();
        }
    }
    consumed.increment(n as u64);
    out_of_range
}

/// Positions the partitions a fetch could not read ([`crate::positions::recover`]). Every record
/// delivered before the error was received by the tracker already. When the brokers cannot be
/// asked now, the partitions stay stopped (nothing is skipped) and the next error retries.
fn reposition(consumer: &IndexerConsumer, tracker: &Tracker) {
    let ctx = consumer.context();
    let recover = || crate::positions::recover(consumer, tracker, &ctx.readiness, ctx.accept_gaps, ctx.paused.load(Ordering::SeqCst));
    if let Err(e) = recover() {
        tracing::warn!(error = %e, "could not position partitions after an out-of-range fetch; retrying");
        std::thread::sleep(Duration::from_millis(500));
        if let Err(e) = recover() {
            tracing::error!(error = %e, "could not position partitions after an out-of-range fetch: they stay stopped (nothing is skipped); restart the indexer once the brokers answer");
        }
    }
}

/// Pauses or resumes the whole assignment; the flag makes the rebalance callback pause
/// partitions assigned while paused.
fn pause(consumer: &IndexerConsumer, flag: &AtomicBool, on: bool) {
    if flag.swap(on, Ordering::SeqCst) != on {
        tracing::info!(paused = on, "lanes full: pausing the assignment until they drain (or resuming)");
        metrics::gauge!(PAUSED).set(if on { 1.0 } else { 0.0 });
    }
    let Ok(assignment) = consumer.assignment() else { return };
    let result = if on { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
    if let Err(e) = result {
        tracing::debug!(error = %e, on, "pause/resume");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tracker: &Tracker, partition: i32, offset: i64) -> Item {
        let ticket = tracker.receive("t", partition, offset);
        Item {
            ticket,
            raw: RawOwned::new(None, Some(&[0; 10]), Vec::new()),
            decoded: Err(schema::DecodeError { kind: schema::DecodeErrorKind::EmptyPayload, topic: "t".into(), partition, offset, detail: String::new() }),
            doc: None,
        }
    }

    fn offsets(chunk: &[Item]) -> Vec<i64> {
        chunk.iter().map(|i| i.ticket.offset).collect()
    }

    /// Each lane's records go over as one chunk, in arrival order, when its channel has room;
    /// a full lane keeps its own and does not hold the others up; records of partitions revoked
    /// meanwhile are dropped, not handed over.
    #[tokio::test]
    async fn backlog_hands_over_one_chunk_per_lane() {
        let tracker = Tracker::default();
        let (p0, p1): (Tp, Tp) = (("t".into(), 0), ("t".into(), 1));
        tracker.assign(&[p0.clone(), p1.clone()]);
        let (tx0, mut rx0) = mpsc::channel(1);
        let (tx1, mut rx1) = mpsc::channel(1);
        tx1.try_send(Vec::new()).expect("room for one");
        let mut backlog = Backlog::new(2);
        for (lane, partition, offset) in [(0, 0, 1), (1, 1, 2), (0, 0, 3), (1, 1, 4), (0, 0, 5)] {
            backlog.push(lane, item(&tracker, partition, offset));
        }
        assert_eq!(backlog.bytes, 50);
        let lanes = [tx0, tx1];
        backlog.hand_over(&lanes, &tracker).unwrap();
        assert_eq!(offsets(&rx0.try_recv().unwrap()), vec![1, 3, 5]);
        assert_eq!(backlog.waiting_lane(), Some(1), "lane 1 is full");
        assert_eq!(backlog.bytes, 20);

        tracker.revoke(std::slice::from_ref(&p1));
        assert!(rx1.try_recv().unwrap().is_empty());
        backlog.hand_over(&lanes, &tracker).unwrap();
        assert!(rx1.try_recv().is_err(), "revoked records are not handed over");
        assert_eq!((backlog.waiting_lane(), backlog.bytes), (None, 0));
        assert_eq!(tracker.in_lanes(&[p0]), 3);
    }

    /// The revoke's wait works on a current-thread runtime (where `block_in_place` panicked)
    /// and returns as soon as the lanes let go of the revoked partitions' records.
    #[tokio::test(flavor = "current_thread")]
    async fn revoke_wait_needs_no_multi_thread_runtime() {
        let tracker = Arc::new(Tracker::default());
        let tp: Tp = ("t".into(), 0);
        tracker.assign(std::slice::from_ref(&tp));
        let ticket = tracker.receive("t", 0, 1);
        assert!(tracker.dispatch(&ticket));
        assert_eq!(wait_for_lanes(&tracker, std::slice::from_ref(&tp), Duration::from_millis(60)), 1, "times out while a lane holds it");
        let lane = {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                tracker.complete(&ticket);
            })
        };
        let started = Instant::now();
        assert_eq!(wait_for_lanes(&tracker, std::slice::from_ref(&tp), Duration::from_secs(10)), 0);
        assert!(started.elapsed() < Duration::from_secs(5), "returns once drained, not at the timeout");
        lane.join().unwrap();
    }
}
