//! The health endpoints over real TCP, across the daemon's states, and the
//! server's resistance to clients that misbehave.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::kit::daemon::{Builder, Daemon};
use crate::kit::health_file::{health_record, probe, wait_path};
use tradingbot::http::route::{Auth, Declared, Methods, Path};

use crate::kit::http::{exchange, metric, read_answer, walk_routes};
use crate::kit::journal::signal_line;
use crate::kit::notify::NotifySocket;
use crate::kit::wait::{wait_until, SOON};

#[cfg(feature = "failpoints")]
const HEALTH_PATHS: [&str; 3] = ["/health", "/healthz", "/"];

fn status_of(daemon: &Daemon, path: &str) -> u16 {
    daemon.get(path).0
}

/// The status line and headers of a HEAD, and whatever came after them.
fn head(daemon: &Daemon, path: &str) -> (String, Vec<u8>) {
    let request = format!(
        "HEAD {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        daemon.addr()
    );
    let response = exchange(daemon.addr(), request.as_bytes()).expect("HEAD");
    let end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete response head")
        + 4;
    (
        String::from_utf8_lossy(&response[..end]).into_owned(),
        response[end..].to_vec(),
    )
}

fn assert_health_shape(body: &serde_json::Value, daemon: &Daemon) {
    for key in [
        "status",
        "uptime_seconds",
        "bot_ready",
        "last_heartbeat",
        "heartbeat_age_seconds",
        "checks",
        "version",
        "pid",
        "port",
    ] {
        assert!(body.get(key).is_some(), "/health lacks {key}: {body}");
    }
    assert!(body["uptime_seconds"].is_number(), "{body}");
    assert!(body["bot_ready"].is_boolean(), "{body}");
    assert!(body["checks"].is_object(), "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["pid"], daemon.pid());
    assert_eq!(body["port"], daemon.port());
}

#[cfg(feature = "failpoints")]
#[test]
fn starting_is_alive_but_not_ready() {
    // Init held for 2 s: the port must already answer, truthfully.
    let daemon = Builder::new()
        .env("FAILPOINTS", "daemon::init=sleep(2000)")
        .spawn();
    daemon.expect_log(crate::kit::daemon::LISTENING);

    assert_eq!(daemon.get("/livez"), (200, "alive\n".to_owned()));
    let (code, body) = daemon.get("/readyz");
    assert_eq!((code, body.trim()), (503, "starting"));
    for path in HEALTH_PATHS {
        let (code, body) = daemon.get(path);
        assert_eq!(code, 503, "{path} while starting: {body}");
    }
    let (_, body) = daemon.health();
    assert_health_shape(&body, &daemon);
    assert_eq!(body["status"], "starting");
    assert_eq!(body["bot_ready"], false);
    assert!(body["last_heartbeat"].is_null(), "{body}");
    let metrics = daemon.metrics();
    assert_eq!(metric(&metrics, "tradingbot_ready"), Some(0.0), "{metrics}");
    assert!(
        daemon
            .log
            .all()
            .iter()
            .all(|line| !line.contains("ready: first")),
        "became ready during the held init: the test observed nothing"
    );

    daemon.wait_ready();
    assert_eq!(status_of(&daemon, "/readyz"), 200);
    assert_eq!(status_of(&daemon, "/health"), 200);
}

#[test]
fn ready_answers_200_with_the_full_body() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    for path in ["/livez", "/readyz", "/metrics", "/health", "/healthz", "/"] {
        let (code, body) = daemon.get(path);
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (_, body) = daemon.health();
    assert_health_shape(&body, &daemon);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["bot_ready"], true);
    assert_eq!(body["checks"]["heartbeat"]["status"], "ok");
    let age = body["heartbeat_age_seconds"].as_f64().expect("a number");
    assert!(
        (0.0..1.0).contains(&age),
        "heartbeat age {age} while healthy"
    );
    // RFC 3339 in UTC, e.g. 2026-01-01T00:00:00.123Z.
    let last = body["last_heartbeat"].as_str().expect("a string");
    assert!(
        last.len() >= 20 && &last[4..5] == "-" && &last[10..11] == "T" && last.ends_with('Z'),
        "last_heartbeat {last:?} is not RFC 3339"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn stalled_fails_health_and_liveness_but_stays_ready() {
    let daemon = Builder::new()
        .env("FAILPOINTS", "bot::iteration=5*off->sleep(60000)")
        .spawn();
    daemon.wait_ready();
    daemon.expect_log("bot loop stalled");
    for path in HEALTH_PATHS {
        assert_eq!(status_of(&daemon, path), 503, "{path} while stalled");
    }
    let (code, body) = daemon.get("/livez");
    assert_eq!(code, 503);
    assert!(body.starts_with("heartbeat stale for "), "{body}");
    let (_, body) = daemon.health();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["heartbeat"]["status"], "failed");
    assert!(
        body["reasons"][0]
            .as_str()
            .is_some_and(|reason| reason.starts_with("heartbeat stale for ")),
        "{body}"
    );
    // Readiness is about init and stopping, not progress (README, "The health signal").
    assert_eq!(status_of(&daemon, "/readyz"), 200);
    let metrics = daemon.metrics();
    assert_eq!(
        metric(&metrics, "tradingbot_healthy"),
        Some(0.0),
        "{metrics}"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn stopping_is_not_ready_but_alive() {
    // A wedged loop holds the drain open long enough to look at it; the
    // drain deadline ends it (a second signal is `signals`' business).
    let mut daemon = Builder::new()
        .env("FAILPOINTS", "bot::iteration=5*off->sleep(60000)")
        .env("DRAIN_TIMEOUT", "3s")
        .spawn();
    daemon.wait_ready();
    daemon.expect_log("bot loop stalled");
    daemon.signal(crate::kit::process::SIGTERM);
    daemon.expect_log("stopping");

    assert_eq!(daemon.get("/readyz"), (503, "stopping\n".to_owned()));
    assert_eq!(status_of(&daemon, "/livez"), 200);
    for path in HEALTH_PATHS {
        assert_eq!(status_of(&daemon, path), 503, "{path} while stopping");
    }
    assert_eq!(daemon.health().1["status"], "stopping");
    assert_eq!(status_of(&daemon, "/metrics"), 200);

    assert!(!daemon.wait_exit(SOON).success());
    daemon.expect_log("DRAIN_TIMEOUT");
}

#[test]
fn head_answers_like_get_without_a_body() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    for (path, code) in [
        ("/health", 200),
        ("/livez", 200),
        ("/metrics", 200),
        ("/nope", 404),
    ] {
        let (head, body) = head(&daemon, path);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {code}")),
            "HEAD {path}: {head}"
        );
        assert!(body.is_empty(), "HEAD {path} sent a body: {body:?}");
    }
}

/// The one port's routes: the test knows each, and fails on one it does
/// not, so a new route comes with its line here.
fn main_routes() -> Vec<Declared> {
    let get = |path, auth| Declared {
        path: Path::Is(path),
        methods: Methods::Get,
        auth,
    };
    let signals = |path| Declared {
        path,
        methods: Methods::Post,
        auth: Auth::Write,
    };
    vec![
        get("/livez", Auth::None),
        get("/readyz", Auth::None),
        get("/health", Auth::None),
        get("/healthz", Auth::None),
        get("/", Auth::None),
        get("/metrics", Auth::None),
        signals(Path::Is("/signals")),
        signals(Path::Below {
            prefix: "/signals/",
            label: "/signals",
        }),
        get("/api/v1/status", Auth::Read),
        get("/api/v1/positions", Auth::Read),
        get("/api/v1/fills", Auth::Read),
        get("/api/v1/rejects", Auth::Read),
        get("/ws", Auth::Read),
        get("/events", Auth::Read),
    ]
}

#[test]
fn every_route_takes_only_its_methods_and_nothing_beside_it_answers() {
    assert_eq!(tradingbot::http::routes::declared(), main_routes());
    let daemon = Builder::new()
        .arg("--source")
        .arg("webhook")
        .env("WEBHOOK_TOKEN", "write-token")
        .env("API_TOKEN", "read-token")
        .spawn();
    daemon.wait_ready();
    walk_routes(daemon.addr(), &main_routes());
    assert_eq!(status_of(&daemon, "/health?verbose=1"), 200);
}

/// A client posting over a kept-alive connection with a pause between
/// requests (a bot posting its own signals) across the maximum age: the
/// response after the age says `Connection: close`, the client opens a new
/// connection, and no request is ever lost to a connection closed under
/// it, which a server that closes an idle connection at its age does.
#[test]
fn a_connection_past_its_age_is_retired_by_its_next_response_and_no_request_is_lost() {
    let mut daemon = Builder::new()
        .arg("--source")
        .arg("webhook")
        .env("WEBHOOK_TOKEN", "age-token")
        .env("HTTP_MAX_CONNECTION_AGE", "1s")
        .spawn();
    daemon.wait_ready();
    let connect = || {
        let stream = TcpStream::connect(daemon.addr()).unwrap();
        stream.set_read_timeout(Some(SOON)).unwrap();
        (Instant::now(), BufReader::new(stream))
    };
    let started = Instant::now();
    let (mut opened, mut reader) = connect();
    let mut retired_at = Vec::new();
    let mut sent = 0;
    while retired_at.len() < 3 {
        assert!(started.elapsed() < SOON, "retired at {retired_at:?} only");
        let line = signal_line(
            &format!("age-{sent}"),
            "BTC",
            ["buy", "sell"][sent % 2],
            1.0,
            Some(100.0),
        );
        let request = format!(
            "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer age-token\r\nContent-Length: {}\r\n\r\n{line}",
            line.len()
        );
        reader
            .get_mut()
            .write_all(request.as_bytes())
            .unwrap_or_else(|error| panic!("request {sent}: {error}"));
        let answer =
            read_answer(&mut reader).unwrap_or_else(|error| panic!("request {sent}: {error}"));
        assert_eq!(answer.code, 202, "request {sent}: {answer:?}");
        sent += 1;
        if answer
            .headers
            .get("connection")
            .is_some_and(|value| value == "close")
        {
            retired_at.push(opened.elapsed());
            (opened, reader) = connect();
        }
        // Idle between two requests: when a server that closes at the age
        // without a word would close, losing the next request.
        std::thread::sleep(Duration::from_millis(50));
    }
    for age in &retired_at {
        assert!(
            *age >= Duration::from_secs(1),
            "retired before its age: {retired_at:?}"
        );
    }
    assert!(daemon.stop().success());
    let fills = daemon
        .journal()
        .iter()
        .filter(|record| record["t"] == "fill")
        .count();
    assert_eq!(fills, sent, "{sent} requests answered 202");
}

#[test]
fn metrics_count_requests_by_path_and_code() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    for _ in 0..3 {
        assert_eq!(status_of(&daemon, "/livez"), 200);
    }
    assert_eq!(status_of(&daemon, "/nope"), 404);
    assert_eq!(status_of(&daemon, "/also-nope"), 404);
    assert_eq!(daemon.request("POST", "/health").unwrap().0, 405);

    let text = daemon.metrics();
    for (series, want) in [
        (
            r#"tradingbot_http_requests_total{path="/livez",code="200"}"#,
            3.0,
        ),
        (
            r#"tradingbot_http_requests_total{path="other",code="404"}"#,
            2.0,
        ),
        (
            r#"tradingbot_http_requests_total{path="/health",code="405"}"#,
            1.0,
        ),
    ] {
        assert_eq!(metric(&text, series), Some(want), "{series} in:\n{text}");
    }
    for series in [
        "tradingbot_uptime_seconds",
        "tradingbot_heartbeat_age_seconds",
        "tradingbot_heartbeats_total",
    ] {
        assert!(metric(&text, series).is_some(), "{series} missing:\n{text}");
    }
    assert_eq!(metric(&text, "tradingbot_ready"), Some(1.0));
    assert!(
        text.contains("# TYPE tradingbot_heartbeats_total counter"),
        "{text}"
    );

    let (code, body) = daemon
        .request_with("GET", "/metrics", &[("Accept", "application/json")])
        .unwrap();
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON metrics");
    assert_eq!(json["tradingbot_ready"], 1.0);
    assert!(json["tradingbot_heartbeats_total"].as_f64().unwrap() >= 1.0);
    let livez = json["tradingbot_http_requests_total"]
        .as_array()
        .expect("labelled series")
        .iter()
        .find(|series| series["labels"]["path"] == "/livez" && series["labels"]["code"] == "200")
        .expect("/livez 200 series");
    assert_eq!(livez["value"], 3.0);
}

