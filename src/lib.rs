//! Shared pieces of cutover's end-to-end tests and demo driver: where the real services are,
//! unique names so tests run in parallel, and small Kafka helpers.
//!
//! Tests never mock what crosses a wire: they talk to the Kafka broker and the two
//! Elasticsearch clusters that `dev/services.sh up` starts on 127.0.0.1. A service that cannot
//! be reached fails the test with a message saying how to start it; it is never skipped.

pub mod kafka;
pub mod procs;
pub mod relay;
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
    /// Elasticsearch 2.4 (`up legacy2`), for the version-pair tests only.
    pub legacy2_url: String,
    /// Elasticsearch 5.6 (`up legacy5`), for the version-pair tests only.
    pub legacy5_url: String,
    /// Elasticsearch 6.8 as a target (`up target6`), for the version-pair tests only.
    pub target6_url: String,
    /// Elasticsearch 8.19 (`up target8`), for the version-pair tests only.
    pub target8_url: String,
    /// OpenSearch 3.x (`up opensearch3`), for the version-pair tests only.
    pub opensearch3_url: String,
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
            legacy2_url: var("CUTOVER_LEGACY2_URL", "http://127.0.0.1:9206"),
            legacy5_url: var("CUTOVER_LEGACY5_URL", "http://127.0.0.1:9207"),
            target6_url: var("CUTOVER_TARGET6_URL", "http://127.0.0.1:9208"),
            target8_url: var("CUTOVER_TARGET8_URL", "http://127.0.0.1:9209"),
            opensearch3_url: var("CUTOVER_OPENSEARCH3_URL", "http://127.0.0.1:9210"),
        }
    }

    /// The `dev/services.sh` name of the server at `url` (for the message naming the command
    /// that starts it).
    pub fn service_name(&self, url: &str) -> &'static str {
        let named = [
            (&self.legacy6_url, "legacy6"),
            (&self.opensearch_url, "opensearch"),
            (&self.legacy2_url, "legacy2"),
            (&self.legacy5_url, "legacy5"),
            (&self.target6_url, "target6"),
            (&self.target8_url, "target8"),
            (&self.opensearch3_url, "opensearch3"),
            (&self.target_url, "target"),
        ];
        named.into_iter().find(|(u, _)| u.as_str() == url).map_or("legacy", |(_, n)| n)
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
        assert!(missing.is_empty(), "services unreachable: {} (start them with `dev/services.sh up`; tests never skip)", missing.join(", "));
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

/// The `kafka-secure` node of `dev/services.sh` (SASL_SSL with SCRAM-SHA-512, a CA of its own):
/// its listener and the librdkafka properties file, mode 600, that holds its credentials.
#[derive(Clone, Debug)]
pub struct SecureKafka {
    /// Bootstrap address of the SASL_SSL listener (`CUTOVER_KAFKA_SECURE`).
    pub brokers: String,
    /// The librdkafka properties file (`CUTOVER_KAFKA_SECURE_CONFIG`): what `--kafka-config` takes.
    pub config: std::path::PathBuf,
    /// Its properties, password included: never print them.
    pub props: Vec<(String, String)>,
}

impl SecureKafka {
    /// Starts the node if needed (`dev/services.sh up kafka-secure`, idempotent; a failure fails
    /// the calling test, never skips it), and registers its properties with [`kafka::register`]
    /// so the harness's Kafka helpers reach it through the secured listener.
    pub fn require() -> Self {
        // Once per test binary: tests running in parallel must not race to start the node.
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| procs::services(&["up", "kafka-secure"]));
        let state = state_dir();
        let brokers = std::env::var("CUTOVER_KAFKA_SECURE").unwrap_or_else(|_| "127.0.0.1:9094".into());
        let config =
            std::env::var("CUTOVER_KAFKA_SECURE_CONFIG").map(std::path::PathBuf::from).unwrap_or_else(|_| state.join("kafka-secure/client.properties"));
        let props = runtime::kafka_props::read(&config).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        kafka::register(&brokers, props.clone());
        SecureKafka { brokers, config, props }
    }

    /// A property of the node's client configuration.
    pub fn prop(&self, key: &str) -> String {
        self.props.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("{key} missing from {}", self.config.display()))
    }
}

/// `dev/services.sh`'s state folder (`CUTOVER_STATE`, else `.dev-state` of this checkout).
fn state_dir() -> std::path::PathBuf {
    std::env::var("CUTOVER_STATE").map(std::path::PathBuf::from).unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".dev-state"))
}

/// The `secure` Elasticsearch node of `dev/services.sh` (TLS with its own CA, security on):
/// its URL, the `elastic` user's password (never print it) and the CA certificate.
#[derive(Clone, Debug)]
pub struct SecureEs {
    pub url: String,
    pub password: String,
    pub ca: std::path::PathBuf,
}

impl SecureEs {
    /// Starts the node if needed (`dev/services.sh up secure`, idempotent; a failure fails the
    /// calling test, never skips it).
    pub fn require() -> Self {
        procs::services(&["up", "secure"]);
        let state = state_dir();
        SecureEs {
            url: std::env::var("CUTOVER_SECURE_URL").unwrap_or_else(|_| "https://127.0.0.1:9203".into()),
            password: std::fs::read_to_string(state.join("secure/elastic-password")).expect("password file").trim().to_string(),
            ca: state.join("secure/config/certs/ca.crt"),
        }
    }

    /// A client of the node as `elastic`, trusting its CA.
    pub fn admin(&self) -> Es {
        Es::connect(&ClusterConfig {
            username: Some("elastic".into()),
            password: Some(self.password.clone()),
            ca_file: Some(self.ca.clone()),
            ..ClusterConfig::plain(self.url.clone())
        })
        .expect("client of the secure node")
    }
}

/// A backfill job name for a test, from a path unique to it (the whole path, made topic-safe:
/// `/tmp/x/copy` -> `tmp.x.copy`), so that a rerun with the same path resumes the same job.
pub fn job_name(path: &std::path::Path) -> String {
    let whole = backfill::job::topic_safe(&path.to_string_lossy().trim_start_matches('/').replace('/', "."));
    // A topic name holds 249 characters, `cutover-backfill.` included: keep the unique end.
    let skip = whole.chars().count().saturating_sub(200);
    whole.chars().skip(skip).collect()
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<ms>-<n>`, lower case as index
/// names must be.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() % 100_000_000;
    format!("{}-{}-{}-{}", prefix.to_lowercase(), std::process::id(), ms, N.fetch_add(1, Ordering::Relaxed))
}
