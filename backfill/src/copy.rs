//! The copy pipeline: per slice, scan -> rewrite -> externally versioned bulk write ->
//! checkpoint.
//!
//! Which slices this process copies is the job's group's decision ([`crate::job`]): slices come
//! and go as workers join, leave or die, and the process ends when every slice of the job is
//! done, whoever copied it. Each slice this worker holds runs as its own task. Within a slice, up to `bulk_concurrency` batches
//! are in flight (the next page is read while earlier ones are written), and a process-wide
//! semaphore caps the bulk requests of all slices at `bulk_concurrency`. Batches of a slice are
//! *resolved in scan order* (an ordered queue of spawned tasks), and the checkpoint is saved
//! after each resolved batch, so a checkpoint never claims a batch that is still in flight.
//!
//! Every document ends in exactly one counter: written, superseded (409: a newer version from
//! the replay is already there, which is success), or failed (rewrite error, no version, a
//! write Elasticsearch refused for the document's own content), the failed ones also in the
//! failures file. Only those let a checkpoint pass a document that was not written: every other
//! refusal stops the copy with nothing checkpointed past it, and so does a systematic stream of
//! failed documents (the poison breaker, [`cluster::breaker`]). A run that failed documents
//! exits non-zero ([`Summary::failed`]).

use crate::checkpoint::{CheckpointError, SliceCheckpoint};
use crate::failures::{Failure, FailureKind, FailureLog};
use crate::index::{check_readiness, IndexError};
use crate::job::{Event, JobConfig, JobError, JobSpec, Member};
use crate::progress::{BatchCounts, ProgressMode, Reporter, Stats, Summary};
use crate::rate::RateLimiter;
#[cfg(feature = "test-hooks")]
use crate::scan::ScanHook;
use crate::scan::{Hit, Page, ScanError, ScanMethod, ScanMethodChoice, ScanOptions, SliceScan, SliceSpec};
use cluster::breaker::{Breaker, Limits, Tripped};
use cluster::client::enc;
use cluster::{BulkOp, BulkOpKind, BulkWriter, Es, EsError, GiveUp, Outcome, WriteError, WriteOptions};
use futures::stream::{FuturesOrdered, StreamExt};
use schema::{LegacyVersionSource, TagRewrite};
use serde_json::Value;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Everything a copy run needs (the CLI builds it from `backfill copy` flags).
#[derive(Clone)]
pub struct CopyConfig {
    pub source_index: String,
    pub target_index: String,
    pub tags: TagRewrite,
    /// Where each legacy document's version is; `None` refuses to start (see [`CopyError::NoVersionSource`]).
    pub legacy_version: Option<LegacyVersionSource>,
    /// Slice count; `None`: [`default_slices`]. A job keeps the count it was created with.
    pub slices: Option<u32>,
    /// The job this worker belongs to: its group, its checkpoints.
    pub job: JobConfig,
    /// Documents per scan page and per bulk request.
    pub batch_size: usize,
    /// Bulk requests in flight, for the whole process.
    pub bulk_concurrency: usize,
    pub max_docs_per_sec: Option<u64>,
    /// PIT/scroll keep-alive between pages (Elasticsearch syntax).
    pub keep_alive: String,
    pub scan_method: ScanMethodChoice,
    pub failures_file: PathBuf,
    /// The target's `index.gc_deletes` must be at least this long.
    pub min_gc_deletes: Duration,
    pub progress: ProgressMode,
    /// Interval of progress log lines.
    pub log_interval: Duration,
    /// Retry policy of the bulk writer, also used by the scan of the source (`what = "scan"`).
    pub write: WriteOptions,
    /// When failed documents are systematic (the poison breaker).
    pub breaker: Limits,
    /// Refresh the target when done, so searches (and verify) see everything.
    pub refresh_at_end: bool,
    /// Put the target in bulk-load settings first (`refresh_interval: -1`, replicas 0; see
    /// [`crate::bulkload`]); `backfill finalize` restores the legacy index's values.
    pub bulk_load: bool,
    /// Fault-injection hook run after every page (tests only: `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub on_page: Option<ScanHook>,
}

