//! `verify`: proves `target == transform(legacy)` document by document, and that queries
//! return the same documents on both sides.
//!
//! ## Identity
//! A document is the pair (`_id`, `_routing`) ([`DocRef`]): Elasticsearch stores two documents
//! with one id and different custom routings as two documents (usually on different shards), so
//! verify flags, re-checks and reports each pair on its own, and one copy cannot hide a missing
//! or different other. Known deletes (the indexer's tombstones, `--deletes-file`) carry no
//! routing: they apply to an id whatever its routing.
//!
//! ## Method
//! Sorting or slicing by `_id` cannot be relied on for a merge-join of both sides (8.x+
//! disables `_id` field data by default), so each side is read once, in its cheapest order
//! (a sliced scroll sorted on `_doc`, [`ScanMethod::choose_full_read`]; a PIT when asked
//! for), and both walks run at the same time:
//! 1. **Walks**: each document becomes a digest, (id, routing) -> (version, 64-bit rapidhash of
//!    its source serialized with sorted keys: the target's as stored, the legacy's rewritten
//!    into the target form). The digests are sorted by (id, routing) in bounded memory, spilled
//!    to sorted runs on disk past [`DIGEST_BUFFER`] per side (`verify/digests.rs`).
//! 2. **Join**: both sorted streams are merged: a document on one side only, with another
//!    version or another hash is flagged (missing, extra, in flight, different; a legacy source
//!    that cannot be rewritten is untransformable). Nothing is fetched per document. A hash
//!    collision could hide a difference with probability about 2^-64 per document.
//! 3. **Re-read**: the two walks see each document at slightly different times on a live
//!    system, so every flag is read again on both sides with real-time `_mget` (id and
//!    routing) and classified from those reads; documents that now agree are dropped.
//! 4. **Re-check**: the legacy cluster keeps changing during a verify, so a difference may be
//!    in flight. Every flagged document is re-read on both sides every `recheck_interval` until
//!    no *in-flight* one (versions differ) is left or `settle_timeout` passes; documents that
//!    converge meanwhile are dropped. What is left is reported by class.
//!
//! ## Classes
//! - `missing`: in legacy, not in target.
//! - `extra`: in target, not in legacy.
//! - `resurrected`: extra, and a known delete of that id is at least as new as the target copy.
//! - `different`: same version, different content (a real divergence: the transform or a
//!   writer is wrong).
//! - `in_flight`: versions differ (a writer has not caught up), still so at the deadline.
//! - `untransformable`: the legacy document cannot be rewritten (see the copy's failures file).
//!
//! ## Query parity (`--parity`)
//! At least 20 [`schema::Query`]s are built from tags found in the data (key+value, value, key
//! exists, and bool combinations with a low-cardinality plain field) and run on both clusters
//! (`to_legacy` / `to_target`); totals and (id, routing) sets must be equal. A legacy query the
//! legacy cluster cannot answer (e.g. `TagValue` expanding to more tag fields than the clause
//! limit, the very mapping explosion the migration removes) is reported separately, not as a
//! mismatch.

mod digests;

use crate::scan::{ScanError, ScanMethod, ScanMethodChoice, ScanOptions, SliceScan, SliceSpec};
use cluster::client::enc;
use cluster::{Es, EsError, RetryError, RetryPolicy};
use digests::Spill;
use parking_lot::Mutex;
use schema::{LegacyVersionSource, Query, TagRewrite};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What `verify` compares and how long it waits for in-flight differences.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    pub source_index: String,
    pub target_index: String,
    pub tags: TagRewrite,
    pub legacy_version: LegacyVersionSource,
    /// Parallel slices of the legacy walk.
    pub slices: u32,
    /// Documents per page (and per `_mget`).
    pub page_size: usize,
    pub keep_alive: String,
    pub scan_method: ScanMethodChoice,
    /// How long to keep re-checking in-flight differences.
    pub settle_timeout: Duration,
    /// Pause between two re-checks.
    pub recheck_interval: Duration,
    /// Known deletes (id -> delete version), to tell resurrected documents from extra ones. A
    /// delete carries no routing: it applies to the id whatever the routing.
    pub known_deletes: HashMap<String, u64>,
    /// Sample documents kept per class in the report.
    pub sample_limit: usize,
    /// Run the query parity suite.
    pub parity: bool,
    /// Plain field for parity bool combinations (`None`: the lowest-cardinality scalar field).
    pub parity_field: Option<String>,
    /// How failed scan pages are retried (`what = "scan"`; default: forever).
    pub retry: RetryPolicy,
    /// Where the walks' digests spill to sorted runs past `digest_buffer` (a folder of each
    /// verify's own is made there and removed after).
    pub spill_dir: std::path::PathBuf,
    /// Digests each side holds in memory before spilling ([`DIGEST_BUFFER`]).
    pub digest_buffer: usize,
}

/// Digests each side holds in memory before sorting them into a run on disk (about 100 bytes
/// each: some 25 MB per side, whatever the index's size).
pub const DIGEST_BUFFER: usize = 250_000;

impl VerifyConfig {
    /// A config with the CLI's defaults.
    pub fn new(source_index: &str, target_index: &str, legacy_version: LegacyVersionSource) -> Self {
        VerifyConfig {
            source_index: source_index.into(),
            target_index: target_index.into(),
            tags: TagRewrite::default(),
            legacy_version,
            slices: 2,
            page_size: 1000,
            keep_alive: "5m".into(),
            scan_method: ScanMethodChoice::Auto,
            settle_timeout: Duration::from_secs(30),
            recheck_interval: Duration::from_secs(1),
            known_deletes: HashMap::new(),
            sample_limit: 20,
            parity: false,
            parity_field: None,
            retry: RetryPolicy::default(),
            spill_dir: std::env::temp_dir(),
            digest_buffer: DIGEST_BUFFER,
        }
    }
}

