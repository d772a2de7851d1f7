//! The dead-letter topic: where records that cannot be applied go, with the reason, so nothing
//! is silently dropped and the indexer never crash-loops on bad input.
//!
//! A dead letter keeps the original key, payload and headers byte for byte, plus headers saying
//! why (`cutover.reason`, `cutover.error.kind`) and where it came from (`cutover.topic`,
//! `cutover.partition`, `cutover.offset`). The record counts as handled only once the broker
//! acknowledged the dead letter; until then the offset does not pass it.

use cluster::{GiveUp, RetryError, RetryPolicy};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// A record to dead-letter: its bytes and why.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Short machine-readable kind, e.g. `invalid_json` or `mapping`.
    pub kind: String,
    /// Human-readable reason.
    pub reason: String,
}

/// Produces dead letters, retrying until the broker acknowledges them.
///
/// The producer is made when the first dead letter is written, not before: most runs write
/// none, and an idle rdkafka `FutureProducer` is not free (its polling thread waits in
/// 100 ms polls and spins through the last millisecond of each, because a remaining time
/// under 1 ms is passed to librdkafka as 0 ms: about 1% of a core, all the time). Its
/// properties are checked when the sink is made, so a mistake in them still stops the indexer
/// at start.
#[derive(Clone)]
pub struct DeadLetterSink {
    config: ClientConfig,
    producer: Arc<OnceCell<FutureProducer>>,
    topic: String,
    retry: RetryPolicy,
    cancel: CancellationToken,
}

/// The dead letter could not be written (shutdown, or the retry budget ran out).
#[derive(Debug, thiserror::Error)]
#[error("dead letter for {topic}[{partition}]@{offset} not written: {why}")]
pub struct NotWritten {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub why: GiveUp,
}

impl DeadLetterSink {
    /// A sink writing to `topic` through `brokers` with the user's librdkafka properties
    /// (those only a consumer takes left out), retrying with the indexer's policy. Makes a
    /// producer once and drops it, so librdkafka checks the properties now.
    pub fn new(brokers: &str, props: &[(String, String)], topic: String, retry: RetryPolicy, cancel: CancellationToken) -> KafkaResult<Self> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers).set("acks", "all").set("enable.idempotence", "true");
        for (k, v) in props {
            // Consumer-only properties would make the producer refuse to start.
            if !is_consumer_only(k) {
                config.set(k, v);
            }
        }
        drop(config.create::<BaseProducer>()?);
        Ok(DeadLetterSink { config, producer: Arc::default(), topic, retry, cancel })
    }

    /// Writes one dead letter; retries until acknowledged, shutdown, or the budget runs out.
    pub async fn send(&self, dl: &DeadLetter) -> Result<(), NotWritten> {
        // Every failure to produce may pass (a broker away, a leader moving): all are retried.
        self.retry.run("dead_letter", &self.cancel, |_| true, || self.send_once(dl)).await.map_err(|e| match e {
            RetryError::GaveUp { why, .. } => NotWritten { topic: dl.topic.clone(), partition: dl.partition, offset: dl.offset, why },
            RetryError::Failed(_) => unreachable!("every failure is retried"),
        })
    }

    /// One attempt at writing a dead letter.
    async fn send_once(&self, dl: &DeadLetter) -> Result<(), String> {
        let partition = dl.partition.to_string();
        let offset = dl.offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(dl.headers.len() + 5);
        for (k, v) in &dl.headers {
            headers = headers.insert(Header { key: k, value: v.as_deref() });
        }
        headers = headers
            .insert(Header { key: "cutover.reason", value: Some(dl.reason.as_bytes()) })
            .insert(Header { key: "cutover.error.kind", value: Some(dl.kind.as_bytes()) })
            .insert(Header { key: "cutover.topic", value: Some(dl.topic.as_bytes()) })
            .insert(Header { key: "cutover.partition", value: Some(partition.as_bytes()) })
            .insert(Header { key: "cutover.offset", value: Some(offset.as_bytes()) });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if let Some(k) = &dl.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &dl.payload {
            record = record.payload(p.as_slice());
        }
        let producer = self
            .producer
            .get_or_try_init(|| async { self.config.create::<FutureProducer>() })
            .await
            .map_err(|e| format!("making the dead-letter producer: {e}"))?;
        producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| format!("producing to {}: {e}", self.topic))?;
        tracing::warn!(topic = %dl.topic, partition = dl.partition, offset = dl.offset, kind = %dl.kind, reason = %dl.reason, "dead-lettered");
        Ok(())
    }
}

fn is_consumer_only(key: &str) -> bool {
    key.starts_with("fetch.")
        || key.starts_with("auto.")
        || key.starts_with("group.")
        || key.starts_with("session.")
        || key.starts_with("max.poll")
        || key.starts_with("queued.")
        || key.starts_with("enable.auto")
        || key == "isolation.level"
        || key.starts_with("partition.assignment")
        || key.starts_with("heartbeat.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(props: &[(&str, &str)]) -> KafkaResult<DeadLetterSink> {
        let props: Vec<(String, String)> = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DeadLetterSink::new("127.0.0.1:1", &props, "dead".into(), RetryPolicy::default(), CancellationToken::new())
    }

    #[test]
    fn a_wrong_property_is_refused_when_the_sink_is_made() {
        let err = sink(&[("no.such.property", "1")]).err().expect("an unknown property must be refused at start");
        assert!(err.to_string().contains("no.such.property"), "{err}");
    }

    #[test]
    fn consumer_properties_are_left_out_and_no_producer_runs_until_a_dead_letter() {
        let sink = sink(&[("group.id", "g"), ("auto.offset.reset", "earliest"), ("client.id", "c")]).expect("consumer-only properties are dropped");
        assert!(sink.producer.get().is_none(), "the producer is made on the first dead letter, not before");
        assert_eq!(sink.config.get("client.id"), Some("c"));
        assert_eq!(sink.config.get("group.id"), None);
        assert_eq!(sink.config.get("acks"), Some("all"));
    }
}
