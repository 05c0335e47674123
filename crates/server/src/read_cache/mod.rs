//! Rendered responses of the hot reads — `GET /v1/operations/{id}`, gRPC `GetOperation`,
//! Deployment Manager's `operations.get` and the Nirvana list — kept in memory so that a
//! poll of something that did not change costs a lookup instead of a store read and a
//! serialization (ARCHITECTURE.md, "The read cache").
//!
//! **Never older than what this process acknowledged.** Every committed change reaches
//! the store's feed (`Store::subscribe`) before the write that made it is answered — on
//! SQLite the writer publishes after COMMIT and before replying, on PostgreSQL the pump
//! publishes a batch before the writer replies, and other processes' changes arrive
//! through the same pump. Every lookup first drains the cache's own feed receiver
//! (`try_recv`, no waiting), so a read that starts after an acknowledgement has already
//! applied that change: nothing depends on when some task gets scheduled.
//!
//! **The read/invalidate race.** A miss takes a *ticket* (how many changes were applied)
//! before it reads the store, and its answer is kept, and later served, only while no
//! change to that operation (for a page: to that project) has been applied since the
//! ticket. A change that commits during the read is either seen by the read or applied
//! after the ticket, which makes the entry unusable.
//!
//! **Authorization.** Entries are only bodies: the handler checks the caller first (a
//! list's project before the lookup; a GET's project, kept with the entry, before the
//! body is sent), exactly as without the cache.
//!
//! **Bounded.** Bodies (plus a per-entry allowance) are counted against the budget
//! (`--read-cache-mib`, [`DEFAULT_BUDGET_BYTES`]; 0 turns the cache off);
//! the bookkeeping of recent changes against `MAX_TRACKED` keys per map.
//!
//! **What the feed does not carry.** Retention and gRPC's `DeleteOperation` delete
//! operations without a change in the feed: whoever deletes through this process empties
//! the cache at once ([`crate::background::retention`]), and other processes' deletions
//! (PostgreSQL) move the store's count of them (`Store::deletions`), which every lookup
//! compares first, as it drains the feed. So entries never age out: an operation another
//! process deleted stops being served within about a notification's delay.

mod generations;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use generations::Generations;
use opsd_store::FeedChange;
use tokio::sync::broadcast::{self, error::TryRecvError};
use uuid::Uuid;

/// Bytes of rendered bodies (and per-entry overhead) kept at most by default, for
/// operations and pages together: about 300,000 rendered operations.
pub const DEFAULT_BUDGET_BYTES: usize = 256 << 20;
/// What one entry costs beyond its body and key: the map slot, the entry, allocations.
const ENTRY_OVERHEAD: usize = 128;
/// Reads the store's count of other processes' deletions (`Store::deletions`).
pub type Deletions = Box<dyn Fn() -> u64 + Send + Sync>;
/// Operations and projects whose last change is remembered; past that the memory is
/// cleared and every entry made before is dropped (rare: that many distinct keys changed
/// while entries were being made).
const MAX_TRACKED: usize = 65_536;

/// A rendered response body and what is needed to serve it.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The JSON body, byte for byte what the handler rendered.
    pub body: Bytes,
    /// The operation's version (its ETag); 0 for a page.
    pub version: u64,
    /// The project the body belongs to, for the caller's authorization.
    pub project: Arc<str>,
    ticket: u64,
}

/// Which rendering of an operation an entry holds: each API polls its own, and a change
/// to the operation makes them all unusable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// `GET /v1/operations/{id}`: the Nirvana JSON body.
    Nirvana,
    /// gRPC `GetOperation`: the encoded `google.longrunning.Operation`.
    Lro,
    /// Deployment Manager's `operations.get`: its JSON depends on more than the
    /// operation (`selfLink` on the scheme and `Host` the client used, the layout on
    /// `prettyPrint`), so the view names those too and each is kept apart.
    Google(Arc<str>),
}

impl View {
    /// The views without a variant, which a change removes at once; a changed
    /// operation's `Google` entries stay until evicted, never served again (as a changed
    /// project's pages do).
    const FIXED: [View; 2] = [View::Nirvana, View::Lro];
}

/// What a miss holds while it reads the store: see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