impl CopyConfig {
    /// A config with the CLI's defaults for everything but the indices and the version source.
    pub fn new(source_index: &str, target_index: &str, legacy_version: Option<LegacyVersionSource>) -> Self {
        CopyConfig {
            source_index: source_index.into(),
            target_index: target_index.into(),
            tags: TagRewrite::default(),
            legacy_version,
            slices: None,
            job: JobConfig::default(),
            batch_size: 1000,
            bulk_concurrency: 4,
            max_docs_per_sec: None,
            keep_alive: "5m".into(),
            scan_method: ScanMethodChoice::Auto,
            failures_file: PathBuf::from("backfill-failures.jsonl"),
            min_gc_deletes: Duration::from_secs(24 * 3600),
            progress: ProgressMode::Auto,
            log_interval: Duration::from_secs(10),
            write: WriteOptions::default(),
            breaker: Limits::default(),
            refresh_at_end: true,
            bulk_load: true,
            #[cfg(feature = "test-hooks")]
            on_page: None,
        }
    }
}

/// Why a copy run stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// No version source configured.
    #[error("refusing to start: no legacy version source (--legacy-version field:<path> or _version). Every backfill write carries the legacy document's version as an external version; without it a backfill write could overwrite a newer state the replaying indexer already wrote, and replay and backfill would no longer converge")]
    NoVersionSource,
    /// Target index missing or not ready, or the source missing.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A cluster request failed.
    #[error(transparent)]
    Es(#[from] EsError),
    /// A slice's scan failed beyond recovery.
    #[error("slice {slice}: {source}")]
    Scan { slice: u32, source: ScanError },
    /// A slice's writes were refused for a reason not proven to be the documents' (or failed
    /// beyond retry): nothing was checkpointed past them.
    #[error("slice {slice}: {source}; nothing was checkpointed past these documents: fix the cause and run the copy again (it resumes from the checkpoints)")]
    Write { slice: u32, source: WriteError },
    /// Documents failed systematically (the poison breaker): the cause is almost never the
    /// documents. The batch that tripped it was neither recorded nor checkpointed.
    #[error("slice {slice}: {tripped}")]
    Systematic { slice: u32, tripped: Tripped },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The job's state in Kafka could not be used.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The failures file could not be written (the run stops: a failure must not be lost).
    #[error("failures file {path}: {source}")]
    FailureLog { path: PathBuf, source: std::io::Error },
    /// Bad `--slices`.
    #[error("{0}")]
    BadSlices(String),
    /// Shutdown was requested.
    #[error("cancelled")]
    Cancelled,
    /// A slice task panicked.
    #[error("slice task failed: {0}")]
    Task(String),
}

/// Shared state of one run.
struct Ctx {
    legacy: Es,
    writer: BulkWriter,
    cfg: CopyConfig,
    version_source: LegacyVersionSource,
    method: ScanMethod,
    slices: u32,
    member: Member,
    failures: FailureLog,
    stats: Arc<Stats>,
    limiter: Option<RateLimiter>,
    bulk_permits: Semaphore,
    breaker: parking_lot::Mutex<Breaker>,
    cancel: CancellationToken,
}

/// How one slice task of this worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SliceEnd {
    /// Its checkpoint said done: nothing to copy.
    AlreadyDone,
    /// Copied to its end (from its checkpoint when `resumed`).
    Ran { resumed: bool, recoveries: u64 },
    /// The group moved it to another worker (revoked, or its checkpoint refused).
    Moved,
}

/// Refreshes the source before the scan opens its contexts, so that every write the legacy
/// cluster acknowledged before the copy started is visible to it. Without this, writes from the
/// last refresh interval (or longer, on a search-idle shard) would be invisible to the scan, and
/// if their commands had already left the topic (retention), nobody would copy them. A refresh
/// changes no document; a cluster that refuses it (e.g. a read-only role) gets a warning.
pub async fn refresh_source(legacy: &Es, index: &str) {
    if let Err(e) = legacy.refresh(index).await {
        tracing::warn!(index, error = %e, "could not refresh the source index; writes acknowledged in the last refresh interval may be invisible to this scan");
    }
}

