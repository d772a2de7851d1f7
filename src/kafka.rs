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
    let consumer: BaseConsumer = config(brokers).set("group.id", group).set("enable.auto.commit", "false").create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    // A broker that just started (or moved the group's coordinator) answers NotCoordinator or
    // CoordinatorLoadInProgress for a while: ask again, as a real client would.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(got) => break got,
            Err(e) if std::time::Instant::now() < deadline && is_coordinator_transient(&e) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => panic!("committed offsets: {e}"),
        }
    };
    (0..partitions).map(|p| got.find_partition(topic, p).map(|e| e.offset().to_raw().unwrap_or(-1001)).unwrap_or(-1001)).collect()
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
