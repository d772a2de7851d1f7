//! Sliced, resumable reads of one index.
//!
//! ## Order and slicing: chosen so that a resume never skips a document
//!
//! Every slice is read in ascending `_seq_no` order, and slices are cut on `_seq_no` too
//! (`slice.field: "_seq_no"`: whole shards per slice when there are no more slices than
//! shards, else a hash of the doc value). Both are properties of the stored document, not of
//! the reader:
//!
//! - The natural PIT order (`_shard_doc`) and the default PIT slicing are both Lucene doc ids,
//!   which a new PIT renumbers after any merge. A checkpoint in those terms would mean nothing
//!   to the next PIT: resuming with it can skip documents. (Slicing on `_id` would be stable
//!   too, but Elasticsearch refuses it with a PIT: "cannot slice on \[_id\] when using
//!   [point-in-time]", as soon as there are more slices than shards.)
//! - A document's `_seq_no` changes only when the document is written. So for every document
//!   *unchanged since the scan began*, both its slice and its position are the same in every
//!   later PIT or scroll. Resuming with `_seq_no >= last_seen` therefore re-reads a few documents
//!   (those sharing the last `_seq_no`, at most one per shard) and skips none of them.
//! - A document written after the scan began may move (new `_seq_no`) and be missed, but its
//!   write came through the command topic, which the replaying indexer applies: the backfill
//!   owes only what the topic no longer holds. (`_seq_no` is per shard, so this is the only
//!   class of document a resume can miss.)
//! - `_seq_no` exists on indices created by Elasticsearch 6.0 or later: older indices cannot be
//!   read by this tool (reindex them on 6.x first).
//!
//! Within one live PIT the scan continues exactly with `search_after` on
//! `[_seq_no, _shard_doc]` (`_shard_doc` being the cheap total-order tiebreak of 7.12+); the
//! `_seq_no` floor is used only when a new context has to be opened (restart, expired or lost
//! context), where `_shard_doc` values of the old PIT would be meaningless.
//!
//! ## What `_seq_no` costs the legacy
//! Measured on 7.17 (150,000 documents, 2 shards, 30,000 updated once; 2 slices, pages of
//! 1,000, `filter_path` on; the legacy server's CPU-seconds for one full read, 6 interleaved
//! rounds on 2 cores shared with the target, builds and other tests, so noisy): PIT on
//! `[_seq_no, _shard_doc]` median 7.48 s (6.88-8.57), PIT on `_shard_doc` alone 7.23 s
//! (5.88-9.57), sliced scroll on `_doc` 6.32 s (5.64-8.44). The `_seq_no` sort itself costs ~3%
//! over the same PIT without it: it stays, because it is what lets a resume never skip a
//! document. The ~15% between PIT and a scroll on `_doc` is the method's, and a `_doc` scroll
//! could only restart a slice from its beginning; the scroll sorted on `_seq_no` (resumable,
//! `--scan-method scroll`) measured 6.21 s against 6.88 s for the PIT in the one quiet round.
//!
//! ## Methods
//! - Elasticsearch 7.12+: PIT + `search_after`, tiebreak `_shard_doc`.
//! - OpenSearch 2.4+: PIT through `/_search/point_in_time`, tiebreak `_id` (OpenSearch has no
//!   `_shard_doc`; `_id` sorting is allowed there). Tested on 2.19 (tests/version_pairs.rs).
//! - Anything older (including Elasticsearch 7.10/7.11, whose PIT has no `_shard_doc`): sliced
//!   scroll, also sorted by `_seq_no` so that it resumes the same way (sorting by `_doc` would be
//!   cheaper but could only restart a slice from its beginning). Tested on 6.8 (tests/version_pairs.rs).
//! - Elasticsearch 5.x and 2.x, whose documents have no `_seq_no`: scroll sorted on `_doc`
//!   (`scroll-doc`), sliced on 5.x (on its default field, `_uid`), one scroll on 2.x, which
//!   cannot slice. There is no position to resume from inside a slice, so a lost context, a
//!   failed page or a restarted worker reads the slice again from its start: the writes are
//!   versioned, so reading twice costs time, never correctness. Tested on 5.6 and 2.4
//!   (tests/version_pairs.rs).
//!
//! ## Failures
//! A lost context can come back as HTTP 404 *or* as HTTP 200 with empty hits and
//! `search_context_missing_exception` in the shard failures. Every page's `_shards.failed` is
//! checked, and an empty page is the end only when no shard failed. A lost context is recovered
//! from by opening a new one at the `_seq_no` floor; other failures are retried with backoff
//! (PIT) or also recovered from the floor (scroll, where a retried request would skip the page
//! the failed attempt already consumed on the healthy shards).
//!
//! Every retry goes through the binaries' one [`RetryPolicy`] (`what = "scan"`), configured by
//! `--max-retries` like the writes: retried forever by default (an outage pauses the scan), the
//! count of consecutive failures starting over after every page. A failure retrying cannot fix
//! (the request itself is wrong) fails the slice at once.

