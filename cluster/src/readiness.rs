//! The one readiness check of both writers: the target index must exist, be one concrete index
//! (an alias is resolved the same way for both binaries: it must name exactly one index), and
//! pass [`schema::readiness_problems`] (tag field mapping, `index.gc_deletes`). Each binary
//! turns a [`NotReady`] into its own error type and wording.

use serde_json::Value;

use crate::{Es, EsError};

/// Why a target index may not be written.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The cluster failed, or the name is an alias over several indices.
    #[error(transparent)]
    Es(#[from] EsError),
    /// No such index (or alias).
    #[error("target index `{0}` does not exist")]
    Missing(String),
    /// The index exists but would not converge; one line per problem.
    #[error("target index `{index}` is not ready: {}", problems.join("; "))]
    Unfit { index: String, problems: Vec<String> },
}

/// Reads the target index and checks it; returns its definition (`{settings, mappings,
/// aliases}`) for the caller's own further checks.
pub async fn check_target(es: &Es, index: &str, tags: &schema::TagRewrite, min_gc_deletes_ms: u64) -> Result<Value, NotReady> {
    let actual = es.get_index(index).await?.ok_or_else(|| NotReady::Missing(index.to_string()))?;
    let problems = schema::readiness_problems(&actual, tags, min_gc_deletes_ms);
    if problems.is_empty() {
        Ok(actual)
    } else {
        Err(NotReady::Unfit { index: index.to_string(), problems })
    }
}
