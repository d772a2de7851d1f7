//! Walking every hit of a search with a scroll: the simplest full read of a quiet index, for
//! small side indices (tombstones) and for tests. The backfill's resumable, sliced scan of a
//! live index is `backfill::scan`, not this.

use crate::client::enc;
use crate::{Es, EsError};
use elasticsearch::http::Method;
use serde_json::{json, Value};

/// Calls `f` on every hit of `body` (a search body; `sort: ["_doc"]` is the cheap order) over
/// `index`, page by page, and clears the scroll. Returns `Ok(false)` when the index does not
/// exist; any other error status is an error.
pub async fn for_each_hit(es: &Es, index: &str, body: &Value, mut f: impl FnMut(&Value)) -> Result<bool, EsError> {
    let path = format!("/{}/_search?scroll=1m", enc(index));
    let (status, mut page) = es.request(Method::Post, &path, Some(body)).await?;
    if status == 404 {
        return Ok(false);
    }
    if !(200..300).contains(&status) {
        return Err(EsError::status_of("POST", &path, status, &page));
    }
    loop {
        let hits = page["hits"]["hits"].as_array().map(Vec::as_slice).unwrap_or_default();
        if hits.is_empty() {
            break;
        }
        hits.iter().for_each(&mut f);
        let scroll_id = page["_scroll_id"].as_str().unwrap_or_default().to_string();
        // Sent once: a retried continuation the cluster had already served would skip a page.
        page = es.ok_once(Method::Post, "/_search/scroll", Some(&json!({"scroll": "1m", "scroll_id": scroll_id}))).await?;
    }
    if let Some(sid) = page["_scroll_id"].as_str() {
        let _ = es.request(Method::Delete, "/_search/scroll", Some(&json!({"scroll_id": sid}))).await;
    }
    Ok(true)
}
