//! Two writers on one database (PostgreSQL; two stores stand for two opsd replicas).
//! No global lock is held across their round trips any more, so what it used to give is
//! checked here directly: no lost update on one operation, stamps that never go
//! backwards in seq order, operation seqs in creation order, exact per-project counts;
//! and a write the database refuses fails alone. SQLite has one writer: the replica tests are skipped there.

use std::sync::Arc;

use opsd_domain::{Kind, MAX_LIMIT, OpType, Operation, Patch, Sort, Status};
use opsd_store::Store;
use opsd_store_suite::{TestBackend, TestDb, backend};
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
/// time, so that no batch is restamped or refused for its stamp and only the row locks
/// stand between them.
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

/// 60 operations created and moved on by two replicas at once in `project`; what each
/// write answered.
async fn both_replicas_write(
    a: &Arc<dyn Store>,
    b: &Arc<dyn Store>,
    project: &str,
) -> Vec<Operation> {
    let mut tasks = JoinSet::new();
    for i in 0..60 {
        let store = Arc::clone(if i % 2 == 0 { a } else { b });
        let project = project.to_owned();
        tasks.spawn(async move {
            let new = new_op(&project, Kind::Vm, OpType::Create, &format!("vm-{i}"));
            let mut versions = vec![store.create(new).await.unwrap().operation];
            let id = versions[0].id;
            if i % 3 != 0 {
                versions.push(
                    store
                        .update(id, status(Status::Running), None)
                        .await
                        .unwrap(),
                );
            }
            if i % 3 == 1 {
                versions.push(store.update(id, status(Status::Done), None).await.unwrap());
            }
            versions
        });
    }
    tasks.join_all().await.into_iter().flatten().collect()
}

/// Both replicas write at once; read back in seq order, no stamp is earlier than the one
/// before it, every count a list reports matches the rows, and every write answered the
/// times that were stored. Rounds go on until some batch took a later replica's stamp
/// (`restamped`), so the check covers that path: without either half of it (the write
/// flight's restamping of what it stores, or the writer's of what it answers) the
/// answer check fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_keep_stamps_in_seq_order_and_counts_exact() {
    if !postgres_only() {
        return;
    }
    let (_db, a, b) = two_replicas().await;
    let restamped = || a.write_conflicts().restamped + b.write_conflicts().restamped;
    let mut round = 0;
    while round == 0 || restamped() == 0 {
        round += 1;
        assert!(
            round <= 50,
            "no batch took another replica's stamp in 50 rounds"
        );
        let project = format!("p{round}");
        let answered = both_replicas_write(&a, &b, &project).await;
        check_round(&a, &b, &project, &answered).await;
    }
}

async fn check_round(a: &Arc<dyn Store>, b: &Arc<dyn Store>, p: &str, answered: &[Operation]) {
    let changes = a.events_since(p, 0, 10_000).await.unwrap().changes;
    assert_eq!(changes.len(), 60 + 40 + 20, "every change once");
    let stored: std::collections::HashMap<_, _> = changes
        .iter()
        .map(|c| ((c.operation.id, c.operation.version), &*c.operation))
        .collect();
    for op in answered {
        let version = stored[&(op.id, op.version)];
        let times = |o: &Operation| (o.created_at, o.started_at, o.ended_at, o.updated_at);
        assert_eq!(times(version), times(op), "answered as stored");
        assert_eq!(version.seq, op.seq, "answered the seq stored");
    }
    // A create's seq is its creation event's, handed out under the feed head, so seqs
    // follow commit order across replicas and creation order is seq order.
    for c in changes.iter().filter(|c| c.operation.version == 1) {
        assert_eq!(
            c.operation.seq, c.event_seq,
            "an operation's seq is its creation's"
        );
    }
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
    let all = page(&**b, &project(p), &Sort::default(), None, MAX_LIMIT).await;
    assert_eq!(all.total_count, 60);
    for pair in all.items.windows(2) {
        assert!(
            pair[0].seq > pair[1].seq,
            "newest first is highest seq first"
        );
        assert!(pair[0].created_at >= pair[1].created_at, "newest first");
    }
    for s in [Status::Pending, Status::Running, Status::Done] {
        let filter = opsd_domain::ListFilter {
            status: Some(s),
            ..project(p)
        };
        let listed = page(&**a, &filter, &Sort::default(), None, MAX_LIMIT).await;
        let rows = all.items.iter().filter(|op| op.status == s).count() as u64;
        assert_eq!(listed.total_count, rows, "count of {s:?}");
        assert_eq!(listed.items.len() as u64, rows);
    }
}

/// The rule behind those stamps, forced: a batch that reaches the feed head after a later
/// stamp was committed takes the head's stamp for every time it set (its own time
/// becomes the head's), and keeps the times it carried over; or, when it could not tell
/// the two apart (`may_restamp` false: its time equals a stamp already committed), it is
/// refused and runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stamped_before_the_head_takes_its_stamp() {
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
    let head = op.updated_at;
    let mut client = connect(&db).await;
    let earlier = head - time::Duration::seconds(1);
    let mut next = op.clone();
    next.version = 2;
    next.status = Status::Running;
    let carried = earlier - time::Duration::seconds(1);
    next.started_at = Some(carried);
    next.updated_at = earlier;

    let tx = client.transaction().await.unwrap();
    let refused =
        opsd_store_postgres::feed::append(&tx, std::slice::from_ref(&next), earlier, false).await;
    let message = format!("{:?}", refused.expect_err("no restamp allowed: refused"));
    assert!(message.contains("later than this batch"), "{message}");
    drop(tx);

    let tx = client.transaction().await.unwrap();
    let (seq, given) =
        opsd_store_postgres::feed::append(&tx, std::slice::from_ref(&next), earlier, true)
            .await
            .unwrap();
    assert_eq!(given, head, "the batch gets the head's stamp");
    let row = tx
        .query_one(
            "SELECT at, started_at FROM events WHERE seq = $1",
            &[&i64::try_from(seq).unwrap()],
        )
        .await
        .unwrap();
    let (at, started): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        at,
        opsd_domain::micros(head),
        "the time it set moved to the head's"
    );
    assert_eq!(
        started,
        opsd_domain::micros(carried),
        "a time carried over stays"
    );
    tx.rollback().await.unwrap();

    // A later stamp than the head's is the batch's own.
    let tx = client.transaction().await.unwrap();
    let later = head + time::Duration::seconds(1);
    let (_, given) =
        opsd_store_postgres::feed::append(&tx, std::slice::from_ref(&next), later, false)
            .await
            .unwrap();
    assert_eq!(given, later);
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
