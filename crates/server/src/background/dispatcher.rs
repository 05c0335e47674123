//! The dispatcher: one task that subscribes to the store's change feed and hands every
//! change to the waiters of its operation (or, for another process's change, which the
//! feed names without the operation, tells them to read it). It is the only reader of the feed on behalf
//! of waiters, so a thousand waiters cost one subscription, and a change costs one map
//! lookup however many wait for it.

use std::sync::Weak;

use opsd_store::FeedChange;
use opsd_store::supervise::{self, Kept};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use super::waiters::Waiters;

/// The dispatcher's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "wait-dispatcher";

/// Starts the dispatcher, supervised: after a panic it starts again on the same
/// subscription. It ends when the feed closes (the store is gone) or the waiters'
/// registry is dropped.
pub fn spawn(feed: broadcast::Receiver<FeedChange>, waiters: Weak<Waiters>) -> JoinHandle<()> {
    let feed = Kept::new(feed);
    supervise::task(WORKER, move || run(feed.clone(), waiters.clone()))
}

async fn run(feed: Kept<broadcast::Receiver<FeedChange>>, waiters: Weak<Waiters>) {
    let mut feed = feed.take().await;
    // A run that follows a panic may have lost the change it was handing out: every
    // waiter reads its operation again (none are registered at the first start).
    match waiters.upgrade() {
        Some(waiters) => waiters.reread_all(),
        None => return,
    }
    loop {
        let received = feed.recv().await;
        let Some(waiters) = waiters.upgrade() else {
            return;
        };
        match received {
            Ok(FeedChange::Whole(change)) => waiters.notify(&change.operation),
            // Another process's change, named only: its waiters read it.
            Ok(named) => waiters.reread(named.id()),
            Err(RecvError::Lagged(missed)) => {
                // Some changes are gone from the feed; any waiter may have missed its
                // wake-up, so every waiter reads its operation again, once.
                tracing::warn!(missed, "wait dispatcher fell behind the change feed");
                waiters.reread_all();
            }
            Err(RecvError::Closed) => return,
        }
    }
}
