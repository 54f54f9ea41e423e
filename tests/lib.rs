//! Integration tests: each module drives the real `tradingbot` binary
//! against real sockets, files, signals and processes.

mod common;
mod packaging_container;
mod packaging_deb;
mod packaging_files;
mod packaging_support;
mod packaging_systemd;
