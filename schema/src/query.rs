//! Query translation: one abstract tag query rendered for the legacy cluster and for the
//! target cluster, returning the same documents (the legacy tag map dynamically mapped as
//! keyword, e.g. by a `path_match: "actions.tags.*"` template).
//!
//! | query            | legacy                                   | target                                               |
//! |------------------|------------------------------------------|------------------------------------------------------|
//! | `TagKeyValue`    | `term` on `<legacy_path>.<key>`          | `term` on `<target>.keyToValue` = `encode_pair(k, v)` |
//! | `TagValue`       | `multi_match` on `<legacy_path>.*`       | `term` on `<target>.value`                           |
//! | `TagKeyExists`   | `exists` on `<legacy_path>.<key>`        | `prefix` `escape(k)+":"` OR `prefix` `escape(k)+"."` |
//! | `Term`           | `term` as is                             | `term` as is                                         |
//! | `Bool`           | `bool` (`minimum_should_match: 1` when `should` is non-empty) | same                            |
//!
//! Notes on exactness:
//! - `TagValue` uses `multi_match` (not `query_string`, so no query syntax to escape) over the
//!   wildcard field pattern; on keyword fields it is an exact term per field. `lenient` keeps a
//!   tag field mapped as a number from failing the whole query. The wildcard expands to one
//!   clause per mapped tag key, so on an exploded mapping it can hit the clause limit: one more
//!   reason for the migration.
//! - `TagKeyExists`: `exists` on an object field matches documents with any sub-field, so the
//!   target also matches keys under `key.`. Elasticsearch conflates a literal key `"k.x"` with
//!   `k: {x: ..}`; the target does the same, so both spellings match `TagKeyExists("k")` in
//!   both clusters. A key containing `*` is a field pattern for legacy `exists` but a literal on
//!   the target: such keys are not translated exactly.

use crate::rewrite::{encode_pair, escape_key, TagRewrite, KEY_TO_VALUE_FIELD, VALUE_FIELD};
use serde_json::{json, Value};

/// An abstract query over tags and plain fields, rendered per cluster so the old and new
/// read paths (and verify) can be compared on equal terms.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Query {
    /// Documents having tag `key` with value `value`.
    TagKeyValue {
        /// Tag key.
        key: String,
        /// Tag value text.
        value: String,
    },
    /// Documents having any tag with this value.
    TagValue(String),
    /// Documents having tag `key` (or tags nested under it).
    TagKeyExists(String),
    /// A term query on a non-tag field, identical in both clusters.
    Term {
        /// Field name.
        field: String,
        /// Exact value.
        value: Value,
    },
    /// Boolean combination.
    Bool {
        /// All must match.
        must: Vec<Query>,
        /// At least one must match (when non-empty).
        should: Vec<Query>,
        /// None may match.
        must_not: Vec<Query>,
    },
}

impl Query {
    /// Renders for the legacy cluster (tags as a dynamic object at `legacy_path`).
    pub fn to_legacy(&self, tags: &TagRewrite) -> Value {
        let field = |key: &str| format!("{}.{key}", tags.legacy_path);
        match self {
            Self::TagKeyValue { key, value } => term(&field(key), &json!(value)),
            Self::TagValue(value) => json!({"multi_match": {
                "query": value, "fields": [field("*")], "type": "best_fields", "lenient": true
            }}),
            Self::TagKeyExists(key) => json!({"exists": {"field": field(key)}}),
            Self::Term { field, value } => term(field, value),
            Self::Bool { must, should, must_not } => boolean(must, should, must_not, |q| q.to_legacy(tags)),
        }
    }

    /// Renders for the target cluster (tags as `keyToValue`/`value` keyword pairs).
    pub fn to_target(&self, tags: &TagRewrite) -> Value {
        let field = |sub: &str| format!("{}.{sub}", tags.target_field);
        match self {
            Self::TagKeyValue { key, value } => term(&field(KEY_TO_VALUE_FIELD), &json!(encode_pair(key, value))),
            Self::TagValue(value) => term(&field(VALUE_FIELD), &json!(value)),
            Self::TagKeyExists(key) => {
                let escaped = escape_key(key);
                let prefix = |p: String| json!({"prefix": {field(KEY_TO_VALUE_FIELD): {"value": p}}});
                json!({"bool": {
                    "should": [prefix(format!("{escaped}:")), prefix(format!("{escaped}."))],
                    "minimum_should_match": 1
                }})
            }
            Self::Term { field, value } => term(field, value),
            Self::Bool { must, should, must_not } => boolean(must, should, must_not, |q| q.to_target(tags)),
        }
    }
}

fn term(field: &str, value: &Value) -> Value {
    json!({"term": {field: {"value": value}}})
}

/// A `bool` with only the non-empty clauses (an empty `bool` matches everything, as the
/// abstract query does).
fn boolean(must: &[Query], should: &[Query], must_not: &[Query], render: impl Fn(&Query) -> Value) -> Value {
    let mut body = serde_json::Map::new();
    for (name, clauses) in [("must", must), ("should", should), ("must_not", must_not)] {
        if !clauses.is_empty() {
            body.insert(name.into(), clauses.iter().map(&render).collect());
        }
    }
    if !should.is_empty() {
        body.insert("minimum_should_match".into(), json!(1));
    }
    json!({"bool": body})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr() -> TagRewrite {
        TagRewrite::default()
    }

    #[test]
    fn key_value() {
        let q = Query::TagKeyValue { key: "a:b".into(), value: "v:1".into() };
        assert_eq!(q.to_legacy(&tr()), json!({"term": {"actions.tags.a:b": {"value": "v:1"}}}));
        assert_eq!(q.to_target(&tr()), json!({"term": {"tags.keyToValue": {"value": r"a\:b:v:1"}}}));
    }

    #[test]
    fn value_only() {
        let q = Query::TagValue("Dor".into());
        assert_eq!(q.to_legacy(&tr()), json!({"multi_match": {"query": "Dor", "fields": ["actions.tags.*"], "type": "best_fields", "lenient": true}}));
        assert_eq!(q.to_target(&tr()), json!({"term": {"tags.value": {"value": "Dor"}}}));
    }

    #[test]
    fn key_exists() {
        let q = Query::TagKeyExists(r"k\".into());
        assert_eq!(q.to_legacy(&tr()), json!({"exists": {"field": r"actions.tags.k\"}}));
        assert_eq!(
            q.to_target(&tr()),
            json!({"bool": {"should": [
                {"prefix": {"tags.keyToValue": {"value": r"k\\:"}}},
                {"prefix": {"tags.keyToValue": {"value": r"k\\."}}}
            ], "minimum_should_match": 1}})
        );
    }

    #[test]
    fn bool_and_term() {
        let q =
            Query::Bool { must: vec![Query::Term { field: "status".into(), value: json!(3) }], should: vec![Query::TagValue("x".into())], must_not: vec![] };
        assert_eq!(
            q.to_target(&tr()),
            json!({"bool": {
                "must": [{"term": {"status": {"value": 3}}}],
                "should": [{"term": {"tags.value": {"value": "x"}}}],
                "minimum_should_match": 1
            }})
        );
        let empty = Query::Bool { must: vec![], should: vec![], must_not: vec![Query::TagKeyExists("k".into())] };
        assert_eq!(empty.to_legacy(&tr()), json!({"bool": {"must_not": [{"exists": {"field": "actions.tags.k"}}]}}));
    }

    #[test]
    fn serde_roundtrip() {
        let q = Query::TagKeyValue { key: "k".into(), value: "v".into() };
        let text = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<Query>(&text).unwrap(), q);
    }
}
