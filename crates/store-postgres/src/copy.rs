//! This backend's side of `opsd copy` (`opsd_store::copy`). As a source it reads with
//! plain queries beside the serving opsd processes; as a target (not served meanwhile)
//! it applies each batch in one transaction that also takes event seqs after the feed
//! head and moves the head, as the write path does.

use std::sync::LazyLock;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use opsd_store::copy::{
    self, Batch, CopySource, CopyTarget, Counts, EventRow, KeyRow, OperationRow, Progress, meta,
};
use opsd_store::{Result, StoreError};
use tokio::sync::Mutex;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::config::DatabaseUrl;
use crate::errors::ctx;
use crate::migrations;

/// One end of a copy: one connection to the database.
pub struct PostgresCopy {
    client: Mutex<deadpool_postgres::Object>,
    /// Project numbers already looked up or made (a target's projects only grow).
    projects: Mutex<std::collections::HashMap<String, i32>>,
}

impl PostgresCopy {
    /// The database at `url` as a source (opsd may be serving it).
    pub async fn source(url: &DatabaseUrl) -> Result<Self> {
        Ok(PostgresCopy {
            client: Mutex::new(crate::connect(url).await?),
            projects: Mutex::default(),
        })
    }

    /// The database at `url` as a target, migrated.
    pub async fn target(url: &DatabaseUrl) -> Result<Self> {
        let mut client = crate::connect(url).await?;
        migrations::migrate(&mut client)
            .await
            .map_err(|e| StoreError::Internal(format!("migrating {url}: {e}")))?;
        Ok(PostgresCopy {
            client: Mutex::new(client),
            projects: Mutex::default(),
        })
    }
}

/// Inserts an operation ([`copy::insert_operation_sql`]) with its seq, `$33`, taken from
/// the feed head like every operation seq on PostgreSQL (migration 0022).
static INSERT_OPERATION_SQL: LazyLock<String> =
    LazyLock::new(|| copy::insert_operation_sql(&["seq"]));

/// Events after `$1` in seq order, at most `$2` ([`copy::select_events_sql`]), with the
/// creations that operations rows stand for (migration 0021), so that a copy carries
/// every event, stored or not.
static SELECT_EVENTS_SQL: LazyLock<String> = LazyLock::new(|| {
    let creation: Vec<String> = copy::EVENT_COLUMNS
        .iter()
        .map(|c| match *c {
            "project" => "p.name".to_owned(),
            c => crate::rows::creation_column(c),
        })
        .collect();
    format!(
        "({}) UNION ALL (SELECT o.seq, o.id, {} FROM operations o \
         JOIN projects p ON p.n = o.project WHERE o.seq > $1 AND NOT o.creation_stored \
         ORDER BY o.seq LIMIT $2) ORDER BY 1 LIMIT $2",
        copy::select_events_sql(),
        creation.join(", ")
    )
});

async fn counts(c: &impl deadpool_postgres::GenericClient) -> Result<Counts> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM operations), (SELECT count(*) FROM events) \
             + (SELECT count(*) FROM operations WHERE NOT creation_stored), \
             (SELECT count(*) FROM api_keys)",
            &[],
        )
        .await
        .map_err(ctx("count rows"))?;
    let n = |i: usize| row.get::<_, i64>(i).unsigned_abs();
    Ok(Counts {
        operations: n(0),
        events: n(1),
        keys: n(2),
    })
}

fn operation_row(r: &Row) -> OperationRow {
    OperationRow {
        seq: r.get(0),
        id: r.get(1),
        project: r.get(2),
        kind: r.get(3),
        op_type: r.get(4),
        resource_id: r.get(5),
        status: r.get(6),
        progress: r.get(7),
        status_message: r.get(8),
        description: r.get(9),
        details: r.get(10),
        error: r.get(11),
        warnings: r.get(12),
        http_error_status_code: r.get(13),
        http_error_message: r.get(14),
        user: r.get(15),
        request_id: r.get(16),
        request_hash: r.get(17),
        region: r.get(18),
        zone: r.get(19),
        target_link: r.get(20),
        created_at: r.get(21),
        started_at: r.get(22),
        ended_at: r.get(23),
        updated_at: r.get(24),
        version: r.get(25),
        lease_token_hash: r.get(26),
        lease_worker: r.get(27),
        lease_expires_at: r.get(28),
        lease_duration_ms: r.get(29),
        cancel_requested: r.get(30),
        trace_parent: r.get(31),
        trace_state: r.get(32),
    }
}

