//! `parity`: the team's own captured searches, translated to the target schema
//! ([`schema::translate`]) and run on both clusters, compared query by query.
//!
//! ## Input
//! One search per line, either as an application logs it, `{"index": "...", "body": {...}}`
//! (an optional `"name"` is echoed in the report), or a line of Elasticsearch's JSON search
//! slow log (7.x: `message` `[index][shard]` and `source`, the body as a JSON string; 8.x+:
//! the same under `elasticsearch.slowlog.*`). The slow log is written per shard and per phase,
//! so identical slow-log searches (same index, same body) are run once.
//!
//! ## Comparison
//! Each body is translated with the legacy tag mapping the user states. A body with findings
//! is **not run**: it is reported `untranslatable` with the findings. The others run as they
//! are on the legacy index and translated on the target index, both with
//! `track_total_hits: true`, and are compared on
//! - the exact total;
//! - ids (with routing): for a sorted body (a `sort` other than `_score`) its page, in order
//!   (hits tied on their sort values may come in any order); for every other body every
//!   matching document, read with a scroll ([`cluster::scroll::for_each_hit`]) when the total
//!   is at most `max_ids` (above it, the totals only);
//! - aggregations, the target's bucket keys restored ([`schema::translate::Translation::restore_response`]),
//!   without `doc_count_error_upper_bound`.
//!
//! ## Live writes
//! Both indices are refreshed first. The queries that differ are re-run, in rounds (both indices
//! refreshed again before each), every `recheck_interval` until they agree or `settle_timeout`
//! passes, as `verify` re-checks in-flight documents: a difference in the report persisted
//! through every re-check. Each result says how many re-check rounds it went through.
//!
//! ## Causes
//! For a difference, the sample documents are read on both sides and the likely cause is named:
//! `analysed_text` (the legacy tag fields are `text`: analysed matches find other case and
//! partial words), `case` (tag values equal to a query value but for case), `ignore_above`
//! (a tag value longer than the legacy field's `ignore_above`: indexed only on the target),
//! `missing_document` (the document exists on one side only: see `verify`), else `unknown`.
//!
//! ## What the differences are made of
//! Every document of a difference (not only the samples; ids compared, so at most `max_ids`
//! per side) is read and counted under one explanation ([`DifferenceCounts`]): `partial_word`
//! (only the legacy found it, and a tag value holds the query value's words among others: an
//! analysed `match` for `John` found `John Smith`), `case_only` (a tag value equal to a query
//! value but for case: `john` for `John`), else `other`; `not_compared` is the gap between the
//! totals of a search compared by totals only. The report sums them over the differing
//! searches and counts the searches whose differences are partial-word matches only.
//!
//! ## A normalized target
//! The target's mapping is read first: when its tag keywords have a lowercase normalizer
//! (`create-index --tag-normalizer lowercase`), the searches are translated for it
//! ([`schema::translate::TargetTagCase::Lowercase`]) and the report says so; on a text-mapped
//! legacy the case-only differences then disappear and what remains are partial-word matches.

use crate::verify::{brief, doc_ref, hits_total, mget, DocRef, VerifyError};
use cluster::client::enc;
use cluster::{Es, EsError, RetryError, RetryPolicy};
use schema::translate::{translate_search_for, Finding, LegacyTagMapping, TargetTagCase, Translation};
use schema::{lowercase_like_lucene, TagRewrite, TargetTagNormalizers};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What `parity` compares.
#[derive(Clone, Debug)]
pub struct ParityConfig {
    pub source_index: String,
    pub target_index: String,
    pub tags: TagRewrite,
    /// How the legacy index maps its tag fields (the translator's input).
    pub legacy_mapping: LegacyTagMapping,
    /// Result sets up to this size are compared id by id; larger ones by their totals.
    pub max_ids: u64,
    /// Sample ids kept per side of a difference.
    pub sample_limit: usize,
    /// How long differing queries are re-checked.
    pub settle_timeout: Duration,
    /// Pause between two re-checks.
    pub recheck_interval: Duration,
    /// How failed searches are retried.
    pub retry: RetryPolicy,
}

/// Why parity could not run (a difference is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    #[error("{path}:{line}: {detail}")]
    Input { path: String, line: usize, detail: String },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Es(#[from] EsError),
}

/// Where a captured search came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// `{"index", "body"}`.
    Ndjson,
    /// A JSON search slow log line.
    SlowLog,
}

/// One captured search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapturedQuery {
    /// 1-based line of the input file (the first line, for deduplicated slow-log lines).
    pub line: usize,
    pub format: InputFormat,
    /// The index the application searched (informative: the searches run on the indices given).
    pub index: Option<String>,
    /// The line's `name`, when it has one.
    pub name: Option<String>,
    /// The legacy search body.
    pub body: Value,
    /// How many input lines had this search (slow-log lines are per shard and phase).
    pub occurrences: usize,
}

/// Parses an input file's text: NDJSON `{index, body}` lines and JSON slow-log lines, mixed
/// freely; blank lines are skipped; identical slow-log searches are merged.
pub fn parse_queries(text: &str, path: &str) -> Result<Vec<CapturedQuery>, ParityError> {
    let mut out: Vec<CapturedQuery> = Vec::new();
    let mut seen: BTreeMap<(Option<String>, String), usize> = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let err = |detail: String| ParityError::Input { path: path.to_string(), line, detail };
        let v: Value = serde_json::from_str(raw).map_err(|e| err(format!("not JSON: {e}")))?;
        let Some(obj) = v.as_object() else { return Err(err("expected a JSON object".into())) };
        let text_of = |k: &str| obj.get(k).and_then(Value::as_str);
        if let Some(body) = obj.get("body") {
            if !body.is_object() {
                return Err(err("`body` must be a JSON object (the search body)".into()));
            }
            out.push(CapturedQuery {
                line,
                format: InputFormat::Ndjson,
                index: text_of("index").map(str::to_string),
                name: text_of("name").map(str::to_string),
                body: body.clone(),
                occurrences: 1,
            });
            continue;
        }
        let source = text_of("source").or_else(|| text_of("elasticsearch.slowlog.source"));
        let Some(source) = source else {
            return Err(err("expected {\"index\": .., \"body\": {..}} or a JSON search slow log line (with `source`)".into()));
        };
        let body: Value = serde_json::from_str(source).map_err(|e| err(format!("the slow log's `source` is not a JSON body: {e}")))?;
        let message = text_of("message").or_else(|| text_of("elasticsearch.slowlog.message"));
        let index = message.and_then(slowlog_index).or_else(|| text_of("index.name").map(str::to_string));
        let key = (index.clone(), body.to_string());
        if let Some(&i) = seen.get(&key) {
            out[i].occurrences += 1;
            continue;
        }
        seen.insert(key, out.len());
        out.push(CapturedQuery { line, format: InputFormat::SlowLog, index, name: None, body, occurrences: 1 });
    }
    Ok(out)
}

/// `[index][shard]` (a slow log's `message`) -> `index`.
fn slowlog_index(message: &str) -> Option<String> {
    let rest = message.trim().strip_prefix('[')?;
    let (index, _) = rest.split_once(']')?;
    Some(index.to_string()).filter(|i| !i.is_empty())
}

