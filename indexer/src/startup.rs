//! Start-up checks: the indexer refuses to consume anything unless the target indices exist
//! with the expected tag mapping and a raised `index.gc_deletes` (a delete forgotten after 60 s
//! lets a stale backfill write resurrect the document), and creates the tombstone side indices.

use cluster::readiness::NotReady;
use cluster::{BulkWriter, ClusterConfig, Es, EsError, WriteOptions};
use serde_json::json;
use std::path::Path;
use tokio_util::sync::CancellationToken;

use crate::apply::{tombstone_index, Applier};
use crate::config::{read_properties, IndexerConfig, NullValue};
use crate::IndexerError;

/// Checks the librdkafka properties (file, then -X; see [`crate::kafka`]), connects to both
/// clusters, checks the target, probes the brokers, and returns the applier and the properties.
pub async fn prepare(cfg: &IndexerConfig, abort: CancellationToken) -> Result<(Applier, Vec<(String, String)>), IndexerError> {
    let refused = |m: String| IndexerError::Refused(m);
    let (legacy_version, merge_absent) = cfg.refusals().map_err(refused)?;
    // The Kafka properties next: a refused one stops before any connection.
    let mut file_props = Vec::new();
    if let Some(path) = &cfg.kafka.kafka_config {
        file_props = read_properties(path).map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
        crate::kafka::warn_if_readable(path, &file_props);
    }
    crate::kafka::check_properties(&file_props, &cfg.kafka.properties).map_err(refused)?;
    let mut props = file_props;
    props.extend(cfg.kafka.properties.iter().cloned());
    let target = Es::connect(&ClusterConfig::from(cfg.target.clone())).map_err(|e| refused(e.to_string()))?;
    let legacy = Es::connect(&ClusterConfig::from(cfg.legacy.clone())).map_err(|e| refused(e.to_string()))?;
    let min_gc = schema::parse_time_value_ms(&cfg.ops.min_gc_deletes)
        .ok_or_else(|| refused(format!("--min-gc-deletes {:?} is not a time value like 1h", cfg.ops.min_gc_deletes)))?;
    let targets = known_targets(cfg);
    if targets.is_empty() {
        return Err(refused("no target index known: give --default-index or --index-map legacy=target".into()));
    }
    for index in &targets {
        let replicas = check_target(&target, index, &cfg.tags(), min_gc, cfg.decode.null_value).await?;
        ensure_tombstone_index(&target, index, replicas).await?;
    }
    // Kafka last, just before joining the group: credentials, TLS, reachability.
    let connect_timeout = std::time::Duration::from_secs(cfg.kafka.kafka_connect_timeout_secs);
    crate::kafka::probe(&cfg.kafka.brokers, &props, &cfg.kafka.topic, connect_timeout).await?;
    let opts = WriteOptions { retry: cfg.retry_policy(), refresh: cfg.ops.refresh };
    let applier = Applier {
        writer: BulkWriter::new(target, opts, abort.clone()),
        legacy,
        tags: cfg.tags(),
        version_field: match &legacy_version {
            schema::LegacyVersionSource::Field(path) => Some(path.clone()),
            schema::LegacyVersionSource::Version => None,
        },
        legacy_version,
        merge_absent,
        index_map: cfg.decode.index_map.clone(),
        known_targets: targets,
        cancel: abort,
    };
    Ok((applier, props))
}

/// Every target index the configuration names.
pub fn known_targets(cfg: &IndexerConfig) -> Vec<String> {
    let mut out: Vec<String> = cfg.decode.index_map.iter().map(|(_, t)| t.clone()).collect();
    if let Some(d) = &cfg.decode.default_index {
        out.push(cfg.target_index(d).to_string());
    }
    out.sort();
    out.dedup();
    out
}

/// Refuses an absent or unfit target index, saying what is wrong and how to fix it; returns
/// its replica count (the tombstones get the same durability).
async fn check_target(es: &Es, index: &str, tags: &schema::TagRewrite, min_gc_ms: u64, null_value: NullValue) -> Result<u64, IndexerError> {
    let actual = cluster::readiness::check_target(es, index, tags, min_gc_ms).await.map_err(|e| {
        IndexerError::Refused(match e {
            NotReady::Es(e @ EsError::Transport { .. }) => format!("cannot reach the target cluster: {e}"),
            NotReady::Es(e) => format!("cannot read target index {index:?}: {e}"),
            NotReady::Missing(_) => {
                format!("target index {index:?} does not exist; create it with `backfill create-index` (it sets the mapping and gc_deletes)")
            }
            NotReady::Unfit { problems, .. } => format!("target index {index:?} is not ready: {}", problems.join("; ")),
        })
    })?;
    if null_value == NullValue::Delete && actual["mappings"]["_routing"]["required"] == json!(true) {
        return Err(IndexerError::Refused(format!(
            "--null-value delete: target index {index:?} requires custom routing, and a null-value record carries none (its delete would miss the document's shard); dead-letter null values instead (--null-value dead-letter) and replay them with routing"
        )));
    }
    Ok(replicas_of(&actual))
}

/// `index.number_of_replicas` of a `GET /<index>` body (a string in Elasticsearch's answer).
fn replicas_of(index: &serde_json::Value) -> u64 {
    let r = &index["settings"]["index"]["number_of_replicas"];
    r.as_u64().or_else(|| r.as_str().and_then(|s| s.parse().ok())).unwrap_or(1)
}

/// Creates the side index of delete tombstones (see [`crate::apply`]) with the target's replica
/// count (losing a tombstone can resurrect a document, so it is as durable as the target); an
/// existing one is fine.
async fn ensure_tombstone_index(es: &Es, target: &str, replicas: u64) -> Result<(), IndexerError> {
    let name = tombstone_index(target);
    let body = json!({
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": replicas, "gc_deletes": "48h"}},
        "mappings": {"dynamic": false, "properties": {"version": {"type": "long"}}}
    });
    let (status, resp) = es
        .request(elasticsearch::http::Method::Put, &format!("/{}", cluster::client::enc(&name)), Some(&body))
        .await
        .map_err(|e| IndexerError::Refused(e.to_string()))?;
    let exists = cluster::ErrorCause::parse(&resp).has_kind("resource_already_exists_exception");
    if (200..300).contains(&status) || exists {
        Ok(())
    } else {
        Err(IndexerError::Refused(format!("cannot create tombstone index {name}: HTTP {status}: {resp}")))
    }
}

/// Reads a JSON file of envelope field names.
pub fn read_envelope(path: &Path) -> Result<schema::Envelope, IndexerError> {
    let text = std::fs::read_to_string(path).map_err(|e| IndexerError::Refused(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| IndexerError::Refused(format!("bad envelope file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_take_the_targets_replicas() {
        assert_eq!(replicas_of(&json!({"settings": {"index": {"number_of_replicas": "2"}}})), 2);
        assert_eq!(replicas_of(&json!({"settings": {"index": {"number_of_replicas": 0}}})), 0);
        assert_eq!(replicas_of(&json!({})), 1);
    }
}