/// Joins the copy job and copies the slices the group gives this worker until every slice of
/// the job is done, then returns the summary. Checks first that a version source is configured
/// and that the target is ready.
pub async fn copy(legacy: &Es, target: &Es, cfg: CopyConfig, cancel: CancellationToken) -> Result<Summary, CopyError> {
    let version_source = cfg.legacy_version.clone().ok_or(CopyError::NoVersionSource)?;
    let definition = check_readiness(target, &cfg.target_index, &cfg.tags, cfg.min_gc_deletes).await?;
    if cfg.bulk_load {
        enter_bulk_load(target, &cfg.target_index).await;
    }
    let server = cluster::version::detect(legacy).await?;
    let method = ScanMethod::choose(cfg.scan_method, &server).map_err(|source| CopyError::Scan { slice: 0, source })?;
    refresh_source(legacy, &cfg.source_index).await;
    let slices = match cfg.slices {
        Some(n) if n > 1 && !server.supports_sliced_scroll() => {
            return Err(CopyError::BadSlices(format!("{server} cannot slice a scroll: leave --slices out (or use --slices 1): one worker reads the index")))
        }
        Some(n) if n > 0 => n,
        Some(_) => return Err(CopyError::BadSlices("--slices must be at least 1".into())),
        None if !server.supports_sliced_scroll() => 1,
        None => default_slices(legacy, &cfg.source_index).await?,
    };
    let expected = count(legacy, &cfg.source_index).await.ok();
    let spec = JobSpec { source_index: cfg.source_index.clone(), target_index: cfg.target_index.clone(), slices, expected_docs: expected };
    let (member, mut events) = Member::join(&cfg.job, spec, &cfg.write.retry, &cancel).await?;
    let failures = FailureLog::open(&cfg.failures_file).map_err(|source| CopyError::FailureLog { path: cfg.failures_file.clone(), source })?;
    let stats = Arc::new(Stats::new(&(0..slices).collect::<Vec<_>>()));
    crate::metrics::run_started(&definition, expected);
    tracing::info!(source = %cfg.source_index, target = %cfg.target_index, %server, method = method.as_str(), slices, worker = %cfg.job.worker, "backfill starting");
    let started = Instant::now();
    let reporter = Reporter::start(stats.clone(), cfg.progress, expected, cfg.log_interval);
    let writer = BulkWriter::new(target.clone(), cfg.write.clone(), cancel.clone());
    let ctx = Arc::new(Ctx {
        legacy: legacy.clone(),
        writer,
        limiter: cfg.max_docs_per_sec.filter(|&r| r > 0).map(RateLimiter::new),
        bulk_permits: Semaphore::new(cfg.bulk_concurrency.max(1)),
        breaker: parking_lot::Mutex::new(Breaker::new(cfg.breaker)),
        cfg,
        version_source,
        method,
        slices,
        member,
        failures,
        stats: stats.clone(),
        cancel: cancel.child_token(),
    });
    let outcome = run_job(&ctx, &mut events).await;
    reporter.stop().await;
    let job = match outcome {
        Ok(ends) => ctx.member.load_all().await.map(|cps| (ends, cps)).map_err(CopyError::from),
        Err(e) => Err(e),
    };
    ctx.member.leave().await;
    let (ends, checkpoints) = job?;
    if ctx.cfg.refresh_at_end {
        target.refresh(&ctx.cfg.target_index).await?;
    }
    let summary = summarize(&ctx, &ends, &checkpoints, started.elapsed());
    tracing::info!("{summary}");
    if ctx.cfg.bulk_load {
        tracing::info!(target = %ctx.cfg.target_index, "the target stays in bulk-load settings (refresh off, no replicas) for further copies; run `backfill finalize` after the last one, before switching reads");
    }
    Ok(summary)
}

