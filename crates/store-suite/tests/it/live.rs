//! Live operations through the `Store` trait: the change feed (order, only committed
//! changes, the same history `events_since` reads back), claims (exactly once under
//! concurrency, oldest first, filters), lease rules, expiry, heartbeats and retention.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use opsd_domain::lease::{ClaimRequest, LeaseError};
use opsd_domain::{ErrorItem, Kind, OpType, Operation, OperationError, Patch, Status};
use opsd_store::{Change, FeedChange, Heartbeat, Preconditions, Store, StoreError};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::{FakeClock, new_op, open_store, open_store_with_clock, whole};

fn to(s: Status) -> Patch {
    Patch {
        status: Some(s),
        error: (s == Status::Failed).then(|| OperationError {
            errors: vec![ErrorItem {
                code: "E".into(),
                message: "broke".into(),
                location: None,
            }],
        }),
        ..Patch::default()
    }
}

fn claim(project: Option<&str>, kinds: &[Kind], worker: &str) -> ClaimRequest {
    ClaimRequest {
        project_id: project.map(str::to_owned),
        kinds: kinds.to_vec(),
        statuses: vec![Status::Pending],
        lease: Duration::from_secs(30),
        worker: worker.into(),
    }
}

fn with_token(token: &str) -> Preconditions {
    Preconditions {
        expected_version: None,
        lease_token: Some(token.into()),
    }
}

async fn create(store: &dyn Store, project: &str, kind: Kind, resource: &str) -> Operation {
    store
        .create(new_op(project, kind, OpType::Create, resource))
        .await
        .unwrap()
        .operation
}

