//! The health file as a container HEALTHCHECK sees it: its mtime is the
//! signal, and `tradingbot health` is the probe that reads it.

use std::time::{Duration, SystemTime};

use crate::kit::daemon::{Builder, Daemon};
use crate::kit::health_file::{health_record, mtime, plant_target, probe, wait_path};
use crate::kit::process::{SIGCONT, SIGSTOP};
use crate::kit::wait::{wait_until, SOON};

fn record(daemon: &Daemon) -> serde_json::Value {
    let record = health_record(&daemon.health_file());
    let text = std::fs::read_to_string(daemon.health_file()).expect("health file");
    assert_eq!(text.lines().count(), 1, "not one line: {text:?}");
    record
}

#[test]
fn mtime_advances_and_the_record_names_the_daemon() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    assert!(wait_path(&path, true), "health file never appeared");
    let first = mtime(&path);
    assert!(
        wait_until(SOON, || mtime(&path) > first),
        "mtime never moved past {first:?}"
    );
    let record = record(&daemon);
    assert_eq!(record["pid"], daemon.pid());
    assert_eq!(record["port"], daemon.port());
    assert_eq!(record["addr"], daemon.addr().to_string());
    assert_eq!(record["status"], "healthy");
    assert!(record["heartbeats"].as_u64().unwrap() >= 1);
}

