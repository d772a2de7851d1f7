//! The tag rewrite on encoded JSON: a legacy document's text in, the target document's text
//! out, without building a `serde_json::Value` tree of the whole document.
//!
//! Only the objects on the legacy tag path are opened (their fields borrowed as raw text), and
//! only the tag map itself is parsed into values; every other field is copied as the text it
//! came in. [`TagRewrite::into_target`] stays the definition of the transform: the output here
//! parses to exactly what it returns for the parsed input, and fails exactly when it does
//! (property-tested below). The bytes can differ where the JSON cannot: objects off the tag
//! path keep their source order and spacing, numbers their source spelling.

use super::tagcodec::push_pair;
use super::{tag_entries, RewriteError, TagRewrite, KEY_TO_VALUE_FIELD, VALUE_FIELD};
use crate::read::{ReadAs, Reader};
use serde::de::DeserializeSeed;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A target-form `_source`, encoded: one line of JSON holding an object, ready to be a bulk
/// request's source line. Made only by [`EncodedDoc::from_map`] and [`TagRewrite::transcode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedDoc(String);

impl EncodedDoc {
    /// Encodes a document (compact JSON, keys sorted).
    pub fn from_map(doc: &Map<String, Value>) -> Self {
        Self(serde_json::to_string(doc).expect("a JSON map always serializes"))
    }

    /// The JSON text (one line).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: the text is an object, at least `{}`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// [`crate::store_version`] on the encoded form (`--legacy-version field:<path>`): the
    /// document with `version` at the dotted `path`, missing or non-object parents made
    /// objects; only the objects on the path are opened.
    pub fn with_version(&self, path: &str, version: u64) -> Result<Self, RewriteError> {
        let mut doc = Fields::parse(&self.0, None)?;
        let segs: Vec<&str> = path.split('.').collect();
        set_version(&mut doc, &segs, version)?;
        Ok(Self(encode_object(&doc, self.len() + path.len() + 24)))
    }

    /// The document as a map. Fails only for text `serde_json` cannot hold as a value (a number
    /// out of `f64` range inside a field copied as text).
    pub fn to_map(&self) -> Result<Map<String, Value>, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl TagRewrite {
    /// [`TagRewrite::into_target`] on encoded JSON: `legacy` must be an object. What both
    /// writers use on the hot path (see the module doc for how it relates to `into_target`).
    pub fn transcode(&self, legacy: &RawValue) -> Result<EncodedDoc, RewriteError> {
        self.transcode_fields(Fields::parse(legacy.get(), Some(&self.legacy_path))?)
    }

    /// [`TagRewrite::transcode`] of a document already read as fields (by a reader that met it
    /// inside a larger text: the command decoder reads the document once).
    pub(crate) fn transcode_doc(&self, legacy: LegacyDoc<'_>) -> Result<EncodedDoc, RewriteError> {
        self.transcode_fields(legacy.0)
    }

    fn transcode_fields<'a>(&'a self, mut doc: Fields<'a>) -> Result<EncodedDoc, RewriteError> {
        let len = doc.text_len();
        let tags = take_tags(&mut doc, &self.legacy_path, 0)?;
        if doc.get(&self.target_field).is_some() {
            return Err(RewriteError::TargetFieldCollision { field: self.target_field.clone() });
        }
        let mut pairs = Vec::new();
        if let Some(tags) = tags {
            flatten_tags(tags, &mut pairs)?;
        }
        pairs.sort_unstable();
        pairs.dedup();
        let capacity = len + 64 * pairs.len();
        doc.insert(Key(Cow::Borrowed(&self.target_field)), Field::Tags(pairs));
        // The whole document is written once, into one buffer: the opened objects on the tag path
        // and the tag array are written in place, not encoded apart and copied in.
        Ok(EncodedDoc(encode_object(&doc, capacity)))
    }
}

/// A body field read where a legacy document is expected: the document's fields (an object),
/// or what else was there (null included), as a value.
pub(crate) enum DocField<'a> {
    Object(LegacyDoc<'a>),
    Other(Value),
}