/// The verdict on one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Same total, ids and aggregations.
    Equal,
    /// Something differs (after every re-check).
    Differs,
    /// The translator flagged it: not run.
    Untranslatable,
    /// The legacy cluster refused it (not a difference: the application gets that error today).
    LegacyError,
    /// The target refused the translated body (counted with the differences).
    TargetError,
}

/// A likely cause of a difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    AnalysedText,
    Case,
    IgnoreAbove,
    MissingDocument,
    Unknown,
}

impl CauseKind {
    /// The name in the JSON report (`analysed_text`...).
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::AnalysedText => "analysed_text",
            CauseKind::Case => "case",
            CauseKind::IgnoreAbove => "ignore_above",
            CauseKind::MissingDocument => "missing_document",
            CauseKind::Unknown => "unknown",
        }
    }
}

/// A cause with what shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub kind: CauseKind,
    pub detail: String,
}

/// How the ids were compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdComparison {
    /// The sorted page, in order.
    SortedPage,
    /// Every matching document.
    AllIds,
    /// More than `max_ids` hits: totals only.
    TotalsOnly,
    /// Not compared (not run, or an error).
    None,
}

/// How many documents of a difference each explanation accounts for (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferenceCounts {
    /// Found only by the legacy: a tag value holds the query value's words among others (an
    /// analysed `match` for `John` found `John Smith`).
    pub partial_word: usize,
    /// A tag value equal to a query value but for case (`john` for `John`).
    pub case_only: usize,
    /// Neither (a document on one side only, other values, another order...).
    pub other: usize,
    /// Searches compared by their totals only: the gap between the two totals.
    pub not_compared: usize,
}

impl DifferenceCounts {
    fn add(&mut self, o: &DifferenceCounts) {
        self.partial_word += o.partial_word;
        self.case_only += o.case_only;
        self.other += o.other;
        self.not_compared += o.not_compared;
    }

    /// True when partial-word matches are all there is.
    pub fn partial_word_only(&self) -> bool {
        self.partial_word > 0 && self.case_only == 0 && self.other == 0 && self.not_compared == 0
    }
}

impl std::fmt::Display for DifferenceCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} partial-word, {} case-only, {} other", self.partial_word, self.case_only, self.other)?;
        if self.not_compared > 0 {
            write!(f, ", {} not compared (totals only)", self.not_compared)?;
        }
        Ok(())
    }
}

/// The result for one captured query.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryResult {
    pub line: usize,
    pub format: InputFormat,
    pub index: Option<String>,
    pub name: Option<String>,
    pub occurrences: usize,
    pub status: Status,
    pub legacy_body: Value,
    /// The translated body (absent when untranslatable).
    pub target_body: Option<Value>,
    /// The translator's findings (untranslatable queries).
    pub findings: Vec<Finding>,
    pub legacy_total: Option<u64>,
    pub target_total: Option<u64>,
    pub ids: IdComparison,
    /// How many documents only one side returned (of the compared ids).
    pub only_legacy_count: usize,
    pub only_target_count: usize,
    /// Up to `sample_limit` of them (sorted pages: the ids at positions that differ).
    pub only_legacy: Vec<DocRef>,
    pub only_target: Vec<DocRef>,
    /// What the differing documents are made of (all of them, not only the samples).
    #[serde(default)]
    pub difference_counts: DifferenceCounts,
    /// Every differing document per side (what `difference_counts` reads).
    #[serde(skip)]
    all_only_legacy: Vec<DocRef>,
    #[serde(skip)]
    all_only_target: Vec<DocRef>,
    /// The first aggregation path that differs, with both values.
    pub aggregations: Option<String>,
    pub causes: Vec<Cause>,
    /// Re-check rounds this query went through (0: agreed at once, or never differed).
    pub rechecks: u32,
    /// The error of a side, when one failed.
    pub error: Option<String>,
}

/// The tag fields of the legacy index, as its mapping says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyTagFields {
    pub text_fields: usize,
    pub keyword_fields: usize,
    /// Tag field (or sub-field) -> its `ignore_above`.
    pub ignore_above: BTreeMap<String, u64>,
}

/// The report of a parity run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParityRunReport {
    pub source_index: String,
    pub target_index: String,
    pub queries_file: String,
    /// The mapping the queries were translated with (`keyword`, `text`, `text+keyword`).
    pub legacy_tag_mapping: String,
    /// What the legacy index's mapping actually has.
    pub legacy_tag_fields: LegacyTagFields,
    /// The normalizers of the target's tag keywords, read from its mapping (a lowercase one:
    /// `create-index --tag-normalizer lowercase`).
    #[serde(default)]
    pub target_tag_normalizers: TargetTagNormalizers,
    pub warnings: Vec<String>,
    /// When the run ended, epoch milliseconds (what `backfill cutover-check` ages it by).
    pub generated_at: u64,
    pub queries: usize,
    pub equal: usize,
    /// Queries whose answers differ, target errors included (`cutover-check` reads it).
    pub differing: usize,
    pub untranslatable: usize,
    pub legacy_errors: usize,
    pub target_errors: usize,
    /// How live writes were kept from showing as differences.
    pub live_writes: String,
    pub settle_timeout_secs: f64,
    pub recheck_interval_secs: f64,
    /// Queries that differed at first and agreed on a re-check.
    pub settled_on_recheck: usize,
    /// The differing documents of every differing query, by explanation (a document counts
    /// once per query it differs in).
    #[serde(default)]
    pub difference_counts: DifferenceCounts,
    /// Differing queries whose differences are partial-word matches only.
    #[serde(default)]
    pub partial_word_only_queries: usize,
    pub results: Vec<QueryResult>,
    pub elapsed_secs: f64,
}

impl ParityRunReport {
    /// True when no query differs and the target answered every one that ran.
    pub fn passed(&self) -> bool {
        self.differing == 0
    }
}

/// What one side answered.
#[derive(Debug)]
struct Answer {
    total: u64,
    /// The page's hits: identity and sort values.
    page: Vec<(DocRef, Value)>,
    /// Every matching document (when the total is at most `max_ids` and the body unsorted).
    all: Option<HashSet<DocRef>>,
    aggs: Value,
}

