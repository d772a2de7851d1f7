//! The target index definition: derived from the legacy index, compared with what the target
//! cluster reports, and checked for fitness before a writer starts.
//!
//! Mapping rules (legacy `GET /<index>` body -> target create-index body):
//! - the `_type` level is dropped if present (6.x `{"_doc": {..}}` or a custom type name: a
//!   single key, not a mapping parameter, whose value has `properties`/`dynamic_templates`;
//!   a 5.x-era `_default_` mapping beside it is dropped, its templates are already merged
//!   into the type);
//! - what only 6.x knows and 7.x+ refuses is dropped: `_all` ("Root mapping definition has
//!   unsupported parameters"; the target has no catch-all field, `copy_to` is its
//!   replacement), `_field_names.enabled` (removed in 8.x/9.x) and `include_in_all` on
//!   properties;
//! - a legacy mapping with more than one type (2.x/5.x) is refused
//!   ([`MappingError::MultipleTypes`]): the target has one;
//! - 2.x/5.x field types and parameters are translated, in properties, multi-fields and
//!   dynamic template mappings (`mapping/legacy_types.rs`): `string` becomes `text`
//!   (analyzed), `keyword` (`not_analyzed`) or an unindexed keyword (`no`), each keeping only
//!   the parameters its type takes; `multi_field` becomes its default sub-field; what 6.8+
//!   refuses is dropped or respelled (`boost`, `index_name`, `precision_step`, object
//!   `fielddata`, `norms: {enabled}` -> `norms`, `index: not_analyzed`/`no` on other types,
//!   2.x `geo_point` encodings, camel case date formats) and so are the root parameters
//!   `_timestamp`, `_ttl`, `_index`, `_type`, `_id` (`_parent` is kept, for the target to
//!   refuse);
//! - dynamic templates whose `path_match` targets the tag map (equal to `legacy_path` or
//!   starting with it followed by `.` or `*`) are removed; in a `path_match` array only those
//!   patterns are removed. A bare `match` names a leaf field, never the map, so it is kept;
//! - the tag map's property is removed, and parents on its path left without properties too;
//! - `properties.<target_field>` becomes a strict object of two keyword fields
//!   (`keyToValue`, `value`); a legacy property of that name is an error. Both carry
//!   `ignore_above`, so a tag over Lucene's 32,766-byte term limit is kept in `_source` but not
//!   indexed, instead of costing the whole document: `value` takes the legacy tag fields'
//!   `ignore_above` (the largest found in the tag templates and properties), else
//!   [`MAX_TAG_IGNORE_ABOVE`]; `keyToValue`, which also holds the key, always takes
//!   [`MAX_TAG_IGNORE_ABOVE`] (never capped by the value's limit, or a key-value query would
//!   miss values the legacy field indexes). With a [`TagNormalizer`] (`create-index
//!   --tag-normalizer lowercase`), both also carry `"normalizer"` and the settings gain its
//!   analysis normalizer; tag keys of the legacy mapping that differ only by case are then
//!   refused unless allowed (`mapping/tagtext.rs`).
//!
//! Settings rules: `settings.index.*` is copied minus what only describes the old index
//! ([`DROPPED_SETTINGS`]) and minus what the caller chose to leave out (`dropped_settings`,
//! `backfill create-index --drop-setting`), `index.gc_deletes` is set to the configured value
//! (deletes must keep their version for the whole migration), `extra_settings` are merged last,
//! and the result is written in nested form `{"index": {..}}`. Aliases are copied as is.
//! Settings that depend on the cluster around the index (an ingest pipeline, node attributes,
//! async translog durability) are copied like the others: [`cluster_dependencies`] lists them,
//! for the caller to check against the target cluster.

mod dependencies;
mod diff;
mod legacy_types;
mod readiness;
mod settings;
mod tagtext;
mod timevalue;

