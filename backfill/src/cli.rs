//! The command line: clap structs (every flag documented with its default) and their
//! conversion into the typed configs of the library. `main.rs` only parses, sets up logging
//! and calls [`run`].

use crate::bulkload::{finalize, BulkLoadError, FinalizeConfig};
use crate::copy::{copy, CopyConfig, CopyError};
use crate::index::{create_index_with, CreateIndexConfig, CreateOutcome, IndexError, TagMatching};
use crate::job::{JobConfig, JobError, KafkaConfig};
use crate::progress::ProgressMode;
use crate::scan::ScanMethodChoice;
use crate::verify::{verify, VerifyConfig, VerifyError};
use clap::{Args, Parser, Subcommand};
use cluster::config::{LegacyArgs, TargetArgs};
use cluster::{ClusterConfig, Es, EsError, RetryPolicy, WriteOptions};
use runtime::LogFormat;
use schema::{LegacyVersionSource, TagRewrite};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `println!` for a command's result lines, minus its panic when stdout is closed (`| head`, a
/// reader that went away): the work is done by then and written where it belongs (the target,
/// `--summary-json`), so the line is dropped and the exit code still says how the work went,
/// where `println!` would exit 101. The logs (stderr) already drop lines the same way
/// (`runtime::telemetry`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Copy a legacy Elasticsearch index into the target schema, resumably, and verify the result.
#[derive(Parser, Debug)]
#[command(name = "backfill", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr: `text` or `json`. Levels come from RUST_LOG (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the target index from the legacy index's definition (idempotent: the same
    /// definition already there is a no-op, a different one is an error listing the differences).
    CreateIndex(CreateIndexArgs),
    /// Copy the legacy index into the target index (sliced, resumable, rate-limitable). Every
    /// `backfill copy` of one job (on any host) joins the job's Kafka consumer group, which
    /// hands out the slices and moves them when a worker joins, leaves or dies; each slice's
    /// checkpoint is kept in Kafka. A process exits when every slice of the job is done.
    /// See docs/backfill.md.
    Copy(CopyArgs),
    /// A copy job as a whole, from Kafka's state, whichever host asks: slices done / in
    /// progress (by which worker) / pending, documents, rate and ETA.
    Status(StatusArgs),
    /// Compare transform(legacy) with the target document by document (exit 0 only when
    /// converged; 3 when differences remain).
    Verify(VerifyArgs),
    /// After the last copy, before switching reads: restore the legacy index's refresh_interval
    /// and number_of_replicas on the target (the copy's bulk-load settings turn them off),
    /// refresh it and wait for its health. Idempotent. The indexer's /ready stays closed until
    /// the target's refresh is on again.
    Finalize(FinalizeArgs),
    /// Translate a legacy search body (stdin, JSON) into the target schema (stdout): tag
    /// clauses on `<legacy-tag-path>.<key>` become `keyToValue`/`value` pair queries, everything
    /// else passes through unchanged. What cannot be translated exactly is left as written and
    /// reported on stderr, one finding per line; with --exact any finding exits 2. No cluster is
    /// contacted. See docs/queries.md.
    TranslateQuery(TranslateQueryArgs),
    /// Go/no-go before switching reads: the indexer's gate, finalize state, the gc_deletes
    /// window, the last verify (and parity) report and their age, then the switch and rollback
    /// checklist. Exit 0 only when no check fails, 3 when one does.
    CutoverCheck(CutoverCheckArgs),
    /// Run the team's captured searches (NDJSON `{index, body}` lines, or Elasticsearch's JSON
    /// search slow log) on both clusters, each translated for the target, and compare them query
    /// by query: totals, ids, terms-aggregation buckets; the likely cause of each difference.
    /// Exit 0 all equal, 3 some differ. See docs/queries.md.
    Parity(ParityArgs),
}

/// Where tags live on both sides.
#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    /// Dotted path of the dynamic tag object in legacy documents.
    #[arg(long, default_value = "actions.tags")]
    pub legacy_tag_path: String,
    /// Top-level field of the `{keyToValue, value}` pair array in target documents.
    #[arg(long, default_value = "tags")]
    pub target_tag_field: String,
}

impl From<&TagArgs> for TagRewrite {
    fn from(a: &TagArgs) -> Self {
        TagRewrite { legacy_path: a.legacy_tag_path.clone(), target_field: a.target_tag_field.clone() }
    }
}

/// The two indices.
#[derive(Args, Debug, Clone)]
pub struct IndexArgs {
    /// Legacy index to read (required).
    #[arg(long)]
    pub source_index: String,
    /// Target index to write or compare (required).
    #[arg(long)]
    pub target_index: String,
}

/// How the source is read: the flags `copy` and `verify` share.
#[derive(Args, Debug, Clone)]
pub struct ReadArgs {
    /// Where each legacy document's version is: `field:<path>` (in _source) or `_version`
    /// (legacy indexed with external versions). No default: required, because every write is
    /// externally versioned with it (and verify compares versions).
    #[arg(long, value_name = "field:<path>|_version")]
    pub legacy_version: Option<LegacyVersionSource>,
    /// Documents per scan page, and per bulk request (copy) or per _mget (verify). Larger pages
    /// cost the legacy cluster less per document to read (fewer searches), larger bulks cost
    /// the target less per document to write (dev/bench.sh measures both).
    #[arg(long, default_value_t = 2000)]
    pub batch_size: usize,
    /// Keep-alive of the PIT or scroll between two pages (a lost context is recovered from);
    /// an Elasticsearch time value (`5m`, `90s`) or bare milliseconds.
    #[arg(long, default_value = "5m", value_parser = schema::parse_time_value_arg)]
    pub keep_alive: String,
    /// How to read the source: auto (PIT on ES 7.12+/OpenSearch 2.4+, else scroll), pit, scroll.
    #[arg(long, value_enum, default_value_t = ScanMethodChoice::Auto)]
    pub scan_method: ScanMethodChoice,
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// The retry budget of a run's remote calls.
#[derive(Args, Debug, Clone)]
pub struct RetryArgs {
    /// Give up on a remote call (a scan page, a bulk request, a search, a settings call) after
    /// this many consecutive retries. Default: retry forever (an outage pauses the run).
    #[arg(long)]
    pub max_retries: Option<u32>,
}

impl RetryArgs {
    /// The one retry policy of a run: its scans', writes', reads' and control-plane calls'.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy { max_retries: self.max_retries, ..RetryPolicy::default() }
    }
}

