//! The copy job in Kafka: who copies which slice, and where each slice's progress is kept.
//!
//! A copy job is split into slices (see [`crate::scan`]). Rather than a home-made scheme of
//! leases and heartbeats, the job uses the engine the indexer already scales and fails over
//! on, Kafka's consumer-group protocol, as Kafka Connect does for its tasks:
//!
//! - **Membership and assignment.** The job has a topic, `cutover-backfill.<job>`, with one
//!   partition per slice (created by the first worker), and every `backfill copy` process of
//!   the job joins the consumer group of the same name and subscribes to it. The group hands
//!   out partitions, that is slices, and moves them when a worker joins, leaves or dies (its
//!   session times out). One process alone is a group of one. The assignor is
//!   `cooperative-sticky`: a worker joining takes slices from the others without stopping the
//!   slices that stay where they are. Nobody reads the partitions: the topic holds one record,
//!   the job's definition ([`JobRecord`]), at offset 0 of partition 0.
//! - **Checkpoints.** A slice's progress ([`SliceCheckpoint`]) is the metadata of the group's
//!   committed offset for the slice's partition, so it lives in Kafka (`__consumer_offsets`),
//!   not on the disk of the machine that made it: another host resumes the slice from it.
//!   The committed offset itself counts the slice's checkpoints.
//! - **Fencing.** An offset commit carries the member's identity and the group generation, and
//!   the broker refuses it from a member the group has removed (`UNKNOWN_MEMBER_ID`,
//!   `ILLEGAL_GENERATION`). A worker that lost its slice (paused past its session timeout,
//!   then woken) therefore cannot overwrite the new owner's progress. Kafka does not check that
//!   the member still owns the partition it commits for, so the worker checks that too: every
//!   assignment gets an epoch, and a checkpoint is handed to librdkafka only under the epoch its
//!   slice was started with, checked under the lock the revoke callback takes to end an epoch.
//!   librdkafka runs a group's operations in order and rejoins only after the revoke callback,
//!   so a commit handed over before the callback goes out under the old identity (refused if
//!   the group moved on), and none is handed over after it. A refused commit is tried again
//!   under the same check: a slice the worker still holds (a cooperative rebalance that moved
//!   other slices) is saved under the new generation, a slice it lost is not, and its task
//!   stops (`cutover_backfill_checkpoints_refused_total`).
//!
//! What it costs: the broker forgets a group's committed offsets `offsets.retention.minutes`
//! (default 7 days) after its last member left. A job paused longer than that starts over;
//! copying again is safe (writes are externally versioned), only slower.

use crate::checkpoint::{CheckpointError, SliceCheckpoint};
use cluster::retry::RetryError;
use cluster::RetryPolicy;
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

mod commit_queue;
mod status;

pub use status::{status, JobStatus, SliceStatus};

/// Counter of checkpoints the job refused: the slice had moved to another worker.
pub const CHECKPOINTS_REFUSED: &str = "cutover_backfill_checkpoints_refused_total";

/// How long one Kafka request of the job may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach Kafka and identify this worker.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// The user's librdkafka properties (file, then `-X`), already checked.
    pub properties: Vec<(String, String)>,
    /// How soon the group notices a dead worker and moves its slices.
    pub session_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig { brokers: "127.0.0.1:9092".into(), properties: Vec::new(), session_timeout: Duration::from_secs(10) }
    }
}

/// Which job a worker belongs to.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub kafka: KafkaConfig,
    /// The job's name (its topic and group are `cutover-backfill.<name>`); `None`: derived from
    /// the source and target indices ([`default_name`]).
    pub name: Option<String>,
    /// This worker's name in `backfill status` (librdkafka's `client.id`); default
    /// `<hostname>:<pid>`.
    pub worker: String,
    /// Checks that a checkpoint comes from the slice's current owner (always on; off only in
    /// the tests' control run, to show what the fence prevents).
    pub fencing: bool,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig { kafka: KafkaConfig::default(), name: None, worker: default_worker(), fencing: true }
    }
}

