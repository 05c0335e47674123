//! How the writer fills a batch: everything queued, and, when many callers are writing at
//! once, the callers it has just answered as well.
//!
//! A batch costs two round trips and a fixed set of statements whatever its size, so a
//! batch of 32 writes costs far less than two of 16. Taking only what is queued splits a
//! steady crowd of callers in two: while one half's batch runs, the other half queues and
//! becomes the next batch, and every caller waits through two batches per write. Each
//! process of a cluster then writes batches half as large as one process would, since
//! its crowd is a share of the whole, and pays the fixed cost twice as often.
//!
//! So once a batch was large ([`GATHER_FROM`] writes or more), the next one waits for as
//! many writes as that batch answered on top of those queued (its callers are usually
//! about to write again), for at most [`GATHER_FOR`], then runs with what it has. The
//! two halves merge into one batch. Under light load batches stay small and nothing
//! waits; nor does the first write after the writer sat idle for [`CROWD_GONE`], nor a
//! batch already at [`MAX_BATCH`].
//!
//! Measured with 64 callers creating in a closed loop (docs/bench/README.md, "Replicas",
//! "Gathering a batch"): one process went from about 9,400 to 11,900 durable creates/s, two
//! processes sharing its core from about 7,400 to 9,900/s; the open-loop latency at a
//! quarter of that load did not move (its batches stay below the threshold).

use std::time::Duration;

use opsd_store::write::Job;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// The most writes one transaction takes: enough to absorb a burst of every client at
/// once; a larger batch only makes its callers wait for one another longer.
pub const MAX_BATCH: usize = 256;

/// The size of batch from which the next one waits for the callers it answered: a crowd,
/// not a few callers whose writes merely overlap.
pub const GATHER_FROM: usize = 16;

/// The longest a batch waits for them. Tokio's timers tick in milliseconds, so the wait
/// ends on the tick after this.
pub const GATHER_FOR: Duration = Duration::from_millis(1);

/// How long a writer may sit idle before its next write is taken for a new start rather
/// than the crowd coming back. Well above [`GATHER_FOR`]: with replicas sharing a core a
/// crowd's callers may take more than a millisecond to come back, and they should still
/// be gathered.
pub const CROWD_GONE: Duration = Duration::from_millis(10);

/// What the writer remembers between batches.
#[derive(Debug, Default)]
pub struct Gather {
    /// The size of the last batch.
    last: usize,
}

impl Gather {
    /// How many writes the next batch should wait for, when `waited` writes were queued
    /// while the last one ran; `None` to run with what is there.
    fn target(&self, waited: usize) -> Option<usize> {
        (self.last >= GATHER_FROM).then(|| (self.last + waited).min(MAX_BATCH))
    }

    /// Fills `batch` as the module says, waiting for a first write if none is queued.
    /// Returns `false` once every sender is gone and nothing is left.
    pub async fn fill(&mut self, queue: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) -> bool {
        // What was queued while the last batch ran: other callers than those it answered.
        drain(queue, batch);
        let waited = batch.len();
        if batch.is_empty() {
            let idle = Instant::now();
            let Some(first) = queue.recv().await else {
                return false;
            };
            batch.push(first);
            drain(queue, batch);
            if idle.elapsed() > CROWD_GONE {
                self.last = 0;
            }
        }
        if let Some(target) = self.target(waited) {
            let deadline = Instant::now() + GATHER_FOR;
            while batch.len() < target {
                match timeout_at(deadline, queue.recv()).await {
                    Ok(Some(job)) => {
                        batch.push(job);
                        drain(queue, batch);
                    }
                    // Out of time, or the senders are gone: run what there is.
                    Ok(None) | Err(_) => break,
                }
            }
        }
        true
    }

    /// Records the size of the batch about to run (its writes whose callers still wait).
    pub fn ran(&mut self, size: usize) {
        self.last = size;
    }
}

/// Moves what is queued into `batch`, up to [`MAX_BATCH`].
fn drain(queue: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsd_store::trace::WriteSpan;
    use opsd_store::write::Write;

    fn job() -> Job {
        Job {
            write: Write::Cancel(uuid::Uuid::nil()),
            reply: tokio::sync::oneshot::channel().0,
            span: WriteSpan::current(),
        }
    }

    /// A queue holding `queued` writes, and `later` more sent `after` from now.
    fn queue(queued: usize, later: usize, after: Duration) -> mpsc::Receiver<Job> {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 2);
        for _ in 0..queued {
            tx.try_send(job()).unwrap();
        }
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            for _ in 0..later {
                let _ = tx.send(job()).await;
            }
            // Other callers may still write: the queue stays open.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        rx
    }

    /// A writer whose last batch held `last` writes.
    fn after(last: usize) -> Gather {
        let mut g = Gather::default();
        g.ran(last);
        g
    }

    /// Fills one batch after a batch of `last`; answers its size and how long it took.
    async fn fill_after(last: usize, mut rx: mpsc::Receiver<Job>) -> (usize, Duration) {
        let mut gather = after(last);
        let mut batch = Vec::new();
        let started = Instant::now();
        assert!(gather.fill(&mut rx, &mut batch).await);
        (batch.len(), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_just_answered_join_the_half_that_queued() {
        // They are sent by another task, which runs only once the writer waits.
        let (size, took) = fill_after(16, queue(16, 16, Duration::ZERO)).await;
        assert_eq!(size, 32);
        assert!(took < GATHER_FOR, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_do_not_come_back_hold_the_batch_only_briefly() {
        let (size, took) = fill_after(32, queue(0, 20, Duration::ZERO)).await;
        assert_eq!(size, 20);
        assert!(took >= GATHER_FOR && took < GATHER_FOR * 3, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_after_a_pause_runs_at_once() {
        let pause = Duration::from_millis(50);
        let (size, took) = fill_after(32, queue(0, 1, pause)).await;
        assert_eq!(size, 1);
        assert_eq!(took, pause);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_small_batch_what_is_queued_runs_at_once() {
        let (size, took) =
            fill_after(GATHER_FROM - 1, queue(3, 10, Duration::from_micros(100))).await;
        assert_eq!(size, 3);
        assert_eq!(took, Duration::ZERO);
    }

    #[test]
    fn no_batch_waits_for_more_than_fits() {
        assert_eq!(after(MAX_BATCH).target(MAX_BATCH), Some(MAX_BATCH));
        assert_eq!(after(200).target(100), Some(MAX_BATCH));
    }
}
