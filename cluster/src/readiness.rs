//! The one readiness check of both writers: the target index must exist, be one concrete index
//! (an alias is resolved the same way for both binaries: it must name exactly one index), pass
//! [`schema::readiness_problems`] (tag field mapping, `index.gc_deletes`, no async translog),
//! and every ingest pipeline its settings name (`index.default_pipeline`,
//! `index.final_pipeline`) must exist on the cluster: Elasticsearch creates an index naming a
//! pipeline it lacks, then refuses every write to it. Each binary turns a [`NotReady`] into its
//! own error type and wording.

use serde_json::Value;

use crate::client::enc;
use crate::{Es, EsError, Method};

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
    let mut problems = schema::readiness_problems(&actual, tags, min_gc_deletes_ms);
    problems.extend(missing_pipelines(es, index, &actual).await?);
    if problems.is_empty() {
        Ok(actual)
    } else {
        Err(NotReady::Unfit { index: index.to_string(), problems })
    }
}

/// One line per pipeline that the index's settings name and the cluster lacks.
async fn missing_pipelines(es: &Es, index: &str, actual: &Value) -> Result<Vec<String>, EsError> {
    let settings = actual.get("settings").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for dep in schema::cluster_dependencies(&settings) {
        let schema::ClusterDependency::Pipeline { key, id } = dep else { continue };
        if get_pipeline(es, &id).await?.is_none() {
            problems.push(format!(
                "{key} names ingest pipeline `{id}`, which this cluster does not have: Elasticsearch would refuse every write to the index; create the pipeline here (`backfill create-index --copy-pipelines` copies it from the legacy cluster) or remove the setting (PUT /{index}/_settings {{\"{key}\": null}}) (see docs/legacy-settings.md)"
            ));
        }
    }
    Ok(problems)
}

/// `GET /_ingest/pipeline/<id>`: the pipeline's definition as the cluster reports it, `None`
/// when it has no pipeline of that id (404).
pub async fn get_pipeline(es: &Es, id: &str) -> Result<Option<Value>, EsError> {
    let path = format!("/_ingest/pipeline/{}", enc(id));
    let (status, mut body) = es.request(Method::Get, &path, None).await?;
    match status {
        404 => Ok(None),
        200..=299 => Ok(body.get_mut(id).map(Value::take)),
        _ => Err(EsError::status_of("GET", &path, status, &body)),
    }
}

/// `index.refresh_interval` during a bulk load (`backfill copy` sets it; `backfill finalize`
/// restores the legacy index's value).
pub const BULK_LOAD_REFRESH_INTERVAL: &str = "-1";

/// True when a `refresh_interval` value turns periodic refresh off (`-1`, or any negative time
/// value): searches then see only what the last explicit refresh made visible.
pub fn refresh_disabled(value: &str) -> bool {
    value.trim().starts_with('-')
}

/// The indices behind `index` (an alias may name several) whose `index.refresh_interval`
/// turns periodic refresh off, each as `name (index.refresh_interval: -1)`. Empty when every
/// index refreshes periodically (an unset value is the 1 s default).
pub async fn refresh_disabled_indices(es: &Es, index: &str) -> Result<Vec<String>, EsError> {
    let body = es.get(&format!("/{}/_settings/index.refresh_interval?flat_settings=true", crate::client::enc(index))).await?;
    let mut out = Vec::new();
    for (name, v) in body.as_object().into_iter().flatten() {
        if let Some(value) = v.pointer("/settings/index.refresh_interval").and_then(Value::as_str).filter(|r| refresh_disabled(r)) {
            out.push(format!("{name} (index.refresh_interval: {value})"));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_refresh_intervals_are_disabled() {
        assert!(refresh_disabled(BULK_LOAD_REFRESH_INTERVAL));
        assert!(refresh_disabled("-1ms"));
        assert!(!refresh_disabled("1s"));
        assert!(!refresh_disabled("30s"));
    }
}
