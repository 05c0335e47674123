//! Rows as column arrays: a batch's operations and events become the parameters of one
//! set-based statement each (`unnest($1::bigint[], $2::text[], …)`), so that writing a
//! batch costs the same round trips whatever its size. The other direction, rows read
//! back into domain types, is `rows.rs`.

use std::sync::LazyLock;

use opsd_domain::lease::HeldLease;
use opsd_domain::{Operation, micros};
use opsd_store::history;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::rows::{big, code, json};

/// An HTTP status code as stored (`smallint`; validated to 100…599).
fn http_code(status: u16) -> i16 {
    i16::try_from(status).unwrap_or(i16::MAX)
}

/// Operations as column arrays, the parameters of one set-based statement
/// (`unnest($1::bigint[], $2::text[], …)`) that writes every row of a batch at once.
#[derive(Default)]
pub struct OperationArrays {
    seq: Vec<i64>,
    id: Vec<Uuid>,
    project_id: Vec<String>,
    kind: Vec<i16>,
    op_type: Vec<i16>,
    resource_id: Vec<String>,
    status: Vec<i16>,
    progress: Vec<i16>,
    status_message: Vec<Option<String>>,
    description: Vec<Option<String>>,
    details: Vec<String>,
    error: Vec<Option<String>>,
    warnings: Vec<String>,
    http_error_status_code: Vec<Option<i16>>,
    http_error_message: Vec<Option<String>>,
    user: Vec<Option<String>>,
    request_id: Vec<Option<String>>,
    region: Vec<Option<String>>,
    zone: Vec<Option<String>>,
    target_link: Vec<Option<String>>,
    created_at: Vec<i64>,
    started_at: Vec<Option<i64>>,
    ended_at: Vec<Option<i64>>,
    updated_at: Vec<i64>,
    version: Vec<i64>,
    cancel_requested: Vec<bool>,
    request_hash: Vec<Option<Vec<u8>>>,
    trace_parent: Vec<Option<Vec<u8>>>,
    trace_state: Vec<Option<String>>,
    lease_token_hash: Vec<Option<String>>,
    lease_worker: Vec<Option<String>>,
    lease_expires_at: Vec<Option<i64>>,
    lease_duration_ms: Vec<Option<i64>>,
}

/// Numbers the projects `$1` that have none yet. Projects are only added under the feed
/// head, so no two transactions add the same one, and no number is taken in vain (an
/// `ON CONFLICT` insert would draw one from the sequence for every name it skips).
pub const PROJECTS_SQL: &str = "INSERT INTO projects (name) SELECT DISTINCT u.name \
     FROM unnest($1::text[]) AS u(name) \
     WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.name = u.name) ORDER BY 1";

/// SQL for `column` as the batch stamps it: a time equal to the batch's own (`t0`, a
/// parameter) becomes the stamp the feed head `h` holds (`crate::feed`) for this transaction, anything
/// else (a time carried over from an earlier version, or none) stays.
pub fn restamped(column: &str, t0: &str) -> String {
    format!("CASE WHEN {column} = {t0} THEN h.stamp ELSE {column} END")
}

/// Inserts the rows of [`OperationArrays::insert_params`] (their projects numbered by
/// [`PROJECTS_SQL`] earlier in the flight). A new operation's seq is its creation
/// event's: `seq` holds that event's place in the batch (from 1), and the feed head,
/// which the flight took first and which reserved the batch's `$31` events, turns it
/// into the seq (`crate::feed::APPEND_SQL` numbers the events the same way). So seqs
/// follow commit order, and creation order is `seq` order, across every process. The
/// row stands for that event, which is not stored (`creation_stored`, migration 0021).
/// `$30` is the batch's time: the times set to it take the feed head's stamp
/// ([`restamped`]).
pub static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    let at = |column: &str| restamped(column, "$30::bigint");
    format!(
        "INSERT INTO operations (seq, id, project, kind, type, resource_id, status, \
         progress, status_message, description, details, error, warnings, \
         http_error_status_code, http_error_message, \"user\", request_id, region, zone, \
         target_link, created_at, started_at, ended_at, updated_at, version, \
         cancel_requested, request_hash, trace_parent, trace_state, creation_stored) \
         SELECT h.last_event_seq - $31::bigint + u.seq, u.id, p.n, u.kind, u.type, \
         u.resource_id, u.status, u.progress, \
         u.status_message, u.description, u.details, u.error, u.warnings, \
         u.http_error_status_code, u.http_error_message, u.user_name, u.request_id, \
         u.region, u.zone, u.target_link, {}, {}, {}, {}, u.version, u.cancel_requested, \
         u.request_hash, u.trace_parent, u.trace_state, false \
         FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::smallint[], $5::smallint[], \
         $6::text[], $7::smallint[], $8::smallint[], $9::text[], $10::text[], $11::text[], \
         $12::text[], $13::text[], $14::smallint[], $15::text[], $16::text[], $17::text[], \
         $18::text[], $19::text[], $20::text[], $21::bigint[], $22::bigint[], $23::bigint[], \
         $24::bigint[], $25::bigint[], $26::boolean[], $27::bytea[], $28::bytea[], \
         $29::text[]) \
         AS u(seq, id, project_id, kind, type, resource_id, status, progress, \
         status_message, description, details, error, warnings, http_error_status_code, \
         http_error_message, user_name, request_id, region, zone, target_link, created_at, \
         started_at, ended_at, updated_at, version, cancel_requested, request_hash, \
         trace_parent, trace_state) \
         JOIN projects p ON p.name = u.project_id JOIN feed_head h ON h.id = 1",
        at("u.created_at"),
        at("u.started_at"),
        at("u.ended_at"),
        at("u.updated_at"),
    )
});

