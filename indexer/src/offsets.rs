//! Contiguous offset tracking: the offset stored for a partition never passes a record that is
//! not yet applied or dead-lettered.
//!
//! Records of one partition are spread over several lanes (by document id) and finish out of
//! order. Each partition keeps the set of offsets still in flight; the offset that may be
//! stored is the smallest one in flight, or one past the last received when none is. This is
//! rust-rdkafka's `at_least_once` pattern generalised to out-of-order completion.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A (topic, partition) pair. The topic is shared: every record's ticket names it.
pub type Tp = (Arc<str>, i32);

#[derive(Debug, Default)]
struct Partition {
    in_flight: InFlight,
    /// Of those, how many the consumer still holds (received, not yet handed to a lane).
    queued: usize,
    /// One past the highest offset received.
    next: i64,
    /// The last offset handed to `store_offsets` (to skip unchanged ones).
    stored: i64,
    /// Bumped on every assignment so completions from an earlier assignment are ignored.
    generation: u64,
    /// The consumer's position when the partition was assigned, before anything was fetched:
    /// possibly left from an earlier assignment, so never a reason to skip (see `skip_to`).
    position_at_assign: Option<i64>,
}

impl Partition {
    fn watermark(&self) -> i64 {
        self.in_flight.first().unwrap_or(self.next)
    }
}

/// The offsets of a partition still in flight: an ordered set, kept as a deque in offset order
/// because records arrive in offset order (a push at the back) and the lowest is what matters.
/// A completed record is only marked; marks leave from the front, so the front is always in
/// flight. An offset arriving out of order (not expected from one consumer) is still placed.
#[derive(Debug, Default)]
struct InFlight {
    /// (offset, still in flight), ascending by offset; the front, if any, is in flight.
    entries: VecDeque<(i64, bool)>,
    len: usize,
}

impl InFlight {
    fn insert(&mut self, offset: i64) {
        match self.entries.back() {
            Some(&(last, _)) if last >= offset => match self.entries.binary_search_by_key(&offset, |e| e.0) {
                Ok(i) if self.entries[i].1 => return,
                Ok(i) => self.entries[i].1 = true,
                Err(i) => self.entries.insert(i, (offset, true)),
            },
            _ => self.entries.push_back((offset, true)),
        }
        self.len += 1;
    }

    fn remove(&mut self, offset: i64) {
        let Ok(i) = self.entries.binary_search_by_key(&offset, |e| e.0) else { return };
        if !std::mem::replace(&mut self.entries[i].1, false) {
            return;
        }
        self.len -= 1;
        while self.entries.front().is_some_and(|e| !e.1) {
            self.entries.pop_front();
        }
    }

    fn first(&self) -> Option<i64> {
        self.entries.front().map(|e| e.0)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.len = 0;
    }
}

/// Shared by the consumer (which registers records) and the lanes (which complete them).
#[derive(Debug, Default)]
pub struct Tracker {
    parts: Mutex<rustc_hash::FxHashMap<Tp, Partition>>,
    /// A lane stopped (halted or cancelled) with records it will never complete.
    abandoned: AtomicBool,
    /// When records were last completed: where an idle spell after them began
    /// ([`crate::lag::idle_since`]).
    completed_at: Mutex<Option<Instant>>,
    /// When the first record was received: where the work [`Tracker::activity`] reports began.
    first_received_at: OnceLock<Instant>,
    /// Records completed (written, superseded or dead-lettered), in any assignment.
    completed: AtomicU64,
}

/// What a run has done so far ([`Tracker::activity`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activity {
    /// Records completed: written, superseded or dead-lettered.
    pub records: u64,
    /// From the first record received to the last completed (idle spells between included: on
    /// a replay from zero, the working time); None before any completion.
    pub span: Option<Duration>,
}

impl Activity {
    /// Records completed per second of [`span`](Self::span) (None before any completion).
    pub fn rate(&self) -> Option<f64> {
        self.span.filter(|b| !b.is_zero()).map(|b| self.records as f64 / b.as_secs_f64())
    }
}

/// A handle proving a record was registered in a given assignment generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub tp: Tp,
    pub offset: i64,
    pub generation: u64,
}

