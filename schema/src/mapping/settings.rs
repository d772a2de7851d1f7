//! Index settings: flattening the nested or flat forms, dropping what only describes the old
//! index, and nesting the result again.

use super::{MappingError, TargetDefinitionConfig};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Index-relative settings (without the `index.` prefix, e.g. `number_of_shards`) that are not
/// copied to the target: identity and history of the old index, ILM (the target cluster has
/// its own policies), blocks and resize/recovery state. Beyond the obvious ones:
/// `soft_deletes.enabled` (8.x+ refuses `false` and always enables it) and the frozen-index
/// settings 8.x+ no longer knows; `mapper.dynamic` (6.x, refused by 7.x+ as unknown) and
/// `replication.type` (OpenSearch's per-index replication strategy, unknown to Elasticsearch;
/// an OpenSearch target applies its own default). Each entry also drops its sub-keys.
///
/// From 2.x/5.x indices, settings no 6.8+ cluster knows (creating an index with an unknown
/// setting fails): those the 5.x/6.x cluster itself `archived` as unknown, and the ones named
/// below with the version that removed them. `store.type: default` and `cache.query.enable`
/// depend on their value or have a successor: see [`target_settings`].
pub const DROPPED_SETTINGS: &[&str] = &[
    "provided_name",
    "uuid",
    "creation_date",
    "version",
    "lifecycle",
    "routing.allocation.initial_recovery",
    "resize",
    "shrink.source",
    "blocks",
    "history.uuid",
    "verified_before_close",
    "store.snapshot",
    "soft_deletes.enabled",
    "frozen",
    "search.throttled",
    "mapper.dynamic",
    "replication.type",
    // Settings a 5.x/6.x cluster could not read from an older index, kept under `archived.`.
    "archived",
    // 5.6's single-type switch: 6.x only reads it on 5.x indices, 7.0 removed it.
    "mapping.single_type",
    // 2.x routing of indices created on 1.x (`legacy.routing.hash.type`): removed in 5.0.
    "legacy",
    // Removed in 5.0 with the features: store throttling, warmers, `_ttl` purging.
    "store.throttle",
    "warmer",
    "ttl",
    // 2.x translog settings removed in 5.0 (6.8+ knows durability, sync_interval,
    // flush_threshold_size, generation_threshold_size and retention.*).
    "translog.flush_threshold_ops",
    "translog.flush_threshold_period",
    "translog.interval",
    "translog.fs",
    "translog.disable_flush",
    // Shadow replicas (2.x/5.x): removed in 6.0.
    "shadow_replicas",
    "shared_filesystem",
];

/// Index-relative settings a server adds by itself on creation; ignored when comparing an
/// expected definition with an actual one (`replication.type`: OpenSearch's default strategy).
pub const SERVER_SETTINGS: &[&str] = &[
    "provided_name",
    "uuid",
    "creation_date",
    "version",
    "history.uuid",
    "routing.allocation.include._tier_preference",
    "routing.allocation.initial_recovery",
    "resize",
    "verified_before_close",
    "replication.type",
];

/// True when `key` is one of `list` or below one of them.
pub(crate) fn listed(key: &str, list: &[&str]) -> bool {
    list.iter().any(|p| key.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('.')))
}

/// Flattens settings in any form (nested `{"index": {..}}`, flat `"index.x"`, or relative
/// `"x"`) into index-relative dotted keys; arrays are leaf values.
pub(crate) fn flat_index_settings(settings: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut flat = BTreeMap::new();
    flatten_into(settings, "", &mut flat);
    flat.into_iter().map(|(k, v)| (k.strip_prefix("index.").map(str::to_owned).unwrap_or(k), v)).collect()
}

fn flatten_into(map: &Map<String, Value>, prefix: &str, out: &mut BTreeMap<String, Value>) {
    for (k, v) in map {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) => flatten_into(inner, &key, out),
            leaf => {
                out.insert(key, leaf.clone());
            }
        }
    }
}

/// Nests index-relative flat settings as `{"index": {..}}`. A key whose prefix is already a
/// leaf stays dotted at that level (Elasticsearch accepts both spellings).
pub(crate) fn nest(flat: BTreeMap<String, Value>) -> Value {
    let mut index = Map::new();
    for (key, value) in flat {
        insert_nested(&mut index, &key, value);
    }
    Value::Object(Map::from_iter([("index".to_owned(), Value::Object(index))]))
}

