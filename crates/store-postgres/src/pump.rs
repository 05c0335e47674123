//! The change feed across processes. Every opsd process on a database publishes every
//! committed change — its own and the other processes' — on its local feed, once each, in
//! event-seq order, which by the ordering rule (`feed.rs`) is commit order.
//!
//! One task per process, the pump, owns the position `last` (the highest seq published)
//! and is the only publisher. It learns that there is something to publish three ways:
//! - its own writer hands it each committed batch, and waits for the pump to publish it
//!   before answering the callers (so a waiter is being woken when the response leaves);
//! - the listener (`listen.rs`) wakes it when PostgreSQL delivers a notification that
//!   another process committed (`NOTIFY` carries only that: positions, not changes);
//! - a timer, a safety net for a notification that never arrives.
//!
//! Whenever what it was handed does not continue `last`, it reads the missing events
//! from the database (`seq > last`, snapshots included), so a change is never skipped:
//! a lost listening connection, a notification dropped while PostgreSQL restarted, or a
//! writer racing a notification all end the same way, with the pump catching up from
//! the store. What it reads back, other processes' changes, it publishes named only
//! (seq, operation id, project: `FeedChange::Named`), an index walk and a lookup per
//! change instead of whole rows decoded; its own writer's batches it publishes whole.
//! The changes of projects that a watch stream of this process wants whole
//! (`opsd_store::WholeWanted`) it reads whole in a second round trip, once for every
//! stream.
//! A subscriber that falls more than the feed's capacity behind gets
//! `Lagged` as on SQLite: waiters read their operation again, watch streams end and
//! resume from their `Last-Event-ID`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use opsd_store::{Change, FeedChange, Result, WholeWanted};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use crate::errors::{self, ctx};
use crate::rows::{self, big};
use crate::writes::flight::{self, Step};

/// The longest one catch-up from the store may take.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(5);
/// Events read per round when catching up from the store.
const CATCH_UP_PAGE: i64 = 1000;
/// How often the pump looks at the store without being told to, while the listener is
/// connected (a notification lost without the connection failing) …
const SAFETY_TICK: Duration = Duration::from_secs(1);
/// … and while it is not (then this is how changes of other processes arrive).
const LISTENER_DOWN_TICK: Duration = Duration::from_millis(200);

/// A batch the local writer committed, and where to say it is published.
pub struct Committed {
    pub changes: Vec<Change>,
    pub published: oneshot::Sender<()>,
}

/// What the pump and the listener share.
pub struct Signals {
    /// Woken by the listener for every notification (coalesced).
    pub wake: Notify,
    /// Whether the listener is connected.
    pub listening: AtomicBool,
    /// The last event seq the pump published (for readiness: how far it trails).
    pub published: AtomicU64,
    /// Changes read back from the store rather than handed over by this process's writer.
    pub read_from_store: AtomicU64,
    /// The highest count of deleting transactions on the database seen (`feed_head.purges`,
    /// from notices and whenever the listener connects).
    pub purges: AtomicU64,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            listening: AtomicBool::new(false),
            published: AtomicU64::new(0),
            read_from_store: AtomicU64::new(0),
            purges: AtomicU64::new(0),
        }
    }
}

/// The pump's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "postgres-pump";

/// Runs the pump until the writer is gone. Started again by its supervisor after a
/// panic, with the writer's channel and the last event seq published kept.
pub async fn run(
    pool: Pool,
    kept: opsd_store::supervise::Kept<(mpsc::Receiver<Committed>, u64)>,
    signals: Arc<Signals>,
    feed: broadcast::Sender<FeedChange>,
    wanted: Arc<WholeWanted>,
) {
    let mut kept = kept.take().await;
    let (committed, last) = &mut *kept;
    let pump = Pump {
        pool: &pool,
        feed: &feed,
        signals: &signals,
        wanted: &wanted,
    };
    let signals = &*signals;
    let mut failing = false;
    loop {
        signals.published.store(*last, Ordering::Relaxed);
        let tick = if signals.listening.load(Ordering::Relaxed) {
            SAFETY_TICK
        } else {
            LISTENER_DOWN_TICK
        };
        let outcome = tokio::select! {
            batch = committed.recv() => match batch {
                Some(batch) => {
                    let done = pump.publish_batch(last, batch.changes).await;
                    let _ = batch.published.send(());
                    done
                }
                None => return,
            },
            () = signals.wake.notified() => pump.catch_up(last, u64::MAX).await,
            () = tokio::time::sleep(tick) => pump.catch_up(last, u64::MAX).await,
        };
        // Log a failing store once, not on every tick; the next round retries.
        match outcome {
            Ok(()) if failing => {
                tracing::info!(last = *last, "change feed caught up with the store again");
                failing = false;
            }
            Err(e) if !failing => {
                tracing::warn!(error = %e, last = *last, "change feed cannot read the store; retrying");
                failing = true;
            }
            _ => {}
        }
    }
}

