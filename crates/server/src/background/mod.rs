//! Live operations, the background side (docs/live-operations.md). Read in this order:
//!
//! - `dispatcher`: one task that reads the store's change feed and wakes waiters;
//! - `waiters`: per-operation wait registrations (`…/wait`), woken by the dispatcher;
//! - `watch`: the source of a watch stream (backfill from the history, then the feed);
//! - `expiry` and `retention`: the background tasks `opsd serve` runs beside the
//!   server ([`Background`]).
//!
//! The HTTP handlers are in `http::live`.

pub mod dispatcher;
pub mod expiry;
pub mod retention;
pub mod waiters;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use opsd_store::Store;
use opsd_store::supervise;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::read_cache::ReadCache;
use waiters::Waiters;

/// The live machinery one server shares: the waiters' registry (fed by the dispatcher
/// task) and the shutdown signal that releases waiters and ends watch streams, so that
/// graceful shutdown is not held up by long-lived requests.
pub struct Live {
    /// Requests waiting for operations.
    pub waiters: Arc<Waiters>,
    shutdown: signal::Sender<bool>,
    dispatcher: JoinHandle<()>,
}

impl Live {
    /// Starts the dispatcher on the current Tokio runtime.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let waiters = Arc::new(Waiters::new(metrics));
        let dispatcher = dispatcher::spawn(store.subscribe(), Arc::downgrade(&waiters), store);
        Self {
            waiters,
            shutdown: signal::channel(false).0,
            dispatcher,
        }
    }

    /// Releases every waiter with the state it has and ends every watch stream; new
    /// ones end at once.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns true when the server shuts down.
    pub fn shutdown_signal(&self) -> signal::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

/// Resolves once `rx` is true; never if its sender is gone without saying so.
pub(crate) async fn stopping(rx: &mut signal::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Settings of the background tasks.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// How long terminal operations are kept after they end.
    pub retention: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            retention: opsd_domain::duration::DEFAULT_RETENTION,
        }
    }
}

/// The parts of a server's state the background tasks work on, and nothing more: they
/// answer no requests, so they get no request state.
#[derive(Clone)]
pub struct Handles {
    /// The operations store.
    pub store: Arc<dyn Store>,
    /// The exported metrics.
    pub metrics: Arc<Metrics>,
    /// The server's read cache, emptied when retention deletes operations.
    pub reads: Arc<ReadCache>,
    /// The server's read-only switch: while on, retention deletes nothing.
    pub read_only: Arc<AtomicBool>,
}

/// The background tasks of a server: lease expiry and retention.
pub struct Background {
    stop: signal::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts the tasks of the server that `server` belongs to on the current Tokio
    /// runtime.
    pub fn start(server: Handles, config: &LiveConfig) -> Self {
        let (stop, rx) = signal::channel(false);
        // Supervised: each starts again after a panic (`opsd_store::supervise`).
        let (store, metrics, expiry_stop) =
            (server.store.clone(), server.metrics.clone(), rx.clone());
        let (retained, retention) = (server, config.retention);
        let tasks = vec![
            supervise::task(expiry::WORKER, move || {
                expiry::run(store.clone(), metrics.clone(), expiry_stop.clone())
            }),
            supervise::task(retention::WORKER, move || {
                retention::run(retained.clone(), retention, rx.clone())
            }),
        ];
        Self { stop, tasks }
    }

    /// Stops the tasks, letting a write in progress finish.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "background task failed");
            }
        }
    }
}
