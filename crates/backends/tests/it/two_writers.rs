//! Two writers on one database (PostgreSQL; two stores stand for two opsd replicas).
//! No global lock is held across their round trips any more, so what it used to give is
//! checked here directly: no lost update on one operation, stamps that never go
//! backwards in seq order, exact per-project counts; and a write the database refuses
//! fails alone. SQLite has one writer: the replica tests are skipped there.

use std::sync::Arc;

use opsd_backends::testing::{TestBackend, TestDb, backend};
use opsd_domain::{Kind, MAX_LIMIT, OpType, Patch, Sort, Status};
use opsd_store::Store;
use tokio::task::JoinSet;

use crate::support::{connect, new_op, open_store, page, project, status};

fn postgres_only() -> bool {
    let on = backend() == TestBackend::Postgres;
    if !on {
        eprintln!("skipped: one writer only on SQLite");
    }
    on
}

async fn two_replicas() -> (TestDb, Arc<dyn Store>, Arc<dyn Store>) {
    let db = TestDb::new().await;
    let (a, b) = (db.open().await, db.open().await);
    (db, a, b)
}

/// Each replica decides an update in Rust on the row it read; two of them updating the
/// same operation at once must still each see the other's version (the rows are locked
/// when read), so the history has every version once. Both replicas stamp one fixed
/// time, so that the stamp check (which also refuses some overlapping batches) never
/// fires and only the row locks stand between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_updating_one_operation_lose_no_update() {
    if !postgres_only() {
        return;
    }
    let db = TestDb::new().await;
    let fixed = opsd_domain::now();
    let clock: opsd_store::Clock = Arc::new(move || fixed);
    let a = db.open_with_clock(Some(clock.clone())).await;
    let b = db.open_with_clock(Some(clock)).await;
    let op = a
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    b.update(op.id, status(Status::Running), None)
        .await
        .unwrap();
    // Each replica keeps a stream of small batches going, so their batches overlap.
    let mut tasks = JoinSet::new();
    for t in 0..8 {
        let store = Arc::clone(if t % 2 == 0 { &a } else { &b });
        tasks.spawn(async move {
            let mut applied = 0u64;
            for i in 0..25 {
                let patch = Patch {
                    status_message: Some(format!("writer {t}, step {i}")),
                    ..Patch::default()
                };
                store
                    .update_with(op.id, patch, Default::default())
                    .await
                    .unwrap();
                applied += 1;
            }
            applied
        });
    }
    let applied: u64 = tasks.join_all().await.into_iter().sum();
    let events = a.events(op.id).await.unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=2 + applied).collect::<Vec<_>>(),
        "every update is one new version"
    );
    let last = b.get(op.id).await.unwrap().unwrap();
    assert_eq!(last.version, 2 + applied);
}

/// Both replicas write at once; read back in seq order, no stamp is earlier than the one
/// before it, and every count a list reports matches the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_keep_stamps_in_seq_order_and_counts_exact() {
    if !postgres_only() {
        return;
    }
    let (_db, a, b) = two_replicas().await;
    let mut tasks = JoinSet::new();
    for i in 0..60 {
        let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
        tasks.spawn(async move {
            let op = store
                .create(new_op("p", Kind::Vm, OpType::Create, &format!("vm-{i}")))
                .await
                .unwrap()
                .operation;
            if i % 3 != 0 {
                store
                    .update(op.id, status(Status::Running), None)
                    .await
                    .unwrap();
            }
            if i % 3 == 1 {
                store
                    .update(op.id, status(Status::Done), None)
                    .await
                    .unwrap();
            }
        });
    }
    tasks.join_all().await;
    let changes = a.events_since("p", 0, 10_000).await.unwrap().changes;
    assert_eq!(changes.len(), 60 + 40 + 20, "every change once");
    for pair in changes.windows(2) {
        assert!(pair[0].event_seq < pair[1].event_seq);
        assert!(
            pair[0].operation.updated_at <= pair[1].operation.updated_at,
            "seq {} stamped {} after seq {} stamped {}",
            pair[1].event_seq,
            pair[1].operation.updated_at,
            pair[0].event_seq,
            pair[0].operation.updated_at
        );
    }
    let all = page(&*b, &project("p"), &Sort::default(), None, MAX_LIMIT).await;
    assert_eq!(all.total_count, 60);
    for s in [Status::Pending, Status::Running, Status::Done] {
        let filter = opsd_domain::ListFilter {
            status: Some(s),
            ..project("p")
        };
        let listed = page(&*a, &filter, &Sort::default(), None, MAX_LIMIT).await;
        let rows = all.items.iter().filter(|op| op.status == s).count() as u64;
        assert_eq!(listed.total_count, rows, "count of {s:?}");
        assert_eq!(listed.items.len() as u64, rows);
    }
}

/// The check behind those stamps, forced: a transaction that reaches the feed head with
/// a stamp earlier than one already committed is refused (and the writer runs its batch
/// again with a new time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stamped_before_the_head_is_refused() {
    if !postgres_only() {
        return;
    }
    let db = TestDb::new().await;
    let store = db.open().await;
    let op = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let mut client = connect(&db).await;
    let tx = client.transaction().await.unwrap();
    let earlier = op.updated_at - time::Duration::seconds(1);
    let refused = opsd_store_postgres::feed::append(&tx, std::slice::from_ref(&op), earlier).await;
    let message = format!("{:?}", refused.expect_err("an earlier stamp is refused"));
    assert!(message.contains("later than this batch"), "{message}");
    drop(tx);
    // The same stamp as the head's is fine (stamps may repeat, never go back).
    let tx = client.transaction().await.unwrap();
    opsd_store_postgres::feed::append(&tx, std::slice::from_ref(&op), op.updated_at)
        .await
        .unwrap();
}

/// A write the rules accept but the database refuses (PostgreSQL stores no NUL in text)
/// fails alone: the writes batched with it are committed and answered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_database_refuses_fails_alone() {
    let (_db, store) = open_store().await;
    let mut tasks = JoinSet::new();
    for i in 0..24 {
        let store = Arc::clone(&store);
        let resource = if i == 11 {
            "vm-\u{0}-bad".to_owned()
        } else {
            format!("vm-{i}")
        };
        tasks.spawn(async move {
            let result = store
                .create(new_op("p", Kind::Vm, OpType::Create, &resource))
                .await;
            (i, result)
        });
    }
    for (i, result) in tasks.join_all().await {
        if i == 11 {
            if backend() == TestBackend::Postgres {
                assert!(result.is_err(), "PostgreSQL refuses NUL in text");
            }
        } else {
            let created = result.unwrap_or_else(|e| panic!("write {i} failed with its batch: {e}"));
            assert_eq!(created.operation.resource_id, format!("vm-{i}"));
        }
    }
    let listed = page(&*store, &project("p"), &Sort::default(), None, MAX_LIMIT).await;
    assert!(listed.total_count >= 23);
}
