//! The dispatcher: one task that subscribes to the store's change feed and hands every
//! change to the waiters of its operation. It is the only reader of the feed on behalf
//! of waiters, so a thousand waiters cost one subscription, and a change costs one map
//! lookup however many wait for it.

use std::sync::Weak;

use opsd_store::Change;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use super::waiters::Waiters;

/// Starts the dispatcher. It ends when the feed closes (the store is gone) or the
/// waiters' registry is dropped.
pub fn spawn(mut feed: broadcast::Receiver<Change>, waiters: Weak<Waiters>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let received = feed.recv().await;
            let Some(waiters) = waiters.upgrade() else {
                return;
            };
            match received {
                Ok(change) => waiters.notify(&change.operation),
                Err(RecvError::Lagged(missed)) => {
                    // Some changes are gone from the feed; any waiter may have missed its
                    // wake-up, so every waiter reads its operation again, once.
                    tracing::warn!(missed, "wait dispatcher fell behind the change feed");
                    waiters.reread_all();
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}
