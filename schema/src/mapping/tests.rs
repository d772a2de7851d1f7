//! Derivation, comparison and readiness, on realistic Elasticsearch bodies.

use super::*;

/// `GET /docs-v1` from a 7.17 cluster (the value under the index name).
fn legacy_717() -> Value {
    json!({
        "aliases": {"docs": {}, "docs-read": {"filter": {"term": {"live": true}}}},
        "mappings": {
            "dynamic_templates": [
                {"tags_as_keyword": {"path_match": "actions.tags.*", "mapping": {"type": "keyword"}}},
                {"strings": {"match_mapping_type": "string", "mapping": {"type": "text"}}}
            ],
            "properties": {
                "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
                "version": {"type": "long"},
                "actions": {"properties": {
                    "tags": {"properties": {"name": {"type": "keyword"}, "lname": {"type": "keyword"}}}
                }}
            }
        },
        "settings": {"index": {
            "routing": {"allocation": {"include": {"_tier_preference": "data_content"}}},
            "number_of_shards": "3",
            "provided_name": "docs-v1",
            "creation_date": "1700000000000",
            "analysis": {"analyzer": {"folding": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}},
            "number_of_replicas": "1",
            "uuid": "Xy3kq1",
            "version": {"created": "7170099"},
            "lifecycle": {"name": "docs-policy"},
            "blocks": {"write": "true"}
        }}
    })
}

fn expected_target() -> Value {
    json!({
        "aliases": {"docs": {}, "docs-read": {"filter": {"term": {"live": true}}}},
        "mappings": {
            "dynamic_templates": [
                {"strings": {"match_mapping_type": "string", "mapping": {"type": "text"}}}
            ],
            "properties": {
                "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
                "version": {"type": "long"},
                "tags": {"type": "object", "dynamic": "strict", "properties": {
                    "keyToValue": {"type": "keyword", "ignore_above": 8191}, "value": {"type": "keyword", "ignore_above": 8191}
                }}
            }
        },
        "settings": {"index": {
            "routing": {"allocation": {"include": {"_tier_preference": "data_content"}}},
            "number_of_shards": "3",
            "analysis": {"analyzer": {"folding": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}},
            "number_of_replicas": "0",
            "gc_deletes": "48h"
        }}
    })
}

fn cfg() -> TargetDefinitionConfig {
    let mut cfg = TargetDefinitionConfig::default();
    cfg.extra_settings.insert("index.number_of_replicas".into(), json!("0"));
    cfg
}

#[test]
fn derives_target_from_717_body() {
    assert_eq!(target_definition(&legacy_717(), &cfg()).unwrap(), expected_target());
    let wrapped = json!({"docs-v1": legacy_717()});
    assert_eq!(target_definition(&wrapped, &cfg()).unwrap(), expected_target());
}

#[test]
fn drops_6x_type_level() {
    let mut legacy = legacy_717();
    let typeless = legacy["mappings"].take();
    legacy["mappings"] = json!({"_doc": typeless});
    assert_eq!(target_definition(&legacy, &cfg()).unwrap(), expected_target());
    legacy["mappings"] = json!({"event": {"properties": {"a": {"type": "long"}}}});
    let out = target_definition(&legacy, &cfg()).unwrap();
    assert_eq!(out["mappings"]["properties"]["a"], json!({"type": "long"}));
    // A 6.x index of a custom type without any field yet.
    legacy["mappings"] = json!({"item": {}});
    let out = target_definition(&legacy, &cfg()).unwrap();
    assert_eq!(out["mappings"], json!({"properties": {"tags": tag_field_mapping(MAX_TAG_IGNORE_ABOVE)}}));
}

