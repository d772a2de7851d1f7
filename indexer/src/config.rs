//! The indexer's configuration: every option, its default and why, as `--help` shows it.

use clap::{Args, Parser, ValueEnum};
use cluster::config::{LegacyArgs, TargetArgs};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Replays a Kafka command topic into the new Elasticsearch cluster, idempotently.
///
/// The indexer joins its own consumer group and starts from the oldest retained record
/// (auto.offset.reset=earliest); a restart resumes from the committed offsets. Full writes and
/// deletes use external versions, so replay and the backfill converge in any order; merges are
/// read-merge-write, with the base taken from the legacy cluster when the new one lacks the
/// document. Offsets are committed only once every earlier record of the partition is applied
/// or dead-lettered.
///
/// Exit codes: 0 stopped cleanly (SIGTERM/SIGINT, or --exit-when-idle); 1 other error;
/// 2 refused to start (configuration or target index unfit, nothing consumed); 3 halted on a
/// poison record (--on-poison halt) or by the poison breaker (--max-poison-run,
/// --max-poison-ratio); 4 halted because the target cluster, or the path to it, must be fixed
/// first (any refusal not proven to be the record's fault);
/// 5 Kafka unavailable (credentials or TLS refused, at start or later, or no broker reachable
/// within --kafka-connect-timeout). Nothing is committed past an unapplied record.
#[derive(Parser, Clone, Debug)]
#[command(name = "indexer", version, about, long_about)]
pub struct IndexerConfig {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
}

/// Where the commands come from.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaArgs {
    /// Bootstrap servers of the Kafka cluster.
    #[arg(long, env = "CUTOVER_KAFKA", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// The command topic (the one the legacy indexer consumes).
    #[arg(long, env = "CUTOVER_TOPIC")]
    pub topic: String,
    /// Consumer group of this indexer. It must differ from the legacy indexer's group: the new
    /// indexer replays the topic from the start under its own offsets.
    #[arg(long, env = "CUTOVER_GROUP", default_value = "cutover-indexer")]
    pub group: String,
    /// Dead-letter topic for records that cannot be applied (default: `<topic>.dlq`).
    #[arg(long)]
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka properties for every Kafka client of the indexer (consumer, dead-letter
    /// producer, lag reader), e.g. `-X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512
    /// -X ssl.ca.location=/etc/kafka-ca.pem` (repeatable). Refused (exit code 2): secrets
    /// (`sasl.password`, `ssl.key.password`...: `ps` shows the command line; use --kafka-config),
    /// what at-least-once replay from zero rests on (`enable.auto.offset.store`,
    /// `enable.auto.commit`, `auto.offset.reset` other than earliest,
    /// `isolation.level=read_uncommitted`, `acks` other than all), and what has a flag
    /// (`group.id`, `bootstrap.servers`, `session.timeout.ms`, `auto.commit.interval.ms`).
    #[arg(short = 'X', value_parser = runtime::kafka_props::parse_kv, value_name = "KEY=VALUE")]
    pub properties: Vec<(String, String)>,
    /// A file of librdkafka properties (`key=value` lines, `#` comments), applied before -X: the
    /// place for `sasl.password` (keep it mode 600). Same refusals as -X, secrets excepted.
    #[arg(long, env = "CUTOVER_KAFKA_CONFIG")]
    pub kafka_config: Option<PathBuf>,
    /// Before joining the group the indexer asks the brokers for the topic's metadata with these
    /// settings. Rejected credentials, a broker certificate no trusted CA signed, or a
    /// plaintext/TLS mismatch end it at once; brokers still unreachable after this long end it
    /// too (exit code 5, naming the cause).
    #[arg(long, default_value = "30s", value_parser = runtime::duration::parse)]
    pub kafka_connect_timeout: Duration,
    /// How often stored offsets are committed (also committed on revoke and shutdown).
    #[arg(long, default_value = "1s", value_parser = runtime::duration::parse)]
    pub commit_interval: Duration,
    /// Consumer session timeout: how soon the group notices a dead indexer.
    #[arg(long, default_value = "10s", value_parser = runtime::duration::parse)]
    pub session_timeout: Duration,
}

