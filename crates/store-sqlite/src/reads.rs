//! The read side, on a connection of the read pool: one operation, its events, a list
//! page (the SQL shared with every backend, `opsd_store::sql`, bound here), and the
//! lease horizon the expiry task sleeps until.

use opsd_domain::{Event, ListFilter, Operation, Page, PageRequest, Sort};
use opsd_store::sql::{self, Dialect, PageShape, Param, Statement};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, ParamsFromIter};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows;
use crate::time_bounds::{self, Stamped};

/// One operation by id.
pub fn get(conn: &mut Connection, id: Uuid) -> rusqlite::Result<Option<Operation>> {
    conn.prepare_cached(&rows::SELECT_BY_ID)?
        .query_row([rows::id_bytes(id)], rows::operation_from_row)
        .optional()
}

/// An operation's events, oldest first; `None` if there is no such operation. One read
/// transaction, so the events are those of the operation that was found.
pub fn events(conn: &mut Connection, id: Uuid) -> rusqlite::Result<Option<Vec<Event>>> {
    let tx = conn.transaction()?;
    let op_seq: Option<i64> = tx
        .prepare_cached("SELECT seq FROM operations WHERE id = ?1")?
        .query_row([rows::id_bytes(id)], |r| r.get(0))
        .optional()?;
    let Some(op_seq) = op_seq else {
        return Ok(None);
    };
    let events = tx
        .prepare_cached(
            "SELECT seq, version, status, progress, status_message, at \
             FROM events WHERE op_seq = ?1 ORDER BY seq",
        )?
        .query_map([op_seq], |r| rows::event_from_row(r, id))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(events))
}

/// One page: rows after the cursor in its direction (limit + 1 to learn whether more
/// follow), a probe for rows on the other side, and the total if asked for — all in one read
/// transaction, so the three agree with each other. The SQL is shared with every
/// backend (`opsd_store::sql`).
pub fn list_page(
    conn: &mut Connection,
    filter: &ListFilter,
    sort: &Sort,
    page: &PageRequest,
) -> rusqlite::Result<Page> {
    let tx = conn.transaction()?;
    let mut binder = Binder::new(&tx);
    let shape = PageShape::new(sort, page);
    let total: i64 = if page.count_total {
        let count = sql::count_query(Dialect::Sqlite, filter);
        tx.prepare_cached(&count.sql)?
            .query_row(binder.bind(&count)?, |r| r.get(0))?
    } else {
        0
    };
    let rows = sql::page_query(
        Dialect::Sqlite,
        rows::OPERATION_COLUMNS.as_str(),
        filter,
        sort,
        shape.direction(),
        shape.after(),
        shape.fetch(),
    );
    let items = tx
        .prepare_cached(&rows.sql)?
        .query_map(binder.bind(&rows)?, rows::operation_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let cut = shape.cut(items);
    let beyond = match &cut.probe {
        Some((direction, pos)) => {
            let probe = sql::exists_beyond_query(Dialect::Sqlite, filter, sort, *direction, pos);
            tx.prepare_cached(&probe.sql)?
                .exists(binder.bind(&probe)?)?
        }
        None => false,
    };
    Ok(shape.finish(cut, beyond, total.unsigned_abs()))
}

/// Binds shared statements on one connection. A time bound becomes a `seq` by a binary
/// search (`time_bounds`); the statements of one page (its rows, the probe, the count)
/// share their bounds, so each is searched once per page, not once per statement.
pub(crate) struct Binder<'c> {
    conn: &'c Connection,
    /// (microseconds, the first seq created from then) already searched.
    seqs: Vec<(i64, i64)>,
}

impl<'c> Binder<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            seqs: Vec::new(),
        }
    }

    /// The parameters of a shared statement, as rusqlite binds them.
    pub(crate) fn bind(
        &mut self,
        statement: &Statement,
    ) -> rusqlite::Result<ParamsFromIter<Vec<Value>>> {
        let mut values = Vec::with_capacity(statement.params.len());
        for p in &statement.params {
            values.push(match p {
                Param::Text(s) => Value::Text(s.clone()),
                Param::Int(n) => Value::Integer(*n),
                Param::Blob(b) => Value::Blob(b.clone()),
                Param::Uuid(id) => Value::Blob(id.as_bytes().to_vec()),
                Param::FirstSeqCreatedFrom(micros) => Value::Integer(self.first_seq_from(*micros)?),
            });
        }
        Ok(rusqlite::params_from_iter(values))
    }

    fn first_seq_from(&mut self, micros: i64) -> rusqlite::Result<i64> {
        if let Some((_, seq)) = self.seqs.iter().find(|(m, _)| *m == micros) {
            return Ok(*seq);
        }
        let seq = time_bounds::first_seq_from(self.conn, Stamped::OperationsCreated, micros)?;
        self.seqs.push((micros, seq));
        Ok(seq)
    }
}

/// When the next lease runs out.
pub fn next_lease_expiry(conn: &Connection) -> rusqlite::Result<Option<OffsetDateTime>> {
    let m: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(lease_expires_at) FROM operations WHERE lease_expires_at IS NOT NULL",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(m.and_then(rows::from_micros))
}

/// How many leases are held.
pub fn leases_held(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM operations WHERE lease_expires_at IS NOT NULL")?
        .query_row([], |r| r.get(0))?;
    Ok(n.unsigned_abs())
}
