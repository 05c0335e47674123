//! The lease reaper: turns operations whose lease ran out `unknown`. It sleeps until the
//! earliest expiry (read from the store's index) or one second, whichever is sooner, so
//! an expired lease is reaped within about a second — and a lease claimed while it
//! sleeps is noticed on the next tick. It writes only when a lease is actually due.

use std::sync::Arc;
use std::time::Duration;

use opsd_store::Store;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Longest sleep between looks at the earliest expiry.
const TICK: Duration = Duration::from_secs(1);
/// Leases reaped per write.
const BATCH: usize = 500;

/// The lease expiry task's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "lease-expiry";

/// Runs until `stop` turns true.
pub async fn run(store: Arc<dyn Store>, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        let pause = match store.next_lease_expiry().await {
            // Look again at once after a successful reap; after a failure, wait a tick
            // rather than hammer a failing store.
            Ok(Some(at)) if at <= OffsetDateTime::now_utc() => {
                if reap(&*store, &metrics).await {
                    Duration::ZERO
                } else {
                    TICK
                }
            }
            Ok(Some(at)) => (at - OffsetDateTime::now_utc())
                .try_into()
                .unwrap_or(TICK)
                .min(TICK),
            Ok(None) => TICK,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next lease expiry");
                TICK
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = super::stopping(&mut stop) => return,
        }
    }
}

/// Reaps every lease that is due; `false` if the store failed.
async fn reap(store: &dyn Store, metrics: &Metrics) -> bool {
    // Bounded: each round reaps up to BATCH; stop early when a round finds fewer.
    for _ in 0..1000 {
        match store.expire_leases(BATCH).await {
            Ok(expired) => {
                for op in &expired {
                    tracing::info!(
                        operation_id = %op.id,
                        message = op.status_message.as_deref().unwrap_or_default(),
                        "lease expired; operation is now unknown"
                    );
                }
                metrics.lease_expirations.inc_by(expired.len() as u64);
                if expired.len() < BATCH {
                    return true;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease expiry failed; retrying on the next tick");
                return false;
            }
        }
    }
    true
}