pub use dependencies::{attribute_value_matches, cluster_dependencies, ClusterDependency};
pub use diff::definition_differences;
pub use readiness::{gc_deletes_ms, readiness_problems, ASYNC_TRANSLOG_WHY};
pub use settings::{has_setting, relative_setting, DROPPED_SETTINGS, SERVER_SETTINGS};
pub use tagtext::{
    analysed_tag_fields, lowercase_like_lucene, tag_keys_differing_only_by_case, target_tag_normalizers, AnalysedTagField, TagNormalizer, TargetTagNormalizers,
    TAG_NORMALIZER_NAME,
};
pub use timevalue::{parse_time_value_arg, parse_time_value_ms};

use crate::rewrite::{TagRewrite, KEY_TO_VALUE_FIELD, VALUE_FIELD};
use serde_json::{json, Map, Value};

/// How to build the target definition.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetDefinitionConfig {
    /// The tag rewrite whose fields the mapping must reflect.
    pub tags: TagRewrite,
    /// `index.gc_deletes` for the migration window (default `48h`): how long a delete's
    /// version outlives it, so a stale backfill write cannot resurrect the document.
    pub gc_deletes: String,
    /// Settings merged last (flat `index.x`, relative `x` or nested keys), e.g. replicas 0.
    pub extra_settings: Map<String, Value>,
    /// Legacy settings left out of the target, with their sub-keys (`index.x` or relative
    /// `x`), e.g. `index.default_pipeline`; `extra_settings` may still set them.
    pub dropped_settings: Vec<String>,
    /// A normalizer for both tag keywords (`--tag-normalizer`), None for exact (case-sensitive)
    /// keywords.
    pub tag_normalizer: Option<TagNormalizer>,
    /// Create the normalized index even when legacy tag keys differ only by case (they become
    /// one key on the target): `--allow-tag-key-case-collisions`.
    pub allow_tag_key_case_collisions: bool,
}

impl Default for TargetDefinitionConfig {
    fn default() -> Self {
        Self {
            tags: TagRewrite::default(),
            gc_deletes: "48h".into(),
            extra_settings: Map::new(),
            dropped_settings: Vec::new(),
            tag_normalizer: None,
            allow_tag_key_case_collisions: false,
        }
    }
}

/// Why a target definition cannot be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A part of the legacy body that must be an object is not.
    #[error("`{what}` is not an object")]
    NotAnObject {
        /// Which part.
        what: String,
    },
    /// The legacy mapping already has a property named like the target tag field.
    #[error("legacy mapping already has a property `{field}`, which the tag rewrite needs")]
    TargetFieldCollision {
        /// The target field name.
        field: String,
    },
    /// A tag normalizer would merge legacy tag keys that differ only by case.
    #[error("the tag normalizer `{normalizer}` lowercases the keys too (`keyToValue` is `key:value`), and the legacy mapping has tag keys that differ only by case: {}; on the target they would become one key (a search for one would also find the others). Fix: rename or merge those keys in the legacy data first, or create the target without --tag-normalizer (exact, case-sensitive tags), or accept the merge with --allow-tag-key-case-collisions", groups.iter().map(|g| format!("[{}]", g.join(", "))).collect::<Vec<_>>().join(", "))]
    TagKeyCaseCollision {
        /// The normalizer asked for.
        normalizer: TagNormalizer,
        /// Each group of keys that differ only by case.
        groups: Vec<Vec<String>>,
    },
    /// The legacy settings define an analysis normalizer of the name the tag normalizer needs,
    /// with another definition.
    #[error("the legacy index already defines analysis normalizer `{name}` as {found}, not as the tag normalizer needs ({wanted}): rename it on the legacy index, or leave it out with --drop-setting index.analysis.normalizer.{name}")]
    NormalizerNameTaken {
        /// The normalizer name.
        name: String,
        /// The legacy definition.
        found: String,
        /// The tag normalizer's definition.
        wanted: String,
    },
    /// The legacy index (2.x or 5.x) has more than one mapping type; the target has one.
    #[error("the legacy index has mapping types [{}]; cutover copies an index with one type: reindex each type into its own legacy index first (or filter with an alias per type), then migrate each", types.join(", "))]
    MultipleTypes {
        /// The type names (without `_default_`), sorted.
        types: Vec<String>,
    },
}

