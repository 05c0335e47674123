//! HTTP integration tests of opsd-server: each test starts a real server on a loopback
//! port over its own SQLite file (`support`) and talks to it with reqwest.
#![allow(clippy::unwrap_used)]

mod admin;
mod authz;
mod connections;
mod console;
mod contract;
mod errors;
mod fuzz;
mod grpc;
mod hostile;
mod list;
mod live;
mod operations;
mod overload;
mod pagination;
mod read_cache;
mod shutdown;
mod support;
mod system;
mod trace_context;
mod wire;
