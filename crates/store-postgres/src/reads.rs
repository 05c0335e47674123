//! The read side, on a pooled connection: one operation, its events, a list page (the
//! SQL shared with every backend, `opsd_store::sql`, bound here; a regular expression
//! the database cannot evaluate is re-checked in rounds), and the lease horizon the
//! expiry task sleeps until. Reads that must agree run in one read-only snapshot.

use std::sync::LazyLock;

use opsd_domain::{Direction, Event, ListFilter, Operation, Page, PageRequest, Position, Sort};
use opsd_store::sql::{self, Dialect, PageShape, Param, Statement};
use opsd_store::{Result, StoreError};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::Client;
use crate::errors::ctx;
use crate::rows;

/// Rows read per round when a filter must be re-checked outside the database.
const RECHECK_BATCH: usize = 256;

/// One operation by id.
pub async fn get(client: &Client, id: Uuid) -> Result<Option<Operation>> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {} FROM operations WHERE id = $1",
            *rows::OPERATION_COLUMNS
        ))
        .await
        .map_err(ctx("prepare get"))?;
    client
        .query_opt(&statement, &[&id])
        .await
        .map_err(ctx("get operation"))?
        .map(|r| rows::operation(&r))
        .transpose()
}

/// The operations of `ids` that exist, in one statement.
pub async fn get_many(client: &Client, ids: &[Uuid]) -> Result<Vec<Operation>> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {} FROM operations WHERE id = ANY($1::uuid[])",
            *rows::OPERATION_COLUMNS
        ))
        .await
        .map_err(ctx("prepare get_many"))?;
    client
        .query(&statement, &[&ids])
        .await
        .map_err(ctx("get operations"))?
        .iter()
        .map(rows::operation)
        .collect()
}

/// The events of the operation whose seq is `$1`, oldest first: the stored ones and its
/// creation, when its row stands for it (migration 0021), as `rows::event` reads them.
static HISTORY_SQL: LazyLock<String> = LazyLock::new(|| {
    let columns = ["version", "status", "progress", "status_message", "at"];
    format!(
        "SELECT seq, {} FROM events WHERE op_seq = $1 UNION ALL \
         SELECT o.seq, {} FROM operations o WHERE o.seq = $1 AND NOT o.creation_stored \
         ORDER BY 1",
        columns.join(", "),
        columns.map(rows::creation_column).join(", ")
    )
});

/// An operation's events, oldest first, read in one snapshot.
pub async fn events(client: &mut Client, id: Uuid) -> Result<Vec<Event>> {
    let tx = begin_read(client).await?;
    let Some(op_seq) = tx
        .query_opt("SELECT seq FROM operations WHERE id = $1", &[&id])
        .await
        .map_err(ctx("find operation"))?
        .map(|r| r.get::<_, i64>(0))
    else {
        return Err(StoreError::NotFound(id));
    };
    let events = tx
        .query(&*HISTORY_SQL, &[&op_seq])
        .await
        .map_err(ctx("read events"))?
        .iter()
        .map(|r| rows::event(r, id))
        .collect::<Result<Vec<_>>>()?;
    end_read(tx).await?;
    Ok(events)
}

/// Starts a read-only transaction that sees one snapshot, so that the reads in it agree
/// with each other.
pub async fn begin_read(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(ctx("begin read"))
}

pub async fn end_read(tx: deadpool_postgres::Transaction<'_>) -> Result<()> {
    tx.commit().await.map_err(ctx("end read"))
}

/// `sql` as a prepared statement cached on the connection (one round trip per use
/// instead of two). Only for fixed statement texts: list queries vary with their
/// filters and would grow the cache without bound.
pub async fn prepared(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
) -> Result<tokio_postgres::Statement> {
    tx.prepare_cached(sql).await.map_err(ctx("prepare"))
}

