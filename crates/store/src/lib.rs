//! opsd's storage layer: one async [`Store`] trait that the HTTP layer depends on, and
//! its backends. Only backends see SQL; handlers see domain types and [`StoreError`].
//!
//! The backends live in their own crates (`opsd-store-sqlite`, the embedded default;
//! `opsd-store-postgres`); what they share lives here so that both behave the same: the
//! write rules (`rules`), API key minting (`api_keys`) and the SQL of lists and Google
//! filters (`sql`).
//!
//! **Ordering rule, for every backend.** An event's sequence number follows commit
//! order: a reader that has seen event seq *n* never later sees a committed change with
//! a seq below *n*. Watch streams resume from the last seq they delivered
//! (`Last-Event-ID`), so a backend that broke this rule would make them skip changes
//! forever. A plain database sequence breaks it (its values are taken when a row is
//! inserted but become visible at COMMIT); each backend documents how it keeps it.

use async_trait::async_trait;
use opsd_domain::lease::{ClaimRequest, LeaseError};
use opsd_domain::{
    ApiKey, ChangeError, Event, ListFilter, NewApiKey, NewOperation, Operation, Page, PageRequest,
    Patch, Sort, ValidationError,
};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use uuid::Uuid;

pub mod api_keys;
pub mod backup;
pub mod copy;
pub mod history;
mod live;
pub mod migrations;
pub mod rules;
pub mod sessions;
pub mod sql;
pub mod stats;
pub mod supervise;
pub mod trace;
pub mod traced;
pub mod write;

pub use live::{
    Backfill, Change, Claimed, FEED_CAPACITY, FeedChange, Heartbeat, Preconditions, Renewed,
    WantWhole, WholeWanted,
};
pub use rules::Clock;

/// A store's part of `/readyz` ([`Store::readiness`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the disk accepts writes: `None` when the backend cannot tell (its
    /// database is on another machine), otherwise `"ok"`, `"full"` or `"error"`.
    pub disk: Option<&'static str>,
    /// How far the change feed trails the database's head, when known.
    pub feed_lag_ms: Option<u64>,
}

/// What can go wrong in a store call, in terms a handler can map to a status code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No API key has this id.
    #[error("api key {0} not found")]
    KeyNotFound(Uuid),
    /// No operation has this id.
    #[error("operation {0} not found")]
    NotFound(Uuid),
    /// `expected_version` did not match the stored version.
    #[error("operation is at version {current}, not the expected {expected}")]
    VersionMismatch {
        /// Version the caller expected.
        expected: u64,
        /// Version actually stored.
        current: u64,
    },
    /// The change is invalid or forbidden by the state machine.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// A `request_id` was reused in the same project with a different body.
    #[error(
        "request_id '{request_id}' was already used for operation {existing} with a different body"
    )]
    IdempotencyConflict {
        /// The reused idempotency key.
        request_id: String,
        /// The operation it created first.
        existing: Uuid,
    },
    /// The operation's lease refuses the change (missing, wrong or expired token).
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The query itself is invalid (for example a cursor from another list).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The backend cannot serve now (disk full, database unreachable); retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// This backend cannot do what was asked (the message says what to use instead).
    #[error("{0}")]
    NotSupported(String),
    /// The write reached the database but the answer to its COMMIT was lost, and the
    /// backend could not find out whether it committed: the caller must read back (or
    /// retry with the same `request_id` or `If-Match`) to learn the outcome.
    #[error("outcome of the write is unknown: {0}")]
    OutcomeUnknown(String),
    /// The backend failed; the message is for logs, not for clients.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The outcome of a create: the operation, and whether this call created it (false when
/// an idempotent retry returned the operation created earlier).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The operation as stored.
    pub operation: Operation,
    /// `true` for a new operation, `false` for an idempotent replay.
    pub created: bool,
}

/// Counts of write batches that met other processes' transactions
/// ([`Store::write_conflicts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteConflicts {
    /// Attempts run again because another transaction got in the way.
    pub retried: u64,
    /// Batches that took a later stamp another process had committed, instead of
    /// their own time (and so were not run again).
    pub restamped: u64,
}