/// Mapping parameters that can appear at the top of a typeless mapping; a single top-level
/// key among these is never a type name.
const MAPPING_PARAMS: &[&str] = &[
    "properties",
    "dynamic_templates",
    "dynamic",
    "_source",
    "_routing",
    "_meta",
    "date_detection",
    "dynamic_date_formats",
    "numeric_detection",
    "_field_names",
    "enabled",
    "runtime",
    "subobjects",
    "_all",
    "_size",
    "_data_stream_timestamp",
    // 2.x/5.x root parameters (a type name never starts with `_`, but for `_doc`).
    "_timestamp",
    "_ttl",
    "_parent",
    "_index",
    "_type",
    "_id",
    "_boost",
    "_analyzer",
];

/// From the legacy `GET /<index>` body for ONE index (the value under the index name:
/// `{aliases, mappings, settings}`; the whole response with one index is accepted too) builds
/// the target create-index body `{settings, mappings, aliases}` (rules in the module doc).
pub fn target_definition(legacy_index: &Value, cfg: &TargetDefinitionConfig) -> Result<Value, MappingError> {
    let legacy_index = index_body(legacy_index);
    if let Some(normalizer) = cfg.tag_normalizer {
        let groups = tag_keys_differing_only_by_case(legacy_index, &cfg.tags.legacy_path);
        if !groups.is_empty() && !cfg.allow_tag_key_case_collisions {
            return Err(MappingError::TagKeyCaseCollision { normalizer, groups });
        }
    }
    let mappings = target_mappings(part(legacy_index, "mappings")?, &cfg.tags, cfg.tag_normalizer)?;
    let settings = settings::target_settings(part(legacy_index, "settings")?, cfg)?;
    let aliases = part(legacy_index, "aliases")?;
    Ok(json!({"settings": settings, "mappings": mappings, "aliases": aliases}))
}

/// The body of one index: unwraps `{"<name>": {mappings, settings, aliases}}` when given the
/// whole `GET /<index>` response, so callers can pass either.
pub(crate) fn index_body(v: &Value) -> &Value {
    const PARTS: [&str; 3] = ["aliases", "mappings", "settings"];
    match v.as_object() {
        Some(m) if m.len() == 1 && !PARTS.contains(&m.keys().next().map(String::as_str).unwrap_or_default()) => {
            let inner = m.values().next().expect("len is 1");
            if PARTS.iter().any(|p| inner.get(p).is_some()) {
                inner
            } else {
                v
            }
        }
        _ => v,
    }
}

/// An object part of the index body; absent or null is empty.
fn part(index: &Value, name: &str) -> Result<Map<String, Value>, MappingError> {
    match index.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(MappingError::NotAnObject { what: name.into() }),
    }
}

/// The largest `ignore_above` of the target tag fields, in characters (UTF-16 units, as
/// Elasticsearch counts): Lucene refuses a term over 32,766 bytes and a character takes up to
/// 4 bytes in UTF-8, so 8191 characters always fit (Elasticsearch's own recommendation).
pub const MAX_TAG_IGNORE_ABOVE: u64 = 8191;

/// The strict two-keyword object the target tags are indexed with; `value_ignore_above` is
/// capped at [`MAX_TAG_IGNORE_ABOVE`], which `keyToValue` always has.
pub fn tag_field_mapping(value_ignore_above: u64) -> Value {
    tag_field_mapping_with(value_ignore_above, None)
}

