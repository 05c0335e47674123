//! Deleting one finished operation on request (gRPC's `DeleteOperation`), through the
//! `Store` trait: retention's rules for a single operation.

use opsd_domain::{ChangeError, Kind, OpType, Patch, Status};
use opsd_store::{Preconditions, StoreError};

use crate::support::{new_op, open_store};

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