/// A legacy document's top-level fields, read from its text for [`TagRewrite::transcode_doc`].
pub(crate) struct LegacyDoc<'a>(Fields<'a>);

/// Reads a value where an object is expected (`next_value_seed(Reader(DocRead(path)))`): an
/// object as its fields, opening the objects on the tag path `path` above the tag map as it goes
/// (so the rewrite does not scan them again); anything else as a value. It reads body fields
/// holding a legacy document, whole documents ([`Fields::parse`]), and the objects on the path.
pub(crate) struct DocRead<'p>(pub(crate) &'p str);

impl<'de> ReadAs<'de> for DocRead<'_> {
    type Out = DocField<'de>;
    const EXPECTING: &'static str = "a document";
    fn other(self, value: Value) -> DocField<'de> {
        DocField::Other(value)
    }
    fn object<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<DocField<'de>, A::Error> {
        Ok(DocField::Object(LegacyDoc(Fields::from_list(read_fields(map, Some(self.0))?))))
    }
}

/// The value at a dotted `path` of a JSON object's text (what `Value::get` segment by segment
/// finds): None when a segment is missing or something on the path is not an object. Only
/// the objects on the path are opened.
pub(crate) fn value_at(object: &RawValue, path: &str) -> Option<Value> {
    let mut text = object;
    for seg in path.split('.') {
        if !text.get().starts_with('{') {
            return None;
        }
        match Fields::parse(text.get(), None).ok()?.remove(seg)? {
            Field::Raw(inner) => text = inner,
            _ => unreachable!("Fields::parse without a tag path reads text"),
        }
    }
    serde_json::from_str(text.get()).ok()
}

/// An object key, borrowed from the source text unless it had escapes.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

/// A field's value: the source text, or text made here; on the tag path above the tag map, what
/// the first read made of it.
enum Field<'a> {
    Raw(&'a RawValue),
    Encoded(String),
    /// An object read as fields: on the tag path above the tag map, or a parent of the version
    /// field ([`EncodedDoc::with_version`]).
    Opened(Fields<'a>),
    /// Anything else on the tag path above the tag map (null, or what the rewrite refuses).
    Value(Value),
    /// The target tag array, sorted and deduplicated ([`write_pairs`]).
    Tags(Vec<Pair<'a>>),
}

/// An object's fields in key order (the order `serde_json`'s map writes; a repeated key keeps
/// its last value, as when parsing into a map). A sorted vector: objects here have few fields.
struct Fields<'a>(Vec<(Key<'a>, Field<'a>)>);

impl<'a> Fields<'a> {
    /// The fields of an object's text; with a tag path, the objects on it above the tag map
    /// opened (see [`DocRead`]).
    fn parse(object: &'a str, tag_path: Option<&str>) -> Result<Self, RewriteError> {
        let mut de = serde_json::Deserializer::from_str(object);
        let read = Reader(DocRead(tag_path.unwrap_or(""))).deserialize(&mut de).and_then(|doc| de.end().map(|()| doc));
        match read.map_err(unreadable)? {
            DocField::Object(LegacyDoc(fields)) => Ok(fields),
            DocField::Other(_) => Err(RewriteError::Unreadable { detail: "not a JSON object".to_owned() }),
        }
    }

    /// Fields read in source order, put in key order.
    fn from_list(mut list: Vec<(Key<'a>, Field<'a>)>) -> Self {
        list.sort_by(|a, b| a.0.cmp(&b.0)); // stable: repeated keys stay in source order
        list.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier); // the last one wins
            }
            same
        });
        Self(list)
    }

    /// About the length of the object's text (a capacity hint).
    fn text_len(&self) -> usize {
        let value_len = |v: &Field<'_>| match v {
            Field::Raw(raw) => raw.get().len(),
            Field::Encoded(text) => text.len(),
            Field::Opened(inner) => inner.text_len(),
            Field::Value(_) => 8,
            Field::Tags(pairs) => 2 + 64 * pairs.len(),
        };
        2 + self.0.iter().map(|(k, v)| k.0.len() + 4 + value_len(v)).sum::<usize>()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.0.as_ref().cmp(key))
    }

    fn get(&self, key: &str) -> Option<&Field<'a>> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    fn remove(&mut self, key: &str) -> Option<Field<'a>> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    fn insert(&mut self, key: Key<'a>, field: Field<'a>) {
        match self.find(&key.0) {
            Ok(i) => self.0[i].1 = field,
            Err(i) => self.0.insert(i, (key, field)),
        }
    }
}

