//! Which SQLite failures are the environment's (the disk is full, the file cannot be
//! read or written, the database is locked by someone else for too long) and which are
//! ours. The first are `StoreError::Unavailable`, rendered as a retryable 503 with
//! `Retry-After`: nothing is wrong with the request, and the same write succeeds once
//! space is freed. Everything else stays `Internal` (a 500 that is our bug).

use rusqlite::ErrorCode;

use opsd_store::StoreError;

/// The store error for a SQLite failure met while doing `context`.
pub(crate) fn classify(context: &str, e: &rusqlite::Error) -> StoreError {
    let environment = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::ReadOnly
        )
    );
    if environment {
        StoreError::Unavailable(format!("{context}: {e}"))
    } else {
        StoreError::Internal(format!("{context}: {e}"))
    }
}

/// [`classify`] as a `map_err` argument.
pub(crate) fn internal(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| classify(context, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn a_full_disk_is_unavailable_a_bug_is_internal() {
        for code in [rusqlite::ffi::SQLITE_FULL, rusqlite::ffi::SQLITE_IOERR] {
            assert!(matches!(
                classify("write", &sqlite(code)),
                StoreError::Unavailable(_)
            ));
        }
        assert!(matches!(
            classify("write", &rusqlite::Error::InvalidQuery),
            StoreError::Internal(_)
        ));
        assert!(matches!(
            classify("write", &sqlite(rusqlite::ffi::SQLITE_CONSTRAINT)),
            StoreError::Internal(_)
        ));
    }
}