/// Why verify could not complete (a divergence is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Es(#[from] EsError),
    #[error("scanning {side}: {source}")]
    Scan { side: &'static str, source: ScanError },
    #[error("unexpected _mget response from {side}: {detail}")]
    Mget { side: &'static str, detail: String },
    #[error("verify task failed: {0}")]
    Task(String),
    /// The walks' digests could not be spilled to disk or read back.
    #[error("spilling {side} digests under {dir}: {source}; give verify a folder with free space (--spill-dir)")]
    Spill { side: &'static str, dir: String, source: std::io::Error },
    /// The target has periodic refresh off (the copy's bulk-load settings) and could not be
    /// refreshed: its searches would show an arbitrarily old state.
    #[error("target index `{index}` has periodic refresh off ({detail}) and refreshing it failed: {source}; give the verifying user the right to refresh it, or run `backfill finalize` first")]
    StaleTarget { index: String, detail: String, source: Box<EsError> },
}

/// A document's identity: its `_id` and its custom `_routing` (none: routed by id). Two
/// documents with one id and different routings are two documents.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct DocRef {
    pub id: String,
    #[serde(default)]
    pub routing: Option<String>,
}

impl DocRef {
    pub fn new(id: impl Into<String>, routing: Option<&str>) -> Self {
        DocRef { id: id.into(), routing: routing.map(str::to_string) }
    }
}

/// `id`, or `id (routing r)` for a custom routing.
impl std::fmt::Display for DocRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.routing {
            Some(r) => write!(f, "{} (routing {r})", self.id),
            None => f.write_str(&self.id),
        }
    }
}

/// A class of difference: how many documents, and some of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Category {
    pub count: u64,
    /// The sampled documents' ids (one entry per document: an id flagged under two routings
    /// appears twice; `samples` tells them apart).
    pub sample_ids: Vec<String>,
    /// The sampled documents, id and routing, in the order of `sample_ids` (absent from
    /// reports written before it was added).
    #[serde(default)]
    pub samples: Vec<DocRef>,
}

impl Category {
    fn add(&mut self, doc: DocRef, sample_limit: usize) {
        self.count += 1;
        if self.samples.len() < sample_limit {
            self.sample_ids.push(doc.id.clone());
            self.samples.push(doc);
        }
    }
}

/// The outcome of a verify run.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub source_index: String,
    pub target_index: String,
    /// Sorted runs the digests spilled to disk, both sides (0: the join ran in memory; absent
    /// from older reports).
    #[serde(default)]
    pub spilled_runs: usize,
    pub legacy_docs_scanned: u64,
    pub target_docs_scanned: u64,
    pub missing: Category,
    pub extra: Category,
    pub resurrected: Category,
    pub different: Category,
    pub in_flight: Category,
    pub untransformable: Category,
    /// Re-check rounds done while waiting for in-flight differences.
    pub rechecks: u32,
    pub parity: Option<ParityReport>,
    /// True when every class is empty and parity (if run) passed.
    pub converged: bool,
    pub elapsed_secs: f64,
    /// When the run ended, RFC 3339 UTC: `cutover-check` reads the report's age from it
    /// (absent from older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<String>,
}

/// The query parity outcome.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ParityReport {
    /// Queries built.
    pub queries: usize,
    /// Queries both clusters answered and that were compared (totals, and ids below).
    pub compared: usize,
    /// Of those, queries small enough (<= 10 000 hits) to compare their id sets exactly.
    pub compared_by_ids: usize,
    pub mismatches: Vec<ParityMismatch>,
    /// Queries the legacy cluster could not answer (not counted as mismatches).
    pub legacy_errors: Vec<ParityFailure>,
    /// Queries the target cluster could not answer (counted as failures).
    pub target_errors: Vec<ParityFailure>,
    pub passed: bool,
}

/// A query whose results differ.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ParityMismatch {
    pub query: Query,
    pub legacy_total: u64,
    pub target_total: u64,
    /// Ids of `only_legacy_docs`.
    pub only_legacy: Vec<String>,
    /// Ids of `only_target_docs`.
    pub only_target: Vec<String>,
    /// Documents (id, routing) only the legacy side returned (absent from older reports).
    #[serde(default)]
    pub only_legacy_docs: Vec<DocRef>,
    /// Documents (id, routing) only the target side returned (absent from older reports).
    #[serde(default)]
    pub only_target_docs: Vec<DocRef>,
}

/// A query one side could not run.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ParityFailure {
    pub query: Query,
    pub error: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finding {
    Missing,
    Extra,
    Resurrected,
    Different,
    InFlight,
    Untransformable,
}

/// The legacy side of one document: its version and its rewritten source (or why not).
type LegacyState = Option<(u64, Result<Map<String, Value>, String>)>;
/// The target side of one document: its version and source.
type TargetState = Option<(u64, Option<Map<String, Value>>)>;

/// Flagged documents: (id, routing) -> finding.
type Flags = BTreeMap<DocRef, Finding>;

struct Shared {
    /// Each side's digests, sorted in bounded memory.
    legacy_digests: Mutex<Spill>,
    target_digests: Mutex<Spill>,
    legacy_scanned: std::sync::atomic::AtomicU64,
    target_scanned: std::sync::atomic::AtomicU64,
    samples: Mutex<Vec<Map<String, Value>>>,
}

