//! Stopping: SIGTERM and SIGINT drain and exit 0, leaving nothing behind;
//! a second stop signal a second or more after the first (a human pressing
//! Ctrl-C again), or the drain deadline, ends a stuck drain at once, while
//! two that come together (a manager signalling twice) still drain cleanly.

use std::time::{Duration, Instant};

use crate::kit::daemon::{Builder, READY};
use crate::kit::health_file::wait_path;
use crate::kit::http::metric;
use crate::kit::process::{SIGHUP, SIGINT, SIGTERM};
use crate::kit::wait::{wait_until, SOON};

fn stops_cleanly_on(signal: i32) {
    let mut daemon = Builder::new().spawn();
    daemon.wait_ready();
    assert!(wait_path(&daemon.health_file(), true));
    daemon.signal(signal);
    let status = daemon.wait_exit(SOON);
    assert!(status.success(), "exit after signal {signal}: {status}");
    assert!(!daemon.health_file().exists(), "health file left behind");
    assert_eq!(daemon.log.count("stopping: intake stops"), 1);
    assert_eq!(daemon.log.count("stopped cleanly"), 1);

    // The lock went with the process: a successor starts at once.
    let successor = Builder::new().env("STATE_DIR", daemon.state_dir()).spawn();
    successor.wait_ready();
}

#[test]
fn sigterm_stops_cleanly_and_releases_everything() {
    stops_cleanly_on(SIGTERM);
}

#[test]
fn sigint_stops_cleanly_and_releases_everything() {
    stops_cleanly_on(SIGINT);
}

/// A loop wedged inside an iteration (`FAILPOINTS`), with the stall seen:
/// a drain begun now cannot finish until the wedge lets go.
#[cfg(feature = "failpoints")]
fn wedged(failpoints: &str, drain_timeout: &str) -> crate::kit::daemon::Daemon {
    let daemon = Builder::new()
        .env("FAILPOINTS", failpoints)
        .env("DRAIN_TIMEOUT", drain_timeout)
        .spawn();
    daemon.wait_ready();
    daemon.expect_log("bot loop stalled");
    daemon
}

/// Two SIGTERMs 1 ms apart are one request to stop (a manager signalling
/// the process and its group, say), not a human insisting: the drain
/// finishes and the exit is clean. The drain is held long by a one-off
/// 3 s wedge of the loop, entered before the signals (the stall is seen)
/// and left on its own about two seconds after them.
#[cfg(feature = "failpoints")]
#[test]
fn two_stop_signals_a_millisecond_apart_still_drain_cleanly() {
    let mut daemon = wedged("bot::iteration=20*off->1*sleep(3000)->off", "30s");
    daemon.signal(SIGTERM);
    std::thread::sleep(Duration::from_millis(1));
    assert!(
        !daemon.has_exited(),
        "the drain was over before the second signal"
    );
    daemon.signal(SIGTERM);
    let status = daemon.wait_exit(SOON);
    assert_eq!(
        status.code(),
        Some(0),
        "two signals 1 ms apart forced the exit; log:\n{}",
        daemon.log.dump()
    );
    daemon.expect_log("bot loop: drained");
    daemon.expect_log("stopped cleanly");
    assert!(!daemon.health_file().exists(), "health file left behind");
}

/// A second stop signal 1.5 s after the first, while the drain is stuck
/// (the loop wedged for a minute, DRAIN_TIMEOUT a minute), ends it at once,
/// with exit 1 and the reason in the log.
#[cfg(feature = "failpoints")]
#[test]
fn a_second_stop_signal_a_second_later_ends_a_stuck_drain_at_once() {
    let mut daemon = wedged("bot::iteration=5*off->sleep(60000)", "60s");
    let first = Instant::now();
    daemon.signal(SIGTERM);
    daemon.expect_log("stopping: intake stops");
    // The spacing is the point: a human's second Ctrl-C, 1.5 s on.
    std::thread::sleep(
        (first + Duration::from_millis(1500)).saturating_duration_since(Instant::now()),
    );
    assert!(!daemon.has_exited(), "the wedge did not hold the drain");
    let sent = Instant::now();
    daemon.signal(SIGTERM);
    let status = daemon.wait_exit(SOON);
    assert_eq!(
        status.code(),
        Some(1),
        "a forced stop must exit 1; log:\n{}",
        daemon.log.dump()
    );
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "second signal took {:?}",
        sent.elapsed()
    );
    daemon.expect_log("second stop signal");
}

