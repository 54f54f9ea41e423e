//! Configuration: a bad value is refused before anything starts, with one
//! line that names both the flag and the env var an operator would edit.

use crate::kit::daemon::{Builder, LISTENING};

/// Runs the daemon with one bad setting and checks the refusal.
fn refused(builder: Builder, flag: &str, env: &str) -> String {
    let state = builder.dir().join("state");
    let health_file = builder.dir().join("healthy");
    let output = builder.output();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got: {stderr}");
    assert!(lines[0].contains(flag), "{flag} not named: {stderr}");
    assert!(lines[0].contains(env), "{env} not named: {stderr}");
    // Nothing started: no state dir, no health file, no listener.
    assert!(!state.exists(), "state dir created despite a bad config");
    assert!(!health_file.exists());
    assert!(!stderr.contains(LISTENING), "bound a port: {stderr}");
    stderr
}

#[test]
fn bad_duration_names_flag_and_env() {
    let stderr = refused(
        Builder::new().env("HEARTBEAT_INTERVAL", "soon"),
        "--heartbeat-interval",
        "HEARTBEAT_INTERVAL",
    );
    assert!(stderr.contains("soon"), "{stderr}");
}

#[test]
fn bare_number_is_not_a_duration() {
    refused(
        Builder::new().env("STALL_TIMEOUT", "5"),
        "--stall-timeout",
        "STALL_TIMEOUT",
    );
}

#[test]
fn bad_port_names_flag_and_env() {
    refused(Builder::new().env("PORT", "notaport"), "--port", "PORT");
}

#[test]
fn bad_port_in_the_list_names_flag_and_env() {
    refused(
        Builder::new().env("HEALTH_SERVER_PORTS", "8081,nope"),
        "--health-server-ports",
        "HEALTH_SERVER_PORTS",
    );
}

#[test]
fn bad_bind_address_names_flag_and_env() {
    refused(
        Builder::new().env("HEALTH_BIND", "localhost"),
        "--health-bind",
        "HEALTH_BIND",
    );
}

#[test]
fn bad_log_format_names_flag_and_env() {
    refused(
        Builder::new().env("LOG_FORMAT", "xml"),
        "--log-format",
        "LOG_FORMAT",
    );
}

#[test]
fn bad_flag_value_names_flag_and_env() {
    refused(
        Builder::new().arg("--heartbeat-interval").arg("soon"),
        "--heartbeat-interval",
        "HEARTBEAT_INTERVAL",
    );
}

#[test]
fn stall_timeout_at_or_above_the_watchdog_is_refused() {
    // systemd would kill the daemon before it noticed its own stall.
    let stderr = refused(
        Builder::new()
            .env("WATCHDOG_USEC", "1000000")
            .env("STALL_TIMEOUT", "1s"),
        "--stall-timeout",
        "STALL_TIMEOUT",
    );
    assert!(stderr.contains("WATCHDOG_USEC"), "{stderr}");
}

#[test]
fn stall_exit_after_shorter_than_stall_timeout_is_refused() {
    refused(
        Builder::new()
            .env("STALL_TIMEOUT", "1s")
            .env("STALL_EXIT_AFTER", "500ms"),
        "--stall-exit-after",
        "STALL_EXIT_AFTER",
    );
}

#[test]
fn stall_timeout_not_above_the_heartbeat_is_refused() {
    refused(
        Builder::new()
            .env("HEARTBEAT_INTERVAL", "1s")
            .env("STALL_TIMEOUT", "1s"),
        "--stall-timeout",
        "STALL_TIMEOUT",
    );
}

#[test]
fn help_lists_every_env_var() {
    let output = Builder::new().arg("--help").output();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for env in [
        "PORT",
        "HEALTH_SERVER_PORTS",
        "HEALTH_BIND",
        "HEALTH_FILE",
        "HEARTBEAT_INTERVAL",
        "STALL_TIMEOUT",
        "STALL_EXIT_AFTER",
        "STATE_DIR",
        "LOCK_FILE",
        "LOG_FORMAT",
        "RUST_LOG",
    ] {
        assert!(
            help.contains(&format!("[env: {env}=")),
            "{env} missing from --help"
        );
    }
}

#[test]
fn check_config_accepts_units_and_starts_nothing() {
    let builder = Builder::new()
        .env("STALL_TIMEOUT", "5s")
        .env("STALL_EXIT_AFTER", "2m")
        .env("HEARTBEAT_INTERVAL", "500ms")
        .env("HEALTH_SERVER_PORTS", "18081,18082")
        .arg("check-config");
    let state = builder.dir().join("state");
    let output = builder.output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "HEARTBEAT_INTERVAL=500ms",
        "STALL_TIMEOUT=5s",
        "STALL_EXIT_AFTER=2m",
        // PORT=0 (any free port) first, as the builder sets it.
        "PORTS=[0, 18081, 18082]",
    ] {
        assert!(
            stdout.lines().any(|got| got == line),
            "{line} not in:\n{stdout}"
        );
    }
    assert!(!state.exists(), "check-config created the state dir");
}

#[test]
fn check_config_refuses_a_bad_value() {
    let output = Builder::new()
        .env("STALL_TIMEOUT", "later")
        .arg("check-config")
        .output();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STALL_TIMEOUT"), "{stderr}");
}