/// Runs every captured query; see the module doc.
pub async fn parity(legacy: &Es, target: &Es, cfg: &ParityConfig, queries: &[CapturedQuery], queries_file: &str) -> Result<ParityRunReport, ParityError> {
    let started = Instant::now();
    let fields = legacy_tag_fields(legacy, &cfg.source_index, &cfg.tags).await?;
    let mut warnings = Vec::new();
    // The target's tag keywords: a lowercase normalizer changes the translation. Unreadable
    // (an alias over several indices, no `view_index_metadata`): taken as exact, and said.
    let normalizers = match target.get_index(&cfg.target_index).await {
        Ok(Some(def)) => schema::target_tag_normalizers(&def, &cfg.tags),
        Ok(None) => TargetTagNormalizers::default(),
        Err(e) => {
            warnings.push(format!("cannot read the target's mapping ({}): its tag keywords are taken as exact (no normalizer)", brief(&e)));
            TargetTagNormalizers::default()
        }
    };
    let case = if normalizers.lowercases() { TargetTagCase::Lowercase } else { TargetTagCase::Exact };
    let normalizer_name = normalizers.key_to_value.clone().unwrap_or_default();
    match (&cfg.legacy_mapping, fields.text_fields, fields.keyword_fields) {
        (LegacyTagMapping::Keyword, t, _) if t > 0 && case == TargetTagCase::Lowercase => warnings.push(format!(
            "the legacy index maps {t} tag field(s) as `text`, but the queries were translated as for `keyword`: every difference shows what end users would see change when the exact (keyword) translation replaces the analysed search (cause `analysed_text`); the target's tag keywords have the lowercase normalizer `{normalizer_name}`, so case-insensitive exact matches are kept and what remains are partial-word matches (`difference_counts.partial_word`)"
        )),
        (LegacyTagMapping::Keyword, t, _) if t > 0 => warnings.push(format!(
            "the legacy index maps {t} tag field(s) as `text`, but the queries were translated as for `keyword`: every difference shows what end users would see change when the exact (keyword) translation replaces the analysed search (cause `analysed_text`); the target's tag keywords are case-sensitive (`create-index --tag-normalizer lowercase` keeps case-insensitive exact matches: `difference_counts.case_only`)"
        )),
        (LegacyTagMapping::Keyword, 0, k) if k > 0 && case == TargetTagCase::Lowercase => warnings.push(format!(
            "the target's tag keywords have the lowercase normalizer `{normalizer_name}` but the legacy's keyword tags are case-sensitive: tag searches find case variants the legacy did not, and terms-aggregation buckets come back lowercased (cause `case`)"
        )),
        (LegacyTagMapping::Text { .. }, 0, k) if k > 0 => {
            warnings.push(format!("the legacy index maps its {k} tag field(s) as `keyword`, not `text`: `--legacy-tag-mapping keyword` would translate more queries"))
        }
        _ => {}
    }
    if normalizers.any() && (normalizers.key_to_value != normalizers.value || !normalizers.lowercases()) {
        warnings.push(format!(
            "the target's tag keywords have normalizers keyToValue {:?}, value {:?} (filters {:?}): only a lowercase normalizer on both (`create-index --tag-normalizer lowercase`) is understood; differences it causes are reported as `other`",
            normalizers.key_to_value, normalizers.value, normalizers.filters
        ));
    }
    refresh_both(legacy, target, cfg).await?;
    let totals = TrackTotals::detect(legacy, target).await?;
    let mut results = Vec::with_capacity(queries.len());
    let mut translations = Vec::with_capacity(queries.len());
    for q in queries {
        let t = translate_search_for(&q.body, &cfg.tags, &cfg.legacy_mapping, case);
        let mut r = QueryResult {
            line: q.line,
            format: q.format,
            index: q.index.clone(),
            name: q.name.clone(),
            occurrences: q.occurrences,
            status: Status::Untranslatable,
            legacy_body: q.body.clone(),
            target_body: None,
            findings: t.findings.clone(),
            legacy_total: None,
            target_total: None,
            ids: IdComparison::None,
            only_legacy_count: 0,
            only_target_count: 0,
            only_legacy: vec![],
            only_target: vec![],
            difference_counts: DifferenceCounts::default(),
            all_only_legacy: vec![],
            all_only_target: vec![],
            aggregations: None,
            causes: vec![],
            rechecks: 0,
            error: None,
        };
        // An inexact translation is never run approximately.
        if t.is_exact() {
            r.target_body = Some(t.body.clone());
            compare(legacy, target, cfg, totals, &q.body, &t, &mut r).await;
        }
        results.push(r);
        translations.push(t);
    }
    // Live writes: differing queries are re-run, in rounds, until they agree or the settle
    // timeout passes (the same semantics as verify's re-checks).
    let differing = |results: &[QueryResult]| results.iter().filter(|r| r.status == Status::Differs).count();
    let deadline = Instant::now() + cfg.settle_timeout;
    let mut round = 0;
    while differing(&results) > 0 && Instant::now() < deadline {
        tokio::time::sleep(cfg.recheck_interval.min(deadline.saturating_duration_since(Instant::now()))).await;
        refresh_both(legacy, target, cfg).await?;
        round += 1;
        for ((q, t), r) in queries.iter().zip(&translations).zip(results.iter_mut()) {
            if r.status == Status::Differs {
                r.rechecks = round;
                compare(legacy, target, cfg, totals, &q.body, t, r).await;
            }
        }
        tracing::info!(round, differing = differing(&results), "re-checked differing queries");
    }
    let settled = results.iter().filter(|r| r.rechecks > 0 && r.status == Status::Equal).count();
    let mut difference_counts = DifferenceCounts::default();
    for (q, r) in queries.iter().zip(results.iter_mut()) {
        if r.status == Status::Differs {
            explain(legacy, target, cfg, &fields, case, &q.body, r).await?;
            difference_counts.add(&r.difference_counts);
        }
    }
    let partial_word_only_queries =
        results.iter().filter(|r| r.status == Status::Differs && r.aggregations.is_none() && r.difference_counts.partial_word_only()).count();
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    Ok(ParityRunReport {
        source_index: cfg.source_index.clone(),
        target_index: cfg.target_index.clone(),
        queries_file: queries_file.to_string(),
        legacy_tag_mapping: mapping_name(&cfg.legacy_mapping),
        legacy_tag_fields: fields,
        target_tag_normalizers: normalizers,
        warnings,
        generated_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        queries: results.len(),
        equal: count(Status::Equal),
        differing: count(Status::Differs) + count(Status::TargetError),
        untranslatable: count(Status::Untranslatable),
        legacy_errors: count(Status::LegacyError),
        target_errors: count(Status::TargetError),
        live_writes: format!(
            "both indices refreshed before the run; each differing query re-run (both indices refreshed) every {:?} until it agreed or {:?} passed: a reported difference persisted through every re-check",
            cfg.recheck_interval, cfg.settle_timeout
        ),
        settle_timeout_secs: cfg.settle_timeout.as_secs_f64(),
        recheck_interval_secs: cfg.recheck_interval.as_secs_f64(),
        settled_on_recheck: settled,
        difference_counts,
        partial_word_only_queries,
        results,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

fn mapping_name(m: &LegacyTagMapping) -> String {
    match m {
        LegacyTagMapping::Keyword => "keyword".into(),
        LegacyTagMapping::Text { keyword_subfield: None } => "text".into(),
        LegacyTagMapping::Text { keyword_subfield: Some(s) } => format!("text+{s}"),
    }
}

async fn refresh_both(legacy: &Es, target: &Es, cfg: &ParityConfig) -> Result<(), ParityError> {
    crate::copy::refresh_source(legacy, &cfg.source_index).await;
    crate::verify::refresh_target(target, &cfg.target_index).await?;
    Ok(())
}

/// The legacy index's tag fields: `GET /<index>/_mapping/field/<legacy_path>.*`.
async fn legacy_tag_fields(legacy: &Es, index: &str, tags: &TagRewrite) -> Result<LegacyTagFields, EsError> {
    let resp = legacy.get(&format!("/{}/_mapping/field/{}", enc(index), enc(&format!("{}.*", tags.legacy_path)))).await?;
    Ok(tag_fields_of(&resp))
}

fn tag_fields_of(resp: &Value) -> LegacyTagFields {
    let mut out = LegacyTagFields::default();
    for idx in resp.as_object().into_iter().flat_map(|m| m.values()) {
        for (full, f) in idx["mappings"].as_object().into_iter().flatten() {
            // 6.x nests the fields under the mapping type.
            let entries: Vec<(&String, &Value)> = if f.get("full_name").is_some() { vec![(full, f)] } else { f.as_object().into_iter().flatten().collect() };
            for (full, f) in entries {
                let Some(m) = f["mapping"].as_object().and_then(|m| m.values().next()) else { continue };
                match m["type"].as_str() {
                    Some("text") => out.text_fields += 1,
                    Some("keyword") => out.keyword_fields += 1,
                    _ => {}
                }
                if let Some(n) = m["ignore_above"].as_u64() {
                    out.ignore_above.insert(full.clone(), n);
                }
            }
        }
    }
    out
}

/// True when the body sorts on something other than the score.
fn sorted(body: &Value) -> bool {
    let only_score = |s: &Value| match s {
        Value::String(f) => f == "_score",
        Value::Object(m) => m.len() == 1 && m.contains_key("_score"),
        _ => false,
    };
    match body.get("sort") {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.iter().all(only_score),
        Some(s) => !only_score(s),
    }
}

/// Runs one search (retried under the policy while the cluster is busy or away).
async fn search(es: &Es, index: &str, body: &Value, retry: &RetryPolicy) -> Result<Value, String> {
    let path = format!("/{}/_search", enc(index));
    let attempt = || async {
        let (status, resp) = es.search(&path, body).await?;
        if !(200..300).contains(&status) {
            return Err(EsError::status_of("POST", &path, status, &resp));
        }
        Ok(resp)
    };
    let resp = retry.run("parity_search", &CancellationToken::new(), EsError::is_retryable, attempt).await.map_err(|e| match e {
        RetryError::Failed(e) => brief(&e),
        RetryError::GaveUp { why, last } => format!("{why}; last error: {}", brief(&last)),
    })?;
    if resp.pointer("/_shards/failed").and_then(Value::as_u64).unwrap_or(0) > 0 {
        return Err(format!("shard failures: {}", resp["_shards"]["failures"]));
    }
    Ok(resp)
}

/// Whether each side's searches ask for exact totals with `track_total_hits` (before 6.0 the
/// parameter is refused and totals are always exact).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TrackTotals {
    pub legacy: bool,
    pub target: bool,
}

impl TrackTotals {
    pub(crate) async fn detect(legacy: &Es, target: &Es) -> Result<Self, EsError> {
        let (l, t) = tokio::try_join!(cluster::version::detect(legacy), cluster::version::detect(target))?;
        Ok(TrackTotals { legacy: l.has_track_total_hits(), target: t.has_track_total_hits() })
    }
}

/// One side's answer to `body`; `track_total`: ask for the exact total (see [`TrackTotals`]).
async fn answer(es: &Es, index: &str, body: &Value, cfg: &ParityConfig, track_total: bool) -> Result<Answer, String> {
    let mut b = body.clone();
    if track_total {
        b["track_total_hits"] = json!(true);
    }
    b["_source"] = json!(false);
    let resp = search(es, index, &b, &cfg.retry).await?;
    let total = hits_total(&resp).ok_or("no hits.total in the answer")?;
    let page =
        resp.pointer("/hits/hits").and_then(Value::as_array).map(|hits| hits.iter().map(|h| (doc_ref(h), h["sort"].clone())).collect()).unwrap_or_default();
    let all = if !sorted(body) && total <= cfg.max_ids {
        // Every matching document: the hit-selecting parts of the body, scrolled.
        let mut scan = json!({"size": 1000, "sort": ["_doc"], "_source": false});
        for k in ["query", "post_filter", "min_score"] {
            if let Some(v) = body.get(k) {
                scan[k] = v.clone();
            }
        }
        let mut ids = HashSet::new();
        cluster::scroll::for_each_hit(es, index, &scan, |h| {
            ids.insert(doc_ref(h));
        })
        .await
        .map_err(|e| brief(&e))?;
        Some(ids)
    } else {
        None
    };
    let mut aggs = resp.get("aggregations").cloned().unwrap_or(Value::Null);
    strip_error_bounds(&mut aggs);
    Ok(Answer { total, page, all, aggs })
}

/// Drops what depends on the shard layout, not on the matching documents.
fn strip_error_bounds(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("doc_count_error_upper_bound");
            m.remove("meta");
            m.values_mut().for_each(strip_error_bounds);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_error_bounds),
        _ => {}
    }
}

