//! Search-body translation: a legacy search body (the Query DSL a legacy application sends,
//! with tags as fields `<legacy_path>.<key>`) becomes the body to send to the target index
//! (tags as `{keyToValue, value}` keyword pairs under `<target_field>`), plus a list of
//! [`Finding`]s for everything that could not be translated exactly. Nothing is ever
//! approximated: a clause that cannot be expressed exactly is left as it was and reported,
//! and [`Translation::exact`] turns any finding into an error. docs/queries.md is the user's
//! reference; the rules, in short (`kv` = `<target_field>.keyToValue`, `val` =
//! `<target_field>.value`, `K` = a tag key, `e(K)` = [`escape_key`]):
//!
//! | legacy clause on `<legacy_path>.K`                      | target                                         |
//! |---------------------------------------------------------|------------------------------------------------|
//! | `term` / `match` / `match_phrase` `v` (keyword)          | `term` kv = `e(K):v`                            |
//! | `terms [v..]`                                           | `terms` kv = `[e(K):v ..]`                      |
//! | `prefix p`                                              | `prefix` kv `e(K):p`                            |
//! | `wildcard w` / `regexp r`                               | `wildcard` / `regexp` kv: `e(K):` escaped, then `w` / `(r)` |
//! | `exists`                                                | `prefix e(K):` OR `prefix e(K).` (keys under `K.`) |
//! | `exists` on the map, or on `<legacy_path>.*`            | `exists` kv                                    |
//! | a value `v` over the field pattern `<legacy_path>.*`    | `term` val = `v`                               |
//! | a value `v` over `<legacy_path>.<glob>`                 | `regexp` kv: the glob over escaped keys, `:`, `v` |
//! | `multi_match`, `query_string`, `simple_query_string`    | split per field: tag fields as above, the other fields keep the original clause; AND/OR as `bool` |
//! | `terms` aggregation on a tag field                      | `terms` on kv with `include` = the key's escaped prefix; bucket keys restored by [`Translation::restore_response`] |
//!
//! Compound queries (`bool` with `must`/`filter`/`should`/`must_not`, `constant_score`,
//! `dis_max`, `boosting`, `function_score`) are walked; `nested`, `has_child` and `has_parent`
//! are walked too, but a tag clause inside them is flagged (their inner query runs on other
//! documents, which have no tag map). Everything that does not touch the tag map is copied
//! unchanged, byte for byte.
//!
//! Exactness depends on how the legacy index maps its tags ([`LegacyTagMapping`]): on
//! `keyword` fields, `match`, `match_phrase`, `multi_match` and quoted or single-term
//! `query_string` leaves are exact terms; on `text` fields they are analysed (split into
//! lower-cased words) and nothing on the target's keywords reproduces that, so they are
//! flagged. The `.keyword` sub-field of a text mapping is translated like a keyword field.
//! Scores are not preserved (only which documents match, and aggregation buckets).
//!
//! The target's tag keywords may have a lowercase normalizer (`backfill create-index
//! --tag-normalizer lowercase`, [`TargetTagCase::Lowercase`]): Elasticsearch then lowercases
//! the indexed pairs and the values of `term`, `terms`, `prefix`, `wildcard` and `regexp`
//! queries itself (checked on 9.x), so those translations are the same and match regardless of
//! case. What Elasticsearch does not normalize is adapted: a `terms` aggregation's `include` /
//! `exclude` (the key's prefix, the values) are lowercased, as are the bucket keys
//! [`Translation::restore_response`] strips. What it normalizes wrongly is flagged: it lowercases
//! a `regexp` pattern as plain text, which turns `\D`, `\S`, `\W` into `\d`, `\s`, `\w`.

mod syntax;
#[cfg(test)]
mod tests;

use crate::rewrite::{encode_pair, escape_key, TagRewrite, KEY_TO_VALUE_FIELD, VALUE_FIELD};
use serde_json::{json, Map, Value};
use syntax::{Dialect, Node};

/// How the legacy index maps the fields of its tag map: the input that decides whether
/// full-text clauses on tags are exact terms (keyword) or analysed (text).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LegacyTagMapping {
    /// Every tag field is `keyword` (e.g. a `path_match: "<legacy_path>.*"` dynamic template
    /// mapping them as keyword): every clause in the tables above is exact.
    Keyword,
    /// Every tag field is `text` (analysed), optionally with a keyword sub-field of this name
    /// (Elasticsearch's default dynamic mapping of strings: `text` plus `.keyword`, with
    /// `ignore_above: 256`). Clauses on the text fields that depend on analysis are flagged;
    /// clauses on the sub-field are translated as on keyword tags.
    Text {
        /// Name of the keyword sub-field (`keyword` in the default dynamic mapping).
        keyword_subfield: Option<String>,
    },
}

/// How the TARGET index's tag keywords compare text: exactly (the default), or lowercased by
/// a normalizer on both keywords (`backfill create-index --tag-normalizer lowercase`; read it
/// from the target with [`crate::target_tag_normalizers`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetTagCase {
    /// Keywords without a normalizer: case-sensitive.
    #[default]
    Exact,
    /// Keywords with a lowercase normalizer: indexed and searched lower-cased.
    Lowercase,
}

impl LegacyTagMapping {
    /// Elasticsearch's default dynamic mapping of strings: `text` with a `.keyword` sub-field.
    pub fn default_dynamic() -> Self {
        LegacyTagMapping::Text { keyword_subfield: Some("keyword".into()) }
    }
}

impl std::str::FromStr for LegacyTagMapping {
    type Err = String;

