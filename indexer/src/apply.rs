//! Applying a batch of commands to the target cluster, per the convergence model.
//!
//! - Upserts and deletes are written with external versions: Elasticsearch keeps the highest
//!   version, so replay and backfill commute and a replayed command is harmless.
//! - A merge cannot be externally versioned (the update API refuses it), so it is
//!   read-merge-write: read the target's document and version; if the stored version is `>= v`
//!   the merge is superseded; otherwise write the merged document with version `v`.
//! - When the target lacks the document, its state lives in the legacy cluster: if the legacy
//!   copy is at `vL >= v` the legacy indexer already applied this merge, so the legacy copy is
//!   written at its own version; if `vL < v` it is the base, unless this indexer deleted the
//!   document after `vL` (the legacy indexer can lag): deletes are recorded in a side index of
//!   tombstones that reads never see. A tombstone at `t >= v` makes the merge superseded (a
//!   replay of a command older than the delete).
//! - A merge of a document that exists nowhere (absent from both clusters, or deleted after the
//!   legacy copy) follows the legacy indexer's rule (`--merge-absent`): `ignore` is a no-op
//!   (the update API without upsert), `create` writes the merge alone applied to an empty
//!   document at `v` (`doc_as_upsert`). See `decide` and docs/convergence.md for the case analysis.
//! - With `--legacy-version field:<path>` every document written carries the command's version
//!   at `<path>` (set after the command's own changes), as the legacy indexer stores it.
//! - A command whose target index is not one this indexer was configured with is poison
//!   (`unknown_index`): writing it would auto-create an index with a dynamic mapping and the
//!   default 60 s `gc_deletes`.
//!
//! Why this is race-free: commands of one document live in one partition and are applied in
//! order by one lane, so when a merge at `v` reads a base at `vb`, every command between `vb`
//! and `v` was already applied by this lane (or it would have raised the stored version). The
//! only other writer, the backfill, writes legacy states, whose versions are versions of
//! commands this lane has already seen; they can only lose (409) against a newer state.
//!
//! A batch is cut into *rounds*: round k holds the k-th command of each document, so a
//! document's commands are written in order while different documents share bulk requests.

use crate::config::MergeAbsent;
use cluster::bulk::{BulkOp, BulkOpKind};
use cluster::{BulkWriter, Class, ErrorCause, Es, Outcome, Poison, PoisonKind, RetryError, WriteError};
use schema::{Command, EncodedDoc, LegacyVersionSource, MergePatch, Op, TagRewrite};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

/// Everything needed to apply commands.
#[derive(Clone)]
pub struct Applier {
    pub writer: BulkWriter,
    pub legacy: Es,
    pub tags: TagRewrite,
    pub legacy_version: LegacyVersionSource,
    /// With `--legacy-version field:<path>`: the path where every written document carries
    /// the command's version.
    pub version_field: Option<String>,
    /// The legacy indexer's rule for a merge of a document that exists nowhere.
    pub merge_absent: MergeAbsent,
    /// The target indices checked at start; a command for another one is `unknown_index`
    /// poison (empty: no check).
    pub known_targets: Vec<String>,
    pub cancel: CancellationToken,
}

pub use schema::tombstone_index;

/// A document's last known state, read from one cluster.
#[derive(Clone, Debug)]
struct Stored {
    version: u64,
    source: Map<String, Value>,
}

