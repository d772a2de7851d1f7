//! The target index: `create-index` and the readiness check.
//!
//! The target definition is derived from the legacy index by [`schema::target_definition`]
//! (the tag rewrite's mapping, `index.gc_deletes` raised for the migration window). Creation is
//! idempotent so that every deployment script and every restarted worker can run it: an index
//! with the same definition is a no-op, a different one is an error naming each difference
//! (an index silently created by dynamic mapping would explode exactly like the legacy one).
//!
//! Settings that depend on the cluster around the index ([`schema::cluster_dependencies`]:
//! ingest pipelines, allocation filters on node attributes, async translog durability) are
//! checked against the target before anything is created, and refused, each with its fix,
//! unless the target can honour them: a pipeline it has (or that `copy_pipelines` copies from
//! the legacy cluster), an attribute value one of its nodes has, `request` durability.
//! `drop_settings` leaves settings out (docs/legacy-settings.md).
//!
//! Text-mapped legacy tags ([`schema::analysed_tag_fields`]: the field report's `text`
//! template, or the default dynamic mapping) are detected and logged as a warning saying what
//! changes for end users (an analysed `match` for `John` found `john` and `John Smith`; the
//! target's keyword term finds exactly `John`). [`TagMatching::normalizer`] gives the target's
//! tag keywords a lowercase normalizer, so case-insensitive exact matches keep working; legacy
//! tag keys that differ only by case are then refused (they would become one key) unless
//! [`TagMatching::allow_key_case_collisions`]. docs/queries.md §10.

use cluster::client::enc;
use cluster::readiness::{get_pipeline, NotReady};
use cluster::{Es, EsError, Method};
use schema::{AnalysedTagField, ClusterDependency, MappingError, TagNormalizer, TagRewrite, TargetDefinitionConfig};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Why the target index could not be created or is not fit to be written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The cluster failed or answered unexpectedly.
    #[error(transparent)]
    Es(#[from] EsError),
    /// The legacy index does not exist.
    #[error("legacy index `{0}` does not exist")]
    SourceMissing(String),
    /// The target index does not exist (run `backfill create-index` first).
    #[error("target index `{0}` does not exist; create it with `backfill create-index` (it must carry the rewritten mapping and a raised index.gc_deletes)")]
    TargetMissing(String),
    /// The schema crate could not derive a target definition from the legacy index.
    #[error("cannot derive the target definition from `{index}`: {reason}")]
    Definition { index: String, reason: String },
    /// The target index exists with another definition.
    #[error("target index `{index}` already exists with a different definition:\n  - {}", differences.join("\n  - "))]
    DefinitionMismatch { index: String, differences: Vec<String> },
    /// The target index is not safe to write (mapping of the tag field, gc_deletes too low...).
    #[error("target index `{index}` is not ready for the migration writers:\n  - {}", problems.join("\n  - "))]
    NotReady { index: String, problems: Vec<String> },
    /// Settings of the legacy index that the target cluster cannot honour as they are (a
    /// pipeline it lacks, a node attribute none of its nodes has, async translog durability):
    /// nothing was created. One line per setting, with its fix.
    #[error("refusing to create `{index}`: settings of the legacy index `{source_index}` would not work on the target cluster as they are (nothing was created):\n  - {}", problems.join("\n  - "))]
    LegacySettings { index: String, source_index: String, problems: Vec<String> },
    /// `--tag-normalizer` would merge legacy tag keys that differ only by case (or its
    /// normalizer's name is taken): nothing was created.
    #[error("refusing to create `{index}` with --tag-normalizer (nothing was created): {reason}")]
    TagNormalizer { index: String, reason: String },
    /// The target refused an ingest pipeline copied from the legacy cluster.
    #[error("the target cluster refused ingest pipeline `{id}` copied from the legacy cluster (nothing else was changed): {cause}; the target needs every processor the pipeline uses (or leave the setting out with --drop-setting {key}; see docs/legacy-settings.md)")]
    PipelineCopy { id: String, key: String, cause: Box<EsError> },
}

