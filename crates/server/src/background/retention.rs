//! Retention: every few seconds, delete terminal operations that ended more than the
//! retention period ago, in batches of a few hundred. Each batch is one job in the
//! writer's queue, so producers' writes interleave with it and never wait long.
//!
//! Deletions are not changes in the feed, so the read cache cannot learn of them from
//! it: a batch that deleted something empties this process's cache, or a GET could
//! answer a deleted operation from memory.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::Handles;

/// Operations deleted per write.
pub const BATCH: usize = 500;

/// How often retention looks: a tenth of the period, between 1 s and 1 min.
pub fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The retention task's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "retention";

/// Runs until `stop` turns true.
pub async fn run(server: Handles, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        purge(&server, retention, &stop).await;
        tokio::select! {
            () = tokio::time::sleep(interval(retention)) => {}
            () = super::stopping(&mut stop) => return,
        }
    }
}

async fn purge(server: &Handles, retention: Duration, stop: &watch::Receiver<bool>) {
    // A read-only server is being copied: deletions now would be missed by the copy.
    if server.read_only.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    // A period longer than the calendar reaches (`--retention 100000y`) keeps everything.
    let Some(before) =
        OffsetDateTime::now_utc().checked_sub(retention.try_into().unwrap_or(time::Duration::MAX))
    else {
        return;
    };
    // Bounded per pass; whatever is left waits for the next pass.
    for _ in 0..200 {
        if *stop.borrow() {
            return;
        }
        match server.store.purge_terminal(before, BATCH).await {
            Ok(deleted) => {
                server.metrics.retention_deleted.inc_by(deleted);
                if deleted > 0 {
                    server.reads.forget_everything();
                    tracing::info!(deleted, "retention deleted terminal operations");
                }
                if deleted < BATCH as u64 {
                    return;
                }
                // Let queued producer writes go first.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention failed; retrying on the next pass");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_tenth_of_the_period_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(interval(s(3)), s(1));
        assert_eq!(interval(s(300)), s(30));
        assert_eq!(interval(s(30 * 24 * 3600)), s(60));
    }
}