#[test]
fn removed_on_stop() {
    let mut daemon = Builder::new().spawn();
    daemon.wait_ready();
    assert!(wait_path(&daemon.health_file(), true));
    assert!(daemon.stop().success());
    assert!(
        !daemon.health_file().exists(),
        "a stopped daemon left its health file saying healthy"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn removed_while_stalled_and_back_after_recovery() {
    let daemon = Builder::new()
        .env("FAILPOINTS", "bot::iteration=20*off->1*sleep(3000)->off")
        .spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    assert!(wait_path(&path, true));
    daemon.expect_log("bot loop stalled");
    assert!(wait_path(&path, false), "health file kept during a stall");
    let (code, stderr) = probe(&path, &["--max-age", "5s"]);
    assert_eq!(code, 1, "{stderr}");
    daemon.expect_log("bot loop recovered");
    assert!(
        wait_path(&path, true),
        "health file not back after recovery"
    );
    assert_eq!(probe(&path, &["--max-age", "5s"]).0, 0);
}

/// The health file agrees with the other signals at the moments they
/// change (ARCHITECTURE.md, "Design rules": truthful health: the judge acts on a state change
/// at once, not only on its next tick):
///
/// - READY=1 tells the manager the daemon is up; at that very instant the
///   health file exists and `tradingbot health` passes, or a HEALTHCHECK run
///   just then (or an orchestrator that starts dependants on READY) sees a
///   daemon that claims to be ready and fails its own probe;
/// - the beat that ends a stall brings the file back at once: measured
///   from outside against `/health` (computed from the heartbeat on each
///   request), within one heartbeat interval of its first 200, plus 150 ms
///   for a loaded machine.
///
/// Both are checked and both reported, whichever fails.
#[cfg(feature = "failpoints")]
#[test]
fn the_health_file_is_there_at_ready_and_back_at_once_after_a_stall() {
    use std::time::Instant;

    use crate::kit::health_file::exists_now;
    use crate::kit::http::http;
    use crate::kit::notify::{is_ready, NotifySocket};
    use crate::kit::wait::wait_every;

    const HEARTBEAT: Duration = Duration::from_millis(100);
    const SLACK: Duration = Duration::from_millis(150);
    let socket = NotifySocket::path();
    let daemon = Builder::new()
        .env("NOTIFY_SOCKET", &socket.env_value)
        .env("HEARTBEAT_INTERVAL", "100ms")
        .env("STALL_TIMEOUT", "1s")
        .env("FAILPOINTS", "bot::iteration=20*off->1*sleep(3000)->off")
        .spawn();
    let path = daemon.health_file();
    let mut broken = Vec::new();

    socket.expect("READY=1", is_ready);
    // Looked at the moment READY=1 is read: no sleep, no retry.
    let there = exists_now(&path);
    let (code, stderr) = probe(&path, &[]);
    eprintln!("at READY=1: health file there: {there}; probe exit {code} {stderr}");
    if !there {
        broken.push("READY=1 arrived before the health file existed".to_owned());
    }
    if code != 0 {
        broken.push(format!(
            "`tradingbot health` exited {code} just after READY=1: {}",
            stderr.trim()
        ));
    }
    assert_eq!(daemon.get("/health").0, 200);

    assert!(wait_path(&path, true), "no health file while healthy");
    assert_eq!(health_record(&path)["pid"], daemon.pid());
    daemon.expect_log("bot loop stalled");
    assert!(wait_path(&path, false), "health file kept during the stall");
    // Both watched from here, each on a thread of its own, every 2 ms.
    let addr = daemon.addr();
    let healthy_again = std::thread::spawn(move || {
        let back = wait_every(Duration::from_millis(2), SOON, || {
            http(addr, "GET", "/health", &[]).is_ok_and(|(code, _)| code == 200)
        });
        back.then(Instant::now)
    });
    let watched = path.clone();
    let file_again = std::thread::spawn(move || {
        let back = wait_every(Duration::from_millis(2), SOON, || exists_now(&watched));
        back.then(Instant::now)
    });
    let healthy_at = healthy_again
        .join()
        .unwrap()
        .expect("/health never 200 again");
    let file_at = file_again.join().unwrap().expect("health file never back");
    daemon.expect_log("bot loop recovered");
    let lag = file_at.saturating_duration_since(healthy_at);
    eprintln!("after the stall: health file back {lag:?} after /health's first 200");
    if lag > HEARTBEAT + SLACK {
        broken.push(format!(
            "health file back {lag:?} after /health turned 200; wanted within {:?}",
            HEARTBEAT + SLACK
        ));
    }
    assert_eq!(health_record(&path)["status"], "healthy");

    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn a_planted_symlink_is_never_followed() {
    let builder = Builder::new();
    let (target, planted) = plant_target(builder.dir());
    std::os::unix::fs::symlink(&target, builder.dir().join("healthy")).unwrap();

    let daemon = builder.spawn();
    // Refused when the judge first writes the file, just before READY=1.
    let warning = daemon.expect_log("symlink");
    daemon.wait_ready();
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    // A few more healthy ticks, each one a chance to follow the link.
    daemon.wait_heartbeats(5);

    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert_eq!(mtime(&target), planted, "the symlink's target was touched");
    assert!(std::fs::symlink_metadata(daemon.health_file())
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(daemon.get("/health").0, 200);
    let (code, stderr) = probe(&daemon.health_file(), &["--max-age", "1h"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("symlink"), "{stderr}");
    assert_eq!(daemon.log.count("symlink"), 1, "logged on every tick");
}

#[test]
fn a_directory_at_the_path_is_survived() {
    let builder = Builder::new();
    std::fs::create_dir(builder.dir().join("healthy")).unwrap();
    let daemon = builder.spawn();
    let warning = daemon.expect_log("not a regular file");
    daemon.wait_ready();
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    assert_eq!(daemon.get("/health").0, 200);
    assert!(daemon.health_file().is_dir());
    let (code, stderr) = probe(&daemon.health_file(), &[]);
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn probe_exit_codes_fresh_missing_future() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    assert!(wait_path(&path, true));
    let (code, stderr) = probe(&path, &["--max-age", "5s"]);
    assert_eq!((code, stderr.as_str()), (0, ""));

    let missing = daemon.dir().join("absent");
    let (code, stderr) = probe(&missing, &[]);
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");

    // An mtime in the future is no proof of life (clock games, copies).
    let future = daemon.dir().join("future");
    std::fs::write(&future, std::fs::read(&path).unwrap_or_default()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&future)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let (code, stderr) = probe(&future, &["--max-age", "5s"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("future"), "{stderr}");
}

#[test]
fn probe_says_stale_when_the_daemon_is_frozen() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    assert!(wait_path(&path, true));
    assert_eq!(probe(&path, &["--max-age", "1s"]).0, 0);

    daemon.signal(SIGSTOP);
    let mut last = (0, String::new());
    let stale = wait_until(SOON, || {
        last = probe(&path, &["--max-age", "1s"]);
        last.0 != 0
    });
    daemon.signal(SIGCONT);
    assert!(stale, "a frozen daemon's file never went stale");
    let (code, stderr) = last;
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("stale"), "{stderr}");

    assert!(
        wait_until(SOON, || probe(&path, &["--max-age", "1s"]).0 == 0),
        "not fresh again after SIGCONT"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn probe_http_reports_the_reason_of_a_503() {
    let daemon = Builder::new()
        .env("FAILPOINTS", "bot::iteration=30*off->sleep(60000)")
        .spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    let healthy_record = health_record(&path).to_string();
    let (code, stderr) = probe(&path, &["--max-age", "5s", "--http"]);
    assert_eq!((code, stderr.as_str()), (0, ""));

    daemon.expect_log("bot loop stalled");
    // The daemon removes its own file while stalled; a fresh copy of it
    // isolates the probe's HTTP half, which must still say no.
    let copy = daemon.dir().join("copy");
    std::fs::write(&copy, healthy_record).unwrap();
    let (code, stderr) = probe(&copy, &["--max-age", "5s", "--http"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HTTP 503"), "{stderr}");
    assert!(stderr.contains("heartbeat stale for"), "{stderr}");
}

#[test]
fn probe_http_reaches_a_wildcard_bind_on_loopback() {
    // The record says 0.0.0.0; the probe must turn that into 127.0.0.1,
    // never into the name localhost (which may resolve to ::1).
    let daemon = Builder::new().env("HEALTH_BIND", "0.0.0.0").spawn();
    daemon.wait_ready();
    let record = health_record(&daemon.health_file());
    assert_eq!(record["addr"], format!("0.0.0.0:{}", daemon.port()));
    let (code, stderr) = probe(&daemon.health_file(), &["--max-age", "5s", "--http"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
}