    /// `keyword`, `text` (no keyword sub-field) or `text+<sub>` (text with a keyword sub-field
    /// `<sub>`; `text+keyword` is Elasticsearch's default dynamic mapping).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keyword" => Ok(LegacyTagMapping::Keyword),
            "text" => Ok(LegacyTagMapping::Text { keyword_subfield: None }),
            _ => match s.strip_prefix("text+") {
                Some(sub) if !sub.is_empty() && !sub.contains('.') => Ok(LegacyTagMapping::Text { keyword_subfield: Some(sub.into()) }),
                _ => Err(format!("`{s}`: expected `keyword`, `text` or `text+<keyword sub-field>` (e.g. `text+keyword`)")),
            },
        }
    }
}

/// One clause that was not translated exactly: where it is in the body (`query.bool.must[1]`,
/// `aggs.by_color`, `sort`) and why. The clause is left in the body as the legacy
/// application wrote it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// JSON path of the clause in the body.
    pub path: String,
    /// Why it is not exactly translatable.
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// A `terms` aggregation moved onto `keyToValue`: its bucket keys in a target response start
/// with `prefix` (the escaped key and `:`), which [`Translation::restore_response`] strips.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketKeys {
    /// Names of the aggregation and its parents, outermost first.
    pub aggregation: Vec<String>,
    /// The prefix of every bucket key on the target.
    pub prefix: String,
}

/// The result of a translation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Translation {
    /// The target body. Exact when `findings` is empty; otherwise the flagged clauses are
    /// still in their legacy form and the body must not be used as a translation.
    pub body: Value,
    /// What could not be translated exactly, in body order.
    pub findings: Vec<Finding>,
    /// The translated `terms` aggregations whose bucket keys need restoring.
    pub bucket_keys: Vec<BucketKeys>,
}

/// [`Translation::exact`]'s error: the findings of a translation that is not exact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the search body is not exactly translatable: {}", .findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct NotExact {
    /// Every finding.
    pub findings: Vec<Finding>,
}

impl Translation {
    /// True when every clause was translated exactly.
    pub fn is_exact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The translation if it is exact, else every finding as an error: what a read path that
    /// must not change its results calls.
    pub fn exact(self) -> Result<Translation, NotExact> {
        if self.findings.is_empty() {
            Ok(self)
        } else {
            Err(NotExact { findings: self.findings })
        }
    }

    /// Rewrites a target search response so it reads like the legacy one: the bucket keys of
    /// the translated `terms` aggregations lose their `escape(key):` prefix (`color:red` ->
    /// `red`). Works with and without `typed_keys` (`sterms#name`). Hits are not touched.
    pub fn restore_response(&self, response: &mut Value) {
        for b in &self.bucket_keys {
            if let Some(aggs) = response.get_mut("aggregations") {
                restore(aggs, &b.aggregation, &b.prefix);
            }
        }
    }
}

fn restore(node: &mut Value, names: &[String], prefix: &str) {
    let Some((first, rest)) = names.split_first() else {
        if let Some(Value::Array(buckets)) = node.get_mut("buckets") {
            for b in buckets {
                if let Some(Value::String(k)) = b.get_mut("key") {
                    if let Some(stripped) = k.strip_prefix(prefix) {
                        *k = stripped.to_string();
                    }
                }
            }
        }
        return;
    };
    let Some(obj) = node.as_object_mut() else { return };
    let key = obj.keys().find(|k| *k == first || k.rsplit_once('#').is_some_and(|(_, n)| n == first)).cloned();
    if let Some(key) = key {
        restore(obj.get_mut(&key).expect("key found"), rest, prefix);
        return;
    }
    match obj.get_mut("buckets") {
        Some(Value::Array(buckets)) => buckets.iter_mut().for_each(|b| restore(b, names, prefix)),
        Some(Value::Object(buckets)) => buckets.values_mut().for_each(|b| restore(b, names, prefix)),
        _ => {}
    }
}

/// Translates a whole search body (`query`, `post_filter`, `aggs`/`aggregations`; every
/// other key is copied, or flagged when it references the tag map: a `sort`, `_source`
/// filter, `highlight`, `collapse`... on tags). See the module doc for the rules.
pub fn translate_search(body: &Value, tags: &TagRewrite, legacy: &LegacyTagMapping) -> Translation {
    translate_search_for(body, tags, legacy, TargetTagCase::Exact)
}

/// [`translate_search`] for a target whose tag keywords compare as `target` says (see the
/// module doc for what a lowercase normalizer changes).
pub fn translate_search_for(body: &Value, tags: &TagRewrite, legacy: &LegacyTagMapping, target: TargetTagCase) -> Translation {
    let mut t = Translator::new(tags, legacy, target);
    let out = match body.as_object() {
        None => {
            t.flag("", "the search body is not a JSON object");
            body.clone()
        }
        Some(obj) => {
            let mut out = Map::new();
            for (k, v) in obj {
                let value = match k.as_str() {
                    "query" | "post_filter" => t.query(v, k),
                    "aggs" | "aggregations" => t.aggs(v, k, &[]),
                    _ => {
                        if t.mentions_tags(v) {
                            let reason = match k.as_str() {
                                "sort" => "sorting on a tag field: the target has no per-key field to sort on".to_string(),
                                "_source" => format!(
                                    "a `_source` filter naming the tag map: target documents keep their tags as pairs under `{}`, so the returned sources differ",
                                    tags.target_field
                                ),
                                _ => format!("`{k}` references the tag map and is not translated"),
                            };
                            t.flag(k, reason);
                        }
                        v.clone()
                    }
                };
                out.insert(k.clone(), value);
            }
            Value::Object(out)
        }
    };
    t.finish(out)
}