/// How long a difference that may be a write in flight is re-checked before it is reported.
#[derive(Args, Debug, Clone)]
pub struct SettleArgs {
    /// How long to keep re-checking a difference (a write in flight) before reporting it.
    #[arg(long, default_value = "30s", value_parser = runtime::duration::parse)]
    pub settle_timeout: Duration,
    /// Time between two re-checks (at least 10ms).
    #[arg(long, default_value = "1s", value_parser = runtime::duration::parse)]
    pub recheck_interval: Duration,
}

impl SettleArgs {
    /// The time between two re-checks, at least 10 ms.
    pub fn recheck_interval(&self) -> Duration {
        self.recheck_interval.max(Duration::from_millis(10))
    }
}

/// `backfill create-index`.
#[derive(Args, Debug)]
pub struct CreateIndexArgs {
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub indices: IndexArgs,
    #[command(flatten)]
    pub tags: TagArgs,
    /// `index.gc_deletes` of the target during the migration: how long delete tombstones are
    /// kept. Must outlive the migration window (restore it at cutover). A time value (`48h`,
    /// `2d`) or a bare number of milliseconds.
    #[arg(long, default_value = "48h", value_parser = schema::parse_time_value_arg)]
    pub gc_deletes: String,
    /// Extra index setting KEY=VALUE (repeatable; VALUE parsed as JSON when it is JSON, e.g.
    /// `index.number_of_replicas=1`), applied over the legacy index's settings, e.g.
    /// `index.translog.durability=request` where the legacy index has `async` (refused: a
    /// write acknowledged before its translog is fsynced, whose offset the indexer then
    /// commits, can be lost in a node crash). Default: none.
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// Copy the ingest pipelines that index.default_pipeline / index.final_pipeline name (and
    /// the pipelines they call) from the legacy cluster to the target before creating the index.
    /// Without it, a pipeline the target lacks is refused (every write would fail). A pipeline
    /// that MODIFIES documents must be copied: the backfill copies documents that already went
    /// through it on the legacy cluster, but the indexer's replayed writes only go through it if
    /// the target has it too (otherwise copied and replayed documents differ and verify reports
    /// it). A target pipeline of the same id with another definition is refused, never
    /// overwritten. See docs/legacy-settings.md.
    #[arg(long)]
    pub copy_pipelines: bool,
    /// Leave this legacy index setting, and its sub-keys, out of the target index (repeatable;
    /// the `index.` prefix is optional), e.g. `index.default_pipeline` for a pipeline whose
    /// output is not needed, or `index.routing.allocation.require.box` for a node attribute the
    /// target's nodes lack. The only way to leave a setting out (a --setting of the same key
    /// still applies). Default: none. See docs/legacy-settings.md.
    #[arg(long = "drop-setting", value_name = "KEY")]
    pub drop_settings: Vec<String>,
    /// Give both target tag keywords (`keyToValue`, `value`) this normalizer; the only one is
    /// `lowercase` (a custom normalizer, filter `lowercase`, added to the index's analysis
    /// settings). For a legacy whose tags are analysed `text` (create-index warns when they
    /// are): an analysed `match` for `John` found `john` and `John Smith`; without a normalizer
    /// the target finds exactly `John`, with it `John` and `john` (case-insensitive exact
    /// matches keep working), never `John Smith` (partial-word matches are lost either way).
    /// The trade-off: every tag search becomes case-insensitive, terms-aggregation buckets
    /// come back lowercased, and keys are lowercased too (`keyToValue` is `key:value`): legacy
    /// tag keys that differ only by case are refused (see --allow-tag-key-case-collisions).
    /// Measure what end users would see with `backfill parity --queries FILE
    /// --legacy-tag-mapping keyword`. Default: none (exact, case-sensitive). See
    /// docs/queries.md.
    #[arg(long, value_name = "lowercase")]
    pub tag_normalizer: Option<schema::TagNormalizer>,
    /// With --tag-normalizer: create the index even though legacy tag keys differ only by case
    /// (e.g. `Name` and `name`); on the target they become one key, so a search for one also
    /// finds the others. Default: refuse, naming the keys.
    #[arg(long, requires = "tag_normalizer")]
    pub allow_tag_key_case_collisions: bool,
}

/// The Kafka cluster that coordinates a copy job, and this worker's place in it.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Job (Kafka)")]
pub struct JobArgs {
    /// Bootstrap servers of the Kafka cluster the job is coordinated on (the command topic's
    /// cluster will do: the job adds one small topic and one consumer group).
    #[arg(long, env = "CUTOVER_KAFKA", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// The job's name: its topic and consumer group are `cutover-backfill.<job>`, and every
    /// worker started with the same name shares its slices and checkpoints. Default:
    /// `<source-index>.<target-index>`. A finished job stays finished: to copy again from
    /// scratch (e.g. after an indexer's offset gap), give a new name.
    #[arg(long)]
    pub job: Option<String>,
    /// This worker's name in `backfill status`, in its logs and as the `worker` label of its
    /// metrics. Default: `<hostname>:<pid>`.
    #[arg(long)]
    pub worker_id: Option<String>,
    /// How soon the job's group notices a dead or paused worker and gives its slices to the
    /// others (their copy resumes from the last checkpoint; a paused worker that wakes up
    /// finds its late checkpoints refused).
    #[arg(long, default_value = "10s", value_parser = runtime::duration::parse)]
    pub session_timeout: Duration,
    /// Extra librdkafka properties for the job's Kafka clients (repeatable), e.g.
    /// `-X security.protocol=SASL_SSL`. Refused (exit code 2): secrets (use --kafka-config) and
    /// what the job sets itself (`group.id`: --job, `bootstrap.servers`: --brokers,
    /// `session.timeout.ms`: --session-timeout, `client.id`: --worker-id, `enable.auto.commit`,
    /// `partition.assignment.strategy`).
    #[arg(short = 'X', value_parser = runtime::kafka_props::parse_kv, value_name = "KEY=VALUE")]
    pub properties: Vec<(String, String)>,
    /// A file of librdkafka properties (`key=value` lines), applied before -X: the place for
    /// `sasl.password` (keep it mode 600).
    #[arg(long, env = "CUTOVER_KAFKA_CONFIG")]
    pub kafka_config: Option<PathBuf>,
    /// Test suite only (its control run): save checkpoints without checking that this worker
    /// still owns the slice, retrying refused ones. Never use it: a paused worker would
    /// overwrite another's progress.
    #[arg(long, hide = true)]
    pub unsafe_unfenced_checkpoints: bool,
}

