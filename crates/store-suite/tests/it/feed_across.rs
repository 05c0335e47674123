//! The change feed across processes (PostgreSQL): two stores on one database stand for
//! two opsd processes. A change committed through one reaches the other's feed, once,
//! in commit order; when the other's listening connection is cut, nothing is lost (it
//! catches up from the store) and the gap is counted. SQLite has one process: skipped.

use std::time::Duration;

use opsd_domain::{Kind, OpType, Status};
use opsd_store::FeedChange;
use opsd_store_open::StoreConfig;
use opsd_store_suite::{TestBackend, TestDb, backend};
use tokio::sync::broadcast;

use crate::support::{new_op, status, whole};

fn postgres_only() -> bool {
    let on = backend() == TestBackend::Postgres;
    if !on {
        eprintln!("skipped: one process only on SQLite");
    }
    on
}

async fn next(rx: &mut broadcast::Receiver<FeedChange>) -> FeedChange {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a change within 5 s")
        .expect("feed open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_written_through_one_process_reaches_the_others_feed() {
    if !postgres_only() {
        return;
    }
    let db = TestDb::new().await;
    let (a, b) = (db.open().await, db.open().await);
    let mut on_b = b.subscribe();
    let mut on_a = a.subscribe();
    let mut written = Vec::new();
    for i in 0..20 {
        let writer = if i % 2 == 0 { &a } else { &b };
        let op = writer
            .create(new_op("p", Kind::Vm, OpType::Create, &format!("vm-{i}")))
            .await
            .unwrap()
            .operation;
        written.push(op.id);
    }
    for (reader, rx) in [&mut on_a, &mut on_b].into_iter().enumerate() {
        let mut seqs = Vec::new();
        let mut ids = Vec::new();
        for i in 0..20 {
            let c = next(rx).await;
            if i % 2 != reader {
                assert!(
                    matches!(c, FeedChange::Named { .. }),
                    "another process's change arrives named only: {c:?}"
                );
            }
            seqs.push(c.event_seq());
            ids.push(c.id());
        }
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert_eq!(ids, written, "every change once, in commit order");
        assert!(rx.try_recv().is_err(), "nothing twice");
    }
}

/// While a watch stream wants a project whole (`Store::want_whole`), the other processes'
/// changes of that project reach the feed whole, as their writer published them; other
/// projects' stay named, and so does that project's once nothing wants it any more.
/// Without it every watch stream of the project reads the history again for each of
/// those changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_a_watch_wants_whole_arrives_whole_from_the_other_processes() {
    if !postgres_only() {
        return;
    }
    let db = TestDb::new().await;
    let (a, b) = (db.open().await, db.open().await);
    let wanted = a.want_whole("watched");
    let also_wanted = a.want_whole("watched");
    let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
    let mut ids = Vec::new();
    for i in 0..10 {
        let project = if i % 3 == 0 { "other" } else { "watched" };
        let op = b
            .create(new_op(
                project,
                Kind::Vm,
                OpType::Create,
                &format!("vm-{i}"),
            ))
            .await
            .unwrap()
            .operation;
        ids.push(op.id);
    }
    // Stored events too, not only the creations that rows stand for.
    for id in &ids[..4] {
        b.update(*id, status(Status::Running), None).await.unwrap();
    }
    // One of the two streams ends; the other still wants the project.
    drop(also_wanted);
    b.update(ids[1], status(Status::Done), None).await.unwrap();
    for _ in 0..15 {
        let published = whole(&*b, next(&mut on_b).await).await;
        let c = next(&mut on_a).await;
        assert_eq!(c.event_seq(), published.event_seq, "the same order");
        if published.operation.project_id == "watched" {
            assert_eq!(c, FeedChange::Whole(published), "a wanted project's change");
        } else {
            assert!(matches!(c, FeedChange::Named { .. }), "{c:?}");
        }
    }
    drop(wanted);
    b.update(ids[2], status(Status::Done), None).await.unwrap();
    let c = next(&mut on_a).await;
    assert!(
        matches!(c, FeedChange::Named { .. }),
        "wanted by nobody any more: {c:?}"
    );
}

