//! The readiness gate: the one place that decides whether reads may switch to the new
//! cluster. Every part of the indexer that knows a reason to keep the gate closed reports it
//! here: the lag measure ([`crate::lag`]: lag per partition, and whether a target index is
//! still in bulk-load settings), the offset commits ([`crate::consume`]: the last failure), and
//! the positions ([`crate::positions`]: offset gaps). `/ready` ([`crate::http`]) serves
//! [`Readiness::snapshot`].

use parking_lot::Mutex;
use std::collections::BTreeMap;

/// The last measured lag, shared with the HTTP endpoint, and the problems an operator must see.
#[derive(Debug, Default)]
pub struct Readiness {
    inner: Mutex<ReadyState>,
    problems: Mutex<Problems>,
}

#[derive(Clone, Debug, Default)]
struct Problems {
    last_commit_failure: Option<String>,
    /// Gaps by `topic[partition]@from` (one gap found twice, at start-up and at the fetch, is
    /// one gap).
    offset_gaps: BTreeMap<String, String>,
    bulk_load: Vec<String>,
}

/// A snapshot of the lag.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReadyState {
    /// True when at least one partition is assigned, every lag is 0, and no offset gap was
    /// found (records deleted by retention before this group read them).
    pub caught_up: bool,
    /// `topic[partition]` -> lag in records.
    pub lag: BTreeMap<String, i64>,
    /// The last offset commit that failed, until one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit_failure: Option<String>,
    /// Records deleted by retention before this group applied them, found at start-up or
    /// while running ([`crate::positions`]): the gate stays closed until the operator has run
    /// `backfill copy` again and restarted the indexer (see docs/indexer.md, "Offset gaps").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offset_gaps: Vec<String>,
    /// Target indices whose `index.refresh_interval` is off (`-1`: the copy's bulk-load
    /// settings), or why it could not be read: searches would serve stale data, so the gate
    /// stays closed until `backfill finalize` restores the legacy index's settings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bulk_load: Vec<String>,
}

impl Readiness {
    /// The latest snapshot.
    pub fn snapshot(&self) -> ReadyState {
        let mut s = self.inner.lock().clone();
        let p = self.problems.lock().clone();
        s.caught_up &= p.offset_gaps.is_empty() && p.bulk_load.is_empty();
        s.last_commit_failure = p.last_commit_failure;
        s.offset_gaps = p.offset_gaps.into_values().collect();
        s.bulk_load = p.bulk_load;
        s
    }

    /// The latest lag measure ([`crate::lag`]).
    pub fn set(&self, s: ReadyState) {
        *self.inner.lock() = s;
    }

    /// An offset commit failed.
    pub fn commit_failed(&self, why: String) {
        self.problems.lock().last_commit_failure = Some(why);
    }

    /// An offset commit succeeded.
    pub fn commit_succeeded(&self) {
        self.problems.lock().last_commit_failure = None;
    }

    /// Records an offset gap under `key` (the first description of a key is kept); returns
    /// how many gaps are known.
    pub fn offset_gap(&self, key: String, what: String) -> usize {
        let mut problems = self.problems.lock();
        problems.offset_gaps.entry(key).or_insert(what);
        problems.offset_gaps.len()
    }

    /// Records the target indices still in bulk-load settings (empty: none).
    pub fn bulk_load(&self, problems: Vec<String>) {
        self.problems.lock().bulk_load = problems;
    }
}