/// `<hostname>:<pid>`.
pub fn default_worker() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// The job name derived from the indices: `<source>.<target>`, with characters a topic name
/// cannot hold replaced by `_`.
pub fn default_name(source_index: &str, target_index: &str) -> String {
    topic_safe(&format!("{source_index}.{target_index}"))
}

/// `text` with every character a Kafka topic name cannot hold replaced by `_`.
pub fn topic_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

/// The job's topic and consumer group.
pub fn topic(name: &str) -> String {
    format!("cutover-backfill.{name}")
}

/// Why the job's state in Kafka could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A Kafka request failed.
    #[error("kafka ({what}): {source}")]
    Kafka { what: &'static str, source: KafkaError },
    /// The job exists with other parameters than this worker's.
    #[error("{0}")]
    Mismatch(String),
    /// The job's topic or record is not there (`backfill status` of a job never started).
    #[error("{0}")]
    NotFound(String),
    /// A blocking Kafka call's task failed.
    #[error("kafka task failed: {0}")]
    Task(String),
}

fn kafka(what: &'static str) -> impl FnOnce(KafkaError) -> JobError {
    move |source| JobError::Kafka { what, source }
}

impl JobError {
    /// A failure that passes by itself: a topic just created whose leader is not elected yet,
    /// a group coordinator loading or moving, a broker not answering.
    pub fn is_transient(&self) -> bool {
        use RDKafkaErrorCode::*;
        let JobError::Kafka { source, .. } = self else { return false };
        matches!(
            source.rdkafka_error_code(),
            Some(
                NotLeaderForPartition
                    | LeaderNotAvailable
                    | UnknownTopicOrPartition
                    | UnknownPartition
                    | UnknownTopic
                    | NotCoordinator
                    | CoordinatorLoadInProgress
                    | CoordinatorNotAvailable
                    | RequestTimedOut
                    | OperationTimedOut
                    | BrokerTransportFailure
                    | AllBrokersDown
                    | NetworkException
                    | NotEnoughReplicas
                    | RebalanceInProgress
            )
        )
    }
}

/// The job's definition, the one record of its topic: every worker checks that it copies the
/// same thing, and `backfill status` reads the expected total from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub source_index: String,
    pub target_index: String,
    pub slices: u32,
    /// Documents in the source when the job was created (for the ETA).
    pub expected_docs: Option<u64>,
    pub created_at_ms: u64,
    pub created_by: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Every client of the job: the user's properties, then the brokers and the worker's name.
fn base_config(cfg: &JobConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &cfg.kafka.brokers).set("client.id", &cfg.worker);
    c
}

/// The group member's client.
fn client_config(cfg: &JobConfig, topic: &str) -> ClientConfig {
    let mut c = base_config(cfg);
    c.set("group.id", topic)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", cfg.kafka.session_timeout.as_millis().to_string())
        .set("heartbeat.interval.ms", (cfg.kafka.session_timeout.as_millis() / 3).max(100).to_string())
        // The group thread polls every 100 ms; a worker whose thread stopped serving the group
        // for this long leaves it, and its slices move, instead of holding a rebalance up for
        // librdkafka's default of 5 minutes.
        .set("max.poll.interval.ms", (cfg.kafka.session_timeout.as_millis() * 3).max(30_000).to_string());
    c
}

/// A change of this worker's slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// These slices are now this worker's, under `epoch`.
    Assigned { slices: Vec<u32>, epoch: u64 },
    /// These slices are no longer this worker's: stop copying them.
    Revoked(Vec<u32>),
}

/// Which slices this worker owns, and under which epoch.
#[derive(Default)]
struct Ownership {
    next_epoch: u64,
    owned: HashMap<u32, u64>,
}

