//! One JSON value read by a typed reader that cares about some of its types only.
//!
//! The body decoder and the encoded rewrite each read a value whose strings or objects they
//! keep in their own form (borrowed text, fields), and everything else only to name its type
//! or to write it back: that "everything else" is read here, once, exactly as
//! `serde_json::Value` reads it.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// What a reader makes of strings and objects; every other value (null, booleans, numbers,
/// arrays) reaches [`ReadAs::other`] as the `Value` serde_json makes of it.
pub(crate) trait ReadAs<'de>: Sized {
    type Out;
    /// What the reader expects, for serde's error messages.
    const EXPECTING: &'static str;
    /// Any value the reader does not take in its own form.
    fn other(self, value: Value) -> Self::Out;
    /// A string (borrowed from the text unless it had escapes); by default a `Value`.
    fn string(self, s: Cow<'de, str>) -> Self::Out {
        self.other(Value::String(s.into_owned()))
    }
    /// An object; by default a `Value`.
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(|v| self.other(v))
    }
}

/// Reads one value with `R` (a seed: `next_value_seed(Reader(r))`, or `Reader(r).deserialize(d)`).
pub(crate) struct Reader<R>(pub(crate) R);

impl<'de, R: ReadAs<'de>> DeserializeSeed<'de> for Reader<R> {
    type Value = R::Out;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<R::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: ReadAs<'de>> Visitor<'de> for Reader<R> {
    type Value = R::Out;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(R::EXPECTING)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<R::Out, E> {
        Ok(self.0.string(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<R::Out, E> {
        Ok(self.0.string(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<R::Out, E> {
        Ok(self.0.string(Cow::Owned(s)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R::Out, A::Error> {
        self.0.object(map)
    }
    fn visit_unit<E>(self) -> Result<R::Out, E> {
        Ok(self.0.other(Value::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<R::Out, E> {
        Ok(self.0.other(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<R::Out, E> {
        Ok(self.0.other(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<R::Out, E> {
        Ok(self.0.other(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<R::Out, E> {
        Ok(self.0.other(Value::from(n)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R::Out, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(|v| self.0.other(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps strings, takes everything else as a value.
    struct Probe;
    impl<'de> ReadAs<'de> for Probe {
        type Out = Result<Cow<'de, str>, Value>;
        const EXPECTING: &'static str = "anything";
        fn other(self, value: Value) -> Self::Out {
            Err(value)
        }
        fn string(self, s: Cow<'de, str>) -> Self::Out {
            Ok(s)
        }
    }

    #[test]
    fn everything_else_is_read_as_value_reads_it() {
        for text in ["null", "true", "-3", "18446744073709551615", "1.5e3", "[1, [null], {\"a\": 2}]", "{\"b\": {\"c\": []}}"] {
            let mut de = serde_json::Deserializer::from_str(text);
            let got = Reader(Probe).deserialize(&mut de).unwrap();
            assert_eq!(got, Err(serde_json::from_str::<Value>(text).unwrap()), "{text}");
        }
        let mut de = serde_json::Deserializer::from_str(r#""plain""#);
        assert!(matches!(Reader(Probe).deserialize(&mut de).unwrap(), Ok(Cow::Borrowed("plain"))));
        let mut de = serde_json::Deserializer::from_str(r#""esc\u0061ped""#);
        assert!(matches!(Reader(Probe).deserialize(&mut de).unwrap(), Ok(Cow::Owned(s)) if s == "escaped"));
    }
}
