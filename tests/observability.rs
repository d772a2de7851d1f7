//! What an operator looks at, proven against the real thing (issue 34): the alert rules and
//! the Grafana dashboard shipped in `deploy/`, loaded into a real Prometheus (Debian's
//! `prometheus` package, `dev/install-deps.sh` installs it) on 127.0.0.1.
//!
//! - `shipped_rules_and_dashboard_are_complete`: `promtool check` and `promtool test rules`
//!   pass; every alert has a summary, a description and a runbook link to a section of
//!   docs/operations.md that exists, and promtool tests that show it both firing and not
//!   firing; every metric a rule or a panel names is one the binaries describe
//!   (`pub const METRICS`); every panel reads the dashboard's one datasource variable.
//! - `every_panel_and_alert_holds_on_a_real_migration`: Prometheus scrapes a real migration
//!   (indexer and `backfill copy` as processes, live traffic with a few poison records, a
//!   gateway answering some merge-base reads 429, a Kafka broker address that does not answer)
//!   every second with the shipped rules loaded. Every panel query must return series over the
//!   run (control: a misspelled metric name is reported), every alert expression must evaluate
//!   and every rule stay healthy; the alerts a run shows (dead letters, the target left in
//!   bulk-load settings) become active and the others stay quiet, then faults make theirs
//!   active: a copy stalled by a target refusing its writes, and the indexer halted by a
//!   missing ingest pipeline (down).
//!
//! Prometheus is a child process stopped when the test ends, passing or not ([`Prometheus`]'s
//! `Drop`). A missing `prometheus` or `promtool` fails the tests (never skips them), naming the
//! command that installs it.

use cutover::kafka;
use cutover::procs::{self, Proc};
use cutover::relay::Relay;
use cutover::scenario::Scenario;
use cutover::sim::{generate, WorkloadSpec};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RULES: &str = "deploy/prometheus/cutover-alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests";
const SCRAPE_CONFIG: &str = "deploy/prometheus/prometheus.yml";
const DASHBOARD: &str = "deploy/grafana/cutover.json";
const OPERATIONS: &str = "docs/operations.md";
/// The datasource every panel and query of the dashboard reads (a dashboard variable: the
/// provisioned Prometheus, or the one chosen at import).
const DATASOURCE_UID: &str = "${DS_PROMETHEUS}";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `prometheus` or `promtool` from PATH (Debian's package puts them in /usr/bin): a missing one
/// fails the test, never skips it.
fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_default()
        .or_else(|| Some(PathBuf::from("/usr/bin").join(name)).filter(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!("{name} not found: install Debian's `prometheus` package (dev/install-deps.sh does: apt-get install prometheus); tests never skip")
    })
}

/// Runs promtool with `args` from the checkout, asserting success; returns its output.
fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("promtool")).args(args).current_dir(root()).output().expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {} failed:\n{text}", args.join(" "));
    text
}

/// A Prometheus server on a free port of 127.0.0.1 with its own temporary storage, loading
/// the shipped rules and scraping the targets [`Prometheus::set_targets`] lists, every second.
/// Killed (and its storage removed) when dropped, so no server outlives a failed test.
struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    client: reqwest::Client,
}

impl Prometheus {
    /// Starts it with the jobs `indexer` and `backfill` (the names the rules expect), their
    /// targets read from files the test writes (`file_sd`), scraped and evaluated every second.
    async fn start(name: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("{name}-prometheus"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let job = |job: &str| {
            let file = dir.join(format!("{job}.json"));
            std::fs::write(&file, "[]").expect("targets file");
            format!("  - job_name: {job}\n    file_sd_configs:\n      - files: [\"{}\"]\n        refresh_interval: 1s\n", file.display())
        };
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - \"{}\"\nscrape_configs:\n{}{}",
            root().join(RULES).display(),
            job("indexer"),
            job("backfill")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus config");
        let port = procs::free_port();
        let log = procs::log_path(&format!("{name}-prometheus"));
        let out = std::fs::File::create(&log).expect("prometheus log");
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("http client");
        let mut p = Prometheus { child, port, dir, log, client };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}: {}", std::fs::read_to_string(&p.log).unwrap_or_default());
            }
            if p.client.get(p.url("/-/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 30 s (see {})", p.log.display());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Its first rule evaluation.
        let mut loaded = false;
        while !loaded && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            loaded = p.rules().await.iter().all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001")));
        }
        p
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Lists the `/metrics` ports of a job (written atomically: Prometheus watches the file).
    fn set_targets(&self, job: &str, ports: &[u16]) {
        let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let tmp = self.dir.join(format!("{job}.json.tmp"));
        std::fs::write(&tmp, json!([{"targets": targets}]).to_string()).expect("targets");
        std::fs::rename(&tmp, self.dir.join(format!("{job}.json"))).expect("targets");
    }

