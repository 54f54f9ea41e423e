//! sd_notify against a real datagram socket, as systemd (or a container
//! manager) would receive it: once as a path, once as an abstract `@name`.

use std::time::Duration;

use crate::kit::daemon::Builder;
use crate::kit::notify::{
    assert_well_formed, has_line, is_ping, is_ready, monotonic_usec, NotifySocket,
};
use crate::kit::process::{SIGHUP, SIGTERM};
use crate::kit::wait::SOON;

/// 2 s: the judge's tick is then the 100 ms heartbeat interval (shorter
/// than WATCHDOG_USEC/2), and the 1 s STALL_TIMEOUT is below it, as required.
const WATCHDOG_USEC: &str = "2000000";

fn with_socket(socket: &NotifySocket) -> Builder {
    Builder::new()
        .env("NOTIFY_SOCKET", &socket.env_value)
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
}

/// Start, watchdog cadence, reload, stop: the whole life as the manager
/// sees it, every datagram well-formed. (A slow start: below.)
fn lifecycle(socket: NotifySocket) {
    let mut daemon = with_socket(&socket).spawn();
    let mut all = Vec::new();

    let (ready, before) = socket.expect("READY=1", is_ready);
    // READY=1 claims readiness; /readyz must already agree when it lands.
    assert_eq!(
        daemon.get("/readyz").0,
        200,
        "READY=1 before /readyz said ready"
    );
    assert!(
        before.iter().all(|message| !is_ready(message)),
        "a READY=1 before the real one: {before:?}"
    );
    assert!(
        ready.contains(&format!("port {}", daemon.port())),
        "{ready}"
    );
    all.extend(before);
    all.push(ready);

    // Cadence: one ping per 100 ms tick, about 20 in 2 s. A 1 s cadence
    // (WATCHDOG_USEC/2) would give 2; a ping per beat and per tick, ~40.
    let window = socket.collect(Duration::from_secs(2));
    let pings: Vec<_> = window
        .iter()
        .filter(|(_, message)| is_ping(message))
        .map(|(at, _)| *at)
        .collect();
    assert!(
        (8..=30).contains(&pings.len()),
        "{} WATCHDOG=1 in 2 s with a 100 ms tick",
        pings.len()
    );
    let longest_gap = pings
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap();
    assert!(
        longest_gap < Duration::from_secs(1),
        "a {longest_gap:?} gap between pings: systemd allows 2 s in all"
    );
    assert!(
        window
            .iter()
            .any(|(_, message)| message.starts_with("STATUS=healthy")),
        "no live STATUS= while healthy: {window:?}"
    );
    all.extend(window.into_iter().map(|(_, message)| message));

    // SIGHUP: RELOADING=1 stamped with CLOCK_MONOTONIC, then READY=1.
    daemon.signal(SIGHUP);
    let (reloading, before) =
        socket.expect("RELOADING=1", |message| has_line(message, "RELOADING=1"));
    let now = monotonic_usec();
    let stamp: u64 = reloading
        .split('\n')
        .find_map(|line| line.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"))
        .parse()
        .expect("MONOTONIC_USEC is a number");
    assert!(
        stamp <= now && now - stamp < 5_000_000,
        "MONOTONIC_USEC={stamp} is not CLOCK_MONOTONIC (now {now})"
    );
    all.extend(before);
    all.push(reloading);
    let (ready, before) = socket.expect("READY=1 after reload", is_ready);
    all.extend(before);
    all.push(ready);

    // SIGTERM: STOPPING=1, then a clean exit.
    daemon.signal(SIGTERM);
    let (stopping, before) = socket.expect("STOPPING=1", |message| has_line(message, "STOPPING=1"));
    all.extend(before);
    all.push(stopping);
    let status = daemon.wait_exit(SOON);
    assert!(status.success(), "exit after SIGTERM: {status}");

    for message in &all {
        assert_well_formed(message);
    }
}

#[test]
fn lifecycle_on_a_path_socket() {
    lifecycle(NotifySocket::path());
}

#[test]
fn lifecycle_on_an_abstract_socket() {
    lifecycle(NotifySocket::abstract_name());
}

/// Init held for 1.5 s: the judge asks the manager for more time, and
/// READY=1 waits for the init.
#[cfg(feature = "failpoints")]
#[test]
fn a_slow_start_asks_for_more_time_and_ready_waits_for_it() {
    let socket = NotifySocket::path();
    let daemon = with_socket(&socket)
        .env("FAILPOINTS", "daemon::init=sleep(1500)")
        .spawn();
    let (extend, before) = socket.expect("EXTEND_TIMEOUT_USEC", |message| {
        message.starts_with("EXTEND_TIMEOUT_USEC=")
    });
    assert_eq!(daemon.get("/readyz").0, 503, "not starting at {extend}");
    let (ready, between) = socket.expect("READY=1", is_ready);
    assert_eq!(
        daemon.get("/readyz").0,
        200,
        "READY=1 before /readyz said ready"
    );
    assert!(
        before
            .iter()
            .chain(&between)
            .all(|message| !is_ready(message)),
        "a READY=1 during the held init: {before:?} {between:?}"
    );
    for message in before
        .iter()
        .chain([&extend])
        .chain(&between)
        .chain([&ready])
    {
        assert_well_formed(message);
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn a_stall_stops_the_pings_until_the_loop_recovers() {
    let socket = NotifySocket::abstract_name();
    let daemon = with_socket(&socket)
        .env("FAILPOINTS", "bot::iteration=20*off->1*sleep(3000)->off")
        .spawn();
    socket.expect("READY=1", is_ready);

    let (stalled, _) = socket.expect("STATUS=stalled", |message| {
        message.starts_with("STATUS=stalled")
    });
    assert!(stalled.contains("heartbeat stale for"), "{stalled}");
    let (healthy, during) = socket.expect("STATUS=healthy after the stall", |message| {
        message.starts_with("STATUS=healthy")
    });
    // The recovering tick pings just before its STATUS=healthy; before
    // that, nothing may tell systemd the bot is alive.
    let stalled_part = match during.last() {
        Some(last) if is_ping(last) => &during[..during.len() - 1],
        _ => &during[..],
    };
    assert!(
        stalled_part
            .iter()
            .all(|message| !is_ping(message) && !is_ready(message)),
        "WATCHDOG=1 or READY=1 while stalled: {during:?}"
    );
    let stalled_ticks = stalled_part
        .iter()
        .filter(|message| message.starts_with("STATUS=stalled"))
        .count();
    assert!(
        stalled_ticks >= 3,
        "only {stalled_ticks} stalled ticks: the stall was not observed"
    );

    let after = socket.collect(Duration::from_secs(1));
    let pings = after.iter().filter(|(_, message)| is_ping(message)).count();
    assert!(pings >= 3, "pings did not resume: {pings} in 1 s");
    for message in std::iter::once(&stalled)
        .chain(&during)
        .chain(std::iter::once(&healthy))
        .chain(after.iter().map(|(_, message)| message))
    {
        assert_well_formed(message);
    }
    assert_eq!(daemon.get("/health").0, 200);
}

#[test]
fn a_watchdog_meant_for_another_pid_is_not_pinged() {
    // WATCHDOG_PID names someone else: these variables were inherited, and
    // pinging would keep another process's watchdog quiet.
    let socket = NotifySocket::path();
    let daemon = with_socket(&socket).env("WATCHDOG_PID", "1").spawn();
    socket.expect("READY=1", is_ready);
    daemon.wait_ready();
    let window = socket.collect(Duration::from_millis(1500));
    assert!(
        window
            .iter()
            .any(|(_, message)| message.starts_with("STATUS=")),
        "the judge sent nothing at all: {window:?}"
    );
    let pings = window
        .iter()
        .filter(|(_, message)| is_ping(message))
        .count();
    assert_eq!(
        pings, 0,
        "{pings} WATCHDOG=1 for a watchdog that is not ours"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn sighup_before_ready_announces_no_reload() {
    let socket = NotifySocket::path();
    let daemon = with_socket(&socket)
        .env("FAILPOINTS", "daemon::init=sleep(1500)")
        .spawn();
    // The judge runs only once the signal handlers are in place.
    socket.expect("EXTEND_TIMEOUT_USEC", |message| {
        message.starts_with("EXTEND_TIMEOUT_USEC=")
    });
    daemon.signal(SIGHUP);
    daemon.expect_log("reload");
    let (ready, before) = socket.expect("READY=1", is_ready);
    assert!(
        before
            .iter()
            .chain(std::iter::once(&ready))
            .all(|message| !message.contains("RELOADING=1")),
        "RELOADING=1 before the daemon was ever ready: {before:?}"
    );
    assert_eq!(daemon.get("/readyz").0, 200);
}

#[test]
fn a_manager_that_stops_reading_does_not_wedge_the_daemon() {
    // A manager (or a proxy in a container runtime) that keeps its socket
    // open but stops reading: the kernel queue fills after a few datagrams
    // (net.unix.max_dgram_qlen, often 10). Health and stop must not hang on it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let _unread = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let mut daemon = Builder::new()
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .spawn();
    daemon.wait_ready();
    // Well past the queue's length in judge ticks (two datagrams a tick).
    daemon.wait_heartbeats(30);
    assert_eq!(daemon.get("/health").0, 200);
    let status = daemon.stop();
    assert!(status.success(), "{status}");
}
