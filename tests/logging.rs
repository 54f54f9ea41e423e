//! Logs an operator reads: one JSON object a line with LOG_FORMAT=json, and
//! each lifecycle event once, at its level.

use crate::common::*;

fn level_of(line: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    json["level"].as_str().unwrap_or_default().to_owned()
}

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
        ("health server listening", "INFO"),
        ("ready: first loop iteration done", "INFO"),
        ("bot loop stalled", "WARN"),
        ("bot loop recovered", "INFO"),
        ("stopping: intake stops", "INFO"),
        ("stopped cleanly", "INFO"),
    ] {
        let found: Vec<&String> = lines.iter().filter(|line| line.contains(event)).collect();
        assert_eq!(found.len(), 1, "{event:?} logged {} times", found.len());
        assert_eq!(level_of(found[0]), level, "{event}");
    }
    let listening = lines
        .iter()
        .find(|line| line.contains("health server listening"))
        .unwrap();
    assert!(
        listening.contains(&format!("\"port\":{}", daemon.port)),
        "{listening}"
    );
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
