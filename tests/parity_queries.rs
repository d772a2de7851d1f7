//! `backfill parity --queries FILE` against the real clusters, as an operator runs it.
//!
//! A legacy 7.17 index with keyword tags (the harness's template) is migrated to 9.x by
//! `backfill copy`; a second legacy index holds the same documents under the seed's exact
//! dynamic template (`actions.tags.*` as `text`). A file of 50 captured legacy searches of
//! every kind (the seed's two queries verbatim among them) is run:
//! - on the keyword legacy: every translatable search answers exactly as on the target (exit
//!   0), the untranslatable ones are reported with their findings and never run (exit 2 under
//!   `--exact`);
//! - on the text legacy, translated as keyword (what the exact translation changes for end
//!   users): the seed's `match` on `John` and `query_string` on `Dor` are reported differing
//!   with the hand-checkable ids (`john`, `John Smith`; `dor`, `Dor Sever`) and cause
//!   `analysed_text` (exit 3); translated as `text`, both are untranslatable and not run;
//! - a JSON search slow log (7.x format, one line per shard) is parsed, deduplicated and run;
//! - live writes: a document that reaches the target 4 s after the legacy index (an indexer's
//!   lag) differs on the first pass and is cleared by a re-check: exit 0, reported as settled;
//! - control: one document deleted on the target only is caught, with its id and cause
//!   `missing_document`.
//!
//! `text_legacy_with_a_lowercase_normalizer`: the text legacy (the seed's template) migrated
//! into a target made by `backfill create-index --tag-normalizer lowercase` (twice: created,
//! then "already exists"), and, as the control, into one made without it. With the normalizer
//! the seed's `match` for `John` differs only by `John Smith` (p03, partial-word) and a
//! case-only search (`match` `red` on colours stored `red` and `Red`) is equal; without it the
//! same search differs by exactly the `Red` documents, counted case-only. The summary's
//! partial-word count is the one worked out by hand below.
//! `case_colliding_tag_keys_are_refused_with_a_normalizer`: legacy tag keys differing only by
//! case make `create-index --tag-normalizer lowercase` refuse, naming them, creating nothing.

use cutover::scenario::Scenario;
use cutover::sim::{LegacyBehaviour, SimCommand};
use cutover::Services;
use elasticsearch::http::Method;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The hand-checkable documents: (id, tags).
fn named_docs() -> Vec<(&'static str, Value)> {
    vec![
        ("p01", json!({"name": "John", "lname": "Smith", "color": "red"})),
        ("p02", json!({"name": "john", "color": "blue"})),
        ("p03", json!({"name": "John Smith", "color": "Red"})),
        ("p04", json!({"name": "Dor", "lname": "Sever", "color": "green"})),
        ("p05", json!({"name": "dor", "k0": "v1"})),
        ("p06", json!({"name": "Dor Sever", "k0": "v2"})),
        ("p07", json!({"name": "AnotherName", "lname": "AnotherLastName"})),
    ]
}

/// Filler documents: tags whose values never contain `john` or `dor`.
fn filler_docs() -> Vec<(String, Value)> {
    let names = ["Alice", "Bob", "Carol White", "eve"];
    let colors = ["red", "blue", "green", "Red"];
    (10..90)
        .map(|i: usize| {
            let mut tags = Map::new();
            tags.insert("color".into(), json!(colors[i % 4]));
            if i.is_multiple_of(3) {
                tags.insert("name".into(), json!(names[i % 4]));
            }
            if i.is_multiple_of(5) {
                tags.insert("k0".into(), json!(["v1", "v2", "v10"][i % 3]));
            }
            if i.is_multiple_of(7) {
                tags.insert("scope:team".into(), json!(["a:b", "v1"][i % 2]));
            }
            tags.insert("size".into(), json!(i % 8));
            (format!("f{i:03}"), Value::Object(tags))
        })
        .collect()
}

fn all_docs() -> Vec<(String, Map<String, Value>)> {
    let named = named_docs().into_iter().map(|(id, t)| (id.to_string(), t));
    named
        .chain(filler_docs())
        .enumerate()
        .map(|(i, (id, tags))| {
            let mut doc = Map::new();
            doc.insert("title".into(), json!(format!("document {i} {}", ["alpha", "beta", "John"][i % 3])));
            doc.insert("status".into(), json!(["open", "closed", "new"][i % 3]));
            doc.insert("n".into(), json!(i));
            doc.insert("actions".into(), json!({"tags": tags}));
            (id, doc)
        })
        .collect()
}

fn q(query: Value) -> Value {
    json!({ "query": query })
}

/// The seed's two queries, verbatim (field report 003).
fn seed_match() -> Value {
    json!({ "query": { "match" : { "actions.tags.name" : { "query" : "John" } } } })
}
fn seed_query_string() -> Value {
    json!({ "query": { "query_string" : { "fields": ["actions.tags.*" ], "query" : "Dor" } } })
}

