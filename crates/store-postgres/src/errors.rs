//! What a database failure means to a caller. The environment failing — the server down,
//! restarting or refusing connections, a dropped connection, a full disk, too many
//! clients — is `Unavailable` (a 503 with Retry-After: retrying later can succeed); a
//! serialization failure or deadlock is retried here by the writer; anything else is a
//! bug or a damaged database, `Internal`.

use deadpool_postgres::PoolError;
use opsd_store::StoreError;
use tokio_postgres::error::SqlState;

/// Whether retrying the same transaction may succeed at once (the database chose it as
/// a victim of a serialization conflict or a deadlock).
pub fn is_retryable_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Whether the error comes from the environment rather than from the statement.
fn is_environmental(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: either the connection failed (closed, reset: an I/O error
        // underneath) or a value could not be converted (a bug, not the environment).
        let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        return e.is_closed() || io;
    };
    // Classes 08 (connection), 53 (insufficient resources: disk full, out of memory,
    // too many connections), 57 (operator intervention: shutdown, crash recovery),
    // 58 (system error: I/O).
    let class = &code.code()[..2];
    matches!(class, "08" | "53" | "57" | "58")
}

/// A database error, with what was being done (and the server's own message: the
/// client error's `Display` alone says only "db error").
pub fn db(context: &str, e: tokio_postgres::Error) -> StoreError {
    let detail = match e.as_db_error() {
        Some(d) => format!("{context}: {d}"),
        None => format!("{context}: {e}"),
    };
    if is_environmental(&e) {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Internal(detail)
    }
}

/// A failure to get a connection from the pool: the database cannot be reached.
pub fn pool(e: PoolError) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {e}"))
}

/// Shorthand for `map_err(|e| db(context, e))`.
pub fn ctx(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| db(context, e)
}