/// An object's keys and raw values, in source order; the object on the tag path `tag_path`
/// below this one (if any, and not the tag map itself) read as fields instead ([`DocRead`]).
fn read_fields<'de, A: serde::de::MapAccess<'de>>(mut map: A, tag_path: Option<&str>) -> Result<Vec<(Key<'de>, Field<'de>)>, A::Error> {
    let open = tag_path.and_then(|path| path.split_once('.'));
    let mut list = Vec::with_capacity(8);
    while let Some(key) = map.next_key::<Key<'de>>()? {
        let value = match open {
            Some((seg, rest)) if key.0 == seg => match map.next_value_seed(Reader(DocRead(rest)))? {
                DocField::Object(LegacyDoc(fields)) => Field::Opened(fields),
                DocField::Other(value) => Field::Value(value),
            },
            _ => Field::Raw(map.next_value()?),
        };
        list.push((key, value));
    }
    Ok(list)
}

fn unreadable(e: serde_json::Error) -> RewriteError {
    RewriteError::Unreadable { detail: e.to_string() }
}

/// `legacy::take_at` on encoded objects: removes the tag map at `full[at..]` (the tag path
/// below `map`; None when absent or null), dropping nulls on the path and parents left empty.
fn take_tags<'a>(map: &mut Fields<'a>, full: &str, at: usize) -> Result<Option<&'a RawValue>, RewriteError> {
    let (seg, rest) = match full[at..].split_once('.') {
        Some((seg, rest)) => (seg, Some(rest)),
        None => (&full[at..], None),
    };
    let Ok(i) = map.find(seg) else { return Ok(None) };
    let mut inner = match std::mem::replace(&mut map.0[i].1, Field::Value(Value::Null)) {
        Field::Raw(raw) if raw.get().starts_with('n') => {
            map.0.remove(i);
            return Ok(None);
        }
        Field::Value(Value::Null) => {
            map.0.remove(i);
            return Ok(None);
        }
        Field::Raw(raw) if raw.get().starts_with('{') => match rest {
            None => {
                map.0.remove(i);
                return Ok(Some(raw));
            }
            // Read by a reader that did not know the tag path.
            Some(rest) => Fields::parse(raw.get(), Some(rest))?,
        },
        Field::Opened(inner) if rest.is_some() => inner,
        encoded @ Field::Encoded(_) => {
            map.0[i].1 = encoded;
            return Ok(None);
        }
        _ => return Err(RewriteError::TagsNotAnObject { path: full[..at + seg.len()].to_owned() }),
    };
    let taken = take_tags(&mut inner, full, at + seg.len() + 1)?;
    if inner.0.is_empty() {
        map.0.remove(i);
    } else {
        map.0[i].1 = Field::Opened(inner);
    }
    Ok(taken)
}

fn set_version<'a>(map: &mut Fields<'a>, segs: &[&str], version: u64) -> Result<(), RewriteError> {
    let (seg, rest) = segs.split_first().expect("a path has a segment");
    let value = if rest.is_empty() {
        Field::Encoded(version.to_string())
    } else {
        let mut inner = match map.get(seg) {
            Some(&Field::Raw(raw)) if raw.get().starts_with('{') => Fields::parse(raw.get(), None)?,
            _ => Fields(Vec::new()),
        };
        set_version(&mut inner, rest, version)?;
        Field::Opened(inner) // written in place, like the opened objects on the tag path
    };
    map.insert(Key(Cow::Owned((*seg).to_owned())), value);
    Ok(())
}

fn encode_object(fields: &Fields<'_>, capacity: usize) -> String {
    let mut out = Vec::with_capacity(capacity);
    write_object(&mut out, fields);
    String::from_utf8(out).expect("JSON text and escaped keys are UTF-8")
}

