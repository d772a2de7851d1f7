//! Per-slice resume state, one JSON file per (source index, target index, slice, slice count)
//! in `--checkpoint-dir`.
//!
//! Why files rather than a small state index on the target:
//! - The target index should hold nothing but the migrated documents at cutover; a state index
//!   would be one more thing to create, secure, map and delete, and a `create-index` with
//!   wildcard templates or a restricted API key could interfere with it.
//! - A checkpoint is only an optimisation: losing it costs a rescan of the slice, never
//!   correctness (writes are externally versioned, so re-copying is idempotent). Local files are
//!   enough for that, readable with `cat`, and removable with `rm` to force a full copy.
//! - Processes that split the slices (`--slice-range`, `--worker`) own disjoint files, so no
//!   coordination is needed. The price: a slice moved to another host starts over there.
//!
//! The slice count is part of the file name: a slice of 8 is a different set of documents than
//! a slice of 4, so a changed `--slices` starts fresh rather than misreading old state.
//! Files are replaced atomically (write to a temporary file, fsync, rename), so a kill at any
//! instant leaves either the old or the new checkpoint.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why checkpoints could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system failed.
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A checkpoint file exists but cannot be used (corrupt, or written for other indices).
    #[error("checkpoint {path} is unusable ({reason}); delete it to rescan that slice")]
    Invalid { path: PathBuf, reason: String },
}

/// The resume state of one slice. Written only after every batch it covers is resolved
/// (applied, superseded or recorded as failed).
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
    /// Wall-clock time of the last update, ms since the epoch (for humans).
    pub updated_at_ms: u64,
}

/// The checkpoint files of one copy job (source, target, slice count).
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    source_index: String,
    target_index: String,
    slices: u32,
}

impl CheckpointStore {
    /// Opens (creating) the directory for a job.
    pub fn open(dir: &Path, source_index: &str, target_index: &str, slices: u32) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io { path: dir.to_path_buf(), source })?;
        Ok(CheckpointStore { dir: dir.to_path_buf(), source_index: source_index.into(), target_index: target_index.into(), slices })
    }

    /// The file of one slice.
    pub fn path(&self, slice: u32) -> PathBuf {
        self.dir.join(format!("{}__{}__slice-{slice:04}-of-{:04}.json", self.source_index, self.target_index, self.slices))
    }

    /// A fresh checkpoint for a slice never run before.
    pub fn fresh(&self, slice: u32) -> SliceCheckpoint {
        SliceCheckpoint {
            source_index: self.source_index.clone(),
            target_index: self.target_index.clone(),
            slice,
            slices: self.slices,
            resume_seq_no: 0,
            done: false,
            scanned: 0,
            written: 0,
            superseded: 0,
            failed: 0,
            runs: 0,
            updated_at_ms: 0,
        }
    }

    /// The saved checkpoint of a slice, `None` when it never ran.
    pub fn load(&self, slice: u32) -> Result<Option<SliceCheckpoint>, CheckpointError> {
        let path = self.path(slice);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        let cp: SliceCheckpoint = serde_json::from_slice(&text).map_err(|e| CheckpointError::Invalid { path: path.clone(), reason: e.to_string() })?;
        let expected = (&self.source_index, &self.target_index, slice, self.slices);
        if (&cp.source_index, &cp.target_index, cp.slice, cp.slices) != expected {
            return Err(CheckpointError::Invalid {
                path,
                reason: format!("written for {}/{} slice {} of {}", cp.source_index, cp.target_index, cp.slice, cp.slices),
            });
        }
        Ok(Some(cp))
    }

    /// Saves a checkpoint atomically.
    pub fn save(&self, cp: &mut SliceCheckpoint) -> Result<(), CheckpointError> {
        cp.updated_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let path = self.path(cp.slice);
        let tmp = path.with_extension("json.tmp");
        let io = |source| CheckpointError::Io { path: tmp.clone(), source };
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&serde_json::to_vec_pretty(cp).expect("checkpoint serializes")).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(|source| CheckpointError::Io { path: path.clone(), source })
    }

    /// [`save`](Self::save) for async callers: the write, fsync and rename run on tokio's
    /// blocking pool, never on an async worker. `cp` gets the saved `updated_at_ms`.
    pub async fn save_async(&self, cp: &mut SliceCheckpoint) -> Result<(), CheckpointError> {
        let (store, mut saved) = (self.clone(), cp.clone());
        let path = self.path(cp.slice);
        let joined = tokio::task::spawn_blocking(move || store.save(&mut saved).map(|()| saved)).await;
        *cp = joined.map_err(|e| CheckpointError::Io { path, source: std::io::Error::other(e) })??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("backfill-cp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_mismatch() {
        let d = dir("rt");
        let store = CheckpointStore::open(&d, "src", "dst", 4).unwrap();
        assert_eq!(store.load(1).unwrap(), None);
        let mut cp = store.fresh(1);
        cp.resume_seq_no = 42;
        cp.scanned = 10;
        store.save(&mut cp).unwrap();
        assert_eq!(store.load(1).unwrap(), Some(cp.clone()));
        // Another slice count is another job: its files are separate.
        let other = CheckpointStore::open(&d, "src", "dst", 8).unwrap();
        assert_eq!(other.load(1).unwrap(), None);
        // A file renamed into another job's slot is refused, not misread.
        std::fs::copy(store.path(1), store.path(2)).unwrap();
        assert!(matches!(store.load(2), Err(CheckpointError::Invalid { .. })));
        std::fs::write(store.path(3), b"{not json").unwrap();
        assert!(matches!(store.load(3), Err(CheckpointError::Invalid { .. })));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Saving from async code goes through the blocking pool; it works on a current-thread
    /// runtime too (where `block_in_place` would panic).
    #[tokio::test(flavor = "current_thread")]
    async fn saves_off_the_async_thread() {
        let d = dir("async");
        let store = CheckpointStore::open(&d, "src", "dst", 2).unwrap();
        let mut cp = store.fresh(0);
        cp.resume_seq_no = 7;
        store.save_async(&mut cp).await.unwrap();
        assert!(cp.updated_at_ms > 0, "the saved timestamp comes back");
        assert_eq!(store.load(0).unwrap(), Some(cp));
        let _ = std::fs::remove_dir_all(&d);
    }
}
