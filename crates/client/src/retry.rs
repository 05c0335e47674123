//! When and how long to retry. The rules follow the Stainless-generated Nirvana SDKs,
//! which opsd's error headers are made for:
//!
//! - never when the answer carries `x-should-retry: false` (the server knows a retry
//!   cannot help: a 409, a 400…), always when it carries `x-should-retry: true`;
//! - otherwise on 408, 429, 502, 503 and 504, waiting what `Retry-After` says (up to
//!   [`MAX_RETRY_AFTER`]) or an exponential backoff with jitter;
//! - on connection failures (nothing was sent, or the connection broke before an
//!   answer): a request that is safe to repeat is retried; a claim is not retried after
//!   the request may have reached the server, since a repeated claim would take a
//!   second operation whose lease nobody would hold.

use std::time::Duration;

use crate::error::{ApiError, Error};

/// The longest `Retry-After` honoured; a server asking for more gets the error instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How a client retries.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retries).
    pub max_retries: u32,
    /// First backoff; doubles per attempt.
    pub initial_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// Whether a request may be repeated after a failure that may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Repeating it has the same effect as sending it once (GET, create with a
    /// request_id, heartbeat, cancel, PATCH with If-Match…).
    Safe,
    /// Only retried when the server certainly did not act on it.
    Unsafe,
}

impl RetryPolicy {
    /// The backoff before retry number `attempt` (0-based), with ±25% jitter.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_backoff);
        base.mul_f64(0.75 + 0.5 * jitter())
    }

    /// How long to wait before retrying after `error`, or `None` to give up.
    pub(crate) fn delay(&self, error: &Error, attempt: u32, idem: Idempotency) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        match error {
            Error::Api(api) => api_delay(api).map(|d| d.unwrap_or_else(|| self.backoff(attempt))),
            Error::Connection(e) if e.is_connect() || idem == Idempotency::Safe => {
                Some(self.backoff(attempt))
            }
            Error::Timeout(_) if idem == Idempotency::Safe => Some(self.backoff(attempt)),
            _ => None,
        }
    }
}

/// `None`: do not retry; `Some(None)`: retry after the backoff; `Some(Some(d))`: after `d`.
fn api_delay(api: &ApiError) -> Option<Option<Duration>> {
    let retry = match api.should_retry {
        Some(said) => said,
        None => matches!(api.status, 408 | 429 | 502 | 503 | 504),
    };
    if !retry {
        return None;
    }
    match api.retry_after {
        Some(d) if d > MAX_RETRY_AFTER => None,
        Some(d) => Some(Some(d)),
        None => Some(None),
    }
}

/// A number in [0, 1) that differs between calls: the standard library's randomly keyed
/// hasher fed a counter, enough to spread retries apart without a random-number crate.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, should_retry: Option<bool>, retry_after: Option<u64>) -> Error {
        Error::Api(ApiError {
            status,
            code: "x".into(),
            message: "m".into(),
            field: None,
            request_id: None,
            retry_after: retry_after.map(Duration::from_secs),
            should_retry,
        })
    }

    #[test]
    fn statuses_that_are_retried() {
        let p = RetryPolicy::default();
        for status in [408, 429, 502, 503, 504] {
            assert!(
                p.delay(&api(status, None, None), 0, Idempotency::Unsafe)
                    .is_some()
            );
        }
        for status in [400, 401, 403, 404, 409, 412, 500] {
            assert!(
                p.delay(&api(status, None, None), 0, Idempotency::Safe)
                    .is_none()
            );
        }
    }

    #[test]
    fn the_server_has_the_last_word() {
        let p = RetryPolicy::default();
        assert!(
            p.delay(&api(503, Some(false), None), 0, Idempotency::Safe)
                .is_none()
        );
        assert!(
            p.delay(&api(409, Some(false), None), 0, Idempotency::Safe)
                .is_none()
        );
        assert!(
            p.delay(&api(500, Some(true), None), 0, Idempotency::Safe)
                .is_some()
        );
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let p = RetryPolicy::default();
        let d = p.delay(&api(429, None, Some(3)), 0, Idempotency::Safe);
        assert_eq!(d, Some(Duration::from_secs(3)));
        assert_eq!(
            p.delay(&api(429, None, Some(3600)), 0, Idempotency::Safe),
            None
        );
    }

    #[test]
    fn attempts_are_bounded_and_backoff_grows() {
        let p = RetryPolicy::default();
        assert!(
            p.delay(&api(503, None, None), 3, Idempotency::Safe)
                .is_none()
        );
        assert!(p.backoff(0) <= Duration::from_millis(313));
        assert!(p.backoff(3) >= Duration::from_millis(1500));
        assert!(p.backoff(30) <= Duration::from_secs(10));
    }
}