fn write_object(out: &mut Vec<u8>, fields: &Fields<'_>) {
    out.push(b'{');
    for (n, (key, value)) in fields.0.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key.0.as_ref()).expect("write to Vec");
        out.push(b':');
        match value {
            Field::Raw(raw) => push_one_line(out, raw.get()),
            Field::Encoded(text) => out.extend_from_slice(text.as_bytes()),
            Field::Opened(inner) => write_object(out, inner),
            Field::Value(value) => serde_json::to_writer(&mut *out, value).expect("write to Vec"),
            Field::Tags(pairs) => write_pairs(out, pairs),
        }
    }
    out.push(b'}');
}

/// Source text, with line breaks turned into spaces: a bulk source must be one line, and a
/// line break in valid JSON can only be whitespace between tokens (strings escape theirs).
fn push_one_line(out: &mut Vec<u8>, text: &str) {
    let start = out.len();
    out.extend_from_slice(text.as_bytes());
    if text.contains(['\n', '\r']) {
        for b in &mut out[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }
}

/// A target pair (key, value) borrowed from the tag map's text where it can be; ordered as
/// [`TargetTag`] is (key, then value).
type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// [`tag_entries`] of every tag of a tag map's text, without parsing it into values: keys and
/// string values stay borrowed, numbers are written as `serde_json`'s `Number` writes them.
/// A map with a repeated key (at any depth) is read the reference way instead, so the last
/// value wins there as in a parsed map.
fn flatten_tags<'a>(tags: &'a RawValue, pairs: &mut Vec<Pair<'a>>) -> Result<(), RewriteError> {
    let mut de = serde_json::Deserializer::from_str(tags.get());
    if serde::de::DeserializeSeed::deserialize(Flatten { key: None, out: pairs }, &mut de).is_ok() {
        return Ok(());
    }
    // A repeated key, or a value serde_json cannot hold (the reference way reports it).
    pairs.clear();
    let tags: Map<String, Value> = serde_json::from_str(tags.get()).map_err(unreadable)?;
    for (key, value) in &tags {
        for tag in tag_entries(value, key)? {
            pairs.push((Cow::Owned(tag.key), Cow::Owned(tag.value)));
        }
    }
    Ok(())
}

/// Flattens one tag value (or, with no key, the tag map itself) into `out`, by
/// [`tag_entries`]'s rules: scalars become their text, null is dropped, arrays give one pair
/// per element, objects give dotted keys.
struct Flatten<'p, 'a> {
    key: Option<Cow<'a, str>>,
    out: &'p mut Vec<Pair<'a>>,
}

impl Flatten<'_, '_> {
    fn push_text(self, value: String) {
        if let Some(key) = self.key {
            self.out.push((key, Cow::Owned(value)));
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a tag value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        if let Some(key) = self.key {
            self.out.push((key, Cow::Borrowed(if b { "true" } else { "false" })));
        }
        Ok(())
    }
    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        self.push_text(serde_json::Number::from(n).to_string());
        Ok(())
    }
    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        self.push_text(serde_json::Number::from(n).to_string());
        Ok(())
    }
    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        // A value `serde_json` cannot hold as a number becomes null, which is dropped.
        if let Some(n) = serde_json::Number::from_f64(n) {
            self.push_text(n.to_string());
        }
        Ok(())
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        if let Some(key) = self.key {
            self.out.push((key, Cow::Borrowed(s)));
        }
        Ok(())
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.push_text(s.to_owned());
        Ok(())
    }
    fn visit_string<E>(self, s: String) -> Result<(), E> {
        self.push_text(s);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten { key: self.key.clone(), out: &mut *self.out })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(sub)) = map.next_key::<Key<'de>>()? {
            let key = match &self.key {
                None => sub.clone(),
                Some(key) => Cow::Owned(format!("{key}.{sub}")),
            };
            seen.push(sub);
            map.next_value_seed(Flatten { key: Some(key), out: &mut *self.out })?;
        }
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return Err(serde::de::Error::custom("repeated key"));
        }
        Ok(())
    }
}

