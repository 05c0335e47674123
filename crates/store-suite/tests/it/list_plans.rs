//! Every list the API can ask for walks PostgreSQL's indexes in order: the database never
//! sorts a project's rows to serve a page, whatever the filter, sort or cursor, which is
//! what keeps a page's cost flat as a project grows. (SQLite's twin of this test is
//! `store-sqlite/src/list_plans.rs`.) A list with no index of its own order merges the
//! status indexes' ranges (`opsd_store::sql::list`), and this test fails if that merge
//! is taken away or an index it relies on is dropped.
//!
//! The planner is told that sorting and whole-table scans are prohibitively expensive,
//! so it sorts only when no index walk can serve the order: the test asks whether such a
//! walk exists for each shape, not which plan a tiny test table happens to get.

use opsd_domain::{
    Direction, KeyValue, Kind, ListFilter, OpType, Position, Sort, SortField, SortTerm, Status,
};
use opsd_store::sql::{self, Dialect, Param};
use opsd_store_suite::{TestBackend, TestDb, backend};
use tokio_postgres::types::ToSql;

fn filters() -> Vec<ListFilter> {
    let project = ListFilter {
        project_id: "p".into(),
        ..ListFilter::default()
    };
    let now = time::OffsetDateTime::now_utc();
    vec![
        project.clone(),
        ListFilter {
            status: Some(Status::Pending),
            ..project.clone()
        },
        ListFilter {
            kind: Some(Kind::Vm),
            ..project.clone()
        },
        ListFilter {
            op_type: Some(OpType::Create),
            ..project.clone()
        },
        ListFilter {
            resource_id: Some("vm-1".into()),
            ..project.clone()
        },
        ListFilter {
            status: Some(Status::Running),
            kind: Some(Kind::Volume),
            ..project.clone()
        },
        ListFilter {
            kind: Some(Kind::Volume),
            op_type: Some(OpType::Delete),
            ..project.clone()
        },
        ListFilter {
            status: Some(Status::Failed),
            op_type: Some(OpType::Restart),
            ..project.clone()
        },
        ListFilter {
            created_at_min: Some(time::OffsetDateTime::UNIX_EPOCH),
            created_at_max: Some(now),
            ..project.clone()
        },
        ListFilter {
            status: Some(Status::Done),
            created_at_min: Some(time::OffsetDateTime::UNIX_EPOCH),
            created_at_max: Some(now),
            ..project
        },
    ]
}

fn params(statement: &sql::Statement) -> Vec<Box<dyn ToSql + Sync + Send>> {
    statement
        .params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(n) => Box::new(*n),
                Param::Blob(b) => Box::new(b.clone()),
                Param::Uuid(id) => Box::new(*id),
                Param::FirstSeqCreatedFrom(_) => panic!("a SQLite-only parameter"),
            }
        })
        .collect()
}

#[tokio::test]
async fn every_list_walks_an_index_without_sorting() {
    if backend() != TestBackend::Postgres {
        eprintln!("skipped: SQLite's plans are checked in store-sqlite");
        return;
    }
    let db = TestDb::new().await;
    drop(db.open().await);
    let client = crate::support::connect(&db).await;
    client
        .batch_execute("SET enable_sort = off; SET enable_seqscan = off")
        .await
        .expect("planner settings");
    let position = Position {
        keys: vec![KeyValue::Time(1_700_000_000_000_000)],
        seq: 42,
    };
    let mut checked = 0;
    for filter in filters() {
        for field in [SortField::CreatedAt, SortField::UpdatedAt] {
            // A creation-time range listed in update order is two ranges at once: no
            // index serves both.
            let time_bounded = filter.created_at_min.is_some() || filter.created_at_max.is_some();
            if time_bounded && field == SortField::UpdatedAt {
                continue;
            }
            for descending in [true, false] {
                let sort = Sort::new(vec![SortTerm { field, descending }]).expect("sort");
                for (direction, after) in [
                    (Direction::Next, None),
                    (Direction::Next, Some(&position)),
                    (Direction::Prev, Some(&position)),
                ] {
                    let statement = sql::page_query(
                        Dialect::Postgres,
                        "operations.id",
                        &filter,
                        &sort,
                        direction,
                        after,
                        11,
                    );
                    let bound = params(&statement);
                    let refs: Vec<&(dyn ToSql + Sync)> =
                        bound.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
                    let plan = client
                        .query(&format!("EXPLAIN {}", statement.sql), &refs)
                        .await
                        .unwrap_or_else(|e| panic!("{}: {e}", statement.sql))
                        .iter()
                        .map(|row| row.get::<_, String>(0))
                        .collect::<Vec<_>>()
                        .join("\n");
                    assert!(
                        plan.contains("Index Scan")
                            && !plan.contains("Sort  ")
                            && !plan.contains("Seq Scan on operations"),
                        "{}\n{plan}",
                        statement.sql
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 40, "{checked}");
}
