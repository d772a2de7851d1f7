//! Flattening one legacy tag value into target pairs, mirroring how Elasticsearch indexes a
//! dynamic object (see the rules in the `rewrite` module doc).

use super::{RewriteError, TargetTag};
use serde_json::Value;

/// Flattens one legacy tag value under `key` into sorted, deduplicated pairs: scalars become
/// their text, null is dropped, arrays give one pair per element, objects give dotted keys.
/// The `Result` is part of the contract so stricter rules can be added without breaking
/// callers; today every JSON value flattens.
pub fn tag_entries(value: &Value, key: &str) -> Result<Vec<TargetTag>, RewriteError> {
    let mut out = Vec::new();
    flatten_into(value, key, &mut out);
    out.sort();
    out.dedup();
    Ok(out)
}

/// Depth-first walk; depth is bounded by serde_json's parser recursion limit.
fn flatten_into(value: &Value, key: &str, out: &mut Vec<TargetTag>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push(TargetTag::new(key, b.to_string())),
        Value::Number(n) => out.push(TargetTag::new(key, n.to_string())),
        Value::String(s) => out.push(TargetTag::new(key, s.as_str())),
        Value::Array(items) => items.iter().for_each(|item| flatten_into(item, key, out)),
        Value::Object(map) => {
            for (sub, item) in map {
                flatten_into(item, &format!("{key}.{sub}"), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(value: Value, key: &str) -> Vec<(String, String)> {
        tag_entries(&value, key).unwrap().into_iter().map(|t| (t.key, t.value)).collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn scalars_become_their_json_text() {
        assert_eq!(pairs(json!("x"), "k"), vec![p("k", "x")]);
        assert_eq!(pairs(json!(5), "k"), vec![p("k", "5")]);
        assert_eq!(pairs(json!(1.5), "k"), vec![p("k", "1.5")]);
        assert_eq!(pairs(json!(-2), "k"), vec![p("k", "-2")]);
        assert_eq!(pairs(json!(true), "k"), vec![p("k", "true")]);
    }

    #[test]
    fn null_is_dropped_everywhere() {
        assert!(pairs(json!(null), "k").is_empty());
        assert_eq!(pairs(json!([null, "a", null]), "k"), vec![p("k", "a")]);
        assert!(pairs(json!({"a": null}), "k").is_empty());
    }

    #[test]
    fn arrays_flatten_deeply_and_dedup() {
        assert_eq!(pairs(json!(["b", ["a", ["b"]], 1]), "k"), vec![p("k", "1"), p("k", "a"), p("k", "b")]);
        assert!(pairs(json!([]), "k").is_empty());
    }

    #[test]
    fn objects_become_dotted_keys() {
        assert_eq!(pairs(json!({"a": {"b": "x"}, "c": ["y", {"d": 2}]}), "k"), vec![p("k.a.b", "x"), p("k.c", "y"), p("k.c.d", "2")]);
        assert!(pairs(json!({}), "k").is_empty());
    }
}
