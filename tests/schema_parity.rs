//! Schema parity against the real clusters: the same legacy documents written to a 7.17 index
//! with the classic dynamic tag map (`actions.tags.<key>` mapped to keyword by dynamic
//! templates) and, rewritten by `TagRewrite::to_target`, to a 9.x index built by
//! `schema::target_definition`, answer every `schema::Query` with the same document ids.
//! Plus the reason for the migration: the legacy map explodes at the total-fields limit while
//! the target mapping does not grow at all.

use cutover::{unique, Services};
use elasticsearch::http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schema::{target_definition, Query, TagRewrite, TargetDefinitionConfig};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const DOCS: usize = 2_000;
const KEYS: usize = 300;
const STATUSES: [&str; 4] = ["open", "closed", "pending", "archived"];
const KINDS: [&str; 3] = ["click", "view", "share"];

/// The realistic legacy mapping: one keyword dynamic template per JSON scalar type under the
/// tag map. (A single `match_mapping_type: "*"` template does not work: on 7.17 it also
/// matches objects, and a nested tag object then fails with `failed to parse field
/// [actions.tags.obj] of type [keyword]`.) Numbers and booleans are indexed as keyword terms
/// of their JSON text.
fn legacy_body(extra_settings: Value) -> Value {
    let templates: Vec<Value> = ["string", "long", "double", "boolean"]
        .iter()
        .map(|t| {
            json!({format!("tags_{t}"): {
                "path_match": "actions.tags.*",
                "match_mapping_type": t,
                "mapping": {"type": "keyword"}
            }})
        })
        .collect();
    let mut settings = json!({"number_of_shards": 1, "number_of_replicas": 0});
    if let (Some(s), Some(extra)) = (settings.as_object_mut(), extra_settings.as_object()) {
        s.extend(extra.clone());
    }
    json!({
        "settings": settings,
        "mappings": {
            "dynamic_templates": templates,
            "properties": {
                "status": {"type": "keyword"},
                "n": {"type": "integer"},
                "actions": {"properties": {"kind": {"type": "keyword"}}}
            }
        }
    })
}

/// Tag key number `i`: mostly plain, some with `:`, some with `\`, some with both.
fn key_name(i: usize) -> String {
    if i % 25 == 11 {
        format!(r"a:b\c{i}")
    } else if i % 10 == 3 {
        format!("ns:k{i}")
    } else if i % 10 == 7 {
        format!(r"win\k{i}")
    } else {
        format!("k{i}")
    }
}

const COLON_VALUES: [&str; 5] = ["a:b", "x:1:2", "urn:isbn:0451450523", ":lead", "trail:"];
const BACKSLASH_VALUES: [&str; 4] = [r"c:\temp", r"back\slash", r"\", r"\:"];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn common_string(rng: &mut StdRng) -> Value {
    json!(format!("v{}", rng.random_range(0..20)))
}

/// One tag value: strings (plain, with `:`, with `\`, empty), integers, floats, booleans,
/// arrays (with nulls) and null.
fn tag_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..100) {
        0..40 => common_string(rng),
        40..50 => json!(pick(rng, &COLON_VALUES)),
        50..57 => json!(pick(rng, &BACKSLASH_VALUES)),
        57..59 => json!(""),
        59..73 => json!(rng.random_range(-1..10)),
        73..79 => json!([0.5, 2.5, -1.25][rng.random_range(0..3)]),
        79..89 => json!(rng.random_bool(0.5)),
        89..97 => {
            let len = rng.random_range(1..4);
            let items: Vec<Value> = (0..len)
                .map(|_| match rng.random_range(0..4) {
                    0 => json!(rng.random_range(0..10)),
                    1 => Value::Null,
                    _ => common_string(rng),
                })
                .collect();
            Value::Array(items)
        }
        _ => Value::Null,
    }
}

