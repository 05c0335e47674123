//! Versioned schema migrations, embedded in the binary and applied at start-up inside
//! one transaction each. The list is append-only: a released migration never changes.

use rusqlite::{Connection, params};

/// (version, SQL) in order. Versions are the file-name prefixes.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/sqlite/0001_operations.sql"),
    ),
    (2, include_str!("../../migrations/sqlite/0002_live.sql")),
];

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Applies every migration newer than the database's version. Refuses a database
/// written by a newer opsd rather than guessing at its schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > latest_version() {
        return Err(rusqlite::Error::ToSqlConversionFailure(
            format!(
                "database schema version {current} is newer than this opsd ({})",
                latest_version()
            )
            .into(),
        ));
    }
    let mut applied = Vec::new();
    for &(version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, opsd_domain::micros(opsd_domain::now())],
        )?;
        tx.commit()?;
        applied.push(version);
    }
    Ok(applied)
}
