//! A legacy world to migrate: a deterministic command workload, the legacy indexer that applies
//! it to the old cluster (as the team's existing indexer does), and readers that compare the two
//! clusters document by document.
//!
//! By default the legacy indexer here writes with external versions (`_version` = the
//! command's version), applies merges with [`schema::MergePatch::apply_legacy`] and treats a
//! merge of an absent document as a no-op, like the update API without upsert. Each way real
//! legacy indexers differ is an option of [`LegacyBehaviour`]: merges that create the document
//! (`doc_as_upsert`), null-value records as deletes (compacted topics), the version kept in
//! `_source` (internal versioning), a transactional producer, tag values over Lucene's term
//! limit (kept in `_source` thanks to `ignore_above`).

use cluster::Es;
use elasticsearch::http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schema::{LegacyVersionSource, MergePatch, TagRewrite};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// `GET /<index>/_doc/<id>` (with routing): `Some((version, _source))` or `None` when absent.
/// A test reader: the binaries read documents only in bulk (`Es::mget`).
pub async fn get_doc(es: &Es, index: &str, id: &str, routing: Option<&str>) -> Result<Option<(u64, Map<String, Value>)>, cluster::EsError> {
    let enc = cluster::client::enc;
    let mut path = format!("/{}/_doc/{}", enc(index), enc(id));
    if let Some(r) = routing {
        path.push_str(&format!("?routing={}", enc(r)));
    }
    let (status, body) = es.request(Method::Get, &path, None).await?;
    match status {
        404 => Ok(None),
        200 if body["found"] == Value::Bool(true) => {
            let version = body["_version"].as_u64().unwrap_or(0);
            let source = body["_source"].as_object().cloned().unwrap_or_default();
            Ok(Some((version, source)))
        }
        200 => Ok(None),
        _ => Err(cluster::EsError::status_of("GET", &path, status, &body)),
    }
}

/// Shape of a generated workload.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub seed: u64,
    /// Distinct document ids.
    pub docs: usize,
    /// Commands to generate.
    pub commands: usize,
    /// Distinct tag keys.
    pub tag_keys: usize,
    /// The (legacy) index commands name.
    pub index: String,
    /// Percentages of upserts and merges (the rest are deletes).
    pub upsert_pct: u32,
    pub merge_pct: u32,
    /// Deletes of documents without custom routing become null-value records keyed by id
    /// (Kafka's compaction convention; a null value carries no routing).
    pub null_deletes: bool,
    /// Percentage of upserts and merges that carry a tag value over 32 KiB (some of them
    /// multi-byte), beyond Lucene's 32,766-byte term limit.
    pub long_tag_pct: u32,
}

impl WorkloadSpec {
    /// A small mixed workload.
    pub fn new(index: &str, docs: usize, commands: usize, seed: u64) -> Self {
        WorkloadSpec { seed, docs, commands, tag_keys: 200, index: index.to_string(), upsert_pct: 50, merge_pct: 35, null_deletes: false, long_tag_pct: 0 }
    }
}

/// One command of the topic: its id, version and the canonical JSON envelope.
#[derive(Clone, Debug, Default)]
pub struct SimCommand {
    pub id: String,
    pub version: u64,
    pub envelope: Value,
    /// Produced as a record with a null value (a delete on a compacted topic); the envelope
    /// still describes it, for the simulator.
    pub null_value: bool,
}

impl SimCommand {
    /// A full upsert of `doc` as document `id` of `index` at `version`.
    pub fn upsert(index: &str, id: &str, version: u64, doc: Value) -> SimCommand {
        let envelope = json!({"op": "upsert", "id": id, "index": index, "version": version, "doc": doc});
        SimCommand { id: id.to_string(), version, envelope, null_value: false }
    }

    /// The envelope as bytes, as produced to Kafka.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.envelope).expect("JSON")
    }

    /// The record value as produced: None for a null-value record.
    pub fn value(&self) -> Option<Vec<u8>> {
        (!self.null_value).then(|| self.payload())
    }

    /// The record headers: the version, as decimal text (for `--version-source header:version`).
    pub fn headers(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![("version", self.version.to_string().into_bytes())]
    }
}