impl Applier {
    /// Applies `cmds` in order per document; returns one outcome per command. Each command is
    /// written to its [`Command::target_index`], mapped when it was decoded.
    pub async fn apply(&self, cmds: &[&Command]) -> Result<Vec<Outcome>, WriteError> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; cmds.len()];
        let mut known = Vec::with_capacity(cmds.len());
        for (i, c) in cmds.iter().enumerate() {
            match self.unknown_index(c) {
                Some(reason) => outcomes[i] = Some(Outcome::Poison(Poison::new(PoisonKind::UnknownIndex, reason))),
                None => known.push(i),
            }
        }
        for round in rounds(&known, |&i| (cmds[i].target_index.as_str(), cmds[i].id.as_str())) {
            let round: Vec<usize> = round.into_iter().map(|k| known[k]).collect();
            self.apply_round(cmds, &round, &mut outcomes).await?;
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every command has an outcome")).collect())
    }

    /// Why a command's index is not one of this indexer's targets, if it is not.
    fn unknown_index(&self, cmd: &Command) -> Option<String> {
        let target = &cmd.target_index;
        if self.known_targets.is_empty() || self.known_targets.iter().any(|t| t == target) {
            return None;
        }
        Some(format!(
            "index {:?} maps to target {target:?}, which is not a target of this indexer ({}); map it with --index-map {}=<target> or set --default-index (writing it would auto-create {target:?} with a dynamic mapping and 60 s gc_deletes)",
            cmd.index,
            self.known_targets.join(", "),
            cmd.index
        ))
    }

    /// The document as the legacy indexer stores it: with the command's version at the version
    /// field, when it keeps one. Valid on either form (legacy or target): storing the version
    /// commutes with the tag rewrite for every version field `refusals` accepts.
    fn with_version(&self, doc: &mut Map<String, Value>, version: u64) {
        if let Some(path) = &self.version_field {
            schema::store_version(doc, path, version);
        }
    }

    async fn apply_round(&self, cmds: &[&Command], round: &[usize], outcomes: &mut [Option<Outcome>]) -> Result<(), WriteError> {
        let merges: Vec<usize> = round.iter().copied().filter(|&i| matches!(cmds[i].op, Op::Merge(_))).collect();
        let bases = self.merge_bases(cmds, &merges).await?;
        let mut ops: Vec<BulkOp<'_>> = Vec::with_capacity(round.len() + 8);
        let mut op_of: Vec<(usize, usize)> = Vec::with_capacity(round.len()); // (command, op index)
        let mut tombstones: Vec<usize> = Vec::new(); // op indices of tombstone writes
        for &i in round {
            let cmd = cmds[i];
            let planned = match &cmd.op {
                // Decoding already rewrote the document (and rejected what the rewrite refuses):
                // it is written as it is, borrowed, unless the version field must be stored in
                // it. `store_version` commutes with the rewrite for every path `refusals`
                // accepts (property-tested in schema), so it is stored on the target form.
                Op::Upsert(doc) => match &self.version_field {
                    None => Plan::Write(cmd.version, Cow::Borrowed(doc)),
                    Some(path) => match doc.with_version(path, cmd.version) {
                        Ok(src) => Plan::Write(cmd.version, Cow::Owned(src)),
                        Err(e) => Plan::Done(Outcome::Poison(Poison::new(PoisonKind::Rewrite, e.to_string()))),
                    },
                },
                Op::Delete => Plan::Delete,
                Op::Merge(patch) => self.plan_merge(cmd, patch, bases.get(&i)),
            };
            let op = |version, kind| BulkOp {
                index: Cow::Borrowed(cmd.target_index.as_str()),
                id: Cow::Borrowed(cmd.id.as_str()),
                routing: cmd.routing.as_deref().map(Cow::Borrowed),
                version,
                kind,
            };
            match planned {
                Plan::Done(o) => outcomes[i] = Some(o),
                Plan::Write(version, source) => {
                    op_of.push((i, ops.len()));
                    ops.push(op(version, BulkOpKind::Index(source)));
                }
                Plan::Delete => {
                    op_of.push((i, ops.len()));
                    ops.push(op(cmd.version, BulkOpKind::Delete));
                    tombstones.push(ops.len());
                    ops.push(tombstone_op(&cmd.target_index, &cmd.id, cmd.version));
                }
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let resolved = self.writer.write(&ops).await?;
        // A tombstone is what keeps a later merge from resurrecting the document: one the
        // cluster refused is the cluster's problem (its mapping or settings), never the record's.
        for &t in &tombstones {
            if let Outcome::Poison(poison) = &resolved[t] {
                return Err(WriteError::Refused(format!("tombstone write to {} refused: {}", ops[t].index, poison.reason)));
            }
        }
        let mut resolved: Vec<Option<Outcome>> = resolved.into_iter().map(Some).collect();
        for (i, op) in op_of {
            outcomes[i] = resolved[op].take();
        }
        Ok(())
    }

    fn plan_merge(&self, cmd: &Command, patch: &MergePatch, base: Option<&Base>) -> Plan<'static> {
        let poison = |e: schema::RewriteError| Plan::Done(Outcome::Poison(Poison::new(PoisonKind::Rewrite, e.to_string())));
        let merged = |mut src: Map<String, Value>| match patch.apply_target(&mut src, &self.tags) {
            Ok(()) => {
                self.with_version(&mut src, cmd.version);
                Plan::Write(cmd.version, Cow::Owned(EncodedDoc::from_map(&src)))
            }
            Err(e) => poison(e),
        };
        let absent = Base::Absent { tombstone: None };
        let base = base.unwrap_or(&absent);
        match decide(base, cmd.version, self.merge_absent) {
            Decision::Superseded => Plan::Done(Outcome::Superseded),
            Decision::NoOp => Plan::Done(Outcome::NoOp),
            Decision::MergeOnTarget => match base {
                Base::Target(s) => merged(s.source.clone()),
                _ => unreachable!("decided from a target base"),
            },
            // The legacy indexer already applied this merge: its copy is the state.
            Decision::LegacyCopy | Decision::MergeOnLegacy => {
                let Base::Legacy { stored, .. } = base else { unreachable!("decided from a legacy base") };
                match self.tags.to_target(&stored.source) {
                    Ok(src) if stored.version >= cmd.version => Plan::Write(stored.version, Cow::Owned(EncodedDoc::from_map(&src))),
                    Ok(src) => merged(src),
                    Err(e) => poison(e),
                }
            }
            Decision::Create => {
                let mut doc = Map::new();
                patch.apply_legacy(&mut doc, &self.tags);
                self.with_version(&mut doc, cmd.version);
                match self.tags.to_target(&doc) {
                    Ok(src) => Plan::Write(cmd.version, Cow::Owned(EncodedDoc::from_map(&src))),
                    Err(e) => poison(e),
                }
            }
        }
    }

    /// Reads the base of every merge: from the target, else from the legacy cluster (plus the
    /// tombstone record, to know whether the legacy copy was deleted since).
    async fn merge_bases(&self, cmds: &[&Command], merges: &[usize]) -> Result<HashMap<usize, Base>, WriteError> {
        let mut bases = HashMap::new();
        if merges.is_empty() {
            return Ok(bases);
        }
        let keys: Vec<DocKey> =
            merges.iter().map(|&i| DocKey { index: cmds[i].target_index.clone(), id: cmds[i].id.clone(), routing: cmds[i].routing.clone() }).collect();
        let in_target = self.mget(self.writer.es(), &keys, false).await?;
        let absent: Vec<usize> = (0..merges.len()).filter(|&k| in_target[k].is_none()).collect();
        for (k, stored) in in_target.into_iter().enumerate() {
            if let Some(s) = stored {
                bases.insert(merges[k], Base::Target(s));
            }
        }
        if absent.is_empty() {
            return Ok(bases);
        }
        let legacy_keys: Vec<DocKey> =
            absent.iter().map(|&k| DocKey { index: cmds[merges[k]].index.clone(), id: keys[k].id.clone(), routing: keys[k].routing.clone() }).collect();
        let tomb_keys: Vec<DocKey> = absent.iter().map(|&k| DocKey { index: tombstone_index(&keys[k].index), id: keys[k].id.clone(), routing: None }).collect();
        let in_legacy = self.mget(&self.legacy, &legacy_keys, true).await?;
        let tombs = self.mget(self.writer.es(), &tomb_keys, false).await?;
        for ((&k, legacy), tomb) in absent.iter().zip(in_legacy).zip(tombs) {
            let tombstone = tomb.map(|t| t.version);
            let base = match legacy {
                Some(stored) => Base::Legacy { stored, tombstone },
                None => Base::Absent { tombstone },
            };
            bases.insert(merges[k], base);
        }
        Ok(bases)
    }

    /// `_mget` with retries; the version of legacy documents comes from the configured source.
    /// A document that comes back with an `error` instead of `found` is never read as absent:
    /// the read is retried until every document answers (a shard may be recovering), or the
    /// indexer halts when the error says the cluster is misconfigured (index missing).
    async fn mget(&self, es: &Es, keys: &[DocKey], is_legacy: bool) -> Result<Vec<Option<Stored>>, WriteError> {
        let docs: Vec<Value> = keys
            .iter()
            .map(|k| {
                let mut d = json!({"_index": k.index, "_id": k.id});
                if let Some(r) = &k.routing {
                    d["routing"] = Value::String(r.clone());
                }
                d
            })
            .collect();
        let body = json!({ "docs": docs });
        let read = || async {
            let response = es.mget(&body).await.map_err(|e| match e.is_retryable() {
                true => ReadFailure::Retry(e.to_string()),
                false => ReadFailure::Halt(e.to_string()),
            })?;
            self.read_docs(&response, keys.len(), is_legacy)
        };
        self.writer.retry_policy().run("mget", &self.cancel, |f| matches!(f, ReadFailure::Retry(_)), read).await.map_err(|e| match e {
            RetryError::Failed(ReadFailure::Halt(why) | ReadFailure::Retry(why)) => {
                WriteError::Refused(format!("reading merge bases from {}: {why}", es.url()))
            }
            RetryError::GaveUp { why, last } => WriteError::gave_up(why, format!("reading merge bases from {}: {last}", es.url())),
        })
    }

    /// The documents of an `_mget` answer, or why it cannot be used.
    fn read_docs(&self, response: &Value, expected: usize, is_legacy: bool) -> Result<Vec<Option<Stored>>, ReadFailure> {
        let found = response["docs"].as_array().ok_or_else(|| ReadFailure::Retry("_mget answer without docs".into()))?;
        if found.len() != expected {
            return Err(ReadFailure::Retry(format!("_mget returned {} docs for {expected}", found.len())));
        }
        let mut out = Vec::with_capacity(expected);
        for hit in found {
            if let Some(error) = hit.get("error").filter(|e| !e.is_null()) {
                let cause = ErrorCause::parse(&json!({ "error": error }));
                let what = format!("{}[{}]: {cause}", hit["_index"].as_str().unwrap_or("?"), hit["_id"].as_str().unwrap_or("?"));
                metrics::counter!("cutover_indexer_read_errors_total", "class" => cluster::error::classify_read(&cause).as_str()).increment(1);
                return Err(match cluster::error::classify_read(&cause) {
                    Class::Halt => ReadFailure::Halt(what),
                    _ => ReadFailure::Retry(what),
                });
            }
            if hit["found"] != Value::Bool(true) {
                out.push(None);
                continue;
            }
            let source = hit["_source"].as_object().cloned().unwrap_or_default();
            let version = if is_legacy {
                schema::legacy_version(hit, &self.legacy_version)
                    .map_err(|e| ReadFailure::Halt(format!("legacy document {} has no usable version: {e}", hit["_id"])))?
            } else {
                hit["_version"].as_u64().ok_or_else(|| ReadFailure::Retry(format!("document {} without _version", hit["_id"])))?
            };
            out.push(Some(Stored { version, source }));
        }
        Ok(out)
    }
}

