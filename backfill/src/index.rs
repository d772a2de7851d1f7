//! The target index: `create-index` and the readiness check.
//!
//! The target definition is derived from the legacy index by [`schema::target_definition`]
//! (the tag rewrite's mapping, `index.gc_deletes` raised for the migration window). Creation is
//! idempotent so that every deployment script and every restarted worker can run it: an index
//! with the same definition is a no-op, a different one is an error naming each difference
//! (an index silently created by dynamic mapping would explode exactly like the legacy one).

use cluster::client::enc;
use cluster::readiness::NotReady;
use cluster::{Es, EsError};
use schema::{TagRewrite, TargetDefinitionConfig};
use serde_json::{Map, Value};
use std::time::Duration;

/// Why the target index could not be created or is not fit to be written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The cluster failed or answered unexpectedly.
    #[error(transparent)]
    Es(#[from] EsError),
    /// The legacy index does not exist.
    #[error("legacy index `{0}` does not exist")]
    SourceMissing(String),
    /// The target index does not exist (run `backfill create-index` first).
    #[error("target index `{0}` does not exist; create it with `backfill create-index` (it must carry the rewritten mapping and a raised index.gc_deletes)")]
    TargetMissing(String),
    /// The schema crate could not derive a target definition from the legacy index.
    #[error("cannot derive the target definition from `{index}`: {reason}")]
    Definition { index: String, reason: String },
    /// The target index exists with another definition.
    #[error("target index `{index}` already exists with a different definition:\n  - {}", differences.join("\n  - "))]
    DefinitionMismatch { index: String, differences: Vec<String> },
    /// The target index is not safe to write (mapping of the tag field, gc_deletes too low...).
    #[error("target index `{index}` is not ready for the migration writers:\n  - {}", problems.join("\n  - "))]
    NotReady { index: String, problems: Vec<String> },
}

/// What `create-index` needs besides the two clusters.
#[derive(Clone, Debug)]
pub struct CreateIndexConfig {
    /// The legacy index (or an alias resolving to exactly one index).
    pub source_index: String,
    /// The target index to create.
    pub target_index: String,
    /// Where tags live in both forms.
    pub tags: TagRewrite,
    /// `index.gc_deletes` for the target while both writers run (how long delete tombstones
    /// are remembered: must outlive the migration, see convergence invariant 4).
    pub gc_deletes: String,
    /// Further index settings (e.g. `index.number_of_replicas`), applied over the derived ones.
    pub extra_settings: Map<String, Value>,
}

/// What `create-index` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The index was created.
    Created,
    /// An index with the same definition already existed: nothing was done.
    AlreadyExists,
}

/// Creates the target index from the legacy index's definition, idempotently.
pub async fn create_index(legacy: &Es, target: &Es, cfg: &CreateIndexConfig) -> Result<CreateOutcome, IndexError> {
    let legacy_index = legacy.get_index(&cfg.source_index).await?.ok_or_else(|| IndexError::SourceMissing(cfg.source_index.clone()))?;
    let def_cfg = TargetDefinitionConfig { tags: cfg.tags.clone(), gc_deletes: cfg.gc_deletes.clone(), extra_settings: cfg.extra_settings.clone() };
    let expected =
        schema::target_definition(&legacy_index, &def_cfg).map_err(|e| IndexError::Definition { index: cfg.source_index.clone(), reason: e.to_string() })?;
    if let Some(actual) = target.get_index(&cfg.target_index).await? {
        return compare(&cfg.target_index, &expected, &actual);
    }
    let path = format!("/{}", enc(&cfg.target_index));
    let (status, body) = target.create_index(&cfg.target_index, &expected).await?;
    match status {
        200..=299 => {
            tracing::info!(index = %cfg.target_index, "created target index");
            Ok(CreateOutcome::Created)
        }
        // Another process created it between our GET and PUT: same rule as above.
        400 if body.pointer("/error/type").and_then(Value::as_str) == Some("resource_already_exists_exception") => {
            let actual = target.get_index(&cfg.target_index).await?.ok_or_else(|| IndexError::TargetMissing(cfg.target_index.clone()))?;
            compare(&cfg.target_index, &expected, &actual)
        }
        _ => Err(EsError::status_of("PUT", &path, status, &body).into()),
    }
}

fn compare(index: &str, expected: &Value, actual: &Value) -> Result<CreateOutcome, IndexError> {
    let actual = &without_bulk_load(expected, actual);
    let differences = schema::definition_differences(expected, actual);
    if differences.is_empty() {
        tracing::info!(%index, "target index already exists with the expected definition");
        Ok(CreateOutcome::AlreadyExists)
    } else {
        Err(IndexError::DefinitionMismatch { index: index.to_string(), differences })
    }
}

/// The target as create-index compares it: the copy's bulk-load settings
/// ([`crate::bulkload`]: `refresh_interval` -1, `number_of_replicas` 0) read as the expected
/// values, so that create-index stays idempotent between `backfill copy` and `backfill finalize`
/// (every deployment script and restarted worker runs it).
fn without_bulk_load(expected: &Value, actual: &Value) -> Value {
    let mut actual = actual.clone();
    let want = |key: &str| expected.pointer(&format!("/settings/index/{key}")).cloned();
    if let Some(Value::Object(index)) = actual.pointer_mut("/settings/index") {
        let is = |index: &Map<String, Value>, key: &str, v: &str| index.get(key).and_then(Value::as_str) == Some(v);
        for (key, bulk_value) in [("refresh_interval", cluster::readiness::BULK_LOAD_REFRESH_INTERVAL), ("number_of_replicas", "0")] {
            if is(index, key, bulk_value) {
                match want(key) {
                    Some(v) => index.insert(key.into(), v),
                    None => index.remove(key),
                };
            }
        }
    }
    actual
}

/// Refuses to let a writer start on a target index that would not converge: absent, tag field
/// mapped wrongly, or `index.gc_deletes` below `min_gc_deletes` (a delete's tombstone would be
/// forgotten during the migration and a stale backfill write would resurrect the document).
/// The check is the indexer's too ([`cluster::readiness::check_target`]).
pub async fn check_readiness(target: &Es, index: &str, tags: &TagRewrite, min_gc_deletes: Duration) -> Result<(), IndexError> {
    match cluster::readiness::check_target(target, index, tags, min_gc_deletes.as_millis() as u64).await {
        Ok(_) => Ok(()),
        Err(NotReady::Es(e)) => Err(e.into()),
        Err(NotReady::Missing(index)) => Err(IndexError::TargetMissing(index)),
        Err(NotReady::Unfit { index, problems }) => Err(IndexError::NotReady { index, problems }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bulk_load_settings_read_as_the_definition() {
        let expected = json!({"settings": {"index": {"number_of_replicas": "1", "number_of_shards": "2"}}, "mappings": {}, "aliases": {}});
        let bulk =
            json!({"settings": {"index": {"number_of_replicas": "0", "refresh_interval": "-1", "number_of_shards": "2"}}, "mappings": {}, "aliases": {}});
        assert_eq!(compare("t", &expected, &bulk).unwrap(), CreateOutcome::AlreadyExists);
        // Other values are still differences.
        let other =
            json!({"settings": {"index": {"number_of_replicas": "2", "refresh_interval": "5s", "number_of_shards": "2"}}, "mappings": {}, "aliases": {}});
        let Err(IndexError::DefinitionMismatch { differences, .. }) = compare("t", &expected, &other) else { panic!("must differ") };
        assert_eq!(differences.len(), 2, "{differences:?}");
    }
}