/// The deletes the indexer applied to `target_index` (id -> delete version), read from its
/// tombstone side index ([`schema::tombstone_index`]); empty when there is none. With them a
/// document that is in the target but deleted in the legacy cluster is reported as
/// *resurrected* rather than merely *extra*.
pub async fn indexer_tombstones(target: &Es, target_index: &str) -> Result<HashMap<String, u64>, VerifyError> {
    let mut out = HashMap::new();
    let body = json!({"size": 5000, "sort": ["_doc"], "_source": ["version"], "query": {"match_all": {}}});
    // A missing index means no deletes were recorded; any other failure is an error, because
    // without the tombstones a resurrected delete would pass for a merely extra document.
    cluster::scroll::for_each_hit(target, &schema::tombstone_index(target_index), &body, |h| {
        if let (Some(id), Some(v)) = (h["_id"].as_str(), h["_source"]["version"].as_u64()) {
            out.insert(id.to_string(), v);
        }
    })
    .await?;
    Ok(out)
}

/// Walks both sides, re-checks in-flight differences, optionally runs the parity suite.
pub async fn verify(legacy: &Es, target: &Es, cfg: &VerifyConfig) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    // Both sides see every acknowledged write before the walks start.
    crate::copy::refresh_source(legacy, &cfg.source_index).await;
    refresh_target(target, &cfg.target_index).await?;
    let legacy_server = cluster::version::detect(legacy).await?;
    // Both walks are full reads, never resumed: the cheapest method of each server.
    let legacy_method = ScanMethod::choose_full_read(cfg.scan_method, &legacy_server).map_err(|source| VerifyError::Scan { side: "legacy", source })?;
    let target_method = ScanMethod::choose_full_read(ScanMethodChoice::Auto, &cluster::version::detect(target).await?)
        .map_err(|source| VerifyError::Scan { side: "target", source })?;
    let shared = Arc::new(Shared {
        legacy_digests: Mutex::new(Spill::new(&cfg.spill_dir, "legacy", cfg.digest_buffer)),
        target_digests: Mutex::new(Spill::new(&cfg.spill_dir, "target", cfg.digest_buffer)),
        legacy_scanned: 0.into(),
        target_scanned: 0.into(),
        samples: Mutex::new(Vec::new()),
    });
    let cfg = Arc::new(cfg.clone());
    // 2.x cannot slice a scroll: one walk.
    let slices = if legacy_server.supports_sliced_scroll() { cfg.slices.max(1) } else { 1 };
    tracing::info!(slices, legacy = legacy_method.as_str(), target = target_method.as_str(), "verify starting");
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..slices {
        let slice = SliceSpec { id, max: slices };
        let (l, c, s) = (legacy.clone(), cfg.clone(), shared.clone());
        tasks.spawn(async move { walk_legacy(&l, &c, &s, legacy_method, slice).await });
        let (t, c, s) = (target.clone(), cfg.clone(), shared.clone());
        tasks.spawn(async move { walk_target(&t, &c, &s, target_method, slice).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| VerifyError::Task(e.to_string()))??;
    }
    // Every walk has ended: the shared state is this function's alone again.
    let Shared { legacy_digests, target_digests, legacy_scanned, target_scanned, samples } =
        Arc::into_inner(shared).ok_or_else(|| VerifyError::Task("a walk outlived the walks".into()))?;
    let (mut flags, spilled_runs) = {
        let (l, t, c) = (legacy_digests.into_inner(), target_digests.into_inner(), cfg.clone());
        tokio::task::spawn_blocking(move || join_sides(l, t, &c)).await.map_err(|e| VerifyError::Task(e.to_string()))??
    };
    if !flags.is_empty() {
        // The walks read each document at slightly different times: classify every flag from
        // real-time reads of both sides before waiting for the in-flight ones.
        recheck(legacy, target, &cfg, &mut flags).await?;
    }
    let rechecks = settle(legacy, target, &cfg, &mut flags).await?;
    let parity = if cfg.parity {
        // The parity queries search both sides: the target sees the writes since the walks too
        // (its periodic refresh may be off until `backfill finalize`).
        crate::copy::refresh_source(legacy, &cfg.source_index).await;
        refresh_target(target, &cfg.target_index).await?;
        let samples = samples.into_inner();
        Some(run_parity(legacy, target, &cfg, &samples).await?)
    } else {
        None
    };
    let mut report = VerifyReport {
        source_index: cfg.source_index.clone(),
        target_index: cfg.target_index.clone(),
        spilled_runs,
        legacy_docs_scanned: legacy_scanned.into_inner(),
        target_docs_scanned: target_scanned.into_inner(),
        rechecks,
        parity,
        ..Default::default()
    };
    tally(&mut report, flags, cfg.sample_limit);
    let clean =
        [&report.missing, &report.extra, &report.resurrected, &report.different, &report.in_flight, &report.untransformable].iter().all(|c| c.count == 0);
    report.converged = clean && report.parity.as_ref().is_none_or(|p| p.passed);
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.generated_at = Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
    Ok(report)
}

/// Counts and samples each flagged document in its class.
fn tally(report: &mut VerifyReport, flags: Flags, sample_limit: usize) {
    for (doc, finding) in flags {
        let cat = match finding {
            Finding::Missing => &mut report.missing,
            Finding::Extra => &mut report.extra,
            Finding::Resurrected => &mut report.resurrected,
            Finding::Different => &mut report.different,
            Finding::InFlight => &mut report.in_flight,
            Finding::Untransformable => &mut report.untransformable,
        };
        cat.add(doc, sample_limit);
    }
}

