//! `cutover-check`: one go/no-go answer before reads switch to the target, from the evidence the
//! other steps leave. Each check is one line (`ok`, `WARN`, or `FAIL` with the reason and the
//! fix); the answer is "go" only when no line failed.
//!
//! 1. **The indexer's gate**: `GET` each indexer's `/ready` (`indexer/src/readiness.rs`: 200
//!    when every partition's lag is 0, no offset gap was found, and the target refreshes; 503
//!    with a JSON body saying why not).
//! 2. **`finalize` state**: the target's `refresh_interval` and `number_of_replicas` are what
//!    `finalize` sets ([`crate::bulkload::Restore`], the comparison `finalize` itself uses).
//! 3. **The `gc_deletes` window**: a delete's version (its tombstone) is remembered by the target
//!    for `index.gc_deletes`; after that, a stale backfill write of the deleted document is
//!    accepted again and resurrects it. The time since the target index was created
//!    (`index.creation_date`) bounds how much of the window the migration has used.
//! 4. **The last `verify` and `parity` reports**: converged (no differing query), for these
//!    indices, and younger than `--max-report-age`.
//!
//! Then [`checklist`] prints the switch and the rollback steps.

use crate::bulkload::{LoadSettings, Restore};
use cluster::{ClusterConfig, Es, Method};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Go, but look: e.g. less than a quarter of the `gc_deletes` window left.
    Warn,
    /// No go.
    Fail,
}

/// One check's line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked (`indexer gate http://...`, `finalize`, `gc_deletes`, `verify`, `parity`).
    pub name: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (FAIL and WARN lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }
    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        write!(f, "{tag} {}: {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n       fix: {fix}")?;
        }
        Ok(())
    }
}

/// What `cutover-check` is told.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub source_index: String,
    pub target_index: String,
    /// Each indexer instance's `/ready` URL (a bare `http://host:port` gets `/ready`).
    pub indexer_ready_urls: Vec<String>,
    /// Timeout of one `/ready` request.
    pub indexer_timeout: Duration,
    /// `backfill verify --report-json` output.
    pub verify_report: Option<PathBuf>,
    /// `backfill parity --report-json` output (optional check).
    pub parity_report: Option<PathBuf>,
    /// Reports older than this fail.
    pub max_report_age: Duration,
    /// As given to `finalize` (`--refresh-interval`, `--replicas`), when they were.
    pub refresh_interval: Option<String>,
    pub replicas: Option<u64>,
    /// The alias applications read through (for the checklist).
    pub read_alias: Option<String>,
}

/// All checks, in order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckReport {
    pub checks: Vec<Check>,
    /// True when no check failed.
    pub go: bool,
}

/// Runs every check. Never fails: a cluster or an indexer that does not answer is a FAIL line.
pub async fn cutover_check(legacy: &Es, target: &Es, cfg: &CheckConfig) -> CheckReport {
    let mut checks = Vec::new();
    if cfg.indexer_ready_urls.is_empty() {
        checks.push(Check::fail(
            "indexer gate",
            "no indexer /ready URL given",
            "pass --indexer-ready-url http://<host>:<metrics-port>/ready once per indexer instance (the indexer's --metrics-addr)",
        ));
    }
    for url in &cfg.indexer_ready_urls {
        checks.push(indexer_gate(url, cfg.indexer_timeout).await);
    }
    checks.push(finalize_state(legacy, target, cfg).await);
    checks.push(gc_deletes_window(target, &cfg.target_index, now_ms()).await);
    checks.push(match &cfg.verify_report {
        None => Check::fail("verify", "no verify report given", "run `backfill verify ... --report-json FILE` and pass --verify-report FILE"),
        Some(path) => verify_report(&read_report(path), path, cfg, now_ms()),
    });
    if let Some(path) = &cfg.parity_report {
        checks.push(parity_report(&read_report(path), path, cfg, now_ms()));
    }
    let go = checks.iter().all(|c| c.status != Status::Fail);
    CheckReport { checks, go }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `(base URL, path)` of a `/ready` URL; a URL without a path gets `/ready`.
pub fn split_ready_url(url: &str) -> (String, String) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) if url[after_scheme + i..] != *"/" => (url[..after_scheme + i].to_string(), url[after_scheme + i..].to_string()),
        Some(i) => (url[..after_scheme + i].to_string(), "/ready".into()),
        None => (url.to_string(), "/ready".into()),
    }
}

