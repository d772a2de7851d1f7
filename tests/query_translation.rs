//! Query translation against the real clusters: a legacy 7.17 index whose tags are mapped as
//! `keyword` (the harness's dynamic template), migrated to 9.x by `backfill copy`, answers
//! (a) a fixed list of legacy search bodies covering every translated clause kind and
//! (b) 300 seeded random queries (bools of every tag clause kind, some with a
//! terms aggregation) exactly as the target answers their translations
//! (`schema::translate`): same ids (same order where sorted), same totals, same terms-aggregation
//! buckets once restored. Queries the translator flags are reported (library and CLI), never
//! run. Controls: the untranslated legacy bodies run on the target return other ids, and on a
//! `text`-mapped legacy (Elasticsearch's default dynamic mapping) the flagged analysed `match`
//! really does answer differently, while its `.keyword` sub-field translates exactly.

use cutover::scenario::Scenario;
use cutover::sim::SimCommand;
use elasticsearch::http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schema::translate::{translate_search, LegacyTagMapping, Translation};
use schema::TagRewrite;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::time::Instant;

const DOCS: usize = 600;
const KEYS: [&str; 8] = ["color", "name", "k0", "k1", "scope:team", r"path\dir", "Owner", "size"];
const STRINGS: [&str; 15] = ["red", "Red", "blue", "green", "John", "john", "John Smith", "smith", "v1", "v2", "v10", "a:b", "x y z", "", r"c:\temp"];

/// A value for tag `key`: `size` holds integers (and `ok` booleans), every other key strings
/// or arrays of strings, so the same documents also fit Elasticsearch's default dynamic
/// mapping (text + keyword) on the text-legacy control.
fn tag_value(rng: &mut StdRng, key: &str) -> Value {
    match key {
        "size" => json!(rng.random_range(0..8)),
        "ok" => json!(rng.random_bool(0.5)),
        _ if rng.random_bool(0.1) => json!([STRINGS[rng.random_range(0..STRINGS.len())], STRINGS[rng.random_range(0..STRINGS.len())]]),
        _ => json!(STRINGS[rng.random_range(0..STRINGS.len())]),
    }
}

fn legacy_docs(seed: u64) -> Vec<(String, Map<String, Value>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..DOCS)
        .map(|i| {
            let mut doc = Map::new();
            doc.insert("title".into(), json!(format!("document {i} {}", ["alpha", "beta", "John"][i % 3])));
            doc.insert("status".into(), json!(["open", "closed", "new"][rng.random_range(0..3)]));
            doc.insert("n".into(), json!(i));
            if rng.random_range(0..10) > 0 {
                let mut tags = Map::new();
                for _ in 0..rng.random_range(0..6) {
                    let key = if rng.random_bool(0.1) { "ok" } else { KEYS[rng.random_range(0..KEYS.len())] };
                    tags.insert(key.to_string(), tag_value(&mut rng, key));
                }
                doc.insert("actions".into(), json!({"tags": tags, "clicks": rng.random_range(0..9)}));
            }
            (format!("q{i:04}"), doc)
        })
        .collect()
}

/// What a search answered: ids in hit order, the total, and the aggregations.
#[derive(Debug, PartialEq)]
struct Answer {
    ids: Vec<String>,
    total: u64,
    aggs: Value,
}

impl Answer {
    fn id_set(&self) -> BTreeSet<&str> {
        self.ids.iter().map(String::as_str).collect()
    }
}

/// Runs a body; without `size` it gets every hit (size 10 000) with an exact total.
async fn search(es: &cluster::Es, index: &str, body: &Value) -> Answer {
    let mut body = body.clone();
    if body.get("size").is_none() {
        body["size"] = json!(10_000);
        body["track_total_hits"] = json!(true);
        body["_source"] = json!(false);
    }
    let resp = es.ok(Method::Post, &format!("/{index}/_search"), Some(&body)).await.unwrap_or_else(|e| panic!("search {body} on {index}: {e}"));
    assert_eq!(resp["_shards"]["failed"], json!(0), "shard failures for {body}: {resp}");
    let ids = resp["hits"]["hits"].as_array().expect("hits").iter().map(|h| h["_id"].as_str().expect("_id").to_string()).collect();
    Answer { ids, total: resp["hits"]["total"]["value"].as_u64().unwrap_or(0), aggs: buckets_only(&resp["aggregations"]) }
}

