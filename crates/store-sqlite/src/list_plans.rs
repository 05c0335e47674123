//! Every list the API can ask for walks an index in order: SQLite never sorts a
//! project's rows to serve a page, whatever the filter, sort or cursor. This is what
//! keeps a page's cost flat as a project grows (docs/bench/README.md: `scale`), and it
//! rests on the index definitions: SQLite appends the rowid (`seq`) to every index entry
//! itself, so `(project, status)` is walked in creation order and `(project, status,
//! updated_at)` in update order with `seq` breaking ties.

use opsd_domain::{
    Direction, KeyValue, Kind, ListFilter, OpType, Position, Sort, SortField, SortTerm, Status,
};
use opsd_store::sql::{self, Dialect};
use rusqlite::Connection;

fn plan(conn: &Connection, statement: &sql::Statement) -> String {
    let mut s = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", statement.sql))
        .expect("prepare");
    let rows = s
        .query_map(
            crate::reads::Binder::new(conn)
                .bind(statement)
                .expect("bind"),
            |r| r.get::<_, String>(3),
        )
        .expect("explain");
    rows.map(|r| r.expect("plan row"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn filters() -> Vec<ListFilter> {
    let project = ListFilter {
        project_id: "p".into(),
        ..ListFilter::default()
    };
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
        // Time bounds become seq bounds (`time_bounds`) on the same indexes.
        ListFilter {
            status: Some(Status::Done),
            created_at_min: Some(time::OffsetDateTime::UNIX_EPOCH),
            created_at_max: Some(time::OffsetDateTime::now_utc()),
            ..project
        },
    ]
}

#[test]
fn every_list_walks_an_index_without_sorting() {
    let mut conn = Connection::open_in_memory().expect("open");
    crate::migrations::migrate(&mut conn).expect("migrate");
    let position = Position {
        keys: vec![KeyValue::Time(1_700_000_000_000_000)],
        seq: 42,
    };
    let mut checked = 0;
    for filter in filters() {
        for field in [SortField::CreatedAt, SortField::UpdatedAt] {
            // A creation-time range listed in update order is two ranges at once: no
            // index serves both, and SQLite may sort the rows of the range instead.
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
                        Dialect::Sqlite,
                        &crate::rows::OPERATION_COLUMNS,
                        &filter,
                        &sort,
                        direction,
                        after,
                        11,
                    );
                    let plan = plan(&conn, &statement);
                    assert!(
                        plan.contains("INDEX operations_") && !plan.contains("TEMP B-TREE"),
                        "{}\n  plan: {plan}",
                        statement.sql
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 40, "{checked}");
}
