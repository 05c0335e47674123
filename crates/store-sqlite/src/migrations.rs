//! Versioned schema migrations, embedded in the binary and applied at start-up inside
//! one transaction each; which ones a database lacks is decided as for PostgreSQL
//! (`opsd_store::migrations`).

use rusqlite::{Connection, params};

/// (version, SQL) in order. Versions are the file-name prefixes.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_operations.sql")),
    (2, include_str!("../migrations/0002_live.sql")),
    (3, include_str!("../migrations/0003_api_keys.sql")),
    (4, include_str!("../migrations/0004_operation_counts.sql")),
    (5, include_str!("../migrations/0005_cancel.sql")),
    (6, include_str!("../migrations/0006_console.sql")),
    (7, include_str!("../migrations/0007_compact_history.sql")),
    (8, include_str!("../migrations/0008_smaller_indexes.sql")),
    (9, include_str!("../migrations/0009_compact_rows.sql")),
    (10, include_str!("../migrations/0010_feed_advance.sql")),
    (11, include_str!("../migrations/0011_compact_rows.sql")),
    (12, include_str!("../migrations/0012_feed_restamp.sql")),
    (13, include_str!("../migrations/0013_trace_context.sql")),
    (14, include_str!("../migrations/0014_store_meta.sql")),
    (15, include_str!("../migrations/0015_fewer_indexes.sql")),
    (16, include_str!("../migrations/0016_statement_counts.sql")),
    (
        17,
        include_str!("../migrations/0017_one_statement_head.sql"),
    ),
    (18, include_str!("../migrations/0018_purge_count.sql")),
    (19, include_str!("../migrations/0019_seq_under_head.sql")),
    (20, include_str!("../migrations/0020_hashed_text_keys.sql")),
    (
        21,
        include_str!("../migrations/0021_creation_in_the_row.sql"),
    ),
    (
        22,
        include_str!("../migrations/0022_seq_from_the_head_only.sql"),
    ),
];

/// A data step that runs in Rust after a migration's SQL, in the same transaction, for
/// conversions SQL cannot do exactly (SQLite's date functions stop at milliseconds).
fn after_sql(version: i64, conn: &Connection) -> rusqlite::Result<()> {
    match version {
        7 => crate::history_migration::convert(conn),
        _ => Ok(()),
    }
}

/// Applies every migration the database lacks. Refuses a database that has versions
/// this build does not know (written by a newer opsd) rather than guessing its schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let present = conn
        .prepare("SELECT version FROM schema_migrations")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let pending = opsd_store::migrations::pending(MIGRATIONS, present)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let mut applied = Vec::new();
    for (version, sql) in pending {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        after_sql(version, &tx)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, opsd_domain::micros(opsd_domain::now())],
        )?;
        tx.commit()?;
        applied.push(version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_everything_once_and_refuses_unknown_versions() {
        let mut conn = Connection::open_in_memory().unwrap();
        let first = migrate(&mut conn).unwrap();
        assert_eq!(first, MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>());
        assert!(migrate(&mut conn).unwrap().is_empty());
        conn.execute("INSERT INTO schema_migrations VALUES (999, 0)", [])
            .unwrap();
        assert!(migrate(&mut conn).is_err());
    }
}