    /// GET `path` of the HTTP API with `params`: the `data` of a success, else the error.
    async fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let resp = self.client.get(self.url(path)).query(params).send().await.map_err(|e| format!("{path}: {e}"))?;
        let text = resp.text().await.map_err(|e| format!("{path}: {e}"))?;
        let body: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}: {text}"))?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(format!("{}: {}", body["errorType"].as_str().unwrap_or("?"), body["error"].as_str().unwrap_or(&text))),
        }
    }

    /// An instant query now.
    async fn query(&self, expr: &str) -> Result<Value, String> {
        self.api("/api/v1/query", &[("query", expr.to_string())]).await
    }

    /// The value of an instant query that returns one series.
    async fn value(&self, expr: &str) -> Option<f64> {
        let data = self.query(expr).await.ok()?;
        data["result"].as_array().filter(|r| r.len() == 1)?[0]["value"][1].as_str()?.parse().ok()
    }

    /// A range query from `start` to now, one point a second: the series it returned.
    async fn series_since(&self, expr: &str, start: f64) -> Result<usize, String> {
        let params = [("query", expr.to_string()), ("start", format!("{start:.3}")), ("end", format!("{:.3}", now())), ("step", "1".to_string())];
        let data = self.api("/api/v1/query_range", &params).await?;
        Ok(data["result"].as_array().map_or(0, |r| r.iter().filter(|s| s["values"].as_array().is_some_and(|v| !v.is_empty())).count()))
    }

    /// Every rule of every loaded group, as `/api/v1/rules` reports them.
    async fn rules(&self) -> Vec<Value> {
        let data = self.api("/api/v1/rules", &[]).await.expect("/api/v1/rules");
        data["groups"].as_array().into_iter().flatten().flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default()).collect()
    }

    /// The active alerts named `name`: (state, labels).
    async fn alerts(&self, name: &str) -> Vec<(String, Value)> {
        let data = self.api("/api/v1/alerts", &[]).await.expect("/api/v1/alerts");
        data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| (a["state"].as_str().unwrap_or_default().to_string(), a["labels"].clone()))
            .collect()
    }

    /// Waits until an alert named `name` whose labels include `labels` is pending or firing.
    async fn await_alert(&self, name: &str, labels: &[(&str, &str)], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let active = self.alerts(name).await;
            if let Some((state, _)) = active.iter().find(|(_, l)| labels.iter().all(|(k, v)| l[*k] == *v)) {
                return state.clone();
            }
            if Instant::now() >= deadline {
                let targets = self.api("/api/v1/targets", &[]).await.unwrap_or_default();
                let health: Vec<String> = targets["activeTargets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| format!("{} {} {} {}", t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastError"]))
                    .collect();
                let rule: Vec<String> = self
                    .rules()
                    .await
                    .iter()
                    .filter(|r| r["name"] == name)
                    .map(|r| format!("health {} {} state {}", r["health"], r["lastError"], r["state"]))
                    .collect();
                panic!("alert {name} {labels:?} not active within {timeout:?}; active: {active:?}; rule: {rule:?}; targets: {health:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64()
}

/// Every query of the dashboard: (`panel "<title>" query <refId>`, expression), rows' panels
/// included.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default().to_string();
                out.push((format!("panel {:?} query {}", p["title"].as_str().unwrap_or("?"), t["refId"].as_str().unwrap_or("?")), expr));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A panel query as Grafana sends it, with its interval variables as a 1 s scrape allows.
fn as_sent(expr: &str) -> String {
    expr.replace("$__rate_interval", "20s").replace("$__interval", "1s").replace("$__range", "5m")
}