#[test]
fn falls_back_to_the_next_port_when_the_first_is_taken() {
    // PORT is taken (held here for the whole test); the list's next entry,
    // 0, lets the daemon take any free port, which it must then report.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let daemon = Builder::new()
        .env("PORT", taken_port.to_string())
        .env("HEALTH_SERVER_PORTS", "0")
        .spawn();
    daemon.wait_ready();
    let fallback = daemon.port();
    assert_ne!(fallback, taken_port);
    let (code, body) = daemon.health();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["port"], fallback);
    assert!(
        daemon.log.count("cannot bind health port") >= 1,
        "the refused port was not logged"
    );
    assert!(wait_path(&daemon.health_file(), true));
    let record = health_record(&daemon.health_file());
    assert_eq!(record["port"], fallback);
}

#[test]
fn every_port_taken_keeps_running_on_file_and_notify() {
    let socket = NotifySocket::path();
    // Both ports taken, and held here for the whole test.
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = |listener: &TcpListener| listener.local_addr().unwrap().port().to_string();
    let mut daemon = Builder::new()
        .env("NOTIFY_SOCKET", &socket.env_value)
        .env("WATCHDOG_USEC", "2000000")
        .env("PORT", port(&first))
        .env("HEALTH_SERVER_PORTS", port(&second))
        .spawn();
    let loud = daemon.expect_log("NO HEALTH PORT COULD BE BOUND");
    assert!(
        loud.contains("\"level\":\"ERROR\""),
        "not loud enough: {loud}"
    );
    daemon.wait_ready();

    let (ready, _) = socket.expect("READY=1", |message| message.contains("READY=1"));
    assert!(ready.contains("no port"), "{ready}");
    socket.expect("WATCHDOG=1", |message| message == "WATCHDOG=1");
    assert!(wait_path(&daemon.health_file(), true));
    let record = health_record(&daemon.health_file());
    assert!(record["port"].is_null(), "{record}");
    assert_eq!(probe(&daemon.health_file(), &["--max-age", "5s"]).0, 0);
    let (code, stderr) = probe(&daemon.health_file(), &["--max-age", "5s", "--http"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no HTTP address"), "{stderr}");

    // Still the daemon's to stop cleanly, and nobody ever knocked on our listeners.
    assert!(daemon.stop().success());
    for listener in [first, second] {
        listener.set_nonblocking(true).unwrap();
        assert!(
            listener.accept().is_err(),
            "the daemon connected to a taken port"
        );
    }
}

#[test]
fn hundreds_of_idle_and_slow_connections_do_not_lock_out_a_probe() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    let mut hogs = Vec::new();
    for index in 0..300 {
        let mut stream = TcpStream::connect(daemon.addr()).unwrap();
        if index % 2 == 0 {
            // Half dribble an unfinished request head, half say nothing.
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        hogs.push(stream);
    }
    let started = Instant::now();
    let (code, _) = daemon
        .request("GET", "/health")
        .expect("a fresh client is served");
    assert_eq!(code, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a fresh probe waited {:?} behind idle connections",
        started.elapsed()
    );
    drop(hogs);
    assert_eq!(status_of(&daemon, "/health"), 200);
}

#[test]
fn an_unfinished_request_head_is_cut_off() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    let mut stream = TcpStream::connect(daemon.addr()).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // The server's header deadline is 5 s: well before 9 s the connection
    // must be closed (possibly after a 408), never left open, never a 200.
    stream
        .set_read_timeout(Some(Duration::from_secs(9)))
        .unwrap();
    let mut response = Vec::new();
    let result = std::io::Read::read_to_end(&mut stream, &mut response);
    assert!(
        result.is_ok()
            || result
                .as_ref()
                .is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionReset),
        "the slow client was never cut off: {result:?}"
    );
    assert!(
        !String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"),
        "answered an unfinished request"
    );
}

