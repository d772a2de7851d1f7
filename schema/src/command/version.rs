//! Where versions come from, and the strict parsing of version values.
//!
//! Versions are Elasticsearch external versions: integers in `0..=i64::MAX`. Parsing is strict
//! on purpose (no strings of digits in JSON, no whitespace or `+` in headers): a version read
//! two different ways by two writers would break convergence silently.

use super::DecodeErrorKind;
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// Where a command's version comes from. Refusing to run without one is the caller's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSource {
    /// A dotted path in the JSON body, e.g. `version` or `meta.seq`.
    Field(String),
    /// A Kafka header holding ASCII decimal text (the last header of that name wins).
    Header(String),
    /// The record's offset; valid only when the topic is keyed by document id.
    Offset,
}

/// Where a legacy document's version comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyVersionSource {
    /// A dotted path in the hit's `_source`.
    Field(String),
    /// The hit's `_version`, when the legacy indexer used external versioning.
    Version,
}

/// A version source spec that could not be parsed (bad CLI flag or config value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version source `{input}`: expected {expected}")]
pub struct SourceParseError {
    /// The rejected text.
    pub input: String,
    /// The accepted forms.
    pub expected: &'static str,
}

/// Splits `kind:name`, rejecting an empty name.
fn named<'a>(s: &'a str, kind: &str) -> Option<&'a str> {
    s.strip_prefix(kind).and_then(|r| r.strip_prefix(':')).filter(|n| !n.is_empty())
}

impl FromStr for VersionSource {
    type Err = SourceParseError;

    /// Parses `field:<path>`, `header:<name>` or `offset`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "offset" {
            Ok(Self::Offset)
        } else if let Some(path) = named(s, "field") {
            Ok(Self::Field(path.to_owned()))
        } else if let Some(name) = named(s, "header") {
            Ok(Self::Header(name.to_owned()))
        } else {
            Err(SourceParseError { input: s.to_owned(), expected: "field:<path>, header:<name> or offset" })
        }
    }
}

impl fmt::Display for VersionSource {
    /// The same text [`FromStr`] accepts, for logs and config echoes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(path) => write!(f, "field:{path}"),
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Offset => f.write_str("offset"),
        }
    }
}

impl FromStr for LegacyVersionSource {
    type Err = SourceParseError;

    /// Parses `field:<path>` or `_version`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "_version" {
            Ok(Self::Version)
        } else if let Some(path) = named(s, "field") {
            Ok(Self::Field(path.to_owned()))
        } else {
            Err(SourceParseError { input: s.to_owned(), expected: "field:<path> or _version" })
        }
    }
}

impl fmt::Display for LegacyVersionSource {
    /// The same text [`FromStr`] accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(path) => write!(f, "field:{path}"),
            Self::Version => f.write_str("_version"),
        }
    }
}

/// Why a legacy hit has no usable version; `kind` is one of the version kinds of
/// [`DecodeErrorKind`] so both writers report version problems alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct LegacyVersionError {
    /// `MissingVersion`, `NegativeVersion` or `NonIntegerVersion`.
    pub kind: DecodeErrorKind,
    /// Human-readable detail.
    pub detail: String,
}

/// Version of a legacy hit (`hit` is a search hit object with `_source` and optionally
/// `_version`), parsed as strictly as command versions so the backfill and the indexer
/// compare like with like.
pub fn legacy_version(hit: &Value, src: &LegacyVersionSource) -> Result<u64, LegacyVersionError> {
    let (value, what) = match src {
        LegacyVersionSource::Field(path) => {
            let source = hit.get("_source").and_then(Value::as_object);
            (source.and_then(|s| lookup(s, path)), path.as_str())
        }
        LegacyVersionSource::Version => (hit.get("_version"), "_version"),
    };
    json_version(value, what).map_err(|(kind, detail)| LegacyVersionError { kind, detail })
}

/// [`legacy_version`] of a hit read with its `_source` as text (the backfill's scan): the
/// same rules; only the objects on a `field:` path are opened.
pub fn legacy_version_of_text(
    version: Option<&Value>,
    source: Option<&serde_json::value::RawValue>,
    src: &LegacyVersionSource,
) -> Result<u64, LegacyVersionError> {
    let found;
    let (value, what) = match src {
        LegacyVersionSource::Field(path) => {
            found = source.and_then(|s| crate::rewrite::value_at(s, path));
            (found.as_ref(), path.as_str())
        }
        LegacyVersionSource::Version => (version, "_version"),
    };
    json_version(value, what).map_err(|(kind, detail)| LegacyVersionError { kind, detail })
}

