//! The pure core of cutover: the command model decoded from the Kafka topic, the legacy ->
//! target document transform (tag rewrite), the target index definition, and query
//! translation. Everything here is deterministic and free of I/O, so the backfill, the
//! replaying indexer and verify can all rely on producing identical bytes for identical input.

pub mod command;
pub mod mapping;
pub mod query;
mod read;
pub mod rewrite;
pub mod translate;

pub use command::*;
pub use mapping::*;
pub use query::*;
pub use rewrite::*;

/// Name of the side index where the indexer records the version of every delete it applies to
/// `target_index`. Reads never see it; the indexer uses it to tell "deleted after the legacy
/// copy" from "never existed" when a merge finds no document, and `backfill verify` uses it to
/// tell a resurrected delete from a merely extra document. Drop it after cut-over.
pub fn tombstone_index(target_index: &str) -> String {
    format!("cutover-tombstones-{target_index}")
}
