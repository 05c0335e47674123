//! Worker leases (docs/live-operations.md) as pure rules. A worker claims an operation, which moves it
//! to `running` and hands the worker a secret token; while the lease lasts, changes to
//! the operation need that token, and heartbeats push the expiry back. A lease that runs
//! out turns the operation `unknown` with a message naming the worker, so a reconciler
//! can find it and settle it.
//!
//! A lease exists only while its operation is `running`: any change that leaves
//! `running` (done, failed, unknown) ends it. The store keeps a hash of the token, never
//! the token, so these rules compare hashes.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Kind, Patch, Status, ValidationError, validate};

/// Shortest lease a worker may ask for.
pub const MIN_LEASE: Duration = Duration::from_secs(1);
/// Longest lease a worker may ask for; longer work heartbeats.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);
/// Most kinds one claim may name.
pub const MAX_CLAIM_KINDS: usize = 16;

/// What a worker asks for when it claims work.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    /// Only this project's operations; `None` for any project.
    pub project_id: Option<String>,
    /// Only these kinds; empty for any kind.
    pub kinds: Vec<Kind>,
    /// Which statuses to claim from: `pending` (workers) and/or `unknown` (reconcilers).
    pub statuses: Vec<Status>,
    /// How long the lease lasts without a heartbeat.
    pub lease: Duration,
    /// Who is claiming; named in the expiry message.
    pub worker: String,
}

impl ClaimRequest {
    /// Checks the request on its own.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(p) = &self.project_id {
            validate::project_id("project_id", p)?;
        }
        if self.kinds.len() > MAX_CLAIM_KINDS {
            return Err(ValidationError::new(
                "kinds",
                format!("must name at most {MAX_CLAIM_KINDS} kinds"),
            ));
        }
        if self.statuses.is_empty() {
            return Err(ValidationError::new("statuses", "must not be empty"));
        }
        if let Some(s) = self.statuses.iter().find(|s| !is_claimable(**s)) {
            return Err(ValidationError::new(
                "statuses",
                format!("'{s}' cannot be claimed; only pending and unknown can"),
            ));
        }
        if !(MIN_LEASE..=MAX_LEASE).contains(&self.lease) {
            return Err(ValidationError::new(
                "lease_seconds",
                format!(
                    "must be from {} to {}",
                    MIN_LEASE.as_secs(),
                    MAX_LEASE.as_secs()
                ),
            ));
        }
        validate::worker("worker", &self.worker)
    }
}

/// Whether operations in `status` may be claimed: `pending` ones by workers, `unknown`
/// ones by reconcilers. Both may move to `running`.
pub fn is_claimable(status: Status) -> bool {
    matches!(status, Status::Pending | Status::Unknown)
}

/// A lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    /// Hash of the token the worker was given.
    pub token_hash: String,
    /// The worker holding it.
    pub worker: String,
    /// When it runs out unless renewed.
    pub expires_at: OffsetDateTime,
    /// How far each heartbeat pushes the expiry.
    pub duration: Duration,
}

impl HeldLease {
    /// The lease a claim at `now` grants.
    pub fn grant(
        token_hash: String,
        worker: String,
        duration: Duration,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            token_hash,
            worker,
            expires_at: now + duration,
            duration,
        }
    }

    /// The same lease renewed by a heartbeat at `now`.
    pub fn renewed(&self, now: OffsetDateTime) -> Self {
        Self {
            expires_at: now + self.duration,
            ..self.clone()
        }
    }

    /// Whether the lease has run out at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }
}

/// Why a lease-guarded change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The operation is leased and the request carries no token.
    #[error("operation is leased by worker \"{worker}\"; send its lease_token")]
    Required {
        /// The holder.
        worker: String,
    },
    /// The token is not the one the operation is leased with.
    #[error("lease_token does not match the operation's lease")]
    Mismatch,
    /// A token was sent but the operation holds no lease (it expired and was reaped, or
    /// the operation has left `running`).
    #[error("operation holds no lease; it may have expired")]
    NotHeld,
    /// The token matches but the lease has run out.
    #[error("lease of worker \"{worker}\" expired at {expired_at}")]
    Expired {
        /// The holder.
        worker: String,
        /// When it ran out (RFC 3339).
        expired_at: String,
    },
}

/// Whether a request carrying `given_hash` (the hash of its token, if any) may change an
/// operation holding `held` at `now`. Without a lease anyone may change it; with one,
/// only the holder, and only until it runs out.
pub fn authorize(
    held: Option<&HeldLease>,
    given_hash: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), LeaseError> {
    match (held, given_hash) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(LeaseError::NotHeld),
        (Some(h), None) => Err(LeaseError::Required {
            worker: h.worker.clone(),
        }),
        (Some(h), Some(g)) if g != h.token_hash => Err(LeaseError::Mismatch),
        (Some(h), Some(_)) if h.is_expired(now) => Err(LeaseError::Expired {
            worker: h.worker.clone(),
            expired_at: rfc3339(h.expires_at),
        }),
        (Some(_), Some(_)) => Ok(()),
    }
}

/// Whether a lease survives a change that leaves the operation in `status`.
pub fn survives(status: Status) -> bool {
    status == Status::Running
}

