//! Integration tests: each module drives the real `tradingbot` binary
//! against real sockets, files, signals and processes.

mod alerts;
mod alerts_fakes;
mod bot_crash;
mod bot_journal;
mod bot_signals;
mod bot_sources;
mod bot_webhook;
mod common;
mod hardening_input;
mod hardening_secrets;
mod hardening_webhook;
mod ledger;
mod ledger_fsync;
mod ledger_storm;

mod abuse_http;
mod config;
mod hardening_fs;
mod hardening_process;
mod health_file;
mod http;
mod lock;
mod logging;
mod notify;
mod packaging_container;
mod packaging_deb;
mod packaging_files;
mod packaging_support;
mod packaging_systemd;
mod signals;
mod stall;
