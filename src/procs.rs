//! Running cutover's binaries as real processes, so tests can SIGTERM and kill -9 them.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary next to the running test (`target/<profile>/<name>`).
/// `dev/test.sh` builds every binary before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` (dev/test.sh does)", path.display());
    path
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Where a test process's logs go: `target/test-logs/<name>.log`.
pub fn log_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).and_then(|d| d.parent()).expect("target").join("test-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir.join(format!("{name}.log"))
}

/// What a test process has logged so far (empty when it has no log yet).
pub fn log_of(name: &str) -> String {
    std::fs::read_to_string(log_path(name)).unwrap_or_default()
}

/// Creates (truncates) a test process's log file.
pub fn log_file(name: &str) -> std::fs::File {
    std::fs::File::create(log_path(name)).expect("log file")
}

/// A running binary with its metrics port.
pub struct Proc {
    pub child: Child,
    pub metrics_port: u16,
    pub name: String,
}

impl Proc {
    /// Starts `binary` with `args` plus `--metrics-addr 127.0.0.1:<free port>`; logs go to
    /// `target/test-logs/<name>.log`.
    pub fn start(binary: &str, name: &str, args: &[String]) -> Proc {
        let log = log_file(name);
        Self::spawn(binary, name, args, log.try_clone().expect("log").into(), log.into())
    }

    /// Spawns `binary` with `args` and `--metrics-addr` on a free port.
    fn spawn(binary: &str, name: &str, args: &[String], stdout: Stdio, stderr: Stdio) -> Proc {
        let metrics_port = free_port();
        let child = Command::new(bin(binary))
            .args(args)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .env("RUST_LOG", "info,rdkafka=warn")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        Proc { child, metrics_port, name: name.to_string() }
    }

    /// [`Proc::start`], but stderr, where the logs go, is a pipe whose reader goes away once it
    /// has read the first line (a log shipper that died): every later log line meets a broken
    /// pipe. stdout is a pipe nobody reads from the start (`| head` that has had its lines):
    /// every result line meets a broken pipe too.
    pub fn start_then_lose_the_log_reader(binary: &str, name: &str, args: &[String]) -> Proc {
        use std::io::BufRead;
        let mut p = Self::spawn(binary, name, args, Stdio::piped(), Stdio::piped());
        drop(p.child.stdout.take());
        let mut first = String::new();
        std::io::BufReader::new(p.child.stderr.take().expect("stderr pipe")).read_line(&mut first).expect("read the first log line");
        assert!(!first.is_empty(), "{binary} wrote no log line before exiting");
        // The reader (and with it the pipe's only read end) is dropped here.
        p
    }

    /// Sends a signal (e.g. "TERM", "KILL") with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().expect("kill").success();
        assert!(ok || sig == "KILL", "kill -{sig} failed");
    }

    /// kill -9, and reap.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// Waits for exit; panics (after killing it) on timeout.
    pub fn wait(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {timeout:?} (see target/test-logs/{}.log)", self.name, self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The value of a counter/gauge from the process's `/metrics`, summed over the series that
    /// `selector` matches: a name (`cutover_indexer_consumed_total`: every label set) or a name
    /// with labels (`cutover_indexer_records_total{outcome="applied"}`: the series carrying
    /// those labels); None when the endpoint is not up.
    pub fn metric(&self, selector: &str) -> Option<f64> {
        let body = http_get(self.metrics_port, "/metrics")?;
        Some(metric_sum(&body, selector))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A tiny HTTP/1.0 GET on 127.0.0.1 (status line and body), for metrics and readiness.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Runs `dev/services.sh ARGS` from the checkout (fault tests use the user's script).
pub fn services(args: &[&str]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash").arg(root.join("dev/services.sh")).args(args).status().expect("services.sh");
    assert!(status.success(), "dev/services.sh {args:?} failed");
}

/// The sum of the samples of `body` (Prometheus text format) that `selector` matches (see
/// [`Proc::metric`]).
pub fn metric_sum(body: &str, selector: &str) -> f64 {
    let (name, labels) = match selector.split_once('{') {
        Some((n, rest)) => (n, rest.trim_end_matches('}').split(',').filter(|l| !l.is_empty()).collect::<Vec<_>>()),
        None => (selector, Vec::new()),
    };
    body.lines()
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{')))
        .filter(|l| {
            labels.iter().all(|want| l.split_once('{').is_some_and(|(_, rest)| rest.split('}').next().unwrap_or("").split(',').any(|have| have == *want)))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn selects_series_by_name_and_labels() {
        let body = "# TYPE x counter\nx_total{outcome=\"applied\"} 3\nx_total{outcome=\"noop\"} 2\nx_totals 9\ny 1\n";
        assert_eq!(metric_sum(body, "x_total"), 5.0);
        assert_eq!(metric_sum(body, "x_total{outcome=\"applied\"}"), 3.0);
        assert_eq!(metric_sum(body, "x_total{outcome=\"dead\"}"), 0.0);
        assert_eq!(metric_sum(body, "y"), 1.0);
    }
}