/// Why an `_mget` answer cannot be used.
enum ReadFailure {
    Retry(String),
    Halt(String),
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFailure::Retry(why) | ReadFailure::Halt(why) => f.write_str(why),
        }
    }
}

enum Plan<'a> {
    Done(Outcome),
    Write(u64, Cow<'a, EncodedDoc>),
    Delete,
}

/// Where a merge's base was found. `tombstone`: the version of this indexer's last delete of
/// the document, if any.
enum Base {
    Target(Stored),
    Legacy { stored: Stored, tombstone: Option<u64> },
    Absent { tombstone: Option<u64> },
}

/// What a merge at version `v` does, given its base (see the case analysis in docs/convergence.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// A newer state (or a newer delete) is already there.
    Superseded,
    /// The document exists nowhere and the legacy indexer ignores such merges.
    NoOp,
    /// Merge onto the target's document, write at `v`.
    MergeOnTarget,
    /// The legacy copy at `vL >= v` already includes this merge: write it at `vL`.
    LegacyCopy,
    /// Merge onto the legacy copy at `vL < v`, write at `v`.
    MergeOnLegacy,
    /// The document exists nowhere and the legacy indexer creates it from the merge alone.
    Create,
}

fn decide(base: &Base, v: u64, mode: MergeAbsent) -> Decision {
    let nowhere = match mode {
        MergeAbsent::Ignore => Decision::NoOp,
        MergeAbsent::Create => Decision::Create,
    };
    match base {
        Base::Target(s) if s.version >= v => Decision::Superseded,
        Base::Target(_) => Decision::MergeOnTarget,
        // This indexer deleted the document at `t >= v`, after the legacy copy: a replay.
        Base::Legacy { stored, tombstone: Some(t) } if *t >= v && *t > stored.version => Decision::Superseded,
        Base::Absent { tombstone: Some(t) } if *t >= v => Decision::Superseded,
        Base::Legacy { stored, .. } if stored.version >= v => Decision::LegacyCopy,
        // Deleted (by this indexer) after the legacy copy: the copy is no valid base.
        Base::Legacy { stored, tombstone: Some(t) } if *t > stored.version => nowhere,
        Base::Legacy { .. } => Decision::MergeOnLegacy,
        Base::Absent { .. } => nowhere,
    }
}