/// The panel queries that fail to evaluate or return no series since `start`, each named with
/// why: what the test fails on.
async fn panels_without_series(prom: &Prometheus, queries: &[(String, String)], start: f64) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, expr) in queries {
        match prom.series_since(&as_sent(expr), start).await {
            Ok(0) => bad.push(format!("{name}: no series during the run: {expr}")),
            Ok(_) => {}
            Err(e) => bad.push(format!("{name}: {e}: {expr}")),
        }
    }
    bad
}

/// The metric names of a PromQL expression that belong to cutover (`cutover_...`), histogram
/// series suffixes removed.
fn cutover_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("cutover_") {
        let start = i + at;
        let end = start + expr[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(expr.len() - start);
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if boundary {
            let name = &expr[start..end];
            let name = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            out.insert(name.to_string());
        }
        i = end;
    }
    out
}

/// The names of `pub const METRICS` (every metric the binaries describe), read from the
/// workspace's source wherever that table lives.
fn described_metrics() -> BTreeSet<String> {
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("target") && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(root(), &mut files);
    let text = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|t| t.split_once("pub const METRICS").map(|(_, rest)| rest.split("];").next().unwrap_or_default().to_string()))
        .expect("`pub const METRICS` in the workspace");
    text.split('"').skip(1).step_by(2).filter(|s| s.starts_with("cutover_") && !s.contains(' ')).map(str::to_string).collect()
}

/// GitHub's anchors of the headings of a Markdown file (lower case, spaces to `-`,
/// punctuation dropped).
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Per alert, how its promtool tests expect it: (a case with alerts, a case without).
fn promtool_cases() -> BTreeMap<String, (bool, bool)> {
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(RULE_TESTS)).expect("rule tests").flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|x| x == "yml" || x == "yaml")) {
        let text = std::fs::read_to_string(f).expect("rule test file");
        let mut current: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("alertname:") {
                current = Some(name.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
            } else if let (Some(rest), Some(name)) = (line.strip_prefix("exp_alerts:"), current.take()) {
                let case = cases.entry(name).or_default();
                if rest.trim() == "[]" {
                    case.1 = true;
                } else {
                    case.0 = true;
                }
            }
        }
    }
    cases
}