/// Translates one query clause (what goes under `"query"`); finding paths start at `query`.
pub fn translate_query(query: &Value, tags: &TagRewrite, legacy: &LegacyTagMapping) -> Translation {
    translate_query_for(query, tags, legacy, TargetTagCase::Exact)
}

/// [`translate_query`] for a target whose tag keywords compare as `target` says.
pub fn translate_query_for(query: &Value, tags: &TagRewrite, legacy: &LegacyTagMapping, target: TargetTagCase) -> Translation {
    let mut t = Translator::new(tags, legacy, target);
    let out = t.query(query, "query");
    t.finish(out)
}

/// Which keys a tag clause addresses.
#[derive(Clone, Debug, PartialEq)]
enum Sel {
    /// One key (the field `<legacy_path>.<key>`).
    Key(String),
    /// Every key (`<legacy_path>.*`).
    All,
    /// The keys matching a glob (`*` = any characters, dots included).
    Glob(String),
}

/// What a field name (or field pattern) refers to.
#[derive(Clone, Debug, PartialEq)]
enum Field {
    /// Not the tag map.
    Other,
    /// The tag map object itself.
    Map,
    /// Tag fields with keyword semantics.
    Tags(Sel),
    /// Tag fields of a text mapping (analysed).
    Analysed(Sel),
    /// A pattern matching tag fields and other fields.
    Overlap,
}

const ANALYSED: &str = "on the legacy mapping the tag fields are `text`: the clause matches analysed tokens (words, lower-cased), which the target's keyword pairs cannot reproduce";
const NESTED: &str = "a tag clause inside `nested`/`has_child`/`has_parent`: its inner query runs on other documents, which have no tag map";

const LOWERCASED_REGEXP: &str = "the target's tag keywords have a lowercase normalizer, which Elasticsearch applies to the whole regular expression as text: `\\D`, `\\S`, `\\W` would become `\\d`, `\\s`, `\\w` (their opposites); write the class out (`[^0-9]`)";

struct Translator<'a> {
    tags: &'a TagRewrite,
    legacy: &'a LegacyTagMapping,
    target: TargetTagCase,
    findings: Vec<Finding>,
    bucket_keys: Vec<BucketKeys>,
    /// Depth of `nested`/`has_child`/`has_parent` queries (or `nested` aggregations) around
    /// the current clause.
    nested: usize,
}

impl<'a> Translator<'a> {
    fn new(tags: &'a TagRewrite, legacy: &'a LegacyTagMapping, target: TargetTagCase) -> Self {
        Translator { tags, legacy, target, findings: Vec::new(), bucket_keys: Vec::new(), nested: 0 }
    }

    /// `s` as the target indexes it (lowercased under a lowercase normalizer), for what
    /// Elasticsearch does not normalize itself (aggregation `include`/`exclude`, bucket keys).
    fn indexed(&self, s: &str) -> String {
        match self.target {
            TargetTagCase::Exact => s.to_string(),
            TargetTagCase::Lowercase => crate::lowercase_like_lucene(s),
        }
    }

    /// True when a regular expression would change meaning if the target's normalizer
    /// lowercased it as text.
    fn regexp_breaks_when_lowercased(&self, pattern: &str) -> bool {
        self.target == TargetTagCase::Lowercase && has_negated_class_escape(pattern)
    }

    fn finish(self, body: Value) -> Translation {
        Translation { body, findings: self.findings, bucket_keys: self.bucket_keys }
    }

    fn flag(&mut self, path: &str, reason: impl Into<String>) {
        self.findings.push(Finding { path: path.to_string(), reason: reason.into() });
    }

    fn kv(&self) -> String {
        format!("{}.{KEY_TO_VALUE_FIELD}", self.tags.target_field)
    }

    fn val(&self) -> String {
        format!("{}.{VALUE_FIELD}", self.tags.target_field)
    }

    /// Classifies a field name; `expand`: the clause expands `*` patterns in field names
    /// (`exists`, `multi_match`, `query_string`...), else the name is literal (`term`...).
    fn classify(&self, name: &str, expand: bool) -> Field {
        let lp = self.tags.legacy_path.as_str();
        if name == lp {
            return Field::Map;
        }
        if let Some(rest) = name.strip_prefix(lp).and_then(|r| r.strip_prefix('.')) {
            if expand && rest.contains('*') {
                let sel = if rest == "*" { Sel::All } else { Sel::Glob(rest.to_string()) };
                return match self.legacy {
                    LegacyTagMapping::Keyword => Field::Tags(sel),
                    // The pattern expands to the text fields (and their sub-fields).
                    LegacyTagMapping::Text { .. } => Field::Analysed(sel),
                };
            }
            return match self.legacy {
                LegacyTagMapping::Keyword => Field::Tags(Sel::Key(rest.to_string())),
                LegacyTagMapping::Text { keyword_subfield } => {
                    let sub = keyword_subfield.as_deref().and_then(|s| rest.strip_suffix(s)?.strip_suffix('.')).filter(|k| !k.is_empty());
                    match sub {
                        Some(key) => Field::Tags(Sel::Key(key.to_string())),
                        None => Field::Analysed(Sel::Key(rest.to_string())),
                    }
                }
            };
        }
        if expand && name.contains('*') && glob_may_reach(name, &format!("{lp}.")) {
            return Field::Overlap;
        }
        // An ancestor object of the map (`actions`): covers the tags and other fields.
        if lp.strip_prefix(name).is_some_and(|rest| rest.starts_with('.')) {
            return Field::Overlap;
        }
        Field::Other
    }

