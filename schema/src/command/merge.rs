//! Applying a [`MergePatch`] to either document form.
//!
//! The legacy side is the model of the legacy indexer; the target side must commute with the
//! rewrite. Tag-key removal is defined on flat keys (remove `k` and everything under `k.`),
//! because that is all the target form can see; the legacy side mirrors it through
//! [`remove_tag_key`], which also removes literal dotted spellings (`"k.x"`) and descends into
//! nested objects for dotted keys. A legacy indexer that only did `map.remove(k)` differs
//! only for documents mixing such spellings, which Elasticsearch conflates anyway (and for
//! `{"k": .., "k.x": ..}` rejects as a mapping conflict).

use super::MergePatch;
use crate::rewrite::{remove_tag_key, tag_entries, RewriteError, TagRewrite};
use serde_json::{Map, Value};

impl MergePatch {
    /// True when the patch touches no tags, so the tag field need not be read or rewritten.
    pub fn is_tag_free(&self) -> bool {
        self.tags_add.is_empty() && self.tags_remove.is_empty()
    }

    /// The first top-level field that `set`/`unset` names but the tag rewrite owns; decoding
    /// rejects such patches so the equivalence with the target form never breaks.
    pub fn reserved_field(&self, tags: &TagRewrite) -> Option<&str> {
        self.set.keys().chain(self.unset.iter()).map(String::as_str).find(|f| tags.is_reserved_field(f))
    }

    /// Applies to a LEGACY-form document (what the legacy indexer does): tags live at
    /// `legacy_path`; intermediate objects are created when adding, an emptied map is kept.
    /// If the path is blocked by a non-object the tag changes are skipped (the rewrite rejects
    /// such a document anyway).
    pub fn apply_legacy(&self, doc: &mut Map<String, Value>, tags: &TagRewrite) {
        self.apply_fields(doc);
        if self.is_tag_free() {
            return;
        }
        let segs = tags.legacy_segments();
        let Some(map) = crate::rewrite::legacy_tags_mut(doc, &segs, !self.tags_add.is_empty()) else {
            return;
        };
        for key in &self.tags_remove {
            remove_tag_key(map, key);
        }
        for (key, value) in &self.tags_add {
            remove_tag_key(map, key);
            if !value.is_null() {
                map.insert(key.clone(), value.clone());
            }
        }
    }

    /// Applies to a TARGET-form document so that for every legacy doc `d`:
    /// `rewrite(apply_legacy(d)) == apply_target(rewrite(d))`. Errors on a patch touching a
    /// reserved field or on a malformed tag field.
    pub fn apply_target(&self, doc: &mut Map<String, Value>, tags: &TagRewrite) -> Result<(), RewriteError> {
        if let Some(field) = self.reserved_field(tags) {
            return Err(RewriteError::ReservedField { field: field.to_owned() });
        }
        self.apply_fields(doc);
        if self.is_tag_free() {
            return Ok(());
        }
        let mut current = tags.target_tags(doc)?;
        for key in &self.tags_remove {
            current.retain(|t| !t.is_under(key));
        }
        for (key, value) in &self.tags_add {
            current.retain(|t| !t.is_under(key));
            current.extend(tag_entries(value, key)?);
        }
        tags.set_target_tags(doc, current);
        Ok(())
    }

    /// `set` then `unset`, identical in both forms.
    fn apply_fields(&self, doc: &mut Map<String, Value>) {
        for (field, value) in &self.set {
            doc.insert(field.clone(), value.clone());
        }
        for field in &self.unset {
            doc.remove(field);
        }
    }
}

#[cfg(test)]
mod tests;
