//! The ordering rule on PostgreSQL, forced: two write transactions in flight, the one
//! that reached the feed head later trying to commit first, and a watch backfill
//! reading in between. With a plain sequence the backfill would see the later seq, move
//! its position past it, and never see the earlier one when it commits. The feed head
//! (`feed::ADVANCE_SQL`, held from the statement that assigns seqs to COMMIT) makes the
//! later writer wait, so nothing is lost. The writer runs the same statements in one
//! flight; here each is its own round trip so that the test can stop between them.
//! (SQLite has one writer, so there the interleaving cannot happen; this test is
//! skipped.)

use std::time::Duration;

use opsd_domain::{Kind, OpType, Operation};
use opsd_store_postgres::feed;
use opsd_store_suite::{TestBackend, TestDb, backend};

use crate::support::{connect, new_op};

fn next_version(op: &Operation, v: u64) -> Operation {
    Operation {
        version: v,
        ..op.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_seq_never_becomes_visible_before_an_earlier_one() {
    if backend() != TestBackend::Postgres {
        eprintln!("skipped: the interleaving exists only with concurrent writers (PostgreSQL)");
        return;
    }
    let db = TestDb::new().await;
    let store = db.open().await;
    let op = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .expect("create")
        .operation;
    let mut seen: Vec<u64> = store
        .events_since("p", 0, 100)
        .await
        .expect("backfill")
        .changes
        .iter()
        .map(|c| c.event_seq)
        .collect();
    let mut position = *seen.last().expect("the create's event");

    // Writer 1 takes the next seq and holds its transaction open.
    let stamp = op.updated_at;
    let mut c1 = connect(&db).await;
    let tx1 = c1.transaction().await.expect("begin 1");
    let (seq1, _) = feed::append(&tx1, &[next_version(&op, 2)], stamp, false)
        .await
        .expect("event 1");

    // Writer 2 comes later (so its seq is higher) and tries to commit first.
    let mut c2 = connect(&db).await;
    let op2 = next_version(&op, 3);
    let writer2 = tokio::spawn(async move {
        let tx2 = c2.transaction().await.expect("begin 2");
        let (seq2, _) = feed::append(&tx2, &[op2], stamp, false)
            .await
            .expect("event 2");
        tx2.commit().await.expect("commit 2");
        seq2
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A watch backfills while writer 1 is still open.
    for c in store
        .events_since("p", position, 100)
        .await
        .expect("mid")
        .changes
    {
        seen.push(c.event_seq);
        position = c.event_seq;
    }

    assert!(
        !writer2.is_finished(),
        "writer 2 committed while writer 1 held the feed head"
    );
    tx1.commit().await.expect("commit 1");
    let seq2 = tokio::time::timeout(Duration::from_secs(10), writer2)
        .await
        .expect("writer 2 finishes once writer 1 committed")
        .expect("writer 2");
    for c in store
        .events_since("p", position, 100)
        .await
        .expect("after")
        .changes
    {
        seen.push(c.event_seq);
    }
    assert!(
        seq1 < seq2,
        "writer 1 took the earlier seq ({seq1} vs {seq2})"
    );
    for seq in [seq1, seq2] {
        assert!(
            seen.contains(&seq),
            "event {seq} was never delivered to a resuming watch: saw {seen:?}"
        );
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
}
