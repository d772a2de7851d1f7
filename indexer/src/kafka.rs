//! What the indexer takes from the user for its Kafka clients, and how it tells a broker it
//! cannot use from one that is slow.
//!
//! - [`GUARDED`]: the librdkafka properties (`--kafka-config` file, then `-X`) may not
//!   override the settings at-least-once and replay-from-zero rest on, nor settings that have a
//!   flag of their own, and secrets may not come on the command line (`ps` shows it).
//! - [`probe`]: before joining the group, one metadata request through a client configured
//!   exactly like the consumer, bounded in time. Wrong credentials, a broker certificate the CA
//!   does not vouch for, a plaintext client on a TLS listener end it at once with a message
//!   naming the cause (exit code 5); an unreachable broker ends it at the deadline.
//! - [`Watch`]: the consumer's error callback after start-up. Every error is counted
//!   (`cutover_indexer_kafka_errors_total{cause}`); authentication and TLS failures (credentials
//!   revoked or rotated, a broker certificate changed) stop the indexer cleanly: it stops
//!   fetching, finishes and commits what it applied, and exits with code 5.

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::IndexerError;
use runtime::kafka_props::Guarded;

/// The librdkafka properties cutover refuses to take from the user (docs/indexer.md lists them).
pub const GUARDED: &[Guarded] = &[
    Guarded {
        key: "enable.auto.offset.store",
        accepted: &["false"],
        why: "cutover stores an offset only once every earlier record of the partition is applied or dead-lettered; \
              automatic storing would commit records still in flight, and a crash would lose them",
    },
    Guarded {
        key: "enable.auto.commit",
        accepted: &["true"],
        why: "cutover commits the offsets it stored on an interval, on revoke and at shutdown; \
              the readiness gate reads other members' progress from those commits (set the interval with --commit-interval)",
    },
    Guarded { key: "auto.commit.interval.ms", accepted: &[], why: "use --commit-interval" },
    Guarded {
        key: "auto.offset.reset",
        accepted: &["earliest", "smallest", "beginning"],
        why: "a new group must replay the topic from its oldest retained record; `latest` would skip the history, `error` would stop",
    },
    Guarded { key: "isolation.level", accepted: &["read_committed"], why: "read_uncommitted would apply records of aborted transactions" },
    Guarded { key: "enable.partition.eof", accepted: &["false"], why: "end-of-partition events are not records; the readiness gate measures the lag instead" },
    Guarded {
        key: "acks",
        accepted: &["all", "-1"],
        why: "a dead letter counts as handled once the broker acknowledged it; with fewer acknowledgements it can be lost after its offset is committed",
    },
    Guarded {
        key: "request.required.acks",
        accepted: &["all", "-1"],
        why: "a dead letter counts as handled once the broker acknowledged it; with fewer acknowledgements it can be lost after its offset is committed",
    },
    Guarded { key: "group.id", accepted: &[], why: "use --group" },
    Guarded { key: "bootstrap.servers", accepted: &[], why: "use --brokers" },
    Guarded { key: "metadata.broker.list", accepted: &[], why: "use --brokers" },
    Guarded { key: "session.timeout.ms", accepted: &[], why: "use --session-timeout" },
];

/// Checks the user's librdkafka properties against the indexer's [`GUARDED`] table (and
/// secrets on the command line, [`runtime::kafka_props::check`]).
pub fn check_properties(file: &[(String, String)], cli: &[(String, String)]) -> Result<(), String> {
    runtime::kafka_props::check(file, cli, GUARDED)
}

/// Why a Kafka client cannot work, from librdkafka's error code and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// SASL credentials refused by the broker.
    Authentication,
    /// The broker refused an operation on the topic or group (ACLs).
    Authorization,
    /// The broker's certificate is not signed by a CA the client trusts (or names another host).
    TlsVerification,
    /// The client speaks plaintext, the listener TLS.
    PlaintextToTls,
    /// The client speaks TLS, the listener does not.
    TlsToPlaintext,
    /// Another TLS failure.
    Tls,
    /// Cannot connect (down, wrong address, firewall).
    Unreachable,
    /// Anything else.
    Other,
}