/// A tag value over 32 KiB: ASCII or 2-byte characters, so one term exceeds Lucene's limit.
fn long_tag_value(rng: &mut StdRng) -> Value {
    let n = rng.random_range(0..1000);
    if rng.random_bool(0.5) {
        json!(format!("{n}{}", "x".repeat(33_000)))
    } else {
        json!(format!("{n}{}", "é".repeat(17_000)))
    }
}

fn tag_key(rng: &mut StdRng, keys: usize) -> String {
    match rng.random_range(0..20) {
        0 => "scope:team".to_string(),
        1 => r"path\dir".to_string(),
        _ => format!("k{}", rng.random_range(0..keys)),
    }
}

fn tag_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..10) {
        0 => json!(rng.random_range(0..100)),
        1 => json!(rng.random_bool(0.5)),
        2 => json!(format!("a:b{}", rng.random_range(0..5))),
        _ => json!(format!("v{}", rng.random_range(0..30))),
    }
}

fn routing_of(n: usize) -> Option<String> {
    n.is_multiple_of(5).then(|| format!("r{}", n % 3))
}

fn legacy_doc(rng: &mut StdRng, n: usize, keys: usize) -> Map<String, Value> {
    let mut tags = Map::new();
    for _ in 0..rng.random_range(0..6) {
        tags.insert(tag_key(rng, keys), tag_value(rng));
    }
    let mut doc = Map::new();
    doc.insert("title".into(), json!(format!("document {n}")));
    let status = ["new", "open", "closed"][rng.random_range(0..3)];
    doc.insert("status".into(), json!(status));
    doc.insert("n".into(), json!(rng.random_range(0..1000)));
    doc.insert("actions".into(), json!({"tags": tags, "clicks": rng.random_range(0..50)}));
    doc
}

/// Generates the command topic's content: versions are a global sequence, so they increase per
/// document, and every command for a document is keyed by its id.
pub fn generate(spec: &WorkloadSpec) -> Vec<SimCommand> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut out = Vec::with_capacity(spec.commands);
    for seq in 0..spec.commands {
        let version = seq as u64 + 1;
        let n = rng.random_range(0..spec.docs);
        let id = format!("d{n}");
        let roll = rng.random_range(0..100);
        let mut env = json!({"op": "", "id": id, "index": spec.index, "version": version});
        if let Some(r) = routing_of(n) {
            env["routing"] = json!(r);
        }
        let long_tag = spec.long_tag_pct > 0 && rng.random_range(0..100) < spec.long_tag_pct;
        let mut null_value = false;
        if roll < spec.upsert_pct {
            env["op"] = json!("upsert");
            let mut doc = legacy_doc(&mut rng, n, spec.tag_keys);
            if long_tag {
                doc["actions"]["tags"]["long"] = long_tag_value(&mut rng);
            }
            env["doc"] = Value::Object(doc);
        } else if roll < spec.upsert_pct + spec.merge_pct {
            env["op"] = json!("merge");
            let status = ["open", "closed", "merged"][rng.random_range(0..3)];
            env["set"] = json!({"status": status, "touched": version});
            if rng.random_bool(0.2) {
                env["unset"] = json!(["n"]);
            }
            let mut add = Map::new();
            for _ in 0..rng.random_range(0..3) {
                add.insert(tag_key(&mut rng, spec.tag_keys), tag_value(&mut rng));
            }
            if long_tag {
                add.insert("long".into(), long_tag_value(&mut rng));
            }
            env["tags_add"] = Value::Object(add);
            if rng.random_bool(0.3) {
                env["tags_remove"] = json!([tag_key(&mut rng, spec.tag_keys)]);
            }
        } else {
            env["op"] = json!("delete");
            null_value = spec.null_deletes && routing_of(n).is_none();
        }
        out.push(SimCommand { id, version, envelope: env, null_value });
    }
    out
}

