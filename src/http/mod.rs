//! The one port (DESIGN.md, "One port"): the bounded HTTP/1 server, on a
//! thread of its own, and the routes it serves.

pub mod server;
