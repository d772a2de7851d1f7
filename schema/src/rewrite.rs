//! The legacy -> target document transform (the tag rewrite).
//!
//! Legacy documents keep their tags in a dynamic object (by default `actions.tags`), which
//! Elasticsearch maps as one field per distinct key: the cause of mapping explosions. Target
//! documents keep them as an array of `{"keyToValue": .., "value": ..}` keyword pairs under one
//! top-level field (by default `tags`). The rules, all chosen so that a query on the target
//! returns exactly the documents the equivalent legacy query returned:
//!
//! - **Pair encoding.** `keyToValue = escape(key) + ":" + value`, escaping `\` and `:` in the
//!   key only (see [`encode_pair`]; the module `tagcodec` argues injectivity and prefix safety).
//! - **Value text.** Strings as is; numbers and booleans as their JSON text (`5`, `1.5`,
//!   `true`), which is what a keyword-mapped legacy field indexed. Floats are printed by
//!   serde_json's shortest round-trip form, so an exotic source spelling such as `1e3` becomes
//!   `1000.0`; a keyword legacy field would have kept `1e3`.
//! - **null is dropped**: Elasticsearch indexes nothing for null, so no legacy query could ever
//!   match it.
//! - **Arrays are flattened** into one pair per element (arrays of arrays too, nulls dropped):
//!   a term query on a legacy multi-valued field matches any element, as does a term on the
//!   target's `keyToValue`.
//! - **Nested objects are flattened into dotted keys**: `{"a":{"b":"x"}}` under key `k` gives key
//!   `k.a.b`, the very field name Elasticsearch created (`actions.tags.k.a.b`). A literal key
//!   `"k.a.b"` gives the same key, exactly as Elasticsearch conflates the two.
//! - **Output.** The target field is always present, sorted by (key, value), deduplicated, `[]`
//!   when there are no tags, so the output bytes are a pure function of the input.
//! - **Legacy map removal.** The map at `legacy_path` is removed; parent objects on that path
//!   left empty are removed too (also ones that were empty already, e.g. `"actions": {}`, and a
//!   `null` anywhere on the path, which Elasticsearch indexes as nothing). Without this a merge
//!   that adds the first tag would not commute with the rewrite.
//! - **Errors.** A non-object (other than null) on the path is [`RewriteError::TagsNotAnObject`];
//!   a legacy top-level field already named like the target field (after removing the legacy
//!   map, so `legacy_path = "tags"` with `target_field = "tags"` works) is
//!   [`RewriteError::TargetFieldCollision`]. Every other field passes through unchanged.
//! - **Known limit.** A legacy top-level key that spells the tag path with literal dots
//!   (`{"actions.tags": {..}}`) is not recognised as tags and passes through unchanged.

mod encoded;
mod flatten;
mod legacy;
mod tagcodec;

pub use encoded::EncodedDoc;
pub(crate) use encoded::{value_at, DocField, DocRead, Key};
pub use flatten::tag_entries;
pub use legacy::remove_tag_key;
pub(crate) use legacy::tags_mut as legacy_tags_mut;
pub use tagcodec::{decode_pair, encode_pair, escape_key, TagCodecError};

use serde_json::{Map, Value};

/// Name of the pair field holding the encoded `key:value` keyword.
pub const KEY_TO_VALUE_FIELD: &str = "keyToValue";
/// Name of the pair field holding the bare value (for "any tag has value v" queries).
pub const VALUE_FIELD: &str = "value";

/// Where tags live in legacy docs and where they go in target docs; configurable because each
/// team named its dynamic map differently.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub struct TagRewrite {
    /// Dotted path of the dynamic tag object in legacy documents (default `actions.tags`).
    pub legacy_path: String,
    /// Top-level field holding the pair array in target documents (default `tags`); should be
    /// a plain name without dots.
    pub target_field: String,
}

impl Default for TagRewrite {
    fn default() -> Self {
        Self { legacy_path: "actions.tags".into(), target_field: "tags".into() }
    }
}

/// A tag entry of the target form: one (key, value) pair. Derived `Ord` sorts by key then
/// value, which is the order the target array is written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetTag {
    /// The (unescaped, possibly dotted) tag key.
    pub key: String,
    /// The value text.
    pub value: String,
}

impl TargetTag {
    /// Builds a pair; a convenience for tests and callers.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }

    /// The `{"keyToValue": .., "value": ..}` object stored in target documents.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert(KEY_TO_VALUE_FIELD.into(), Value::String(encode_pair(&self.key, &self.value)));
        obj.insert(VALUE_FIELD.into(), Value::String(self.value.clone()));
        Value::Object(obj)
    }

    /// True when removing or replacing tag `key` must drop this entry: same key, or a key
    /// nested under it (`key.x`), as Elasticsearch sees `actions.tags.key.x` as part of `key`.
    pub fn is_under(&self, key: &str) -> bool {
        key_is_under(&self.key, key)
    }
}