/// [`tag_field_mapping`], both keywords with `normalizer` when one is given (its analysis
/// normalizer must be in the index settings: [`target_definition`] puts it there).
pub fn tag_field_mapping_with(value_ignore_above: u64, normalizer: Option<TagNormalizer>) -> Value {
    let mut m = json!({"type": "object", "dynamic": "strict", "properties": {
        KEY_TO_VALUE_FIELD: {"type": "keyword", "ignore_above": MAX_TAG_IGNORE_ABOVE},
        VALUE_FIELD: {"type": "keyword", "ignore_above": value_ignore_above.min(MAX_TAG_IGNORE_ABOVE)}
    }});
    if let Some(n) = normalizer {
        for sub in [KEY_TO_VALUE_FIELD, VALUE_FIELD] {
            m["properties"][sub]["normalizer"] = json!(n.name());
        }
    }
    m
}

/// The `ignore_above` of the legacy tag fields: the largest one in the dynamic templates that
/// address the tag map (their mapping or its keyword sub-fields) and in the mapped tag
/// properties; None when none has one.
pub fn legacy_tag_ignore_above(mappings: &Map<String, Value>, legacy_path: &str) -> Option<u64> {
    fn own(m: &Value) -> Vec<u64> {
        let mut out: Vec<u64> = m.get("ignore_above").and_then(Value::as_u64).into_iter().collect();
        if let Some(Value::Object(fields)) = m.get("fields") {
            out.extend(fields.values().filter_map(|f| f.get("ignore_above")?.as_u64()));
        }
        out
    }
    fn walk(m: &Value, out: &mut Vec<u64>) {
        out.extend(own(m));
        if let Some(Value::Object(props)) = m.get("properties") {
            props.values().for_each(|p| walk(p, out));
        }
    }
    let mut found = Vec::new();
    if let Some(Value::Array(templates)) = mappings.get("dynamic_templates") {
        for t in templates.iter().filter_map(|n| n.as_object()?.values().next()) {
            let addresses_tags = match t.get("path_match") {
                Some(Value::String(p)) => targets_tags(p, legacy_path),
                Some(Value::Array(ps)) => ps.iter().any(|p| p.as_str().is_some_and(|p| targets_tags(p, legacy_path))),
                _ => false,
            };
            if addresses_tags {
                found.extend(t.get("mapping").map(own).unwrap_or_default());
            }
        }
    }
    let mut node = Value::Object(mappings.clone());
    for seg in legacy_path.split('.') {
        node = node.get("properties").and_then(|p| p.get(seg)).cloned().unwrap_or(Value::Null);
    }
    if let Some(Value::Object(props)) = node.get("properties") {
        props.values().for_each(|p| walk(p, &mut found));
    }
    found.into_iter().max()
}

fn target_mappings(legacy: Map<String, Value>, tags: &TagRewrite, normalizer: Option<TagNormalizer>) -> Result<Map<String, Value>, MappingError> {
    let types = mapping_types(&legacy);
    if types.len() > 1 {
        return Err(MappingError::MultipleTypes { types });
    }
    let mut m = drop_type_level(legacy);
    let value_ignore_above = legacy_tag_ignore_above(&m, &tags.legacy_path).unwrap_or(MAX_TAG_IGNORE_ABOVE);
    legacy_types::translate_legacy_types(&mut m);
    drop_tag_templates(&mut m, &tags.legacy_path);
    let segs: Vec<&str> = tags.legacy_path.split('.').collect();
    remove_property(&mut m, &segs);
    let props = m.entry("properties").or_insert_with(|| json!({}));
    let props = props.as_object_mut().ok_or(MappingError::NotAnObject { what: "mappings.properties".into() })?;
    if props.contains_key(&tags.target_field) {
        return Err(MappingError::TargetFieldCollision { field: tags.target_field.clone() });
    }
    props.insert(tags.target_field.clone(), tag_field_mapping_with(value_ignore_above, normalizer));
    Ok(m)
}

