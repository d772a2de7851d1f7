//! Mappings of indices created by Elasticsearch 2.x (and 5.x indices created on 2.x): their
//! field types and parameters, made acceptable to a 6.8, 7.x, 8.x, 9.x or OpenSearch 2/3
//! target.
//!
//! `GET /<index>` on 2.x serializes every field from its mapper, so a body holds the canonical
//! spellings (`"index": "not_analyzed"`, `"norms": {"enabled": false}`, `"store": true`); the
//! lenient spellings of older requests (`"store": "yes"`) are normalized too.
//!
//! - `string` becomes `text` when analyzed (the default), `keyword` when `not_analyzed`, and a
//!   keyword with `"index": false` when `no`. Each keeps only what its new type accepts: text
//!   drops `ignore_above`, `null_value` and `doc_values`; keyword drops the analyzers,
//!   `term_vector`, position gaps and `index_options` beyond `freqs`. `position_offset_gap` is
//!   `position_increment_gap`; a keyword's `fielddata.loading: eager_global_ordinals` becomes
//!   `eager_global_ordinals: true`.
//! - `multi_field` (1.x, only in bodies written by hand) becomes its default sub-field (the one
//!   named like the field; else an unindexed string, as 1.x had it) with the others as `fields`.
//! - Every field (multi-fields and dynamic template mappings included): `boost`, `index_name`,
//!   `precision_step`, `include_in_all`, `fielddata` as an object, `numeric_resolution`,
//!   `postings_format`/`doc_values_format`, the 1.x object `path` (`full`/`just_name`, never an
//!   alias field's path), the 2.x `geo_point` encodings (`lat_lon`, `geohash*`, `validate*`,
//!   `normalize*`) and the TF-IDF similarities (`default`, `classic`: 7.x refuses them, the
//!   target scores with BM25) are dropped; `norms: {enabled: x}` is `norms: x`; `index` on
//!   other types is dropped when `analyzed`/`not_analyzed` and `false` when `no`; built-in
//!   date format names in camel case (`dateOptionalTime`, deprecated by 7.x) take their snake
//!   case name, which every target knows.
//! - Dynamic templates: each `mapping` is translated like a field. A mapping of type
//!   `{dynamic_type}` (or none) under `match_mapping_type: string` is a string: `not_analyzed`
//!   makes it `keyword`, else its type stays. Under another or no `match_mapping_type`, its
//!   `index: not_analyzed` is dropped: strings it matches become `text`, not exact keywords.
//! - Root: `_timestamp`, `_ttl` (removed in 5.0, no data effect: the documents keep their
//!   source), `_index`, `_type`, `_id`, `_boost`, `_analyzer`, `_routing.path` and
//!   `_source.compress*` are dropped. `_parent` and `transform` are kept, for the target to
//!   refuse: dropping them would change the data.

use serde_json::{Map, Value};

/// Root mapping parameters of 2.x (and 1.x indices read by 2.x) that 6.8+ refuses, and `_all`
/// (6.x's catch-all field, refused by 7.x+: "Root mapping definition has unsupported
/// parameters"), whose removal leaves the documents as they are.
const DROPPED_ROOT_PARAMS: &[&str] = &["_all", "_timestamp", "_ttl", "_index", "_type", "_id", "_boost", "_analyzer"];

/// Field parameters no target accepts (see the module doc).
const DROPPED_FIELD_PARAMS: &[&str] =
    &["boost", "index_name", "precision_step", "include_in_all", "numeric_resolution", "postings_format", "doc_values_format"];

/// 2.x `geo_point` parameters: the pre-5.0 encodings, unknown to 6.8+ (`ignore_malformed`
/// replaces `validate`).
const GEO_POINT_2X_PARAMS: &[&str] = &[
    "lat_lon",
    "geohash",
    "geohash_precision",
    "geohash_prefix",
    "validate",
    "validate_lat",
    "validate_lon",
    "normalize",
    "normalize_lat",
    "normalize_lon",
    "coerce",
];

/// Parameters that only `text` takes, dropped from a string that becomes `keyword`.
const TEXT_ONLY_PARAMS: &[&str] = &[
    "analyzer",
    "search_analyzer",
    "search_quote_analyzer",
    "term_vector",
    "position_offset_gap",
    "position_increment_gap",
    "fielddata",
    "fielddata_frequency_filter",
    "index_prefixes",
    "index_phrases",
];

