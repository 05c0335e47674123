//! Integration tests of opsd-client: the SDK and its `Worker` against a real opsd
//! server started in-process on a loopback port (`support`), and against tiny stub
//! servers for the failures a real server does not produce on demand (`stub`); and the
//! SDK's wire types against the server's OpenAPI document (`contract`).
#![allow(clippy::unwrap_used)]

mod contract;
mod retries;
mod sdk;
mod stub;
mod support;
mod trace;
mod watch;
mod worker;