#[cfg(feature = "failpoints")]
#[test]
fn the_drain_deadline_ends_a_stuck_drain() {
    let mut daemon = wedged("bot::iteration=5*off->sleep(60000)", "1s");
    let sent = Instant::now();
    daemon.signal(SIGTERM);
    let status = daemon.wait_exit(SOON);
    assert!(!status.success(), "{status}");
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "exited before the drain deadline"
    );
    daemon.expect_log("DRAIN_TIMEOUT");
}

#[test]
fn stdin_lines_are_counted_and_sigterm_still_stops_cleanly() {
    // The feed keeps stdin open, as a pipe from a live feed would.
    let mut daemon = Builder::new()
        .env("SIGNAL_SOURCE", "stdin")
        .env("DRAIN_TIMEOUT", "30s")
        .piped_stdin()
        .spawn();
    daemon.wait_ready();
    for index in 0..5 {
        daemon.write_stdin(format!("{{\"id\":\"s{index}\"}}\n").as_bytes());
    }
    let counted = wait_until(SOON, || {
        // Not signals (no ts, symbol, side, qty): each is a counted reject.
        metric(
            &daemon.metrics(),
            "tradingbot_signals_total{source=\"stdin\",result=\"rejected\"}",
        ) == Some(5.0)
    });
    assert!(counted, "metrics: {}", daemon.metrics());

    let sent = Instant::now();
    daemon.signal(SIGTERM);
    let status = daemon.wait_exit(SOON);
    assert!(
        status.success(),
        "exit after SIGTERM with stdin open: {status}"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "stop took {:?} with stdin open",
        sent.elapsed()
    );
}

#[test]
fn stdin_closing_leaves_the_bot_idling_healthy() {
    let mut daemon = Builder::new()
        .env("SIGNAL_SOURCE", "stdin")
        .piped_stdin()
        .spawn();
    daemon.wait_ready();
    daemon.write_stdin(b"{\"id\":\"only\"}\n");
    daemon.close_stdin();
    daemon.wait_heartbeats(10);
    assert_eq!(daemon.get("/health").0, 200);
    assert_eq!(
        metric(
            &daemon.metrics(),
            "tradingbot_signals_total{source=\"stdin\",result=\"rejected\"}"
        ),
        Some(1.0)
    );
    assert!(daemon.stop().success());
}

#[test]
fn sighup_rereads_the_log_filter_from_env_file() {
    let builder = Builder::new().env("RUST_LOG", "warn");
    let env_file = builder.dir().join("tradingbot.env");
    std::fs::write(&env_file, "RUST_LOG=warn\n").unwrap();
    let mut daemon = builder.env("ENV_FILE", &env_file).spawn();
    // At warn, the daemon's own "ready" line is filtered out: poll instead
    // (the port comes from the health file then).
    assert!(daemon.wait_status("/readyz", 200));
    assert_eq!(daemon.log.count(READY), 0);

    std::fs::write(&env_file, "# raised for debugging\nRUST_LOG=\"info\"\n").unwrap();
    daemon.signal(SIGHUP);
    daemon.expect_log("reload: log filter changed");
    assert!(daemon.stop().success());
    daemon.expect_log("stopped cleanly");
}

#[test]
fn sighup_with_a_bad_filter_keeps_the_old_one() {
    let builder = Builder::new();
    let env_file = builder.dir().join("tradingbot.env");
    std::fs::write(&env_file, "RUST_LOG=info\n").unwrap();
    let mut daemon = builder.env("ENV_FILE", &env_file).spawn();
    daemon.wait_ready();
    std::fs::write(&env_file, "RUST_LOG=tradingbot=[[[\n").unwrap();
    daemon.signal(SIGHUP);
    let warning = daemon.expect_log("log filter unchanged");
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    assert_eq!(daemon.get("/health").0, 200);
    assert!(daemon.stop().success());
    daemon.expect_log("stopped cleanly");
}