/// The cache of rendered reads, fed by the store's change feed.
pub struct ReadCache {
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner {
    /// `None` once the feed closed (the store is gone): nothing is cached any more.
    feed: Option<broadcast::Receiver<FeedChange>>,
    /// The store's count of other processes' deletions, and its value when last read.
    deletions: Deletions,
    deletions_seen: u64,
    /// Changes applied so far; a change's index is the value before it was counted.
    applied: u64,
    /// Entries with a ticket below this are unusable (changes were lost or forgotten).
    floor: u64,
    /// The index of the last change applied per operation and per project.
    op_changed: HashMap<Uuid, u64>,
    project_changed: HashMap<Arc<str>, u64>,
    ops: Generations<(Uuid, View)>,
    /// Keyed by the query alone; the entry's project is checked on every hit.
    pages: Generations<String>,
}

impl ReadCache {
    /// A cache fed by `feed` (a receiver of the store's change feed, subscribed now),
    /// holding at most `budget` bytes (0: nothing is ever kept), emptied whenever
    /// `deletions` (the store's count of other processes' deletions) moves.
    pub fn new(feed: broadcast::Receiver<FeedChange>, budget: usize, deletions: Deletions) -> Self {
        let deletions_seen = deletions();
        Self {
            inner: Mutex::new(Inner {
                feed: Some(feed),
                deletions,
                deletions_seen,
                applied: 0,
                floor: 0,
                op_changed: HashMap::new(),
                project_changed: HashMap::new(),
                // Three quarters of the budget for operations (the most polled), one for
                // pages.
                ops: Generations::new(budget * 3 / 4),
                pages: Generations::new(budget / 4),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The rendering `view` of operation `id`, if cached and still current.
    pub fn operation(&self, id: Uuid, view: &View) -> Option<Rendered> {
        let found = self.lock().and_then(|mut inner| {
            inner.drain();
            let (floor, changed) = (inner.floor, inner.op_changed.get(&id).copied());
            match inner.ops.get(&(id, view.clone())) {
                Some(r) if usable(r, floor, changed) => Some(r.clone()),
                _ => None,
            }
        });
        self.count(found.is_some());
        found
    }

    /// The rendered page `query` of `project`, if cached and still current. `query` must
    /// name everything the page depends on; an entry of another project is never served.
    pub fn page(&self, project: &str, query: &str) -> Option<Rendered> {
        let found = self.lock().and_then(|mut inner| {
            inner.drain();
            let (floor, changed) = (inner.floor, inner.project_changed.get(project).copied());
            match inner.pages.get(query) {
                Some(r) if &*r.project == project && usable(r, floor, changed) => Some(r.clone()),
                _ => None,
            }
        });
        self.count(found.is_some());
        found
    }

    /// Taken by a miss before it reads the store.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().map_or(u64::MAX, |mut inner| {
            inner.drain();
            inner.applied
        }))
    }

    /// Keeps the rendering `view` of operation `id` read under `ticket`, unless it changed
    /// since.
    pub fn keep_operation(
        &self,
        ticket: Ticket,
        id: Uuid,
        view: View,
        version: u64,
        project: &str,
        body: Bytes,
    ) {
        let Some(mut inner) = self.lock() else { return };
        inner.drain();
        let changed = inner.op_changed.get(&id).copied();
        if inner.feed.is_none()
            || !(ticket.0 >= inner.floor && changed.is_none_or(|c| c < ticket.0))
        {
            return;
        }
        let size = body.len() + ENTRY_OVERHEAD;
        let entry = Rendered {
            body,
            version,
            project: project.into(),
            ticket: ticket.0,
        };
        inner.ops.insert((id, view), entry, size);
    }

    /// Keeps the rendered page `query` of `project` read under `ticket`, unless the
    /// project changed since.
    pub fn keep_page(&self, ticket: Ticket, project: &str, query: String, body: Bytes) {
        let Some(mut inner) = self.lock() else { return };
        inner.drain();
        let changed = inner.project_changed.get(project).copied();
        if inner.feed.is_none()
            || !(ticket.0 >= inner.floor && changed.is_none_or(|c| c < ticket.0))
        {
            return;
        }
        let size = body.len() + query.len() + project.len() + ENTRY_OVERHEAD;
        let entry = Rendered {
            body,
            version: 0,
            project: project.into(),
            ticket: ticket.0,
        };
        inner.pages.insert(query, entry, size);
    }

