//! A record as the lanes hold it: its offset ticket, its bytes (kept for a dead letter), what
//! it decoded to, and its document's identity.

use crate::offsets::Ticket;

/// A record as the consumer hands it to a lane: decoded, or with the reason it is not.
pub struct Item {
    pub ticket: Ticket,
    pub raw: RawOwned,
    pub decoded: Result<schema::Command, schema::DecodeError>,
    /// The document's identity, hashed once when the record is decoded
    /// ([`crate::invariants::doc_key`] of its target index and id): it picks the lane, keeps
    /// the document's order in the lane's pipeline, and keys the invariant watch.
    pub doc: Option<u64>,
}

/// The bytes of a record, kept so a dead letter can carry them unchanged: key and payload in
/// one buffer (one allocation per record, where the record is copied out of librdkafka's).
#[derive(Clone, Debug, Default)]
pub struct RawOwned {
    /// The key's bytes, then the payload's.
    bytes: Box<[u8]>,
    /// Length of the key; None for a null key.
    key_len: Option<usize>,
    /// Whether there is a payload (false for a null one; an empty one is there).
    has_payload: bool,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawOwned {
    pub fn new(key: Option<&[u8]>, payload: Option<&[u8]>, headers: Vec<(String, Option<Vec<u8>>)>) -> Self {
        let (k, p) = (key.unwrap_or_default(), payload.unwrap_or_default());
        let mut bytes = Vec::with_capacity(k.len() + p.len());
        bytes.extend_from_slice(k);
        bytes.extend_from_slice(p);
        Self { bytes: bytes.into_boxed_slice(), key_len: key.map(<[u8]>::len), has_payload: payload.is_some(), headers }
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.bytes[..n])
    }

    pub fn payload(&self) -> Option<&[u8]> {
        self.has_payload.then(|| &self.bytes[self.key_len.unwrap_or(0)..])
    }

    pub(super) fn len(&self) -> usize {
        self.payload().map_or(0, <[u8]>::len)
    }

    /// Bytes this record holds (key, payload, headers): what a backlog of it costs.
    pub fn size(&self) -> usize {
        self.bytes.len() + self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn a_raw_record_gives_back_its_key_and_payload_null_empty_or_not() {
        type KeyAndPayload = (Option<&'static [u8]>, Option<&'static [u8]>);
        let cases: [KeyAndPayload; 6] =
            [(None, None), (Some(b""), Some(b"")), (Some(b"k1"), None), (None, Some(b"{}")), (Some(b"key"), Some(b"payload")), (Some(b""), Some(b"p"))];
        for (key, payload) in cases {
            let raw = RawOwned::new(key, payload, vec![("h".into(), Some(b"v".to_vec()))]);
            assert_eq!((raw.key(), raw.payload()), (key, payload));
            assert_eq!(raw.size(), key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len) + 2);
        }
        assert_eq!((RawOwned::default().key(), RawOwned::default().payload()), (None, None));
    }

    /// A decoded delete of `id` at `offset` (the lanes' tests' record).
    pub(crate) fn item(id: &str, offset: i64) -> Item {
        let cmd = schema::Command {
            id: id.into(),
            index: "legacy".into(),
            target_index: "target".into(),
            version: offset as u64,
            routing: None,
            op: schema::Op::Delete,
        };
        let doc = Some(crate::invariants::doc_key(&cmd.target_index, &cmd.id));
        Item { ticket: Ticket { tp: ("t".into(), 0), offset, generation: 1 }, raw: RawOwned::default(), decoded: Ok(cmd), doc }
    }
}
