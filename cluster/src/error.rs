//! Elasticsearch's errors, parsed once, and the one place that decides what each failure means.
//!
//! Every failure both writers can meet ends in exactly one [`Class`]:
//!
//! | class | meaning | examples |
//! |---|---|---|
//! | [`Class::Retry`] | the cluster is busy or briefly sick: try again with backoff | no answer, 408, 429, 5xx, an unavailable shard, a write block |
//! | [`Class::Split`] | the request is too large for the path: smaller ones can pass | 413 only |
//! | [`Class::Poison`] | Elasticsearch said *this document* is wrong: only this goes to the dead-letter topic | an item's [`DOCUMENT_ERRORS`] (mapping or parse error of its own content) |
//! | [`Class::Halt`] | everything else: stop without committing or checkpointing past the record, name the cause | 401, 403, a missing or closed index, a missing ingest pipeline, a field limit, any 4xx on the request (a proxy, a gateway rule), any error type nobody listed |
//!
//! The rule is "nothing lost unless proven bad": a record is poison only on positive evidence
//! that it is wrong, listed explicitly in [`DOCUMENT_ERRORS`]. An error nobody listed halts the
//! writer, and so does a 400 on the request as a whole (a request is never split on a 400: a
//! gateway that refuses every request would otherwise drain the topic into the dead-letter
//! topic one record at a time). A systematic stream of "bad" records is a fault too: see
//! [`crate::breaker`].
//!
//! (A 409 on an externally versioned write is not a failure: it is *superseded*, see
//! [`crate::bulk::ItemClass`].) Reads have their own two rules here too: a document of an
//! `_mget` that answers with an error ([`classify_read`]) and a search page some shards failed
//! ([`classify_shard_failures`], [`CONTEXT_MISSING`]). Nothing else in the workspace looks at
//! statuses or error types to decide this.

use serde_json::Value;
use std::fmt;

/// What to do about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Try again later: the same request can succeed unchanged.
    Retry,
    /// Stop: the cluster or the path to it (credentials, index, settings, a proxy) must be
    /// fixed by an operator first; also every failure nobody listed.
    Halt,
    /// The whole request was too large (413): smaller requests can succeed.
    Split,
    /// Elasticsearch said this document itself cannot be written.
    Poison,
}

impl Class {
    /// Lower-case name for metric labels and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Retry => "retry",
            Class::Halt => "halt",
            Class::Split => "split",
            Class::Poison => "poison",
        }
    }
}

/// An Elasticsearch error object (`{"type", "reason", "caused_by"}`), parsed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorCause {
    /// `error.type`, e.g. `index_not_found_exception` (empty when the body had no error object).
    pub kind: String,
    /// `error.reason`, or the body itself when it was not an error object.
    pub reason: String,
    /// `error.caused_by`.
    pub caused_by: Option<Box<ErrorCause>>,
}

/// Error types that say the cluster is briefly unable to serve, whatever the status.
const TRANSIENT: &[&str] = &[
    "unavailable_shards_exception",
    "no_shard_available_action_exception",
    "cluster_block_exception",
    "es_rejected_execution_exception",
    "circuit_breaking_exception",
    "node_not_connected_exception",
    "node_closed_exception",
    "primary_missing_action_exception",
    "shard_not_found_exception",
    "process_cluster_event_timeout_exception",
];

/// Error types that say the cluster is misconfigured for this write: an operator must act.
/// (Unlisted types halt too; these are listed so that a status that would otherwise be
/// retried, e.g. a 5xx carrying one of them, still halts.)
const MISCONFIGURED: &[&str] = &["index_not_found_exception", "index_closed_exception", "security_exception"];

/// The only evidence that a document is wrong: a bulk item refused with 400 and one of these
/// types (the mapping refuses its content, its JSON does not parse, a strict mapping refuses a
/// field it brings). Anything else an item is refused with halts the writer.
pub const DOCUMENT_ERRORS: &[&str] = &["mapper_parsing_exception", "document_parsing_exception", "strict_dynamic_mapping_exception"];

/// Reasons inside a document error that are limits of the index, not faults of the document
/// (8.x+ report "Limit of total fields [1000] has been exceeded" as a document parsing error):
/// every later document would fail the same way, so they halt.
const INDEX_LIMITS: &[&str] = &[
    "Limit of total fields",
    "Limit of mapping depth",
    "Limit of nested fields",
    "Limit of nested objects",
    "Limit of field name length",
    "Limit of dimension fields",
];

impl ErrorCause {
    /// Parses a response body: `{"error": {...}}`, an error object itself, a bare
    /// `{"error": "text"}`, or anything else (kept as the reason, shortened).
    pub fn parse(body: &Value) -> ErrorCause {
        match body.get("error") {
            Some(e @ Value::Object(_)) => Self::from_object(e),
            Some(Value::String(s)) => ErrorCause { kind: String::new(), reason: s.clone(), caused_by: None },
            _ if body.get("type").is_some() => Self::from_object(body),
            _ => ErrorCause { kind: String::new(), reason: short(body), caused_by: None },
        }
    }

