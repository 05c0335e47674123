//! The suite every storage backend must pass: everything goes through the `Store`
//! trait, against the backend `OPSD_TEST_STORE` names (`sqlite`, the default, or
//! `postgres` with `OPSD_TEST_DATABASE_URL`; `scripts/test` runs both).
//!
//! - `story`: one operation's life (create, idempotency, updates, events, persistence)
//!   and every list filter and sort checked against the in-memory model.
//! - `concurrency`: writes racing each other through the group-commit writer.
//! - `google_filter`: Google filters in SQL select what they select in memory.
//! - `pagination`: a property test walking cursors both ways over random data.
//! - `stats`: the project picture (percentiles, long runs, expiring leases) and console
//!   sessions.

#![allow(clippy::unwrap_used)]

mod cancel;
mod concurrency;
mod creation_order;
mod creation_row;
mod delete;
mod feed_across;
mod google_filter;
mod history;
mod list_plans;
mod live;
mod migrations;
mod ordering;
mod pagination;
mod round_trips;
mod stats;
mod story;
mod support;
mod trace_context;
mod two_writers;