/// Everything that needs no migration: promtool's checks and unit tests, and that the rules,
/// their tests, the runbook and the dashboard fit together.
#[tokio::test(flavor = "multi_thread")]
async fn shipped_rules_and_dashboard_are_complete() {
    promtool(&["check", "config", SCRAPE_CONFIG]);
    promtool(&["check", "rules", RULES]);
    let mut tests: Vec<String> = std::fs::read_dir(root().join(RULE_TESTS))
        .expect("rule tests")
        .flatten()
        .map(|e| format!("{RULE_TESTS}/{}", e.file_name().to_string_lossy()))
        .collect();
    tests.sort();
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let out = promtool(&args);
    assert!(out.contains("SUCCESS") && !out.contains("FAILED"), "{out}");

    // The rules as Prometheus loads them.
    let prom = Prometheus::start(&cutover::unique("obs-static")).await;
    let rules = prom.rules().await;
    drop(prom);
    let alerts: Vec<&Value> = rules.iter().filter(|r| r["type"] == "alerting").collect();
    let names: Vec<&str> = alerts.iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(names.len() >= 15, "{} alerts loaded: {names:?}", names.len());
    let runbook = anchors(&read(OPERATIONS));
    let cases = promtool_cases();
    let described = described_metrics();
    assert!(described.len() > 20 && described.contains("cutover_indexer_lag"), "METRICS read: {described:?}");
    let mut problems = Vec::new();
    for a in &alerts {
        let name = a["name"].as_str().unwrap_or_default();
        for key in ["summary", "description", "runbook_url"] {
            if a["annotations"][key].as_str().is_none_or(|s| s.len() < 10) {
                problems.push(format!("{name}: no {key}"));
            }
        }
        if !matches!(a["labels"]["severity"].as_str(), Some("critical" | "warning")) {
            problems.push(format!("{name}: severity must be critical or warning"));
        }
        match a["annotations"]["runbook_url"].as_str().and_then(|u| u.split_once('#')) {
            Some((doc, anchor)) if doc.ends_with(OPERATIONS) && runbook.contains(anchor) => {}
            _ => problems.push(format!("{name}: runbook_url must link a section of {OPERATIONS}: {}", a["annotations"]["runbook_url"])),
        }
        match cases.get(name) {
            Some((true, true)) => {}
            other => problems.push(format!("{name}: promtool tests must show it firing and not firing (firing, not firing) = {other:?}")),
        }
        let expr = a["query"].as_str().unwrap_or_default();
        for m in cutover_metrics(expr).difference(&described) {
            problems.push(format!("{name}: names {m}, which no binary describes (METRICS): {expr}"));
        }
    }
    // The dashboard: one datasource, every query on known metrics.
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let queries = panel_queries(&dashboard);
    assert!(queries.len() >= 20, "{} panel queries", queries.len());
    fn datasources(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(ds) = m.get("datasource") {
                    out.push(ds["uid"].as_str().unwrap_or("(none)").to_string());
                }
                m.values().for_each(|x| datasources(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| datasources(x, out)),
            _ => {}
        }
    }
    let mut uids = Vec::new();
    datasources(&dashboard["panels"], &mut uids);
    assert!(uids.len() > queries.len() && uids.iter().all(|u| u == DATASOURCE_UID), "every panel and query reads {DATASOURCE_UID}: {uids:?}");
    assert!(
        dashboard["templating"]["list"].as_array().into_iter().flatten().any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "the dashboard defines its datasource variable"
    );
    for (name, expr) in &queries {
        if expr.trim().is_empty() {
            problems.push(format!("{name}: empty query"));
        }
        for m in cutover_metrics(expr).difference(&described) {
            problems.push(format!("{name}: names {m}, which no binary describes (METRICS): {expr}"));
        }
    }
    // The runbook explains every panel and every alert.
    let ops = read(OPERATIONS);
    for title in queries.iter().filter_map(|(n, _)| n.split('"').nth(1)) {
        if !ops.contains(title) {
            problems.push(format!("panel {title:?} is not explained in {OPERATIONS}"));
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));

    // Controls of the checks themselves.
    assert_eq!(
        cutover_metrics("sum(rate(cutover_bulk_latency_seconds_bucket[5m])) / x_cutover_y"),
        BTreeSet::from(["cutover_bulk_latency_seconds".to_string()])
    );
    assert!(!described.contains("cutover_indexer_lagg"), "a misspelled name is not described");
    assert!(anchors("## CutoverIndexerDown\n### What each panel answers").contains("what-each-panel-answers"));
}

