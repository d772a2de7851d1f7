//! Bulk-load settings on the target during the copy, and `finalize`, which restores the legacy
//! index's values before reads are switched.
//!
//! While `backfill copy` runs, the target index needs neither periodic refreshes (nobody
//! searches it yet; each refresh makes a new segment that merges then rewrite) nor replicas
//! (every document would be indexed once more per replica). So the copy sets
//! `index.refresh_interval: -1` and `index.number_of_replicas: 0` when it starts (idempotent:
//! a resumed copy, several copy processes, or an index already in these settings just find them
//! there), and refreshes the target once at its end.
//!
//! `finalize` restores what the legacy index has (`refresh_interval` unset there means the
//! 1 s default, and is restored as unset), refreshes the target, and waits until the restored
//! replicas are allocated (green). The indexer's `/ready` gate stays closed while the target's
//! refresh is off, because searches would serve stale data: `finalize` is the step between the
//! last copy and switching reads (README, "A first migration against your own clusters", step 4).
//!
//! The price of replicas 0: a target node lost during the copy loses the shards it held (the
//! indexer's writes to them too). The recovery is to start the target over (create-index, copy,
//! a new indexer group from offset zero); `--no-bulk-load` keeps the target's settings instead.

use cluster::client::enc;
use cluster::readiness::{refresh_disabled, BULK_LOAD_REFRESH_INTERVAL};
use cluster::{Es, EsError, Method};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Why bulk-load settings could not be applied, or `finalize` refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkLoadError {
    #[error(transparent)]
    Es(#[from] EsError),
    /// The index does not exist.
    #[error("{side} index `{index}` does not exist{hint}")]
    Missing { side: &'static str, index: String, hint: &'static str },
    /// Finalize refuses to act (nothing was changed); the message names the fix.
    #[error("refusing to finalize `{index}`: {why}")]
    Refused { index: String, why: String },
    /// The settings were restored, but the index did not reach the awaited health in time.
    #[error("target index `{index}`: settings restored, but its health is still {status} after {waited:?} (replicas not yet allocated; see `GET _cluster/allocation/explain`); run `backfill finalize` again to keep waiting")]
    Health { index: String, status: String, waited: Duration },
}

/// The two settings a bulk load changes, as the index reports them (`None`: unset).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadSettings {
    pub refresh_interval: Option<String>,
    pub number_of_replicas: Option<u64>,
    /// `index.auto_expand_replicas` when enabled: the replica count is the cluster's to
    /// manage, and neither the copy nor finalize touches it.
    pub auto_expand_replicas: Option<String>,
}

impl LoadSettings {
    /// Reads the settings of one index (an alias must name exactly one).
    pub async fn read(es: &Es, index: &str, side: &'static str) -> Result<Self, BulkLoadError> {
        let hint = if side == "target" { "; create it with `backfill create-index`" } else { "" };
        let definition = es.get_index(index).await?.ok_or_else(|| BulkLoadError::Missing { side, index: index.into(), hint })?;
        Ok(Self::from_index_settings(&definition["settings"]["index"]))
    }

    /// From an index's `settings.index` object (as `GET /<index>` returns it).
    pub fn from_index_settings(settings: &Value) -> Self {
        let text = |k: &str| settings.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        LoadSettings {
            refresh_interval: text("refresh_interval"),
            number_of_replicas: text("number_of_replicas").and_then(|r| r.parse().ok()),
            auto_expand_replicas: text("auto_expand_replicas").filter(|a| a != "false"),
        }
    }
}

/// Shows an optional refresh interval (`unset` is Elasticsearch's 1 s default).
fn shown(r: &Option<String>) -> String {
    r.clone().unwrap_or_else(|| "unset (1s default)".into())
}

/// What [`enter`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entered {
    /// One `setting: before -> after` per change; empty when the index already had them.
    pub changes: Vec<String>,
}