/// `candidate == key` or `candidate` starts with `key + "."`: the keys a removal of `key`
/// affects, in both forms.
pub(crate) fn key_is_under(candidate: &str, key: &str) -> bool {
    candidate.strip_prefix(key).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Why a document could not be rewritten; each kind is a poison document for the writers
/// (dead-letter it), never a transient failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// Something other than an object (or null) sits on the legacy tag path.
    #[error("tags at `{path}` are not an object")]
    TagsNotAnObject {
        /// The dotted path of the offending value.
        path: String,
    },
    /// The legacy document already has a top-level field named like the target field.
    #[error("legacy document already has a top-level field `{field}`, which the tag rewrite writes")]
    TargetFieldCollision {
        /// The target field name.
        field: String,
    },
    /// The target tag field of a target document is malformed.
    #[error("malformed target tag: {detail}")]
    BadTargetTag {
        /// What is wrong.
        detail: String,
    },
    /// A merge tried to set or unset a field the tag rewrite owns (the target field or the
    /// root of the legacy path); no target-form merge could mirror that exactly.
    #[error("field `{field}` is owned by the tag rewrite and cannot be set or unset by a merge")]
    ReservedField {
        /// The field name.
        field: String,
    },
    /// Part of the document is valid JSON that `serde_json` cannot hold as a value (a number
    /// beyond `f64`), found by [`TagRewrite::transcode`] where it parses.
    #[error("document cannot be read: {detail}")]
    Unreadable {
        /// The parser's message.
        detail: String,
    },
}

impl TagRewrite {
    /// Segments of `legacy_path`.
    pub(crate) fn legacy_segments(&self) -> Vec<&str> {
        self.legacy_path.split('.').collect()
    }

    /// True for top-level field names a merge may not set or unset: the target field and the
    /// root of the legacy path (and their dotted spellings), because setting them would change
    /// the tags in ways the target form cannot replay.
    pub fn is_reserved_field(&self, name: &str) -> bool {
        let root = self.legacy_segments()[0];
        [root, self.target_field.as_str()].iter().any(|r| name == *r || name.strip_prefix(r).is_some_and(|rest| rest.starts_with('.')))
    }

    /// legacy document `_source` -> target document `_source`. THE transform: pure and
    /// deterministic (see the module doc for every rule), so backfill and indexer produce the
    /// same bytes for the same legacy state.
    pub fn to_target(&self, legacy: &Map<String, Value>) -> Result<Map<String, Value>, RewriteError> {
        self.into_target(legacy.clone())
    }

    /// [`TagRewrite::to_target`] of a document the caller owns: rewritten in place, no copy
    /// (what both writers do with every document they decode or scan).
    pub fn into_target(&self, legacy: Map<String, Value>) -> Result<Map<String, Value>, RewriteError> {
        let mut out = legacy;
        let map = legacy::take_tags(&mut out, &self.legacy_segments())?;
        if out.contains_key(&self.target_field) {
            return Err(RewriteError::TargetFieldCollision { field: self.target_field.clone() });
        }
        let mut tags = Vec::new();
        for (key, value) in map.iter().flatten() {
            tags.extend(tag_entries(value, key)?);
        }
        self.set_target_tags(&mut out, tags);
        Ok(out)
    }

    /// Reads the tags of a TARGET document back as sorted, deduplicated (key, value) pairs by
    /// decoding `keyToValue`; an absent field means no tags. Errors on anything
    /// [`TagRewrite::to_target`] would not have written.
    pub fn target_tags(&self, target: &Map<String, Value>) -> Result<Vec<TargetTag>, RewriteError> {
        let bad = |detail: String| RewriteError::BadTargetTag { detail };
        let entries = match target.get(&self.target_field) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(entries)) => entries,
            Some(_) => return Err(bad(format!("`{}` is not an array", self.target_field))),
        };
        let mut tags = entries.iter().map(|e| read_entry(e).map_err(bad)).collect::<Result<Vec<_>, _>>()?;
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Writes sorted, deduplicated tags into a target document, replacing the field. An empty
    /// list writes `[]`: the field is always present so the output is deterministic.
    pub fn set_target_tags(&self, target: &mut Map<String, Value>, mut tags: Vec<TargetTag>) {
        tags.sort();
        tags.dedup();
        let array = tags.iter().map(TargetTag::to_json).collect();
        target.insert(self.target_field.clone(), Value::Array(array));
    }
}

/// Decodes one `{"keyToValue": .., "value": ..}` entry, checking both halves agree.
fn read_entry(entry: &Value) -> Result<TargetTag, String> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    let (Some(kv), Some(value)) = (field(KEY_TO_VALUE_FIELD), field(VALUE_FIELD)) else {
        return Err(format!("entry {entry} lacks string `{KEY_TO_VALUE_FIELD}` and `{VALUE_FIELD}`"));
    };
    let (key, decoded) = decode_pair(kv).map_err(|e| format!("`{kv}`: {e}"))?;
    if decoded != value {
        return Err(format!("`{kv}` disagrees with value `{value}`"));
    }
    Ok(TargetTag { key, value: decoded })
}

#[cfg(test)]
pub(crate) mod tests;
