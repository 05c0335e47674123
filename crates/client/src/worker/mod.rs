//! The [`Worker`]: claims operations of some kinds, runs a handler for each with at most
//! `concurrency` at once, keeps each lease alive with heartbeats at a third of its
//! length, sends the handler's progress, and finishes each operation `done` (the
//! handler returned `Ok`) or `failed` (its error). It stops a handler whose lease was
//! lost (the operation went `unknown` or another worker holds it) or whose operation
//! was cancelled (then fails it with `CANCELLED`). Shutdown stops claiming, lets the
//! running handlers finish for a grace period, then stops them and marks their
//! operations `unknown` with a message saying so, for a reconciler to settle.
//!
//! When there is nothing to claim it waits for a new pending operation on a watch of
//! its project (or `idle_poll` at most), so new work starts at once without polling.
//!
//! ```no_run
//! use opsd_client::{Client, Kind, Task, TaskError, Worker, WorkerConfig};
//!
//! # async fn run() -> Result<(), opsd_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080", std::env::var("OPSD_KEY").unwrap_or_default())?;
//! let config = WorkerConfig::new("proj-1").kinds([Kind::Vm]).concurrency(4);
//! let summary = Worker::new(client, config)
//!     .run(
//!         |task: Task| async move {
//!             task.progress(50, "halfway");
//!             Ok::<(), TaskError>(())
//!         },
//!         async { tokio::signal::ctrl_c().await.ok(); },
//!     )
//!     .await?;
//! println!("{} done", summary.done);
//! # Ok(()) }
//! ```

mod drive;
mod task;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, Stream, StreamExt};
use opsd_domain::{Kind, Status};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub use task::{Task, TaskError};

use crate::{ClaimRequest, Client, Error, Result, WatchEvent, WatchQuery};
use drive::Outcome;

/// How a [`Worker`] works.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Claim only this project's operations (required for a key limited to projects).
    pub project_id: Option<String>,
    /// Claim only these kinds; any when empty.
    pub kinds: Vec<Kind>,
    /// Handlers running at once (default 4).
    pub concurrency: usize,
    /// Lease length (default 30 s, whole seconds, 1 s–1 h); heartbeats go every third.
    pub lease: Duration,
    /// The worker's name, shown on its operations (default `<host>-<pid>`).
    pub name: String,
    /// Longest pause between claims when there is nothing to do (default 5 s). With a
    /// `project_id`, a watch of its pending operations wakes the worker as soon as one
    /// is created, so this is only the fallback.
    pub idle_poll: Duration,
    /// How long shutdown lets running handlers finish (default 30 s).
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    /// Defaults, claiming from `project_id`.
    pub fn new(project_id: impl Into<String>) -> Self {
        WorkerConfig {
            project_id: Some(project_id.into()),
            kinds: Vec::new(),
            concurrency: 4,
            lease: Duration::from_secs(30),
            name: default_name(),
            idle_poll: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Claim only these kinds.
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    /// Handlers running at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Lease length.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The worker's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Pause between claims when idle.
    pub fn idle_poll(mut self, pause: Duration) -> Self {
        self.idle_poll = pause;
        self
    }

    /// How long shutdown waits for running handlers.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    fn lease_seconds(&self) -> u64 {
        self.lease.as_secs_f64().ceil().clamp(1.0, 3600.0) as u64
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// What a worker did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Operations finished `done`.
    pub done: u64,
    /// Operations finished `failed` with the handler's error.
    pub failed: u64,
    /// Operations stopped and failed with `CANCELLED`.
    pub cancelled: u64,
    /// Operations whose lease was lost (handler stopped, nothing written).
    pub lost: u64,
    /// Operations released as `unknown` at shutdown.
    pub released: u64,
}

impl Summary {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Done => self.done += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Cancelled => self.cancelled += 1,
            Outcome::Lost => self.lost += 1,
            Outcome::Released => self.released += 1,
        }
    }
}

/// Claims and runs operations; see the [module documentation](self).
pub struct Worker {
    client: Client,
    config: Arc<WorkerConfig>,
}

impl Worker {
    /// A worker using `client` with `config`.
    pub fn new(client: Client, config: WorkerConfig) -> Self {
        Worker {
            client,
            config: Arc::new(config),
        }
    }

    /// Runs until `shutdown` completes (then drains as described above), or until a
    /// claim is refused for good (a bad key, a forbidden project: that error is
    /// returned after draining).
    pub async fn run<H, F>(&self, handler: H, shutdown: impl Future<Output = ()>) -> Result<Summary>
    where
        H: Fn(Task) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let request = ClaimRequest {
            project_id: self.config.project_id.clone(),
            kinds: self.config.kinds.clone(),
            statuses: Vec::new(),
            lease_seconds: self.config.lease_seconds(),
            worker: self.config.name.clone(),
        };
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut running = JoinSet::new();
        let mut summary = Summary::default();
        let mut fatal = None;
        let mut wakeups = self.wakeups();
        tokio::pin!(shutdown);
        loop {
            while let Some(done) = running.try_join_next() {
                summary.add(done.unwrap_or(Outcome::Lost));
            }
            let slot = tokio::select! {
                biased;
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(s) => s,
                    Err(_) => break,
                },
            };
            // The claim is not raced against shutdown: dropping it half-way could take
            // an operation and forget its lease.
            match self.client.claim(&request).await {
                Ok(Some(lease)) => {
                    let driver = drive::Driver {
                        client: self.client.clone(),
                        config: self.config.clone(),
                        stop: stop_rx.clone(),
                    };
                    let handler = handler.clone();
                    running.spawn(async move {
                        let outcome = driver.run(lease, |task| handler(task)).await;
                        drop(slot);
                        outcome
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) if is_fatal(&e) => {
                    fatal = Some(e);
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "claim failed; trying again"),
            }
            drop(slot);
            let mut watch_failed = false;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.idle_poll) => {}
                event = next_wakeup(&mut wakeups) => watch_failed = !matches!(event, Some(Ok(_))),
            }
            if watch_failed {
                // Polling alone still finds the work; the watch was only a shortcut.
                wakeups = None;
            } else if let Some(w) = wakeups.as_mut() {
                // Creations seen while busy all wake for the same claim loop.
                while let Some(Some(Ok(_))) = w.next().now_or_never() {}
            }
        }
        // Drain: running handlers get the grace period, then are stopped and released.
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = running.join_next() => match next {
                    Some(done) => summary.add(done.unwrap_or(Outcome::Lost)),
                    None => break,
                },
                () = &mut grace, if !*stop_tx.borrow() => {
                    let _ = stop_tx.send(true);
                }
            }
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}

type Wakeups = std::pin::Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

impl Worker {
    /// The stream of new pending operations that ends an idle pause early (one project
    /// only: watches are per project).
    fn wakeups(&self) -> Option<Wakeups> {
        let project = self.config.project_id.clone()?;
        let mut query = WatchQuery::new(project);
        query.status = Some(Status::Pending);
        if let [kind] = self.config.kinds[..] {
            query.kind = Some(kind);
        }
        Some(Box::pin(self.client.watch(query)))
    }
}

/// The next wake-up; never resolves without a stream.
async fn next_wakeup(wakeups: &mut Option<Wakeups>) -> Option<Result<WatchEvent>> {
    match wakeups.as_mut() {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// A claim error that trying again cannot fix.
fn is_fatal(e: &Error) -> bool {
    matches!(e, Error::Api(api) if matches!(api.status, 400 | 401 | 403 | 404))
        || matches!(e, Error::Config(_))
}
