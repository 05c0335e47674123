//! Supervision of opsd's long-lived workers (the backends' writers, the SQLite
//! checkpointer, PostgreSQL's feed pump and listener, the server's wait dispatcher,
//! lease expiry and retention): one place that decides what a panic means, so that
//! every worker behaves the same.
//!
//! - A worker that panics is logged, counted (`opsd_worker_restarts_total{worker}`,
//!   from [`restarts`]) and started again after a backoff (100 ms, doubling up to 5 s
//!   with each panic of the last minute). Its callers meanwhile get a 503 with
//!   Retry-After from their backend, never a hang or a 500: the state a worker keeps
//!   across restarts (its queue) outlives the panic, and its in-flight batch is
//!   answered as unavailable.
//! - An I/O error is not a panic: workers handle those themselves and keep running.
//! - A worker that panicked [`MAX_PANICS`] times within [`PANIC_WINDOW`] has *given
//!   up*: it is still restarted (at the longest backoff), but [`gave_up`] resolves, on
//!   which `opsd serve` turns `/readyz` to 503 and exits non-zero, so that the process
//!   supervisor (systemd, Kubernetes) starts a fresh process.
//!
//! The registry is per process, keyed by worker name (several stores in one test
//! process share a name's counters; `opsd serve` has one of each).
//!
//! Fault hooks (tests only): once [`enable_faults`] was called (by `opsd serve` when
//! `OPSD_FAULT_HOOKS=1`), [`arm_panic`] makes the named worker panic at its next
//! [`fault_point`], or, for async workers, at once wherever it is waiting.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Panics within [`PANIC_WINDOW`] after which a worker has given up.
pub const MAX_PANICS: usize = 5;
/// The window [`MAX_PANICS`] is counted in.
pub const PANIC_WINDOW: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a worker is doing, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Running (or never registered).
    Running,
    /// Panicked; waiting out its backoff before it starts again.
    Restarting,
    /// Panicked [`MAX_PANICS`] times within [`PANIC_WINDOW`].
    GaveUp,
}

impl WorkerState {
    /// The word `/readyz` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "ok",
            WorkerState::Restarting => "restarting",
            WorkerState::GaveUp => "failed",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => WorkerState::Restarting,
            2 => WorkerState::GaveUp,
            _ => WorkerState::Running,
        }
    }
}

/// One worker name's record.
struct Worker {
    name: &'static str,
    restarts: AtomicU64,
    state: AtomicU8,
    recent: Mutex<VecDeque<Instant>>,
}

impl Worker {
    /// Records a panic; returns how long to wait before the restart.
    fn panicked(&self, payload: &(dyn Any + Send)) -> Duration {
        let message = panic_message(payload);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let recent = {
            let mut recent = lock(&self.recent);
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > PANIC_WINDOW)
            {
                recent.pop_front();
            }
            recent.push_back(now);
            recent.len()
        };
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (recent - 1).min(10))
            .min(MAX_BACKOFF);
        if recent >= MAX_PANICS {
            self.state
                .store(WorkerState::GaveUp as u8, Ordering::Relaxed);
            tracing::error!(
                worker = self.name,
                panic = %message,
                panics = recent,
                "worker panicked {MAX_PANICS} times within {}s; giving up",
                PANIC_WINDOW.as_secs()
            );
            give_up(self.name);
            MAX_BACKOFF
        } else {
            self.state
                .store(WorkerState::Restarting as u8, Ordering::Relaxed);
            tracing::error!(
                worker = self.name,
                panic = %message,
                backoff_ms = backoff.as_millis() as u64,
                "worker panicked; restarting it"
            );
            backoff
        }
    }

    fn restarted(&self) {
        // A worker that gave up stays reported as such: the process is on its way out.
        let _ = self.state.compare_exchange(
            WorkerState::Restarting as u8,
            WorkerState::Running as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

static WORKERS: Mutex<Vec<Arc<Worker>>> = Mutex::new(Vec::new());
static GAVE_UP: Mutex<Option<&'static str>> = Mutex::new(None);
static GAVE_UP_NOTIFY: Notify = Notify::const_new();

/// A poisoned lock only means another thread panicked while holding it; the data (a
/// counter, a list) is still usable, and supervision must not fail because of a panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn register(name: &'static str) -> Arc<Worker> {
    let mut workers = lock(&WORKERS);
    if let Some(w) = workers.iter().find(|w| w.name == name) {
        return w.clone();
    }
    let w = Arc::new(Worker {
        name,
        restarts: AtomicU64::new(0),
        state: AtomicU8::new(WorkerState::Running as u8),
        recent: Mutex::new(VecDeque::new()),
    });
    workers.push(w.clone());
    w
}

fn give_up(name: &'static str) {
    lock(&GAVE_UP).get_or_insert(name);
    GAVE_UP_NOTIFY.notify_waiters();
}

/// Restarts so far of every worker name registered in this process.
pub fn restarts() -> Vec<(&'static str, u64)> {
    lock(&WORKERS)
        .iter()
        .map(|w| (w.name, w.restarts.load(Ordering::Relaxed)))
        .collect()
}

/// The worst state among registered workers whose name ends with `suffix` (e.g.
/// `"writer"`); [`WorkerState::Running`] when none is registered.
pub fn state_of(suffix: &str) -> WorkerState {
    lock(&WORKERS)
        .iter()
        .filter(|w| w.name.ends_with(suffix))
        .map(|w| w.state.load(Ordering::Relaxed))
        .max()
        .map_or(WorkerState::Running, WorkerState::from_u8)
}

/// The first worker that gave up, if any.
pub fn given_up() -> Option<&'static str> {
    *lock(&GAVE_UP)
}