    fn from_object(e: &Value) -> ErrorCause {
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        ErrorCause {
            kind: text("type"),
            reason: text("reason"),
            caused_by: e.get("caused_by").filter(|c| c.is_object()).map(|c| Box::new(Self::from_object(c))),
        }
    }

    /// The innermost cause: usually what a reader needs ("field expansion matches too many
    /// fields, limit: 1024").
    pub fn root(&self) -> &ErrorCause {
        self.chain().last().unwrap_or(self)
    }

    /// This error, then each cause below it.
    fn chain(&self) -> impl Iterator<Item = &ErrorCause> {
        std::iter::successors(Some(self), |c| c.caused_by.as_deref())
    }

    /// True when the outermost error's type is one of `kinds` (a document error names the
    /// document at the top; a cause below it may be anything).
    fn kind_in(&self, kinds: &[&str]) -> bool {
        kinds.contains(&self.kind.as_str())
    }

    /// True when this error or any cause has type `kind`.
    pub fn has_kind(&self, kind: &str) -> bool {
        self.chain().any(|c| c.kind == kind)
    }

    fn has_any(&self, kinds: &[&str]) -> bool {
        self.chain().any(|c| c.kind_in(kinds))
    }

    /// True when this error or any cause gives a reason containing one of `texts`.
    fn mentions_any(&self, texts: &[&str]) -> bool {
        self.chain().any(|c| texts.iter().any(|t| c.reason.contains(t)))
    }
}

impl fmt::Display for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind.is_empty(), self.reason.is_empty()) {
            (true, _) => write!(f, "{}", self.reason)?,
            (false, true) => write!(f, "{}", self.kind)?,
            (false, false) => write!(f, "{}: {}", self.kind, self.reason)?,
        }
        if let Some(c) = &self.caused_by {
            write!(f, " (caused by {c})")?;
        }
        Ok(())
    }
}

/// The class of a whole request that the cluster answered with `status`.
pub fn classify_request(status: u16, cause: &ErrorCause) -> Class {
    if cause.has_any(MISCONFIGURED) {
        return Class::Halt;
    }
    if cause.has_any(TRANSIENT) {
        return Class::Retry;
    }
    match status {
        408 | 429 | 500..=599 => Class::Retry,
        413 => Class::Split,
        // 400 (a gateway rule, a malformed request), 401, 403, 404, 405, ...: the path, the
        // credentials or the index must be fixed; never the records' fault.
        _ => Class::Halt,
    }
}

/// The class of one failed item of a `_bulk` response (2xx, 409 and a delete's plain 404 are
/// not failures: see [`crate::bulk::classify_item`]).
pub fn classify_item(status: u16, cause: &ErrorCause) -> Class {
    if cause.has_any(MISCONFIGURED) {
        return Class::Halt;
    }
    if cause.has_any(TRANSIENT) {
        return Class::Retry;
    }
    match status {
        408 | 429 | 500..=599 => Class::Retry,
        400 if cause.kind_in(DOCUMENT_ERRORS) && !cause.mentions_any(INDEX_LIMITS) => Class::Poison,
        // A missing pipeline, a field limit, an alias without a write index, an unknown type:
        // not proven to be the document's fault.
        _ => Class::Halt,
    }
}

/// The class of one document of an `_mget` answer that came back with an `error` instead of
/// `found`: never "absent", never poison. A read that cannot answer now is retried.
pub fn classify_read(cause: &ErrorCause) -> Class {
    if cause.has_any(MISCONFIGURED) {
        Class::Halt
    } else {
        Class::Retry
    }
}

/// The error type of an index that exists already (`PUT /<index>`): an answer, not a failure.
pub const ALREADY_EXISTS: &str = "resource_already_exists_exception";

/// The error type of a search context (PIT or scroll) that expired or was lost: a scan reopens
/// it from its last position.
pub const CONTEXT_MISSING: &str = "search_context_missing_exception";

/// Shard failure types that say the search request itself is wrong: retrying it cannot help.
const WRONG_REQUEST: &[&str] =
    &["illegal_argument_exception", "query_shard_exception", "parsing_exception", "search_parse_exception", "x_content_parse_exception"];

/// The class of a search page some shards failed (their `reason.type`s): [`Class::Halt`] when
/// every failure says the request is wrong, else [`Class::Retry`] (a shard relocating, a node
/// gone: the page would be incomplete, so it is read again).
pub fn classify_shard_failures(kinds: &[&str]) -> Class {
    if !kinds.is_empty() && kinds.iter().all(|k| WRONG_REQUEST.contains(k)) {
        Class::Halt
    } else {
        Class::Retry
    }
}