/// How records become commands.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Commands")]
pub struct DecodeArgs {
    /// Where each command's per-document version comes from: `field:<path>` (a body field),
    /// `header:<name>` (a record header) or `offset` (the Kafka offset, valid only when the topic
    /// is keyed by document id). Required: without a version, replay and backfill cannot be
    /// ordered and the migration would not converge.
    #[arg(long, env = "CUTOVER_VERSION_SOURCE")]
    pub version_source: schema::VersionSource,
    /// Where a legacy document's version lives: `field:<path>` in `_source` (the legacy indexer
    /// stores the command's version in the document), or `_version` when the legacy indexer
    /// wrote with external versions. Required, as for the backfill: merge bases are taken from
    /// the legacy cluster at this version, and with `field:<path>` the indexer also writes the
    /// command's version at `<path>` in every document it writes, as the legacy indexer does,
    /// so replayed and copied documents are identical.
    #[arg(long, env = "CUTOVER_LEGACY_VERSION")]
    pub legacy_version: Option<schema::LegacyVersionSource>,
    /// What the LEGACY indexer does with a merge (partial update) of a document that does not
    /// exist: `ignore` it (the update API without upsert) or `create` the document from the
    /// merge alone (`doc_as_upsert`, Kafka Connect's upsert mode). Required: the new cluster
    /// must end up as the legacy indexer leaves the old one, and guessing wrong loses (or
    /// invents) documents silently. See docs/indexer.md, "Legacy indexer behaviours".
    #[arg(long, env = "CUTOVER_MERGE_ABSENT", value_enum)]
    pub merge_absent: Option<MergeAbsent>,
    /// What a record with a null value is: `dead-letter` (not a command), or `delete`: Kafka's
    /// compaction convention, a delete of the document whose id is the record key, in
    /// --default-index, at the version from a `header:` or `offset` version source (a `field:`
    /// source cannot version it: such records are dead-lettered as `null_value_unversioned`).
    #[arg(long, env = "CUTOVER_NULL_VALUE", value_enum, default_value_t = NullValue::DeadLetter)]
    pub null_value: NullValue,
    /// Index used when a command names none.
    #[arg(long)]
    pub default_index: Option<String>,
    /// Map a command's (legacy) index to a target index: `legacy=target` (repeatable). Without
    /// a mapping the target index has the command's index name.
    #[arg(long = "index-map", value_parser = runtime::kafka_props::parse_kv, value_name = "LEGACY=TARGET")]
    pub index_map: Vec<(String, String)>,
    /// Dotted path of the legacy documents' tag map.
    #[arg(long, default_value = "actions.tags")]
    pub tags_path: String,
    /// Name of the target documents' tag field.
    #[arg(long, default_value = "tags")]
    pub tags_field: String,
    /// A JSON file of envelope field names (see docs/schema.md), for topics whose producers use other names.
    #[arg(long)]
    pub envelope: Option<PathBuf>,
    /// Largest accepted record payload in bytes; larger ones are dead-lettered.
    #[arg(long, default_value_t = schema::DEFAULT_MAX_BYTES)]
    pub max_payload_bytes: usize,
}

/// How commands are grouped into bulk requests.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Batching")]
pub struct BatchArgs {
    /// Most commands in one bulk request (larger bulks cost the target less per document:
    /// fewer requests and translog syncs; dev/bench.sh measures it).
    #[arg(long, default_value_t = 2000)]
    pub batch_max_docs: usize,
    /// Most bytes of payload in one bulk request.
    #[arg(long, default_value_t = 5 * 1024 * 1024)]
    pub batch_max_bytes: usize,
    /// Longest wait for a batch to fill when a bulk request could go (while every request a
    /// lane may have in flight is unanswered, its next batch keeps filling, so batches grow
    /// with the bulk latency under load).
    #[arg(long, default_value = "50ms", value_parser = runtime::duration::parse)]
    pub linger: Duration,
    /// Bulk requests in flight at once. Commands are spread by document id over half as many
    /// lanes (one document's commands stay in order); each lane sends its next batch while its
    /// previous one is answered, holding back only the commands of documents still in flight.
    #[arg(long, default_value_t = 4)]
    pub max_in_flight: usize,
    /// Give up on a batch after this many consecutive retries and halt (exit code 4) without
    /// committing past it (default: retry forever; an outage pauses the indexer instead of
    /// losing data).
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Largest backoff between retries.
    #[arg(long, default_value = "30s", value_parser = runtime::duration::parse)]
    pub max_backoff: Duration,
}

/// The legacy indexer's rule for a merge of a document that exists nowhere.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeAbsent {
    /// The merge is a no-op (the update API without upsert).
    Ignore,
    /// The merge creates the document from its own fields (`doc_as_upsert`).
    Create,
}

/// What a null-value record means.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NullValue {
    /// Dead-letter it (kind `null_value`).
    DeadLetter,
    /// Delete the document named by the record key (compacted topics).
    Delete,
}

