//! The command model: what one record of the Kafka command topic asks for, how it is decoded
//! from a raw record, and how a merge applies to both document forms.
//!
//! Every command carries a per-document version (see [`VersionSource`]); full writes and
//! deletes use it as an external version, merges are read-merge-write at that version.

mod decode;
mod envelope;
mod error;
mod fields;
mod merge;
mod version;

pub use decode::{decode, DecodeConfig, Decoder, NullValuePolicy, RawRecord, DEFAULT_MAX_BYTES, MAX_ID_BYTES};
pub use envelope::Envelope;
pub use error::{DecodeError, DecodeErrorKind};
pub use version::{
    legacy_version, legacy_version_of_text, store_version, version_field_problem, LegacyVersionError, LegacyVersionSource, SourceParseError, VersionSource,
};

use serde_json::{Map, Value};

/// One decoded command: which document, at which version, and what to do with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// Document id (from the body, else the record key).
    pub id: String,
    /// Index the document lives in, as the record names it (the LEGACY index: merge bases
    /// are read from it in the legacy cluster).
    pub index: String,
    /// The index the document is written to: [`index`](Self::index) mapped once, when the
    /// record is decoded, by [`DecodeConfig::target_index`] (`--index-map`). Everything after
    /// decoding uses this name; nothing maps again.
    pub target_index: String,
    /// Per-document version, increasing with each change; at most `i64::MAX` (Elasticsearch's
    /// external version range).
    pub version: u64,
    /// Custom routing, when the legacy index used one (must be carried across or the document
    /// lands on another shard, or a join field rejects it).
    pub routing: Option<String>,
    /// The operation.
    pub op: Op,
}

/// What a command does to its document.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Replace the whole document with this `_source`, already in TARGET form and encoded:
    /// decoding validates the legacy document by rewriting it ([`crate::TagRewrite::transcode`])
    /// and keeps the result, so the rewrite and the encoding run once per upsert.
    Upsert(crate::rewrite::EncodedDoc),
    /// Partially update the document (read-merge-write). Boxed: unboxed, the patch would make
    /// every command 72 bytes larger, and the indexer moves each one several times on its way
    /// to a batch.
    Merge(Box<MergePatch>),
    /// Delete the document (leaving a versioned tombstone).
    Delete,
}

/// A partial update. Applied in the order set, unset, tags_remove, tags_add, in both forms,
/// such that `rewrite(apply_legacy(d)) == apply_target(rewrite(d))` for every legacy `d` the
/// rewrite accepts (property-tested).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MergePatch {
    /// Top-level fields to set (replacing).
    pub set: Map<String, Value>,
    /// Top-level fields to remove.
    pub unset: Vec<String>,
    /// Tag keys to set, replacing all values of the key (same flattening as the rewrite; a
    /// null value removes the key).
    pub tags_add: Map<String, Value>,
    /// Tag keys to remove.
    pub tags_remove: Vec<String>,
}
