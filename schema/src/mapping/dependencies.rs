//! Index settings that depend on the cluster around the index: they name an object of that
//! cluster (an ingest pipeline, a node attribute) or weaken the durability of acknowledged
//! writes. Copied blindly from the legacy index, the first make the target refuse every write
//! (a missing pipeline) or leave shards unassigned (an attribute no node has); the last lets a
//! node crash lose writes the migration already counted as done. `backfill create-index`
//! refuses each one unless handled explicitly, and the writers' start-up check refuses a
//! missing pipeline and async durability (docs/legacy-settings.md).

use super::settings::flat_index_settings;
use serde_json::{Map, Value};

/// The pipeline settings: a pipeline run before each write's own (`default_pipeline`, which a
/// request may override) and one run after all others (`final_pipeline`).
const PIPELINE_SETTINGS: &[&str] = &["default_pipeline", "final_pipeline"];

/// The allocation filters that must match a node for a shard to be assigned
/// (`exclude.*` only keeps shards away from nodes: harmless on a cluster without them).
const ALLOCATION_FILTERS: &[(&str, bool)] = &[("routing.allocation.require.", true), ("routing.allocation.include.", false)];

/// Allocation attributes the servers set themselves (data tiers since 7.10): never the user's.
const SERVER_ATTRIBUTES: &[&str] = &["_tier_preference"];

/// A setting of an index that depends on the cluster it lives in (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterDependency {
    /// `index.default_pipeline` / `index.final_pipeline` naming an ingest pipeline (any value
    /// but `_none`): every write to the index runs it, and fails when the cluster lacks it.
    Pipeline {
        /// The full setting name, e.g. `index.default_pipeline`.
        key: String,
        /// The pipeline id.
        id: String,
    },
    /// `index.routing.allocation.require.<attribute>` / `include.<attribute>`: a shard is only
    /// assigned to a node whose attribute matches (require: every value; include: any value).
    /// Built-in attributes start with `_` (`_name`, `_host`, `_ip`, `_id`, `_tier`...).
    NodeAttribute {
        /// The full setting name, e.g. `index.routing.allocation.require.box`.
        key: String,
        /// The node attribute, e.g. `box`.
        attribute: String,
        /// The comma-separated values of the setting, trimmed (each may hold `*` wildcards).
        values: Vec<String>,
        /// `require` (a node must match every value) rather than `include` (any value).
        require: bool,
    },
    /// `index.translog.durability: async`: writes are acknowledged before their translog is
    /// fsynced, so a node crash can lose writes the writers already counted as done.
    AsyncTranslog {
        /// The full setting name, `index.translog.durability`.
        key: String,
        /// The value as set (any case).
        value: String,
    },
}

impl ClusterDependency {
    /// The full setting name (`index.` prefix included).
    pub fn key(&self) -> &str {
        match self {
            ClusterDependency::Pipeline { key, .. } | ClusterDependency::NodeAttribute { key, .. } | ClusterDependency::AsyncTranslog { key, .. } => key,
        }
    }
}

/// The settings of an index (any form: nested `{"index": {..}}`, flat `index.x` or relative
/// `x`) that depend on the cluster around it, in setting-name order: pipelines other than
/// `_none`, `require`/`include` allocation filters other than the servers' own
/// `_tier_preference`, and `translog.durability: async` (case-insensitive).
pub fn cluster_dependencies(settings: &Map<String, Value>) -> Vec<ClusterDependency> {
    let mut out = Vec::new();
    for (key, value) in flat_index_settings(settings) {
        let text = match &value {
            Value::String(s) => s.trim().to_owned(),
            Value::Null => continue,
            other => other.to_string(),
        };
        let full = format!("index.{key}");
        if PIPELINE_SETTINGS.contains(&key.as_str()) {
            if !text.is_empty() && text != "_none" {
                out.push(ClusterDependency::Pipeline { key: full, id: text });
            }
            continue;
        }
        if key == "translog.durability" {
            if text.eq_ignore_ascii_case("async") {
                out.push(ClusterDependency::AsyncTranslog { key: full, value: text });
            }
            continue;
        }
        for (prefix, require) in ALLOCATION_FILTERS {
            let Some(attribute) = key.strip_prefix(prefix) else { continue };
            let values: Vec<String> = text.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
            if !attribute.is_empty() && !SERVER_ATTRIBUTES.contains(&attribute) && !values.is_empty() {
                out.push(ClusterDependency::NodeAttribute { key: full.clone(), attribute: attribute.to_owned(), values, require: *require });
            }
        }
    }
    out
}

