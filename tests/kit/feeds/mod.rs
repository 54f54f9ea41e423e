//! Fakes of the remote feeds issue 22's sources read: real servers on
//! 127.0.0.1, port 0, each speaking its service's documented shape and
//! controlled from a test. They depend on nothing of the daemon: the
//! lib's own tests of the feed clients include them by path
//! (`src/bot/intake/feed_tests/`), as the test targets do through the kit.
//!
//! - [`rtds`]: Polymarket's real-time data service over WebSocket (plain
//!   or TLS), with its bad days;
//! - [`fast`]: a WebSocket server that is never the limit, for figures;
//! - [`paged`]: a cursor-paged HTTP message list, Whop-like.

pub mod fast;
mod listener;
pub mod paged;
pub mod rtds;
mod watched;