/// Parameters that only `keyword` takes, dropped from a string that becomes `text`.
const KEYWORD_ONLY_PARAMS: &[&str] = &["ignore_above", "null_value", "doc_values", "normalizer", "split_queries_on_whitespace"];

/// Boolean parameters 2.x accepted as `yes`/`no`/`on`/`off`/`1`/`0`; 6.0+ takes `true`/`false`.
const BOOLEAN_PARAMS: &[&str] =
    &["store", "doc_values", "norms", "coerce", "ignore_malformed", "enabled", "include_in_parent", "include_in_root", "eager_global_ordinals"];

/// Translates the legacy field types and parameters of a typeless mapping in place (rules in
/// the module doc); a 6.x+ mapping is left as it is, but for `boost` and the TF-IDF
/// similarities, which newer targets refuse too.
pub(super) fn translate_legacy_types(m: &mut Map<String, Value>) {
    for p in DROPPED_ROOT_PARAMS {
        m.remove(*p);
    }
    if let Some(Value::Object(routing)) = m.get_mut("_routing") {
        routing.remove("path");
    }
    // `_field_names.enabled`: "has been deprecated and removed" on 8.x/9.x.
    if let Some(Value::Object(field_names)) = m.get_mut("_field_names") {
        field_names.remove("enabled");
        if field_names.is_empty() {
            m.remove("_field_names");
        }
    }
    if let Some(Value::Object(source)) = m.get_mut("_source") {
        source.remove("compress");
        source.remove("compress_threshold");
    }
    if let Some(Value::Array(formats)) = m.get_mut("dynamic_date_formats") {
        for f in formats.iter_mut() {
            snake_case_formats(f);
        }
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        translate_properties(props);
    }
    if let Some(Value::Array(templates)) = m.get_mut("dynamic_templates") {
        for template in templates.iter_mut().filter_map(Value::as_object_mut).flat_map(|o| o.values_mut()) {
            let strings = template.get("match_mapping_type").and_then(Value::as_str) == Some("string");
            if let Some(mapping) = template.get_mut("mapping") {
                translate_template_mapping(mapping, strings);
            }
        }
    }
}

fn translate_properties(props: &mut Map<String, Value>) {
    for (name, def) in props.iter_mut() {
        translate_field(name, def);
    }
}

/// One field's mapping (a property, a multi-field or a template's mapping), recursively.
fn translate_field(name: &str, def: &mut Value) {
    let Some(field) = def.as_object_mut() else { return };
    if field.get("type").and_then(Value::as_str) == Some("multi_field") {
        *field = from_multi_field(name, std::mem::take(field));
    }
    let ty = field.get("type").and_then(Value::as_str).map(str::to_owned);
    match ty.as_deref() {
        Some("string") => string_to_text_or_keyword(field),
        _ => non_string_index(field),
    }
    // After the string rules, which read a keyword's `fielddata.loading`.
    common_params(field);
    match ty.as_deref() {
        Some("geo_point") => {
            for p in GEO_POINT_2X_PARAMS {
                field.remove(*p);
            }
        }
        Some("date") => {
            if let Some(format) = field.get_mut("format") {
                snake_case_formats(format);
            }
        }
        _ => {}
    }
    for nested in ["properties", "fields"] {
        if let Some(Value::Object(inner)) = field.get_mut(nested) {
            translate_properties(inner);
        }
    }
}

/// A dynamic template's mapping: a field, except that a mapping of type `{dynamic_type}` (or
/// none) is a string when the template matches only strings.
fn translate_template_mapping(mapping: &mut Value, matches_strings: bool) {
    let ty = mapping.get("type").and_then(Value::as_str).map(str::to_owned);
    let dynamic = matches!(ty.as_deref(), None | Some("{dynamic_type}"));
    if !(dynamic && matches_strings) {
        return translate_field("{name}", mapping);
    }
    let Some(m) = mapping.as_object_mut() else { return };
    m.insert("type".into(), Value::String("string".into()));
    translate_field("{name}", mapping);
    let Some(m) = mapping.as_object_mut() else { return };
    if m.get("type").and_then(Value::as_str) == Some("text") {
        match ty {
            Some(t) => m.insert("type".into(), Value::String(t)),
            None => m.remove("type"),
        };
    }
}

