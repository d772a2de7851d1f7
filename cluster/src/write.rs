//! "Write these operations until every one is resolved": the loop both writers use.
//!
//! Each operation ends in exactly one [`Resolved`] state, or the batch ends in a [`WriteError`].
//! Retryable items (429, 5xx, shard not ready, write block) and whole-request failures
//! (connection refused during an outage) are retried with the [`RetryPolicy`], by default
//! forever: an outage pauses the writer, it never drops data. An item the cluster refuses for a
//! reason of its own (missing or closed index, no privilege) fails the batch: it is never
//! reported as poison. Because every
//! write is externally versioned, retrying a subset out of order is safe: the highest version
//! wins whatever order the attempts land in.

use bytes::Bytes;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bulk::{self, BulkOp, ItemClass};
use crate::retry::{GiveUp, RetryPolicy};
use crate::{Class, Es, EsError};

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
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// How failed requests and rejected items are retried.
    pub retry: RetryPolicy,
    /// Ask Elasticsearch to make the writes visible before answering (tests, demos).
    pub refresh: bool,
}

/// Why a batch could not be resolved. Every variant but `Split` means: stop, commit nothing
/// past this batch; the records are applied again after the cause is fixed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Shutdown was requested while the batch was still being retried. Nothing is lost: the
    /// caller has not recorded progress for it.
    #[error("cancelled while retrying")]
    Cancelled,
    /// The whole request was refused in a way retrying cannot fix: its [`EsError::class`] says
    /// whether to halt (credentials, missing index) or split (413, a 400 on the request).
    #[error(transparent)]
    Es(#[from] EsError),
    /// An item was refused because the cluster is misconfigured for it (index missing or
    /// closed, no privilege): not the record's fault.
    #[error("the cluster refused a write: {0}")]
    Refused(String),
    /// The retry budget (`--max-retries`) ran out.
    #[error("gave up after {attempts} retries: {last}")]
    Exhausted { attempts: u32, last: String },
}

impl WriteError {
    /// What the caller should do: [`Class::Split`] only for a request a smaller one can fix;
    /// everything else halts (a cancel is a halt that the caller asked for).
    pub fn class(&self) -> Class {
        match self {
            WriteError::Es(e) if e.class() == Class::Split => Class::Split,
            _ => Class::Halt,
        }
    }
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

    /// The retry policy this writer was built with (other loops of the same binary use it too).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.opts.retry
    }

    /// Writes `ops` and returns one [`Resolved`] per op, in order.
    pub async fn write(&self, ops: &[BulkOp<'_>]) -> Result<Vec<Resolved>, WriteError> {
        let mut results: Vec<Option<Resolved>> = vec![None; ops.len()];
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        let mut attempts = self.opts.retry.start("bulk");
        while !pending.is_empty() {
            let failure: String = match self.attempt(ops, &pending).await {
                Ok(outcomes) => {
                    let mut still = Vec::new();
                    let mut refused = None;
                    let mut per_class: Vec<(ItemClass, u64)> = Vec::with_capacity(2);
                    for (&i, outcome) in pending.iter().zip(outcomes) {
                        match per_class.iter_mut().find(|(c, _)| *c == outcome.class) {
                            Some((_, n)) => *n += 1,
                            None => per_class.push((outcome.class, 1)),
                        }
                        let reason = || outcome.reason.clone().unwrap_or_else(|| format!("HTTP {}", outcome.status));
                        match outcome.class {
                            ItemClass::Applied => results[i] = Some(Resolved::Applied),
                            ItemClass::Superseded => results[i] = Some(Resolved::Superseded),
                            ItemClass::Poison => results[i] = Some(Resolved::Poison(reason())),
                            ItemClass::Halt => refused = Some(format!("{} [{}]: {}", ops[i].index, ops[i].id, reason())),
                            ItemClass::Retryable => still.push(i),
                        }
                    }
                    for (class, n) in per_class {
                        metrics::counter!("cutover_bulk_items_total", "outcome" => class.as_str()).increment(n);
                    }
                    if let Some(reason) = refused {
                        return Err(WriteError::Refused(reason));
                    }
                    if still.is_empty() {
                        break;
                    }
                    let failure = format!("{} of {} items rejected for now", still.len(), pending.len());
                    pending = still;
                    failure
                }
                Err(Attempt::Es(e)) if !e.is_retryable() => return Err(WriteError::Es(e)),
                Err(Attempt::Es(e)) => e.to_string(),
                Err(Attempt::Malformed(m)) => format!("malformed bulk response: {m}"),
            };
            attempts.failed(&failure, &self.cancel).await.map_err(|why| match why {
                GiveUp::Cancelled => WriteError::Cancelled,
                GiveUp::Exhausted(n) => WriteError::Exhausted { attempts: n, last: failure.clone() },
            })?;
        }
        Ok(results.into_iter().map(|r| r.expect("every op resolved")).collect())
    }

    async fn attempt(&self, ops: &[BulkOp<'_>], pending: &[usize]) -> Result<Vec<bulk::ItemOutcome>, Attempt> {
        let body = bulk::encode_some(ops, pending.iter().copied());
        let started = Instant::now();
        metrics::gauge!("cutover_bulk_in_flight").increment(1.0);
        let response = self.es.bulk_response(Bytes::from(body), self.opts.refresh).await;
        metrics::gauge!("cutover_bulk_in_flight").decrement(1.0);
        metrics::histogram!("cutover_bulk_latency_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("cutover_bulk_batch_size").record(pending.len() as f64);
        let response = response.map_err(Attempt::Es)?;
        bulk::outcomes(&response, pending.len()).map_err(Attempt::Malformed)
    }
}

/// How one attempt failed as a whole.
enum Attempt {
    Es(EsError),
    /// The response did not match the request (retried: nothing can be concluded from it).
    Malformed(String),
}
