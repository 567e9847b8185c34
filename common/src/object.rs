//! Request bodies are JSON objects. serde's derived structs also accept an array of their fields
//! in declaration order, so `[{"payload": 1}]` would read as a task whose payload is
//! `{"payload": 1}`; the OpenAPI document says `"type": "object"`, and so do the services:
//! [`Object`] reads a body, [`vec`] the objects of an array field, from JSON objects only.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `T`, read from a JSON object only.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Object)
    }
}

/// An array field whose elements are each read from a JSON object only:
/// `T`, from a JSON object only, for a field:
/// `#[serde(deserialize_with = "crate::object::object")]`.
pub fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Object::<T>::deserialize(deserializer).map(|Object(value)| value)
}

/// `#[serde(deserialize_with = "crate::object::vec")]`.
pub fn vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(ObjectsVisitor(PhantomData))
}

struct ObjectsVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectsVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JSON objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Object(item)) = seq.next_element::<Object<T>>()? {
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::Object;
    use crate::{SubmitBatch, SubmitTask};

    #[test]
    fn a_body_must_be_an_object() {
        assert!(serde_json::from_str::<Object<SubmitTask>>(r#"{"payload": 1}"#).is_ok());
        assert!(serde_json::from_str::<Object<SubmitTask>>(r#"[{"payload": 1}]"#).is_err());
    }

    #[test]
    fn each_task_of_a_batch_must_be_an_object() {
        let batch = serde_json::from_str::<SubmitBatch>(r#"{"tasks": [{"payload": 1}]}"#);
        assert_eq!(batch.unwrap().tasks.len(), 1);
        assert!(serde_json::from_str::<SubmitBatch>(r#"{"tasks": [[null, null]]}"#).is_err());
        assert!(SubmitBatch::deserialize(serde_json::json!({ "tasks": {} })).is_err());
    }
}
