//! `Store::stats` and `Store::projects` on a clock the test drives, so run times,
//! percentiles and lease deadlines are exact; and console sessions (create, look up,
//! expire, end, end with their key).

use std::time::Duration;

use opsd_domain::lease::ClaimRequest;
use opsd_domain::{Kind, ListFilter, NewApiKey, OpType, ProjectScope, Role, Sort, Status};
use opsd_store::stats::StatsRequest;

use crate::support::{FakeClock, new_op, open_store_with_clock, page, project, status};

fn since_start(clock: &FakeClock, project: &str) -> StatsRequest {
    StatsRequest {
        project_id: project.into(),
        since: crate::support::at(-60),
        now: clock.now(),
    }
}

#[tokio::test]
async fn durations_are_nearest_rank_percentiles_by_kind_and_type() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    // Five vm/create runs of 1..=5 s: p50 is the 3rd (3 s), p95 the 5th (5 s).
    for secs in 1..=5 {
        let op = store
            .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
            .await
            .unwrap()
            .operation;
        store
            .update(op.id, status(Status::Running), None)
            .await
            .unwrap();
        clock.tick(secs);
        store
            .update(op.id, status(Status::Done), None)
            .await
            .unwrap();
    }
    // One failed volume/delete that never ran: measured from its creation (2 s).
    let op = store
        .create(new_op("p", Kind::Volume, OpType::Delete, "vol-1"))
        .await
        .unwrap()
        .operation;
    clock.tick(2);
    let mut fail = status(Status::Failed);
    fail.error = Some(opsd_domain::OperationError {
        errors: vec![opsd_domain::ErrorItem {
            code: "X".into(),
            message: "broke".into(),
            location: None,
        }],
    });
    store.update(op.id, fail, None).await.unwrap();
    // Another project's operations never count.
    store
        .create(new_op("other", Kind::Vm, OpType::Create, "vm-9"))
        .await
        .unwrap();

    let stats = store.stats(&since_start(&clock, "p")).await.unwrap();
    let vm = &stats.durations[0];
    assert_eq!((vm.kind, vm.op_type), (Kind::Vm, OpType::Create));
    assert_eq!((vm.finished, vm.p50_ms, vm.p95_ms), (5, 3_000, 5_000));
    let vol = &stats.durations[1];
    assert_eq!((vol.kind, vol.op_type), (Kind::Volume, OpType::Delete));
    assert_eq!((vol.finished, vol.p50_ms, vol.p95_ms), (1, 2_000, 2_000));
    assert_eq!(stats.durations.len(), 2);

    // Per minute: 6 operations were created (pending), 5 done, 1 failed, all in the
    // window; the other project's creation is not counted.
    let total = |s: Status| -> u64 {
        stats
            .per_minute
            .iter()
            .filter(|m| m.status == s)
            .map(|m| m.operations)
            .sum()
    };
    assert_eq!(total(Status::Pending), 6);
    assert_eq!(total(Status::Done), 5);
    assert_eq!(total(Status::Failed), 1);
    assert_eq!(total(Status::Running), 5);

    // A window that starts after everything holds nothing.
    let later = StatsRequest {
        project_id: "p".into(),
        since: clock.now() + Duration::from_secs(1),
        now: clock.now(),
    };
    let empty = store.stats(&later).await.unwrap();
    assert!(empty.per_minute.is_empty() && empty.durations.is_empty());

    let projects = store.projects().await.unwrap();
    let listed: Vec<_> = projects
        .iter()
        .map(|p| (p.project_id.as_str(), p.operations))
        .collect();
    assert_eq!(listed, [("other", 1), ("p", 6)]);
}

/// The window, and a list's creation-time bound, start exactly at `since`, wherever
/// that falls among the history: each is found by a binary search over `seq`
/// (PostgreSQL's migrations 0015 and 0019, SQLite's `time_bounds`), so every start from
/// before the first operation to after the last is tried, with another project's
/// operations in between and a run of deleted ones (gaps in `seq`, where PostgreSQL's
/// first search never ended).
#[tokio::test]
async fn the_window_and_creation_bounds_start_at_since_exactly() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let mut created = Vec::new();
    for i in 0..25 {
        let project = if i % 3 == 0 { "other" } else { "p" };
        let op = store
            .create(new_op(project, Kind::Vm, OpType::Create, "vm-1"))
            .await
            .unwrap()
            .operation;
        created.push((project, clock.now(), op.id));
        clock.tick(1);
    }
    let deleted = &created[8..16];
    for (_, _, id) in deleted {
        store
            .update(*id, status(Status::Running), None)
            .await
            .unwrap();
        store.update(*id, status(Status::Done), None).await.unwrap();
        store.delete_finished(*id).await.unwrap();
    }
    let kept = || created.iter().filter(|c| !deleted.contains(c));
    let starts = created
        .iter()
        .map(|(_, at, _)| *at)
        .chain([created[0].1 - Duration::from_secs(1), clock.now()]);
    for since in starts {
        let expected = kept()
            .filter(|(project, at, _)| *project == "p" && *at >= since)
            .count() as u64;
        let stats = store
            .stats(&StatsRequest {
                project_id: "p".into(),
                since,
                now: clock.now(),
            })
            .await
            .unwrap();
        let counted: u64 = stats.per_minute.iter().map(|m| m.operations).sum();
        assert_eq!(counted, expected, "stats since {since}");
        let filter = ListFilter {
            created_at_min: Some(since),
            ..project("p")
        };
        let listed = page(&*store, &filter, &Sort::default(), None, 100).await;
        assert_eq!(listed.items.len() as u64, expected, "listed since {since}");
        let filter = ListFilter {
            created_at_max: Some(since),
            ..project("p")
        };
        let before = kept()
            .filter(|(project, at, _)| *project == "p" && *at <= since)
            .count();
        let listed = page(&*store, &filter, &Sort::default(), None, 100).await;
        assert_eq!(listed.items.len(), before, "listed until {since}");
    }
}