/// What the job sets on its Kafka clients itself.
const JOB_GUARDED: &[runtime::kafka_props::Guarded] = &[
    runtime::kafka_props::Guarded { key: "group.id", accepted: &[], why: "use --job" },
    runtime::kafka_props::Guarded { key: "bootstrap.servers", accepted: &[], why: "use --brokers" },
    runtime::kafka_props::Guarded { key: "metadata.broker.list", accepted: &[], why: "use --brokers" },
    runtime::kafka_props::Guarded { key: "session.timeout.ms", accepted: &[], why: "use --session-timeout" },
    runtime::kafka_props::Guarded { key: "client.id", accepted: &[], why: "use --worker-id" },
    runtime::kafka_props::Guarded {
        key: "enable.auto.commit",
        accepted: &["false"],
        why: "the committed offsets are the job's checkpoints: only a worker that resolved every batch a checkpoint covers commits it",
    },
    runtime::kafka_props::Guarded {
        key: "partition.assignment.strategy",
        accepted: &["cooperative-sticky"],
        why: "slices move one at a time; an eager assignor would stop every slice at every join",
    },
];

impl JobArgs {
    /// The job's configuration, the user's Kafka properties checked.
    pub fn config(&self) -> Result<JobConfig, CliError> {
        let properties = runtime::kafka_props::load(self.kafka_config.as_deref(), &self.properties, JOB_GUARDED).map_err(CliError::Refused)?;
        Ok(JobConfig {
            kafka: KafkaConfig { brokers: self.brokers.clone(), properties, session_timeout: self.session_timeout },
            name: self.job.clone(),
            worker: self.worker_id.clone().unwrap_or_else(crate::job::default_worker),
            fencing: !self.unsafe_unfenced_checkpoints,
        })
    }
}

/// `backfill status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The job's source index (with --target-index, names the job when --job is not given).
    #[arg(long)]
    pub source_index: Option<String>,
    /// The job's target index.
    #[arg(long)]
    pub target_index: Option<String>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `backfill copy`.
#[derive(Args, Debug)]
pub struct CopyArgs {
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub indices: IndexArgs,
    #[command(flatten)]
    pub tags: TagArgs,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub breaker: cluster::breaker::BreakerArgs,
    /// Number of slices the source is cut into (on _seq_no), the unit the job's workers share.
    /// Default: the source's primary shard count, at least 4 (so a worker that joins later
    /// gets slices) and at most 8. A job keeps the count it was created with: a different one
    /// is refused, naming the job's. Elasticsearch 2.x cannot slice a scroll: one slice there.
    #[arg(long)]
    pub slices: Option<u32>,
    #[command(flatten)]
    pub job: JobArgs,
    /// Bulk requests in flight at once for this process (also the read-ahead per slice).
    #[arg(long, default_value_t = 4)]
    pub bulk_concurrency: usize,
    /// Limit on documents per second for this process. Default: unlimited.
    #[arg(long)]
    pub max_docs_per_sec: Option<u64>,
    /// JSON-lines file listing every document not copied, with the reason (appended to).
    #[arg(long, default_value = "backfill-failures.jsonl")]
    pub failures_file: PathBuf,
    /// Refuse to start unless the target's index.gc_deletes is at least this long (`24h`,
    /// `90m`).
    #[arg(long, default_value = "24h", value_parser = runtime::duration::parse)]
    pub min_gc_deletes: Duration,
    /// Progress display: auto (bar on a terminal, log lines otherwise), bar, log, off.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Time between progress log lines (when not showing a bar).
    #[arg(long, default_value = "10s", value_parser = runtime::duration::parse)]
    pub log_interval: Duration,
    /// Address of the Prometheus /metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:9465")]
    pub metrics_addr: SocketAddr,
    /// Do not serve metrics.
    #[arg(long)]
    pub no_metrics: bool,
    /// Also write the end-of-run summary as JSON to this file. Default: none.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Leave the target's settings alone. By default the copy first puts the target index in
    /// bulk-load settings (index.refresh_interval -1, index.number_of_replicas 0 unless
    /// auto-expanded), logging what it changed, and `backfill finalize` restores the legacy
    /// index's values before reads are switched (the indexer's /ready stays closed until then).
    /// Without replicas, a target node lost during the copy loses its shards: the recovery is
    /// to start the target over.
    #[arg(long, env = "CUTOVER_BACKFILL_NO_BULK_LOAD")]
    pub no_bulk_load: bool,
}

/// The settings `finalize` restores, when not the legacy index's (`finalize` sets them,
/// `cutover-check` checks them).
#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// refresh_interval to set instead of the legacy index's (default: the legacy index's;
    /// unset there means Elasticsearch's 1s default, restored as unset). A negative value is
    /// refused: reads would never see new writes.
    #[arg(long, env = "CUTOVER_FINALIZE_REFRESH_INTERVAL", value_parser = schema::parse_time_value_arg)]
    pub refresh_interval: Option<String>,
    /// number_of_replicas to set instead of the legacy index's (default: the legacy index's).
    /// Auto-expanded replicas on the target are left to the cluster.
    #[arg(long, env = "CUTOVER_FINALIZE_REPLICAS")]
    pub replicas: Option<u64>,
}

/// `backfill finalize`.
#[derive(Args, Debug)]
pub struct FinalizeArgs {
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub indices: IndexArgs,
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// When the target cluster has fewer data nodes than the replicas need (replicas + 1):
    /// set them anyway and wait for yellow. Default: refuse, changing nothing, with the fix
    /// (--replicas N or --allow-yellow) in the message (exit 1).
    #[arg(long, env = "CUTOVER_FINALIZE_ALLOW_YELLOW")]
    pub allow_yellow: bool,
    /// How long to wait for the target's health (green; yellow with --allow-yellow). On
    /// time-out the settings stay restored and the exit is 1: run finalize again to keep
    /// waiting.
    #[arg(long, env = "CUTOVER_FINALIZE_TIMEOUT", default_value = "5m", value_parser = runtime::duration::parse)]
    pub timeout: Duration,
    /// Also write what was set as JSON to this file. Default: none.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
}

