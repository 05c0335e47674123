//! Opaque list cursors. A cursor holds the sort key of the row it continues from and a
//! fingerprint of the filters and sort it was made for, so that reusing it with other
//! parameters is refused (400) instead of silently returning a wrong page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// One sort-key value of a row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// A time in microseconds since the epoch.
    Time(i64),
    /// A text key (the operation id).
    Text(String),
}

/// Where in a sorted list a row sits: its sort-key values and its `seq` tie-breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "k")]
    pub keys: Vec<KeyValue>,
    #[serde(rename = "s")]
    pub seq: u64,
}

/// Which way a cursor walks from its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Rows strictly after the position, in list order.
    #[serde(rename = "n")]
    Next,
    /// Rows strictly before the position, in list order.
    #[serde(rename = "p")]
    Prev,
}

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub direction: Direction,
    pub position: Position,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    d: Direction,
    #[serde(flatten)]
    p: Position,
    /// Fingerprint of the list's scope (filters + sort).
    f: String,
}

impl Cursor {
    /// Encodes the cursor for a list whose filters and sort render as `scope`.
    pub fn encode(&self, scope: &str) -> String {
        let wire = Wire {
            d: self.direction,
            p: self.position.clone(),
            f: fingerprint(scope),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Decodes a cursor for a list sorted by `sort`, refusing it unless it was made for
    /// the same `scope` and holds a position that fits the sort.
    pub fn decode_for(
        field: &str,
        token: &str,
        scope: &str,
        sort: &crate::Sort,
    ) -> Result<Self, ValidationError> {
        let cursor = Self::decode(field, token, scope)?;
        if !sort.fits(&cursor.position) {
            return Err(ValidationError::new(
                field,
                "is not a cursor returned by this list",
            ));
        }
        Ok(cursor)
    }

    /// Decodes a cursor, refusing it unless it was made for the same `scope`.
    pub fn decode(field: &str, token: &str, scope: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new(field, "is not a cursor returned by this list");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if wire.f != fingerprint(scope) {
            return Err(ValidationError::new(
                field,
                "belongs to a list with other filters or sort; start again without it",
            ));
        }
        Ok(Cursor {
            direction: wire.d,
            position: wire.p,
        })
    }
}

/// FNV-1a, 64 bits: a stable, dependency-free fingerprint. Not a security boundary (the
/// project filter is re-applied on every page), only a guard against mixing lists.
fn fingerprint(scope: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scope.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            direction: Direction::Prev,
            position: Position {
                keys: vec![KeyValue::Time(-5), KeyValue::Text("x".into())],
                seq: 42,
            },
        }
    }

    #[test]
    fn round_trips_within_its_scope() {
        let token = cursor().encode("p=a");
        assert_eq!(Cursor::decode("cursor", &token, "p=a"), Ok(cursor()));
    }

    #[test]
    fn refused_in_another_scope() {
        let token = cursor().encode("p=a");
        let e = Cursor::decode("cursor", &token, "p=b").unwrap_err();
        assert_eq!(e.field, "cursor");
        assert!(e.message.contains("other filters"), "{}", e.message);
    }

    #[test]
    fn garbage_is_refused() {
        for junk in ["", "!!!", "bm90IGpzb24", "e30"] {
            assert!(Cursor::decode("cursor", junk, "p=a").is_err(), "{junk}");
        }
    }
}