/// A document's state in the legacy world.
#[derive(Clone, Debug, PartialEq)]
pub enum LegacyState {
    Live { version: u64, routing: Option<String>, source: Map<String, Value> },
    Deleted { version: u64, routing: Option<String> },
}

/// How the simulated legacy system behaves where real ones differ (the default is the one
/// cutover first assumed: merges of absent documents ignored, `_version` external, a typeless
/// index, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LegacyBehaviour {
    /// A merge of a document that exists nowhere creates it from the merge alone
    /// (`doc_as_upsert`) instead of being ignored.
    pub merge_creates: bool,
    /// A null-value record deletes the document named by its key (compacted topics).
    pub null_deletes: bool,
    /// The command's version is stored in `_source` at this path, and the legacy cluster's
    /// `_version` is its own internal counter (no external versioning).
    pub version_field: Option<String>,
    /// The service produces its commands in Kafka transactions (commit markers in the log),
    /// and aborts some transactions whose records must never be applied.
    pub transactional: bool,
    /// The legacy tag fields have `ignore_above` (1024), so documents with tag values over
    /// Lucene's 32,766-byte term limit are kept (in `_source`, unindexed).
    pub long_tags: bool,
    /// The single mapping type of a 6.x index (`_doc`, or a custom name such as `item`, which
    /// 6.x indices created on 5.x carry); `None` on 7.x+ and OpenSearch (typeless).
    pub doc_type: Option<String>,
    /// The legacy mapping uses 2.x's `string` type (`index: not_analyzed` for exact values)
    /// instead of `text`/`keyword`.
    pub string_fields: bool,
}

impl LegacyBehaviour {
    /// Where the writers read a legacy document's version.
    pub fn version_source(&self) -> LegacyVersionSource {
        match &self.version_field {
            Some(f) => LegacyVersionSource::Field(f.clone()),
            None => LegacyVersionSource::Version,
        }
    }

    /// The same, as the `--legacy-version` argument of `indexer` and `backfill`.
    pub fn version_arg(&self) -> String {
        self.version_field.as_ref().map_or("_version".to_string(), |p| format!("field:{p}"))
    }
}

/// The `ignore_above` of the simulated legacy tag fields when [`LegacyBehaviour::long_tags`].
pub const LEGACY_TAG_IGNORE_ABOVE: u64 = 1024;

/// The legacy indexer: applies commands to an in-memory model and writes the resulting states to
/// the legacy cluster, chunk by chunk: with external versions, or with the version kept in the
/// document ([`LegacyBehaviour::version_field`]) and internal ones.
pub struct LegacyIndexer {
    pub es: Es,
    pub index: String,
    pub tags: TagRewrite,
    pub state: HashMap<String, LegacyState>,
    pub behaviour: LegacyBehaviour,
}

impl LegacyIndexer {
    /// An indexer writing to `index` on `es` with external versions (typeless index).
    pub fn new(es: Es, index: &str) -> Self {
        Self::with_behaviour(es, index, LegacyBehaviour::default())
    }

    /// An indexer with the given behaviour.
    pub fn with_behaviour(es: Es, index: &str, behaviour: LegacyBehaviour) -> Self {
        LegacyIndexer { es, index: index.to_string(), tags: TagRewrite::default(), state: HashMap::new(), behaviour }
    }

