//! Field names of the canonical JSON command envelope.

/// Field names of the canonical JSON envelope, configurable so a team can point cutover at its
/// existing topic without changing its producers. Deserializes with defaults for missing names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Envelope {
    /// Field holding the operation name (default `op`).
    pub op: String,
    /// Field holding the document id (default `id`); the record key is the fallback.
    pub id: String,
    /// Field holding the index name (default `index`).
    pub index: String,
    /// Field holding the custom routing (default `routing`).
    pub routing: String,
    /// Field holding the full document of an upsert (default `doc`).
    pub doc: String,
    /// Field holding a merge's fields to set (default `set`).
    pub set: String,
    /// Field holding a merge's fields to remove (default `unset`).
    pub unset: String,
    /// Field holding a merge's tags to set (default `tags_add`).
    pub tags_add: String,
    /// Field holding a merge's tag keys to remove (default `tags_remove`).
    pub tags_remove: String,
    /// Operation name of a full write (default `upsert`).
    pub op_upsert: String,
    /// Operation name of a partial update (default `merge`).
    pub op_merge: String,
    /// Operation name of a delete (default `delete`).
    pub op_delete: String,
}

impl Default for Envelope {
    fn default() -> Self {
        Self {
            op: "op".into(),
            id: "id".into(),
            index: "index".into(),
            routing: "routing".into(),
            doc: "doc".into(),
            set: "set".into(),
            unset: "unset".into(),
            tags_add: "tags_add".into(),
            tags_remove: "tags_remove".into(),
            op_upsert: "upsert".into(),
            op_merge: "merge".into(),
            op_delete: "delete".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_config_keeps_defaults() {
        let env: Envelope = serde_json::from_str(r#"{"op": "type", "op_upsert": "index"}"#).unwrap();
        assert_eq!(env.op, "type");
        assert_eq!(env.op_upsert, "index");
        assert_eq!(env.doc, "doc");
    }
}