/// `GET /<index>` from 6.8.23 for an index created on 5.x: custom type, `_default_` beside
/// it, `_all` disabled, `include_in_all`, `_field_names` disabled, `index.mapper.dynamic`.
#[test]
fn derives_target_from_6x_body_created_on_5x() {
    let mut legacy = legacy_717();
    let mut typed = legacy["mappings"].take();
    typed["_all"] = json!({"enabled": false});
    typed["_field_names"] = json!({"enabled": false});
    typed["properties"]["title"]["include_in_all"] = json!(false);
    typed["properties"]["title"]["fields"]["raw"]["include_in_all"] = json!(false);
    legacy["mappings"] = json!({"_default_": {"_all": {"enabled": false}}, "item": typed});
    legacy["settings"]["index"]["mapper"] = json!({"dynamic": "false"});
    legacy["settings"]["index"]["version"] = json!({"created": "5061699", "upgraded": "6082399"});
    assert_eq!(target_definition(&legacy, &cfg()).unwrap(), expected_target());
}

/// `GET /<index>` from OpenSearch 2.19: its replication strategy is not an Elasticsearch
/// setting (9.x refuses it as unknown).
#[test]
fn drops_opensearch_replication_type() {
    let mut legacy = legacy_717();
    legacy["settings"]["index"]["replication"] = json!({"type": "DOCUMENT"});
    let derived = target_definition(&legacy, &cfg()).unwrap();
    assert_eq!(derived, expected_target());
    // An OpenSearch target adds it again on creation: not a difference.
    let mut on_opensearch = derived.clone();
    on_opensearch["settings"]["index"]["replication"] = json!({"type": "DOCUMENT"});
    assert_eq!(definition_differences(&derived, &on_opensearch), Vec::<String>::new());
}

#[test]
fn keeps_non_tag_templates_and_siblings() {
    let legacy = json!({"mappings": {
        "dynamic_templates": [
            {"mixed": {"path_match": ["actions.tags*", "meta.*"], "mapping": {"type": "keyword"}}},
            {"near_miss": {"path_match": "actions.tagsfoo", "mapping": {"type": "keyword"}}}
        ],
        "properties": {"actions": {"properties": {"tags": {"type": "object"}, "clicks": {"type": "long"}}}}
    }});
    let out = target_definition(&legacy, &TargetDefinitionConfig::default()).unwrap();
    assert_eq!(
        out["mappings"]["dynamic_templates"],
        json!([
            {"mixed": {"path_match": ["meta.*"], "mapping": {"type": "keyword"}}},
            {"near_miss": {"path_match": "actions.tagsfoo", "mapping": {"type": "keyword"}}}
        ])
    );
    assert_eq!(out["mappings"]["properties"]["actions"], json!({"properties": {"clicks": {"type": "long"}}}));
    assert_eq!(out["aliases"], json!({}));
    assert_eq!(out["settings"], json!({"index": {"gc_deletes": "48h"}}));
}

#[test]
fn tag_fields_take_the_legacy_ignore_above() {
    let with = |template: Value, props: Value| {
        let legacy = json!({"mappings": {
            "dynamic_templates": [{"t": {"path_match": "actions.tags.*", "mapping": template}},
                                  {"other": {"path_match": "meta.*", "mapping": {"type": "keyword", "ignore_above": 5}}}],
            "properties": {"actions": {"properties": {"tags": {"properties": props}}}}
        }});
        let out = target_definition(&legacy, &TargetDefinitionConfig::default()).unwrap();
        let tags = &out["mappings"]["properties"]["tags"]["properties"];
        (tags["value"]["ignore_above"].as_u64(), tags["keyToValue"]["ignore_above"].as_u64())
    };
    let kw = |n: u64| json!({"type": "keyword", "ignore_above": n});
    assert_eq!(with(kw(1024), json!({})), (Some(1024), Some(8191)));
    assert_eq!(with(json!({"type": "keyword"}), json!({"a": kw(300), "b": {"properties": {"c": kw(400)}}})), (Some(400), Some(8191)));
    assert_eq!(with(json!({"type": "text", "fields": {"raw": kw(256)}}), json!({})), (Some(256), Some(8191)));
    assert_eq!(with(kw(32766), json!({})), (Some(8191), Some(8191)), "capped below the term limit");
    assert_eq!(with(json!({"type": "keyword"}), json!({})), (Some(8191), Some(8191)), "the default");
}

