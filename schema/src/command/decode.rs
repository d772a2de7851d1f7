//! Decoding one raw Kafka record into a [`Command`].
//!
//! Checks run in a fixed order (payload size, UTF-8, JSON, object, op, id, index, version,
//! routing, op body) so a record with several problems always reports the same one. A record
//! whose value is null (not merely empty) follows the [`NullValuePolicy`]: dead-lettered, or a
//! delete of the document named by the record key (Kafka's compaction convention), checked in
//! the order id, index, version. Every
//! problem a bulk request would only discover later (a doc the rewrite rejects, an id
//! Elasticsearch refuses, a merge touching the tag fields) is caught here, so poison records
//! are dead-lettered before they reach a batch.

use super::fields::{self, Failure, Scalar};
use super::version::{header_version, json_version, lookup, offset_version};
use super::{Command, DecodeError, DecodeErrorKind, Envelope, VersionSource};
use crate::read::Reader;
use crate::rewrite::{DocField, DocRead, Key, TagRewrite};
use serde::de::DeserializeSeed;
use serde_json::{Map, Value};

/// Default payload limit: 1 MiB, far above sane documents and well below a bulk request.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// Elasticsearch rejects ids longer than this many bytes.
pub const MAX_ID_BYTES: usize = 512;

/// Everything decoding needs to know about the topic's conventions.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeConfig {
    /// Field names of the envelope.
    pub envelope: Envelope,
    /// Where the per-document version comes from (deliberately no default).
    pub version: VersionSource,
    /// Index used when the body names none (single-index topics).
    pub default_index: Option<String>,
    /// `(legacy index, target index)` pairs: where a command of a legacy index is written.
    /// An index without a pair keeps its name. See [`DecodeConfig::target_index`].
    pub index_map: Vec<(String, String)>,
    /// Largest payload accepted, in bytes.
    pub max_bytes: usize,
    /// The tag rewrite, to reject upserts and merges the target form cannot represent.
    pub tags: TagRewrite,
    /// What a record with a null value means.
    pub null_value: NullValuePolicy,
}

/// What a record with a null value (Kafka's compaction "tombstone") means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NullValuePolicy {
    /// It is not a command: dead-letter it (`null_value`), naming the option that applies it.
    #[default]
    DeadLetter,
    /// It deletes the document whose id is the record key, in the default index, at the
    /// version read from the header or offset version source; a `field:` version source
    /// cannot version it (`null_value_unversioned`). It carries no routing.
    Delete,
}

impl DecodeConfig {
    /// Defaults for everything but the version source, which the user must choose.
    pub fn new(version: VersionSource) -> Self {
        Self {
            envelope: Envelope::default(),
            version,
            default_index: None,
            index_map: Vec::new(),
            max_bytes: DEFAULT_MAX_BYTES,
            tags: TagRewrite::default(),
            null_value: NullValuePolicy::default(),
        }
    }

    /// The target index of a command's (legacy) index: its `index_map` pair, else the same
    /// name. The only place the mapping is applied; decoding stores the result in
    /// [`Command::target_index`].
    pub fn target_index<'a>(&'a self, legacy_index: &'a str) -> &'a str {
        self.index_map.iter().find(|(legacy, _)| legacy == legacy_index).map_or(legacy_index, |(_, target)| target.as_str())
    }
}

/// A Kafka record as the consumer hands it over, borrowed so decoding copies only what it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Record key (the document id on a well-keyed topic).
    pub key: Option<&'a [u8]>,
    /// Record value.
    pub payload: Option<&'a [u8]>,
    /// Headers in record order.
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl RawRecord<'_> {
    /// The value of the last header named `name` (Kafka's "last one wins" convention); None
    /// when absent or null.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().rev().find(|(n, _)| *n == name).and_then(|(_, v)| *v)
    }
}

/// Decodes one record into a [`Command`], or says precisely why it cannot (see the module doc
/// for the order of checks). For many records of one config, [`Decoder`] does the same with
/// what the config implies worked out once.
pub fn decode(rec: &RawRecord<'_>, cfg: &DecodeConfig) -> Result<Command, DecodeError> {
    decode_planned(rec, cfg, Plan::of(cfg))
}

/// [`decode`] for a stream of records: the config with what it implies for every record (which
/// envelope fields are read straight into their slots, whether the version is read from inside
/// the document) worked out once, not per record.
#[derive(Clone, Debug)]
pub struct Decoder {
    cfg: DecodeConfig,
    plan: Plan,
}

impl Decoder {
    /// Prepares `cfg` for decoding.
    pub fn new(cfg: DecodeConfig) -> Self {
        let plan = Plan::of(&cfg);
        Self { cfg, plan }
    }

    /// The config it decodes with.
    pub fn config(&self) -> &DecodeConfig {
        &self.cfg
    }