/// The target tag array, as [`TagRewrite::set_target_tags`] writes it (the field names are
/// `KEY_TO_VALUE_FIELD` and `VALUE_FIELD`; a test compares the bytes with that path's).
fn write_pairs(out: &mut Vec<u8>, pairs: &[Pair<'_>]) {
    let mut key_to_value = String::new();
    out.push(b'[');
    for (n, (key, value)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        key_to_value.clear();
        push_pair(&mut key_to_value, key, value);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(KEY_TO_VALUE_FIELD.as_bytes());
        out.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *out, key_to_value.as_str()).expect("write to Vec");
        out.extend_from_slice(b",\"");
        out.extend_from_slice(VALUE_FIELD.as_bytes());
        out.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *out, value.as_ref()).expect("write to Vec");
        out.push(b'}');
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::tests::arb_legacy_doc;
    use proptest::prelude::*;
    use serde_json::json;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    /// The definition: `into_target` of the parsed input.
    fn reference(tr: &TagRewrite, text: &str) -> Result<Map<String, Value>, RewriteError> {
        tr.into_target(serde_json::from_str(text).unwrap())
    }

    fn check(tr: &TagRewrite, text: &str) -> Result<(), TestCaseError> {
        let got = tr.transcode(&raw(text));
        match reference(tr, text) {
            Ok(expected) => {
                let got = got.map_err(|e| TestCaseError::fail(format!("{e} for {text}")))?;
                prop_assert!(!got.as_str().contains('\n'), "one line: {}", got.as_str());
                prop_assert_eq!(got.to_map().unwrap(), expected, "{}", text);
            }
            Err(e) => prop_assert_eq!(got, Err(e), "{}", text),
        }
        Ok(())
    }

    #[test]
    fn realistic_document_same_bytes_as_the_map_path() {
        let tr = TagRewrite::default();
        let doc = json!({"title": "t", "n": 1.5, "actions": {"clicks": 3, "tags": {"color": "red", "size": [1, 2], "a:b": null}}});
        let got = tr.transcode(&raw(&doc.to_string())).unwrap();
        assert_eq!(got, EncodedDoc::from_map(&tr.to_target(doc.as_object().unwrap()).unwrap()));
    }

    #[test]
    fn path_rules_match_into_target() {
        let tr = TagRewrite::default();
        for text in [
            r#"{}"#,
            r#"{"actions": null}"#,
            r#"{"actions": {}}"#,
            r#"{"actions": {"tags": null}}"#,
            r#"{"actions": {"tags": {}}, "x": {"b": 1, "a": [1, {"d": 2, "c": 3}]}}"#,
            r#"{"actions": 5}"#,
            r#"{"actions": {"tags": "no"}}"#,
            r#"{"tags": 1}"#,
            r#"{"tags": 1, "actions": {"tags": {"k": 1}}}"#,
            r#"{"actions": {"tags": {"k": 1}}, "actions": {"tags": {"j": 2}}}"#,
            r#"{"act\u0069ons": {"t\u0061gs": {"k\u00e9": "v\n"}}}"#,
            // Repeated tag keys (the last wins, at any depth) and number spellings.
            r#"{"actions": {"tags": {"k": "a", "k": "b", "n": {"x": 1, "x": [2, 3]}, "m": [{"y": 1, "y": null}]}}}"#,
            r#"{"actions": {"tags": {"f": 1e2, "g": -0, "h": 1.0, "i": 18446744073709551615, "j": -9223372036854775808, "e": "\u0041:"}}}"#,
            "{\n  \"a\": [\n 1,\r\n 2],\n  \"actions\": {\"tags\": {\"k\": \"v\"}, \"z\": {\n}}\n}",
        ] {
            check(&tr, text).unwrap();
        }
        let same_name = TagRewrite { legacy_path: "tags".into(), target_field: "tags".into() };
        check(&same_name, r#"{"tags": {"k": ["a", "b"]}}"#).unwrap();
    }

    /// The rewrite gives the same document whether the first read opened the objects on the tag
    /// path (as `transcode` and the command decoder read) or left them as text.
    #[test]
    fn tag_path_read_opened_or_as_text_alike() {
        let tr = TagRewrite { legacy_path: "a.b.c".into(), target_field: "tags".into() };
        for text in [
            r#"{"a": {"b": {"c": {"k": 1}, "d": 2}, "e": 3}, "f": 4}"#,
            r#"{"a": {"b": {"c": null}}}"#,
            r#"{"a": {"b": null}}"#,
            r#"{"a": {"b": 5}}"#,
            r#"{"a": {"b": [1]}, "x": 1}"#,
            r#"{"a": {"b": {"d": 1}}}"#,
        ] {
            let opened = tr.transcode_fields(Fields::parse(text, Some(&tr.legacy_path)).unwrap());
            let as_text = tr.transcode_fields(Fields::parse(text, None).unwrap());
            assert_eq!(opened, as_text, "{text}");
            assert_eq!(opened.map(|doc| doc.to_map().unwrap()), reference(&tr, text), "{text}");
        }
        assert!(matches!(Fields::parse(r#"{"a": {"b": {}}}"#, Some("a.b.c")).unwrap().get("a"), Some(Field::Opened(_))));
        assert!(matches!(Fields::parse(r#"{"a": {"b": {}}}"#, None).unwrap().get("a"), Some(Field::Raw(_))));
    }

    #[test]
    fn value_at_finds_what_value_get_finds() {
        let text = r#"{"v": 3, "m": {"n": {"o": 9}, "a": [1]}, "s": "x"}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        for path in ["v", "m.n.o", "m.n", "m.a", "m.a.0", "s.x", "nope", "m.nope", "v.x"] {
            let expected = path.split('.').try_fold(&value, |v, seg| v.get(seg));
            assert_eq!(value_at(&raw(text), path).as_ref(), expected, "{path}");
        }
    }

    #[test]
    fn unreadable_tags_are_refused_not_panicked_on() {
        let err = TagRewrite::default().transcode(&raw(r#"{"actions": {"tags": {"k": 1e999}}}"#)).unwrap_err();
        assert!(matches!(err, RewriteError::Unreadable { .. }), "{err:?}");
    }

    #[test]
    fn with_version_sets_and_makes_parents() {
        let doc = TagRewrite::default().transcode(&raw(r#"{"v": 1, "m": {"x": 2}, "s": "t"}"#)).unwrap();
        for (path, expected) in [
            ("v", json!({"v": 9, "m": {"x": 2}, "s": "t", "tags": []})),
            ("m.v", json!({"v": 1, "m": {"x": 2, "v": 9}, "s": "t", "tags": []})),
            ("s.a.b", json!({"v": 1, "m": {"x": 2}, "s": {"a": {"b": 9}}, "tags": []})),
        ] {
            assert_eq!(Value::Object(doc.with_version(path, 9).unwrap().to_map().unwrap()), expected, "{path}");
        }
    }

    proptest! {
        #[test]
        fn with_version_agrees_with_store_version(doc in arb_legacy_doc(), path in "[a-f]{1,2}(\\.[a-f]{1,2}){0,2}", version in 0..=i64::MAX as u64) {
            let tr = TagRewrite::default();
            prop_assume!(crate::version_field_problem(&path, &tr).is_none());
            let encoded = EncodedDoc::from_map(&tr.to_target(&doc).unwrap());
            // Both sides parse the same text (serde_json's float parsing need not round-trip).
            let mut expected = encoded.to_map().unwrap();
            crate::store_version(&mut expected, &path, version);
            prop_assert_eq!(encoded.with_version(&path, version).unwrap().to_map().unwrap(), expected);
        }

        #[test]
        fn transcode_agrees_with_into_target(doc in arb_legacy_doc(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { serde_json::to_string(&doc).unwrap() };
            check(&TagRewrite::default(), &text)?;
        }

        #[test]
        fn transcode_agrees_on_any_object(doc in crate::rewrite::tests::arb_json(), path in "[a-c]{1,2}(\\.[a-c]{1,2}){0,2}") {
            let text = json!({"a": doc.clone(), "b": {"c": doc}}).to_string();
            let tr = TagRewrite { legacy_path: path, target_field: "tags".into() };
            check(&tr, &text)?;
        }
    }
}
