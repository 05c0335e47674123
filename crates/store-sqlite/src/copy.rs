//! This backend's side of `opsd copy` (`opsd_store::copy`): reading a store that opsd
//! may be serving (one read transaction per call, beside the writer, as WAL allows), and
//! filling a store opsd does not serve, a batch per transaction.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opsd_store::copy::{
    self, Batch, CopySource, CopyTarget, Counts, EventRow, KeyRow, OperationRow, Progress, meta,
};
use opsd_store::{Result, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use crate::{epoch, errors, migrations, rows};

/// One end of a copy: a connection to the database file.
pub struct SqliteCopy {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteCopy {
    /// The store at `db`, as a source: it must exist; opsd may be serving it.
    pub fn source(db: &Path) -> Result<Self> {
        if !db.is_file() {
            return Err(StoreError::Internal(format!(
                "{} does not exist: is this opsd's data directory?",
                db.display()
            )));
        }
        let conn = Connection::open(db).map_err(fail("open the source"))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(fail("busy timeout"))?;
        Ok(Self::wrap(conn))
    }

    /// The store at `db`, as a target: created if missing and migrated.
    pub fn target(db: &Path) -> Result<Self> {
        if let Some(dir) = db.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Internal(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut conn = Connection::open(db).map_err(fail("open the target"))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(fail("open the target"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(fail("busy timeout"))?;
        migrations::migrate(&mut conn).map_err(fail("migrate the target"))?;
        Ok(Self::wrap(conn))
    }

    fn wrap(conn: Connection) -> Self {
        SqliteCopy {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Internal("copy connection poisoned".into()))?;
            f(&mut conn).map_err(|e| errors::classify("copy", &e))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("copy task failed: {e}")))?
    }
}

/// The shared SQL's `$n` parameters as SQLite's `?n`: SQLite reads `$1` as a *name*,
/// numbered by first appearance, which differs from `n` when a statement names them out
/// of order (an UPDATE whose key comes last).
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

fn fail(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Internal(format!("cannot {what}: {e}"))
}

fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    let count = |sql: &str| {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(i64::unsigned_abs)
    };
    Ok(Counts {
        operations: count("SELECT count(*) FROM operations")?,
        events: count("SELECT count(*) FROM events")?,
        keys: count("SELECT count(*) FROM api_keys")?,
    })
}

fn uuid_at(row: &Row, col: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(col)?;
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Blob, e.into())
    })
}

fn operation_row(r: &Row) -> rusqlite::Result<OperationRow> {
    Ok(OperationRow {
        seq: r.get(0)?,
        id: uuid_at(r, 1)?,
        project: r.get(2)?,
        kind: r.get(3)?,
        op_type: r.get(4)?,
        resource_id: r.get(5)?,
        status: r.get(6)?,
        progress: r.get(7)?,
        status_message: r.get(8)?,
        description: r.get(9)?,
        details: r.get(10)?,
        error: r.get(11)?,
        warnings: r.get(12)?,
        http_error_status_code: r.get(13)?,
        http_error_message: r.get(14)?,
        user: r.get(15)?,
        request_id: r.get(16)?,
        request_hash: r.get(17)?,
        region: r.get(18)?,
        zone: r.get(19)?,
        target_link: r.get(20)?,
        created_at: r.get(21)?,
        started_at: r.get(22)?,
        ended_at: r.get(23)?,
        updated_at: r.get(24)?,
        version: r.get(25)?,
        lease_token_hash: r.get(26)?,
        lease_worker: r.get(27)?,
        lease_expires_at: r.get(28)?,
        lease_duration_ms: r.get(29)?,
        cancel_requested: r.get(30)?,
        trace_parent: r.get(31)?,
        trace_state: r.get(32)?,
    })
}

fn event_row(r: &Row) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: r.get(0)?,
        operation_id: uuid_at(r, 1)?,
        project: r.get(2)?,
        version: r.get(3)?,
        status: r.get(4)?,
        progress: r.get(5)?,
        status_message: r.get(6)?,
        at: r.get(7)?,
        started_at: r.get(8)?,
        ended_at: r.get(9)?,
        error: r.get(10)?,
        warnings: r.get(11)?,
        http_error_status_code: r.get(12)?,
        http_error_message: r.get(13)?,
        cancel_requested: r.get(14)?,
    })
}

#[async_trait]
impl CopySource for SqliteCopy {
    async fn epoch(&self) -> Result<String> {
        self.run(|c| epoch::read(c)).await
    }

    async fn counts(&self) -> Result<Counts> {
        self.run(|c| counts(c)).await
    }

