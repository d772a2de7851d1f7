//! A thin client over the `elasticsearch` crate's transport. cutover needs only a handful of
//! endpoints, several of which differ between 7.x and 9.x, so it sends raw requests and
//! parses JSON itself rather than using the generated per-version API structs.

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde_json::Value;

use crate::error::{classify_request, Class, ErrorCause};
use crate::retry::{RetryError, RetryPolicy};
use crate::{ClusterConfig, ServerVersion};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Why a request failed. Elasticsearch's error JSON is parsed once, here; what a failure means
/// (retry, halt, split) is decided once, in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// The configuration cannot produce a client (bad URL, unreadable CA file).
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    /// The request never got an HTTP answer (refused, reset, timed out). Retryable.
    #[error("{method} {path}: no answer from the cluster: {detail}")]
    Transport { method: String, path: String, detail: String },
    /// The cluster answered with an error status.
    #[error("{method} {path}: HTTP {status}: {cause}")]
    Status { method: String, path: String, status: u16, cause: Box<ErrorCause> },
    /// The body was not the JSON we expected.
    #[error("{method} {path}: unexpected response: {detail}")]
    Decode { method: String, path: String, detail: String },
}

impl EsError {
    /// An error status with its body parsed.
    pub fn status_of(method: &str, path: &str, status: u16, body: &Value) -> Self {
        EsError::Status { method: method.to_string(), path: path.to_string(), status, cause: Box::new(ErrorCause::parse(body)) }
    }

