//! W3C trace context (`traceparent`, `tracestate`): the context of the request that
//! created an operation, kept with it so that the work that follows (claims, heartbeats,
//! the final update, a worker's shell command) can join or link to the same trace.
//!
//! Stored compactly: the trace id, parent span id and flags as 25 bytes, the tracestate
//! as text. The header's version is not kept: only version `00` is defined, and it is
//! what [`TraceContext::traceparent`] writes back.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// Bytes of the stored form of a traceparent: trace id (16), span id (8), flags (1).
pub const STORED_LEN: usize = 25;
/// Longest `tracestate` kept (the W3C limit a vendor must propagate); a longer one is
/// dropped rather than cut, since a cut list could end in half an entry.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// A parsed, valid trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Parses the W3C headers. `None` when `traceparent` is not a valid version-00
    /// header (or has an all-zero id): the W3C rule is to start a new trace then, not to
    /// refuse the request. An unusable `tracestate` is dropped, the parent kept.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let [version, trace, span, flags] = parts[..] else {
            return None;
        };
        // Future versions may append fields, but then `parts` has more than four.
        if version != "00" {
            return None;
        }
        let trace_id: [u8; 16] = hex(trace)?;
        let span_id: [u8; 8] = hex(span)?;
        let [flags] = hex::<1>(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let tracestate = tracestate.map(str::trim).filter(|s| {
            !s.is_empty()
                && s.len() <= MAX_TRACESTATE_LEN
                && s.bytes().all(|b| (0x20..0x7f).contains(&b))
        });
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
            tracestate: tracestate.map(str::to_owned),
        })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&self.span_id),
            self.flags
        )
    }

    /// The trace id as 32 lowercase hex digits (how trace UIs and logs show it).
    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The stored form of the traceparent part.
    pub fn to_stored(&self) -> [u8; STORED_LEN] {
        let mut out = [0u8; STORED_LEN];
        out[..16].copy_from_slice(&self.trace_id);
        out[16..24].copy_from_slice(&self.span_id);
        out[24] = self.flags;
        out
    }

    /// Reads the stored form back; `None` for anything that is not [`STORED_LEN`] bytes.
    pub fn from_stored(bytes: &[u8], tracestate: Option<String>) -> Option<TraceContext> {
        let bytes: &[u8; STORED_LEN] = bytes.try_into().ok()?;
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&bytes[..16]);
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&bytes[16..24]);
        Some(TraceContext {
            trace_id,
            span_id,
            flags: bytes[24],
            tracestate,
        })
    }
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Lowercase only, as the W3C format requires.
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The wire form: `{"traceparent": "00-…-…-01", "tracestate": "…"}`, `tracestate`
/// omitted when there is none.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = TraceContext)]
struct Wire {
    /// W3C `traceparent` of the request that created the operation.
    #[schema(example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    traceparent: String,
    /// W3C `tracestate` sent with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracestate: Option<String>,
}

impl Serialize for TraceContext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            traceparent: self.traceparent(),
            tracestate: self.tracestate.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        TraceContext::parse(&wire.traceparent, wire.tracestate.as_deref()).ok_or_else(|| {
            serde::de::Error::custom("traceparent: must be a W3C version-00 traceparent")
        })
    }
}

impl utoipa::PartialSchema for TraceContext {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <Wire as utoipa::PartialSchema>::schema()
    }
}

impl ToSchema for TraceContext {
    fn name() -> std::borrow::Cow<'static, str> {
        "TraceContext".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips_through_the_stored_form() {
        let cx = TraceContext::parse(PARENT, Some("vendor=x")).expect("valid");
        assert_eq!(cx.traceparent(), PARENT);
        let back = TraceContext::from_stored(&cx.to_stored(), cx.tracestate.clone());
        assert_eq!(back, Some(cx));
    }

    #[test]
    fn invalid_headers_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn an_unusable_tracestate_is_dropped_not_the_parent() {
        let long = "a".repeat(MAX_TRACESTATE_LEN + 1);
        let cx = TraceContext::parse(PARENT, Some(&long)).expect("valid parent");
        assert_eq!(cx.tracestate, None);
    }

    #[test]
    fn the_wire_form_omits_a_missing_tracestate() {
        let cx = TraceContext::parse(PARENT, None).expect("valid");
        let json = serde_json::to_value(&cx).expect("serialize");
        assert_eq!(json, serde_json::json!({ "traceparent": PARENT }));
        let back: TraceContext = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, cx);
    }
}
