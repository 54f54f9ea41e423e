//! The webhook source: authentication, size limit, 202 only once durable,
//! and the token never shown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::kit::daemon::Builder;
use crate::kit::http::{http, http_with_body};
use crate::kit::journal::signal_line;
use crate::kit::process::SIGTERM;
use crate::kit::wait::SOON;
use crate::kit::webhook::webhook_bot;

const TOKEN: &str = "tok-Zq8s3cret-Value";

/// The webhook source with its token in a file and a 1 KiB body limit.
fn token_file_bot() -> (Builder, SocketAddr) {
    let (builder, addr) = webhook_bot(Builder::new());
    let token_file = builder.dir().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let builder = builder
        .env("WEBHOOK_TOKEN_FILE", token_file)
        .env("WEBHOOK_BODY_LIMIT", "1024");
    (builder, addr)
}

fn post(addr: SocketAddr, auth: Option<&str>, body: &str) -> (u16, String) {
    let header;
    let headers: &[(&str, &str)] = match auth {
        Some(auth) => {
            header = [("Authorization", auth)];
            &header
        }
        None => &[],
    };
    http_with_body(addr, "POST", "/signals", headers, body.as_bytes()).unwrap()
}

#[test]
fn webhook_authenticates_limits_and_answers_202_only_once_durable() {
    let (builder, addr) = token_file_bot();
    let daemon = builder.spawn();
    daemon.wait_ready();
    let bearer = format!("Bearer {TOKEN}");
    let one = signal_line("w1", "BTC", "buy", 1.0, Some(100.0));

    assert_eq!(post(addr, None, &one).0, 401);
    assert_eq!(post(addr, Some("Bearer nope"), &one).0, 401);
    assert_eq!(post(addr, Some(&format!("Bearer {TOKEN}x")), &one).0, 401);
    assert_eq!(post(addr, Some(TOKEN), &one).0, 401);
    assert_eq!(http(addr, "GET", "/signals", &[]).unwrap().0, 405);
    assert_eq!(http(addr, "POST", "/other", &[]).unwrap().0, 404);
    let (code, body) = post(addr, Some(&bearer), &"x".repeat(2000));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("WEBHOOK_BODY_LIMIT"), "{body}");
    assert_eq!(post(addr, Some(&bearer), "\n\n").0, 400);
    assert!(
        daemon.journal().is_empty(),
        "refused requests reached the journal"
    );

    // Two lines in one body; at the moment of the 202 both are in the journal.
    let batch = one.clone() + &signal_line("w2", "BTC", "sell", 1.0, Some(110.0));
    let (code, body) = post(addr, Some(&bearer), &batch);
    assert_eq!(code, 202, "{body}");
    let ids: Vec<String> = daemon
        .journal()
        .iter()
        .filter_map(|record| record["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["w1", "w2"]);
    let results: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(results["results"][0]["result"], "filled");

    // A resend is a duplicate, still 202; a bad line makes it 400, with the
    // good line beside it handled all the same.
    let (code, body) = post(addr, Some(&bearer), &batch);
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("duplicate"), "{body}");
    let mixed = signal_line("w3", "BTC", "buy", 1.0, Some(100.0)) + "not json\n";
    let (code, body) = post(addr, Some(&bearer), &mixed);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not_json"), "{body}");
    assert_eq!(
        daemon.metric("realized_pnl", &[("symbol", "BTC")]),
        Some(10.0)
    );
    // The figures are published after the answer, in the same iteration.
    assert_eq!(
        daemon.wait_metric("position", &[("symbol", "BTC")], 1.0),
        1.0
    );

    // The token appears nowhere it could leak.
    let (_, health) = daemon.get("/health");
    let (_, metrics) = daemon.get("/metrics");
    let mut daemon = daemon;
    assert!(daemon.stop().success());
    for text in [health, metrics, daemon.log.all().join("\n")] {
        assert!(!text.contains("Zq8s3cret"), "token leaked: {text}");
    }
}

#[test]
fn webhook_config_is_checked_and_redacted() {
    let (builder, _) = token_file_bot();
    let output = builder.env("WEBHOOK_TOKEN", TOKEN).output();
    assert_eq!(
        output.status.code(),
        Some(2),
        "token and token file both set"
    );

    let (builder, _) = token_file_bot();
    let output = builder.remove_env("WEBHOOK_TOKEN_FILE").output();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("without a bearer token"));

    let output = Builder::new()
        .env("WEBHOOK_BIND", "127.0.0.1:9")
        .env("WEBHOOK_TOKEN", TOKEN)
        .output();
    assert_eq!(output.status.code(), Some(2), "a listener nobody asked for");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--source webhook"));

    // check-config binds nothing: any address will do.
    let output = Builder::new()
        .arg("check-config")
        .arg("--source")
        .arg("webhook")
        .env("WEBHOOK_BIND", "127.0.0.1:9")
        .env("WEBHOOK_TOKEN", TOKEN)
        .output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("WEBHOOK_TOKEN=(set, redacted)"), "{stdout}");
    assert!(!stdout.contains("Zq8s3cret"), "{stdout}");
    let help = Builder::new()
        .arg("--help")
        .env("WEBHOOK_TOKEN", TOKEN)
        .output();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("Zq8s3cret"));
}