/// Applies the bulk-load settings, logging what changed. A failure (e.g. a role without the
/// `manage` privilege on the index) only costs speed: warned, and the copy goes on.
async fn enter_bulk_load(target: &Es, index: &str) {
    match crate::bulkload::enter(target, index).await {
        Ok(e) if e.changes.is_empty() => {
            tracing::info!(target = %index, "target already in bulk-load settings (refresh_interval -1, replicas 0 or auto-expanded)")
        }
        Ok(e) => {
            tracing::info!(target = %index, changed = %e.changes.join(", "), "bulk-load settings for the copy; `backfill finalize` restores the legacy index's values")
        }
        Err(e) => {
            tracing::warn!(target = %index, error = %e, "could not apply bulk-load settings; copying with the target's own settings (slower; --no-bulk-load silences this)")
        }
    }
}

/// How often a worker with no slice running asks whether the job is done.
const JOB_POLL: Duration = Duration::from_secs(1);

/// Runs the slices the group assigns, each as a task that a revoke cancels, until every slice
/// of the job is done. The first error cancels the others.
async fn run_job(ctx: &Arc<Ctx>, events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Result<Vec<(u32, SliceEnd)>, CopyError> {
    let mut tasks: tokio::task::JoinSet<(u32, u64, Result<SliceEnd, CopyError>)> = tokio::task::JoinSet::new();
    // slice -> (epoch, token) of the task copying it now.
    let mut running: std::collections::HashMap<u32, (u64, CancellationToken)> = Default::default();
    let mut ends = Vec::new();
    let mut poll = tokio::time::interval(JOB_POLL);
    let result = loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break Err(CopyError::Cancelled),
            Some(event) = events.recv() => match event {
                Event::Assigned { slices, epoch } => {
                    for slice in slices {
                        let token = ctx.cancel.child_token();
                        if let Some((_, old)) = running.insert(slice, (epoch, token.clone())) {
                            old.cancel();
                        }
                        let ctx = ctx.clone();
                        tasks.spawn(async move { (slice, epoch, run_slice(ctx, slice, epoch, token).await) });
                    }
                }
                Event::Revoked(slices) => {
                    for slice in slices {
                        if let Some((_, token)) = running.remove(&slice) {
                            token.cancel();
                        }
                    }
                }
            },
            Some(joined) = tasks.join_next() => {
                let (slice, epoch, result) = match joined {
                    Ok(j) => j,
                    Err(e) => break Err(CopyError::Task(e.to_string())),
                };
                if running.get(&slice).is_some_and(|(e, _)| *e == epoch) {
                    running.remove(&slice);
                }
                match result {
                    Ok(end) => ends.push((slice, end)),
                    Err(e) => break Err(e),
                }
            },
            _ = poll.tick(), if running.is_empty() => {
                let cps = ctx.member.load_all().await?;
                if cps.iter().all(|c| c.as_ref().is_some_and(|c| c.done)) {
                    tracing::info!(slices = cps.len(), copied_here = ends.len(), "every slice of the job is done");
                    break Ok(());
                }
            }
        }
    };
    if result.is_err() {
        ctx.cancel.cancel();
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((slice, _, Ok(end))) = joined {
            ends.push((slice, end));
        }
    }
    result.map(|()| ends)
}

