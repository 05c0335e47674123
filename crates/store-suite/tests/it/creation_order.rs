//! Lists in creation order walk `seq` and creation-time bounds are `seq` bounds
//! (ARCHITECTURE.md, "Storage size"). That is only right while operations are created in
//! `seq` order with stamps that never go backwards, which the writer keeps across
//! restarts (SQLite's one writer; PostgreSQL's feed head, for every process), and
//! migrations 0009 (SQLite) and 0019 (PostgreSQL) establish in older databases.

use std::sync::Arc;

use opsd_domain::{Kind, ListFilter, OpType, Sort, SortField, SortTerm};
use opsd_store::Store;
use opsd_store_suite::TestDb;
use uuid::Uuid;

use crate::support::{FakeClock, new_op, page, reopen_store};

fn by_creation(descending: bool) -> Sort {
    Sort::new(vec![SortTerm {
        field: SortField::CreatedAt,
        descending,
    }])
    .unwrap()
}

async fn listed(store: &dyn Store, project: &str, sort: &Sort) -> Vec<Uuid> {
    let filter = ListFilter {
        project_id: project.into(),
        ..ListFilter::default()
    };
    page(store, &filter, sort, None, 100)
        .await
        .items
        .iter()
        .map(|o| o.id)
        .collect()
}

#[tokio::test]
async fn a_clock_set_back_across_a_restart_keeps_creation_order() {
    let clock = FakeClock::default();
    let db = TestDb::new().await;
    let store = reopen_store(&db, &clock).await;
    let first = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-1"))
        .await
        .unwrap()
        .operation;
    drop(store);
    clock.tick(-3_600);
    let store = reopen_store(&db, &clock).await;
    let second = store
        .create(new_op("p", Kind::Vm, OpType::Create, "vm-2"))
        .await
        .unwrap()
        .operation;
    assert!(
        second.created_at >= first.created_at,
        "a stamp went backwards"
    );
    assert_eq!(
        listed(&*store, "p", &by_creation(true)).await,
        [second.id, first.id]
    );
    // A bound at the first operation's time keeps both.
    let since = ListFilter {
        project_id: "p".into(),
        created_at_min: Some(first.created_at),
        ..ListFilter::default()
    };
    let both = page(&*store, &since, &by_creation(false), None, 10).await;
    assert_eq!(both.items.len(), 2);
}

/// An older release started every run from the clock, so its database may hold an
/// operation stamped before one created ahead of it. The migration moves such a stamp up
/// to the one before it, so lists keep the order they had.
#[tokio::test]
async fn the_migration_makes_creation_stamps_follow_seq() {
    let db = TestDb::new().await;
    // The third operation still stored (the fixture's retention deleted some).
    let set_back = "UPDATE operations SET created_at = created_at - 3600000000 \
                    WHERE seq = (SELECT seq FROM operations ORDER BY seq LIMIT 1 OFFSET 2)";
    let suffix = crate::history::load_fixture(&db, set_back).await;
    let ids = crate::history::fixture_ids(suffix);
    let store: Arc<dyn Store> = db.open().await;
    let mut ops = Vec::new();
    for id in &ids {
        ops.extend(store.get(*id).await.unwrap());
    }
    assert!(ops.len() > 3, "{}", ops.len());
    assert!(
        ops.windows(2).all(|w| w[0].created_at <= w[1].created_at),
        "creation stamps out of seq order"
    );
    assert_eq!(ops[2].created_at, ops[1].created_at);
    assert!(ops[2].updated_at >= ops[2].created_at);
    for project in crate::history::PROJECTS {
        let made: Vec<Uuid> = ops
            .iter()
            .filter(|o| o.project_id == project)
            .map(|o| o.id)
            .collect();
        assert_eq!(listed(&*store, project, &by_creation(false)).await, made);
    }
    // Created after the migration: above every earlier seq, and listed first.
    let project = crate::history::PROJECTS[0];
    let newest = store
        .create(new_op(project, Kind::Vm, OpType::Create, "vm-after"))
        .await
        .unwrap()
        .operation;
    assert!(
        ops.iter()
            .all(|o| o.seq < newest.seq && o.created_at <= newest.created_at)
    );
    assert_eq!(
        listed(&*store, project, &by_creation(true)).await[0],
        newest.id
    );
}