/// Durable storage of operations and their history. Every write is durable when the
/// returned future resolves, and the change feed follows the ordering rule above.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The queue to this store's writer. Every write of every backend goes through one
    /// writer per process (group commit; see [`mod@write`]), so the write methods below
    /// default to one call on this queue and a backend implements only its reads. A
    /// store that wraps another and adds to its writes (tracing, say) overrides them.
    fn queue(&self) -> &write::Queue;

    /// Creates an operation in `pending`, or returns the one an earlier call with the same
    /// `(project_id, request_id)` and body created.
    async fn create(&self, new: NewOperation) -> Result<Created> {
        self.queue().create(new).await
    }

    /// Applies `patch` through the state machine; with `expected_version`, only if the
    /// stored version still matches. A leased operation refuses it (no token given).
    async fn update(
        &self,
        id: Uuid,
        patch: Patch,
        expected_version: Option<u64>,
    ) -> Result<Operation> {
        let pre = Preconditions {
            expected_version,
            lease_token: None,
        };
        self.update_with(id, patch, pre).await
    }

    /// [`update`](Self::update) with every precondition: the expected version and the
    /// lease token, which a leased operation requires and an unleased one refuses.
    async fn update_with(&self, id: Uuid, patch: Patch, pre: Preconditions) -> Result<Operation> {
        self.queue().update(id, patch, pre).await
    }

    /// One operation by id.
    async fn get(&self, id: Uuid) -> Result<Option<Operation>>;

    /// The operations of `ids` that exist, in no particular order: one read for many
    /// (the waiters of changes that other processes made, which the feed names only).
    /// The default reads them one by one.
    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<Operation>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.extend(self.get(*id).await?);
        }
        Ok(found)
    }

    /// One keyset-paginated page of a project's operations.
    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page>;

    /// The history of an operation, oldest first; `NotFound` if it does not exist.
    async fn events(&self, id: Uuid) -> Result<Vec<Event>>;

    /// Checks that the backend answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// The store's epoch: the name of its line of event seqs. A restore or a copy starts
    /// a new one, after which the same seq may name a different change; watch event ids
    /// carry it so that a resume point from another epoch is recognised (read once when
    /// the store opens: nothing changes it while the store serves).
    fn epoch(&self) -> &str;

    /// Writes a verified, consistent snapshot of the whole store, taken while it
    /// serves, to a new file beside the database (deleted when the result is dropped).
    /// Only a store that is one file can do this; the default refuses.
    async fn backup(&self) -> Result<backup::Taken> {
        Err(StoreError::NotSupported(
            "this backend's database is backed up by its own tools (pg_dump for PostgreSQL)".into(),
        ))
    }

    /// What `/readyz` reports of the store beyond [`ping`](Self::ping): whether its disk
    /// accepts writes and how far its change feed trails the database. The default
    /// knows neither (a backend whose database lives elsewhere).
    async fn readiness(&self) -> Readiness {
        Readiness::default()
    }

    /// The change feed: every committed change, published after its COMMIT, in commit
    /// order. A receiver that falls more than [`FEED_CAPACITY`] behind gets `Lagged`.
    /// This process's own changes arrive whole, other processes' named only
    /// ([`FeedChange`]).
    fn subscribe(&self) -> broadcast::Receiver<FeedChange>;

    /// Asks the feed for `project_id`'s changes whole, other processes' too, while the
    /// guard lives (a watch stream holds one: [`WholeWanted`] says why). A change may
    /// still arrive named when it was read before the guard was taken, or was deleted
    /// before it could be read whole. The default: this backend's feed carries every
    /// change whole.
    fn want_whole(&self, _project_id: &str) -> WantWhole {
        WantWhole::default()
    }

    /// How many times this process may have missed notifications of other processes'
    /// changes (its listening connection was lost and re-established), for the
    /// `opsd_feed_gaps_total` metric. Each gap was caught up from the store. Always 0 for
    /// a backend with one process.
    fn feed_gaps(&self) -> u64 {
        0
    }

    /// How many changes this process's feed read back from the store instead of taking
    /// them from its own writer — other processes' changes, and any it missed — for the
    /// `opsd_feed_store_reads_total` metric. Always 0 for a backend with one process.
    fn feed_store_reads(&self) -> u64 {
        0
    }

    /// How often this process's write batches met other processes' transactions, for
    /// `/metrics`. Always zero for a backend with one writer.
    fn write_conflicts(&self) -> WriteConflicts {
        WriteConflicts::default()
    }

    /// A count that moves whenever another process sharing the database deleted
    /// operations (retention, gRPC's `DeleteOperation`): deletions leave no change on the
    /// feed, so a cache of reads drops everything it holds when this moves. It follows
    /// the database within about a notification's delay. A process's own deletions may
    /// show here later than their answer; its caller drops its cache itself. Always 0
    /// for a backend that one process owns (SQLite).
    fn deletions(&self) -> u64 {
        0
    }

    /// Up to `limit` of `project_id`'s changes with an event seq above `after_seq`,
    /// oldest first, with the history's horizon and head (one consistent read). By the
    /// ordering rule, no change with a seq at or below the last one returned can commit
    /// later, so resuming from it loses nothing.
    async fn events_since(
        &self,
        project_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Backfill>;

    /// Atomically moves the oldest matching operation to `running` under a new lease;
    /// `None` when nothing matches.
    async fn claim(&self, request: ClaimRequest) -> Result<Option<Claimed>> {
        self.queue().claim(request).await
    }

    /// Renews the lease of `id` (and applies progress or a message, if given).
    async fn heartbeat(&self, id: Uuid, heartbeat: Heartbeat) -> Result<Renewed> {
        self.queue().heartbeat(id, heartbeat).await
    }

    /// Asks to cancel `id` (the domain's `cancel` rules): a `pending` operation fails
    /// with `CANCELLED` at once, a `running` or `unknown` one gets `cancel_requested`
    /// (its lease untouched), a second request changes nothing and returns the operation
    /// as it is; a finished one is `Change(AlreadyFinished)`, a missing one `NotFound`.
    async fn cancel(&self, id: Uuid) -> Result<Operation> {
        self.queue().cancel(id).await
    }

    /// Moves up to `limit` operations whose lease has run out (by the store's clock) to
    /// `unknown`, oldest expiry first; returns them as changed.
    async fn expire_leases(&self, limit: usize) -> Result<Vec<Operation>> {
        self.queue().expire_leases(limit).await
    }

    /// When the next lease runs out, if any is held.
    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>>;

    /// How many leases are held now.
    async fn leases_held(&self) -> Result<u64>;

    /// Deletes up to `batch_size` terminal operations that ended before `before`, with
    /// their events, advancing the feed horizon; returns how many were deleted.
    /// Unfinished operations are never deleted.
    async fn purge_terminal(&self, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
        self.queue().purge_terminal(before, batch_size).await
    }

    /// Deletes one finished operation with its events, as retention does (advancing the
    /// feed horizon). An unfinished one is `Change(NotFinished)` (the domain's
    /// `check_deletable`), a missing one `NotFound`.
    async fn delete_finished(&self, id: Uuid) -> Result<()> {
        self.queue().delete_finished(id).await
    }

    /// The picture of one project over a window (see [`stats`]).
    async fn stats(&self, request: &stats::StatsRequest) -> Result<stats::ProjectStats>;

    /// Every project that holds operations, with how many, by project id.
    async fn projects(&self) -> Result<Vec<stats::ProjectCount>>;
}