    /// True when any field name, field pattern or string in `v` may address the tag map, or
    /// contains its path (a script): the conservative test for clauses this module does not
    /// translate.
    fn mentions_tags(&self, v: &Value) -> bool {
        let named = |s: &str| s.contains(self.tags.legacy_path.as_str()) || self.classify(s.split('^').next().unwrap_or(s), true) != Field::Other;
        match v {
            Value::String(s) => named(s),
            Value::Array(items) => items.iter().any(|i| self.mentions_tags(i)),
            Value::Object(m) => m.iter().any(|(k, v)| named(k) || self.mentions_tags(v)),
            _ => false,
        }
    }

    // ---- target clauses ----

    fn any_value(&self, sel: &Sel, values: &[String]) -> Value {
        match (sel, values) {
            (Sel::Key(k), [v]) => json!({"term": {self.kv(): {"value": encode_pair(k, v)}}}),
            (Sel::Key(k), vs) => json!({"terms": {self.kv(): vs.iter().map(|v| encode_pair(k, v)).collect::<Vec<_>>()}}),
            (Sel::All, [v]) => json!({"term": {self.val(): {"value": v}}}),
            (Sel::All, vs) => json!({"terms": {self.val(): vs}}),
            (Sel::Glob(g), vs) => {
                let alts: Vec<String> = vs.iter().map(|v| regex_literal(v)).collect();
                json!({"regexp": {self.kv(): {"value": format!("{}:({})", glob_regex(g), alts.join("|"))}}})
            }
        }
    }

    fn key_exists(&self, sel: &Sel) -> Value {
        match sel {
            Sel::Key(k) => {
                let e = escape_key(k);
                let prefix = |p: String| json!({"prefix": {self.kv(): {"value": p}}});
                json!({"bool": {"should": [prefix(format!("{e}:")), prefix(format!("{e}."))], "minimum_should_match": 1}})
            }
            Sel::All => json!({"exists": {"field": self.kv()}}),
            Sel::Glob(g) => json!({"regexp": {self.kv(): {"value": format!("{}:.*", glob_regex(g))}}}),
        }
    }

    // ---- queries ----