use cluster::client::{enc, error_body};
use cluster::error::short;
use cluster::{Es, EsError, GiveUp, Method, RetryPolicy, ServerVersion};
#[cfg(feature = "test-hooks")]
use futures::future::BoxFuture;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
#[cfg(feature = "test-hooks")]
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How the user wants the source read; `Auto` picks from the detected server version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMethodChoice {
    /// PIT where the server supports it with a tiebreak, sliced scroll otherwise.
    Auto,
    /// Point in time + search_after (fails on servers without it).
    Pit,
    /// Sliced scroll, sorted on `_seq_no`; before 6.0 (no `_seq_no`), sorted on `_doc`, an
    /// interrupted slice restarting from its start.
    Scroll,
}

/// The concrete read method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanMethod {
    /// Elasticsearch PIT (`/_pit`, tiebreak `_shard_doc`).
    EsPit,
    /// OpenSearch PIT (`/_search/point_in_time`, tiebreak `_id`).
    OsPit,
    /// Sliced scroll sorted on `_seq_no`.
    Scroll,
    /// Scroll sorted on `_doc`, for servers without `_seq_no` (Elasticsearch before 6.0): sliced
    /// where the server can slice, restarted from the slice's start when interrupted.
    ScrollDoc,
}

impl ScanMethod {
    /// Chooses the method for a server; see the module doc for why 7.10/7.11 use scroll.
    pub fn choose(choice: ScanMethodChoice, server: &ServerVersion) -> Result<Self, ScanError> {
        let kind = if server.is_opensearch() { ScanMethod::OsPit } else { ScanMethod::EsPit };
        let pit = server.supports_pit().then_some(kind);
        let scroll = if server.has_seq_no() { ScanMethod::Scroll } else { ScanMethod::ScrollDoc };
        match choice {
            ScanMethodChoice::Auto => Ok(pit.unwrap_or(scroll)),
            ScanMethodChoice::Scroll => Ok(scroll),
            ScanMethodChoice::Pit => {
                pit.ok_or_else(|| ScanError::Unsupported(format!("{server} has no point-in-time reader with a tiebreak sort; use --scan-method scroll")))
            }
        }
    }

    /// The method for a full read that is never resumed (verify): a scroll sorted on `_doc`,
    /// the cheapest read of every server (it re-reads a slice whose context is lost, which a
    /// reader that keeps the last read of each document does not mind); a PIT when asked for.
    pub fn choose_full_read(choice: ScanMethodChoice, server: &ServerVersion) -> Result<Self, ScanError> {
        match choice {
            ScanMethodChoice::Pit => Self::choose(choice, server),
            ScanMethodChoice::Auto | ScanMethodChoice::Scroll => Ok(ScanMethod::ScrollDoc),
        }
    }

    /// Name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScanMethod::EsPit => "pit",
            ScanMethod::OsPit => "opensearch-pit",
            ScanMethod::Scroll => "scroll",
            ScanMethod::ScrollDoc => "scroll-doc",
        }
    }

    /// True for the scroll methods (the others read a PIT).
    fn is_scroll(&self) -> bool {
        matches!(self, ScanMethod::Scroll | ScanMethod::ScrollDoc)
    }

    /// True when an interrupted slice can resume where it stopped (`_seq_no` order); false
    /// when it starts over ([`ScanMethod::ScrollDoc`]).
    pub fn resumable(&self) -> bool {
        *self != ScanMethod::ScrollDoc
    }
}

