//! Lag per partition, measured for the readiness gate ([`crate::readiness`]).
//!
//! The lag of a partition is the broker's high watermark minus the next offset the group may
//! commit (everything before it is applied or dead-lettered). "Caught up" means every partition
//! of the topic has lag 0: the moment reads can be switched to the new cluster, unless a target
//! index still has periodic refresh turned off (the bulk-load settings of `backfill copy`,
//! until `backfill finalize`): searches there would serve stale results, so the gate stays
//! closed and says so.

use rdkafka::consumer::Consumer;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::consume::IndexerConsumer;
use crate::offsets::Tracker;
use crate::readiness::{Readiness, ReadyState};

/// The target indices the gate re-reads before it opens: while one has periodic refresh off
/// (`backfill copy`'s bulk-load settings), switching reads would serve stale results.
#[derive(Clone, Debug)]
pub struct TargetRefresh {
    pub es: cluster::Es,
    pub indices: Vec<String>,
}

impl TargetRefresh {
    /// One line per index whose refresh is off, or whose setting could not be read (the gate
    /// stays closed when it cannot tell).
    pub async fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for index in &self.indices {
            match cluster::readiness::refresh_disabled_indices(&self.es, index).await {
                Ok(off) => out.extend(off.into_iter().map(|i| {
                    format!("target index {i}: periodic refresh is off (bulk-load settings of `backfill copy`), searches serve stale data; run `backfill finalize` before switching reads")
                })),
                Err(e) => out.push(format!("cannot read index.refresh_interval of target index {index}: {e}")),
            }
        }
        out
    }
}

/// The partitions of a topic, and when they were asked of the brokers.
pub type Partitions = (Arc<[i32]>, tokio::time::Instant);

/// Measures the lag of every partition of the topic once (blocking). The topic's partitions
/// are `known` ones when given, else asked of the brokers (and returned, to be known next
/// time); beyond that, in steady state (every partition assigned here and fetched from), it
/// asks the brokers nothing.
///
/// Partitions assigned to this process count from what it has applied; the others from the
/// group's committed offsets. So "caught up" means the *group* is caught up on the whole
/// topic: a partition still held by a dead member (until its session times out) or by another
/// instance that lags keeps the gate closed.
pub fn measure(consumer: &IndexerConsumer, tracker: &Tracker, topic: &str, known: Option<Arc<[i32]>>) -> (Option<ReadyState>, Option<Partitions>) {
    let Ok(assignment) = consumer.assignment() else { return (None, None) };
    if assignment.count() == 0 {
        return (Some(ReadyState::default()), None);
    }
    let (partitions, fresh) = match known {
        Some(known) => (known, None),
        None => match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                let ids: Arc<[i32]> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
                (ids.clone(), Some((ids, tokio::time::Instant::now())))
            }
            Err(_) => return (None, None),
        },
    };
    (lag_of(consumer, tracker, topic, &partitions, &assignment), fresh)
}

/// [`measure`] once the topic's partitions are known.
fn lag_of(consumer: &IndexerConsumer, tracker: &Tracker, topic: &str, partitions: &[i32], assignment: &rdkafka::TopicPartitionList) -> Option<ReadyState> {
    let mut all = rdkafka::TopicPartitionList::new();
    for &p in partitions {
        all.add_partition(topic, p);
    }
    let processed = tracker.watermarks();
    // The group's commits matter for partitions another member holds, and for assigned ones
    // this process has received nothing from yet (e.g. taken over, already fully committed):
    // in steady state, with every partition assigned and received from, they are not read.
    let from_tracker = |p: i32| assignment.find_partition(topic, p).is_some() && processed.contains_key(&(topic.into(), p));
    let committed = if partitions.iter().all(|&p| from_tracker(p)) { None } else { Some(consumer.committed_offsets(all, Duration::from_secs(5)).ok()?) };
    let mut lag = BTreeMap::new();
    for &partition in partitions {
        let mine = assignment.find_partition(topic, partition).is_some();
        // The watermarks of a partition this assignment has fetched records from come with
        // every fetch response (cached by the client: no request, so the measure stays fast
        // while the consumer is busy); the others' are asked for (a cache from an earlier
        // assignment could be stale and open the gate early).
        let cached = if from_tracker(partition) { cached_watermarks(consumer, topic, partition) } else { None };
        let (low, high) = match cached {
            Some(w) => w,
            None => consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)).ok()?,
        };
        let from_commit = committed.as_ref().and_then(|c| crate::positions::committed_offset(c, topic, partition));
        let applied = if mine { processed.get(&(topic.into(), partition)).copied() } else { None };
        // Not raised to the log start: records deleted before they were applied are lag (a
        // gap, [`crate::positions`]), never progress.
        let position = applied.or(from_commit).unwrap_or(low);
        let l = (high - position).max(0);
        metrics::gauge!("cutover_indexer_lag", "topic" => topic.to_string(), "partition" => partition.to_string()).set(l as f64);
        lag.insert(format!("{topic}[{partition}]"), l);
    }
    let caught_up = !lag.is_empty() && lag.values().all(|&l| l == 0) && tracker.total_in_flight() == 0;
    Some(ReadyState { caught_up, lag, ..Default::default() })
}

