//! The public API other crates build against, exercised through the crate root only: a
//! compile-time check of the contract plus one end-to-end pass (decode -> rewrite -> merge ->
//! query).

use cutover_schema as schema;
use serde_json::json;

#[test]
fn contract_names_are_reachable_from_the_root() {
    let tags = schema::TagRewrite::default();
    let cfg = schema::DecodeConfig {
        envelope: schema::Envelope::default(),
        version: "field:version".parse::<schema::VersionSource>().unwrap(),
        default_index: None,
        index_map: Vec::new(),
        max_bytes: 1 << 20,
        tags: tags.clone(),
        null_value: schema::NullValuePolicy::DeadLetter,
    };
    let payload = serde_json::to_vec(&json!({
        "op": "upsert", "id": "d1", "index": "docs", "version": 4,
        "doc": {"title": "t", "version": 4, "actions": {"tags": {"k": "v"}}}
    }))
    .unwrap();
    let rec = schema::RawRecord { topic: "t", partition: 0, offset: 9, key: None, payload: Some(&payload), headers: vec![] };
    let cmd: schema::Command = schema::decode(&rec, &cfg).unwrap();
    let schema::Op::Upsert(doc) = &cmd.op else { panic!("upsert expected") };
    // Decoding keeps the rewritten (target-form) document.
    let doc = doc.to_map().unwrap();
    assert_eq!(doc, tags.to_target(json!({"title": "t", "version": 4, "actions": {"tags": {"k": "v"}}}).as_object().unwrap()).unwrap());
    let mut target = doc.clone();
    let patch = schema::MergePatch { tags_add: json!({"n": 1}).as_object().unwrap().clone(), ..Default::default() };
    patch.apply_target(&mut target, &tags).unwrap();
    assert_eq!(
        tags.target_tags(&target).unwrap(),
        vec![schema::TargetTag { key: "k".into(), value: "v".into() }, schema::TargetTag { key: "n".into(), value: "1".into() }]
    );
    let hit = json!({"_source": doc, "_version": 4});
    let src: schema::LegacyVersionSource = "field:version".parse().unwrap();
    assert_eq!(schema::legacy_version(&hit, &src).unwrap(), cmd.version);
    let q = schema::Query::TagKeyValue { key: "k".into(), value: "v".into() };
    assert_eq!(q.to_target(&tags), json!({"term": {"tags.keyToValue": {"value": "k:v"}}}));
    let def = schema::target_definition(&json!({"mappings": {}}), &schema::TargetDefinitionConfig::default()).unwrap();
    assert!(schema::definition_differences(&def, &def).is_empty());
    assert!(schema::readiness_problems(&def, &tags, 60_000).is_empty());
    assert_eq!(schema::parse_time_value_ms("48h"), Some(172_800_000));
    assert_eq!(schema::decode_pair(&schema::encode_pair("a:b", "c")).unwrap(), ("a:b".into(), "c".into()));
    assert_eq!(schema::escape_key("a:b"), r"a\:b");
    assert_eq!(schema::DecodeErrorKind::UnknownOp.as_str(), "unknown_op");
    let _ = schema::tag_entries(&json!(1), "k").unwrap();
    let _: Option<schema::RewriteError> = None;
    let _: Option<schema::DecodeError> = None;
    let _: Option<schema::TagCodecError> = None;
    let _: Option<schema::MappingError> = None;
}