/// A deterministic corpus of legacy-form documents (same seed, same documents).
fn legacy_docs(seed: u64, count: usize) -> Vec<(String, Map<String, Value>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let mut doc = Map::new();
            doc.insert("status".into(), json!(STATUSES[rng.random_range(0..4)]));
            doc.insert("n".into(), json!(rng.random_range(0..100)));
            let mut actions = Map::new();
            if rng.random_bool(0.3) {
                actions.insert("kind".into(), json!(KINDS[rng.random_range(0..3)]));
            }
            let mut tags = Map::new();
            // Skewed key choice: a few keys are frequent, most are rare.
            for _ in 0..rng.random_range(0..9) {
                let k = (rng.random::<f64>().powi(3) * KEYS as f64) as usize;
                tags.insert(key_name(k), tag_value(&mut rng));
            }
            if rng.random_bool(0.12) {
                tags.insert("obj".into(), json!({"sub": common_string(&mut rng), "deep": {"z": rng.random_range(0..5)}}));
            }
            if rng.random_bool(0.05) {
                // A literal dotted key, which Elasticsearch conflates with `obj: {lit: ..}`.
                tags.insert("obj.lit".into(), common_string(&mut rng));
            }
            match rng.random_range(0..20) {
                0 => {} // no tag map at all
                1 => {
                    actions.insert("tags".into(), json!({}));
                }
                _ if !tags.is_empty() => {
                    actions.insert("tags".into(), Value::Object(tags));
                }
                _ => {}
            }
            if !actions.is_empty() || rng.random_bool(0.5) {
                doc.insert("actions".into(), Value::Object(actions));
            }
            (format!("d{i:05}"), doc)
        })
        .collect()
}

/// `_bulk`-indexes the documents in chunks; returns every item of every response. A chunk
/// that gets no answer (a loaded test machine, the 60 s client timeout) is sent again: index
/// operations with fixed ids are idempotent.
async fn bulk_index(es: &cluster::Es, index: &str, docs: &[(String, Map<String, Value>)]) -> Vec<Value> {
    let mut items = Vec::new();
    for chunk in docs.chunks(250) {
        let mut body = Vec::new();
        for (id, doc) in chunk {
            serde_json::to_writer(&mut body, &json!({"index": {"_index": index, "_id": id}})).unwrap();
            body.push(b'\n');
            serde_json::to_writer(&mut body, doc).unwrap();
            body.push(b'\n');
        }
        let mut attempt = 0;
        let resp = loop {
            match es.bulk(body.clone().into(), false).await {
                Ok(resp) => break resp,
                Err(e) if e.is_retryable() && attempt < 4 => {
                    attempt += 1;
                    eprintln!("bulk to {index}: {e}; retry {attempt}");
                    tokio::time::sleep(std::time::Duration::from_secs(2 * attempt)).await;
                }
                Err(e) => panic!("bulk request to {index}: {e}"),
            }
        };
        items.extend(resp["items"].as_array().expect("bulk items").iter().map(|i| i["index"].clone()));
    }
    assert_eq!(items.len(), docs.len());
    items
}

fn failures(items: &[Value]) -> Vec<&Value> {
    items.iter().filter(|i| i.get("error").is_some()).collect()
}

async fn ids(es: &cluster::Es, index: &str, query: Value) -> BTreeSet<String> {
    let body = json!({"size": 10_000, "_source": false, "track_total_hits": true, "query": query});
    let resp = es.ok(Method::Post, &format!("/{index}/_search"), Some(&body)).await.unwrap_or_else(|e| panic!("search {query} on {index}: {e}"));
    assert_eq!(resp["_shards"]["failed"], json!(0), "shard failures for {query}: {resp}");
    let hits: BTreeSet<String> = resp["hits"]["hits"].as_array().expect("hits").iter().map(|h| h["_id"].as_str().expect("_id").to_owned()).collect();
    assert_eq!(json!(hits.len()), resp["hits"]["total"]["value"], "all hits returned for {query}");
    hits
}

