//! The failures file: one JSON line per document the backfill could not copy (rewrite error,
//! missing or invalid version, or a write the target refused as poison). Nothing is dropped
//! silently: every such document is counted, logged with its id and reason, and written here,
//! before the checkpoint that moves past it is saved.

use parking_lot::Mutex;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why a document failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// `TagRewrite::to_target` rejected the legacy document.
    Rewrite,
    /// The document has no usable legacy version.
    Version,
    /// The hit itself is malformed (no `_id`, no `_source`).
    Hit,
    /// The target refused the write (mapping or parse error).
    Rejected,
}

/// One line of the failures file.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub slice: u32,
    pub reason: String,
}

/// An append-only JSON-lines sink shared by all slices.
#[derive(Debug)]
pub struct FailureLog {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
}

impl FailureLog {
    /// Opens `path` for appending (earlier runs' lines are kept).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FailureLog { path: path.to_path_buf(), out: Mutex::new(BufWriter::new(file)) })
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs and appends failures, then flushes, so they are on disk before the caller's
    /// checkpoint moves past them.
    pub fn record(&self, failures: &[Failure]) -> std::io::Result<()> {
        if failures.is_empty() {
            return Ok(());
        }
        let mut out = self.out.lock();
        for f in failures {
            tracing::warn!(id = %f.id, kind = ?f.kind, slice = f.slice, reason = %f.reason, "document not copied");
            serde_json::to_writer(&mut *out, f).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        out.get_ref().sync_data()
    }
}