/// The watermarks of an assigned partition as the consumer last saw them in a fetch response
/// (`rd_kafka_get_watermark_offsets`, which rust-rdkafka does not wrap): no request to the broker.
/// `None` until the first fetch of the partition has answered.
fn cached_watermarks(consumer: &IndexerConsumer, topic: &str, partition: i32) -> Option<(i64, i64)> {
    use rdkafka::bindings::{rd_kafka_get_watermark_offsets, rd_kafka_resp_err_t};
    use rdkafka::consumer::Consumer;
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `consumer`; the call reads librdkafka's cached
    // offsets under its own lock and writes only the two integers passed.
    let err = unsafe { rd_kafka_get_watermark_offsets(consumer.client().native_ptr(), topic.as_ptr(), partition, &mut low, &mut high) };
    (err == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && low >= 0 && high >= 0).then_some((low, high))
}

/// How long [`run`] reuses the topic's partition list. The list changes only when partitions
/// are added, which the consumer itself learns at its metadata refresh
/// (`topic.metadata.refresh.interval.ms`, 5 min by default); asked for at every measure, it
/// waited on the broker connection behind the consumer's long-polling fetch (up to
/// `fetch.wait.max.ms`, 500 ms by default), so the lag, the readiness gate and the idle exit
/// came that much late.
const PARTITIONS_RECHECK: Duration = Duration::from_secs(5);

/// How often a caught-up indexer re-reads its target indices' `refresh_interval`.
const SETTINGS_RECHECK: Duration = Duration::from_secs(1);

/// When the idle spell a measure found caught up began: at the last completion of records
/// (the lanes' last write), unless a measure found work after it (`busy_at`). Not when the
/// measure noticed, which comes up to a measuring interval later: `--exit-when-idle`
/// counts from the work's end.
fn idle_since(busy_at: tokio::time::Instant, completed_at: Option<std::time::Instant>) -> tokio::time::Instant {
    completed_at.map(tokio::time::Instant::from_std).map_or(busy_at, |done| done.max(busy_at))
}

/// Measures the lag every `every` until `stop`; returns how long the indexer has been caught up.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    topic: String,
    consumer: Arc<IndexerConsumer>,
    tracker: Arc<Tracker>,
    readiness: Arc<Readiness>,
    target: TargetRefresh,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
    idle_exit: Option<Duration>,
) {
    let mut caught_up_since: Option<tokio::time::Instant> = None;
    // The last measure that found work (or the start): no idle spell began before it.
    let mut busy_at = tokio::time::Instant::now();
    let mut settings_read: Option<tokio::time::Instant> = None;
    let mut partitions: Option<Partitions> = None;
    loop {
        let (c, t, name) = (consumer.clone(), tracker.clone(), topic.clone());
        let known = partitions.as_ref().filter(|(_, at)| at.elapsed() < PARTITIONS_RECHECK).map(|(p, _)| p.clone());
        let (state, fresh) = tokio::task::spawn_blocking(move || measure(&c, &t, &name, known)).await.unwrap_or((None, None));
        if fresh.is_some() {
            partitions = fresh;
        }
        if let Some(state) = state {
            // The target's settings are re-read only when the lag alone would open the gate: at
            // once when it gets there, then at most every SETTINGS_RECHECK while it stays there
            // (the lag is measured every `every`; the settings need no such rate).
            if state.caught_up && (caught_up_since.is_none() || settings_read.is_none_or(|t| t.elapsed() >= SETTINGS_RECHECK)) {
                let bulk_load = target.problems().await;
                metrics::gauge!("cutover_indexer_target_bulk_load").set(bulk_load.len() as f64);
                readiness.bulk_load(bulk_load);
                settings_read = Some(tokio::time::Instant::now());
            }
            metrics::gauge!("cutover_indexer_caught_up").set(if state.caught_up { 1.0 } else { 0.0 });
            metrics::gauge!("cutover_indexer_in_flight").set(tracker.total_in_flight() as f64);
            caught_up_since = match (state.caught_up, caught_up_since) {
                (true, None) => Some(idle_since(busy_at, tracker.completed_at())),
                (true, since) => since,
                (false, _) => {
                    busy_at = tokio::time::Instant::now();
                    None
                }
            };
            readiness.set(state);
        }
        if let (Some(limit), Some(since)) = (idle_exit, caught_up_since) {
            if since.elapsed() >= limit {
                tracing::info!("caught up and idle; exiting (--exit-when-idle)");
                stop.cancel();
                return;
            }
        }
        // While caught up, wake no later than the idle limit: the exit comes when it is due, not
        // up to a measuring interval later.
        let nap = match (idle_exit, caught_up_since) {
            (Some(limit), Some(since)) => every.min(limit.saturating_sub(since.elapsed())),
            _ => every,
        };
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// The idle spell begins at the lanes' last completion, never before a measure that found
    /// work, and at that measure when nothing was ever completed.
    #[test]
    fn idle_spells_begin_at_the_last_completion_not_when_noticed() {
        let busy = Instant::now();
        let later = busy + Duration::from_millis(180);
        assert_eq!(idle_since(busy, Some(later.into_std())), later, "completed after the last busy measure");
        assert_eq!(idle_since(later, Some(busy.into_std())), later, "a measure found work after the completion");
        assert_eq!(idle_since(busy, None), busy, "nothing completed yet");
    }
}
