//! A real HTTP relay in front of a cluster, for tests of what stands between a writer and
//! Elasticsearch (a gateway, a proxy with rules of its own).
//!
//! [`Relay::start`] listens on a free port of 127.0.0.1 and forwards every request (method,
//! path and query, headers but the hop-by-hop ones and `Host`, body) to the upstream URL,
//! streaming back the upstream's status, headers and body. [`Relay::refuse`] turns it into a
//! gateway with a rule against a path (e.g. bulk writes): every request whose path ends in
//! `/_bulk` is answered 400 with an HTML page, as such gateways answer, never an Elasticsearch
//! error body; everything else still passes; [`Relay::throttle`] answers the next requests to a path 429, as
//! a busy cluster does. Nothing is mocked: behind the relay is the real cluster.
//!
//! The relay runs on a runtime of its own thread, so a test that blocks its own runtime (e.g.
//! [`crate::procs::Proc::wait`]) never stalls it. Request bodies are read whole before they are
//! forwarded (or refused, as a gateway that inspected them would); answers are streamed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The page a refused bulk request gets (content type `text/html`).
pub const REFUSAL_PAGE: &str = "<html><body>400 Bad Request: request blocked by gateway rule</body></html>";

/// What a busy cluster answers a throttled request (status 429).
pub const BUSY_BODY: &str = r#"{"error":{"type":"es_rejected_execution_exception","reason":"rejected execution (queue capacity 1000) [relay]"},"status":429}"#;

/// What the handler shares with the test.
struct Shared {
    /// The upstream base URL, without a trailing `/`.
    upstream: String,
    client: reqwest::Client,
    /// The path ending the gateway refuses ([`Relay::refuse`]), if any.
    refuse: std::sync::Mutex<Option<String>>,
    /// The path ending, and how many requests to it are still to answer 429 ([`Relay::throttle`]).
    throttle: std::sync::Mutex<(String, u64)>,
    refused: AtomicU64,
    forwarded: AtomicU64,
}

/// A running relay; stopped (its connections closed) when dropped.
pub struct Relay {
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay to `upstream` (e.g. `http://127.0.0.1:9201`) on a free port of
    /// 127.0.0.1, passing everything.
    pub fn start(upstream: &str) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("relay address"));
        // No proxy from the environment, no redirects followed: the answer goes back as it came.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("relay's upstream client");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            refuse: std::sync::Mutex::new(None),
            throttle: std::sync::Mutex::new((String::new(), 0)),
            refused: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(relay).with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("relay runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("relay listener");
                    tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    let _ = stopped.await;
                });
                // Dropping the runtime ends every connection still open.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("relay thread");
        Relay { url, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// The relay's base URL (`http://127.0.0.1:<port>`): what a writer gets as `--target-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request whose path ends in `path_end` (`/_bulk`, `/_settings`) is answered 400 with
    /// [`REFUSAL_PAGE`] (a gateway rule), until [`Relay::pass`].
    pub fn refuse(&self, path_end: &str) {
        *self.shared.refuse.lock().expect("relay state") = Some(path_end.to_string());
    }

    /// Lifts the rule of [`Relay::refuse`]: everything passes again.
    pub fn pass(&self) {
        *self.shared.refuse.lock().expect("relay state") = None;
    }

    /// The next `n` requests whose path ends in `path_end` (`/_mget`, `/_settings`) are answered
    /// 429 with Elasticsearch's rejection body (`es_rejected_execution_exception`), as a busy
    /// cluster answers them.
    pub fn throttle(&self, path_end: &str, n: u64) {
        *self.shared.throttle.lock().expect("relay state") = (path_end.to_string(), n);
    }

    /// How many requests were refused so far (400s and 429s).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// How many requests were forwarded and answered by the upstream so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1), plus
/// `Host` (the upstream's is set by the client) and `Content-Length` (set from the body sent).
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// `headers` without the hop-by-hop ones (those listed and those `Connection` names) and
/// without `extra`.
fn end_to_end(headers: &HeaderMap, extra: &[HeaderName]) -> HeaderMap {
    let named: Vec<String> =
        headers.get_all(header::CONNECTION).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(|t| t.trim().to_ascii_lowercase()).collect();
    let mut out = headers.clone();
    for name in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        out.remove(name);
    }
    for name in extra {
        out.remove(name);
    }
    out
}

/// A plain-text answer of the relay itself.
fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

/// The only handler: refuse (a bulk request while refusing) or forward.
async fn relay(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("relay: reading the request body: {e}")),
    };
    let busy = {
        let mut throttle = shared.throttle.lock().expect("relay state");
        let (path_end, left) = &mut *throttle;
        let busy = *left > 0 && parts.uri.path().ends_with(path_end.as_str());
        *left -= u64::from(busy);
        busy
    };
    if busy {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::TOO_MANY_REQUESTS, [(header::CONTENT_TYPE, "application/json")], BUSY_BODY).into_response();
    }
    let refused = shared.refuse.lock().expect("relay state").as_deref().is_some_and(|end| parts.uri.path().ends_with(end));
    if refused {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/html")], REFUSAL_PAGE).into_response();
    }
    let target = format!("{}{}", shared.upstream, parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let headers = end_to_end(&parts.headers, &[header::HOST, header::CONTENT_LENGTH]);
    let answer = match shared.client.request(parts.method, &target).headers(headers).body(body).send().await {
        Ok(a) => a,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("relay: no answer from {target}: {e}")),
    };
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let status = answer.status();
    let headers = end_to_end(answer.headers(), &[]);
    let chunks = futures::stream::try_unfold(answer, |mut a| async move { Ok::<_, reqwest::Error>(a.chunk().await?.map(|c| (c, a))) });
    let mut out = Response::new(Body::from_stream(chunks));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}