/// `backfill verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub indices: IndexArgs,
    #[command(flatten)]
    pub tags: TagArgs,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Parallel slices of each walk.
    #[arg(long, default_value_t = 2)]
    pub slices: u32,
    /// Folder where the walks' document digests spill to sorted runs once a side holds more
    /// than 250,000 of them (about 40 bytes plus the id per document and side; a folder of
    /// this verify's own is made there and removed after). Default: the system's temporary
    /// folder.
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    #[command(flatten)]
    pub settle: SettleArgs,
    /// JSON-lines file of known deletes (`{"id": .., "version": ..}`), to tell resurrected
    /// documents from merely extra ones. Default: none (every extra is reported as extra).
    #[arg(long)]
    pub deletes_file: Option<PathBuf>,
    /// Sample ids listed per class.
    #[arg(long, default_value_t = 20)]
    pub sample_limit: usize,
    /// Also run the query parity suite (>= 20 queries built from the data's tags).
    #[arg(long)]
    pub parity: bool,
    /// Plain field for the parity bool combinations. Default: the lowest-cardinality scalar
    /// top-level field of the sampled documents.
    #[arg(long)]
    pub parity_field: Option<String>,
    /// Write the report as JSON to this file. Default: none (a summary is printed).
    #[arg(long)]
    pub report_json: Option<PathBuf>,
}

/// Errors of the command line layer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Es(#[from] EsError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Finalize(#[from] BulkLoadError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Job(#[from] JobError),
    /// A refused option (exit code 2).
    #[error("refusing to start: {0}")]
    Refused(String),
}

/// What a command reports back to `main` for its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as expected (exit 0).
    Ok,
    /// `verify` found differences (exit 3).
    Diverged,
    /// `copy` finished, but documents failed (exit 4): listed in the failures file.
    Failed,
    /// `translate-query --exact` found clauses it cannot translate exactly (exit 2).
    NotExact,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Diverged => 3,
            Outcome::Failed => 4,
            Outcome::NotExact => 2,
        }
    }
}

impl CliError {
    /// The process exit code: 5 when the copy stopped on systematic failures (the poison
    /// breaker), 1 for every other error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Copy(CopyError::Systematic { .. }) => 5,
            CliError::Refused(_) => 2,
            _ => 1,
        }
    }
}

/// Runs a parsed command. Ctrl-C cancels a copy cleanly (checkpoints stay consistent).
pub async fn run(cli: Cli) -> Result<Outcome, CliError> {
    match cli.command {
        Command::CreateIndex(a) => run_create(a).await,
        Command::Copy(a) => run_copy(a).await,
        Command::Status(a) => run_status(a).await,
        Command::Verify(a) => run_verify(a).await,
        Command::Finalize(a) => run_finalize(a).await,
        Command::TranslateQuery(a) => run_translate_query(a),
        Command::CutoverCheck(a) => run_cutover_check(a).await,
        Command::Parity(a) => run_parity(a).await,
    }
}

/// How often the one-shot steps (`create-index`, `finalize`) retry a call the cluster did not
/// answer, or answered 429 or 5xx, before failing with that answer (about half a minute of
/// backoff; rerunning the step is safe). `copy` and `verify` take `--max-retries`.
const STEP_RETRIES: u32 = 8;

/// Both clients, their control-plane calls retried under `retry` until `cancel` fires.
fn clients(legacy: LegacyArgs, target: TargetArgs, retry: RetryPolicy, cancel: &CancellationToken) -> Result<(Es, Es), CliError> {
    let connect = |cfg: ClusterConfig| Es::connect(&cfg).map(|es| es.with_retry(retry.clone(), cancel.clone()));
    Ok((connect(legacy.into())?, connect(target.into())?))
}

/// The retry policy of a one-shot step.
fn step_retries() -> RetryPolicy {
    RetryPolicy { max_retries: Some(STEP_RETRIES), ..RetryPolicy::default() }
}

/// The token of a step that Ctrl-C simply ends (SIGINT's default: the step is idempotent, run
/// it again): never cancelled.
fn ends_at_ctrl_c() -> CancellationToken {
    CancellationToken::new()
}

/// A token Ctrl-C cancels, logging `why` (the process then stops cleanly by itself).
fn on_interrupt(why: &'static str) -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupted: {why}");
            on_signal.cancel();
        }
    });
    cancel
}

async fn run_create(a: CreateIndexArgs) -> Result<Outcome, CliError> {
    let (legacy, target) = clients(a.legacy, a.target, step_retries(), &ends_at_ctrl_c())?;
    let cfg = CreateIndexConfig {
        source_index: a.indices.source_index,
        target_index: a.indices.target_index,
        tags: (&a.tags).into(),
        gc_deletes: a.gc_deletes,
        extra_settings: parse_settings(&a.settings)?,
        drop_settings: a.drop_settings,
        copy_pipelines: a.copy_pipelines,
    };
    let tag_matching = TagMatching { normalizer: a.tag_normalizer, allow_key_case_collisions: a.allow_tag_key_case_collisions };
    let report = create_index_with(&legacy, &target, &cfg, &tag_matching).await?;
    match report.outcome {
        CreateOutcome::Created => say!("created {}", cfg.target_index),
        CreateOutcome::AlreadyExists => say!("{} already exists with the expected definition; nothing to do", cfg.target_index),
    }
    if let Some(line) = report.tags_summary() {
        say!("{line}");
    }
    Ok(Outcome::Ok)
}

async fn run_status(a: StatusArgs) -> Result<Outcome, CliError> {
    let job = a.job.config()?;
    let name = match (&job.name, &a.source_index, &a.target_index) {
        (Some(n), _, _) => n.clone(),
        (None, Some(s), Some(t)) => crate::job::default_name(s, t),
        _ => return Err(CliError::Usage("name the job: --job NAME, or --source-index and --target-index".into())),
    };
    let st = crate::job::status(&job, &name).await?;
    if a.json {
        say!("{}", serde_json::to_string_pretty(&st).expect("status serializes"));
    } else {
        say!("{st}");
    }
    Ok(Outcome::Ok)
}

/// `KEY=VALUE` pairs into a settings map; VALUE is JSON when it parses, else a string.
pub fn parse_settings(pairs: &[String]) -> Result<Map<String, Value>, CliError> {
    let mut out = Map::new();
    for pair in pairs {
        let (k, v) = pair.split_once('=').ok_or_else(|| CliError::Usage(format!("--setting `{pair}`: expected KEY=VALUE")))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        out.insert(k.trim().to_string(), value);
    }
    Ok(out)
}