/// The target create-index body derived from the legacy index as the cluster reports it.
async fn create_target(legacy: &cluster::Es, legacy_index: &str, target: &cluster::Es, target_index: &str) -> Value {
    let got = legacy.get(&format!("/{legacy_index}")).await.expect("GET legacy index");
    let def = target_definition(&got[legacy_index], &TargetDefinitionConfig::default()).expect("target definition");
    target.ok(Method::Put, &format!("/{target_index}"), Some(&def)).await.expect("create target index");
    def
}

fn kv(key: &str, value: &str) -> Query {
    Query::TagKeyValue { key: key.into(), value: value.into() }
}
fn val(value: &str) -> Query {
    Query::TagValue(value.into())
}
fn exists(key: &str) -> Query {
    Query::TagKeyExists(key.into())
}
fn term(field: &str, value: Value) -> Query {
    Query::Term { field: field.into(), value }
}
fn boolean(must: Vec<Query>, should: Vec<Query>, must_not: Vec<Query>) -> Query {
    Query::Bool { must, should, must_not }
}

fn parity_queries() -> Vec<(&'static str, Query)> {
    vec![
        ("key=value plain", kv("k0", "v1")),
        ("key with `:` = value with `:`", kv("ns:k3", "a:b")),
        ("key with `:` = plain value", kv("ns:k3", "v2")),
        (r"key with `\` = value with `\`", kv(r"win\k7", r"back\slash")),
        (r"key with `:` and `\`", kv(r"a:b\c11", "true")),
        (r"key exists with `:` and `\`", exists(r"a:b\c11")),
        (r"value `c:\temp`", kv("k0", r"c:\temp")),
        ("value `\\:`", kv("k1", r"\:")),
        ("value with leading `:`", kv("k2", ":lead")),
        ("numeric value", kv("k0", "5")),
        ("negative numeric value", kv("k1", "-1")),
        ("float value", kv("k0", "0.5")),
        ("boolean value", kv("k2", "true")),
        ("empty string value", kv("k0", "")),
        ("nested object key=value", kv("obj.sub", "v3")),
        ("nested object deep key=value", kv("obj.deep.z", "2")),
        ("literal dotted key=value", kv("obj.lit", "v4")),
        ("value only, plain", val("v3")),
        ("value only, with `:`", val("urn:isbn:0451450523")),
        (r"value only, with `\`", val(r"c:\temp")),
        ("value only, numeric", val("7")),
        ("value only, float", val("2.5")),
        ("value only, boolean", val("false")),
        ("value only, empty string", val("")),
        ("key exists plain", exists("k4")),
        ("key exists with `:`", exists("ns:k13")),
        (r"key exists with `\`", exists(r"win\k7")),
        ("key exists, nested object", exists("obj")),
        ("key exists, nested sub-object", exists("obj.deep")),
        ("key exists, trap: `k` is only a prefix of keys", exists("k")),
        ("key exists, trap: `ns` is only the part before `:`", exists("ns")),
        ("key=value absent", kv("k0", "no-such-value")),
        ("bool must term+exists", boolean(vec![term("status", json!("open")), exists("k1")], vec![], vec![])),
        ("bool must value, must_not term", boolean(vec![val("v0")], vec![], vec![term("status", json!("closed"))])),
        ("bool should tag/int term, must_not exists", boolean(vec![], vec![kv("k0", "v1"), term("n", json!(42))], vec![exists("ns:k3")])),
        ("bool must_not exists only (docs without the tag)", boolean(vec![], vec![], vec![exists("k0")])),
        ("bool must int term, should numeric/boolean values", boolean(vec![term("n", json!(7))], vec![val("true"), val("1")], vec![])),
        (
            "bool nested: must (should of two keys), must_not value",
            boolean(vec![boolean(vec![], vec![exists(r"win\k7"), exists("obj")], vec![]), term("actions.kind", json!("view"))], vec![], vec![val("v5")]),
        ),
        ("empty bool matches all", boolean(vec![], vec![], vec![])),
    ]
}