/// A process takes its own changes from its writer and reads only the others' back from
/// the store. Its own `NOTIFY` reaches its listener as the writer hands the batch over;
/// waking the pump for it made the pump read about half of a lone process's batches
/// back from the store (and each batch twice with two processes writing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_reads_only_the_others_changes_back_from_the_store() {
    if !postgres_only() {
        return;
    }
    let db = TestDb::new().await;
    let (a, b) = (db.open().await, db.open().await);
    let mut on_a = a.subscribe();
    const OWN: u64 = 60;
    for i in 0..OWN {
        a.create(new_op("p", Kind::Vm, OpType::Create, &format!("own-{i}")))
            .await
            .unwrap();
    }
    for _ in 0..OWN {
        next(&mut on_a).await;
    }
    // Its once-a-second look at the store may meet a batch between its COMMIT and its
    // hand-over, rarely: a few reads at most, where waking on its own notices made
    // dozens.
    let own_reads = a.feed_store_reads();
    assert!(
        own_reads <= OWN / 10,
        "the feed read {own_reads} of its own {OWN} changes back from the store"
    );
    const OTHERS: u64 = 20;
    for i in 0..OTHERS {
        b.create(new_op(
            "p",
            Kind::Vm,
            OpType::Create,
            &format!("theirs-{i}"),
        ))
        .await
        .unwrap();
    }
    for _ in 0..OTHERS {
        next(&mut on_a).await;
    }
    assert!(
        a.feed_store_reads() >= own_reads + OTHERS,
        "another process's changes are read from the store"
    );
}

/// Deletions (retention, gRPC's `DeleteOperation`) leave no change on the feed. Every
/// process still learns of them, through the count of deleting transactions that the
/// feed's notices carry (`Store::deletions`, which read caches compare); a process that
/// starts later begins from the database's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_through_one_process_is_counted_by_every_process() {
    if !postgres_only() {
        return;
    }
    let db = TestDb::new().await;
    let (a, b) = (db.open().await, db.open().await);
    let op = a
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    for s in [Status::Running, Status::Done] {
        a.update(op.id, status(s), None).await.unwrap();
    }
    let (a_before, b_before) = (a.deletions(), b.deletions());
    let cutoff = opsd_domain::now() + time::Duration::seconds(1);
    assert_eq!(a.purge_terminal(cutoff, 10).await.unwrap(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.deletions() == b_before || a.deletions() == a_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deletion is not counted 5 s later: {} → {} here, {} → {} in the deleting process",
            b_before,
            b.deletions(),
            a_before,
            a.deletions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = db.open().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.deletions() != b.deletions() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a process opened later counts {} deletions, the others {}",
            c.deletions(),
            b.deletions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listening_connection_loses_nothing_and_counts_a_gap() {
    if !postgres_only() {
        return;
    }
    let db = TestDb::new().await;
    let (a, b) = (db.open().await, db.open().await);
    let mut on_b = b.subscribe();
    let create = |name: String| {
        let a = &a;
        async move {
            a.create(new_op("p", Kind::Vm, OpType::Create, &name))
                .await
                .unwrap()
                .operation
                .id
        }
    };
    let before = create("before".into()).await;
    assert_eq!(next(&mut on_b).await.id(), before);
    assert_eq!(b.feed_gaps(), 0);

    // Cut every listening connection of this schema's stores, and write meanwhile.
    let StoreConfig::Postgres { url, .. } = &db.config else {
        unreachable!()
    };
    let (admin, conn) = url.config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let cut = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'opsd-feed-listener' AND query LIKE '%' || current_schema() || '%'",
            &[],
        )
        .await
        .unwrap();
    assert!(!cut.is_empty(), "found the listeners to cut");
    let mut during = Vec::new();
    for i in 0..5 {
        during.push(create(format!("during-{i}")).await);
    }
    for id in during {
        assert_eq!(next(&mut on_b).await.id(), id);
    }
    // Reconnecting takes a backoff step and a connection; generous for a busy machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while b.feed_gaps() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gap was counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = create("after".into()).await;
    assert_eq!(next(&mut on_b).await.id(), after);
    assert!(on_b.try_recv().is_err(), "nothing twice");
}