/// The first path where two JSON values differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| first_difference(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}")))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => {
            let cut = |v: &Value| v.to_string().chars().take(300).collect::<String>();
            Some(format!("{path}: legacy {} vs target {}", cut(a), cut(b)))
        }
    }
}

/// Compares a sorted page: equal when the sort values match position by position and each run
/// of hits tied on them holds the same documents (a run cut by the page end: the same count).
/// Returns the documents at differing positions, per side.
fn page_difference(l: &[(DocRef, Value)], t: &[(DocRef, Value)]) -> (Vec<DocRef>, Vec<DocRef>) {
    let ids = |p: &[(DocRef, Value)]| p.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>();
    if l.len() != t.len() || l.iter().zip(t).any(|(a, b)| a.1 != b.1) {
        let (li, ti) = (ids(l), ids(t));
        let only_l = li.iter().filter(|d| !ti.contains(d)).cloned().collect::<Vec<_>>();
        let only_t = ti.iter().filter(|d| !li.contains(d)).cloned().collect::<Vec<_>>();
        if only_l.is_empty() && only_t.is_empty() {
            // Same documents in another order: report the page.
            return (li, ti);
        }
        return (only_l, only_t);
    }
    let (mut only_l, mut only_t) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < l.len() {
        let mut j = i;
        while j < l.len() && l[j].1 == l[i].1 {
            j += 1;
        }
        let cut = j == l.len() && !l[i].1.is_null();
        let a: BTreeSet<&DocRef> = l[i..j].iter().map(|(d, _)| d).collect();
        let b: BTreeSet<&DocRef> = t[i..j].iter().map(|(d, _)| d).collect();
        if a != b && !cut {
            only_l.extend(a.difference(&b).map(|d| (*d).clone()));
            only_t.extend(b.difference(&a).map(|d| (*d).clone()));
        }
        i = j;
    }
    (only_l, only_t)
}

