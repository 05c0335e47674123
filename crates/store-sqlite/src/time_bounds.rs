//! Time bounds as `seq` bounds. The single writer stamps with a clock that never goes
//! backwards (`rules::next_stamp`, seeded from the database at start), so operations
//! are created, and events written, in `seq` order *and* time order. A time bound is
//! then the `seq` where the times cross it, found by a binary search over the rowid
//! (about 23 point reads for 5,000,000 rows) instead of an index on the time, which
//! would cost every row ~10 bytes (ARCHITECTURE.md, "Storage size").

use rusqlite::{Connection, OptionalExtension};

/// A table whose time column never decreases as its `seq` grows.
#[derive(Debug, Clone, Copy)]
pub enum Stamped {
    /// `operations.created_at`.
    OperationsCreated,
    /// `events.at`.
    EventsAt,
}

impl Stamped {
    fn next_row_sql(self) -> &'static str {
        match self {
            Stamped::OperationsCreated => {
                "SELECT seq, created_at FROM operations WHERE seq >= ?1 ORDER BY seq LIMIT 1"
            }
            Stamped::EventsAt => "SELECT seq, at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1",
        }
    }

    fn max_seq_sql(self) -> &'static str {
        match self {
            Stamped::OperationsCreated => "SELECT COALESCE(MAX(seq), 0) FROM operations",
            Stamped::EventsAt => "SELECT COALESCE(MAX(seq), 0) FROM events",
        }
    }
}

/// The lowest `seq` such that every row of `table` at or after it is stamped at or after
/// `micros` (past the last row when none is).
pub fn first_seq_from(conn: &Connection, table: Stamped, micros: i64) -> rusqlite::Result<i64> {
    let max: i64 = conn
        .prepare_cached(table.max_seq_sql())?
        .query_row([], |r| r.get(0))?;
    let mut next_row = conn.prepare_cached(table.next_row_sql())?;
    // Invariant: rows below `lo` are stamped before `micros`; rows from `hi` on are not.
    let (mut lo, mut hi) = (0i64, max + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row: Option<(i64, i64)> = next_row
            .query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((seq, at)) if at < micros => lo = seq + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(stamps: &[(i64, i64)]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE events (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL)")
            .unwrap();
        for (seq, at) in stamps {
            conn.execute("INSERT INTO events VALUES (?1, ?2)", [seq, at])
                .unwrap();
        }
        conn
    }

    #[test]
    fn finds_where_the_stamps_cross_the_bound_across_gaps_and_ties() {
        // seq 3, 6 and 7 deleted; seq 4 and 5 share a stamp.
        let conn = events(&[(1, 10), (2, 20), (4, 30), (5, 30), (8, 40), (9, 50)]);
        let first = |t| first_seq_from(&conn, Stamped::EventsAt, t).unwrap();
        assert_eq!(first(0), 0);
        assert_eq!(first(10), 0);
        assert_eq!(first(11), 2);
        assert_eq!(first(21), 3);
        assert_eq!(first(30), 3);
        assert_eq!(first(31), 6);
        assert_eq!(first(50), 9);
        assert_eq!(first(51), 10);
    }

    #[test]
    fn an_empty_table_has_no_row_from_any_time() {
        let conn = events(&[]);
        assert_eq!(first_seq_from(&conn, Stamped::EventsAt, 5).unwrap(), 0);
    }
}
