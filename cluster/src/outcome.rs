//! How one record (indexer) or document (backfill) ended: the one outcome type from the
//! cluster's answer to the committed offsets and the saved checkpoints.
//!
//! A record or document ends in exactly one [`Outcome`]; when it cannot end in one (the cluster
//! or the path to it must be fixed, shutdown came, the poison breaker tripped) the writer stops
//! with a [`crate::WriteError`] and commits or checkpoints nothing past it. Only an
//! [`Outcome::Poison`] lets a position pass a record that was not written, and only on positive
//! evidence that the record itself is wrong ([`PoisonKind`]).

use schema::DecodeErrorKind;
use std::fmt;

/// How one record or document ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Written to the target.
    Applied,
    /// A newer (or equal) version was already there (409).
    Superseded,
    /// Nothing to write (a merge of a document that exists nowhere, under `--merge-absent
    /// ignore`).
    NoOp,
    /// Proven wrong: dead-lettered (indexer) or listed in the failures file (backfill).
    Poison(Poison),
}

/// The one `outcome` label vocabulary of every metric that counts records, documents or bulk
/// items: `applied`, `superseded`, `noop`, `poison` for how one ended ([`Outcome::label`]), and
/// the classes of a failure not (yet) an outcome, `retry`, `halt`, `split`
/// ([`crate::Class::as_str`]).
impl Outcome {
    pub const APPLIED: &'static str = "applied";
    pub const SUPERSEDED: &'static str = "superseded";
    pub const NOOP: &'static str = "noop";
    pub const POISON: &'static str = "poison";

    /// This outcome's `outcome` label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied => Self::APPLIED,
            Outcome::Superseded => Self::SUPERSEDED,
            Outcome::NoOp => Self::NOOP,
            Outcome::Poison(_) => Self::POISON,
        }
    }
}

/// Why a record is wrong, and the evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Poison {
    pub kind: PoisonKind,
    /// The evidence: the decoder's, the rewrite's or Elasticsearch's own words.
    pub reason: String,
}

impl Poison {
    pub fn new(kind: PoisonKind, reason: impl Into<String>) -> Self {
        Poison { kind, reason: reason.into() }
    }
}

impl fmt::Display for Poison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.reason)
    }
}

/// The kinds of evidence that make a record poison. Nothing else does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoisonKind {
    /// The record does not decode into a command.
    Decode(DecodeErrorKind),
    /// The document cannot be rewritten into the target schema (or its version stored).
    Rewrite,
    /// Elasticsearch refused the document's content ([`crate::error::DOCUMENT_ERRORS`]).
    Mapping,
    /// The command names an index this indexer has no target for (writing it would
    /// auto-create an index with a dynamic mapping).
    UnknownIndex,
    /// A legacy document without a usable version (backfill).
    Version,
    /// A malformed hit: no `_id`, no object `_source` (backfill).
    Hit,
}

impl PoisonKind {
    /// The name carried by dead letters (`cutover.error.kind`), metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            PoisonKind::Decode(k) => k.as_str(),
            PoisonKind::Rewrite => "rewrite",
            PoisonKind::Mapping => "mapping",
            PoisonKind::UnknownIndex => "unknown_index",
            PoisonKind::Version => "version",
            PoisonKind::Hit => "hit",
        }
    }
}
