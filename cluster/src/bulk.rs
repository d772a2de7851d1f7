//! The `_bulk` encoder for externally versioned writes and the per-item classification of a
//! bulk response.
//!
//! A `_bulk` request returns 200 even when items failed, so every item is looked at and put in
//! exactly one class: applied, superseded (409: a newer version is already there), or failed
//! with the [`Class`] that [`crate::error`] decides (retry, halt, or poison on proof).

use crate::error::{Class, ErrorCause};
use crate::Outcome;
use schema::EncodedDoc;
use serde_json::Value;
use std::borrow::Cow;

/// The kind of a versioned write.
#[derive(Clone, Debug, PartialEq)]
pub enum BulkOpKind<'a> {
    /// Replace the whole document with this target-form `_source`, already encoded (borrowed
    /// from the command that carries it when it is written unchanged: no copy per document).
    Index(Cow<'a, EncodedDoc>),
    /// Delete the document, leaving a versioned tombstone (see `index.gc_deletes`).
    Delete,
}

/// One externally versioned write. The version is what makes replay and backfill commute:
/// Elasticsearch keeps the highest version and rejects older ones with 409. Its fields borrow
/// from whoever built it (a decoded command, a scanned hit) where they can.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkOp<'a> {
    pub index: Cow<'a, str>,
    pub id: Cow<'a, str>,
    pub routing: Option<Cow<'a, str>>,
    pub version: u64,
    pub kind: BulkOpKind<'a>,
}

impl BulkOp<'_> {
    /// Appends this operation's NDJSON lines (action line, and source line for index) to `out`.
    /// The action line is written from borrowed fields (the constant keys as they are, the
    /// strings escaped by `serde_json`): no allocation per operation.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, s: &str| serde_json::to_writer(&mut *out, s).expect("write to Vec");
        out.extend_from_slice(match self.kind {
            BulkOpKind::Index(_) => b"{\"index\":{\"_index\":",
            BulkOpKind::Delete => b"{\"delete\":{\"_index\":",
        });
        string(out, &self.index);
        out.extend_from_slice(b",\"_id\":");
        string(out, &self.id);
        if let Some(routing) = &self.routing {
            out.extend_from_slice(b",\"routing\":");
            string(out, routing);
        }
        out.extend_from_slice(b",\"version\":");
        serde_json::to_writer(&mut *out, &self.version).expect("write to Vec");
        out.extend_from_slice(b",\"version_type\":\"external\"}}\n");
        if let BulkOpKind::Index(source) = &self.kind {
            out.extend_from_slice(source.as_str().as_bytes());
            out.push(b'\n');
        }
    }

    /// An estimate of the encoded size, for batching by bytes without encoding twice.
    pub fn encoded_len_hint(&self) -> usize {
        let source = match &self.kind {
            BulkOpKind::Index(source) => source.len(),
            BulkOpKind::Delete => 0,
        };
        let routing = self.routing.as_ref().map_or(0, |r| r.len() + 14);
        source + self.index.len() + self.id.len() + routing + 96
    }
}

/// Encodes operations into one NDJSON `_bulk` body.
pub fn encode(ops: &[BulkOp<'_>]) -> Vec<u8> {
    encode_some(ops, 0..ops.len())
}

/// Encodes the operations `which` of `ops` into one NDJSON `_bulk` body, sized once from their
/// [`BulkOp::encoded_len_hint`]s (a body of a few MB grown by doubling is copied and faulted in
/// again at each step).
pub fn encode_some(ops: &[BulkOp<'_>], which: impl Iterator<Item = usize> + Clone) -> Vec<u8> {
    let mut out = Vec::with_capacity(which.clone().map(|i| ops[i].encoded_len_hint()).sum());
    for i in which {
        ops[i].encode_into(&mut out);
    }
    out
}

/// What one bulk item's answer says, which decides what the writer does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemClass {
    /// Written (created, updated, deleted, or delete of an absent doc: `not_found` is fine).
    Applied,
    /// 409 version conflict: a newer (or equal) version is already stored. Not an error.
    Superseded,
    /// Refused: what to do about it, decided once in [`crate::error::classify_item`].
    Failed(Class),
}

impl ItemClass {
    /// Lower-case name for metrics labels and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemClass::Applied => Outcome::APPLIED,
            ItemClass::Superseded => Outcome::SUPERSEDED,
            ItemClass::Failed(class) => class.as_str(),
        }
    }
}

/// One item's result: its class, the HTTP status and the error reason when there was one.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemOutcome {
    pub class: ItemClass,
    pub status: u16,
    pub reason: Option<String>,
}

/// Classifies one item by status and error (the failure classes are decided in
/// [`crate::error::classify_item`]).
pub fn classify_item(status: u16, error: Option<&ErrorCause>) -> ItemClass {
    match (status, error) {
        (200..=299, _) => ItemClass::Applied,
        (404, None) => ItemClass::Applied, // delete of a document that is not there
        (409, _) => ItemClass::Superseded,
        (_, cause) => ItemClass::Failed(crate::error::classify_item(status, cause.unwrap_or(&ErrorCause::default()))),
    }
}

