//! Every list the API can ask for walks PostgreSQL's indexes in order: the database never
//! sorts a project's rows to serve a page, whatever the filter, sort or cursor, which is
//! what keeps a page's cost flat as a project grows. SQLite's twin of this test is
//! `store-sqlite/src/list_plans.rs`; both check the shapes of
//! `opsd_store::sql::list_shapes`. A list with no index of its own order merges walks of
//! another index (`opsd_store::sql::list`, `merged_column`), and this test fails if that
//! merge is taken away or an index it relies on is dropped.
//!
//! The planner is told that sorting and whole-table scans are prohibitively expensive,
//! so it sorts only when no index walk can serve the order: the test asks whether such a
//! walk exists for each shape, not which plan a tiny test table happens to get.

use opsd_store::sql::{self, Dialect, Param};
use opsd_store_suite::{TestBackend, TestDb, backend};
use tokio_postgres::types::ToSql;

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
    let statements = sql::list_shapes::page_queries(Dialect::Postgres, "operations.id");
    for statement in &statements {
        let bound = params(statement);
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
    }
    assert!(statements.len() > 40, "{}", statements.len());
}
