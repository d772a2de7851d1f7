//! Shared pieces of cutover's end-to-end tests and demo driver: where the real services are,
//! unique names so tests run in parallel, and small Kafka helpers.
//!
//! Tests never mock what crosses a wire: they talk to the Kafka broker and the two
//! Elasticsearch clusters that `dev/services.sh up` starts on 127.0.0.1. A service that cannot
//! be reached fails the test with a message saying how to start it; it is never skipped.

pub mod kafka;
pub mod procs;
pub mod scenario;
pub mod sim;

use cluster::{ClusterConfig, Es};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Endpoints of the services, from the environment `dev/services.sh env` prints, with the
/// script's defaults.
#[derive(Clone, Debug)]
pub struct Services {
    pub kafka: String,
    pub legacy_url: String,
    pub target_url: String,
    /// Elasticsearch 6.8 (`dev/services.sh up legacy6`), for the version-pair tests only.
    pub legacy6_url: String,
    /// OpenSearch 2.x (`dev/services.sh up opensearch`), for the version-pair tests only.
    pub opensearch_url: String,
}

impl Services {
    /// Reads `CUTOVER_KAFKA`, `CUTOVER_LEGACY_URL`, `CUTOVER_TARGET_URL`.
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Services {
            kafka: var("CUTOVER_KAFKA", "127.0.0.1:9092"),
            legacy_url: var("CUTOVER_LEGACY_URL", "http://127.0.0.1:9200"),
            target_url: var("CUTOVER_TARGET_URL", "http://127.0.0.1:9201"),
            legacy6_url: var("CUTOVER_LEGACY6_URL", "http://127.0.0.1:9204"),
            opensearch_url: var("CUTOVER_OPENSEARCH_URL", "http://127.0.0.1:9205"),
        }
    }

    /// The endpoints, checked: every service must answer, or the calling test fails (never
    /// skips) with a message saying how to start them.
    pub async fn require() -> Self {
        let s = Self::from_env();
        let mut missing = Vec::new();
        if tokio::net::TcpStream::connect(&s.kafka).await.is_err() {
            missing.push(format!("Kafka at {}", s.kafka));
        }
        for (name, url) in [("legacy", &s.legacy_url), ("target", &s.target_url)] {
            let es = Es::connect(&ClusterConfig::plain(url.clone())).expect("valid URL");
            if es.get("/_cluster/health").await.is_err() {
                missing.push(format!("{name} Elasticsearch at {url}"));
            }
        }
        assert!(
            missing.is_empty(),
            "services unreachable: {} (start them with `dev/services.sh up`; tests never skip)",
            missing.join(", ")
        );
        s
    }

    /// Asserts that the on-demand cluster `service` (a `dev/services.sh` name such as `legacy6`)
    /// answers at `url`: the calling test fails (never skips) with the command that starts it.
    pub async fn require_extra(service: &str, url: &str) -> Es {
        let es = Es::connect(&ClusterConfig::plain(url.to_string())).expect("valid URL");
        assert!(
            es.get("/_cluster/health").await.is_ok(),
            "{service} unreachable at {url} (start it with `dev/services.sh up {service}`, as dev/test.sh does for this test binary; tests never skip)"
        );
        es
    }

    /// A client of the legacy cluster.
    pub fn legacy(&self) -> Es {
        Es::connect(&ClusterConfig::plain(self.legacy_url.clone())).expect("valid URL")
    }

    /// A client of the target cluster.
    pub fn target(&self) -> Es {
        Es::connect(&ClusterConfig::plain(self.target_url.clone())).expect("valid URL")
    }
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<ms>-<n>`, lower case as index
/// names must be.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() % 100_000_000;
    format!("{}-{}-{}-{}", prefix.to_lowercase(), std::process::id(), ms, N.fetch_add(1, Ordering::Relaxed))
}