/// Runs a translated query on both sides and fills `r` (status, totals, ids, aggregations).
async fn compare(legacy: &Es, target: &Es, cfg: &ParityConfig, totals: TrackTotals, body: &Value, t: &Translation, r: &mut QueryResult) {
    let (l, tg) = tokio::join!(answer(legacy, &cfg.source_index, body, cfg, totals.legacy), answer(target, &cfg.target_index, &t.body, cfg, totals.target));
    r.error = None;
    let (l, mut tg) = match (l, tg) {
        (Err(e), Err(te)) => {
            r.status = Status::LegacyError;
            r.error = Some(format!("legacy: {e}; target: {te}"));
            return;
        }
        (Err(e), Ok(_)) => {
            r.status = Status::LegacyError;
            r.error = Some(format!("legacy: {e}"));
            return;
        }
        (Ok(_), Err(e)) => {
            r.status = Status::TargetError;
            r.error = Some(format!("target: {e}"));
            return;
        }
        (Ok(l), Ok(t)) => (l, t),
    };
    let mut resp = json!({"aggregations": tg.aggs.take()});
    t.restore_response(&mut resp);
    tg.aggs = resp["aggregations"].take();
    r.legacy_total = Some(l.total);
    r.target_total = Some(tg.total);
    let (only_l, only_t) = if sorted(body) {
        r.ids = IdComparison::SortedPage;
        page_difference(&l.page, &tg.page)
    } else if let (Some(a), Some(b)) = (&l.all, &tg.all) {
        r.ids = IdComparison::AllIds;
        let mut x: Vec<DocRef> = a.difference(b).cloned().collect();
        let mut y: Vec<DocRef> = b.difference(a).cloned().collect();
        x.sort();
        y.sort();
        (x, y)
    } else {
        r.ids = IdComparison::TotalsOnly;
        (vec![], vec![])
    };
    r.only_legacy_count = only_l.len();
    r.only_target_count = only_t.len();
    r.only_legacy = only_l.iter().take(cfg.sample_limit).cloned().collect();
    r.only_target = only_t.iter().take(cfg.sample_limit).cloned().collect();
    r.all_only_legacy = only_l;
    r.all_only_target = only_t;
    r.aggregations = first_difference(&l.aggs, &tg.aggs, "aggregations");
    let same = l.total == tg.total && r.only_legacy_count == 0 && r.only_target_count == 0 && r.aggregations.is_none();
    r.status = if same { Status::Equal } else { Status::Differs };
}

/// The string values a legacy body searches for (in `query` and `post_filter`), and the words
/// of its `query_string` texts.
fn query_values(body: &Value) -> BTreeSet<String> {
    const SKIP: [&str; 12] = [
        "fields",
        "default_field",
        "field",
        "operator",
        "default_operator",
        "type",
        "flags",
        "rewrite",
        "_name",
        "minimum_should_match",
        "analyzer",
        "fuzziness",
    ];
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::String(s) => {
                out.insert(s.clone());
                for w in s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                    out.insert(w.to_string());
                }
            }
            Value::Number(n) => {
                out.insert(n.to_string());
            }
            Value::Array(a) => a.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => m.iter().filter(|(k, _)| !SKIP.contains(&k.as_str())).for_each(|(_, v)| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for k in ["query", "post_filter"] {
        if let Some(v) = body.get(k) {
            walk(v, &mut out);
        }
    }
    out
}

/// A legacy document's tags as (key, value text) pairs (nested objects flattened with `.`).
fn tag_values(source: &Value, tags: &TagRewrite) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out)),
            Value::Array(a) => a.iter().for_each(|i| walk(prefix, i, out)),
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Null => {}
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut node = source;
    for part in tags.legacy_path.split('.') {
        match node.get(part) {
            Some(n) => node = n,
            None => return vec![],
        }
    }
    let mut out = Vec::new();
    walk("", node, &mut out);
    out
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// What one differing document shows: its id, whether each side has it, its legacy tags.
struct Sample {
    doc: DocRef,
    legacy_found: bool,
    target_found: bool,
    tags: Vec<(String, String)>,
}

/// Names the likely causes from the samples (pure: see [`explain`]). `target_lowercase`: the
/// target's tag keywords have a lowercase normalizer.
fn name_causes(
    fields: &LegacyTagFields,
    mapping: &LegacyTagMapping,
    target_lowercase: bool,
    tags: &TagRewrite,
    query: &BTreeSet<String>,
    samples: &[Sample],
) -> Vec<Cause> {
    let mut found: BTreeMap<CauseKind, Vec<String>> = BTreeMap::new();
    fn note(found: &mut BTreeMap<CauseKind, Vec<String>>, k: CauseKind, s: String) {
        let v = found.entry(k).or_default();
        if v.len() < 5 && !v.contains(&s) {
            v.push(s);
        }
    }
    let text_legacy = fields.text_fields > 0 && *mapping == LegacyTagMapping::Keyword;
    for s in samples {
        if s.legacy_found != s.target_found {
            let side = if s.legacy_found { "legacy" } else { "target" };
            note(&mut found, CauseKind::MissingDocument, format!("{} exists only on the {side} index (`backfill verify` reports it)", s.doc));
            continue;
        }
        for (key, value) in &s.tags {
            let field = format!("{}.{key}", tags.legacy_path);
            let limit =
                fields.ignore_above.get(&field).or_else(|| fields.ignore_above.iter().find(|(f, _)| f.starts_with(&format!("{field}."))).map(|(_, n)| n));
            if let Some(limit) = limit {
                if value.chars().count() as u64 > *limit {
                    note(
                        &mut found,
                        CauseKind::IgnoreAbove,
                        format!("{}: {key} is {} characters, over the legacy ignore_above {limit}", s.doc, value.chars().count()),
                    );
                }
            }
            for q in query {
                if value == q || q.is_empty() {
                    continue;
                }
                if value.to_lowercase() == q.to_lowercase() {
                    let (kind, why) = match (text_legacy, target_lowercase) {
                        (true, _) => (CauseKind::AnalysedText, "case"),
                        (false, true) => (CauseKind::Case, "case: the target's lowercase normalizer matches it, the keyword legacy does not"),
                        (false, false) => (CauseKind::Case, "case"),
                    };
                    note(&mut found, kind, format!("{}: {key} = {value:?}, the query has {q:?} ({why})", s.doc));
                } else if text_legacy && !words(q).is_empty() && {
                    let vw = words(value);
                    words(q).iter().all(|w| vw.contains(w))
                } {
                    note(&mut found, CauseKind::AnalysedText, format!("{}: {key} = {value:?} contains the word(s) of {q:?} (partial-word match)", s.doc));
                }
            }
        }
    }
    if text_legacy && !found.contains_key(&CauseKind::AnalysedText) && !found.contains_key(&CauseKind::MissingDocument) {
        note(&mut found, CauseKind::AnalysedText, "the legacy tag fields are `text`: analysed matching differs from the target's exact keyword terms".into());
    }
    if found.is_empty() {
        note(&mut found, CauseKind::Unknown, "no cause recognized: compare the sample documents by hand".into());
    }
    found.into_iter().map(|(kind, d)| Cause { kind, detail: d.join("; ") }).collect()
}

/// Why one differing document differs (pure): `only_on_legacy` is the side that found it,
/// `both_lists` a document listed on both sides (a sorted page in another order),
/// `target_lowercase` the target's tag keywords have a lowercase normalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Explanation {
    PartialWord,
    CaseOnly,
    Other,
}

