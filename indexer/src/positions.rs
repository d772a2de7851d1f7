//! Where each partition is read from, decided by the indexer and never by the client library.
//!
//! The consumer runs with `auto.offset.reset=error`, so librdkafka never moves a position by
//! itself: a position it cannot fetch (retention deleted the records before this group read
//! them) stops that partition and surfaces as an `AutoOffsetReset` error instead of a silent
//! jump to the log start. The indexer then decides here:
//!
//! - a partition this group never committed starts at the log start ([`start_at_log_start`]
//!   at assignment, [`recover`] as a fallback): the replay from offset zero, not a gap;
//! - a partition whose next record was deleted is a **gap**: logged as an error with the
//!   partition and the lost range, counted in `cutover_indexer_offset_gaps`, kept in `/ready`
//!   (the gate stays closed), and the partition **stops there**: nothing after the gap is
//!   applied or committed. Going on would apply later merges onto bases that miss the lost
//!   commands, and a later backfill could not repair them (their versions are already the
//!   newest). The operator's remedy: run `backfill copy` again (it covers the lost records
//!   because it runs after they were applied to the legacy cluster), then restart the indexer
//!   with `--accept-offset-gaps`, which goes on from the log start; the next restarts need no
//!   flag (the committed offsets are past the gap by then).
//!
//! A gap found at start-up (the committed offset is older than the log start: [`startup_gaps`])
//! is handled the same way. Offsets skipped by compaction or taken by transaction markers are
//! not gaps: the fetch goes on past them without an error (see [`crate::offsets::Tracker::skip_to`]).

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

use crate::offsets::{Tp, Tracker};
use crate::readiness::Readiness;

/// How long a broker request made here may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The metric of gaps found (start-up and running) and not yet acted on (a restart clears it).
pub const OFFSET_GAPS: &str = "cutover_indexer_offset_gaps";

/// At assignment (in the rebalance callback, before librdkafka starts fetching): partitions this
/// group has no committed offset for are positioned at the log start explicitly, so that under
/// `auto.offset.reset=error` the replay from zero needs no reset. Partitions with a committed
/// offset are left to it. When the committed offsets cannot be read, nothing is set: the
/// fetch then reports the missing offset and [`recover`] positions the partition.
pub fn start_at_log_start<C: ConsumerContext>(consumer: &BaseConsumer<C>, assignment: &TopicPartitionList) {
    let committed = match consumer.committed_offsets(assignment.clone(), TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "reading committed offsets at assignment; positions are checked at the first fetch instead");
            return;
        }
    };
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Invalid) {
            set_offset(assignment, e.topic(), e.partition(), Offset::Beginning);
        }
    }
}

/// Sets the start offset of one partition of the assignment librdkafka is about to apply. The
/// rebalance callback hands the list by shared reference; its C memory is librdkafka's and
/// is only read after the callback returns.
fn set_offset(tpl: &TopicPartitionList, topic: &str, partition: i32, offset: Offset) {
    let (Ok(topic), Some(raw)) = (std::ffi::CString::new(topic), offset.to_raw()) else { return };
    // SAFETY: `tpl.ptr()` is a valid list for the callback's duration; the call writes one
    // element's offset field in place (no reallocation: the partition is already listed).
    unsafe {
        rdkafka::bindings::rd_kafka_topic_partition_list_set_offset(tpl.ptr(), topic.as_ptr(), partition, raw);
    }
}

/// The group's committed offset of a partition in an answer of `committed_offsets` (None when
/// the group never committed one).
pub fn committed_offset(committed: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// What [`recover`] found for one assigned partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// Readable from where it is: nothing to do.
    Fine,
    /// Never committed and nothing received: start at the log start (not a gap).
    Fresh,
    /// The records `from..to` were deleted before this group applied them: a gap; go on at `to`.
    Gap { from: i64, to: i64 },
}

/// Decides one partition's case from the next offset it needs (None: never committed, nothing
/// received) and the log start.
pub fn judge(next: Option<i64>, log_start: i64) -> Position {
    match next {
        None => Position::Fresh,
        Some(n) if n < log_start => Position::Gap { from: n, to: log_start },
        Some(_) => Position::Fine,
    }
}