/// The parameters of a shared statement, as tokio-postgres binds them.
fn bound(statement: &Statement) -> Result<Vec<Box<dyn ToSql + Sync + Send>>> {
    statement
        .params
        .iter()
        .map(|p| -> Result<Box<dyn ToSql + Sync + Send>> {
            match p {
                Param::Text(s) => Ok(Box::new(s.clone())),
                Param::Int(n) => Ok(Box::new(*n)),
                Param::Blob(b) => Ok(Box::new(b.clone())),
                Param::Uuid(id) => Ok(Box::new(*id)),
                // PostgreSQL indexes its times; the shared SQL only asks SQLite for this.
                Param::FirstSeqCreatedFrom(_) => Err(StoreError::Internal(
                    "a SQLite-only parameter in PostgreSQL SQL".into(),
                )),
            }
        })
        .collect()
}

async fn query(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statement,
) -> Result<Vec<tokio_postgres::Row>> {
    let params = bound(st)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as _).collect();
    tx.query(&st.sql, &refs).await.map_err(ctx("list"))
}

/// Up to `want` operations matching `filter`, walking `sort` in `direction` from strictly
/// after `after`. When the SQL selects a superset (a regular expression checked outside
/// the database), rows are read in rounds and checked until enough match.
async fn scan(
    tx: &tokio_postgres::Transaction<'_>,
    filter: &ListFilter,
    sort: &Sort,
    direction: Direction,
    after: Option<&Position>,
    want: usize,
) -> Result<Vec<Operation>> {
    let statement = |from: Option<&Position>, limit: usize| {
        sql::page_query(
            Dialect::Postgres,
            &rows::OPERATION_COLUMNS,
            filter,
            sort,
            direction,
            from,
            limit,
        )
    };
    let first = statement(after, want);
    if !first.recheck {
        return query(tx, &first)
            .await?
            .iter()
            .map(rows::operation)
            .collect();
    }
    let mut found = Vec::new();
    let mut from = after.cloned();
    loop {
        let st = statement(from.as_ref(), RECHECK_BATCH);
        let rows = query(tx, &st).await?;
        for row in &rows {
            let op = rows::operation(row)?;
            from = Some(sort.position_of(&op));
            if filter.matches(&op) {
                found.push(op);
                if found.len() == want {
                    return Ok(found);
                }
            }
        }
        if rows.len() < RECHECK_BATCH {
            return Ok(found);
        }
    }
}

pub async fn list_page(
    tx: &tokio_postgres::Transaction<'_>,
    filter: &ListFilter,
    sort: &Sort,
    page: &PageRequest,
) -> Result<Page> {
    let shape = PageShape::new(sort, page);
    let count = sql::count_query(Dialect::Postgres, filter);
    let total = if !page.count_total {
        0
    } else if count.recheck {
        // Counting what a regular expression selects means reading every candidate.
        let all = scan(tx, filter, sort, Direction::Next, None, usize::MAX).await?;
        all.len() as u64
    } else {
        let rows = query(tx, &count).await?;
        let n: i64 = rows
            .first()
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()
            .map_err(ctx("count"))?
            .unwrap_or(0);
        n.unsigned_abs()
    };
    let items = scan(
        tx,
        filter,
        sort,
        shape.direction(),
        shape.after(),
        shape.fetch(),
    )
    .await?;
    let cut = shape.cut(items);
    let beyond = match &cut.probe {
        Some((direction, pos)) => !scan(tx, filter, sort, *direction, Some(pos), 1)
            .await?
            .is_empty(),
        None => false,
    };
    Ok(shape.finish(cut, beyond, total))
}

/// When the next lease runs out.
pub async fn next_lease_expiry(client: &Client) -> Result<Option<OffsetDateTime>> {
    let m: Option<i64> = client
        .query_one(
            "SELECT MIN(lease_expires_at) FROM operations WHERE lease_expires_at IS NOT NULL",
            &[],
        )
        .await
        .map_err(ctx("next lease expiry"))?
        .get(0);
    Ok(m.and_then(rows::from_micros))
}

/// How many leases are held.
pub async fn leases_held(client: &Client) -> Result<u64> {
    let n: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM operations WHERE lease_expires_at IS NOT NULL",
            &[],
        )
        .await
        .map_err(ctx("count leases"))?
        .get(0);
    Ok(n.unsigned_abs())
}
