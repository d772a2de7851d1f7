//! The order a lane keeps: a document's commands never overtake each other, while batches of
//! other documents go on (records of a document with a batch in flight wait, in arrival order).

use super::{Item, LaneLimits};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;
use std::collections::VecDeque;

/// A document's identity within a lane ([`Item::doc`]). Two documents sharing a hash only
/// wait for each other, which is safe; a document never escapes its own hash.
pub(super) type DocHash = u64;

/// What a lane holds between batches: documents with a batch in flight, and the records that
/// wait for them.
#[derive(Default)]
pub(super) struct Pipeline {
    /// Documents written by a batch in flight, with how many of its commands.
    busy: FxHashMap<DocHash, u32>,
    /// Records of busy documents (or behind a held record of the same document), in arrival
    /// order: they join a batch once their document is no longer in flight.
    pub(super) held: VecDeque<Item>,
    /// Documents with a record in `held`: every later record of theirs is held too.
    waiting: FxHashMap<DocHash, u32>,
}

impl Pipeline {
    /// Where a received record goes: into the batch being collected, or held behind its
    /// document's batch in flight (or behind its own held records), keeping per-document order.
    fn admit(&mut self, item: Item, batch: &mut Batch) {
        match item.doc {
            Some(h) if self.busy.contains_key(&h) || self.waiting.contains_key(&h) => {
                *self.waiting.entry(h).or_default() += 1;
                self.held.push_back(item);
            }
            _ => batch.push(item),
        }
    }

    /// Whether another record may be admitted: the batch is not full and fewer than a batch's
    /// worth of records are held.
    pub(super) fn can_admit(&self, batch: &Batch, limits: &LaneLimits) -> bool {
        !batch.is_full(limits) && self.held.len() < limits.max_docs
    }

    /// Admits received records in order while [`Self::can_admit`]; the rest stay in `inbox`
    /// for the next batch.
    pub(super) fn admit_from(&mut self, inbox: &mut VecDeque<Item>, batch: &mut Batch, limits: &LaneLimits) {
        while self.can_admit(batch, limits) {
            let Some(item) = inbox.pop_front() else { break };
            self.admit(item, batch);
        }
    }

    /// Moves held records whose document is no longer in flight (and that no earlier held
    /// record of theirs still waits for) into `batch`.
    pub(super) fn release(&mut self, batch: &mut Batch) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        self.waiting.clear();
        for item in held {
            self.admit(item, batch);
        }
    }

    /// Marks a batch's documents in flight.
    pub(super) fn launch(&mut self, batch: &[Item]) -> Vec<DocHash> {
        let hashes: Vec<DocHash> = batch.iter().filter_map(|i| i.doc).collect();
        for h in &hashes {
            *self.busy.entry(*h).or_default() += 1;
        }
        hashes
    }

    /// A batch was answered: its documents may be written again.
    pub(super) fn landed(&mut self, hashes: Vec<DocHash>) {
        for h in hashes {
            if let Entry::Occupied(mut e) = self.busy.entry(h) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }
}

/// The records of the batch being collected, and their payload bytes.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) items: Vec<Item>,
    pub(super) bytes: usize,
}

impl Batch {
    pub(super) fn push(&mut self, item: Item) {
        self.bytes += item.raw.len();
        self.items.push(item);
    }
    pub(super) fn is_full(&self, limits: &LaneLimits) -> bool {
        self.items.len() >= limits.max_docs || self.bytes >= limits.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::record::tests::item;
    use std::time::Duration;

    fn offsets(items: &[Item]) -> Vec<i64> {
        items.iter().map(|i| i.ticket.offset).collect()
    }

    /// A document with a batch in flight is held back, and so is every later command of it,
    /// while other documents go into the next batch.
    #[test]
    fn commands_of_documents_in_flight_wait_in_order() {
        let mut pipe = Pipeline::default();
        let mut first = Batch::default();
        pipe.admit(item("a", 0), &mut first);
        pipe.admit(item("b", 1), &mut first);
        let in_flight = pipe.launch(&first.items);

        let mut next = Batch::default();
        for (id, offset) in [("a", 2), ("c", 3), ("a", 4), ("b", 5), ("d", 6)] {
            pipe.admit(item(id, offset), &mut next);
        }
        assert_eq!(offsets(&next.items), vec![3, 6], "only documents not in flight");
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![2, 4, 5]);

        // Nothing changes until the batch in flight lands.
        let mut again = Batch::default();
        pipe.release(&mut again);
        assert!(again.items.is_empty());
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![2, 4, 5]);