    fn query(&mut self, q: &Value, path: &str) -> Value {
        let Some((kind, body)) = q.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            if self.mentions_tags(q) {
                self.flag(path, "not a query object of one kind");
            }
            return q.clone();
        };
        let here = format!("{path}.{kind}");
        let translated = match kind.as_str() {
            "bool" => self.compound(body, &here, &["must", "filter", "should", "must_not"]),
            "constant_score" => self.compound(body, &here, &["filter"]),
            "dis_max" => self.compound(body, &here, &["queries"]),
            "boosting" => self.compound(body, &here, &["positive", "negative"]),
            "function_score" => {
                let mut out = self.compound(body, &here, &["query", "filter"]);
                if let Some(Value::Array(fs)) = body.get("functions") {
                    let fs: Vec<Value> = fs.iter().enumerate().map(|(i, f)| self.compound(f, &format!("{here}.functions[{i}]"), &["filter"])).collect();
                    out["functions"] = Value::Array(fs);
                }
                out
            }
            "nested" | "has_child" | "has_parent" => {
                self.nested += 1;
                let out = self.compound(body, &here, &["query"]);
                self.nested -= 1;
                out
            }
            "term" | "match" | "match_phrase" | "prefix" | "wildcard" | "regexp" => return self.single_field(kind, body, q, path),
            "terms" => return self.terms(body, q, path),
            "exists" => return self.exists(body, q, path),
            "multi_match" => return self.multi_match(body, q, path),
            "query_string" => return self.query_string(body, q, path, Dialect::QueryString),
            "simple_query_string" => return self.query_string(body, q, path, Dialect::Simple),
            "wrapper" => {
                self.flag(path, "a `wrapper` query (base64) cannot be inspected for tag fields");
                return q.clone();
            }
            _ => {
                if self.mentions_tags(body) {
                    self.flag(path, format!("`{kind}` over tag fields is not translated (only term, terms, match, match_phrase, prefix, wildcard, regexp, exists, multi_match, query_string and simple_query_string are)"));
                }
                return q.clone();
            }
        };
        json!({ kind: translated })
    }

    /// A compound query's body with its sub-queries (at `keys`, each a query or an array of
    /// queries) translated; every other key copied.
    fn compound(&mut self, body: &Value, path: &str, keys: &[&str]) -> Value {
        let Some(obj) = body.as_object() else { return body.clone() };
        let mut out = Map::new();
        for (k, v) in obj {
            let value = if keys.contains(&k.as_str()) {
                match v {
                    Value::Array(items) => Value::Array(items.iter().enumerate().map(|(i, q)| self.query(q, &format!("{path}.{k}[{i}]"))).collect()),
                    q => self.query(q, &format!("{path}.{k}")),
                }
            } else {
                v.clone()
            };
            out.insert(k.clone(), value);
        }
        Value::Object(out)
    }

    /// Common checks of a clause's field: `Some(None)` when it is not a tag field (copy the
    /// clause), `Some(Some(sel))` when it may be translated, `None` when it was flagged.
    fn tag_sel(&mut self, field: Field, path: &str, what: &str) -> Option<Option<Sel>> {
        let problem = match field {
            Field::Other => return Some(None),
            _ if self.nested > 0 => NESTED.to_string(),
            Field::Tags(sel) => return Some(Some(sel)),
            Field::Map => format!("{what} on the tag map object itself (not a field): it matches no document on the legacy cluster"),
            Field::Analysed(_) => match self.legacy {
                LegacyTagMapping::Text { keyword_subfield: Some(sub) } => {
                    format!("{ANALYSED}; the same clause on the keyword sub-field (`<key>.{sub}`) translates exactly")
                }
                _ => ANALYSED.to_string(),
            },
            Field::Overlap => "a field pattern matching both tag fields and other fields".to_string(),
        };
        self.flag(path, problem);
        None
    }

    /// `term`, `match`, `match_phrase`, `prefix`, `wildcard`, `regexp`: `{kind: {field: spec}}`.
    fn single_field(&mut self, kind: &str, body: &Value, q: &Value, path: &str) -> Value {
        let Some((field, spec)) = body.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            if self.mentions_tags(body) {
                self.flag(path, format!("`{kind}` must name exactly one field"));
            }
            return q.clone();
        };
        // A literal field name: a single key, or not a tag clause (or flagged).
        let key = match self.tag_sel(self.classify(field, false), path, &format!("`{kind}`")) {
            Some(Some(Sel::Key(k))) => k,
            _ => return q.clone(),
        };
        let (main_key, allowed): (&[&str], &[&str]) = match kind {
            "term" => (&["value"], &["case_insensitive"]),
            "match" => (
                &["query"],
                &[
                    "operator",
                    "minimum_should_match",
                    "lenient",
                    "zero_terms_query",
                    "auto_generate_synonyms_phrase_query",
                    "prefix_length",
                    "max_expansions",
                    "fuzzy_transpositions",
                    "fuzzy_rewrite",
                ],
            ),
            "match_phrase" => (&["query"], &["slop", "zero_terms_query"]),
            "prefix" => (&["value"], &["rewrite", "case_insensitive"]),
            "wildcard" => (&["value", "wildcard"], &["rewrite", "case_insensitive"]),
            _ => (&["value"], &["flags", "max_determinized_states", "rewrite", "case_insensitive"]),
        };
        let (value, opts) = match spec {
            Value::Object(o) => {
                let v = main_key.iter().find_map(|k| o.get(*k)).cloned().unwrap_or(Value::Null);
                let opts: Map<String, Value> = o.iter().filter(|(k, _)| !main_key.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
                (v, opts)
            }
            v => (v.clone(), Map::new()),
        };
        if let Some(reason) = check_options(&opts, allowed) {
            self.flag(path, reason);
            return q.clone();
        }
        let text = if matches!(kind, "wildcard" | "regexp" | "prefix") {
            match value.as_str() {
                Some(s) => s.to_string(),
                None => {
                    self.flag(path, format!("`{kind}` needs a string value"));
                    return q.clone();
                }
            }
        } else {
            match scalar_text(&value) {
                Ok(s) => s,
                Err(reason) => {
                    self.flag(path, reason);
                    return q.clone();
                }
            }
        };
        if kind == "regexp" && self.regexp_breaks_when_lowercased(&text) {
            self.flag(path, LOWERCASED_REGEXP);
            return q.clone();
        }
        let kv = self.kv();
        let e = escape_key(&key);
        let clause = match kind {
            "term" | "match" | "match_phrase" => self.any_value(&Sel::Key(key), &[text]),
            "prefix" => json!({"prefix": {kv: {"value": format!("{e}:{text}")}}}),
            "wildcard" => json!({"wildcard": {kv: {"value": format!("{}:{text}", wildcard_literal(&e))}}}),
            _ => {
                let mut spec = json!({"value": format!("{}:({text})", regex_literal(&e))});
                for k in ["flags", "max_determinized_states"] {
                    if let Some(v) = opts.get(k) {
                        spec[k] = v.clone();
                    }
                }
                json!({"regexp": {kv: spec}})
            }
        };
        decorate(clause, &opts)
    }

    fn terms(&mut self, body: &Value, q: &Value, path: &str) -> Value {
        let Some(obj) = body.as_object() else { return q.clone() };
        let fields: Vec<(&String, &Value)> = obj.iter().filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name")).collect();
        let [(field, values)] = fields.as_slice() else {
            if self.mentions_tags(body) {
                self.flag(path, "`terms` must name exactly one field");
            }
            return q.clone();
        };
        let key = match self.tag_sel(self.classify(field, false), path, "`terms`") {
            Some(Some(Sel::Key(k))) => k,
            _ => return q.clone(),
        };
        let Some(values) = values.as_array() else {
            self.flag(path, "a terms lookup (values read from another document) cannot be encoded as key:value pairs");
            return q.clone();
        };
        let mut texts = Vec::new();
        for v in values {
            match scalar_text(v) {
                Ok(s) => texts.push(s),
                Err(reason) => {
                    self.flag(path, reason);
                    return q.clone();
                }
            }
        }
        let mut clause = json!({"terms": {self.kv(): texts.iter().map(|v| encode_pair(&key, v)).collect::<Vec<_>>()}});
        for k in ["boost", "_name"] {
            if let Some(v) = obj.get(k) {
                clause["terms"][k] = v.clone();
            }
        }
        clause
    }

    fn exists(&mut self, body: &Value, q: &Value, path: &str) -> Value {
        let Some(field) = body.get("field").and_then(Value::as_str) else { return q.clone() };
        let field = match self.classify(field, true) {
            // `exists` is the same on a text field: "has a value".
            Field::Analysed(Sel::Key(k)) => Field::Tags(Sel::Key(k)),
            f => f,
        };
        let clause = match field {
            Field::Map if self.nested == 0 => self.key_exists(&Sel::All),
            f => match self.tag_sel(f, path, "`exists`") {
                Some(Some(sel)) => self.key_exists(&sel),
                _ => return q.clone(),
            },
        };
        let opts: Map<String, Value> = body.as_object().into_iter().flatten().filter(|(k, _)| *k != "field").map(|(k, v)| (k.clone(), v.clone())).collect();
        decorate(clause, &opts)
    }

    /// Splits a list of (possibly boosted) field names into tag selections and other fields;
    /// None (flagged) when a field cannot be translated.
    fn split_fields(&mut self, fields: &[String], path: &str) -> Option<(Vec<Sel>, Vec<String>)> {
        let (mut sels, mut others) = (Vec::new(), Vec::new());
        for f in fields {
            let name = f.split('^').next().unwrap_or(f);
            match self.tag_sel(self.classify(name, true), path, "a full-text query")? {
                Some(sel) => sels.push(sel),
                None => others.push(f.clone()),
            }
        }
        Some((sels, others))
    }

    fn multi_match(&mut self, body: &Value, q: &Value, path: &str) -> Value {
        let Some(obj) = body.as_object() else { return q.clone() };
        let fields: Vec<String> = match obj.get("fields") {
            Some(Value::Array(fs)) => fs.iter().filter_map(|f| f.as_str().map(str::to_string)).collect(),
            Some(Value::String(f)) => vec![f.clone()],
            _ => {
                self.flag(path, "no `fields`: the query searches `index.query.default_field` (by default `*`, the tag map included); name the fields");
                return q.clone();
            }
        };
        let Some((sels, others)) = self.split_fields(&fields, path) else { return q.clone() };
        if sels.is_empty() {
            return q.clone();
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str).filter(|t| !matches!(*t, "best_fields" | "most_fields" | "phrase")) {
            self.flag(path, format!("multi_match type `{t}` is not translated (only best_fields, most_fields and phrase, which match field by field)"));
            return q.clone();
        }
        let allowed = [
            "fields",
            "type",
            "operator",
            "minimum_should_match",
            "tie_breaker",
            "lenient",
            "zero_terms_query",
            "auto_generate_synonyms_phrase_query",
            "slop",
            "prefix_length",
            "max_expansions",
            "fuzzy_transpositions",
            "fuzzy_rewrite",
        ];
        let opts: Map<String, Value> = obj.iter().filter(|(k, _)| *k != "query").map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(reason) = check_options(&opts, &allowed) {
            self.flag(path, reason);
            return q.clone();
        }
        let text = match obj.get("query").map(scalar_text) {
            Some(Ok(s)) => s,
            Some(Err(reason)) => {
                self.flag(path, reason);
                return q.clone();
            }
            None => return q.clone(),
        };
        let mut clauses: Vec<Value> = Vec::new();
        if !others.is_empty() {
            let mut rest = obj.clone();
            rest.insert("fields".into(), json!(others));
            rest.remove("boost");
            rest.remove("_name");
            clauses.push(json!({"multi_match": rest}));
        }
        clauses.extend(sels.iter().map(|s| self.any_value(s, std::slice::from_ref(&text))));
        decorate(any_of(clauses), &opts)
    }

    fn query_string(&mut self, body: &Value, q: &Value, path: &str, dialect: Dialect) -> Value {
        let Some(obj) = body.as_object() else { return q.clone() };
        let text = obj.get("query").and_then(Value::as_str).unwrap_or_default();
        let defaults: Vec<String> = match (obj.get("fields"), obj.get("default_field")) {
            (Some(Value::Array(fs)), _) => fs.iter().filter_map(|f| f.as_str().map(str::to_string)).collect(),
            (_, Some(Value::String(f))) if dialect == Dialect::QueryString => vec![f.clone()],
            _ => vec!["*".to_string()],
        };
        let touches = |t: &Self, f: &str| t.classify(f.split('^').next().unwrap_or(f), true) != Field::Other;
        let implicit_and = obj.get("default_operator").and_then(Value::as_str).is_some_and(|o| o.eq_ignore_ascii_case("and"));
        let node = match syntax::parse(text, dialect, implicit_and) {
            Ok(node) => node,
            Err(e) => {
                let qualified = if dialect == Dialect::QueryString { syntax::qualifiers(text) } else { Vec::new() };
                if defaults.iter().chain(&qualified).any(|f| touches(self, f)) {
                    self.flag(path, format!("query text outside the translatable subset ({e}); the default fields or a qualified field include tag fields"));
                }
                return q.clone();
            }
        };
        let mut used = Vec::new();
        leaf_fields(&node, &defaults, &mut used);
        if !used.iter().any(|f| touches(self, f)) {
            return q.clone();
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str).filter(|t| !matches!(*t, "best_fields" | "most_fields")) {
            self.flag(path, format!("query_string type `{t}` is not translated (only best_fields and most_fields, which match field by field)"));
            return q.clone();
        }
        if let Some(flags) = obj.get("flags").filter(|f| f.as_str() != Some("ALL")) {
            self.flag(path, format!("simple_query_string flags {flags} are not translated (only ALL)"));
            return q.clone();
        }
        let allowed = [
            "fields",
            "default_field",
            "default_operator",
            "type",
            "flags",
            "lenient",
            "analyze_wildcard",
            "allow_leading_wildcard",
            "auto_generate_synonyms_phrase_query",
            "tie_breaker",
            "time_zone",
            "escape",
            "enable_position_increments",
            "phrase_slop",
            "max_determinized_states",
            "rewrite",
            "fuzziness",
            "fuzzy_max_expansions",
            "fuzzy_prefix_length",
            "fuzzy_transpositions",
            "fuzzy_rewrite",
        ];
        let opts: Map<String, Value> = obj.iter().filter(|(k, _)| *k != "query").map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(reason) = check_options(&opts, &allowed) {
            self.flag(path, reason);
            return q.clone();
        }
        let kind = if dialect == Dialect::QueryString { "query_string" } else { "simple_query_string" };
        match self.qs_node(&node, obj, kind, &defaults, path) {
            Some(clause) => decorate(clause, &opts),
            None => q.clone(),
        }
    }

    fn qs_node(&mut self, node: &Node, orig: &Map<String, Value>, kind: &str, defaults: &[String], path: &str) -> Option<Value> {
        match node {
            Node::All(items) => {
                let cs = items.iter().map(|n| self.qs_node(n, orig, kind, defaults, path)).collect::<Option<Vec<_>>>()?;
                Some(json!({"bool": {"must": cs}}))
            }
            Node::Any(items) => {
                let cs = items.iter().map(|n| self.qs_node(n, orig, kind, defaults, path)).collect::<Option<Vec<_>>>()?;
                Some(json!({"bool": {"should": cs, "minimum_should_match": 1}}))
            }
            Node::Exists { field } => {
                let f = match self.classify(field, true) {
                    Field::Analysed(Sel::Key(k)) => Field::Tags(Sel::Key(k)),
                    Field::Map => Field::Tags(Sel::All),
                    f => f,
                };
                match self.tag_sel(f, path, "`_exists_`")? {
                    Some(sel) => Some(self.key_exists(&sel)),
                    None => Some(json!({"exists": {"field": field}})),
                }
            }
            Node::Leaf { field, text, raw } => {
                let fields = match field {
                    Some(f) => vec![f.clone()],
                    None => defaults.to_vec(),
                };
                let (sels, others) = self.split_fields(&fields, path)?;
                let mut clauses = Vec::new();
                if !others.is_empty() {
                    let mut rest: Map<String, Value> =
                        orig.iter().filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name")).map(|(k, v)| (k.clone(), v.clone())).collect();
                    rest.insert("query".into(), json!(raw));
                    rest.remove("default_field");
                    rest.remove("fields");
                    if field.is_none() {
                        rest.insert("fields".into(), json!(others));
                    }
                    clauses.push(json!({ kind: rest }));
                }
                clauses.extend(sels.iter().map(|s| self.any_value(s, std::slice::from_ref(text))));
                Some(any_of(clauses))
            }
        }
    }

    // ---- aggregations ----

    fn aggs(&mut self, aggs: &Value, path: &str, parents: &[String]) -> Value {
        let Some(obj) = aggs.as_object() else { return aggs.clone() };
        let mut out = Map::new();
        for (name, def) in obj {
            let here = format!("{path}.{name}");
            let mut names = parents.to_vec();
            names.push(name.clone());
            let Some(def_obj) = def.as_object() else {
                out.insert(name.clone(), def.clone());
                continue;
            };
            let saved = self.nested;
            let mut new_def = Map::new();
            for (k, v) in def_obj {
                let value = match k.as_str() {
                    "aggs" | "aggregations" | "meta" => continue,
                    "terms" => self.terms_agg(v, &here, &names),
                    "filter" => self.query(v, &format!("{here}.filter")),
                    "filters" => {
                        let mut f = v.clone();
                        match v.get("filters") {
                            Some(Value::Object(m)) => {
                                let m: Map<String, Value> = m.iter().map(|(n, q)| (n.clone(), self.query(q, &format!("{here}.filters.filters.{n}")))).collect();
                                f["filters"] = Value::Object(m);
                            }
                            Some(Value::Array(a)) => {
                                let a: Vec<Value> = a.iter().enumerate().map(|(i, q)| self.query(q, &format!("{here}.filters.filters[{i}]"))).collect();
                                f["filters"] = Value::Array(a);
                            }
                            _ => {}
                        }
                        f
                    }
                    "nested" => {
                        self.nested += 1;
                        v.clone()
                    }
                    "reverse_nested" if v.get("path").is_none() => {
                        self.nested = 0;
                        v.clone()
                    }
                    kind => {
                        if self.mentions_tags(v) {
                            self.flag(&here, format!("a `{kind}` aggregation over tag fields is not translated (only `terms` on one tag key is)"));
                        }
                        v.clone()
                    }
                };
                new_def.insert(k.clone(), value);
            }
            for k in ["aggs", "aggregations"] {
                if let Some(sub) = def_obj.get(k) {
                    new_def.insert(k.to_string(), self.aggs(sub, &format!("{here}.{k}"), &names));
                }
            }
            if let Some(meta) = def_obj.get("meta") {
                new_def.insert("meta".into(), meta.clone());
            }
            self.nested = saved;
            // Keep the definition's key order as written.
            let ordered: Map<String, Value> = def_obj.keys().filter_map(|k| new_def.get(k).map(|v| (k.clone(), v.clone()))).collect();
            out.insert(name.clone(), Value::Object(ordered));
        }
        Value::Object(out)
    }

    fn terms_agg(&mut self, spec: &Value, path: &str, names: &[String]) -> Value {
        let Some(field) = spec.get("field").and_then(Value::as_str) else {
            if self.mentions_tags(spec) {
                self.flag(path, "a `terms` aggregation with a script over tag fields is not translated");
            }
            return spec.clone();
        };
        let key = match self.tag_sel(self.classify(field, false), path, "a `terms` aggregation") {
            Some(Some(Sel::Key(k))) => k,
            _ => return spec.clone(),
        };
        let obj = spec.as_object().cloned().unwrap_or_default();
        let allowed = [
            "field",
            "size",
            "shard_size",
            "min_doc_count",
            "shard_min_doc_count",
            "order",
            "show_term_doc_count_error",
            "collect_mode",
            "execution_hint",
            "include",
            "exclude",
        ];
        if let Some(reason) = check_options(&obj, &allowed) {
            self.flag(path, reason);
            return spec.clone();
        }
        // `include`/`exclude` match the indexed terms as they are: lowercased under a
        // lowercase normalizer, which Elasticsearch does not apply to them.
        let prefix = self.indexed(&format!("{}:", escape_key(&key)));
        let lit = regex_literal(&prefix);
        let mut out = obj.clone();
        out.insert("field".into(), json!(self.kv()));
        for (k, required) in [("include", true), ("exclude", false)] {
            let value = match obj.get(k) {
                None if required => json!(format!("{lit}.*")),
                None => continue,
                Some(Value::String(re)) if self.regexp_breaks_when_lowercased(re) => {
                    self.flag(path, LOWERCASED_REGEXP);
                    return spec.clone();
                }
                Some(Value::String(re)) => json!(format!("{lit}({})", self.indexed(re))),
                Some(Value::Array(vs)) => {
                    let mut enc = Vec::new();
                    for v in vs {
                        match scalar_text(v) {
                            Ok(s) => enc.push(self.indexed(&encode_pair(&key, &s))),
                            Err(reason) => {
                                self.flag(path, reason);
                                return spec.clone();
                            }
                        }
                    }
                    json!(enc)
                }
                Some(_) => {
                    self.flag(path, format!("a partitioned `{k}` (partitions hash the whole term, which is `key:value` on the target)"));
                    return spec.clone();
                }
            };
            out.insert(k.to_string(), value);
        }
        self.bucket_keys.push(BucketKeys { aggregation: names.to_vec(), prefix });
        Value::Object(out)
    }
}