#[test]
fn readiness_wants_ignore_above_on_both_tag_fields() {
    let tags = TagRewrite::default();
    let mut actual = actual_9x();
    actual["mappings"]["properties"]["tags"]["properties"]["value"] = json!({"type": "keyword"});
    actual["mappings"]["properties"]["tags"]["properties"]["keyToValue"] = json!({"type": "keyword", "ignore_above": 32766});
    let problems = readiness_problems(&actual, &tags, 1);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("`tags.keyToValue` has `ignore_above` 32766"), "{problems:?}");
    assert!(problems[1].starts_with("`tags.value` has no `ignore_above`"), "{problems:?}");
    assert!(problems[1].contains("at most 8191"), "{problems:?}");
}

#[test]
fn rejects_collision_and_garbage() {
    let legacy = json!({"mappings": {"properties": {"tags": {"type": "keyword"}}}});
    assert_eq!(target_definition(&legacy, &TargetDefinitionConfig::default()), Err(MappingError::TargetFieldCollision { field: "tags".into() }));
    assert!(matches!(target_definition(&json!({"mappings": []}), &TargetDefinitionConfig::default()), Err(MappingError::NotAnObject { .. })));
}

/// What a 9.x server reports after creating the index from [`expected_target`].
fn actual_9x() -> Value {
    let mut actual = expected_target();
    actual["mappings"]["properties"]["tags"].as_object_mut().unwrap().remove("type");
    actual["settings"] = json!({"index": {
        "routing": {"allocation": {"include": {"_tier_preference": "data_content"}}},
        "number_of_shards": "3",
        "provided_name": "docs-v2",
        "creation_date": "1760000000000",
        "analysis": {"analyzer": {"folding": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}},
        "number_of_replicas": "0",
        "uuid": "abc",
        "version": {"created": "9009000"},
        "gc_deletes": "2d"
    }});
    actual
}

#[test]
fn same_definition_has_no_differences() {
    assert_eq!(definition_differences(&expected_target(), &actual_9x()), Vec::<String>::new());
    let wrapped = json!({"docs-v2": actual_9x()});
    assert_eq!(definition_differences(&expected_target(), &wrapped), Vec::<String>::new());
    let mut flat = actual_9x();
    flat["settings"] = json!({"index.number_of_shards": 3, "index.number_of_replicas": 0, "index.gc_deletes": "48h",
        "index.routing.allocation.include._tier_preference": "data_content",
        "index.analysis.analyzer.folding.type": "custom", "index.analysis.analyzer.folding.tokenizer": "standard",
        "index.analysis.analyzer.folding.filter": ["lowercase", "asciifolding"]});
    assert_eq!(definition_differences(&expected_target(), &flat), Vec::<String>::new());
}

#[test]
fn finds_changed_missing_and_extra() {
    let mut actual = actual_9x();
    actual["mappings"]["properties"]["title"]["type"] = json!("keyword");
    actual["mappings"]["properties"]["extra"] = json!({"type": "long"});
    actual["settings"]["index"]["number_of_shards"] = json!("1");
    actual["aliases"].as_object_mut().unwrap().remove("docs");
    assert_eq!(
        definition_differences(&expected_target(), &actual),
        vec![
            "mappings.properties.title.type: expected text, found keyword",
            "mappings.properties.extra.type: unexpected long",
            "settings.index.number_of_shards: expected 3, found 1",
            "aliases.docs: expected {}, missing",
        ]
    );
}

#[test]
fn ready_index_has_no_problems() {
    assert_eq!(readiness_problems(&actual_9x(), &TagRewrite::default(), 3_600_000), Vec::<String>::new());
}

