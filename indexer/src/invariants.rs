//! Detecting violations of the convergence model's invariants that the indexer can see:
//! 1. a document's versions must increase along its partition (a command with a lower version
//!    than an earlier one of the same document is applied as superseded, which is right only
//!    if the producer's versions are right);
//! 2. all commands of a document must live in one partition (the topic is keyed by id);
//!    otherwise two lanes' orders can interleave and merges lose updates.
//!
//! Each lane remembers the last (partition, offset, version) of the documents it saw, in a
//! bounded map (cleared when full, so memory stays flat on topics with many ids), and reports a
//! violation as a warning and the counter `cutover_indexer_invariant_violations_total{kind}`.

use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};

/// A document's key: a 64-bit hash of (index, id), so an entry costs a few bytes and no
/// allocation (two documents sharing a hash could only hide or invent a warning). The indexer
/// computes it once per record, from the target index ([`crate::lanes::Item::doc`]).
pub fn doc_key(index: &str, id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (index, id).hash(&mut h);
    h.finish()
}

/// A violation seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The same document arrived on two partitions.
    Partition { previous: i32, now: i32 },
    /// A later record of the document (by offset) carries a lower version.
    VersionBackwards { previous: u64, now: u64 },
}

impl Violation {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::Partition { .. } => "partition",
            Violation::VersionBackwards { .. } => "version_backwards",
        }
    }
}

/// Remembers recent documents of one lane.
#[derive(Debug)]
pub struct Watch {
    /// Keyed by [`doc_key`], already a hash: Fx only mixes it.
    seen: FxHashMap<u64, (i32, i64, u64)>,
    capacity: usize,
}

impl Watch {
    /// A watch remembering at most `capacity` documents.
    pub fn new(capacity: usize) -> Self {
        Watch { seen: FxHashMap::with_capacity_and_hasher(capacity, Default::default()), capacity }
    }

    /// Records a command; returns the violation it reveals, if any.
    pub fn observe(&mut self, key: u64, partition: i32, offset: i64, version: u64) -> Option<Violation> {
        if self.seen.len() >= self.capacity {
            self.seen.clear();
        }
        let found = self.seen.get(&key).copied();
        let violation = match found {
            Some((p, _, _)) if p != partition => Some(Violation::Partition { previous: p, now: partition }),
            Some((_, o, v)) if offset > o && version < v => Some(Violation::VersionBackwards { previous: v, now: version }),
            _ => None,
        };
        if found.is_none_or(|(p, o, _)| p != partition || offset > o) {
            self.seen.insert(key, (partition, offset, version));
        }
        violation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_cross_partition_documents_and_backwards_versions() {
        let mut w = Watch::new(10);
        assert_eq!(w.observe(doc_key("i", "a"), 0, 1, 5), None);
        assert_eq!(w.observe(doc_key("i", "a"), 0, 2, 7), None);
        assert_eq!(w.observe(doc_key("i", "a"), 0, 3, 6), Some(Violation::VersionBackwards { previous: 7, now: 6 }));
        assert_eq!(w.observe(doc_key("i", "a"), 1, 9, 9), Some(Violation::Partition { previous: 0, now: 1 }));
        assert_eq!(w.observe(doc_key("j", "a"), 1, 9, 1), None, "same id in another index is another document");
        // A replay after a restart (lower offsets again) is not a violation.
        assert_eq!(w.observe(doc_key("i", "a"), 1, 2, 3), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut w = Watch::new(3);
        for n in 0..10 {
            w.observe(doc_key("i", &n.to_string()), 0, n, 1);
        }
        assert!(w.seen.len() <= 3);
    }
}
