//! Per-operation waiters. A waiter registers interest in one operation id first, then
//! reads the operation once, then sleeps on a `tokio::sync::watch` channel until the
//! dispatcher hands it a newer version, the timeout passes, or the server shuts down. No
//! polling: while it sleeps a waiter costs a map entry's share and a channel receiver,
//! and no database reads. Registering before reading closes the race with a write that
//! commits in between (it is then both read and delivered; versions sort it out).
//!
//! Entries are removed when their last waiter leaves, so the map holds only operations
//! someone is waiting for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// The dispatcher may have missed changes: read the operation again.
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

/// One waiter's membership; leaving (drop) removes the entry with the last waiter.
struct Registration<'a> {
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

    fn register(&self, id: Uuid) -> Registration<'_> {
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

    /// Tells every waiter to read its operation again (the dispatcher lost changes).
    pub fn reread_all(&self) {
        for slot in self.lock().values() {
            slot.wake.send_replace(Wake::Reread);
        }
    }

    /// Waits until operation `id` is `done` or `failed`, `timeout` passes, or
    /// `shutdown` turns true; returns the newest version seen, `None` if it does not
    /// exist. Reads the store once (plus once per `Reread`).
    pub async fn wait(
        &self,
        store: &dyn Store,
        id: Uuid,
        timeout: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Operation>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut me = self.register(id);
        let Some(mut current) = store.get(id).await? else {
            return Ok(None);
        };
        while !current.status.is_terminal() {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = super::stopping(&mut shutdown) => break,
                changed = me.wake.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let wake = me.wake.borrow_and_update().clone();
                    match wake {
                        Wake::Changed(op) if op.version > current.version => {
                            current = (*op).clone();
                        }
                        Wake::Changed(_) | Wake::Idle => {}
                        Wake::Reread => match store.get(id).await? {
                            Some(op) => current = op,
                            None => break,
                        },
                    }
                }
            }
        }
        Ok(Some(current))
    }
}
