//! One claimed operation from start to finish: the handler runs in its own task while
//! this loop heartbeats the lease, forwards progress, watches for cancellation, lost
//! leases and shutdown, and writes the outcome.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opsd_domain::Status;
use opsd_domain::cancel::cancelled_error;
use tokio::sync::watch;
use tokio::time::Instant;

use super::task::Progress;
use super::{Task, TaskError, WorkerConfig};
use crate::{Client, Error, ErrorItem, Lease, OperationError, OperationPatch};

/// How one operation ended for this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Failed,
    Cancelled,
    Lost,
    Released,
}

/// Progress reports closer together than this share one heartbeat.
const PROGRESS_COALESCE: Duration = Duration::from_millis(200);

pub(crate) struct Driver {
    pub client: Client,
    pub config: Arc<WorkerConfig>,
    /// Turns true when shutdown's grace period is over.
    pub stop: watch::Receiver<bool>,
}

impl Driver {
    pub async fn run<F, Fut>(mut self, lease: Lease, handler: F) -> Outcome
    where
        F: FnOnce(Task) -> Fut,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let id = lease.operation.id;
        let token = lease.lease_token;
        // Heartbeats and the final update join the trace the operation was created in.
        if let Some(cx) = &lease.operation.trace_context {
            self.client = self.client.with_trace_context(cx.clone());
        }
        if lease.operation.cancel_requested {
            // Cancelled while it was unknown, then claimed again: nothing to run.
            return self.cancel(id, &token).await;
        }
        let lease_length = Duration::from_secs(self.config.lease_seconds());
        let beat_every = lease_length / 3;
        // Progress never goes down, also below what an earlier worker reported.
        let floor = Progress {
            percent: lease.operation.progress,
            ..Progress::default()
        };
        let (progress_tx, mut progress_rx) = watch::channel(floor);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let task = Task {
            operation: lease.operation,
            progress: progress_tx,
            cancelled: cancel_rx,
        };
        let mut work = tokio::spawn(handler(task));
        // By our own clock, so a clock difference with the server cannot make us late.
        let mut held_until = Instant::now() + lease_length;
        let mut next_beat = Instant::now() + beat_every;
        let mut sent_serial = 0;
        loop {
            tokio::select! {
                result = &mut work => {
                    // Progress reported just before the end is not lost: its message
                    // goes with the finishing write.
                    let last = progress_rx.borrow().clone();
                    let unsent = (last.serial != sent_serial).then_some(last.message).flatten();
                    return match result {
                        Ok(Ok(())) => self.finish(id, &token, None, unsent).await,
                        Ok(Err(e)) => self.finish(id, &token, Some(e), None).await,
                        Err(panic) => {
                            let e = TaskError::new("HANDLER_PANICKED", panic.to_string());
                            self.finish(id, &token, Some(e), None).await
                        }
                    };
                }
                () = tokio::time::sleep_until(next_beat) => {}
                Ok(()) = progress_rx.changed() => {
                    tokio::time::sleep(PROGRESS_COALESCE).await;
                }
                Ok(()) = self.stop.changed() => {
                    work.abort();
                    return self.release(id, &token).await;
                }
            }
            let progress = progress_rx.borrow_and_update().clone();
            let report = progress.serial != sent_serial;
            let sent_at = Instant::now();
            let beat = self
                .client
                .heartbeat(
                    id,
                    &token,
                    report.then_some(progress.percent),
                    if report {
                        progress.message.as_deref()
                    } else {
                        None
                    },
                )
                .await;
            match beat {
                Ok(renewed) => {
                    held_until = sent_at + lease_length;
                    next_beat = sent_at + beat_every;
                    sent_serial = progress.serial;
                    if renewed.operation.cancel_requested {
                        let _ = cancel_tx.send(true);
                        work.abort();
                        return self.cancel(id, &token).await;
                    }
                }
                Err(e) if lease_gone(&e) => {
                    tracing::warn!(operation = %id, error = %e, "lease lost; stopping the handler");
                    work.abort();
                    return Outcome::Lost;
                }
                Err(e) => {
                    tracing::warn!(operation = %id, error = %e, "heartbeat failed");
                    if Instant::now() >= held_until {
                        work.abort();
                        return Outcome::Lost;
                    }
                    next_beat = Instant::now() + beat_every.min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Writes the handler's outcome: `done` (with the last progress message not yet
    /// sent), or `failed` with its error.
    async fn finish(
        &self,
        id: uuid::Uuid,
        token: &str,
        error: Option<TaskError>,
        message: Option<String>,
    ) -> Outcome {
        let (patch, outcome) = match error {
            None => (
                OperationPatch {
                    status: Some(Status::Done),
                    status_message: message,
                    ..OperationPatch::default()
                },
                Outcome::Done,
            ),
            Some(e) => (
                OperationPatch {
                    status: Some(Status::Failed),
                    status_message: Some(e.message.clone()),
                    error: Some(OperationError {
                        errors: vec![ErrorItem {
                            code: e.code,
                            message: e.message,
                            location: None,
                        }],
                    }),
                    ..OperationPatch::default()
                },
                Outcome::Failed,
            ),
        };
        self.write(id, token, patch, outcome).await
    }

    /// Fails a cancelled operation with `CANCELLED`.
    async fn cancel(&self, id: uuid::Uuid, token: &str) -> Outcome {
        let who = &self.config.name;
        let patch = OperationPatch {
            status: Some(Status::Failed),
            status_message: Some(format!("cancelled; stopped by worker \"{who}\"")),
            error: Some(cancelled_error(format!(
                "cancelled on request; worker \"{who}\" stopped it"
            ))),
            ..OperationPatch::default()
        };
        self.write(id, token, patch, Outcome::Cancelled).await
    }

    /// Gives an unfinished operation back at shutdown: `unknown`, saying why.
    async fn release(&self, id: uuid::Uuid, token: &str) -> Outcome {
        let patch = OperationPatch {
            status: Some(Status::Unknown),
            status_message: Some(format!(
                "worker \"{}\" shut down before finishing",
                self.config.name
            )),
            ..OperationPatch::default()
        };
        self.write(id, token, patch, Outcome::Released).await
    }

    async fn write(
        &self,
        id: uuid::Uuid,
        token: &str,
        mut patch: OperationPatch,
        outcome: Outcome,
    ) -> Outcome {
        patch.lease_token = Some(token.to_owned());
        match self.client.update(id, &patch, None).await {
            Ok(_) => outcome,
            Err(e) => {
                tracing::warn!(operation = %id, error = %e, "cannot record the outcome");
                Outcome::Lost
            }
        }
    }
}

/// The server says the lease is no longer ours (expired, taken over, the operation
/// gone or finished by someone else).
fn lease_gone(e: &Error) -> bool {
    e.status() == Some(404) || e.code().is_some_and(|c| c.starts_with("lease_"))
}