/// The field names a parsed query text's leaves search.
fn leaf_fields(node: &Node, defaults: &[String], out: &mut Vec<String>) {
    match node {
        Node::All(items) | Node::Any(items) => items.iter().for_each(|n| leaf_fields(n, defaults, out)),
        Node::Exists { field } | Node::Leaf { field: Some(field), .. } => out.push(field.clone()),
        Node::Leaf { field: None, .. } => out.extend(defaults.iter().cloned()),
    }
}

/// One clause, or a `should` of several with at least one required.
fn any_of(mut clauses: Vec<Value>) -> Value {
    if clauses.len() == 1 {
        return clauses.pop().expect("one");
    }
    json!({"bool": {"should": clauses, "minimum_should_match": 1}})
}

/// Keeps a clause's `boost` and `_name` (scores and `matched_queries`) by wrapping the
/// translated clause in a one-clause `bool` carrying them.
fn decorate(clause: Value, opts: &Map<String, Value>) -> Value {
    let carried: Map<String, Value> = opts.iter().filter(|(k, _)| matches!(k.as_str(), "boost" | "_name")).map(|(k, v)| (k.clone(), v.clone())).collect();
    if carried.is_empty() {
        return clause;
    }
    let mut b = Map::new();
    b.insert("must".into(), json!([clause]));
    b.extend(carried);
    json!({ "bool": b })
}

