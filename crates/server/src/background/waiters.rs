//! Per-operation waiters. A waiter registers interest in one operation id first, then
//! reads the operation once, then sleeps on a `tokio::sync::watch` channel until the
//! dispatcher hands it a newer version, the timeout passes, or the server shuts down. No
//! polling: while it sleeps a waiter costs a map entry's share, a channel receiver and a
//! version number, and no database reads. Registering before reading closes the race
//! with a write that commits in between (it is then both read and delivered; versions
//! sort it out).
//!
//! Entries are removed when their last waiter leaves, so the map holds only operations
//! someone is waiting for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opsd_domain::Operation;
use opsd_store::{Store, StoreError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metrics::{GaugeGuard, Metrics};

/// What the dispatcher tells the waiters of one operation.
#[derive(Debug, Clone)]
enum Wake {
    /// Nothing yet.
    Idle,
    /// This is the operation's newest version.
    Changed(Arc<Operation>),
    /// The operation changed and the dispatcher could not read it, or the dispatcher
    /// may have missed changes: read the operation again.
    Reread,
}

struct Slot {
    wake: watch::Sender<Wake>,
    waiters: usize,
}

/// The registry of waiting requests, keyed by operation id.
pub struct Waiters {
    slots: Mutex<HashMap<Uuid, Slot>>,
    metrics: Arc<Metrics>,
}

/// One waiter's membership, made before its first read; leaving (drop) removes the
/// entry with the last waiter.
pub struct Registration<'a> {
    waiters: &'a Waiters,
    id: Uuid,
    wake: watch::Receiver<Wake>,
    _gauge: GaugeGuard,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut slots = self.waiters.lock();
        if let Some(slot) = slots.get_mut(&self.id) {
            slot.waiters -= 1;
            if slot.waiters == 0 {
                slots.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    /// An empty registry.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Slot>> {
        // The map stays consistent even if a holder panicked: every critical section is
        // a single insert, update or remove.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers interest in operation `id`: every change committed from now on reaches
    /// the registration. Register first, then read the operation, then
    /// [`sleep`](Registration::sleep): a write that commits in between is both read and
    /// delivered, never lost.
    pub fn register(&self, id: Uuid) -> Registration<'_> {
        let mut slots = self.lock();
        let slot = slots.entry(id).or_insert_with(|| Slot {
            wake: watch::channel(Wake::Idle).0,
            waiters: 0,
        });
        slot.waiters += 1;
        Registration {
            waiters: self,
            id,
            wake: slot.wake.subscribe(),
            _gauge: GaugeGuard::new(&self.metrics.waiters),
        }
    }

    /// How many operations have at least one waiter (tests, diagnostics).
    pub fn operations_waited_on(&self) -> usize {
        self.lock().len()
    }

    /// Hands `op` to its waiters, if it has any (the dispatcher calls this per change).
    pub fn notify(&self, op: &Arc<Operation>) {
        if let Some(slot) = self.lock().get(&op.id) {
            slot.wake.send_replace(Wake::Changed(Arc::clone(op)));
        }
    }

    /// Whether operation `id` has a waiter.
    pub fn is_waited_on(&self, id: Uuid) -> bool {
        self.lock().contains_key(&id)
    }

    /// Tells the waiters of operation `id`, if it has any, to read it again: it changed,
    /// and the dispatcher could not read it for them.
    pub fn reread(&self, id: Uuid) {
        if let Some(slot) = self.lock().get(&id) {
            slot.wake.send_replace(Wake::Reread);
        }
    }

    /// Tells every waiter to read its operation again (the dispatcher lost changes).
    pub fn reread_all(&self) {
        for slot in self.lock().values() {
            slot.wake.send_replace(Wake::Reread);
        }
    }
}

impl Registration<'_> {
    /// The operation waited for.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Sleeps until the operation, last seen unfinished at `seen`, is `done` or `failed`,
    /// `deadline` passes, or `shutdown` turns true; returns the operation as it then is,
    /// `None` if it is gone.
    ///
    /// A sleeping waiter keeps a version number, not the operation: with thousands
    /// parked, a copy each was a kilobyte or more apiece. A finishing change arrives with
    /// the operation (shared with every waiter of it); at the deadline or shutdown the
    /// operation is read once more, unless a newer version was handed over meanwhile.
    /// So a wait reads the store once if a write releases it, twice if it times out.
    /// (The dispatcher reads what other processes change, for all their waiters at
    /// once.)
    pub async fn sleep(
        mut self,
        store: &dyn Store,
        mut seen: u64,
        deadline: tokio::time::Instant,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Operation>, StoreError> {
        // The newest unfinished version the dispatcher handed over, if any: it is the
        // channel's value too, so holding it costs nothing.
        let mut latest: Option<Arc<Operation>> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = super::stopping(&mut shutdown) => break,
                changed = self.wake.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let wake = self.wake.borrow_and_update().clone();
                    match wake {
                        Wake::Changed(op) if op.version > seen => {
                            if op.status.is_terminal() {
                                return Ok(Some(Arc::unwrap_or_clone(op)));
                            }
                            seen = op.version;
                            latest = Some(op);
                        }
                        Wake::Changed(_) | Wake::Idle => {}
                        Wake::Reread => match store.get(self.id).await? {
                            Some(op) if op.status.is_terminal() => return Ok(Some(op)),
                            Some(op) => {
                                seen = op.version;
                                latest = None;
                            }
                            None => return Ok(None),
                        },
                    }
                }
            }
        }
        match latest {
            Some(op) => Ok(Some(Arc::unwrap_or_clone(op))),
            None => store.get(self.id).await,
        }
    }
}
