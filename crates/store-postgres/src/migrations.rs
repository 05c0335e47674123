//! Versioned schema migrations for PostgreSQL, embedded in the binary. They carry the
//! same version numbers as the SQLite backend's (a test fails when the two folders
//! drift), and which ones a database lacks is decided as for SQLite
//! (`opsd_store::migrations`). Several opsd processes may start at once on one database:
//! the migration runs in one transaction under an advisory lock, so exactly one applies what is missing and
//! the others then find nothing to do. DDL is transactional in PostgreSQL, so a failed
//! migration leaves nothing half-applied.

use tokio_postgres::Client;

/// (version, SQL) in order. Versions are the file-name prefixes.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_operations.sql")),
    (2, include_str!("../migrations/0002_live.sql")),
    (3, include_str!("../migrations/0003_api_keys.sql")),
    (4, include_str!("../migrations/0004_operation_counts.sql")),
    (5, include_str!("../migrations/0005_cancel.sql")),
    (6, include_str!("../migrations/0006_console.sql")),
    (7, include_str!("../migrations/0007_compact_history.sql")),
    (8, include_str!("../migrations/0008_request_hash_bytes.sql")),
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

/// Key of the advisory lock that serialises migrations (an arbitrary constant: "opsd").
const MIGRATION_LOCK: i64 = 0x6f70_7364;

/// Applies every migration the database lacks; returns the versions applied. Refuses a
/// database that has versions this build does not know (written by a newer opsd).
pub async fn migrate(client: &mut Client) -> Result<Vec<i64>, String> {
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| format!("migration lock: {e}"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| format!("schema_migrations: {e}"))?;
    let present = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect::<Vec<_>>();
    let mut applied = Vec::new();
    for (version, sql) in opsd_store::migrations::pending(MIGRATIONS, present)? {
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration {version}: {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(|e| e.to_string())?;
        applied.push(version);
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(applied)
}