/// The captured searches: (name, body, translatable on a keyword legacy).
fn captured() -> Vec<(&'static str, Value, bool)> {
    let ok = |n: &'static str, b: Value| (n, b, true);
    let refused = |n: &'static str, b: Value| (n, b, false);
    vec![
        ok("seed match", seed_match()),
        ok("seed query_string", seed_query_string()),
        ok("term name John", q(json!({"term": {"actions.tags.name": "John"}}))),
        ok("term color red", q(json!({"term": {"actions.tags.color": "red"}}))),
        ok("term other case", q(json!({"term": {"actions.tags.color": {"value": "Red"}}}))),
        ok("term integer", q(json!({"term": {"actions.tags.size": 5}}))),
        ok("term key with colon", q(json!({"term": {"actions.tags.scope:team": "a:b"}}))),
        ok("terms", q(json!({"terms": {"actions.tags.color": ["red", "blue"]}}))),
        ok("terms mixed scalars", q(json!({"terms": {"actions.tags.size": [1, 2, "3"]}}))),
        ok("match phrase", q(json!({"match_phrase": {"actions.tags.name": "John Smith"}}))),
        ok("match lower case", q(json!({"match": {"actions.tags.name": {"query": "john", "operator": "and"}}}))),
        ok("match dor", q(json!({"match": {"actions.tags.name": "Dor"}}))),
        ok("prefix", q(json!({"prefix": {"actions.tags.name": "Jo"}}))),
        ok("prefix k0", q(json!({"prefix": {"actions.tags.k0": {"value": "v1"}}}))),
        ok("wildcard", q(json!({"wildcard": {"actions.tags.color": "r*d"}}))),
        ok("regexp", q(json!({"regexp": {"actions.tags.color": "(red|blue)"}}))),
        ok("exists", q(json!({"exists": {"field": "actions.tags.lname"}}))),
        ok("exists key with colon", q(json!({"exists": {"field": "actions.tags.scope:team"}}))),
        ok("exists whole map", q(json!({"exists": {"field": "actions.tags"}}))),
        ok("exists every tag", q(json!({"exists": {"field": "actions.tags.*"}}))),
        ok("exists key pattern", q(json!({"exists": {"field": "actions.tags.k*"}}))),
        ok("multi_match every tag", q(json!({"multi_match": {"query": "red", "fields": ["actions.tags.*"]}}))),
        ok("multi_match tag and title", q(json!({"multi_match": {"query": "John", "fields": ["title", "actions.tags.name^2"]}}))),
        ok("multi_match key pattern", q(json!({"multi_match": {"query": "v1", "fields": ["actions.tags.k*"], "type": "phrase"}}))),
        ok("query_string OR", q(json!({"query_string": {"query": r#"actions.tags.color:red OR actions.tags.name:"John Smith""#}}))),
        ok("query_string AND plain", q(json!({"query_string": {"query": r"actions.tags.scope\:team:v1 AND status:open"}}))),
        ok("query_string default field", q(json!({"query_string": {"query": "green", "default_field": "actions.tags.*"}}))),
        ok("query_string _exists_", q(json!({"query_string": {"query": "_exists_:actions.tags.lname AND (status:open OR status:new)"}}))),
        ok("simple_query_string OR", q(json!({"simple_query_string": {"query": "red | blue", "fields": ["actions.tags.color"]}}))),
        ok("simple_query_string AND", q(json!({"simple_query_string": {"query": "red + v1", "fields": ["actions.tags.*"]}}))),
        ok(
            "bool must filter must_not",
            q(
                json!({"bool": {"must": [{"term": {"status": "open"}}], "filter": {"exists": {"field": "actions.tags.color"}}, "must_not": [{"term": {"actions.tags.color": "red"}}]}}),
            ),
        ),
        ok(
            "bool should msm",
            q(
                json!({"bool": {"should": [{"term": {"actions.tags.color": "red"}}, {"term": {"actions.tags.name": "john"}}, {"match": {"title": "alpha"}}], "minimum_should_match": 2}}),
            ),
        ),
        ok("constant_score", q(json!({"constant_score": {"filter": {"term": {"actions.tags.k0": "v1"}}, "boost": 1.5}}))),
        ok("dis_max", q(json!({"dis_max": {"queries": [{"term": {"actions.tags.color": "blue"}}, {"prefix": {"actions.tags.name": "J"}}]}}))),
        ok("no tags", q(json!({"bool": {"must_not": {"exists": {"field": "actions.tags.name"}}}}))),
        ok(
            "boosting",
            q(
                json!({"boosting": {"positive": {"term": {"actions.tags.color": "red"}}, "negative": {"term": {"actions.tags.name": "john"}}, "negative_boost": 0.2}}),
            ),
        ),
        ok(
            "function_score",
            q(
                json!({"function_score": {"query": {"exists": {"field": "actions.tags.name"}}, "functions": [{"filter": {"term": {"actions.tags.color": "blue"}}, "weight": 2}]}}),
            ),
        ),
        ok("sorted page", json!({"query": {"exists": {"field": "actions.tags.color"}}, "sort": [{"n": "desc"}], "from": 5, "size": 10})),
        ok("sorted page with ties", json!({"query": {"term": {"actions.tags.color": "blue"}}, "sort": [{"status": "asc"}], "size": 7})),
        ok(
            "terms aggregations",
            json!({"size": 0, "aggs": {
                "colors": {"terms": {"field": "actions.tags.color", "size": 50}},
                "by_status": {"terms": {"field": "status"}, "aggs": {"names": {"terms": {"field": "actions.tags.name", "size": 50, "order": {"_key": "asc"}}}}}
            }}),
        ),
        ok(
            "terms aggregation with include",
            json!({"size": 0, "query": {"term": {"status": "open"}}, "aggs": {"scoped": {"terms": {"field": "actions.tags.k0", "include": "v.*", "size": 50}}}}),
        ),
        ok(
            "post_filter with aggregation",
            json!({"post_filter": {"term": {"actions.tags.color": "red"}}, "aggs": {"sizes": {"terms": {"field": "actions.tags.size", "size": 50}}}}),
        ),
        ok("plain field only", q(json!({"term": {"status": "closed"}}))),
        refused("fuzziness", q(json!({"match": {"actions.tags.name": {"query": "jon", "fuzziness": "AUTO"}}}))),
        refused("query_string wildcard", q(json!({"query_string": {"query": "actions.tags.name:Jo*"}}))),
        refused("query_string whitespace", q(json!({"query_string": {"query": "John Smith", "fields": ["actions.tags.name"]}}))),
        refused("range on a tag", q(json!({"range": {"actions.tags.size": {"gte": 3}}}))),
        refused("case_insensitive", q(json!({"term": {"actions.tags.color": {"value": "RED", "case_insensitive": true}}}))),
        refused("sort on a tag", json!({"query": {"match_all": {}}, "sort": [{"actions.tags.color": "asc"}]})),
        refused("missing bucket", json!({"size": 0, "aggs": {"c": {"terms": {"field": "actions.tags.color", "missing": "none"}}}})),
    ]
}

fn write_ndjson(path: &Path, index: &str, queries: &[(&str, Value, bool)]) {
    let lines: Vec<String> = queries.iter().map(|(name, body, _)| json!({"index": index, "name": name, "body": body}).to_string()).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Where `backfill parity` runs: legacy URL, target URL, target index.
#[derive(Clone)]
struct Clusters(String, String, String);

/// `backfill parity` on `source` -> the target: (exit code, printed text, JSON report).
fn parity(c: &Clusters, source: &str, queries: &Path, mapping: &str, extra: &[&str]) -> (Option<i32>, String, Value) {
    let report = queries.with_extension(format!("{mapping}-{source}.report.json"));
    let out = std::process::Command::new(cutover::procs::bin("backfill"))
        .args(["parity", "--legacy-url", &c.0, "--target-url", &c.1, "--source-index", source, "--target-index", &c.2])
        .args(["--legacy-tag-mapping", mapping, "--recheck-interval", "500ms", "--max-retries", "5"])
        .args(if extra.contains(&"--settle-timeout") { &[][..] } else { &["--settle-timeout", "2s"][..] })
        .arg("--queries")
        .arg(queries)
        .arg("--report-json")
        .arg(&report)
        .args(extra)
        .output()
        .expect("run backfill parity");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let json = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_else(|| panic!("no report: {text}"));
    let _ = std::fs::remove_file(&report);
    (out.status.code(), text, json)
}

fn result<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["results"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no result named {name}"))
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect()
}

fn causes(r: &Value) -> Vec<String> {
    r["causes"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_queries_compare_on_both_clusters() {
    let started = Instant::now();
    let mut sc = Scenario::new("parity", 1).await;
    let docs = all_docs();
    let cmds: Vec<SimCommand> = docs.iter().map(|(id, doc)| SimCommand::upsert(&sc.legacy_index, id, 1, json!(doc))).collect();
    sc.legacy.apply(&cmds).await.expect("legacy writes");
    sc.legacy_es().refresh(&sc.legacy_index).await.unwrap();
    sc.run_backfill("copy", &[]);
    assert!(sc.differences().await.is_empty(), "the target is the migrated legacy");

    // The same documents under the seed's exact template: every tag field `text`.
    let legacy = sc.legacy_es();
    let text_index = format!("{}-text", sc.legacy_index);
    let template = json!({"settings": {"number_of_shards": 2, "number_of_replicas": 0}, "mappings": {"dynamic_templates": [ { "tags": { "mapping": { "type": "text" }, "path_match": "actions.tags.*" } } ]}});
    legacy.ok(Method::Put, &format!("/{text_index}"), Some(&template)).await.unwrap();
    let mut bulk = Vec::new();
    for (id, doc) in &docs {
        bulk.extend(format!("{}\n{}\n", json!({"index": {"_index": text_index, "_id": id}}), Value::Object(doc.clone())).into_bytes());
    }
    let resp = cutover::sim::bulk_retrying(&legacy, bulk.into()).await.unwrap();
    assert_eq!(resp["errors"], json!(false), "{resp}");
    legacy.refresh(&text_index).await.unwrap();
    eprintln!("setup: {:.1}s", started.elapsed().as_secs_f64());

    let clusters = Clusters(sc.legacy_url.clone(), sc.target_url.clone(), sc.target_index.clone());
    let dir: PathBuf = std::env::temp_dir().join(cutover::unique("parity-queries"));
    std::fs::create_dir_all(&dir).unwrap();
    let queries = captured();
    assert!(queries.len() >= 40);
    let file = dir.join("captured.ndjson");
    write_ndjson(&file, &sc.legacy_index, &queries);

    // 1. The keyword legacy: parity is exact; the untranslatable searches are not run.
    let (code, text, report) = parity(&clusters, &sc.legacy_index, &file, "keyword", &[]);
    eprintln!("{text}");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["queries"], json!(queries.len()));
    assert_eq!(report["differing"], json!(0), "{text}");
    let refused: Vec<_> = queries.iter().filter(|(_, _, ok)| !ok).collect();
    assert_eq!(report["untranslatable"], json!(refused.len()), "{text}");
    for (name, _, ok) in &queries {
        let r = result(&report, name);
        if *ok {
            assert_eq!(r["status"], "equal", "{name}: {r}");
            assert_ne!(r["ids"], "none", "{name}");
        } else {
            assert_eq!(r["status"], "untranslatable", "{name}: {r}");
            assert!(r["legacy_total"].is_null() && r["target_total"].is_null(), "{name} was run: {r}");
            assert!(!r["findings"].as_array().unwrap().is_empty(), "{name}");
        }
    }
    assert_eq!(result(&report, "seed match")["legacy_total"], json!(1), "the keyword legacy's match is exact: only p01");
    assert_eq!(result(&report, "sorted page")["ids"], "sorted_page");
    assert_eq!(result(&report, "term color red")["ids"], "all_ids");
    assert!(result(&report, "term color red")["legacy_total"].as_u64().unwrap() > 10);
    assert!(text.contains("untranslatable (not run)") && text.contains("not exact:"), "{text}");
    // --exact: untranslatable searches fail the run.
    let (code, text, _) = parity(&clusters, &sc.legacy_index, &file, "keyword", &["--exact"]);
    assert_eq!(code, Some(2), "{text}");
    eprintln!("keyword legacy: {:.1}s", started.elapsed().as_secs_f64());

    // 2. The text legacy, translated as keyword: what end users would see change.
    let text_file = dir.join("text.ndjson");
    write_ndjson(&text_file, &text_index, &queries);
    let (code, text, report) = parity(&clusters, &text_index, &text_file, "keyword", &[]);
    eprintln!("{text}");
    assert_eq!(code, Some(3), "{text}");
    assert!(report["warnings"][0].as_str().unwrap().contains("as `text`"), "{}", report["warnings"]);
    let m = result(&report, "seed match");
    assert_eq!(m["status"], "differs", "{m}");
    assert_eq!((m["legacy_total"].clone(), m["target_total"].clone()), (json!(3), json!(1)), "{m}");
    assert_eq!(ids(&m["only_legacy"]), ["p02", "p03"], "analysed `John` finds `john` and `John Smith`: {m}");
    assert!(ids(&m["only_target"]).is_empty());
    assert_eq!(causes(m), ["analysed_text"], "{m}");
    let detail = m["causes"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("p03") && detail.contains("partial-word"), "{detail}");
    let qs = result(&report, "seed query_string");
    assert_eq!(qs["status"], "differs", "{qs}");
    assert_eq!(ids(&qs["only_legacy"]), ["p05", "p06"], "analysed `Dor` over every tag finds `dor` and `Dor Sever`: {qs}");
    assert_eq!(causes(qs), ["analysed_text"], "{qs}");
    // Untranslatable stays untranslatable; a search not touching tags is still equal.
    assert_eq!(result(&report, "fuzziness")["status"], "untranslatable");
    assert_eq!(result(&report, "plain field only")["status"], "equal");
    assert_eq!(result(&report, "exists")["status"], "equal", "exists means the same on text");
    assert!(text.contains("likely cause analysed_text"), "{text}");

    // The same, translated for what the legacy really is (`text`): the seed's queries are
    // untranslatable, reported, and not run.
    let (code, text, report) = parity(&clusters, &text_index, &text_file, "text", &[]);
    for name in ["seed match", "seed query_string"] {
        let r = result(&report, name);
        assert_eq!(r["status"], "untranslatable", "{name}: {r}");
        assert!(r["legacy_total"].is_null(), "{name} must not be run: {r}");
        assert!(r["findings"][0]["reason"].as_str().unwrap().contains("text"), "{r}");
    }
    assert_eq!(result(&report, "exists")["status"], "equal");
    assert!(code == Some(0) || code == Some(3), "{text}");
    eprintln!("text legacy: {:.1}s", started.elapsed().as_secs_f64());

    // 3. A JSON search slow log (7.x): one line per shard and phase, the body as rendered.
    let slow = |shard: u32, component: &str, source: &Value| {
        json!({"type": "index_search_slowlog", "timestamp": "2026-12-04T10:00:00,000Z", "level": "WARN", "component": component,
            "cluster.name": "legacy", "node.name": "es1", "message": format!("[{}][{shard}]", sc.legacy_index), "took": "12.1ms",
            "took_millis": "12", "total_hits": "1 hits", "types": "[]", "stats": "[]", "search_type": "QUERY_THEN_FETCH",
            "total_shards": "2", "source": source.to_string(), "id": "app-7"})
        .to_string()
    };
    let rendered_match = json!({"query":{"match":{"actions.tags.name":{"query":"John","operator":"OR","prefix_length":0,"max_expansions":50,"fuzzy_transpositions":true,"lenient":false,"zero_terms_query":"NONE","auto_generate_synonyms_phrase_query":true,"boost":1.0}}}});
    let rendered_terms = json!({"size":0,"query":{"term":{"actions.tags.color":{"value":"red","boost":1.0}}},"aggregations":{"k":{"terms":{"field":"actions.tags.k0","size":10,"min_doc_count":1,"shard_min_doc_count":0,"show_term_doc_count_error":false,"order":[{"_count":"desc"},{"_key":"asc"}]}}}});
    let slow_file = dir.join("legacy_index_search_slowlog.json");
    let lines = [
        slow(0, "i.s.s.query", &rendered_match),
        slow(1, "i.s.s.query", &rendered_match),
        slow(0, "i.s.s.fetch", &rendered_match),
        slow(0, "i.s.s.query", &rendered_terms),
        slow(1, "i.s.s.query", &rendered_terms),
    ];
    std::fs::write(&slow_file, lines.join("\n") + "\n").unwrap();
    let (code, text, report) = parity(&clusters, &sc.legacy_index, &slow_file, "keyword", &[]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["queries"], json!(2), "{text}");
    for (r, occurrences) in report["results"].as_array().unwrap().iter().zip([3, 2]) {
        assert_eq!((r["format"].as_str(), r["status"].as_str(), r["occurrences"].as_u64()), (Some("slow_log"), Some("equal"), Some(occurrences)), "{r}");
        assert_eq!(r["index"], json!(sc.legacy_index));
    }
    assert_eq!(report["results"][0]["legacy_total"], json!(1));

    // 4. Live writes: a document written to the legacy index reaches the target 4 s later (an
    // indexer's lag). The first pass sees the difference; a re-check clears it: no false
    // difference, and the report says it settled.
    let live_file = dir.join("live.ndjson");
    write_ndjson(&live_file, &sc.legacy_index, &queries[..4]);
    let live_doc = json!({"title": "live", "status": "open", "n": 999, "actions": {"tags": {"color": "red", "name": "John"}}});
    legacy.ok(Method::Put, &format!("/{}/_doc/live1?refresh=true", sc.legacy_index), Some(&live_doc)).await.unwrap();
    let run = {
        let (c, source, file) = (clusters.clone(), sc.legacy_index.clone(), live_file.clone());
        std::thread::spawn(move || parity(&c, &source, &file, "keyword", &["--settle-timeout", "20s"]))
    };
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let migrated = schema::TagRewrite::default().to_target(live_doc.as_object().unwrap()).unwrap();
    sc.target_es().ok(Method::Put, &format!("/{}/_doc/live1?refresh=true", sc.target_index), Some(&Value::Object(migrated))).await.unwrap();
    let (code, text, report) = run.join().unwrap();
    eprintln!("{text}");
    assert_eq!(code, Some(0), "{text}");
    assert!(report["settled_on_recheck"].as_u64().unwrap() >= 1, "{text}");
    let r = result(&report, "term color red");
    assert_eq!(r["status"], "equal", "{r}");
    assert!(r["rechecks"].as_u64().unwrap() >= 1, "the first pass ran before the target had the write: {r}");
    assert!(report["live_writes"].as_str().unwrap().contains("re-run"), "{}", report["live_writes"]);
    eprintln!("live writes: {:.1}s", started.elapsed().as_secs_f64());

    // 5. Control: a document deleted on the target only is caught, by id, with its cause.
    sc.target_es().ok(Method::Delete, &format!("/{}/_doc/p01?refresh=true", sc.target_index), None).await.unwrap();
    let (code, text, report) = parity(&clusters, &sc.legacy_index, &file, "keyword", &[]);
    eprintln!("{text}");
    assert_eq!(code, Some(3), "{text}");
    let r = result(&report, "term name John");
    assert_eq!(r["status"], "differs", "{r}");
    assert_eq!(ids(&r["only_legacy"]), ["p01"], "{r}");
    assert_eq!(causes(r), ["missing_document"], "{r}");
    assert!(r["rechecks"].as_u64().unwrap() >= 1, "a difference is re-checked before it is reported: {r}");
    assert_eq!(result(&report, "term color red")["only_legacy"][0]["id"], "p01");
    assert_eq!(result(&report, "match dor")["status"], "equal", "p01 is not in every result: {text}");
    eprintln!("total {:.1}s", started.elapsed().as_secs_f64());

    let _ = legacy.request(Method::Delete, &format!("/{text_index}"), None).await;
    let _ = std::fs::remove_dir_all(&dir);
    sc.cleanup().await;
}

/// The seed's exact dynamic template: every tag field `text`.
fn seed_text_template() -> Value {
    json!({"settings": {"number_of_shards": 2, "number_of_replicas": 0}, "mappings": {"dynamic_templates": [ { "tags": { "mapping": { "type": "text" }, "path_match": "actions.tags.*" } } ]}})
}

/// A scenario whose legacy index holds `docs` under the seed's `text` template (written by the
/// simulated legacy indexer, externally versioned); no target index yet.
async fn text_legacy_scenario(name: &str, docs: &[(String, Map<String, Value>)]) -> Scenario {
    let s = Services::require().await;
    let mut sc = Scenario::with_clusters(name, 1, &s.legacy_url, &s.target_url, LegacyBehaviour::default()).await;
    let legacy = sc.legacy_es();
    legacy.ok(Method::Delete, &format!("/{}", sc.legacy_index), None).await.unwrap();
    legacy.ok(Method::Put, &format!("/{}", sc.legacy_index), Some(&seed_text_template())).await.unwrap();
    let cmds: Vec<SimCommand> = docs.iter().map(|(id, doc)| SimCommand::upsert(&sc.legacy_index, id, 1, json!(doc))).collect();
    sc.legacy.apply(&cmds).await.expect("legacy writes");
    legacy.refresh(&sc.legacy_index).await.unwrap();
    sc
}

fn output_text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The ids a search finds on the target, read straight from the server.
async fn target_ids(es: &cluster::Es, index: &str, query: Value) -> Vec<String> {
    let resp = es.ok(Method::Post, &format!("/{index}/_search"), Some(&json!({"query": query, "size": 100, "_source": false}))).await.unwrap();
    let mut ids: Vec<String> = resp["hits"]["hits"].as_array().unwrap().iter().map(|h| h["_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// The searches whose answers are worked out by hand below (names from [`captured`], plus a
/// case-only `match`).
fn hand_checked() -> Vec<(&'static str, Value, bool)> {
    let wanted =
        ["seed match", "seed query_string", "match lower case", "match dor", "term color red", "multi_match every tag", "match phrase", "plain field only"];
    let mut out: Vec<_> = captured().into_iter().filter(|(n, _, _)| wanted.contains(n)).collect();
    assert_eq!(out.len(), wanted.len());
    out.push(("match color red", q(json!({"match": {"actions.tags.color": "red"}})), true));
    out
}

fn counts(v: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    (n("partial_word"), n("case_only"), n("other"), n("not_compared"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_legacy_with_a_lowercase_normalizer() {
    let started = Instant::now();
    let docs = all_docs();
    let mut sc = text_legacy_scenario("tagnorm", &docs).await;
    let target = sc.target_es();

    // create-index with the normalizer: it detects the text tags, says what changes, creates.
    let out = sc.create_index_output(&["--tag-normalizer", "lowercase"]);
    let (stdout, stderr) = output_text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("created {}", sc.target_index)), "{stdout}");
    assert!(stdout.contains("as analysed text") && stdout.contains("`lowercase` normalizer `cutover_tag_lowercase`"), "the printed summary: {stdout}");
    for needle in [
        "analysed text",
        "dynamic template `tags`",
        "`John`, `john` and `John Smith`",
        "finds exactly `John`",
        "--tag-normalizer lowercase",
        "backfill parity --queries",
    ] {
        assert!(stderr.contains(needle), "the warning must say `{needle}`: {stderr}");
    }
    // Idempotent: the same flags again find the same definition.
    let out = sc.create_index_output(&["--tag-normalizer", "lowercase"]);
    let (stdout, stderr) = output_text(&out);
    assert!(out.status.success() && stdout.contains("already exists with the expected definition"), "{stdout}{stderr}");
    // Without the flag, the normalizer is a difference, and the refusal names the flag.
    let out = sc.create_index_output(&[]);
    let (stdout, stderr) = output_text(&out);
    assert!(!out.status.success() && stderr.contains("keyToValue.normalizer: unexpected cutover_tag_lowercase"), "{stdout}{stderr}");
    assert!(stderr.contains("--tag-normalizer the index was created with"), "{stderr}");

    // What the target holds, read back: both keywords normalized, the normalizer defined.
    let def = target.get_index(&sc.target_index).await.unwrap().expect("created");
    for sub in ["keyToValue", "value"] {
        assert_eq!(def["mappings"]["properties"]["tags"]["properties"][sub]["normalizer"], "cutover_tag_lowercase", "{sub}: {def}");
    }
    assert_eq!(def["settings"]["index"]["analysis"]["normalizer"]["cutover_tag_lowercase"], json!({"type": "custom", "filter": ["lowercase"]}));
    // The writers' start-up check accepts it (the indexer's, and the copy's below).
    cluster::readiness::check_target(&target, &sc.target_index, &schema::TagRewrite::default(), 3_600_000).await.expect("ready for the writers");
    sc.run_backfill("copy", &[]);
    assert!(sc.differences().await.is_empty(), "the target is the migrated legacy, sources unchanged by the normalizer");
    // Elasticsearch 9 normalizes term, prefix and wildcard values on these keywords itself.
    assert_eq!(target_ids(&target, &sc.target_index, json!({"term": {"tags.keyToValue": "NAME:JOHN"}})).await, ["p01", "p02"]);
    assert_eq!(target_ids(&target, &sc.target_index, json!({"prefix": {"tags.keyToValue": "Name:Jo"}})).await, ["p01", "p02", "p03"]);
    assert_eq!(target_ids(&target, &sc.target_index, json!({"wildcard": {"tags.keyToValue": "NAME:DOR*"}})).await, ["p04", "p05", "p06"]);

    // The control: the same legacy into a target without the normalizer.
    let normalized = sc.target_index.clone();
    let plain = format!("{normalized}-plain");
    sc.target_index = plain.clone();
    sc.run_create_index(&[]);
    sc.run_backfill("copy-plain", &[]);
    sc.target_index = normalized.clone();
    eprintln!("setup: {:.1}s", started.elapsed().as_secs_f64());

    let dir: PathBuf = std::env::temp_dir().join(cutover::unique("tag-normalizer"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hand-checked.ndjson");
    write_ndjson(&file, &sc.legacy_index, &hand_checked());
    let on = |index: &str| Clusters(sc.legacy_url.clone(), sc.target_url.clone(), index.to_string());
    // Worked out by hand from named_docs() and filler_docs(): the documents whose colour is
    // stored `Red` (p03 and every fourth filler) are found by an analysed `red`.
    let red: Vec<String> = docs.iter().filter(|(_, d)| d["actions"]["tags"]["color"] == "Red").map(|(id, _)| id.clone()).collect();
    assert!(red.len() > 10 && red.contains(&"p03".to_string()));

    // 1. With the normalizer: case-only differences are gone; partial-word matches remain.
    let (code, text, report) = parity(&on(&normalized), &sc.legacy_index, &file, "keyword", &[]);
    eprintln!("{text}");
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(report["target_tag_normalizers"]["key_to_value"], "cutover_tag_lowercase", "read from the target's mapping");
    assert!(report["warnings"][0].as_str().unwrap().contains("partial-word"), "{}", report["warnings"]);
    let m = result(&report, "seed match");
    assert_eq!(m["status"], "differs", "{m}");
    assert_eq!((m["legacy_total"].clone(), m["target_total"].clone()), (json!(3), json!(2)), "{m}");
    assert_eq!(ids(&m["only_legacy"]), ["p03"], "`John Smith` only: `john` is found by the normalized term: {m}");
    assert!(ids(&m["only_target"]).is_empty(), "{m}");
    assert_eq!(counts(&m["difference_counts"]), (1, 0, 0, 0), "{m}");
    for (name, only) in [("seed query_string", "p06"), ("match lower case", "p03"), ("match dor", "p06")] {
        let r = result(&report, name);
        assert_eq!((r["status"].as_str(), ids(&r["only_legacy"])), (Some("differs"), vec![only.to_string()]), "{name}: {r}");
        assert_eq!(counts(&r["difference_counts"]), (1, 0, 0, 0), "{name}: {r}");
    }
    for name in ["match color red", "term color red", "multi_match every tag", "match phrase", "plain field only"] {
        assert_eq!(result(&report, name)["status"], "equal", "{name}: {text}");
    }
    assert_eq!(
        result(&report, "match color red")["legacy_total"],
        json!(red.len() + docs.iter().filter(|(_, d)| d["actions"]["tags"]["color"] == "red").count())
    );
    // By hand: p03 (seed match, match lower case) and p06 (seed query_string, match dor).
    assert_eq!((report["equal"].as_u64(), report["differing"].as_u64()), (Some(5), Some(4)), "{text}");
    assert_eq!(counts(&report["difference_counts"]), (4, 0, 0, 0), "{text}");
    assert_eq!(report["partial_word_only_queries"], json!(4), "{text}");
    assert!(text.contains("differing documents: 4 partial-word, 0 case-only, 0 other") && text.contains("4 of 4 differing queries"), "{text}");
    assert!(text.contains("target tag keywords: normalizer keyToValue `cutover_tag_lowercase`"), "{text}");

    // 2. The control, without the normalizer: the case-only search differs by exactly the `Red`
    // documents, counted case-only; `john` (p02) joins `John Smith` in the seed's match.
    let (code, text, report) = parity(&on(&plain), &sc.legacy_index, &file, "keyword", &["--sample-limit", "100"]);
    eprintln!("{text}");
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(report["target_tag_normalizers"]["key_to_value"], Value::Null);
    let r = result(&report, "match color red");
    assert_eq!(r["status"], "differs", "the case-only search needs the normalizer: {r}");
    let mut only: Vec<String> = ids(&r["only_legacy"]);
    only.sort();
    let mut want = red.clone();
    want.sort();
    assert_eq!(only, want, "exactly the documents whose colour is `Red`: {r}");
    assert_eq!(counts(&r["difference_counts"]), (0, red.len() as u64, 0, 0), "{r}");
    let m = result(&report, "seed match");
    assert_eq!(ids(&m["only_legacy"]), ["p02", "p03"], "{m}");
    assert_eq!(counts(&m["difference_counts"]), (1, 1, 0, 0), "{m}");
    // By hand: the same four partial-word documents; case-only: p02 (seed match), p05 (seed
    // query_string), p01 (`John` for `john`), p05 (match dor), and the `Red` documents in each
    // of the three `red` searches.
    assert_eq!((report["equal"].as_u64(), report["differing"].as_u64()), (Some(2), Some(7)), "{text}");
    assert_eq!(counts(&report["difference_counts"]), (4, 4 + 3 * red.len() as u64, 0, 0), "{text}");
    assert_eq!(report["partial_word_only_queries"], json!(0), "{text}");
    eprintln!("hand-checked searches: {:.1}s", started.elapsed().as_secs_f64());

    // 3. The whole captured file on both targets: the figures for the record.
    let all = dir.join("captured.ndjson");
    write_ndjson(&all, &sc.legacy_index, &captured());
    let mut figures = Vec::new();
    for (label, index) in [("normalizer", &normalized), ("no normalizer", &plain)] {
        let (code, text, report) = parity(&on(index), &sc.legacy_index, &all, "keyword", &[]);
        assert_eq!(code, Some(3), "{text}");
        let f = (
            report["equal"].as_u64().unwrap(),
            report["differing"].as_u64().unwrap(),
            report["untranslatable"].as_u64().unwrap(),
            counts(&report["difference_counts"]),
        );
        eprintln!(
            "captured searches, {label}: {} equal, {} differ, {} untranslatable; differing documents (partial-word, case-only, other, not compared) {:?}",
            f.0, f.1, f.2, f.3
        );
        figures.push(f);
    }
    let (with, without) = (&figures[0], &figures[1]);
    assert!(with.0 > without.0 && with.1 < without.1, "the normalizer makes more searches equal: {figures:?}");
    assert!(with.3 .1 < without.3 .1, "fewer case-only documents: {figures:?}");
    assert!(with.3 .0 > 0 && with.3 .2 <= without.3 .2, "partial-word matches remain, nothing new is unexplained: {figures:?}");
    eprintln!("total {:.1}s", started.elapsed().as_secs_f64());

    let _ = target.request(Method::Delete, &format!("/{plain}"), None).await;
    let _ = std::fs::remove_dir_all(&dir);
    sc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_colliding_tag_keys_are_refused_with_a_normalizer() {
    let doc = |tags: Value| {
        let mut d = Map::new();
        d.insert("title".into(), json!("t"));
        d.insert("actions".into(), json!({"tags": tags}));
        d
    };
    let docs = vec![
        ("c1".to_string(), doc(json!({"Name": "John", "color": "red"}))),
        ("c2".to_string(), doc(json!({"name": "john", "ID": "7"}))),
        ("c3".to_string(), doc(json!({"id": "8"}))),
    ];
    let sc = text_legacy_scenario("tagcase", &docs).await;
    let target = sc.target_es();
    let out = sc.create_index_output(&["--tag-normalizer", "lowercase"]);
    let (stdout, stderr) = output_text(&out);
    assert!(!out.status.success(), "must refuse: {stdout}{stderr}");
    for needle in [
        "refusing to create",
        "nothing was created",
        "[ID, id], [Name, name]",
        "rename or merge those keys",
        "without --tag-normalizer",
        "--allow-tag-key-case-collisions",
    ] {
        assert!(stderr.contains(needle), "the refusal must say `{needle}`: {stderr}");
    }
    assert!(target.get_index(&sc.target_index).await.unwrap().is_none(), "a refused create-index created the target index");
    // Accepted on purpose: created, normalized, with a warning naming the keys.
    let out = sc.create_index_output(&["--tag-normalizer", "lowercase", "--allow-tag-key-case-collisions"]);
    let (stdout, stderr) = output_text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("become one key") && stderr.contains("Name"), "{stderr}");
    let def = target.get_index(&sc.target_index).await.unwrap().expect("created");
    assert_eq!(def["mappings"]["properties"]["tags"]["properties"]["keyToValue"]["normalizer"], "cutover_tag_lowercase");
    sc.cleanup().await;
}