/// What `create-index` needs besides the two clusters.
#[derive(Clone, Debug)]
pub struct CreateIndexConfig {
    /// The legacy index (or an alias resolving to exactly one index).
    pub source_index: String,
    /// The target index to create.
    pub target_index: String,
    /// Where tags live in both forms.
    pub tags: TagRewrite,
    /// `index.gc_deletes` for the target while both writers run (how long delete tombstones
    /// are remembered: must outlive the migration, see convergence invariant 4).
    pub gc_deletes: String,
    /// Further index settings (e.g. `index.number_of_replicas`), applied over the derived ones.
    pub extra_settings: Map<String, Value>,
    /// Legacy settings left out of the target, with their sub-keys (`index.` prefix optional):
    /// `--drop-setting`. `extra_settings` may still set them.
    pub drop_settings: Vec<String>,
    /// Copy the ingest pipelines the definition names (and those they call) from the legacy
    /// cluster to the target before creating the index: `--copy-pipelines`.
    pub copy_pipelines: bool,
}

/// How the target's tag keywords match text (`create-index --tag-normalizer`,
/// `--allow-tag-key-case-collisions`). The default: exact, case-sensitive keywords.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagMatching {
    /// A normalizer for both tag keywords (lowercase: case-insensitive exact matches).
    pub normalizer: Option<TagNormalizer>,
    /// Create the normalized index even when legacy tag keys differ only by case.
    pub allow_key_case_collisions: bool,
}

/// What `create-index` did, and what it found about the legacy tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateIndexReport {
    pub outcome: CreateOutcome,
    /// The legacy tag fields (and templates) mapped as analysed text.
    pub analysed_tag_fields: Vec<AnalysedTagField>,
    /// The normalizer of the target's tag keywords.
    pub tag_normalizer: Option<TagNormalizer>,
}

impl CreateIndexReport {
    /// The line `create-index` prints about the tags, when there is something to say (a
    /// text-mapped legacy, or a normalizer).
    pub fn tags_summary(&self) -> Option<String> {
        let target = match self.tag_normalizer {
            Some(n) => format!("target tag keywords: `{n}` normalizer `{}` (case-insensitive exact matches)", n.name()),
            None => "target tag keywords: exact (case-sensitive)".to_string(),
        };
        if self.analysed_tag_fields.is_empty() {
            return self.tag_normalizer.map(|_| format!("tags: {target}"));
        }
        Some(format!(
            "tags: the legacy index maps {} tag field(s) or template(s) as analysed text ({}); {target}; partial-word matches are not kept: measure with `backfill parity --queries FILE --legacy-tag-mapping keyword`",
            self.analysed_tag_fields.len(),
            fields_brief(&self.analysed_tag_fields)
        ))
    }
}

/// The first analysed fields, for a log line.
fn fields_brief(fields: &[AnalysedTagField]) -> String {
    let mut shown: Vec<String> = fields.iter().take(5).map(ToString::to_string).collect();
    if fields.len() > 5 {
        shown.push(format!("and {} more", fields.len() - 5));
    }
    shown.join(", ")
}

/// The warning about text-mapped legacy tags: what changes for end users, and how to measure
/// it. None when no tag field is analysed text and no normalizer is asked for.
fn tag_text_warning(fields: &[AnalysedTagField], normalizer: Option<TagNormalizer>) -> Option<String> {
    let measure = "measure it with your own searches: `backfill parity --queries FILE --legacy-tag-mapping keyword` (docs/queries.md)";
    if fields.is_empty() {
        return normalizer.map(|n| format!(
            "--tag-normalizer {n} on a legacy index whose tags are not analysed text: searches on tags that were case-sensitive become case-insensitive on the target (`John` also finds `john`), and terms-aggregation buckets come back lowercased; {measure}"
        ));
    }
    let subfield = if fields.iter().any(|f| f.keyword_subfield.is_some()) {
        match normalizer {
            None => " Clauses on their keyword sub-fields stay exact.",
            Some(_) => " Clauses on their keyword sub-fields become case-insensitive, and terms-aggregation buckets come back lowercased.",
        }
    } else {
        ""
    };
    let choice = match normalizer {
        None => "`--tag-normalizer lowercase` would keep case-insensitive exact matches (`john` for `John`); partial-word matches (`John Smith` for `John`) are lost either way".to_string(),
        Some(n) => format!(
            "with --tag-normalizer {n} (normalizer `{}` on both tag keywords) case-insensitive exact matches keep working (`john` for `John`); partial-word matches (`John Smith` for `John`) are lost",
            n.name()
        ),
    };
    Some(format!(
        "the legacy index maps its tags as analysed text ({}): the target indexes each tag as one exact keyword pair, so searches on tags change for end users: an analysed `match` for `John` found `John`, `john` and `John Smith`, the target's keyword term finds exactly `John`; {choice}.{subfield} Before switching reads, {measure}",
        fields_brief(fields)
    ))
}

