//! The dead-letter topic: where records that cannot be applied go, with the reason, so nothing
//! is silently dropped and the indexer never crash-loops on bad input.
//!
//! A dead letter keeps the original key, payload and headers byte for byte, plus headers saying
//! why (`cutover.reason`, `cutover.error.kind`) and where it came from (`cutover.topic`,
//! `cutover.partition`, `cutover.offset`). The record counts as handled only once the broker
//! acknowledged the dead letter; until then the offset does not pass it.

use cluster::{GiveUp, RetryPolicy};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
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
#[derive(Clone)]
pub struct DeadLetterSink {
    producer: FutureProducer,
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
    /// A sink writing to `topic` with `producer`, retrying with the indexer's policy.
    pub fn new(producer: FutureProducer, topic: String, retry: RetryPolicy, cancel: CancellationToken) -> Self {
        DeadLetterSink { producer, topic, retry, cancel }
    }

    /// Writes one dead letter; retries until acknowledged, shutdown, or the budget runs out.
    pub async fn send(&self, dl: &DeadLetter) -> Result<(), NotWritten> {
        let mut attempts = self.retry.start("dead_letter");
        loop {
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
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => {
                    metrics::counter!(crate::lanes::RECORDS, "outcome" => "dead_lettered", "kind" => dl.kind.clone()).increment(1);
                    tracing::warn!(topic = %dl.topic, partition = dl.partition, offset = dl.offset, kind = %dl.kind, reason = %dl.reason, "dead-lettered");
                    return Ok(());
                }
                Err((e, _)) => {
                    let failure = format!("producing to {}: {e}", self.topic);
                    if let Err(why) = attempts.failed(&failure, &self.cancel).await {
                        return Err(NotWritten { topic: dl.topic.clone(), partition: dl.partition, offset: dl.offset, why });
                    }
                }
            }
        }
    }
}
