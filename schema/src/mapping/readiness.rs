//! The start-up check both writers run against an existing target index.

use super::dependencies::{cluster_dependencies, ClusterDependency};
use super::settings::flat_index_settings;
use super::MAX_TAG_IGNORE_ABOVE;
use super::{index_body, parse_time_value_ms};
use crate::rewrite::{TagRewrite, KEY_TO_VALUE_FIELD, VALUE_FIELD};
use serde_json::Value;

/// Elasticsearch's default `index.gc_deletes`.
const DEFAULT_GC_DELETES: &str = "60s";

/// Checks, at writer start, that an existing target index is fit: the tag field mapped as an
/// object of keyword `keyToValue`/`value` (not `nested`, which the plain term queries would
/// miss), its `dynamic` `strict` or `false` (inherited from the root when unset) so no stray
/// sub-field can appear, both keywords with an `ignore_above` of at most
/// [`MAX_TAG_IGNORE_ABOVE`] (else one tag over Lucene's term limit costs the whole document),
/// `gc_deletes` at least `min_gc_deletes_ms` so deletes are not resurrected, and
/// `translog.durability` not `async` (an acknowledged write could be lost in a node crash).
/// Returns the problems, empty when fit. Accepts the index body or the whole `GET /<index>`
/// response. (Whether the index's pipelines exist is a question for the cluster:
/// [`super::cluster_dependencies`] lists them.)
pub fn readiness_problems(actual_index: &Value, tags: &TagRewrite, min_gc_deletes_ms: u64) -> Vec<String> {
    let index = index_body(actual_index);
    let mut problems = tag_field_problems(index, tags);
    problems.extend(gc_deletes_problem(index, min_gc_deletes_ms));
    problems.extend(translog_problem(index));
    problems
}

/// Why `translog.durability: async` is refused: shared by `backfill create-index` and the
/// writers' start-up check, each adding its own fix.
pub const ASYNC_TRANSLOG_WHY: &str = "Elasticsearch then acknowledges a write before its translog is fsynced, so after the indexer commits a record's offset (or the backfill checkpoints a page) the write can still be lost in a node crash, and nothing would ever write it again";

fn translog_problem(index: &Value) -> Option<String> {
    let settings = index.get("settings").and_then(Value::as_object).cloned().unwrap_or_default();
    cluster_dependencies(&settings).into_iter().find_map(|d| match d {
        ClusterDependency::AsyncTranslog { key, value } => Some(format!(
            "{key} is `{value}`: {ASYNC_TRANSLOG_WHY}; set it to `request` (PUT /<index>/_settings {{\"{key}\": \"request\"}}; `backfill create-index --setting {key}=request` when creating it)"
        )),
        _ => None,
    })
}

fn tag_field_problems(index: &Value, tags: &TagRewrite) -> Vec<String> {
    let field = &tags.target_field;
    let mappings = index.get("mappings").unwrap_or(&Value::Null);
    let Some(def) = mappings.get("properties").and_then(|p| p.get(field)) else {
        return vec![format!("tag field `{field}` is not mapped")];
    };
    let mut problems = Vec::new();
    let kind = def.get("type").and_then(Value::as_str).unwrap_or("object");
    if kind != "object" {
        problems.push(format!("tag field `{field}` is mapped as `{kind}`, expected an object"));
    }
    for sub in [KEY_TO_VALUE_FIELD, VALUE_FIELD] {
        let sub_type = def.get("properties").and_then(|p| p.get(sub)).and_then(|d| d.get("type"));
        if sub_type.and_then(Value::as_str) != Some("keyword") {
            let found = sub_type.map_or("unmapped".to_owned(), |t| format!("`{}`", t.as_str().unwrap_or("?")));
            problems.push(format!("`{field}.{sub}` is {found}, expected `keyword`"));
            continue;
        }
        let ignore_above =
            def.get("properties").and_then(|p| p.get(sub)).and_then(|d| d.get("ignore_above")).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        if ignore_above.is_none_or(|n| n > MAX_TAG_IGNORE_ABOVE) {
            let shown = ignore_above.map_or("no `ignore_above`".to_owned(), |n| format!("`ignore_above` {n}"));
            problems.push(format!(
                "`{field}.{sub}` has {shown}: a tag over Lucene's 32766-byte term limit would make the target refuse the whole document; set `ignore_above` to at most {MAX_TAG_IGNORE_ABOVE} (`backfill create-index` does; PUT /<index>/_mapping can change it)"
            ));
        }
    }
    let dynamic = def.get("dynamic").or_else(|| mappings.get("dynamic"));
    let dynamic_text = dynamic.map(|d| d.as_str().map_or(d.to_string(), str::to_owned)).unwrap_or("true".into());
    if dynamic_text != "strict" && dynamic_text != "false" {
        problems.push(format!("`{field}` has dynamic `{dynamic_text}`, expected `strict` or `false`"));
    }
    problems
}

/// The index's `index.gc_deletes` in milliseconds (Elasticsearch's 60 s when unset), `None`
/// when it is not a usable duration. Accepts the index body or the whole `GET /<index>`
/// response.
pub fn gc_deletes_ms(actual_index: &Value) -> Option<u64> {
    parse_time_value_ms(&gc_deletes_text(index_body(actual_index)))
}

/// The index's `index.gc_deletes` as set, or Elasticsearch's default.
fn gc_deletes_text(index: &Value) -> String {
    let settings = index.get("settings").and_then(Value::as_object).cloned().unwrap_or_default();
    let flat = flat_index_settings(&settings);
    flat.get("gc_deletes").map(|v| v.as_str().map_or(v.to_string(), str::to_owned)).unwrap_or_else(|| DEFAULT_GC_DELETES.to_owned())
}

fn gc_deletes_problem(index: &Value, min_ms: u64) -> Option<String> {
    let text = gc_deletes_text(index);
    let text = text.as_str();
    match parse_time_value_ms(text) {
        Some(ms) if ms >= min_ms => None,
        Some(ms) => Some(format!(
            "index.gc_deletes is {text} ({ms} ms) < {min_ms} ms: a delete's version would be forgotten during the migration and a stale write could resurrect the document"
        )),
        None => Some(format!("index.gc_deletes `{text}` is not a usable duration")),
    }
}