async fn run_copy(a: CopyArgs) -> Result<Outcome, CliError> {
    let job = a.job.config()?;
    let cancel = on_interrupt("stopping after in-flight batches are resolved or abandoned; checkpoints stay consistent");
    let (legacy, target) = clients(a.legacy, a.target, a.read.retry.policy(), &cancel)?;
    if !a.no_metrics {
        crate::metrics::install_exporter(a.metrics_addr, &job.worker)?;
    }
    let cfg = CopyConfig {
        source_index: a.indices.source_index,
        target_index: a.indices.target_index,
        tags: (&a.tags).into(),
        legacy_version: a.read.legacy_version.clone(),
        slices: a.slices,
        job,
        batch_size: a.read.batch_size,
        bulk_concurrency: a.bulk_concurrency,
        max_docs_per_sec: a.max_docs_per_sec,
        keep_alive: a.read.keep_alive.clone(),
        scan_method: a.read.scan_method,
        failures_file: a.failures_file,
        min_gc_deletes: a.min_gc_deletes,
        progress: a.progress,
        log_interval: a.log_interval.max(Duration::from_secs(1)),
        write: WriteOptions { retry: a.read.retry.policy(), ..WriteOptions::default() },
        breaker: (&a.breaker).into(),
        refresh_at_end: true,
        bulk_load: !a.no_bulk_load,
        #[cfg(feature = "test-hooks")]
        on_page: None,
    };
    let summary = copy(&legacy, &target, cfg, cancel).await?;
    say!("{summary}");
    if let Some(path) = a.summary_json {
        write_json(&path, &summary)?;
    }
    if summary.failed_in_slices > 0 {
        tracing::error!(
            failed = summary.failed_in_slices,
            failures_file = %summary.failures_file,
            "documents were not copied: each is listed with its reason in the failures file; fix them in the legacy index (or the target's mapping) and run the copy again, or account for them before switching reads"
        );
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Ok)
}

async fn run_finalize(a: FinalizeArgs) -> Result<Outcome, CliError> {
    let (legacy, target) = clients(a.legacy, a.target, step_retries(), &ends_at_ctrl_c())?;
    let cfg = FinalizeConfig {
        source_index: a.indices.source_index,
        target_index: a.indices.target_index,
        refresh_interval: a.restore.refresh_interval,
        replicas: a.restore.replicas,
        allow_yellow: a.allow_yellow,
        timeout: a.timeout.max(Duration::from_secs(1)),
    };
    let done = finalize(&legacy, &target, &cfg).await?;
    say!("{done}");
    if let Some(path) = a.report_json {
        write_json(&path, &done)?;
    }
    Ok(Outcome::Ok)
}

async fn run_verify(a: VerifyArgs) -> Result<Outcome, CliError> {
    let (legacy, target) = clients(a.legacy, a.target, a.read.retry.policy(), &ends_at_ctrl_c())?;
    let version = a.read.legacy_version.clone().ok_or(CliError::Copy(CopyError::NoVersionSource))?;
    let cfg = VerifyConfig {
        source_index: a.indices.source_index.clone(),
        target_index: a.indices.target_index.clone(),
        tags: (&a.tags).into(),
        legacy_version: version,
        slices: a.slices.max(1),
        page_size: a.read.batch_size,
        keep_alive: a.read.keep_alive.clone(),
        scan_method: a.read.scan_method,
        settle_timeout: a.settle.settle_timeout,
        recheck_interval: a.settle.recheck_interval(),
        known_deletes: {
            // The indexer's tombstone records, plus any list the user gives.
            let mut known = crate::verify::indexer_tombstones(&target, &a.indices.target_index).await?;
            if let Some(p) = &a.deletes_file {
                for (id, v) in read_deletes(p)? {
                    let e = known.entry(id).or_insert(v);
                    *e = (*e).max(v);
                }
            }
            known
        },
        sample_limit: a.sample_limit,
        parity: a.parity,
        parity_field: a.parity_field,
        retry: a.read.retry.policy(),
        spill_dir: a.spill_dir.unwrap_or_else(std::env::temp_dir),
        digest_buffer: crate::verify::DIGEST_BUFFER,
    };
    let report = verify(&legacy, &target, &cfg).await?;
    if let Some(path) = &a.report_json {
        write_json(path, &report)?;
    }
    print_report(&report);
    Ok(if report.converged { Outcome::Ok } else { Outcome::Diverged })
}

fn print_report(r: &crate::verify::VerifyReport) {
    say!(
        "verify {} -> {}: legacy {} docs, target {} docs, {}",
        r.source_index,
        r.target_index,
        r.legacy_docs_scanned,
        r.target_docs_scanned,
        if r.converged { "CONVERGED" } else { "NOT CONVERGED" }
    );
    for (name, c) in [
        ("missing", &r.missing),
        ("extra", &r.extra),
        ("resurrected", &r.resurrected),
        ("different", &r.different),
        ("in_flight", &r.in_flight),
        ("untransformable", &r.untransformable),
    ] {
        if c.count > 0 {
            // Each sample as `id`, or `id (routing r)` for a custom routing.
            let samples: Vec<String> = c.samples.iter().map(ToString::to_string).collect();
            say!("  {name}: {} (e.g. {})", c.count, samples.join(", "));
        }
    }
    if let Some(p) = &r.parity {
        say!(
            "  parity: {} queries, {} compared, {} mismatches, {} legacy errors, {} target errors",
            p.queries,
            p.compared,
            p.mismatches.len(),
            p.legacy_errors.len(),
            p.target_errors.len()
        );
    }
}

/// Reads `{"id": .., "version": ..}` lines.
pub fn read_deletes(path: &std::path::Path) -> Result<HashMap<String, u64>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::File { path: path.to_path_buf(), source })?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| CliError::Usage(format!("{}:{}: {e}", path.display(), n + 1)))?;
        match (v.get("id").and_then(Value::as_str), v.get("version").and_then(Value::as_u64)) {
            (Some(id), Some(version)) => {
                let e = out.entry(id.to_string()).or_insert(version);
                *e = (*e).max(version);
            }
            _ => return Err(CliError::Usage(format!("{}:{}: expected {{\"id\": string, \"version\": integer}}", path.display(), n + 1))),
        }
    }
    Ok(out)
}

fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_vec_pretty(value).expect("report serializes");
    std::fs::write(path, text).map_err(|source| CliError::File { path: path.to_path_buf(), source })
}

