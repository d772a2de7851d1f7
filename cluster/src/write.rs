//! "Write these operations until every one is resolved": the loop both writers use.
//!
//! Each operation ends in exactly one [`Outcome`], or the batch ends in a [`WriteError`].
//! Retryable items (429, 5xx, shard not ready, write block) and whole-request failures
//! (connection refused during an outage) are retried with the [`RetryPolicy`], by default
//! forever: an outage pauses the writer, it never drops data. An item is poison only when
//! Elasticsearch says the document itself is wrong; any other refusal (missing or closed index,
//! no privilege, a missing pipeline, an error type nobody listed) fails the batch, and so does
//! a request refused as a whole (a 400 from a gateway): never reported as poison. Because every
//! write is externally versioned, retrying a subset out of order is safe: the highest version
//! wins whatever order the attempts land in.

use bytes::Bytes;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bulk::{self, BulkOp, ItemClass};
use crate::outcome::{Outcome, Poison, PoisonKind};
use crate::retry::{GiveUp, RetryPolicy};
use crate::{Class, Es, EsError};

/// Retry and refresh settings of a [`BulkWriter`].
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// How failed requests and rejected items are retried.
    pub retry: RetryPolicy,
    /// Ask Elasticsearch to make the writes visible before answering (tests, demos).
    pub refresh: bool,
}

/// Why a writer must stop: nothing is committed or checkpointed past the records concerned,
/// and they are written again after the cause is fixed. The one halt type of both writers.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Shutdown was requested while the batch was still being retried. Nothing is lost: the
    /// caller has not recorded progress for it.
    #[error("cancelled while retrying")]
    Cancelled,
    /// The whole request was refused in a way retrying cannot fix (credentials, a missing
    /// index, a 400 from something in front of the cluster, a single document larger than the
    /// path accepts).
    #[error(transparent)]
    Es(#[from] EsError),
    /// An item was refused for a reason that is not proven to be the document's (index missing
    /// or closed, no privilege, a missing ingest pipeline, a field limit, an unknown error).
    #[error("the cluster refused a write: {0}")]
    Refused(String),
    /// The retry budget (`--max-retries`) ran out.
    #[error("gave up after {attempts} retries: {last}")]
    Exhausted { attempts: u32, last: String },
    /// Records were judged bad systematically (the poison breaker, [`crate::breaker`]): the
    /// cause is almost never the records.
    #[error("{0}")]
    Systematic(crate::breaker::Tripped),
}

impl WriteError {
    /// The error of a retry loop that stopped on `why` after `last` failed.
    pub fn gave_up(why: GiveUp, last: impl std::fmt::Display) -> Self {
        match why {
            GiveUp::Cancelled => WriteError::Cancelled,
            GiveUp::Exhausted(attempts) => WriteError::Exhausted { attempts, last: last.to_string() },
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

    /// Writes `ops` and returns one [`Outcome`] per op, in order: applied, superseded, or
    /// poison when Elasticsearch said the document itself is wrong. Every other failure ends
    /// the batch with a [`WriteError`].
    pub async fn write(&self, ops: &[BulkOp<'_>]) -> Result<Vec<Outcome>, WriteError> {
        let mut results: Vec<Option<Outcome>> = vec![None; ops.len()];
        self.write_some(ops, (0..ops.len()).collect(), &mut results).await?;
        Ok(results.into_iter().map(|r| r.expect("every op resolved")).collect())
    }

    /// Writes the ops `pending` until each is resolved. A request too large for the path (413)
    /// is split in halves; a single op still too large halts (the limit is the path's: raise
    /// it). The retry budget counts consecutive attempts without progress.
    async fn write_some(&self, ops: &[BulkOp<'_>], mut pending: Vec<usize>, results: &mut [Option<Outcome>]) -> Result<(), WriteError> {
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
                            ItemClass::Applied => results[i] = Some(Outcome::Applied),
                            ItemClass::Superseded => results[i] = Some(Outcome::Superseded),
                            ItemClass::Failed(Class::Poison) => results[i] = Some(Outcome::Poison(Poison::new(PoisonKind::Mapping, reason()))),
                            ItemClass::Failed(Class::Retry) => still.push(i),
                            ItemClass::Failed(Class::Halt | Class::Split) => {
                                refused.get_or_insert_with(|| format!("{} [{}]: HTTP {}: {}", ops[i].index, ops[i].id, outcome.status, reason()));
                            }
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
                    if still.len() < pending.len() {
                        attempts.reset(); // progress: the budget counts attempts without any
                    }
                    let failure = format!("{} of {} items rejected for now", still.len(), pending.len());
                    pending = still;
                    failure
                }
                Err(Attempt::Es(e)) => match e.class() {
                    Class::Retry => e.to_string(),
                    Class::Split if pending.len() > 1 => {
                        tracing::warn!(error = %e, size = pending.len(), "bulk request too large for the path (413); splitting it");
                        let second = pending.split_off(pending.len() / 2);
                        Box::pin(self.write_some(ops, pending, results)).await?;
                        return Box::pin(self.write_some(ops, second, results)).await;
                    }
                    _ => return Err(WriteError::Es(e)),
                },
                Err(Attempt::Malformed(m)) => format!("malformed bulk response: {m}"),
            };
            attempts.failed(&failure, &self.cancel).await.map_err(|why| WriteError::gave_up(why, &failure))?;
        }
        Ok(())
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