    /// What to do about this failure (see [`crate::error`]).
    pub fn class(&self) -> Class {
        match self {
            EsError::Config(_) => Class::Halt,
            EsError::Transport { .. } | EsError::Decode { .. } => Class::Retry,
            EsError::Status { status, cause, .. } => classify_request(*status, cause),
        }
    }

    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class() == Class::Retry
    }

    /// The HTTP status, when the cluster answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            EsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Elasticsearch's error, when the cluster answered with one.
    pub fn cause(&self) -> Option<&ErrorCause> {
        match self {
            EsError::Status { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

/// A connection to one cluster. Cheap to clone (the transport is shared).
///
/// Two kinds of calls. The data path ([`Es::raw`], [`Es::request_once`], and the `_bulk`,
/// `_mget` and search calls built on them) sends once: its callers retry under the run's
/// [`RetryPolicy`] with what they know (which items are left, which context to reopen). Every
/// other call ([`Es::request`], [`Es::ok`], [`Es::get`], [`Es::get_index`], [`Es::refresh`]:
/// settings, health, pipelines, index creation) retries what may pass (no answer, 429, 5xx)
/// under the policy given by [`Es::with_retry`]; a client without one sends once.
#[derive(Clone)]
pub struct Es {
    client: Elasticsearch,
    url: String,
    retry: RetryPolicy,
    cancel: CancellationToken,
    /// The server's version, asked once (shared by clones): it decides the scan method and the
    /// dialect of a few calls (6.x's types).
    server: Arc<tokio::sync::OnceCell<ServerVersion>>,
}

impl std::fmt::Debug for Es {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Es({})", self.url)
    }
}

impl Es {
    /// Builds a client from a config. Fails only on configuration errors; it does not connect.
    pub fn connect(cfg: &ClusterConfig) -> Result<Self, EsError> {
        let url = elasticsearch::http::Url::parse(&cfg.url).map_err(|e| EsError::Config(format!("bad URL {:?}: {e}", cfg.url)))?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(cfg.timeout).enable_meta_header(false);
        builder = if cfg.compression {
            builder.request_body_compression(true)
        } else {
            // The HTTP client asks for gzip unless told otherwise, and Elasticsearch then spends
            // its CPU compressing every response (scan pages above all, on the live legacy
            // cluster) for the client to spend its own inflating them.
            builder.header(ACCEPT_ENCODING, HeaderValue::from_static("identity"))
        };
        if let Some(creds) = credentials(cfg) {
            builder = builder.auth(creds);
        }
        if cfg.insecure {
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| EsError::Config(format!("cannot read CA file {}: {e}", path.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| EsError::Config(format!("bad CA file {}: {e}", path.display())))?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder.build().map_err(|e| EsError::Config(e.to_string()))?;
        let es = Es {
            client: Elasticsearch::new(transport),
            url: cfg.url.clone(),
            retry: RetryPolicy::default(),
            cancel: CancellationToken::new(),
            server: Arc::default(),
        };
        Ok(es.once())
    }

    /// The same client, its control-plane calls retried under `policy` until `cancel` fires.
    pub fn with_retry(self, policy: RetryPolicy, cancel: CancellationToken) -> Self {
        Es { retry: policy, cancel, ..self }
    }

    /// The same client, every call sent once: for a poll that must report a failure at once
    /// rather than wait it out (the indexer's readiness gate).
    pub fn once(&self) -> Self {
        Es { retry: RetryPolicy { max_retries: Some(0), ..RetryPolicy::default() }, ..self.clone() }
    }

    /// The server's distribution and version, asked on first use and kept (a failed ask is
    /// retried under the client's policy, and asked again on the next call).
    pub async fn server_version(&self) -> Result<&ServerVersion, EsError> {
        self.server.get_or_try_init(|| crate::version::ask(self)).await
    }

    /// `path` with the query parameter `param` appended, if any.
    fn with_param(path: &str, param: Option<&str>) -> String {
        match param {
            Some(p) if path.contains('?') => format!("{path}&{p}"),
            Some(p) => format!("{path}?{p}"),
            None => path.to_string(),
        }
    }

    /// The URL this client talks to (no credentials in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request and returns the status and raw body. Transport failures become
    /// [`EsError::Transport`]; HTTP error statuses are returned, not raised, so callers that
    /// expect 404 or 409 can look at them.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Bytes>, content_type: &'static str) -> Result<(u16, Bytes), EsError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        let sent = self.client.transport().send(method, path, headers, None::<&()>, body, None).await.map_err(|e| EsError::Transport {
            method: method_name(method),
            path: path.to_string(),
            detail: e.to_string(),
        })?;
        let status = sent.status_code();
        let bytes =
            sent.bytes().await.map_err(|e| EsError::Transport { method: method_name(method), path: path.to_string(), detail: format!("reading body: {e}") })?;
        Ok((status.as_u16(), bytes))
    }

    /// Sends a JSON request and returns `(status, raw body)`, for callers that parse the body
    /// into their own types.
    pub async fn request_bytes(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Bytes), EsError> {
        let payload = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON value serializes")));
        self.raw(method, path, payload, "application/json").await
    }

    /// Sends a JSON request and returns `(status, parsed body)`; a non-JSON body is an error.
    /// Retried under the client's policy while the cluster does not answer, or answers 429 or
    /// a 5xx that may pass ([`crate::error::classify_request`]); the last such answer is then
    /// an error. Other statuses are returned for the caller to read (404, 409...).
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Value), EsError> {
        let once = || async move {
            match self.request_once(method, path, body).await? {
                (status, value) if status >= 300 => match EsError::status_of(&method_name(method), path, status, &value) {
                    e if e.is_retryable() => Err(e),
                    _ => Ok((status, value)),
                },
                answer => Ok(answer),
            }
        };
        self.retry.run("request", &self.cancel, EsError::is_retryable, once).await.map_err(RetryError::into_last)
    }

    /// [`Es::request`] sent once, for callers that retry themselves (the data path). An error
    /// status with a body that is not JSON (a proxy's or a gateway's page) comes back with the
    /// page as text ([`error_body`]): its status decides, never a decoding failure.
    pub async fn request_once(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Value), EsError> {
        let (status, bytes) = self.request_bytes(method, path, body).await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else if status >= 300 {
            error_body(&bytes)
        } else {
            serde_json::from_slice(&bytes).map_err(|e| EsError::Decode {
                method: method_name(method),
                path: path.to_string(),
                detail: format!("{e}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])),
            })?
        };
        Ok((status, value))
    }

    /// Like [`Es::request`] but any status outside 2xx is an [`EsError::Status`].
    pub async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, EsError> {
        success(method, path, self.request(method, path, body).await?)
    }

    /// [`Es::ok`] sent once (the data path).
    pub async fn ok_once(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, EsError> {
        success(method, path, self.request_once(method, path, body).await?)
    }

    /// `PUT /<index>` with a create body: `true` when this call created it, `false` when it
    /// already existed (created by another process, or by this call's own earlier attempt that
    /// the retry did not see answered); the caller decides what an existing index means.
    /// The body is typeless; a 6.x server is told so (`include_type_name=false`).
    pub async fn create_index(&self, index: &str, body: &Value) -> Result<bool, EsError> {
        let path = format!("/{}", enc(index));
        let url = Self::with_param(&path, self.server_version().await?.typeless_index_param());
        match self.request(Method::Put, &url, Some(body)).await? {
            (200..=299, _) => Ok(true),
            (400, resp) if ErrorCause::parse(&resp).has_kind(crate::error::ALREADY_EXISTS) => Ok(false),
            (status, resp) => Err(EsError::status_of("PUT", &path, status, &resp)),
        }
    }

    /// `POST path` of a search (`/<index>/_search`, `/_search` with a PIT, `/_search/scroll`,
    /// `/<index>/_search?scroll=`): `(status, body)`, since a lost search context shows in
    /// either.
    pub async fn search(&self, path: &str, body: &Value) -> Result<(u16, Value), EsError> {
        self.request_once(Method::Post, path, Some(body)).await
    }

    /// Opens a point in time (`POST /<index>/_pit`, or OpenSearch's
    /// `/<index>/_search/point_in_time`), 2xx required.
    pub async fn open_pit(&self, path: &str) -> Result<Value, EsError> {
        self.ok_once(Method::Post, path, None).await
    }

    /// Releases a search context (`DELETE /_pit`, `/_search/point_in_time` or
    /// `/_search/scroll` with its id): `(status, body)`.
    pub async fn close_context(&self, path: &str, body: &Value) -> Result<(u16, Value), EsError> {
        self.request_once(Method::Delete, path, Some(body)).await
    }

    /// `GET path`, 2xx required.
    pub async fn get(&self, path: &str) -> Result<Value, EsError> {
        self.ok(Method::Get, path, None).await
    }

    /// Sends an NDJSON `_bulk` body and returns the response's bytes, unparsed (the writer
    /// reads only each item's status and error: [`crate::bulk::outcomes`]). A non-2xx status
    /// for the whole request (e.g. 429 from a full write queue, 503) is an error the caller
    /// retries.
    ///
    /// The response is trimmed with [`BULK_FILTER_PATH`]: per item only what
    /// [`crate::bulk::outcomes`] reads, in request order (every item keeps its `status`, so
    /// none is dropped from the array and the item count still matches the request).
    pub async fn bulk_response(&self, ndjson: Bytes, refresh: bool) -> Result<Bytes, EsError> {
        let path = if refresh { "/_bulk?refresh=true" } else { "/_bulk" };
        let path = Self::with_param(path, self.server_version().await?.typeless_bulk_param());
        let url = Self::with_param(&path, Some(&format!("filter_path={BULK_FILTER_PATH}")));
        let (status, bytes) = self.raw(Method::Post, &url, Some(ndjson), "application/x-ndjson").await?;
        if !(200..300).contains(&status) {
            return Err(EsError::status_of("POST", &path, status, &error_body(&bytes)));
        }
        Ok(bytes)
    }

    /// [`Es::bulk_response`], parsed (for callers that look at the whole response).
    pub async fn bulk(&self, ndjson: Bytes, refresh: bool) -> Result<Value, EsError> {
        let bytes = self.bulk_response(ndjson, refresh).await?;
        serde_json::from_slice(&bytes).map_err(|e| EsError::Decode { method: "POST".into(), path: "/_bulk".into(), detail: e.to_string() })
    }

    /// `POST /_mget` with `{"docs": [{"_index", "_id", "routing"?}...]}`, 2xx required. Each
    /// document of the answer has `found`, or an `error` of its own that callers must not read
    /// as "absent" (see [`crate::error::classify_read`]).
    pub async fn mget(&self, body: &Value) -> Result<Value, EsError> {
        self.ok_once(Method::Post, "/_mget", Some(body)).await
    }

    /// `GET /<index>` and the definition (`{settings, mappings, aliases}`) under its concrete
    /// name; `None` on 404. An alias is resolved, but only to exactly one index: over several,
    /// there is no single definition to check or copy, and it is an error.
    pub async fn get_index(&self, index: &str) -> Result<Option<Value>, EsError> {
        let path = format!("/{}", enc(index));
        let url = Self::with_param(&path, self.server_version().await?.typeless_index_param());
        let (status, mut body) = self.request(Method::Get, &url, None).await?;
        match status {
            404 => Ok(None),
            200..=299 => {
                let obj = body.as_object_mut().filter(|o| o.len() == 1).ok_or_else(|| EsError::Decode {
                    method: "GET".into(),
                    path: path.clone(),
                    detail: "expected exactly one index (an alias over several indices is not supported)".into(),
                })?;
                Ok(obj.values_mut().next().map(Value::take))
            }
            _ => Err(EsError::status_of("GET", &path, status, &body)),
        }
    }

    /// Refreshes an index so that searches see every acknowledged write.
    pub async fn refresh(&self, index: &str) -> Result<(), EsError> {
        self.ok(Method::Post, &format!("/{}/_refresh", enc(index)), None).await.map(|_| ())
    }
}

/// The body of a 2xx answer; any other status is an [`EsError::Status`].
fn success(method: Method, path: &str, (status, value): (u16, Value)) -> Result<Value, EsError> {
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        Err(EsError::status_of(&method_name(method), path, status, &value))
    }
}

/// The `filter_path` of every `_bulk` request: `errors` and each item's `status`, `error` and
/// `result` (the item's `_index`, `_id`, `_version`, `_shards`, `_seq_no`... are never read,
/// and were most of the response's bytes). A whole-request error body (`error`, `status`) is
/// not filtered by Elasticsearch or OpenSearch.
pub const BULK_FILTER_PATH: &str = "errors,items.*.status,items.*.error,items.*.result";

/// The body of an error response, for [`EsError::status_of`]: its JSON, or (a proxy's page,
/// a truncated body) its first 500 bytes as text.
pub fn error_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned()))
}

/// Percent-encodes one path segment (document ids may contain `/`, `?`, spaces...).
pub fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

fn credentials(cfg: &ClusterConfig) -> Option<Credentials> {
    if let Some(key) = &cfg.api_key {
        return Some(Credentials::EncodedApiKey(key.clone()));
    }
    cfg.username.as_ref().map(|u| Credentials::Basic(u.clone(), cfg.password.clone().unwrap_or_default()))
}

fn method_name(m: Method) -> String {
    format!("{m:?}").to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(enc("plain-id_1"), "plain-id_1");
    }

    #[test]
    fn retryable_classes() {
        let s = |status| EsError::status_of("POST", "/", status, &Value::Null);
        assert!(s(429).is_retryable());
        assert!(s(503).is_retryable());
        assert!(!s(400).is_retryable());
        assert!(!s(404).is_retryable());
        assert!(EsError::Transport { method: "GET".into(), path: "/".into(), detail: "refused".into() }.is_retryable());
    }
}
