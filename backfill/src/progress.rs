//! Counting, showing and summarising a copy run.
//!
//! [`Stats`] are plain atomics updated once per resolved batch (cheap on the hot path) and
//! mirrored into the `metrics` counters. A [`Reporter`] task shows them: an indicatif bar with
//! rate and ETA when stderr is a terminal, a `tracing` line per interval otherwise (logs of a
//! job runner must not fill with carriage returns), or nothing.

use crate::metrics as m;
use cluster::Outcome;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    /// Always the bar.
    Bar,
    /// Always log lines.
    Log,
    /// Nothing until the summary.
    Off,
}

/// Counters of one run (not cumulative over runs: see the checkpoints for that).
#[derive(Debug, Default)]
pub struct Stats {
    pub scanned: AtomicU64,
    pub written: AtomicU64,
    pub superseded: AtomicU64,
    pub failed: AtomicU64,
    pub recoveries: AtomicU64,
    /// Per slice (index = position in the run's slice list): scanned in this run, and done.
    pub slices: Vec<SliceStats>,
}

/// Progress of one slice.
#[derive(Debug, Default)]
pub struct SliceStats {
    pub slice: u32,
    pub scanned: AtomicU64,
    pub done: AtomicBool,
}

/// The outcome of one resolved batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchCounts {
    pub scanned: u64,
    pub written: u64,
    pub superseded: u64,
    pub failed: u64,
}

impl Stats {
    /// Counters for the given slices (their gauges at 0 from the start: a run that ends
    /// between two scrapes still showed every slice).
    pub fn new(slices: &[u32]) -> Self {
        for slice in slices.iter().map(u32::to_string) {
            metrics::gauge!(m::SLICE_SCANNED, "slice" => slice.clone()).set(0.0);
            metrics::gauge!(m::SLICE_DONE, "slice" => slice).set(0.0);
        }
        Stats { slices: slices.iter().map(|&slice| SliceStats { slice, ..Default::default() }).collect(), ..Default::default() }
    }

    /// Adds one batch (and mirrors it into the metrics).
    pub fn add(&self, pos: usize, c: BatchCounts) {
        self.scanned.fetch_add(c.scanned, Relaxed);
        self.written.fetch_add(c.written, Relaxed);
        self.superseded.fetch_add(c.superseded, Relaxed);
        self.failed.fetch_add(c.failed, Relaxed);
        metrics::counter!(m::SCANNED).increment(c.scanned);
        metrics::counter!(m::DOCS, "outcome" => Outcome::APPLIED).increment(c.written);
        metrics::counter!(m::DOCS, "outcome" => Outcome::SUPERSEDED).increment(c.superseded);
        metrics::counter!(m::DOCS, "outcome" => Outcome::POISON).increment(c.failed);
        let s = &self.slices[pos];
        let n = s.scanned.fetch_add(c.scanned, Relaxed) + c.scanned;
        metrics::gauge!(m::SLICE_SCANNED, "slice" => s.slice.to_string()).set(n as f64);
    }

    /// Marks a slice as read to its end.
    pub fn slice_done(&self, pos: usize) {
        let s = &self.slices[pos];
        s.done.store(true, Relaxed);
        metrics::gauge!(m::SLICE_DONE, "slice" => s.slice.to_string()).set(1.0);
    }
}

/// The end-of-run summary (printed, and written as JSON with `--summary-json`).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    pub source_index: String,
    pub target_index: String,
    /// `pit`, `opensearch-pit` or `scroll`.
    pub method: String,
    pub slices: u32,
    /// Slices the job's group assigned to this worker during the run.
    pub slices_assigned: Vec<u32>,
    /// Assigned slices skipped because their checkpoint says done.
    pub slices_already_done: Vec<u32>,
    /// Assigned slices resumed from a checkpoint.
    pub slices_resumed: Vec<u32>,
    /// Assigned slices the group moved to another worker before this one finished them.
    #[serde(default)]
    pub slices_moved: Vec<u32>,
    pub scanned: u64,
    pub written: u64,
    pub superseded: u64,
    /// Documents this run could not copy.
    pub failed: u64,
    /// Documents not copied over every run and every worker of the job (the checkpoints keep
    /// the count): a run that resumed past earlier failures still owns them.
    #[serde(default)]
    pub failed_in_slices: u64,
    /// Lost PIT/scroll contexts recovered from.
    pub context_recoveries: u64,
    pub elapsed_secs: f64,
    pub docs_per_sec: f64,
    /// Where failed documents were recorded.
    pub failures_file: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backfill {} -> {} ({}, {} slice(s), {} assigned, {} already done, {} resumed, {} moved): scanned {}, written {}, superseded {}, failed {}, context recoveries {}, elapsed {:.1}s, {:.0} docs/s",
            self.source_index,
            self.target_index,
            self.method,
            self.slices,
            self.slices_assigned.len(),
            self.slices_already_done.len(),
            self.slices_resumed.len(),
            self.slices_moved.len(),
            self.scanned,
            self.written,
            self.superseded,
            self.failed,
            self.context_recoveries,
            self.elapsed_secs,
            self.docs_per_sec
        )?;
        if self.failed_in_slices > self.failed {
            write!(f, ", {} failed over every run of the job", self.failed_in_slices)?;
        }
        if self.failed.max(self.failed_in_slices) > 0 {
            write!(f, " (failed documents are listed in {})", self.failures_file)?;
        }
        Ok(())
    }
}

/// Shows progress until cancelled.
pub struct Reporter {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Reporter {
    /// Starts the reporter; `total` is the expected number of documents (for the bar's ETA).
    pub fn start(stats: Arc<Stats>, mode: ProgressMode, total: Option<u64>, interval: Duration) -> Self {
        let cancel = CancellationToken::new();
        let bar = match mode {
            ProgressMode::Bar => true,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Log | ProgressMode::Off => false,
        };
        let quiet = mode == ProgressMode::Off;
        let token = cancel.clone();
        let handle = tokio::spawn(async move {
            let pb = bar.then(|| new_bar(total));
            let tick = if bar { Duration::from_millis(250) } else { interval };
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(tick) => {}
                }
                let scanned = stats.scanned.load(Relaxed);
                let rate = (scanned - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
                last = (Instant::now(), scanned);
                match &pb {
                    Some(pb) => pb.set_position(scanned),
                    None if !quiet => log_line(&stats, total, rate),
                    None => {}
                }
            }
            if let Some(pb) = pb {
                pb.set_position(stats.scanned.load(Relaxed));
                pb.finish_and_clear();
            }
        });
        Reporter { cancel, handle }
    }

    /// Stops the reporter and waits for its last update.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
    }
}

fn new_bar(total: Option<u64>) -> ProgressBar {
    let pb = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

fn log_line(stats: &Stats, total: Option<u64>, rate: f64) {
    let load = |a: &AtomicU64| a.load(Relaxed);
    let scanned = load(&stats.scanned);
    let done = stats.slices.iter().filter(|s| s.done.load(Relaxed)).count();
    let eta = total.filter(|_| rate > 0.0).map(|t| format!("{:.0}s", t.saturating_sub(scanned) as f64 / rate)).unwrap_or_else(|| "?".into());
    tracing::info!(
        scanned,
        total = total.unwrap_or(0),
        written = load(&stats.written),
        superseded = load(&stats.superseded),
        failed = load(&stats.failed),
        docs_per_sec = rate.round(),
        slices_done = done,
        slices = stats.slices.len(),
        eta = %eta,
        "backfill progress"
    );
}
