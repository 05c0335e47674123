//! The dispatcher: one task that subscribes to the store's change feed and hands every
//! change to the waiters of its operation. It is the only reader of the feed on behalf
//! of waiters, so a thousand waiters cost one subscription, and a change costs one map
//! lookup however many wait for it.
//!
//! Another process's change reaches the feed named only, without the operation. The
//! dispatcher then reads the operation for its waiters, if it has any, and hands it
//! over like a whole change. It reads in batches: every operation named while one read
//! is out goes into the next, so a burst of changes costs a few reads, not one per
//! waiter. (Each waiter reading its own operation took the release p99 of 10,000
//! waiters parked on one replica, released by writes through another, from 16 ms to
//! 122 ms: the reads queued for the pool.) The read runs beside the feed, never in
//! its way: whole changes keep being handed over while it is out.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use opsd_domain::Operation;
use opsd_store::supervise::{self, Kept};
use opsd_store::{FeedChange, Store};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::waiters::Waiters;

/// The dispatcher's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "wait-dispatcher";

/// A read of named operations: the ids asked for and what the store answered.
type Read = Pin<Box<dyn Future<Output = (Vec<Uuid>, opsd_store::Result<Vec<Operation>>)> + Send>>;

/// Starts the dispatcher, supervised: after a panic it starts again on the same
/// subscription. It ends when the feed closes (the store is gone) or the waiters'
/// registry is dropped. `store` is where it reads the operations of named changes.
pub fn spawn(
    feed: broadcast::Receiver<FeedChange>,
    waiters: Weak<Waiters>,
    store: Arc<dyn Store>,
) -> JoinHandle<()> {
    let feed = Kept::new(feed);
    supervise::task(WORKER, move || {
        run(feed.clone(), waiters.clone(), store.clone())
    })
}

async fn run(
    feed: Kept<broadcast::Receiver<FeedChange>>,
    waiters: Weak<Waiters>,
    store: Arc<dyn Store>,
) {
    let mut feed = feed.take().await;
    // A run that follows a panic may have lost the change it was handing out (or the
    // named operations it was reading): every waiter reads its operation again (none
    // are registered at the first start).
    match waiters.upgrade() {
        Some(waiters) => waiters.reread_all(),
        None => return,
    }
    // Operations named on the feed that have waiters, for the next read; at most one
    // read is out at a time.
    let mut named: HashSet<Uuid> = HashSet::new();
    let mut reading: FuturesUnordered<Read> = FuturesUnordered::new();
    loop {
        tokio::select! {
            received = feed.recv() => {
                let Some(waiters) = waiters.upgrade() else {
                    return;
                };
                match received {
                    Ok(FeedChange::Whole(change)) => waiters.notify(&change.operation),
                    Ok(change) => {
                        if waiters.is_waited_on(change.id()) {
                            named.insert(change.id());
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        // Some changes are gone from the feed; any waiter may have missed
                        // its wake-up, so every waiter reads its operation again, once.
                        tracing::warn!(missed, "wait dispatcher fell behind the change feed");
                        waiters.reread_all();
                    }
                    Err(RecvError::Closed) => return,
                }
            }
            Some((ids, read)) = reading.next(), if !reading.is_empty() => {
                let Some(waiters) = waiters.upgrade() else {
                    return;
                };
                hand_over(&waiters, ids, read);
            }
        }
        if reading.is_empty() && !named.is_empty() {
            let ids: Vec<Uuid> = named.drain().collect();
            let store = store.clone();
            reading.push(Box::pin(async move {
                let read = store.get_many(&ids).await;
                (ids, read)
            }));
        }
    }
}

/// Hands the operations read for named changes to their waiters. One not found (deleted
/// since) or a failed read sends its waiters to read it themselves: they answer what
/// they find, or the store's error.
fn hand_over(waiters: &Waiters, ids: Vec<Uuid>, read: opsd_store::Result<Vec<Operation>>) {
    let mut unread: HashSet<Uuid> = ids.into_iter().collect();
    match read {
        Ok(found) => {
            for op in found {
                unread.remove(&op.id);
                waiters.notify(&Arc::new(op));
            }
        }
        Err(e) => tracing::warn!(error = %e, "wait dispatcher cannot read changed operations"),
    }
    for id in unread {
        waiters.reread(id);
    }
}
