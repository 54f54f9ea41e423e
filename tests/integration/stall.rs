//! Stalls: the heartbeat goes stale, every signal says so, and either the
//! loop recovers on its own or STALL_EXIT_AFTER ends the process. Every
//! stall here is a fail point (the module is compiled with `failpoints`).

use crate::kit::daemon::Builder;
use crate::kit::notify::{assert_well_formed, has_line, NotifySocket};
use crate::kit::wait::SOON;

#[test]
fn a_stall_past_stall_exit_after_triggers_the_watchdog_and_exits_70() {
    let socket = NotifySocket::path();
    let mut daemon = Builder::new()
        .env("NOTIFY_SOCKET", &socket.env_value)
        .env("WATCHDOG_USEC", "2000000")
        .env("STALL_EXIT_AFTER", "3s")
        .env("FAILPOINTS", "bot::iteration=10*off->sleep(60000)")
        .spawn();
    daemon.wait_ready();
    daemon.expect_log("bot loop stalled");
    let (code, body) = daemon.get("/livez");
    assert_eq!(code, 503);
    assert!(body.starts_with("heartbeat stale for "), "{body}");

    let (trigger, before) = socket.expect("WATCHDOG=trigger", |message| {
        has_line(message, "WATCHDOG=trigger")
    });
    assert_well_formed(&trigger);
    let since_stall = before
        .iter()
        .position(|message| message.starts_with("STATUS=stalled"))
        .expect("STATUS=stalled before the trigger");
    assert!(
        before[since_stall..]
            .iter()
            .all(|message| message != "WATCHDOG=1"),
        "pinged while stalled: {before:?}"
    );
    let status = daemon.wait_exit(SOON);
    assert_eq!(status.code(), Some(70), "{status}");
    assert!(!daemon.health_file().exists());
    assert_eq!(daemon.log.count("past STALL_EXIT_AFTER"), 1);
}

#[test]
fn a_one_off_stall_recovers_on_its_own() {
    let daemon = Builder::new()
        .env("FAILPOINTS", "bot::iteration=20*off->1*sleep(3000)->off")
        .spawn();
    daemon.wait_ready();
    for path in ["/health", "/livez", "/readyz"] {
        assert_eq!(daemon.get(path).0, 200, "{path} before the stall");
    }

    let stalled = daemon.expect_log("bot loop stalled");
    assert!(stalled.contains("\"level\":\"WARN\""), "{stalled}");
    let (code, body) = daemon.health();
    assert_eq!(code, 503);
    assert!(
        body["reasons"][0]
            .as_str()
            .is_some_and(|reason| reason.starts_with("heartbeat stale for ")),
        "{body}"
    );
    assert_eq!(daemon.get("/livez").0, 503);

    let recovered = daemon.expect_log("bot loop recovered");
    assert!(recovered.contains("\"level\":\"INFO\""), "{recovered}");
    for path in ["/health", "/livez", "/readyz"] {
        assert_eq!(daemon.get(path).0, 200, "{path} after recovery");
    }
    assert_eq!(daemon.health().1["status"], "healthy");
    // Each transition is logged once, not once per tick.
    assert_eq!(daemon.log.count("bot loop stalled"), 1);
    assert_eq!(daemon.log.count("bot loop recovered"), 1);
}
