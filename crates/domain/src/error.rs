//! Domain errors: what a request did wrong, stated so a caller can fix it.

/// A request field broke a rule. `field` is the JSON path or query parameter name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Path of the offending field, e.g. `details.changes.size.to`.
    pub field: String,
    /// The rule it broke.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field` stating `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a change to an existing operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The request itself is malformed.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The state machine forbids this transition.
    #[error("operation cannot move from {from} to {to}")]
    Transition {
        /// Current status.
        from: crate::Status,
        /// Requested status.
        to: crate::Status,
    },
    /// Progress may never go down.
    #[error("progress cannot decrease from {current} to {requested}")]
    ProgressDecrease {
        /// Current progress.
        current: u8,
        /// Requested progress.
        requested: u8,
    },
    /// Only unfinished operations can be cancelled.
    #[error(
        "operation is already {status}: only pending, running or unknown operations can be cancelled"
    )]
    AlreadyFinished {
        /// The operation's terminal status.
        status: crate::Status,
    },
    /// Only finished operations can be deleted.
    #[error("operation is {status}: only a done or failed operation can be deleted")]
    NotFinished {
        /// The operation's current status.
        status: crate::Status,
    },
}

/// Whether an operation in `status` may be deleted (by retention or on request): only a
/// finished one, whose history no worker will extend.
pub fn check_deletable(status: crate::Status) -> Result<(), ChangeError> {
    if status.is_terminal() {
        Ok(())
    } else {
        Err(ChangeError::NotFinished { status })
    }
}
