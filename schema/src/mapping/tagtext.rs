//! Text-mapped legacy tags, and the lowercase normalizer the target's tag keywords may take.
//!
//! A legacy index whose tag fields are analysed `text` (the field report's dynamic template
//! `{"path_match": "actions.tags.*", "mapping": {"type": "text"}}`, or Elasticsearch's default
//! dynamic mapping of strings) answers a `match` for `John` with `John`, `john` and `John Smith`:
//! the value is split into lower-cased words. The target indexes every tag as one exact keyword
//! pair, so the same search finds exactly `John`. [`analysed_tag_fields`] finds those fields in
//! the legacy mapping (for `backfill create-index` to say what changes).
//!
//! [`TagNormalizer::Lowercase`] gives both target tag keywords a custom normalizer with the
//! `lowercase` filter (no `asciifolding`: the legacy `standard` analyser does not fold accents,
//! so folding would make the target match `José` for `Jose`, which the legacy never did).
//! Elasticsearch applies a keyword field's normalizer to the indexed terms and, at search time,
//! to `term`, `terms`, `prefix`, `wildcard`, `regexp` and `match` values, so case-insensitive
//! exact matches keep working; partial-word matches (`John Smith` for `John`) are lost either
//! way. Because `keyToValue` is `key:value`, the keys are lowercased too: tag keys that differ
//! only by case ([`tag_keys_differing_only_by_case`]) would become one.
//!
//! [`target_tag_normalizers`] reads which normalizers an existing target's tag keywords have
//! (what `backfill parity` needs to translate and to explain differences).

use super::{drop_type_level, index_body, targets_tags};
use crate::rewrite::{TagRewrite, KEY_TO_VALUE_FIELD, VALUE_FIELD};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The name of the analysis normalizer `create-index` adds for [`TagNormalizer::Lowercase`].
pub const TAG_NORMALIZER_NAME: &str = "cutover_tag_lowercase";

/// A normalizer for the target's two tag keywords (`backfill create-index --tag-normalizer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagNormalizer {
    /// A custom normalizer with the `lowercase` filter only: keys and values are indexed and
    /// searched lower-cased.
    Lowercase,
}

impl TagNormalizer {
    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TagNormalizer::Lowercase => "lowercase",
        }
    }

    /// The name of the analysis normalizer in the target index's settings.
    pub fn name(self) -> &'static str {
        match self {
            TagNormalizer::Lowercase => TAG_NORMALIZER_NAME,
        }
    }

    /// Its definition under `index.analysis.normalizer.<name>`.
    pub fn definition(self) -> Value {
        match self {
            TagNormalizer::Lowercase => json!({"type": "custom", "filter": ["lowercase"]}),
        }
    }
}

impl std::str::FromStr for TagNormalizer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lowercase" => Ok(TagNormalizer::Lowercase),
            _ => Err(format!("`{s}`: the only tag normalizer is `lowercase`")),
        }
    }
}

impl std::fmt::Display for TagNormalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A legacy tag field (or a dynamic template addressing the tag map) mapped as analysed text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnalysedTagField {
    /// The field (`actions.tags.name`), or the template's `path_match` (`actions.tags.*`).
    pub field: String,
    /// The dynamic template's name, when the mapping is a template's.
    pub template: Option<String>,
    /// `text`, or `string` (5.x and older, analysed).
    pub field_type: String,
    /// Its `analyzer`; None: the index's default (`standard` unless the index sets one).
    pub analyzer: Option<String>,
    /// The name of a keyword sub-field (`keyword` in the default dynamic mapping), if any:
    /// clauses on `<field>.<sub>` are exact keyword clauses.
    pub keyword_subfield: Option<String>,
}

impl std::fmt::Display for AnalysedTagField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.template {
            Some(t) => write!(f, "dynamic template `{t}` ({}: {})", self.field, self.field_type)?,
            None => write!(f, "`{}` ({})", self.field, self.field_type)?,
        }
        if let Some(a) = &self.analyzer {
            write!(f, " analyzer `{a}`")?;
        }
        if let Some(s) = &self.keyword_subfield {
            write!(f, " with keyword sub-field `{s}`")?;
        }
        Ok(())
    }
}