/// Why a scan stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The cluster failed in a way retries did not fix.
    #[error(transparent)]
    Es(#[from] EsError),
    /// The search context (PIT or scroll) is gone; the scan recovers from this internally and
    /// only reports it when recovery keeps failing.
    #[error("search context lost: {0}")]
    ContextLost(String),
    /// Some shards failed for another reason (the page would be incomplete). `transient` is
    /// false when every failure says the request itself is wrong (retrying cannot help).
    #[error("{failed} shard(s) failed: {reason}")]
    ShardFailures { failed: u64, reason: String, transient: bool },
    /// The response lacks what every page must have.
    #[error("malformed search response: {0}")]
    Malformed(String),
    /// The server cannot be read with the requested method.
    #[error("{0}")]
    Unsupported(String),
    /// Retrying stopped without a single page in between: the retry budget (`--max-retries`)
    /// ran out, or shutdown was requested.
    #[error("{why}; last error: {last}")]
    GaveUp { why: GiveUp, last: String },
}

impl ScanError {
    /// Errors worth retrying (or recovering from) rather than failing the slice.
    fn is_transient(&self) -> bool {
        match self {
            ScanError::Es(e) => e.is_retryable(),
            ScanError::ContextLost(_) => true,
            ScanError::ShardFailures { transient, .. } => *transient,
            _ => false,
        }
    }
}

/// Which part of the index a scan reads: slice `id` of `max` (cut on `_seq_no`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceSpec {
    pub id: u32,
    pub max: u32,
}

/// What a scan reads and how.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Index (or alias) to read.
    pub index: String,
    /// Method to use.
    pub method: ScanMethod,
    /// Slice to read (`max == 1` reads everything).
    pub slice: SliceSpec,
    /// Hits per page.
    pub page_size: usize,
    /// Keep-alive of the PIT/scroll between two pages, in Elasticsearch syntax (`5m`).
    pub keep_alive: String,
    /// Fetch `_source` (false: ids, routing and versions only).
    pub source: bool,
    /// How failed pages are retried (`what = "scan"`); the count starts over after every page.
    pub retry: RetryPolicy,
}

/// Identifies the live search context, for fault-injection hooks.
#[cfg(feature = "test-hooks")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextRef {
    /// An Elasticsearch or OpenSearch PIT id.
    Pit(String),
    /// A scroll id.
    Scroll(String),
}

/// Reported to a [`ScanHook`] after every page.
#[cfg(feature = "test-hooks")]
#[derive(Clone, Debug)]
pub struct ScanEvent {
    pub slice: u32,
    /// 1-based page number within this run of the slice.
    pub page: u64,
    /// The context the next page will be read from.
    pub context: ContextRef,
}

/// A callback run after every page, before the next one is requested. It exists for fault
/// injection only (tests delete the PIT or scroll through the real API to prove that recovery
/// works), so it is compiled in only with the `test-hooks` feature, which the end-to-end tests
/// enable; the binaries never have it.
#[cfg(feature = "test-hooks")]
pub type ScanHook = Arc<dyn Fn(ScanEvent) -> BoxFuture<'static, ()> + Send + Sync>;

/// One page of hits, in scan order.
#[derive(Debug)]
pub struct Page {
    /// The hits, their `_source` as text.
    pub hits: Vec<Hit>,
    /// Where to resume after this page: the `_seq_no` of its last hit (inclusive; a resume
    /// re-reads the documents sharing it).
    pub resume_seq_no: u64,
}

/// One scanned hit: what the scan asks for (see [`SCAN_FILTER_PATH`]), its `_source` kept as
/// the text the cluster sent (the copy rewrites it from the text:
/// [`schema::TagRewrite::transcode`]).
#[derive(Debug, serde::Deserialize)]
pub struct Hit {
    #[serde(rename = "_id")]
    pub id: Option<String>,
    #[serde(rename = "_routing")]
    pub routing: Option<String>,
    #[serde(rename = "_version")]
    pub version: Option<Value>,
    #[serde(rename = "_source")]
    pub source: Option<Box<RawValue>>,
    pub sort: Option<Value>,
    pub fields: Option<Value>,
}

enum Cursor {
    /// No context open.
    None,
    /// A PIT, and the sort values of the last hit read from it.
    Pit { id: String, search_after: Option<Value> },
    /// A scroll, positioned after the last page.
    Scroll { id: String },
}