/// Writes what a change can alter, and the lease, to the rows of
/// [`OperationArrays::update_params`] (found by `seq`, the primary key). `$18` is the
/// batch's time, restamped as in [`INSERT_SQL`]. A lease's expiry is not: it was
/// decided from the batch's time and answered as it is, and ends that much earlier if
/// the head was later (by the time another process's batch took, milliseconds).
pub static UPDATE_SQL: LazyLock<String> = LazyLock::new(|| {
    let at = |column: &str| restamped(column, "$18::bigint");
    format!(
        "UPDATE operations o SET status = u.status, progress = u.progress, \
         status_message = u.status_message, error = u.error, warnings = u.warnings, \
         http_error_status_code = u.http_error_status_code, \
         http_error_message = u.http_error_message, started_at = {}, ended_at = {}, \
         updated_at = {}, version = u.version, cancel_requested = u.cancel_requested, \
         lease_token_hash = u.lease_token_hash, lease_worker = u.lease_worker, \
         lease_expires_at = u.lease_expires_at, lease_duration_ms = u.lease_duration_ms \
         FROM unnest($1::bigint[], $2::smallint[], $3::smallint[], $4::text[], $5::text[], \
         $6::text[], $7::smallint[], $8::text[], $9::bigint[], $10::bigint[], \
         $11::bigint[], $12::bigint[], $13::boolean[], $14::text[], $15::text[], \
         $16::bigint[], $17::bigint[]) \
         AS u(seq, status, progress, status_message, error, warnings, \
         http_error_status_code, http_error_message, started_at, ended_at, updated_at, \
         version, cancel_requested, lease_token_hash, lease_worker, lease_expires_at, \
         lease_duration_ms) JOIN feed_head h ON h.id = 1 WHERE o.seq = u.seq",
        at("u.started_at"),
        at("u.ended_at"),
        at("u.updated_at"),
    )
});