#[test]
fn readiness_reports_each_problem() {
    let tags = TagRewrite::default();
    let mut actual = actual_9x();
    actual["settings"]["index"].as_object_mut().unwrap().remove("gc_deletes");
    let problems = readiness_problems(&actual, &tags, 3_600_000);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("index.gc_deletes is 60s"), "{problems:?}");

    actual["mappings"]["properties"]["tags"] = json!({"type": "nested", "properties": {"keyToValue": {"type": "text"}}});
    let problems = readiness_problems(&actual, &tags, 1);
    assert_eq!(
        problems,
        vec![
            "tag field `tags` is mapped as `nested`, expected an object",
            "`tags.keyToValue` is `text`, expected `keyword`",
            "`tags.value` is unmapped, expected `keyword`",
            "`tags` has dynamic `true`, expected `strict` or `false`",
        ]
    );
    actual["mappings"]["dynamic"] = json!(false);
    assert_eq!(readiness_problems(&actual, &tags, 1).len(), 3, "dynamic inherited from the root");
    let problems = readiness_problems(&json!({"mappings": {}, "settings": {"index.gc_deletes": "-1"}}), &tags, 1);
    assert_eq!(problems, vec!["tag field `tags` is not mapped", "index.gc_deletes `-1` is not a usable duration"]);
}

#[test]
fn readiness_refuses_async_translog_with_the_fix() {
    let tags = TagRewrite::default();
    let mut actual = actual_9x();
    actual["settings"]["index"]["translog"] = json!({"durability": "ASYNC", "sync_interval": "5s"});
    let problems = readiness_problems(&actual, &tags, 3_600_000);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("index.translog.durability is `ASYNC`: "), "{problems:?}");
    assert!(problems[0].contains("node crash") && problems[0].contains("--setting index.translog.durability=request"), "{problems:?}");
    actual["settings"]["index"]["translog"]["durability"] = json!("request");
    assert_eq!(readiness_problems(&actual, &tags, 3_600_000), Vec::<String>::new());
}

#[test]
fn gc_deletes_reads_in_milliseconds_with_the_default_when_unset() {
    let mut actual = actual_9x();
    assert_eq!(gc_deletes_ms(&actual), Some(48 * 3_600_000));
    assert_eq!(gc_deletes_ms(&json!({"items-v2": actual.clone()})), Some(48 * 3_600_000), "the whole GET /<index> response");
    actual["settings"]["index"].as_object_mut().unwrap().remove("gc_deletes");
    assert_eq!(gc_deletes_ms(&actual), Some(60_000), "Elasticsearch's default");
    assert_eq!(gc_deletes_ms(&json!({"settings": {"index.gc_deletes": "-1"}})), None);
}

/// The field report's legacy index: its tags under the `text` template, two keys differing
/// only by case when `colliding`.
fn text_legacy(colliding: bool) -> Value {
    let mut tags = json!({"name": {"type": "text"}, "lname": {"type": "text"}});
    if colliding {
        tags["Name"] = json!({"type": "text"});
        tags["ID"] = json!({"type": "text"});
        tags["id"] = json!({"type": "text"});
    }
    json!({"mappings": {
        "dynamic_templates": [{"tags": {"mapping": {"type": "text"}, "path_match": "actions.tags.*"}}],
        "properties": {"title": {"type": "text"}, "actions": {"properties": {"tags": {"properties": tags}}}}
    }, "settings": {"index": {"number_of_shards": "2", "analysis": {"analyzer": {"folding": {"type": "custom", "tokenizer": "standard"}}}}}})
}

fn lowercase_cfg() -> TargetDefinitionConfig {
    TargetDefinitionConfig { tag_normalizer: Some(TagNormalizer::Lowercase), ..TargetDefinitionConfig::default() }
}

#[test]
fn tag_normalizer_goes_on_both_keywords_and_into_the_analysis_settings() {
    let out = target_definition(&text_legacy(false), &lowercase_cfg()).unwrap();
    let tags = &out["mappings"]["properties"]["tags"];
    assert_eq!(tags, &tag_field_mapping_with(MAX_TAG_IGNORE_ABOVE, Some(TagNormalizer::Lowercase)));
    for sub in ["keyToValue", "value"] {
        assert_eq!(tags["properties"][sub]["normalizer"], json!(TAG_NORMALIZER_NAME), "{sub}");
        assert_eq!(tags["properties"][sub]["type"], json!("keyword"), "{sub}");
    }
    assert_eq!(
        out["settings"]["index"]["analysis"],
        json!({"analyzer": {"folding": {"type": "custom", "tokenizer": "standard"}},
               "normalizer": {TAG_NORMALIZER_NAME: {"type": "custom", "filter": ["lowercase"]}}}),
        "the legacy analysis is kept beside it"
    );
    // Without the option: no normalizer anywhere.
    let plain = target_definition(&text_legacy(false), &TargetDefinitionConfig::default()).unwrap();
    assert_eq!(plain["mappings"]["properties"]["tags"], tag_field_mapping(MAX_TAG_IGNORE_ABOVE));
    assert!(plain["settings"]["index"]["analysis"].get("normalizer").is_none());
}

