//! Reading parts of SentinelOne answers leniently, straight from the text: a value of another
//! shape than expected reads as nothing instead of failing the whole answer, and what is not
//! read is skipped rather than built as a JSON tree.
//!
//! Answers are read into derived `#[serde(default)]` structs whose parts are wrapped here:
//! [`Object`] for a part that must be a JSON object, [`List`] for one that must be an array,
//! [`text`] for a field that must be a string. This module does not decide what an answer
//! means (see the look-ups and actions that read them).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `T` read from a JSON object; any other value reads as `T::default()`.
pub type Object<T> = Lenient<T, false>;

/// `T` (a collection) read from a JSON array; any other value reads as `T::default()`.
pub type List<T> = Lenient<T, true>;

/// `T` read from a JSON array (`LIST`) or object; any other value as `T::default()`.
#[derive(Debug, Default)]
pub struct Lenient<T, const LIST: bool>(pub T);

impl<'de, T: Deserialize<'de> + Default, const LIST: bool> Deserialize<'de> for Lenient<T, LIST> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T, const LIST: bool>(PhantomData<T>);

impl<T: Default, const LIST: bool> LenientVisitor<T, LIST> {
    fn nothing<E: Error>(self) -> Result<Lenient<T, LIST>, E> {
        Ok(Lenient(T::default()))
    }
}

impl<'de, T: Deserialize<'de> + Default, const LIST: bool> Visitor<'de>
    for LenientVisitor<T, LIST>
{
    type Value = Lenient<T, LIST>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if !LIST {
            return T::deserialize(MapAccessDeserializer::new(map)).map(Lenient);
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.nothing()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if LIST {
            return T::deserialize(SeqAccessDeserializer::new(seq)).map(Lenient);
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.nothing()
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
        self.nothing()
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<Self::Value, E> {
        self.nothing()
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<Self::Value, E> {
        self.nothing()
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<Self::Value, E> {
        self.nothing()
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
        self.nothing()
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        self.nothing()
    }

    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        self.nothing()
    }
}

/// A JSON string as text (`String`, or any text type made from a `&str`); any other value as
/// `None` (for `deserialize_with`). Nothing but the text is built: other values are skipped.
pub fn text<'de, D: Deserializer<'de>, T: for<'s> From<&'s str>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_any(TextVisitor(PhantomData))
}

struct TextVisitor<T>(PhantomData<T>);

impl<'de, T: for<'s> From<&'s str>> Visitor<'de> for TextVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(T::from(text)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Item {
        #[serde(deserialize_with = "text")]
        name: Option<String>,
    }

    #[test]
    fn other_shapes_read_as_nothing() {
        let read = |value: Value| {
            serde_json::from_value::<List<Vec<Object<Item>>>>(value)
                .unwrap()
                .0
                .into_iter()
                .map(|item| item.0.name)
                .collect::<Vec<_>>()
        };
        let name = |text: &str| Some(text.to_string());
        assert_eq!(
            read(json!([{"name": "a", "x": [1]}, 5, [{"name": "b"}], {"name": 1}, {}])),
            [name("a"), None, None, None, None]
        );
        for other in [json!(null), json!({"name": "a"}), json!("x"), json!(1.5)] {
            assert!(read(other.clone()).is_empty(), "{other}");
        }
    }
}
