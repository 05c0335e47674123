//! Cancellation (as google.longrunning's `CancelOperation`): a request to stop an
//! operation, not a guarantee that it stops.
//!
//! - `pending`: nobody works on it yet, so it becomes `failed` with error code
//!   [`CANCELLED`] at once.
//! - `running` / `unknown`: a worker (or a reconciler) owns the outcome, so the operation
//!   only gets `cancel_requested: true` and the message [`REQUESTED_MESSAGE`]; the worker
//!   sees the flag in its heartbeat answers and ends the operation — `failed` with
//!   `CANCELLED`, or `done` if the work finished first.
//! - `done` / `failed`: nothing left to cancel ([`ChangeError::AlreadyFinished`]).
//!
//! Asking twice is harmless: a second request for an operation already flagged changes
//! nothing (no new version, no event).

use time::OffsetDateTime;

use crate::{ChangeError, ErrorItem, Operation, OperationError, Patch, Status, state_machine};

/// The error code of an operation that stopped because it was cancelled.
pub const CANCELLED: &str = "CANCELLED";

/// The status message a cancellation request leaves on a running or unknown operation.
pub const REQUESTED_MESSAGE: &str = "cancellation requested";

/// The error a cancelled operation fails with; `message` says who or what stopped it.
pub fn cancelled_error(message: impl Into<String>) -> OperationError {
    OperationError {
        errors: vec![ErrorItem {
            code: CANCELLED.into(),
            message: message.into(),
            location: None,
        }],
    }
}

/// The next version of `current` after a cancellation request at `now`, or `None` when
/// the request changes nothing (cancellation already requested).
pub fn cancel(current: &Operation, now: OffsetDateTime) -> Result<Option<Operation>, ChangeError> {
    match current.status {
        Status::Done | Status::Failed => Err(ChangeError::AlreadyFinished {
            status: current.status,
        }),
        Status::Pending => {
            let patch = Patch {
                status: Some(Status::Failed),
                status_message: Some("cancelled before it started".into()),
                error: Some(cancelled_error(
                    "the operation was cancelled before it started",
                )),
                ..Patch::default()
            };
            let mut next = state_machine::apply(current, &patch, now)?;
            next.cancel_requested = true;
            Ok(Some(next))
        }
        Status::Running | Status::Unknown if current.cancel_requested => Ok(None),
        Status::Running | Status::Unknown => {
            let mut next = current.clone();
            next.cancel_requested = true;
            next.status_message = Some(REQUESTED_MESSAGE.into());
            next.updated_at = now.max(current.updated_at);
            next.version = current.version + 1;
            Ok(Some(next))
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::state_machine::tests::op;

    const NOW: OffsetDateTime = datetime!(2026-01-02 00:00 UTC);

    #[test]
    fn every_status_has_its_rule() {
        for &status in Status::ALL {
            let current = op(status);
            let result = cancel(&current, NOW);
            match status {
                Status::Pending => {
                    let next = result.expect("pending cancels").expect("a change");
                    assert_eq!(next.status, Status::Failed);
                    let error = next.error.expect("an error");
                    assert_eq!(error.errors[0].code, CANCELLED);
                    assert!(next.cancel_requested);
                    assert_eq!(next.ended_at, Some(NOW));
                    assert_eq!(next.version, current.version + 1);
                }
                Status::Running | Status::Unknown => {
                    let next = result.expect("accepted").expect("a change");
                    assert_eq!(next.status, status, "the status is the worker's to change");
                    assert!(next.cancel_requested);
                    assert_eq!(next.status_message.as_deref(), Some(REQUESTED_MESSAGE));
                    assert_eq!(next.progress, current.progress);
                    assert_eq!(next.error, None);
                    assert_eq!(next.ended_at, None);
                    assert_eq!(next.updated_at, NOW);
                    assert_eq!(next.version, current.version + 1);
                }
                Status::Done | Status::Failed => {
                    assert_eq!(result, Err(ChangeError::AlreadyFinished { status }));
                }
            }
        }
    }

    #[test]
    fn asking_twice_changes_nothing() {
        for status in [Status::Running, Status::Unknown] {
            let first = cancel(&op(status), NOW)
                .expect("accepted")
                .expect("a change");
            assert_eq!(cancel(&first, NOW), Ok(None));
        }
    }

    #[test]
    fn a_flagged_operation_can_still_finish_either_way() {
        let flagged = cancel(&op(Status::Running), NOW)
            .expect("accepted")
            .expect("a change");
        let done = Patch {
            status: Some(Status::Done),
            ..Patch::default()
        };
        assert_eq!(
            state_machine::apply(&flagged, &done, NOW).map(|o| o.status),
            Ok(Status::Done)
        );
        let failed = Patch {
            status: Some(Status::Failed),
            error: Some(cancelled_error("stopped by the worker")),
            ..Patch::default()
        };
        let next = state_machine::apply(&flagged, &failed, NOW).expect("failed");
        assert_eq!(next.status, Status::Failed);
        assert!(
            next.cancel_requested,
            "the flag stays as a record of the request"
        );
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut current = op(Status::Running);
        current.updated_at = datetime!(2026-01-03 00:00 UTC);
        let next = cancel(&current, NOW).expect("ok").expect("a change");
        assert_eq!(next.updated_at, current.updated_at);
    }
}
