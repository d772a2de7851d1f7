//! Tests of the whole-document transform.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("test literal is an object").clone()
}

fn rewrite(v: Value) -> Result<Value, RewriteError> {
    TagRewrite::default().to_target(&obj(v)).map(Value::Object)
}

#[test]
fn realistic_document() {
    let legacy = json!({
        "title": "hello", "version": 7,
        "actions": {"tags": {"name": "John", "age": 42, "vip": true, "nick": ["J", null, "J"],
                              "addr": {"city": "Athens", "zip": null}, "gone": null, "a:b": "c:d"}}
    });
    let target = json!({
        "title": "hello", "version": 7,
        "tags": [
            {"keyToValue": r"a\:b:c:d", "value": "c:d"},
            {"keyToValue": "addr.city:Athens", "value": "Athens"},
            {"keyToValue": "age:42", "value": "42"},
            {"keyToValue": "name:John", "value": "John"},
            {"keyToValue": "nick:J", "value": "J"},
            {"keyToValue": "vip:true", "value": "true"},
        ]
    });
    assert_eq!(rewrite(legacy), Ok(target));
}

#[test]
fn absent_or_empty_tags_give_empty_array() {
    assert_eq!(rewrite(json!({"x": 1})), Ok(json!({"x": 1, "tags": []})));
    assert_eq!(rewrite(json!({"actions": {"tags": {}}})), Ok(json!({"tags": []})));
    assert_eq!(rewrite(json!({"actions": {}})), Ok(json!({"tags": []})));
    assert_eq!(rewrite(json!({"actions": {"tags": null}})), Ok(json!({"tags": []})));
    assert_eq!(
        rewrite(json!({"actions": {"tags": {"a": 1}, "clicks": 3}})),
        Ok(json!({"actions": {"clicks": 3}, "tags": [{"keyToValue": "a:1", "value": "1"}]}))
    );
}

#[test]
fn rejects_non_object_tags_and_collisions() {
    assert_eq!(rewrite(json!({"actions": {"tags": ["a"]}})), Err(RewriteError::TagsNotAnObject { path: "actions.tags".into() }));
    assert_eq!(rewrite(json!({"actions": "x"})), Err(RewriteError::TagsNotAnObject { path: "actions".into() }));
    assert_eq!(rewrite(json!({"tags": ["x"]})), Err(RewriteError::TargetFieldCollision { field: "tags".into() }));
}

#[test]
fn legacy_map_may_share_the_target_name() {
    let tr = TagRewrite { legacy_path: "tags".into(), target_field: "tags".into() };
    let out = tr.to_target(&obj(json!({"tags": {"k": "v"}}))).unwrap();
    assert_eq!(Value::Object(out), json!({"tags": [{"keyToValue": "k:v", "value": "v"}]}));
}

#[test]
fn target_tags_roundtrip_and_reject_garbage() {
    let tr = TagRewrite::default();
    let target = tr.to_target(&obj(json!({"actions": {"tags": {"b": [2, 1], "a:": "x"}}}))).unwrap();
    assert_eq!(tr.target_tags(&target).unwrap(), vec![TargetTag::new("a:", "x"), TargetTag::new("b", "1"), TargetTag::new("b", "2")]);
    assert_eq!(tr.target_tags(&Map::new()), Ok(vec![]));
    for bad in [
        json!({"tags": "x"}),
        json!({"tags": [{"keyToValue": "a:b"}]}),
        json!({"tags": [{"keyToValue": "ab", "value": "b"}]}),
        json!({"tags": [{"keyToValue": "a:b", "value": "c"}]}),
    ] {
        assert!(matches!(tr.target_tags(&obj(bad)), Err(RewriteError::BadTargetTag { .. })));
    }
}

#[test]
fn set_target_tags_sorts_dedups_and_keeps_empty() {
    let tr = TagRewrite::default();
    let mut doc = obj(json!({"tags": [{"keyToValue": "z:z", "value": "z"}]}));
    tr.set_target_tags(&mut doc, vec![TargetTag::new("b", "1"), TargetTag::new("a", "2"), TargetTag::new("b", "1")]);
    assert_eq!(Value::Object(doc.clone()), json!({"tags": [{"keyToValue": "a:2", "value": "2"}, {"keyToValue": "b:1", "value": "1"}]}));
    tr.set_target_tags(&mut doc, vec![]);
    assert_eq!(Value::Object(doc), json!({"tags": []}));
}

#[test]
fn reserved_fields() {
    let tr = TagRewrite::default();
    for name in ["actions", "actions.tags", "actions.x", "tags", "tags.keyToValue"] {
        assert!(tr.is_reserved_field(name), "{name}");
    }
    for name in ["action", "actionsx", "tag", "title"] {
        assert!(!tr.is_reserved_field(name), "{name}");
    }
}

/// Arbitrary JSON with a bounded depth, biased to tricky tag keys.
pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-c:.\\\\ é]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c.:]{0,3}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Legacy documents: some ordinary fields plus maybe an `actions` object with maybe tags.
pub(crate) fn arb_legacy_doc() -> impl Strategy<Value = Map<String, Value>> {
    let other = prop::collection::btree_map("[d-f]{1,3}", arb_json(), 0..4);
    let tags = prop::option::of(prop::collection::btree_map("[a-c.:\\\\]{0,3}", arb_json(), 0..5));
    let actions_extra = prop::option::of(arb_json());
    (other, tags, actions_extra).prop_map(|(other, tags, extra)| {
        let mut doc: Map<String, Value> = other.into_iter().collect();
        let mut actions = Map::new();
        if let Some(extra) = extra {
            actions.insert("clicks".into(), extra);
        }
        if let Some(tags) = tags {
            actions.insert("tags".into(), Value::Object(tags.into_iter().collect()));
        }
        if !actions.is_empty() {
            doc.insert("actions".into(), Value::Object(actions));
        }
        doc
    })
}

proptest! {
    #[test]
    fn deterministic_bytes(doc in arb_legacy_doc()) {
        let tr = TagRewrite::default();
        let a = serde_json::to_vec(&tr.to_target(&doc).unwrap()).unwrap();
        let b = serde_json::to_vec(&tr.to_target(&doc.clone()).unwrap()).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn other_fields_pass_through(doc in arb_legacy_doc()) {
        let out = TagRewrite::default().to_target(&doc).unwrap();
        for (k, v) in doc.iter().filter(|(k, _)| k.as_str() != "actions") {
            prop_assert_eq!(out.get(k), Some(v));
        }
        let clicks = doc.get("actions").and_then(|a| a.get("clicks"));
        prop_assert_eq!(out.get("actions").and_then(|a| a.get("clicks")), clicks);
        prop_assert_eq!(out.len(), doc.len() + 1 - usize::from(doc.contains_key("actions") && clicks.is_none()));
    }

    #[test]
    fn target_tags_reads_back_what_was_flattened(doc in arb_legacy_doc()) {
        let tr = TagRewrite::default();
        let out = tr.to_target(&doc).unwrap();
        let mut expected = Vec::new();
        if let Some(Value::Object(tags)) = doc.get("actions").and_then(|a| a.get("tags")) {
            for (k, v) in tags {
                expected.extend(tag_entries(v, k).unwrap());
            }
        }
        expected.sort();
        expected.dedup();
        prop_assert_eq!(tr.target_tags(&out).unwrap(), expected);
    }
}
