//! Several `opsd serve` processes on one PostgreSQL database behave, to every client, like
//! one opsd: live operations across processes, claims and leases, and the faults an
//! operator meets (a replica killed, the database restarted, a key revoked).
//!
//! Real binaries, each with its own data directory, all on one database: a fresh schema of
//! the suite's cluster per test, or a private cluster for the test that restarts it.
//! PostgreSQL only: on SQLite every process has its own database, so each test returns
//! early with a message unless `OPSD_TEST_STORE=postgres` (the second half of
//! `scripts/test`).

mod claims;
pub(crate) mod cluster;
mod faults;
mod keys;
mod live;
mod load;
mod network;
pub(crate) mod pg_restart;
pub(crate) mod sse;
