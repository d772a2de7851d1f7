//! Access to the tag map inside a legacy-form document: taking it out for the rewrite, finding
//! it for merges, and removing a key the way the target form can mirror.

use super::{key_is_under, RewriteError};
use serde_json::{Map, Value};

/// Removes the tag map at `segs` from `doc` and returns it (None when absent or null). Parent
/// objects on the path left empty are removed, as are nulls on the path.
pub(crate) fn take_tags(doc: &mut Map<String, Value>, segs: &[&str]) -> Result<Option<Map<String, Value>>, RewriteError> {
    take_at(doc, segs, 0)
}

fn take_at(map: &mut Map<String, Value>, segs: &[&str], i: usize) -> Result<Option<Map<String, Value>>, RewriteError> {
    let seg = segs[i];
    let last = i + 1 == segs.len();
    match map.get_mut(seg) {
        None => Ok(None),
        Some(Value::Null) => {
            map.remove(seg);
            Ok(None)
        }
        Some(Value::Object(_)) if last => match map.remove(seg) {
            Some(Value::Object(tags)) => Ok(Some(tags)),
            _ => unreachable!("matched an object just above"),
        },
        Some(Value::Object(inner)) => {
            let taken = take_at(inner, segs, i + 1)?;
            if inner.is_empty() {
                map.remove(seg);
            }
            Ok(taken)
        }
        Some(_) => Err(RewriteError::TagsNotAnObject { path: segs[..=i].join(".") }),
    }
}

/// The tag map at `segs`, mutable. With `create`, absent or null objects on the path are
/// created (what the legacy indexer does when adding a tag). None when the path is blocked by
/// a non-object, which the rewrite rejects anyway.
pub(crate) fn tags_mut<'a>(doc: &'a mut Map<String, Value>, segs: &[&str], create: bool) -> Option<&'a mut Map<String, Value>> {
    let mut cur = doc;
    for seg in segs {
        if create && cur.get(*seg).is_none_or(Value::is_null) {
            cur.insert((*seg).to_owned(), Value::Object(Map::new()));
        }
        cur = match cur.get_mut(*seg) {
            Some(Value::Object(inner)) => inner,
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes tag `key` from a legacy tag map so that the result flattens to exactly the old
/// pairs minus those whose key is `key` or starts with `key.`, which is what the target form
/// can do with its flat keys. Beyond removing `map[key]` this also removes literal dotted keys
/// (`"key.x"`) and descends into nested objects (and arrays) when `key` is dotted (removing
/// `"a.b"` removes `b` inside `{"a": {"b": ..}}`). Elasticsearch itself conflates all these
/// spellings into one field, so this is the consistent reading of "remove tag `key`".
pub fn remove_tag_key(map: &mut Map<String, Value>, key: &str) {
    map.retain(|k, _| !key_is_under(k, key));
    for (k, value) in map.iter_mut() {
        if let Some(rest) = key.strip_prefix(k.as_str()).and_then(|r| r.strip_prefix('.')) {
            remove_in_value(value, rest);
        }
    }
}

fn remove_in_value(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => remove_tag_key(map, key),
        Value::Array(items) => items.iter_mut().for_each(|item| remove_in_value(item, key)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn removes_key_and_dotted_spellings() {
        let mut m = obj(json!({"k": 1, "k.x": 2, "kk": 3, "a": {"b": 1, "c": [{"b": 2, "d": 3}, "z"]}}));
        remove_tag_key(&mut m, "k");
        assert_eq!(Value::Object(m.clone()), json!({"kk": 3, "a": {"b": 1, "c": [{"b": 2, "d": 3}, "z"]}}));
        remove_tag_key(&mut m, "a.c.b");
        assert_eq!(Value::Object(m.clone()), json!({"kk": 3, "a": {"b": 1, "c": [{"d": 3}, "z"]}}));
        remove_tag_key(&mut m, "a.b");
        assert_eq!(Value::Object(m), json!({"kk": 3, "a": {"c": [{"d": 3}, "z"]}}));
    }

    #[test]
    fn take_prunes_empty_and_null_parents() {
        let segs = ["actions", "tags"];
        let mut d = obj(json!({"actions": {"tags": {"a": 1}}, "x": 1}));
        assert_eq!(take_tags(&mut d, &segs).unwrap(), Some(obj(json!({"a": 1}))));
        assert_eq!(Value::Object(d), json!({"x": 1}));
        let mut d = obj(json!({"actions": {"tags": {"a": 1}, "other": 2}}));
        take_tags(&mut d, &segs).unwrap();
        assert_eq!(Value::Object(d), json!({"actions": {"other": 2}}));
        let mut d = obj(json!({"actions": null}));
        assert_eq!(take_tags(&mut d, &segs).unwrap(), None);
        assert!(d.is_empty());
        let mut d = obj(json!({"actions": {"tags": 5}}));
        assert_eq!(take_tags(&mut d, &segs), Err(RewriteError::TagsNotAnObject { path: "actions.tags".into() }));
    }

    #[test]
    fn tags_mut_creates_only_when_asked() {
        let segs = ["actions", "tags"];
        let mut d = Map::new();
        assert!(tags_mut(&mut d, &segs, false).is_none());
        tags_mut(&mut d, &segs, true).unwrap().insert("k".into(), json!("v"));
        assert_eq!(Value::Object(d), json!({"actions": {"tags": {"k": "v"}}}));
        let mut d = obj(json!({"actions": 3}));
        assert!(tags_mut(&mut d, &segs, true).is_none());
    }
}
