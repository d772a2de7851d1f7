//! The process runtime both binaries share: what `main` sets up before any work starts, and the
//! command-line conventions both follow. Nothing here talks to a cluster or a broker.
//!
//! - [`alloc`]: the memory allocator (mimalloc, tuned for the writers' load).
//! - [`logging`]: `tracing` to stderr, text or JSON lines.
//! - [`panic`]: a panic on any thread ends the process (exit 101).
//! - [`telemetry`]: the Prometheus recorder and every metric's HELP text.
//! - [`duration`]: the one syntax of every duration flag (`humantime`: `50ms`, `30s`, `5m`).
//! - [`kafka_props`]: the librdkafka properties a user gives (`--kafka-config`, `-X`), and the
//!   refusals both binaries share (secrets only in the file).

pub mod alloc;
pub mod duration;
#[cfg(test)]
mod in_child;
pub mod kafka_props;
pub mod logging;
pub mod panic;
pub mod telemetry;

pub use logging::{init_logging, LogFormat};
