//! Start-up checks: the indexer refuses to consume anything unless the target indices exist
//! with the expected tag mapping and a raised `index.gc_deletes` (a delete forgotten after 60 s
//! lets a stale backfill write resurrect the document), and creates the tombstone side indices.

use cluster::readiness::NotReady;
use cluster::{BulkWriter, ClusterConfig, Es, EsError, WriteOptions};
use serde_json::json;
use std::path::Path;
use tokio_util::sync::CancellationToken;

use crate::apply::{tombstone_index, Applier};
use crate::config::{IndexerConfig, NullValue};
use crate::IndexerError;

/// What start-up hands to the consumer and the lanes.
pub struct Prepared {
    pub applier: Applier,
    /// The user's librdkafka properties (file, then `-X`), checked.
    pub props: Vec<(String, String)>,
    /// How records become commands (with the envelope file read and the index map).
    pub decode: schema::DecodeConfig,
}

/// Reads and checks every piece of configuration first (the refusals, the envelope file, the
/// librdkafka properties), so a configuration error stops the indexer before any connection,
/// bind or subscribe; then connects to both clusters, checks the target and probes the brokers.
pub async fn prepare(cfg: &IndexerConfig, abort: CancellationToken, stop: &CancellationToken) -> Result<Prepared, IndexerError> {
    let refused = |m: String| IndexerError::Refused(m);
    let (legacy_version, merge_absent) = cfg.refusals().map_err(refused)?;
    let decode = decode_config(cfg)?;
    // The Kafka properties next: a refused one stops before any connection.
    let props = runtime::kafka_props::load(cfg.kafka.kafka_config.as_deref(), &cfg.kafka.properties, crate::kafka::GUARDED).map_err(refused)?;
    let min_gc = cfg.ops.min_gc_deletes.as_millis() as u64;
    let targets = known_targets(&decode);
    if targets.is_empty() {
        return Err(refused("no target index known: give --default-index or --index-map legacy=target".into()));
    }
    // Configuration is checked: connections from here on.
    // Control-plane calls (settings, pipelines, the tombstone index) retry under the run's
    // policy until SIGTERM; the data path retries in the writer and the applier.
    let connect = |c: ClusterConfig| Es::connect(&c).map(|es| es.with_retry(cfg.retry_policy(), stop.clone())).map_err(|e| refused(e.to_string()));
    let target = connect(cfg.target.clone().into())?;
    let legacy = connect(cfg.legacy.clone().into())?;
    for index in &targets {
        let replicas = check_target(&target, index, &cfg.tags(), min_gc, cfg.decode.null_value).await?;
        ensure_tombstone_index(&target, index, replicas).await?;
    }
    // Kafka last, just before joining the group: credentials, TLS, reachability.
    let connect_timeout = cfg.kafka.kafka_connect_timeout;
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
        known_targets: targets,
        cancel: abort,
    };
    Ok(Prepared { applier, props, decode })
}

/// How records become commands, from the configuration; reads the `--envelope` file.
pub fn decode_config(cfg: &IndexerConfig) -> Result<schema::DecodeConfig, IndexerError> {
    let mut decode = schema::DecodeConfig::new(cfg.decode.version_source.clone());
    decode.default_index = cfg.decode.default_index.clone();
    decode.index_map = cfg.decode.index_map.clone();
    decode.max_bytes = cfg.decode.max_payload_bytes;
    decode.tags = cfg.tags();
    decode.null_value = match cfg.decode.null_value {
        NullValue::DeadLetter => schema::NullValuePolicy::DeadLetter,
        NullValue::Delete => schema::NullValuePolicy::Delete,
    };
    if let Some(path) = &cfg.decode.envelope {
        decode.envelope = read_envelope(path)?;
    }
    Ok(decode)
}

/// Every target index the configuration names: the targets of `--index-map` and the target of
/// `--default-index`.
pub fn known_targets(decode: &schema::DecodeConfig) -> Vec<String> {
    let mut out: Vec<String> = decode.index_map.iter().map(|(_, t)| t.clone()).collect();
    if let Some(d) = &decode.default_index {
        out.push(decode.target_index(d).to_string());
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
    match es.create_index(&name, &body).await {
        Ok(_) => Ok(()),
        Err(e) => Err(IndexerError::Refused(format!("cannot create tombstone index {name}: {e}"))),
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
    use clap::Parser;

    fn config(extra: &[&str]) -> IndexerConfig {
        let base = ["indexer", "--topic", "t", "--version-source", "field:version", "--legacy-version", "_version", "--merge-absent", "ignore"];
        IndexerConfig::try_parse_from(base.iter().chain(extra)).unwrap()
    }

    #[test]
    fn targets_come_from_the_one_mapping() {
        let cfg = config(&["--index-map", "old=new", "--index-map", "a=b", "--default-index", "old"]);
        let decode = decode_config(&cfg).unwrap();
        assert_eq!(decode.target_index("old"), "new");
        assert_eq!(decode.target_index("c"), "c");
        assert_eq!(known_targets(&decode), vec!["b".to_string(), "new".to_string()]);
        let unmapped = decode_config(&config(&["--default-index", "items"])).unwrap();
        assert_eq!(known_targets(&unmapped), vec!["items".to_string()]);
        assert!(known_targets(&decode_config(&config(&[])).unwrap()).is_empty());
    }

    /// A bad envelope file is refused by `prepare` before it touches anything: the clusters
    /// and brokers named here do not exist, so getting past the configuration would fail
    /// differently (or hang).
    #[tokio::test]
    async fn envelope_file_is_read_before_any_connection() {
        let path = std::env::temp_dir().join(format!("cutover-envelope-{}.json", std::process::id()));
        std::fs::write(&path, b"{not json").unwrap();
        let cfg = config(&[
            "--default-index",
            "items",
            "--envelope",
            path.to_str().unwrap(),
            "--brokers",
            "127.0.0.1:1",
            "--target-url",
            "http://127.0.0.1:1",
            "--legacy-url",
            "http://127.0.0.1:1",
        ]);
        let err = prepare(&cfg, CancellationToken::new(), &CancellationToken::new()).await.err().expect("refused");
        let _ = std::fs::remove_file(&path);
        assert!(matches!(&err, IndexerError::Refused(m) if m.contains("bad envelope file")), "{err}");
        let missing = config(&["--default-index", "items", "--envelope", "/nonexistent/cutover-envelope.json"]);
        let err = prepare(&missing, CancellationToken::new(), &CancellationToken::new()).await.err().expect("refused");
        assert!(matches!(&err, IndexerError::Refused(m) if m.contains("cannot read")), "{err}");
    }

    #[test]
    fn tombstones_take_the_targets_replicas() {
        assert_eq!(replicas_of(&json!({"settings": {"index": {"number_of_replicas": "2"}}})), 2);
        assert_eq!(replicas_of(&json!({"settings": {"index": {"number_of_replicas": 0}}})), 0);
        assert_eq!(replicas_of(&json!({})), 1);
    }
}
