//! Storage integration tests: everything goes through the `Store` trait, so the same
//! suite can later run against PostgreSQL (select the backend with `OPSD_TEST_STORE`).
//!
//! - `story`: one operation's life (create, idempotency, updates, events, persistence)
//!   and every list filter and sort checked against the in-memory model.
//! - `concurrency`: writes racing each other through the group-commit writer.
//! - `google_filter`: Google filters in SQL select what they select in memory.
//! - `pagination`: a property test walking cursors both ways over random data.
//! - `stats`: the project picture (percentiles, long runs, expiring leases) and console
//!   sessions.

#![allow(clippy::unwrap_used)]

mod concurrency;
mod google_filter;
mod live;
mod pagination;
mod stats;
mod story;
mod support;
