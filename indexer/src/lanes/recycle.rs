//! Applied batches go back to the consumer's thread to be freed, and their emptied buffers come
//! back to the lanes (why: [`Spent`]).

use super::Item;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most emptied batch buffers kept for the lanes (more than the batches in flight at once).
const KEPT_BUFFERS: usize = 16;

/// Applied batches on their way back to the consumer's thread, and their emptied buffers on
/// their way back to the lanes.
///
/// A record's buffers (its bytes, its decoded command) are allocated on the consumer's thread,
/// where it is read and decoded. mimalloc frees a block fastest on the thread that allocated
/// it: a free from another thread goes through an atomic list that the owner collects later,
/// and dropping the records in the lanes cost about 6% of the indexer's CPU that way. And a
/// batch's buffer (thousands of records) allocated anew for each batch is fresh pages, each
/// faulted in and cleared by the kernel as the batch fills (another 2%). So lanes hand applied
/// batches to [`Recycler`], which frees their records on the consumer's thread and keeps the
/// emptied buffers for the lanes' next batches. The records' fate is settled before (their
/// tickets are completed or they stay uncommitted): dropping them later changes nothing else.
#[derive(Clone)]
pub struct Spent {
    back: mpsc::UnboundedSender<Vec<Item>>,
    buffers: Arc<Mutex<Vec<Vec<Item>>>>,
}

/// The consumer's end of [`Spent`].
pub struct Recycler {
    spent: mpsc::UnboundedReceiver<Vec<Item>>,
    buffers: Arc<Mutex<Vec<Vec<Item>>>>,
}

/// A connected [`Spent`] (for the lanes) and [`Recycler`] (for the consumer's thread).
pub fn recycling() -> (Spent, Recycler) {
    let (back, spent) = mpsc::unbounded_channel();
    let buffers = Arc::new(Mutex::new(Vec::new()));
    (Spent { back, buffers: buffers.clone() }, Recycler { spent, buffers })
}

impl Spent {
    /// Hands an applied batch back (dropped here once the consumer's thread is gone).
    pub(super) fn give(&self, batch: Vec<Item>) {
        let _ = self.back.send(batch);
    }

    /// An empty buffer for a batch of about `capacity` records: an emptied one when there is one.
    pub(super) fn buffer(&self, capacity: usize) -> Vec<Item> {
        let kept = self.buffers.lock().pop();
        let mut buffer = kept.unwrap_or_default();
        buffer.reserve(capacity);
        buffer
    }
}

impl Recycler {
    /// Frees the records of every batch handed back so far (call it on the consumer's thread).
    pub fn free(&mut self) {
        while let Ok(batch) = self.spent.try_recv() {
            self.keep(batch);
        }
    }

    /// The next batch handed back (for a `select!`; pass it to [`Self::keep`]). Pending
    /// forever once every lane is gone.
    pub async fn next(&mut self) -> Vec<Item> {
        match self.spent.recv().await {
            Some(batch) => batch,
            None => std::future::pending().await,
        }
    }

    /// Frees a batch's records here and keeps its buffer for a lane.
    pub fn keep(&self, mut batch: Vec<Item>) {
        batch.clear();
        let mut buffers = self.buffers.lock();
        if buffers.len() < KEPT_BUFFERS {
            buffers.push(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::record::tests::item;

    /// An applied batch's records are freed where the recycler runs (the consumer's thread),
    /// not by the lane that gave it back, and its emptied buffer is the next batch's; a lane
    /// whose consumer is gone drops the batch itself; the pool keeps a bounded number.
    #[test]
    fn applied_batches_are_freed_by_the_recycler_and_their_buffers_reused() {
        let (spent, mut recycler) = recycling();
        let batch = vec![item("a", 0), item("b", 1)];
        let buffer = batch.as_ptr();
        let topic = batch[0].ticket.tp.0.clone();
        let lane = std::thread::spawn(move || {
            spent.give(batch);
            spent
        });
        let spent = lane.join().unwrap();
        assert_eq!(Arc::strong_count(&topic), 2, "the lane's thread has not dropped the records");
        let fresh = spent.buffer(2);
        assert!(fresh.as_ptr() != buffer, "nothing is kept before the recycler ran");
        recycler.free();
        assert_eq!(Arc::strong_count(&topic), 1, "the recycler's thread dropped the records");
        let reused = spent.buffer(2);
        assert_eq!((reused.as_ptr(), reused.len()), (buffer, 0), "the emptied buffer comes back");
        assert!(reused.capacity() >= 2);

        for _ in 0..KEPT_BUFFERS + 4 {
            spent.give(Vec::with_capacity(1));
        }
        recycler.free();
        assert_eq!(recycler.buffers.lock().len(), KEPT_BUFFERS);
        drop(recycler);
        spent.give(vec![item("c", 2)]);
    }
}