#[tokio::test]
async fn legacy_and_target_queries_return_identical_ids() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let legacy_index = unique("parity-legacy");
    let target_index = unique("parity-target");
    let tags = TagRewrite::default();

    legacy.ok(Method::Put, &format!("/{legacy_index}"), Some(&legacy_body(json!({})))).await.expect("create legacy index");
    let docs = legacy_docs(0x5eed_7a65, DOCS);
    let items = bulk_index(&legacy, &legacy_index, &docs).await;
    assert!(failures(&items).is_empty(), "legacy rejected: {:?}", failures(&items).first());
    legacy.refresh(&legacy_index).await.unwrap();

    let def = create_target(&legacy, &legacy_index, &target, &target_index).await;
    assert_eq!(def["settings"]["index"]["gc_deletes"], json!("48h"), "{def}");
    assert!(def["mappings"].get("dynamic_templates").is_none(), "tag templates dropped: {def}");
    let rewritten: Vec<(String, Map<String, Value>)> = docs.iter().map(|(id, d)| (id.clone(), tags.to_target(d).expect("rewrite"))).collect();
    let items = bulk_index(&target, &target_index, &rewritten).await;
    assert!(failures(&items).is_empty(), "target rejected: {:?}", failures(&items).first());
    target.refresh(&target_index).await.unwrap();

    let distinct_keys: BTreeSet<String> = rewritten.iter().flat_map(|(_, d)| tags.target_tags(d).unwrap().into_iter().map(|t| t.key)).collect();
    assert!(distinct_keys.len() >= 150, "only {} distinct tag keys", distinct_keys.len());

    let queries = parity_queries();
    assert!(queries.len() >= 20);
    let mut mismatches = Vec::new();
    let mut non_empty = 0;
    let mut report = Vec::new();
    for (name, q) in &queries {
        let old = ids(&legacy, &legacy_index, q.to_legacy(&tags)).await;
        let new = ids(&target, &target_index, q.to_target(&tags)).await;
        report.push(format!("{:5} {:5} {name}", old.len(), new.len()));
        if !old.is_empty() {
            non_empty += 1;
        }
        if old != new {
            let only_old: Vec<_> = old.difference(&new).take(5).collect();
            let only_new: Vec<_> = new.difference(&old).take(5).collect();
            mismatches.push(format!("{name}: legacy {} vs target {} ids; only legacy {only_old:?}, only target {only_new:?}", old.len(), new.len()));
        }
    }
    eprintln!("legacy target query ({} docs, {} distinct tag keys)\n{}", docs.len(), distinct_keys.len(), report.join("\n"));
    assert!(mismatches.is_empty(), "queries disagree:\n{}", mismatches.join("\n"));
    assert!(non_empty >= 15, "only {non_empty} of {} queries matched anything:\n{}", queries.len(), report.join("\n"));

    for (es, index) in [(&legacy, &legacy_index), (&target, &target_index)] {
        let _ = es.ok(Method::Delete, &format!("/{index}"), None).await;
    }
}

/// Counts the leaf fields of a `GET /<index>/_mapping` response (sub-fields included).
fn leaf_fields(mapping: &Value) -> usize {
    fn walk(props: &Map<String, Value>) -> usize {
        props
            .values()
            .map(|p| {
                let own = match p.get("properties").and_then(Value::as_object) {
                    Some(inner) => walk(inner),
                    None => 1,
                };
                own + p.get("fields").and_then(Value::as_object).map_or(0, walk)
            })
            .sum()
    }
    mapping.as_object().expect("mapping response").values().map(|idx| idx["mappings"]["properties"].as_object().map_or(0, walk)).sum()
}

/// The error (or its cause) that says the total-fields limit was hit.
fn limit_error(error: &Value) -> Option<&Value> {
    let mut e = Some(error);
    while let Some(cur) = e {
        if cur["type"] == "illegal_argument_exception" && cur["reason"].as_str().is_some_and(|r| r.contains("Limit of total fields [1000] has been exceeded")) {
            return Some(cur);
        }
        e = cur.get("caused_by");
    }
    None
}

