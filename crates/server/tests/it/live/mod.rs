//! Live operations end to end, through real HTTP against an in-process server
//! (`support::TestServer`): wait, watch, leases, retention and metrics.
//!
//! - `wait`: waiters are released by the write, read nothing while they wait, and a
//!   thousand of them cost one wake-up; timeouts, validation, shutdown.
//! - `watch`: the SSE stream, and a property test of resuming with `Last-Event-ID`
//!   across random disconnects against the store's history.
//! - `leases`: claim / heartbeat / PATCH with tokens, concurrent claimers, expiry.
//! - `operating`: retention in the background, `/metrics`, the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cancel;
mod leases;
mod operating;
mod support;
mod wait;
mod watch;