/// API keys: created with a secret shown once, listed without secrets, revoked at once.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The queue to the writer that stores keys and sessions (the same one as the
    /// store's): the writes below default to one call on it, as [`Store`]'s do.
    fn key_queue(&self) -> &write::Queue;

    /// Creates a key; returns it with its secret, which is stored only as a hash.
    async fn create_key(&self, new: NewApiKey) -> Result<(ApiKey, String)> {
        self.key_queue().create_key(new).await
    }

    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKey>>;

    /// Revokes a key (idempotent); `KeyNotFound` if there is no such key.
    async fn revoke_key(&self, id: Uuid) -> Result<ApiKey> {
        self.key_queue().revoke_key(id).await
    }

    /// The live (not revoked) key whose secret is `secret`, if any.
    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>>;

    /// Whether any key was ever created (the first start creates an admin key).
    async fn has_ever_had_keys(&self) -> Result<bool>;

    /// Creates `new` only if no key was ever created, atomically: several opsd
    /// processes starting together on one empty database make one first admin key.
    /// `None` when a key already existed.
    async fn create_first_key(&self, new: NewApiKey) -> Result<Option<(ApiKey, String)>> {
        self.key_queue().create_first_key(new).await
    }

    /// Creates a console session for the live key `key_id` that expires at `expires_at`;
    /// only a hash of its secret is stored. `KeyNotFound` if the key is missing or revoked.
    async fn create_session(
        &self,
        key_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<sessions::NewSession> {
        self.key_queue().create_session(key_id, expires_at).await
    }

    /// The key behind a session secret, with the session's expiry, if the session exists,
    /// has not expired by `now`, and its key is not revoked.
    async fn session_key(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(ApiKey, OffsetDateTime)>>;

    /// Ends a session (sign-out; idempotent) and drops sessions expired by `now`.
    async fn end_session(&self, secret: &str, now: OffsetDateTime) -> Result<()> {
        self.key_queue().end_session(secret, now).await
    }
}
