//! One test per decode error kind, plus the happy paths.

use super::*;
use crate::command::{MergePatch, Op};
use serde_json::json;
use DecodeErrorKind::*;

fn cfg() -> DecodeConfig {
    DecodeConfig::new(VersionSource::Field("version".into()))
}

fn rec(payload: &[u8]) -> RawRecord<'_> {
    RawRecord { topic: "cmds", partition: 1, offset: 42, key: None, payload: Some(payload), headers: vec![] }
}

fn decode_json(v: Value) -> Result<Command, DecodeError> {
    let bytes = serde_json::to_vec(&v).unwrap();
    decode(&rec(&bytes), &cfg())
}

fn kind_of(v: Value) -> DecodeErrorKind {
    decode_json(v).expect_err("should fail").kind
}

#[test]
fn decodes_upsert() {
    let c = decode_json(json!({"op": "upsert", "id": "d1", "index": "docs", "version": 3, "routing": "r",
                              "doc": {"title": "x", "actions": {"tags": {"k": "v"}}}}))
    .unwrap();
    assert_eq!(c.id, "d1");
    assert_eq!(c.index, "docs");
    assert_eq!(c.version, 3);
    assert_eq!(c.routing.as_deref(), Some("r"));
    assert_eq!(c.target_index, "docs", "an unmapped index keeps its name");
    // The upsert carries the document already rewritten: the writers do not rewrite it again.
    let legacy = json!({"title": "x", "actions": {"tags": {"k": "v"}}});
    let target = cfg().tags.to_target(legacy.as_object().unwrap()).unwrap();
    assert!(target.contains_key("tags") && !target.contains_key("actions"), "{target:?}");
    assert_eq!(c.op, Op::Upsert(crate::EncodedDoc::from_map(&target)));
}

/// The document is rewritten from its text: a pretty-printed payload gives a one-line source,
/// and a version read from inside the document (which needs it as a value) gives the same.
#[test]
fn upsert_document_from_text_or_value_alike() {
    let body = json!({"op": "upsert", "id": "d1", "index": "docs", "doc": {"seq": 4, "b": {"y": 1, "x": [1, 2]}, "actions": {"tags": {"k": "v"}, "n": 2}}});
    let payload = serde_json::to_vec_pretty(&body).unwrap();
    let decode_with = |version: &str| {
        let cfg = DecodeConfig::new(version.parse().unwrap());
        let rec = RawRecord { topic: "t", partition: 0, offset: 1, key: None, payload: Some(&payload), headers: vec![] };
        let Op::Upsert(doc) = decode(&rec, &cfg).unwrap().op else { panic!("upsert expected") };
        doc
    };
    let as_text = decode_with("offset");
    let as_value = decode_with("field:doc.seq");
    assert!(!as_text.as_str().contains('\n'), "one line: {}", as_text.as_str());
    assert_eq!(as_text.to_map().unwrap(), as_value.to_map().unwrap());
    let legacy = body["doc"].as_object().unwrap();
    assert_eq!(as_value, crate::EncodedDoc::from_map(&TagRewrite::default().to_target(legacy).unwrap()));
}

#[test]
fn maps_the_index_once_at_decode() {
    let mut c = cfg();
    c.index_map = vec![("old".into(), "new".into()), ("a".into(), "b".into())];
    c.default_index = Some("old".into());
    assert_eq!(c.target_index("old"), "new");
    assert_eq!(c.target_index("a"), "b");
    assert_eq!(c.target_index("other"), "other");
    let bytes = serde_json::to_vec(&json!({"op": "delete", "id": "x", "index": "a", "version": 1})).unwrap();
    let got = decode(&rec(&bytes), &c).unwrap();
    assert_eq!((got.index.as_str(), got.target_index.as_str()), ("a", "b"), "the legacy name is kept beside the target");
    let bytes = serde_json::to_vec(&json!({"op": "delete", "id": "x", "version": 1})).unwrap();
    let got = decode(&rec(&bytes), &c).unwrap();
    assert_eq!((got.index.as_str(), got.target_index.as_str()), ("old", "new"), "the default index is mapped too");
    c.null_value = NullValuePolicy::Delete;
    c.version = VersionSource::Offset;
    let null = RawRecord { payload: None, key: Some(b"k"), ..rec(b"") };
    let got = decode(&null, &c).unwrap();
    assert_eq!((got.index.as_str(), got.target_index.as_str()), ("old", "new"), "a null-value delete is mapped too");
}