    /// Lookups answered from the cache, and lookups that had to read the store.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops every entry: the store changed in a way the feed does not carry.
    pub fn forget_everything(&self) {
        if let Some(mut inner) = self.lock() {
            inner.forget_everything();
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Inner>> {
        // A poisoned lock (a panic while holding it) turns the cache off, not the reads.
        self.inner.lock().ok()
    }
}

/// Whether an entry made under its ticket may be served: no loss of changes or deletion
/// since, and no change to its key since.
fn usable(r: &Rendered, floor: u64, changed: Option<u64>) -> bool {
    r.ticket >= floor && changed.is_none_or(|c| c < r.ticket)
}

impl Inner {
    /// Applies every change published since the last drain, and another process's
    /// deletions since the last look.
    fn drain(&mut self) {
        let deletions = (self.deletions)();
        if deletions != self.deletions_seen {
            self.deletions_seen = deletions;
            self.forget_everything();
        }
        loop {
            let Some(feed) = self.feed.as_mut() else {
                return;
            };
            match feed.try_recv() {
                Ok(change) => self.apply(&change),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Lagged(_)) => {
                    // Changes were lost: nothing cached before now can be trusted.
                    self.forget_everything();
                }
                Err(TryRecvError::Closed) => {
                    self.feed = None;
                    self.forget_everything();
                    return;
                }
            }
        }
    }

    fn apply(&mut self, change: &FeedChange) {
        let index = self.applied;
        self.applied += 1;
        let (id, project_id) = (change.id(), change.project_id());
        if self.op_changed.len() >= MAX_TRACKED || self.project_changed.len() >= MAX_TRACKED {
            self.forget_everything();
        }
        self.op_changed.insert(id, index);
        // The project's key is shared with its pages when it has some.
        let project = self
            .project_changed
            .get_key_value(project_id)
            .map_or_else(|| project_id.into(), |(k, _)| k.clone());
        self.project_changed.insert(project, index);
        for view in View::FIXED {
            self.ops.remove(&(id, view));
        }
    }

    /// Drops every entry and what was remembered of changes; tickets taken before now
    /// become unusable.
    fn forget_everything(&mut self) {
        self.applied += 1;
        self.floor = self.applied;
        self.op_changed.clear();
        self.project_changed.clear();
        self.ops.clear();
        self.pages.clear();
    }
}

#[cfg(test)]
mod tests {
    use opsd_domain::{Kind, NewOperation, OpType, Operation};

    use super::*;

    fn operation(project: &str) -> Operation {
        NewOperation::new(project, Kind::Vm, OpType::Create, "vm-1")
            .into_operation(Uuid::now_v7(), opsd_domain::now())
    }

    fn change(op: &Operation, seq: u64) -> FeedChange {
        FeedChange::Whole(opsd_store::Change {
            event_seq: seq,
            operation: Arc::new(op.clone()),
        })
    }

    /// Another process's change, as the feed names it.
    fn named(op: &Operation, seq: u64) -> FeedChange {
        FeedChange::Named {
            event_seq: seq,
            id: op.id,
            project_id: op.project_id.clone(),
        }
    }

    fn none_deleted() -> Deletions {
        Box::new(|| 0)
    }