/// Writes `version` at the dotted `path` of a LEGACY-form document, as a legacy indexer that
/// keeps the command's version in the document (`--legacy-version field:<path>`) does: set
/// after the command's own changes, replacing whatever was there; missing or non-object
/// parents on the path become objects. Also valid on the TARGET form for every path
/// [`version_field_problem`] accepts: `to_target(store(d)) == store(to_target(d))`.
pub fn store_version(doc: &mut Map<String, Value>, path: &str, version: u64) {
    let mut segs = path.split('.').peekable();
    let mut map = doc;
    while let Some(seg) = segs.next() {
        if segs.peek().is_none() {
            map.insert(seg.to_owned(), Value::from(version));
            return;
        }
        let slot = map.entry(seg.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        map = slot.as_object_mut().expect("made an object");
    }
}

/// Why a legacy version field at `path` cannot be kept in the documents the writers produce:
/// an empty segment, or a path the tag rewrite owns (the legacy tag path's root, or the target
/// tag field), where storing it would not commute with the rewrite.
pub fn version_field_problem(path: &str, tags: &crate::rewrite::TagRewrite) -> Option<String> {
    if path.split('.').any(str::is_empty) {
        return Some(format!("version field `{path}` has an empty path segment"));
    }
    tags.is_reserved_field(path)
        .then(|| format!("version field `{path}` lies under `{}` or `{}`, which the tag rewrite owns", tags.legacy_segments()[0], tags.target_field))
}

/// The value at a dotted path inside a JSON object.
pub(crate) fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segs = path.split('.');
    let first = map.get(segs.next()?)?;
    segs.try_fold(first, |v, seg| v.get(seg))
}

/// A JSON version: an integer in `0..=i64::MAX`; null or absent is missing.
pub(crate) fn json_version(value: Option<&Value>, what: &str) -> Result<u64, (DecodeErrorKind, String)> {
    use DecodeErrorKind::*;
    match value {
        None | Some(Value::Null) => Err((MissingVersion, format!("no version at `{what}`"))),
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v < 0) => Err((NegativeVersion, format!("version `{what}` is {n}"))),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) => Ok(v as u64),
            None => Err((NonIntegerVersion, format!("version `{what}` is {n}, not an integer in 0..=i64::MAX"))),
        },
        Some(other) => Err((NonIntegerVersion, format!("version `{what}` is {other}, not a JSON integer"))),
    }
}

/// A header version: ASCII decimal digits only, in `0..=i64::MAX`.
pub(crate) fn header_version(value: Option<&[u8]>, name: &str) -> Result<u64, (DecodeErrorKind, String)> {
    use DecodeErrorKind::*;
    let Some(bytes) = value else {
        return Err((MissingVersion, format!("no header `{name}`")));
    };
    let shown = String::from_utf8_lossy(bytes);
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    if bytes.first() == Some(&b'-') && digits(&bytes[1..]) {
        return Err((NegativeVersion, format!("header `{name}` is `{shown}`")));
    }
    let parsed = digits(bytes).then(|| shown.parse::<i64>().ok()).flatten();
    parsed.map(|v| v as u64).ok_or_else(|| (NonIntegerVersion, format!("header `{name}` is `{shown}`, not decimal in 0..=i64::MAX")))
}