/// Resolves with the name of the first worker that gives up.
pub async fn gave_up() -> &'static str {
    loop {
        let notified = GAVE_UP_NOTIFY.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(name) = given_up() {
            return name;
        }
        notified.await;
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// Runs `body` on a thread named `opsd-{name}`, again after each panic (with backoff),
/// until it returns. `body` keeps its state (a connection, a queue) across restarts.
pub fn thread(
    name: &'static str,
    mut body: impl FnMut() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let worker = register(name);
    std::thread::Builder::new()
        .name(format!("opsd-{name}"))
        .spawn(move || {
            loop {
                match std::panic::catch_unwind(AssertUnwindSafe(&mut body)) {
                    Ok(()) => return,
                    Err(payload) => {
                        std::thread::sleep(worker.panicked(&*payload));
                        worker.restarted();
                    }
                }
            }
        })
}

/// Runs the future `start()` makes as a Tokio task, and a new one after each panic
/// (with backoff), until one returns. Aborting the returned handle aborts the worker.
/// State a worker keeps across restarts goes in a [`Kept`].
pub fn task<F, Fut>(name: &'static str, mut start: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let worker = register(name);
    tokio::spawn(async move {
        loop {
            let run = start();
            // An armed fault hook panics the worker wherever it is waiting.
            let inner = tokio::spawn(async move {
                tokio::select! {
                    () = run => {}
                    () = armed(name) => panic!("fault hook: injected panic in {name}"),
                }
            });
            let abort = AbortOnDrop(inner.abort_handle());
            let outcome = inner.await;
            drop(abort);
            match outcome {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    let pause = worker.panicked(&*e.into_panic());
                    tokio::time::sleep(pause).await;
                    worker.restarted();
                }
                // Cancelled: the runtime is shutting down.
                Err(_) => return,
            }
        }
    })
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// State an async worker keeps across restarts (its queue, its position in a feed):
/// each run takes it for as long as it runs; a panicking run gives it back.
pub struct Kept<T>(Arc<tokio::sync::Mutex<T>>);

impl<T> Clone for Kept<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send + 'static> Kept<T> {
    /// Keeps `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(tokio::sync::Mutex::new(value)))
    }

    /// The state, for one run.
    pub async fn take(self) -> tokio::sync::OwnedMutexGuard<T> {
        self.0.lock_owned().await
    }
}

static FAULTS: AtomicBool = AtomicBool::new(false);
static ARMED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Mutex::default);
static ARMED_NOTIFY: Notify = Notify::const_new();

