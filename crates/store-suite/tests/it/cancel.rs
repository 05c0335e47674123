//! Cancellation through the `Store` trait (what every backend must do): each status's
//! rule, the feed and history, the lease left to its worker, a second request as no
//! change, and the flag surviving a reopen.

use std::time::Duration;

use opsd_domain::lease::ClaimRequest;
use opsd_domain::{ChangeError, Kind, OpType, Status};
use opsd_store::{Heartbeat, Preconditions, StoreError};

use crate::support::{new_op, open_store};

#[tokio::test]
async fn each_status_follows_its_rule() {
    let (_dir, store) = open_store().await;
    let mut feed = store.subscribe();
    let pending = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let failed = store.cancel(pending.id).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.as_ref().unwrap().errors[0].code, "CANCELLED");
    assert_eq!(store.get(pending.id).await.unwrap().unwrap(), failed);
    let _created = feed.recv().await.unwrap();
    let change = crate::support::whole(&*store, feed.recv().await.unwrap()).await;
    assert_eq!(
        *change.operation, failed,
        "the feed carries the cancellation"
    );

    match store.cancel(pending.id).await {
        Err(StoreError::Change(ChangeError::AlreadyFinished { status })) => {
            assert_eq!(status, Status::Failed);
        }
        other => panic!("expected AlreadyFinished, got {other:?}"),
    }
    let missing = uuid::Uuid::now_v7();
    assert!(matches!(store.cancel(missing).await, Err(StoreError::NotFound(id)) if id == missing));
}

#[tokio::test]
async fn a_running_operation_keeps_its_lease_and_is_flagged_once() {
    let (_dir, store) = open_store().await;
    let op = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let claimed = store
        .claim(ClaimRequest {
            project_id: Some("p".into()),
            kinds: vec![],
            statuses: vec![Status::Pending],
            lease: Duration::from_secs(30),
            worker: "w".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let flagged = store.cancel(op.id).await.unwrap();
    assert!(flagged.cancel_requested);
    assert_eq!(flagged.status, Status::Running);
    assert_eq!(flagged.version, claimed.operation.version + 1);
    let again = store.cancel(op.id).await.unwrap();
    assert_eq!(again, flagged, "a second request changes nothing");
    assert_eq!(
        store.events(op.id).await.unwrap().len(),
        3,
        "created, claimed, flagged"
    );

    // The lease is still the worker's: its heartbeat works and sees the flag; a change
    // without the token is still refused.
    let renewed = store
        .heartbeat(
            op.id,
            Heartbeat {
                lease_token: claimed.lease_token.clone(),
                progress: Some(10),
                status_message: None,
            },
        )
        .await
        .unwrap();
    assert!(
        renewed.operation.cancel_requested,
        "a later write keeps the flag"
    );
    let patch = opsd_domain::Patch {
        status: Some(Status::Done),
        ..opsd_domain::Patch::default()
    };
    assert!(matches!(
        store.update(op.id, patch.clone(), None).await,
        Err(StoreError::Lease(_))
    ));
    let pre = Preconditions {
        expected_version: None,
        lease_token: Some(claimed.lease_token),
    };
    let done = store.update_with(op.id, patch, pre).await.unwrap();
    assert_eq!((done.status, done.cancel_requested), (Status::Done, true));
}
