//! The checker catches planted bugs: a small valid history passes, and each doctored
//! copy of it (a bug opsd could have) is caught with the right anomaly. The real runs
//! (`history/mod.rs`) plant the same bugs in their own recorded histories too.

use serde_json::json;

use super::check::{Anomaly, check};
use super::plant;
use super::record::{Call, FinalEvent, FinalOp, History, Kind, Outcome, Seen};

fn event(seq: u64, version: u64, status: &str, message: Option<&str>, at_us: i128) -> FinalEvent {
    FinalEvent {
        seq,
        version,
        status: status.into(),
        progress: 0,
        message: message.map(str::to_owned),
        at_us,
    }
}

fn call(kind: Kind, outcome: Outcome) -> Call {
    Call {
        client: 0,
        kind,
        sent_ms: 0,
        done_ms: 1,
        outcome,
    }
}

fn op_json(id: &str, version: u64, status: &str, message: Option<&str>) -> serde_json::Value {
    let mut op = json!({"id": id, "version": version, "status": status, "progress": 0});
    if let Some(m) = message {
        op["status_message"] = json!(m);
    }
    op
}

/// Two operations: `a` created, updated, claimed, its lease expired, claimed again;
/// `b` created with an outcome the client never learned. One watch saw everything.
pub fn valid() -> History {
    let a = "a";
    let claimed = "claimed by worker \"w0\"";
    let expired = "worker \"w0\" stopped heartbeating; lease expired at …";
    let ops = vec![
        FinalOp {
            id: a.into(),
            request_id: Some("c-0-1".into()),
            version: 5,
            events: vec![
                event(1, 1, "pending", None, 1_000),
                event(3, 2, "pending", Some("h-0-2"), 2_000),
                event(4, 3, "running", Some(claimed), 3_000),
                event(5, 4, "unknown", Some(expired), 9_000),
                event(6, 5, "running", Some(claimed), 10_000),
            ],
        },
        FinalOp {
            id: "b".into(),
            request_id: Some("c-0-3".into()),
            version: 1,
            events: vec![event(2, 1, "pending", None, 1_500)],
        },
    ];
    let grant = |version: u64, token: &str, until: &str, status: &str| {
        json!({"operation": op_json(a, version, status, Some(claimed)),
               "lease_token": token, "lease_expires_at": until})
    };
    let calls = vec![
        call(
            Kind::Create {
                request_id: "c-0-1".into(),
            },
            Outcome::Ok(op_json(a, 1, "pending", None)),
        ),
        call(
            Kind::Create {
                request_id: "c-0-3".into(),
            },
            Outcome::Unknown("503 outcome_unknown".into()),
        ),
        call(
            Kind::Update {
                id: a.into(),
                if_match: 1,
                message: "h-0-2".into(),
            },
            Outcome::Ok(op_json(a, 2, "pending", Some("h-0-2"))),
        ),
        call(
            Kind::Update {
                id: a.into(),
                if_match: 1,
                message: "h-0-4".into(),
            },
            Outcome::Refused {
                status: 412,
                code: "precondition_failed".into(),
            },
        ),
        // Granted until 0.008 s (8,000 µs), expired at 9,000 µs.
        call(
            Kind::Claim,
            Outcome::Ok(grant(3, "t1", "1970-01-01T00:00:00.008Z", "running")),
        ),
        call(Kind::Claim, Outcome::Ok(json!(null))),
        call(
            Kind::Claim,
            Outcome::Ok(grant(5, "t2", "1970-01-01T00:00:00.020Z", "running")),
        ),
    ];
    let seen = |seq, id: &str, version| Seen {
        seq,
        id: id.into(),
        version,
    };
    let watch = vec![
        seen(1, a, 1),
        seen(2, "b", 1),
        seen(3, a, 2),
        seen(4, a, 3),
        seen(5, a, 4),
        seen(6, a, 5),
    ];
    History {
        calls,
        watches: vec![watch],
        ops,
    }
}

fn kinds(anomalies: &[Anomaly]) -> Vec<&'static str> {
    let mut k: Vec<_> = anomalies.iter().map(|a| a.kind).collect();
    k.dedup();
    k
}

#[test]
fn a_valid_history_passes() {
    assert_eq!(check(&valid()), vec![]);
}

#[test]
fn every_planted_bug_is_caught() {
    let history = valid();
    for bug in plant::BUGS {
        let doctored = plant::plant(&history, bug).expect("the history has room for the bug");
        let found = check(&doctored);
        assert!(
            found.iter().any(|a| a.kind == bug.catches),
            "{}: expected {:?}, found {:?}",
            bug.name,
            bug.catches,
            kinds(&found)
        );
    }
}

#[test]
fn a_lease_that_expired_before_its_acknowledged_end_is_caught() {
    let mut h = valid();
    // The heartbeat acknowledged the lease until 0.0095 s; it expired at 0.009 s.
    h.calls.push(call(
        Kind::Heartbeat {
            id: "a".into(),
            token: "t1".into(),
            message: None,
        },
        Outcome::Ok(
            json!({"operation": op_json("a", 3, "running", Some("claimed by worker \"w0\"")),
                           "lease_expires_at": "1970-01-01T00:00:00.0095Z"}),
        ),
    ));
    assert_eq!(kinds(&check(&h)), vec!["lease expired early"]);
}

#[test]
fn a_500_is_an_anomaly() {
    let mut h = valid();
    h.calls.push(call(
        Kind::Claim,
        Outcome::ServerError {
            status: 500,
            body: "internal".into(),
        },
    ));
    assert_eq!(kinds(&check(&h)), vec!["server error"]);
}

#[test]
fn a_claim_whose_answer_was_lost_starts_a_lease_of_its_own() {
    let mut h = valid();
    // The second claim's answer never arrived; its lease expired in turn (v6).
    h.calls
        .retain(|c| !matches!(&c.outcome, Outcome::Ok(b) if b["lease_token"] == "t2"));
    let expired = "worker \"w0\" stopped heartbeating; lease expired at …";
    h.ops[0]
        .events
        .push(event(7, 6, "unknown", Some(expired), 30_000));
    h.ops[0].version = 6;
    h.watches[0].push(Seen {
        seq: 7,
        id: "a".into(),
        version: 6,
    });
    assert_eq!(check(&h), vec![]);
    // Without the claim in between, the same two expiries are one lease's.
    h.ops[0].events[4].message = Some("h-0-9".into());
    assert!(kinds(&check(&h)).contains(&"lease expired twice"));
}