/// `{"type": "multi_field", "fields": {"<name>": main, ..others}}` -> main with `fields: others`.
fn from_multi_field(name: &str, mut multi: Map<String, Value>) -> Map<String, Value> {
    let mut fields = match multi.remove("fields") {
        Some(Value::Object(f)) => f,
        _ => Map::new(),
    };
    let mut main = match fields.remove(name) {
        Some(Value::Object(main)) => main,
        _ => Map::from_iter([("type".to_owned(), Value::String("string".into())), ("index".to_owned(), Value::String("no".into()))]),
    };
    if !fields.is_empty() {
        main.insert("fields".into(), Value::Object(fields));
    }
    main
}

/// The rules every field type shares (see the module doc).
fn common_params(field: &mut Map<String, Value>) {
    for p in DROPPED_FIELD_PARAMS {
        field.remove(*p);
    }
    for p in BOOLEAN_PARAMS {
        if let Some(v) = field.get_mut(*p) {
            if let Some(b) = v.as_str().and_then(lenient_bool) {
                *v = Value::Bool(b);
            }
        }
    }
    if let Some(Value::Object(norms)) = field.get("norms") {
        match norms.get("enabled").and_then(|e| e.as_bool().or_else(|| e.as_str().and_then(lenient_bool))) {
            Some(enabled) => field.insert("norms".into(), Value::Bool(enabled)),
            // Only `loading`: the default norms.
            None => field.remove("norms"),
        };
    }
    if field.get("fielddata").is_some_and(Value::is_object) {
        field.remove("fielddata");
    }
    if matches!(field.get("path").and_then(Value::as_str), Some("full" | "just_name")) {
        field.remove("path");
    }
    if matches!(field.get("similarity").and_then(Value::as_str), Some("default" | "classic")) {
        field.remove("similarity");
    }
}

/// How a 2.x string is indexed.
#[derive(Clone, Copy, PartialEq)]
enum StringIndex {
    Analyzed,
    NotAnalyzed,
    No,
}

fn string_index(v: Option<&Value>) -> StringIndex {
    match v {
        Some(Value::Bool(false)) => StringIndex::No,
        Some(Value::String(s)) if s == "not_analyzed" => StringIndex::NotAnalyzed,
        Some(Value::String(s)) if s == "no" || lenient_bool(s) == Some(false) => StringIndex::No,
        _ => StringIndex::Analyzed,
    }
}

/// `string` -> `text` or `keyword` with only the parameters the new type takes.
fn string_to_text_or_keyword(field: &mut Map<String, Value>) {
    let index = string_index(field.remove("index").as_ref());
    if index == StringIndex::Analyzed {
        field.insert("type".into(), Value::String("text".into()));
        for p in KEYWORD_ONLY_PARAMS {
            field.remove(*p);
        }
        if let Some(gap) = field.remove("position_offset_gap") {
            field.entry("position_increment_gap").or_insert(gap);
        }
        return;
    }
    field.insert("type".into(), Value::String("keyword".into()));
    let eager = field.get("fielddata").and_then(|f| f.get("loading")).and_then(Value::as_str) == Some("eager_global_ordinals");
    for p in TEXT_ONLY_PARAMS {
        field.remove(*p);
    }
    if eager {
        field.entry("eager_global_ordinals").or_insert(Value::Bool(true));
    }
    // A keyword has no positions: 6.8+ refuses `positions` and `offsets`.
    let indexes_positions = !matches!(field.get("index_options").and_then(Value::as_str), Some("docs" | "freqs"));
    if index == StringIndex::No || indexes_positions {
        field.remove("index_options");
    }
    if index == StringIndex::No {
        field.insert("index".into(), Value::Bool(false));
    }
}

/// `index` on a type other than 2.x `string`: `analyzed`/`not_analyzed` (or another true) is
/// the default, dropped; `no` (or another false) is `false`.
fn non_string_index(field: &mut Map<String, Value>) {
    let Some(Value::String(s)) = field.get("index") else { return };
    let indexed = match s.as_str() {
        "analyzed" | "not_analyzed" => true,
        other => match lenient_bool(other) {
            Some(indexed) => indexed,
            None => return,
        },
    };
    if indexed {
        field.remove("index");
    } else {
        field.insert("index".into(), Value::Bool(false));
    }
}

