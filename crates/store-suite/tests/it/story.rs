//! The life of operations through the `Store` trait: creation, idempotency, updates
//! through the state machine, history, persistence, and every list filter and sort.

use std::sync::Arc;

use opsd_domain::{
    ChangeError, Kind, ListFilter, MAX_LIMIT, OpType, Operation, Patch, Sort, Status,
};
use opsd_store::{Store, StoreError};
use uuid::Uuid;

use crate::support::{
    FakeClock, expected, flatten, ids, new_op, open_store, open_store_on, open_store_with_clock,
    page, project, reopen_store, resize, status, walk_forward,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_starts_pending_with_increasing_seq() {
    let (_dir, store) = open_store().await;
    let mut last_seq = 0;
    for i in 0..5 {
        let c = store
            .create(new_op("p", Kind::Vm, OpType::Create, &format!("vm-{i}")))
            .await
            .unwrap();
        assert!(c.created);
        let op = c.operation;
        assert_eq!(
            (op.status, op.version, op.progress),
            (Status::Pending, 1, 0)
        );
        assert!(op.seq > last_seq, "seq {} after {last_seq}", op.seq);
        last_seq = op.seq;
        assert_eq!(op.created_at, op.updated_at);
        assert_eq!((op.started_at, op.ended_at), (None, None));
        // What create returned is what the store kept.
        assert_eq!(store.get(op.id).await.unwrap(), Some(op.clone()));
        let events = store.events(op.id).await.unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.operation_id, e.version, e.status, e.progress),
            (op.id, 1, Status::Pending, 0)
        );
        assert_eq!(e.at, op.created_at);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_create_returns_the_first_operation() {
    let (_dir, store) = open_store().await;
    let first = store.create(resize("p", "req-1", "20Gi")).await.unwrap();
    assert!(first.created);
    let again = store.create(resize("p", "req-1", "20Gi")).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.operation, first.operation);

    // The replay returns the operation as it is now, not as it was created.
    let moved = store
        .update(first.operation.id, status(Status::Running), None)
        .await
        .unwrap();
    let replay = store.create(resize("p", "req-1", "20Gi")).await.unwrap();
    assert!(!replay.created);
    assert_eq!(replay.operation, moved);
    assert_eq!(
        store.events(moved.id).await.unwrap().len(),
        2,
        "a replay must not add events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_request_id_with_another_body_conflicts() {
    let (_dir, store) = open_store().await;
    let first = store
        .create(resize("p", "req-1", "20Gi"))
        .await
        .unwrap()
        .operation;
    match store.create(resize("p", "req-1", "30Gi")).await {
        Err(StoreError::IdempotencyConflict {
            request_id,
            existing,
        }) => {
            assert_eq!((request_id.as_str(), existing), ("req-1", first.id));
        }
        other => panic!("expected IdempotencyConflict, got {other:?}"),
    }
    let list = page(&*store, &project("p"), &Sort::default(), None, MAX_LIMIT).await;
    assert_eq!(
        ids(&list.items),
        vec![first.id],
        "the conflicting create left a row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_scoped_to_its_project() {
    let (_dir, store) = open_store().await;
    let a = store.create(resize("p-a", "req-1", "20Gi")).await.unwrap();
    let b = store.create(resize("p-b", "req-1", "20Gi")).await.unwrap();
    assert!(a.created && b.created);
    assert_ne!(a.operation.id, b.operation.id);
    assert!(b.operation.seq > a.operation.seq);
}

/// What a write returns must be what a read gives back. The store keeps microseconds,
/// so a clock with finer resolution (the Linux wall clock has nanoseconds) must be
/// truncated before its time goes into the returned operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_return_what_reads_see_on_a_fine_clock() {
    let t = crate::support::at(0) + time::Duration::nanoseconds(1_500);
    let (_dir, store) = open_store_on(Arc::new(move || t)).await;
    let created = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let stored = store.get(created.id).await.unwrap().unwrap();
    assert_eq!(stored.created_at, created.created_at);
    let running = store
        .update(created.id, status(Status::Running), None)
        .await
        .unwrap();
    assert_eq!(store.get(created.id).await.unwrap(), Some(running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_follow_the_state_machine() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let op = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;

    clock.tick(5);
    let started = clock.now();
    let running = store
        .update(op.id, status(Status::Running), Some(1))
        .await
        .unwrap();
    assert_eq!((running.status, running.version), (Status::Running, 2));
    assert_eq!(
        (running.started_at, running.ended_at),
        (Some(started), None)
    );
    assert_eq!(
        (running.created_at, running.updated_at),
        (op.created_at, started)
    );

    clock.tick(1);
    let patch = Patch {
        progress: Some(40),
        status_message: Some("copying".into()),
        ..Patch::default()
    };
    let progressed = store.update(op.id, patch, None).await.unwrap();
    assert_eq!((progressed.progress, progressed.version), (40, 3));
    assert_eq!(progressed.status_message.as_deref(), Some("copying"));
    assert_eq!(
        progressed.started_at,
        Some(started),
        "started_at is set once"
    );

    clock.tick(1);
    let done = store
        .update(op.id, status(Status::Done), Some(3))
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.progress, done.version),
        (Status::Done, 100, 4)
    );
    assert_eq!(
        (done.started_at, done.ended_at),
        (Some(started), Some(clock.now()))
    );
    assert_eq!(store.get(op.id).await.unwrap(), Some(done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_expected_version_changes_nothing() {
    let (_dir, store) = open_store().await;
    let op = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let running = store
        .update(op.id, status(Status::Running), Some(1))
        .await
        .unwrap();
    match store.update(op.id, status(Status::Done), Some(1)).await {
        Err(StoreError::VersionMismatch { expected, current }) => {
            assert_eq!((expected, current), (1, 2))
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    assert_eq!(store.get(op.id).await.unwrap(), Some(running));
    assert_eq!(store.events(op.id).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_transition_changes_nothing() {
    let (_dir, store) = open_store().await;
    let op = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let done = store
        .update(op.id, status(Status::Done), None)
        .await
        .unwrap();
    match store.update(op.id, status(Status::Running), None).await {
        Err(StoreError::Change(ChangeError::Transition { from, to })) => {
            assert_eq!((from, to), (Status::Done, Status::Running));
        }
        other => panic!("expected a Transition error, got {other:?}"),
    }
    assert_eq!(store.get(op.id).await.unwrap(), Some(done));
    assert_eq!(store.events(op.id).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_absent() {
    let (_dir, store) = open_store().await;
    store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap();
    let id = Uuid::now_v7();
    assert_eq!(store.get(id).await.unwrap(), None);
    assert!(
        matches!(store.update(id, status(Status::Running), None).await, Err(StoreError::NotFound(x)) if x == id)
    );
    assert!(matches!(store.events(id).await, Err(StoreError::NotFound(x)) if x == id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_the_full_history_oldest_first() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let mut states = vec![
        store
            .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
            .await
            .unwrap()
            .operation,
    ];
    let id = states[0].id;
    let patches = [
        status(Status::Running),
        Patch {
            progress: Some(30),
            status_message: Some("a third".into()),
            ..Patch::default()
        },
        Patch {
            progress: Some(60),
            ..Patch::default()
        },
        status(Status::Done),
    ];
    for p in patches {
        clock.tick(1);
        states.push(store.update(id, p, None).await.unwrap());
    }
    let events = store.events(id).await.unwrap();
    assert_eq!(events.len(), states.len());
    for (i, (e, s)) in events.iter().zip(&states).enumerate() {
        assert_eq!(e.version, u64::try_from(i).unwrap() + 1);
        assert_eq!(
            (e.operation_id, e.status, e.progress),
            (id, s.status, s.progress)
        );
        assert_eq!((&e.status_message, e.at), (&s.status_message, s.updated_at));
    }
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "event seq increases"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_reopen() {
    let clock = FakeClock::default();
    let (dir, store) = open_store_with_clock(&clock).await;
    let mut ops = Vec::new();
    for i in 0..4 {
        clock.tick(1);
        let mut new = resize("p", &format!("req-{i}"), "20Gi");
        new.user = Some("alice".into());
        ops.push(store.create(new).await.unwrap().operation);
    }
    store
        .update(ops[1].id, status(Status::Running), None)
        .await
        .unwrap();
    store
        .update(ops[2].id, status(Status::Done), None)
        .await
        .unwrap();
    let mut before = Vec::new();
    for op in &ops {
        before.push((
            store.get(op.id).await.unwrap().unwrap(),
            store.events(op.id).await.unwrap(),
        ));
    }
    drop(store);

    let store = reopen_store(&dir, &clock).await;
    for (op, events) in &before {
        assert_eq!(store.get(op.id).await.unwrap().as_ref(), Some(op));
        assert_eq!(&store.events(op.id).await.unwrap(), events);
    }
    // Idempotency keys and seq survive too.
    let mut same = resize("p", "req-0", "20Gi");
    same.user = Some("alice".into());
    let replay = store.create(same).await.unwrap();
    assert!(!replay.created);
    assert_eq!(replay.operation.id, ops[0].id);
    let fresh = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-9"))
        .await
        .unwrap()
        .operation;
    assert!(fresh.seq > ops[3].seq);
}

/// 40 operations over two projects, created three to a second and then partly moved on,
/// so that created_at and updated_at both tie and differ from each other.
async fn seed(store: &dyn Store, clock: &FakeClock) -> Vec<Operation> {
    let kinds = [Kind::Vm, Kind::Volume, Kind::Vpc];
    let types = [OpType::Create, OpType::Delete, OpType::Restart];
    let mut ops = Vec::new();
    for i in 0..40 {
        if i % 3 == 0 {
            clock.tick(1);
        }
        let proj = if i % 5 == 4 { "beta" } else { "alpha" };
        let new = new_op(
            proj,
            kinds[i % 3],
            types[(i / 3) % 3],
            &format!("r-{}", i % 4),
        );
        ops.push(store.create(new).await.unwrap().operation);
    }
    // Later ops are updated first, so updated_at order differs from created_at order.
    for i in (0..40).rev() {
        if i % 4 == 0 {
            clock.tick(1);
        }
        if i % 2 == 0 {
            ops[i] = store
                .update(ops[i].id, status(Status::Running), None)
                .await
                .unwrap();
        }
        if i % 6 == 0 {
            ops[i] = store
                .update(ops[i].id, status(Status::Done), None)
                .await
                .unwrap();
        }
    }
    ops
}

fn has_ties(ops: &[Operation], key: fn(&Operation) -> time::OffsetDateTime) -> bool {
    ops.iter()
        .enumerate()
        .any(|(i, a)| ops[i + 1..].iter().any(|b| key(a) == key(b)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_and_sort_matches_the_model() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let ops = seed(&*store, &clock).await;
    let alpha: Vec<_> = ops
        .iter()
        .filter(|o| o.project_id == "alpha")
        .cloned()
        .collect();
    assert!(has_ties(&alpha, |o| o.created_at) && has_ties(&alpha, |o| o.updated_at));

    // Bounds equal to real created_at values, so inclusiveness is what decides; and
    // bounds a nanosecond off them, which the store (keeping microseconds) must round
    // the way the in-memory comparison does.
    let (lo, hi) = (alpha[7].created_at, alpha[20].created_at);
    let ns = time::Duration::nanoseconds(1);
    let with = |f: fn(&mut ListFilter)| {
        let mut filter = project("alpha");
        f(&mut filter);
        filter
    };
    let filters = [
        project("alpha"),
        project("beta"),
        project("nobody"),
        with(|f| f.kind = Some(Kind::Volume)),
        with(|f| f.status = Some(Status::Pending)),
        with(|f| f.status = Some(Status::Running)),
        with(|f| f.status = Some(Status::Done)),
        with(|f| f.op_type = Some(OpType::Delete)),
        with(|f| f.resource_id = Some("r-2".into())),
        ListFilter {
            created_at_min: Some(lo),
            ..project("alpha")
        },
        ListFilter {
            created_at_max: Some(hi),
            ..project("alpha")
        },
        ListFilter {
            created_at_min: Some(lo),
            created_at_max: Some(hi),
            ..project("alpha")
        },
        ListFilter {
            created_at_min: Some(lo),
            created_at_max: Some(lo),
            ..project("alpha")
        },
        ListFilter {
            created_at_min: Some(lo + ns),
            created_at_max: Some(hi - ns),
            ..project("alpha")
        },
        ListFilter {
            created_at_min: Some(lo - ns),
            created_at_max: Some(hi + ns),
            ..project("alpha")
        },
        ListFilter {
            kind: Some(Kind::Vm),
            status: Some(Status::Running),
            created_at_min: Some(lo),
            ..project("alpha")
        },
    ];
    let sorts = [
        "created_at:asc",
        "created_at:desc",
        "updated_at:asc",
        "updated_at:desc",
        "updated_at:desc,created_at:asc",
        "created_at:asc,updated_at:desc",
    ]
    .map(|s| Sort::parse_nirvana(s).unwrap());

    for filter in &filters {
        let want = expected(&ops, filter, &Sort::default());
        let only_time = filter.kind.is_none() && filter.status.is_none();
        if only_time && filter.created_at_min == Some(lo) {
            assert!(
                want.iter().any(|o| o.created_at == lo),
                "lower bound not exercised"
            );
        }
        if only_time && filter.created_at_max == Some(hi) {
            assert!(
                want.iter().any(|o| o.created_at == hi),
                "upper bound not exercised"
            );
        }
        for sort in std::iter::once(&Sort::default()).chain(&sorts) {
            let want = expected(&ops, filter, sort);
            let one = page(&*store, filter, sort, None, MAX_LIMIT).await;
            assert_eq!(ids(&one.items), ids(&want), "{filter:?} sorted {sort:?}");
            assert_eq!(
                one.items, want,
                "stored operations differ from what writes returned"
            );
            assert_eq!(one.total_count, u64::try_from(want.len()).unwrap());
            assert!(one.next.is_none() && one.prev.is_none());
            // The same list in small pages, crossing tie groups at page edges.
            let small = flatten(&walk_forward(&*store, filter, sort, 4).await);
            assert_eq!(
                ids(&small),
                ids(&want),
                "{filter:?} sorted {sort:?} in pages of 4"
            );
            assert!(
                small.iter().all(|o| o.project_id == filter.project_id),
                "another project leaked"
            );
        }
    }
}