#[test]
fn tag_normalizer_refuses_keys_differing_only_by_case_unless_allowed() {
    let err = target_definition(&text_legacy(true), &lowercase_cfg()).unwrap_err();
    assert_eq!(
        err,
        MappingError::TagKeyCaseCollision {
            normalizer: TagNormalizer::Lowercase,
            groups: vec![vec!["ID".into(), "id".into()], vec!["Name".into(), "name".into()]]
        }
    );
    let msg = err.to_string();
    for needle in ["[ID, id], [Name, name]", "keyToValue", "--allow-tag-key-case-collisions", "without --tag-normalizer", "rename or merge"] {
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    let allowed = TargetDefinitionConfig { allow_tag_key_case_collisions: true, ..lowercase_cfg() };
    let out = target_definition(&text_legacy(true), &allowed).unwrap();
    assert_eq!(out["mappings"]["properties"]["tags"]["properties"]["keyToValue"]["normalizer"], json!(TAG_NORMALIZER_NAME));
    assert!(target_definition(&text_legacy(true), &TargetDefinitionConfig::default()).is_ok(), "exact keywords keep the keys apart");
}

#[test]
fn tag_normalizer_name_taken_by_another_legacy_normalizer_is_refused() {
    let mut legacy = text_legacy(false);
    legacy["settings"]["index"]["analysis"]["normalizer"] = json!({TAG_NORMALIZER_NAME: {"type": "custom", "filter": ["asciifolding"]}});
    let err = target_definition(&legacy, &lowercase_cfg()).unwrap_err();
    assert!(matches!(&err, MappingError::NormalizerNameTaken { name, .. } if name == TAG_NORMALIZER_NAME), "{err:?}");
    assert!(err.to_string().contains("--drop-setting index.analysis.normalizer.cutover_tag_lowercase"), "{err}");
    // The same definition (a target derived from a target) is fine.
    legacy["settings"]["index"]["analysis"]["normalizer"] = json!({TAG_NORMALIZER_NAME: {"type": "custom", "filter": ["lowercase"]}});
    assert!(target_definition(&legacy, &lowercase_cfg()).is_ok());
}

/// What a 9.x server reports for the normalized definition (flat filter array, no object type).
fn normalized_actual_9x(expected: &Value) -> Value {
    let mut actual = expected.clone();
    actual["mappings"]["properties"]["tags"].as_object_mut().unwrap().remove("type");
    let index = actual["settings"]["index"].as_object_mut().unwrap();
    index.insert("provided_name".into(), json!("docs-v2"));
    index.insert("uuid".into(), json!("u"));
    index.insert("creation_date".into(), json!("1760000000000"));
    index.insert("version".into(), json!({"created": "9009000"}));
    index.insert("routing".into(), json!({"allocation": {"include": {"_tier_preference": "data_content"}}}));
    actual["settings"]["index"]["analysis"]["normalizer"][TAG_NORMALIZER_NAME] = json!({"filter": ["lowercase"], "type": "custom"});
    actual
}

#[test]
fn normalized_index_compares_equal_and_is_ready() {
    let expected = target_definition(&text_legacy(false), &lowercase_cfg()).unwrap();
    let actual = normalized_actual_9x(&expected);
    assert_eq!(definition_differences(&expected, &actual), Vec::<String>::new());
    assert_eq!(readiness_problems(&actual, &TagRewrite::default(), 3_600_000), Vec::<String>::new());
    // Created with the normalizer, compared without it (or the reverse): each side is named.
    let plain = target_definition(&text_legacy(false), &TargetDefinitionConfig::default()).unwrap();
    let diffs = definition_differences(&plain, &actual);
    assert_eq!(
        diffs,
        vec![
            "mappings.properties.tags.properties.keyToValue.normalizer: unexpected cutover_tag_lowercase",
            "mappings.properties.tags.properties.value.normalizer: unexpected cutover_tag_lowercase",
            "settings.index.analysis.normalizer.cutover_tag_lowercase.filter: unexpected [\"lowercase\"]",
            "settings.index.analysis.normalizer.cutover_tag_lowercase.type: unexpected custom",
        ]
    );
    let diffs = definition_differences(&expected, &normalized_actual_9x(&plain));
    assert!(diffs.iter().any(|d| d == "mappings.properties.tags.properties.keyToValue.normalizer: expected cutover_tag_lowercase, missing"), "{diffs:?}");
}

/// `GET /items-2016` from 2.4.6 (the value under the index name): one type `doc`, `_all`
/// enabled, strings analyzed and not_analyzed, a tag template of 2.x strings.
fn legacy_24() -> Value {
    json!({
        "aliases": {"items": {}},
        "mappings": {"doc": {
            "_all": {"enabled": true},
            "_timestamp": {"enabled": true},
            "_ttl": {"enabled": false},
            "_routing": {"required": true},
            "dynamic_templates": [
                {"tags_as_keyword": {"path_match": "actions.tags.*", "mapping": {"type": "string", "index": "not_analyzed"}}},
                {"strings": {"match_mapping_type": "string", "mapping": {"type": "string", "index": "not_analyzed", "ignore_above": 256}}}
            ],
            "properties": {
                "title": {"type": "string", "fields": {"raw": {"type": "string", "index": "not_analyzed", "ignore_above": 256}}},
                "body": {"type": "string", "analyzer": "english", "norms": {"enabled": false}, "include_in_all": false},
                "status": {"type": "string", "index": "not_analyzed"},
                "secret": {"type": "string", "index": "no"},
                "n": {"type": "long"},
                "touched": {"type": "long", "index": "no"},
                "at": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
                "actions": {"properties": {
                    "clicks": {"type": "integer"},
                    "tags": {"properties": {"name": {"type": "string", "index": "not_analyzed"}}}
                }}
            }
        }},
        "settings": {"index": {
            "number_of_shards": "2",
            "number_of_replicas": "0",
            "creation_date": "1470000000000",
            "uuid": "hT5rPq",
            "version": {"created": "2040699"},
            "store": {"type": "default"}
        }},
        "warmers": {}
    })
}

#[test]
fn derives_target_from_24_body() {
    let out = target_definition(&json!({"items-2016": legacy_24()}), &TargetDefinitionConfig::default()).unwrap();
    assert_eq!(
        out,
        json!({
            "aliases": {"items": {}},
            "mappings": {
                "_routing": {"required": true},
                "dynamic_templates": [
                    {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 256}}}
                ],
                "properties": {
                    "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
                    "body": {"type": "text", "analyzer": "english", "norms": false},
                    "status": {"type": "keyword"},
                    "secret": {"type": "keyword", "index": false},
                    "n": {"type": "long"},
                    "touched": {"type": "long", "index": false},
                    "at": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
                    "actions": {"properties": {"clicks": {"type": "integer"}}},
                    "tags": tag_field_mapping(MAX_TAG_IGNORE_ABOVE)
                }
            },
            "settings": {"index": {"number_of_shards": "2", "number_of_replicas": "0", "gc_deletes": "48h"}}
        })
    );
}

