//! The pure core of cutover: the command model decoded from the Kafka topic, the legacy ->
//! target document transform (tag rewrite), the target index definition, and query
//! translation. Everything here is deterministic and free of I/O, so the backfill, the
//! replaying indexer and verify can all rely on producing identical bytes for identical input.

pub mod command;
pub mod mapping;
pub mod query;
pub mod rewrite;

pub use command::*;
pub use mapping::*;
pub use query::*;
pub use rewrite::*;