/// Puts the target index in bulk-load settings (`refresh_interval: -1`, `number_of_replicas:
/// 0` unless auto-expanded). Idempotent: settings already there are left alone, so resumed and
/// concurrent copies all end in the same state.
pub async fn enter(target: &Es, index: &str) -> Result<Entered, BulkLoadError> {
    let now = LoadSettings::read(target, index, "target").await?;
    let mut put = Map::new();
    let mut changes = Vec::new();
    if now.refresh_interval.as_deref() != Some(BULK_LOAD_REFRESH_INTERVAL) {
        put.insert("refresh_interval".into(), json!(BULK_LOAD_REFRESH_INTERVAL));
        changes.push(format!("index.refresh_interval {} -> {BULK_LOAD_REFRESH_INTERVAL}", shown(&now.refresh_interval)));
    }
    if now.auto_expand_replicas.is_none() && now.number_of_replicas != Some(0) {
        put.insert("number_of_replicas".into(), json!(0));
        changes.push(format!("index.number_of_replicas {} -> 0", now.number_of_replicas.map(|r| r.to_string()).unwrap_or_else(|| "unset".into())));
    }
    if !put.is_empty() {
        target.ok(Method::Put, &format!("/{}/_settings", enc(index)), Some(&json!({ "index": put }))).await?;
    }
    Ok(Entered { changes })
}

/// What `finalize` is told.
#[derive(Clone, Debug)]
pub struct FinalizeConfig {
    pub source_index: String,
    pub target_index: String,
    /// Instead of the legacy index's `refresh_interval`.
    pub refresh_interval: Option<String>,
    /// Instead of the legacy index's `number_of_replicas`.
    pub replicas: Option<u64>,
    /// When the target cluster has too few data nodes for the replicas: set them anyway and
    /// wait for yellow (instead of refusing).
    pub allow_yellow: bool,
    /// How long to wait for the health.
    pub timeout: Duration,
}

/// What `finalize` did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finalized {
    pub target_index: String,
    /// The legacy index's values, as read.
    pub legacy: LoadSettings,
    /// What the target had before.
    pub before: LoadSettings,
    /// What the target has now.
    pub after: LoadSettings,
    /// The health waited for (`green`, or `yellow` with `--allow-yellow` on too few nodes).
    pub waited_for: String,
    /// The health reached.
    pub status: String,
    /// The indexer's tombstone side index, when it exists, given the same replica count.
    pub tombstones: Option<String>,
}

impl std::fmt::Display for Finalized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let replicas = |s: &LoadSettings| match (&s.auto_expand_replicas, s.number_of_replicas) {
            (Some(a), _) => format!("auto-expanded ({a})"),
            (None, Some(n)) => n.to_string(),
            (None, None) => "unset".into(),
        };
        writeln!(f, "finalized {} (health {}, waited for {}):", self.target_index, self.status, self.waited_for)?;
        writeln!(
            f,
            "  index.refresh_interval: {} -> {} (legacy: {})",
            shown(&self.before.refresh_interval),
            shown(&self.after.refresh_interval),
            shown(&self.legacy.refresh_interval)
        )?;
        write!(f, "  index.number_of_replicas: {} -> {} (legacy: {})", replicas(&self.before), replicas(&self.after), replicas(&self.legacy))?;
        if let Some(t) = &self.tombstones {
            write!(f, "\n  tombstone index {t}: number_of_replicas {}", replicas(&self.after))?;
        }
        Ok(())
    }
}

/// What `finalize` sets on the target: the one comparison of the legacy index's settings with
/// the target's, shared by `finalize` (what to set) and `cutover-check` (whether it was set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restore {
    /// `index.refresh_interval` (`None`: unset, Elasticsearch's 1 s default).
    pub refresh_interval: Option<String>,
    /// `index.number_of_replicas` (`None`: auto-expanded on the target, the cluster's to manage).
    pub replicas: Option<u64>,
}

impl Restore {
    /// The override when given, else the legacy index's value (replicas: 1 when unset there).
    /// Auto-expanded replicas (on the target, copied from the legacy index by create-index) are
    /// the cluster's to manage: neither the copy nor finalize sets a count then.
    pub fn plan(legacy: &LoadSettings, target: &LoadSettings, refresh_override: Option<&str>, replicas_override: Option<u64>) -> Self {
        let refresh_interval = refresh_override.map(str::to_string).or_else(|| legacy.refresh_interval.clone());
        let replicas = if target.auto_expand_replicas.is_some() { None } else { replicas_override.or(legacy.number_of_replicas).or(Some(1)) };
        Restore { refresh_interval, replicas }
    }

