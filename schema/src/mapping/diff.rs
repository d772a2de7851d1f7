//! Comparing an expected index definition with what the cluster reports.

use super::settings::{flat_index_settings, listed, SERVER_SETTINGS};
use super::{index_body, parse_time_value_ms};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Compares the expected definition with what `GET /<target-index>` reports (the value under
/// the index name, or the whole response for one index) and returns human-readable
/// differences such as `mappings.properties.title.type: expected keyword, found text`; empty
/// means the same. Settings are compared in flat index-relative form whatever form each side
/// uses, scalars by their text (`1` == `"1"`, `false` == `"false"`), time values by duration;
/// settings the server adds itself ([`super::SERVER_SETTINGS`]) are ignored, and an object
/// property's implicit `"type": "object"` is not a difference.
pub fn definition_differences(expected: &Value, actual_index: &Value) -> Vec<String> {
    let (expected, actual) = (index_body(expected), index_body(actual_index));
    let mut out = Vec::new();
    compare(&mappings_leaves(expected), &mappings_leaves(actual), &mut out);
    compare(&settings_leaves(expected), &settings_leaves(actual), &mut out);
    compare(&tree_leaves(expected, "aliases"), &tree_leaves(actual, "aliases"), &mut out);
    out
}

type Leaves = BTreeMap<String, Value>;

fn object(v: &Value, name: &str) -> Map<String, Value> {
    v.get(name).and_then(Value::as_object).cloned().unwrap_or_default()
}

fn settings_leaves(index: &Value) -> Leaves {
    flat_index_settings(&object(index, "settings"))
        .into_iter()
        .filter(|(k, _)| !listed(k, SERVER_SETTINGS))
        .map(|(k, v)| (format!("settings.index.{k}"), v))
        .collect()
}

fn mappings_leaves(index: &Value) -> Leaves {
    let mut mappings = object(index, "mappings");
    if let Some(Value::Object(props)) = mappings.get_mut("properties") {
        drop_implicit_object_type(props);
    }
    let mut out = Leaves::new();
    leaves_into(&Value::Object(mappings), "mappings", &mut out);
    out
}

fn tree_leaves(index: &Value, name: &str) -> Leaves {
    let mut out = Leaves::new();
    leaves_into(&Value::Object(object(index, name)), name, &mut out);
    out
}

/// Elasticsearch omits `"type": "object"` when reporting object properties.
fn drop_implicit_object_type(props: &mut Map<String, Value>) {
    for def in props.values_mut().filter_map(Value::as_object_mut) {
        if def.get("type").and_then(Value::as_str) == Some("object") {
            def.remove("type");
        }
        if let Some(Value::Object(inner)) = def.get_mut("properties") {
            drop_implicit_object_type(inner);
        }
    }
}

/// Every scalar leaf under dotted paths (array items by index); an empty object or array is a
/// leaf of its own so its presence still counts.
fn leaves_into(v: &Value, path: &str, out: &mut Leaves) {
    match v {
        Value::Object(m) if !m.is_empty() => m.iter().for_each(|(k, c)| leaves_into(c, &format!("{path}.{k}"), out)),
        Value::Array(a) if !a.is_empty() => a.iter().enumerate().for_each(|(i, c)| leaves_into(c, &format!("{path}.{i}"), out)),
        leaf => {
            out.insert(path.to_owned(), leaf.clone());
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    let (a, b) = (text(a), text(b));
    a == b || matches!((parse_time_value_ms(&a), parse_time_value_ms(&b)), (Some(x), Some(y)) if x == y)
}

fn compare(expected: &Leaves, actual: &Leaves, out: &mut Vec<String>) {
    for (path, want) in expected {
        match actual.get(path) {
            None => out.push(format!("{path}: expected {}, missing", text(want))),
            Some(got) if !same(want, got) => out.push(format!("{path}: expected {}, found {}", text(want), text(got))),
            Some(_) => {}
        }
    }
    for (path, got) in actual.iter().filter(|(p, _)| !expected.contains_key(*p)) {
        out.push(format!("{path}: unexpected {}", text(got)));
    }
}