/// `GET /items-2017` from 5.6.16 for an index created on 2.4 (its strings are still `string`)
/// next to fields added on 5.6 (`text`/`keyword`), with a `_default_` mapping.
#[test]
fn derives_target_from_56_body_created_on_24() {
    let legacy = json!({"items-2017": {
        "aliases": {},
        "mappings": {
            "_default_": {"_all": {"enabled": false}},
            "item": {
                "_all": {"enabled": false},
                "_field_names": {"enabled": false},
                "dynamic_templates": [
                    {"tags": {"path_match": "actions.tags.*", "mapping": {"type": "keyword", "ignore_above": 1024}}},
                    {"ids": {"match": "*_id", "match_mapping_type": "string", "mapping": {"type": "{dynamic_type}", "index": "not_analyzed"}}}
                ],
                "properties": {
                    "title": {"type": "string", "analyzer": "folding", "fielddata": {"format": "disabled"},
                              "fields": {"raw": {"type": "string", "index": "not_analyzed", "doc_values": true, "null_value": "-"}}},
                    "summary": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                    "owner_id": {"type": "keyword", "include_in_all": false},
                    "score": {"type": "float", "index": "not_analyzed", "precision_step": 8, "boost": 2.0},
                    "actions": {"properties": {"tags": {"properties": {"name": {"type": "keyword", "ignore_above": 1024}}}}}
                }
            }
        },
        "settings": {"index": {
            "number_of_shards": "1",
            "number_of_replicas": "1",
            "creation_date": "1490000000000",
            "uuid": "Zk2l",
            "version": {"created": "2040699", "upgraded": "5061699"},
            "mapping": {"single_type": "true"},
            "analysis": {"analyzer": {"folding": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}}
        }}
    }});
    let out = target_definition(&legacy, &TargetDefinitionConfig::default()).unwrap();
    assert_eq!(
        out["mappings"],
        json!({
            "dynamic_templates": [
                {"ids": {"match": "*_id", "match_mapping_type": "string", "mapping": {"type": "keyword"}}}
            ],
            "properties": {
                "title": {"type": "text", "analyzer": "folding", "fields": {"raw": {"type": "keyword", "doc_values": true, "null_value": "-"}}},
                "summary": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                "owner_id": {"type": "keyword"},
                "score": {"type": "float"},
                "tags": tag_field_mapping(1024)
            }
        })
    );
    assert_eq!(
        out["settings"],
        json!({"index": {"number_of_shards": "1", "number_of_replicas": "1", "gc_deletes": "48h",
            "analysis": {"analyzer": {"folding": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}}}})
    );
}