    /// How the target's settings differ from this plan, one line each: empty once `finalize`
    /// has run (an unset refresh_interval and `1s` are the same).
    pub fn unrestored(&self, target: &LoadSettings) -> Vec<String> {
        let norm = |r: &Option<String>| r.clone().unwrap_or_else(|| "1s".into());
        let mut out = Vec::new();
        match &target.refresh_interval {
            Some(r) if refresh_disabled(r) => out.push(format!(
                "index.refresh_interval is {r} (the copy's bulk-load setting): searches would not see new writes, finalize sets {}",
                shown(&self.refresh_interval)
            )),
            r if norm(r) != norm(&self.refresh_interval) => {
                out.push(format!("index.refresh_interval is {}, finalize sets {}", shown(r), shown(&self.refresh_interval)))
            }
            _ => {}
        }
        if let Some(n) = self.replicas.filter(|&n| target.number_of_replicas != Some(n)) {
            let now = target.number_of_replicas.map(|r| r.to_string()).unwrap_or_else(|| "unset".into());
            out.push(format!("index.number_of_replicas is {now}, finalize sets {n}"));
        }
        out
    }
}

/// Restores the legacy index's `refresh_interval` and `number_of_replicas` on the target,
/// refreshes it and waits for the health the replicas allow. Idempotent. Refuses, changing
/// nothing, when the result could not serve reads (refresh still off) or could never be green
/// (more replicas than the target cluster has data nodes for, without `allow_yellow`).
pub async fn finalize(legacy: &Es, target: &Es, cfg: &FinalizeConfig) -> Result<Finalized, BulkLoadError> {
    let index = cfg.target_index.clone();
    let refused = |why: String| BulkLoadError::Refused { index: index.clone(), why };
    let from_legacy = LoadSettings::read(legacy, &cfg.source_index, "legacy").await?;
    let before = LoadSettings::read(target, &index, "target").await?;
    let plan = Restore::plan(&from_legacy, &before, cfg.refresh_interval.as_deref(), cfg.replicas);
    let refresh = plan.refresh_interval.clone();
    if let Some(r) = refresh.as_deref().filter(|r| refresh_disabled(r)) {
        return Err(refused(format!(
            "the refresh_interval to restore is {r} (the legacy index's{}): searches on the target would never see new writes, and the indexer's /ready stays closed while refresh is off; give the value to use with --refresh-interval (e.g. 1s)",
            if cfg.refresh_interval.is_some() { " override" } else { "" }
        )));
    }
    let replicas = plan.replicas;
    let health = target.get("/_cluster/health").await?;
    let data_nodes = health.get("number_of_data_nodes").and_then(Value::as_u64).unwrap_or(1);
    let mut waited_for = "green";
    if let Some(n) = replicas.filter(|&n| n + 1 > data_nodes) {
        if !cfg.allow_yellow {
            return Err(refused(format!(
                "number_of_replicas {n} ({}) needs {} data nodes, the target cluster has {data_nodes}: the index could never be green. Rerun with --replicas {} to keep fewer replicas, or with --allow-yellow to set {n} anyway and wait for yellow",
                if cfg.replicas.is_some() { "--replicas" } else { "the legacy index's" },
                n + 1,
                data_nodes.saturating_sub(1)
            )));
        }
        tracing::warn!(index = %index, replicas = n, data_nodes, "too few data nodes for the replicas (--allow-yellow): the index will stay yellow until nodes join");
        waited_for = "yellow";
    }
    let mut put = Map::new();
    // Unset on the legacy index (and no override): unset on the target too (the 1 s default),
    // so that the target matches its create-index definition again.
    put.insert("refresh_interval".into(), refresh.clone().map(Value::String).unwrap_or(Value::Null));
    if let Some(n) = replicas {
        put.insert("number_of_replicas".into(), json!(n));
    }
    target.ok(Method::Put, &format!("/{}/_settings", enc(&index)), Some(&json!({ "index": put }))).await?;
    let tombstones = match replicas {
        Some(n) => restore_tombstone_replicas(target, &index, n).await?,
        None => None,
    };
    target.refresh(&index).await?;
    let status = wait_for_health(target, &index, waited_for, cfg.timeout).await?;
    let after = LoadSettings::read(target, &index, "target").await?;
    Ok(Finalized { target_index: index, legacy: from_legacy, before, after, waited_for: waited_for.into(), status, tombstones })
}

