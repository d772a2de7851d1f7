//! The wire to Elasticsearch, shared by `indexer` and `backfill`.
//!
//! Both writers must treat a bulk response the same way (the convergence model depends on it:
//! a 409 is *superseded*, a 429 or 5xx is retried, a mapping error is poison), so the client,
//! the bulk encoder, the per-item classification and the retry loop live here once.
//!
//! - [`config`]: how to reach a cluster (URL, basic auth, API key, CA file), as clap arguments.
//! - [`error`]: Elasticsearch's errors parsed once, and the one classification of every
//!   failure (retry, halt, split, poison on proof only).
//! - [`outcome`]: how a record or document ended: the one outcome type of both writers.
//! - [`breaker`]: the poison breaker (a systematic stream of "bad" records is a fault).
//! - [`client`]: a thin client over `elasticsearch`'s transport with typed errors.
//! - [`bulk`]: the NDJSON encoder for external-versioned index/delete actions and the
//!   per-item classification of a `_bulk` response.
//! - [`retry`]: the one retry driver (backoff with jitter, budget, cancellation) of every remote call.
//! - [`mod@write`]: "write these operations until every one is resolved", the loop both writers use.
//! - [`version`]: which Elasticsearch (or OpenSearch) answers.
//! - [`scroll`]: a full scroll over a small or quiet index.
//! - [`readiness`]: whether a target index may be written (both writers' start-up check).

pub mod breaker;
pub mod bulk;
pub mod client;
pub mod config;
pub mod error;
pub mod outcome;
pub mod readiness;
pub mod retry;
pub mod scroll;
pub mod version;
pub mod write;

pub use breaker::Breaker;
pub use bulk::{BulkOp, BulkOpKind, ItemClass, ItemOutcome};
pub use client::{Es, EsError};
pub use config::ClusterConfig;
/// The HTTP method of [`Es::request`] (re-exported so callers need no `elasticsearch` dependency).
pub use elasticsearch::http::Method;
pub use error::{Class, ErrorCause};
pub use outcome::{Outcome, Poison, PoisonKind};
pub use retry::{GiveUp, RetryError, RetryPolicy};
pub use version::ServerVersion;
pub use write::{BulkWriter, WriteError, WriteOptions};
