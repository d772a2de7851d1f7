//! `backfill status`: a copy job as a whole, from what Kafka holds (the job record, the
//! checkpoints, the group's current assignment), whichever host asks.

use super::{base_config, blocking, committed, kafka, now_ms, partition_count, read_record, topic, JobConfig, JobError, JobRecord, REQUEST_TIMEOUT};
use crate::checkpoint::SliceCheckpoint;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// Where a slice stands.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SliceStatus {
    pub slice: u32,
    /// `done`, `in_progress` or `pending`.
    pub state: &'static str,
    /// The worker the group assigned it to now, if any.
    pub worker: Option<String>,
    pub scanned: u64,
    pub written: u64,
    pub superseded: u64,
    pub failed: u64,
    pub updated_at_ms: Option<u64>,
}

/// The job as a whole, from Kafka's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub source_index: String,
    pub target_index: String,
    pub slices: u32,
    pub done: u32,
    pub in_progress: u32,
    pub pending: u32,
    pub workers: Vec<String>,
    pub scanned: u64,
    pub written: u64,
    pub superseded: u64,
    pub failed: u64,
    pub expected_docs: Option<u64>,
    /// Documents scanned per second since the job was created.
    pub docs_per_sec: f64,
    /// Seconds left at that rate, while the job runs.
    pub eta_secs: Option<f64>,
    pub slice_status: Vec<SliceStatus>,
}

impl JobStatus {
    /// True when every slice is done.
    pub fn complete(&self) -> bool {
        self.done == self.slices
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.complete() { "complete" } else { "running" };
        writeln!(f, "job {} ({} -> {}): {state}", self.job, self.source_index, self.target_index)?;
        writeln!(f, "slices: {} done, {} in progress, {} pending, of {}", self.done, self.in_progress, self.pending, self.slices)?;
        let expected = self.expected_docs.map(|e| format!(" of ~{e}")).unwrap_or_default();
        writeln!(
            f,
            "documents: {} scanned{expected}, {} written, {} superseded, {} failed; {:.0} docs/s",
            self.scanned, self.written, self.superseded, self.failed, self.docs_per_sec
        )?;
        if let Some(eta) = self.eta_secs {
            writeln!(f, "eta: {}", humantime::format_duration(Duration::from_secs(eta.round() as u64)))?;
        }
        writeln!(f, "workers: {}", if self.workers.is_empty() { "none".to_string() } else { self.workers.join(", ") })?;
        for s in &self.slice_status {
            let by = s.worker.as_deref().map(|w| format!(" by {w}")).unwrap_or_default();
            writeln!(f, "  slice {:>3}: {:<11}{by} scanned {}, failed {}", s.slice, s.state, s.scanned, s.failed)?;
        }
        Ok(())
    }
}

/// Reads a job's state: its record, the checkpoints, the group's members and assignment.
pub async fn status(cfg: &JobConfig, name: &str) -> Result<JobStatus, JobError> {
    let topic = topic(name);
    let base = base_config(cfg);
    if partition_count(&base, &topic).await? == 0 {
        return Err(JobError::NotFound(format!("no backfill job `{name}` (no topic {topic}): start it with `backfill copy --job {name}`")));
    }
    let record = read_record(&base, &topic).await?.ok_or_else(|| JobError::NotFound(format!("job `{name}` has no record yet")))?;
    let (b, t, slices) = (base.clone(), topic.clone(), record.slices);
    let (checkpoints, owners) = blocking(move || {
        let c: BaseConsumer = b.clone().set("group.id", &t).set("enable.auto.commit", "false").create().map_err(kafka("create a reader"))?;
        let cps = committed(&c, &t, slices)?;
        let groups = c.fetch_group_list(Some(&t), REQUEST_TIMEOUT).map_err(kafka("describe the group"))?;
        let mut owners: HashMap<u32, String> = HashMap::new();
        for g in groups.groups() {
            for m in g.members() {
                for (topic, partitions) in m.assignment().map(decode_assignment).unwrap_or_default() {
                    if topic == t {
                        for p in partitions {
                            owners.insert(p as u32, m.client_id().to_owned());
                        }
                    }
                }
            }
        }
        Ok((cps, owners))
    })
    .await?;
    Ok(summarize(name, &record, &checkpoints, &owners, now_ms()))
}