fn insert_nested(map: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some((head, rest)) = key.split_once('.') {
        let slot = map.entry(head).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(inner) = slot {
            return insert_nested(inner, rest, value);
        }
    }
    map.insert(key.to_owned(), value);
}

/// An index setting name without its `index.` prefix (`index.x` and `x` name the same).
pub fn relative_setting(key: &str) -> &str {
    let key = key.trim();
    key.strip_prefix("index.").unwrap_or(key)
}

/// True when index settings (any form) hold `key` (`index.` prefix optional) or a sub-key of
/// it: what a dropped setting leaves out.
pub fn has_setting(settings: &Map<String, Value>, key: &str) -> bool {
    let key = relative_setting(key);
    flat_index_settings(settings).keys().any(|k| listed(k, &[key]))
}

/// Legacy settings whose value (not name) 6.8+ refuses, or whose name changed.
fn legacy_values(flat: &mut BTreeMap<String, Value>) {
    // 2.x store type `default` (5.x `default_fs`): 6.8+ knows fs, niofs, mmapfs, simplefs
    // (and hybridfs) and fails the index creation with "Unknown store type [default]"; without
    // it the target uses its default store (`fs`), as 2.x `default` did.
    if matches!(flat.get("store.type").and_then(Value::as_str), Some("default" | "default_fs")) {
        flat.remove("store.type");
    }
    // The 1.x name of the shard request cache switch (renamed in 2.0), kept by indices
    // created on 1.x; unknown to 6.8+, which calls it `requests.cache.enable`.
    if let Some(enable) = flat.remove("cache.query.enable") {
        flat.entry("requests.cache.enable".into()).or_insert(enable);
    }
}