#[tokio::test]
async fn attention_lists_long_runs_and_expiring_leases() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    for _ in 0..5 {
        let op = store
            .create(new_op("p", Kind::Vm, OpType::Update, "vm-1"))
            .await
            .unwrap()
            .operation;
        store
            .update(op.id, status(Status::Running), None)
            .await
            .unwrap();
        clock.tick(2);
        store
            .update(op.id, status(Status::Done), None)
            .await
            .unwrap();
    }
    // Usual vm/update run: 2 s. This one runs 3 s: longer than usual.
    let slow = store
        .create(new_op("p", Kind::Vm, OpType::Update, "vm-2"))
        .await
        .unwrap()
        .operation;
    store
        .update(slow.id, status(Status::Running), None)
        .await
        .unwrap();
    // A kind with no history is never "longer than usual".
    let unknown_kind = store
        .create(new_op("p", Kind::Vpc, OpType::Update, "vpc-1"))
        .await
        .unwrap()
        .operation;
    store
        .update(unknown_kind.id, status(Status::Running), None)
        .await
        .unwrap();
    // Two leases: 10 s and 100 s.
    for (resource, secs) in [("vol-short", 10), ("vol-long", 100)] {
        store
            .create(new_op("p", Kind::Volume, OpType::Create, resource))
            .await
            .unwrap();
        store
            .claim(ClaimRequest {
                project_id: Some("p".into()),
                kinds: vec![Kind::Volume],
                statuses: vec![Status::Pending],
                lease: Duration::from_secs(secs),
                worker: format!("w-{resource}"),
            })
            .await
            .unwrap()
            .unwrap();
    }

    clock.tick(1);
    let stats = store.stats(&since_start(&clock, "p")).await.unwrap();
    assert!(stats.long_running.is_empty(), "1 s is within the usual 2 s");
    assert!(stats.expiring_leases.is_empty(), "9 s of 10 left");

    clock.tick(5);
    let stats = store.stats(&since_start(&clock, "p")).await.unwrap();
    let long: Vec<_> = stats.long_running.iter().map(|l| l.id).collect();
    assert_eq!(long, [slow.id]);
    assert_eq!(stats.long_running[0].running_ms, 6_000);
    assert_eq!(stats.long_running[0].p95_ms, 2_000);
    // 4 s of 10 left (less than half): listed; 94 s of 100: not.
    let leases: Vec<_> = stats
        .expiring_leases
        .iter()
        .map(|l| (l.worker.as_str(), l.lease_ms))
        .collect();
    assert_eq!(leases, [("w-vol-short", 10_000)]);
}

#[tokio::test]
async fn sessions_live_until_expiry_sign_out_or_key_revocation() {
    let clock = FakeClock::default();
    let db = opsd_store_suite::TestDb::new().await;
    let store = db.open_with_clock(Some(clock.clock())).await;
    let (key, _) = store
        .create_key(NewApiKey {
            name: "ops".into(),
            role: Role::Reader,
            projects: ProjectScope::All,
        })
        .await
        .unwrap();
    let expires = clock.now() + Duration::from_secs(60);
    let a = store.create_session(key.id, expires).await.unwrap();
    let b = store.create_session(key.id, expires).await.unwrap();
    assert_ne!(a.secret, b.secret);
    assert!(a.secret.starts_with("opsds_"));

    let (found, at) = store
        .session_key(&a.secret, clock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, at), (key.id, expires));
    // Not a key: a session secret never authenticates as one, and vice versa.
    assert!(store.authenticate(&a.secret).await.unwrap().is_none());
    assert!(
        store
            .session_key("opsds_nope", clock.now())
            .await
            .unwrap()
            .is_none()
    );
    // Expired by the caller's clock.
    let after = expires + Duration::from_secs(1);
    assert!(store.session_key(&a.secret, after).await.unwrap().is_none());

    // Sign-out ends one session only.
    store.end_session(&a.secret, clock.now()).await.unwrap();
    assert!(
        store
            .session_key(&a.secret, clock.now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_key(&b.secret, clock.now())
            .await
            .unwrap()
            .is_some()
    );
    store.end_session(&a.secret, clock.now()).await.unwrap(); // idempotent

    // Revoking the key ends its sessions, and no new one can be made for it.
    store.revoke_key(key.id).await.unwrap();
    assert!(
        store
            .session_key(&b.secret, clock.now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.create_session(key.id, expires).await,
        Err(opsd_store::StoreError::KeyNotFound(_))
    ));
}