/// Everything the feed has delivered so far, without waiting.
async fn drain(store: &dyn Store, rx: &mut broadcast::Receiver<FeedChange>) -> Vec<Change> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(c) => out.push(whole(store, c).await),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("feed receiver: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_publishes_committed_changes_in_commit_order() {
    let (_dir, store) = open_store().await;
    let mut rx = store.subscribe();
    let mut written = Vec::new();
    let a = create(&*store, "p", Kind::Vm, "vm-1").await;
    written.push(a.clone());
    let b = create(&*store, "q", Kind::Vpc, "vpc-1").await;
    written.push(b.clone());
    written.push(store.update(a.id, to(Status::Running), None).await.unwrap());
    // Refused writes and idempotent replays change nothing, so they publish nothing.
    assert!(store.update(b.id, to(Status::Done), Some(7)).await.is_err());
    assert!(store.update(a.id, to(Status::Pending), None).await.is_err());
    let mut keyed = new_op("p", Kind::Vm, OpType::Delete, "vm-2");
    keyed.request_id = Some("r-1".into());
    written.push(store.create(keyed.clone()).await.unwrap().operation);
    assert!(!store.create(keyed).await.unwrap().created);
    written.push(store.update(a.id, to(Status::Done), None).await.unwrap());

    // Published before the writer answered, so everything is there already.
    let changes = drain(&*store, &mut rx).await;
    let ops: Vec<Operation> = changes.iter().map(|c| (*c.operation).clone()).collect();
    assert_eq!(ops, written);
    assert!(changes.windows(2).all(|w| w[0].event_seq < w[1].event_seq));

    // The stored history of each project is the feed, filtered by project.
    for project in ["p", "q"] {
        let backfill = store.events_since(project, 0, 100).await.unwrap();
        let expected: Vec<&Change> = changes
            .iter()
            .filter(|c| c.operation.project_id == project)
            .collect();
        assert_eq!(backfill.changes.iter().collect::<Vec<_>>(), expected);
        assert_eq!(backfill.horizon, 0);
        assert_eq!(backfill.head, changes.last().unwrap().event_seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_since_pages_through_one_project() {
    let (_dir, store) = open_store().await;
    for i in 0..7 {
        create(&*store, "p", Kind::Vm, &format!("vm-{i}")).await;
        create(&*store, "other", Kind::Vm, &format!("vm-{i}")).await;
    }
    let mut after = 0;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = store.events_since("p", after, 3).await.unwrap();
        if page.changes.is_empty() {
            break;
        }
        assert!(page.changes.len() <= 3);
        after = page.changes.last().unwrap().event_seq;
        seen.extend(page.changes);
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.iter().all(|c| c.operation.project_id == "p"));
    assert!(seen.windows(2).all(|w| w[0].event_seq < w[1].event_seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_take_each_operation_exactly_once() {
    let (_dir, store) = open_store().await;
    let mut all = BTreeSet::new();
    for i in 0..120 {
        let kind = if i % 3 == 0 { Kind::Volume } else { Kind::Vm };
        let project = if i % 2 == 0 { "p" } else { "q" };
        all.insert(create(&*store, project, kind, &format!("r-{i}")).await.id);
    }
    let mut claimers = JoinSet::new();
    for w in 0..6 {
        let store = Arc::clone(&store);
        claimers.spawn(async move {
            let mut mine = Vec::new();
            // Bounded: there are only 120 operations to take.
            for _ in 0..200 {
                match store
                    .claim(claim(None, &[], &format!("w{w}")))
                    .await
                    .unwrap()
                {
                    Some(c) => {
                        assert_eq!(c.operation.status, Status::Running);
                        mine.push(c.operation.id);
                    }
                    None => break,
                }
            }
            mine
        });
    }
    let mut claimed = Vec::new();
    while let Some(mine) = claimers.join_next().await {
        claimed.extend(mine.unwrap());
    }
    let unique: BTreeSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 120, "every operation claimed once");
    assert_eq!(unique, all);
    assert_eq!(store.leases_held().await.unwrap(), 120);
    assert!(
        store
            .claim(claim(None, &[], "late"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_take_the_oldest_match_and_honour_filters() {
    let (_dir, store) = open_store().await;
    let p_vm = create(&*store, "p", Kind::Vm, "vm-1").await;
    let q_vol = create(&*store, "q", Kind::Volume, "vol-1").await;
    let p_vol = create(&*store, "p", Kind::Volume, "vol-2").await;
    let p_vm2 = create(&*store, "p", Kind::Vm, "vm-2").await;

    let take = |req| {
        let store = Arc::clone(&store);
        async move { store.claim(req).await.unwrap().map(|c| c.operation.id) }
    };
    assert_eq!(
        take(claim(Some("p"), &[Kind::Volume], "w")).await,
        Some(p_vol.id)
    );
    assert_eq!(take(claim(Some("x"), &[], "w")).await, None);
    assert_eq!(
        take(claim(None, &[Kind::Vpc, Kind::Volume], "w")).await,
        Some(q_vol.id)
    );
    assert_eq!(take(claim(Some("p"), &[], "w")).await, Some(p_vm.id));
    // Unknown operations are only for reconcilers that ask for them.
    store
        .update(p_vm2.id, to(Status::Unknown), None)
        .await
        .unwrap();
    assert_eq!(take(claim(None, &[], "w")).await, None);
    let mut reconcile = claim(None, &[], "reconciler");
    reconcile.statuses = vec![Status::Unknown];
    let c = store.claim(reconcile).await.unwrap().unwrap();
    assert_eq!(c.operation.id, p_vm2.id);
    assert_eq!(c.operation.status, Status::Running);
    assert_eq!(
        c.operation.status_message.as_deref(),
        Some("claimed by worker \"reconciler\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_operation_needs_its_token() {
    let (_dir, store) = open_store().await;
    let op = create(&*store, "p", Kind::Vm, "vm-1").await;
    let c = store.claim(claim(None, &[], "w1")).await.unwrap().unwrap();
    assert_eq!(c.operation.version, op.version + 1);
    assert_eq!(c.lease_token.len(), 64);

    let progress = Patch {
        progress: Some(40),
        ..Patch::default()
    };
    match store.update(op.id, progress.clone(), None).await {
        Err(StoreError::Lease(LeaseError::Required { worker })) => assert_eq!(worker, "w1"),
        other => panic!("expected lease_required, got {other:?}"),
    }
    assert!(matches!(
        store
            .update_with(op.id, progress.clone(), with_token("nope"))
            .await,
        Err(StoreError::Lease(LeaseError::Mismatch))
    ));
    let moved = store
        .update_with(op.id, progress, with_token(&c.lease_token))
        .await
        .unwrap();
    assert_eq!(moved.progress, 40);
    // The lease check comes first; the version check still applies to the holder.
    let stale = Preconditions {
        expected_version: Some(1),
        lease_token: Some(c.lease_token.clone()),
    };
    assert!(matches!(
        store.update_with(op.id, to(Status::Done), stale).await,
        Err(StoreError::VersionMismatch { .. })
    ));
    let done = store
        .update_with(op.id, to(Status::Done), with_token(&c.lease_token))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Done);
    // Leaving running ends the lease.
    assert_eq!(store.leases_held().await.unwrap(), 0);
    assert_eq!(store.next_lease_expiry().await.unwrap(), None);
    let hb = Heartbeat {
        lease_token: c.lease_token.clone(),
        progress: None,
        status_message: None,
    };
    assert!(matches!(
        store.heartbeat(op.id, hb).await,
        Err(StoreError::Lease(LeaseError::NotHeld))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_lease_turns_the_operation_unknown() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let op = create(&*store, "p", Kind::Vm, "vm-1").await;
    let c = store.claim(claim(None, &[], "w1")).await.unwrap().unwrap();
    assert_eq!(c.lease_expires_at, clock.now() + Duration::from_secs(30));
    assert_eq!(
        store.next_lease_expiry().await.unwrap(),
        Some(c.lease_expires_at)
    );

    clock.tick(29);
    assert!(store.expire_leases(100).await.unwrap().is_empty());
    clock.tick(1);
    // Run out but not yet reaped: the holder's token no longer works either.
    let hb = Heartbeat {
        lease_token: c.lease_token.clone(),
        progress: None,
        status_message: None,
    };
    assert!(matches!(
        store.heartbeat(op.id, hb.clone()).await,
        Err(StoreError::Lease(LeaseError::Expired { .. }))
    ));
    let expired = store.expire_leases(100).await.unwrap();
    assert_eq!(expired.len(), 1);
    let after = &expired[0];
    assert_eq!((after.id, after.status), (op.id, Status::Unknown));
    assert_eq!(
        after.status_message.as_deref(),
        Some("worker \"w1\" stopped heartbeating; lease expired at 2026-01-01T00:00:30Z")
    );
    assert_eq!(store.get(op.id).await.unwrap().as_ref(), Some(after));
    let history = store.events(op.id).await.unwrap();
    let statuses: Vec<Status> = history.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [Status::Pending, Status::Running, Status::Unknown]
    );
    assert_eq!(store.leases_held().await.unwrap(), 0);
    assert!(store.expire_leases(100).await.unwrap().is_empty());

    // The old holder learns it lost the lease; anyone may now settle the operation.
    assert!(matches!(
        store.heartbeat(op.id, hb).await,
        Err(StoreError::Lease(LeaseError::NotHeld))
    ));
    assert!(matches!(
        store
            .update_with(op.id, to(Status::Done), with_token(&c.lease_token))
            .await,
        Err(StoreError::Lease(LeaseError::NotHeld))
    ));
    assert_eq!(
        store
            .update(op.id, to(Status::Failed), None)
            .await
            .unwrap()
            .status,
        Status::Failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_keeps_the_lease_alive() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let op = create(&*store, "p", Kind::Vm, "vm-1").await;
    let c = store.claim(claim(None, &[], "w1")).await.unwrap().unwrap();
    let beat = |progress: Option<u8>| Heartbeat {
        lease_token: c.lease_token.clone(),
        progress,
        status_message: progress.map(|p| format!("{p}% done")),
    };
    let mut rx = store.subscribe();
    for _ in 0..3 {
        clock.tick(20);
        let r = store.heartbeat(op.id, beat(None)).await.unwrap();
        assert_eq!(r.lease_expires_at, clock.now() + Duration::from_secs(30));
        // A bare heartbeat is not a change.
        assert_eq!(r.operation, c.operation);
        assert!(store.expire_leases(100).await.unwrap().is_empty());
    }
    assert!(
        drain(&*store, &mut rx).await.is_empty(),
        "bare heartbeats publish nothing"
    );
    let r = store.heartbeat(op.id, beat(Some(70))).await.unwrap();
    assert_eq!(r.operation.version, c.operation.version + 1);
    assert_eq!(r.operation.progress, 70);
    assert_eq!(r.operation.status_message.as_deref(), Some("70% done"));
    assert_eq!(drain(&*store, &mut rx).await.len(), 1);
    assert!(matches!(
        store.heartbeat(op.id, beat(Some(10))).await,
        Err(StoreError::Change(_))
    ));
    clock.tick(30);
    assert_eq!(store.expire_leases(100).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_the_terminal_operations_past_the_period() {
    let clock = FakeClock::default();
    let (_dir, store) = open_store_with_clock(&clock).await;
    let mut old_terminal = BTreeSet::new();
    let mut kept = BTreeSet::new();
    let mut last_deleted_event = 0;
    for i in 0..5 {
        let done = create(&*store, "p", Kind::Vm, &format!("done-{i}")).await;
        store
            .update(done.id, to(Status::Running), None)
            .await
            .unwrap();
        store.update(done.id, to(Status::Done), None).await.unwrap();
        old_terminal.insert(done.id);
        let failed = create(&*store, "q", Kind::Vm, &format!("failed-{i}")).await;
        store
            .update(failed.id, to(Status::Failed), None)
            .await
            .unwrap();
        old_terminal.insert(failed.id);
        last_deleted_event = store.events(failed.id).await.unwrap().last().unwrap().seq;
    }
    // Old but unfinished: never deleted, however old.
    kept.insert(create(&*store, "p", Kind::Vm, "pending").await.id);
    let running = create(&*store, "p", Kind::Vm, "running").await;
    store
        .update(running.id, to(Status::Running), None)
        .await
        .unwrap();
    kept.insert(running.id);
    let unknown = create(&*store, "p", Kind::Vm, "unknown").await;
    store
        .update(unknown.id, to(Status::Unknown), None)
        .await
        .unwrap();
    kept.insert(unknown.id);

    clock.tick(100);
    let cutoff = clock.now();
    // Ended exactly at the cut-off: not older than it, so kept.
    let edge = create(&*store, "p", Kind::Vm, "edge").await;
    store.update(edge.id, to(Status::Done), None).await.unwrap();
    kept.insert(edge.id);
    clock.tick(100);
    let recent = create(&*store, "p", Kind::Vm, "recent").await;
    store
        .update(recent.id, to(Status::Done), None)
        .await
        .unwrap();
    kept.insert(recent.id);

    let mut deleted = 0;
    let mut rounds = 0;
    loop {
        let n = store.purge_terminal(cutoff, 3).await.unwrap();
        assert!(n <= 3, "a batch is at most its size");
        deleted += n;
        rounds += 1;
        if n == 0 || rounds > 20 {
            break;
        }
    }
    assert_eq!(deleted, 10);
    assert_eq!(
        rounds, 5,
        "10 operations in batches of 3, then an empty round"
    );
    for id in &old_terminal {
        assert_eq!(store.get(*id).await.unwrap(), None);
        assert!(matches!(
            store.events(*id).await,
            Err(StoreError::NotFound(_))
        ));
    }
    for id in &kept {
        assert!(store.get(*id).await.unwrap().is_some(), "{id} was deleted");
        assert!(!store.events(*id).await.unwrap().is_empty());
    }
    // The maintained counts follow the deletes (total_count sums them when the filters
    // allow); the full count over the rows agrees.
    let project = |status| opsd_domain::ListFilter {
        project_id: "p".into(),
        status,
        ..opsd_domain::ListFilter::default()
    };
    let sort = opsd_domain::Sort::default();
    for status in [
        None,
        Some(opsd_domain::Status::Done),
        Some(opsd_domain::Status::Pending),
    ] {
        let counted = store
            .list(
                &project(status),
                &sort,
                &opsd_domain::PageRequest {
                    cursor: None,
                    limit: 100,
                    count_total: true,
                },
            )
            .await
            .unwrap();
        let mut walked = 0;
        let mut page = counted.clone();
        loop {
            walked += page.items.len();
            let Some(next) = page.next.clone() else { break };
            page = store
                .list(
                    &project(status),
                    &sort,
                    &opsd_domain::PageRequest {
                        cursor: Some(next),
                        limit: 100,
                        count_total: true,
                    },
                )
                .await
                .unwrap();
        }
        assert_eq!(
            counted.total_count, walked as u64,
            "total_count for {status:?}"
        );
    }
    // Resuming from inside the deleted range is no longer exact: the horizon says so.
    let backfill = store.events_since("p", 0, 1000).await.unwrap();
    assert_eq!(backfill.horizon, last_deleted_event);
    assert!(
        backfill
            .changes
            .iter()
            .all(|c| c.event_seq > backfill.horizon)
    );
    assert!(
        backfill
            .changes
            .iter()
            .all(|c| !old_terminal.contains(&c.operation.id))
    );
}