        pipe.landed(in_flight);
        let mut after = Batch::default();
        pipe.release(&mut after);
        assert_eq!(offsets(&after.items), vec![2, 4, 5], "released in arrival order, per document too");
        assert!(pipe.held.is_empty() && pipe.waiting.is_empty());
    }

    /// A later command of a held document stays behind it even once the document is no longer
    /// in flight, until the held one has been released into a batch.
    #[test]
    fn a_later_command_never_overtakes_a_held_one() {
        let mut pipe = Pipeline::default();
        let mut first = Batch::default();
        pipe.admit(item("a", 0), &mut first);
        let in_flight = pipe.launch(&first.items);
        let mut next = Batch::default();
        pipe.admit(item("a", 1), &mut next);
        pipe.landed(in_flight);
        // "a" is no longer in flight, but offset 1 is still held: offset 2 must wait behind it.
        pipe.admit(item("a", 2), &mut next);
        assert!(next.items.is_empty());
        pipe.release(&mut next);
        assert_eq!(offsets(&next.items), vec![1, 2]);
    }

    /// Two batches in flight holding the same document (possible only through a hash collision)
    /// keep it busy until both land.
    #[test]
    fn busy_counts_every_batch_in_flight() {
        let mut pipe = Pipeline::default();
        let one = pipe.launch(&[item("a", 0)]);
        let two = pipe.launch(&[item("a", 1)]);
        pipe.landed(one);
        let mut next = Batch::default();
        pipe.admit(item("a", 2), &mut next);
        assert!(next.items.is_empty(), "still in flight in the second batch");
        pipe.landed(two);
        pipe.release(&mut next);
        assert_eq!(offsets(&next.items), vec![2]);
    }

    /// A chunk larger than a batch fills it to the limit and leaves the rest, in order, for the
    /// next one; records of busy documents count against the held limit, not the batch.
    #[test]
    fn a_chunk_is_admitted_up_to_the_batch_limits() {
        let limits = LaneLimits { max_docs: 3, max_bytes: usize::MAX, linger: Duration::ZERO, depth: 2 };
        let mut pipe = Pipeline::default();
        let busy = pipe.launch(&[item("a", 0)]);
        let mut inbox: VecDeque<Item> = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("d", 5), ("e", 6), ("f", 7)].into_iter().map(|(id, o)| item(id, o)).collect();
        let mut batch = Batch::default();
        pipe.admit_from(&mut inbox, &mut batch, &limits);
        assert_eq!(offsets(&batch.items), vec![2, 4, 5], "full at max_docs");
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![1, 3]);
        assert_eq!(offsets(inbox.make_contiguous()), vec![6, 7], "the rest waits, in order");

        // Held records are bounded too: with a batch's worth held, nothing more is admitted.
        let mut next = Batch::default();
        inbox.push_front(item("a", 8));
        pipe.admit_from(&mut inbox, &mut next, &limits);
        assert!(next.items.is_empty());
        assert_eq!(offsets(pipe.held.make_contiguous()), vec![1, 3, 8]);
        assert_eq!(offsets(inbox.make_contiguous()), vec![6, 7]);

        pipe.landed(busy);
        pipe.release(&mut next);
        pipe.admit_from(&mut inbox, &mut next, &limits);
        assert_eq!(offsets(&next.items), vec![1, 3, 8], "released first, then the inbox, within the limit");
        assert_eq!(offsets(inbox.make_contiguous()), vec![6, 7]);
    }
}