struct DocKey {
    index: String,
    id: String,
    routing: Option<String>,
}

fn tombstone_op<'a>(target: &str, id: &'a str, version: u64) -> BulkOp<'a> {
    let mut src = Map::new();
    src.insert("version".into(), Value::from(version));
    BulkOp {
        index: Cow::Owned(tombstone_index(target)),
        id: Cow::Borrowed(id),
        routing: None,
        version,
        kind: BulkOpKind::Index(Cow::Owned(EncodedDoc::from_map(&src))),
    }
}

/// Splits commands into rounds: round k holds, in input order, the k-th command of each
/// document (keyed by `key`). Writing round after round keeps each document's order.
pub fn rounds<'a, T, K, F>(items: &'a [T], key: F) -> Vec<Vec<usize>>
where
    K: std::hash::Hash + Eq + 'a,
    F: Fn(&'a T) -> K,
{
    let mut seen: rustc_hash::FxHashMap<K, usize> = rustc_hash::FxHashMap::with_capacity_and_hasher(items.len(), Default::default());
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let n = seen.entry(key(item)).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_per_document_order() {
        let ids = ["a", "b", "a", "c", "a", "b"];
        let r = rounds(&ids, |s| *s);
        assert_eq!(r, vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
    }

    fn stored(version: u64) -> Stored {
        Stored { version, source: Map::new() }
    }

    /// Every case of the argument in docs/convergence.md, in both modes.
    #[test]
    fn merge_decisions() {
        use Decision::*;
        let v = 10;
        let legacy = |vl: u64, t: Option<u64>| Base::Legacy { stored: stored(vl), tombstone: t };
        let cases: Vec<(&str, Base, Decision, Decision)> = vec![
            ("target newer", Base::Target(stored(12)), Superseded, Superseded),
            ("target same", Base::Target(stored(10)), Superseded, Superseded),
            ("target older", Base::Target(stored(7)), MergeOnTarget, MergeOnTarget),
            ("legacy already applied it", legacy(10, None), LegacyCopy, LegacyCopy),
            ("legacy ahead", legacy(15, Some(12)), LegacyCopy, LegacyCopy),
            ("legacy applied it, deleted since", legacy(10, Some(11)), Superseded, Superseded),
            ("legacy older", legacy(5, None), MergeOnLegacy, MergeOnLegacy),
            ("legacy older, old tombstone", legacy(5, Some(3)), MergeOnLegacy, MergeOnLegacy),
            ("deleted after the legacy copy", legacy(5, Some(8)), NoOp, Create),
            ("legacy older, delete newer than the merge", legacy(5, Some(11)), Superseded, Superseded),
            ("nothing anywhere", Base::Absent { tombstone: None }, NoOp, Create),
            ("absent, older delete", Base::Absent { tombstone: Some(4) }, NoOp, Create),
            ("absent, delete newer than the merge", Base::Absent { tombstone: Some(10) }, Superseded, Superseded),
        ];
        for (what, base, ignore, create) in cases {
            assert_eq!(decide(&base, v, MergeAbsent::Ignore), ignore, "{what} (ignore)");
            assert_eq!(decide(&base, v, MergeAbsent::Create), create, "{what} (create)");
        }
    }

    #[test]
    fn tombstones_live_beside_the_target() {
        assert_eq!(tombstone_index("items-v2"), "cutover-tombstones-items-v2");
        let op = tombstone_op("items", "7", 42);
        assert_eq!(op.version, 42);
        assert_eq!(op.index, "cutover-tombstones-items");
    }
}
