//! Logs an operator reads: one JSON object a line with LOG_FORMAT=json, and
//! each lifecycle event once, at its level.

use crate::kit::daemon::{Builder, LISTENING};
use crate::kit::log;

fn level_of(line: &str) -> String {
    log::parse(line)["level"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(feature = "failpoints")]
#[test]
fn lifecycle_events_are_logged_once_each_at_their_level() {
    // A JOURNAL_STREAM that is not our stderr must not divert the logs.
    let mut daemon = Builder::new()
        .env("JOURNAL_STREAM", "1:1")
        .env("FAILPOINTS", "bot::iteration=10*off->1*sleep(2000)->off")
        .spawn();
    daemon.wait_ready();
    daemon.expect_log("bot loop recovered");
    assert!(daemon.stop().success());

    let lines = daemon.log.all();
    for line in &lines {
        level_of(line);
    }
    for (event, level) in [
        (LISTENING, "INFO"),
        (crate::kit::daemon::READY, "INFO"),
        ("bot loop stalled", "WARN"),
        ("bot loop recovered", "INFO"),
        ("stopping: intake stops", "INFO"),
        ("stopped cleanly", "INFO"),
    ] {
        let found: Vec<&String> = lines.iter().filter(|line| line.contains(event)).collect();
        assert_eq!(found.len(), 1, "{event:?} logged {} times", found.len());
        assert_eq!(level_of(found[0]), level, "{event}");
    }
    // The port it reports is the one that answers, and the one /health names.
    let listening = log::parse(lines.iter().find(|line| line.contains(LISTENING)).unwrap());
    assert_eq!(listening["port"], daemon.port());
    assert_eq!(listening["addr"], daemon.addr().to_string());
}

#[test]
fn the_listening_line_names_the_port_that_answers() {
    let daemon = Builder::new().spawn();
    let line = daemon.expect_log(LISTENING);
    assert_eq!(level_of(&line), "INFO", "{line}");
    let listening = log::parse(&line);
    let port = listening["port"].as_u64().expect("a port field");
    assert_ne!(port, 0, "{listening}");
    assert_eq!(listening["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(daemon.get("/livez").0, 200);
    daemon.wait_ready();
    assert_eq!(daemon.health().1["port"], port);
}

#[test]
fn text_logs_are_human_lines() {
    let mut daemon = Builder::new().env("LOG_FORMAT", "text").spawn();
    daemon.wait_ready();
    assert!(daemon.stop().success());
    let lines = daemon.log.all();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(!line.starts_with('{'), "JSON in text mode: {line}");
        assert!(!line.contains('\u{1b}'), "colour codes on a pipe: {line:?}");
    }
}