fn summarize(ctx: &Ctx, ends: &[(u32, SliceEnd)], checkpoints: &[Option<SliceCheckpoint>], elapsed: Duration) -> Summary {
    let s = &ctx.stats;
    let scanned = s.scanned.load(Relaxed);
    let pick = |f: fn(&SliceEnd) -> bool| {
        let mut v: Vec<u32> = ends.iter().filter(|(_, r)| f(r)).map(|(s, _)| *s).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    Summary {
        source_index: ctx.cfg.source_index.clone(),
        target_index: ctx.cfg.target_index.clone(),
        method: ctx.method.as_str().into(),
        slices: ctx.slices,
        slices_assigned: pick(|_| true),
        slices_already_done: pick(|r| matches!(r, SliceEnd::AlreadyDone)),
        slices_resumed: pick(|r| matches!(r, SliceEnd::Ran { resumed: true, .. })),
        slices_moved: pick(|r| matches!(r, SliceEnd::Moved)),
        scanned,
        written: s.written.load(Relaxed),
        superseded: s.superseded.load(Relaxed),
        failed: s.failed.load(Relaxed),
        // The whole job's failures, over every run and worker, from the checkpoints.
        failed_in_slices: checkpoints.iter().flatten().map(|cp| cp.failed).sum::<u64>().max(s.failed.load(Relaxed)),
        context_recoveries: ends.iter().map(|(_, r)| if let SliceEnd::Ran { recoveries, .. } = r { *recoveries } else { 0 }).sum(),
        elapsed_secs: elapsed.as_secs_f64(),
        docs_per_sec: scanned as f64 / elapsed.as_secs_f64().max(1e-3),
        failures_file: ctx.cfg.failures_file.display().to_string(),
    }
}

type BatchResult = Result<(BatchCounts, u64), CopyError>;

/// Copies one slice from its checkpoint to its end, while this worker holds it (`token` is
/// cancelled when the group moves it).
async fn run_slice(ctx: Arc<Ctx>, slice: u32, epoch: u64, token: CancellationToken) -> Result<SliceEnd, CopyError> {
    let result = copy_slice(&ctx, slice, epoch, &token).await;
    match result {
        // Moved while it ran: the new owner continues from the last checkpoint saved here.
        Err(CopyError::Cancelled) | Err(CopyError::Checkpoint(CheckpointError::Lost { .. })) if !ctx.cancel.is_cancelled() => {
            tracing::info!(slice, epoch, "slice moved to another worker; stopped copying it");
            Ok(SliceEnd::Moved)
        }
        Err(_) if token.is_cancelled() && !ctx.cancel.is_cancelled() => Ok(SliceEnd::Moved),
        other => other,
    }
}

async fn copy_slice(ctx: &Arc<Ctx>, slice: u32, epoch: u64, token: &CancellationToken) -> Result<SliceEnd, CopyError> {
    let pos = slice as usize;
    let (mut cp, resumed) = match ctx.member.load(slice).await? {
        Some(cp) if cp.done => {
            tracing::info!(slice, "slice already done (checkpoint); skipping");
            ctx.stats.slice_done(pos);
            return Ok(SliceEnd::AlreadyDone);
        }
        Some(cp) => {
            if ctx.method.resumable() {
                tracing::info!(slice, resume_seq_no = cp.resume_seq_no, scanned_before = cp.scanned, by = %cp.worker, "resuming slice from checkpoint");
            } else {
                tracing::info!(slice, scanned_before = cp.scanned, by = %cp.worker, method = ctx.method.as_str(), "restarting slice from its start (the source has no _seq_no to resume at)");
            }
            (cp, true)
        }
        None => (ctx.member.fresh(slice), false),
    };
    cp.runs += 1;
    cp.worker = ctx.cfg.job.worker.clone();
    let _in_progress = InProgress::start();
    let opts = ScanOptions {
        index: ctx.cfg.source_index.clone(),
        method: ctx.method,
        slice: SliceSpec { id: slice, max: ctx.slices },
        page_size: ctx.cfg.batch_size.max(1),
        keep_alive: ctx.cfg.keep_alive.clone(),
        source: true,
        retry: ctx.cfg.write.retry.clone(),
    };
    let scan = SliceScan::new(ctx.legacy.clone(), opts, cp.resume_seq_no, token.clone());
    #[cfg(feature = "test-hooks")]
    let scan = scan.with_hook(ctx.cfg.on_page.clone());
    let mut scan = scan;
    let result = pump(ctx, pos, slice, epoch, token, &mut scan, &mut cp).await;
    scan.close().await;
    result?;
    cp.done = true;
    ctx.member.save(epoch, &mut cp, token).await?;
    ctx.stats.slice_done(pos);
    ctx.stats.recoveries.fetch_add(scan.recoveries(), Relaxed);
    Ok(SliceEnd::Ran { resumed, recoveries: scan.recoveries() })
}

/// Reads pages and resolves their batches in order, saving the checkpoint after each.
async fn pump(
    ctx: &Arc<Ctx>,
    pos: usize,
    slice: u32,
    epoch: u64,
    token: &CancellationToken,
    scan: &mut SliceScan,
    cp: &mut SliceCheckpoint,
) -> Result<(), CopyError> {
    let depth = ctx.cfg.bulk_concurrency.max(1);
    let mut inflight: FuturesOrdered<tokio::task::JoinHandle<BatchResult>> = FuturesOrdered::new();
    let mut exhausted = false;
    loop {
        if token.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        if !exhausted && inflight.len() < depth {
            let page = tokio::select! {
                page = scan.next_page() => page.map_err(|source| match source {
                    ScanError::GaveUp { why: GiveUp::Cancelled, .. } => CopyError::Cancelled,
                    source => CopyError::Scan { slice, source },
                })?,
                _ = token.cancelled() => return Err(CopyError::Cancelled),
            };
            match page {
                Some(page) => {
                    let batch = prepare(ctx, slice, page);
                    inflight.push_back(tokio::spawn(write_batch(ctx.clone(), slice, batch)));
                }
                None => exhausted = true,
            }
            continue;
        }
        let Some(joined) = inflight.next().await else { return Ok(()) };
        let (counts, resume_seq_no) = joined.map_err(|e| CopyError::Task(e.to_string()))??;
        cp.resume_seq_no = resume_seq_no;
        cp.scanned += counts.scanned;
        cp.written += counts.written;
        cp.superseded += counts.superseded;
        cp.failed += counts.failed;
        ctx.member.save(epoch, cp, token).await?;
        ctx.stats.add(pos, counts);
    }
}

/// A page turned into writes, plus the documents that could not even be turned into one.
struct Batch {
    ops: Vec<BulkOp<'static>>,
    failures: Vec<Failure>,
    /// The page's documents in scan order: true for one in `failures`, false for one in `ops`
    /// (the poison breaker sees verdicts in order).
    order: Vec<bool>,
    scanned: u64,
    resume_seq_no: u64,
}

/// Rewrites a page's hits into externally versioned index operations. Consumes the hits so
/// that sources move into the operations without copies (beyond the rewrite's own).
fn prepare(ctx: &Ctx, slice: u32, page: Page) -> Batch {
    let scanned = page.hits.len() as u64;
    let mut ops = Vec::with_capacity(page.hits.len());
    let mut failures = Vec::new();
    let mut order = Vec::with_capacity(page.hits.len());
    for hit in page.hits {
        let failed = match to_op(ctx, hit) {
            Ok(op) => {
                ops.push(op);
                false
            }
            Err(mut f) => {
                f.slice = slice;
                failures.push(f);
                true
            }
        };
        order.push(failed);
    }
    Batch { ops, failures, order, scanned, resume_seq_no: page.resume_seq_no }
}

fn to_op(ctx: &Ctx, hit: Hit) -> Result<BulkOp<'static>, Failure> {
    let Some(id) = hit.id else {
        return Err(failure(FailureKind::Hit, String::new(), None, None, "hit without _id".into()));
    };
    let routing = hit.routing;
    let version = schema::legacy_version_of_text(hit.version.as_ref(), hit.source.as_deref(), &ctx.version_source)
        .map_err(|e| failure(FailureKind::Version, id.clone(), routing.clone(), None, e.to_string()))?;
    let source = match &hit.source {
        Some(source) if source.get().starts_with('{') => source,
        _ => return Err(failure(FailureKind::Hit, id, routing, Some(version), "hit without an object _source".into())),
    };
    match ctx.cfg.tags.transcode(source) {
        Ok(doc) => Ok(BulkOp {
            index: Cow::Owned(ctx.cfg.target_index.clone()),
            id: Cow::Owned(id),
            routing: routing.map(Cow::Owned),
            version,
            kind: BulkOpKind::Index(Cow::Owned(doc)),
        }),
        Err(e) => Err(failure(FailureKind::Rewrite, id, routing, Some(version), e.to_string())),
    }
}

