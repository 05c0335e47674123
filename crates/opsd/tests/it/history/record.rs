//! What the history checker records: every call a client made and what it was answered,
//! what every watch stream delivered, and the database as it is at the end.

use serde_json::Value;

/// A call and its answer.
#[derive(Debug, Clone)]
pub struct Call {
    pub client: usize,
    pub kind: Kind,
    /// Milliseconds since the run started, when it was sent and answered.
    pub sent_ms: u64,
    pub done_ms: u64,
    pub outcome: Outcome,
}

/// What was asked. Updates and heartbeats carry a `message` unique in the whole run,
/// so that the change they make can be recognised in the final history.
#[derive(Debug, Clone)]
pub enum Kind {
    Create {
        request_id: String,
    },
    Update {
        id: String,
        if_match: u64,
        message: String,
    },
    Claim,
    Heartbeat {
        id: String,
        token: String,
        message: Option<String>,
    },
    Finish {
        id: String,
        token: String,
    },
    Cancel {
        id: String,
    },
}

/// What was answered.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// 2xx: the body (`null` for a 204).
    Ok(Value),
    /// A definite refusal (4xx): the write did not happen.
    Refused { status: u16, code: String },
    /// 503, a timeout or no answer: the write may or may not have happened.
    Unknown(String),
    /// A 5xx other than 503: never allowed.
    ServerError { status: u16, body: String },
}

/// One event a watch stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub seq: u64,
    pub id: String,
    pub version: u64,
}

/// One event of an operation's final history.
#[derive(Debug, Clone)]
pub struct FinalEvent {
    pub seq: u64,
    pub version: u64,
    pub status: String,
    pub progress: u64,
    pub message: Option<String>,
    /// Commit time, microseconds since the epoch.
    pub at_us: i128,
}

/// An operation as it is at the end, with every event it has.
#[derive(Debug, Clone)]
pub struct FinalOp {
    pub id: String,
    pub request_id: Option<String>,
    pub version: u64,
    pub events: Vec<FinalEvent>,
}

/// Everything the checker looks at.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub calls: Vec<Call>,
    /// Per watch stream (each read from `Last-Event-ID: 0`, resumed across reconnects).
    pub watches: Vec<Vec<Seen>>,
    pub ops: Vec<FinalOp>,
}

/// An RFC 3339 time as microseconds since the epoch.
pub fn micros(rfc3339: &str) -> i128 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"));
    t.unix_timestamp_nanos() / 1_000
}