/// After an `AutoOffsetReset` error: finds the assigned partitions whose position cannot be
/// fetched (librdkafka stopped them); starts new ones at the log start; reports every gap and
/// leaves its partition stopped, unless the operator said the gaps are covered (`accept_gaps`:
/// a backfill ran after them), in which case the partition goes on from the log start.
///
/// The records before the error were delivered (and received by the tracker) before it, so a
/// partition's next offset is the tracker's, or the committed one when nothing was received in
/// this assignment. A stopped partition can only be restarted by an assignment (a seek is
/// refused in that state), so when one must go on, the whole assignment is applied again with
/// an explicit offset for every partition: where each one's next record is (records fetched
/// but not yet delivered are fetched again; nothing is skipped), the log start for the ones
/// that go on past a gap or start fresh; a gap left stopped stays out of it. Blocking broker
/// requests: call it from the consume loop's thread only (`paused`: the loop holds the
/// assignment paused, which the new assignment keeps).
pub fn recover<C: ConsumerContext>(consumer: &impl Consumer<C>, tracker: &Tracker, readiness: &Readiness, accept_gaps: bool, paused: bool) -> KafkaResult<()> {
    let assignment = consumer.assignment()?;
    let committed = consumer.committed_offsets(assignment.clone(), TIMEOUT)?;
    let mut next_assignment = TopicPartitionList::new();
    let mut restart = false;
    for e in assignment.elements() {
        let tp: Tp = (e.topic().into(), e.partition());
        let next = tracker.next_received(&tp).or(committed_offset(&committed, e.topic(), e.partition()));
        let (low, _) = consumer.fetch_watermarks(e.topic(), e.partition(), TIMEOUT)?;
        let offset = match judge(next, low) {
            Position::Fine => Offset::Offset(next.expect("a fine position is known")),
            Position::Fresh => {
                tracing::info!(topic = %e.topic(), partition = e.partition(), log_start = low, "no committed offset: starting at the log start");
                restart = true;
                Offset::Beginning
            }
            Position::Gap { from, to } => {
                let what = format!(
                    "{}[{}]: next offset {from} < log start {to}: {} records deleted by retention before this group applied them (offsets {from}..{to})",
                    e.topic(),
                    e.partition(),
                    to - from
                );
                if !accept_gaps {
                    report_gap(readiness, &tp, from, what);
                    continue; // the partition stays stopped at the gap
                }
                accept_gap(&what);
                restart = true;
                // At the log start as it was measured: if retention moved on meanwhile, the
                // fetch fails again and the further loss is dealt with the same way.
                Offset::Offset(to)
            }
        };
        next_assignment.add_partition_offset(e.topic(), e.partition(), offset)?;
    }
    if restart {
        consumer.assign(&next_assignment)?;
        if paused {
            consumer.pause(&next_assignment)?;
        }
    }
    Ok(())
}

/// Says a gap loudly: error log naming the remedy, metric, `/ready` closed with it.
pub fn report_gap(readiness: &Readiness, tp: &Tp, from: i64, what: String) {
    tracing::error!(gap = %what, "offset gap: records were deleted by retention before this consumer group applied them; the partition stops here and /ready stays closed. Run `backfill copy` again now (it covers them because it runs after the gap), then restart the indexer with --accept-offset-gaps");
    let gaps = readiness.offset_gap(format!("{}[{}]@{from}", tp.0, tp.1), what);
    metrics::gauge!(OFFSET_GAPS).set(gaps as f64);
}

/// A gap the operator said a later backfill covers (`--accept-offset-gaps`): the partition goes
/// on from the log start, logged and counted.
pub fn accept_gap(what: &str) {
    tracing::warn!(gap = %what, "offset gap accepted (--accept-offset-gaps: a `backfill copy` ran after it); going on from the log start");
    metrics::counter!("cutover_indexer_offset_gaps_accepted_total").increment(1);
}

/// Before joining the group: partitions of `topic` whose group-committed offset lies before the
/// log start offset: the records in between were deleted (retention) while this group was
/// stopped. Blocking calls.
pub fn startup_gaps<C: ConsumerContext>(consumer: &impl Consumer<C>, topic: &str) -> KafkaResult<Vec<(Tp, i64, String)>> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let mut all = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            all.add_partition(topic, p.id());
        }
    }
    let committed = consumer.committed_offsets(all, TIMEOUT)?;
    let mut gaps = Vec::new();
    for e in committed.elements() {
        let Offset::Offset(c) = e.offset() else { continue }; // never committed: starts at the log start
        let (low, _) = consumer.fetch_watermarks(topic, e.partition(), TIMEOUT)?;
        if let Position::Gap { from, to } = judge(Some(c), low) {
            let what =
                format!("{topic}[{}]: committed offset {from} < log start {to}: {} records deleted before this group applied them", e.partition(), to - from);
            gaps.push(((topic.into(), e.partition()), from, what));
        }
    }
    Ok(gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_next_record_is_a_gap_and_a_new_partition_is_not() {
        assert_eq!(judge(None, 500), Position::Fresh);
        assert_eq!(judge(Some(400), 800), Position::Gap { from: 400, to: 800 });
        assert_eq!(judge(Some(800), 800), Position::Fine);
        assert_eq!(judge(Some(900), 800), Position::Fine);
        assert_eq!(judge(Some(0), 0), Position::Fine);
    }

    #[test]
    fn gaps_close_the_gate_once_each() {
        let readiness = Readiness::default();
        let tp: Tp = ("t".into(), 0);
        report_gap(&readiness, &tp, 400, "t[0]: committed offset 400 < log start 800".into());
        report_gap(&readiness, &tp, 400, "t[0]: next offset 400 < log start 800".into());
        assert_eq!(readiness.snapshot().offset_gaps.len(), 1, "the same gap found at start-up and at the fetch counts once");
        report_gap(&readiness, &tp, 800, "t[0]: next offset 800 < log start 900".into());
        assert_eq!(readiness.snapshot().offset_gaps.len(), 2);
    }
}
