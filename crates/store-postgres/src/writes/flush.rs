//! The second round trip of a batch: every write it decided, and COMMIT, in one flight.
//! Set-based statements write all rows of a kind at once (column arrays through
//! `unnest`), so the flight has the same few statements whatever the batch's size:
//!
//! 1. take the feed head and reserve the events' seqs (`feed::ADVANCE_SQL`), first, so
//!    that every statement after it runs under the head;
//! 2. number new projects and insert the new operations (each with its creation
//!    event's seq); 3. update the changed ones (rows and leases);
//! 4. append the events (but creations: a new row stands for its own); 5. retention's
//!    deletes;
//! 6. the key and session statements, in batch order;
//! 7. notify the other processes (of new events or deletions); 8. COMMIT.

use std::sync::LazyLock;

use deadpool_postgres::ClientWrapper;
use opsd_domain::{ApiKey, micros};
use opsd_store::StoreError;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::Failure;
use super::decide::Decided;
use super::flight::{self, Step};
use crate::feed::{ADVANCE_SQL, APPEND_SQL, NOTIFY_SQL, PURGE_EVENTS_SQL};
use crate::listen::Channel;
use crate::row_arrays::{EventArrays, INSERT_SQL, OperationArrays, PROJECTS_SQL, UPDATE_SQL};
use crate::rows;
use opsd_store::write::{Write, Written};

const PURGE_OPERATIONS_SQL: &str = "DELETE FROM operations WHERE id = ANY($1::uuid[])";

/// The stamp the feed head holds for this transaction: the batch's time, as the key and
/// session statements (which run after the head was taken) stamp it.
const HEAD_STAMP: &str = "(SELECT stamp FROM feed_head WHERE id = 1)";

/// The first key only if no key was ever created (`$7`); stamped with the batch's time.
static CREATE_KEY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO api_keys (id, name, role, projects, key_hash, key_prefix, created_at) \
         SELECT $1::text, $2::text, $3::text, $4::text, $5::bytea, $6::text, {HEAD_STAMP} \
         WHERE NOT $7::boolean OR NOT EXISTS (SELECT 1 FROM api_keys) RETURNING id"
    )
});

/// Revokes a key, keeping the first revocation time; answers the key.
static REVOKE_KEY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, {HEAD_STAMP}) WHERE id = $1 \
         RETURNING {}",
        crate::keys::COLUMNS
    )
});

/// A console session, only while its key is live.
static CREATE_SESSION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO sessions (secret_hash, key_id, created_at, expires_at) \
         SELECT $1::bytea, id, {HEAD_STAMP}, $3::bigint FROM api_keys \
         WHERE id = $2 AND revoked_at IS NULL RETURNING 1"
    )
});

/// Sign-out, and the removal of every session expired by `$2`.
const END_SESSION_SQL: &str = "DELETE FROM sessions WHERE secret_hash = $1 OR expires_at <= $2";

/// What the write flight answered.
pub struct Flushed {
    /// The last event seq before the batch's (its k-th event has this plus k).
    pub before: u64,
    /// The time stamped on the batch's changes: its own, or the feed head's if another
    /// process committed a later one first.
    pub stamp: time::OffsetDateTime,
    /// The answers of the key and session writes, in [`Decided::keys`] order.
    pub keys: Vec<opsd_store::Result<Written>>,
}

/// The owned parameters of a key or session statement.
enum KeyParams {
    Create {
        id: String,
        name: String,
        role: &'static str,
        projects: String,
        hash: Vec<u8>,
        prefix: String,
        only_first: bool,
    },
    Revoke {
        id: String,
    },
    CreateSession {
        hash: Vec<u8>,
        key_id: String,
        expires_at: i64,
    },
    EndSession {
        hash: Vec<u8>,
        now: i64,
    },
}

impl KeyParams {
    fn of(write: &Write) -> Option<Self> {
        Some(match write {
            Write::CreateKey {
                key,
                hash,
                only_first,
            } => KeyParams::Create {
                id: key.id.to_string(),
                name: key.name.clone(),
                role: key.role.as_str(),
                projects: rows::json(&key.projects.to_list()),
                hash: hash.to_vec(),
                prefix: key.prefix.clone(),
                only_first: *only_first,
            },
            Write::RevokeKey(id) => KeyParams::Revoke { id: id.to_string() },
            Write::CreateSession {
                hash,
                key_id,
                expires_at,
            } => KeyParams::CreateSession {
                hash: hash.to_vec(),
                key_id: key_id.to_string(),
                expires_at: micros(*expires_at),
            },
            Write::EndSession { hash, now } => KeyParams::EndSession {
                hash: hash.to_vec(),
                now: micros(*now),
            },
            _ => return None,
        })
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        match self {
            KeyParams::Create {
                id,
                name,
                role,
                projects,
                hash,
                prefix,
                only_first,
            } => vec![id, name, role, projects, hash, prefix, only_first],
            KeyParams::Revoke { id } => vec![id],
            KeyParams::CreateSession {
                hash,
                key_id,
                expires_at,
            } => vec![hash, key_id, expires_at],
            KeyParams::EndSession { hash, now } => vec![hash, now],
        }
    }
}

