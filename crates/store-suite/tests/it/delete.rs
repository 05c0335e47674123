//! Deleting one finished operation on request (gRPC's `DeleteOperation`), through the
//! `Store` trait: retention's rules for a single operation.

use opsd_domain::{ChangeError, Kind, ListFilter, OpType, Patch, Sort, Status};
use opsd_store::{Preconditions, StoreError};

use crate::support::{new_op, open_store, page, project, status};

#[tokio::test]
async fn only_a_finished_operation_is_deleted_with_its_history() {
    let (_dir, store) = open_store().await;
    let op = store
        .create(new_op("del", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    match store.delete_finished(op.id).await {
        Err(StoreError::Change(ChangeError::NotFinished { status })) => {
            assert_eq!(status, Status::Pending);
        }
        other => panic!("expected NotFinished, got {other:?}"),
    }
    assert!(
        store.get(op.id).await.unwrap().is_some(),
        "an unfinished one stays"
    );

    let done = Patch {
        status: Some(Status::Done),
        ..Patch::default()
    };
    store
        .update_with(op.id, done, Preconditions::default())
        .await
        .unwrap();
    let before = store.events_since("del", 0, 100).await.unwrap();
    assert!(!before.changes.is_empty());
    store.delete_finished(op.id).await.unwrap();
    assert!(store.get(op.id).await.unwrap().is_none());
    assert!(store.events(op.id).await.map_or(true, |e| e.is_empty()));
    let after = store.events_since("del", 0, 100).await.unwrap();
    assert!(after.changes.is_empty());
    assert!(
        after.horizon >= before.head,
        "the horizon moves above its events"
    );

    assert!(matches!(
        store.delete_finished(op.id).await,
        Err(StoreError::NotFound(id)) if id == op.id
    ));
}

/// A list's `total_count` (the maintained per-status counts) follows creates, status
/// changes and deletes, several of each in one batch of the writer (all sent at once).
#[tokio::test]
async fn counts_follow_creates_changes_and_deletes() {
    let (_dir, store) = open_store().await;
    let p = "del-counts";
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (store, new) = (
            store.clone(),
            new_op(p, Kind::Vm, OpType::Create, &format!("vm-{i}")),
        );
        tasks.spawn(async move { store.create(new).await.unwrap().operation.id });
    }
    let ids = tasks.join_all().await;
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids[..4].iter().copied() {
        let store = store.clone();
        tasks.spawn(async move { store.update(id, status(Status::Done), None).await.unwrap() });
    }
    tasks.join_all().await;
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids[..3].iter().copied() {
        let store = store.clone();
        tasks.spawn(async move { store.delete_finished(id).await.unwrap() });
    }
    tasks.join_all().await;
    for (s, expected) in [
        (None, 3),
        (Some(Status::Done), 1),
        (Some(Status::Pending), 2),
    ] {
        let filter = ListFilter {
            status: s,
            ..project(p)
        };
        let listed = page(&*store, &filter, &Sort::default(), None, 100).await;
        assert_eq!(listed.total_count, expected, "count of {s:?}");
    }
}
