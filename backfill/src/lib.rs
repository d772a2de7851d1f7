//! The backfill: copies what the command topic no longer holds from the legacy cluster into
//! the target cluster, in the target schema, and proves the result.
//!
//! The replaying indexer can only rebuild documents whose commands are still in the topic;
//! everything older lives only in the legacy cluster. The backfill reads that cluster (a
//! point-in-time view per slice), rewrites every document with the same pure transform the
//! indexer uses ([`schema::TagRewrite::to_target`]) and writes it with the legacy version as an
//! external version, so backfill and replay commute: whichever lands last, the higher version
//! wins (see docs/convergence.md).
//!
//! Modules, by concern:
//! - [`index`]: `create-index` (target definition from the legacy index, idempotent) and the
//!   readiness check every writer runs before it writes.
//! - [`bulkload`]: bulk-load settings on the target during the copy, and `finalize`, which
//!   restores the legacy index's before reads are switched.
//! - [`scan`]: sliced, resumable reads of the legacy index (PIT + `search_after`, or sliced
//!   scroll), with context-loss detection and recovery.
//! - [`job`]: the copy job in Kafka: the consumer group that assigns slices to workers, the
//!   checkpoints in its committed offsets (fenced by the group generation), `status`.
//! - [`checkpoint`]: a slice's resume state and its encoding.
//! - [`mod@copy`]: the copy pipeline (scan -> rewrite -> bulk write -> checkpoint).
//! - [`failures`]: the JSON-lines file of documents that could not be copied.
//! - [`rate`]: the optional docs/s limit.
//! - [`progress`]: counters, the progress bar or log lines, the end-of-run summary.
//! - [`metrics`]: the Prometheus exporter and metric names.
//! - [`mod@verify`]: the exact comparison of both sides and the query parity suite.
//! - [`mod@parity`]: the team's captured searches, translated and compared on both clusters.
//! - [`check`]: `cutover-check`, the go/no-go answer before reads switch.
//! - [`cli`]: the clap command line, turned into the typed configs above.

pub mod bulkload;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod copy;
pub mod failures;
pub mod index;
pub mod job;
pub mod metrics;
pub mod parity;
pub mod progress;
pub mod rate;
pub mod scan;
pub mod verify;

pub use bulkload::{finalize, BulkLoadError, FinalizeConfig, Finalized};
pub use checkpoint::{CheckpointError, SliceCheckpoint};
pub use copy::{copy, CopyConfig, CopyError};
pub use index::{check_readiness, create_index, create_index_with, CreateIndexConfig, CreateIndexReport, CreateOutcome, IndexError, TagMatching};
pub use job::{JobConfig, KafkaConfig};
pub use progress::{ProgressMode, Summary};
pub use scan::ScanMethodChoice;
#[cfg(feature = "test-hooks")]
pub use scan::{ScanEvent, ScanHook};
pub use verify::{verify, VerifyConfig, VerifyError, VerifyReport};