/// What to do with a record that cannot be applied.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnPoison {
    /// Write it to the dead-letter topic with the reason and go on.
    DeadLetter,
    /// Stop the indexer (exit code 3) without committing past it.
    Halt,
}

/// Logs format (shared with the backfill).
pub use runtime::LogFormat;

/// Operations: metrics, readiness, logs, shutdown, safety checks.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Operations")]
pub struct OpsArgs {
    /// What to do with poison records: those proven bad (undecodable, or a document the
    /// target's mapping refuses for its own content). Any other refusal halts (exit code 4).
    #[arg(long, value_enum, default_value_t = OnPoison::DeadLetter)]
    pub on_poison: OnPoison,
    #[command(flatten)]
    pub breaker: cluster::breaker::BreakerArgs,
    /// Address of the HTTP endpoint serving `/metrics` (Prometheus) and `/ready` (200 when the
    /// lag is 0 on every partition of the topic, for the whole group: the gate for switching reads).
    #[arg(long, env = "CUTOVER_INDEXER_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Smallest `index.gc_deletes` the target index must have. Deletes must be remembered for
    /// the whole migration, or a stale backfill write resurrects a deleted document. A time
    /// duration (`1h`, `90m`), as for the backfill.
    #[arg(long, default_value = "1h", value_parser = runtime::duration::parse)]
    pub min_gc_deletes: Duration,
    /// On SIGTERM/SIGINT, how long to wait for in-flight writes before exiting anyway
    /// (unfinished records are not committed, so they are replayed on restart).
    #[arg(long, default_value = "20s", value_parser = runtime::duration::parse)]
    pub shutdown_timeout: Duration,
    /// Refresh the target after each bulk request (tests and demos only: it is slow).
    #[arg(long)]
    pub refresh: bool,
    /// Exit by itself once caught up (lag 0 everywhere) and idle for this long
    /// (for one-shot runs and demos; by default the indexer runs until stopped). A clean stop
    /// logs what the run did: `records` completed, `span_secs` from the first record received
    /// to the last completed, and their rate.
    #[arg(long, value_parser = runtime::duration::parse)]
    pub exit_when_idle: Option<Duration>,
    /// Go on past offset gaps (records retention deleted before this group applied them),
    /// from the log start. Without it a gap stops its partition and keeps /ready closed: give
    /// it only on the restart after `backfill copy` ran again AFTER the gap (that copy holds
    /// the lost records' effects), then drop it (the committed offsets are past the gap by
    /// then). Each accepted gap is logged and counted.
    #[arg(long)]
    pub accept_offset_gaps: bool,
}

impl IndexerConfig {
    /// The dead-letter topic name.
    pub fn dead_letter_topic(&self) -> String {
        self.kafka.dead_letter_topic.clone().unwrap_or_else(|| format!("{}.dlq", self.kafka.topic))
    }

    /// The tag rewrite configured by `--tags-path` / `--tags-field`.
    pub fn tags(&self) -> schema::TagRewrite {
        schema::TagRewrite { legacy_path: self.decode.tags_path.clone(), target_field: self.decode.tags_field.clone() }
    }

    /// The choices the indexer refuses to guess, checked before anything is consumed: the
    /// legacy version source and the legacy indexer's merge rule; and a version field the tag
    /// rewrite would own.
    pub fn refusals(&self) -> Result<(schema::LegacyVersionSource, MergeAbsent), String> {
        let legacy_version = self.decode.legacy_version.clone().ok_or_else(|| {
            "no legacy version source (--legacy-version field:<path> or _version). Merge bases are read from the legacy cluster at this version, and with field:<path> the indexer writes the command's version into every document as the legacy indexer does; without it replayed documents would not match the backfill's copies and merges could be applied twice".to_string()
        })?;
        let merge_absent = self.decode.merge_absent.ok_or_else(|| {
            "say what your legacy indexer does with a merge of a document that does not exist: --merge-absent ignore (the update API without upsert: nothing happens) or --merge-absent create (doc_as_upsert, Kafka Connect upsert mode: the merge alone becomes the document). The new cluster must end up as the legacy indexer leaves the old one; a wrong guess loses or invents documents silently (docs/indexer.md: Legacy indexer behaviours)".to_string()
        })?;
        if let schema::LegacyVersionSource::Field(path) = &legacy_version {
            if let Some(problem) = schema::version_field_problem(path, &self.tags()) {
                return Err(format!("--legacy-version field:{path}: {problem}"));
            }
        }
        Ok((legacy_version, merge_absent))
    }

