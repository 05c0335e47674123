//! The listening connection: `LISTEN` on this database's feed channel, on a connection of
//! its own (outside the pool), waking the pump (`pump.rs`) for every notification. When
//! the connection fails it reconnects with backoff; every reconnection is a gap — the
//! process may have missed notifications — counted in `gaps` (the
//! `opsd_feed_gaps_total` metric) and followed by a wake-up, so the pump reads whatever
//! was committed meanwhile. Notifications carry no changes (PostgreSQL caps payloads at
//! 8,000 bytes): the pump reads them from the store.
//!
//! A notification also reaches the process that sent it. Those are not passed on: the
//! process's own writer hands each committed batch to the pump, and a wake-up for it
//! would race that hand-off and make the pump read the batch back from the store (it
//! did, for about half the batches of a single process, and twice per batch with two).
//! So each process signs its notifications with an origin of its own.
//!
//! Notices also carry the database's count of deleting transactions (`feed_head.purges`),
//! own ones included, which the store reports as `Store::deletions`: deletions leave no
//! change on the feed, and a cache of reads drops what it holds when the count moves.
//! Each connection reads the count once after `LISTEN`, so deletions made while it was
//! away count too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::pump::Signals;

/// How the listening connection names itself to the server (`pg_stat_activity`).
pub const APPLICATION_NAME: &str = "opsd-feed-listener";

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Where a process says that it committed, and how it recognises its own notices.
#[derive(Clone)]
pub struct Channel {
    /// The channel of the database's feed: one per schema, so that stores in different
    /// schemas of one database (tests do this) do not wake each other.
    pub name: String,
    /// This store's signature on its notifications: random, one per opened store.
    pub origin: String,
}

impl Channel {
    pub fn new(schema: &str) -> Self {
        Self {
            name: channel_name(schema),
            origin: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// What a notification's payload (`<head> <origin> <purges>`, `feed::NOTIFY_SQL`)
    /// says. A payload without an origin (an older opsd) is another process's.
    fn read(&self, payload: &str) -> Notice {
        let mut fields = payload.split(' ').skip(1);
        Notice {
            own: fields.next() == Some(self.origin.as_str()),
            purges: fields.next().and_then(|p| p.parse().ok()),
        }
    }
}

/// One notification, as `Channel::read` understood it.
#[derive(Debug, PartialEq, Eq)]
struct Notice {
    /// Sent by this store: its writer hands the batch over itself.
    own: bool,
    /// The count of deleting transactions when it was sent.
    purges: Option<u64>,
}

fn channel_name(schema: &str) -> String {
    let clean: String = schema
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("opsd_feed_{clean}")
}

/// The listener's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "postgres-listener";

/// Listens until `stop`'s sender is dropped (with the store). Started again by its
/// supervisor after a panic; a new connection catches up whatever it missed.
pub async fn run(
    config: Config,
    channel: Channel,
    signals: Arc<Signals>,
    gaps: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let mut retry = FIRST_RETRY;
    let mut connected_before = false;
    loop {
        let listened = tokio::select! {
            r = listen_once(&config, &channel, &signals, connected_before, &gaps) => r,
            _ = stop.changed() => return,
        };
        match listened {
            Ok(()) => retry = FIRST_RETRY,
            Err(e) => tracing::debug!(error = %e, "feed listener cannot connect"),
        }
        if signals.listening.swap(false, Ordering::Relaxed) {
            tracing::warn!("feed listener lost its connection; reconnecting");
            connected_before = true;
            retry = FIRST_RETRY;
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = stop.changed() => return,
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// One connection's life: connect, LISTEN, forward notifications until it fails.
async fn listen_once(
    config: &Config,
    channel: &Channel,
    signals: &Arc<Signals>,
    reconnecting: bool,
    gaps: &AtomicU64,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (ended_tx, mut ended) = tokio::sync::oneshot::channel();
    let wake = Arc::new(tokio::sync::Notify::new());
    let (forward, ours, seen) = (wake.clone(), channel.clone(), signals.clone());
    // The connection must be polled for the LISTEN below to be sent at all.
    let driver = tokio::spawn(async move {
        let result = loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let notice = ours.read(n.payload());
                    if let Some(purges) = notice.purges {
                        seen.purges.fetch_max(purges, Ordering::Relaxed);
                    }
                    if !notice.own {
                        forward.notify_one();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        };
        let _ = ended_tx.send(result);
    });
    client
        .batch_execute(&format!("LISTEN \"{}\"", channel.name))
        .await?;
    // Deletions committed before this connection listened (or while it was away). Read
    // after LISTEN took effect, so none falls between. The comment names the channel in
    // `pg_stat_activity`, as the LISTEN before it did.
    let purges = client
        .query_one(
            &format!(
                "SELECT purges FROM feed_head WHERE id = 1 /* {} */",
                channel.name
            ),
            &[],
        )
        .await?;
    signals
        .purges
        .fetch_max(purges.get::<_, i64>(0).unsigned_abs(), Ordering::Relaxed);
    signals.listening.store(true, Ordering::Relaxed);
    if reconnecting {
        gaps.fetch_add(1, Ordering::Relaxed);
    }
    // Anything committed while nobody listened is read now.
    signals.wake.notify_one();
    let result = loop {
        tokio::select! {
            () = wake.notified() => signals.wake.notify_one(),
            ended = &mut ended => break ended.unwrap_or(Ok(())),
        }
    };
    driver.abort();
    drop(client);
    result
}

#[cfg(test)]
mod tests {
    use super::{Channel, Notice};

    #[test]
    fn notices_tell_their_origin_and_the_count_of_deletions() {
        let (ours, theirs) = (Channel::new("public"), Channel::new("public"));
        assert_eq!(ours.name, theirs.name);
        let notice = |own, purges| Notice { own, purges };
        assert_eq!(
            ours.read(&format!("42 {} 3", ours.origin)),
            notice(true, Some(3))
        );
        assert_eq!(
            ours.read(&format!("42 {} 0", theirs.origin)),
            notice(false, Some(0))
        );
        // Older releases' notices: another process's, without a count.
        assert_eq!(
            ours.read(&format!("42 {}", theirs.origin)),
            notice(false, None)
        );
        assert_eq!(ours.read("42"), notice(false, None));
    }
}
