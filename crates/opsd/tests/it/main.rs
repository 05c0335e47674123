//! End-to-end tests of the real `opsd` binary.
#![allow(clippy::unwrap_used)]

mod crash_loop;
mod disk_full;
mod durability;
mod keys;
mod process;
mod tls;