impl Tracker {
    /// Starts (or restarts) tracking partitions after an assignment.
    pub fn assign(&self, tps: &[Tp]) {
        let mut parts = self.parts.lock();
        for tp in tps {
            let p = parts.entry(tp.clone()).or_default();
            let generation = p.generation + 1;
            *p = Partition { generation, next: -1, stored: -1, ..Default::default() };
        }
    }

    /// Remembers the consumer's position of a partition at assignment (before any fetch of
    /// this assignment): a position left from an earlier assignment of the same partition must
    /// not move it past records that were dropped at the revoke.
    pub fn position_at_assign(&self, tp: &Tp, position: i64) {
        if let Some(p) = self.parts.lock().get_mut(tp) {
            p.position_at_assign = Some(position);
        }
    }

    /// Stops tracking partitions after a revoke.
    pub fn revoke(&self, tps: &[Tp]) {
        let mut parts = self.parts.lock();
        for tp in tps {
            if let Some(p) = parts.get_mut(tp) {
                p.in_flight.clear();
                p.queued = 0;
                p.generation += 1;
                p.next = -1;
            }
        }
    }

    /// Registers a received record; it must be completed before the offset can pass it.
    pub fn receive(&self, topic: &str, partition: i32, offset: i64) -> Ticket {
        self.first_received_at.get_or_init(Instant::now);
        let mut parts = self.parts.lock();
        // The topic's name as the tracker already holds it (no allocation per record).
        let topic = parts.keys().find(|(t, _)| &**t == topic).map_or_else(|| topic.into(), |(t, _)| t.clone());
        let tp = (topic, partition);
        let p = parts.entry(tp.clone()).or_default();
        p.in_flight.insert(offset);
        p.queued += 1;
        p.next = p.next.max(offset + 1);
        Ticket { tp, offset, generation: p.generation }
    }

    /// Marks a record handed to a lane. Returns false when its partition was revoked meanwhile:
    /// the record must then be dropped (the next owner reads it again).
    pub fn dispatch(&self, t: &Ticket) -> bool {
        let mut parts = self.parts.lock();
        match parts.get_mut(&t.tp) {
            Some(p) if p.generation == t.generation => {
                p.queued = p.queued.saturating_sub(1);
                true
            }
            _ => false,
        }
    }

    /// Records of the given partitions that lanes are still working on (a revoke waits for
    /// these; the ones the consumer still holds are dropped instead). None once a lane
    /// abandoned its records ([`Tracker::abandon_lanes`]): waiting for them would be in vain.
    pub fn in_lanes(&self, tps: &[Tp]) -> usize {
        if self.abandoned.load(Ordering::SeqCst) {
            return 0;
        }
        let parts = self.parts.lock();
        tps.iter().filter_map(|tp| parts.get(tp)).map(|p| p.in_flight.len().saturating_sub(p.queued)).sum()
    }

    /// Says a lane stopped (a halt, or writes cancelled at shutdown) with records it will
    /// never complete. They stay in flight, so no offset passes them (they are applied again
    /// after a restart), but revokes stop waiting for lanes.
    pub fn abandon_lanes(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Marks a record applied or dead-lettered. A ticket from an earlier assignment is ignored.
    pub fn complete(&self, t: &Ticket) {
        self.complete_all([t]);
    }

    /// [`Tracker::complete`] of many records, under one lock.
    pub fn complete_all<'t>(&self, tickets: impl IntoIterator<Item = &'t Ticket>) {
        let mut parts = self.parts.lock();
        let mut n = 0;
        for t in tickets {
            n += 1;
            if let Some(p) = parts.get_mut(&t.tp) {
                if p.generation == t.generation {
                    p.in_flight.remove(t.offset);
                }
            }
        }
        drop(parts);
        self.completed.fetch_add(n, Ordering::Relaxed);
        *self.completed_at.lock() = Some(Instant::now());
    }

    /// When records were last completed (None before the first).
    pub fn completed_at(&self) -> Option<Instant> {
        *self.completed_at.lock()
    }

    /// Records completed so far, and the time from the first record received to the last
    /// completed: on a replay, the indexer's working time, start-up and the idle wait before
    /// an exit left out (its summary at a clean stop; `dev/bench.sh` reads its rate there).
    pub fn activity(&self) -> Activity {
        let span = match (self.first_received_at.get(), self.completed_at()) {
            (Some(&first), Some(last)) => Some(last.saturating_duration_since(first)),
            _ => None,
        };
        Activity { records: self.completed.load(Ordering::Relaxed), span }
    }

