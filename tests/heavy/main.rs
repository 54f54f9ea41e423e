//! The heavy suites, each driving the real `tradingbot` binary: packaging
//! (the unit under a booted systemd, the container image under podman, the
//! .deb installed with apt), HTTP floods, and kill storms (the ledger's
//! across segment rolls and snapshots among them). Each takes many
//! seconds, and some need root and system tools (.ci/install-system-deps).
//! The target requires the `failpoints` feature (the unit and container
//! tests stall the daemon with fail points), so a plain `cargo test` leaves
//! it out; `cargo test --features failpoints` and `.ci/run` run it, and
//! alone:
//!
//!     cargo test --features failpoints --test heavy

// Only part of the core kit is used here; the `integration` target compiles
// all of it with the dead-code lint on, so a helper nobody uses still fails
// the lint there.
#[path = "../kit/browser.rs"]
mod browser;
#[allow(dead_code)]
#[path = "../kit/mod.rs"]
mod kit;
#[path = "../kit/packaging/mod.rs"]
mod packaging;
#[path = "../kit/storm/mod.rs"]
mod storm;

mod abuse_http;
mod bot_crash;
mod feeds;
mod hardening_process;
mod hardening_webhook;
mod ledger_storm;
mod packaging_container;
mod packaging_deb;
mod packaging_systemd;
mod web_browser;
mod web_packaging;