/// A record offset as a version.
pub(crate) fn offset_version(offset: i64) -> Result<u64, (DecodeErrorKind, String)> {
    u64::try_from(offset).map_err(|_| (DecodeErrorKind::NegativeVersion, format!("offset {offset}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use DecodeErrorKind::*;

    #[test]
    fn parses_and_prints_sources() {
        for s in ["field:version", "field:meta.seq", "header:x-version", "offset"] {
            assert_eq!(s.parse::<VersionSource>().unwrap().to_string(), s);
        }
        assert_eq!("header:x-v".parse(), Ok(VersionSource::Header("x-v".into())));
        for s in ["", "field:", "header", "offsets", "version"] {
            assert!(s.parse::<VersionSource>().is_err(), "{s}");
        }
        assert_eq!("_version".parse(), Ok(LegacyVersionSource::Version));
        assert_eq!("field:v".parse(), Ok(LegacyVersionSource::Field("v".into())));
        assert!("offset".parse::<LegacyVersionSource>().is_err());
    }

    #[test]
    fn json_versions_are_strict() {
        let kind = |v: Value| json_version(Some(&v), "v").map_err(|e| e.0);
        assert_eq!(kind(json!(0)), Ok(0));
        assert_eq!(kind(json!(i64::MAX)), Ok(i64::MAX as u64));
        assert_eq!(kind(json!(i64::MAX as u64 + 1)), Err(NonIntegerVersion));
        assert_eq!(kind(json!(-1)), Err(NegativeVersion));
        assert_eq!(kind(json!(1.0)), Err(NonIntegerVersion));
        assert_eq!(kind(json!("5")), Err(NonIntegerVersion));
        assert_eq!(kind(json!(true)), Err(NonIntegerVersion));
        assert_eq!(kind(json!(null)), Err(MissingVersion));
        assert_eq!(json_version(None, "v").map_err(|e| e.0), Err(MissingVersion));
    }

    #[test]
    fn header_versions_are_strict() {
        let kind = |b: Option<&[u8]>| header_version(b, "h").map_err(|e| e.0);
        assert_eq!(kind(Some(b"42")), Ok(42));
        assert_eq!(kind(Some(b"007")), Ok(7));
        assert_eq!(kind(None), Err(MissingVersion));
        assert_eq!(kind(Some(b"-3")), Err(NegativeVersion));
        for bad in [&b""[..], b"+3", b" 3", b"3.0", b"abc", b"-", b"9223372036854775808", b"\xff"] {
            assert_eq!(kind(Some(bad)), Err(NonIntegerVersion), "{bad:?}");
        }
    }

    #[test]
    fn stores_versions_at_dotted_paths() {
        let mut doc = json!({"a": 1, "meta": "x"}).as_object().unwrap().clone();
        store_version(&mut doc, "seq", 7);
        store_version(&mut doc, "meta.v", 8);
        store_version(&mut doc, "m.n.o", 9);
        assert_eq!(Value::Object(doc.clone()), json!({"a": 1, "seq": 7, "meta": {"v": 8}, "m": {"n": {"o": 9}}}));
        let hit = json!({"_source": doc});
        let src = LegacyVersionSource::Field("m.n.o".into());
        assert_eq!(legacy_version(&hit, &src), Ok(9));
    }

    #[test]
    fn version_fields_the_rewrite_owns_are_refused() {
        let tr = crate::rewrite::TagRewrite::default();
        assert_eq!(version_field_problem("seq", &tr), None);
        assert_eq!(version_field_problem("meta.seq", &tr), None);
        for bad in ["actions", "actions.seq", "tags", "tags.v", "a..b", ""] {
            assert!(version_field_problem(bad, &tr).is_some(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn storing_the_version_commutes_with_the_rewrite(
            doc in crate::rewrite::tests::arb_legacy_doc(),
            path in "[d-g]{1,2}(\\.[d-g]{1,2}){0,2}",
            v in 0u64..=i64::MAX as u64,
        ) {
            let tr = crate::rewrite::TagRewrite::default();
            proptest::prop_assume!(version_field_problem(&path, &tr).is_none());
            let Ok(mut target) = tr.to_target(&doc) else { return Ok(()) };
            let mut legacy = doc.clone();
            store_version(&mut legacy, &path, v);
            store_version(&mut target, &path, v);
            proptest::prop_assert_eq!(tr.to_target(&legacy).unwrap(), target);
            let hit = json!({"_source": legacy});
            proptest::prop_assert_eq!(legacy_version(&hit, &LegacyVersionSource::Field(path)), Ok(v));
        }
    }

    #[test]
    fn legacy_versions() {
        let hit = json!({"_version": 3, "_source": {"meta": {"seq": 9}, "bad": "1"}});
        assert_eq!(legacy_version(&hit, &LegacyVersionSource::Version), Ok(3));
        assert_eq!(legacy_version(&hit, &LegacyVersionSource::Field("meta.seq".into())), Ok(9));
        let err = legacy_version(&hit, &LegacyVersionSource::Field("bad".into())).unwrap_err();
        assert_eq!(err.kind, NonIntegerVersion);
        let err = legacy_version(&json!({"_source": {}}), &LegacyVersionSource::Version).unwrap_err();
        assert_eq!(err.kind, MissingVersion);
    }
}