/// A resumable reader of one slice. `next_page` hides context loss and transient failures;
/// it returns `None` only when a page came back empty with every shard successful.
pub struct SliceScan {
    es: Es,
    opts: ScanOptions,
    cursor: Cursor,
    /// Lowest `_seq_no` still owed (inclusive), used whenever a new context is opened.
    floor: u64,
    recoveries: u64,
    /// Pages read in this run, and the hook told after each (`test-hooks` only).
    #[cfg(feature = "test-hooks")]
    pages: u64,
    #[cfg(feature = "test-hooks")]
    hook: Option<ScanHook>,
    /// Stops the waits between retries.
    cancel: CancellationToken,
}

impl SliceScan {
    /// A scan starting at `_seq_no >= floor` (0: from the beginning); `cancel` ends its retries.
    pub fn new(es: Es, opts: ScanOptions, floor: u64, cancel: CancellationToken) -> Self {
        SliceScan {
            es,
            opts,
            cursor: Cursor::None,
            floor,
            recoveries: 0,
            #[cfg(feature = "test-hooks")]
            pages: 0,
            #[cfg(feature = "test-hooks")]
            hook: None,
            cancel,
        }
    }

    /// Runs `hook` after every page (fault injection in tests).
    #[cfg(feature = "test-hooks")]
    pub fn with_hook(mut self, hook: Option<ScanHook>) -> Self {
        self.hook = hook;
        self
    }

    /// How many times a new context had to be opened after a loss or failure.
    pub fn recoveries(&self) -> u64 {
        self.recoveries
    }