/// Reads a `_bulk` response into one outcome per item, in request order.
/// Fails when the response does not parse or the number of items does not match, which would
/// make offsets unsafe to commit.
pub fn outcomes(response: &[u8], expected: usize) -> Result<Vec<ItemOutcome>, String> {
    let response: Response = serde_json::from_slice(response).map_err(|e| format!("bulk response does not parse: {e}"))?;
    let items = response.items.ok_or_else(|| "bulk response has no items array".to_string())?;
    if items.len() != expected {
        return Err(format!("bulk response has {} items, request had {expected}", items.len()));
    }
    Ok(items.into_iter().map(Item::outcome).collect())
}

/// What [`outcomes`] reads of a `_bulk` response (typed: a response holds one item per
/// document, and nothing else is looked at).
#[derive(serde::Deserialize)]
struct Response {
    items: Option<Vec<Item>>,
}

/// `{"<action>": {"status": .., "error": ..}}`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Item {
    Index(ItemBody),
    Create(ItemBody),
    Update(ItemBody),
    Delete(ItemBody),
}

#[derive(serde::Deserialize)]
struct ItemBody {
    status: Option<u16>,
    #[serde(default)]
    error: Option<Value>,
}

impl Item {
    fn outcome(self) -> ItemOutcome {
        let (Item::Index(body) | Item::Create(body) | Item::Update(body) | Item::Delete(body)) = self;
        let status = body.status.unwrap_or(500);
        let error = body.error.filter(|e| !e.is_null()).map(|e| ErrorCause::parse(&serde_json::json!({ "error": e })));
        let class = classify_item(status, error.as_ref());
        ItemOutcome { class, status, reason: error.map(|e| e.to_string()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> EncodedDoc {
        EncodedDoc::from_map(json!({"title": "a"}).as_object().unwrap())
    }

    #[test]
    fn encodes_external_versions_and_routing() {
        let ops = vec![
            BulkOp { index: "i".into(), id: "1".into(), routing: Some("r".into()), version: 7, kind: BulkOpKind::Index(Cow::Owned(doc())) },
            BulkOp { index: "i".into(), id: "2\"\\\n".into(), routing: None, version: 9, kind: BulkOpKind::Delete },
        ];
        let text = String::from_utf8(encode(&ops)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first, json!({"index": {"_index": "i", "_id": "1", "routing": "r", "version": 7, "version_type": "external"}}));
        assert_eq!(serde_json::from_str::<Value>(lines[1]).unwrap(), json!({"title": "a"}));
        let third: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(third, json!({"delete": {"_index": "i", "_id": "2\"\\\n", "version": 9, "version_type": "external"}}));
        assert!(ops[0].encoded_len_hint() >= lines[0].len() / 2 + lines[1].len());
    }

    /// The body is allocated once: the hints cover what encoding writes for ids and routings
    /// without escapes, at the largest version.
    #[test]
    fn hints_cover_the_encoded_body() {
        let op = |routing: Option<&'static str>| BulkOp {
            index: "target-index".into(),
            id: "doc-0123456789".into(),
            routing: routing.map(Cow::Borrowed),
            version: i64::MAX as u64,
            kind: BulkOpKind::Index(Cow::Owned(doc())),
        };
        let ops = vec![op(Some("shard-key")), op(None), BulkOp { kind: BulkOpKind::Delete, ..op(Some("r")) }];
        for (i, op) in ops.iter().enumerate() {
            assert!(encode(std::slice::from_ref(op)).len() <= op.encoded_len_hint(), "op {i}");
        }
        let body = encode_some(&ops, [0, 2].into_iter());
        assert_eq!(body.capacity(), ops[0].encoded_len_hint() + ops[2].encoded_len_hint());
        assert_eq!(body, [encode(&ops[..1]), encode(&ops[2..])].concat());
    }

    #[test]
    fn classifies_items() {
        let resp = json!({"errors": true, "items": [
            {"index": {"status": 201}},
            {"index": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "current version [5] is higher"}}},
            {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"index": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "failed to parse field [n]"}}},
            {"delete": {"status": 404, "result": "not_found"}},
            {"index": {"status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}},
            {"index": {"status": 404, "error": {"type": "index_not_found_exception", "reason": "no such index [x]"}}},
            {"index": {"status": 400, "error": {"type": "index_closed_exception", "reason": "closed"}}},
            {"index": {"status": 403, "error": {"type": "cluster_block_exception", "reason": "index [x] blocked by: [FORBIDDEN/8/index write (api)]"}}},
        ]});
        let got: Vec<ItemClass> = outcomes(&resp.to_string().into_bytes(), 9).unwrap().into_iter().map(|o| o.class).collect();
        use ItemClass::*;
        let (retry, halt, poison) = (Failed(Class::Retry), Failed(Class::Halt), Failed(Class::Poison));
        assert_eq!(got, vec![Applied, Superseded, retry, poison, Applied, retry, halt, halt, retry]);
        let poison = &outcomes(&resp.to_string().into_bytes(), 9).unwrap()[3];
        assert_eq!(poison.reason.as_deref(), Some("document_parsing_exception: failed to parse field [n]"));
    }

    #[test]
    fn mismatched_item_count_is_an_error() {
        assert!(outcomes(br#"{"items": []}"#, 1).is_err());
        assert!(outcomes(b"{}", 0).is_err());
        assert!(outcomes(b"<html>", 0).is_err());
    }
}
