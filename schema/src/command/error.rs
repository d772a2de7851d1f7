//! Decode errors: what was wrong with a record, and where it sits in the topic.

use std::fmt;

/// A record that cannot be turned into a [`super::Command`]. Always permanent: the indexer
/// dead-letters it (with [`DecodeErrorKind::as_str`] in a header) and moves on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at {topic}[{partition}]@{offset}: {detail}")]
pub struct DecodeError {
    /// The class of problem.
    pub kind: DecodeErrorKind,
    /// Topic of the record.
    pub topic: String,
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
    /// Human-readable detail.
    pub detail: String,
}

/// The class of a decode problem; stable names for metrics labels and dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// No payload, or a zero-length one.
    EmptyPayload,
    /// Payload larger than the configured maximum (checked before parsing).
    TooLarge,
    /// Payload (or record key used as id) is not UTF-8.
    InvalidUtf8,
    /// Payload is not JSON.
    InvalidJson,
    /// Payload is JSON but not an object.
    NotAnObject,
    /// Operation field absent or not one of the configured names.
    UnknownOp,
    /// No id in the body or the record key, or an empty one.
    MissingId,
    /// No index in the body and no default index.
    MissingIndex,
    /// No version where the version source points.
    MissingVersion,
    /// A negative version.
    NegativeVersion,
    /// A version that is not an integer in `0..=i64::MAX` (strings of digits included).
    NonIntegerVersion,
    /// A field of the wrong type or shape (doc, merge parts, id, index, routing).
    WrongFieldType,
    /// A record with a null value (a delete in Kafka's compaction convention) while the
    /// null-value policy is to dead-letter it (indexer `--null-value dead-letter`).
    NullValue,
    /// A null-value record to apply as a delete, but the version source is a body field,
    /// which a null value does not have (use `header:<name>` or `offset`).
    NullValueUnversioned,
}

impl DecodeErrorKind {
    /// Every kind, for exhaustive tests and metric pre-registration.
    pub const ALL: [DecodeErrorKind; 14] = [
        Self::EmptyPayload,
        Self::TooLarge,
        Self::InvalidUtf8,
        Self::InvalidJson,
        Self::NotAnObject,
        Self::UnknownOp,
        Self::MissingId,
        Self::MissingIndex,
        Self::MissingVersion,
        Self::NegativeVersion,
        Self::NonIntegerVersion,
        Self::WrongFieldType,
        Self::NullValue,
        Self::NullValueUnversioned,
    ];

    /// snake_case name, e.g. `unknown_op`; goes into a dead-letter header and metric labels,
    /// so it must never change.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EmptyPayload => "empty_payload",
            Self::TooLarge => "too_large",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::UnknownOp => "unknown_op",
            Self::MissingId => "missing_id",
            Self::MissingIndex => "missing_index",
            Self::MissingVersion => "missing_version",
            Self::NegativeVersion => "negative_version",
            Self::NonIntegerVersion => "non_integer_version",
            Self::WrongFieldType => "wrong_field_type",
            Self::NullValue => "null_value",
            Self::NullValueUnversioned => "null_value_unversioned",
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    /// Same text as [`DecodeErrorKind::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_distinct() {
        let names: std::collections::BTreeSet<_> = DecodeErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), DecodeErrorKind::ALL.len());
        assert_eq!(DecodeErrorKind::UnknownOp.to_string(), "unknown_op");
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())));
    }

    #[test]
    fn display_names_the_record() {
        let e = DecodeError { kind: DecodeErrorKind::MissingId, topic: "cmds".into(), partition: 2, offset: 17, detail: "no id".into() };
        assert_eq!(e.to_string(), "missing_id at cmds[2]@17: no id");
    }
}