    async fn keys(&self) -> Result<Vec<KeyRow>> {
        self.run(|c| {
            c.prepare(copy::SELECT_KEYS_SQL)?
                .query_map([], |r| {
                    Ok(KeyRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: r.get(2)?,
                        projects: r.get(3)?,
                        key_hash: r.get(4)?,
                        key_prefix: r.get(5)?,
                        created_at: r.get(6)?,
                        revoked_at: r.get(7)?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            c.prepare_cached(&numbered(&copy::select_events_sql()))?
                .query_map(params![after, limit], event_row)?
                .collect()
        })
        .await
    }

    async fn operations(&self, ids: &[Uuid]) -> Result<Vec<OperationRow>> {
        let ids = ids.to_vec();
        self.run(move |c| {
            let tx = c.transaction()?;
            let mut found = Vec::with_capacity(ids.len());
            {
                let mut select = tx.prepare_cached(&numbered(&copy::select_operation_sql()))?;
                for id in ids {
                    if let Some(row) = select
                        .query_row([rows::id_bytes(id)], operation_row)
                        .optional()?
                    {
                        found.push(row);
                    }
                }
            }
            tx.commit()?;
            Ok(found)
        })
        .await
    }
}

fn set_meta(c: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO store_meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(|_| ())
}

fn get_meta(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT value FROM store_meta WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

/// Whether a copy is filling the database (it must not be served then).
pub fn being_copied_into(c: &Connection) -> rusqlite::Result<bool> {
    Ok(get_meta(c, meta::STATE)?.as_deref() == Some(meta::COPYING))
}

#[async_trait]
impl CopyTarget for SqliteCopy {
    async fn counts(&self) -> Result<Counts> {
        self.run(|c| counts(c)).await
    }

    async fn key_roles(&self) -> Result<Vec<(String, String)>> {
        self.run(|c| {
            c.prepare("SELECT id, role FROM api_keys")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    async fn progress(&self) -> Result<Option<Progress>> {
        self.run(|c| {
            let Some(source_epoch) = get_meta(c, meta::SOURCE_EPOCH)? else {
                return Ok(None);
            };
            let after = get_meta(c, meta::AFTER)?
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            Ok(Some(Progress {
                source_epoch,
                after,
                copying: being_copied_into(c)?,
            }))
        })
        .await
    }

    async fn begin(&self, source_epoch: &str, first: bool, replace_keys: bool) -> Result<String> {
        let source_epoch = source_epoch.to_owned();
        self.run(move |c| {
            let tx = c.transaction()?;
            if replace_keys {
                tx.execute_batch("DELETE FROM sessions; DELETE FROM api_keys;")?;
            }
            set_meta(&tx, meta::STATE, meta::COPYING)?;
            let epoch = if first {
                set_meta(&tx, meta::SOURCE_EPOCH, &source_epoch)?;
                set_meta(&tx, meta::AFTER, "0")?;
                epoch::renew(&tx, "copied")?
            } else {
                epoch::read(&tx)?
            };
            tx.commit()?;
            Ok(epoch)
        })
        .await
    }

    async fn apply(&self, batch: &Batch) -> Result<()> {
        let batch = batch.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut update = tx.prepare_cached(&numbered(&copy::update_operation_sql()))?;
                let mut insert_op =
                    tx.prepare_cached(&numbered(&copy::insert_operation_sql(&[])))?;
                for o in &batch.operations {
                    let project = rows::project_number(&tx, &o.project)?;
                    let values = params![
                        rows::id_bytes(o.id),
                        project,
                        o.kind,
                        o.op_type,
                        o.resource_id,
                        o.status,
                        o.progress,
                        o.status_message,
                        o.description,
                        o.details,
                        o.error,
                        o.warnings,
                        o.http_error_status_code,
                        o.http_error_message,
                        o.user,
                        o.request_id,
                        o.request_hash,
                        o.region,
                        o.zone,
                        o.target_link,
                        o.created_at,
                        o.started_at,
                        o.ended_at,
                        o.updated_at,
                        o.version,
                        o.lease_token_hash,
                        o.lease_worker,
                        o.lease_expires_at,
                        o.lease_duration_ms,
                        o.cancel_requested,
                        o.trace_parent,
                        o.trace_state,
                    ];
                    if update.execute(values)? == 0 {
                        insert_op.execute(values)?;
                    }
                }
                let mut insert = tx.prepare_cached(&format!(
                    "INSERT INTO events (op_seq, {}) VALUES \
                     ((SELECT seq FROM operations WHERE id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                      ?9, ?10, ?11, ?12, ?13, ?14)",
                    copy::EVENT_COLUMNS.join(", ")
                ))?;
                for e in &batch.events {
                    let project = rows::project_number(&tx, &e.project)?;
                    insert.execute(params![
                        rows::id_bytes(e.operation_id),
                        project,
                        e.version,
                        e.status,
                        e.progress,
                        e.status_message,
                        e.at,
                        e.started_at,
                        e.ended_at,
                        e.error,
                        e.warnings,
                        e.http_error_status_code,
                        e.http_error_message,
                        e.cancel_requested,
                    ])?;
                }
            }
            set_meta(&tx, meta::AFTER, &batch.after.to_string())?;
            tx.commit()
        })
        .await
    }

    async fn put_keys(&self, keys: &[KeyRow]) -> Result<()> {
        let keys = keys.to_vec();
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut upsert = tx.prepare_cached(&numbered(copy::UPSERT_KEY_SQL))?;
                for k in &keys {
                    upsert.execute(params![
                        k.id,
                        k.name,
                        k.role,
                        k.projects,
                        k.key_hash,
                        k.key_prefix,
                        k.created_at,
                        k.revoked_at
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn finish(&self) -> Result<()> {
        self.run(|c| set_meta(c, meta::STATE, "done")).await
    }
}
