//! The test kit: what the test targets and the bench harness share to run
//! the real `tradingbot` executable and talk to it the way its users do,
//! over TCP, a notify socket, signals and files. One file a concept.
//!
//! The `integration` target compiles all of it with the dead-code lint on,
//! so a helper no test uses fails `clippy -D warnings` there and is deleted;
//! the `heavy` target and the bench harness use part of it. What only the
//! `heavy` target needs is in `storm/` (a seeded RNG, the exactly-once
//! ledger check) and `packaging/` (podman, nspawn); `heavy` compiles those
//! with the lint on.

pub mod abuse;
pub mod daemon;
pub mod decimal;
// The lib's feed client tests (src/bot/intake/feed_tests/) use all of
// it, with the lint on; the daemon's (integration/feeds.rs) most of it,
// and the fast feed is the bench's.
#[allow(dead_code)]
pub mod feeds;
pub mod health_file;
pub mod http;
pub mod journal;
pub mod log;
pub mod needs;
pub mod notify;
pub mod port;
pub mod process;
pub mod shipped;
pub mod sources;
pub mod tls;
pub mod wait;
pub mod web;
pub mod webhook;
