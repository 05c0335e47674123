//! Cancellation requests in SQLite, on the writer thread. The rules (what each status
//! does, what asking twice means) are the domain's `cancel` module; this file loads
//! the row, stores the result and records the event. A lease is left as it is: the
//! worker holding it is the one that ends the operation.

use opsd_domain::{Operation, cancel};
use rusqlite::Connection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::load;
use crate::errors::internal;
use crate::{feed, rows};
use opsd_store::{Change, Result, StoreError};

/// Applies a cancellation request to `id` (see `Store::cancel`).
pub fn apply(
    conn: &Connection,
    id: Uuid,
    now: OffsetDateTime,
    changes: &mut Vec<Change>,
) -> Result<Operation> {
    let current = load(conn, id)?.ok_or(StoreError::NotFound(id))?;
    let Some(next) = cancel::cancel(&current, now)? else {
        return Ok(current);
    };
    rows::update_operation(conn, &next).map_err(internal("cancel operation"))?;
    // A pending operation holds no lease, and a running one keeps its lease until its
    // worker ends it, so nothing to release here.
    feed::record(conn, &next, changes)?;
    Ok(next)
}
