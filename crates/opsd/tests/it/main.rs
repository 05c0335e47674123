//! End-to-end tests of the real `opsd` binary.
#![allow(clippy::unwrap_used)]

mod backup;
mod cli;
mod copy;
mod crash_loop;
mod database_url;
mod disk_full;
mod durability;
mod history;
mod keys;
mod process;
mod replicas;
mod supervision;
mod tls;
mod traces;