fn explanation(s: &Sample, only_on_legacy: bool, both_lists: bool, query: &BTreeSet<String>, target_lowercase: bool) -> Explanation {
    if both_lists || s.legacy_found != s.target_found {
        return Explanation::Other;
    }
    let (mut case, mut partial) = (false, false);
    for (_, v) in &s.tags {
        let lv = lowercase_like_lucene(v);
        for q in query.iter().filter(|q| !q.is_empty()) {
            let lq = lowercase_like_lucene(q);
            if lv == lq {
                // `john` for `John`; found only by the target: also `John` itself, which an
                // analysed legacy index holds as the word `john` only (a legacy `term` misses it).
                case |= v != q || (!only_on_legacy && *v != lv);
            } else if only_on_legacy {
                let qw = words(q);
                partial |= !qw.is_empty() && {
                    let vw = words(v);
                    qw.iter().all(|w| vw.contains(w))
                };
            } else if *q != lq && lv.starts_with(&lq) {
                // Found only by the target: a `prefix`/`wildcard` with capitals, which the
                // legacy compares with its lower-cased words as written (`Jo` misses `john`).
                case = true;
            }
        }
    }
    // With both, which one explains the difference depends on the target: a lowercase target
    // matches the case variants, so a document only the legacy found is there for a partial
    // word; on an exact target the case difference is enough.
    match (case, partial) {
        (true, true) if target_lowercase => Explanation::PartialWord,
        (true, _) => Explanation::CaseOnly,
        (false, true) => Explanation::PartialWord,
        (false, false) => Explanation::Other,
    }
}

/// Counts the explanations of every differing document (pure: see [`explain`]).
fn count_explanations(samples: &[(Sample, bool)], query: &BTreeSet<String>, not_compared: usize, target_lowercase: bool) -> DifferenceCounts {
    let mut legacy_side: HashSet<&DocRef> = HashSet::new();
    let mut target_side: HashSet<&DocRef> = HashSet::new();
    for (s, on_legacy) in samples {
        let side = if *on_legacy { &mut legacy_side } else { &mut target_side };
        side.insert(&s.doc);
    }
    let mut out = DifferenceCounts { not_compared, ..Default::default() };
    for (s, on_legacy) in samples {
        let both = legacy_side.contains(&s.doc) && target_side.contains(&s.doc);
        match explanation(s, *on_legacy, both, query, target_lowercase) {
            Explanation::PartialWord => out.partial_word += 1,
            Explanation::CaseOnly => out.case_only += 1,
            Explanation::Other => out.other += 1,
        }
    }
    out
}

/// Documents read per `_mget` when explaining a difference.
const EXPLAIN_BATCH: usize = 500;

/// Reads every differing document of `r` on both sides (in batches), counts what explains
/// each ([`DifferenceCounts`]) and names the likely causes from the samples.
async fn explain(
    legacy: &Es,
    target: &Es,
    cfg: &ParityConfig,
    fields: &LegacyTagFields,
    case: TargetTagCase,
    body: &Value,
    r: &mut QueryResult,
) -> Result<(), ParityError> {
    let docs: Vec<(DocRef, bool)> = r.all_only_legacy.iter().map(|d| (d.clone(), true)).chain(r.all_only_target.iter().map(|d| (d.clone(), false))).collect();
    let found = |d: &Value| d.get("found") == Some(&Value::Bool(true));
    let mut read: Vec<(Sample, bool)> = Vec::with_capacity(docs.len());
    for chunk in docs.chunks(EXPLAIN_BATCH) {
        let keys: Vec<DocRef> = chunk.iter().map(|(d, _)| d.clone()).collect();
        let ls = mget(legacy, &cfg.source_index, &keys, true, "legacy", &cfg.retry).await?;
        let ts = mget(target, &cfg.target_index, &keys, false, "target", &cfg.retry).await?;
        for (((doc, on_legacy), l), t) in chunk.iter().cloned().zip(ls).zip(ts) {
            read.push((Sample { doc, legacy_found: found(&l), target_found: found(&t), tags: tag_values(&l["_source"], &cfg.tags) }, on_legacy));
        }
    }
    let query = query_values(body);
    let not_compared = match (r.ids, r.legacy_total, r.target_total) {
        (IdComparison::TotalsOnly, Some(l), Some(t)) => l.abs_diff(t) as usize,
        _ => 0,
    };
    let lowercase = case == TargetTagCase::Lowercase;
    r.difference_counts = count_explanations(&read, &query, not_compared, lowercase);
    // The causes, from the samples the report lists.
    let (nl, nt) = (r.only_legacy.len(), r.only_target.len());
    let split = r.all_only_legacy.len();
    let samples: Vec<Sample> = read.into_iter().enumerate().filter(|(i, _)| *i < nl || (*i >= split && *i < split + nt)).map(|(_, (s, _))| s).collect();
    let mut out = name_causes(fields, &cfg.legacy_mapping, lowercase, &cfg.tags, &query, &samples);
    if samples.is_empty() && r.aggregations.is_some() && out.iter().all(|c| c.kind == CauseKind::Unknown) {
        out = vec![if lowercase {
            Cause { kind: CauseKind::Case, detail: "the aggregations differ with the same documents: the target's tag keywords are lowercased by its normalizer, so its bucket keys are lowercased and values differing only by case share one bucket".into() }
        } else {
            Cause { kind: CauseKind::Unknown, detail: "the aggregations differ with the same documents: compare the buckets".into() }
        }];
    }
    r.causes = out;
    Ok(())
}

