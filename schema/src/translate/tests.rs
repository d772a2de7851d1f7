use super::*;
use proptest::prelude::*;

fn tr() -> TagRewrite {
    TagRewrite::default()
}

fn kw(q: Value) -> Translation {
    translate_query(&q, &tr(), &LegacyTagMapping::Keyword)
}

/// The translated query of an exact translation.
fn exact(q: Value) -> Value {
    let t = kw(q.clone());
    assert!(t.is_exact(), "{q}: {:?}", t.findings);
    t.body
}

/// The single finding of a translation (the clause left unchanged).
fn refused(q: Value, legacy: &LegacyTagMapping, why: &str) -> Finding {
    let t = translate_query(&q, &tr(), legacy);
    assert_eq!(t.findings.len(), 1, "{q}: {:?}", t.findings);
    assert!(t.findings[0].reason.contains(why), "{q}: {}", t.findings[0].reason);
    assert_eq!(t.body, q, "a flagged clause is left as written");
    t.findings[0].clone()
}

fn refused_kw(q: Value, why: &str) -> Finding {
    refused(q, &LegacyTagMapping::Keyword, why)
}

fn text() -> LegacyTagMapping {
    LegacyTagMapping::default_dynamic()
}

fn term_kv(v: &str) -> Value {
    json!({"term": {"tags.keyToValue": {"value": v}}})
}

fn key_exists(e: &str) -> Value {
    json!({"bool": {"should": [
        {"prefix": {"tags.keyToValue": {"value": format!("{e}:")}}},
        {"prefix": {"tags.keyToValue": {"value": format!("{e}.")}}}
    ], "minimum_should_match": 1}})
}

#[test]
fn term_match_and_match_phrase_on_keyword_tags_are_one_pair_term() {
    assert_eq!(exact(json!({"term": {"actions.tags.color": "red"}})), term_kv("color:red"));
    assert_eq!(exact(json!({"term": {"actions.tags.a:b": {"value": "v:1"}}})), term_kv(r"a\:b:v:1"));
    assert_eq!(exact(json!({"term": {"actions.tags.n": 5}})), term_kv("n:5"));
    assert_eq!(exact(json!({"term": {"actions.tags.ok": true}})), term_kv("ok:true"));
    assert_eq!(exact(json!({"match": {"actions.tags.name": "John Smith"}})), term_kv("name:John Smith"));
    assert_eq!(exact(json!({"match": {"actions.tags.name": {"query": "John", "operator": "and", "minimum_should_match": "100%"}}})), term_kv("name:John"));
    assert_eq!(exact(json!({"match_phrase": {"actions.tags.name": {"query": "John Smith", "slop": 2}}})), term_kv("name:John Smith"));
    assert_eq!(exact(json!({"match": {"actions.tags.obj.sub": ""}})), term_kv("obj.sub:"));
    // boost and _name are kept around the translated clause.
    assert_eq!(
        exact(json!({"term": {"actions.tags.color": {"value": "red", "boost": 2, "_name": "c"}}})),
        json!({"bool": {"must": [term_kv("color:red")], "boost": 2, "_name": "c"}})
    );
    // case_insensitive: false is the default, so harmless.
    assert_eq!(exact(json!({"term": {"actions.tags.c": {"value": "x", "case_insensitive": false}}})), term_kv("c:x"));
}

#[test]
fn terms_prefix_wildcard_regexp() {
    assert_eq!(
        exact(json!({"terms": {"actions.tags.c": ["a", 1, false], "boost": 1.5}})),
        json!({"terms": {"tags.keyToValue": ["c:a", "c:1", "c:false"], "boost": 1.5}})
    );
    assert_eq!(exact(json!({"prefix": {r"actions.tags.p\q": "ab"}})), json!({"prefix": {"tags.keyToValue": {"value": r"p\\q:ab"}}}));
    assert_eq!(
        exact(json!({"prefix": {"actions.tags.k": {"value": "a:", "rewrite": "constant_score"}}})),
        json!({"prefix": {"tags.keyToValue": {"value": "k:a:"}}})
    );
    assert_eq!(exact(json!({"wildcard": {"actions.tags.a*b": {"value": "x?y*"}}})), json!({"wildcard": {"tags.keyToValue": {"value": r"a\*b:x?y*"}}}));
    assert_eq!(exact(json!({"wildcard": {r"actions.tags.s:t\u": {"wildcard": "*"}}})), json!({"wildcard": {"tags.keyToValue": {"value": r"s\\:t\\\\u:*"}}}));
    assert_eq!(
        exact(json!({"regexp": {"actions.tags.k.1": {"value": "v[0-9]+|w", "flags": "ALL"}}})),
        json!({"regexp": {"tags.keyToValue": {"value": r"k\.1:(v[0-9]+|w)", "flags": "ALL"}}})
    );
}