#[test]
fn garbage_and_oversized_heads_do_not_kill_it() {
    let mut daemon = Builder::new().spawn();
    daemon.wait_ready();

    let garbage: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe\r\n\r\n";
    if let Ok(response) = exchange(daemon.addr(), garbage) {
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 400"),
            "garbage got: {response}"
        );
    }

    let mut oversized = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    oversized.extend(std::iter::repeat_n(b'a', 256 * 1024));
    oversized.extend_from_slice(b"\r\n\r\n");
    if let Ok(response) = exchange(daemon.addr(), &oversized) {
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 431"),
            "oversized head got: {}",
            &response[..response.len().min(200)]
        );
    }

    assert_eq!(status_of(&daemon, "/health"), 200);
    assert!(!daemon.has_exited());
}

#[test]
fn accept_errors_from_descriptor_exhaustion_are_survived() {
    // With 64 descriptors the daemon runs out long before our 200 clients do.
    let mut daemon = Builder::new().fd_limit(64).spawn();
    daemon.wait_ready();
    let hogs: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(daemon.addr()).unwrap())
        .collect();
    daemon.expect_log("accept failed; the server keeps running");
    let served = wait_until(SOON, || {
        daemon
            .request("GET", "/health")
            .is_ok_and(|(code, _)| code == 200)
    });
    assert!(served, "no fresh client served after EMFILE");
    drop(hogs);
    assert!(!daemon.has_exited(), "EMFILE killed it");
    assert!(daemon.wait_status("/health", 200));
}

#[cfg(feature = "failpoints")]
#[test]
fn liveness_fails_when_init_outlasts_the_startup_grace() {
    // An init that hangs must not stay "alive" for ever.
    let daemon = Builder::new()
        .env("STARTUP_GRACE", "500ms")
        .env("FAILPOINTS", "daemon::init=sleep(20000)")
        .spawn();
    daemon.expect_log(crate::kit::daemon::LISTENING);
    assert!(daemon.wait_status("/livez", 503), "/livez stayed 200");
    let (_, body) = daemon.get("/livez");
    assert!(body.contains("startup grace"), "{body}");
    assert_eq!(daemon.get("/readyz").0, 503);
}