/// The human-readable report (what `backfill parity` prints).
pub fn render(r: &ParityRunReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "parity {} -> {} ({} queries from {}, translated as `{}`)",
        r.source_index, r.target_index, r.queries, r.queries_file, r.legacy_tag_mapping
    );
    for w in &r.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    let n = &r.target_tag_normalizers;
    if n.any() {
        let name = |o: &Option<String>| o.as_deref().map_or("none".to_string(), |n| format!("`{n}`"));
        let _ = writeln!(
            s,
            "  target tag keywords: normalizer keyToValue {}, value {} (filters: {}){}",
            name(&n.key_to_value),
            name(&n.value),
            n.filters.join(", "),
            if n.lowercases() { ": case-insensitive" } else { "" }
        );
    }
    for q in &r.results {
        let name = q.name.as_deref().map(|n| format!(" {n:?}")).unwrap_or_default();
        let status = match q.status {
            Status::Equal => "equal",
            Status::Differs => "DIFFERS",
            Status::Untranslatable => "untranslatable (not run)",
            Status::LegacyError => "legacy error",
            Status::TargetError => "TARGET ERROR",
        };
        let totals = match (q.legacy_total, q.target_total) {
            (Some(l), Some(t)) => format!(" legacy {l} / target {t} hits"),
            _ => String::new(),
        };
        let recheck = if q.rechecks > 0 { format!(" ({} re-checks)", q.rechecks) } else { String::new() };
        let _ = writeln!(s, "line {}{name}: {status}{totals}{recheck}", q.line);
        if q.status == Status::Differs {
            let ids = |d: &[DocRef]| d.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            if q.only_legacy_count > 0 {
                let _ = writeln!(s, "  only on legacy: {} (e.g. {})", q.only_legacy_count, ids(&q.only_legacy));
            }
            if q.only_target_count > 0 {
                let _ = writeln!(s, "  only on target: {} (e.g. {})", q.only_target_count, ids(&q.only_target));
            }
            if let Some(a) = &q.aggregations {
                let _ = writeln!(s, "  {a}");
            }
            let _ = writeln!(s, "  differing documents: {}", q.difference_counts);
            for c in &q.causes {
                let _ = writeln!(s, "  likely cause {}: {}", c.kind.as_str(), c.detail);
            }
        }
        for f in &q.findings {
            let _ = writeln!(s, "  not exact: {f}");
        }
        if let Some(e) = &q.error {
            let _ = writeln!(s, "  {e}");
        }
    }
    let _ = writeln!(
        s,
        "summary: {} equal, {} differ (target errors included), {} untranslatable (not run), {} legacy errors, {} target errors; {} settled on re-check; {}",
        r.equal,
        r.differing,
        r.untranslatable,
        r.legacy_errors,
        r.target_errors,
        r.settled_on_recheck,
        if r.passed() { "PARITY" } else { "DIFFERENCES" }
    );
    if r.differing > 0 {
        let _ = writeln!(
            s,
            "differing documents: {} (partial-word: the legacy's analysed text matched a word inside a longer value; case-only: the same value but for case); {} of {} differing queries differ by partial-word matches only",
            r.difference_counts, r.partial_word_only_queries, r.differing
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ndjson_and_slow_logs() {
        let source = r#"{\"query\":{\"term\":{\"actions.tags.color\":{\"value\":\"red\",\"boost\":1.0}}}}"#;
        let slow7 = format!(
            r#"{{"type": "index_search_slowlog", "timestamp": "2026-01-01T00:00:00,000Z", "level": "WARN", "component": "i.s.s.query", "message": "[orders][0]", "took": "1.2ms", "took_millis": "1", "total_hits": "3 hits", "search_type": "QUERY_THEN_FETCH", "total_shards": "2", "source": "{source}"}}"#
        );
        let slow7_other_shard = slow7.replace("[orders][0]", "[orders][1]");
        let slow8 = format!(r#"{{"@timestamp": "x", "elasticsearch.slowlog.message": "[orders][0]", "elasticsearch.slowlog.source": "{source}"}}"#);
        let text = format!(
            "{{\"index\": \"orders\", \"name\": \"seed\", \"body\": {{\"query\": {{\"match_all\": {{}}}}}}}}\n\n{slow7}\n{slow7_other_shard}\n{slow8}\n"
        );
        let qs = parse_queries(&text, "f").unwrap();
        assert_eq!(qs.len(), 2, "{qs:?}");
        assert_eq!((qs[0].line, qs[0].format, qs[0].name.as_deref(), qs[0].index.as_deref()), (1, InputFormat::Ndjson, Some("seed"), Some("orders")));
        assert_eq!((qs[1].line, qs[1].format, qs[1].occurrences, qs[1].index.as_deref()), (3, InputFormat::SlowLog, 3, Some("orders")));
        assert_eq!(qs[1].body, json!({"query": {"term": {"actions.tags.color": {"value": "red", "boost": 1.0}}}}));
        let e = parse_queries("{\"index\": \"a\", \"body\": {}}\n{\"what\": 1}\n", "q.ndjson").unwrap_err();
        assert!(e.to_string().starts_with("q.ndjson:2:"), "{e}");
        assert!(parse_queries("nope", "f").unwrap_err().to_string().contains("not JSON"));
    }

    #[test]
    fn sorted_bodies() {
        assert!(!sorted(&json!({"query": {}})));
        assert!(!sorted(&json!({"sort": ["_score"]})));
        assert!(!sorted(&json!({"sort": [{"_score": "desc"}]})));
        assert!(sorted(&json!({"sort": [{"n": "desc"}]})));
        assert!(sorted(&json!({"sort": "n"})));
    }

    #[test]
    fn sorted_pages_tolerate_ties() {
        let h = |id: &str, s: i64| (DocRef::new(id, None), json!([s]));
        let l = vec![h("a", 3), h("b", 2), h("c", 2), h("d", 1)];
        let t = vec![h("a", 3), h("c", 2), h("b", 2), h("d", 1)];
        assert_eq!(page_difference(&l, &t), (vec![], vec![]));
        // The last run is cut by the page end: its members may differ.
        let t = vec![h("a", 3), h("c", 2), h("b", 2), h("e", 1)];
        assert_eq!(page_difference(&l, &t), (vec![], vec![]));
        let t = vec![h("a", 3), h("x", 2), h("b", 2), h("d", 1)];
        assert_eq!(page_difference(&l, &t), (vec![DocRef::new("c", None)], vec![DocRef::new("x", None)]));
        let t = vec![h("a", 3), h("b", 2), h("c", 2)];
        assert_eq!(page_difference(&l, &t), (vec![DocRef::new("d", None)], vec![]));
    }

    #[test]
    fn aggregation_differences_have_a_path() {
        let a = json!({"c": {"buckets": [{"key": "red", "doc_count": 2}]}});
        let b = json!({"c": {"buckets": [{"key": "red", "doc_count": 3}]}});
        assert_eq!(first_difference(&a, &a, "aggregations"), None);
        assert_eq!(first_difference(&a, &b, "aggregations").unwrap(), "aggregations.c.buckets[0].doc_count: legacy 2 vs target 3");
        let mut v = json!({"c": {"doc_count_error_upper_bound": 0, "buckets": [{"key": "x", "doc_count_error_upper_bound": 1}]}});
        strip_error_bounds(&mut v);
        assert_eq!(v, json!({"c": {"buckets": [{"key": "x"}]}}));
    }

    #[test]
    fn reads_the_legacy_tag_fields() {
        let resp = json!({"old": {"mappings": {
            "actions.tags.name": {"full_name": "actions.tags.name", "mapping": {"name": {"type": "text"}}},
            "actions.tags.name.keyword": {"full_name": "actions.tags.name.keyword", "mapping": {"keyword": {"type": "keyword", "ignore_above": 256}}}
        }}});
        let f = tag_fields_of(&resp);
        assert_eq!((f.text_fields, f.keyword_fields), (1, 1));
        assert_eq!(f.ignore_above.get("actions.tags.name.keyword"), Some(&256));
    }

    #[test]
    fn names_causes() {
        let tags = TagRewrite::default();
        let sample = |id: &str, kv: &[(&str, &str)]| Sample {
            doc: DocRef::new(id, None),
            legacy_found: true,
            target_found: true,
            tags: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let query = query_values(&json!({"query": {"match": {"actions.tags.name": {"query": "John"}}}}));
        assert!(query.contains("John"));
        let text = LegacyTagFields { text_fields: 2, ..Default::default() };
        let c =
            name_causes(&text, &LegacyTagMapping::Keyword, false, &tags, &query, &[sample("p2", &[("name", "john")]), sample("p3", &[("name", "John Smith")])]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].kind, CauseKind::AnalysedText);
        assert!(c[0].detail.contains("p2") && c[0].detail.contains("p3") && c[0].detail.contains("partial-word"), "{}", c[0].detail);
        // On a keyword legacy, a case-only difference is `case`.
        let kw = LegacyTagFields { keyword_fields: 2, ..Default::default() };
        let c = name_causes(&kw, &LegacyTagMapping::Keyword, false, &tags, &query, &[sample("p2", &[("name", "john")])]);
        assert_eq!(c.iter().map(|c| c.kind).collect::<Vec<_>>(), vec![CauseKind::Case]);
        // ignore_above.
        let long = "x".repeat(300);
        let ia = LegacyTagFields { keyword_fields: 1, ignore_above: [("actions.tags.note.keyword".to_string(), 256)].into(), ..Default::default() };
        let c = name_causes(
            &ia,
            &LegacyTagMapping::default_dynamic(),
            false,
            &tags,
            &query_values(&json!({"query": {"exists": {"field": "actions.tags.note.keyword"}}})),
            &[sample("p9", &[("note", &long)])],
        );
        assert_eq!(c[0].kind, CauseKind::IgnoreAbove, "{c:?}");
        // A document on one side only.
        let gone = Sample { doc: DocRef::new("p1", None), legacy_found: true, target_found: false, tags: vec![] };
        let c = name_causes(&kw, &LegacyTagMapping::Keyword, false, &tags, &query, &[gone]);
        assert_eq!(c[0].kind, CauseKind::MissingDocument);
        assert!(c[0].detail.contains("p1 exists only on the legacy"), "{}", c[0].detail);
        let c = name_causes(&kw, &LegacyTagMapping::Keyword, false, &tags, &query, &[]);
        assert_eq!(c[0].kind, CauseKind::Unknown);
        for k in [CauseKind::AnalysedText, CauseKind::Case, CauseKind::IgnoreAbove, CauseKind::MissingDocument, CauseKind::Unknown] {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }

    #[test]
    fn names_case_on_a_lowercase_target() {
        let tags = TagRewrite::default();
        let kw = LegacyTagFields { keyword_fields: 2, ..Default::default() };
        let query = query_values(&json!({"query": {"term": {"actions.tags.name": "John"}}}));
        let s = Sample { doc: DocRef::new("p2", None), legacy_found: true, target_found: true, tags: vec![("name".into(), "john".into())] };
        let c = name_causes(&kw, &LegacyTagMapping::Keyword, true, &tags, &query, &[s]);
        assert_eq!(c.iter().map(|c| c.kind).collect::<Vec<_>>(), vec![CauseKind::Case]);
        assert!(c[0].detail.contains("lowercase normalizer"), "{}", c[0].detail);
    }

    /// The hand-checkable documents of tests/parity_queries.rs, explained.
    #[test]
    fn explains_each_differing_document() {
        let doc = |id: &str, kv: &[(&str, &str)]| Sample {
            doc: DocRef::new(id, None),
            legacy_found: true,
            target_found: true,
            tags: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let john = query_values(&json!({"query": {"match": {"actions.tags.name": {"query": "John"}}}}));
        let (p01, p02, p03) = (doc("p01", &[("name", "John"), ("lname", "Smith")]), doc("p02", &[("name", "john")]), doc("p03", &[("name", "John Smith")]));
        // The analysed legacy found them; the target did not.
        assert_eq!(explanation(&p02, true, false, &john, false), Explanation::CaseOnly);
        assert_eq!(explanation(&p03, true, false, &john, false), Explanation::PartialWord);
        assert_eq!(explanation(&doc("x", &[("name", "JOHN smith")]), true, false, &john, false), Explanation::PartialWord, "a word inside, in another case");
        assert_eq!(explanation(&doc("x", &[("name", "Johnny")]), true, false, &john, false), Explanation::Other, "not a whole word");
        assert_eq!(explanation(&p01, true, false, &john, false), Explanation::Other, "the same value: not the reason");
        // Found only by the target: a legacy `term` for `John` misses the analysed word `john`.
        assert_eq!(explanation(&p01, false, false, &john, false), Explanation::CaseOnly);
        assert_eq!(explanation(&p02, false, false, &john, false), Explanation::CaseOnly);
        assert_eq!(explanation(&doc("x", &[("name", "Bob John")]), false, false, &john, false), Explanation::Other, "partial words are the legacy's only");
        // Both, found only by the legacy: the target decides.
        let msm = query_values(&json!({"query": {"bool": {"should": [{"term": {"actions.tags.color": "red"}}, {"term": {"actions.tags.name": "john"}}]}}}));
        let p03_both = doc("p03", &[("color", "Red"), ("name", "John Smith")]);
        assert_eq!(explanation(&p03_both, true, false, &msm, true), Explanation::PartialWord, "a lowercase target matches `Red`");
        assert_eq!(explanation(&p03_both, true, false, &msm, false), Explanation::CaseOnly, "an exact target misses `Red` already");
        // A prefix with capitals misses the legacy's lower-cased words.
        let jo = query_values(&json!({"query": {"prefix": {"actions.tags.name": "Jo"}}}));
        assert_eq!(explanation(&p01, false, false, &jo, false), Explanation::CaseOnly);
        assert_eq!(explanation(&doc("x", &[("name", "Bob")]), false, false, &jo, false), Explanation::Other);
        let ab = query_values(&json!({"query": {"term": {"actions.tags.scope:team": "a:b"}}}));
        assert_eq!(explanation(&doc("f", &[("scope:team", "a:b")]), false, false, &ab, false), Explanation::Other, "no case involved: tokenization");
        // On one side only, or listed on both (another order): other.
        let gone = Sample { legacy_found: true, target_found: false, ..doc("p02", &[("name", "john")]) };
        assert_eq!(explanation(&gone, true, false, &john, false), Explanation::Other);
        assert_eq!(explanation(&p02, true, true, &john, false), Explanation::Other);

        let counted = count_explanations(&[(p02, true), (p03, true), (doc("f1", &[("color", "red")]), false)], &john, 4, false);
        assert_eq!(counted, DifferenceCounts { partial_word: 1, case_only: 1, other: 1, not_compared: 4 });
        assert!(!counted.partial_word_only());
        assert_eq!(counted.to_string(), "1 partial-word, 1 case-only, 1 other, 4 not compared (totals only)");
        let only_partial = count_explanations(&[(doc("p03", &[("name", "John Smith")]), true)], &john, 0, false);
        assert!(only_partial.partial_word_only());
        assert_eq!(
            serde_json::to_value(only_partial).unwrap(),
            json!({"partial_word": 1, "case_only": 0, "other": 0, "not_compared": 0}),
            "stable field names"
        );
        // Listed on both sides: each entry is `other`.
        let both = count_explanations(&[(doc("a", &[("name", "john")]), true), (doc("a", &[("name", "john")]), false)], &john, 0, false);
        assert_eq!(both, DifferenceCounts { other: 2, ..Default::default() });
    }

    #[test]
    fn tag_values_flatten() {
        let src = json!({"actions": {"tags": {"a": {"b": "x"}, "n": [1, "y"], "z": null}}});
        assert_eq!(tag_values(&src, &TagRewrite::default()), vec![("a.b".into(), "x".into()), ("n".into(), "1".into()), ("n".into(), "y".into())]);
    }
}