/// Refreshes the target before it is searched. While the copy's bulk-load settings are on
/// (`index.refresh_interval: -1`), only an explicit refresh makes writes visible to searches
/// (the target walk and the parity queries; `_mget` reads are real-time anyway), so a failed
/// refresh is an error then; with periodic refresh on it is a warning, as for the source.
pub(crate) async fn refresh_target(target: &Es, index: &str) -> Result<(), VerifyError> {
    let Err(source) = target.refresh(index).await else { return Ok(()) };
    match cluster::readiness::refresh_disabled_indices(target, index).await {
        Ok(off) if off.is_empty() => {
            tracing::warn!(index, error = %source, "could not refresh the target index; writes of the last refresh interval may be invisible to its walk");
            Ok(())
        }
        Ok(off) => Err(VerifyError::StaleTarget { index: index.into(), detail: off.join(", "), source: Box::new(source) }),
        Err(e) => Err(VerifyError::StaleTarget { index: index.into(), detail: format!("its settings are unreadable too: {e}"), source: Box::new(source) }),
    }
}

/// A 64-bit hash (rapidhash v3, fixed seed) of a source serialized with sorted keys
/// (`serde_json`'s map is ordered), into `buf`, which the caller reuses from one document to
/// the next.
fn source_hash(source: &Map<String, Value>, buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    serde_json::to_writer(&mut *buf, source).expect("a JSON map serializes");
    rapidhash::v3::rapidhash_v3(buf)
}

/// A spill that could not be written or read back (the spill directory's disk).
fn spill_error(side: &'static str, dir: &std::path::Path, e: std::io::Error) -> VerifyError {
    VerifyError::Spill { side, dir: dir.display().to_string(), source: e }
}

