//! What a handler gets ([`Task`]) and returns ([`TaskError`]).

use std::fmt;

use tokio::sync::watch;

use crate::Operation;

/// The latest progress a handler reported, sent with the next heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Progress {
    pub percent: u8,
    pub message: Option<String>,
    /// Bumped on every report, so that the same values reported twice still count.
    pub serial: u64,
}

/// One claimed operation, handed to the handler.
pub struct Task {
    pub(crate) operation: Operation,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) cancelled: watch::Receiver<bool>,
}

impl Task {
    /// The operation as claimed (status `running`).
    pub fn operation(&self) -> &Operation {
        &self.operation
    }

    /// Reports progress (0–100, never lower than before: lower values are raised to
    /// the last one) and a status message; the worker sends it at once with a
    /// heartbeat.
    pub fn progress(&self, percent: u8, message: impl Into<String>) {
        let message = message.into();
        self.progress.send_modify(|p| {
            p.percent = percent.min(100).max(p.percent);
            p.message = Some(message);
            p.serial += 1;
        });
    }

    /// Whether someone asked to cancel the operation. The worker stops the handler by
    /// itself (it drops the handler's future at its next `.await`); this is for work
    /// that runs long stretches without awaiting.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }
}

/// Why a handler failed: recorded as the operation's error (`{code, message}`).
///
/// Any error type converts into it with `?` (code `HANDLER_FAILED`, message from its
/// `Display`); [`TaskError::new`] picks the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// Machine-readable code recorded on the operation, e.g. `QUOTA_EXCEEDED`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl TaskError {
    /// An error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(e: E) -> Self {
        TaskError::new("HANDLER_FAILED", e.to_string())
    }
}