impl Cause {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Authentication => "authentication",
            Cause::Authorization => "authorization",
            Cause::TlsVerification => "tls_verification",
            Cause::PlaintextToTls => "plaintext_to_tls",
            Cause::TlsToPlaintext => "tls_to_plaintext",
            Cause::Tls => "tls",
            Cause::Unreachable => "unreachable",
            Cause::Other => "other",
        }
    }

    /// What the cause means and how to fix it.
    pub fn explain(self) -> &'static str {
        match self {
            Cause::Authentication => {
                "the broker rejected the SASL credentials (wrong user or password, or wrong sasl.mechanism): \
                                      check sasl.username / sasl.password in the --kafka-config file"
            }
            Cause::Authorization => {
                "the broker refused access to the topic or group (ACLs): grant the indexer's principal \
                                     Read and Describe on the topic, Read on its group, Write on the dead-letter topic"
            }
            Cause::TlsVerification => {
                "TLS verification of the broker's certificate failed (unknown CA, or the certificate does \
                                       not name the broker's host): set ssl.ca.location to the CA that signed the broker's certificate"
            }
            Cause::PlaintextToTls => {
                "the broker's listener speaks TLS but the client connected in plaintext (it hangs up on \
                                      the first request): set security.protocol=SSL or SASL_SSL"
            }
            Cause::TlsToPlaintext => "the client speaks TLS but the broker's listener does not: check security.protocol and the port",
            Cause::Tls => "the TLS handshake with the broker failed: check security.protocol, ssl.* properties and the broker's listener",
            Cause::Unreachable => "cannot connect to any broker: check --brokers, that the brokers run, and the network",
            Cause::Other => "the Kafka client failed",
        }
    }

    /// Causes that no amount of retrying fixes: the configuration must change.
    pub fn is_fatal(self) -> bool {
        matches!(self, Cause::Authentication | Cause::Authorization | Cause::TlsVerification | Cause::PlaintextToTls | Cause::TlsToPlaintext)
    }
}

/// Classifies a librdkafka error (code and text).
pub fn classify(code: Option<RDKafkaErrorCode>, reason: &str) -> Cause {
    let r = reason.to_ascii_lowercase();
    if code == Some(RDKafkaErrorCode::Authentication)
        || code == Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        || r.contains("sasl authentication error")
        || r.contains("authentication failed")
    {
        Cause::Authentication
    } else if matches!(
        code,
        Some(RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::GroupAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed)
    ) {
        Cause::Authorization
    } else if r.contains("certificate verify failed") || r.contains("broker certificate could not be verified") {
        Cause::TlsVerification
    } else if r.contains("connecting to a ssl listener") {
        Cause::PlaintextToTls
    } else if r.contains("connecting to a plaintext broker listener") || r.contains("wrong version number") {
        Cause::TlsToPlaintext
    } else if code == Some(RDKafkaErrorCode::SSL) || r.contains("ssl handshake failed") {
        Cause::Tls
    } else if matches!(
        code,
        Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve | RDKafkaErrorCode::MessageTimedOut)
    ) || r.contains("connection refused")
    {
        Cause::Unreachable
    } else {
        Cause::Other
    }
}

/// The librdkafka error code of an error, if it has one.
fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Records what the probe's client reports.
#[derive(Default)]
struct ProbeCtx {
    seen: Mutex<Vec<(Cause, String)>>,
    /// The client speaks plaintext (security.protocol PLAINTEXT or SASL_PLAINTEXT).
    plaintext: bool,
}

impl ProbeCtx {
    fn record(&self, cause: Cause, reason: &str) {
        self.seen.lock().push((cause, reason.to_string()));
    }

    /// A cause that settles the probe now: a fatal one (a plaintext/TLS mismatch only once
    /// seen twice: one disconnect during the handshake can be a broker restarting).
    fn decisive(&self) -> Option<(Cause, String)> {
        let seen = self.seen.lock();
        let count = |c: Cause| seen.iter().filter(|(s, _)| *s == c).count();
        seen.iter()
            .find(|(c, _)| match c {
                Cause::Authentication | Cause::Authorization | Cause::TlsVerification => true,
                Cause::PlaintextToTls | Cause::TlsToPlaintext | Cause::Tls => count(*c) >= 2,
                _ => false,
            })
            .cloned()
    }

    /// The most telling cause seen, for the deadline.
    fn best(&self) -> Option<(Cause, String)> {
        let seen = self.seen.lock();
        seen.iter().find(|(c, _)| *c != Cause::Unreachable && *c != Cause::Other).or_else(|| seen.last()).cloned()
    }
}

impl ClientContext for ProbeCtx {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, message: &str) {
        // The probe reports one clear line itself; librdkafka's own lines stay for debugging.
        if fac == "FAIL" || fac == "ERROR" {
            // A TLS listener hangs up on a plaintext ApiVersion request at once (librdkafka
            // logs it at info level, without its usual hint).
            let cause = if self.plaintext && message.contains("Disconnected") && message.contains("in state APIVERSION_QUERY") {
                Cause::PlaintextToTls
            } else {
                classify(None, message)
            };
            if cause != Cause::Other {
                self.record(cause, message);
            }
        }
        tracing::debug!(target: "librdkafka", "{fac} {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.record(classify(code_of(&error), reason), reason);
        tracing::debug!(error = %error, reason, "kafka probe");
    }
}

