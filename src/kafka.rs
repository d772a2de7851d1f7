//! Kafka helpers for tests and the demo: create topics, produce, read back.
//!
//! Every helper takes the brokers' address; brokers that need security (the `kafka-secure`
//! node) are [`register`]ed once with their librdkafka properties, and every client the helpers
//! create for them gets those properties.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SECURED: Mutex<BTreeMap<String, Vec<(String, String)>>> = Mutex::new(BTreeMap::new());

/// Makes every client the helpers create for `brokers` use `props` (security settings).
pub fn register(brokers: &str, props: Vec<(String, String)>) {
    SECURED.lock().expect("registry").insert(brokers.to_string(), props);
}

/// A client configuration for `brokers`, with their registered properties.
pub fn config(brokers: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    if let Some(props) = SECURED.lock().expect("registry").get(brokers) {
        for (k, v) in props {
            cfg.set(k, v);
        }
    }
    cfg
}

/// Creates a topic with `partitions` partitions (replication 1); an existing topic is fine.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().expect("admin client");
    let results = admin.create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()).await.expect("create_topics");
    for r in results {
        if let Err((name, code)) = r {
            assert_eq!(code, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists, "creating {name}: {code:?}");
        }
    }
}

/// A producer that waits for the broker's acknowledgement of every record.
pub fn producer(brokers: &str) -> FutureProducer {
    config(brokers).set("acks", "all").set("enable.idempotence", "true").set("linger.ms", "5").create().expect("producer")
}

/// Produces one record (key, payload, headers) and waits for it to be stored.
pub async fn produce(p: &FutureProducer, topic: &str, key: Option<&[u8]>, payload: &[u8], headers: &[(&str, &[u8])]) -> (i32, i64) {
    let mut hs = OwnedHeaders::new();
    for (k, v) in headers {
        hs = hs.insert(Header { key: k, value: Some(*v) });
    }
    let mut rec = FutureRecord::to(topic).payload(payload).headers(hs);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    let delivery = p.send(rec, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("produce");
    (delivery.partition, delivery.offset)
}

/// One record to produce: key, value (None: a null value), headers.
#[derive(Clone, Debug, Default)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

fn future_record<'a>(topic: &'a str, rec: &'a Rec) -> FutureRecord<'a, [u8], [u8]> {
    let mut hs = OwnedHeaders::new();
    for (k, v) in &rec.headers {
        hs = hs.insert(Header { key: k, value: Some(v.as_slice()) });
    }
    let mut r: FutureRecord<'a, [u8], [u8]> = FutureRecord::to(topic).headers(hs);
    if let Some(k) = &rec.key {
        r = r.key(k.as_slice());
    }
    if let Some(v) = &rec.value {
        r = r.payload(v.as_slice());
    }
    r
}

/// Produces one [`Rec`] and waits for it to be stored.
pub async fn produce_rec(p: &FutureProducer, topic: &str, rec: &Rec) -> (i32, i64) {
    let delivery = p.send(future_record(topic, rec), Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("produce");
    (delivery.partition, delivery.offset)
}

/// Produces `records` with a transactional producer (a fresh `transactional.id`), committed in
/// transactions of `per_txn` records; after the k-th committed transaction, `aborted[k]` (when
/// present) is produced in a transaction that is aborted. The log then holds commit and abort
/// markers, which occupy offsets but are never delivered, and aborted records, which a
/// `read_committed` consumer (librdkafka's default) never delivers.
pub async fn produce_transactions(brokers: &str, topic: &str, records: &[Rec], per_txn: usize, aborted: &[Vec<Rec>]) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", crate::unique("txn"))
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    let t = Duration::from_secs(30);
    let blocking = |f: &dyn Fn() -> rdkafka::error::KafkaResult<()>| tokio::task::block_in_place(|| f().expect("transaction"));
    blocking(&|| p.init_transactions(t));
    for (k, chunk) in records.chunks(per_txn.max(1)).enumerate() {
        blocking(&|| p.begin_transaction());
        futures::future::join_all(chunk.iter().map(|r| produce_rec(&p, topic, r))).await;
        blocking(&|| p.commit_transaction(t));
        if let Some(poison) = aborted.get(k) {
            blocking(&|| p.begin_transaction());
            futures::future::join_all(poison.iter().map(|r| produce_rec(&p, topic, r))).await;
            blocking(&|| p.abort_transaction(t));
        }
    }
}

/// Reads every record of `topic` from the beginning until `expected` records arrived or
/// `timeout` passed, without joining a consumer group.
pub fn read_all(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = config(brokers).set("group.id", crate::unique("reader")).set("enable.auto.commit", "false").create().expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.detach());
        }
    }
    out
}

