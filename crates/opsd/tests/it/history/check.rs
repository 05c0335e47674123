//! The checker: the properties every history must have, whatever the faults were.
//!
//! 1. No acknowledged change is lost: each 2xx answer's operation version is in the final
//!    history with the status, progress and message it was answered with.
//! 2. Each operation's versions are 1, 2, … without a gap, in seq order, ending at its
//!    current version; every change a client made (recognised by its unique message)
//!    was asked for, not refused, applied at most once, and an acknowledged update
//!    landed on the version after its `If-Match`.
//! 3. Leases: a claim is never granted twice (same operation and version); between two
//!    grants of an operation it left `running` (one holder at a time); a lease expires
//!    at most once, and not before the expiry its holder was last acknowledged; a
//!    holder's token is not accepted after its lease expired.
//! 4. Every watch stream delivered every committed change of the project, once, in seq
//!    (commit) order, across reconnects, and nothing that was not committed.
//! 5. A create whose outcome its client did not learn exists at most once per
//!    `request_id` (and one that was acknowledged, exactly once, with the id answered).
//! 6. No answer is a 5xx other than 503.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::record::{Call, FinalOp, History, Kind, Outcome, Seen, micros};

/// The message prefix of the changes clients make (anything else is opsd's own).
pub const MESSAGE_PREFIX: &str = "h-";

/// A property the history breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: &'static str,
    pub detail: String,
}

/// Every anomaly of `h` (empty: the history is valid).
pub fn check(h: &History) -> Vec<Anomaly> {
    let mut found = Vec::new();
    let mut flag = |kind: &'static str, detail: String| found.push(Anomaly { kind, detail });
    let ops: HashMap<&str, &FinalOp> = h.ops.iter().map(|o| (o.id.as_str(), o)).collect();

    for call in &h.calls {
        if let Outcome::ServerError { status, body } = &call.outcome {
            flag(
                "server error",
                format!(
                    "client {} at {}–{} ms: {:?} answered {status}: {body}",
                    call.client, call.sent_ms, call.done_ms, call.kind
                ),
            );
        }
    }
    acknowledged_changes(h, &ops, &mut flag);
    versions(h, &mut flag);
    client_changes(h, &mut flag);
    leases(h, &ops, &mut flag);
    watches(h, &mut flag);
    creates(h, &mut flag);
    found
}

/// The operation a 2xx answer carries, if any.
fn answered_op(call: &Call) -> Option<&Value> {
    let Outcome::Ok(body) = &call.outcome else {
        return None;
    };
    match call.kind {
        Kind::Claim | Kind::Heartbeat { .. } => body.get("operation"),
        _ => Some(body).filter(|b| b.get("id").is_some()),
    }
}

