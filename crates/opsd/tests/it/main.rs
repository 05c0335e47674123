//! End-to-end tests of the real `opsd` binary.
#![allow(clippy::unwrap_used)]

mod durability;
mod keys;
mod process;
mod replicas;
mod tls;