#[test]
fn refuses_more_than_one_mapping_type() {
    let mut legacy = legacy_24();
    let doc = legacy["mappings"]["doc"].take();
    legacy["mappings"] = json!({
        "user": {"properties": {"name": {"type": "string"}}},
        "item": doc,
        "_default_": {"_all": {"enabled": false}}
    });
    let err = target_definition(&legacy, &TargetDefinitionConfig::default()).unwrap_err();
    assert_eq!(err, MappingError::MultipleTypes { types: vec!["item".into(), "user".into()] });
    assert_eq!(
        err.to_string(),
        "the legacy index has mapping types [item, user]; cutover copies an index with one type: reindex each type into its own legacy index first (or filter with an alias per type), then migrate each"
    );
    // A type without fields yet counts too (2.x parent/child: the parent type is often empty).
    legacy["mappings"] = json!({"answer": {"_parent": {"type": "question"}, "properties": {"a": {"type": "long"}}}, "question": {}});
    assert_eq!(target_definition(&legacy, &cfg()).unwrap_err(), MappingError::MultipleTypes { types: vec!["answer".into(), "question".into()] });
    // One type beside `_default_` is no refusal; nor is a typeless mapping with unknown root
    // parameters (OpenSearch's `derived` fields).
    legacy["mappings"] = json!({"_default_": {"_all": {"enabled": false}}, "question": {"_timestamp": {"enabled": true}}});
    assert_eq!(target_definition(&legacy, &cfg()).unwrap()["mappings"], json!({"properties": {"tags": tag_field_mapping(MAX_TAG_IGNORE_ABOVE)}}));
    legacy["mappings"] = json!({"derived": {"d": {"type": "keyword", "script": {"source": "emit('x')"}}}, "composite": {"c": {}}, "properties": {}});
    assert!(target_definition(&legacy, &cfg()).is_ok());
}
