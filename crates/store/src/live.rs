//! Types of the live-operations part of the [`Store`](crate::Store) trait: the change
//! feed that wakes waiters and feeds watch streams, watch backfill, and worker leases.

use std::sync::Arc;

use opsd_domain::Operation;
use time::OffsetDateTime;
use uuid::Uuid;

/// How many changes the feed keeps for subscribers that fall behind. A subscriber more
/// than this far behind gets `RecvError::Lagged` and must catch up from the store.
pub const FEED_CAPACITY: usize = 8192;

/// One committed change: the event's sequence number and the operation right after it.
/// Published on the feed after the COMMIT, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The event's global sequence number (the watch stream's `id:`).
    pub event_seq: u64,
    /// The operation as this change left it.
    pub operation: Arc<Operation>,
}

/// What the change feed carries for one committed change.
///
/// A process's own writes arrive whole: the writer has the operation in hand. What a
/// process reads back from the database, other processes' writes (PostgreSQL, several
/// replicas on one database), arrives named only, by id and project: reading whole
/// rows back for every batch of every other replica was a large part of what a second
/// replica cost, and most subscribers need no more (a cache of reads drops the id, a
/// waiter reads its one operation again). So may, rarely, one of its own, when the
/// feed met it in the database before the writer handed it over. A subscriber that
/// needs the whole change, a watch stream, reads the project's history from just
/// before the seq with [`Store::events_since`](crate::Store::events_since).
#[derive(Debug, Clone, PartialEq)]
pub enum FeedChange {
    /// The change with the operation as it left it.
    Whole(Change),
    /// A change known by its seq, operation id and project.
    Named {
        /// The event's global sequence number.
        event_seq: u64,
        /// The operation it changed.
        id: Uuid,
        /// That operation's project.
        project_id: String,
    },
}

impl FeedChange {
    /// The event's global sequence number.
    pub fn event_seq(&self) -> u64 {
        match self {
            Self::Whole(c) => c.event_seq,
            Self::Named { event_seq, .. } => *event_seq,
        }
    }

    /// The id of the operation it changed.
    pub fn id(&self) -> Uuid {
        match self {
            Self::Whole(c) => c.operation.id,
            Self::Named { id, .. } => *id,
        }
    }

    /// The project of the operation it changed.
    pub fn project_id(&self) -> &str {
        match self {
            Self::Whole(c) => &c.operation.project_id,
            Self::Named { project_id, .. } => project_id,
        }
    }
}

/// A slice of one project's change history, for a watch that resumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Backfill {
    /// Changes after the requested seq, oldest first, at most the requested number.
    pub changes: Vec<Change>,
    /// Events at or below this seq may be gone (retention): resuming from below it may
    /// have lost changes.
    pub horizon: u64,
    /// The highest event seq ever assigned when this was read.
    pub head: u64,
}

/// What must hold for an update to apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preconditions {
    /// Apply only at this version (`If-Match`).
    pub expected_version: Option<u64>,
    /// The lease token; required while the operation is leased, refused when it is not.
    pub lease_token: Option<String>,
}

/// A successful claim: the operation (now `running`) and its new lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The claimed operation.
    pub operation: Operation,
    /// The secret the worker sends with heartbeats and updates. The store keeps only
    /// its hash, so this is the one chance to learn it.
    pub lease_token: String,
    /// When the lease runs out unless renewed.
    pub lease_expires_at: OffsetDateTime,
}

/// A heartbeat: renew the lease, optionally reporting progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The token the claim returned.
    pub lease_token: String,
    /// New progress (never lower than the current one).
    pub progress: Option<u8>,
    /// New status message.
    pub status_message: Option<String>,
}

/// A renewed lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Renewed {
    /// The operation; a new version only when the heartbeat carried progress or a message.
    pub operation: Operation,
    /// The new expiry.
    pub lease_expires_at: OffsetDateTime,
}
