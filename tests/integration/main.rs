//! The tests a developer runs all day (`cargo test`): each module drives the
//! real `tradingbot` binary against real sockets, files, signals and
//! processes, through the builder in `kit`. A test that needs fail points
//! (`FAILPOINTS`, a stall or a held init) is compiled only with
//! `--features failpoints`; the suites that take many seconds (packaging,
//! floods, kill storms) are the `heavy` target's.

#[path = "../kit/mod.rs"]
mod kit;

mod alerts;
mod alerts_fakes;
mod architecture;
mod bot_journal;
mod bot_signals;
mod bot_sources;
mod bot_webhook;
mod bounded;
mod cli;
mod config;
mod feeds;
mod hardening_fs;
mod hardening_input;
mod hardening_process;
mod hardening_secrets;
mod hardening_webhook;
mod health_file;
mod http;
mod ledger;
#[cfg(feature = "failpoints")]
mod ledger_fsync;
mod lock;
mod logging;
mod money;
mod notify;
mod oneport_abuse;
mod oneport_api;
mod oneport_stream;
mod oneport_tradingview;
mod packaging_files;
mod report;
mod signals;
mod source_test;
#[cfg(feature = "failpoints")]
mod stall;
mod web;
mod web_packaging;