/// True when a mapping (a property or a template's `mapping`) is analysed text: `text`
/// (indexed), or the 5.x `string` unless `not_analyzed` / `no`. A template's mapping without a
/// type (or `{dynamic_type}`) is text when the template matches strings.
fn analysed_type(m: &Value, template_matches_strings: bool) -> Option<String> {
    let indexed = |m: &Value| !matches!(m.get("index"), Some(Value::Bool(false))) && m.get("index").and_then(Value::as_str) != Some("false");
    match m.get("type").and_then(Value::as_str) {
        Some("text") if indexed(m) => Some("text".into()),
        Some("string") => {
            let index = m.get("index").map(|v| v.as_str().map_or(v.to_string(), str::to_owned));
            (!matches!(index.as_deref(), Some("not_analyzed" | "no" | "false"))).then(|| "string".into())
        }
        None | Some("{dynamic_type}") if template_matches_strings && indexed(m) => Some("text".into()),
        _ => None,
    }
}

/// The first keyword sub-field of a mapping (`fields.<sub>` of type `keyword`, or a 5.x
/// `not_analyzed` string).
fn keyword_subfield(m: &Value) -> Option<String> {
    let fields = m.get("fields")?.as_object()?;
    fields
        .iter()
        .find(|(_, f)| match f.get("type").and_then(Value::as_str) {
            Some("keyword") => true,
            Some("string") => f.get("index").and_then(Value::as_str) == Some("not_analyzed"),
            _ => false,
        })
        .map(|(name, _)| name.clone())
}

fn analysed_field(m: &Value, field: String, template: Option<String>, template_matches_strings: bool) -> Option<AnalysedTagField> {
    let field_type = analysed_type(m, template_matches_strings)?;
    Some(AnalysedTagField {
        field,
        template,
        field_type,
        analyzer: m.get("analyzer").and_then(Value::as_str).map(str::to_owned),
        keyword_subfield: keyword_subfield(m),
    })
}

/// The legacy mapping (typeless) of the index body or whole `GET /<index>` response.
fn legacy_mappings(legacy_index: &Value) -> Map<String, Value> {
    let mappings = index_body(legacy_index).get("mappings").and_then(Value::as_object).cloned().unwrap_or_default();
    drop_type_level(mappings)
}

