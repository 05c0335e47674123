//! Every list the API can ask for walks an index in order: SQLite never sorts a
//! project's rows to serve a page, whatever the filter, sort or cursor. This is what
//! keeps a page's cost flat as a project grows (docs/bench/README.md: `scale`), and it
//! rests on the index definitions: SQLite appends the rowid (`seq`) to every index entry
//! itself, so `(project, status)` is walked in creation order and `(project, status,
//! updated_at)` in update order with `seq` breaking ties.

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

#[test]
fn every_list_walks_an_index_without_sorting() {
    let mut conn = Connection::open_in_memory().expect("open");
    crate::migrations::migrate(&mut conn).expect("migrate");
    let statements =
        sql::list_shapes::page_queries(Dialect::Sqlite, &crate::rows::OPERATION_COLUMNS);
    for statement in &statements {
        let plan = plan(&conn, statement);
        assert!(
            plan.contains("INDEX operations_") && !plan.contains("TEMP B-TREE"),
            "{}\n  plan: {plan}",
            statement.sql
        );
    }
    assert!(statements.len() > 40, "{}", statements.len());
}