fn failure(kind: FailureKind, id: String, routing: Option<String>, version: Option<u64>, reason: String) -> Failure {
    Failure { kind, id, routing, version, slice: 0, reason }
}

/// Writes one batch (rate-limited, within the process-wide bulk concurrency) and records its
/// failures; resolves only when every document of the batch is resolved. A batch whose verdicts
/// trip the poison breaker records nothing and fails (its checkpoint is not saved).
async fn write_batch(ctx: Arc<Ctx>, slice: u32, batch: Batch) -> BatchResult {
    if let Some(limiter) = &ctx.limiter {
        limiter.acquire(batch.scanned as usize).await;
    }
    let mut counts = BatchCounts { scanned: batch.scanned, failed: batch.failures.len() as u64, ..Default::default() };
    let mut results = Vec::new();
    if !batch.ops.is_empty() {
        let _permit = ctx.bulk_permits.acquire().await.map_err(|_| CopyError::Cancelled)?;
        results = ctx.writer.write(&batch.ops).await.map_err(|source| match source {
            WriteError::Cancelled => CopyError::Cancelled,
            source => CopyError::Write { slice, source },
        })?;
    }
    judge(&ctx, slice, &batch.order, &results)?;
    let mut failures = batch.failures;
    for (op, outcome) in batch.ops.into_iter().zip(results) {
        match outcome {
            Outcome::Applied | Outcome::NoOp => counts.written += 1,
            Outcome::Superseded => counts.superseded += 1,
            Outcome::Poison(poison) => {
                counts.failed += 1;
                failures.push(Failure {
                    kind: FailureKind::Rejected,
                    id: op.id.into_owned(),
                    routing: op.routing.map(Cow::into_owned),
                    version: Some(op.version),
                    slice,
                    reason: poison.reason,
                });
            }
        }
    }
    if !failures.is_empty() {
        // Written and fsynced on the blocking pool, never on an async worker.
        let log = ctx.clone();
        let written = tokio::task::spawn_blocking(move || log.failures.record(&failures)).await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        written.map_err(|source| CopyError::FailureLog { path: ctx.failures.path().to_path_buf(), source })?;
    }
    Ok((counts, batch.resume_seq_no))
}

