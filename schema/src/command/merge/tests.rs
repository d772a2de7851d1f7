//! Unit and property tests of merge application.

use super::*;
use crate::rewrite::tests::{arb_json, arb_legacy_doc};
use proptest::prelude::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

fn patch(v: Value) -> MergePatch {
    let strings =
        |f: &str| -> Vec<String> { v.get(f).and_then(Value::as_array).map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default() };
    let map = |f: &str| v.get(f).and_then(Value::as_object).cloned().unwrap_or_default();
    MergePatch { set: map("set"), unset: strings("unset"), tags_add: map("tags_add"), tags_remove: strings("tags_remove") }
}

#[test]
fn legacy_merge_in_order() {
    let tr = TagRewrite::default();
    let mut doc = obj(json!({"a": 1, "b": 2, "actions": {"tags": {"x": 1, "y": 2}}}));
    patch(json!({"set": {"a": 10, "c": 3}, "unset": ["b", "c"], "tags_remove": ["x", "z"],
                 "tags_add": {"y": [3, 4], "w": {"n": 1}, "z": null}}))
    .apply_legacy(&mut doc, &tr);
    assert_eq!(Value::Object(doc), json!({"a": 10, "actions": {"tags": {"y": [3, 4], "w": {"n": 1}}}}));
}

#[test]
fn legacy_merge_creates_path_and_keeps_empty_map() {
    let tr = TagRewrite::default();
    let mut doc = obj(json!({"actions": null}));
    patch(json!({"tags_add": {"k": "v"}})).apply_legacy(&mut doc, &tr);
    assert_eq!(Value::Object(doc.clone()), json!({"actions": {"tags": {"k": "v"}}}));
    patch(json!({"tags_remove": ["k"]})).apply_legacy(&mut doc, &tr);
    assert_eq!(Value::Object(doc), json!({"actions": {"tags": {}}}));
    let mut doc = Map::new();
    patch(json!({"tags_remove": ["k"]})).apply_legacy(&mut doc, &tr);
    assert!(doc.is_empty(), "removal does not create the path");
}

#[test]
fn target_merge_replaces_nested_keys() {
    let tr = TagRewrite::default();
    let mut doc = tr.to_target(&obj(json!({"actions": {"tags": {"k": {"a": 1}, "kk": 2, "j": 3}}}))).unwrap();
    patch(json!({"tags_add": {"k": "v"}, "tags_remove": ["j"]})).apply_target(&mut doc, &tr).unwrap();
    assert_eq!(Value::Object(doc), json!({"tags": [{"keyToValue": "k:v", "value": "v"}, {"keyToValue": "kk:2", "value": "2"}]}));
}

#[test]
fn target_merge_rejects_reserved_fields() {
    let tr = TagRewrite::default();
    for p in [json!({"set": {"tags": []}}), json!({"unset": ["actions"]}), json!({"set": {"actions.tags": {}}})] {
        let mut doc = obj(json!({"tags": []}));
        assert!(matches!(patch(p).apply_target(&mut doc, &tr), Err(RewriteError::ReservedField { .. })));
    }
}

/// Legacy docs including the awkward shapes of the tag path.
fn arb_doc() -> impl Strategy<Value = Map<String, Value>> {
    prop_oneof![
        4 => arb_legacy_doc(),
        1 => Just(obj(json!({"actions": null}))),
        1 => Just(obj(json!({"actions": {}}))),
        1 => Just(obj(json!({"actions": {"tags": null}, "d": 1}))),
        1 => Just(obj(json!({"actions": {"tags": {"k": {"a": 1, "b": [2, {"c": 3}]}, "k.a": 4, "k.b.c": 5}}}))),
    ]
}

fn arb_patch() -> impl Strategy<Value = MergePatch> {
    let tag_key = "[abck.:\\\\]{0,3}";
    (
        prop::collection::btree_map("[d-g]{1,2}", arb_json(), 0..3),
        prop::collection::vec("[d-g]{1,2}", 0..3),
        prop::collection::btree_map(tag_key, arb_json(), 0..4),
        prop::collection::vec(tag_key, 0..3),
    )
        .prop_map(|(set, unset, tags_add, tags_remove)| MergePatch {
            set: set.into_iter().collect(),
            unset,
            tags_add: tags_add.into_iter().collect(),
            tags_remove,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn merge_commutes_with_rewrite(doc in arb_doc(), p in arb_patch()) {
        let tr = TagRewrite::default();
        let Ok(mut target) = tr.to_target(&doc) else { return Ok(()) };
        let mut legacy = doc.clone();
        p.apply_legacy(&mut legacy, &tr);
        p.apply_target(&mut target, &tr).unwrap();
        prop_assert_eq!(tr.to_target(&legacy).unwrap(), target);
    }
}