fn acknowledged_changes(
    h: &History,
    ops: &HashMap<&str, &FinalOp>,
    flag: &mut impl FnMut(&'static str, String),
) {
    for call in &h.calls {
        let Some(op) = answered_op(call) else {
            continue;
        };
        let id = op["id"].as_str().unwrap_or_default();
        let version = op["version"].as_u64().unwrap_or_default();
        let Some(stored) = ops.get(id) else {
            flag(
                "acknowledged change lost",
                format!(
                    "{id} is gone ({:?}, answered at {} ms)",
                    call.kind, call.done_ms
                ),
            );
            continue;
        };
        let Some(event) = stored.events.iter().find(|e| e.version == version) else {
            flag(
                "acknowledged change lost",
                format!("{id} v{version} ({:?}) has no event", call.kind),
            );
            continue;
        };
        let answered = (
            op["status"].as_str().unwrap_or_default(),
            op["progress"].as_u64().unwrap_or_default(),
            op["status_message"].as_str(),
        );
        let stored = (
            event.status.as_str(),
            event.progress,
            event.message.as_deref(),
        );
        if answered != stored {
            flag(
                "acknowledged change differs",
                format!("{id} v{version}: answered {answered:?}, stored {stored:?}"),
            );
        }
        if let Kind::Update { if_match, .. } = &call.kind
            && version != if_match + 1
        {
            flag(
                "update applied at the wrong version",
                format!("{id}: If-Match {if_match}, answered v{version}"),
            );
        }
    }
}

fn versions(h: &History, flag: &mut impl FnMut(&'static str, String)) {
    for op in &h.ops {
        let mut events = op.events.clone();
        events.sort_by_key(|e| e.seq);
        let got: Vec<u64> = events.iter().map(|e| e.version).collect();
        let want: Vec<u64> = (1..=op.version).collect();
        if got != want {
            flag(
                "versions not gap-free and increasing",
                format!("{} at v{}: events carry {got:?}", op.id, op.version),
            );
        }
    }
}

/// Each client message, where it first appears in each operation's history.
fn client_changes(h: &History, flag: &mut impl FnMut(&'static str, String)) {
    let mut asked: HashMap<&str, &Outcome> = HashMap::new();
    for call in &h.calls {
        match &call.kind {
            Kind::Update { message, .. }
            | Kind::Heartbeat {
                message: Some(message),
                ..
            } => {
                asked.insert(message, &call.outcome);
            }
            _ => {}
        }
    }
    let mut applied: HashMap<&str, usize> = HashMap::new();
    for op in &h.ops {
        let mut events = op.events.clone();
        events.sort_by_key(|e| e.version);
        let mut previous: Option<&str> = None;
        for e in &events {
            let message = e.message.as_deref();
            if let Some(m) = message.filter(|m| m.starts_with(MESSAGE_PREFIX))
                && previous != Some(m)
            {
                let key = asked.get_key_value(m).map(|(k, _)| *k);
                match (key, asked.get(m)) {
                    (None, _) | (_, None) => flag(
                        "change nobody asked for",
                        format!("{} v{} carries {m}", op.id, e.version),
                    ),
                    (Some(k), Some(Outcome::Refused { status, code })) => {
                        *applied.entry(k).or_default() += 1;
                        flag(
                            "refused write applied",
                            format!(
                                "{m} was answered {status} {code} but is v{} of {}",
                                e.version, op.id
                            ),
                        );
                    }
                    (Some(k), Some(_)) => *applied.entry(k).or_default() += 1,
                }
            }
            previous = message;
        }
    }
    for (m, n) in applied {
        if n > 1 {
            flag("write applied twice", format!("{m} applied {n} times"));
        }
    }
}

/// The message of a claim's change.
const CLAIMED: &str = "claimed by worker";

/// A grant: an operation claimed at a version with a token.
struct Grant<'a> {
    version: u64,
    token: &'a str,
    /// The latest expiry acknowledged to the holder (claim or heartbeat), µs.
    expires_us: i128,
}

fn leases(h: &History, ops: &HashMap<&str, &FinalOp>, flag: &mut impl FnMut(&'static str, String)) {
    let mut grants: BTreeMap<&str, Vec<Grant>> = BTreeMap::new();
    for call in &h.calls {
        if let (Kind::Claim, Outcome::Ok(body)) = (&call.kind, &call.outcome)
            && !body.is_null()
        {
            grants
                .entry(body["operation"]["id"].as_str().unwrap_or_default())
                .or_default()
                .push(Grant {
                    version: body["operation"]["version"].as_u64().unwrap_or_default(),
                    token: body["lease_token"].as_str().unwrap_or_default(),
                    expires_us: micros(body["lease_expires_at"].as_str().unwrap_or_default()),
                });
        }
    }
    for call in &h.calls {
        if let (Kind::Heartbeat { id, token, .. }, Outcome::Ok(body)) = (&call.kind, &call.outcome)
            && let Some(g) = grants
                .get_mut(id.as_str())
                .and_then(|gs| gs.iter_mut().find(|g| g.token == token))
        {
            let at = micros(body["lease_expires_at"].as_str().unwrap_or_default());
            g.expires_us = g.expires_us.max(at);
        }
    }
    // Acknowledged finishes by (operation, token): the versions they made.
    let mut finishes: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
    for call in &h.calls {
        if let (Kind::Finish { id, token }, Some(done)) = (&call.kind, answered_op(call)) {
            finishes
                .entry((id.as_str(), token.as_str()))
                .or_default()
                .push(done["version"].as_u64().unwrap_or_default());
        }
    }
    for (id, gs) in &mut grants {
        gs.sort_by_key(|g| g.version);
        for pair in gs.windows(2) {
            if pair[0].version == pair[1].version {
                flag(
                    "claim granted twice",
                    format!("{id} v{} granted to two claims", pair[0].version),
                );
            }
        }
        let Some(op) = ops.get(id) else {
            continue; // reported as a lost change
        };
        let mut events = op.events.clone();
        events.sort_by_key(|e| e.version);
        for (i, g) in gs.iter().enumerate() {
            let next = gs.get(i + 1).map_or(u64::MAX, |n| n.version);
            let held: Vec<_> = events
                .iter()
                .filter(|e| e.version > g.version && e.version < next)
                .collect();
            if next != u64::MAX && held.iter().all(|e| e.status == "running") {
                flag(
                    "two holders of one lease",
                    format!(
                        "{id}: granted at v{} and again at v{next} without leaving running",
                        g.version
                    ),
                );
            }
            // The lease of this grant lasts until the next claim, recorded or not (a
            // claim whose answer was lost still starts a lease of its own).
            let until = held
                .iter()
                .find(|e| e.message.as_deref().is_some_and(|m| m.starts_with(CLAIMED)))
                .map_or(next, |e| e.version);
            let expiries: Vec<_> = held
                .iter()
                .filter(|e| e.version < until)
                .filter(|e| {
                    e.status == "unknown"
                        && e.message
                            .as_deref()
                            .is_some_and(|m| m.contains("stopped heartbeating"))
                })
                .collect();
            if expiries.len() > 1 {
                flag(
                    "lease expired twice",
                    format!(
                        "{id}: the lease granted at v{} expired {} times",
                        g.version,
                        expiries.len()
                    ),
                );
            }
            // A PATCH with the token is accepted only while the lease is held.
            for at in finishes.get(&(*id, g.token)).into_iter().flatten() {
                if expiries.iter().any(|e| e.version < *at) {
                    flag(
                        "finished by a holder whose lease had expired",
                        format!(
                            "{id}: finished at v{at} after the lease granted at v{} expired",
                            g.version
                        ),
                    );
                }
            }
            if let Some(e) = expiries.first()
                && e.at_us < g.expires_us
            {
                flag(
                    "lease expired early",
                    format!(
                        "{id}: the lease granted at v{} was acknowledged until {} µs, expired at {} µs",
                        g.version, g.expires_us, e.at_us
                    ),
                );
            }
        }
    }
}

fn watches(h: &History, flag: &mut impl FnMut(&'static str, String)) {
    let mut committed: Vec<Seen> = h
        .ops
        .iter()
        .flat_map(|o| {
            o.events.iter().map(|e| Seen {
                seq: e.seq,
                id: o.id.clone(),
                version: e.version,
            })
        })
        .collect();
    committed.sort_by_key(|s| s.seq);
    let by_seq: HashMap<u64, &Seen> = committed.iter().map(|s| (s.seq, s)).collect();
    for (w, seen) in h.watches.iter().enumerate() {
        for pair in seen.windows(2) {
            if pair[1].seq <= pair[0].seq {
                flag(
                    "watch repeated or reordered",
                    format!("stream {w}: seq {} after {}", pair[1].seq, pair[0].seq),
                );
            }
        }
        for s in seen {
            if by_seq.get(&s.seq) != Some(&s) {
                flag(
                    "watch delivered an uncommitted change",
                    format!("stream {w}: {s:?} is not the committed event at that seq"),
                );
            }
        }
        let delivered: HashSet<u64> = seen.iter().map(|s| s.seq).collect();
        let missed: Vec<u64> = committed
            .iter()
            .map(|c| c.seq)
            .filter(|seq| !delivered.contains(seq))
            .collect();
        if !missed.is_empty() {
            flag(
                "watch missed a change",
                format!(
                    "stream {w} never delivered seqs {:?}…",
                    &missed[..missed.len().min(10)]
                ),
            );
        }
    }
}

fn creates(h: &History, flag: &mut impl FnMut(&'static str, String)) {
    let mut by_request: HashMap<&str, Vec<&str>> = HashMap::new();
    for op in &h.ops {
        if let Some(r) = &op.request_id {
            by_request.entry(r).or_default().push(&op.id);
        }
    }
    for (r, ids) in &by_request {
        if ids.len() > 1 {
            flag("created twice", format!("request_id {r}: {ids:?}"));
        }
    }
    for call in &h.calls {
        if let (Kind::Create { request_id }, Outcome::Ok(body)) = (&call.kind, &call.outcome) {
            let stored = by_request.get(request_id.as_str()).map(|ids| ids[0]);
            if stored != body["id"].as_str() {
                flag(
                    "acknowledged create lost",
                    format!(
                        "request_id {request_id}: answered {}, stored {stored:?}",
                        body["id"]
                    ),
                );
            }
        }
    }
}