/// The tag map's mapped properties (`properties` of the object at `legacy_path`).
fn tag_properties(mappings: &Map<String, Value>, legacy_path: &str) -> Map<String, Value> {
    let mut node = Value::Object(mappings.clone());
    for seg in legacy_path.split('.') {
        node = node.get("properties").and_then(|p| p.get(seg)).cloned().unwrap_or(Value::Null);
    }
    node.get("properties").and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Every mapped tag field under the tag map: (key, flattened with `.` as the rewrite does;
/// its mapping).
fn tag_leaves(mappings: &Map<String, Value>, legacy_path: &str) -> Vec<(String, Value)> {
    fn walk(prefix: &str, props: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
        for (name, def) in props {
            let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            match def.get("properties").and_then(Value::as_object) {
                Some(inner) if def.get("type").is_none_or(|t| t == "object") => walk(&key, inner, out),
                _ => out.push((key, def.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk("", &tag_properties(mappings, legacy_path), &mut out);
    out
}

/// The legacy tag fields mapped as analysed text (see the module doc): the dynamic templates
/// whose `path_match` addresses the tag map, then the mapped properties under it, in mapping
/// order. Accepts the index body or the whole `GET /<index>` response (6.x type level too).
/// Empty when every tag field is keyword (or numeric...).
pub fn analysed_tag_fields(legacy_index: &Value, legacy_path: &str) -> Vec<AnalysedTagField> {
    let mappings = legacy_mappings(legacy_index);
    let mut out = Vec::new();
    if let Some(Value::Array(templates)) = mappings.get("dynamic_templates") {
        for (name, t) in templates.iter().filter_map(|n| n.as_object()?.iter().next()) {
            let patterns: Vec<&str> = match t.get("path_match") {
                Some(Value::String(p)) => vec![p.as_str()],
                Some(Value::Array(ps)) => ps.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let Some(pattern) = patterns.into_iter().find(|p| targets_tags(p, legacy_path)) else { continue };
            let strings = t.get("match_mapping_type").and_then(Value::as_str).is_some_and(|m| m == "string" || m == "*");
            if let Some(f) = t.get("mapping").and_then(|m| analysed_field(m, pattern.to_owned(), Some(name.clone()), strings)) {
                out.push(f);
            }
        }
    }
    for (key, def) in tag_leaves(&mappings, legacy_path) {
        if let Some(f) = analysed_field(&def, format!("{legacy_path}.{key}"), None, false) {
            out.push(f);
        }
    }
    out
}

/// Groups of legacy tag keys (from the legacy mapping's tag properties, flattened with `.`)
/// that differ only by case, e.g. `[["Name", "name"]]`: under [`TagNormalizer::Lowercase`]
/// their `key:value` pairs become one term (a search for key `Name` also finds key `name`).
/// Each group sorted, groups sorted; empty when there is none.
pub fn tag_keys_differing_only_by_case(legacy_index: &Value, legacy_path: &str) -> Vec<Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, _) in tag_leaves(&legacy_mappings(legacy_index), legacy_path) {
        groups.entry(lowercase_like_lucene(&key)).or_default().push(key);
    }
    groups
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g.dedup();
            g
        })
        .filter(|g| g.len() > 1)
        .collect()
}

/// Lower case as Lucene's `lowercase` filter makes it: each code point on its own
/// (`Character.toLowerCase`), so no context rules (final sigma) and one character out per
/// character in.
pub fn lowercase_like_lucene(s: &str) -> String {
    s.chars().map(|c| c.to_lowercase().next().unwrap_or(c)).collect()
}

/// The normalizers of an existing target index's two tag keywords, as `GET /<index>` reports
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetTagNormalizers {
    /// `keyToValue`'s normalizer, None without one.
    pub key_to_value: Option<String>,
    /// `value`'s normalizer, None without one.
    pub value: Option<String>,
    /// The filters of `keyToValue`'s normalizer (else `value`'s), from the index's analysis
    /// settings (`["lowercase"]` for the built-in `lowercase` normalizer).
    pub filters: Vec<String>,
}

impl TargetTagNormalizers {
    /// True when the tag keywords are searched lower-cased (a normalizer with the `lowercase`
    /// filter on `keyToValue`).
    pub fn lowercases(&self) -> bool {
        self.key_to_value.is_some() && self.filters.iter().any(|f| f == "lowercase")
    }

    /// True when either tag keyword has a normalizer.
    pub fn any(&self) -> bool {
        self.key_to_value.is_some() || self.value.is_some()
    }
}

/// Reads the normalizers of the target's tag keywords from `GET /<index>` (the index body or
/// the whole response for one index).
pub fn target_tag_normalizers(actual_index: &Value, tags: &TagRewrite) -> TargetTagNormalizers {
    let index = index_body(actual_index);
    let def = index.pointer("/mappings/properties").and_then(|p| p.get(&tags.target_field)).cloned().unwrap_or(Value::Null);
    let normalizer = |sub: &str| def.get("properties").and_then(|p| p.get(sub)).and_then(|d| d.get("normalizer")).and_then(Value::as_str).map(str::to_owned);
    let (key_to_value, value) = (normalizer(KEY_TO_VALUE_FIELD), normalizer(VALUE_FIELD));
    let settings = index.get("settings").and_then(Value::as_object).cloned().unwrap_or_default();
    let flat = super::settings::flat_index_settings(&settings);
    let filters = match key_to_value.as_ref().or(value.as_ref()) {
        None => Vec::new(),
        Some(name) => match flat.get(&format!("analysis.normalizer.{name}.filter")) {
            Some(Value::Array(fs)) => fs.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(f)) => vec![f.clone()],
            _ if name == "lowercase" => vec!["lowercase".into()],
            _ => Vec::new(),
        },
    };
    TargetTagNormalizers { key_to_value, value, filters }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field report's legacy index (7.17 `GET /<index>` after documents were indexed).
    fn seed_index() -> Value {
        json!({"seed-1": {"aliases": {}, "settings": {"index": {"number_of_shards": "1"}}, "mappings": {
            "dynamic_templates": [{"tags": {"path_match": "actions.tags.*", "mapping": {"type": "text"}}}],
            "properties": {
                "title": {"type": "text"},
                "actions": {"properties": {"tags": {"properties": {
                    "name": {"type": "text"},
                    "lname": {"type": "text"},
                    "size": {"type": "long"}
                }}}}
            }
        }}})
    }

    #[test]
    fn detects_the_seed_template_and_its_fields() {
        let found = analysed_tag_fields(&seed_index(), "actions.tags");
        let names: Vec<(&str, Option<&str>)> = found.iter().map(|f| (f.field.as_str(), f.template.as_deref())).collect();
        assert_eq!(names, [("actions.tags.*", Some("tags")), ("actions.tags.lname", None), ("actions.tags.name", None)]);
        assert!(found.iter().all(|f| f.field_type == "text" && f.keyword_subfield.is_none() && f.analyzer.is_none()));
        assert_eq!(found[0].to_string(), "dynamic template `tags` (actions.tags.*: text)");
        assert!(analysed_tag_fields(&seed_index(), "other.tags").is_empty(), "another tag path");
        // `title` is text but not a tag.
        assert!(found.iter().all(|f| f.field.starts_with("actions.tags")));
    }

    #[test]
    fn default_dynamic_mapping_has_a_keyword_subfield_and_keyword_tags_are_not_text() {
        let dynamic = json!({"mappings": {"properties": {"actions": {"properties": {"tags": {"properties": {
            "color": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
            "a": {"properties": {"b": {"type": "text", "analyzer": "folding", "fields": {"raw": {"type": "keyword"}}}}},
            "n": {"type": "long"}
        }}}}}}});
        let found = analysed_tag_fields(&dynamic, "actions.tags");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].field.as_str(), found[0].keyword_subfield.as_deref(), found[0].analyzer.as_deref()),
            ("actions.tags.a.b", Some("raw"), Some("folding"))
        );
        assert_eq!((found[1].field.as_str(), found[1].keyword_subfield.as_deref()), ("actions.tags.color", Some("keyword")));
        assert_eq!(found[1].to_string(), "`actions.tags.color` (text) with keyword sub-field `keyword`");

        let keyword = json!({"mappings": {
            "dynamic_templates": [{"kw": {"path_match": "actions.tags.*", "mapping": {"type": "keyword"}}},
                                  {"strings": {"match_mapping_type": "string", "mapping": {"type": "text"}}}],
            "properties": {"actions": {"properties": {"tags": {"properties": {"name": {"type": "keyword"}}}}}}
        }});
        assert!(analysed_tag_fields(&keyword, "actions.tags").is_empty(), "a template without path_match is not the tag map's");
        let not_indexed = json!({"mappings": {"properties": {"actions": {"properties": {"tags": {"properties": {"x": {"type": "text", "index": false}}}}}}}});
        assert!(analysed_tag_fields(&not_indexed, "actions.tags").is_empty());
    }

    #[test]
    fn detects_5x_strings_path_match_arrays_and_6x_types() {
        let legacy = json!({"mappings": {"item": {
            "dynamic_templates": [
                {"raw": {"path_match": ["meta.*", "actions.tags.id*"], "mapping": {"type": "string", "index": "not_analyzed"}}},
                {"words": {"path_match": ["meta.*", "actions.tags.*"], "match_mapping_type": "string", "mapping": {"type": "{dynamic_type}"}}}
            ],
            "properties": {"actions": {"properties": {"tags": {"properties": {
                "id": {"type": "string", "index": "not_analyzed"},
                "note": {"type": "string", "fields": {"raw": {"type": "string", "index": "not_analyzed"}}}
            }}}}}
        }}});
        let found = analysed_tag_fields(&legacy, "actions.tags");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].field.as_str(), found[0].template.as_deref(), found[0].field_type.as_str()), ("actions.tags.*", Some("words"), "text"));
        assert_eq!((found[1].field.as_str(), found[1].field_type.as_str(), found[1].keyword_subfield.as_deref()), ("actions.tags.note", "string", Some("raw")));
    }

    #[test]
    fn finds_keys_differing_only_by_case() {
        let legacy = json!({"mappings": {"properties": {"actions": {"properties": {"tags": {"properties": {
            "Name": {"type": "text"}, "name": {"type": "text"}, "NAME": {"type": "keyword"},
            "color": {"type": "text"},
            "Team": {"properties": {"Lead": {"type": "text"}}}, "team": {"properties": {"lead": {"type": "text"}}},
            "ÉTÉ": {"type": "text"}, "été": {"type": "text"}
        }}}}}}});
        assert_eq!(
            tag_keys_differing_only_by_case(&legacy, "actions.tags"),
            vec![vec!["NAME", "Name", "name"], vec!["Team.Lead", "team.lead"], vec!["ÉTÉ", "été"]]
        );
        assert!(tag_keys_differing_only_by_case(&seed_index(), "actions.tags").is_empty());
    }

    #[test]
    fn lowercases_like_lucene() {
        assert_eq!(lowercase_like_lucene("John SMITH"), "john smith");
        assert_eq!(lowercase_like_lucene("ΟΔΟΣ"), "οδοσ", "no final-sigma rule, as Character.toLowerCase");
        assert_eq!(lowercase_like_lucene("İ").chars().count(), 1, "one code point per code point");
    }

    #[test]
    fn reads_the_targets_normalizers() {
        let tags = TagRewrite::default();
        let with = |kv: Option<&str>, v: Option<&str>, settings: Value| {
            let sub = |n: Option<&str>| match n {
                Some(n) => json!({"type": "keyword", "ignore_above": 8191, "normalizer": n}),
                None => json!({"type": "keyword", "ignore_above": 8191}),
            };
            json!({"t": {"settings": settings, "mappings": {"properties": {"tags": {"properties": {"keyToValue": sub(kv), "value": sub(v)}}}}}})
        };
        let ours = json!({"index": {"analysis": {"normalizer": {TAG_NORMALIZER_NAME: TagNormalizer::Lowercase.definition()}}}});
        let n = target_tag_normalizers(&with(Some(TAG_NORMALIZER_NAME), Some(TAG_NORMALIZER_NAME), ours.clone()), &tags);
        assert_eq!(n.key_to_value.as_deref(), Some(TAG_NORMALIZER_NAME));
        assert_eq!(n.filters, ["lowercase"]);
        assert!(n.lowercases() && n.any());
        let flat = json!({"index.analysis.normalizer.f.type": "custom", "index.analysis.normalizer.f.filter": ["asciifolding"]});
        let n = target_tag_normalizers(&with(Some("f"), None, flat), &tags);
        assert!(!n.lowercases() && n.any(), "{n:?}");
        assert!(target_tag_normalizers(&with(Some("lowercase"), Some("lowercase"), json!({})), &tags).lowercases(), "the built-in normalizer");
        let none = target_tag_normalizers(&with(None, None, ours), &tags);
        assert_eq!(none, TargetTagNormalizers::default());
        assert!(!none.lowercases() && !none.any());
    }

    #[test]
    fn parses_the_option() {
        assert_eq!("lowercase".parse::<TagNormalizer>(), Ok(TagNormalizer::Lowercase));
        assert!("asciifolding".parse::<TagNormalizer>().unwrap_err().contains("lowercase"));
        assert_eq!(TagNormalizer::Lowercase.to_string(), "lowercase");
    }
}