/// Turns the fault hooks on (tests only; `opsd serve` with `OPSD_FAULT_HOOKS=1`).
pub fn enable_faults() {
    FAULTS.store(true, Ordering::Relaxed);
}

/// Whether the fault hooks are on.
pub fn faults_enabled() -> bool {
    FAULTS.load(Ordering::Relaxed)
}

/// Makes the worker `name` panic once, at its next fault point. False when the hooks
/// are off or no such worker runs in this process.
pub fn arm_panic(name: &str) -> bool {
    if !faults_enabled() || !lock(&WORKERS).iter().any(|w| w.name == name) {
        return false;
    }
    lock(&ARMED).push(name.to_owned());
    ARMED_NOTIFY.notify_waiters();
    true
}

fn take_armed(name: &str) -> bool {
    let mut armed = lock(&ARMED);
    match armed.iter().position(|n| n == name) {
        Some(i) => {
            armed.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Fault points other than panics (`"<worker>/<fault>"`) that a backend declared.
static DECLARED: LazyLock<Mutex<Vec<&'static str>>> = LazyLock::new(Mutex::default);

/// Declares a one-shot fault point named `"<worker>/<fault>"` (for example the
/// PostgreSQL writer losing a COMMIT's answer), so that [`arm_fault`] accepts it. A
/// no-op when the hooks are off.
pub fn declare_fault(point: &'static str) {
    if faults_enabled() {
        let mut declared = lock(&DECLARED);
        if !declared.contains(&point) {
            declared.push(point);
        }
    }
}

/// Arms the declared fault point `point` once. False when the hooks are off or no such
/// point was declared in this process.
pub fn arm_fault(point: &str) -> bool {
    if !faults_enabled() || !lock(&DECLARED).contains(&point) {
        return false;
    }
    lock(&ARMED).push(point.to_owned());
    true
}

/// Whether the fault point `point` was armed, disarming it (a cheap load when the
/// hooks are off). The caller then injects its fault.
pub fn take_fault(point: &str) -> bool {
    faults_enabled() && take_armed(point)
}

/// Panics if a fault was armed for `name` (a cheap load when the hooks are off). For
/// thread workers, which call it once per round of their loop.
pub fn fault_point(name: &str) {
    if faults_enabled() && take_armed(name) {
        panic!("fault hook: injected panic in {name}");
    }
}

/// Resolves when a fault is armed for `name`; never when the hooks are off.
async fn armed(name: &str) {
    if !faults_enabled() {
        return std::future::pending().await;
    }
    loop {
        let notified = ARMED_NOTIFY.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if take_armed(name) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_with_its_state_kept() {
        let runs = Arc::new(AtomicUsize::new(0));
        let kept = Kept::new(0u32);
        let (r, k) = (runs.clone(), kept.clone());
        let handle = task("test-restarted-task", move || {
            let (r, k) = (r.clone(), k.clone());
            async move {
                let mut state = k.take().await;
                *state += 1;
                if r.fetch_add(1, Ordering::Relaxed) < 2 {
                    panic!("boom");
                }
            }
        });
        handle.await.unwrap();
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(*kept.take().await, 3);
        let restarts = restarts();
        assert!(
            restarts.contains(&("test-restarted-task", 2)),
            "{restarts:?}"
        );
        assert_eq!(state_of("test-restarted-task"), WorkerState::Running);
    }

    #[test]
    fn a_panicking_thread_is_restarted() {
        let mut runs = 0;
        let (tx, rx) = std::sync::mpsc::channel();
        thread("test-restarted-thread", move || {
            runs += 1;
            if runs < 3 {
                panic!("boom");
            }
            tx.send(runs).unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(rx.recv().unwrap(), 3);
    }

    #[test]
    fn five_panics_within_a_minute_give_up() {
        let w = register("test-gives-up");
        for _ in 0..MAX_PANICS - 1 {
            w.panicked(&"boom");
        }
        assert_eq!(state_of("test-gives-up"), WorkerState::Restarting);
        assert_eq!(given_up(), None);
        w.panicked(&"boom");
        assert_eq!(state_of("test-gives-up"), WorkerState::GaveUp);
        assert_eq!(given_up(), Some("test-gives-up"));
    }
}
