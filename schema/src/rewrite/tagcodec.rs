//! The `keyToValue` string codec.
//!
//! A target tag is stored as one keyword `keyToValue = escape(key) + ":" + value`, where
//! `escape` replaces `\` with `\\` and `:` with `\:` in the key only. The value is never
//! escaped: everything after the first *unescaped* colon is the value.
//!
//! Why this is sound:
//! - **Injective.** An escaped key is a sequence of tokens, each a plain character (neither
//!   `\` nor `:`), `\\` or `\:`. Reading left to right, a backslash always consumes the next
//!   character, so the tokenization is unique and the first bare `:` is exactly where the key
//!   ends. Hence [`decode_pair`] recovers `(key, value)` and two different pairs can never
//!   encode to the same string.
//! - **Prefix-safe.** `escape(key) + ":"` is a complete token sequence ending in the bare
//!   separator. Any encoded string starting with it tokenizes the same way over that prefix,
//!   so its key is exactly `key`: a `prefix` query on `escape(key) + ":"` matches "tag `key`
//!   exists" and nothing else (e.g. not key `key:x` or `key\`), whatever the values contain.
//!   Likewise `escape(key) + "."` matches exactly the keys starting with `key.`, because
//!   escaping is character-wise (`escape(a + b) == escape(a) + escape(b)`).

/// Why a `keyToValue` string could not be decoded; only strings not produced by
/// [`encode_pair`] can fail, so any of these means foreign or corrupted data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagCodecError {
    /// A backslash at the very end of the key part has nothing to escape.
    #[error("dangling backslash at byte {at}")]
    DanglingBackslash {
        /// Byte offset of the backslash.
        at: usize,
    },
    /// A backslash followed by something other than `\` or `:`; [`escape_key`] never writes
    /// that, and accepting it would make decoding non-injective.
    #[error("invalid escape `\\{found}` at byte {at}")]
    InvalidEscape {
        /// Byte offset of the backslash.
        at: usize,
        /// The character after it.
        found: char,
    },
    /// No unescaped `:` separates the key from the value.
    #[error("missing unescaped `:` separator")]
    MissingSeparator,
}

/// Escapes a tag key (`\` -> `\\`, `:` -> `\:`) so it can sit before the separator; also the
/// building block of "key exists" prefix queries (see the module doc for why that is safe).
pub fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    push_escaped_key(&mut out, key);
    out
}

fn push_escaped_key(out: &mut String, key: &str) {
    for c in key.chars() {
        if c == '\\' || c == ':' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Encodes one tag as the `keyToValue` keyword, the single field that lets the target answer
/// "key = value" with one exact term instead of one mapped field per legacy key.
pub fn encode_pair(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 3);
    push_pair(&mut out, key, value);
    out
}

/// [`encode_pair`] appended to `out` (for writers that reuse one buffer).
pub(crate) fn push_pair(out: &mut String, key: &str, value: &str) {
    push_escaped_key(out, key);
    out.push(':');
    out.push_str(value);
}

/// Decodes a `keyToValue` keyword back into `(key, value)`: splits at the first unescaped
/// colon and unescapes the key. Used to read target documents back (merges, verify).
pub fn decode_pair(key_to_value: &str) -> Result<(String, String), TagCodecError> {
    let mut key = String::new();
    let mut chars = key_to_value.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            ':' => return Ok((key, key_to_value[at + 1..].to_owned())),
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | ':'))) => key.push(e),
                Some((_, found)) => return Err(TagCodecError::InvalidEscape { at, found }),
                None => return Err(TagCodecError::DanglingBackslash { at }),
            },
            other => key.push(other),
        }
    }
    Err(TagCodecError::MissingSeparator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_colons_and_backslashes_in_keys_only() {
        assert_eq!(encode_pair("a:b", "c:d"), r"a\:b:c:d");
        assert_eq!(encode_pair(r"a\b", r"x\y"), r"a\\b:x\y");
        assert_eq!(encode_pair("", ""), ":");
        assert_eq!(encode_pair("ключ", "värde"), "ключ:värde");
        assert_eq!(escape_key(r"\:"), r"\\\:");
    }

    #[test]
    fn decodes_at_first_unescaped_colon() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(decode_pair(r"a\:b:c:d"), Ok(pair("a:b", "c:d")));
        assert_eq!(decode_pair(r"a\\:b"), Ok(pair(r"a\", "b")));
        assert_eq!(decode_pair(":"), Ok(pair("", "")));
        assert_eq!(decode_pair("ключ:värde"), Ok(pair("ключ", "värde")));
    }

    #[test]
    fn rejects_malformed_strings() {
        assert_eq!(decode_pair("abc"), Err(TagCodecError::MissingSeparator));
        assert_eq!(decode_pair(r"a\:b"), Err(TagCodecError::MissingSeparator));
        assert_eq!(decode_pair(r"ab\"), Err(TagCodecError::DanglingBackslash { at: 2 }));
        assert_eq!(decode_pair(r"a\x:b"), Err(TagCodecError::InvalidEscape { at: 1, found: 'x' }));
    }

    #[test]
    fn key_prefix_does_not_match_keys_that_merely_start_alike() {
        let prefix = format!("{}:", escape_key("k"));
        assert!(encode_pair("k", "v").starts_with(&prefix));
        assert!(!encode_pair("k:x", "v").starts_with(&prefix));
        assert!(!encode_pair(r"k\", "v").starts_with(&prefix));
        assert!(!encode_pair("kk", "v").starts_with(&prefix));
    }

    fn tricky() -> impl Strategy<Value = String> {
        prop_oneof!["[a:\\\\.é]{0,6}".prop_map(|s| s), any::<String>(),]
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(k in tricky(), v in tricky()) {
            prop_assert_eq!(decode_pair(&encode_pair(&k, &v)), Ok((k, v)));
        }

        #[test]
        fn encode_is_injective(a in (tricky(), tricky()), b in (tricky(), tricky())) {
            prop_assert_eq!(encode_pair(&a.0, &a.1) == encode_pair(&b.0, &b.1), a == b);
        }

        #[test]
        fn key_prefix_matches_exactly_that_key(k in tricky(), k2 in tricky(), v in tricky()) {
            let prefix = format!("{}:", escape_key(&k));
            prop_assert_eq!(encode_pair(&k2, &v).starts_with(&prefix), k == k2);
        }

        #[test]
        fn dotted_prefix_matches_exactly_subkeys(k in tricky(), k2 in tricky(), v in tricky()) {
            let prefix = format!("{}.", escape_key(&k));
            prop_assert_eq!(
                encode_pair(&k2, &v).starts_with(&prefix),
                k2.starts_with(&format!("{k}."))
            );
        }
    }
}
