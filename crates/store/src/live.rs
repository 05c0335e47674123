//! Types of the live-operations part of the [`Store`](crate::Store) trait: the change
//! feed that wakes waiters and feeds watch streams, watch backfill, and worker leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
/// needs whole changes, a watch stream, asks for its project's whole
/// ([`Store::want_whole`](crate::Store::want_whole)), and reads the project's history
/// from just before the seq ([`Store::events_since`](crate::Store::events_since)) for a
/// change that arrives named all the same.
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

/// The projects whose changes a process's feed should carry whole even when it reads them
/// back from the database: those with an open watch stream. A stream needs every change
/// of its project whole; without this, each stream would read the history again for
/// every batch another process commits to the project, and a fleet of workers watching
/// one busy project would read it once per worker. With it, the feed reads those
/// changes whole once for every stream. Kept by a backend that names changes
/// ([`FeedChange::Named`]); a count per project, taken and given back by [`WantWhole`].
#[derive(Debug, Default)]
pub struct WholeWanted {
    projects: Mutex<HashMap<String, usize>>,
}

impl WholeWanted {
    /// Asks for `project_id`'s changes whole until the guard is dropped.
    pub fn want(self: &Arc<Self>, project_id: &str) -> WantWhole {
        *self.lock().entry(project_id.to_owned()).or_default() += 1;
        WantWhole(Some((self.clone(), project_id.to_owned())))
    }

    /// Whether any project is wanted whole (a cheap check before [`Self::wanted`]).
    pub fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Whether `project_id`'s changes are wanted whole now.
    pub fn wanted(&self, project_id: &str) -> bool {
        self.lock().contains_key(project_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The map is consistent after every statement: a panic elsewhere cannot spoil it.
        self.projects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A project's changes wanted whole on the feed while this lives
/// ([`Store::want_whole`](crate::Store::want_whole)). Empty for a backend whose feed
/// carries every change whole.
#[derive(Debug, Default)]
#[must_use = "the project is wanted whole only while the guard lives"]
pub struct WantWhole(Option<(Arc<WholeWanted>, String)>);

impl Drop for WantWhole {
    fn drop(&mut self) {
        let Some((wanted, project)) = self.0.take() else {
            return;
        };
        let mut projects = wanted.lock();
        if let Some(count) = projects.get_mut(&project) {
            *count -= 1;
            if *count == 0 {
                projects.remove(&project);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_wanted_whole_while_any_guard_for_it_lives() {
        let wanted = Arc::new(WholeWanted::default());
        assert!(!wanted.any());
        let first = wanted.want("p");
        let second = wanted.want("p");
        let other = wanted.want("q");
        drop(first);
        assert!(wanted.wanted("p"), "one stream of p is still open");
        drop(second);
        assert!(!wanted.wanted("p"));
        assert!(wanted.any() && wanted.wanted("q"));
        drop(other);
        assert!(!wanted.any());
        // A backend that carries every change whole hands out empty guards.
        drop(WantWhole::default());
    }
}
