use time::macros::datetime;

use super::*;
use crate::{Details, ErrorItem, Kind, OpType};

pub(crate) fn op(status: Status) -> Operation {
    let t = datetime!(2026-01-01 00:00 UTC);
    Operation {
        id: uuid::Uuid::now_v7(),
        seq: 1,
        project_id: "p".into(),
        kind: Kind::Vm,
        op_type: OpType::Create,
        resource_id: "vm-1".into(),
        status,
        details: Details::default(),
        progress: 10,
        status_message: None,
        description: None,
        error: None,
        warnings: vec![],
        http_error_status_code: None,
        http_error_message: None,
        user: None,
        request_id: None,
        region: None,
        zone: None,
        target_link: None,
        created_at: t,
        started_at: None,
        ended_at: None,
        updated_at: t,
        version: 1,
        cancel_requested: false,
        trace_context: None,
    }
}

fn err() -> OperationError {
    OperationError {
        errors: vec![ErrorItem {
            code: "QUOTA".into(),
            message: "out of quota".into(),
            location: None,
        }],
    }
}

fn patch_to(to: Status) -> Patch {
    Patch {
        status: Some(to),
        error: (to == Status::Failed).then(err),
        ..Patch::default()
    }
}

#[test]
fn every_pair_of_statuses() {
    use Status::*;
    let allowed = [
        (Pending, Running),
        (Pending, Done),
        (Pending, Failed),
        (Pending, Unknown),
        (Running, Running),
        (Running, Done),
        (Running, Failed),
        (Running, Unknown),
        (Unknown, Running),
        (Unknown, Done),
        (Unknown, Failed),
    ];
    let now = datetime!(2026-01-02 00:00 UTC);
    for &from in Status::ALL {
        for &to in Status::ALL {
            let expected = allowed.contains(&(from, to));
            assert_eq!(can_transition(from, to), expected, "{from} -> {to}");
            let result = apply(&op(from), &patch_to(to), now);
            if expected {
                let next = result.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                assert_eq!(next.status, to);
                assert_eq!(next.version, 2);
                assert_eq!(next.updated_at, now);
            } else {
                assert_eq!(
                    result,
                    Err(ChangeError::Transition { from, to }),
                    "{from} -> {to}"
                );
            }
        }
    }
}

#[test]
fn patch_without_status_is_a_self_transition() {
    let p = Patch {
        progress: Some(50),
        ..Patch::default()
    };
    let now = datetime!(2026-01-02 00:00 UTC);
    assert_eq!(
        apply(&op(Status::Running), &p, now).map(|o| o.progress),
        Ok(50)
    );
    for s in [
        Status::Pending,
        Status::Unknown,
        Status::Done,
        Status::Failed,
    ] {
        assert_eq!(
            apply(&op(s), &p, now),
            Err(ChangeError::Transition { from: s, to: s })
        );
    }
}

#[test]
fn progress_never_decreases_and_done_sets_100() {
    let now = datetime!(2026-01-02 00:00 UTC);
    let mut running = op(Status::Running);
    running.progress = 40;
    let down = Patch {
        progress: Some(39),
        ..Patch::default()
    };
    assert_eq!(
        apply(&running, &down, now),
        Err(ChangeError::ProgressDecrease {
            current: 40,
            requested: 39
        })
    );
    let same = Patch {
        progress: Some(40),
        ..Patch::default()
    };
    assert!(apply(&running, &same, now).is_ok());
    let done = apply(&running, &patch_to(Status::Done), now).expect("done");
    assert_eq!(done.progress, 100);
    let over = Patch {
        progress: Some(101),
        ..Patch::default()
    };
    assert!(
        matches!(apply(&running, &over, now), Err(ChangeError::Invalid(e)) if e.field == "progress")
    );
}

#[test]
fn failed_needs_an_error_and_only_failed_takes_one() {
    let now = datetime!(2026-01-02 00:00 UTC);
    let bare = Patch {
        status: Some(Status::Failed),
        ..Patch::default()
    };
    assert!(
        matches!(apply(&op(Status::Running), &bare, now), Err(ChangeError::Invalid(e)) if e.field == "error")
    );
    let failed = apply(&op(Status::Running), &patch_to(Status::Failed), now).expect("failed");
    assert_eq!(failed.error, Some(err()));
    assert_eq!(failed.ended_at, Some(now));

    let stray = Patch {
        status: Some(Status::Done),
        error: Some(err()),
        ..Patch::default()
    };
    assert!(
        matches!(apply(&op(Status::Running), &stray, now), Err(ChangeError::Invalid(e)) if e.field == "error")
    );
    let code = Patch {
        http_error_status_code: Some(404),
        ..Patch::default()
    };
    assert!(
        matches!(apply(&op(Status::Running), &code, now), Err(ChangeError::Invalid(e)) if e.field == "http_error_status_code")
    );
}

#[test]
fn timestamps_follow_the_life_cycle() {
    let t1 = datetime!(2026-01-02 00:00 UTC);
    let t2 = datetime!(2026-01-03 00:00 UTC);
    let running = apply(&op(Status::Pending), &patch_to(Status::Running), t1).expect("running");
    assert_eq!(running.started_at, Some(t1));
    assert_eq!(running.ended_at, None);
    let again = apply(&running, &patch_to(Status::Running), t2).expect("running again");
    assert_eq!(
        again.started_at,
        Some(t1),
        "started_at is set on the first running only"
    );
    let done = apply(&again, &patch_to(Status::Done), t2).expect("done");
    assert_eq!(done.ended_at, Some(t2));
    assert_eq!(done.version, 4);
}

#[test]
fn warnings_are_appended() {
    let now = datetime!(2026-01-02 00:00 UTC);
    let w = Warning {
        code: "SLOW".into(),
        message: "slow disk".into(),
        data: vec![],
    };
    let p = Patch {
        warnings: vec![w.clone()],
        ..Patch::default()
    };
    let once = apply(&op(Status::Running), &p, now).expect("once");
    let twice = apply(&once, &p, now).expect("twice");
    assert_eq!(twice.warnings, vec![w.clone(), w]);
}