/// The committed offset of `group` on each partition of `topic` (-1001 when none).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    committed_metadata(brokers, group, topic, partitions).into_iter().map(|c| c.map_or(-1001, |(offset, _)| offset)).collect()
}

/// A group-coordinator error that passes once the coordinator is elected or loaded.
fn is_coordinator_transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{CoordinatorLoadInProgress, CoordinatorNotAvailable, NotCoordinator};
    matches!(e.rdkafka_error_code(), Some(NotCoordinator | CoordinatorLoadInProgress | CoordinatorNotAvailable))
}

/// A header's value as text.
pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    m.headers()?.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Simulates retention: deletes every record before `fraction` of each partition's end offset
/// (Kafka's DeleteRecords), so a consumer starting from the earliest offset never sees them.
/// Returns the new low watermarks.
pub async fn expire_oldest(brokers: &str, topic: &str, partitions: i32, fraction: f64) -> Vec<i64> {
    let consumer: BaseConsumer = config(brokers).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset((high as f64 * fraction) as i64)).expect("partition");
    }
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().expect("admin client");
    let result = admin.delete_records(&tpl, &AdminOptions::new()).await.expect("delete_records");
    result.elements().iter().map(|e| e.offset().to_raw().unwrap_or(-1)).collect()
}

/// Produces one record to an explicit partition (tests of mis-keyed topics).
pub async fn produce_to(p: &FutureProducer, topic: &str, partition: i32, key: &[u8], payload: &[u8]) -> i64 {
    let rec = FutureRecord::to(topic).partition(partition).key(key).payload(payload);
    p.send(rec, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("produce").offset
}

/// Deletes topics (missing ones are fine).
pub async fn delete_topics(brokers: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().expect("admin client");
    let _ = admin.delete_topics(topics, &AdminOptions::new()).await;
}

/// How many records `topic` holds (high minus low watermark, over every partition); 0 when the
/// topic does not exist.
pub fn records_in(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).set("allow.auto.create.topics", "false").create().expect("consumer");
    let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else { return 0 };
    let partitions: Vec<i32> = md.topics().iter().filter(|t| t.error().is_none()).flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    partitions.into_iter().map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).map(|(low, high)| high - low).unwrap_or(0)).sum()
}

/// Creates a topic with `partitions` partitions (replication 1) and the topic configuration
/// `settings` (e.g. `cleanup.policy=compact`). The topic must not exist yet: an existing one
/// would keep its own configuration, so that fails here.
pub async fn create_topic_with_config(brokers: &str, topic: &str, partitions: i32, settings: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in settings {
        new = new.set(k, v);
    }
    let results = admin.create_topics(&[new], &AdminOptions::new()).await.expect("create_topics");
    for r in results {
        if let Err((name, code)) = r {
            panic!("creating {name} with {settings:?}: {code:?}");
        }
    }
}

/// Reads every record `topic` holds, from the log start of each partition to its end (the
/// broker's end-of-partition event, so holes in the offsets, e.g. left by compaction, do not
/// matter), without joining a consumer group. Panics if a partition's end is not reached within
/// `timeout`. Blocking.
pub fn read_to_end(brokers: &str, topic: &str, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = config(brokers)
        .set("group.id", crate::unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("partition");
        }
    }
    let mut open: std::collections::BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !open.is_empty() {
        assert!(Instant::now() < deadline, "{topic}: the end of partitions {open:?} not reached within {timeout:?}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            _ => {}
        }
    }
    out
}

