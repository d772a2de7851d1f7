//! The ground every other test stands on: the real Kafka broker and both real clusters answer,
//! and each is the version the project claims.

use cutover::{kafka, unique, Services};
use rdkafka::Message;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn kafka_round_trip() {
    let s = Services::require().await;
    let topic = unique("roundtrip");
    kafka::create_topic(&s.kafka, &topic, 2).await;
    let p = kafka::producer(&s.kafka);
    for i in 0..20 {
        let key = format!("k{i}");
        kafka::produce(&p, &topic, Some(key.as_bytes()), format!("v{i}").as_bytes(), &[("h", b"x")]).await;
    }
    let got = kafka::read_all(&s.kafka, &topic, 20, Duration::from_secs(30));
    assert_eq!(got.len(), 20);
    let mut payloads: Vec<String> = got.iter().map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap()).collect();
    payloads.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(payloads, expected);
    assert!(got.iter().all(|m| kafka::header(m, "h").as_deref() == Some("x")));
}

async fn index_bulk_search(es: &cluster::Es) {
    let index = unique("foundation");
    es.ok(elasticsearch::http::Method::Put, &format!("/{index}"), Some(&json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0}})))
        .await
        .expect("create index");
    let mut body = String::new();
    for i in 0..50 {
        body.push_str(&format!("{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{i}\"}}}}\n{{\"n\":{i},\"word\":\"w{}\"}}\n", i % 5));
    }
    let resp = es.bulk(body.into(), false).await.expect("bulk");
    assert_eq!(resp["errors"], Value::Bool(false), "{resp}");
    es.refresh(&index).await.expect("refresh");
    let hits = es
        .ok(elasticsearch::http::Method::Post, &format!("/{index}/_search"), Some(&json!({"size": 100, "query": {"term": {"word.keyword": "w3"}}})))
        .await
        .expect("search");
    let mut ids: Vec<u32> = hits["hits"]["hits"].as_array().unwrap().iter().map(|h| h["_id"].as_str().unwrap().parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..50).filter(|i| i % 5 == 3).collect::<Vec<_>>());
}

#[tokio::test]
async fn legacy_cluster_writes_and_searches() {
    let s = Services::require().await;
    index_bulk_search(&s.legacy()).await;
}

#[tokio::test]
async fn target_cluster_writes_and_searches() {
    let s = Services::require().await;
    index_bulk_search(&s.target()).await;
}

#[tokio::test]
async fn clusters_are_the_claimed_majors() {
    let s = Services::require().await;
    let legacy = cluster::version::detect(&s.legacy()).await.expect("legacy version");
    let target = cluster::version::detect(&s.target()).await.expect("target version");
    assert_eq!(legacy.major, 7, "legacy is {legacy}");
    assert!(target.major == 9 || target.major == 8, "target is {target}");
    assert_eq!(target.major, 9, "target is {target} (9.x expected on this machine)");
}

/// Requests and responses that went through [`recording_proxy`].
type Recorded = std::sync::Arc<std::sync::Mutex<(Vec<u8>, Vec<u8>)>>;

/// A TCP relay on 127.0.0.1 in front of the real cluster at `upstream` (host:port) that keeps
/// what went each way: the wire as the cluster saw it.
async fn recording_proxy(upstream: String) -> (String, Recorded) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let recorded = Recorded::default();
    let rec = recorded.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let ((client_read, client_write), (server_read, server_write)) = (client.into_split(), server.into_split());
            tokio::spawn(pump(client_read, server_write, rec.clone(), true));
            tokio::spawn(pump(server_read, client_write, rec.clone(), false));
        }
    });
    (url, recorded)
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, rec: Recorded, request: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        {
            let mut r = rec.lock().unwrap();
            if request { &mut r.0 } else { &mut r.1 }.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// The header `name` (lower case) of every HTTP message in `wire`, in order.
fn header_values(wire: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(wire).to_lowercase();
    text.split("\r\n").filter_map(|line| line.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string())).collect()
}

/// By default the clients neither compress their requests nor ask for compressed responses
/// (`Accept-Encoding: identity`): Elasticsearch otherwise gzips every response, scan pages of
/// the live legacy cluster above all, at its CPU's cost. `--legacy-compression` /
/// `--target-compression` turn both on for slow links, and the client reads the same answer.
/// Checked on the wire between the client and the real cluster; the default-off half is the
/// control (the HTTP client asked for gzip by itself before, and the cluster complied).
#[tokio::test]
async fn http_compression_is_off_unless_asked_for() {
    let s = Services::require().await;
    let index = unique("compression");
    let es = s.legacy();
    let docs: String = (0..200).map(|i| format!("{{\"index\":{{\"_id\":\"{i}\"}}}}\n{{\"text\":\"document number {i} with some words\"}}\n")).collect();
    es.raw(cluster::Method::Post, &format!("/{index}/_bulk?refresh=true"), Some(docs.into()), "application/x-ndjson").await.unwrap();
    let upstream = s.legacy_url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut answers = Vec::new();
    for compression in [false, true] {
        let (url, recorded) = recording_proxy(upstream.clone()).await;
        let client = cluster::Es::connect(&cluster::ClusterConfig { compression, ..cluster::ClusterConfig::plain(url) }).unwrap();
        let (status, answer) = client.search(&format!("/{index}/_search"), &json!({"size": 200, "sort": ["_doc"]})).await.unwrap();
        assert_eq!(status, 200);
        answers.push(answer["hits"]["hits"].clone());
        let (requests, responses) = recorded.lock().unwrap().clone();
        let (asked, got, sent) =
            (header_values(&requests, "accept-encoding"), header_values(&responses, "content-encoding"), header_values(&requests, "content-encoding"));
        if compression {
            assert!(asked.iter().all(|v| v.contains("gzip")) && !asked.is_empty(), "asks for gzip: {asked:?}");
            assert_eq!(got, ["gzip"], "the cluster gzipped its response");
            assert_eq!(sent, ["gzip"], "the request body was gzipped");
        } else {
            assert_eq!(asked, ["identity"], "asks for no compression");
            assert!(got.is_empty(), "the response came uncompressed: {got:?}");
            assert!(sent.is_empty(), "the request body went uncompressed: {sent:?}");
        }
    }
    assert_eq!(answers[0].as_array().map(Vec::len), Some(200));
    assert_eq!(answers[0], answers[1], "the same answer either way");
}
