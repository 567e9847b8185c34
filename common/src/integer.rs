//! Integer fields of request bodies, read as JSON Schema reads `"type": "integer"`: any JSON
//! number with no fractional part. serde alone refuses `60.0` for a `u64`, yet it is the integer
//! 60 to the OpenAPI document and to clients that write every number as a float (Python's
//! `json.dumps(60.0)`, for one). A fraction or a value out of the type's range is still refused.
//!
//! Use with `#[serde(deserialize_with = "crate::integer::exact")]`, or for an `Option` field
//! `#[serde(default, deserialize_with = "crate::integer::option")]`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

/// An integer of type `T`, from an integral JSON number.
pub fn exact<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    // `deserialize_i64` is only a hint: serde_json hands over whatever number it read, and a
    // path or query deserializer parses its text as an integer.
    deserializer.deserialize_i64(IntegerVisitor(PhantomData))
}

/// An optional integer of type `T`; `null` or an absent field is `None`.
pub fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    Ok(Option::<Integer<T>>::deserialize(deserializer)?.map(|integer| integer.0))
}

struct Integer<T>(T);

impl<'de, T: TryFrom<i128>> Deserialize<'de> for Integer<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        exact(deserializer).map(Integer)
    }
}

/// 2^53: every integer up to it, and no other beyond, has an exact `f64`.
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

struct IntegerVisitor<T>(PhantomData<T>);

impl<T: TryFrom<i128>> IntegerVisitor<T> {
    fn fit<E: Error>(value: i128) -> Result<T, E> {
        T::try_from(value).map_err(|_| {
            E::invalid_value(
                Unexpected::Other(&value.to_string()),
                &"an integer in range",
            )
        })
    }
}

impl<T: TryFrom<i128>> Visitor<'_> for IntegerVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<T, E> {
        Self::fit(value.into())
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<T, E> {
        Self::fit(value.into())
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<T, E> {
        if value.fract() != 0.0 || !value.is_finite() {
            return Err(E::invalid_type(Unexpected::Float(value), &self));
        }
        // Past 2^53 a float no longer holds every integer: serde_json reads an integer literal
        // beyond i64 (`-9223372036854775809`) as the nearest float, which may round into range.
        if value.abs() > MAX_EXACT_FLOAT {
            return Err(E::invalid_value(
                Unexpected::Float(value),
                &"an integer in range",
            ));
        }
        // Integral and within ±2^53, so the cast is exact.
        Self::fit(value as i128)
    }

    fn visit_str<E: Error>(self, value: &str) -> Result<T, E> {
        let parsed: i128 = value
            .parse()
            .map_err(|_| E::invalid_type(Unexpected::Str(value), &self))?;
        Self::fit(parsed)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::exact")]
        count: u32,
        #[serde(default, deserialize_with = "super::option")]
        secs: Option<u64>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integral_floats_are_integers() {
        let body = parse(r#"{"count": 5.0, "secs": 60.0}"#).unwrap();
        assert_eq!((body.count, body.secs), (5, Some(60)));
        assert_eq!(parse(r#"{"count": 1e2}"#).unwrap().count, 100);
    }

    #[test]
    fn absent_and_null_options_are_none() {
        assert_eq!(parse(r#"{"count": 1}"#).unwrap().secs, None);
        assert_eq!(parse(r#"{"count": 1, "secs": null}"#).unwrap().secs, None);
    }

    #[test]
    fn fractions_out_of_range_values_and_strings_are_refused() {
        assert!(parse(r#"{"count": 1.5}"#).is_err());
        assert!(parse(r#"{"count": -1}"#).is_err());
        assert!(parse(r#"{"count": 4294967296}"#).is_err());
        assert!(parse(r#"{"count": 1e300}"#).is_err());
        let below_i64: Result<super::Integer<i64>, _> =
            serde_json::from_str("-9223372036854775809");
        assert!(below_i64.is_err());
        assert!(parse(r#"{"count": "5"}"#).is_err());
    }
}