#[test]
fn decodes_merge_and_delete() {
    let c = decode_json(json!({"op": "merge", "id": 7, "index": "docs", "version": 0,
                              "set": {"a": 1}, "unset": ["b"], "tags_add": {"k": ["v"]}, "tags_remove": ["j"]}))
    .unwrap();
    assert_eq!(c.id, "7");
    let mut expected = MergePatch::default();
    expected.set.insert("a".into(), json!(1));
    expected.unset.push("b".into());
    expected.tags_add.insert("k".into(), json!(["v"]));
    expected.tags_remove.push("j".into());
    assert_eq!(c.op, Op::Merge(Box::new(expected)));
    let c = decode_json(json!({"op": "merge", "id": "x", "index": "i", "version": 1, "set": null})).unwrap();
    assert_eq!(c.op, Op::Merge(Box::default()));
    let c = decode_json(json!({"op": "delete", "id": "x", "index": "i", "version": 1, "routing": null})).unwrap();
    assert_eq!((c.op, c.routing), (Op::Delete, None));
}

#[test]
fn id_falls_back_to_key_and_index_to_default() {
    let payload = br#"{"op":"delete","version":5}"#;
    let mut r = rec(payload);
    r.key = Some(b"from-key");
    let mut c = cfg();
    c.default_index = Some("fallback".into());
    let cmd = decode(&r, &c).unwrap();
    assert_eq!((cmd.id.as_str(), cmd.index.as_str()), ("from-key", "fallback"));
}

#[test]
fn custom_envelope() {
    let mut c = cfg();
    c.envelope.op = "type".into();
    c.envelope.op_delete = "remove".into();
    c.envelope.id = "docId".into();
    let cmd = decode(&rec(br#"{"type":"remove","docId":"a","index":"i","version":1}"#), &c).unwrap();
    assert_eq!((cmd.id.as_str(), cmd.op), ("a", Op::Delete));
}

#[test]
fn error_carries_coordinates() {
    let e = decode(&rec(b"[1]"), &cfg()).unwrap_err();
    assert_eq!((e.kind, e.topic.as_str(), e.partition, e.offset), (NotAnObject, "cmds", 1, 42));
    assert!(e.to_string().starts_with("not_an_object at cmds[1]@42: "));
}

#[test]
fn empty_payload() {
    let r = rec(b"");
    assert_eq!(decode(&r, &cfg()).unwrap_err().kind, EmptyPayload);
}

fn null_rec<'a>(key: Option<&'a [u8]>, headers: Vec<(&'a str, Option<&'a [u8]>)>) -> RawRecord<'a> {
    RawRecord { topic: "cmds", partition: 0, offset: 9, key, payload: None, headers }
}

#[test]
fn null_value_is_dead_lettered_by_default_naming_the_flag() {
    let e = decode(&null_rec(Some(b"d1"), vec![]), &cfg()).unwrap_err();
    assert_eq!(e.kind, NullValue);
    assert!(e.detail.contains("--null-value delete"), "{e}");
}

#[test]
fn null_value_deletes_with_header_or_offset_versions() {
    let mut c = DecodeConfig::new(VersionSource::Header("v".into()));
    c.null_value = NullValuePolicy::Delete;
    c.default_index = Some("docs".into());
    let got = decode(&null_rec(Some(b"d1"), vec![("v", Some(b"17"))]), &c).unwrap();
    assert_eq!(got, Command { id: "d1".into(), index: "docs".into(), target_index: "docs".into(), version: 17, routing: None, op: Op::Delete });
    let missing = decode(&null_rec(Some(b"d1"), vec![]), &c).unwrap_err();
    assert_eq!(missing.kind, MissingVersion);
    c.version = VersionSource::Offset;
    assert_eq!(decode(&null_rec(Some(b"d1"), vec![]), &c).unwrap().version, 9);
}

#[test]
fn null_value_deletes_need_a_key_an_index_and_a_non_field_version() {
    let mut c = cfg();
    c.null_value = NullValuePolicy::Delete;
    c.default_index = Some("docs".into());
    let e = decode(&null_rec(Some(b"d1"), vec![]), &c).unwrap_err();
    assert_eq!(e.kind, NullValueUnversioned);
    assert!(e.detail.contains("header:<name> or offset"), "{e}");
    c.version = VersionSource::Offset;
    assert_eq!(decode(&null_rec(None, vec![]), &c).unwrap_err().kind, MissingId);
    c.default_index = None;
    let e = decode(&null_rec(Some(b"d1"), vec![]), &c).unwrap_err();
    assert_eq!(e.kind, MissingIndex);
    assert!(e.detail.contains("--default-index"), "{e}");
    // An empty (not null) value is never a delete.
    c.default_index = Some("docs".into());
    let mut empty = null_rec(Some(b"d1"), vec![]);
    empty.payload = Some(b"");
    assert_eq!(decode(&empty, &c).unwrap_err().kind, EmptyPayload);
}