/// None when every option is harmless (`allowed`, `boost`, `_name`, or `case_insensitive:
/// false`), else why not.
fn check_options(opts: &Map<String, Value>, allowed: &[&str]) -> Option<String> {
    for (k, v) in opts {
        match k.as_str() {
            "boost" | "_name" => {}
            "case_insensitive" if v == &Value::Bool(false) => {}
            "case_insensitive" => return Some("`case_insensitive` would also fold the case of the key inside the target's `key:value` term".into()),
            "fuzziness" if !allowed.contains(&"fuzzy_max_expansions") => {
                return Some("`fuzziness`: fuzzy matching expands to the terms within an edit distance (of the whole `key:value` on the target)".into())
            }
            "analyzer" | "quote_analyzer" | "search_analyzer" => {
                return Some(format!("`{k}`: a custom analyser changes the terms searched; only the field's own analysis is translated"))
            }
            "minimum_should_match" if !allowed.contains(&k.as_str()) => {
                return Some("`minimum_should_match` across the clauses of a query text is not translated".into())
            }
            "missing" => return Some("`missing` buckets documents without the key, which the target's single pair field cannot tell apart".into()),
            "script" | "value_type" => return Some(format!("`{k}` is not translated")),
            _ if allowed.contains(&k.as_str()) => {}
            _ => return Some(format!("option `{k}` is not translated")),
        }
    }
    None
}