struct GroupContext {
    ownership: Mutex<Ownership>,
    events: UnboundedSender<Event>,
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error (the job's group)");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let slices = |tpl: &TopicPartitionList| tpl.elements().iter().map(|e| e.partition() as u32).collect::<Vec<_>>();
        match rebalance {
            Rebalance::Assign(tpl) => {
                let slices = slices(tpl);
                let mut o = self.ownership.lock();
                o.next_epoch += 1;
                let epoch = o.next_epoch;
                for &s in &slices {
                    o.owned.insert(s, epoch);
                }
                drop(o);
                tracing::info!(?slices, epoch, "slices assigned to this worker");
                let _ = self.events.send(Event::Assigned { slices, epoch });
            }
            Rebalance::Revoke(tpl) => {
                let slices = slices(tpl);
                // Ends the epoch: from here on no checkpoint of these slices leaves this worker
                // (a commit in progress holds the lock, so it was sent under the old identity).
                let mut o = self.ownership.lock();
                for s in &slices {
                    o.owned.remove(s);
                }
                drop(o);
                tracing::info!(?slices, "slices revoked from this worker");
                let _ = self.events.send(Event::Revoked(slices));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// This worker's membership in the job's group: its slices come as [`Event`]s, its
/// checkpoints go through [`Member::save`].
pub struct Member {
    consumer: Arc<BaseConsumer<GroupContext>>,
    topic: String,
    record: JobRecord,
    fencing: bool,
    stop: Arc<AtomicBool>,
    poller: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// For reading checkpoints (a coordinator moving is retried).
    retry: RetryPolicy,
    cancel: CancellationToken,
}

/// What [`Member::join`] needs to know of the job this worker would start.
pub struct JobSpec {
    pub source_index: String,
    pub target_index: String,
    pub slices: u32,
    pub expected_docs: Option<u64>,
}

impl Member {
    /// Joins the job (creating its topic and record if this worker is the first) and starts
    /// serving the group's rebalances on a thread of its own.
    /// Kafka's passing failures are retried under `retry`.
    pub async fn join(cfg: &JobConfig, spec: JobSpec, retry: &RetryPolicy, cancel: &CancellationToken) -> Result<(Member, UnboundedReceiver<Event>), JobError> {
        let name = cfg.name.clone().unwrap_or_else(|| default_name(&spec.source_index, &spec.target_index));
        let topic = topic(&name);
        let record = retry.run("kafka", cancel, JobError::is_transient, || ensure_job(cfg, &topic, &spec)).await.map_err(RetryError::into_last)?;
        let (tx, rx) = unbounded_channel();
        let ctx = GroupContext { ownership: Mutex::new(Ownership::default()), events: tx };
        let consumer: BaseConsumer<GroupContext> = client_config(cfg, &topic).create_with_context(ctx).map_err(kafka("create the group consumer"))?;
        consumer.subscribe(&[&topic]).map_err(kafka("subscribe to the job topic"))?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (consumer, stop) = (consumer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("backfill-group".into())
                .spawn(move || {
                    // Serves rebalances and heartbeats' results; the job record is the only
                    // message and nobody needs it here.
                    while !stop.load(Ordering::Relaxed) {
                        let _ = consumer.poll(Duration::from_millis(100));
                    }
                })
                .expect("spawn the group thread")
        };
        tracing::info!(job = %name, topic = %topic, worker = %cfg.worker, slices = record.slices, "joined the backfill job's group");
        let member =
            Member { consumer, topic, record, fencing: cfg.fencing, stop, poller: Mutex::new(Some(poller)), retry: retry.clone(), cancel: cancel.clone() };
        Ok((member, rx))
    }

    /// The job's definition.
    pub fn record(&self) -> &JobRecord {
        &self.record
    }

    /// The checkpoint of every slice of the job (`None`: never checkpointed).
    pub async fn load_all(&self) -> Result<Vec<Option<SliceCheckpoint>>, JobError> {
        let read = || {
            let (consumer, topic, slices) = (self.consumer.clone(), self.topic.clone(), self.record.slices);
            blocking(move || committed(&*consumer, &topic, slices))
        };
        self.retry.run("kafka", &self.cancel, JobError::is_transient, read).await.map_err(RetryError::into_last)
    }

    /// The checkpoint of one slice, checked against the job.
    pub async fn load(&self, slice: u32) -> Result<Option<SliceCheckpoint>, CheckpointError> {
        let all = self.load_all().await.map_err(|e| CheckpointError::Store(e.to_string()))?;
        let cp = all.into_iter().nth(slice as usize).flatten();
        if let Some(cp) = &cp {
            let r = &self.record;
            if (&cp.source_index, &cp.target_index, cp.slice, cp.slices) != (&r.source_index, &r.target_index, slice, r.slices) {
                return Err(CheckpointError::Invalid {
                    slice,
                    reason: format!("written for {}/{} slice {} of {}", cp.source_index, cp.target_index, cp.slice, cp.slices),
                });
            }
        }
        Ok(cp)
    }

    /// A fresh checkpoint for a slice never run before.
    pub fn fresh(&self, slice: u32) -> SliceCheckpoint {
        SliceCheckpoint::fresh(&self.record.source_index, &self.record.target_index, slice, self.record.slices)
    }

    /// Saves a slice's checkpoint if this worker still owns the slice under `epoch`;
    /// [`CheckpointError::Lost`] when it does not (the slice moved to another worker). What
    /// may pass (no coordinator yet, a rebalance in progress) is retried under the
    /// policy the member joined with.
    pub async fn save(&self, epoch: u64, cp: &mut SliceCheckpoint, cancel: &CancellationToken) -> Result<(), CheckpointError> {
        cp.updated_at_ms = now_ms();
        cp.saves += 1;
        // Unfenced (the tests' control run only): the save outlives the slice's revoke too.
        let cancel = if self.fencing { cancel.clone() } else { CancellationToken::new() };
        let saved = self
            .retry
            .run(
                "checkpoint",
                &cancel,
                |e: &Commit| !matches!(e, Commit::Lost(_)),
                || {
                    let (consumer, topic, fencing, cp) = (self.consumer.clone(), self.topic.clone(), self.fencing, cp.clone());
                    async move {
                        tokio::task::spawn_blocking(move || commit(&consumer, &topic, fencing, epoch, &cp))
                            .await
                            .unwrap_or_else(|e| Err(Commit::Failed(e.to_string())))
                    }
                },
            )
            .await;
        match saved.map_err(RetryError::into_last) {
            Ok(()) => Ok(()),
            Err(Commit::Lost(why)) => {
                metrics::counter!(CHECKPOINTS_REFUSED).increment(1);
                tracing::warn!(slice = cp.slice, epoch, why, "checkpoint refused: the slice belongs to another worker now; this worker stops copying it");
                Err(CheckpointError::Lost { slice: cp.slice })
            }
            Err(e) => Err(CheckpointError::Store(format!("saving the checkpoint of slice {}: {e}", cp.slice))),
        }
    }

    /// Stops serving the group; dropping the member then closes its consumer, which leaves
    /// the group (the slices still held move to the others at once).
    pub async fn leave(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let poller = self.poller.lock().take();
        if let Some(p) = poller {
            let _ = tokio::task::spawn_blocking(move || p.join()).await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Why one commit attempt did not save the checkpoint.
#[derive(Debug, thiserror::Error)]
enum Commit {
    /// The slice is not this worker's any more.
    #[error("{0}")]
    Lost(String),
    /// May pass: retried.
    #[error("{0}")]
    Retry(KafkaError),
    #[error("{0}")]
    Failed(String),
}

/// How long one commit may wait for the broker's answer before it is tried again.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// One commit attempt. Under the ownership lock: the check that this worker still owns the
/// slice under `epoch`, and the commit's hand-over to librdkafka. librdkafka runs a group's
/// operations in order, so a commit handed over before a revoke callback ended the epoch is
/// sent under the member's identity of that time (refused by the broker if the group moved
/// on). The answer is awaited on a queue of the commit's own, without the lock, which the
/// rebalance callback needs. (Blocking: run on the blocking pool.)
fn commit(consumer: &BaseConsumer<GroupContext>, topic: &str, fencing: bool, epoch: u64, cp: &SliceCheckpoint) -> Result<(), Commit> {
    let mut tpl = TopicPartitionList::new();
    let mut elem = tpl.add_partition(topic, cp.slice as i32);
    elem.set_offset(Offset::Offset(cp.saves as i64)).map_err(|e| Commit::Failed(e.to_string()))?;
    elem.set_metadata(cp.encode());
    let queue = {
        let guard = consumer.context().ownership.lock();
        if fencing && guard.owned.get(&cp.slice) != Some(&epoch) {
            return Err(Commit::Lost(format!("slice {} is no longer assigned to this worker under epoch {epoch}", cp.slice)));
        }
        let queue = commit_queue::CommitQueue::new(consumer);
        queue.hand_over(consumer, &tpl).map_err(Commit::Retry)?;
        queue
    };
    match queue.answer(COMMIT_TIMEOUT) {
        Some(Ok(())) => Ok(()),
        // Refused by the group (fenced, or a rebalance in progress): tried again, and the
        // ownership check decides. A slice this worker still holds (a cooperative rebalance
        // moved others) is committed under the new generation; a slice it lost (its revoke
        // callback ran) is not.
        Some(Err(e)) => Err(Commit::Retry(e)),
        None => Err(Commit::Failed(format!("no answer to the commit within {COMMIT_TIMEOUT:?}"))),
    }
}

/// The committed checkpoints of a job's slices, read by any client of the group's id.
fn committed<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, slices: u32) -> Result<Vec<Option<SliceCheckpoint>>, JobError> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..slices {
        tpl.add_partition(topic, p as i32);
    }
    let got = consumer.committed_offsets(tpl, REQUEST_TIMEOUT).map_err(kafka("read the checkpoints"))?;
    let mut out = vec![None; slices as usize];
    for e in got.elements() {
        if let Some(err) = e.error().err() {
            return Err(JobError::Kafka { what: "read a checkpoint", source: err });
        }
        let (p, meta) = (e.partition() as usize, e.metadata());
        if p < out.len() && !meta.is_empty() {
            // A checkpoint that cannot be read is not "never checkpointed": stop and say so.
            let cp = SliceCheckpoint::decode(meta).map_err(|e| {
                JobError::Mismatch(format!("the checkpoint of slice {p} in {topic} is unreadable ({e}): is the group someone else's? Use another --job name"))
            })?;
            out[p] = Some(cp);
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, JobError> + Send + 'static) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(JobError::Task(e.to_string())))
}

/// Creates the job's topic and record when missing; returns the record, refusing a job whose
/// record says it copies something else.
async fn ensure_job(cfg: &JobConfig, topic: &str, spec: &JobSpec) -> Result<JobRecord, JobError> {
    let base = base_config(cfg);
    let admin: AdminClient<DefaultClientContext> = base.create().map_err(kafka("create the admin client"))?;
    let new = NewTopic::new(topic, spec.slices as i32, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)).request_timeout(Some(REQUEST_TIMEOUT));
    let created = admin.create_topics([&new], &opts).await.map_err(kafka("create the job topic"))?;
    for r in created {
        match r {
            Ok(_) => tracing::info!(topic, partitions = spec.slices, "created the job topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(JobError::Kafka { what: "create the job topic", source: KafkaError::AdminOp(code) }),
        }
    }
    let existing = read_record(&base, topic).await?;
    let record = match existing {
        Some(r) => r,
        None => {
            let mine = JobRecord {
                source_index: spec.source_index.clone(),
                target_index: spec.target_index.clone(),
                slices: spec.slices,
                expected_docs: spec.expected_docs,
                created_at_ms: now_ms(),
                created_by: cfg.worker.clone(),
            };
            write_record(&base, topic, &mine).await?;
            // Two first workers may both write one: the first in the log is the job.
            read_record(&base, topic).await?.unwrap_or(mine)
        }
    };
    let partitions = partition_count(&base, topic).await?;
    let name = topic.trim_start_matches("cutover-backfill.");
    if (record.source_index.as_str(), record.target_index.as_str()) != (spec.source_index.as_str(), spec.target_index.as_str()) {
        return Err(JobError::Mismatch(format!(
            "job `{name}` copies {} into {}, not {} into {}: choose another --job name",
            record.source_index, record.target_index, spec.source_index, spec.target_index
        )));
    }
    if record.slices != spec.slices || partitions != spec.slices {
        return Err(JobError::Mismatch(format!(
            "job `{name}` has {} slices (its topic {topic} has {partitions} partitions), not {}: run with --slices {} to continue it, or choose another --job name to start over",
            record.slices, spec.slices, record.slices
        )));
    }
    Ok(record)
}

async fn partition_count(base: &ClientConfig, topic: &str) -> Result<u32, JobError> {
    let (base, topic) = (base.clone(), topic.to_owned());
    blocking(move || {
        let c: BaseConsumer = base.create().map_err(kafka("create a metadata client"))?;
        let md = c.fetch_metadata(Some(&topic), REQUEST_TIMEOUT).map_err(kafka("read the job topic's metadata"))?;
        Ok(md.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len() as u32))
    })
    .await
}

/// The job's record: the first record of partition 0 of its topic.
async fn read_record(base: &ClientConfig, topic: &str) -> Result<Option<JobRecord>, JobError> {
    let (base, topic) = (base.clone(), topic.to_owned());
    blocking(move || {
        let c: BaseConsumer =
            base.clone().set("group.id", "cutover-backfill-reader").set("enable.auto.commit", "false").create().map_err(kafka("create a reader"))?;
        let (low, high) = c.fetch_watermarks(&topic, 0, REQUEST_TIMEOUT).map_err(kafka("read the job topic's offsets"))?;
        if high <= low {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning).map_err(kafka("read the job record"))?;
        c.assign(&tpl).map_err(kafka("read the job record"))?;
        let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
        while std::time::Instant::now() < deadline {
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let payload = m.payload().unwrap_or_default();
                    return serde_json::from_slice(payload).map(Some).map_err(|e| {
                        JobError::Mismatch(format!("{topic} offset {} is not a backfill job record ({e}): is the topic someone else's?", m.offset()))
                    });
                }
                Some(Err(e)) => return Err(JobError::Kafka { what: "read the job record", source: e }),
                None => {}
            }
        }
        Err(JobError::NotFound(format!("the record of {topic} could not be read within {REQUEST_TIMEOUT:?}")))
    })
    .await
}

async fn write_record(base: &ClientConfig, topic: &str, record: &JobRecord) -> Result<(), JobError> {
    let (base, topic, payload) = (base.clone(), topic.to_owned(), serde_json::to_vec(record).expect("serializes"));
    blocking(move || {
        let p: ThreadedProducer<DefaultProducerContext> = base.clone().set("acks", "all").create().map_err(kafka("create a producer"))?;
        p.send(BaseRecord::to(&topic).key("job").payload(&payload).partition(0))
            .map_err(|(e, _)| JobError::Kafka { what: "write the job record", source: e })?;
        p.flush(REQUEST_TIMEOUT).map_err(kafka("write the job record"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_topic_safe() {
        assert_eq!(default_name("legacy-2024", "target_v2"), "legacy-2024.target_v2");
        assert_eq!(default_name("a+b", "c#d"), "a_b.c_d");
        assert_eq!(topic("x"), "cutover-backfill.x");
    }
}