/// Produces `(key, payload)` records to the topic.
async fn produce_records(sc: &Scenario, payloads: &[(&str, &[u8])]) {
    let producer = kafka::producer(&sc.s.kafka);
    for (key, payload) in payloads {
        kafka::produce(&producer, &sc.topic, Some(key.as_bytes()), payload, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_panel_and_alert_holds_on_a_real_migration() {
    let t0 = Instant::now();
    tool("prometheus");
    let mut sc = Scenario::new("obs", 2).await;
    let cmds = generate(&WorkloadSpec::new(&sc.legacy_index, 1200, 3000, 34));
    // History: in the topic and applied by the legacy indexer, for the copy to find.
    sc.live(&cmds[..2000]).await;
    // A gateway in front of the target for both writers (it answers some _mget 429 below).
    let relay = Relay::start(&sc.target_url);
    sc.writers_target_url = Some(relay.url().to_string());
    let prom = Prometheus::start(&sc.topic).await;
    let start = now();

    // The indexer, told of a second broker that does not answer (a broker down): Kafka errors.
    // (Sparse connections off: the client connects to every broker it knows, so it meets the
    // dead one for sure instead of when it happens to pick it.)
    let mut args = sc.indexer_args(&["--batch-max-docs", "100", "-X", "enable.sparse.connections=false"]);
    let at = args.iter().position(|a| a == "--brokers").expect("--brokers") + 1;
    args[at] = format!("{},127.0.0.1:{}", sc.s.kafka, procs::free_port());
    let indexer = Proc::start("indexer", &format!("{}-indexer", sc.topic), &args);
    let mut backfill_ports = Vec::new();
    prom.set_targets("indexer", &[indexer.metrics_port]);
    relay.throttle("/_mget", 10);
    // The copy, slowed down so that it is scraped for a while.
    let dir = std::env::temp_dir().join(format!("{}-checkpoints", sc.topic));
    let failures = dir.join("failures.jsonl");
    let copy_args = |sc: &Scenario, name: &str| {
        let mut a = sc.backfill_args(&dir.join(name), &["--batch-size", "50", "--max-docs-per-sec", "60"]);
        a.extend(["--failures-file".to_string(), failures.display().to_string()]);
        a
    };
    let backfill = Proc::start("backfill", &format!("{}-copy", sc.topic), &copy_args(&sc, "first"));
    backfill_ports.push(backfill.metrics_port);
    prom.set_targets("backfill", &backfill_ports);

    // Live traffic while both run, with records the indexer must dead-letter.
    produce_records(&sc, &[("bad-1", b"{\"op\": \"upsert\", "), ("bad-2", b"[1, 2]")]).await;
    for chunk in cmds[2000..].chunks(250) {
        sc.live(chunk).await;
    }
    let status = backfill.wait(Duration::from_secs(120));
    assert!(status.success(), "backfill copy exited with {status} (see target/test-logs)");
    Scenario::eventually("the indexer caught up, the target still in bulk-load settings", Duration::from_secs(120), || {
        indexer.metric("cutover_indexer_caught_up") == Some(1.0) && indexer.metric("cutover_indexer_target_bulk_load") == Some(1.0)
    })
    .await;
    assert!(relay.refused() > 0, "the gateway answered some merge-base reads 429");
    eprintln!("migration ran for {:.0} s (since the start: {:.0} s)", now() - start, t0.elapsed().as_secs_f64());

    // The alerts this run must show, and those it must not.
    let state = prom.await_alert("CutoverDeadLetters", &[("kind", "invalid_json")], Duration::from_secs(30)).await;
    assert_eq!(state, "firing", "CutoverDeadLetters has no `for`");
    prom.await_alert("CutoverDeadLetters", &[("kind", "not_an_object")], Duration::from_secs(10)).await;
    let state = prom.await_alert("CutoverTargetLeftInBulkLoad", &[], Duration::from_secs(30)).await;
    assert_eq!(state, "pending", "true once the copy is gone, for 30m before it fires");
    for quiet in [
        "CutoverIndexerDown",
        "CutoverIndexerHalted",
        "CutoverBackfillFailedDocuments",
        "CutoverIndexerOffsetGap",
        "CutoverPoisonBreakerTripped",
        "CutoverInvariantViolations",
        "CutoverBackfillStalled",
    ] {
        assert_eq!(prom.alerts(quiet).await, vec![], "{quiet} must not be active after a healthy run");
    }

    // Every panel query returns series over the run; control: a misspelled metric is reported.
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut queries = panel_queries(&dashboard);
    let (control_name, control_expr) = ("control query".to_string(), "max by (topic, partition) (cutover_indexer_lagg)".to_string());
    queries.push((control_name.clone(), control_expr));
    let bad = panels_without_series(&prom, &queries, start).await;
    assert!(bad.iter().any(|b| b.starts_with(&control_name)), "the check reports a query on a metric that does not exist: {bad:?}");
    let bad: Vec<&String> = bad.iter().filter(|b| !b.starts_with(&control_name)).collect();
    assert!(bad.is_empty(), "{} of {} panel queries fail:\n{}", bad.len(), queries.len() - 1, bad.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));

    // The copy's own gauges: the target's gc_deletes (48h, as create-index set it), and the
    // documents expected, which a whole copy scans.
    let copy = format!("instance=\"127.0.0.1:{}\"", backfill_ports[0]);
    let last = |m: &str| format!("max_over_time({m}{{{copy}}}[10m])");
    assert_eq!(prom.value(&last("cutover_backfill_target_gc_deletes_seconds")).await, Some(48.0 * 3600.0));
    let expected = prom.value(&last("cutover_backfill_docs_expected")).await.unwrap_or_default();
    let legacy = backfill::copy::count(&sc.legacy_es(), &sc.legacy_index).await.expect("legacy count") as f64;
    assert!((legacy * 0.75..=legacy * 1.25).contains(&expected), "documents expected {expected}, the legacy index holds {legacy} after the live traffic");
    // (The last scrape of the scanned counter may come before the copy's last batch.)
    let scanned = prom.value(&last("cutover_backfill_docs_scanned_total")).await.unwrap_or_default();
    assert!(scanned > 0.0 && scanned <= expected, "scanned {scanned} of {expected} expected");
    let started = prom.value(&last("cutover_backfill_start_time_seconds")).await.unwrap_or_default();
    assert!((start - 60.0..now()).contains(&started), "the copy's start time {started} (Prometheus started at {start})");

    // Every alert expression evaluates, and every rule has been evaluated without error.
    let rules = prom.rules().await;
    let mut broken = Vec::new();
    for r in &rules {
        let (name, expr) = (r["name"].as_str().unwrap_or("?"), r["query"].as_str().unwrap_or_default());
        if let Err(e) = prom.query(expr).await {
            broken.push(format!("{name}: {e}: {expr}"));
        }
        if r["health"] != "ok" {
            broken.push(format!("{name}: health {} ({})", r["health"], r["lastError"]));
        }
    }
    assert!(broken.is_empty(), "alert expressions:\n{}", broken.join("\n"));
    // Control: a broken expression is refused by the same query.
    assert!(prom.query("max by (job) (cutover_indexer_lag").await.is_err(), "an expression that does not parse is an error");

    // Control of the stalled alert below: while the healthy copy ran, there were moments when it
    // was up and its scan rate above 0 (the negation of the alert's expression).
    let scanning = format!("up{{job=\"backfill\", {copy}}} == 1 and on (instance) rate(cutover_backfill_docs_scanned_total{{{copy}}}[5m]) > 0");
    assert_eq!(prom.series_since(&scanning, start).await, Ok(1), "the healthy copy was seen scanning: {scanning}");

    // Fault: a copy stalled by a target refusing its writes (429 on every bulk request: retried
    // forever, nothing resolved, nothing counted as scanned). A healthy copy clears the
    // expression within two scrapes of its first batch; this one stays pending.
    relay.throttle("/_bulk", u64::MAX);
    let stalled = Proc::start("backfill", &format!("{}-stalled", sc.topic), &copy_args(&sc, "second"));
    let stalled_at = format!("127.0.0.1:{}", stalled.metrics_port);
    backfill_ports.push(stalled.metrics_port);
    prom.set_targets("backfill", &backfill_ports);
    prom.await_alert("CutoverBackfillStalled", &[("instance", &stalled_at)], Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(stalled.metric("cutover_retries_total{what=\"bulk\"}").unwrap_or(0.0) > 0.0, "the copy retries its writes");
    let state = prom.await_alert("CutoverBackfillStalled", &[("instance", &stalled_at)], Duration::from_secs(1)).await;
    assert_eq!(state, "pending", "still stalled, for 10m before it fires");
    stalled.kill9();
    relay.throttle("/_bulk", 0);

    // Fault: the indexer halts (exit 4) on a target naming an ingest pipeline it lacks.
    let pipeline = cutover::unique("obs-missing");
    let settings = format!("/{}/_settings", sc.target_index);
    let target = sc.target_es();
    target.ok(cluster::Method::Put, &settings, Some(&json!({"index.default_pipeline": pipeline}))).await.expect("force the pipeline");
    let fresh: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("halt-{i}"),
                json!({"op": "upsert", "id": format!("halt-{i}"), "index": sc.legacy_index, "version": 1, "doc": {"title": "t"}}).to_string().into_bytes(),
            )
        })
        .collect();
    produce_records(&sc, &fresh.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect::<Vec<_>>()).await;
    let status = indexer.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(4), "the indexer halts on the missing pipeline");
    let state = prom.await_alert("CutoverIndexerDown", &[("job", "indexer")], Duration::from_secs(30)).await;
    assert_eq!(state, "pending", "down, for 2m before it fires");
    target.ok(cluster::Method::Put, &settings, Some(&json!({"index.default_pipeline": null}))).await.expect("remove the pipeline");
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
    sc.cleanup().await;
    eprintln!("observability test took {:.0} s", t0.elapsed().as_secs_f64());
}