fn event_row(r: &Row) -> EventRow {
    EventRow {
        seq: r.get(0),
        operation_id: r.get(1),
        project: r.get(2),
        version: r.get(3),
        status: r.get(4),
        progress: r.get(5),
        status_message: r.get(6),
        at: r.get(7),
        started_at: r.get(8),
        ended_at: r.get(9),
        error: r.get(10),
        warnings: r.get(11),
        http_error_status_code: r.get(12),
        http_error_message: r.get(13),
        cancel_requested: r.get(14),
    }
}

async fn get_meta(c: &impl deadpool_postgres::GenericClient, key: &str) -> Result<Option<String>> {
    Ok(
        c.query_opt("SELECT value FROM store_meta WHERE key = $1", &[&key])
            .await
            .map_err(ctx("read store_meta"))?
            .map(|r| r.get(0)),
    )
}

async fn set_meta(c: &impl deadpool_postgres::GenericClient, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO store_meta (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await
    .map_err(ctx("write store_meta"))?;
    Ok(())
}

/// Whether a copy is filling the database (it must not be served then).
pub async fn being_copied_into(c: &impl deadpool_postgres::GenericClient) -> Result<bool> {
    Ok(get_meta(c, meta::STATE).await?.as_deref() == Some(meta::COPYING))
}

async fn project_number(c: &impl deadpool_postgres::GenericClient, name: &str) -> Result<i32> {
    c.execute(
        "INSERT INTO projects (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[&name],
    )
    .await
    .map_err(ctx("insert project"))?;
    Ok(
        c.query_one("SELECT n FROM projects WHERE name = $1", &[&name])
            .await
            .map_err(ctx("read project"))?
            .get(0),
    )
}

#[async_trait]
impl CopySource for PostgresCopy {
    async fn epoch(&self) -> Result<String> {
        let c = self.client.lock().await;
        get_meta(&*c, "epoch")
            .await?
            .ok_or_else(|| StoreError::Internal("the source has no epoch".into()))
    }

    async fn counts(&self) -> Result<Counts> {
        counts(&*self.client.lock().await).await
    }

    async fn keys(&self) -> Result<Vec<KeyRow>> {
        let c = self.client.lock().await;
        Ok(c.query(copy::SELECT_KEYS_SQL, &[])
            .await
            .map_err(ctx("read keys"))?
            .iter()
            .map(|r| KeyRow {
                id: r.get(0),
                name: r.get(1),
                role: r.get(2),
                projects: r.get(3),
                key_hash: r.get(4),
                key_prefix: r.get(5),
                created_at: r.get(6),
                revoked_at: r.get(7),
            })
            .collect())
    }

    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let c = self.client.lock().await;
        Ok(c.query(&*SELECT_EVENTS_SQL, &[&after, &limit])
            .await
            .map_err(ctx("read events"))?
            .iter()
            .map(event_row)
            .collect())
    }

    async fn operations(&self, ids: &[Uuid]) -> Result<Vec<OperationRow>> {
        let c = self.client.lock().await;
        let sql = copy::select_operation_sql().replace("o.id = $1", "o.id = ANY($1)");
        Ok(c.query(&sql, &[&ids])
            .await
            .map_err(ctx("read operations"))?
            .iter()
            .map(operation_row)
            .collect())
    }
}

#[async_trait]
impl CopyTarget for PostgresCopy {
    async fn counts(&self) -> Result<Counts> {
        counts(&*self.client.lock().await).await
    }

