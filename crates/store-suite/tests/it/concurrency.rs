//! Writes arriving together: the SQLite writer commits them in one transaction, and
//! every caller must still get exactly its own outcome.

use std::sync::Arc;

use opsd_domain::{ChangeError, Kind, MAX_LIMIT, OpType, Operation, Patch, Sort, Status};
use opsd_store::StoreError;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::{new_op, open_store, page, project, resize, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_creates_make_one_operation() {
    let (_dir, store) = open_store().await;
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            store
                .create(resize("p", "req-burst", "20Gi"))
                .await
                .unwrap()
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(
        results.iter().filter(|c| c.created).count(),
        1,
        "exactly one create wins"
    );
    let winner = results
        .iter()
        .find(|c| c.created)
        .unwrap()
        .operation
        .clone();
    assert!(
        results.iter().all(|c| c.operation == winner),
        "all callers see the same operation"
    );
    let list = page(&*store, &project("p"), &Sort::default(), None, MAX_LIMIT).await;
    assert_eq!(list.total_count, 1);
}

/// Conditional updates racing on one version: the writer serializes them, so exactly
/// one sees version 1 and every other one is told the version moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_conditional_updates_let_one_win() {
    let (_dir, store) = open_store().await;
    let op = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let mut tasks = JoinSet::new();
    for i in 0..10u8 {
        let store = Arc::clone(&store);
        let patch = Patch {
            status: Some(Status::Running),
            progress: Some(i * 10),
            ..Patch::default()
        };
        tasks.spawn(async move { store.update(op.id, patch, Some(1)).await });
    }
    let results = tasks.join_all().await;
    let winners: Vec<&Operation> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        assert!(
            matches!(
                r,
                Ok(_)
                    | Err(StoreError::VersionMismatch {
                        expected: 1,
                        current: 2
                    })
            ),
            "{r:?}"
        );
    }
    assert_eq!(store.get(op.id).await.unwrap().as_ref(), Some(winners[0]));
    assert_eq!(store.events(op.id).await.unwrap().len(), 2);
}

/// Concurrent writes share one transaction; a refused one must roll back alone, never
/// its neighbours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_do_not_undo_their_neighbours() {
    let (_dir, store) = open_store().await;
    let done = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-done"))
        .await
        .unwrap()
        .operation;
    store
        .update(done.id, status(Status::Done), None)
        .await
        .unwrap();
    let mut tasks = JoinSet::new();
    for i in 0..30 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            match i % 3 {
                0 => {
                    let new = new_op("p", Kind::Vm, OpType::Create, &format!("vm-{i}"));
                    store.create(new).await.map(|c| Some(c.operation))
                }
                1 => store
                    .update(Uuid::now_v7(), status(Status::Running), None)
                    .await
                    .map(|_| None),
                _ => store
                    .update(done.id, status(Status::Running), None)
                    .await
                    .map(|_| None),
            }
        });
    }
    let mut created = Vec::new();
    for r in tasks.join_all().await {
        match r {
            Ok(Some(op)) => created.push(op),
            Err(StoreError::NotFound(_) | StoreError::Change(ChangeError::Transition { .. })) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(created.len(), 10);
    for op in &created {
        assert_eq!(store.get(op.id).await.unwrap().as_ref(), Some(op));
    }
    let list = page(&*store, &project("p"), &Sort::default(), None, MAX_LIMIT).await;
    assert_eq!(list.total_count, 11);
    assert_eq!(store.events(done.id).await.unwrap().len(), 2);
}

/// Several processes starting at once on an empty database each try to create the first
/// admin key: exactly one does, and later attempts do nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_first_key_under_racing_starts() {
    let db = opsd_store_suite::TestDb::new().await;
    let stores = [db.open().await, db.open().await];
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = stores[i % 2].clone();
        tries.spawn(async move {
            store
                .create_first_key(opsd_domain::NewApiKey {
                    name: format!("admin-{i}"),
                    role: opsd_domain::Role::Admin,
                    projects: opsd_domain::ProjectScope::All,
                })
                .await
                .unwrap()
        });
    }
    let made = tries.join_all().await.into_iter().flatten().count();
    assert_eq!(made, 1);
    assert_eq!(stores[0].list_keys().await.unwrap().len(), 1);
    assert!(stores[1].has_ever_had_keys().await.unwrap());
}
