//! "Write these operations until every one is resolved": the loop both writers use.
//!
//! Each operation ends in exactly one [`Resolved`] state. Retryable items (429, 5xx, shard not
//! ready) and whole-request failures (connection refused during an outage) are retried with
//! backoff, by default forever: an outage pauses the writer, it never drops data. Because every
//! write is externally versioned, retrying a subset out of order is safe: the highest version
//! wins whatever order the attempts land in.

use bytes::Bytes;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::bulk::{self, BulkOp, ItemClass};
use crate::{Backoff, Es, EsError};

/// How an operation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    /// Written.
    Applied,
    /// A newer version was already there (409).
    Superseded,
    /// The cluster refused the document itself; the reason is Elasticsearch's.
    Poison(String),
}

/// Retry and refresh settings of a [`BulkWriter`].
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Give up after this many retries of one batch (`None`: never give up).
    pub max_retries: Option<u32>,
    /// First backoff ceiling.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// Ask Elasticsearch to make the writes visible before answering (tests, demos).
    pub refresh: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { max_retries: None, backoff_base: Duration::from_millis(100), backoff_max: Duration::from_secs(30), refresh: false }
    }
}

/// Why a batch could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Shutdown was requested while the batch was still being retried. Nothing is lost: the
    /// caller has not recorded progress for it.
    #[error("cancelled while retrying")]
    Cancelled,
    /// A non-retryable failure of the whole request (e.g. 413, 400 on the request itself), or
    /// the retry budget ran out.
    #[error(transparent)]
    Es(#[from] EsError),
    /// The response did not match the request.
    #[error("malformed bulk response: {0}")]
    Malformed(String),
}

/// Sends externally versioned bulk writes to one cluster and resolves every item.
#[derive(Clone, Debug)]
pub struct BulkWriter {
    es: Es,
    opts: WriteOptions,
    cancel: CancellationToken,
}

impl BulkWriter {
    /// A writer that stops retrying when `cancel` fires.
    pub fn new(es: Es, opts: WriteOptions, cancel: CancellationToken) -> Self {
        BulkWriter { es, opts, cancel }
    }

    /// The cluster this writer writes to.
    pub fn es(&self) -> &Es {
        &self.es
    }

    /// Writes `ops` and returns one [`Resolved`] per op, in order.
    pub async fn write(&self, ops: &[BulkOp]) -> Result<Vec<Resolved>, WriteError> {
        let mut results: Vec<Option<Resolved>> = vec![None; ops.len()];
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        let mut backoff = Backoff::new(self.opts.backoff_base, self.opts.backoff_max);
        while !pending.is_empty() {
            match self.attempt(ops, &pending).await {
                Ok(outcomes) => {
                    let mut still = Vec::new();
                    for (&i, outcome) in pending.iter().zip(outcomes) {
                        metrics::counter!("cutover_bulk_items_total", "class" => outcome.class.as_str()).increment(1);
                        match outcome.class {
                            ItemClass::Applied => results[i] = Some(Resolved::Applied),
                            ItemClass::Superseded => results[i] = Some(Resolved::Superseded),
                            ItemClass::Poison => {
                                results[i] = Some(Resolved::Poison(outcome.reason.unwrap_or_else(|| format!("HTTP {}", outcome.status))))
                            }
                            ItemClass::Retryable => still.push(i),
                        }
                    }
                    if still.is_empty() {
                        break;
                    }
                    tracing::debug!(items = still.len(), "retrying rejected bulk items");
                    pending = still;
                }
                Err(WriteError::Es(e)) if e.is_retryable() => {
                    tracing::warn!(error = %e, attempt = backoff.attempts(), "bulk request failed; retrying");
                }
                Err(e) => return Err(e),
            }
            metrics::counter!("cutover_retries_total").increment(1);
            if let Some(max) = self.opts.max_retries {
                if backoff.attempts() >= max {
                    return Err(WriteError::Es(EsError::Status {
                        method: "POST".into(),
                        path: "/_bulk".into(),
                        status: 503,
                        body: format!("{} items still rejected after {max} retries", pending.len()),
                    }));
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancel.cancelled() => return Err(WriteError::Cancelled),
            }
        }
        Ok(results.into_iter().map(|r| r.expect("every op resolved")).collect())
    }

    async fn attempt(&self, ops: &[BulkOp], pending: &[usize]) -> Result<Vec<bulk::ItemOutcome>, WriteError> {
        let mut body = Vec::with_capacity(pending.len() * 256);
        for &i in pending {
            ops[i].encode_into(&mut body);
        }
        let started = Instant::now();
        metrics::gauge!("cutover_bulk_in_flight").increment(1.0);
        let response = self.es.bulk(Bytes::from(body), self.opts.refresh).await;
        metrics::gauge!("cutover_bulk_in_flight").decrement(1.0);
        metrics::histogram!("cutover_bulk_latency_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("cutover_bulk_batch_size").record(pending.len() as f64);
        let response = response?;
        bulk::outcomes(&response, pending.len()).map_err(WriteError::Malformed)
    }
}