/// A body shortened for messages.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 500 {
        format!("{}...", &s[..s.floor_char_boundary(500)])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cause(v: Value) -> ErrorCause {
        ErrorCause::parse(&v)
    }

    #[test]
    fn parses_nested_causes() {
        let c = cause(json!({"error": {"type": "search_phase_execution_exception", "reason": "all shards failed",
            "caused_by": {"type": "illegal_argument_exception", "reason": "field expansion matches too many fields"}}, "status": 400}));
        assert_eq!(c.kind, "search_phase_execution_exception");
        assert_eq!(c.root().reason, "field expansion matches too many fields");
        assert!(c.has_kind("illegal_argument_exception"));
        assert_eq!(
            c.to_string(),
            "search_phase_execution_exception: all shards failed (caused by illegal_argument_exception: field expansion matches too many fields)"
        );
        assert_eq!(cause(json!({"error": "Incorrect HTTP method"})).reason, "Incorrect HTTP method");
        assert_eq!(cause(json!("plain")).reason, "\"plain\"");
    }

    #[test]
    fn requests_are_classified_once() {
        let none = ErrorCause::default();
        assert_eq!(classify_request(429, &none), Class::Retry);
        assert_eq!(classify_request(503, &none), Class::Retry);
        assert_eq!(classify_request(401, &cause(json!({"error": {"type": "security_exception", "reason": "unable to authenticate"}}))), Class::Halt);
        assert_eq!(classify_request(403, &none), Class::Halt);
        assert_eq!(classify_request(404, &cause(json!({"error": {"type": "index_not_found_exception", "reason": "no such index"}}))), Class::Halt);
        assert_eq!(classify_request(400, &cause(json!({"error": {"type": "index_closed_exception", "reason": "closed"}}))), Class::Halt);
        assert_eq!(
            classify_request(403, &cause(json!({"error": {"type": "cluster_block_exception", "reason": "blocked by: [FORBIDDEN/8/index write (api)]"}}))),
            Class::Retry
        );
        assert_eq!(classify_request(413, &none), Class::Split);
        // A 400 on the request as a whole is never the records' fault (a gateway, a proxy).
        assert_eq!(
            classify_request(400, &cause(json!({"error": {"type": "illegal_argument_exception", "reason": "Malformed action/metadata line"}}))),
            Class::Halt
        );
        assert_eq!(classify_request(400, &cause(json!("<html>Bad Request</html>"))), Class::Halt);
        assert_eq!(classify_request(418, &none), Class::Halt);
    }

    #[test]
    fn items_say_whether_the_record_or_the_cluster_is_wrong() {
        let c = |t: &str| cause(json!({"type": t, "reason": "x"}));
        assert_eq!(classify_item(404, &c("index_not_found_exception")), Class::Halt);
        assert_eq!(classify_item(400, &c("index_closed_exception")), Class::Halt);
        assert_eq!(classify_item(403, &c("cluster_block_exception")), Class::Retry);
        assert_eq!(classify_item(503, &c("unavailable_shards_exception")), Class::Retry);
        assert_eq!(classify_item(429, &c("es_rejected_execution_exception")), Class::Retry);
        assert_eq!(classify_item(400, &c("document_parsing_exception")), Class::Poison);
        assert_eq!(classify_item(400, &c("mapper_parsing_exception")), Class::Poison);
        assert_eq!(classify_item(403, &c("some_other_exception")), Class::Halt);
        assert_eq!(classify_item(400, &c("strict_dynamic_mapping_exception")), Class::Poison);
        // Poison only on proof: every error type nobody listed halts.
        for unknown in ["illegal_argument_exception", "some_new_exception", "", "action_request_validation_exception"] {
            assert_eq!(classify_item(400, &c(unknown)), Class::Halt, "{unknown}");
        }
        assert_eq!(classify_item(422, &c("mapper_parsing_exception")), Class::Halt, "a document error comes with 400");
        let pipeline = cause(json!({"type": "illegal_argument_exception", "reason": "pipeline with id [stamp] does not exist"}));
        assert_eq!(classify_item(400, &pipeline), Class::Halt);
        let limit = cause(json!({"type": "document_parsing_exception", "reason": "[1:30] failed to parse",
            "caused_by": {"type": "illegal_argument_exception", "reason": "Limit of total fields [1000] has been exceeded while adding new fields [1]"}}));
        assert_eq!(classify_item(400, &limit), Class::Halt, "a field limit is the index's, not the document's");
        let parse = cause(json!({"type": "document_parsing_exception", "reason": "[1:8] failed to parse field [n] of type [long]",
            "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"x\""}}));
        assert_eq!(classify_item(400, &parse), Class::Poison, "the cause below a document error may be anything");
        assert_eq!(classify_read(&c("no_shard_available_action_exception")), Class::Retry);
        assert_eq!(classify_read(&c("index_not_found_exception")), Class::Halt);
        assert_eq!(classify_read(&c("anything_else")), Class::Retry);
    }

    #[test]
    fn shard_failures_halt_only_when_every_one_says_the_request_is_wrong() {
        assert_eq!(classify_shard_failures(&["illegal_argument_exception", "parsing_exception"]), Class::Halt);
        assert_eq!(classify_shard_failures(&["illegal_argument_exception", "node_disconnected_exception"]), Class::Retry);
        assert_eq!(classify_shard_failures(&[""]), Class::Retry);
        assert_eq!(classify_shard_failures(&[]), Class::Retry);
    }
}
