//! End-to-end tests of the real `opsd` binary.
#![allow(clippy::unwrap_used)]

mod cli;
mod database_url;
mod durability;
mod keys;
mod process;
mod replicas;
mod tls;