    /// [`decode`] with this config.
    pub fn decode(&self, rec: &RawRecord<'_>) -> Result<Command, DecodeError> {
        decode_planned(rec, &self.cfg, self.plan)
    }
}

/// What a config implies for every record's parse.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// By role: whether the envelope field has a slot of its own (see [`Slots`]).
    slotted: [bool; ROLES],
    /// The version is read from inside the document (`--version-source field:doc.x`), so the
    /// document is read as a value, not as text.
    version_in_doc: bool,
}

impl Plan {
    fn of(cfg: &DecodeConfig) -> Self {
        let version_in_doc = matches!(&cfg.version, VersionSource::Field(path) if path.split('.').next() == Some(cfg.envelope.doc.as_str()));
        Self { slotted: Slots::new(cfg).0.map(|name| name.is_some()), version_in_doc }
    }
}

fn decode_planned(rec: &RawRecord<'_>, cfg: &DecodeConfig, plan: Plan) -> Result<Command, DecodeError> {
    decode_inner(rec, cfg, plan).map_err(|(kind, detail)| DecodeError {
        kind,
        topic: rec.topic.to_owned(),
        partition: rec.partition,
        offset: rec.offset,
        detail,
    })
}

fn decode_inner(rec: &RawRecord<'_>, cfg: &DecodeConfig, plan: Plan) -> Result<Command, Failure> {
    if rec.payload.is_none() {
        return null_value(rec, cfg);
    }
    let text = payload_text(rec.payload, cfg.max_bytes)?;
    let mut body = parse_body(text, cfg, plan)?;
    let env = &cfg.envelope;
    let op_kind = fields::op_kind(body.scalar(Role::Op, &env.op), env)?;
    let id = fields::id(body.scalar(Role::Id, &env.id), rec.key, env)?;
    let index = fields::index(body.scalar(Role::Index, &env.index), env, cfg.default_index.as_deref())?;
    let version = version(&body.fields, rec, &cfg.version)?;
    let routing = fields::routing(body.scalar(Role::Routing, &env.routing), env)?;
    let op = fields::op(op_kind, &mut body, cfg)?;
    Ok(Command { id, target_index: cfg.target_index(&index).to_owned(), index, version, routing, op })
}

/// A record with a null value: dead-lettered, or a delete keyed by the record key.
fn null_value(rec: &RawRecord<'_>, cfg: &DecodeConfig) -> Result<Command, Failure> {
    use DecodeErrorKind::*;
    if cfg.null_value == NullValuePolicy::DeadLetter {
        return Err((
            NullValue,
            "null value (a delete in Kafka's compaction convention); the indexer applies such records as deletes only with --null-value delete".to_owned(),
        ));
    }
    let id = fields::id(None, rec.key, &cfg.envelope)?;
    let index =
        cfg.default_index.clone().ok_or((MissingIndex, "a null-value record names no index and there is no default index (--default-index)".to_owned()))?;
    let version = match &cfg.version {
        VersionSource::Field(path) => {
            return Err((
                NullValueUnversioned,
                format!("a null value has no body to read the version `field:{path}` from; null-value deletes need --version-source header:<name> or offset"),
            ))
        }
        VersionSource::Header(name) => header_version(rec.header(name), name)?,
        VersionSource::Offset => offset_version(rec.offset)?,
    };
    Ok(Command { id, target_index: cfg.target_index(&index).to_owned(), index, version, routing: None, op: crate::command::Op::Delete })
}

/// Size and UTF-8 checks, in that order.
fn payload_text(payload: Option<&[u8]>, max_bytes: usize) -> Result<&str, Failure> {
    use DecodeErrorKind::*;
    let bytes = payload.filter(|p| !p.is_empty()).ok_or((EmptyPayload, "no payload".to_owned()))?;
    if bytes.len() > max_bytes {
        return Err((TooLarge, format!("{} bytes > limit {max_bytes}", bytes.len())));
    }
    std::str::from_utf8(bytes).map_err(|e| (InvalidUtf8, e.to_string()))
}

/// A parsed body: the envelope's fields as values; the upsert's document (the field
/// [`Envelope::doc`]) as its top-level fields, their values borrowed from the payload as text,
/// when it is not in `fields`; and
/// the op, id, index and routing fields borrowed, when they are not in `fields` (see
/// [`Slots`]).
pub(crate) struct Body<'a> {
    pub(crate) fields: Map<String, Value>,
    pub(crate) doc: Option<DocField<'a>>,
    scalars: [Option<Scalar<'a>>; ROLES],
    slotted: [bool; ROLES],
}

/// The envelope fields read as [`Scalar`]s, by role.
#[derive(Clone, Copy)]
enum Role {
    Op,
    Id,
    Index,
    Routing,
}
const ROLES: usize = 4;

