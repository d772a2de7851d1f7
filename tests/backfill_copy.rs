//! The full path at realistic size: 200 000 generated legacy documents (2 000 distinct tag keys,
//! custom routing on a tenth, 3 shards) copied from 7.17 to 9.x, then verified exactly and with
//! the query parity suite. `BACKFILL_E2E_DOCS` overrides the size for quick local runs.

mod backfill_support;

use backfill_support::*;
use cutover::{unique, Services};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_200k_documents_and_verifies_exactly() {
    let s = Services::require().await;
    let (legacy, target) = (s.legacy(), s.target());
    let docs = std::env::var("BACKFILL_E2E_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let spec = Spec { docs, shards: 3, keys: 2_000 };
    let source = unique("bf-copy-src");
    let dest = unique("bf-copy-dst");
    let t = std::time::Instant::now();
    load_legacy(&legacy, &source, &spec).await;
    eprintln!("loaded {docs} legacy docs in {:.1}s", t.elapsed().as_secs_f64());

    create_target(&legacy, &target, &source, &dest).await;
    // Idempotent: the same definition again is a no-op.
    let again = backfill::CreateIndexConfig {
        source_index: source.clone(),
        target_index: dest.clone(),
        tags: Default::default(),
        gc_deletes: "48h".into(),
        extra_settings: [("index.number_of_replicas".to_string(), serde_json::json!(0))].into_iter().collect(),
        drop_settings: Vec::new(),
        copy_pipelines: false,
    };
    assert_eq!(backfill::create_index(&legacy, &target, &again).await.unwrap(), backfill::CreateOutcome::AlreadyExists);

    let dir = scratch("copy");
    let cfg = copy_config(&source, &dest, &dir);
    let summary = backfill::copy(&legacy, &target, cfg, CancellationToken::new()).await.expect("copy");
    eprintln!("{summary}");
    assert_eq!(summary.method, "pit");
    assert_eq!(summary.slices, 4, "default slices = primary shards (3), at least 4");
    assert_eq!(summary.scanned, docs as u64);
    assert_eq!(summary.written, docs as u64);
    assert_eq!((summary.superseded, summary.failed), (0, 0));
    assert_eq!(backfill::copy::count(&target, &dest).await.unwrap(), docs as u64);

    let mut vcfg = verify_config(&source, &dest);
    vcfg.parity = true;
    let t = std::time::Instant::now();
    let report = backfill::verify(&legacy, &target, &vcfg).await.expect("verify");
    eprintln!("verify took {:.1}s: {}", t.elapsed().as_secs_f64(), serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report.legacy_docs_scanned, docs as u64);
    assert_eq!(report.target_docs_scanned, docs as u64);
    let parity = report.parity.as_ref().unwrap();
    assert!(parity.compared >= 20, "only {} parity queries compared: {parity:?}", parity.compared);
    assert!(parity.compared_by_ids >= 15, "only {} parity queries compared by ids: {parity:?}", parity.compared_by_ids);
    assert!(parity.mismatches.is_empty(), "{:?}", parity.mismatches);
    assert!(report.converged, "{report:?}");

    // A second copy run of the same job finds it complete and rescans nothing.
    let summary = backfill::copy(&legacy, &target, copy_config(&source, &dest, &dir), CancellationToken::new()).await.unwrap();
    assert_eq!(summary.scanned, 0);
    assert!(summary.slices_assigned.iter().all(|s| summary.slices_already_done.contains(s)), "{summary:?}");

    cleanup(&legacy, &source).await;
    cleanup(&target, &dest).await;
    let _ = std::fs::remove_dir_all(&dir);
}