/// The type names of a typed legacy mapping (`{"<type>": {..}, ..}`, `_default_` left out),
/// sorted; empty for a typeless one. Every key but `_default_` must be a type name (not a
/// mapping parameter, not starting with `_` but for `_doc`) whose value looks like a type's
/// body, so a typeless mapping with unknown root parameters is never taken for types.
fn mapping_types(m: &Map<String, Value>) -> Vec<String> {
    let type_body = |v: &Value| {
        v.as_object()
            .is_some_and(|o| o.contains_key("properties") || o.contains_key("dynamic_templates") || o.keys().all(|k| MAPPING_PARAMS.contains(&k.as_str())))
    };
    let is_type = |k: &str, v: &Value| !MAPPING_PARAMS.contains(&k) && (!k.starts_with('_') || k == "_doc") && type_body(v);
    if !m.iter().all(|(k, v)| k == "_default_" || is_type(k, v)) {
        return Vec::new();
    }
    let mut types: Vec<String> = m.keys().filter(|k| *k != "_default_").cloned().collect();
    types.sort();
    types
}

/// Unwraps a 6.x-style `{"<type>": {properties..}}` mapping (and drops a `_default_` beside it).
fn drop_type_level(mut m: Map<String, Value>) -> Map<String, Value> {
    let is_type_name = |k: &str| !MAPPING_PARAMS.contains(&k) && k != "_default_";
    if m.len() == 2 && m.get("_default_").is_some_and(Value::is_object) && m.keys().any(|k| is_type_name(k)) {
        m.remove("_default_");
    }
    // A type's body holds only mapping parameters (an index without fields yet: none at all).
    let type_body = |v: &Value| v.as_object().is_some_and(|o| o.keys().all(|k| MAPPING_PARAMS.contains(&k.as_str())));
    let is_type = m.len() == 1
        && m.iter().all(|(k, v)| {
            is_type_name(k) && v.is_object() && (k == "_doc" || v.get("properties").is_some() || v.get("dynamic_templates").is_some() || type_body(v))
        });
    if !is_type {
        return m;
    }
    match m.into_iter().next() {
        Some((_, Value::Object(inner))) => inner,
        _ => Map::new(),
    }
}

/// True when a `path_match` pattern addresses the tag map or its children.
fn targets_tags(pattern: &str, legacy_path: &str) -> bool {
    pattern.strip_prefix(legacy_path).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '*']))
}

/// Removes dynamic templates (or `path_match` patterns) addressing the tag map; the target
/// maps its tags explicitly and strictly.
fn drop_tag_templates(m: &mut Map<String, Value>, legacy_path: &str) {
    let Some(Value::Array(templates)) = m.get_mut("dynamic_templates") else {
        return;
    };
    templates.retain_mut(|named| {
        let Some(template) = named.as_object_mut().and_then(|o| o.values_mut().next()) else {
            return true;
        };
        match template.get_mut("path_match") {
            Some(Value::String(p)) => !targets_tags(p, legacy_path),
            Some(Value::Array(ps)) => {
                ps.retain(|p| !p.as_str().is_some_and(|p| targets_tags(p, legacy_path)));
                !ps.is_empty()
            }
            _ => true,
        }
    });
    if templates.is_empty() {
        m.remove("dynamic_templates");
    }
}

/// Removes the property at `segs`, and parents left without properties. Returns whether
/// anything was removed.
fn remove_property(mapping: &mut Map<String, Value>, segs: &[&str]) -> bool {
    let Some(Value::Object(props)) = mapping.get_mut("properties") else {
        return false;
    };
    let Some((first, rest)) = segs.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return props.remove(*first).is_some();
    }
    let Some(Value::Object(child)) = props.get_mut(*first) else {
        return false;
    };
    let removed = remove_property(child, rest);
    let emptied = child.get("properties").is_none_or(|p| p.as_object().is_some_and(Map::is_empty));
    if removed && emptied {
        props.remove(*first);
    }
    removed
}

#[cfg(test)]
mod tests;