impl ConsumerContext for ProbeCtx {}

/// The client configuration the indexer's consumer gets from the user: `brokers` and the
/// user's properties (already checked).
fn base_config(brokers: &str, props: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg
}

/// Turns a client creation error into a refusal that never contains a secret value.
fn creation_error(e: KafkaError) -> IndexerError {
    match e {
        // Never the value: a misspelt secret key is no longer recognisable as one.
        KafkaError::ClientConfig(_, desc, key, _value) => IndexerError::Refused(format!("librdkafka property {key}: {desc}")),
        other => IndexerError::Refused(format!("cannot create a Kafka client: {other}")),
    }
}

/// Connects once, with the consumer's settings, and asks for the topic's metadata: returns
/// within `timeout`, early on a cause retrying cannot fix. Runs the blocking librdkafka calls
/// on the blocking pool.
pub async fn probe(brokers: &str, props: &[(String, String)], topic: &str, timeout: Duration) -> Result<(), IndexerError> {
    let mut cfg = base_config(brokers, props);
    // Whatever RUST_LOG says, the probe needs librdkafka's connection failures (info level).
    cfg.set_log_level(RDKafkaLogLevel::Info);
    let protocol = props.iter().rev().find(|(k, _)| k == "security.protocol").map(|(_, v)| v.to_ascii_lowercase());
    let plaintext = matches!(protocol.as_deref(), None | Some("plaintext") | Some("sasl_plaintext"));
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || probe_blocking(cfg, plaintext, &brokers, &topic, timeout))
        .await
        .map_err(|e| IndexerError::KafkaUnavailable(format!("the Kafka probe panicked: {e}")))?
}

fn probe_blocking(cfg: ClientConfig, plaintext: bool, brokers: &str, topic: &str, timeout: Duration) -> Result<(), IndexerError> {
    let started = Instant::now();
    let client: BaseConsumer<ProbeCtx> = cfg.create_with_context(ProbeCtx { plaintext, ..ProbeCtx::default() }).map_err(creation_error)?;
    let deadline = started + timeout;
    let fail = |cause: Cause, detail: &str| {
        IndexerError::KafkaUnavailable(format!(
            "{} (brokers {brokers}, after {:.1}s; librdkafka: {})",
            cause.explain(),
            started.elapsed().as_secs_f64(),
            detail.trim()
        ))
    };
    loop {
        let slice = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(500)).max(Duration::from_millis(100));
        let attempt = client.fetch_metadata(Some(topic), slice);
        // librdkafka hands a consumer's errors and logs over through its queue: serve them, so
        // the context sees them.
        for _ in 0..64 {
            let _ = client.poll(Duration::ZERO);
        }
        if let Some((cause, detail)) = client.context().decisive() {
            return Err(fail(cause, &detail));
        }
        match attempt {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    match t.error().map(RDKafkaErrorCode::from) {
                        None => {}
                        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
                            return Err(fail(Cause::Authorization, &format!("topic {topic}: TopicAuthorizationFailed")));
                        }
                        Some(code) => {
                            tracing::warn!(%topic, error = %code, "the command topic is not available yet; the indexer waits for it")
                        }
                    }
                }
                tracing::info!(brokers, elapsed_ms = started.elapsed().as_millis() as u64, "kafka reachable and accepted the client's credentials");
                return Ok(());
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    let (cause, detail) = client.context().best().unwrap_or((classify(code_of(&e), &e.to_string()), e.to_string()));
                    let cause = if cause == Cause::Other { Cause::Unreachable } else { cause };
                    return Err(fail(cause, &detail));
                }
            }
        }
    }
}

/// The consumer's view of Kafka errors after start-up (its `ClientContext::error`).
pub struct Watch {
    stop: CancellationToken,
    fatal: Mutex<Option<String>>,
}

impl Watch {
    /// A watch that fires `stop` on a fatal cause.
    pub fn new(stop: CancellationToken) -> Self {
        Watch { stop, fatal: Mutex::new(None) }
    }