/// `backfill translate-query`.
#[derive(Args, Debug)]
#[command(after_long_help = "Examples:
  echo '{\"query\":{\"term\":{\"actions.tags.color\":\"red\"}}}' | backfill translate-query --legacy-tag-mapping keyword
    -> {\"query\":{\"term\":{\"tags.keyToValue\":{\"value\":\"color:red\"}}}}
  backfill translate-query --legacy-tag-mapping text+keyword --exact < body.json > target-body.json || echo \"not exact\"

Exit codes: 0 translated (findings, if any, on stderr), 1 unreadable input, 2 --exact and at least one finding.")]
pub struct TranslateQueryArgs {
    #[command(flatten)]
    pub tags: TagArgs,
    /// How the LEGACY index maps its tag fields, which decides whether full-text clauses on
    /// tags are exact: `keyword` (e.g. a `path_match: "actions.tags.*"` template mapping them as
    /// keyword: match, match_phrase, multi_match, query_string terms are exact terms), `text`
    /// (analysed: those clauses are findings), or `text+<sub>`, text with a keyword sub-field
    /// `<sub>` (`text+keyword` is Elasticsearch's default dynamic mapping; clauses on
    /// `<key>.<sub>` are translated, those on the text field are findings). Required: guessing
    /// it wrong would change results silently (`GET /<index>/_mapping` shows it).
    #[arg(long, value_name = "keyword|text|text+<sub>")]
    pub legacy_tag_mapping: schema::translate::LegacyTagMapping,
    /// Exit 2 (printing the findings, and nothing on stdout) when any clause cannot be translated
    /// exactly, instead of printing a body whose flagged clauses are left in legacy form.
    #[arg(long)]
    pub exact: bool,
    /// Stdin is one query clause (what goes under "query"), not a whole search body.
    #[arg(long)]
    pub query_only: bool,
    /// Print `{"body": .., "findings": [{path, reason}..], "bucket_keys": [{aggregation,
    /// prefix}..]}` on stdout instead of the bare body: the bucket keys of translated terms
    /// aggregations on the target start with `prefix`, which the caller strips from the
    /// response's bucket keys to read them as legacy values.
    #[arg(long)]
    pub envelope: bool,
}

fn run_translate_query(a: TranslateQueryArgs) -> Result<Outcome, CliError> {
    use std::io::Read as _;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|source| CliError::File { path: "<stdin>".into(), source })?;
    let body: Value = serde_json::from_str(&input).map_err(|e| CliError::Usage(format!("stdin is not one JSON value: {e}")))?;
    let tags: TagRewrite = (&a.tags).into();
    let t = if a.query_only {
        schema::translate::translate_query(&body, &tags, &a.legacy_tag_mapping)
    } else {
        schema::translate::translate_search(&body, &tags, &a.legacy_tag_mapping)
    };
    {
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        for f in &t.findings {
            let _ = writeln!(err, "not exact: {f}");
        }
    }
    if a.exact && !t.is_exact() {
        return Ok(Outcome::NotExact);
    }
    let out = if a.envelope { serde_json::to_string(&t) } else { serde_json::to_string(&t.body) }.expect("JSON serializes");
    say!("{out}");
    Ok(Outcome::Ok)
}

/// `backfill cutover-check`.
#[derive(Args, Debug)]
#[command(after_long_help = "Checks (one line each: ok, WARN, or FAIL with the reason and the fix):
  indexer gate  GET each --indexer-ready-url: 200 = caught up (every partition at lag 0, no offset
                gap, target refreshing); 503 = closed, its JSON body says why (lag, offset gaps, a
                failed offset commit, the target still in bulk-load settings). Without any
                --indexer-ready-url the check fails: there is no evidence the replay is caught up.
  finalize      the target's index.refresh_interval is not the copy's bulk-load -1 and it and
                index.number_of_replicas are what `backfill finalize` sets (the legacy index's,
                or --refresh-interval/--replicas as given to finalize).
  gc_deletes    the target remembers a delete's version (its tombstone) for index.gc_deletes; after
                that a stale write, e.g. a backfill copy of an older legacy state, is accepted
                again and resurrects the deleted document (docs/convergence.md, point 3). The
                migration's time so far is counted from the target's index.creation_date: FAIL
                when it exceeds gc_deletes, WARN when less than 25% of the window is left.
  verify        --verify-report FILE (`backfill verify --report-json FILE`): fails when missing,
                about other indices, not converged, without `generated_at`, or older than
                --max-report-age.
  parity        only with --parity-report FILE: any JSON with `generated_at` (RFC 3339 or epoch
                milliseconds) and `differing` (number of queries answering differently), at the
                top level or under `summary`, as `backfill parity --report-json` writes it;
                fails when differing > 0, untranslatable > 0 (when present), or too old.
Then the checklist: the read switch (one cluster: an atomic alias swap, POST /_aliases with remove
and add actions for --read-alias; two clusters: the alias added on the target, then the read
endpoint moved) and the rollback (the reverse: the legacy indexer never stopped).

Exit codes: 0 go (every check ok or WARN), 3 no go (at least one FAIL), 1 error before checking
(e.g. a bad --legacy-url), 2 usage error.")]
pub struct CutoverCheckArgs {
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub indices: IndexArgs,
    /// An indexer instance's readiness URL (its --metrics-addr, path /ready; a bare
    /// `http://host:port` gets /ready). Repeatable: one per instance; every one must be 200.
    #[arg(long = "indexer-ready-url", value_name = "URL")]
    pub indexer_ready_urls: Vec<String>,
    /// Timeout of one /ready request.
    #[arg(long, default_value = "10s", value_parser = runtime::duration::parse)]
    pub indexer_timeout: Duration,
    /// The JSON report of the last `backfill verify --report-json FILE`. Required for a go.
    #[arg(long, value_name = "FILE")]
    pub verify_report: Option<PathBuf>,
    /// The JSON report of the last `backfill parity --report-json FILE` (optional check).
    #[arg(long, value_name = "FILE")]
    pub parity_report: Option<PathBuf>,
    /// Reports older than this fail (by their `generated_at`).
    #[arg(long, default_value = "1h", value_parser = runtime::duration::parse)]
    pub max_report_age: Duration,
    /// As given to `backfill finalize` (the same environment variables): what it restored.
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// The alias the applications read through, for the checklist's swap. Default: a
    /// `<read-alias>` placeholder.
    #[arg(long, value_name = "NAME")]
    pub read_alias: Option<String>,
}