#[tokio::test]
async fn legacy_mapping_explodes_target_mapping_does_not_grow() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let legacy_index = unique("explode-legacy");
    let target_index = unique("explode-target");
    let tags = TagRewrite::default();

    // Default index.mapping.total_fields.limit (1000), the dynamic tag templates.
    legacy.ok(Method::Put, &format!("/{legacy_index}"), Some(&legacy_body(json!({})))).await.expect("create legacy");
    let limit = legacy.get(&format!("/{legacy_index}/_settings?include_defaults=true&flat_settings=true")).await.unwrap()[&legacy_index]["defaults"]
        ["index.mapping.total_fields.limit"]
        .clone();
    assert_eq!(limit, json!("1000"));

    // 100 documents x 50 fresh keys = 5,000 distinct tag keys.
    let (per_doc, doc_count) = (50, 100);
    let docs: Vec<(String, Map<String, Value>)> = (0..doc_count)
        .map(|d| {
            let tagmap: Map<String, Value> = (0..per_doc).map(|k| (format!("key{d:03}_{k:02}"), json!(format!("v{k}")))).collect();
            let doc = json!({"status": "open", "n": d, "actions": {"tags": tagmap}});
            (format!("e{d:03}"), doc.as_object().unwrap().clone())
        })
        .collect();
    let distinct: BTreeSet<&String> = docs.iter().flat_map(|(_, d)| d["actions"]["tags"].as_object().unwrap().keys()).collect();
    assert_eq!(distinct.len(), 5_000);

    let items = bulk_index(&legacy, &legacy_index, &docs).await;
    let failed = failures(&items);
    let accepted = items.len() - failed.len();
    assert!(accepted > 0 && !failed.is_empty(), "legacy accepted {accepted} of {}", items.len());
    for f in &failed {
        assert_eq!(f["status"], json!(400), "{f}");
        assert!(limit_error(&f["error"]).is_some(), "not the total-fields error: {f}");
    }
    let example = &failed[0]["error"];
    eprintln!("legacy: {accepted} of {doc_count} documents accepted, {} rejected; e.g. {example}", failed.len());
    let legacy_fields = leaf_fields(&legacy.get(&format!("/{legacy_index}/_mapping")).await.unwrap());
    assert!(legacy_fields <= 1000 && legacy_fields > 900, "legacy leaf fields {legacy_fields}");

    // The target, derived from the (exploded) legacy definition.
    let def = create_target(&legacy, &legacy_index, &target, &target_index).await;
    let before = leaf_fields(&target.get(&format!("/{target_index}/_mapping")).await.unwrap());
    let rewritten: Vec<(String, Map<String, Value>)> = docs.iter().map(|(id, d)| (id.clone(), tags.to_target(d).unwrap())).collect();
    let items = bulk_index(&target, &target_index, &rewritten).await;
    assert!(failures(&items).is_empty(), "target rejected: {:?}", failures(&items).first());
    target.refresh(&target_index).await.unwrap();
    let after = leaf_fields(&target.get(&format!("/{target_index}/_mapping")).await.unwrap());
    assert_eq!(before, after, "target mapping grew; definition {def}");
    eprintln!("legacy leaf fields {legacy_fields}; target leaf fields before {before}, after {after}");

    let count = target.get(&format!("/{target_index}/_count")).await.unwrap();
    assert_eq!(count["count"], json!(doc_count));
    // A key only the last (legacy-rejected) document carries is queryable on the target.
    let q = kv("key099_49", "v49");
    assert_eq!(ids(&target, &target_index, q.to_target(&tags)).await, BTreeSet::from(["e099".to_owned()]));
    legacy.refresh(&legacy_index).await.unwrap();
    assert!(ids(&legacy, &legacy_index, q.to_legacy(&tags)).await.is_empty());

    for (es, index) in [(&legacy, &legacy_index), (&target, &target_index)] {
        let _ = es.ok(Method::Delete, &format!("/{index}"), None).await;
    }
}