/// A boolean as 2.x read one; `true`/`false` too.
fn lenient_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The built-in date format names (snake case, without `strict_`) that 2.x also spelled in
/// camel case.
const BUILT_IN_DATE_FORMATS: &[&str] = &[
    "date_optional_time",
    "basic_date",
    "basic_date_time",
    "basic_date_time_no_millis",
    "basic_ordinal_date",
    "basic_ordinal_date_time",
    "basic_ordinal_date_time_no_millis",
    "basic_time",
    "basic_time_no_millis",
    "basic_t_time",
    "basic_t_time_no_millis",
    "basic_week_date",
    "basic_week_date_time",
    "basic_week_date_time_no_millis",
    "date_hour",
    "date_hour_minute",
    "date_hour_minute_second",
    "date_hour_minute_second_fraction",
    "date_hour_minute_second_millis",
    "date_time",
    "date_time_no_millis",
    "hour_minute",
    "hour_minute_second",
    "hour_minute_second_fraction",
    "hour_minute_second_millis",
    "ordinal_date",
    "ordinal_date_time",
    "ordinal_date_time_no_millis",
    "time_no_millis",
    "t_time",
    "t_time_no_millis",
    "week_date",
    "week_date_time",
    "week_date_time_no_millis",
    "weekyear_week",
    "weekyear_week_day",
    "year_month",
    "year_month_day",
    "epoch_millis",
    "epoch_second",
];

/// Rewrites camel case built-in names in a `format` (`a||b`) to snake case; custom patterns
/// (`yyyy-MM-dd`) are left alone.
fn snake_case_formats(format: &mut Value) {
    let Some(s) = format.as_str() else { return };
    let parts: Vec<String> = s.split("||").map(|p| snake_case_format(p).unwrap_or_else(|| p.to_owned())).collect();
    *format = Value::String(parts.join("||"));
}