    /// Counts and logs an error; a fatal cause stops the indexer (first reason kept).
    pub fn report(&self, error: &KafkaError, reason: &str) {
        if code_of(error) == Some(RDKafkaErrorCode::AutoOffsetReset) {
            // A position the fetch could not read: dealt with (and reported when it is a gap)
            // by `crate::positions`, from the same error on the consumer queue.
            tracing::debug!(librdkafka = reason, "kafka: {error}");
            return;
        }
        let cause = classify(code_of(error), reason);
        metrics::counter!("cutover_indexer_kafka_errors_total", "cause" => cause.label()).increment(1);
        if cause.is_fatal() {
            tracing::error!(cause = cause.label(), librdkafka = reason, "kafka: {}; stopping (nothing is committed past an unapplied record)", cause.explain());
            let mut fatal = self.fatal.lock();
            if fatal.is_none() {
                *fatal = Some(format!("{} (librdkafka: {})", cause.explain(), reason.trim()));
                self.stop.cancel();
            }
        } else if cause == Cause::Unreachable {
            tracing::warn!(cause = cause.label(), librdkafka = reason, "kafka: {error}");
        } else {
            tracing::error!(cause = cause.label(), librdkafka = reason, "kafka: {error}");
        }
    }

    /// Why the watch stopped the indexer, if it did.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn safety_settings_cannot_be_overridden() {
        let err = check_properties(&[], &kv(&[("enable.auto.offset.store", "true")])).unwrap_err();
        assert!(err.contains("-X enable.auto.offset.store=true is refused") && err.contains("in flight"), "{err}");
        let err = check_properties(&kv(&[("auto.offset.reset", "latest")]), &[]).unwrap_err();
        assert!(err.starts_with("--kafka-config auto.offset.reset=latest"), "{err}");
        assert!(check_properties(&[], &kv(&[("isolation.level", "read_uncommitted")])).is_err());
        assert!(check_properties(&[], &kv(&[("enable.auto.commit", "false")])).is_err());
        assert!(check_properties(&[], &kv(&[("acks", "1")])).is_err());
        assert!(check_properties(&[], &kv(&[("group.id", "x")])).unwrap_err().contains("--group"));
        assert!(check_properties(&[], &kv(&[("bootstrap.servers", "x:1")])).unwrap_err().contains("--brokers"));
        // The values cutover sets itself are fine, in any case.
        let same = kv(&[("enable.auto.offset.store", "false"), ("auto.offset.reset", "Earliest"), ("isolation.level", "read_committed"), ("acks", "all")]);
        assert_eq!(check_properties(&same, &same), Ok(()));
        // Everything else passes through.
        let sec = kv(&[("security.protocol", "SASL_SSL"), ("sasl.mechanism", "SCRAM-SHA-512"), ("fetch.min.bytes", "1")]);
        assert_eq!(check_properties(&sec, &sec), Ok(()));
    }

    #[test]
    fn secrets_are_refused_on_the_command_line_and_never_echoed() {
        let err = check_properties(&[], &kv(&[("sasl.password", "hunter2")])).unwrap_err();
        assert!(err.contains("--kafka-config") && err.contains("ps"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(check_properties(&[], &kv(&[("ssl.key.password", "hunter2")])).is_err());
        assert_eq!(check_properties(&kv(&[("sasl.password", "hunter2")]), &[]), Ok(()), "in the file it is fine");
        // A misspelt secret key: librdkafka's own error would print the value.
        let Err(err) = base_config("127.0.0.1:1", &kv(&[("sasl.pasword", "hunter2")])).create::<BaseConsumer>() else {
            panic!("an unknown property is an error");
        };
        assert!(err.to_string().contains("hunter2"), "librdkafka echoes values: {err}");
        let refused = creation_error(err);
        assert!(refused.to_string().contains("sasl.pasword") && !refused.to_string().contains("hunter2"), "{refused}");
    }

    #[test]
    fn librdkafka_errors_are_classified() {
        use RDKafkaErrorCode as C;
        let auth = "sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512";
        assert_eq!(classify(Some(C::Authentication), auth), Cause::Authentication);
        let ca = "ssl://127.0.0.1:9094/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured";
        assert_eq!(classify(Some(C::SSL), ca), Cause::TlsVerification);
        let plain = "127.0.0.1:9094/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10";
        assert_eq!(classify(Some(C::BrokerTransportFailure), plain), Cause::PlaintextToTls);
        assert_eq!(classify(Some(C::AllBrokersDown), "1/1 brokers are down"), Cause::Unreachable);
        assert_eq!(classify(Some(C::BrokerTransportFailure), "Connect to ipv4#127.0.0.1:1 failed: Connection refused"), Cause::Unreachable);
        assert!(Cause::Authentication.is_fatal() && !Cause::Unreachable.is_fatal());
    }
}