async fn run_cutover_check(a: CutoverCheckArgs) -> Result<Outcome, CliError> {
    // A check reports, it does not wait out an outage: a few retries, then a FAIL line.
    let (legacy, target) = clients(a.legacy, a.target, step_retries(), &ends_at_ctrl_c())?;
    let cfg = crate::check::CheckConfig {
        source_index: a.indices.source_index,
        target_index: a.indices.target_index,
        indexer_ready_urls: a.indexer_ready_urls,
        indexer_timeout: a.indexer_timeout,
        verify_report: a.verify_report,
        parity_report: a.parity_report,
        max_report_age: a.max_report_age,
        refresh_interval: a.restore.refresh_interval,
        replicas: a.restore.replicas,
        read_alias: a.read_alias,
    };
    let report = crate::check::cutover_check(&legacy, &target, &cfg).await;
    for c in &report.checks {
        say!("{c}");
    }
    say!("{}", crate::check::checklist(&cfg, legacy.url(), target.url(), report.go));
    Ok(if report.go { Outcome::Ok } else { Outcome::Diverged })
}

/// `backfill parity`.
#[derive(Args, Debug)]
#[command(after_long_help = "Input (--queries FILE), one search per line, both kinds may be mixed:
  {\"index\": \"orders\", \"body\": {\"query\": {\"match\": {\"actions.tags.name\": {\"query\": \"John\"}}}}}
      as an application logs its searches (an optional \"name\" is echoed in the report);
  a line of Elasticsearch's JSON search slow log (index.search.slowlog: 7.x `message` [index][shard]
      and `source`, the body as a JSON string; 8.x+ `elasticsearch.slowlog.*`). The slow log is
      written per shard and phase: identical searches are run once.
Every search runs on --source-index (as written) and --target-index (translated), whatever
index the line names. A search the translator cannot express exactly is reported
`untranslatable` with its findings and NOT run. Compared: exact totals (track_total_hits), ids
(a sorted body: its page in order; else every matching id, up to --max-ids), aggregations
(target bucket keys restored). A differing query is re-run every --recheck-interval until it
agrees or --settle-timeout passes (live writes), then reported with sample ids per side and the
likely cause: analysed_text, case, ignore_above, missing_document, unknown. Every differing
document is counted as partial_word (the legacy's analysed text matched a word inside a longer
value), case_only or other (`difference_counts`, per search and in the summary). The target's
mapping is read: tag keywords with a lowercase normalizer (create-index --tag-normalizer
lowercase) are translated for, and on a text-mapped legacy what remains is partial_word.

Examples:
  backfill parity --source-index orders --target-index orders-v2 --legacy-tag-mapping keyword \\
      --queries captured.ndjson --report-json parity.json
  # a text-mapped legacy: what the exact translation changes for end users
  backfill parity --source-index orders --target-index orders-v2 --legacy-tag-mapping keyword \\
      --queries orders_index_search_slowlog.json
  # exact mode: untranslatable searches fail the run
  backfill parity ... --legacy-tag-mapping text --exact

Exit codes: 0 every search that ran is equal, 3 some differ (or the target refused one), 2
--exact and some search is untranslatable (and no difference), 1 error (unreadable input
line, a cluster unreachable), clap usage errors 2.")]
pub struct ParityArgs {
    #[command(flatten)]
    pub legacy: LegacyArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub indices: IndexArgs,
    #[command(flatten)]
    pub tags: TagArgs,
    /// The captured searches: NDJSON `{"index", "body"}` lines and/or JSON slow-log lines.
    #[arg(long, value_name = "FILE")]
    pub queries: PathBuf,
    /// How the LEGACY index maps its tag fields, as `translate-query` takes it: `keyword`,
    /// `text` or `text+<sub>`. `keyword` on a text-mapped legacy compares the exact translation
    /// with today's analysed answers (differences: cause analysed_text).
    #[arg(long, value_name = "keyword|text|text+<sub>")]
    pub legacy_tag_mapping: schema::translate::LegacyTagMapping,
    /// Unsorted searches with at most this many hits are compared id by id (read with a
    /// scroll); above it, by their exact totals only.
    #[arg(long, default_value_t = 10_000)]
    pub max_ids: u64,
    /// Sample ids listed per side of a difference.
    #[arg(long, default_value_t = 10)]
    pub sample_limit: usize,
    #[command(flatten)]
    pub settle: SettleArgs,
    /// Exit 2 when any search is untranslatable (and none differs).
    #[arg(long)]
    pub exact: bool,
    #[command(flatten)]
    pub retry: RetryArgs,
    /// Write the report as JSON to this file (`backfill cutover-check --parity-report` reads
    /// it). Default: none.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
}

async fn run_parity(a: ParityArgs) -> Result<Outcome, CliError> {
    use crate::parity::ParityError;
    let retry = a.retry.policy();
    let text = std::fs::read_to_string(&a.queries).map_err(|source| CliError::File { path: a.queries.clone(), source })?;
    let file = a.queries.display().to_string();
    let queries = crate::parity::parse_queries(&text, &file).map_err(|e| CliError::Usage(e.to_string()))?;
    let (legacy, target) = clients(a.legacy, a.target, retry.clone(), &ends_at_ctrl_c())?;
    let cfg = crate::parity::ParityConfig {
        source_index: a.indices.source_index,
        target_index: a.indices.target_index,
        tags: (&a.tags).into(),
        legacy_mapping: a.legacy_tag_mapping,
        max_ids: a.max_ids,
        sample_limit: a.sample_limit,
        settle_timeout: a.settle.settle_timeout,
        recheck_interval: a.settle.recheck_interval(),
        retry,
    };
    let report = crate::parity::parity(&legacy, &target, &cfg, &queries, &file).await.map_err(|e| match e {
        ParityError::Input { .. } => CliError::Usage(e.to_string()),
        ParityError::Verify(e) => CliError::Verify(e),
        ParityError::Es(e) => CliError::Es(e),
    })?;
    if let Some(path) = &a.report_json {
        write_json(path, &report)?;
    }
    say!("{}", crate::parity::render(&report).trim_end());
    Ok(if !report.passed() {
        Outcome::Diverged
    } else if a.exact && report.untranslatable > 0 {
        Outcome::NotExact
    } else {
        Outcome::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_documents_defaults() {
        Cli::command().debug_assert();
        let mut cmd = Cli::command();
        let help = cmd.find_subcommand_mut("copy").unwrap().render_long_help().to_string();
        for needle in [
            "--batch-size",
            "[default: 2000]",
            "--metrics-addr",
            "[default: 127.0.0.1:9465]",
            "--legacy-version",
            "--job",
            "--worker-id",
            "--brokers",
            "--session-timeout",
            "cutover-backfill.<job>",
            "--max-docs-per-sec",
            "--failures-file",
            "--no-bulk-load",
            "backfill finalize",
        ] {
            assert!(help.contains(needle), "copy --help lacks {needle}:\n{help}");
        }
        let help = cmd.find_subcommand_mut("finalize").unwrap().render_long_help().to_string();
        for needle in ["--refresh-interval", "--replicas", "--allow-yellow", "wait for yellow", "--timeout", "[default: 5m]", "--report-json"] {
            assert!(help.contains(needle), "finalize --help lacks {needle}:\n{help}");
        }
        // The source-reading flags both commands share, each with its default.
        for sub in ["copy", "verify"] {
            let help = cmd.find_subcommand_mut(sub).unwrap().render_long_help().to_string();
            for needle in [
                "--legacy-version",
                "--batch-size",
                "[default: 2000]",
                "--keep-alive",
                "[default: 5m]",
                "--scan-method",
                "[default: auto]",
                "--max-retries",
                "retry forever",
            ] {
                assert!(help.contains(needle), "{sub} --help lacks {needle}:\n{help}");
            }
        }
    }

    #[test]
    fn parses_copy_flags() {
        let cli = Cli::try_parse_from([
            "backfill",
            "copy",
            "--source-index",
            "a",
            "--target-index",
            "b",
            "--legacy-version",
            "field:version",
            "--slices",
            "8",
            "--job",
            "j1",
            "--session-timeout",
            "6s",
        ])
        .unwrap();
        let Command::Copy(c) = cli.command else { panic!() };
        assert_eq!(c.read.legacy_version, Some(LegacyVersionSource::Field("version".into())));
        assert_eq!(c.slices, Some(8));
        let job = c.job.config().unwrap();
        assert_eq!((job.name.as_deref(), job.kafka.session_timeout, job.fencing), (Some("j1"), Duration::from_secs(6), true));
        for refused in ["group.id=x", "enable.auto.commit=true", "partition.assignment.strategy=range", "sasl.password=x"] {
            let cli = Cli::try_parse_from(["backfill", "copy", "--source-index", "a", "--target-index", "b", "-X", refused]).unwrap();
            let Command::Copy(c) = cli.command else { panic!() };
            let err = c.job.config().unwrap_err();
            assert_eq!(err.exit_code(), 2, "{refused}: {err}");
        }
    }

    #[test]
    fn translate_query_flags_and_help() {
        let mut cmd = Cli::command();
        let help = cmd.find_subcommand_mut("translate-query").unwrap().render_long_help().to_string();
        for needle in
            ["--legacy-tag-mapping", "--exact", "--query-only", "--envelope", "--legacy-tag-path", "[default: actions.tags]", "exits 2", "docs/queries.md"]
        {
            assert!(help.contains(needle), "translate-query --help lacks {needle}:\n{help}");
        }
        let cli = Cli::try_parse_from(["backfill", "translate-query", "--legacy-tag-mapping", "text+keyword", "--exact"]).unwrap();
        let Command::TranslateQuery(a) = cli.command else { panic!() };
        assert_eq!(a.legacy_tag_mapping, schema::translate::LegacyTagMapping::default_dynamic());
        assert!(a.exact);
        assert!(Cli::try_parse_from(["backfill", "translate-query"]).is_err(), "the legacy mapping is required");
        assert!(Cli::try_parse_from(["backfill", "translate-query", "--legacy-tag-mapping", "long"]).is_err());
        assert_eq!(Outcome::NotExact.exit_code(), 2);
    }

    #[test]
    fn parity_flags_and_help() {
        let mut cmd = Cli::command();
        let help = cmd.find_subcommand_mut("parity").unwrap().render_long_help().to_string();
        for needle in [
            "--queries",
            "--legacy-tag-mapping",
            "--max-ids",
            "[default: 10000]",
            "--settle-timeout",
            "[default: 30s]",
            "--recheck-interval",
            "--exact",
            "--report-json",
            "slow log",
            "Examples:",
            "Exit codes: 0",
            "3 some differ",
            "analysed_text",
            "partial_word",
            "--tag-normalizer",
        ] {
            assert!(help.contains(needle), "parity --help lacks {needle}:\n{help}");
        }
        let cli = Cli::try_parse_from([
            "backfill",
            "parity",
            "--source-index",
            "a",
            "--target-index",
            "b",
            "--queries",
            "q.ndjson",
            "--legacy-tag-mapping",
            "text+keyword",
            "--settle-timeout",
            "5s",
        ])
        .unwrap();
        let Command::Parity(a) = cli.command else { panic!() };
        assert_eq!(a.legacy_tag_mapping, schema::translate::LegacyTagMapping::default_dynamic());
        assert_eq!((a.settle.settle_timeout, a.max_ids, a.exact), (Duration::from_secs(5), 10_000, false));
        assert!(
            Cli::try_parse_from(["backfill", "parity", "--source-index", "a", "--target-index", "b", "--queries", "q"]).is_err(),
            "the mapping is required"
        );
    }

    #[test]
    fn settings_pairs() {
        let m = parse_settings(&["index.number_of_replicas=1".into(), "index.refresh_interval=5s".into()]).unwrap();
        assert_eq!(m["index.number_of_replicas"], serde_json::json!(1));
        assert_eq!(m["index.refresh_interval"], serde_json::json!("5s"));
        assert!(parse_settings(&["nope".into()]).is_err());
    }

    /// Duration flags take the same syntax as the indexer's (`runtime::duration`): a value with
    /// its unit. Values sent to Elasticsearch as its own time values (`--gc-deletes`) keep its
    /// syntax, a bare number of milliseconds included.
    #[test]
    fn duration_flags_share_the_indexers_parser() {
        let copy = |v: &str| {
            let cli = Cli::try_parse_from(["backfill", "copy", "--source-index", "a", "--target-index", "b", "--min-gc-deletes", v]);
            cli.map(|c| match c.command {
                Command::Copy(c) => c.min_gc_deletes,
                _ => unreachable!(),
            })
        };
        assert_eq!(copy("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(copy("90m").unwrap(), Duration::from_secs(5400));
        assert!(copy("3600000").unwrap_err().to_string().contains("e.g. 500ms"));
        assert!(copy("1 parsec").unwrap_err().to_string().contains("e.g. 500ms"));
        let create = |v: &str| {
            let cli = Cli::try_parse_from(["backfill", "create-index", "--source-index", "a", "--target-index", "b", "--gc-deletes", v]);
            cli.map(|c| match c.command {
                Command::CreateIndex(c) => c.gc_deletes,
                _ => unreachable!(),
            })
        };
        assert_eq!(create("48h").unwrap(), "48h");
        assert_eq!(create("172800000").unwrap(), "172800000ms", "sent to Elasticsearch with its unit");
        assert!(create("two days").is_err());
    }
}
