//! A slice's resume state, and its encoding.
//!
//! Checkpoints are kept in Kafka, as the metadata of the job group's committed offset of the
//! slice's partition ([`crate::job`]): a worker on any host resumes a slice from there, and a
//! worker that lost a slice cannot overwrite its new owner's progress. This module is the data
//! and its encoding only (compact JSON: the broker keeps up to `offset.metadata.max.bytes`,
//! 4096 by default, and a checkpoint takes about 250 bytes plus the two index names).
//!
//! A checkpoint is saved only after every batch it covers is resolved (applied, superseded or
//! recorded as failed), so it never claims a batch still in flight; re-copying what a lost
//! checkpoint covered is safe (writes are externally versioned), only slower.

use serde::{Deserialize, Serialize};

/// Why a checkpoint could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Kafka could not store or return it (after retries).
    #[error("checkpoint store: {0}")]
    Store(String),
    /// A stored checkpoint cannot be used (written for another job).
    #[error("checkpoint of slice {slice} is unusable ({reason}); start the job under another --job name to copy again from scratch")]
    Invalid { slice: u32, reason: String },
    /// The slice belongs to another worker now: this worker's checkpoint was refused.
    #[error("slice {slice} moved to another worker: its checkpoint from this worker was refused")]
    Lost { slice: u32 },
}

/// The resume state of one slice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceCheckpoint {
    pub source_index: String,
    pub target_index: String,
    pub slice: u32,
    pub slices: u32,
    /// The slice resumes reading at `_seq_no >= resume_seq_no` (see `scan` for why this skips
    /// nothing).
    pub resume_seq_no: u64,
    /// The slice was read to its end: later runs skip it.
    pub done: bool,
    /// Totals over every run that contributed to this checkpoint.
    pub scanned: u64,
    pub written: u64,
    pub superseded: u64,
    pub failed: u64,
    /// How many runs have worked on this slice.
    pub runs: u32,
    /// How many times it was saved (also the committed offset that carries it).
    #[serde(default)]
    pub saves: u64,
    /// The worker that saved it.
    #[serde(default)]
    pub worker: String,
    /// Wall-clock time of the last update, ms since the epoch.
    pub updated_at_ms: u64,
}

impl SliceCheckpoint {
    /// The state of a slice never run before.
    pub fn fresh(source_index: &str, target_index: &str, slice: u32, slices: u32) -> Self {
        SliceCheckpoint {
            source_index: source_index.into(),
            target_index: target_index.into(),
            slice,
            slices,
            resume_seq_no: 0,
            done: false,
            scanned: 0,
            written: 0,
            superseded: 0,
            failed: 0,
            runs: 0,
            saves: 0,
            worker: String::new(),
            updated_at_ms: 0,
        }
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint serializes")
    }

    /// Reads the stored form.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_small() {
        let mut cp = SliceCheckpoint::fresh("legacy-index", "target-index", 3, 12);
        cp.resume_seq_no = u64::MAX;
        cp.scanned = u64::MAX;
        cp.worker = "host.example.com:123456".into();
        let text = cp.encode();
        assert_eq!(SliceCheckpoint::decode(&text).unwrap(), cp);
        assert!(text.len() < 400, "{} bytes: well under offset.metadata.max.bytes", text.len());
        assert!(SliceCheckpoint::decode("{not json").is_err());
    }
}