/// Hands a batch's verdicts to the poison breaker in scan order (`order`: true for a document
/// that could not be turned into a write; the others take their write's outcome in turn).
fn judge(ctx: &Ctx, slice: u32, order: &[bool], results: &[Outcome]) -> Result<(), CopyError> {
    let mut breaker = ctx.breaker.lock();
    let mut written = results.iter();
    let mut good = 0;
    for &failed in order {
        let poison = failed || matches!(written.next(), Some(Outcome::Poison(_)));
        if !poison {
            good += 1;
            continue;
        }
        breaker.poison_after(std::mem::take(&mut good)).map_err(|tripped| {
            metrics::counter!("cutover_backfill_breaker_trips_total").increment(1);
            CopyError::Systematic { slice, tripped }
        })?;
    }
    breaker.good(good);
    Ok(())
}

/// Counts a slice in [`crate::metrics::SLICES_IN_PROGRESS`] while it is copied, however its
/// copy ends.
struct InProgress;

impl InProgress {
    fn start() -> Self {
        metrics::gauge!(crate::metrics::SLICES_IN_PROGRESS).increment(1.0);
        InProgress
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::SLICES_IN_PROGRESS).decrement(1.0);
    }
}

/// The default slice count: the source's primary shards, at least 4 and at most 8. At least 4
/// so that a job has more slices than it usually has workers: a worker that joins later gets
/// slices too, and one that dies leaves its slices to several others. At most 8: more slices
/// than that mostly add PIT and per-page slicing overhead on the source.
async fn default_slices(legacy: &Es, index: &str) -> Result<u32, CopyError> {
    let body = legacy.get(&format!("/{}/_settings/index.number_of_shards", enc(index))).await?;
    let shards = body
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v.pointer("/settings/index/number_of_shards"))
        .and_then(|v| v.as_str().and_then(|s| s.parse::<u32>().ok()).or_else(|| v.as_u64().map(|n| n as u32)))
        .unwrap_or(1);
    Ok(shards.clamp(4, 8))
}

/// The number of documents in an index (for the progress bar's ETA).
pub async fn count(es: &Es, index: &str) -> Result<u64, EsError> {
    let body = es.get(&format!("/{}/_count", enc(index))).await?;
    Ok(body.get("count").and_then(Value::as_u64).unwrap_or(0))
}