/// True when a node attribute value matches a filter value: Elasticsearch's simple wildcard
/// match (`*` matches any run of characters, nothing else is special).
pub fn attribute_value_matches(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if value.len() < first.len() + last.len() || !value.starts_with(first) || !value.ends_with(last) {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deps(v: Value) -> Vec<ClusterDependency> {
        cluster_dependencies(v.as_object().unwrap())
    }

    fn pipeline(key: &str, id: &str) -> ClusterDependency {
        ClusterDependency::Pipeline { key: key.into(), id: id.into() }
    }

    #[test]
    fn pipelines_other_than_none_in_every_form() {
        let nested = json!({"index": {"default_pipeline": "stamp", "final_pipeline": "audit", "number_of_shards": "1"}});
        let expected = vec![pipeline("index.default_pipeline", "stamp"), pipeline("index.final_pipeline", "audit")];
        assert_eq!(deps(nested), expected);
        assert_eq!(deps(json!({"index.default_pipeline": "stamp", "index.final_pipeline": "audit"})), expected);
        assert_eq!(deps(json!({"default_pipeline": "stamp", "final_pipeline": "audit"})), expected);
        assert_eq!(deps(json!({"index": {"default_pipeline": "_none", "final_pipeline": "_none"}})), vec![]);
        assert_eq!(deps(json!({"index": {"default_pipeline": ""}})), vec![]);
    }

    #[test]
    fn allocation_require_and_include_but_not_exclude_or_tier_preference() {
        let settings = json!({"index": {"routing": {"allocation": {
            "require": {"box": "hot", "_name": "node-1"},
            "include": {"zone": "eu-1, eu-2", "_tier_preference": "data_content"},
            "exclude": {"zone": "us-1"},
            "total_shards_per_node": "2"
        }}}});
        assert_eq!(
            deps(settings),
            vec![
                ClusterDependency::NodeAttribute {
                    key: "index.routing.allocation.include.zone".into(),
                    attribute: "zone".into(),
                    values: vec!["eu-1".into(), "eu-2".into()],
                    require: false
                },
                ClusterDependency::NodeAttribute {
                    key: "index.routing.allocation.require._name".into(),
                    attribute: "_name".into(),
                    values: vec!["node-1".into()],
                    require: true
                },
                ClusterDependency::NodeAttribute {
                    key: "index.routing.allocation.require.box".into(),
                    attribute: "box".into(),
                    values: vec!["hot".into()],
                    require: true
                },
            ]
        );
        // Empty values filter nothing.
        assert_eq!(deps(json!({"index.routing.allocation.require.box": ""})), vec![]);
        assert_eq!(deps(json!({"index.routing.allocation.require.box": " , "})), vec![]);
    }

    #[test]
    fn async_translog_in_any_case_but_not_request() {
        let async_key = |v: &str| ClusterDependency::AsyncTranslog { key: "index.translog.durability".into(), value: v.into() };
        assert_eq!(deps(json!({"index": {"translog": {"durability": "async"}}})), vec![async_key("async")]);
        assert_eq!(deps(json!({"index.translog.durability": "ASYNC"})), vec![async_key("ASYNC")]);
        assert_eq!(deps(json!({"index": {"translog": {"durability": "request", "sync_interval": "5s"}}})), vec![]);
        assert_eq!(deps(json!({"index": {"translog": {"durability": "REQUEST"}}})), vec![]);
    }

    #[test]
    fn ordinary_settings_depend_on_nothing() {
        let settings = json!({"index": {"number_of_shards": "3", "refresh_interval": "1s", "lifecycle": {"name": "p"}, "analysis": {"analyzer": {}}}});
        assert_eq!(deps(settings), vec![]);
    }

    #[test]
    fn keys_are_reported_in_full() {
        let all = deps(json!({"index": {"default_pipeline": "p", "translog.durability": "async", "routing.allocation.require.box": "b"}}));
        let keys: Vec<&str> = all.iter().map(ClusterDependency::key).collect();
        assert_eq!(keys, ["index.default_pipeline", "index.routing.allocation.require.box", "index.translog.durability"]);
    }

    #[test]
    fn wildcard_matching_of_attribute_values() {
        assert!(attribute_value_matches("hot", "hot"));
        assert!(!attribute_value_matches("hot", "hotter"));
        assert!(attribute_value_matches("hot*", "hotter"));
        assert!(attribute_value_matches("*", ""));
        assert!(attribute_value_matches("eu-*-a", "eu-west-a"));
        assert!(!attribute_value_matches("eu-*-a", "eu-west-b"));
        assert!(attribute_value_matches("a*b*c", "aXbYc"));
        assert!(!attribute_value_matches("a*b*c", "aXcYb"));
        assert!(!attribute_value_matches("ab*ba", "aba"), "prefix and suffix may not overlap");
    }
}
