//! Process faults: a SIGSTOP longer than the stall timeout, and an exec
//! feed that crashes in a loop. (SIGKILL aimed at each phase of a daemon's
//! life is a storm: `heavy`'s `hardening_process`.)

use std::io::{Read, Write};
use std::time::Duration;

use crate::kit::daemon::Builder;
use crate::kit::health_file::{age, health_record, probe, wait_path};
use crate::kit::log;
use crate::kit::process::{children, SIGCONT, SIGSTOP};
use crate::kit::wait::{wait_until, SOON};

#[test]
fn sigstop_past_the_stall_timeout_goes_stale_and_sigcont_recovers_on_its_own() {
    let daemon = Builder::new().env("STALL_TIMEOUT", "1s").spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    assert!(wait_path(&path, true));
    assert!(daemon.wait_status("/health", 200));

    daemon.signal(SIGSTOP);
    // Frozen longer than the stall timeout, as the file's age shows.
    let aged = wait_until(SOON, || age(&path) > Duration::from_millis(1500));
    let (code, stderr) = probe(&path, &["--max-age", "1s"]);
    // Queued in the listen backlog while frozen, answered after SIGCONT.
    let mut queued = std::net::TcpStream::connect(daemon.addr()).unwrap();
    queued
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    daemon.signal(SIGCONT);
    assert!(aged, "the health file never aged while frozen");
    assert_eq!(code, 1, "a frozen daemon's file passed the probe");
    assert!(stderr.contains("stale"), "{stderr}");

    // Whatever the race after SIGCONT, the answer to the request made
    // during the freeze is the truth: 503, or 200 on a beat made since.
    queued.set_read_timeout(Some(SOON)).unwrap();
    let mut response = String::new();
    queued.read_to_string(&mut response).unwrap();
    let code: u16 = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let heartbeat_age = body["heartbeat_age_seconds"].as_f64().unwrap();
    assert!(
        code == 503 || heartbeat_age < 1.0,
        "{code} with a heartbeat {heartbeat_age} s old: {body}"
    );
    eprintln!(
        "request queued during a 1.5 s freeze answered {code} (heartbeat age {heartbeat_age} s)"
    );

    assert!(daemon.wait_status("/health", 200), "never healthy again");
    assert!(
        wait_until(SOON, || probe(&path, &["--max-age", "1s"]).0 == 0),
        "health file not fresh again after SIGCONT"
    );
    assert_eq!(health_record(&path)["pid"], daemon.pid());
}

#[test]
fn an_exec_feed_crashing_in_a_loop_backs_off_to_the_cap_without_a_fork_bomb() {
    let builder = Builder::new()
        .env("EXEC_BACKOFF", "100ms")
        .env("EXEC_BACKOFF_MAX", "400ms");
    let script = builder.dir().join("crash.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'crashing' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = builder
        .arg("--source")
        .arg(format!("exec:{}", script.display()))
        .spawn();
    daemon.wait_ready();

    // From the whole log: the first start comes before READY.
    let starts = 9;
    let mut most_children = 0;
    let mut health_seen = Vec::new();
    let started = wait_until(SOON, || {
        most_children = most_children.max(children(daemon.pid()).len());
        health_seen.push(daemon.health());
        daemon.log.count("exec source: feed process started") >= starts
    });
    assert!(started, "fewer than {starts} starts");
    for (code, health) in &health_seen {
        assert_eq!(*code, 200, "a crashing feed failed health: {health}");
        assert_ne!(health["checks"]["feed"]["status"], "failed", "{health}");
    }
    let at: Vec<i64> = daemon
        .log
        .all()
        .iter()
        .filter(|line| line.contains("exec source: feed process started"))
        .take(starts)
        .map(|line| millis(log::time_of(line)))
        .collect();
    let gaps: Vec<i64> = at.windows(2).map(|pair| pair[1] - pair[0]).collect();
    eprintln!("exec feed crash loop: {starts} starts, gaps {gaps:?} ms (backoff from 100 ms, jittered under a ceiling doubling to 400 ms), at most {most_children} child at once");
    for (index, gap) in gaps.iter().enumerate() {
        let ceiling = (100 << index).min(400);
        assert!(
            *gap >= 95 && *gap < ceiling + 1500,
            "start {} came {gap} ms after the one before; the wait was 100 to {ceiling} ms",
            index + 1
        );
    }
    assert!(most_children <= 1, "{most_children} feed processes at once");
    assert!(wait_until(SOON, || {
        let (code, health) = daemon.health();
        code == 200
            && health["status"] == "degraded"
            && health["checks"]["feed"]["status"] == "degraded"
    }));
}

fn millis(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