    fn body(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    #[test]
    fn a_change_during_the_read_keeps_the_answer_out() {
        let (feed, rx) = broadcast::channel(16);
        let cache = ReadCache::new(rx, DEFAULT_BUDGET_BYTES, none_deleted());
        let op = operation("p");
        let ticket = cache.ticket();
        // The write commits and is published while the miss reads the older version.
        feed.send(change(&op, 1)).unwrap();
        cache.keep_operation(ticket, op.id, View::Nirvana, 1, "p", body("v1"));
        cache.keep_page(ticket, "p", "q".into(), body("page"));
        assert!(cache.operation(op.id, &View::Nirvana).is_none());
        assert!(cache.page("p", "q").is_none());
        // Read after the change: kept and served.
        let ticket = cache.ticket();
        cache.keep_operation(ticket, op.id, View::Nirvana, 2, "p", body("v2"));
        cache.keep_page(ticket, "p", "q".into(), body("page2"));
        assert_eq!(
            cache.operation(op.id, &View::Nirvana).unwrap().body,
            body("v2")
        );
        assert_eq!(cache.page("p", "q").unwrap().body, body("page2"));
        // Another project's change leaves the page alone; its own drops it, whether it
        // arrives whole or, from another process, named only.
        feed.send(change(&operation("other"), 2)).unwrap();
        feed.send(named(&operation("other"), 3)).unwrap();
        assert!(cache.page("p", "q").is_some());
        feed.send(named(&operation("p"), 4)).unwrap();
        assert!(cache.page("p", "q").is_none());
        assert_eq!(cache.operation(op.id, &View::Nirvana).unwrap().version, 2);
        feed.send(named(&op, 5)).unwrap();
        assert!(cache.operation(op.id, &View::Nirvana).is_none());
    }

    #[test]
    fn each_view_is_kept_apart_and_a_change_drops_them_all() {
        let (feed, rx) = broadcast::channel(16);
        let cache = ReadCache::new(rx, DEFAULT_BUDGET_BYTES, none_deleted());
        let op = operation("p");
        cache.keep_operation(cache.ticket(), op.id, View::Nirvana, 1, "p", body("json"));
        assert!(cache.operation(op.id, &View::Lro).is_none());
        cache.keep_operation(cache.ticket(), op.id, View::Lro, 1, "p", body("proto"));
        assert_eq!(
            cache.operation(op.id, &View::Nirvana).unwrap().body,
            body("json")
        );
        assert_eq!(
            cache.operation(op.id, &View::Lro).unwrap().body,
            body("proto")
        );
        let (here, there) = (
            View::Google("http://a".into()),
            View::Google("http://b".into()),
        );
        cache.keep_operation(cache.ticket(), op.id, here.clone(), 1, "p", body("a"));
        assert!(cache.operation(op.id, &there).is_none());
        assert_eq!(cache.operation(op.id, &here).unwrap().body, body("a"));
        feed.send(change(&op, 1)).unwrap();
        for view in [View::Nirvana, View::Lro, here] {
            assert!(cache.operation(op.id, &view).is_none(), "{view:?}");
        }
    }

    #[test]
    fn a_page_is_only_served_for_its_project() {
        let (_feed, rx) = broadcast::channel(16);
        let cache = ReadCache::new(rx, DEFAULT_BUDGET_BYTES, none_deleted());
        cache.keep_page(cache.ticket(), "p", "q".into(), body("page"));
        assert!(cache.page("other", "q").is_none());
        assert!(cache.page("p", "q").is_some());
    }

    #[test]
    fn lost_changes_and_deletions_empty_it() {
        let (feed, rx) = broadcast::channel(2);
        let cache = ReadCache::new(rx, DEFAULT_BUDGET_BYTES, none_deleted());
        let op = operation("p");
        let ticket = cache.ticket();
        cache.keep_operation(ticket, op.id, View::Nirvana, 1, "p", body("v1"));
        for seq in 0..5 {
            feed.send(change(&operation("x"), seq)).unwrap();
        }
        // The receiver lagged: nothing made before can be trusted, nor kept later.
        assert!(cache.operation(op.id, &View::Nirvana).is_none());
        cache.keep_operation(ticket, op.id, View::Nirvana, 1, "p", body("v1"));
        assert!(cache.operation(op.id, &View::Nirvana).is_none());
        cache.keep_operation(cache.ticket(), op.id, View::Nirvana, 1, "p", body("v1"));
        assert!(cache.operation(op.id, &View::Nirvana).is_some());
        cache.forget_everything();
        assert!(cache.operation(op.id, &View::Nirvana).is_none());
        drop(feed);
        cache.keep_operation(cache.ticket(), op.id, View::Nirvana, 1, "p", body("v1"));
        assert!(
            cache.operation(op.id, &View::Nirvana).is_none(),
            "a closed feed turns it off"
        );
    }

    #[test]
    fn another_process_deleting_empties_it() {
        let (_feed, rx) = broadcast::channel(16);
        let count = Arc::new(AtomicU64::new(7));
        let seen = count.clone();
        let cache = ReadCache::new(
            rx,
            DEFAULT_BUDGET_BYTES,
            Box::new(move || seen.load(Ordering::Relaxed)),
        );
        let op = operation("p");
        cache.keep_operation(cache.ticket(), op.id, View::Nirvana, 1, "p", body("v1"));
        cache.keep_page(cache.ticket(), "p", "q".into(), body("page"));
        assert!(cache.operation(op.id, &View::Nirvana).is_some());
        let ticket = cache.ticket();
        count.store(8, Ordering::Relaxed);
        assert!(cache.operation(op.id, &View::Nirvana).is_none());
        assert!(cache.page("p", "q").is_none());
        // A read that began before the deletion was seen is not kept either.
        cache.keep_operation(ticket, op.id, View::Nirvana, 1, "p", body("v1"));
        assert!(cache.operation(op.id, &View::Nirvana).is_none());
        cache.keep_operation(cache.ticket(), op.id, View::Nirvana, 1, "p", body("v1"));
        assert!(cache.operation(op.id, &View::Nirvana).is_some());
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let (_feed, rx) = broadcast::channel(16);
        let cache = ReadCache::new(rx, DEFAULT_BUDGET_BYTES, none_deleted());
        let big = Bytes::from(vec![b'x'; 64 << 10]);
        let ids: Vec<Uuid> = (0..2_000).map(|_| Uuid::now_v7()).collect();
        for id in &ids {
            cache.keep_operation(cache.ticket(), *id, View::Nirvana, 1, "p", big.clone());
        }
        let inner = cache.inner.lock().unwrap();
        let held = inner.ops.len() * (big.len() + ENTRY_OVERHEAD);
        assert!(held <= DEFAULT_BUDGET_BYTES, "{held} bytes held");
        assert!(inner.ops.len() > 100, "it keeps what fits");
        drop(inner);
        // The most recent ones are there.
        assert!(
            cache
                .operation(*ids.last().unwrap(), &View::Nirvana)
                .is_some()
        );
    }
}