    /// Moves a partition past offsets the consumer will never deliver: the consumer's position
    /// is `position` and every record delivered so far is complete. Records are registered as
    /// soon as they are delivered, so with nothing in flight the offsets between the last one
    /// received and the position hold no record: transaction markers (a transactional producer
    /// writes one per transaction), aborted transactions' records, compacted-away records.
    /// Without this the stored offset and the lag would stop one short of the end forever.
    /// Only the consume loop may call it, through `consume::skip_markers` (see there why never
    /// from a rebalance callback or at shutdown).
    pub fn skip_to(&self, tp: &Tp, position: i64) {
        let mut parts = self.parts.lock();
        if let Some(p) = parts.get_mut(tp) {
            let stale = p.next < 0 && p.position_at_assign == Some(position);
            if !stale && p.in_flight.is_empty() && position > p.next {
                p.next = position;
            }
        }
    }

    /// One past the highest offset received from `tp` in its current assignment (None before
    /// the first record of the assignment): where the consumer's application position is.
    pub fn next_received(&self, tp: &Tp) -> Option<i64> {
        self.parts.lock().get(tp).map(|p| p.next).filter(|&n| n >= 0)
    }

    /// Offsets that advanced since the last call: `(tp, next offset to consume)`.
    pub fn take_advanced(&self) -> Vec<(Tp, i64)> {
        let mut parts = self.parts.lock();
        let mut out = Vec::new();
        for (tp, p) in parts.iter_mut() {
            let w = p.watermark();
            if w >= 0 && w > p.stored {
                p.stored = w;
                out.push((tp.clone(), w));
            }
        }
        out
    }

    /// Records still in flight on the given partitions.
    pub fn in_flight(&self, tps: &[Tp]) -> usize {
        let parts = self.parts.lock();
        tps.iter().filter_map(|tp| parts.get(tp)).map(|p| p.in_flight.len()).sum()
    }

    /// Records in flight on all partitions.
    pub fn total_in_flight(&self) -> usize {
        let parts = self.parts.lock();
        parts.values().map(|p| p.in_flight.len()).sum()
    }