/// The keyword text Elasticsearch indexes or searches for a JSON scalar on a keyword field.
fn scalar_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Value::Number(n) => Err(format!(
            "the floating-point query value {n} is turned into text by Java's Double.toString on the legacy cluster, which does not always spell it as the document did; write it as a string"
        )),
        Value::Null => Err("a null query value".into()),
        _ => Err(format!("query value {v} is not a scalar")),
    }
}

/// `s` as a Lucene regular expression matching exactly `s`.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// True when a Lucene regular expression has `\D`, `\S` or `\W` (an escaped backslash
/// `\\` is a literal, not an escape): lowercased as text, they become their opposites.
fn has_negated_class_escape(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.next(), Some('D' | 'S' | 'W')) {
            return true;
        }
    }
    false
}

/// `s` as a Lucene wildcard pattern matching exactly `s`.
fn wildcard_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A regular expression matching the ESCAPED form of every key the field-name glob `glob`
/// matches (`*` = any run of characters, as Elasticsearch expands field patterns). An escaped
/// key is a sequence of tokens (a character other than `\` and `:`, or `\` and any
/// character), so `*` becomes any run of such tokens and can never cross the `:` separator.
fn glob_regex(glob: &str) -> String {
    let mut out = String::new();
    for c in glob.chars() {
        if c == '*' {
            out.push_str(r#"([^\\:]|\\.)*"#);
        } else {
            out.push_str(&regex_literal(&escape_key(&c.to_string())));
        }
    }
    out
}

/// True when some string matching the field glob `glob` starts with `prefix`.
fn glob_may_reach(glob: &str, prefix: &str) -> bool {
    let mut g = glob.chars();
    for p in prefix.chars() {
        match g.next() {
            None => return false,
            Some('*') => return true,
            Some(c) if c != p => return false,
            Some(_) => {}
        }
    }
    true
}