impl OperationArrays {
    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.seq.len()
    }

    /// Adds `op` with its lease and (for an insert) its idempotency fingerprint.
    pub fn push(&mut self, op: &Operation, lease: Option<&HeldLease>, request_hash: Option<&[u8]>) {
        self.seq.push(big(op.seq));
        self.id.push(op.id);
        self.project_id.push(op.project_id.clone());
        self.kind.push(code(op.kind));
        self.op_type.push(code(op.op_type));
        self.resource_id.push(op.resource_id.clone());
        self.status.push(code(op.status));
        self.progress.push(i16::from(op.progress));
        self.status_message.push(op.status_message.clone());
        self.description.push(op.description.clone());
        self.details.push(json(&op.details));
        self.error.push(op.error.as_ref().map(json));
        self.warnings.push(json(&op.warnings));
        self.http_error_status_code
            .push(op.http_error_status_code.map(http_code));
        self.http_error_message.push(op.http_error_message.clone());
        self.user.push(op.user.clone());
        self.request_id.push(op.request_id.clone());
        self.region.push(op.region.clone());
        self.zone.push(op.zone.clone());
        self.target_link.push(op.target_link.clone());
        self.created_at.push(micros(op.created_at));
        self.started_at.push(op.started_at.map(micros));
        self.ended_at.push(op.ended_at.map(micros));
        self.updated_at.push(micros(op.updated_at));
        self.version.push(big(op.version));
        self.cancel_requested.push(op.cancel_requested);
        self.request_hash.push(request_hash.map(<[u8]>::to_vec));
        let trace = op.trace_context.as_ref();
        self.trace_parent
            .push(trace.map(|t| t.to_stored().to_vec()));
        self.trace_state
            .push(trace.and_then(|t| t.tracestate.clone()));
        self.lease_token_hash
            .push(lease.map(|l| l.token_hash.clone()));
        self.lease_worker.push(lease.map(|l| l.worker.clone()));
        self.lease_expires_at
            .push(lease.map(|l| micros(l.expires_at)));
        self.lease_duration_ms
            .push(lease.map(|l| i64::try_from(l.duration.as_millis()).unwrap_or(i64::MAX)));
    }

    /// The parameter of [`PROJECTS_SQL`]: every row's project.
    pub fn projects(&self) -> &Vec<String> {
        &self.project_id
    }

    /// The parameters of [`INSERT_SQL`].
    pub fn insert_params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.seq,
            &self.id,
            &self.project_id,
            &self.kind,
            &self.op_type,
            &self.resource_id,
            &self.status,
            &self.progress,
            &self.status_message,
            &self.description,
            &self.details,
            &self.error,
            &self.warnings,
            &self.http_error_status_code,
            &self.http_error_message,
            &self.user,
            &self.request_id,
            &self.region,
            &self.zone,
            &self.target_link,
            &self.created_at,
            &self.started_at,
            &self.ended_at,
            &self.updated_at,
            &self.version,
            &self.cancel_requested,
            &self.request_hash,
            &self.trace_parent,
            &self.trace_state,
        ]
    }

    /// The parameters of [`UPDATE_SQL`].
    pub fn update_params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.seq,
            &self.status,
            &self.progress,
            &self.status_message,
            &self.error,
            &self.warnings,
            &self.http_error_status_code,
            &self.http_error_message,
            &self.started_at,
            &self.ended_at,
            &self.updated_at,
            &self.version,
            &self.cancel_requested,
            &self.lease_token_hash,
            &self.lease_worker,
            &self.lease_expires_at,
            &self.lease_duration_ms,
        ]
    }
}

/// Events as column arrays, for [`crate::feed::APPEND_SQL`]: what each change can
/// touch, in the order their seqs are assigned.
#[derive(Default)]
pub struct EventArrays {
    /// An operation's seq, or for one the batch creates minus its creation event's place
    /// in the batch (see [`EventArrays::push`]).
    op_seq: Vec<i64>,
    project_id: Vec<String>,
    version: Vec<i64>,
    status: Vec<i16>,
    progress: Vec<i16>,
    status_message: Vec<Option<String>>,
    at: Vec<i64>,
    started_at: Vec<Option<i64>>,
    ended_at: Vec<Option<i64>>,
    error: Vec<Option<String>>,
    warnings: Vec<Option<String>>,
    http_error_status_code: Vec<Option<i16>>,
    http_error_message: Vec<Option<String>>,
    cancel_requested: Vec<bool>,
    /// The event's place in its batch (from 1), which makes its seq.
    place: Vec<i64>,
}

impl EventArrays {
    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.op_seq.len()
    }

    /// Adds the event of `op`'s current version, at `place` in its batch (from 1). For
    /// an operation the batch creates (`created`), `op.seq` is still its creation
    /// event's place in the batch, which travels negated so that the statement can tell
    /// it from a seq and number it.
    pub fn push(&mut self, op: &Operation, created: bool, place: usize) {
        let seq = big(op.seq);
        self.op_seq.push(if created { -seq } else { seq });
        self.place.push(i64::try_from(place).unwrap_or(i64::MAX));
        self.project_id.push(op.project_id.clone());
        self.version.push(big(op.version));
        self.status.push(code(op.status));
        self.progress.push(i16::from(op.progress));
        self.status_message.push(op.status_message.clone());
        self.at.push(micros(op.updated_at));
        self.started_at.push(op.started_at.map(micros));
        self.ended_at.push(op.ended_at.map(micros));
        self.error.push(history::error_column(op.error.as_ref()));
        self.warnings.push(history::warnings_column(&op.warnings));
        self.http_error_status_code
            .push(op.http_error_status_code.map(http_code));
        self.http_error_message.push(op.http_error_message.clone());
        self.cancel_requested.push(op.cancel_requested);
    }

    /// The parameters of [`crate::feed::APPEND_SQL`].
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.op_seq,
            &self.project_id,
            &self.version,
            &self.status,
            &self.progress,
            &self.status_message,
            &self.at,
            &self.started_at,
            &self.ended_at,
            &self.error,
            &self.warnings,
            &self.http_error_status_code,
            &self.http_error_message,
            &self.cancel_requested,
            &self.place,
        ]
    }
}
