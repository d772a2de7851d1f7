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