    /// The next page, or `None` at the end of the slice.
    ///
    /// Transient failures are retried under [`ScanOptions::retry`], whose count starts over
    /// with every call (that is, after every page).
    pub async fn next_page(&mut self) -> Result<Option<Page>, ScanError> {
        let mut attempts = self.opts.retry.start("scan");
        loop {
            match self.fetch().await {
                Ok(hits) => return self.accept(hits).await,
                Err(e) if e.is_transient() => {
                    if let Err(why) = attempts.failed(&e, &self.cancel).await {
                        return Err(ScanError::GaveUp { why, last: e.to_string() });
                    }
                    self.handle_failure(&e).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes the context (best effort: it expires on its own anyway).
    pub async fn close(&mut self) {
        let cursor = std::mem::replace(&mut self.cursor, Cursor::None);
        let (path, body) = match (cursor, self.opts.method) {
            (Cursor::Pit { id, .. }, ScanMethod::EsPit) => ("/_pit", json!({"id": id})),
            (Cursor::Pit { id, .. }, _) => ("/_search/point_in_time", json!({"pit_id": [id]})),
            (Cursor::Scroll { id }, _) => ("/_search/scroll", json!({"scroll_id": [id]})),
            (Cursor::None, _) => return,
        };
        if let Err(e) = self.es.close_context(path, &body).await {
            tracing::debug!(error = %e, "closing search context failed (it will expire)");
        }
    }

    /// Decides what a failure means for the cursor (after the retry policy's wait, which logged
    /// the error): a lost context (any method) or any failure of a scroll means a new context
    /// from the floor; a PIT failure otherwise retries the same request.
    async fn handle_failure(&mut self, e: &ScanError) {
        let reopen = matches!(e, ScanError::ContextLost(_)) || matches!(self.cursor, Cursor::Scroll { .. });
        tracing::info!(slice = self.opts.slice.id, reopen, floor = self.floor, "retrying the scan page");
        if reopen && !matches!(self.cursor, Cursor::None) {
            self.close().await;
            self.recoveries += 1;
            metrics::counter!(crate::metrics::CONTEXT_RECOVERIES).increment(1);
        }
    }

    async fn accept(&mut self, hits: Vec<Hit>) -> Result<Option<Page>, ScanError> {
        let Some(last) = hits.last() else {
            self.close().await;
            return Ok(None);
        };
        let sort = last.sort.clone().ok_or_else(|| ScanError::Malformed("hit without sort values".into()))?;
        // A `_doc` scroll has no position worth keeping: its resume point stays the start.
        let seq = match self.opts.method {
            ScanMethod::ScrollDoc => 0,
            _ => sort.get(0).and_then(Value::as_u64).ok_or_else(|| ScanError::Malformed(format!("sort values {sort} do not start with _seq_no")))?,
        };
        if let Cursor::Pit { search_after, .. } = &mut self.cursor {
            *search_after = Some(sort);
        }
        self.floor = seq;
        #[cfg(feature = "test-hooks")]
        self.run_hook().await;
        Ok(Some(Page { hits, resume_seq_no: seq }))
    }

    #[cfg(feature = "test-hooks")]
    async fn run_hook(&mut self) {
        self.pages += 1;
        if let Some(hook) = &self.hook {
            let context = match &self.cursor {
                Cursor::Pit { id, .. } => Some(ContextRef::Pit(id.clone())),
                Cursor::Scroll { id } => Some(ContextRef::Scroll(id.clone())),
                Cursor::None => None,
            };
            if let Some(context) = context {
                hook(ScanEvent { slice: self.opts.slice.id, page: self.pages, context }).await;
            }
        }
    }

    async fn fetch(&mut self) -> Result<Vec<Hit>, ScanError> {
        match self.opts.method {
            m if m.is_scroll() => self.fetch_scroll().await,
            _ => self.fetch_pit().await,
        }
    }

    async fn fetch_pit(&mut self) -> Result<Vec<Hit>, ScanError> {
        if matches!(self.cursor, Cursor::None) {
            let id = self.open_pit().await?;
            self.cursor = Cursor::Pit { id, search_after: None };
        }
        let Cursor::Pit { id, search_after } = &self.cursor else { unreachable!("PIT cursor set above") };
        let mut body = self.base_body();
        let tiebreak = if self.opts.method == ScanMethod::EsPit { "_shard_doc" } else { "_id" };
        body["sort"] = json!([seq_no_sort(), {tiebreak: "asc"}]);
        body["pit"] = json!({"id": id, "keep_alive": self.opts.keep_alive});
        if let Some(after) = search_after {
            body["search_after"] = after.clone();
        }
        let path = format!("/_search?filter_path={SCAN_FILTER_PATH}");
        let (status, resp) = self.es.request_bytes(Method::Post, &path, Some(&body)).await?;
        let page = page_hits(status, &resp, "/_search")?;
        // The PIT id may change from one response to the next; always use the latest.
        if let (Some(new_id), Cursor::Pit { id, .. }) = (page.pit_id, &mut self.cursor) {
            if new_id != *id {
                *id = new_id;
            }
        }
        Ok(page.hits)
    }

    async fn open_pit(&self) -> Result<String, ScanError> {
        let ka = enc(&self.opts.keep_alive);
        let (path, field) = match self.opts.method {
            ScanMethod::EsPit => (format!("/{}/_pit?keep_alive={ka}", enc(&self.opts.index)), "id"),
            _ => (format!("/{}/_search/point_in_time?keep_alive={ka}", enc(&self.opts.index)), "pit_id"),
        };
        let resp = self.es.open_pit(&path).await?;
        let id = resp.get(field).and_then(Value::as_str).ok_or_else(|| ScanError::Malformed(format!("opening a PIT returned no `{field}`")))?;
        tracing::debug!(slice = self.opts.slice.id, floor = self.floor, "opened PIT");
        Ok(id.to_string())
    }

    async fn fetch_scroll(&mut self) -> Result<Vec<Hit>, ScanError> {
        let ka = self.opts.keep_alive.clone();
        let (path, body) = match &self.cursor {
            Cursor::Scroll { id } => (format!("/_search/scroll?filter_path={SCAN_FILTER_PATH}"), json!({"scroll": ka, "scroll_id": id})),
            _ => {
                let mut body = self.base_body();
                body["sort"] = match self.opts.method {
                    ScanMethod::ScrollDoc => json!(["_doc"]),
                    _ => json!([seq_no_sort()]),
                };
                (format!("/{}/_search?scroll={}&filter_path={SCAN_FILTER_PATH}", enc(&self.opts.index), enc(&ka)), body)
            }
        };
        let (status, resp) = self.es.request_bytes(Method::Post, &path, Some(&body)).await?;
        let page = page_hits(status, &resp, &path)?;
        if let Some(id) = page.scroll_id {
            self.cursor = Cursor::Scroll { id };
        }
        Ok(page.hits)
    }

    /// The parts of a search body both methods share: size, slice, versions, floor filter.
    fn base_body(&self) -> Value {
        let mut body = json!({"size": self.opts.page_size, "version": true});
        if !self.opts.method.is_scroll() {
            // Counting is wasted work on every page; scroll refuses to turn it off.
            body["track_total_hits"] = json!(false);
        }
        if !self.opts.source {
            body["_source"] = json!(false);
        }
        let SliceSpec { id, max } = self.opts.slice;
        if max > 1 {
            // Without `_seq_no` (or its order), the server's default slicing.
            body["slice"] = match self.opts.method {
                ScanMethod::ScrollDoc => json!({"id": id, "max": max}),
                _ => json!({"field": "_seq_no", "id": id, "max": max}),
            };
        }
        if self.floor > 0 {
            body["query"] = json!({"bool": {"filter": [{"range": {"_seq_no": {"gte": self.floor}}}]}});
        }
        body
    }
}

/// The `filter_path` of every scan request: what [`page_hits`], the cursor and the callers read
/// (the context ids, `_shards.failed`/`failures`, `timed_out`, and per hit `_id`, `_source`,
/// `_version`, `_routing`, `sort`, `fields`); each hit's `_index`, `_type` and `_score` and the
/// response's `took`, `hits.total`, `hits.max_score` are dropped. Error bodies are not
/// filtered. An empty `hits.hits` is dropped with its parent: see [`page_hits`].
pub const SCAN_FILTER_PATH: &str =
    "pit_id,_scroll_id,timed_out,_shards.failed,_shards.failures,hits.hits._id,hits.hits._source,hits.hits._version,hits.hits._routing,hits.hits.sort,hits.hits.fields,error,status";

/// Ascending `_seq_no`; `unmapped_type` because an index that never received a document has no
/// mapping at all, and sorting it on `_seq_no` would otherwise fail instead of returning nothing.
fn seq_no_sort() -> Value {
    json!({"_seq_no": {"order": "asc", "unmapped_type": "long"}})
}

/// A search or scroll response, as the scan reads it.
#[derive(Debug)]
pub struct ScanPage {
    pub hits: Vec<Hit>,
    pub pit_id: Option<String>,
    pub scroll_id: Option<String>,
}

/// What a 2xx search or scroll response holds, the hits typed (their `_source` as text), the
/// rest as values for the checks.
#[derive(serde::Deserialize)]
struct SearchResponse {
    pit_id: Option<String>,
    #[serde(rename = "_scroll_id")]
    scroll_id: Option<String>,
    timed_out: Option<bool>,
    #[serde(rename = "_shards")]
    shards: Option<Value>,
    hits: Option<SearchHits>,
    error: Option<Value>,
}

#[derive(serde::Deserialize)]
struct SearchHits {
    hits: Option<Vec<Hit>>,
}

/// The hits of a search or scroll response, after checking that the page is complete: a lost
/// context (HTTP 404, or 200 with `search_context_missing_exception` in the shard failures) or
/// any other shard failure or time-out is an error, never an end of data.
pub fn page_hits(status: u16, body: &[u8], path: &str) -> Result<ScanPage, ScanError> {
    if !(200..300).contains(&status) {
        let resp = error_body(body);
        if mentions_missing_context(&resp) {
            return Err(ScanError::ContextLost(short(&resp)));
        }
        return Err(EsError::status_of("POST", path, status, &resp).into());
    }
    // A body that does not parse is the transport's or the server's problem, retried as before
    // (cluster decides: `EsError::Decode` is retryable).
    let resp: SearchResponse =
        serde_json::from_slice(body).map_err(|e| EsError::Decode { method: "POST".into(), path: path.to_owned(), detail: e.to_string() })?;
    // The parts the checks read, as values.
    let mut checked = Map::new();
    if let Some(error) = resp.error {
        checked.insert("error".into(), error);
    }
    if let Some(shards) = resp.shards {
        checked.insert("_shards".into(), shards);
    }
    let checked = Value::Object(checked);
    if mentions_missing_context(&checked) {
        return Err(ScanError::ContextLost(short(&checked)));
    }
    let failed = checked.pointer("/_shards/failed").and_then(Value::as_u64).ok_or_else(|| ScanError::Malformed("no _shards.failed".into()))?;
    if failed > 0 {
        let failures = checked.pointer("/_shards/failures");
        let reason = failures.map(short).unwrap_or_default();
        return Err(ScanError::ShardFailures { failed, reason, transient: !request_is_wrong(failures) });
    }
    if resp.timed_out == Some(true) {
        return Err(ScanError::ShardFailures { failed: 0, reason: "search timed out (partial page)".into(), transient: true });
    }
    let hits = match resp.hits {
        Some(SearchHits { hits: Some(hits) }) => hits,
        // `filter_path` drops an empty `hits.hits` (and `hits`): with `_shards` and `timed_out`
        // there, this is a complete search response without hits (every hit keeps its `_id`,
        // so a non-empty page always shows `hits.hits`).
        None if resp.timed_out == Some(false) => Vec::new(),
        _ => return Err(ScanError::Malformed("no hits.hits array".into())),
    };
    Ok(ScanPage { hits, pit_id: resp.pit_id, scroll_id: resp.scroll_id })
}

/// True when every shard failure is of a kind that retrying the same request cannot fix
/// (decided in [`cluster::error::classify_shard_failures`]).
fn request_is_wrong(failures: Option<&Value>) -> bool {
    let kinds: Vec<&str> =
        failures.and_then(Value::as_array).into_iter().flatten().map(|f| f.pointer("/reason/type").and_then(Value::as_str).unwrap_or("")).collect();
    cluster::error::classify_shard_failures(&kinds) == cluster::Class::Halt
}

/// True when any error or shard failure in the response says the context is gone
/// ([`cluster::error::CONTEXT_MISSING`]).
fn mentions_missing_context(resp: &Value) -> bool {
    let is_missing = |v: &Value| v.get("type").and_then(Value::as_str) == Some(cluster::error::CONTEXT_MISSING);
    let in_list = |v: Option<&Value>, key: &str| v.and_then(Value::as_array).is_some_and(|items| items.iter().any(|f| f.get(key).is_some_and(is_missing)));
    let error = resp.get("error");
    error.is_some_and(is_missing)
        || error.is_some_and(|e| e.get("root_cause").and_then(Value::as_array).is_some_and(|r| r.iter().any(is_missing)))
        || in_list(error.and_then(|e| e.get("failed_shards")), "reason")
        || in_list(resp.pointer("/_shards/failures"), "reason")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_missing_in_shard_failures_of_a_200_is_an_error() {
        let resp = json!({"_shards": {"total": 2, "successful": 1, "failed": 1, "failures": [
            {"shard": 0, "reason": {"type": "search_context_missing_exception", "reason": "No search context found for id [4]"}}
        ]}, "hits": {"hits": []}});
        assert!(matches!(page_hits(200, &resp.to_string().into_bytes(), "/_search"), Err(ScanError::ContextLost(_))));
    }

    #[test]
    fn context_missing_as_404() {
        let resp = json!({"error": {"root_cause": [{"type": "search_context_missing_exception"}], "type": "search_phase_execution_exception"}, "status": 404});
        assert!(matches!(page_hits(404, &resp.to_string().into_bytes(), "/_search"), Err(ScanError::ContextLost(_))));
    }

    #[test]
    fn other_shard_failures_and_timeouts_are_errors_not_ends() {
        let resp = json!({"_shards": {"failed": 1, "failures": [{"reason": {"type": "node_disconnected_exception"}}]}, "hits": {"hits": []}});
        assert!(matches!(page_hits(200, &resp.to_string().into_bytes(), "/_search"), Err(ScanError::ShardFailures { failed: 1, transient: true, .. })));
        let resp = json!({"_shards": {"failed": 1, "failures": [{"reason": {"type": "illegal_argument_exception", "reason": "cannot slice on [_id] when using [point-in-time]"}}]}, "hits": {"hits": []}});
        assert!(matches!(page_hits(200, &resp.to_string().into_bytes(), "/_search"), Err(ScanError::ShardFailures { transient: false, .. })));
        let resp = json!({"timed_out": true, "_shards": {"failed": 0}, "hits": {"hits": []}});
        assert!(matches!(page_hits(200, &resp.to_string().into_bytes(), "/_search"), Err(ScanError::ShardFailures { .. })));
        let resp = json!({"hits": {"hits": []}});
        assert!(matches!(page_hits(200, &resp.to_string().into_bytes(), "/_search"), Err(ScanError::Malformed(_))));
    }

    #[test]
    fn a_body_that_does_not_parse_is_retried() {
        let err = page_hits(200, b"{\"hits\": {\"hits\": [", "/_search").unwrap_err();
        assert!(matches!(err, ScanError::Es(EsError::Decode { .. })) && err.is_transient(), "{err:?}");
    }

    #[test]
    fn a_clean_empty_page_is_the_end() {
        let resp = json!({"_shards": {"failed": 0}, "hits": {"hits": []}});
        assert!(page_hits(200, &resp.to_string().into_bytes(), "/_search").unwrap().hits.is_empty());
        // As `filter_path` returns it (7.17 and 9.x drop the empty array and its parent).
        let resp = json!({"timed_out": false, "_shards": {"failed": 0}});
        assert!(page_hits(200, &resp.to_string().into_bytes(), "/_search").unwrap().hits.is_empty());
        // Without `timed_out`, it is not known to be a search response: malformed.
        let resp = json!({"_shards": {"failed": 0}});
        assert!(matches!(page_hits(200, &resp.to_string().into_bytes(), "/_search"), Err(ScanError::Malformed(_))));
    }

    /// A cluster that refuses every connection (a port just released on 127.0.0.1): every
    /// page fails with a retryable transport error.
    fn refused() -> Es {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = cluster::ClusterConfig {
            url: format!("http://127.0.0.1:{port}"),
            username: None,
            password: None,
            api_key: None,
            ca_file: None,
            insecure: false,
            timeout: std::time::Duration::from_secs(5),
            compression: false,
        };
        Es::connect(&cfg).unwrap()
    }

    fn opts(max_retries: Option<u32>) -> ScanOptions {
        let retry = RetryPolicy { base: std::time::Duration::from_millis(1), max_delay: std::time::Duration::from_millis(5), max_retries };
        ScanOptions {
            index: "i".into(),
            method: ScanMethod::EsPit,
            slice: SliceSpec { id: 0, max: 1 },
            page_size: 10,
            keep_alive: "1m".into(),
            source: true,
            retry,
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_under_the_shared_policy() {
        let mut scan = SliceScan::new(refused(), opts(Some(3)), 0, CancellationToken::new());
        let err = scan.next_page().await.unwrap_err();
        assert!(matches!(err, ScanError::GaveUp { why: GiveUp::Exhausted(3), .. }), "{err}");
        // Each call (each page) gets the full budget again.
        let err = scan.next_page().await.unwrap_err();
        assert!(matches!(err, ScanError::GaveUp { why: GiveUp::Exhausted(3), .. }), "{err}");
        // Without a budget it retries until cancelled.
        let cancel = CancellationToken::new();
        let mut scan = SliceScan::new(refused(), opts(None), 0, cancel.clone());
        let stop = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            cancel.cancel();
        });
        let err = scan.next_page().await.unwrap_err();
        assert!(matches!(err, ScanError::GaveUp { why: GiveUp::Cancelled, .. }), "{err}");
        stop.await.unwrap();
    }

    #[test]
    fn method_choice() {
        let v = |d: &str, n: &str| ServerVersion::from_root(&json!({"version": {"distribution": d, "number": n}})).unwrap();
        assert_eq!(ScanMethod::choose(ScanMethodChoice::Auto, &v("elasticsearch", "7.17.29")).unwrap(), ScanMethod::EsPit);
        assert_eq!(ScanMethod::choose(ScanMethodChoice::Auto, &v("elasticsearch", "7.10.2")).unwrap(), ScanMethod::Scroll);
        assert_eq!(ScanMethod::choose(ScanMethodChoice::Auto, &v("elasticsearch", "6.8.23")).unwrap(), ScanMethod::Scroll);
        assert_eq!(ScanMethod::choose(ScanMethodChoice::Auto, &v("opensearch", "2.11.0")).unwrap(), ScanMethod::OsPit);
        assert_eq!(ScanMethod::choose(ScanMethodChoice::Scroll, &v("elasticsearch", "9.2.4")).unwrap(), ScanMethod::Scroll);
        assert!(ScanMethod::choose(ScanMethodChoice::Pit, &v("elasticsearch", "6.8.23")).is_err());
    }
}