/// The committed offset and its metadata of `group` on each partition of `topic` (`None` when
/// nothing is committed): where a backfill job keeps its slices' checkpoints.
pub fn committed_metadata(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<(i64, String)>> {
    let consumer: BaseConsumer = config(brokers).set("group.id", group).set("enable.auto.commit", "false").create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(got) => break got,
            Err(e) if std::time::Instant::now() < deadline && is_coordinator_transient(&e) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => panic!("committed offsets: {e}"),
        }
    };
    (0..partitions)
        .map(|p| {
            let e = got.find_partition(topic, p)?;
            let offset = e.offset().to_raw().filter(|o| *o >= 0)?;
            Some((offset, e.metadata().to_string()))
        })
        .collect()
}

/// One offset commit as the broker logged it in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedCommit {
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

/// Every offset commit of `group` on `topic` the broker accepted, in the order it logged them
/// (read from `__consumer_offsets`, decoded here: offset-commit keys v0/v1, values v0-v4), so
/// a test sees each checkpoint ever saved, not only the last. Blocking.
pub fn commit_history(brokers: &str, group: &str, topic: &str) -> Vec<LoggedCommit> {
    let consumer: BaseConsumer = config(brokers)
        .set("group.id", crate::unique("offsets-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset("__consumer_offsets", p.id(), rdkafka::Offset::Beginning).expect("partition");
        }
    }
    let mut open: std::collections::BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out: Vec<(i32, i64, LoggedCommit)> = Vec::new();
    while !open.is_empty() {
        assert!(Instant::now() < deadline, "__consumer_offsets: end of partitions {open:?} not reached");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let (Some(key), Some(value)) = (m.key(), m.payload()) else { continue };
                if let Some(c) = decode_commit(key, value, group, topic) {
                    out.push((m.partition(), m.offset(), c));
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            _ => {}
        }
    }
    // One group's commits are all in one partition of __consumer_offsets: its log order.
    out.sort_by_key(|(p, o, _)| (*p, *o));
    out.into_iter().map(|(_, _, c)| c).collect()
}

fn decode_commit(key: &[u8], value: &[u8], group: &str, topic: &str) -> Option<LoggedCommit> {
    struct R<'a>(&'a [u8]);
    impl R<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            (self.0.len() >= n).then(|| {
                let (h, t) = self.0.split_at(n);
                self.0 = t;
                h
            })
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4).map(|b| i32::from_be_bytes(b.try_into().unwrap()))
        }
        fn i64(&mut self) -> Option<i64> {
            self.take(8).map(|b| i64::from_be_bytes(b.try_into().unwrap()))
        }
        fn string(&mut self) -> Option<String> {
            let n = self.i16()?.max(0) as usize;
            self.take(n).map(|b| String::from_utf8_lossy(b).into_owned())
        }
        fn uvarint(&mut self) -> Option<u64> {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let b = self.take(1)?[0];
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
                shift += 7;
            }
        }
        fn compact_string(&mut self) -> Option<String> {
            let n = self.uvarint()?.checked_sub(1)? as usize;
            self.take(n).map(|b| String::from_utf8_lossy(b).into_owned())
        }
    }
    let mut k = R(key);
    if !matches!(k.i16()?, 0 | 1) {
        return None; // group metadata, not an offset commit
    }
    let (g, t, partition) = (k.string()?, k.string()?, k.i32()?);
    if g != group || t != topic {
        return None;
    }
    let mut v = R(value);
    let version = v.i16()?;
    let offset = v.i64()?;
    if version >= 3 {
        v.i32()?; // leader epoch
    }
    let metadata = if version >= 4 { v.compact_string()? } else { v.string()? };
    Some(LoggedCommit { partition, offset, metadata })
}