#[test]
fn exists_on_keys_the_map_and_patterns() {
    assert_eq!(exact(json!({"exists": {"field": "actions.tags.a:b"}})), key_exists(r"a\:b"));
    assert_eq!(exact(json!({"exists": {"field": "actions.tags"}})), json!({"exists": {"field": "tags.keyToValue"}}));
    assert_eq!(exact(json!({"exists": {"field": "actions.tags.*"}})), json!({"exists": {"field": "tags.keyToValue"}}));
    assert_eq!(exact(json!({"exists": {"field": "actions.tags.k*"}})), json!({"regexp": {"tags.keyToValue": {"value": r#"k([^\\:]|\\.)*:.*"#}}}));
    // On a text legacy `exists` means the same: the key has a value.
    let t = translate_query(&json!({"exists": {"field": "actions.tags.name"}}), &tr(), &text());
    assert_eq!((t.body, t.findings), (key_exists("name"), vec![]));
}

#[test]
fn compound_queries_are_walked_and_other_clauses_untouched() {
    let q = json!({"bool": {
        "must": [{"match": {"title": "hello"}}, {"term": {"actions.tags.c": "red"}}],
        "filter": {"constant_score": {"filter": {"exists": {"field": "actions.tags.k"}}, "boost": 3}},
        "should": [{"dis_max": {"queries": [{"term": {"status": "open"}}, {"prefix": {"actions.tags.p": "x"}}], "tie_breaker": 0.3}}],
        "must_not": {"range": {"n": {"gte": 5}}},
        "minimum_should_match": 1,
        "boost": 1.2
    }});
    let want = json!({"bool": {
        "must": [{"match": {"title": "hello"}}, term_kv("c:red")],
        "filter": {"constant_score": {"filter": key_exists("k"), "boost": 3}},
        "should": [{"dis_max": {"queries": [{"term": {"status": "open"}}, {"prefix": {"tags.keyToValue": {"value": "p:x"}}}], "tie_breaker": 0.3}}],
        "must_not": {"range": {"n": {"gte": 5}}},
        "minimum_should_match": 1,
        "boost": 1.2
    }});
    assert_eq!(exact(q), want);
    let q = json!({"boosting": {"positive": {"term": {"actions.tags.a": "1"}}, "negative": {"term": {"actions.tags.b": "2"}}, "negative_boost": 0.5}});
    assert_eq!(exact(q), json!({"boosting": {"positive": term_kv("a:1"), "negative": term_kv("b:2"), "negative_boost": 0.5}}));
    let q = json!({"function_score": {"query": {"term": {"actions.tags.a": "1"}}, "functions": [{"filter": {"term": {"actions.tags.b": "2"}}, "weight": 2}]}});
    assert_eq!(exact(q), json!({"function_score": {"query": term_kv("a:1"), "functions": [{"filter": term_kv("b:2"), "weight": 2}]}}));
}

#[test]
fn nested_levels_are_walked_but_tag_clauses_inside_are_flagged() {
    let q = json!({"nested": {"path": "comments", "query": {"bool": {"must": [{"match": {"comments.text": "x"}}]}}}});
    assert_eq!(exact(q.clone()), q);
    let q = json!({"nested": {"path": "comments", "query": {"bool": {"must": [{"term": {"actions.tags.c": "x"}}]}}}});
    let f = refused_kw(q, "nested");
    assert_eq!(f.path, "query.nested.query.bool.must[0]");
}

#[test]
fn multi_match_splits_tag_fields_from_the_others() {
    assert_eq!(exact(json!({"multi_match": {"query": "v1", "fields": ["actions.tags.*"]}})), json!({"term": {"tags.value": {"value": "v1"}}}));
    assert_eq!(
        exact(json!({"multi_match": {"query": "v1", "fields": ["title^2", "actions.tags.k1^3"], "operator": "and", "_name": "m"}})),
        json!({"bool": {"must": [{"bool": {"should": [
            {"multi_match": {"query": "v1", "fields": ["title^2"], "operator": "and"}},
            term_kv("k1:v1")
        ], "minimum_should_match": 1}}], "_name": "m"}})
    );
    assert_eq!(
        exact(json!({"multi_match": {"query": 7, "fields": ["actions.tags.n*"], "type": "phrase"}})),
        json!({"regexp": {"tags.keyToValue": {"value": r#"n([^\\:]|\\.)*:(7)"#}}})
    );
    let q = json!({"multi_match": {"query": "x", "fields": ["title", "status"]}});
    assert_eq!(exact(q.clone()), q);
}

#[test]
fn query_string_subset() {
    let qs = |q: &str, extra: Value| {
        let mut body = json!({"query": q});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"query_string": body})
    };
    assert_eq!(exact(qs("John", json!({"default_field": "actions.tags.*"}))), json!({"term": {"tags.value": {"value": "John"}}}));
    assert_eq!(exact(qs(r"actions.tags.\*:John", json!({}))), json!({"term": {"tags.value": {"value": "John"}}}));
    assert_eq!(exact(qs(r#""John Smith""#, json!({"fields": ["actions.tags.name"]}))), term_kv("name:John Smith"));
    assert_eq!(
        exact(qs(r"actions.tags.scope\:team:x AND (status:open OR actions.tags.k1:v1) AND _exists_:actions.tags.k2", json!({}))),
        json!({"bool": {"must": [
            term_kv(r"scope\:team:x"),
            {"bool": {"should": [{"query_string": {"query": "status:open"}}, term_kv("k1:v1")], "minimum_should_match": 1}},
            key_exists("k2")
        ]}})
    );
    assert_eq!(
        exact(qs("a OR b", json!({"fields": ["title", "actions.tags.k"], "default_operator": "and"}))),
        json!({"bool": {"should": [
            {"bool": {"should": [{"query_string": {"query": "a", "fields": ["title"], "default_operator": "and"}}, term_kv("k:a")], "minimum_should_match": 1}},
            {"bool": {"should": [{"query_string": {"query": "b", "fields": ["title"], "default_operator": "and"}}, term_kv("k:b")], "minimum_should_match": 1}}
        ], "minimum_should_match": 1}})
    );
    // Not about tags: untouched, whatever its syntax.
    for q in [qs("title:(quick brown) AND n:[1 TO 5]", json!({"default_field": "title"})), qs("status:open", json!({}))] {
        assert_eq!(exact(q.clone()), q);
    }
    for (q, why) in [
        (qs("actions.tags.k:jo*", json!({})), "wildcard"),
        (qs("actions.tags.k:john~1", json!({})), "fuzziness"),
        (qs("actions.tags.k:[a TO b]", json!({})), "range"),
        (qs("actions.tags.k:/jo.n/", json!({})), "regular expression"),
        (qs("John Smith", json!({"fields": ["actions.tags.k"]})), "whitespace"),
        (qs("a OR b AND c", json!({"default_field": "actions.tags.k"})), "mixing"),
        (qs("-actions.tags.k:x", json!({})), "modifier"),
        (qs("x", json!({})), "both tag fields and other fields"),
        (qs(r"actions.\*:x", json!({})), "both tag fields and other fields"),
        (qs("actions.tags.*:x", json!({})), "wildcard"),
        (qs("x", json!({"fields": ["actions.tags.k"], "minimum_should_match": 2})), "minimum_should_match"),
        (qs("x", json!({"fields": ["actions.tags.k"], "analyzer": "standard"})), "analyser"),
        (qs("x", json!({"fields": ["actions.tags.k"], "type": "cross_fields"})), "cross_fields"),
    ] {
        refused_kw(q, why);
    }
}

#[test]
fn simple_query_string_subset() {
    let sqs = |q: &str, extra: Value| {
        let mut body = json!({"query": q, "fields": ["actions.tags.k"]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"simple_query_string": body})
    };
    assert_eq!(exact(sqs("a:b", json!({}))), term_kv("k:a:b"));
    assert_eq!(exact(sqs(r#"x "y z""#, json!({"default_operator": "AND"}))), json!({"bool": {"must": [term_kv("k:x"), term_kv("k:y z")]}}));
    assert_eq!(exact(sqs("x | y", json!({}))), json!({"bool": {"should": [term_kv("k:x"), term_kv("k:y")], "minimum_should_match": 1}}));
    for (q, why) in [
        (sqs("x*", json!({})), "wildcard"),
        (sqs("-x", json!({})), "modifier"),
        (sqs("x~2", json!({})), "fuzziness"),
        (sqs("(x | y) + z", json!({})), "parentheses"),
        (sqs("x", json!({"flags": "AND|OR"})), "flags"),
        (json!({"simple_query_string": {"query": "x"}}), "both tag fields and other fields"),
    ] {
        refused_kw(q, why);
    }
}

#[test]
fn text_legacy_flags_analysed_clauses_and_translates_the_keyword_subfield() {
    for q in [
        json!({"match": {"actions.tags.name": "John"}}),
        json!({"term": {"actions.tags.name": "john"}}),
        json!({"match_phrase": {"actions.tags.name": "john smith"}}),
        json!({"prefix": {"actions.tags.name": "jo"}}),
        json!({"multi_match": {"query": "John", "fields": ["actions.tags.*"]}}),
        json!({"query_string": {"query": "John", "fields": ["actions.tags.*"]}}),
        json!({"query_string": {"query": "actions.tags.name:John"}}),
    ] {
        refused(q, &text(), "analysed");
    }
    let t = translate_query(&json!({"term": {"actions.tags.name.keyword": "John"}}), &tr(), &text());
    assert_eq!((t.body, t.findings), (term_kv("name:John"), vec![]));
    let t = translate_query(&json!({"match": {"actions.tags.name.keyword": "John"}}), &tr(), &LegacyTagMapping::Text { keyword_subfield: None });
    assert!(t.findings[0].reason.contains("analysed"));
}

#[test]
fn refusals_name_the_clause_and_the_reason() {
    for (q, why) in [
        (json!({"term": {"actions.tags.c": {"value": "x", "case_insensitive": true}}}), "case_insensitive"),
        (json!({"match": {"actions.tags.c": {"query": "x", "fuzziness": "AUTO"}}}), "fuzziness"),
        (json!({"match": {"actions.tags.c": {"query": "x", "analyzer": "standard"}}}), "analyser"),
        (json!({"term": {"actions.tags.c": 1.5}}), "Double.toString"),
        (json!({"term": {"actions.tags.c": null}}), "null"),
        (json!({"term": {"actions.tags": "x"}}), "tag map object itself"),
        (json!({"terms": {"actions.tags.c": {"index": "i", "id": "1", "path": "p"}}}), "terms lookup"),
        (json!({"range": {"actions.tags.c": {"gte": "a"}}}), "`range` over tag fields"),
        (json!({"fuzzy": {"actions.tags.c": "x"}}), "`fuzzy` over tag fields"),
        (json!({"match_phrase_prefix": {"actions.tags.c": "x"}}), "`match_phrase_prefix`"),
        (json!({"exists": {"field": "actions.*"}}), "both tag fields and other fields"),
        (json!({"multi_match": {"query": "x"}}), "default_field"),
        (json!({"multi_match": {"query": "x", "fields": ["actions.tags.c"], "type": "phrase_prefix"}}), "phrase_prefix"),
        (json!({"multi_match": {"query": "x", "fields": ["*"]}}), "both tag fields and other fields"),
        (json!({"wrapper": {"query": "e30="}}), "wrapper"),
        (json!({"wildcard": {"actions.tags.c": 5}}), "string value"),
        (json!({"exists": {"field": "actions"}}), "both tag fields and other fields"),
        (json!({"script": {"script": {"source": "doc['actions.tags.c'].size() > 1"}}}), "`script` over tag fields"),
    ] {
        refused_kw(q, why);
    }
}

#[test]
fn search_bodies_pass_everything_else_through_and_flag_tag_references() {
    let body = json!({
        "from": 10, "size": 5, "track_total_hits": true, "_source": ["title", "status"],
        "sort": [{"n": "desc"}, "_score"],
        "query": {"bool": {"filter": [{"term": {"actions.tags.c": "red"}}, {"term": {"status": "open"}}]}},
        "post_filter": {"exists": {"field": "actions.tags.k"}},
        "highlight": {"fields": {"title": {}}}
    });
    let t = translate_search(&body, &tr(), &LegacyTagMapping::Keyword);
    assert!(t.is_exact(), "{:?}", t.findings);
    let mut want = body.clone();
    want["query"]["bool"]["filter"][0] = term_kv("c:red");
    want["post_filter"] = key_exists("k");
    assert_eq!(t.body, want);

    let body = json!({"sort": [{"actions.tags.c": "asc"}], "_source": {"includes": ["actions"]}, "highlight": {"fields": {"actions.tags.c": {}}}, "query": {"match_all": {}}});
    let t = translate_search(&body, &tr(), &LegacyTagMapping::Keyword);
    assert_eq!(t.body, body);
    let paths: Vec<&str> = t.findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["_source", "highlight", "sort"]);
    assert!(t.findings[2].reason.contains("sorting"));
    let err = t.exact().unwrap_err();
    assert_eq!(err.findings.len(), 3);
    assert!(err.to_string().contains("sort: sorting on a tag field"), "{err}");
}

#[test]
fn terms_aggregations_on_a_tag_key_and_restored_bucket_keys() {
    let body = json!({"size": 0, "aggs": {
        "by_status": {"terms": {"field": "status"}, "aggs": {"colors": {"terms": {"field": "actions.tags.a:b", "size": 3, "order": {"_key": "asc"}}}}},
        "only": {"terms": {"field": "actions.tags.c", "include": "v[0-9]", "exclude": ["v1", 2]}},
        "f": {"filter": {"term": {"actions.tags.c": "x"}}, "aggs": {"k": {"terms": {"field": "actions.tags.k"}}}}
    }});
    let t = translate_search(&body, &tr(), &LegacyTagMapping::Keyword);
    assert!(t.is_exact(), "{:?}", t.findings);
    assert_eq!(
        t.body["aggs"]["by_status"]["aggs"]["colors"],
        json!({"terms": {"field": "tags.keyToValue", "size": 3, "order": {"_key": "asc"}, "include": r"a\\\:b\:.*"}})
    );
    assert_eq!(t.body["aggs"]["only"], json!({"terms": {"field": "tags.keyToValue", "include": r"c\:(v[0-9])", "exclude": ["c:v1", "c:2"]}}));
    assert_eq!(t.body["aggs"]["f"]["filter"], term_kv("c:x"));
    assert_eq!(t.body["aggs"]["by_status"]["terms"], json!({"field": "status"}));
    assert_eq!(
        t.bucket_keys,
        vec![
            BucketKeys { aggregation: vec!["by_status".into(), "colors".into()], prefix: r"a\:b:".into() },
            BucketKeys { aggregation: vec!["f".into(), "k".into()], prefix: "k:".into() },
            BucketKeys { aggregation: vec!["only".into()], prefix: "c:".into() },
        ]
    );
    let mut resp = json!({"hits": {"hits": []}, "aggregations": {
        "by_status": {"buckets": [{"key": "open", "doc_count": 2, "colors": {"buckets": [{"key": r"a\:b:x:1", "doc_count": 2}]}}]},
        "sterms#only": {"buckets": [{"key": "c:v2", "doc_count": 1}]},
        "f": {"doc_count": 1, "k": {"buckets": [{"key": "k:", "doc_count": 1}]}}
    }});
    t.restore_response(&mut resp);
    assert_eq!(resp["aggregations"]["by_status"]["buckets"][0]["colors"]["buckets"][0]["key"], "x:1");
    assert_eq!(resp["aggregations"]["by_status"]["buckets"][0]["key"], "open");
    assert_eq!(resp["aggregations"]["sterms#only"]["buckets"][0]["key"], "v2");
    assert_eq!(resp["aggregations"]["f"]["k"]["buckets"][0]["key"], "");

    for (aggs, why) in [
        (json!({"a": {"terms": {"field": "actions.tags.c", "missing": "none"}}}), "missing"),
        (json!({"a": {"terms": {"field": "actions.tags.c", "include": {"partition": 0, "num_partitions": 4}}}}), "partitioned"),
        (json!({"a": {"cardinality": {"field": "actions.tags.c"}}}), "`cardinality` aggregation"),
        (json!({"a": {"nested": {"path": "comments"}, "aggs": {"b": {"terms": {"field": "actions.tags.c"}}}}}), "nested"),
    ] {
        let body = json!({ "aggs": aggs });
        let t = translate_search(&body, &tr(), &LegacyTagMapping::Keyword);
        assert_eq!(t.findings.len(), 1, "{body}: {:?}", t.findings);
        assert!(t.findings[0].reason.contains(why), "{}", t.findings[0].reason);
        assert_eq!(t.body, body);
    }
}

#[test]
fn lowercase_target_keeps_queries_adapts_aggregations_and_flags_negated_class_escapes() {
    let lc = |body: &Value| translate_search_for(body, &tr(), &LegacyTagMapping::Keyword, TargetTagCase::Lowercase);
    // Elasticsearch normalizes these query values itself (checked on 9.x): same translation.
    for q in [
        json!({"term": {"actions.tags.Name": "John"}}),
        json!({"terms": {"actions.tags.Name": ["John", "Jo"]}}),
        json!({"prefix": {"actions.tags.Name": "Jo"}}),
        json!({"wildcard": {"actions.tags.Name": "J*n"}}),
        json!({"regexp": {"actions.tags.Name": "J[a-z]+|\\\\D"}}),
        json!({"exists": {"field": "actions.tags.Na*"}}),
        json!({"multi_match": {"query": "John", "fields": ["actions.tags.*", "title"]}}),
    ] {
        let body = json!({ "query": q });
        let t = lc(&body);
        assert!(t.is_exact(), "{q}: {:?}", t.findings);
        assert_eq!(t.body, translate_search(&body, &tr(), &LegacyTagMapping::Keyword).body, "{q}");
    }
    // A regexp Elasticsearch would lowercase into its opposite is flagged, on the target only.
    for re in [r"J\D+", r"\W", r"a\Sb"] {
        let body = json!({"query": {"regexp": {"actions.tags.name": re}}});
        let t = lc(&body);
        assert_eq!(t.findings.len(), 1, "{re}");
        assert!(t.findings[0].reason.contains("lowercase normalizer") && t.findings[0].reason.contains("[^0-9]"), "{}", t.findings[0].reason);
        assert_eq!(t.body, body, "left as written");
        assert!(translate_search(&body, &tr(), &LegacyTagMapping::Keyword).is_exact(), "exact keywords take it as is");
    }
    // Terms aggregations: include/exclude and bucket prefixes as the lowercased terms are.
    let body = json!({"size": 0, "aggs": {
        "names": {"terms": {"field": "actions.tags.Name"}},
        "only": {"terms": {"field": "actions.tags.Color", "include": "(Red|blue)", "exclude": ["Green", 2]}}
    }});
    let t = lc(&body);
    assert!(t.is_exact(), "{:?}", t.findings);
    assert_eq!(t.body["aggs"]["names"], json!({"terms": {"field": "tags.keyToValue", "include": r"name\:.*"}}));
    assert_eq!(
        t.body["aggs"]["only"],
        json!({"terms": {"field": "tags.keyToValue", "include": r"color\:((red|blue))", "exclude": ["color:green", "color:2"]}})
    );
    assert_eq!(t.bucket_keys.iter().map(|b| b.prefix.as_str()).collect::<Vec<_>>(), ["name:", "color:"]);
    let mut resp = json!({"aggregations": {"names": {"buckets": [{"key": "name:john", "doc_count": 3}]}}});
    t.restore_response(&mut resp);
    assert_eq!(resp["aggregations"]["names"]["buckets"][0]["key"], "john", "the target's buckets hold lowercased values");
    let t = lc(&json!({"aggs": {"a": {"terms": {"field": "actions.tags.c", "include": r"\Dx"}}}}));
    assert_eq!(t.findings.len(), 1, "{:?}", t.findings);
    assert!(t.findings[0].reason.contains("lowercase normalizer"));
    assert!(!has_negated_class_escape(r"a\\D"), "an escaped backslash, then a plain D");
    assert!(has_negated_class_escape(r"a\\\D"));
}

#[test]
fn custom_tag_paths() {
    let tags = TagRewrite { legacy_path: "meta.labels".into(), target_field: "labels".into() };
    let t =
        translate_query(&json!({"bool": {"must": [{"term": {"meta.labels.x": "1"}}, {"term": {"actions.tags.x": "1"}}]}}), &tags, &LegacyTagMapping::Keyword);
    assert_eq!(t.body, json!({"bool": {"must": [{"term": {"labels.keyToValue": {"value": "x:1"}}}, {"term": {"actions.tags.x": "1"}}]}}));
}

#[test]
fn legacy_tag_mapping_parses() {
    assert_eq!("keyword".parse(), Ok(LegacyTagMapping::Keyword));
    assert_eq!("text".parse(), Ok(LegacyTagMapping::Text { keyword_subfield: None }));
    assert_eq!("text+keyword".parse(), Ok(LegacyTagMapping::default_dynamic()));
    assert!("text+".parse::<LegacyTagMapping>().is_err());
    assert!("nope".parse::<LegacyTagMapping>().is_err());
}

#[test]
fn glob_helpers() {
    assert!(glob_may_reach("*", "actions.tags."));
    assert!(glob_may_reach("act*", "actions.tags."));
    assert!(glob_may_reach("actions.tags.k", "actions.tags."));
    assert!(!glob_may_reach("title*", "actions.tags."));
    assert!(!glob_may_reach("actions", "actions.tags."));
    assert_eq!(regex_literal("a.b:c\\é"), r"a\.b\:c\\é");
    assert_eq!(glob_regex("a:*"), r#"a\\\:([^\\:]|\\.)*"#);
}

// ---- properties ----

/// Field names outside the tag map (some sharing its first segment).
fn other_field() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{1,6}", "actions\\.[a-z]{1,5}", "[a-z]{1,4}\\.[a-z]{1,4}"].prop_filter("not the tag map", |f| !f.starts_with("actions.tags"))
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![".{0,8}".prop_map(Value::from), any::<i32>().prop_map(Value::from), any::<bool>().prop_map(Value::from)]
}

/// Random queries that never touch the tag map.
fn other_query() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        (other_field(), scalar()).prop_map(|(f, v)| json!({"term": {f: v}})),
        (other_field(), ".{0,8}").prop_map(|(f, v)| json!({"match": {f: {"query": v, "operator": "and"}}})),
        (other_field(), 0i64..100).prop_map(|(f, n)| json!({"range": {f: {"gte": n}}})),
        other_field().prop_map(|f| json!({"exists": {"field": f}})),
        (proptest::collection::vec(other_field(), 1..3), ".{0,8}").prop_map(|(fs, q)| json!({"multi_match": {"query": q, "fields": fs}})),
        (other_field(), "[a-z ]{0,10}").prop_map(|(f, q)| json!({"query_string": {"query": q, "default_field": f}})),
        Just(json!({"match_all": {}})),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (proptest::collection::vec(inner.clone(), 0..3), proptest::collection::vec(inner.clone(), 0..3), proptest::collection::vec(inner.clone(), 0..2))
                .prop_map(|(must, should, not)| json!({"bool": {"must": must, "should": should, "must_not": not}})),
            inner.clone().prop_map(|q| json!({"constant_score": {"filter": q, "boost": 2}})),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(|qs| json!({"dis_max": {"queries": qs}})),
            inner.prop_map(|q| json!({"nested": {"path": "comments", "query": q}})),
        ]
    })
}

/// A tag key: plain, with the codec's special characters, dotted.
fn tag_key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{1,5}", "[a-z]{1,3}[:\\\\.][a-z]{1,3}", "[a-z:\\\\]{1,6}"]
        .prop_filter("a key", |k| !k.starts_with('.') && !k.ends_with('.') && !k.contains(".."))
}

/// Random tag clauses that translate exactly on a keyword legacy.
fn tag_query() -> impl Strategy<Value = Value> {
    let f = |k: &str| format!("actions.tags.{k}");
    prop_oneof![
        (tag_key(), ".{0,8}").prop_map(move |(k, v)| json!({"term": {f(&k): v}})),
        (tag_key(), ".{0,8}").prop_map(move |(k, v)| json!({"match": {f(&k): v}})),
        (tag_key(), proptest::collection::vec("[a-z0-9]{0,4}", 1..4)).prop_map(move |(k, vs)| json!({"terms": {f(&k): vs}})),
        (tag_key(), "[a-z]{0,4}").prop_map(move |(k, p)| json!({"prefix": {f(&k): p}})),
        tag_key().prop_map(move |k| json!({"exists": {"field": f(&k)}})),
        "[a-z0-9]{1,6}".prop_map(|v| json!({"multi_match": {"query": v, "fields": ["actions.tags.*"]}})),
        (tag_key(), "[a-z0-9]{1,6}").prop_map(|(k, v)| json!({"query_string": {"query": format!("{}:{v}", qs_escape(&format!("actions.tags.{k}")))}})),
    ]
}

fn qs_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if ":\\+-!()^[]\"{}~*?/=<>&|".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replaces the `n`-th query slot (depth-first) of `q` with `clause`; returns how many slots
/// there were.
fn inject(q: &mut Value, n: &mut usize, clause: &Value) -> bool {
    if *n == 0 {
        *q = clause.clone();
        return true;
    }
    *n -= 1;
    let Some((kind, body)) = q.as_object_mut().and_then(|o| o.iter_mut().next()) else { return false };
    let subs: Vec<&mut Value> = match kind.as_str() {
        "bool" => body.as_object_mut().unwrap().values_mut().filter_map(|v| v.as_array_mut()).flat_map(|a| a.iter_mut()).collect(),
        "constant_score" => vec![&mut body["filter"]],
        "dis_max" => body["queries"].as_array_mut().unwrap().iter_mut().collect(),
        _ => vec![],
    };
    for s in subs {
        if inject(s, n, clause) {
            return true;
        }
    }
    false
}

/// Every string and key of a value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|i| strings(i, out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

proptest! {
    /// A body that never names the tag map comes out byte-for-byte identical, with no finding,
    /// whatever the legacy mapping.
    #[test]
    fn clauses_outside_the_tag_map_are_untouched(q in other_query(), from in 0u32..100, size in 0u32..50, text_legacy in any::<bool>()) {
        let legacy = if text_legacy { text() } else { LegacyTagMapping::Keyword };
        let body = json!({"query": q, "from": from, "size": size, "sort": [{"n": "asc"}], "_source": ["title"], "track_total_hits": true});
        let t = translate_search(&body, &tr(), &legacy);
        prop_assert!(t.findings.is_empty(), "{:?}", t.findings);
        prop_assert_eq!(t.body, body);
    }

    /// A tag clause injected anywhere in an unrelated query: translated exactly, and the
    /// translation differs from the legacy body only at that slot (the same body with the
    /// clause translated on its own injected there).
    #[test]
    fn only_the_tag_clause_changes(mut q in other_query(), clause in tag_query(), slot in 0usize..12) {
        let mut n = slot;
        if !inject(&mut q, &mut n, &clause) {
            return Ok(());
        }
        let inside_nested = serde_json::to_string(&q).unwrap().contains("\"nested\"");
        let t = translate_query(&q, &tr(), &LegacyTagMapping::Keyword);
        if inside_nested && !t.findings.is_empty() {
            // Flagged, not translated: the body is left as written.
            prop_assert!(t.findings.iter().all(|f| f.reason.contains("nested")));
            prop_assert_eq!(t.body, q);
            return Ok(());
        }
        prop_assert!(t.findings.is_empty(), "{:?}", t.findings);
        let alone = translate_query(&clause, &tr(), &LegacyTagMapping::Keyword);
        prop_assert!(alone.findings.is_empty());
        let mut want = q.clone();
        let mut n = slot;
        prop_assert!(inject(&mut want, &mut n, &alone.body));
        prop_assert_eq!(t.body, want);
    }

    /// An exact translation no longer names the legacy tag map, and translating it again
    /// changes nothing (target bodies are a fixed point).
    #[test]
    fn translations_are_fixed_points(mut q in other_query(), clause in tag_query(), slot in 0usize..12) {
        let mut n = slot;
        inject(&mut q, &mut n, &clause);
        let t = translate_search(&json!({"query": q}), &tr(), &LegacyTagMapping::Keyword);
        prop_assume!(t.is_exact());
        let mut all = Vec::new();
        strings(&t.body, &mut all);
        prop_assert!(all.iter().all(|s| !s.starts_with("actions.tags")), "{}", t.body);
        let again = translate_search(&t.body, &tr(), &LegacyTagMapping::Keyword);
        prop_assert!(again.is_exact());
        prop_assert_eq!(again.body, t.body);
    }

    /// A key=value clause becomes the pair term that decodes back to the same key and value.
    #[test]
    fn pair_terms_decode_to_the_clause(key in tag_key(), value in ".{0,10}", kind in prop_oneof![Just("term"), Just("match"), Just("match_phrase")]) {
        let t = kw(json!({ kind: {format!("actions.tags.{key}"): value} }));
        prop_assert!(t.is_exact());
        let kv = t.body["term"]["tags.keyToValue"]["value"].as_str().unwrap().to_string();
        prop_assert_eq!(crate::rewrite::decode_pair(&kv).unwrap(), (key, value));
    }

    /// `exact()` fails exactly when there are findings, and carries them all.
    #[test]
    fn exact_mode_refuses_iff_findings(q in other_query(), clause in prop_oneof![
        tag_query(),
        Just(json!({"range": {"actions.tags.k": {"gte": 1}}})),
        Just(json!({"match": {"actions.tags.k": {"query": "x", "fuzziness": 1}}})),
    ], slot in 0usize..8) {
        let mut q = q;
        let mut n = slot;
        inject(&mut q, &mut n, &clause);
        let t = translate_query(&q, &tr(), &LegacyTagMapping::Keyword);
        let findings = t.findings.clone();
        match t.exact() {
            Ok(_) => prop_assert!(findings.is_empty()),
            Err(e) => prop_assert_eq!(e.findings, findings),
        }
    }

    /// Bucket keys of a translated terms aggregation, restored, are the legacy values.
    #[test]
    fn restored_bucket_keys_are_the_values(key in tag_key(), values in proptest::collection::vec(".{0,6}", 0..4)) {
        let body = json!({"aggs": {"a": {"terms": {"field": format!("actions.tags.{key}")}}}});
        let t = translate_search(&body, &tr(), &LegacyTagMapping::Keyword);
        prop_assert!(t.is_exact());
        let buckets: Vec<Value> = values.iter().map(|v| json!({"key": encode_pair(&key, v), "doc_count": 1})).collect();
        let mut resp = json!({"aggregations": {"a": {"buckets": buckets}}});
        t.restore_response(&mut resp);
        let got: Vec<&str> = resp["aggregations"]["a"]["buckets"].as_array().unwrap().iter().map(|b| b["key"].as_str().unwrap()).collect();
        prop_assert_eq!(got, values.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

// ---- semantics, in memory ----
//
// A model of what Elasticsearch answers on a keyword-mapped legacy index (each tag field a
// multi-valued keyword, objects flattened into dotted field names) and on the target (two
// multi-valued keywords): for random documents with awkward keys (`:`, `\`, dots, nested
// objects) and random tag queries, every document matches the legacy query exactly when its
// rewrite matches the translation. tests/query_translation.rs checks the same against the real
// clusters, whose legacy template cannot hold dotted keys; this covers them.

/// The legacy index's view of a document: tag field (key) -> indexed values.
fn legacy_fields(doc: &Map<String, Value>) -> std::collections::BTreeMap<String, Vec<String>> {
    fn walk(key: &str, v: &Value, out: &mut std::collections::BTreeMap<String, Vec<String>>) {
        match v {
            Value::Null => {}
            Value::String(s) => out.entry(key.to_string()).or_default().push(s.clone()),
            Value::Number(_) | Value::Bool(_) => out.entry(key.to_string()).or_default().push(v.to_string()),
            Value::Array(items) => items.iter().for_each(|i| walk(key, i, out)),
            Value::Object(m) => m.iter().for_each(|(k, i)| walk(&format!("{key}.{k}"), i, out)),
        }
    }
    let mut out = std::collections::BTreeMap::new();
    if let Some(Value::Object(tags)) = doc.get("actions").and_then(|a| a.get("tags")) {
        tags.iter().for_each(|(k, v)| walk(k, v, &mut out));
    }
    out
}

/// Lucene's wildcard matching (`*`, `?`, `\` escapes) over characters.
fn wildcard_match(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| wildcard_match(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && wildcard_match(rest, &text[1..]),
        Some(('\\', rest)) if !rest.is_empty() => text.first() == Some(&rest[0]) && wildcard_match(&rest[1..], &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && wildcard_match(rest, &text[1..]),
    }
}

fn clauses(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        q => vec![q],
    }
}

/// Evaluates a bool over `leaf`.
fn eval_bool(b: &Value, eval: &dyn Fn(&Value) -> bool) -> bool {
    let count = |k: &str| clauses(&b[k]).into_iter().filter(|q| eval(q)).count();
    let should = clauses(&b["should"]).len();
    let must_all = ["must", "filter"].iter().all(|k| count(k) == clauses(&b[*k]).len());
    let msm = b["minimum_should_match"]
        .as_u64()
        .map_or(if should > 0 && clauses(&b["must"]).len() + clauses(&b["filter"]).len() == 0 { 1 } else { 0 }, |m| m as usize);
    must_all && count("must_not") == 0 && count("should") >= msm
}

/// The first (field, spec) of a one-field leaf, with the spec's value.
fn leaf(body: &Value, key: &str) -> (String, Value) {
    let (f, spec) = body.as_object().unwrap().iter().find(|(k, _)| !matches!(k.as_str(), "boost" | "_name")).unwrap();
    let v = if spec.is_object() { spec[key].clone() } else { spec.clone() };
    (f.clone(), v)
}

fn legacy_eval(q: &Value, fields: &std::collections::BTreeMap<String, Vec<String>>) -> bool {
    let (kind, body) = q.as_object().unwrap().iter().next().unwrap();
    let key_of = |f: &str| f.strip_prefix("actions.tags.").unwrap().to_string();
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let values = |k: &str| fields.get(k).cloned().unwrap_or_default();
    match kind.as_str() {
        "bool" => eval_bool(body, &|q| legacy_eval(q, fields)),
        "term" | "match" | "match_phrase" => {
            let (f, v) = leaf(body, if kind == "term" { "value" } else { "query" });
            values(&key_of(&f)).contains(&text(&v))
        }
        "terms" => {
            let (f, vs) = leaf(body, "");
            let want: Vec<String> = vs.as_array().unwrap().iter().map(text).collect();
            values(&key_of(&f)).iter().any(|v| want.contains(v))
        }
        "prefix" => {
            let (f, p) = leaf(body, "value");
            values(&key_of(&f)).iter().any(|v| v.starts_with(p.as_str().unwrap()))
        }
        "wildcard" => {
            let (f, p) = leaf(body, "value");
            let p: Vec<char> = p.as_str().unwrap().chars().collect();
            values(&key_of(&f)).iter().any(|v| wildcard_match(&p, &v.chars().collect::<Vec<_>>()))
        }
        "exists" => match body["field"].as_str().unwrap() {
            "actions.tags" | "actions.tags.*" => !fields.is_empty(),
            f => {
                let k = key_of(f);
                fields.keys().any(|have| crate::rewrite::key_is_under(have, &k))
            }
        },
        "multi_match" => fields.values().flatten().any(|v| *v == text(&body["query"])),
        other => panic!("no legacy model for {other}"),
    }
}

fn target_eval(q: &Value, pairs: &[String], values: &[String]) -> bool {
    let (kind, body) = q.as_object().unwrap().iter().next().unwrap();
    let side = |f: &str| if f == "tags.keyToValue" { pairs } else { values };
    match kind.as_str() {
        "bool" => eval_bool(body, &|q| target_eval(q, pairs, values)),
        "term" => {
            let (f, v) = leaf(body, "value");
            side(&f).iter().any(|x| x == v.as_str().unwrap())
        }
        "terms" => {
            let (f, vs) = leaf(body, "");
            side(&f).iter().any(|x| vs.as_array().unwrap().iter().any(|v| v.as_str() == Some(x)))
        }
        "prefix" => {
            let (f, p) = leaf(body, "value");
            side(&f).iter().any(|x| x.starts_with(p.as_str().unwrap()))
        }
        "wildcard" => {
            let (f, p) = leaf(body, "value");
            let p: Vec<char> = p.as_str().unwrap().chars().collect();
            side(&f).iter().any(|x| wildcard_match(&p, &x.chars().collect::<Vec<_>>()))
        }
        "exists" => !side(body["field"].as_str().unwrap()).is_empty(),
        other => panic!("no target model for {other}"),
    }
}

/// Random legacy documents over a small key space, with nested objects and literal dotted
/// keys; documents where a key is both a leaf and an object are left out (Elasticsearch
/// rejects them: a mapping conflict).
fn model_doc() -> impl Strategy<Value = Map<String, Value>> {
    let keys = prop_oneof![Just("a"), Just("a:b"), Just(r"a\"), Just("b"), Just("ab"), Just(r"a\:b"), Just("a.b"), Just("c.d")];
    let scalar = prop_oneof![Just(json!("x")), Just(json!("y:z")), Just(json!(r"\")), Just(json!("")), Just(json!(5)), Just(json!(true)), Just(json!("x*?"))];
    let value = prop_oneof![
        4 => scalar.clone(),
        1 => proptest::collection::vec(scalar.clone(), 0..3).prop_map(Value::Array),
        1 => (prop_oneof![Just("b"), Just("e")], scalar).prop_map(|(k, v)| json!({ k: v })),
        1 => Just(Value::Null),
    ];
    proptest::collection::btree_map(keys.prop_map(str::to_string), value, 0..4)
        .prop_map(|tags| json!({"actions": {"tags": tags}}).as_object().unwrap().clone())
        .prop_filter("no key both a leaf and an object", |doc| {
            let fields = legacy_fields(doc);
            !fields.keys().any(|a| fields.keys().any(|b| a != b && crate::rewrite::key_is_under(b, a)))
        })
}

fn model_query() -> impl Strategy<Value = Value> {
    let key = prop_oneof![Just("a"), Just("a:b"), Just(r"a\"), Just("b"), Just("a.b"), Just("a.e"), Just("c"), Just("c.d"), Just(r"a\:b")];
    let val = prop_oneof![Just("x"), Just("y:z"), Just(r"\"), Just(""), Just("5"), Just("true"), Just("x*?")];
    let f = |k: &str| format!("actions.tags.{k}");
    let leaf = prop_oneof![
        (key.clone(), val.clone()).prop_map(move |(k, v)| json!({"term": {f(k): v}})),
        (key.clone(), val.clone()).prop_map(move |(k, v)| json!({"match": {f(k): {"query": v}}})),
        (key.clone(), proptest::collection::vec(val.clone(), 1..3)).prop_map(move |(k, vs)| json!({"terms": {f(k): vs}})),
        (key.clone(), prop_oneof![Just(""), Just("y"), Just("y:"), Just(r"\")]).prop_map(move |(k, p)| json!({"prefix": {f(k): p}})),
        (key.clone(), prop_oneof![Just("*"), Just("?"), Just("*:*"), Just(r"x\*\?"), Just("y*")]).prop_map(move |(k, p)| json!({"wildcard": {f(k): p}})),
        prop_oneof![key.clone().prop_map(str::to_string), Just("*".to_string())].prop_map(|k| json!({"exists": {"field": format!("actions.tags.{k}")}})),
        Just(json!({"exists": {"field": "actions.tags"}})),
        val.prop_map(|v| json!({"multi_match": {"query": v, "fields": ["actions.tags.*"]}})),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        (proptest::collection::vec(inner.clone(), 0..3), proptest::collection::vec(inner.clone(), 0..3), proptest::collection::vec(inner, 0..2))
            .prop_map(|(must, should, not)| json!({"bool": {"must": must, "should": should, "must_not": not}}))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// The translation selects exactly the documents the legacy query selects (in the model).
    #[test]
    fn translation_selects_the_same_documents(docs in proptest::collection::vec(model_doc(), 1..6), q in model_query()) {
        let t = kw(q.clone());
        prop_assert!(t.is_exact(), "{:?}", t.findings);
        for doc in &docs {
            let target = tr().to_target(doc).unwrap();
            let tags = tr().target_tags(&target).unwrap();
            let pairs: Vec<String> = tags.iter().map(|t| encode_pair(&t.key, &t.value)).collect();
            let values: Vec<String> = tags.iter().map(|t| t.value.clone()).collect();
            prop_assert_eq!(
                legacy_eval(&q, &legacy_fields(doc)),
                target_eval(&t.body, &pairs, &values),
                "doc {} query {} translated {}", Value::Object(doc.clone()), q, t.body
            );
        }
    }
}
