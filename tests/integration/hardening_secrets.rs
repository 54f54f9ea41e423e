//! Secrets and exposure: the webhook token appears in no log (text or
//! JSON, at trace level), no health endpoint, no `STATUS=` datagram, no
//! health file, no `check-config`, `--help`, usage error or panic message;
//! and the health endpoints say status and figures, never a path, a
//! command line or the environment.

use std::process::Command;

use crate::kit::daemon::{Builder, Daemon, READY};
use crate::kit::http::{exchange, http, http_with_body};
use crate::kit::journal::{active_segment, signal_line};
use crate::kit::needs::skip;
use crate::kit::notify::NotifySocket;
use crate::kit::port::Reserved;
use crate::kit::process::SIGHUP;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::webhook::webhook_bot;

const TOKEN: &str = "sx-Kq93-unmistakable-token-V4lue";

/// A piece of the token that would show up in any echo of it.
const FRAGMENT: &str = "unmistakable";

fn assert_no_token(place: &str, text: &str) {
    assert!(
        !text.contains(FRAGMENT) && !text.contains(TOKEN),
        "the token leaked into {place}: {text}"
    );
}

/// Every health endpoint's answer (head and body), plus the error pages.
fn every_endpoint(daemon: &Daemon) -> Vec<(String, String)> {
    let mut answers = Vec::new();
    for path in ["/health", "/healthz", "/", "/livez", "/readyz", "/metrics"] {
        let raw = exchange(
            daemon.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        answers.push((path.to_owned(), String::from_utf8_lossy(&raw).into_owned()));
    }
    let (_, json) = daemon
        .request_with("GET", "/metrics", &[("Accept", "application/json")])
        .unwrap();
    answers.push(("/metrics (JSON)".into(), json));
    // The token sent to the wrong port, in a header and in the path.
    let (_, not_found) = daemon
        .request_with(
            "GET",
            &format!("/signals/{TOKEN}"),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        )
        .unwrap();
    answers.push(("404 page".into(), not_found));
    let (_, not_allowed) = daemon.request("POST", "/health").unwrap();
    answers.push(("405 page".into(), not_allowed));
    answers
}

fn run_and_collect(log_format: &str) {
    let notify = NotifySocket::path();
    let (builder, webhook) = webhook_bot(Builder::new());
    let env_file = builder.dir().join("tradingbot.env");
    std::fs::write(&env_file, "RUST_LOG=trace\n").unwrap();
    let mut daemon = builder
        .env("WEBHOOK_TOKEN", TOKEN)
        .env("NOTIFY_SOCKET", &notify.env_value)
        .env("ENV_FILE", &env_file)
        .env("LOG_FORMAT", log_format)
        // Every crate's most talkative level, hyper's included.
        .env("RUST_LOG", "trace")
        .spawn();
    daemon.wait_ready();

    let good = format!("Bearer {TOKEN}");
    let mut near = TOKEN.to_owned();
    near.pop();
    let near = format!("Bearer {near}");
    let line = signal_line("s1", "BTC", "buy", 1.0, Some(1.0));
    for (auth, expected) in [(good.as_str(), 202), (near.as_str(), 401), (TOKEN, 401)] {
        let (code, body) = http_with_body(
            webhook,
            "POST",
            "/signals",
            &[("Authorization", auth)],
            line.as_bytes(),
        )
        .unwrap();
        assert_eq!(code, expected, "{body}");
        assert_no_token("a webhook answer", &body);
    }
    // The token in a query string and in the path (accepted, for
    // TradingView; the empty body is refused) and a wrong one there.
    for (path, expected) in [
        (format!("/signals?token={TOKEN}"), 400),
        (format!("/signals/{TOKEN}"), 400),
        (format!("/signals/{TOKEN}x"), 401),
    ] {
        let (code, body) = http(webhook, "POST", &path, &[]).unwrap();
        assert_eq!(code, expected, "{body}");
        assert_no_token("a webhook answer", &body);
    }
    daemon.signal(SIGHUP);
    daemon.expect_log("reload");

    for (place, answer) in every_endpoint(&daemon) {
        assert_no_token(&place, &answer);
    }
    let health_file = std::fs::read_to_string(daemon.health_file()).unwrap_or_default();
    assert_no_token("the health file", &health_file);
    assert!(daemon.stop().success());
    let datagrams = notify.collect(std::time::Duration::from_millis(200));
    assert!(!datagrams.is_empty());
    let mut statuses = 0;
    for (_, datagram) in &datagrams {
        statuses += usize::from(datagram.contains("STATUS="));
        assert_no_token("an sd_notify datagram", datagram);
    }
    let log = daemon.log.all();
    assert!(
        log.iter().any(|line| line.contains("filled")),
        "debug logging was on"
    );
    assert_no_token(&format!("the {log_format} log"), &log.join("\n"));
    eprintln!(
        "{log_format}: {} log lines at trace, {} datagrams ({statuses} with STATUS=), 9 endpoint answers: no token",
        log.len(),
        datagrams.len()
    );
}

#[test]
fn the_token_is_in_no_json_log_status_or_endpoint() {
    run_and_collect("json");
}

#[test]
fn the_token_is_in_no_text_log_status_or_endpoint() {
    run_and_collect("text");
}

#[test]
fn config_help_and_usage_errors_never_print_the_token() {
    // None of these runs gets as far as binding: any address will do.
    let webhook = "127.0.0.1:9";
    let with_token = |builder: Builder| {
        builder
            .env("WEBHOOK_BIND", webhook)
            .env("WEBHOOK_TOKEN", TOKEN)
            .env("SIGNAL_SOURCE", "webhook")
    };
    let runs: Vec<(&str, std::process::Output)> = vec![
        (
            "check-config",
            with_token(Builder::new()).arg("check-config").output(),
        ),
        ("--help", with_token(Builder::new()).arg("--help").output()),
        (
            "--help with the token as a flag",
            Builder::new()
                .arg("--webhook-token")
                .arg(TOKEN)
                .arg("--help")
                .output(),
        ),
        (
            "check-config with the token as a flag",
            Builder::new()
                .arg("check-config")
                .arg("--source")
                .arg("webhook")
                .arg("--webhook-bind")
                .arg(webhook)
                .arg("--webhook-token")
                .arg(TOKEN)
                .output(),
        ),
        (
            "an unknown flag after the token",
            Builder::new()
                .arg("--webhook-token")
                .arg(TOKEN)
                .arg("--no-such-flag")
                .output(),
        ),
        (
            "a bad value beside the token",
            with_token(Builder::new()).env("PORT", "nope").output(),
        ),
        (
            "token and token file both set",
            with_token(Builder::new())
                .env("WEBHOOK_TOKEN_FILE", "/nonexistent")
                .output(),
        ),
    ];
    for (what, output) in &runs {
        assert_no_token(what, &String::from_utf8_lossy(&output.stdout));
        assert_no_token(what, &String::from_utf8_lossy(&output.stderr));
    }
    assert!(runs[0].1.status.success());
    assert!(String::from_utf8_lossy(&runs[0].1.stdout).contains("redacted"));
    for (what, output) in &runs[4..] {
        assert_eq!(output.status.code(), Some(2), "{what}");
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn a_panic_never_prints_the_token() {
    // A panic (a fail point) with the token loaded: the message names the
    // fail point, not the token.
    let (builder, _) = webhook_bot(Builder::new());
    let mut daemon = builder
        .env("WEBHOOK_TOKEN", TOKEN)
        .env("FAILPOINTS", "bot::iteration=5*off->panic(injected)")
        .spawn();
    let status = daemon.wait_exit(SOON);
    assert!(!status.success());
    let log = daemon.log.dump();
    assert!(log.contains("injected"), "no panic message: {log}");
    assert_no_token("a panic message", &log);
}

#[test]
fn health_endpoints_reveal_status_and_figures_only() {
    let builder = Builder::new();
    let dir = builder.dir().to_path_buf();
    // A missing feed file, a feed command with a credential in its
    // arguments, a journal past the file-size limit: each shows in
    // /health, by its kind and its error only.
    let missing = dir.join("missing-feed.jsonl");
    let state = dir.join("state");
    let mut daemon = builder
        .env(
            "SIGNAL_SOURCE",
            format!(
                "file:{};exec:false --api-key=EXECSECRET;webhook;stdin",
                missing.display()
            ),
        )
        .piped_stdin()
        .bind_env("WEBHOOK_BIND", Reserved::loopback())
        .env("WEBHOOK_TOKEN", TOKEN)
        .env("SOME_SETTING", "ENVSECRET")
        .env("EXEC_BACKOFF", "50ms")
        .env("FILE_POLL_INTERVAL", "20ms")
        .spawn();
    daemon.wait_ready();
    let limited = Command::new("prlimit")
        .arg("--pid")
        .arg(daemon.pid().to_string())
        .arg("--fsize=1:")
        .status()
        .expect("prlimit (util-linux)");
    assert!(limited.success());
    daemon.write_stdin(signal_line("held", "BTC", "buy", 1.0, Some(1.0)).as_bytes());
    let mut health = serde_json::Value::Null;
    let shown = wait_until(SOON, || {
        health = daemon.health().1;
        let feed = health["checks"]["feed"]["reason"].as_str().unwrap_or("");
        feed.contains("file: down: cannot open")
            && feed.contains("exec: down: feed process")
            && health["checks"]["journal"]["status"] == "failed"
    });
    assert!(shown, "{health}");
    let journal_reason = health["checks"]["journal"]["reason"].as_str().unwrap();
    assert!(
        journal_reason.contains("00000000000000000001.jsonl")
            && journal_reason.contains("File too large"),
        "{health}"
    );
    let mut keys: Vec<&str> = health
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bot_ready",
            "checks",
            "heartbeat_age_seconds",
            "heartbeats",
            "last_heartbeat",
            "last_signal_age_seconds",
            "pid",
            "port",
            "reasons",
            "stall_timeout_seconds",
            "status",
            "uptime_seconds",
            "version",
        ],
        "/health grew a field: is it a figure?"
    );
    let dir_text = dir.display().to_string();
    for (place, answer) in every_endpoint(&daemon) {
        assert_no_token(&place, &answer);
        for secret in [dir_text.as_str(), "EXECSECRET", "ENVSECRET", "missing-feed"] {
            assert!(
                !answer.contains(secret),
                "{place} shows {secret:?}: {answer}"
            );
        }
    }
    // The operator still finds the details in the log.
    let log = daemon.log.dump();
    assert!(log.contains("missing-feed.jsonl"), "{log}");
    assert!(log.contains(&active_segment(&state).display().to_string()));
    let lifted = Command::new("prlimit")
        .arg("--pid")
        .arg(daemon.pid().to_string())
        .arg("--fsize=unlimited:")
        .status()
        .unwrap();
    assert!(lifted.success());
    daemon.close_stdin();
}

/// The journald path, for real: the daemon runs in a private mount
/// namespace whose `/run/systemd/journal/socket` leads to a socket the test
/// reads, with `JOURNAL_STREAM` naming its stderr, as systemd sets it.
#[test]
fn the_token_is_in_no_journald_record() {
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        skip(
            "the_token_is_in_no_journald_record",
            "a private mount namespace (unshare -m)",
        );
        return;
    }
    let journal = NotifySocket::path();
    let script = r#"mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal &&
        ln -s "$JOURNAL_SOCKET" /run/systemd/journal/socket &&
        JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM &&
        exec "$@""#;
    let (builder, webhook) = webhook_bot(Builder::new());
    let mut daemon = builder
        .via(&[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .env("JOURNAL_SOCKET", &journal.env_value)
        // The journal takes whatever the format says for stderr.
        .remove_env("LOG_FORMAT")
        .env("RUST_LOG", "trace")
        .env("WEBHOOK_TOKEN", TOKEN)
        .spawn();
    let (ready, _) = journal.expect("journal record saying ready", |record| {
        record.contains(READY)
    });
    assert!(
        ready.contains("PRIORITY") && ready.contains("SYSLOG_IDENTIFIER"),
        "{ready}"
    );
    let line = signal_line("j1", "BTC", "buy", 1.0, Some(1.0));
    for auth in [format!("Bearer {TOKEN}"), "Bearer wrong".to_owned()] {
        http_with_body(
            webhook,
            "POST",
            "/signals",
            &[("Authorization", &auth)],
            line.as_bytes(),
        )
        .unwrap();
    }
    // sh exec'd into the daemon: the signal reaches it.
    assert!(daemon.stop().success());
    let mut records = vec![ready];
    records.extend(
        journal
            .collect(std::time::Duration::from_millis(300))
            .into_iter()
            .map(|(_, record)| record),
    );
    assert!(
        records.iter().any(|record| record.contains("filled")),
        "no debug record reached the journal: {records:?}"
    );
    for record in &records {
        assert_no_token("a journald record", record);
    }
    assert_no_token("stderr beside the journal", &daemon.log.dump());
    eprintln!("journald: {} records at trace, no token", records.len());
}