/// The indexer's tombstone side index is created with the target's replica count at indexer
/// start, which is 0 while the copy runs: it gets the restored count too (a lost tombstone can
/// resurrect a document). Absent: nothing to do.
async fn restore_tombstone_replicas(target: &Es, index: &str, replicas: u64) -> Result<Option<String>, BulkLoadError> {
    let tombstones = schema::tombstone_index(index);
    let (status, body) =
        target.request(Method::Put, &format!("/{}/_settings", enc(&tombstones)), Some(&json!({"index": {"number_of_replicas": replicas}}))).await?;
    match status {
        200..=299 => Ok(Some(tombstones)),
        404 => Ok(None),
        _ => Err(EsError::status_of("PUT", &format!("/{tombstones}/_settings"), status, &body).into()),
    }
}

/// Waits (server side, in slices of at most 30 s) until the index reaches `want`; returns the
/// status reached or [`BulkLoadError::Health`] after `timeout`.
async fn wait_for_health(target: &Es, index: &str, want: &str, timeout: Duration) -> Result<String, BulkLoadError> {
    let started = std::time::Instant::now();
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        let slice = left.min(Duration::from_secs(30)).as_secs().max(1);
        let path = format!("/_cluster/health/{}?wait_for_status={want}&timeout={slice}s", enc(index));
        let (status, body) = target.request(Method::Get, &path, None).await?;
        // 408 with `timed_out: true` when the status was not reached in time.
        if !(200..300).contains(&status) && status != 408 {
            return Err(EsError::status_of("GET", &path, status, &body).into());
        }
        let reached = body.get("status").and_then(Value::as_str).unwrap_or("unknown").to_string();
        if body.get("timed_out") != Some(&Value::Bool(true)) {
            return Ok(reached);
        }
        if started.elapsed() >= timeout {
            return Err(BulkLoadError::Health { index: index.into(), status: reached, waited: timeout });
        }
        tracing::info!(index, status = %reached, want, "waiting for the restored replicas to be allocated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_index_settings() {
        let s = LoadSettings::from_index_settings(&json!({"refresh_interval": "-1", "number_of_replicas": "2", "auto_expand_replicas": "false"}));
        assert_eq!(s, LoadSettings { refresh_interval: Some("-1".into()), number_of_replicas: Some(2), auto_expand_replicas: None });
        let s = LoadSettings::from_index_settings(&json!({"number_of_replicas": "0", "auto_expand_replicas": "0-1"}));
        assert_eq!(s.refresh_interval, None);
        assert_eq!(s.auto_expand_replicas.as_deref(), Some("0-1"));
    }

    #[test]
    fn restore_plan_and_what_is_not_restored_yet() {
        let legacy = LoadSettings { refresh_interval: Some("7s".into()), number_of_replicas: Some(1), auto_expand_replicas: None };
        let bulk = LoadSettings { refresh_interval: Some("-1".into()), number_of_replicas: Some(0), auto_expand_replicas: None };
        let plan = Restore::plan(&legacy, &bulk, None, None);
        assert_eq!(plan, Restore { refresh_interval: Some("7s".into()), replicas: Some(1) });
        let problems = plan.unrestored(&bulk);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("bulk-load") && problems[1].contains("finalize sets 1"), "{problems:?}");
        let done = LoadSettings { refresh_interval: Some("7s".into()), number_of_replicas: Some(1), auto_expand_replicas: None };
        assert!(plan.unrestored(&done).is_empty());
        // Overrides, as given to finalize; unset and 1s are the same.
        let plan = Restore::plan(&legacy, &bulk, Some("1s"), Some(0));
        let unset = LoadSettings { refresh_interval: None, number_of_replicas: Some(0), auto_expand_replicas: None };
        assert!(plan.unrestored(&unset).is_empty());
        // Auto-expanded replicas are the cluster's.
        let auto = LoadSettings { auto_expand_replicas: Some("0-1".into()), ..done.clone() };
        assert_eq!(Restore::plan(&legacy, &auto, None, None).replicas, None);
    }
}