impl<'a> Body<'a> {
    /// The field `name` playing `role`, null read as absent: taken from its slot, or (when the
    /// name could not have one) copied from `fields`.
    fn scalar(&mut self, role: Role, name: &str) -> Option<Scalar<'a>> {
        let value = if self.slotted[role as usize] { self.scalars[role as usize].take() } else { self.fields.get(name).cloned().map(Scalar::from) };
        value.filter(|v| !matches!(v, Scalar::Other(Value::Null)))
    }
}

/// Which body fields [`BodySeed`] keeps borrowed, by role: a name that no other envelope field
/// and no version field shares (else it stays in `fields`, where every reader finds it).
struct Slots<'n>([Option<&'n str>; ROLES]);

impl<'n> Slots<'n> {
    fn new(cfg: &'n DecodeConfig) -> Self {
        let env = &cfg.envelope;
        let version_root = match &cfg.version {
            VersionSource::Field(path) => path.split('.').next(),
            _ => None,
        };
        let names = [&env.op, &env.id, &env.index, &env.routing, &env.doc, &env.set, &env.unset, &env.tags_add, &env.tags_remove];
        let own = |name: &'n String| (names.iter().filter(|n| **n == name).count() == 1 && version_root != Some(name.as_str())).then_some(name.as_str());
        Slots([own(&env.op), own(&env.id), own(&env.index), own(&env.routing)])
    }

    /// The slots a [`Plan`] gives, named as in `cfg`.
    fn planned(cfg: &'n DecodeConfig, plan: Plan) -> Self {
        let env = &cfg.envelope;
        let names = [&env.op, &env.id, &env.index, &env.routing];
        Slots(std::array::from_fn(|role| plan.slotted[role].then_some(names[role].as_str())))
    }

    fn role_of(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|name| *name == Some(key))
    }
}

/// JSON and object checks, in that order. The document of an upsert is read in the same pass,
/// as fields whose values stay text (the tag rewrite works on the text:
/// [`crate::TagRewrite::transcode`]), unless the version is read from inside it
/// (`--version-source field:doc.x`), which needs it as a value.
fn parse_body<'a>(text: &'a str, cfg: &DecodeConfig, plan: Plan) -> Result<Body<'a>, Failure> {
    let doc = &cfg.envelope.doc;
    let seed = BodySeed { doc_as_text: (!plan.version_in_doc).then_some(doc.as_str()), tag_path: &cfg.tags.legacy_path, slots: Slots::planned(cfg, plan) };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = seed.deserialize(&mut de).and_then(|parsed| de.end().map(|()| parsed));
    match parsed.map_err(|e| (DecodeErrorKind::InvalidJson, e.to_string()))? {
        Some(body) => Ok(body),
        None => {
            // Valid JSON, not an object: parsed again as a value only to name its type.
            let other: Value = serde_json::from_str(text).map_err(|e| (DecodeErrorKind::InvalidJson, e.to_string()))?;
            Err((DecodeErrorKind::NotAnObject, format!("payload is {}", fields::type_name(&other))))
        }
    }
}

/// Parses a whole payload in one pass, whatever its type (so invalid JSON is always reported
/// as such, before "not an object").
struct BodySeed<'n> {
    doc_as_text: Option<&'n str>,
    /// The tag path, whose objects the document's read opens ([`DocRead`]).
    tag_path: &'n str,
    slots: Slots<'n>,
}

/// The body of an object payload; `None` for any other valid JSON.
type Parsed<'a> = Option<Body<'a>>;

impl<'de> serde::de::DeserializeSeed<'de> for BodySeed<'_> {
    type Value = Parsed<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BodySeed<'_> {
    type Value = Parsed<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON command")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let slotted = self.slots.0.map(|name| name.is_some());
        let mut body = Body { fields: Map::new(), doc: None, scalars: Default::default(), slotted };
        while let Some(Key(key)) = map.next_key()? {
            if self.doc_as_text == Some(&*key) {
                body.doc = Some(map.next_value_seed(Reader(DocRead(self.tag_path)))?);
            } else if let Some(role) = self.slots.role_of(&key) {
                body.scalars[role] = Some(map.next_value()?);
            } else {
                body.fields.insert(key.into_owned(), map.next_value()?);
            }
        }
        Ok(Some(body))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed<'de>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Parsed<'de>, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Parsed<'de>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Parsed<'de>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Parsed<'de>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Parsed<'de>, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Parsed<'de>, E> {
        Ok(None)
    }
}

fn version(body: &Map<String, Value>, rec: &RawRecord<'_>, src: &VersionSource) -> Result<u64, Failure> {
    match src {
        VersionSource::Field(path) => json_version(lookup(body, path), path),
        VersionSource::Header(name) => header_version(rec.header(name), name),
        VersionSource::Offset => offset_version(rec.offset),
    }
}

#[cfg(test)]
mod tests;