/// The status from what Kafka holds (pure).
fn summarize(name: &str, record: &JobRecord, checkpoints: &[Option<SliceCheckpoint>], owners: &HashMap<u32, String>, now_ms: u64) -> JobStatus {
    let mut st = JobStatus {
        job: name.into(),
        source_index: record.source_index.clone(),
        target_index: record.target_index.clone(),
        slices: record.slices,
        done: 0,
        in_progress: 0,
        pending: 0,
        workers: Vec::new(),
        scanned: 0,
        written: 0,
        superseded: 0,
        failed: 0,
        expected_docs: record.expected_docs,
        docs_per_sec: 0.0,
        eta_secs: None,
        slice_status: Vec::new(),
    };
    let mut last = record.created_at_ms;
    for slice in 0..record.slices {
        let cp = checkpoints.get(slice as usize).cloned().flatten();
        let worker = owners.get(&slice).cloned();
        let state = match (&cp, &worker) {
            (Some(cp), _) if cp.done => "done",
            (_, Some(_)) => "in_progress",
            (Some(_), None) | (None, None) => "pending",
        };
        match state {
            "done" => st.done += 1,
            "in_progress" => st.in_progress += 1,
            _ => st.pending += 1,
        }
        let c = cp.unwrap_or_else(|| SliceCheckpoint::fresh(&record.source_index, &record.target_index, slice, record.slices));
        st.scanned += c.scanned;
        st.written += c.written;
        st.superseded += c.superseded;
        st.failed += c.failed;
        last = last.max(c.updated_at_ms);
        st.slice_status.push(SliceStatus {
            slice,
            state,
            worker: if state == "done" { None } else { worker },
            scanned: c.scanned,
            written: c.written,
            superseded: c.superseded,
            failed: c.failed,
            updated_at_ms: (c.updated_at_ms > 0).then_some(c.updated_at_ms),
        });
    }
    let mut workers: Vec<String> = owners.values().cloned().collect();
    workers.sort();
    workers.dedup();
    st.workers = workers;
    let end = if st.complete() { last } else { now_ms };
    let secs = end.saturating_sub(record.created_at_ms) as f64 / 1000.0;
    st.docs_per_sec = if secs > 0.0 { st.scanned as f64 / secs } else { 0.0 };
    if !st.complete() && st.docs_per_sec > 0.0 {
        st.eta_secs = record.expected_docs.map(|e| e.saturating_sub(st.scanned) as f64 / st.docs_per_sec);
    }
    st
}

/// The topics and partitions of a consumer-protocol assignment (a group member's
/// `member_assignment` bytes: version, then `[topic, [partition]]`, then user data).
fn decode_assignment(bytes: &[u8]) -> Vec<(String, Vec<i32>)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        (b.len() >= n).then(|| {
            let (h, t) = b.split_at(n);
            *b = t;
            h
        })
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|s| i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn parse(mut b: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
        let b = &mut b;
        i16_(b)?;
        let topics = i32_(b)?;
        let mut out = Vec::new();
        for _ in 0..topics.max(0) {
            let len = i16_(b)?.max(0) as usize;
            let name = String::from_utf8_lossy(take(b, len)?).into_owned();
            let n = i32_(b)?;
            let mut parts = Vec::new();
            for _ in 0..n.max(0) {
                parts.push(i32_(b)?);
            }
            out.push((name, parts));
        }
        Some(out)
    }
    parse(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_member_assignment() {
        // version 1, one topic "t" with partitions 2 and 5, empty user data
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 5];
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_assignment(&b), vec![("t".to_string(), vec![2, 5])]);
        assert_eq!(decode_assignment(&[0, 1, 0]), vec![]);
    }

    #[test]
    fn status_counts_slices_and_estimates() {
        let record =
            JobRecord { source_index: "s".into(), target_index: "t".into(), slices: 3, expected_docs: Some(300), created_at_ms: 1_000, created_by: "w".into() };
        let mut done = SliceCheckpoint::fresh("s", "t", 0, 3);
        done.done = true;
        done.scanned = 100;
        done.updated_at_ms = 5_000;
        let mut half = SliceCheckpoint::fresh("s", "t", 1, 3);
        half.scanned = 50;
        let owners: HashMap<u32, String> = [(1, "w1".to_string())].into();
        let st = summarize("j", &record, &[Some(done), Some(half), None], &owners, 11_000);
        assert_eq!((st.done, st.in_progress, st.pending), (1, 1, 1));
        assert_eq!(st.scanned, 150);
        assert_eq!(st.workers, vec!["w1"]);
        assert!((st.docs_per_sec - 15.0).abs() < 1e-9, "150 docs in 10 s");
        assert!((st.eta_secs.unwrap() - 10.0).abs() < 1e-9, "150 left at 15/s");
        assert_eq!(st.slice_status[1].worker.as_deref(), Some("w1"));
        assert!(!st.complete());
    }
}
