//! The source of a watch stream: one project's changes, filtered, in commit order,
//! resumable from an event seq without loss or duplicates.
//!
//! The order of steps is what makes it exact. Subscribe to the feed first; then, if the
//! client resumes, read the stored history after its last event (`events_since`, page
//! by page); then stream live changes, skipping every seq the backfill already covered.
//! A change that commits while the backfill reads is either in the backfill or still in
//! the feed receiver, and seqs order the two. If the history after the client's last
//! event is no longer complete (retention deleted part of it, the id is from the future,
//! or from another epoch of the store), the stream sends a `Reset` carrying the current
//! head and continues live from there: the client re-lists and keeps the stream.
//!
//! Other processes' changes (PostgreSQL with several replicas) reach the feed named
//! only, without the operation, unless a stream wants their project whole: each stream
//! holds a `WantWhole` for its project, and the feed then reads that project's changes
//! whole, once for every stream of the process. One that arrives named all the same
//! (read before the stream began) sends the stream back to the history, from just
//! before it: one indexed read, which covers every change committed by then (the
//! feed's copies are skipped by seq).
//!
//! Nothing here buffers per stream beyond one backfill page: live changes wait in the
//! store's shared broadcast ring. A consumer that falls more than the ring's capacity
//! behind gets `Lagged`, and its stream ends; it resumes with `Last-Event-ID`.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::Stream;
use opsd_domain::ListFilter;
use opsd_store::{Change, FeedChange, Store, WantWhole};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use crate::metrics::{GaugeGuard, Metrics};

/// Changes read from the history per backfill query.
pub const BACKFILL_PAGE: usize = 256;

/// One item of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// A change that matches the filter.
    Change(Change),
    /// The history after the client's last event is incomplete; the stream continues
    /// after `head`, and the client should re-list.
    Reset {
        /// The newest event seq when the gap was found.
        head: u64,
        /// Why the client's resume point cannot be served.
        reason: ResetReason,
    },
}

/// Why a watch was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// Retention deleted part of the history after the client's last event.
    Expired,
    /// The client's seq is ahead of the store's newest event.
    Ahead,
    /// The client's id is from another epoch of the store (before a restore or copy):
    /// its seq may name a different change here.
    OtherEpoch,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// With the next change to commit.
    Now,
    /// After this event seq of the store's current epoch (`0`: the oldest retained).
    After(u64),
    /// After an event of another epoch: the stream begins with a reset.
    OtherEpoch,
}

enum Phase {
    Backfill,
    Live,
}

struct Watch {
    store: Arc<dyn Store>,
    filter: ListFilter,
    feed: broadcast::Receiver<FeedChange>,
    phase: Phase,
    /// Every event up to here has been considered (sent or filtered out).
    cursor: u64,
    /// The client resumes from another epoch: reset before anything else.
    other_epoch: bool,
    pending: VecDeque<WatchItem>,
    shutdown: watch::Receiver<bool>,
    _open: GaugeGuard,
    _whole: WantWhole,
}

/// The stream of `filter`'s changes from `start`.
/// Subscribes to the feed before returning, so no change committed after this call can
/// be missed. Ends on `shutdown`, when the consumer lags, or on a store error.
pub fn stream(
    store: Arc<dyn Store>,
    filter: ListFilter,
    start: Start,
    shutdown: watch::Receiver<bool>,
    metrics: &Metrics,
) -> impl Stream<Item = WatchItem> + Send + use<> {
    // Wanted whole before subscribing: changes read back after this arrive whole.
    let whole = store.want_whole(&filter.project_id);
    let watch = Watch {
        _whole: whole,
        feed: store.subscribe(),
        store,
        filter,
        phase: if start == Start::Now {
            Phase::Live
        } else {
            Phase::Backfill
        },
        cursor: match start {
            Start::After(seq) => seq,
            Start::Now | Start::OtherEpoch => 0,
        },
        other_epoch: start == Start::OtherEpoch,
        pending: VecDeque::new(),
        shutdown,
        _open: GaugeGuard::new(&metrics.watch_streams),
    };
    futures_util::stream::unfold(watch, |mut w| async move {
        let item = w.next().await?;
        Some((item, w))
    })
}

impl Watch {
    async fn next(&mut self) -> Option<WatchItem> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match self.phase {
                Phase::Backfill => self.backfill_page().await?,
                Phase::Live => self.next_live().await?,
            }
        }
    }

    /// Reads one page of history into `pending`; `None` ends the stream.
    async fn backfill_page(&mut self) -> Option<()> {
        let page = match self
            .store
            .events_since(&self.filter.project_id, self.cursor, BACKFILL_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "watch backfill failed; ending the stream");
                return None;
            }
        };
        let reason = if self.other_epoch {
            Some(ResetReason::OtherEpoch)
        } else if self.cursor > page.head {
            Some(ResetReason::Ahead)
        } else if self.cursor < page.horizon {
            Some(ResetReason::Expired)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.cursor = page.head;
            self.pending.push_back(WatchItem::Reset {
                head: page.head,
                reason,
            });
            self.phase = Phase::Live;
            return Some(());
        }
        if page.changes.len() < BACKFILL_PAGE {
            self.phase = Phase::Live;
        }
        for change in page.changes {
            self.cursor = change.event_seq;
            if self.filter.matches(&change.operation) {
                self.pending.push_back(WatchItem::Change(change));
            }
        }
        Some(())
    }

    /// Waits for the next change on the feed: one that matches goes into `pending`; one
    /// of this project named only (another process's) sends the stream back to reading
    /// the history, from just before it. `None` ends the stream.
    async fn next_live(&mut self) -> Option<()> {
        loop {
            let received = tokio::select! {
                () = super::stopping(&mut self.shutdown) => return None,
                received = self.feed.recv() => received,
            };
            match received {
                Ok(change) if change.event_seq() > self.cursor => match change {
                    FeedChange::Whole(change) => {
                        self.cursor = change.event_seq;
                        if self.filter.matches(&change.operation) {
                            self.pending.push_back(WatchItem::Change(change));
                            return Some(());
                        }
                    }
                    FeedChange::Named {
                        event_seq,
                        project_id,
                        ..
                    } if project_id == self.filter.project_id => {
                        // Every change before this one came through the feed and was
                        // considered, so the history is read from just before it. The
                        // read may go past it; the feed's copies of what it covered are
                        // skipped by seq.
                        self.cursor = event_seq - 1;
                        self.phase = Phase::Backfill;
                        return Some(());
                    }
                    FeedChange::Named { event_seq, .. } => self.cursor = event_seq,
                },
                Ok(_) => {} // already covered by the backfill
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "watch consumer fell behind; ending its stream");
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