/// The change a claim makes: to `running`, saying who took it.
pub fn claim_patch(worker: &str) -> Patch {
    Patch {
        status: Some(Status::Running),
        status_message: Some(format!("claimed by worker \"{worker}\"")),
        ..Patch::default()
    }
}

/// The status message of an operation whose lease ran out.
pub fn expiry_message(worker: &str, expired_at: OffsetDateTime) -> String {
    format!(
        "worker \"{worker}\" stopped heartbeating; lease expired at {}",
        rfc3339(expired_at)
    )
}

/// The change an expired lease makes: to `unknown`, saying whose lease ran out and when.
pub fn expiry_patch(lease: &HeldLease) -> Patch {
    Patch {
        status: Some(Status::Unknown),
        status_message: Some(expiry_message(&lease.worker, lease.expires_at)),
        ..Patch::default()
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn lease() -> HeldLease {
        HeldLease::grant(
            "h1".into(),
            "w1".into(),
            Duration::from_secs(30),
            datetime!(2026-01-01 00:00 UTC),
        )
    }

    fn claim() -> ClaimRequest {
        ClaimRequest {
            project_id: Some("p".into()),
            kinds: vec![Kind::Vm],
            statuses: vec![Status::Pending],
            lease: Duration::from_secs(30),
            worker: "w1".into(),
        }
    }

    #[test]
    fn grant_and_renew() {
        let l = lease();
        assert_eq!(l.expires_at, datetime!(2026-01-01 00:00:30 UTC));
        let r = l.renewed(datetime!(2026-01-01 00:00:20 UTC));
        assert_eq!(r.expires_at, datetime!(2026-01-01 00:00:50 UTC));
        assert_eq!((&r.token_hash, &r.worker), (&l.token_hash, &l.worker));
        assert!(!l.is_expired(datetime!(2026-01-01 00:00:29 UTC)));
        assert!(l.is_expired(datetime!(2026-01-01 00:00:30 UTC)));
    }

    #[test]
    fn authorize_every_case() {
        let l = lease();
        let before = datetime!(2026-01-01 00:00:10 UTC);
        let after = datetime!(2026-01-01 00:01 UTC);
        assert_eq!(authorize(None, None, before), Ok(()));
        assert_eq!(
            authorize(None, Some("h1"), before),
            Err(LeaseError::NotHeld)
        );
        assert_eq!(
            authorize(Some(&l), None, before),
            Err(LeaseError::Required {
                worker: "w1".into()
            })
        );
        assert_eq!(
            authorize(Some(&l), Some("h2"), before),
            Err(LeaseError::Mismatch)
        );
        assert_eq!(authorize(Some(&l), Some("h1"), before), Ok(()));
        assert_eq!(
            authorize(Some(&l), Some("h1"), after),
            Err(LeaseError::Expired {
                worker: "w1".into(),
                expired_at: "2026-01-01T00:00:30Z".into()
            })
        );
        // A wrong token is a mismatch even after expiry: it never held the lease.
        assert_eq!(
            authorize(Some(&l), Some("h2"), after),
            Err(LeaseError::Mismatch)
        );
    }

    #[test]
    fn expiry_names_the_worker_and_the_time() {
        let p = expiry_patch(&lease());
        assert_eq!(p.status, Some(Status::Unknown));
        assert_eq!(
            p.status_message.as_deref(),
            Some("worker \"w1\" stopped heartbeating; lease expired at 2026-01-01T00:00:30Z")
        );
        let c = claim_patch("w1");
        assert_eq!(c.status, Some(Status::Running));
        assert_eq!(
            c.status_message.as_deref(),
            Some("claimed by worker \"w1\"")
        );
    }

    #[test]
    fn leases_live_only_while_running() {
        for &s in Status::ALL {
            assert_eq!(survives(s), s == Status::Running, "{s}");
            assert_eq!(
                is_claimable(s),
                matches!(s, Status::Pending | Status::Unknown),
                "{s}"
            );
        }
    }

    #[test]
    fn claim_validation() {
        assert_eq!(claim().validate(), Ok(()));
        let field = |c: ClaimRequest| c.validate().map_err(|e| e.field);
        let mut c = claim();
        c.statuses = vec![Status::Running];
        assert_eq!(field(c), Err("statuses".into()));
        let mut c = claim();
        c.statuses = vec![];
        assert_eq!(field(c), Err("statuses".into()));
        let mut c = claim();
        c.statuses = vec![Status::Unknown, Status::Pending];
        assert_eq!(field(c), Ok(()));
        for secs in [0, 3601] {
            let mut c = claim();
            c.lease = Duration::from_secs(secs);
            assert_eq!(field(c), Err("lease_seconds".into()));
        }
        let mut c = claim();
        c.worker = "has space".into();
        assert_eq!(field(c), Err("worker".into()));
        let mut c = claim();
        c.worker = String::new();
        assert_eq!(field(c), Err("worker".into()));
        let mut c = claim();
        c.project_id = Some("bad project".into());
        assert_eq!(field(c), Err("project_id".into()));
        let mut c = claim();
        c.project_id = None;
        c.kinds = vec![Kind::Vm; MAX_CLAIM_KINDS + 1];
        assert_eq!(field(c), Err("kinds".into()));
    }
}