/// Writes what `d` decided and commits, in one round trip (plus one the first time a
/// connection prepares these statements).
pub async fn flush(
    client: &ClientWrapper,
    d: &Decided<'_>,
    channel: &Channel,
) -> Result<Flushed, Failure> {
    let statements = flight::prepare(
        client,
        &[
            ADVANCE_SQL,
            PROJECTS_SQL,
            &INSERT_SQL,
            &UPDATE_SQL,
            &APPEND_SQL,
            PURGE_EVENTS_SQL,
            PURGE_OPERATIONS_SQL,
            &CREATE_KEY_SQL,
            &REVOKE_KEY_SQL,
            &CREATE_SESSION_SQL,
            END_SESSION_SQL,
            NOTIFY_SQL,
        ],
    )
    .await
    .map_err(Failure::of("prepare batch writes"))?;
    let [
        advance,
        projects,
        insert,
        update,
        append,
        purge_events,
        purge_operations,
        create_key,
        revoke,
        create_session,
        end_session,
        notify,
    ] = &statements[..]
    else {
        return Err(Failure::Statement(StoreError::Internal(
            "prepared a different number of statements".into(),
        )));
    };

    let mut inserts = OperationArrays::default();
    for (id, hash) in &d.inserts {
        let cur = &d.rows[id];
        inserts.push(&cur.op, cur.lease.as_ref(), hash.as_deref());
    }
    let mut updates = OperationArrays::default();
    for id in &d.dirty {
        let cur = &d.rows[id];
        updates.push(&cur.op, cur.lease.as_ref(), None);
    }
    let mut events = EventArrays::default();
    for (place, op) in d.events.iter().enumerate() {
        let created = d.is_new(op.id);
        // A new operation's row stands for its creation event (migration 0021).
        if !(created && op.version == 1) {
            events.push(op, created, place + 1);
        }
    }
    let n = i64::try_from(d.events.len()).unwrap_or(i64::MAX);
    let t0 = micros(d.now);
    let purge: &Vec<Uuid> = &d.purge;
    let keys: Vec<KeyParams> = d.keys.iter().filter_map(|w| KeyParams::of(w)).collect();

    let mut steps = vec![Step::Query(advance.clone(), vec![&n, &t0, &d.may_restamp])];
    if inserts.len() > 0 {
        steps.push(Step::Query(projects.clone(), vec![inserts.projects()]));
        let mut params = inserts.insert_params();
        params.push(&t0);
        params.push(&n);
        steps.push(Step::Query(insert.clone(), params));
    }
    if updates.len() > 0 {
        let mut params = updates.update_params();
        params.push(&t0);
        steps.push(Step::Query(update.clone(), params));
    }
    if events.len() > 0 {
        let mut params = events.params();
        params.insert(0, &n);
        params.push(&t0);
        steps.push(Step::Query(append.clone(), params));
    }
    if !purge.is_empty() {
        steps.push(Step::Query(purge_events.clone(), vec![purge]));
        steps.push(Step::Query(purge_operations.clone(), vec![purge]));
    }
    let first_key = steps.len();
    for key in &keys {
        let statement = match key {
            KeyParams::Create { .. } => create_key,
            KeyParams::Revoke { .. } => revoke,
            KeyParams::CreateSession { .. } => create_session,
            KeyParams::EndSession { .. } => end_session,
        };
        steps.push(Step::Query(statement.clone(), key.params()));
    }
    if n > 0 || !purge.is_empty() {
        steps.push(Step::Query(
            notify.clone(),
            vec![&channel.name, &channel.origin],
        ));
    }
    steps.push(Step::Simple("COMMIT"));

    if let Some(lost) = super::outcome::lose_answer_if_armed(flight::send(client, &steps)).await {
        return Err(lost);
    }
    let answers = flight::send(client, &steps).await;
    // The first failure is the cause; every statement after it only reports the aborted
    // transaction, whose COMMIT rolled back.
    let mut rows = Vec::with_capacity(answers.len());
    for answer in answers {
        rows.push(answer.map_err(Failure::of("write batch"))?);
    }
    let (before, stamp): (i64, i64) = rows
        .first()
        .and_then(|r| r.first())
        .map(|r| (r.get(0), r.get(1)))
        .ok_or(Failure::Statement(StoreError::Internal(
            "the feed head answered nothing".into(),
        )))?;
    let stamp = rows::from_micros(stamp).unwrap_or(d.now);
    let keys = d
        .keys
        .iter()
        .zip(&rows[first_key..])
        .map(|(write, rows)| key_answer(write, rows, stamp))
        .collect();
    Ok(Flushed {
        before: before.unsigned_abs(),
        stamp,
        keys,
    })
}

/// What a key or session statement's rows mean to its caller.
pub(super) fn key_answer(
    write: &Write,
    rows: &[tokio_postgres::Row],
    now: time::OffsetDateTime,
) -> opsd_store::Result<Written> {
    match write {
        Write::CreateKey { key, .. } => Ok(Written::Key((!rows.is_empty()).then(|| ApiKey {
            created_at: now,
            ..key.clone()
        }))),
        Write::RevokeKey(id) => rows
            .first()
            .map(crate::keys::key)
            .transpose()?
            .map(|k| Written::Key(Some(k)))
            .ok_or(StoreError::KeyNotFound(*id)),
        Write::CreateSession { key_id, .. } if rows.is_empty() => {
            Err(StoreError::KeyNotFound(*key_id))
        }
        _ => Ok(Written::Done),
    }
}
