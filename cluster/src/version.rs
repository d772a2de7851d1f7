//! Which server answers. The scan method depends on it (point-in-time from 7.10, sliced scroll
//! before), so the backfill asks before it reads.

use crate::{Es, EsError};
use serde_json::Value;

/// A server's distribution and version, as it reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerVersion {
    /// `elasticsearch` or `opensearch`.
    pub distribution: String,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The version text as reported, e.g. `7.17.29`.
    pub number: String,
}

impl ServerVersion {
    /// Parses `GET /`'s `version` object.
    pub fn from_root(body: &Value) -> Option<Self> {
        let v = body.get("version")?;
        let number = v.get("number")?.as_str()?.to_string();
        let distribution = v.get("distribution").and_then(Value::as_str).unwrap_or("elasticsearch").to_string();
        Self::parse(&distribution, &number)
    }

    fn parse(distribution: &str, number: &str) -> Option<Self> {
        let mut parts = number.split(['.', '-']).map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(ServerVersion { distribution: distribution.to_string(), major, minor, patch, number: number.to_string() })
    }

    /// True for OpenSearch, whose point-in-time API has its own endpoint.
    pub fn is_opensearch(&self) -> bool {
        self.distribution == "opensearch"
    }

    /// True when the server has a point-in-time reader a scan can resume in: OpenSearch 2.4+,
    /// and Elasticsearch 7.12+ (PIT exists from 7.10, but the cheap `_shard_doc` tiebreak sort
    /// that `search_after` needs arrived in 7.12).
    pub fn supports_pit(&self) -> bool {
        if self.is_opensearch() {
            (self.major, self.minor) >= (2, 4)
        } else {
            (self.major, self.minor) >= (7, 12)
        }
    }

    /// True when documents carry a `_seq_no` (Elasticsearch 6.0+, every OpenSearch): a scan can
    /// then be sorted on it and resumed mid-slice. Before 6.0 a slice restarts from its start.
    pub fn has_seq_no(&self) -> bool {
        self.is_opensearch() || self.major >= 6
    }

    /// True when a scroll can be sliced (Elasticsearch 5.0+, every OpenSearch); 2.x reads an
    /// index in one scroll.
    pub fn supports_sliced_scroll(&self) -> bool {
        self.is_opensearch() || self.major >= 5
    }

    /// True when a search takes `track_total_hits` (Elasticsearch 6.0+, every OpenSearch);
    /// before 6.0 it is refused, and every search counts its hits exactly anyway.
    pub fn has_track_total_hits(&self) -> bool {
        self.is_opensearch() || self.major >= 6
    }

    /// The query parameters 6.x needs to take and give typeless requests: `_bulk` actions
    /// without `_type` go to `_doc` (`type=_doc`), index creation and `GET /<index>` without
    /// the type level (`include_type_name=false`, 6.7+). Empty elsewhere.
    pub fn typeless_bulk_param(&self) -> Option<&'static str> {
        (!self.is_opensearch() && self.major == 6).then_some("type=_doc")
    }

    /// See [`ServerVersion::typeless_bulk_param`].
    pub fn typeless_index_param(&self) -> Option<&'static str> {
        (!self.is_opensearch() && self.major == 6 && self.minor >= 7).then_some("include_type_name=false")
    }

    /// True when an index holds documents under mapping types in its APIs (`/index/type/id`,
    /// `_type` in bulk actions): Elasticsearch before 7.0. 6.x creates one type per index.
    pub fn typed(&self) -> bool {
        !self.is_opensearch() && self.major < 7
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.distribution, self.number)
    }
}

/// Asks the server for its version: `GET /`, or, where the root endpoint is absent (minimal
/// distributions of 8.x+ ship it as an optional module), the local node's info. The answer is
/// kept by the client ([`Es::server_version`]), which also speaks the server's dialect with it.
pub async fn detect(es: &Es) -> Result<ServerVersion, EsError> {
    es.server_version().await.cloned()
}

/// The uncached `GET /` (or node info) behind [`Es::server_version`].
pub(crate) async fn ask(es: &Es) -> Result<ServerVersion, EsError> {
    let (status, body) = es.request(elasticsearch::http::Method::Get, "/", None).await?;
    if status == 200 {
        if let Some(v) = ServerVersion::from_root(&body) {
            return Ok(v);
        }
    }
    let nodes = es.get("/_nodes/_local?filter_path=nodes.*.version").await?;
    nodes
        .get("nodes")
        .and_then(Value::as_object)
        .and_then(|m| m.values().next())
        .and_then(|n| n.get("version"))
        .and_then(Value::as_str)
        .and_then(|n| ServerVersion::parse("elasticsearch", n))
        .ok_or_else(|| EsError::Decode { method: "GET".into(), path: "/_nodes/_local".into(), detail: "no version".into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_root_bodies() {
        let v = ServerVersion::from_root(&json!({"version": {"number": "7.17.29"}})).unwrap();
        assert_eq!((v.major, v.minor, v.patch), (7, 17, 29));
        assert!(v.supports_pit());
        let old = ServerVersion::from_root(&json!({"version": {"number": "6.8.23"}})).unwrap();
        assert!(!old.supports_pit());
        let no_tiebreak = ServerVersion::from_root(&json!({"version": {"number": "7.10.2"}})).unwrap();
        assert!(!no_tiebreak.supports_pit());
        let os = ServerVersion::from_root(&json!({"version": {"distribution": "opensearch", "number": "2.11.0"}})).unwrap();
        assert!(os.is_opensearch() && os.supports_pit());
        assert!(ServerVersion::from_root(&json!({"version": {"number": "9.2.0-SNAPSHOT"}})).unwrap().major == 9);
        let v2 = ServerVersion::from_root(&json!({"version": {"number": "2.4.6"}})).unwrap();
        assert!(!v2.has_seq_no() && !v2.supports_sliced_scroll() && v2.typed());
        let v5 = ServerVersion::from_root(&json!({"version": {"number": "5.6.16"}})).unwrap();
        assert!(!v5.has_seq_no() && v5.supports_sliced_scroll() && v5.typed() && !v5.has_track_total_hits());
        assert!(old.has_seq_no() && old.typed());
        assert_eq!((old.typeless_bulk_param(), old.typeless_index_param()), (Some("type=_doc"), Some("include_type_name=false")));
        assert_eq!((v.typeless_bulk_param(), v.typeless_index_param(), os.typeless_bulk_param()), (None, None, None));
        assert!(os.has_seq_no() && !os.typed() && !v.typed());
    }
}
