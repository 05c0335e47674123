//! On PostgreSQL a new operation's row stands for its creation event (migration 0021):
//! the writer stores no event for a create, and the feed, the histories and the copies
//! between stores read the creation from the row. What a reader is told must not show
//! it: every path that reads events tells the creation exactly as the create answered
//! it, on both backends.

use opsd_domain::{Kind, OpType, Status};
use opsd_store_suite::{TestBackend, TestDb, backend};

use crate::support::{connect, new_op, status};

#[tokio::test]
async fn a_creation_is_told_as_the_create_answered_it() {
    let db = TestDb::new().await;
    let store = db.open().await;
    let first = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    let second = store
        .create(new_op("p", Kind::Volume, OpType::Update, "vol-1"))
        .await
        .unwrap()
        .operation;
    let running = store
        .update(first.id, status(Status::Running), None)
        .await
        .unwrap();

    // The project's feed from the start (a watch's backfill).
    let changes = store.events_since("p", 0, 100).await.unwrap().changes;
    let told: Vec<_> = changes.iter().map(|c| (*c.operation).clone()).collect();
    assert_eq!(told, [first.clone(), second.clone(), running.clone()]);
    assert!(changes.windows(2).all(|w| w[0].event_seq < w[1].event_seq));

    // One operation's history.
    let history = store.events(first.id).await.unwrap();
    let versions: Vec<_> = history
        .iter()
        .map(|e| (e.version, e.status, e.progress, e.at))
        .collect();
    assert_eq!(
        versions,
        [
            (1, Status::Pending, 0, first.created_at),
            (2, Status::Running, 0, running.updated_at),
        ]
    );
    assert_eq!(history[0].seq, changes[0].event_seq);
    assert_eq!(history[1].seq, changes[2].event_seq);

    // Resuming after the first creation skips exactly it.
    let after = store
        .events_since("p", changes[0].event_seq, 100)
        .await
        .unwrap()
        .changes;
    assert_eq!(after.len(), 2);
    assert_eq!(*after[0].operation, second);

    if backend() == TestBackend::Postgres {
        // A create stores no event; its row stands for it, under the same seq.
        let client = connect(&db).await;
        let stored: i64 = client
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, 1, "only the move to running is a stored event");
        assert_eq!(changes[0].event_seq, first.seq);
        assert_eq!(changes[1].event_seq, second.seq);
    }
}