fn snake_case_format(name: &str) -> Option<String> {
    if !name.chars().all(|c| c.is_ascii_alphabetic()) || !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.chars().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let snake: String = name.chars().flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] }).collect();
    BUILT_IN_DATE_FORMATS.contains(&snake.strip_prefix("strict_").unwrap_or(&snake)).then_some(snake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn translated(v: Value) -> Value {
        let mut m = v.as_object().unwrap().clone();
        translate_legacy_types(&mut m);
        Value::Object(m)
    }

    fn field(def: Value) -> Value {
        translated(json!({"properties": {"f": def}}))["properties"]["f"].clone()
    }

    #[test]
    fn strings_become_text_or_keyword() {
        assert_eq!(field(json!({"type": "string"})), json!({"type": "text"}));
        assert_eq!(field(json!({"type": "string", "index": "analyzed"})), json!({"type": "text"}));
        assert_eq!(field(json!({"type": "string", "index": "not_analyzed"})), json!({"type": "keyword"}));
        assert_eq!(field(json!({"type": "string", "index": "no"})), json!({"type": "keyword", "index": false}));
    }

    #[test]
    fn analyzed_string_keeps_text_parameters_only() {
        let legacy = json!({"type": "string", "analyzer": "folding", "search_analyzer": "standard", "ignore_above": 256,
            "null_value": "n/a", "doc_values": false, "copy_to": ["all_text"], "store": true, "boost": 2.0, "index_name": "t",
            "norms": {"enabled": false}, "fielddata": {"format": "paged_bytes", "loading": "lazy"}, "position_offset_gap": 100,
            "term_vector": "with_positions_offsets", "index_options": "offsets", "include_in_all": false});
        assert_eq!(
            field(legacy),
            json!({"type": "text", "analyzer": "folding", "search_analyzer": "standard", "copy_to": ["all_text"], "store": true,
                "norms": false, "position_increment_gap": 100, "term_vector": "with_positions_offsets", "index_options": "offsets"})
        );
    }

    #[test]
    fn not_analyzed_string_keeps_keyword_parameters_only() {
        let legacy = json!({"type": "string", "index": "not_analyzed", "analyzer": "folding", "ignore_above": 256,
            "null_value": "n/a", "doc_values": true, "copy_to": "other", "store": "yes", "boost": 1.5, "norms": {"enabled": true, "loading": "lazy"},
            "fielddata": {"loading": "eager_global_ordinals"}, "index_options": "docs", "term_vector": "no", "position_offset_gap": 100});
        assert_eq!(
            field(legacy),
            json!({"type": "keyword", "ignore_above": 256, "null_value": "n/a", "doc_values": true, "copy_to": "other", "store": true,
                "norms": true, "eager_global_ordinals": true, "index_options": "docs"})
        );
        // Positions are refused on a keyword; an unindexed one takes no index options.
        assert_eq!(field(json!({"type": "string", "index": "not_analyzed", "index_options": "positions"})), json!({"type": "keyword"}));
        assert_eq!(
            field(json!({"type": "string", "index": "no", "index_options": "docs", "norms": {"loading": "eager"}})),
            json!({"type": "keyword", "index": false})
        );
    }

    #[test]
    fn multi_fields_are_translated_recursively() {
        let legacy = json!({"type": "string", "analyzer": "english", "fields": {
            "raw": {"type": "string", "index": "not_analyzed", "ignore_above": 256},
            "std": {"type": "string", "analyzer": "standard", "fields": {"exact": {"type": "string", "index": "no"}}},
            "len": {"type": "token_count", "analyzer": "standard", "precision_step": 8, "index": "not_analyzed"}
        }});
        assert_eq!(
            field(legacy),
            json!({"type": "text", "analyzer": "english", "fields": {
                "raw": {"type": "keyword", "ignore_above": 256},
                "std": {"type": "text", "analyzer": "standard", "fields": {"exact": {"type": "keyword", "index": false}}},
                "len": {"type": "token_count", "analyzer": "standard"}
            }})
        );
    }

    #[test]
    fn multi_field_type_becomes_its_default_sub_field() {
        let legacy = json!({"properties": {"name": {"type": "multi_field", "path": "just_name", "fields": {
            "name": {"type": "string", "index_name": "name"},
            "untouched": {"type": "string", "index": "not_analyzed"}
        }}, "other": {"type": "multi_field", "fields": {"raw": {"type": "string", "index": "not_analyzed"}}}}});
        assert_eq!(
            translated(legacy)["properties"],
            json!({
                "name": {"type": "text", "fields": {"untouched": {"type": "keyword"}}},
                "other": {"type": "keyword", "index": false, "fields": {"raw": {"type": "keyword"}}}
            })
        );
    }

    #[test]
    fn other_types_lose_2x_parameters() {
        assert_eq!(
            field(json!({"type": "long", "index": "not_analyzed", "precision_step": 16, "doc_values": "no"})),
            json!({"type": "long", "doc_values": false})
        );
        assert_eq!(field(json!({"type": "integer", "index": "no", "include_in_all": false})), json!({"type": "integer", "index": false}));
        assert_eq!(field(json!({"type": "boolean", "index": "analyzed"})), json!({"type": "boolean"}));
        assert_eq!(
            field(json!({"type": "date", "format": "dateOptionalTime||epoch_millis||yyyy-MM-dd", "numeric_resolution": "seconds", "precision_step": 16})),
            json!({"type": "date", "format": "date_optional_time||epoch_millis||yyyy-MM-dd"})
        );
        assert_eq!(field(json!({"type": "date", "format": "strictDateOptionalTime"})), json!({"type": "date", "format": "strict_date_optional_time"}));
        assert_eq!(field(json!({"type": "date", "format": "basicTTime||HH||yyyyMMdd"})), json!({"type": "date", "format": "basic_t_time||HH||yyyyMMdd"}));
        assert_eq!(
            field(
                json!({"type": "geo_point", "lat_lon": true, "geohash": true, "geohash_prefix": true, "geohash_precision": 12, "validate": false, "ignore_malformed": true})
            ),
            json!({"type": "geo_point", "ignore_malformed": true})
        );
        assert_eq!(field(json!({"type": "text", "similarity": "classic"})), json!({"type": "text"}));
        assert_eq!(field(json!({"type": "text", "similarity": "my_bm25"})), json!({"type": "text", "similarity": "my_bm25"}));
        assert_eq!(field(json!({"type": "alias", "path": "a.b"})), json!({"type": "alias", "path": "a.b"}), "an alias's path is its target");
        assert_eq!(
            field(json!({"type": "object", "path": "full", "properties": {"s": {"type": "string", "index": "not_analyzed"}}})),
            json!({"type": "object", "properties": {"s": {"type": "keyword"}}})
        );
        assert_eq!(field(json!({"type": "nested", "include_in_parent": "true"})), json!({"type": "nested", "include_in_parent": true}));
    }

    #[test]
    fn modern_mappings_are_unchanged() {
        let modern = json!({
            "_source": {"excludes": ["blob"]},
            "_routing": {"required": true},
            "dynamic": "strict",
            "dynamic_date_formats": ["strict_date_optional_time", "yyyy/MM/dd"],
            "dynamic_templates": [{"s": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 256}}},
                                  {"d": {"match": "*_n", "mapping": {"type": "{dynamic_type}", "index": false}}}],
            "properties": {
                "title": {"type": "text", "analyzer": "folding", "norms": false, "fielddata": true, "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
                "n": {"type": "long", "index": false, "doc_values": true},
                "at": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
                "loc": {"type": "geo_point", "ignore_malformed": true},
                "a": {"type": "alias", "path": "title"},
                "o": {"type": "nested", "properties": {"k": {"type": "keyword", "index_options": "freqs", "eager_global_ordinals": true}}}
            }
        });
        assert_eq!(translated(modern.clone()), modern);
    }

    #[test]
    fn root_parameters_of_2x_are_dropped_and_the_others_kept() {
        let legacy = json!({
            "_timestamp": {"enabled": true, "format": "dateOptionalTime"},
            "_ttl": {"enabled": true, "default": "30d"},
            "_index": {"enabled": true},
            "_type": {"index": "no"},
            "_id": {"path": "doc_id"},
            "_boost": {"name": "b"},
            "_analyzer": {"path": "lang"},
            "_routing": {"required": true, "path": "user_id"},
            "_source": {"enabled": true, "compress": true, "excludes": ["blob"]},
            "_parent": {"type": "user"},
            "_meta": {"owner": "search"},
            "date_detection": false,
            "numeric_detection": true,
            "dynamic_date_formats": ["dateOptionalTime", "yyyy/MM/dd HH:mm:ss Z||yyyy/MM/dd Z"],
            "properties": {}
        });
        assert_eq!(
            translated(legacy),
            json!({
                "_routing": {"required": true},
                "_source": {"enabled": true, "excludes": ["blob"]},
                "_parent": {"type": "user"},
                "_meta": {"owner": "search"},
                "date_detection": false,
                "numeric_detection": true,
                "dynamic_date_formats": ["date_optional_time", "yyyy/MM/dd HH:mm:ss Z||yyyy/MM/dd Z"],
                "properties": {}
            })
        );
    }

    #[test]
    fn dynamic_template_mappings_are_translated() {
        let legacy = json!({"dynamic_templates": [
            {"kw": {"path_match": "meta.*", "mapping": {"type": "string", "index": "not_analyzed", "ignore_above": 256}}},
            {"strings": {"match_mapping_type": "string", "mapping": {"type": "string", "fields": {"raw": {"type": "string", "index": "not_analyzed", "ignore_above": 256}}}}},
            {"exact": {"match": "*_id", "match_mapping_type": "string", "mapping": {"type": "{dynamic_type}", "index": "not_analyzed", "doc_values": true}}},
            {"analyzed": {"match": "*_txt", "match_mapping_type": "string", "mapping": {"index": "analyzed", "analyzer": "english", "ignore_above": 10}}},
            {"any": {"match": "*", "mapping": {"type": "{dynamic_type}", "index": "not_analyzed", "include_in_all": false}}},
            {"unindexed": {"match": "*_blob", "mapping": {"index": "no", "norms": {"enabled": false}}}},
            {"numbers": {"match_mapping_type": "long", "mapping": {"type": "integer", "precision_step": 8}}}
        ]});
        assert_eq!(
            translated(legacy),
            json!({"dynamic_templates": [
                {"kw": {"path_match": "meta.*", "mapping": {"type": "keyword", "ignore_above": 256}}},
                {"strings": {"match_mapping_type": "string", "mapping": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}}}},
                {"exact": {"match": "*_id", "match_mapping_type": "string", "mapping": {"type": "keyword", "doc_values": true}}},
                {"analyzed": {"match": "*_txt", "match_mapping_type": "string", "mapping": {"analyzer": "english"}}},
                {"any": {"match": "*", "mapping": {"type": "{dynamic_type}"}}},
                {"unindexed": {"match": "*_blob", "mapping": {"index": false, "norms": false}}},
                {"numbers": {"match_mapping_type": "long", "mapping": {"type": "integer"}}}
            ]})
        );
    }

    #[test]
    fn camel_case_detection_is_narrow() {
        assert_eq!(snake_case_format("dateOptionalTime").as_deref(), Some("date_optional_time"));
        assert_eq!(snake_case_format("weekyearWeekDay").as_deref(), Some("weekyear_week_day"));
        assert_eq!(snake_case_format("tTime").as_deref(), Some("t_time"));
        assert_eq!(snake_case_format("date_optional_time"), None, "already snake case");
        assert_eq!(snake_case_format("date"), None);
        assert_eq!(snake_case_format("yyyyMMdd"), None);
        assert_eq!(snake_case_format("dd-MM-yyyy"), None);
        assert_eq!(snake_case_format("dateOptionalTimes"), None, "not a built-in name");
    }
}