/// What the pump's rounds share.
struct Pump<'a> {
    pool: &'a Pool,
    feed: &'a broadcast::Sender<FeedChange>,
    signals: &'a Signals,
    wanted: &'a WholeWanted,
}

impl Pump<'_> {
    /// Publishes a batch of the local writer, reading from the store whatever other
    /// processes committed before it and was not published yet. Only that gap is read: the
    /// batch itself is in hand. (With several processes writing there is a gap before
    /// almost every batch; reading the batch back too made every process decode every
    /// event of the cluster twice over.) The gap's events are all committed, since the
    /// batch took the feed head after them.
    async fn publish_batch(&self, last: &mut u64, changes: Vec<Change>) -> Result<()> {
        if let Some(first) = changes.first().map(|c| c.event_seq)
            && first > *last + 1
        {
            self.catch_up(last, first).await?;
            // Every event of the gap was read; a seq not found was purged by retention.
            *last = first - 1;
        }
        for change in changes {
            if change.event_seq == *last + 1 {
                *last = change.event_seq;
                // Nobody listening is fine.
                let _ = self.feed.send(FeedChange::Whole(change));
            }
        }
        Ok(())
    }

    /// Publishes every committed change after `last` and before `until`, read from the
    /// store; gives up after [`CATCH_UP_DEADLINE`] (what was read by then is published), so
    /// that a database that stops answering without closing the connection cannot hold the
    /// pump, and with it the writer waiting for its batch to be published.
    async fn catch_up(&self, last: &mut u64, until: u64) -> Result<()> {
        tokio::time::timeout(CATCH_UP_DEADLINE, self.read_missing(last, until))
            .await
            .unwrap_or_else(|_| {
                Err(opsd_store::StoreError::Unavailable(
                    "the database did not answer the change feed in time".into(),
                ))
            })
    }

    async fn read_missing(&self, last: &mut u64, until: u64) -> Result<()> {
        let client = self.pool.get().await.map_err(errors::pool)?;
        let statement = client
            .prepare_cached(crate::feed::CATCH_UP_SQL)
            .await
            .map_err(ctx("prepare catch-up"))?;
        loop {
            let (after, before) = (big(*last), big(until));
            // One round trip: the read in a transaction of its own that plans it once
            // (`rows::BEGIN_GENERIC`). Every step leaves on the first poll, so a read cut
            // short by the deadline still ends its transaction before the connection's
            // next user is heard.
            let steps = [
                Step::Simple(rows::BEGIN_GENERIC),
                Step::Query(statement.clone(), vec![&after, &CATCH_UP_PAGE, &before]),
                Step::Simple("COMMIT"),
            ];
            let mut answers = Vec::with_capacity(steps.len());
            for answer in flight::send(&client, &steps).await {
                answers.push(answer.map_err(ctx("read events"))?);
            }
            let rows = answers.swap_remove(1);
            self.signals
                .read_from_store
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            let named = rows
                .iter()
                .map(crate::feed::named)
                .collect::<Result<Vec<_>>>()?;
            let mut whole = self.read_wanted_whole(&client, &named).await?;
            for change in named {
                *last = change.event_seq();
                let change = match whole.remove(&change.event_seq()) {
                    Some(whole) => FeedChange::Whole(whole),
                    None => change,
                };
                let _ = self.feed.send(change);
            }
            if (rows.len() as i64) < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }

    /// The changes among `named` whose projects a watch stream wants whole, read whole in
    /// one more round trip (none when no stream wants any of them), by seq. A change
    /// deleted since it was named is missing, and is published named.
    async fn read_wanted_whole(
        &self,
        client: &deadpool_postgres::Object,
        named: &[FeedChange],
    ) -> Result<HashMap<u64, Change>> {
        if !self.wanted.any() {
            return Ok(HashMap::new());
        }
        let seqs: Vec<i64> = named
            .iter()
            .filter(|c| self.wanted.wanted(c.project_id()))
            .map(|c| big(c.event_seq()))
            .collect();
        if seqs.is_empty() {
            return Ok(HashMap::new());
        }
        let statement = client
            .prepare_cached(&crate::feed::WHOLE_BY_SEQ_SQL)
            .await
            .map_err(ctx("prepare whole changes"))?;
        let rows = client
            .query(&statement, &[&seqs])
            .await
            .map_err(ctx("read whole changes"))?;
        rows.iter()
            .map(|row| crate::feed::change(row).map(|c| (c.event_seq, c)))
            .collect()
    }
}