    /// How every retry loop of the indexer waits out a busy or sick cluster.
    pub fn retry_policy(&self) -> cluster::RetryPolicy {
        cluster::RetryPolicy { max_retries: self.batch.max_retries, max_delay: self.batch.max_backoff, ..Default::default() }
    }

    /// The shutdown budget.
    pub fn shutdown_timeout(&self) -> Duration {
        self.ops.shutdown_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        IndexerConfig::command().debug_assert();
    }

    #[test]
    fn version_source_is_required() {
        let err = IndexerConfig::try_parse_from(["indexer", "--topic", "t"]).unwrap_err();
        assert!(err.to_string().contains("--version-source"), "{err}");
        let ok =
            IndexerConfig::try_parse_from(["indexer", "--topic", "t", "--version-source", "field:version", "--index-map", "a=b", "-X", "fetch.min.bytes=1"])
                .unwrap();
        assert_eq!(ok.decode.index_map, vec![("a".to_string(), "b".to_string())]);
        assert_eq!(ok.dead_letter_topic(), "t.dlq");
        assert_eq!(ok.kafka.properties, vec![("fetch.min.bytes".to_string(), "1".to_string())]);
        assert_eq!(ok.decode.null_value, NullValue::DeadLetter, "null values are dead-lettered unless asked");
    }

    /// Every duration flag takes one syntax (`runtime::duration`, as the backfill's): a value
    /// with its unit; a bare number is refused by the parser, naming the flag and the syntax.
    #[test]
    fn every_duration_flag_takes_a_value_with_its_unit() {
        let base = ["indexer", "--topic", "t", "--version-source", "field:version"];
        let parse = |extra: &[&str]| IndexerConfig::try_parse_from(base.iter().chain(extra));
        let c = parse(&[
            "--min-gc-deletes=2h",
            "--linger=5ms",
            "--max-backoff=2s",
            "--commit-interval=250ms",
            "--session-timeout=6s",
            "--kafka-connect-timeout=1m",
            "--shutdown-timeout=3s",
            "--exit-when-idle=2s",
            "--target-timeout=90s",
        ])
        .unwrap();
        assert_eq!(c.ops.min_gc_deletes, Duration::from_secs(7200));
        assert_eq!(c.batch.linger, Duration::from_millis(5));
        assert_eq!(c.retry_policy().max_delay, Duration::from_secs(2));
        assert_eq!((c.kafka.commit_interval, c.kafka.session_timeout), (Duration::from_millis(250), Duration::from_secs(6)));
        assert_eq!(c.kafka.kafka_connect_timeout, Duration::from_secs(60));
        assert_eq!((c.shutdown_timeout(), c.ops.exit_when_idle), (Duration::from_secs(3), Some(Duration::from_secs(2))));
        assert_eq!(cluster::ClusterConfig::from(c.target.clone()).timeout, Duration::from_secs(90));
        for flag in ["--min-gc-deletes", "--linger", "--max-backoff", "--session-timeout", "--target-timeout"] {
            let err = parse(&[flag, "50"]).unwrap_err().to_string();
            assert!(err.contains(flag) && err.contains("e.g. 500ms"), "{err}");
        }
        let default = parse(&[]).unwrap();
        assert_eq!((default.ops.min_gc_deletes, default.batch.linger), (Duration::from_secs(3600), Duration::from_millis(50)));
    }

    #[test]
    fn refuses_to_guess_the_legacy_indexer() {
        let base = ["indexer", "--topic", "t", "--version-source", "field:version"];
        let parse = |extra: &[&str]| IndexerConfig::try_parse_from(base.iter().chain(extra)).unwrap();
        let err = parse(&["--merge-absent", "ignore"]).refusals().unwrap_err();
        assert!(err.contains("--legacy-version"), "{err}");
        let err = parse(&["--legacy-version", "_version"]).refusals().unwrap_err();
        assert!(err.contains("--merge-absent ignore") && err.contains("--merge-absent create"), "{err}");
        let ok = parse(&["--legacy-version", "field:seq", "--merge-absent", "create", "--null-value", "delete"]);
        assert_eq!(ok.refusals().unwrap(), (schema::LegacyVersionSource::Field("seq".into()), MergeAbsent::Create));
        assert_eq!(ok.decode.null_value, NullValue::Delete);
        let err = parse(&["--legacy-version", "field:tags.v", "--merge-absent", "ignore"]).refusals().unwrap_err();
        assert!(err.contains("tag rewrite"), "{err}");
    }
}
