//! End-to-end tests of the real `opsd` binary.
#![allow(clippy::unwrap_used)]

mod cli;
mod durability;
mod keys;
mod process;
mod tls;