    /// Applies commands in order and writes the touched documents' final states in one bulk.
    pub async fn apply(&mut self, cmds: &[SimCommand]) -> anyhow::Result<()> {
        let mut touched: Vec<String> = Vec::new();
        for c in cmds {
            let applied = if c.null_value { self.apply_null(c) } else { self.apply_one(&c.envelope) };
            if applied {
                touched.push(c.id.clone());
            }
        }
        touched.sort();
        touched.dedup();
        let mut body = Vec::new();
        for id in &touched {
            let line = match &self.state[id] {
                LegacyState::Live { version, routing, source } => {
                    let meta = bulk_meta("index", &self.index, id, routing, *version, &self.behaviour);
                    format!("{meta}\n{}\n", Value::Object(source.clone()))
                }
                LegacyState::Deleted { version, routing } => format!("{}\n", bulk_meta("delete", &self.index, id, routing, *version, &self.behaviour)),
            };
            body.extend_from_slice(line.as_bytes());
        }
        if body.is_empty() {
            return Ok(());
        }
        let resp = bulk_retrying(&self.es, body.into()).await?;
        for item in resp["items"].as_array().into_iter().flatten() {
            let r = item.as_object().and_then(|o| o.values().next()).cloned().unwrap_or_default();
            let status = r["status"].as_u64().unwrap_or(0);
            anyhow::ensure!(status < 300 || status == 404 || status == 409, "legacy write failed: {r}");
        }
        Ok(())
    }

    /// A null-value record: a delete of the keyed document if this legacy indexer reads them
    /// so, else skipped.
    fn apply_null(&mut self, c: &SimCommand) -> bool {
        if !self.behaviour.null_deletes {
            return false;
        }
        let routing = match self.state.get(&c.id) {
            Some(LegacyState::Live { routing, .. } | LegacyState::Deleted { routing, .. }) => routing.clone(),
            None => None,
        };
        self.state.insert(c.id.clone(), LegacyState::Deleted { version: c.version, routing });
        true
    }

    /// Applies one envelope to the model; true when the document changed.
    fn apply_one(&mut self, env: &Value) -> bool {
        let id = env["id"].as_str().expect("id").to_string();
        let version = env["version"].as_u64().expect("version");
        let routing = env["routing"].as_str().map(str::to_string);
        let mut source = match env["op"].as_str() {
            Some("upsert") => env["doc"].as_object().cloned().unwrap_or_default(),
            Some("delete") => {
                self.state.insert(id, LegacyState::Deleted { version, routing });
                return true;
            }
            Some("merge") => {
                let mut source = match self.state.get(&id) {
                    Some(LegacyState::Live { source, .. }) => source.clone(),
                    _ if self.behaviour.merge_creates => Map::new(),
                    _ => return false,
                };
                patch_of(env).apply_legacy(&mut source, &self.tags);
                source
            }
            _ => return false,
        };
        if let Some(path) = &self.behaviour.version_field {
            schema::store_version(&mut source, path, version);
        }
        self.state.insert(id, LegacyState::Live { version, routing, source });
        true
    }
}