/// The aggregations reduced to what both clusters must agree on: bucket keys, doc counts and
/// sub-aggregations (error bounds depend on shard layout, not on the query).
fn buckets_only(aggs: &Value) -> Value {
    match aggs {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| !matches!(k.as_str(), "doc_count_error_upper_bound" | "meta")).map(|(k, v)| (k.clone(), buckets_only(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(buckets_only).collect()),
        v => v.clone(),
    }
}

/// True when every aggregation of `aggs` (at any depth) has at least one bucket.
fn has_buckets(aggs: &Value) -> bool {
    let Some(m) = aggs.as_object() else { return false };
    m.values().all(|a| a["buckets"].as_array().is_some_and(|b| !b.is_empty() && b.iter().all(|b| b["doc_count"].as_u64() > Some(0))))
}

/// Runs the legacy body on the legacy index and its translation on the target (bucket keys
/// restored); returns both answers.
async fn both(sc: &Scenario, legacy_body: &Value, t: &Translation) -> (Answer, Answer) {
    let old = search(&sc.legacy_es(), &sc.legacy_index, legacy_body).await;
    let mut new = search(&sc.target_es(), &sc.target_index, &t.body).await;
    let mut resp = json!({"aggregations": new.aggs});
    t.restore_response(&mut resp);
    new.aggs = resp["aggregations"].take();
    (old, new)
}

fn q(query: Value) -> Value {
    json!({ "query": query })
}

/// Legacy search bodies, one or more per translated clause kind.
fn fixed_queries() -> Vec<(&'static str, Value)> {
    vec![
        ("term", q(json!({"term": {"actions.tags.color": "red"}}))),
        ("term, other case", q(json!({"term": {"actions.tags.color": {"value": "Red"}}}))),
        ("term, integer value", q(json!({"term": {"actions.tags.size": 5}}))),
        ("term, boolean value", q(json!({"term": {"actions.tags.ok": true}}))),
        ("term, key with `:` and value with `:`", q(json!({"term": {"actions.tags.scope:team": "a:b"}}))),
        (r"term, key with `\`", q(json!({"term": {r"actions.tags.path\dir": r"c:\temp"}}))),
        ("term, empty value", q(json!({"term": {"actions.tags.name": ""}}))),
        ("terms", q(json!({"terms": {"actions.tags.color": ["red", "blue"]}}))),
        ("terms, mixed scalars", q(json!({"terms": {"actions.tags.size": [1, 2, "3"], "boost": 2}}))),
        ("match (keyword: exact)", q(json!({"match": {"actions.tags.name": "John Smith"}}))),
        ("match lower case", q(json!({"match": {"actions.tags.name": {"query": "john", "operator": "and"}}}))),
        ("match_phrase", q(json!({"match_phrase": {"actions.tags.name": "John Smith"}}))),
        ("prefix", q(json!({"prefix": {"actions.tags.name": "Jo"}}))),
        ("prefix, key with `:`", q(json!({"prefix": {"actions.tags.scope:team": {"value": "v"}}}))),
        ("wildcard", q(json!({"wildcard": {"actions.tags.color": "r*d"}}))),
        (r"wildcard over values with `:`, key with `\`", q(json!({"wildcard": {r"actions.tags.path\dir": {"value": "*:*"}}}))),
        ("regexp", q(json!({"regexp": {"actions.tags.color": "(red|blue)"}}))),
        ("exists", q(json!({"exists": {"field": "actions.tags.color"}}))),
        ("exists, key with `:`", q(json!({"exists": {"field": "actions.tags.scope:team"}}))),
        ("exists, the whole map", q(json!({"exists": {"field": "actions.tags"}}))),
        ("exists, every tag field", q(json!({"exists": {"field": "actions.tags.*"}}))),
        ("exists, key pattern", q(json!({"exists": {"field": "actions.tags.k*"}}))),
        ("multi_match over every tag", q(json!({"multi_match": {"query": "red", "fields": ["actions.tags.*"]}}))),
        ("multi_match, tag and text field", q(json!({"multi_match": {"query": "John", "fields": ["title", "actions.tags.name^2"]}}))),
        ("multi_match, key pattern", q(json!({"multi_match": {"query": "v1", "fields": ["actions.tags.k*"], "type": "phrase"}}))),
        ("query_string OR", q(json!({"query_string": {"query": r#"actions.tags.color:red OR actions.tags.name:"John Smith""#}}))),
        ("query_string AND with a plain field", q(json!({"query_string": {"query": r"actions.tags.scope\:team:v1 AND status:open"}}))),
        ("query_string default field pattern", q(json!({"query_string": {"query": "red", "default_field": "actions.tags.*"}}))),
        ("query_string _exists_ and groups", q(json!({"query_string": {"query": "_exists_:actions.tags.Owner AND (status:open OR status:new)"}}))),
        ("query_string field pattern", q(json!({"query_string": {"query": r"actions.tags.k\*:v2 OR actions.tags.\*:green"}}))),
        ("simple_query_string OR", q(json!({"simple_query_string": {"query": "red | blue", "fields": ["actions.tags.color"]}}))),
        (
            "simple_query_string phrase and term, default OR",
            q(json!({"simple_query_string": {"query": "\"John Smith\" john", "fields": ["actions.tags.name"], "default_operator": "or"}})),
        ),
        ("simple_query_string AND over every tag", q(json!({"simple_query_string": {"query": "red + v1", "fields": ["actions.tags.*"]}}))),
        (
            "simple_query_string default OR, two fields",
            q(json!({"simple_query_string": {"query": "john v1", "fields": ["actions.tags.name", "actions.tags.k0"]}})),
        ),
        (
            "bool must/filter/must_not",
            q(
                json!({"bool": {"must": [{"term": {"status": "open"}}], "filter": {"exists": {"field": "actions.tags.color"}}, "must_not": [{"term": {"actions.tags.color": "red"}}]}}),
            ),
        ),
        (
            "bool should, minimum_should_match 2",
            q(
                json!({"bool": {"should": [{"term": {"actions.tags.color": "red"}}, {"term": {"actions.tags.name": "john"}}, {"match": {"title": "alpha"}}], "minimum_should_match": 2}}),
            ),
        ),
        ("constant_score", q(json!({"constant_score": {"filter": {"term": {"actions.tags.k0": "v1"}}, "boost": 1.5}}))),
        ("dis_max", q(json!({"dis_max": {"queries": [{"term": {"actions.tags.color": "blue"}}, {"prefix": {"actions.tags.name": "J"}}]}}))),
        ("docs without tags", q(json!({"bool": {"must_not": {"exists": {"field": "actions.tags"}}}}))),
        (
            "boosting",
            q(
                json!({"boosting": {"positive": {"term": {"actions.tags.color": "red"}}, "negative": {"term": {"actions.tags.name": "john"}}, "negative_boost": 0.2}}),
            ),
        ),
        (
            "function_score",
            q(
                json!({"function_score": {"query": {"exists": {"field": "actions.tags.name"}}, "functions": [{"filter": {"term": {"actions.tags.color": "blue"}}, "weight": 2}]}}),
            ),
        ),
        (
            "sorted page with _source filter",
            json!({"query": {"exists": {"field": "actions.tags.color"}}, "sort": [{"n": "desc"}], "from": 5, "size": 10, "_source": ["title"], "track_total_hits": true}),
        ),
        (
            "terms aggregations, nested under a plain one",
            json!({"size": 0, "track_total_hits": true, "aggs": {
                "colors": {"terms": {"field": "actions.tags.color", "size": 50}},
                "by_status": {"terms": {"field": "status"}, "aggs": {"names": {"terms": {"field": "actions.tags.name", "size": 50, "order": {"_key": "asc"}}}}}
            }}),
        ),
        (
            "terms aggregation with include, under a query",
            json!({"size": 0, "track_total_hits": true, "query": {"term": {"status": "open"}}, "aggs": {"scoped": {"terms": {"field": "actions.tags.scope:team", "include": "v.*", "size": 50}}}}),
        ),
        (
            "post_filter with a terms aggregation",
            json!({"post_filter": {"term": {"actions.tags.color": "red"}}, "aggs": {"sizes": {"terms": {"field": "actions.tags.size", "size": 50, "min_doc_count": 1}}}}),
        ),
    ]
}

/// Legacy bodies the translator must refuse, with the reason it must give.
fn flagged_queries() -> Vec<(Value, &'static str)> {
    vec![
        (q(json!({"match": {"actions.tags.name": {"query": "jon", "fuzziness": "AUTO"}}})), "fuzziness"),
        (q(json!({"query_string": {"query": "actions.tags.name:Jo*"}})), "wildcard"),
        (q(json!({"query_string": {"query": "John Smith", "fields": ["actions.tags.name"]}})), "whitespace"),
        (q(json!({"range": {"actions.tags.size": {"gte": 3}}})), "range"),
        (q(json!({"term": {"actions.tags.color": {"value": "RED", "case_insensitive": true}}})), "case_insensitive"),
        (json!({"query": {"match_all": {}}, "sort": [{"actions.tags.color": "asc"}]}), "sorting"),
        (json!({"size": 0, "aggs": {"c": {"terms": {"field": "actions.tags.color", "missing": "none"}}}}), "missing"),
        (q(json!({"multi_match": {"query": "red"}})), "default_field"),
    ]
}

/// A random query from the translatable subset (seeded): tag leaves of every kind, plain
/// leaves, nested in bools.
fn random_query(rng: &mut StdRng, depth: u32) -> Value {
    if depth > 0 && rng.random_bool(0.35) {
        let mut b = Map::new();
        for occur in ["must", "filter", "should", "must_not"] {
            if rng.random_bool(0.5) {
                let n = rng.random_range(1..4);
                let clauses: Vec<Value> = (0..n).map(|_| random_query(rng, depth - 1)).collect();
                if occur == "should" && rng.random_bool(0.5) {
                    b.insert("minimum_should_match".into(), json!(rng.random_range(1..=n)));
                }
                b.insert(occur.into(), Value::Array(clauses));
            }
        }
        return json!({"bool": b});
    }
    let key = KEYS[rng.random_range(0..KEYS.len())];
    let field = format!("actions.tags.{key}");
    let string = |rng: &mut StdRng| STRINGS[rng.random_range(0..STRINGS.len())].to_string();
    let value = |rng: &mut StdRng| if key == "size" { rng.random_range(0..8).to_string() } else { string(rng) };
    match rng.random_range(0..15) {
        0 => json!({"term": {field: value(rng)}}),
        1 => json!({"terms": {field: (0..rng.random_range(1..4)).map(|_| value(rng)).collect::<Vec<_>>()}}),
        2 => json!({"match": {field: value(rng)}}),
        3 => json!({"match_phrase": {field: {"query": value(rng)}}}),
        4 => {
            let v = value(rng);
            let p: String = v.chars().take(rng.random_range(0..3)).collect();
            json!({"prefix": {field: p}})
        }
        5 => {
            let v = value(rng);
            let pat: String = v.chars().enumerate().map(|(i, c)| if i == 1 { '?' } else { c }).collect();
            json!({"wildcard": {field: format!("{pat}*")}})
        }
        6 => {
            let f = ["actions.tags", "actions.tags.*", "actions.tags.k*", field.as_str()][rng.random_range(0..4)].to_string();
            json!({"exists": {"field": f}})
        }
        7 => {
            let fields =
                [json!(["actions.tags.*"]), json!([&field]), json!(["title", &field]), json!(["actions.tags.k*", "status"])][rng.random_range(0..4)].clone();
            json!({"multi_match": {"query": value(rng), "fields": fields}})
        }
        8 => {
            let n = rng.random_range(1..4);
            let leaves: Vec<String> = (0..n)
                .map(|_| {
                    let k = KEYS[rng.random_range(0..KEYS.len())];
                    let v = if k == "size" { rng.random_range(0..8).to_string() } else { string(rng) };
                    let v = if v.is_empty() { "v1".to_string() } else { v };
                    format!("{}:{}", qs_escape(&format!("actions.tags.{k}")), qs_value(&v))
                })
                .collect();
            json!({"query_string": {"query": leaves.join(if rng.random_bool(0.5) { " AND " } else { " OR " })}})
        }
        9 => {
            let n = rng.random_range(1..4);
            let vs: Vec<String> = (0..n).map(|_| string(rng)).filter(|v| !v.is_empty()).map(|v| simple_value(&v)).collect();
            let vs = if vs.is_empty() { vec!["red".to_string()] } else { vs };
            let op = [" | ", " + ", " "][rng.random_range(0..3)];
            let dflt = ["or", "and"][rng.random_range(0..2)];
            json!({"simple_query_string": {"query": vs.join(op), "fields": [field, "actions.tags.name"], "default_operator": dflt}})
        }
        10 => {
            let status = ["open", "closed", "new"][rng.random_range(0..3)];
            json!({"term": {"status": status}})
        }
        11 => json!({"range": {"n": {"gte": rng.random_range(0..DOCS), "lt": rng.random_range(0..DOCS)}}}),
        12 => json!({"regexp": {field: format!("{}.*", regex_escape(&value(rng).chars().take(2).collect::<String>()))}}),
        13 => json!({"dis_max": {"queries": [random_query(rng, depth.saturating_sub(1)), random_query(rng, depth.saturating_sub(1))]}}),
        _ => json!({"constant_score": {"filter": random_query(rng, depth.saturating_sub(1))}}),
    }
}

fn regex_escape(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_ascii_alphanumeric() { vec![c] } else { vec!['\\', c] }).collect()
}

const QS_SPECIAL: &str = r#"+-!():^[]"{}~*?/\=<>&|"#;

fn qs_escape(s: &str) -> String {
    s.chars().flat_map(|c| if QS_SPECIAL.contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

/// A `query_string` value: quoted when it has whitespace, else escaped.
fn qs_value(v: &str) -> String {
    if v.contains(' ') {
        format!("\"{}\"", v.replace('\\', r"\\").replace('"', "\\\""))
    } else {
        qs_escape(v)
    }
}

fn simple_value(v: &str) -> String {
    if v.contains(' ') {
        format!("\"{}\"", v.replace('\\', r"\\").replace('"', "\\\""))
    } else {
        v.chars().flat_map(|c| if r#"+|-"*()~\"#.contains(c) { vec!['\\', c] } else { vec![c] }).collect()
    }
}

/// `backfill translate-query` on `body`: (exit code, stdout, stderr).
fn cli(body: &Value, extra: &[&str]) -> (Option<i32>, String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(cutover::procs::bin("backfill"))
        .args(["translate-query", "--legacy-tag-mapping", "keyword"])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run backfill translate-query");
    child.stdin.take().expect("stdin").write_all(body.to_string().as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_queries_answer_like_the_keyword_legacy() {
    let started = Instant::now();
    let mut sc = Scenario::new("qtrans", 1).await;
    let tags = TagRewrite::default();
    let keyword = LegacyTagMapping::Keyword;

    // The legacy index (tags mapped keyword by the harness's template), written by the
    // legacy indexer, then migrated by `backfill copy`.
    let docs = legacy_docs(0x7a6_5eed);
    let cmds: Vec<SimCommand> = docs.iter().map(|(id, doc)| SimCommand::upsert(&sc.legacy_index, id, 1, json!(doc))).collect();
    sc.legacy.apply(&cmds).await.expect("legacy writes");
    sc.legacy_es().refresh(&sc.legacy_index).await.unwrap();
    let mapping = sc.legacy_es().get(&format!("/{}/_mapping", sc.legacy_index)).await.unwrap();
    assert_eq!(mapping[&sc.legacy_index]["mappings"]["properties"]["actions"]["properties"]["tags"]["properties"]["color"]["type"], "keyword", "{mapping}");
    sc.run_backfill("copy", &[]);
    sc.target_es().refresh(&sc.target_index).await.unwrap();
    assert!(sc.differences().await.is_empty(), "the target is the migrated legacy");
    eprintln!("setup: {:.1}s", started.elapsed().as_secs_f64());

    // (a) The fixed list, translated by the library and by the CLI (same output).
    let fixed = fixed_queries();
    assert!(fixed.len() >= 30);
    let mut report = Vec::new();
    let (mut failures, mut control_same, mut informative) = (Vec::new(), Vec::new(), 0);
    for (name, body) in &fixed {
        let t = translate_search(body, &tags, &keyword);
        assert!(t.is_exact(), "{name}: {:?}", t.findings);
        let (code, stdout, stderr) = cli(body, &["--exact", "--envelope"]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        let envelope: Value = serde_json::from_str(&stdout).expect("CLI output is JSON");
        assert_eq!(envelope, serde_json::to_value(&t).unwrap(), "{name}: CLI and library differ");

        let (old, new) = both(&sc, body, &t).await;
        let sorted = body.get("sort").is_some();
        let same = if sorted { old.ids == new.ids } else { old.id_set() == new.id_set() };
        if !same || old.total != new.total || old.aggs != new.aggs {
            failures.push(format!(
                "{name}: legacy {} hits (total {}) vs target {} (total {}); only legacy {:?}; only target {:?}; aggs {} vs {}",
                old.ids.len(),
                old.total,
                new.ids.len(),
                new.total,
                old.id_set().difference(&new.id_set()).take(5).collect::<Vec<_>>(),
                new.id_set().difference(&old.id_set()).take(5).collect::<Vec<_>>(),
                old.aggs,
                new.aggs
            ));
        }
        if old.aggs.is_object() {
            assert!(has_buckets(&old.aggs), "{name}: no bucket to compare: {}", old.aggs);
        }
        if (old.total > 0 && old.total < DOCS as u64) || old.aggs.is_object() {
            informative += 1;
        }
        // Control: the legacy body as is, on the target.
        let control = search(&sc.target_es(), &sc.target_index, body).await;
        if control == old {
            control_same.push(*name);
        }
        report.push(format!("{:5} {:5} {name}", old.total, new.total));
    }
    eprintln!("legacy target query\n{}", report.join("\n"));
    assert!(failures.is_empty(), "translated queries disagree:\n{}", failures.join("\n"));
    assert!(informative >= fixed.len() - 2, "only {informative} of {} queries match some but not all documents", fixed.len());
    assert!(control_same.is_empty(), "the untranslated legacy body answers the same on the target, so these comparisons prove nothing: {control_same:?}");
    eprintln!("fixed list: {} queries equal ({:.1}s)", fixed.len(), started.elapsed().as_secs_f64());

    // (b) Random queries.
    // QUERY_TRANSLATION_CASES / QUERY_TRANSLATION_SEED widen the search for local runs.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("QUERY_TRANSLATION_CASES").unwrap_or(300);
    let mut rng = StdRng::seed_from_u64(env("QUERY_TRANSLATION_SEED").unwrap_or(0x0_51de_c0de));
    let (mut random_failures, mut random_informative) = (Vec::new(), 0);
    for i in 0..cases {
        let mut body = q(random_query(&mut rng, 3));
        if rng.random_bool(0.25) {
            // A terms aggregation on a random tag key, sometimes filtered by `include`.
            let key = KEYS[rng.random_range(0..KEYS.len())];
            let mut terms = json!({"field": format!("actions.tags.{key}"), "size": 100});
            if rng.random_bool(0.3) {
                terms["include"] = json!(["v.*", "[a-z]+", ".*:.*"][rng.random_range(0..3)]);
            }
            body["aggs"] = json!({"a": {"terms": terms}});
        }
        let t = translate_search(&body, &tags, &keyword);
        assert!(t.is_exact(), "random query {i} {body}: {:?}", t.findings);
        let (old, new) = both(&sc, &body, &t).await;
        if old.id_set() != new.id_set() || old.total != new.total || old.aggs != new.aggs {
            random_failures.push(format!(
                "#{i} {body}\n  -> {}\n  legacy {} vs target {}; only legacy {:?}; only target {:?}; aggs {} vs {}",
                t.body,
                old.total,
                new.total,
                old.id_set().difference(&new.id_set()).take(5).collect::<Vec<_>>(),
                new.id_set().difference(&old.id_set()).take(5).collect::<Vec<_>>(),
                old.aggs,
                new.aggs
            ));
        }
        if old.total > 0 && old.total < DOCS as u64 {
            random_informative += 1;
        }
    }
    assert!(random_failures.is_empty(), "{} random queries disagree:\n{}", random_failures.len(), random_failures.join("\n"));
    assert!(random_informative * 5 >= cases * 2, "only {random_informative} of {cases} random queries match some but not all documents");
    eprintln!("random: {cases} queries equal, {random_informative} informative ({:.1}s)", started.elapsed().as_secs_f64());

    // (c) Flagged queries are reported, by the library and the CLI, and never run.
    for (body, why) in flagged_queries() {
        let t = translate_search(&body, &tags, &keyword);
        assert!(!t.is_exact() && t.findings.iter().any(|f| f.reason.contains(why)), "{body}: {:?}", t.findings);
        let err = t.clone().exact().expect_err("exact mode refuses");
        assert!(err.to_string().contains(why), "{err}");
        let (code, stdout, stderr) = cli(&body, &["--exact"]);
        assert_eq!(code, Some(2), "{body}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "--exact prints no body: {stdout}");
        assert!(stderr.contains("not exact:") && stderr.contains(why), "{body}: {stderr}");
        // Without --exact: the body (flagged clause as written) and the findings.
        let (code, stdout, stderr) = cli(&body, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), t.body);
        assert!(stderr.contains(why), "{stderr}");
    }

    // (d) Why `text` legacies are flagged: on a copy of the same documents under
    // Elasticsearch's default dynamic mapping, `match` is analysed (finds `john`, `John Smith`
    // for `John`); its `.keyword` sub-field translates exactly against the same target.
    let text_index = format!("{}-text", sc.legacy_index);
    let legacy = sc.legacy_es();
    legacy.ok(Method::Put, &format!("/{text_index}"), Some(&json!({"settings": {"number_of_shards": 2, "number_of_replicas": 0}}))).await.unwrap();
    let mut bulk = Vec::new();
    for (id, doc) in &docs {
        bulk.extend(format!("{}\n{}\n", json!({"index": {"_index": text_index, "_id": id}}), Value::Object(doc.clone())).into_bytes());
    }
    let resp = cutover::sim::bulk_retrying(&legacy, bulk.into()).await.unwrap();
    assert_eq!(resp["errors"], json!(false), "text legacy bulk: {resp}");
    legacy.refresh(&text_index).await.unwrap();
    let text_mapping = LegacyTagMapping::default_dynamic();
    let analysed = q(json!({"match": {"actions.tags.name": "John"}}));
    let t = translate_search(&analysed, &tags, &text_mapping);
    assert!(t.findings.iter().any(|f| f.reason.contains("analysed")), "{:?}", t.findings);
    let on_text = search(&legacy, &text_index, &analysed).await;
    let exact_term = translate_search(&q(json!({"term": {"actions.tags.name": "John"}})), &tags, &keyword);
    let on_target = search(&sc.target_es(), &sc.target_index, &exact_term.body).await;
    assert!(
        on_target.total > 0 && on_text.id_set().is_superset(&on_target.id_set()) && on_text.total > on_target.total,
        "analysed match {} vs exact {}",
        on_text.total,
        on_target.total
    );
    for body in [
        q(json!({"term": {"actions.tags.name.keyword": "John"}})),
        q(
            json!({"bool": {"should": [{"match": {"actions.tags.color.keyword": "red"}}, {"prefix": {"actions.tags.name.keyword": "Jo"}}], "minimum_should_match": 1}}),
        ),
        json!({"size": 0, "aggs": {"names": {"terms": {"field": "actions.tags.name.keyword", "size": 50}}}}),
    ] {
        let t = translate_search(&body, &tags, &text_mapping);
        assert!(t.is_exact(), "{body}: {:?}", t.findings);
        let old = search(&legacy, &text_index, &body).await;
        let mut new = search(&sc.target_es(), &sc.target_index, &t.body).await;
        let mut resp = json!({"aggregations": new.aggs});
        t.restore_response(&mut resp);
        new.aggs = resp["aggregations"].take();
        assert_eq!((old.id_set(), old.total, &old.aggs), (new.id_set(), new.total, &new.aggs), "{body}");
        assert!(old.total > 0);
    }
    eprintln!("text legacy: analysed match John {} docs, exact John {} docs; total {:.1}s", on_text.total, on_target.total, started.elapsed().as_secs_f64());

    let _ = legacy.request(Method::Delete, &format!("/{text_index}"), None).await;
    sc.cleanup().await;
}