/// `GET` one indexer's `/ready`, sent once (the client of the clusters, pointed at the indexer:
/// no second HTTP stack).
async fn indexer_gate(url: &str, timeout: Duration) -> Check {
    let name = format!("indexer gate {url}");
    let (base, path) = split_ready_url(url);
    let es = match Es::connect(&ClusterConfig { timeout, ..ClusterConfig::plain(base) }) {
        Ok(es) => es,
        Err(e) => return Check::fail(name, format!("bad URL: {e}"), "give the indexer's /ready URL, e.g. http://127.0.0.1:9464/ready"),
    };
    match es.request_once(Method::Get, &path, None).await {
        Err(e) => Check::fail(name, format!("no answer: {e}"), "start the indexer (or fix the URL: its --metrics-addr, path /ready)"),
        Ok((status, body)) => gate_answer(name, status, &body),
    }
}

/// Reads a `/ready` answer: 200 is caught up, 503 says why not (its body shown).
pub fn gate_answer(name: String, status: u16, body: &Value) -> Check {
    let shown = short(&body.to_string(), 600);
    match status {
        200 if body.get("caught_up") == Some(&Value::Bool(true)) => {
            let partitions = body.get("lag").and_then(Value::as_object).map_or(0, |m| m.len());
            Check::ok(name, format!("caught up ({partitions} partitions at lag 0)"))
        }
        503 => {
            let mut why = Vec::new();
            if body.get("bulk_load").and_then(Value::as_array).is_some_and(|b| !b.is_empty()) {
                why.push("target in bulk-load settings (run `backfill finalize`)".to_string());
            }
            if let Some(g) = body.get("offset_gaps").and_then(Value::as_array).filter(|g| !g.is_empty()) {
                why.push(format!("{} offset gap(s): run `backfill copy` again, then restart the indexer", g.len()));
            }
            if let Some(c) = body.get("last_commit_failure").and_then(Value::as_str) {
                why.push(format!("last offset commit failed ({})", short(c, 100)));
            }
            let behind: i64 = body.get("lag").and_then(Value::as_object).map_or(0, |m| m.values().filter_map(Value::as_i64).sum());
            if behind > 0 {
                why.push(format!("{behind} records behind"));
            } else if body.get("lag").and_then(Value::as_object).is_some_and(|m| m.is_empty()) {
                why.push("no partition assigned".into());
            }
            Check::fail(
                name,
                format!("closed (503){}; /ready said: {shown}", if why.is_empty() { String::new() } else { format!(", {}", why.join("; ")) }),
                "wait for the indexer to catch up and fix what the body names (bulk-load: `backfill finalize`); then check again",
            )
        }
        _ => Check::fail(name, format!("unexpected answer {status}: {shown}"), "is this the indexer's --metrics-addr, path /ready?"),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The target's refresh_interval and replicas are what `finalize` sets.
async fn finalize_state(legacy: &Es, target: &Es, cfg: &CheckConfig) -> Check {
    let fix = "run `backfill finalize` (with the same --refresh-interval/--replicas given here, if any)";
    let read = async {
        let l = LoadSettings::read(legacy, &cfg.source_index, "legacy").await?;
        let t = LoadSettings::read(target, &cfg.target_index, "target").await?;
        Ok::<_, crate::bulkload::BulkLoadError>((l, t))
    };
    match read.await {
        Err(e) => Check::fail("finalize", format!("cannot read the settings: {e}"), fix),
        Ok((l, t)) => {
            let plan = Restore::plan(&l, &t, cfg.refresh_interval.as_deref(), cfg.replicas);
            let problems = plan.unrestored(&t);
            if problems.is_empty() {
                let replicas = t.number_of_replicas.map_or_else(|| "auto-expanded".to_string(), |r| r.to_string());
                Check::ok("finalize", format!("refresh_interval {}, number_of_replicas {replicas}", t.refresh_interval.as_deref().unwrap_or("unset (1s)")))
            } else {
                Check::fail("finalize", problems.join("; "), fix)
            }
        }
    }
}

/// The share of the target's `gc_deletes` window the migration has not used yet, counted from
/// the target index's creation.
async fn gc_deletes_window(target: &Es, index: &str, now_ms: u64) -> Check {
    match target.get_index(index).await {
        Err(e) => Check::fail("gc_deletes", format!("cannot read the target index: {e}"), "check --target-url and --target-index"),
        Ok(None) => Check::fail("gc_deletes", format!("target index `{index}` does not exist"), "create it with `backfill create-index`"),
        Ok(Some(def)) => {
            let created = def["settings"]["index"]["creation_date"].as_str().and_then(|c| c.parse::<u64>().ok());
            match (schema::gc_deletes_ms(&def), created) {
                (None, _) => Check::fail("gc_deletes", "index.gc_deletes is not a usable duration", "set index.gc_deletes on the target (e.g. 48h)"),
                (_, None) => Check::fail("gc_deletes", "the target index reports no index.creation_date", "check the target cluster's answer to GET /<index>"),
                (Some(gc), Some(created)) => gc_window(gc, created, now_ms),
            }
        }
    }
}

/// FAIL when the migration (since `created_ms`) has run longer than `gc_ms`; WARN when less
/// than a quarter is left.
pub fn gc_window(gc_ms: u64, created_ms: u64, now_ms: u64) -> Check {
    let used = now_ms.saturating_sub(created_ms);
    let left = gc_ms.saturating_sub(used);
    let show = |ms: u64| runtime::duration::format(Duration::from_secs(ms / 1000));
    let detail = format!("index.gc_deletes {}, migration running for {} (since the target index was created), {} left", show(gc_ms), show(used), show(left));
    if left == 0 {
        Check::fail(
            "gc_deletes",
            detail,
            "deletes older than gc_deletes are forgotten: a stale backfill write may have resurrected them. Raise index.gc_deletes on the target, run `backfill verify` (resurrected documents are listed) and `backfill copy` again before switching",
        )
    } else if left.saturating_mul(4) < gc_ms {
        Check::warn(
            "gc_deletes",
            format!("{detail} (< 25%)"),
            "switch soon, or raise index.gc_deletes on the target (PUT /<target>/_settings {\"index.gc_deletes\": \"96h\"}) while copies may still run",
        )
    } else {
        Check::ok("gc_deletes", detail)
    }
}

/// A report file as JSON, or why not.
fn read_report(path: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// `generated_at` of a report (top level, else under `summary`): RFC 3339, or epoch
/// milliseconds.
fn generated_at_ms(report: &Value) -> Option<u64> {
    let at = report.get("generated_at").or_else(|| report.get("summary").and_then(|s| s.get("generated_at")))?;
    match at {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => humantime::parse_rfc3339_weak(s).ok()?.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64),
        _ => None,
    }
}

/// `Some(fail)` when the report is older than `max_age` or has no timestamp.
fn too_old(name: &str, report: &Value, path: &Path, max_age: Duration, now_ms: u64, rerun: &str) -> Option<Check> {
    let Some(at) = generated_at_ms(report) else {
        return Some(Check::fail(name, format!("{} has no `generated_at` timestamp", path.display()), rerun));
    };
    let age = Duration::from_millis(now_ms.saturating_sub(at));
    (age > max_age).then(|| {
        Check::fail(
            name,
            format!(
                "{} is {} old (> --max-report-age {})",
                path.display(),
                runtime::duration::format(Duration::from_secs(age.as_secs())),
                runtime::duration::format(max_age)
            ),
            rerun,
        )
    })
}

/// `Some(fail)` when the report names other indices than these.
fn other_indices(name: &str, report: &Value, path: &Path, cfg: &CheckConfig, rerun: &str) -> Option<Check> {
    [("source_index", &cfg.source_index), ("target_index", &cfg.target_index)].into_iter().find_map(|(key, want)| {
        let got = report.get(key).and_then(Value::as_str).filter(|got| got != want)?;
        Some(Check::fail(name, format!("{} is about {key} `{got}`, not `{want}`", path.display()), rerun))
    })
}

/// The last `verify` report: for these indices, converged, young enough.
pub fn verify_report(report: &Result<Value, String>, path: &Path, cfg: &CheckConfig, now_ms: u64) -> Check {
    let rerun = "run `backfill verify ... --report-json FILE` again (with the indexer caught up) and pass the new file";
    let r = match report {
        Err(e) => return Check::fail("verify", e.clone(), rerun),
        Ok(r) => r,
    };
    if let Some(other) = other_indices("verify", r, path, cfg, rerun) {
        return other;
    }
    if let Some(old) = too_old("verify", r, path, cfg.max_report_age, now_ms, rerun) {
        return old;
    }
    if r.get("converged") != Some(&Value::Bool(true)) {
        let classes: Vec<String> = ["missing", "extra", "resurrected", "different", "in_flight", "untransformable"]
            .iter()
            .filter_map(|c| r.get(*c).and_then(|v| v.get("count")).and_then(Value::as_u64).filter(|&n| n > 0).map(|n| format!("{c} {n}")))
            .collect();
        let parity = r.get("parity").and_then(|p| p.get("passed")).filter(|p| **p == Value::Bool(false)).map(|_| ", parity failed").unwrap_or("");
        return Check::fail(
            "verify",
            format!("{}: NOT CONVERGED ({}{parity})", path.display(), if classes.is_empty() { "no class counts".into() } else { classes.join(", ") }),
            "fix the differences (docs/backfill.md, \"Verify\"), then verify again",
        );
    }
    let docs = r.get("legacy_docs_scanned").and_then(Value::as_u64).unwrap_or(0);
    Check::ok("verify", format!("{}: converged, {docs} legacy documents compared, generated {}", path.display(), r["generated_at"].as_str().unwrap_or("?")))
}

/// The last `parity` report (`backfill parity --report-json`, `parity::ParityRunReport`).
/// Contract (any JSON with these fields): `generated_at` (RFC 3339 or epoch milliseconds) and
/// `differing` (queries whose answers differ), at the top level or under `summary`; when
/// present, `untranslatable` (queries that cannot be expressed exactly on the target) must be 0
/// and `source_index`/`target_index` must be these.
pub fn parity_report(report: &Result<Value, String>, path: &Path, cfg: &CheckConfig, now_ms: u64) -> Check {
    let rerun = "run `backfill parity ... --report-json FILE` again and pass the new file";
    let r = match report {
        Err(e) => return Check::fail("parity", e.clone(), rerun),
        Ok(r) => r,
    };
    if let Some(fail) = other_indices("parity", r, path, cfg, rerun).or_else(|| too_old("parity", r, path, cfg.max_report_age, now_ms, rerun)) {
        return fail;
    }
    let field = |k: &str| r.get(k).or_else(|| r.get("summary").and_then(|s| s.get(k))).and_then(Value::as_u64);
    match (field("differing"), field("untranslatable").unwrap_or(0)) {
        (None, _) => Check::fail("parity", format!("{} has no `differing` count (top level or under `summary`)", path.display()), rerun),
        (Some(0), 0) => Check::ok("parity", format!("{}: no query differs", path.display())),
        (Some(0), n) => Check::fail(
            "parity",
            format!("{}: {n} queries cannot be translated exactly (not run)", path.display()),
            "read the report's findings: change those queries in the application, or accept and document the change, then run parity again",
        ),
        (Some(n), _) => Check::fail(
            "parity",
            format!("{}: {n} queries answer differently on the target", path.display()),
            "read the report's per-query causes; fix the mapping or the application's queries, then run parity again",
        ),
    }
}

/// The switch and rollback steps. Two clusters (`legacy_url` != `target_url`): an alias cannot
/// span them, so the target index gets the read alias on the target cluster and the
/// applications' read endpoint moves; one cluster: one atomic alias swap.
pub fn checklist(cfg: &CheckConfig, legacy_url: &str, target_url: &str, go: bool) -> String {
    let alias = cfg.read_alias.as_deref().unwrap_or("<read-alias>");
    let (old, new) = (&cfg.source_index, &cfg.target_index);
    let swap = |from: &str, to: &str| {
        format!(
            "         POST /_aliases\n         {{\"actions\": [{{\"remove\": {{\"index\": \"{from}\", \"alias\": \"{alias}\"}}}}, {{\"add\": {{\"index\": \"{to}\", \"alias\": \"{alias}\"}}}}]}}\n"
        )
    };
    let mut s = String::new();
    s.push_str(if go { "GO: every check passed.\n" } else { "NO GO: fix the FAIL lines above, then run cutover-check again.\n" });
    s.push_str("Checklist:\n");
    s.push_str("  [ ] 1. Keep the legacy indexer and the new indexer(s) running: the legacy index stays current, it is the rollback.\n");
    if legacy_url == target_url {
        s.push_str(&format!("  [ ] 2. Switch reads: one atomic alias swap on {target_url}:\n"));
        s.push_str(&swap(old, new));
    } else {
        s.push_str(&format!(
            "  [ ] 2. On the target cluster {target_url}, give the target index the read alias (an alias cannot span two clusters):\n         POST /_aliases\n         {{\"actions\": [{{\"add\": {{\"index\": \"{new}\", \"alias\": \"{alias}\"}}}}]}}\n"
        ));
        s.push_str(&format!(
            "         Switch reads: point the applications' read endpoint from {legacy_url} to {target_url} (they keep reading `{alias}`; translate tag queries, docs/queries.md).\n"
        ));
    }
    s.push_str("  [ ] 3. Watch the indexer's /ready and /metrics and the applications' error rate.\n");
    if legacy_url == target_url {
        s.push_str("  [ ] Rollback: swap the alias back (the legacy indexer never stopped, so the legacy index is current):\n");
        s.push_str(&swap(new, old));
    } else {
        s.push_str(&format!(
            "  [ ] Rollback: point the read endpoint back at {legacy_url} (the legacy indexer never stopped, so the legacy index is current; on one cluster, swap the alias back:\n"
        ));
        s.push_str(&swap(new, old));
        s.push_str("         ).\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> CheckConfig {
        CheckConfig {
            source_index: "items".into(),
            target_index: "items-v2".into(),
            indexer_ready_urls: vec![],
            indexer_timeout: Duration::from_secs(5),
            verify_report: None,
            parity_report: None,
            max_report_age: Duration::from_secs(3600),
            refresh_interval: None,
            replicas: None,
            read_alias: Some("items-read".into()),
        }
    }

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn ready_urls_split_into_base_and_path() {
        assert_eq!(split_ready_url("http://127.0.0.1:9464/ready"), ("http://127.0.0.1:9464".into(), "/ready".into()));
        assert_eq!(split_ready_url("http://127.0.0.1:9464"), ("http://127.0.0.1:9464".into(), "/ready".into()));
        assert_eq!(split_ready_url("http://h:1/"), ("http://h:1".into(), "/ready".into()));
        assert_eq!(split_ready_url("https://h/x/ready"), ("https://h".into(), "/x/ready".into()));
    }

    #[test]
    fn gate_answers() {
        let open = gate_answer("g".into(), 200, &json!({"caught_up": true, "lag": {"t[0]": 0, "t[1]": 0}}));
        assert_eq!(open.status, Status::Ok, "{open}");
        let closed = gate_answer("g".into(), 503, &json!({"caught_up": false, "lag": {"t[0]": 5}, "bulk_load": ["x (index.refresh_interval: -1)"]}));
        assert_eq!(closed.status, Status::Fail);
        assert!(closed.detail.contains("bulk-load") && closed.detail.contains("5 records behind") && closed.detail.contains("refresh_interval"), "{closed}");
        assert_eq!(gate_answer("g".into(), 404, &json!("nope")).status, Status::Fail);
    }

    #[test]
    fn gc_window_fails_when_used_up_and_warns_under_a_quarter() {
        let h = 3_600_000;
        assert_eq!(gc_window(48 * h, NOW - h, NOW).status, Status::Ok);
        let w = gc_window(48 * h, NOW - 40 * h, NOW);
        assert_eq!(w.status, Status::Warn, "{w}");
        let f = gc_window(48 * h, NOW - 49 * h, NOW);
        assert_eq!(f.status, Status::Fail, "{f}");
        assert!(f.fix.unwrap().contains("resurrected"));
    }

    #[test]
    fn verify_reports_fresh_converged_and_about_these_indices() {
        let p = Path::new("v.json");
        let at = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(NOW - 60_000)).to_string();
        let good = json!({"source_index": "items", "target_index": "items-v2", "converged": true, "legacy_docs_scanned": 10, "generated_at": at});
        assert_eq!(verify_report(&Ok(good.clone()), p, &cfg(), NOW).status, Status::Ok);
        let mut stale = cfg();
        stale.max_report_age = Duration::from_secs(30);
        let old = verify_report(&Ok(good.clone()), p, &stale, NOW);
        assert!(old.status == Status::Fail && old.detail.contains("old"), "{old}");
        let mut diverged = good.clone();
        diverged["converged"] = json!(false);
        diverged["missing"] = json!({"count": 3});
        let d = verify_report(&Ok(diverged), p, &cfg(), NOW);
        assert!(d.status == Status::Fail && d.detail.contains("missing 3"), "{d}");
        let mut other = good.clone();
        other["target_index"] = json!("else");
        assert_eq!(verify_report(&Ok(other), p, &cfg(), NOW).status, Status::Fail);
        let mut untimed = good;
        untimed.as_object_mut().unwrap().remove("generated_at");
        assert!(verify_report(&Ok(untimed), p, &cfg(), NOW).detail.contains("generated_at"));
        assert_eq!(verify_report(&Err("cannot read".into()), p, &cfg(), NOW).status, Status::Fail);
    }

    #[test]
    fn parity_reports_by_contract() {
        let p = Path::new("p.json");
        let c = cfg();
        assert_eq!(parity_report(&Ok(json!({"generated_at": NOW - 1000, "differing": 0})), p, &c, NOW).status, Status::Ok);
        assert_eq!(parity_report(&Ok(json!({"summary": {"generated_at": NOW, "differing": 2}})), p, &c, NOW).status, Status::Fail);
        assert_eq!(parity_report(&Ok(json!({"generated_at": NOW})), p, &c, NOW).status, Status::Fail);
        assert_eq!(parity_report(&Ok(json!({"generated_at": NOW - 7_200_000, "differing": 0})), p, &c, NOW).status, Status::Fail);
        let untranslatable = parity_report(&Ok(json!({"generated_at": NOW, "differing": 0, "untranslatable": 1})), p, &c, NOW);
        assert!(untranslatable.status == Status::Fail && untranslatable.detail.contains("cannot be translated"), "{untranslatable}");
        let other = json!({"generated_at": NOW, "differing": 0, "target_index": "x"});
        assert_eq!(parity_report(&Ok(other), p, &c, NOW).status, Status::Fail);
    }

    #[test]
    fn cli_flags_and_help() {
        use clap::{CommandFactory, Parser};
        let mut cmd = crate::cli::Cli::command();
        let help = cmd.find_subcommand_mut("cutover-check").unwrap().render_long_help().to_string();
        for needle in [
            "--indexer-ready-url",
            "--verify-report",
            "--parity-report",
            "--max-report-age",
            "[default: 1h]",
            "--read-alias",
            "resurrects the deleted document",
            "less than 25%",
            "Exit codes: 0 go",
            "3 no go",
            "generated_at",
        ] {
            assert!(help.contains(needle), "cutover-check --help lacks {needle}:\n{help}");
        }
        let cli = crate::cli::Cli::try_parse_from([
            "backfill",
            "cutover-check",
            "--source-index",
            "a",
            "--target-index",
            "b",
            "--indexer-ready-url",
            "http://127.0.0.1:1/ready",
            "--indexer-ready-url",
            "http://127.0.0.1:2",
            "--max-report-age",
            "1ms",
        ])
        .unwrap();
        let crate::cli::Command::CutoverCheck(a) = cli.command else { panic!() };
        assert_eq!(a.indexer_ready_urls.len(), 2);
        assert_eq!(a.max_report_age, Duration::from_millis(1));
        assert_eq!(crate::cli::Outcome::Diverged.exit_code(), 3, "no go");
    }

    #[test]
    fn checklist_names_the_swap_and_the_rollback() {
        let one = checklist(&cfg(), "http://es:9200", "http://es:9200", true);
        assert!(one.starts_with("GO"), "{one}");
        assert!(one.contains(r#"{"remove": {"index": "items", "alias": "items-read"}}, {"add": {"index": "items-v2", "alias": "items-read"}}"#), "{one}");
        assert!(one.contains("Rollback") && one.contains(r#"{"remove": {"index": "items-v2", "alias": "items-read"}}"#), "{one}");
        let two = checklist(&cfg(), "http://old:9200", "http://new:9200", false);
        assert!(two.starts_with("NO GO"), "{two}");
        assert!(two.contains(r#"{"actions": [{"add": {"index": "items-v2", "alias": "items-read"}}]}"#), "{two}");
        assert!(two.contains("from http://old:9200 to http://new:9200") && two.contains("back at http://old:9200"), "{two}");
    }
}