/// What `create-index` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The index was created.
    Created,
    /// An index with the same definition already existed: nothing was done.
    AlreadyExists,
}

/// Creates the target index from the legacy index's definition, idempotently. Settings that
/// depend on the cluster ([`schema::cluster_dependencies`]) are checked against the target
/// first; the pipelines to copy are copied once the index is known to be creatable (or already
/// there with the same definition).
pub async fn create_index(legacy: &Es, target: &Es, cfg: &CreateIndexConfig) -> Result<CreateOutcome, IndexError> {
    Ok(create_index_with(legacy, target, cfg, &TagMatching::default()).await?.outcome)
}

/// [`create_index`] with the target's tag keywords matching as `tag_matching` says; reports
/// the legacy tag fields mapped as analysed text too (also logged as a warning).
pub async fn create_index_with(legacy: &Es, target: &Es, cfg: &CreateIndexConfig, tag_matching: &TagMatching) -> Result<CreateIndexReport, IndexError> {
    let legacy_index = legacy.get_index(&cfg.source_index).await?.ok_or_else(|| IndexError::SourceMissing(cfg.source_index.clone()))?;
    let def_cfg = TargetDefinitionConfig {
        tags: cfg.tags.clone(),
        gc_deletes: cfg.gc_deletes.clone(),
        extra_settings: cfg.extra_settings.clone(),
        dropped_settings: cfg.drop_settings.clone(),
        tag_normalizer: tag_matching.normalizer,
        allow_tag_key_case_collisions: tag_matching.allow_key_case_collisions,
    };
    warn_unmatched_drops(&legacy_index, &cfg.drop_settings);
    let analysed_tag_fields = schema::analysed_tag_fields(&legacy_index, &cfg.tags.legacy_path);
    if let Some(warning) = tag_text_warning(&analysed_tag_fields, tag_matching.normalizer) {
        tracing::warn!(source_index = %cfg.source_index, analysed_tag_fields = analysed_tag_fields.len(), "{warning}");
    }
    if let (Some(_), true) = (tag_matching.normalizer, tag_matching.allow_key_case_collisions) {
        let groups = schema::tag_keys_differing_only_by_case(&legacy_index, &cfg.tags.legacy_path);
        if !groups.is_empty() {
            tracing::warn!(?groups, "--allow-tag-key-case-collisions: these legacy tag keys differ only by case and become one key on the target (a search for one finds the others)");
        }
    }
    let expected = schema::target_definition(&legacy_index, &def_cfg).map_err(|e| match e {
        MappingError::TagKeyCaseCollision { .. } | MappingError::NormalizerNameTaken { .. } => {
            IndexError::TagNormalizer { index: cfg.target_index.clone(), reason: e.to_string() }
        }
        e => IndexError::Definition { index: cfg.source_index.clone(), reason: e.to_string() },
    })?;
    let report = |outcome| CreateIndexReport { outcome, analysed_tag_fields: analysed_tag_fields.clone(), tag_normalizer: tag_matching.normalizer };
    let to_copy = check_dependencies(legacy, target, cfg, &expected).await?;
    if let Some(actual) = target.get_index(&cfg.target_index).await? {
        let outcome = compare(&cfg.target_index, &expected, &actual)?;
        copy_pipelines(target, &to_copy).await?;
        return Ok(report(outcome));
    }
    copy_pipelines(target, &to_copy).await?;
    if target.create_index(&cfg.target_index, &expected).await? {
        tracing::info!(index = %cfg.target_index, tag_normalizer = ?tag_matching.normalizer, "created target index");
        return Ok(report(CreateOutcome::Created));
    }
    // Another process created it between our GET and PUT: same rule as above.
    let actual = target.get_index(&cfg.target_index).await?.ok_or_else(|| IndexError::TargetMissing(cfg.target_index.clone()))?;
    Ok(report(compare(&cfg.target_index, &expected, &actual)?))
}

/// Logs each `--drop-setting` that names no setting of the legacy index (a typo leaves the
/// setting in; an idempotent rerun after the legacy index lost it is not an error).
fn warn_unmatched_drops(legacy_index: &Value, drops: &[String]) {
    let settings = legacy_index.get("settings").and_then(Value::as_object).cloned().unwrap_or_default();
    for drop in drops.iter().filter(|d| !schema::has_setting(&settings, d)) {
        tracing::warn!(setting = %drop, "--drop-setting names no setting of the legacy index: nothing left out for it");
    }
}

