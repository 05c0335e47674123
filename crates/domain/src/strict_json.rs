//! Strict JSON for nested objects. serde's derived structs also accept a JSON array of
//! their fields in order (`[from, to]` for a diff), which would let a malformed request
//! be stored; these helpers accept only objects, while keeping serde's duplicate-field
//! and unknown-field checks (the object is handed to the derived code as a map).

use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A `T` that was written as a JSON object.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// `deserialize_with` for an optional object field.
pub fn opt_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Object<T>>::deserialize(d)?.map(|o| o.0))
}

/// `deserialize_with` for a list of objects.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Object<T>>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

/// `deserialize_with` for an optional list of objects.
pub fn opt_objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(Option::<Vec<Object<T>>>::deserialize(d)?.map(|v| v.into_iter().map(|o| o.0).collect()))
}

/// An integer written as JSON Schema counts integers: `326` and `326.0` alike (clients
/// generated from the OpenAPI document may send either), but not `326.5`.
fn integral<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    let whole = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
        .or_else(|| {
            // 2^63: larger floats cannot be exact integers of any field we have.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18)
                .map(|f| f as i128)
        })
        .ok_or_else(|| D::Error::custom("must be an integer"))?;
    T::try_from(whole).map_err(|_| D::Error::custom("is out of range"))
}

/// `deserialize_with` for an integer field (see `integral`).
pub fn integer<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    integral(d)
}

/// `deserialize_with` for an optional integer field (see `integral`).
pub fn opt_integer<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    struct Int<T>(T);
    impl<'de, T: TryFrom<i128>> Deserialize<'de> for Int<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            integral(d).map(Int)
        }
    }
    Ok(Option::<Int<T>>::deserialize(d)?.map(|i| i.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldDiff;

    #[derive(Debug, serde::Deserialize)]
    struct Ints {
        #[serde(deserialize_with = "integer")]
        a: u64,
        #[serde(default, deserialize_with = "opt_integer")]
        b: Option<i64>,
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction() {
        let ok: Ints = serde_json::from_str(r#"{"a": 326.0, "b": -3}"#).unwrap();
        assert_eq!((ok.a, ok.b), (326, Some(-3)));
        let ok: Ints = serde_json::from_str(r#"{"a": 1e2}"#).unwrap();
        assert_eq!((ok.a, ok.b), (100, None));
        assert!(serde_json::from_str::<Ints>(r#"{"a": 326.5}"#).is_err());
        assert!(serde_json::from_str::<Ints>(r#"{"a": -1}"#).is_err());
        assert!(serde_json::from_str::<Ints>(r#"{"a": "1"}"#).is_err());
        assert!(serde_json::from_str::<Ints>(r#"{"a": 1e300}"#).is_err());
    }

    #[test]
    fn objects_pass_arrays_do_not() {
        let ok: Object<FieldDiff> = serde_json::from_str(r#"{"from": 1, "to": 2}"#).unwrap();
        assert_eq!(ok.0.to, crate::DiffValue::Number(2.into()));
        let err = serde_json::from_str::<Object<FieldDiff>>("[1, 2]")
            .err()
            .unwrap();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
        let dup = serde_json::from_str::<Object<FieldDiff>>(r#"{"from": 1, "from": 1, "to": 2}"#);
        assert!(dup.err().unwrap().to_string().contains("duplicate field"));
    }
}
