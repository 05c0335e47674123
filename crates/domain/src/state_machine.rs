//! The operation life cycle (docs/api.md, "The rules a producer meets") as pure functions:
//!
//! ```text
//! pending → running | done | failed | unknown
//! running → running (progress/message) | done | failed | unknown
//! unknown → running | done | failed
//! done, failed: terminal — no further change is accepted
//! ```
//!
//! `apply` turns a validated [`Patch`] into the next version of an operation, enforcing
//! the transition table and the field rules that go with it (progress never decreases,
//! `done` sets progress 100, `failed` needs an error, start/end timestamps, version+1).

use time::OffsetDateTime;

use crate::{ChangeError, Operation, OperationError, Status, ValidationError, Warning, validate};

/// Whether the state machine allows `from → to`. A PATCH that names no status asks for
/// `from → from`, which only `running` allows.
pub fn can_transition(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Pending, Running | Done | Failed | Unknown)
            | (Running, Running | Done | Failed | Unknown)
            | (Unknown, Running | Done | Failed)
    )
}

/// A requested change to an operation; every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    /// New status; absent keeps the current one.
    pub status: Option<Status>,
    /// New progress, 0–100.
    pub progress: Option<u8>,
    /// New status message.
    pub status_message: Option<String>,
    /// Errors; only with `failed`.
    pub error: Option<OperationError>,
    /// Warnings to append.
    pub warnings: Vec<Warning>,
    /// HTTP status of the failure; only with `failed`.
    pub http_error_status_code: Option<u16>,
    /// HTTP message of the failure; only with `failed`.
    pub http_error_message: Option<String>,
}

impl Patch {
    /// Checks the patch on its own (limits, value ranges), before looking at any state.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(p) = self.progress
            && p > 100
        {
            return Err(ValidationError::new(
                "progress",
                "must be between 0 and 100",
            ));
        }
        validate::opt_text(
            "status_message",
            self.status_message.as_deref(),
            validate::MAX_TEXT_LEN,
        )?;
        if let Some(e) = &self.error {
            validate::operation_error(e)?;
        }
        validate::warnings(&self.warnings)?;
        if let Some(code) = self.http_error_status_code
            && !(400..=599).contains(&code)
        {
            return Err(ValidationError::new(
                "http_error_status_code",
                "must be an HTTP error status between 400 and 599",
            ));
        }
        validate::opt_text(
            "http_error_message",
            self.http_error_message.as_deref(),
            validate::MAX_TEXT_LEN,
        )
    }
}

/// Applies `patch` to `current` at time `now`, returning the next version.
pub fn apply(
    current: &Operation,
    patch: &Patch,
    now: OffsetDateTime,
) -> Result<Operation, ChangeError> {
    patch.validate()?;
    let from = current.status;
    let to = patch.status.unwrap_or(from);
    if !can_transition(from, to) {
        return Err(ChangeError::Transition { from, to });
    }
    if to != Status::Failed {
        for (given, field) in [
            (patch.error.is_some(), "error"),
            (
                patch.http_error_status_code.is_some(),
                "http_error_status_code",
            ),
            (patch.http_error_message.is_some(), "http_error_message"),
        ] {
            if given {
                return Err(
                    ValidationError::new(field, "is only accepted with status failed").into(),
                );
            }
        }
    }
    if to == Status::Failed && patch.error.is_none() && current.error.is_none() {
        return Err(ValidationError::new("error", "is required when status is failed").into());
    }
    if current.warnings.len() + patch.warnings.len() > validate::MAX_TOTAL_WARNINGS {
        return Err(ValidationError::new(
            "warnings",
            format!(
                "an operation holds at most {} warnings",
                validate::MAX_TOTAL_WARNINGS
            ),
        )
        .into());
    }

    let mut next = current.clone();
    if let Some(requested) = patch.progress {
        if requested < current.progress {
            return Err(ChangeError::ProgressDecrease {
                current: current.progress,
                requested,
            });
        }
        next.progress = requested;
    }
    if to == Status::Done {
        next.progress = 100;
    }
    if let Some(m) = &patch.status_message {
        next.status_message = Some(m.clone());
    }
    if let Some(e) = &patch.error {
        next.error = Some(e.clone());
    }
    next.warnings.extend(patch.warnings.iter().cloned());
    if patch.http_error_status_code.is_some() {
        next.http_error_status_code = patch.http_error_status_code;
    }
    if patch.http_error_message.is_some() {
        next.http_error_message
            .clone_from(&patch.http_error_message);
    }
    if to == Status::Running && next.started_at.is_none() {
        next.started_at = Some(now);
    }
    if to.is_terminal() {
        next.ended_at = Some(now);
    }
    next.status = to;
    next.updated_at = now.max(current.updated_at);
    next.version = current.version + 1;
    Ok(next)
}

#[cfg(test)]
pub(crate) mod tests;