    /// The next offset to consume that is safe to commit, per partition (for lag).
    pub fn watermarks(&self) -> HashMap<Tp, i64> {
        let parts = self.parts.lock();
        parts.iter().filter(|(_, p)| p.next >= 0).map(|(tp, p)| (tp.clone(), p.watermark())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The deque answers as an ordered set would, whatever the order of inserts and removals.
        #[test]
        fn in_flight_is_an_ordered_set(ops in proptest::collection::vec((any::<bool>(), 0i64..40), 0..200)) {
            let (mut fast, mut model) = (InFlight::default(), std::collections::BTreeSet::new());
            for (insert, offset) in ops {
                if insert {
                    fast.insert(offset);
                    model.insert(offset);
                } else {
                    fast.remove(offset);
                    model.remove(&offset);
                }
                prop_assert_eq!(fast.first(), model.first().copied());
                prop_assert_eq!(fast.len(), model.len());
                prop_assert_eq!(fast.is_empty(), model.is_empty());
            }
        }
    }

    fn tp() -> Tp {
        ("t".into(), 0)
    }

    #[test]
    fn never_passes_an_unfinished_record() {
        let t = Tracker::default();
        t.assign(&[tp()]);
        let a = t.receive("t", 0, 10);
        let b = t.receive("t", 0, 11);
        let c = t.receive("t", 0, 12);
        t.complete(&c);
        t.complete(&b);
        assert_eq!(t.take_advanced(), vec![(tp(), 10)]);
        t.complete(&a);
        assert_eq!(t.take_advanced(), vec![(tp(), 13)]);
        assert!(t.take_advanced().is_empty(), "unchanged offsets are not stored twice");
    }

    #[test]
    fn skips_offsets_without_records_only_when_idle() {
        let t = Tracker::default();
        t.assign(&[tp()]);
        let a = t.receive("t", 0, 10);
        t.skip_to(&tp(), 12); // a commit marker at 11, but record 10 is not applied yet
        assert_eq!(t.take_advanced(), vec![(tp(), 10)]);
        t.complete(&a);
        assert_eq!(t.take_advanced(), vec![(tp(), 11)]);
        t.skip_to(&tp(), 12);
        assert_eq!(t.take_advanced(), vec![(tp(), 12)], "past the marker once idle");
        t.skip_to(&tp(), 5);
        assert!(t.take_advanced().is_empty(), "never backwards");
        t.skip_to(&("u".into(), 3), 7);
        t.revoke(&[tp()]);
        t.assign(&[tp()]);
        t.position_at_assign(&tp(), 12);
        t.skip_to(&tp(), 12);
        assert!(t.take_advanced().is_empty(), "a position from the earlier assignment moves nothing");
        t.skip_to(&tp(), 13);
        assert_eq!(t.take_advanced(), vec![(tp(), 13)], "a fresh position does");
        assert!(!t.watermarks().contains_key(&("u".into(), 3)), "unassigned partitions are not tracked");
    }

    #[test]
    fn revoke_waits_only_for_records_in_lanes() {
        let t = Tracker::default();
        t.assign(&[tp()]);
        let a = t.receive("t", 0, 1);
        let b = t.receive("t", 0, 2);
        assert_eq!(t.in_lanes(&[tp()]), 0, "both still held by the consumer");
        assert!(t.dispatch(&a));
        assert_eq!(t.in_lanes(&[tp()]), 1);
        t.revoke(&[tp()]);
        assert!(!t.dispatch(&b), "a record of a revoked partition is dropped, not dispatched");
    }

    #[test]
    fn abandoned_records_are_not_waited_for_and_hold_the_offset() {
        let t = Tracker::default();
        t.assign(&[tp()]);
        let (a, b) = (t.receive("t", 0, 1), t.receive("t", 0, 2));
        assert!(t.dispatch(&a) && t.dispatch(&b));
        t.complete(&b);
        assert_eq!(t.in_lanes(&[tp()]), 1);
        t.abandon_lanes();
        assert_eq!(t.in_lanes(&[tp()]), 0, "a revoke does not wait for a halted lane's records");
        assert_eq!(t.in_flight(&[tp()]), 1, "they are still in flight");
        assert_eq!(t.take_advanced(), vec![(tp(), 1)], "and no offset passes them");
    }

    #[test]
    fn stale_tickets_are_ignored_after_reassignment() {
        let t = Tracker::default();
        t.assign(&[tp()]);
        let old = t.receive("t", 0, 5);
        t.revoke(&[tp()]);
        t.assign(&[tp()]);
        let new = t.receive("t", 0, 5);
        t.complete(&old);
        assert_eq!(t.in_flight(&[tp()]), 1);
        t.complete(&new);
        assert_eq!(t.in_flight(&[tp()]), 0);
        assert_eq!(t.take_advanced(), vec![(tp(), 6)]);
    }

    #[test]
    fn the_tracker_remembers_when_records_were_last_completed() {
        let tracker = Tracker::default();
        assert_eq!(tracker.completed_at(), None);
        tracker.assign(&[("t".into(), 0)]);
        let ticket = tracker.receive("t", 0, 7);
        assert_eq!(tracker.completed_at(), None, "receiving is not completing");
        let before = std::time::Instant::now();
        tracker.complete(&ticket);
        let done = tracker.completed_at().expect("completed");
        assert!(done >= before && done <= std::time::Instant::now());
    }

    /// The working time runs from the first record received (later receives do not move it)
    /// to the last completion, and every completed record counts, a revoked assignment's too.
    #[test]
    fn activity_spans_first_receive_to_last_completion() {
        let tracker = Tracker::default();
        assert_eq!(tracker.activity(), Activity { records: 0, span: None });
        tracker.assign(&[("t".into(), 0)]);
        let before = Instant::now();
        let first = tracker.receive("t", 0, 1);
        std::thread::sleep(Duration::from_millis(30));
        let second = tracker.receive("t", 0, 2);
        assert_eq!(tracker.activity(), Activity { records: 0, span: None }, "nothing completed yet");
        tracker.complete(&first);
        tracker.assign(&[("t".into(), 0)]); // revoked and assigned again: `second` is stale
        std::thread::sleep(Duration::from_millis(20));
        tracker.complete(&second);
        let after = Instant::now();
        let done = tracker.activity();
        assert_eq!(done.records, 2);
        let span = done.span.expect("span");
        assert!(span >= Duration::from_millis(50), "from the first receive, not the second: {span:?}");
        assert!(span <= after - before);
        assert!(done.rate().expect("rate") > 0.0);
    }
}