#[test]
fn too_large_is_checked_before_parsing() {
    let mut c = cfg();
    c.max_bytes = 4;
    assert_eq!(decode(&rec(b"not json"), &c).unwrap_err().kind, TooLarge);
    assert_eq!(decode(&rec(b"{}"), &c).unwrap_err().kind, UnknownOp);
}

#[test]
fn invalid_utf8_json_and_non_objects() {
    assert_eq!(decode(&rec(b"{\"op\":\"\xff\"}"), &cfg()).unwrap_err().kind, InvalidUtf8);
    assert_eq!(decode(&rec(b"{\"op\":"), &cfg()).unwrap_err().kind, InvalidJson);
    assert_eq!(decode(&rec(b"\"x\""), &cfg()).unwrap_err().kind, NotAnObject);
    let mut r = rec(br#"{"op":"delete","index":"i","version":1}"#);
    r.key = Some(b"\xff");
    assert_eq!(decode(&r, &cfg()).unwrap_err().kind, InvalidUtf8);
}

#[test]
fn unknown_op() {
    assert_eq!(kind_of(json!({"id": "a", "index": "i", "version": 1})), UnknownOp);
    assert_eq!(kind_of(json!({"op": "index", "id": "a", "index": "i", "version": 1})), UnknownOp);
    assert_eq!(kind_of(json!({"op": 1, "id": "a", "index": "i", "version": 1})), UnknownOp);
}

#[test]
fn missing_and_bad_ids() {
    assert_eq!(kind_of(json!({"op": "delete", "index": "i", "version": 1})), MissingId);
    assert_eq!(kind_of(json!({"op": "delete", "id": "", "index": "i", "version": 1})), MissingId);
    assert_eq!(kind_of(json!({"op": "delete", "id": 1.5, "index": "i", "version": 1})), WrongFieldType);
    assert_eq!(kind_of(json!({"op": "delete", "id": ["a"], "index": "i", "version": 1})), WrongFieldType);
    assert_eq!(kind_of(json!({"op": "delete", "id": "x".repeat(513), "index": "i", "version": 1})), WrongFieldType);
    assert_eq!(decode_json(json!({"op": "delete", "id": -4, "index": "i", "version": 1})).unwrap().id, "-4");
}

#[test]
fn missing_and_bad_index() {
    assert_eq!(kind_of(json!({"op": "delete", "id": "a", "version": 1})), MissingIndex);
    assert_eq!(kind_of(json!({"op": "delete", "id": "a", "index": "", "version": 1})), MissingIndex);
    assert_eq!(kind_of(json!({"op": "delete", "id": "a", "index": 3, "version": 1})), WrongFieldType);
}

#[test]
fn field_versions() {
    let base = |v: Value| json!({"op": "delete", "id": "a", "index": "i", "version": v});
    assert_eq!(kind_of(json!({"op": "delete", "id": "a", "index": "i"})), MissingVersion);
    assert_eq!(kind_of(base(json!(null))), MissingVersion);
    assert_eq!(kind_of(base(json!(-1))), NegativeVersion);
    assert_eq!(kind_of(base(json!(1.5))), NonIntegerVersion);
    assert_eq!(kind_of(base(json!("12"))), NonIntegerVersion);
    assert_eq!(kind_of(base(json!(u64::MAX))), NonIntegerVersion);
    let mut c = cfg();
    c.version = VersionSource::Field("meta.seq".into());
    let cmd = decode(&rec(br#"{"op":"delete","id":"a","index":"i","meta":{"seq":9}}"#), &c).unwrap();
    assert_eq!(cmd.version, 9);
}

#[test]
fn header_and_offset_versions() {
    let mut c = cfg();
    c.version = VersionSource::Header("x-version".into());
    let payload = br#"{"op":"delete","id":"a","index":"i"}"#;
    let with = |h: Option<&'static [u8]>| {
        let mut r = rec(payload);
        r.headers = vec![("x-version", Some(b"1")), ("x-version", h)];
        decode(&r, &c).map(|c| c.version).map_err(|e| e.kind)
    };
    assert_eq!(with(Some(b"77")), Ok(77));
    assert_eq!(with(None), Err(MissingVersion));
    assert_eq!(with(Some(b"-3")), Err(NegativeVersion));
    assert_eq!(with(Some(b"3x")), Err(NonIntegerVersion));
    assert_eq!(decode(&rec(payload), &c).unwrap_err().kind, MissingVersion);
    c.version = VersionSource::Offset;
    assert_eq!(decode(&rec(payload), &c).unwrap().version, 42);
}

#[test]
fn wrong_field_types() {
    let base = |extra: Value| {
        let mut v = json!({"op": "merge", "id": "a", "index": "i", "version": 1});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    for extra in [
        json!({"set": []}),
        json!({"unset": "a"}),
        json!({"unset": [1]}),
        json!({"tags_add": ["k"]}),
        json!({"tags_remove": [null]}),
        json!({"set": {"tags": []}}),
        json!({"unset": ["actions"]}),
        json!({"routing": true}),
        json!({"op": "upsert"}),
        json!({"op": "upsert", "doc": "text"}),
        json!({"op": "upsert", "doc": {"actions": {"tags": [1]}}}),
        json!({"op": "upsert", "doc": {"tags": []}}),
    ] {
        assert_eq!(kind_of(base(extra.clone())), WrongFieldType, "{extra}");
    }
    let e = decode_json(base(json!({"op": "upsert"}))).unwrap_err();
    assert_eq!(e.detail, "doc missing");
}

/// The envelope fields are read borrowed from the payload, except a name another reader needs
/// too (here the version field is the id field), which every reader still finds; keys with
/// escapes and repeated keys read as in a parsed map (the last one wins).
#[test]
fn envelope_fields_read_alike_borrowed_or_shared() {
    let version_is_id = DecodeConfig::new(VersionSource::Field("id".into()));
    let c = decode(&rec(br#"{"op": "delete", "id": 7, "index": "docs"}"#), &version_is_id).unwrap();
    assert_eq!((c.id.as_str(), c.version), ("7", 7));
    let c = decode_json(json!({"\u{0069}d": "x", "op": "delete", "index": "a", "version": 1})).unwrap();
    assert_eq!(c.id, "x");
    let c = decode(&rec(br#"{"op": "delete", "\u0069d": "x", "index": "a", "index": "b", "version": 1, "routing": null}"#), &cfg()).unwrap();
    assert_eq!((c.id.as_str(), c.index.as_str(), c.routing), ("x", "b", None));
}

/// The upsert's document is read once, inside the body: what is not an object is named by its
/// type, and a repeated key keeps its last value, as in a parsed document.
#[test]
fn upsert_document_read_inside_the_body() {
    let base = |doc: &str| format!(r#"{{"op": "upsert", "id": "a", "index": "i", "version": 1, "doc": {doc}}}"#);
    for (doc, detail) in [
        ("null", "doc missing"),
        (r#""text""#, "doc `doc` is a string"),
        ("[1, {}]", "doc `doc` is an array"),
        ("5", "doc `doc` is a number"),
        ("-1.5", "doc `doc` is a number"),
        ("true", "doc `doc` is a boolean"),
    ] {
        let e = decode(&rec(base(doc).as_bytes()), &cfg()).unwrap_err();
        assert_eq!((e.kind, e.detail.as_str()), (WrongFieldType, detail), "{doc}");
    }
    let c = decode(&rec(base(r#"{"x": 1, "x": {"y": 2}, "actions": {"tags": {"k": "v"}}}"#).as_bytes()), &cfg()).unwrap();
    let Op::Upsert(doc) = c.op else { panic!("upsert expected") };
    assert_eq!(Value::Object(doc.to_map().unwrap()), json!({"x": {"y": 2}, "tags": [{"keyToValue": "k:v", "value": "v"}]}));
}

/// A [`Decoder`] (its config's plan worked out once) decodes every record as [`decode`] does,
/// for configs whose plans differ: envelope fields in their own slots or shared with the
/// version field, the version read beside or inside the document.
#[test]
fn a_prepared_decoder_decodes_as_decode() {
    let payloads: [&[u8]; 4] = [
        br#"{"op": "upsert", "id": "7", "index": "docs", "version": 7, "routing": "r", "doc": {"version": 2, "actions": {"tags": {"k": "v"}}}}"#,
        br#"{"op": "delete", "id": 7, "index": "docs", "version": 3}"#,
        br#"{"op": "merge", "id": "a", "index": "docs", "version": 4, "set": {"x": 1}}"#,
        br#"{"op": "upsert", "id": "a", "index": "docs", "doc": []}"#,
    ];
    for version in ["field:version", "field:id", "field:doc.version", "offset"] {
        let cfg = DecodeConfig::new(version.parse().unwrap());
        let decoder = Decoder::new(cfg.clone());
        assert_eq!(decoder.config(), &cfg);
        for payload in payloads {
            assert_eq!(decoder.decode(&rec(payload)), decode(&rec(payload), &cfg), "{version}: {}", String::from_utf8_lossy(payload));
        }
    }
}