/// A pipeline to copy from the legacy cluster to the target: its id, the setting that (directly
/// or through another pipeline) names it, and its definition without the fields servers manage.
#[derive(Clone, Debug)]
struct PipelineCopy {
    id: String,
    key: String,
    definition: Value,
}

/// Fields of a pipeline definition that the cluster manages (9.x reports them, and refuses
/// them in a PUT).
const SYSTEM_PIPELINE_FIELDS: &[&str] = &["created_date_millis", "modified_date_millis", "created_date", "modified_date"];

fn user_pipeline(mut def: Value) -> Value {
    if let Some(m) = def.as_object_mut() {
        for f in SYSTEM_PIPELINE_FIELDS {
            m.remove(*f);
        }
    }
    def
}

/// The ids of the pipelines a pipeline definition calls (`pipeline` processors, in
/// `processors` and `on_failure` at any depth); templated names (`{{..}}`) are skipped.
fn called_pipelines(def: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(name) = m.get("pipeline").and_then(|p| p.get("name")).and_then(Value::as_str) {
                    if !name.contains("{{") && !out.iter().any(|n| n == name) {
                        out.push(name.to_owned());
                    }
                }
                m.values().for_each(|c| walk(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(def, &mut out);
    out
}

/// Checks every setting of `expected` that depends on the cluster against the target (see
/// [`schema::cluster_dependencies`]) and returns the pipelines to copy, called ones first;
/// refuses with one line per setting the target cannot honour.
async fn check_dependencies(legacy: &Es, target: &Es, cfg: &CreateIndexConfig, expected: &Value) -> Result<Vec<PipelineCopy>, IndexError> {
    let settings = expected.get("settings").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut problems = Vec::new();
    let mut to_copy: Vec<PipelineCopy> = Vec::new();
    let mut nodes: Option<Value> = None;
    for dep in schema::cluster_dependencies(&settings) {
        match dep {
            ClusterDependency::Pipeline { key, id } => {
                if cfg.copy_pipelines {
                    plan_pipeline_copies(legacy, target, &key, &id, &mut to_copy, &mut problems).await?;
                } else {
                    match get_pipeline(target, &id).await? {
                        None => problems.push(format!(
                            "{key} names ingest pipeline `{id}`, which the target cluster does not have: copy it with --copy-pipelines, or leave the setting out with --drop-setting {key} (see docs/legacy-settings.md)"
                        )),
                        Some(on_target) => warn_if_pipelines_differ(legacy, &key, &id, user_pipeline(on_target)).await,
                    }
                }
            }
            ClusterDependency::NodeAttribute { key, attribute, values, require } => {
                if nodes.is_none() {
                    nodes = Some(target.get("/_nodes?filter_path=nodes.*.name,nodes.*.host,nodes.*.ip,nodes.*.roles,nodes.*.attributes").await?);
                }
                let nodes = nodes.as_ref().expect("just read");
                if let Some(problem) = attribute_problem(nodes, &key, &attribute, &values, require) {
                    problems.push(problem);
                }
            }
            ClusterDependency::AsyncTranslog { key, value } => problems.push(format!(
                "{key} is `{value}` on the legacy index: {}; create the target with --setting {key}=request (see docs/legacy-settings.md)",
                schema::ASYNC_TRANSLOG_WHY
            )),
        }
    }
    if problems.is_empty() {
        Ok(to_copy)
    } else {
        Err(IndexError::LegacySettings { index: cfg.target_index.clone(), source_index: cfg.source_index.clone(), problems })
    }
}

/// Plans the copy of pipeline `id` (named by setting `key`) and of the pipelines it calls:
/// a pipeline the target lacks is copied, one it has with the same definition is left alone,
/// one it has with another definition is refused (so is one neither cluster has).
async fn plan_pipeline_copies(
    legacy: &Es,
    target: &Es,
    key: &str,
    id: &str,
    to_copy: &mut Vec<PipelineCopy>,
    problems: &mut Vec<String>,
) -> Result<(), EsError> {
    let mut pending = vec![id.to_owned()];
    let mut seen = BTreeSet::new();
    let mut planned = Vec::new();
    while let Some(id) = pending.pop() {
        if !seen.insert(id.clone()) || to_copy.iter().any(|p| p.id == id) {
            continue;
        }
        let via = if seen.len() == 1 { String::new() } else { format!(" (called by a pipeline that {key} runs)") };
        let on_target = get_pipeline(target, &id).await?.map(user_pipeline);
        let Some(definition) = get_pipeline(legacy, &id).await?.map(user_pipeline) else {
            if on_target.is_none() {
                problems.push(format!(
                    "{key} names ingest pipeline `{id}`{via}, which neither cluster has: create it on the target, or leave the setting out with --drop-setting {key} (see docs/legacy-settings.md)"
                ));
            }
            continue;
        };
        pending.extend(called_pipelines(&definition));
        match on_target {
            None => planned.push(PipelineCopy { id, key: key.to_owned(), definition }),
            Some(existing) if existing == definition => {}
            Some(_) => problems.push(format!(
                "{key} names ingest pipeline `{id}`{via}, and the target cluster already has a pipeline `{id}` with a different definition (compare GET /_ingest/pipeline/{id} on both clusters): --copy-pipelines does not overwrite it; make the target's the same as the legacy one (or delete it), or leave the setting out with --drop-setting {key} (see docs/legacy-settings.md)"
            )),
        }
    }
    // Callees before their callers, so that no pipeline on the target ever calls a missing one.
    while !planned.is_empty() {
        let ready = planned.iter().position(|p| called_pipelines(&p.definition).iter().all(|c| !planned.iter().any(|q| &q.id == c && q.id != p.id)));
        to_copy.push(planned.remove(ready.unwrap_or(0)));
    }
    Ok(())
}

/// A pipeline the target already has is used as is; when it differs from the legacy one, the
/// documents the indexer replays will differ from those the backfill copies: say so (a
/// warning only: a legacy pipeline that cannot be read is no reason to refuse).
async fn warn_if_pipelines_differ(legacy: &Es, key: &str, id: &str, on_target: Value) {
    match get_pipeline(legacy, id).await {
        Ok(Some(on_legacy)) if user_pipeline(on_legacy.clone()) != on_target => {
            tracing::warn!(setting = %key, pipeline = %id, legacy = %on_legacy, target = %on_target, "the target's pipeline differs from the legacy cluster's: documents the indexer replays through it may differ from those the backfill copies (see docs/legacy-settings.md)");
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(pipeline = %id, error = %e, "cannot read the legacy pipeline to compare it with the target's"),
    }
}

/// PUTs the planned pipelines on the target, in order.
async fn copy_pipelines(target: &Es, to_copy: &[PipelineCopy]) -> Result<(), IndexError> {
    for p in to_copy {
        let path = format!("/_ingest/pipeline/{}", enc(&p.id));
        let (status, body) = target.request(Method::Put, &path, Some(&p.definition)).await?;
        if !(200..300).contains(&status) {
            return Err(IndexError::PipelineCopy { id: p.id.clone(), key: p.key.clone(), cause: Box::new(EsError::status_of("PUT", &path, status, &body)) });
        }
        tracing::info!(pipeline = %p.id, setting = %p.key, "copied ingest pipeline from the legacy cluster to the target");
    }
    Ok(())
}

/// The values a target node (`GET /_nodes` entry under its id) has for an allocation
/// attribute: its custom attribute, or for the built-in ones its name, host, address, id or
/// data tiers.
fn node_values(id: &str, node: &Value, attribute: &str) -> Vec<String> {
    let text = |k: &str| node.get(k).and_then(Value::as_str).map(str::to_owned);
    match attribute {
        "_name" => text("name").into_iter().collect(),
        "_host" => text("host").into_iter().collect(),
        "_ip" | "_host_ip" | "_publish_ip" => text("ip").into_iter().collect(),
        "_id" => vec![id.to_owned()],
        "_tier" => {
            let roles: Vec<String> = node.get("roles").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
            if roles.iter().any(|r| r == "data") {
                ["data_content", "data_hot", "data_warm", "data_cold"].into_iter().map(str::to_owned).chain(roles).collect()
            } else {
                roles
            }
        }
        _ => node.get("attributes").and_then(|a| a.get(attribute)).and_then(Value::as_str).map(str::to_owned).into_iter().collect(),
    }
}

/// The refusal of an allocation filter no target node satisfies (require: one node matching
/// every value; include: one node matching any), or None.
fn attribute_problem(nodes: &Value, key: &str, attribute: &str, values: &[String], require: bool) -> Option<String> {
    let nodes = nodes.get("nodes").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut satisfied = false;
    for (id, node) in &nodes {
        let have = node_values(id, node, attribute);
        let matches = |v: &String| have.iter().any(|h| schema::attribute_value_matches(v, h));
        satisfied |= if require { values.iter().all(matches) } else { values.iter().any(matches) };
        seen.extend(have);
    }
    if satisfied {
        return None;
    }
    let wanted = values.join(",");
    let has = if seen.is_empty() {
        format!("none of its nodes has attribute `{attribute}`")
    } else {
        format!("its nodes have {attribute}: {}", seen.into_iter().collect::<Vec<_>>().join(", "))
    };
    let rule = if require { "every" } else { "any" };
    Some(format!(
        "{key} is `{wanted}`, but no node of the target cluster matches {rule} of these values ({has}): the index's shards would stay unassigned and every write to it would fail; leave it out with --drop-setting {key}, or set a value the target has with --setting {key}=<value> (see docs/legacy-settings.md)"
    ))
}

fn compare(index: &str, expected: &Value, actual: &Value) -> Result<CreateOutcome, IndexError> {
    let actual = &without_bulk_load(expected, actual);
    let mut differences = schema::definition_differences(expected, actual);
    let tag_normalizer_path = |d: &String| ["keyToValue", "value"].iter().any(|sub| d.contains(&format!(".properties.{sub}.normalizer:")));
    if differences.iter().any(tag_normalizer_path) {
        differences.push(
            "the tag keywords' normalizer differs: run create-index with the --tag-normalizer the index was created with (or create another index)".into(),
        );
    }
    if differences.is_empty() {
        tracing::info!(%index, "target index already exists with the expected definition");
        Ok(CreateOutcome::AlreadyExists)
    } else {
        Err(IndexError::DefinitionMismatch { index: index.to_string(), differences })
    }
}

/// The target as create-index compares it: the copy's bulk-load settings
/// ([`crate::bulkload`]: `refresh_interval` -1, `number_of_replicas` 0) read as the expected
/// values, so that create-index stays idempotent between `backfill copy` and `backfill finalize`
/// (every deployment script and restarted worker runs it).
fn without_bulk_load(expected: &Value, actual: &Value) -> Value {
    let mut actual = actual.clone();
    let want = |key: &str| expected.pointer(&format!("/settings/index/{key}")).cloned();
    if let Some(Value::Object(index)) = actual.pointer_mut("/settings/index") {
        let is = |index: &Map<String, Value>, key: &str, v: &str| index.get(key).and_then(Value::as_str) == Some(v);
        for (key, bulk_value) in [("refresh_interval", cluster::readiness::BULK_LOAD_REFRESH_INTERVAL), ("number_of_replicas", "0")] {
            if is(index, key, bulk_value) {
                match want(key) {
                    Some(v) => index.insert(key.into(), v),
                    None => index.remove(key),
                };
            }
        }
    }
    actual
}

/// Refuses to let a writer start on a target index that would not converge: absent, tag field
/// mapped wrongly, or `index.gc_deletes` below `min_gc_deletes` (a delete's tombstone would be
/// forgotten during the migration and a stale backfill write would resurrect the document).
/// The check is the indexer's too ([`cluster::readiness::check_target`]). Returns the index's
/// definition as the cluster reports it.
pub async fn check_readiness(target: &Es, index: &str, tags: &TagRewrite, min_gc_deletes: Duration) -> Result<Value, IndexError> {
    match cluster::readiness::check_target(target, index, tags, min_gc_deletes.as_millis() as u64).await {
        Ok(definition) => Ok(definition),
        Err(NotReady::Es(e)) => Err(e.into()),
        Err(NotReady::Missing(index)) => Err(IndexError::TargetMissing(index)),
        Err(NotReady::Unfit { index, problems }) => Err(IndexError::NotReady { index, problems }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bulk_load_settings_read_as_the_definition() {
        let expected = json!({"settings": {"index": {"number_of_replicas": "1", "number_of_shards": "2"}}, "mappings": {}, "aliases": {}});
        let bulk =
            json!({"settings": {"index": {"number_of_replicas": "0", "refresh_interval": "-1", "number_of_shards": "2"}}, "mappings": {}, "aliases": {}});
        assert_eq!(compare("t", &expected, &bulk).unwrap(), CreateOutcome::AlreadyExists);
        // Other values are still differences.
        let other =
            json!({"settings": {"index": {"number_of_replicas": "2", "refresh_interval": "5s", "number_of_shards": "2"}}, "mappings": {}, "aliases": {}});
        let Err(IndexError::DefinitionMismatch { differences, .. }) = compare("t", &expected, &other) else { panic!("must differ") };
        assert_eq!(differences.len(), 2, "{differences:?}");
    }

    #[test]
    fn a_different_tag_normalizer_names_the_flag() {
        let legacy = json!({"mappings": {"dynamic_templates": [{"tags": {"mapping": {"type": "text"}, "path_match": "actions.tags.*"}}]}});
        let plain = schema::target_definition(&legacy, &TargetDefinitionConfig::default()).unwrap();
        let normalized =
            schema::target_definition(&legacy, &TargetDefinitionConfig { tag_normalizer: Some(TagNormalizer::Lowercase), ..Default::default() }).unwrap();
        assert_eq!(compare("t", &normalized, &normalized).unwrap(), CreateOutcome::AlreadyExists);
        let Err(IndexError::DefinitionMismatch { differences, .. }) = compare("t", &plain, &normalized) else { panic!("must differ") };
        assert!(differences.last().unwrap().contains("--tag-normalizer the index was created with"), "{differences:?}");
    }

    fn nodes() -> Value {
        json!({"nodes": {
            "n1": {"name": "es-1", "host": "10.0.0.1", "ip": "10.0.0.1", "roles": ["data", "master"], "attributes": {"box": "hot", "zone": "eu-1"}},
            "n2": {"name": "es-2", "host": "10.0.0.2", "ip": "10.0.0.2", "roles": ["data_warm"], "attributes": {"box": "warm", "zone": "eu-2"}}
        }})
    }

    #[test]
    fn allocation_filters_pass_only_when_a_target_node_matches() {
        let vals = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let key = "index.routing.allocation.require.box";
        assert_eq!(attribute_problem(&nodes(), key, "box", &vals(&["hot"]), true), None);
        assert_eq!(attribute_problem(&nodes(), key, "box", &vals(&["wa*"]), true), None);
        let problem = attribute_problem(&nodes(), key, "box", &vals(&["cold"]), true).expect("no node has box=cold");
        assert!(problem.contains("its nodes have box: hot, warm"), "{problem}");
        assert!(problem.contains(&format!("--drop-setting {key}")) && problem.contains(&format!("--setting {key}=<value>")), "{problem}");
        // require: one node must match every value; include: any value on any node.
        assert!(attribute_problem(&nodes(), key, "zone", &vals(&["eu-1", "eu-2"]), true).is_some());
        assert_eq!(attribute_problem(&nodes(), "index.routing.allocation.include.zone", "zone", &vals(&["us-1", "eu-2"]), false), None);
        let problem = attribute_problem(&nodes(), "index.routing.allocation.include.rack", "rack", &vals(&["r1"]), false).unwrap();
        assert!(problem.contains("none of its nodes has attribute `rack`"), "{problem}");
        // Built-in attributes read the node's own fields.
        assert_eq!(attribute_problem(&nodes(), "k", "_name", &vals(&["es-2"]), true), None);
        assert!(attribute_problem(&nodes(), "k", "_name", &vals(&["legacy-node-7"]), true).is_some());
        assert_eq!(attribute_problem(&nodes(), "k", "_ip", &vals(&["10.0.0.*"]), true), None);
        assert_eq!(attribute_problem(&nodes(), "k", "_id", &vals(&["n2"]), true), None);
        assert_eq!(attribute_problem(&nodes(), "k", "_tier", &vals(&["data_hot"]), true), None, "the generic data role holds every tier");
        assert!(attribute_problem(&json!({"nodes": {"n": {"roles": ["data_warm"]}}}), "k", "_tier", &vals(&["data_hot"]), true).is_some());
    }

    #[test]
    fn pipelines_called_by_a_pipeline_and_system_fields() {
        let def = json!({"processors": [
            {"pipeline": {"name": "inner"}},
            {"set_security_user": {"field": "u", "on_failure": [{"pipeline": {"name": "fallback"}}]}},
            {"pipeline": {"name": "{{_ingest.pipeline}}-x"}},
            {"pipeline": {"name": "inner"}}
        ], "on_failure": [{"pipeline": {"name": "errors"}}]});
        let mut called = called_pipelines(&def);
        called.sort();
        assert_eq!(called, ["errors", "fallback", "inner"]);
        assert!(called_pipelines(&json!({"processors": []})).is_empty());
        let reported = json!({"description": "d", "processors": [], "version": 3, "created_date_millis": 1, "modified_date_millis": 2});
        assert_eq!(user_pipeline(reported), json!({"description": "d", "processors": [], "version": 3}));
    }

    #[test]
    fn text_tags_warning_says_what_changes_and_how_to_measure_it() {
        let seed = json!({"mappings": {"dynamic_templates": [{"tags": {"mapping": {"type": "text"}, "path_match": "actions.tags.*"}}]}});
        let fields = schema::analysed_tag_fields(&seed, "actions.tags");
        let plain = tag_text_warning(&fields, None).expect("the seed's template is text");
        for needle in [
            "analysed text",
            "dynamic template `tags`",
            "`John`, `john` and `John Smith`",
            "finds exactly `John`",
            "--tag-normalizer lowercase",
            "backfill parity --queries",
        ] {
            assert!(plain.contains(needle), "{needle}: {plain}");
        }
        let normalized = tag_text_warning(&fields, Some(TagNormalizer::Lowercase)).unwrap();
        assert!(
            normalized.contains("case-insensitive exact matches keep working")
                && normalized.contains("partial-word matches (`John Smith` for `John`) are lost"),
            "{normalized}"
        );
        assert!(normalized.contains(schema::TAG_NORMALIZER_NAME), "{normalized}");
        // Keyword tags: nothing to say, unless a normalizer makes them case-insensitive.
        assert_eq!(tag_text_warning(&[], None), None);
        assert!(tag_text_warning(&[], Some(TagNormalizer::Lowercase)).unwrap().contains("become case-insensitive"));

        let report = |fields: Vec<AnalysedTagField>, n| CreateIndexReport { outcome: CreateOutcome::Created, analysed_tag_fields: fields, tag_normalizer: n };
        let line = report(fields.clone(), Some(TagNormalizer::Lowercase)).tags_summary().unwrap();
        assert!(line.starts_with("tags: the legacy index maps 1 tag field(s) or template(s) as analysed text"), "{line}");
        assert!(line.contains("`lowercase` normalizer `cutover_tag_lowercase`") && line.contains("backfill parity --queries"), "{line}");
        assert!(report(fields, None).tags_summary().unwrap().contains("exact (case-sensitive)"));
        assert_eq!(report(vec![], None).tags_summary(), None);
    }

    #[test]
    fn create_index_tag_normalizer_flags() {
        use clap::{CommandFactory, Parser};
        let mut cmd = crate::cli::Cli::command();
        let help = cmd.find_subcommand_mut("create-index").unwrap().render_long_help().to_string();
        for needle in
            ["--tag-normalizer <lowercase>", "case-insensitive", "partial-word matches are lost", "--allow-tag-key-case-collisions", "backfill parity"]
        {
            assert!(help.contains(needle), "create-index --help lacks {needle}:\n{help}");
        }
        let parse = |extra: &[&str]| {
            let mut args = vec!["backfill", "create-index", "--source-index", "a", "--target-index", "b"];
            args.extend_from_slice(extra);
            crate::cli::Cli::try_parse_from(args).map(|c| match c.command {
                crate::cli::Command::CreateIndex(a) => (a.tag_normalizer, a.allow_tag_key_case_collisions),
                _ => unreachable!(),
            })
        };
        assert_eq!(parse(&[]).unwrap(), (None, false));
        assert_eq!(parse(&["--tag-normalizer", "lowercase"]).unwrap(), (Some(TagNormalizer::Lowercase), false));
        assert_eq!(parse(&["--tag-normalizer", "lowercase", "--allow-tag-key-case-collisions"]).unwrap(), (Some(TagNormalizer::Lowercase), true));
        assert!(parse(&["--tag-normalizer", "asciifolding"]).is_err());
        assert!(parse(&["--allow-tag-key-case-collisions"]).is_err(), "only with a normalizer");
    }

    #[test]
    fn create_index_help_explains_the_legacy_setting_flags() {
        use clap::{CommandFactory, Parser};
        let mut cmd = crate::cli::Cli::command();
        let help = cmd.find_subcommand_mut("create-index").unwrap().render_long_help().to_string();
        for needle in
            ["--copy-pipelines", "MODIFIES documents", "--drop-setting <KEY>", "index.translog.durability=request", "node crash", "docs/legacy-settings.md"]
        {
            assert!(help.contains(needle), "create-index --help lacks {needle}:\n{help}");
        }
        let cli = crate::cli::Cli::try_parse_from([
            "backfill",
            "create-index",
            "--source-index",
            "a",
            "--target-index",
            "b",
            "--copy-pipelines",
            "--drop-setting",
            "index.default_pipeline",
            "--drop-setting",
            "routing.allocation.require.box",
        ])
        .unwrap();
        let crate::cli::Command::CreateIndex(a) = cli.command else { panic!("create-index") };
        assert!(a.copy_pipelines);
        assert_eq!(a.drop_settings, ["index.default_pipeline", "routing.allocation.require.box"]);
    }
}
