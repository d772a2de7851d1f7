//! A commit whose answer comes on a queue of its own (rust-rdkafka's `commit` either blocks
//! until the answer or drops it).

use super::GroupContext;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;
use std::time::Duration;

pub struct CommitQueue(*mut rd::rd_kafka_queue_t);

// The queue is librdkafka's, reference-counted and thread-safe.
unsafe impl Send for CommitQueue {}

impl CommitQueue {
    pub fn new(consumer: &BaseConsumer<GroupContext>) -> Self {
        // SAFETY: a valid client handle; the queue is destroyed on drop.
        CommitQueue(unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) })
    }

    /// Hands the commit to librdkafka; returns at once.
    pub fn hand_over(&self, consumer: &BaseConsumer<GroupContext>, tpl: &TopicPartitionList) -> Result<(), KafkaError> {
        // SAFETY: librdkafka copies the list; the answer goes to this queue.
        let err = unsafe { rd::rd_kafka_commit_queue(consumer.client().native_ptr(), tpl.ptr(), self.0, None, std::ptr::null_mut()) };
        if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::from(err)))
        }
    }

    /// The commit's answer (the request's error, else the partition's), `None` on timeout.
    pub fn answer(&self, timeout: Duration) -> Option<Result<(), KafkaError>> {
        // SAFETY: the event is read, then destroyed; its list belongs to it.
        unsafe {
            let ev = rd::rd_kafka_queue_poll(self.0, timeout.as_millis().min(i32::MAX as u128) as i32);
            if ev.is_null() {
                return None;
            }
            let mut err = rd::rd_kafka_event_error(ev);
            let list = rd::rd_kafka_event_topic_partition_list(ev);
            if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && !list.is_null() {
                for i in 0..(*list).cnt as usize {
                    let e = (*(*list).elems.add(i)).err;
                    if e != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                        err = e;
                    }
                }
            }
            rd::rd_kafka_event_destroy(ev);
            Some(if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR { Ok(()) } else { Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::from(err))) })
        }
    }
}

impl Drop for CommitQueue {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new; a late answer keeps its own reference.
        unsafe { rd::rd_kafka_queue_destroy(self.0) }
    }
}