/// One slice of the target: each document's digest.
async fn walk_target(target: &Es, cfg: &VerifyConfig, shared: &Shared, method: ScanMethod, slice: SliceSpec) -> Result<(), VerifyError> {
    let mut scan = SliceScan::new(target.clone(), scan_options(cfg, &cfg.target_index, method, slice, true), 0, CancellationToken::new());
    let mut buf = Vec::new();
    while let Some(page) = scan.next_page().await.map_err(|source| VerifyError::Scan { side: "target", source })? {
        shared.target_scanned.fetch_add(page.hits.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // Hashed before the spill is locked.
        let digests: Vec<(DocRef, u64, Option<u64>)> = page
            .hits
            .into_iter()
            .map(|hit| {
                let key = DocRef { id: hit.id.unwrap_or_default(), routing: hit.routing };
                let version = hit.version.as_ref().and_then(Value::as_u64).unwrap_or(0);
                // A source that is not a JSON object hashes as an empty one: it then differs.
                let source: Map<String, Value> = hit.source.and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default();
                (key, version, Some(source_hash(&source, &mut buf)))
            })
            .collect();
        push_all(&shared.target_digests, "target", cfg, digests)?;
    }
    Ok(())
}

/// One slice of the legacy: each document rewritten into the target form, and its digest (no
/// hash: it has no usable version or cannot be rewritten). Slice 0 keeps the first sources as
/// parity's samples.
async fn walk_legacy(legacy: &Es, cfg: &VerifyConfig, shared: &Shared, method: ScanMethod, slice: SliceSpec) -> Result<(), VerifyError> {
    let mut scan = SliceScan::new(legacy.clone(), scan_options(cfg, &cfg.source_index, method, slice, true), 0, CancellationToken::new());
    let mut buf = Vec::new();
    while let Some(page) = scan.next_page().await.map_err(|source| VerifyError::Scan { side: "legacy", source })? {
        shared.legacy_scanned.fetch_add(page.hits.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut wanted = if slice.id == 0 { SAMPLES.saturating_sub(shared.samples.lock().len()) } else { 0 };
        let mut samples = Vec::with_capacity(wanted.min(page.hits.len()));
        let mut digests = Vec::with_capacity(page.hits.len());
        for hit in page.hits {
            let version = schema::legacy_version_of_text(hit.version.as_ref(), hit.source.as_deref(), &cfg.legacy_version);
            let source: Option<Map<String, Value>> = hit.source.as_deref().and_then(|raw| serde_json::from_str(raw.get()).ok());
            if let (Some(src), true) = (&source, wanted > 0) {
                samples.push(src.clone());
                wanted -= 1;
            }
            let (version, hash) = match (version, source) {
                (Ok(v), Some(src)) => (v, cfg.tags.into_target(src).ok().map(|t| source_hash(&t, &mut buf))),
                (Ok(v), None) => (v, None),
                (Err(_), _) => (0, None),
            };
            digests.push((DocRef { id: hit.id.unwrap_or_default(), routing: hit.routing }, version, hash));
        }
        if !samples.is_empty() {
            shared.samples.lock().extend(samples);
        }
        push_all(&shared.legacy_digests, "legacy", cfg, digests)?;
    }
    Ok(())
}

fn push_all(spill: &Mutex<Spill>, side: &'static str, cfg: &VerifyConfig, digests: Vec<(DocRef, u64, Option<u64>)>) -> Result<(), VerifyError> {
    let mut spill = spill.lock();
    for (key, version, hash) in digests {
        spill.push(key, version, hash).map_err(|e| spill_error(side, &cfg.spill_dir, e))?;
    }
    Ok(())
}

/// Merges both sides' sorted digests; every document they disagree on is flagged. Returns the
/// flags and how many runs were spilled.
fn join_sides(legacy: Spill, target: Spill, cfg: &VerifyConfig) -> Result<(Flags, usize), VerifyError> {
    let runs = legacy.runs() + target.runs();
    let legacy = legacy.finish().map_err(|e| spill_error("legacy", &cfg.spill_dir, e))?;
    let target = target.finish().map_err(|e| spill_error("target", &cfg.spill_dir, e))?;
    let mut flags = Flags::new();
    digests::join(legacy, target, |key, l, t| {
        let finding = match (l, t) {
            (Some(l), _) if l.hash.is_none() => Some(Finding::Untransformable),
            (Some(_), None) => Some(Finding::Missing),
            (None, Some(t)) => classify(&None, &Some((t.version, None)), cfg.known_deletes.get(&key.id).copied()),
            (Some(l), Some(t)) if l.version != t.version => Some(Finding::InFlight),
            (Some(l), Some(t)) => (l.hash != t.hash).then_some(Finding::Different),
            (None, None) => None,
        };
        if let Some(f) = finding {
            flags.insert(key, f);
        }
    })
    .map_err(|e| spill_error("both", &cfg.spill_dir, e))?;
    Ok((flags, runs))
}

fn scan_options(cfg: &VerifyConfig, index: &str, method: ScanMethod, slice: SliceSpec, source: bool) -> ScanOptions {
    ScanOptions { index: index.into(), method, slice, page_size: cfg.page_size.max(1), keep_alive: cfg.keep_alive.clone(), source, retry: cfg.retry.clone() }
}

/// Legacy sources kept for the parity queries.
const SAMPLES: usize = 500;

/// The identity of a hit: `_id` and `_routing`.
pub(crate) fn doc_ref(hit: &Value) -> DocRef {
    let s = |k: &str| hit.get(k).and_then(Value::as_str);
    DocRef::new(s("_id").unwrap_or_default(), s("_routing"))
}

/// The legacy state of a hit or `_mget` doc: absent, or (version, rewritten source | reason).
fn legacy_state(doc: &Value, cfg: &VerifyConfig) -> LegacyState {
    if doc.get("found") == Some(&Value::Bool(false)) {
        return None;
    }
    let version = match schema::legacy_version(doc, &cfg.legacy_version) {
        Ok(v) => v,
        Err(e) => return Some((0, Err(format!("no version: {e}")))),
    };
    let rewritten = match doc.get("_source").and_then(Value::as_object) {
        Some(src) => cfg.tags.to_target(src).map_err(|e| e.to_string()),
        None => Err("no _source".into()),
    };
    Some((version, rewritten))
}

/// The target state of an `_mget` doc.
fn target_state(doc: &Value) -> TargetState {
    if doc.get("found") != Some(&Value::Bool(true)) {
        return None;
    }
    let version = doc.get("_version").and_then(Value::as_u64).unwrap_or(0);
    Some((version, doc.get("_source").and_then(Value::as_object).cloned()))
}

/// The class of one document given both sides (`None`: they agree).
fn classify(legacy: &LegacyState, target: &TargetState, known_delete: Option<u64>) -> Option<Finding> {
    match (legacy, target) {
        (None, None) => None,
        (Some((_, Err(_))), _) => Some(Finding::Untransformable),
        (Some(_), None) => Some(Finding::Missing),
        (None, Some((tv, _))) if known_delete.is_some_and(|d| d >= *tv) => Some(Finding::Resurrected),
        (None, Some(_)) => Some(Finding::Extra),
        (Some((lv, _)), Some((tv, _))) if lv != tv => Some(Finding::InFlight),
        (Some((_, Ok(expected))), Some((_, actual))) if actual.as_ref() == Some(expected) => None,
        (Some(_), Some(_)) => Some(Finding::Different),
    }
}

/// `_mget` of documents (id and routing) from one index ([`Es::mget`], the indexer's too); one
/// doc per key, in order.
pub(crate) async fn mget(es: &Es, index: &str, keys: &[DocRef], source: bool, side: &'static str, retry: &RetryPolicy) -> Result<Vec<Value>, VerifyError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let docs: Vec<Value> = keys
        .iter()
        .map(|DocRef { id, routing }| {
            let mut d = json!({"_index": index, "_id": id, "_source": source});
            if let Some(r) = routing {
                d["routing"] = json!(r);
            }
            d
        })
        .collect();
    let body = json!({ "docs": docs });
    // A busy or briefly sick cluster (429, 5xx, a document whose shard is not ready) is waited
    // out under the run's retry policy (`--max-retries`), as the copy does; a read that cannot
    // succeed (a missing index, credentials) fails at once.
    let attempt = || async {
        let mut resp = es.mget(&body).await.map_err(|e| ReadFailure { retry: e.is_retryable(), detail: e.to_string() })?;
        match resp.get_mut("docs").map(Value::take) {
            Some(Value::Array(docs)) if docs.len() == keys.len() => {
                if let Some(err) = docs.iter().find_map(|d| d.get("error").filter(|e| !e.is_null())) {
                    let cause = cluster::ErrorCause::parse(&json!({ "error": err }));
                    return Err(ReadFailure { retry: cluster::error::classify_read(&cause) == cluster::Class::Retry, detail: cause.to_string() });
                }
                Ok(docs)
            }
            _ => Err(ReadFailure { retry: true, detail: format!("expected {} docs", keys.len()) }),
        }
    };
    retry.run("verify_mget", &CancellationToken::new(), |f: &ReadFailure| f.retry, attempt).await.map_err(|e| match e {
        RetryError::Failed(f) => VerifyError::Mget { side, detail: f.detail },
        RetryError::GaveUp { why, last } => VerifyError::Mget { side, detail: format!("{why}; last error: {}", last.detail) },
    })
}

/// Why one `_mget` attempt failed, and whether trying again can help.
#[derive(Debug)]
struct ReadFailure {
    retry: bool,
    detail: String,
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Re-reads flagged documents until no in-flight one is left or the settle timeout passes; returns
/// the number of rounds.
async fn settle(legacy: &Es, target: &Es, cfg: &VerifyConfig, flags: &mut Flags) -> Result<u32, VerifyError> {
    let deadline = Instant::now() + cfg.settle_timeout;
    let mut rounds = 0;
    while flags.values().any(|f| *f == Finding::InFlight) && Instant::now() < deadline {
        tokio::time::sleep(cfg.recheck_interval.min(deadline.saturating_duration_since(Instant::now()))).await;
        rounds += 1;
        recheck(legacy, target, cfg, flags).await?;
        tracing::info!(
            round = rounds,
            flagged = flags.len(),
            in_flight = flags.values().filter(|f| **f == Finding::InFlight).count(),
            "re-checked differences"
        );
    }
    Ok(rounds)
}

async fn recheck(legacy: &Es, target: &Es, cfg: &VerifyConfig, flags: &mut Flags) -> Result<(), VerifyError> {
    let keys: Vec<DocRef> = flags.keys().cloned().collect();
    for chunk in keys.chunks(cfg.page_size.max(1)) {
        let ls = mget(legacy, &cfg.source_index, chunk, true, "legacy", &cfg.retry).await?;
        let ts = mget(target, &cfg.target_index, chunk, true, "target", &cfg.retry).await?;
        for ((key, l), t) in chunk.iter().zip(ls).zip(ts) {
            match classify(&legacy_state(&l, cfg), &target_state(&t), cfg.known_deletes.get(&key.id).copied()) {
                None => {
                    flags.remove(key);
                }
                Some(f) => {
                    if let Some(entry) = flags.get_mut(key) {
                        *entry = f;
                    }
                }
            }
        }
    }
    Ok(())
}

// ---- query parity -------------------------------------------------------------------------

/// Builds at least 20 queries from sampled legacy documents (fewer only when the sample has
/// too few distinct tags): key+value, value, key exists, and bool combinations with a plain
/// field. Deterministic for a given sample.
pub fn parity_queries(samples: &[Map<String, Value>], tags: &TagRewrite, field: Option<&str>) -> Vec<Query> {
    let mut pair_counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for doc in samples {
        let Ok(t) = tags.to_target(doc) else { continue };
        for tag in tags.target_tags(&t).unwrap_or_default() {
            *pair_counts.entry((tag.key, tag.value)).or_default() += 1;
        }
    }
    // Most frequent first, so queries match several documents; but pairs in more than a fifth
    // of the sample last, as their result sets likely exceed the 10 000 ids compared exactly.
    let common = samples.len() / 5;
    let mut pairs: Vec<((String, String), usize)> = pair_counts.into_iter().collect();
    pairs.sort_by(|a, b| (a.1 > common).cmp(&(b.1 > common)).then_with(|| b.1.cmp(&a.1)).then_with(|| a.0.cmp(&b.0)));
    let pairs: Vec<(String, String)> = pairs.into_iter().map(|(p, _)| p).collect();
    let mut keys: Vec<String> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    for (k, v) in &pairs {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
        if !values.contains(v) {
            values.push(v.clone());
        }
    }
    let field = field.map(str::to_string).or_else(|| pick_field(samples, tags));
    let field_values: Vec<Value> = field.as_ref().map(|f| distinct_values(samples, f)).unwrap_or_default();
    let kv = |i: usize| pairs.get(i).map(|(k, v)| Query::TagKeyValue { key: k.clone(), value: v.clone() });
    let val = |i: usize| values.get(i).map(|v| Query::TagValue(v.clone()));
    let ex = |i: usize| keys.get(i).map(|k| Query::TagKeyExists(k.clone()));
    let term = |i: usize| field.as_ref().zip(field_values.get(i)).map(|(f, v)| Query::Term { field: f.clone(), value: v.clone() });
    let b = |must: Vec<Option<Query>>, should: Vec<Option<Query>>, must_not: Vec<Option<Query>>| {
        let all = |v: Vec<Option<Query>>| v.into_iter().collect::<Option<Vec<Query>>>();
        Some(Query::Bool { must: all(must)?, should: all(should)?, must_not: all(must_not)? })
    };
    let mut out: Vec<Option<Query>> = Vec::new();
    out.extend((0..6).map(kv));
    out.extend((0..4).map(val));
    out.extend((0..5).map(ex));
    out.extend((0..2).map(term));
    for i in 0..3 {
        out.push(b(vec![kv(i), term(0)], vec![], vec![]));
        out.push(b(vec![], vec![kv(i), kv(i + 3)], vec![]));
        out.push(b(vec![ex(i)], vec![], vec![val(0)]));
        out.push(b(vec![term(1)], vec![], vec![ex(i)]));
        out.push(b(vec![term(0)], vec![val(i), ex(i + 1)], vec![kv(i + 1)]));
    }
    out.into_iter().flatten().collect()
}

/// The scalar top-level field (not the tags) with the fewest distinct values (at least 2) in
/// the sample: a good partner for bool combinations.
fn pick_field(samples: &[Map<String, Value>], tags: &TagRewrite) -> Option<String> {
    let root = tags.legacy_path.split('.').next().unwrap_or("");
    let mut seen: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for doc in samples {
        for (k, v) in doc {
            if k != root && k != &tags.target_field && matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                seen.entry(k).or_default().insert(v.to_string());
            }
        }
    }
    seen.into_iter().filter(|(_, vals)| vals.len() >= 2).min_by_key(|(_, vals)| vals.len()).map(|(k, _)| k.to_string())
}

fn distinct_values(samples: &[Map<String, Value>], field: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for doc in samples {
        if let Some(v) = doc.get(field).filter(|v| !v.is_null() && !v.is_array() && !v.is_object()) {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
    }
    out
}

/// Result sets up to this size are compared document by document (id and routing); larger ones by their exact totals only
/// (without a sortable `_id` the first 10 000 hits of two clusters are different samples).
const MAX_IDS: u64 = 10_000;

/// The documents (id, routing) a query returns (up to 10 000) and its exact total.
async fn run_query(es: &Es, index: &str, query: &Value, track_total: bool) -> Result<(u64, HashSet<DocRef>), EsError> {
    let mut body = json!({"query": query, "size": 10000, "_source": false});
    if track_total {
        body["track_total_hits"] = json!(true);
    }
    let path = format!("/{}/_search", enc(index));
    let (status, resp) = es.search(&path, &body).await?;
    if !(200..300).contains(&status) {
        return Err(EsError::status_of("POST", &path, status, &resp));
    }
    let total =
        hits_total(&resp).ok_or_else(|| EsError::Decode { method: "POST".into(), path: format!("/{index}/_search"), detail: "no hits.total".into() })?;
    let ids = resp
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .map(|hits| hits.iter().filter(|h| h.get("_id").is_some_and(Value::is_string)).map(doc_ref).collect())
        .unwrap_or_default();
    Ok((total, ids))
}

/// The exact hit count of a search with `track_total_hits: true`: `{"value": n}` on 7.x+ and
/// OpenSearch, a plain number on 6.x.
pub(crate) fn hits_total(resp: &Value) -> Option<u64> {
    let total = resp.pointer("/hits/total")?;
    total.get("value").unwrap_or(total).as_u64()
}

/// The innermost `reason` of an Elasticsearch error, which is what a reader needs ("field
/// expansion matches too many fields, limit: 1024, got: 2005"), else the whole error.
pub(crate) fn brief(e: &EsError) -> String {
    match e.cause().map(|c| c.root()) {
        Some(root) if !root.reason.is_empty() => root.reason.clone(),
        _ => e.to_string(),
    }
}

async fn run_parity(legacy: &Es, target: &Es, cfg: &VerifyConfig, samples: &[Map<String, Value>]) -> Result<ParityReport, VerifyError> {
    let queries = parity_queries(samples, &cfg.tags, cfg.parity_field.as_deref());
    let mut report = ParityReport {
        queries: queries.len(),
        compared: 0,
        compared_by_ids: 0,
        mismatches: vec![],
        legacy_errors: vec![],
        target_errors: vec![],
        passed: false,
    };
    let totals = crate::parity::TrackTotals::detect(legacy, target).await?;
    for q in queries {
        let l = run_query(legacy, &cfg.source_index, &q.to_legacy(&cfg.tags), totals.legacy).await;
        let t = run_query(target, &cfg.target_index, &q.to_target(&cfg.tags), totals.target).await;
        match (l, t) {
            (_, Err(e)) => report.target_errors.push(ParityFailure { query: q, error: brief(&e) }),
            (Err(e), Ok(_)) => report.legacy_errors.push(ParityFailure { query: q, error: brief(&e) }),
            (Ok((lt, lids)), Ok((tt, tids))) => {
                report.compared += 1;
                let ids_comparable = lt <= MAX_IDS && tt <= MAX_IDS;
                if ids_comparable {
                    report.compared_by_ids += 1;
                }
                if lt != tt || (ids_comparable && lids != tids) {
                    let sample = |a: &HashSet<DocRef>, b: &HashSet<DocRef>| {
                        let mut v: Vec<DocRef> = a.difference(b).cloned().collect();
                        v.sort();
                        v.truncate(cfg.sample_limit);
                        v
                    };
                    let ids = |docs: &[DocRef]| docs.iter().map(|d| d.id.clone()).collect();
                    let (only_legacy_docs, only_target_docs) = (sample(&lids, &tids), sample(&tids, &lids));
                    report.mismatches.push(ParityMismatch {
                        only_legacy: ids(&only_legacy_docs),
                        only_target: ids(&only_target_docs),
                        only_legacy_docs,
                        only_target_docs,
                        query: q,
                        legacy_total: lt,
                        target_total: tt,
                    });
                }
            }
        }
    }
    report.passed = report.compared > 0 && report.mismatches.is_empty() && report.target_errors.is_empty();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn source_hash_is_equality_of_sources() {
        // Parsed from texts whose keys come in another order: one source, one hash.
        let a: Map<String, Value> = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "s"}], "a": null}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"a": null, "b": [1, {"x": "s", "y": 2}]}"#).unwrap();
        assert_eq!(a, b);
        let buf = &mut Vec::new();
        assert_eq!(source_hash(&a, buf), source_hash(&b, buf));
        // What Value equality tells apart, the hash tells apart.
        for other in
            [json!({"a": null, "b": [{"x": "s", "y": 2}, 1]}), json!({"a": null, "b": [1.0, {"x": "s", "y": 2}]}), json!({"b": [1, {"x": "s", "y": 2}]})]
        {
            assert_ne!(obj(other.clone()), a);
            assert_ne!(source_hash(&obj(other), buf), source_hash(&a, buf));
        }
    }

    #[test]
    fn classification() {
        let doc = obj(json!({"a": 1}));
        let l = |v: u64| Some((v, Ok(doc.clone())));
        let t = |v: u64, d: Value| Some((v, Some(obj(d))));
        assert_eq!(classify(&l(3), &t(3, json!({"a": 1})), None), None);
        assert_eq!(classify(&l(3), &t(3, json!({"a": 2})), None), Some(Finding::Different));
        assert_eq!(classify(&l(3), &t(4, json!({"a": 2})), None), Some(Finding::InFlight));
        assert_eq!(classify(&l(3), &None, None), Some(Finding::Missing));
        assert_eq!(classify(&None, &t(3, json!({})), None), Some(Finding::Extra));
        assert_eq!(classify(&None, &t(3, json!({})), Some(2)), Some(Finding::Extra));
        assert_eq!(classify(&None, &t(3, json!({})), Some(5)), Some(Finding::Resurrected));
        assert_eq!(classify(&Some((1, Err("x".into()))), &None, None), Some(Finding::Untransformable));
        assert_eq!(classify(&None, &None, Some(5)), None);
    }

    fn empty_report() -> VerifyReport {
        VerifyReport { source_index: "s".into(), target_index: "t".into(), ..Default::default() }
    }

    #[test]
    fn one_id_under_two_routings_is_two_documents() {
        // As the walks see them: hits carry `_id` and `_routing`.
        let (a, b, plain) = (json!({"_id": "dup", "_routing": "ra"}), json!({"_id": "dup", "_routing": "rb"}), json!({"_id": "dup"}));
        assert_eq!(doc_ref(&a), DocRef::new("dup", Some("ra")));
        assert_ne!(doc_ref(&a), doc_ref(&b));
        assert_eq!(doc_ref(&plain), DocRef::new("dup", None));
        // The copy under `ra` is fine, the one under `rb` is missing, the one under `rc` is
        // different: each is flagged on its own, none hides behind another.
        let doc = obj(json!({"a": 1}));
        let mut flags = Flags::new();
        for (hit, target) in [
            (a, Some((3, Some(doc.clone())))),
            (b, None),
            (json!({"_id": "dup", "_routing": "rc"}), Some((3, Some(obj(json!({"a": 2})))))),
            (plain, Some((4, Some(doc.clone())))),
        ] {
            if let Some(f) = classify(&Some((3, Ok(doc.clone()))), &target, None) {
                flags.insert(doc_ref(&hit), f);
            }
        }
        assert_eq!(flags.len(), 3, "{flags:?}");
        let mut report = empty_report();
        tally(&mut report, flags, 10);
        assert_eq!(report.missing.count, 1);
        assert_eq!(report.missing.samples, vec![DocRef::new("dup", Some("rb"))]);
        assert_eq!(report.missing.sample_ids, vec!["dup".to_string()]);
        assert_eq!(report.different.samples, vec![DocRef::new("dup", Some("rc"))]);
        assert_eq!(report.in_flight.samples, vec![DocRef::new("dup", None)]);
        assert_eq!(report.missing.samples[0].to_string(), "dup (routing rb)");
        assert_eq!(report.in_flight.samples[0].to_string(), "dup");
    }

    #[test]
    fn samples_are_capped_and_counted_per_document() {
        let mut flags = Flags::new();
        for r in ["r1", "r2", "r3"] {
            flags.insert(DocRef::new("x", Some(r)), Finding::Extra);
        }
        let mut report = empty_report();
        tally(&mut report, flags, 2);
        assert_eq!(report.extra.count, 3);
        assert_eq!(report.extra.sample_ids, vec!["x", "x"]);
        assert_eq!(report.extra.samples, vec![DocRef::new("x", Some("r1")), DocRef::new("x", Some("r2"))]);
    }

    #[test]
    fn reports_keep_their_json_shape() {
        // Reports written before `samples` existed still read.
        let old: Category = serde_json::from_value(json!({"count": 1, "sample_ids": ["a"]})).unwrap();
        assert_eq!(old, Category { count: 1, sample_ids: vec!["a".into()], samples: vec![] });
        let mut c = Category::default();
        c.add(DocRef::new("a", Some("r")), 5);
        c.add(DocRef::new("b", None), 5);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"count": 2, "sample_ids": ["a", "b"], "samples": [{"id": "a", "routing": "r"}, {"id": "b", "routing": null}]})
        );
    }

    #[test]
    fn hits_total_of_every_server_generation() {
        assert_eq!(hits_total(&json!({"hits": {"total": {"value": 7, "relation": "eq"}}})), Some(7));
        assert_eq!(hits_total(&json!({"hits": {"total": 7}})), Some(7), "6.x");
        assert_eq!(hits_total(&json!({"hits": {}})), None);
    }

    #[test]
    fn builds_at_least_twenty_queries() {
        let samples: Vec<Map<String, Value>> = (0..50)
            .map(|i| obj(json!({"status": format!("s{}", i % 3), "n": i, "actions": {"tags": {format!("k{}", i % 7): format!("v{}", i % 5), "color": if i % 2 == 0 {"red"} else {"blue"}}}})))
            .collect();
        let qs = parity_queries(&samples, &TagRewrite::default(), None);
        assert!(qs.len() >= 20, "{}", qs.len());
        assert!(qs.iter().any(|q| matches!(q, Query::Term { field, .. } if field == "status")));
        assert!(qs.iter().any(|q| matches!(q, Query::Bool { .. })));
    }
}