#[test]
fn webhook_answers_503_while_stopping_and_the_stop_is_clean() {
    let (builder, addr) = token_file_bot();
    let mut daemon = builder.spawn();
    daemon.wait_ready();
    let line = signal_line("late", "BTC", "buy", 1.0, Some(100.0));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // `Expect: 100-continue`: the 100 says the handler is reading the body,
    // so the stop lands while the request is in hand.
    write!(
        stream,
        "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        line.len(),
    )
    .unwrap();
    let mut continued = [0u8; 25];
    stream.read_exact(&mut continued).unwrap();
    assert!(continued.starts_with(b"HTTP/1.1 100 Continue\r\n"));
    daemon.signal(SIGTERM);
    assert!(daemon.log.wait_for("sources stopping", SOON).is_some());
    stream.write_all(line.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(daemon.wait_exit(SOON).success());
    assert!(daemon.journal().is_empty());
}

#[test]
fn a_chunked_body_over_the_limit_is_cut_off_with_413() {
    let (builder, addr) = token_file_bot();
    let daemon = builder.spawn();
    daemon.wait_ready();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = "y".repeat(600);
    for _ in 0..2 {
        let _ = write!(stream, "{:x}\r\n{chunk}\r\n", chunk.len());
    }
    let _ = write!(stream, "0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(daemon.journal().is_empty());
}

/// While the journal cannot be written, a request is answered at once
/// with 503 and `Retry-After`, the one already waiting on the commit that
/// failed included; sent again once the journal is writable, every signal
/// is decided exactly once (the waiting one's were decided, and are
/// duplicates now).
#[cfg(feature = "failpoints")]
#[test]
fn while_the_journal_cannot_be_written_requests_are_refused_at_once_and_resends_are_not_doubled() {
    use crate::kit::http::{answer, Answer};
    use std::time::{Duration, Instant};

    // The first fsync succeeds; then one a tick (100 ms) fails, 60 times.
    let (builder, addr) = webhook_bot(
        Builder::new()
            .env("WEBHOOK_TOKEN", TOKEN)
            .env("FAILPOINTS", "ledger::fsync=1*off->60*return->off"),
    );
    let mut daemon = builder.spawn();
    daemon.wait_ready();
    let bearer = format!("Bearer {TOKEN}");
    let post = |wave: &str| -> (Answer, Duration) {
        let body: String = (0..3)
            .map(|index| signal_line(&format!("{wave}-{index}"), "BTC", "buy", 1.0, Some(100.0)))
            .collect();
        let started = Instant::now();
        let answer = answer(
            addr,
            "POST",
            "/signals",
            &[("Authorization", &bearer)],
            Some(body.as_bytes()),
        )
        .unwrap();
        (answer, started.elapsed())
    };
    let journal_failed = || daemon.health().1["checks"]["journal"]["status"] == "failed";
    let refused_at_once = |(answer, took): (Answer, Duration)| {
        assert_eq!(answer.code, 503, "{answer:?}");
        assert_eq!(
            answer.headers.get("retry-after").map(String::as_str),
            Some("1")
        );
        assert!(answer.body.contains("send it again"), "{answer:?}");
        // Not held until the journal came back: it is still failing.
        assert!(took < Duration::from_secs(5), "held for {took:?}");
        assert!(journal_failed(), "answered only once the journal was back");
    };

    assert_eq!(post("first").0.code, 202);
    refused_at_once(post("waiting"));
    refused_at_once(post("during"));
    assert!(
        daemon.wait_status("/health", 200),
        "the journal never came back"
    );
    for (wave, result) in [("waiting", "duplicate"), ("during", "filled")] {
        let (answer, _) = post(wave);
        assert_eq!(answer.code, 202, "{answer:?}");
        let results: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        for outcome in results["results"].as_array().unwrap() {
            assert_eq!(outcome["result"], result, "{wave}: {answer:?}");
        }
    }
    assert!(daemon.stop().success());
    let ids: Vec<String> = daemon
        .journal()
        .iter()
        .filter_map(|record| record["id"].as_str().map(str::to_owned))
        .collect();
    let expected: Vec<String> = ["first", "waiting", "during"]
        .iter()
        .flat_map(|wave| (0..3).map(move |index| format!("{wave}-{index}")))
        .collect();
    assert_eq!(ids, expected, "lost or doubled");
}