/// Sends a `_bulk` body, retrying the whole request while the cluster answers 429/5xx (a
/// small test heap trips its circuit breaker now and then) or any item is rejected with 429.
/// Retrying is safe: every write in cutover's tests is externally versioned.
pub async fn bulk_retrying(es: &Es, body: bytes::Bytes) -> anyhow::Result<Value> {
    use std::time::Duration;
    let policy = cluster::RetryPolicy { base: Duration::from_millis(200), max_delay: Duration::from_secs(5), max_retries: Some(20) };
    let once = || async {
        match es.bulk(body.clone(), false).await? {
            resp if has_rejected_items(&resp) => Err(cluster::EsError::status_of("POST", "/_bulk", 429, &json!({"error": "items rejected with 429"}))),
            resp => Ok(resp),
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    Ok(policy.run("test_bulk", &cancel, cluster::EsError::is_retryable, once).await.map_err(cluster::RetryError::into_last)?)
}

fn has_rejected_items(resp: &Value) -> bool {
    resp["items"].as_array().into_iter().flatten().any(|i| i.as_object().and_then(|o| o.values().next()).is_some_and(|r| r["status"] == 429))
}

fn patch_of(env: &Value) -> MergePatch {
    let strings = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default();
    MergePatch {
        set: env["set"].as_object().cloned().unwrap_or_default(),
        unset: strings(&env["unset"]),
        tags_add: env["tags_add"].as_object().cloned().unwrap_or_default(),
        tags_remove: strings(&env["tags_remove"]),
    }
}

/// A bulk action line: external versions unless the version lives in the document; `_type`
/// on a 6.x index (6.x bulk refuses an action without it: "type is missing").
fn bulk_meta(action: &str, index: &str, id: &str, routing: &Option<String>, version: u64, behaviour: &LegacyBehaviour) -> Value {
    let mut m = json!({"_index": index, "_id": id});
    if behaviour.version_field.is_none() {
        m["version"] = json!(version);
        m["version_type"] = json!("external");
    }
    if let Some(t) = &behaviour.doc_type {
        m["_type"] = json!(t);
    }
    if let Some(r) = routing {
        m["routing"] = json!(r);
    }
    json!({ action: m })
}

/// The legacy index's mapping as the team had it: every tag key a dynamic keyword field.
pub fn legacy_index_body(shards: u32) -> Value {
    legacy_index_body_for(shards, &LegacyBehaviour::default())
}

/// The legacy index's create body for a behaviour: with `long_tags`, the tag fields have
/// `ignore_above` (else one tag over the term limit would make the legacy cluster refuse the
/// document too); with a `doc_type` (6.x), the mapping nests under that single type.
pub fn legacy_index_body_for(shards: u32, behaviour: &LegacyBehaviour) -> Value {
    let (text, keyword) = if behaviour.string_fields {
        (json!({"type": "string"}), json!({"type": "string", "index": "not_analyzed"}))
    } else {
        (json!({"type": "text"}), json!({"type": "keyword"}))
    };
    let mut tag_mapping = keyword.clone();
    if behaviour.long_tags {
        tag_mapping["ignore_above"] = json!(LEGACY_TAG_IGNORE_ABOVE);
    }
    let mapping = json!({
        "dynamic_templates": [{"tags_as_keyword": {"path_match": "actions.tags.*", "mapping": tag_mapping}}],
        "properties": {
            "title": text,
            "status": keyword,
            "n": {"type": "long"},
            "touched": {"type": "long"},
            "actions": {"properties": {"clicks": {"type": "integer"}}}
        }
    });
    let mappings = match &behaviour.doc_type {
        Some(t) => json!({ t: mapping }),
        None => mapping,
    };
    json!({
        "settings": {"index": {"number_of_shards": shards, "number_of_replicas": 0}},
        "mappings": mappings
    })
}

/// Creates the legacy index.
pub async fn create_legacy_index(es: &Es, index: &str, shards: u32) -> anyhow::Result<()> {
    create_legacy_index_for(es, index, shards, &LegacyBehaviour::default()).await
}

/// Creates the legacy index for a behaviour.
pub async fn create_legacy_index_for(es: &Es, index: &str, shards: u32, behaviour: &LegacyBehaviour) -> anyhow::Result<()> {
    es.ok(Method::Put, &format!("/{index}"), Some(&legacy_index_body_for(shards, behaviour))).await?;
    Ok(())
}

/// Creates the target index from the legacy one, as `backfill create-index` does.
pub async fn create_target_index(legacy: &Es, legacy_index: &str, target: &Es, target_index: &str) -> anyhow::Result<()> {
    let got = legacy.get(&format!("/{legacy_index}")).await?;
    let def = schema::target_definition(&got[legacy_index], &schema::TargetDefinitionConfig::default())?;
    target.ok(Method::Put, &format!("/{target_index}"), Some(&def)).await?;
    Ok(())
}

/// Every live document of an index: id -> (version, _source), read back after a refresh with
/// a scroll sorted by `_doc` (the cheapest full walk; tests call it on quiet indices).
pub async fn read_all(es: &Es, index: &str) -> anyhow::Result<BTreeMap<String, (u64, Map<String, Value>)>> {
    es.refresh(index).await?;
    let mut out = BTreeMap::new();
    let body = json!({"size": 5000, "version": true, "sort": ["_doc"], "query": {"match_all": {}}});
    cluster::scroll::for_each_hit(es, index, &body, |h| {
        let id = h["_id"].as_str().unwrap_or_default().to_string();
        out.insert(id, (h["_version"].as_u64().unwrap_or(0), h["_source"].as_object().cloned().unwrap_or_default()));
    })
    .await?;
    Ok(out)
}

/// Compares the target with `transform(legacy)` document by document (content and version) and
/// returns human-readable differences (empty = converged).
pub async fn differences(legacy: &Es, legacy_index: &str, target: &Es, target_index: &str) -> anyhow::Result<Vec<String>> {
    differences_with(legacy, legacy_index, target, target_index, &LegacyVersionSource::Version).await
}

/// [`differences`] where the legacy version is read from `version` (`_version`, or a field
/// of `_source` when the legacy indexer keeps it there).
pub async fn differences_with(legacy: &Es, legacy_index: &str, target: &Es, target_index: &str, version: &LegacyVersionSource) -> anyhow::Result<Vec<String>> {
    let tags = TagRewrite::default();
    let mut old = read_all(legacy, legacy_index).await?;
    if let schema::LegacyVersionSource::Field(_) = version {
        for (id, (v, src)) in old.iter_mut() {
            let hit = json!({"_source": src});
            *v = schema::legacy_version(&hit, version).map_err(|e| anyhow::anyhow!("legacy {id}: {e}"))?;
        }
    }
    let new = read_all(target, target_index).await?;
    let mut diffs = Vec::new();
    for (id, (v, src)) in &old {
        let v = &match version {
            LegacyVersionSource::Version => *v,
            field => schema::legacy_version(&json!({"_source": src}), field).map_err(|e| anyhow::anyhow!("legacy {id}: {e}"))?,
        };
        let want = tags.to_target(src)?;
        match new.get(id) {
            None => diffs.push(format!("{id}: missing in target (legacy v{v})")),
            Some((tv, got)) if tv != v || got != &want => {
                diffs.push(format!("{id}: target v{tv} {} != legacy v{v} {}", Value::Object(got.clone()), Value::Object(want)))
            }
            _ => {}
        }
    }
    for (id, (tv, _)) in &new {
        if !old.contains_key(id) {
            diffs.push(format!("{id}: extra in target (v{tv}), absent in legacy"));
        }
    }
    Ok(diffs)
}

/// Compares a cluster's documents with the simulator's final model: every live state present
/// at its version with exactly `transform(source)` (or the legacy source itself when
/// `transform` is false, for the legacy cluster), every deleted or never-created document
/// absent. Differences are human-readable (empty = equal).
pub fn model_differences(
    model: &HashMap<String, LegacyState>,
    docs: &BTreeMap<String, (u64, Map<String, Value>)>,
    transform: bool,
    version: &schema::LegacyVersionSource,
) -> anyhow::Result<Vec<String>> {
    let tags = TagRewrite::default();
    let mut diffs = Vec::new();
    for (id, state) in model {
        match (state, docs.get(id)) {
            (LegacyState::Live { version: v, source, .. }, Some((dv, got))) => {
                let want = if transform { tags.to_target(source)? } else { source.clone() };
                let got_version = match (transform, version) {
                    (false, schema::LegacyVersionSource::Field(_)) => schema::legacy_version(&json!({"_source": got}), version)?,
                    _ => *dv,
                };
                if got_version != *v || got != &want {
                    diffs.push(format!("{id}: has v{got_version}, model v{v} (content equal: {})", got == &want));
                }
            }
            (LegacyState::Live { version: v, .. }, None) => diffs.push(format!("{id}: missing (model v{v})")),
            (LegacyState::Deleted { version: v, .. }, Some((dv, _))) => diffs.push(format!("{id}: present at v{dv}, deleted at v{v} in the model")),
            (LegacyState::Deleted { .. }, None) => {}
        }
    }
    for id in docs.keys().filter(|id| !model.contains_key(*id)) {
        diffs.push(format!("{id}: present, never created in the model"));
    }
    Ok(diffs)
}