/// The target's settings: legacy index settings minus [`DROPPED_SETTINGS`] and the
/// configured `dropped_settings`, `gc_deletes` raised, the tag normalizer's analysis
/// normalizer added (refused when the legacy settings define another under its name), extra
/// settings last.
pub(crate) fn target_settings(legacy: Map<String, Value>, cfg: &TargetDefinitionConfig) -> Result<Value, MappingError> {
    let mut flat = flat_index_settings(&legacy);
    let dropped: Vec<&str> = cfg.dropped_settings.iter().map(|k| relative_setting(k)).collect();
    flat.retain(|k, _| !listed(k, DROPPED_SETTINGS) && !listed(k, &dropped));
    legacy_values(&mut flat);
    flat.insert("gc_deletes".into(), Value::String(cfg.gc_deletes.clone()));
    if let Some(n) = cfg.tag_normalizer {
        let prefix = format!("analysis.normalizer.{}", n.name());
        let wanted: BTreeMap<String, Value> = n.definition().as_object().into_iter().flatten().map(|(k, v)| (format!("{prefix}.{k}"), v.clone())).collect();
        let found: BTreeMap<String, Value> = flat.iter().filter(|(k, _)| listed(k, &[prefix.as_str()])).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !found.is_empty() && found != wanted {
            let show = |m: &BTreeMap<String, Value>| serde_json::to_string(m).unwrap_or_default();
            return Err(MappingError::NormalizerNameTaken { name: n.name().into(), found: show(&found), wanted: show(&wanted) });
        }
        flat.extend(wanted);
    }
    flat.extend(flat_index_settings(&cfg.extra_settings));
    Ok(nest(flat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn flattens_every_form_alike() {
        let nested = flat_index_settings(&obj(json!({"index": {"number_of_shards": "1", "a": {"b": "c"}}})));
        let flat = flat_index_settings(&obj(json!({"index.number_of_shards": "1", "index.a.b": "c"})));
        let relative = flat_index_settings(&obj(json!({"number_of_shards": "1", "a.b": "c"})));
        assert_eq!(nested, flat);
        assert_eq!(nested, relative);
    }

    #[test]
    fn nests_with_leaf_conflicts() {
        let flat = BTreeMap::from([("a".to_owned(), json!("x")), ("a.b".to_owned(), json!("y")), ("c.d".to_owned(), json!(1))]);
        assert_eq!(nest(flat), json!({"index": {"a": "x", "a.b": "y", "c": {"d": 1}}}));
    }

    #[test]
    fn dropped_settings_leave_out_keys_and_sub_keys_and_extra_settings_still_apply() {
        let legacy = obj(json!({"index": {
            "default_pipeline": "stamp",
            "final_pipeline": "audit",
            "routing": {"allocation": {"require": {"box": "hot", "zone": "a"}, "include": {"_tier_preference": "data_content"}}},
            "number_of_shards": "1"
        }}));
        let cfg = TargetDefinitionConfig {
            dropped_settings: vec!["index.default_pipeline".into(), "routing.allocation.require".into(), " index.final".into()],
            extra_settings: obj(json!({"index.routing.allocation.require.zone": "b"})),
            ..Default::default()
        };
        assert_eq!(
            target_settings(legacy, &cfg).unwrap(),
            json!({"index": {
                "final_pipeline": "audit",
                "gc_deletes": "48h",
                "number_of_shards": "1",
                "routing": {"allocation": {"include": {"_tier_preference": "data_content"}, "require": {"zone": "b"}}}
            }}),
            "`final` is no whole segment of final_pipeline; require.* goes, the extra setting comes back"
        );
    }

    #[test]
    fn relative_setting_names() {
        assert_eq!(relative_setting("index.default_pipeline"), "default_pipeline");
        assert_eq!(relative_setting(" default_pipeline "), "default_pipeline");
        let settings = obj(json!({"index": {"default_pipeline": "p", "routing": {"allocation": {"require": {"box": "b"}}}}}));
        assert!(has_setting(&settings, "index.default_pipeline"));
        assert!(has_setting(&settings, "routing.allocation.require"));
        assert!(has_setting(&settings, "index.routing.allocation.require.box"));
        assert!(!has_setting(&settings, "default_pipelin"));
        assert!(!has_setting(&settings, "final_pipeline"));
    }

    /// `GET /items/_settings` of a 2.4 index created on 1.7 (flat and nested forms mixed, as
    /// `flat_settings` may give them), then read by 5.6 (which archived what it did not know).
    #[test]
    fn drops_2x_and_5x_settings_that_newer_clusters_refuse() {
        let legacy = obj(json!({
            "index": {
                "number_of_shards": "2",
                "number_of_replicas": "1",
                "creation_date": "1460000000000",
                "uuid": "q1w2e3",
                "version": {"created": "1070599", "upgraded": "2040699", "minimum_compatible": "5.0.0"},
                "mapping": {"single_type": "false", "coerce": "false"},
                "mapper": {"dynamic": "false"},
                "legacy": {"routing": {"hash": {"type": "org.elasticsearch.cluster.routing.DjbHashFunction"}, "use_type": "false"}},
                "store": {"type": "default", "throttle": {"type": "merge", "max_bytes_per_sec": "20mb"}},
                "translog": {"flush_threshold_ops": "5000", "interval": "5s", "durability": "request", "sync_interval": "5s"},
                "cache": {"query": {"enable": "true"}},
                "warmer": {"enabled": "false"},
                "ttl": {"disable_purge": "true"},
                "shadow_replicas": "false",
                "shared_filesystem": "false",
                "refresh_interval": "30s",
                "max_result_window": "50000",
                "query": {"default_field": "body"},
                "analysis": {"analyzer": {"folding": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}}
            },
            "archived.index.percolator.map_unmapped_fields_as_string": "true"
        }));
        assert_eq!(
            target_settings(legacy, &TargetDefinitionConfig::default()).unwrap(),
            json!({"index": {
                "number_of_shards": "2",
                "number_of_replicas": "1",
                "mapping": {"coerce": "false"},
                "translog": {"durability": "request", "sync_interval": "5s"},
                "requests": {"cache": {"enable": "true"}},
                "refresh_interval": "30s",
                "max_result_window": "50000",
                "query": {"default_field": "body"},
                "analysis": {"analyzer": {"folding": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}},
                "gc_deletes": "48h"
            }})
        );
        // A store type every target knows stays; a set request cache wins over the 1.x name.
        let legacy = obj(json!({"index.store.type": "niofs", "index.cache.query.enable": "true", "index.requests.cache.enable": "false"}));
        assert_eq!(
            target_settings(legacy, &TargetDefinitionConfig::default()).unwrap(),
            json!({"index": {"store": {"type": "niofs"}, "requests": {"cache": {"enable": "false"}}, "gc_deletes": "48h"}})
        );
    }

    #[test]
    fn listed_matches_whole_segments() {
        assert!(listed("version.created", DROPPED_SETTINGS));
        assert!(listed("blocks.write", DROPPED_SETTINGS));
        assert!(!listed("versioning", DROPPED_SETTINGS));
    }
}
