//! Extracting and type-checking the individual envelope fields of a command body.

use super::decode::{Body, DecodeConfig, MAX_ID_BYTES};
use super::{DecodeErrorKind, Envelope, MergePatch, Op};
use crate::rewrite::{DocField, EncodedDoc};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A decode problem before the record's coordinates are attached.
pub(crate) type Failure = (DecodeErrorKind, String);

/// Which operation a body asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Upsert,
    Merge,
    Delete,
}

/// JSON type name for error details.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An envelope field's value (op, id, index, routing) as the body holds it: a string stays
/// borrowed from the payload (unless it had escapes), anything else is a value. JSON null is
/// read as absent before the field is looked at (see [`Body::scalar`]).
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Other(Value),
}

impl Scalar<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Other(v) => type_name(v),
        }
    }

    /// The value as JSON text (for error details).
    fn json(&self) -> String {
        match self {
            Scalar::Str(s) => Value::String(s.to_string()).to_string(),
            Scalar::Other(v) => v.to_string(),
        }
    }

    /// An integer's decimal text, if the value is one.
    fn integer(&self) -> Option<String> {
        match self {
            Scalar::Other(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            _ => None,
        }
    }
}

impl From<Value> for Scalar<'_> {
    fn from(v: Value) -> Self {
        match v {
            Value::String(s) => Scalar::Str(Cow::Owned(s)),
            other => Scalar::Other(other),
        }
    }
}

/// Reads a [`Scalar`]: strings kept as text, anything else as a value.
struct ScalarRead;

impl<'de> crate::read::ReadAs<'de> for ScalarRead {
    type Out = Scalar<'de>;
    const EXPECTING: &'static str = "any JSON value";
    fn other(self, value: Value) -> Scalar<'de> {
        Scalar::Other(value)
    }
    fn string(self, s: Cow<'de, str>) -> Scalar<'de> {
        Scalar::Str(s)
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::DeserializeSeed::deserialize(crate::read::Reader(ScalarRead), d)
    }
}

fn wrong(detail: String) -> Failure {
    (DecodeErrorKind::WrongFieldType, detail)
}

/// A body field, with JSON null read as absent.
fn get<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

pub(crate) fn op_kind(op: Option<Scalar<'_>>, env: &Envelope) -> Result<OpKind, Failure> {
    let unknown = |what: String| (DecodeErrorKind::UnknownOp, what);
    match op {
        None => Err(unknown(format!("no `{}` field", env.op))),
        Some(Scalar::Str(op)) if op == env.op_upsert => Ok(OpKind::Upsert),
        Some(Scalar::Str(op)) if op == env.op_merge => Ok(OpKind::Merge),
        Some(Scalar::Str(op)) if op == env.op_delete => Ok(OpKind::Delete),
        Some(other) => Err(unknown(format!("`{}` is {}", env.op, other.json()))),
    }
}

/// The id from the body (string or integer), else the record key.
pub(crate) fn id(body: Option<Scalar<'_>>, key: Option<&[u8]>, env: &Envelope) -> Result<String, Failure> {
    let id = match body {
        Some(Scalar::Str(s)) => s.into_owned(),
        Some(other) => other.integer().ok_or_else(|| wrong(format!("id `{}` is {}", env.id, other.type_name())))?,
        None => match key {
            Some(k) => String::from_utf8(k.to_vec()).map_err(|e| (DecodeErrorKind::InvalidUtf8, format!("record key: {e}")))?,
            None => String::new(),
        },
    };
    if id.is_empty() {
        return Err((DecodeErrorKind::MissingId, format!("no `{}` in body and no record key", env.id)));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(wrong(format!("id is {} bytes, Elasticsearch allows {MAX_ID_BYTES}", id.len())));
    }
    Ok(id)
}

pub(crate) fn index(body: Option<Scalar<'_>>, env: &Envelope, default: Option<&str>) -> Result<String, Failure> {
    match body {
        Some(Scalar::Str(s)) if !s.is_empty() => Ok(s.into_owned()),
        Some(Scalar::Str(_)) | None => default.map(str::to_owned).ok_or((DecodeErrorKind::MissingIndex, format!("no `{}` and no default index", env.index))),
        Some(other) => Err(wrong(format!("index `{}` is {}", env.index, other.type_name()))),
    }
}

/// Routing: a string (empty means none) or an integer.
pub(crate) fn routing(body: Option<Scalar<'_>>, env: &Envelope) -> Result<Option<String>, Failure> {
    match body {
        None => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s.into_owned()).filter(|s| !s.is_empty())),
        Some(other) => other.integer().map(Some).ok_or_else(|| wrong(format!("routing `{}` is {}", env.routing, other.type_name()))),
    }
}

/// Reads the operation; consumes what it keeps (the upsert's document) from `body`.
pub(crate) fn op(kind: OpKind, body: &mut Body<'_>, cfg: &DecodeConfig) -> Result<Op, Failure> {
    match kind {
        OpKind::Upsert => upsert(body, cfg).map(Op::Upsert),
        OpKind::Merge => merge(&body.fields, cfg).map(|patch| Op::Merge(Box::new(patch))),
        OpKind::Delete => Ok(Op::Delete),
    }
}

/// The full document in target form; it must survive the rewrite, or it would poison a later
/// bulk. The rewritten document is kept, encoded: the writers neither rewrite nor encode it
/// again. Rewritten from its text ([`crate::TagRewrite::transcode`]) when the body read it as
/// fields; else moved out of the body (its last use), not copied.
fn upsert(body: &mut Body<'_>, cfg: &DecodeConfig) -> Result<EncodedDoc, Failure> {
    let name = &cfg.envelope.doc;
    let rewritten = match body.doc.take() {
        Some(DocField::Object(doc)) => cfg.tags.transcode_doc(doc),
        Some(DocField::Other(Value::Null)) => return Err(wrong("doc missing".into())),
        Some(DocField::Other(other)) => return Err(wrong(format!("doc `{name}` is {}", type_name(&other)))),
        None => match body.fields.get_mut(name.as_str()).map(Value::take) {
            None | Some(Value::Null) => return Err(wrong("doc missing".into())),
            Some(Value::Object(doc)) => cfg.tags.into_target(doc).map(|doc| EncodedDoc::from_map(&doc)),
            Some(other) => return Err(wrong(format!("doc `{name}` is {}", type_name(&other)))),
        },
    };
    rewritten.map_err(|e| wrong(format!("doc `{name}`: {e}")))
}

fn merge(body: &Map<String, Value>, cfg: &DecodeConfig) -> Result<MergePatch, Failure> {
    let env = &cfg.envelope;
    let patch = MergePatch {
        set: object(body, &env.set)?,
        unset: strings(body, &env.unset)?,
        tags_add: object(body, &env.tags_add)?,
        tags_remove: strings(body, &env.tags_remove)?,
    };
    if let Some(field) = patch.reserved_field(&cfg.tags) {
        return Err(wrong(format!("merge may not set or unset `{field}`: it is owned by the tag rewrite")));
    }
    Ok(patch)
}

/// An optional object field.
fn object(body: &Map<String, Value>, name: &str) -> Result<Map<String, Value>, Failure> {
    match get(body, name) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(wrong(format!("`{name}` is {}, expected an object", type_name(other)))),
    }
}

/// An optional array-of-strings field.
fn strings(body: &Map<String, Value>, name: &str) -> Result<Vec<String>, Failure> {
    let items = match get(body, name) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(wrong(format!("`{name}` is {}, expected an array of strings", type_name(other)))),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong(format!("`{name}` holds {}, expected strings", type_name(other)))),
        })
        .collect()
}