    async fn key_roles(&self) -> Result<Vec<(String, String)>> {
        let c = self.client.lock().await;
        Ok(c.query("SELECT id, role FROM api_keys", &[])
            .await
            .map_err(ctx("read keys"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn progress(&self) -> Result<Option<Progress>> {
        let c = self.client.lock().await;
        let Some(source_epoch) = get_meta(&*c, meta::SOURCE_EPOCH).await? else {
            return Ok(None);
        };
        let after = get_meta(&*c, meta::AFTER)
            .await?
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        Ok(Some(Progress {
            source_epoch,
            after,
            copying: being_copied_into(&*c).await?,
        }))
    }

    async fn begin(&self, source_epoch: &str, first: bool, replace_keys: bool) -> Result<String> {
        let mut c = self.client.lock().await;
        let tx = c.transaction().await.map_err(ctx("begin"))?;
        if replace_keys {
            tx.batch_execute("DELETE FROM sessions; DELETE FROM api_keys;")
                .await
                .map_err(ctx("replace keys"))?;
        }
        set_meta(&tx, meta::STATE, meta::COPYING).await?;
        if first {
            set_meta(&tx, meta::SOURCE_EPOCH, source_epoch).await?;
            set_meta(&tx, meta::AFTER, "0").await?;
            tx.execute(
                "UPDATE store_meta SET value = substr(md5(random()::text || \
                 clock_timestamp()::text), 1, 16) WHERE key = 'epoch'",
                &[],
            )
            .await
            .map_err(ctx("new epoch"))?;
            set_meta(&tx, "epoch_origin", "copied").await?;
        }
        let epoch = get_meta(&tx, "epoch").await?.unwrap_or_default();
        tx.commit().await.map_err(ctx("commit"))?;
        Ok(epoch)
    }

    async fn apply(&self, batch: &Batch) -> Result<()> {
        let mut c = self.client.lock().await;
        let tx = c.transaction().await.map_err(ctx("begin"))?;
        let mut projects = self.projects.lock().await;
        for name in batch
            .operations
            .iter()
            .map(|o| &o.project)
            .chain(batch.events.iter().map(|e| &e.project))
        {
            if !projects.contains_key(name) {
                let n = project_number(&tx, name).await?;
                projects.insert(name.clone(), n);
            }
        }
        let project = |name: &String| projects.get(name).copied().unwrap_or_default();
        let update = tx
            .prepare(&copy::update_operation_sql())
            .await
            .map_err(ctx("prepare update"))?;
        let insert_op = tx
            .prepare(&INSERT_OPERATION_SQL)
            .await
            .map_err(ctx("prepare insert"))?;
        let numbers: Vec<i32> = batch
            .operations
            .iter()
            .map(|o| project(&o.project))
            .collect();
        let params: Vec<[&(dyn ToSql + Sync); 32]> = batch
            .operations
            .iter()
            .zip(&numbers)
            .map(|(o, n)| operation_params(o, n))
            .collect();
        // Statements on one connection are pipelined: sent together, answered in order.
        let updated = try_join_all(params.iter().map(|p| tx.execute(&update, p)))
            .await
            .map_err(ctx("update operation"))?;
        // Seqs come from the feed head, as the writer's do: the new operations' first, in
        // creation order, then the events'.
        let mut head: i64 = tx
            .query_one(
                "SELECT last_event_seq FROM feed_head WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(ctx("read feed head"))?
            .get(0);
        let new: Vec<&[&(dyn ToSql + Sync); 32]> = params
            .iter()
            .zip(updated)
            .filter(|(_, n)| *n == 0)
            .map(|(p, _)| p)
            .collect();
        let new_seqs: Vec<i64> = (1..=new.len() as i64).map(|j| head + j).collect();
        let inserts: Vec<Vec<&(dyn ToSql + Sync)>> = new
            .iter()
            .zip(&new_seqs)
            .map(|(p, seq)| {
                let mut values = p.to_vec();
                values.push(seq);
                values
            })
            .collect();
        try_join_all(inserts.iter().map(|values| tx.execute(&insert_op, values)))
            .await
            .map_err(ctx("insert operation"))?;
        head += new.len() as i64;
        let insert = tx
            .prepare(&format!(
                "INSERT INTO events (seq, op_seq, {}) VALUES ($1, \
                 (SELECT seq FROM operations WHERE id = $2), $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11, $12, $13, $14, $15)",
                copy::EVENT_COLUMNS.join(", ")
            ))
            .await
            .map_err(ctx("prepare event insert"))?;
        let seqs: Vec<i64> = (1..=batch.events.len() as i64).map(|i| head + i).collect();
        let event_projects: Vec<i32> = batch.events.iter().map(|e| project(&e.project)).collect();
        let event_params: Vec<[&(dyn ToSql + Sync); 15]> = batch
            .events
            .iter()
            .zip(&seqs)
            .zip(&event_projects)
            .map(|((e, seq), project)| event_params(e, seq, project))
            .collect();
        try_join_all(event_params.iter().map(|p| tx.execute(&insert, p)))
            .await
            .map_err(ctx("insert event"))?;
        let seq = head + batch.events.len() as i64;
        let stamp = batch.events.iter().map(|e| e.at).max().unwrap_or(0);
        tx.execute(
            "UPDATE feed_head SET last_event_seq = $1, stamp = GREATEST(stamp, $2) WHERE id = 1",
            &[&seq, &stamp],
        )
        .await
        .map_err(ctx("move feed head"))?;
        set_meta(&tx, meta::AFTER, &batch.after.to_string()).await?;
        drop(projects);
        tx.commit().await.map_err(ctx("commit"))
    }

    async fn put_keys(&self, keys: &[KeyRow]) -> Result<()> {
        let mut c = self.client.lock().await;
        let tx = c.transaction().await.map_err(ctx("begin"))?;
        for k in keys {
            tx.execute(
                copy::UPSERT_KEY_SQL,
                &[
                    &k.id,
                    &k.name,
                    &k.role,
                    &k.projects,
                    &k.key_hash,
                    &k.key_prefix,
                    &k.created_at,
                    &k.revoked_at,
                ],
            )
            .await
            .map_err(ctx("upsert key"))?;
        }
        tx.commit().await.map_err(ctx("commit"))
    }

    async fn finish(&self) -> Result<()> {
        set_meta(&*self.client.lock().await, meta::STATE, "done").await
    }
}

/// An operation's parameters in [`copy::OPERATION_COLUMNS`] order.
fn operation_params<'a>(o: &'a OperationRow, project: &'a i32) -> [&'a (dyn ToSql + Sync); 32] {
    [
        &o.id,
        project,
        &o.kind,
        &o.op_type,
        &o.resource_id,
        &o.status,
        &o.progress,
        &o.status_message,
        &o.description,
        &o.details,
        &o.error,
        &o.warnings,
        &o.http_error_status_code,
        &o.http_error_message,
        &o.user,
        &o.request_id,
        &o.request_hash,
        &o.region,
        &o.zone,
        &o.target_link,
        &o.created_at,
        &o.started_at,
        &o.ended_at,
        &o.updated_at,
        &o.version,
        &o.lease_token_hash,
        &o.lease_worker,
        &o.lease_expires_at,
        &o.lease_duration_ms,
        &o.cancel_requested,
        &o.trace_parent,
        &o.trace_state,
    ]
}

/// An event's parameters: its new seq, its operation's id, then [`copy::EVENT_COLUMNS`].
fn event_params<'a>(
    e: &'a EventRow,
    seq: &'a i64,
    project: &'a i32,
) -> [&'a (dyn ToSql + Sync); 15] {
    [
        seq,
        &e.operation_id,
        project,
        &e.version,
        &e.status,
        &e.progress,
        &e.status_message,
        &e.at,
        &e.started_at,
        &e.ended_at,
        &e.error,
        &e.warnings,
        &e.http_error_status_code,
        &e.http_error_message,
        &e.cancel_requested,
    ]
}
