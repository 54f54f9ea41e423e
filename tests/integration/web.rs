//! `tradingbot web` without a browser: its access rule, its health, and
//! reading bots only through their read API (fakes that keep to the
//! contract, answer garbage, or hang).

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use tradingbot::http::route::{Auth, Declared, Methods, Path};

use crate::kit::daemon::{Builder, BIN};
use crate::kit::http::walk_routes;
use crate::kit::journal::signal_line;
use crate::kit::process::SIGTERM;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::web::*;

const TOKEN: &str = "dash-t0ken";

fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

/// A token file in a temp dir kept alive by the caller.
fn token_file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(content.as_bytes()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn web_refuses_to_show_positions_off_loopback_without_a_token() {
    let output = std::process::Command::new(BIN)
        .env_clear()
        .args(["web", "--bot", "a=http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--token-file (WEB_TOKEN_FILE)") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn web_guards_everything_but_health_with_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(&dir, "web-token", &format!("{TOKEN}\n"));
    let bot = FakeBot::start(Mode::Good, None);
    let web = Web::start(
        &["--bot", &format!("a={}", bot.url()), "--token-file", &file],
        &[],
    );

    let (code, _, body) = web.get("/health", &[]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        "serving"
    );

    for path in ["/", "/bot/a", "/api/fleet", "/api/bot/a", "/assets/app.js"] {
        let (code, headers, _) = web.get(path, &[]);
        assert_eq!(code, 401, "{path}");
        assert!(headers["www-authenticate"].starts_with("Basic "), "{path}");
        let (code, ..) = web.get(path, &[("Authorization", "Bearer wrong")]);
        assert_eq!(code, 401, "{path}");
    }
    let (name, value) = bearer();
    let (code, headers, body) = web.get("/", &[(name, &value)]);
    assert_eq!(code, 200);
    assert!(body.contains("/assets/app.js"));
    assert!(headers["content-security-policy"].contains("default-src 'none'"));
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("anyone:{TOKEN}"))
    );
    assert_eq!(web.get("/api/fleet", &[("Authorization", &basic)]).0, 200);
    assert_eq!(web.get(&format!("/api/fleet?token={TOKEN}"), &[]).0, 200);

    // A bookmark with ?token=: a cookie, and the address without the token.
    let (code, headers, _) = web.get(&format!("/bot/a?token={TOKEN}"), &[]);
    assert_eq!(code, 303);
    assert_eq!(headers["location"], "/bot/a");
    let cookie = headers["set-cookie"].split(';').next().unwrap().to_owned();
    assert!(headers["set-cookie"].contains("HttpOnly"));
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds a digest, not the token"
    );
    assert_eq!(web.get("/api/fleet", &[("Cookie", &cookie)]).0, 200);
    assert_eq!(web.get("/bot/a", &[("Cookie", &cookie)]).0, 200);
    assert_eq!(web.get("/bot/nobody", &[("Cookie", &cookie)]).0, 404);
    assert_eq!(web.daemon.log.count(TOKEN), 0, "a token in the log");
}

/// The dashboard's routes: the test knows each, and fails on one it does
/// not, so a new route comes with its line here.
fn dashboard_routes() -> Vec<Declared> {
    let get = |path, auth| Declared {
        path,
        methods: Methods::Get,
        auth,
    };
    vec![
        get(Path::Is("/health"), Auth::None),
        get(Path::Is("/"), Auth::Read),
        get(
            Path::Below {
                prefix: "/bot/",
                label: "/bot",
            },
            Auth::Read,
        ),
        get(Path::Is("/assets/app.js"), Auth::Read),
        get(Path::Is("/assets/style.css"), Auth::Read),
        get(Path::Is("/api/fleet"), Auth::Read),
        get(
            Path::Below {
                prefix: "/api/bot/",
                label: "/api/bot",
            },
            Auth::Read,
        ),
    ]
}

#[test]
fn every_dashboard_route_takes_only_its_methods_and_nothing_beside_it_answers() {
    assert_eq!(tradingbot::dashboard_routes(), dashboard_routes());
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(&dir, "web-token", TOKEN);
    let bot = FakeBot::start(Mode::Good, None);
    let web = Web::start(
        &["--bot", &format!("x={}", bot.url()), "--token-file", &file],
        &[],
    );
    walk_routes(
        std::net::SocketAddr::from(([127, 0, 0, 1], web.port)),
        &dashboard_routes(),
    );
}

#[test]
fn web_on_loopback_without_a_token_is_open() {
    let bot = FakeBot::start(Mode::Good, None);
    let web = Web::start(&["--bot", &format!("a={}", bot.url())], &[]);
    assert_eq!(web.get("/", &[]).0, 200);
    assert_eq!(web.get("/api/fleet", &[]).0, 200);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let code = agent
        .post(web.url("/api/fleet"))
        .send("x")
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 405, "reads only");
}

#[test]
fn web_reads_bots_only_through_their_api_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_file(&dir, "bot-tokens", "# read tokens\nalpha=read-alpha\n");
    let alpha = FakeBot::start(Mode::Good, Some("read-alpha"));
    let beta = FakeBot::start(Mode::Good, None);
    alpha.set_status(json!({"max_signal_age_seconds": 60.0, "last_signal_age_seconds": 75.0}));
    alpha.set_positions(json!({
        "positions": [{"symbol": "BTC", "qty": 2.0, "avg_price": 100.5, "realized_pnl": 12.25,
                       "cash": -201.0, "last_price": 101.0}],
        "realized_pnl": 12.25, "cash": -201.0, "last_seq": 0,
    }));
    beta.push(
        json!({"type": "reject", "id": "r1", "at": 1714557600000_i64,
        "reason": "bad_json", "detail": "<b>not</b> json", "src": "stdin"}),
    );
    let web = Web::start(
        &[
            "--bot",
            &format!("alpha={},beta={}", alpha.url(), beta.url()),
            "--bot-tokens-file",
            &tokens,
        ],
        &[],
    );

    assert!(wait_until(SOON, || {
        web.fleet_bot("alpha")["state"] == "up" && web.fleet_bot("beta")["state"] == "up"
    }));
    let summary = web.fleet_bot("alpha");
    assert_eq!(summary["status"], "healthy");
    assert_eq!(summary["level"], "ok");
    assert_eq!(
        summary["signal_level"], "warn",
        "past MAX_SIGNAL_AGE: {summary}"
    );
    assert_eq!(summary["realized_pnl"], 12.25);
    assert_eq!(summary["positions"][0]["avg_price"], 100.5);
    assert_eq!(summary["fsync_seconds"]["p99"], 0.0021);

    // The stream: a new fill reaches the dashboard's API within a second.
    let detail = web.json("/api/bot/alpha");
    let revision = detail["revision"].as_u64().unwrap();
    let sent = Instant::now();
    let seq = alpha.push(
        json!({"type": "fill", "id": "f1", "ts": 1, "at": 1714557600000_i64,
        "symbol": "BTC", "side": "buy", "qty": 1.0, "price": 101.0, "src": "stdin"}),
    );
    let found = wait_until(Duration::from_secs(1), || {
        let detail = web.json(&format!("/api/bot/alpha?wait={revision}&after=0"));
        detail["trades"]
            .as_array()
            .unwrap()
            .iter()
            .any(|trade| trade["seq"] == seq && trade["id"] == "f1")
    });
    assert!(found, "the fill did not arrive within 1 s");
    assert!(sent.elapsed() < Duration::from_secs(1));
    // Beta's stream is read on a thread of its own: "up" (its poll) can
    // come before the reject it holds.
    let mut beta_detail = serde_json::Value::Null;
    assert!(
        wait_until(SOON, || {
            beta_detail = web.json("/api/bot/beta");
            !beta_detail["trades"][0].is_null()
        }),
        "beta's reject never reached the dashboard: {beta_detail}"
    );
    assert_eq!(beta_detail["trades"][0]["reason"], "bad_json");
    assert_eq!(beta_detail["trades"][0]["detail"], "<b>not</b> json");

    // Nothing but reads of the read API, each with that bot's own token.
    for (bot, token) in [(&alpha, Some("Bearer read-alpha")), (&beta, None)] {
        let requests = bot.requests();
        assert!(requests.len() >= 3, "{requests:?}");
        for (method, path, authorization) in requests {
            assert_eq!(method, "GET", "{path}");
            assert!(
                path.starts_with("/api/v1/status")
                    || path.starts_with("/api/v1/positions")
                    || path.starts_with("/events?after="),
                "{path}"
            );
            assert_eq!(authorization.as_deref(), token, "{path}");
        }
    }
}

#[test]
fn a_bot_that_answers_garbage_or_hangs_slows_nothing() {
    let good = FakeBot::start(Mode::Good, None);
    let garbage = FakeBot::start(Mode::Garbage, None);
    let hang = FakeBot::start(Mode::Hang, None);
    let web = Web::start(
        &[
            "--bot",
            &format!(
                "garbage={},hang={},good={}",
                garbage.url(),
                hang.url(),
                good.url()
            ),
        ],
        &[],
    );
    assert!(wait_until(SOON, || {
        let fleet = web.json("/api/fleet");
        fleet["bots"][0]["state"] == "unreachable"
            && fleet["bots"][1]["state"] == "unreachable"
            && fleet["bots"][2]["state"] == "up"
    }));
    let fleet = web.json("/api/fleet");
    let error = |index: usize| fleet["bots"][index]["error"].as_str().unwrap().to_owned();
    assert!(error(0).starts_with("invalid answer"), "{}", error(0));
    assert!(error(1).starts_with("no answer within 1s"), "{}", error(1));
    assert_eq!(fleet["bots"][0]["level"], "bad");

    // Every answer fast, and the good bot's figures fresh, for a while.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let asked = Instant::now();
        let fleet = web.json("/api/fleet");
        assert!(
            asked.elapsed() < Duration::from_millis(300),
            "{:?}",
            asked.elapsed()
        );
        let contact = fleet["bots"][2]["contact_age_seconds"].as_f64().unwrap();
        assert!(contact < 1.0, "the good bot was last read {contact}s ago");
        std::thread::sleep(Duration::from_millis(100));
    }
    let seq = good.push(json!({"type": "fill", "id": "g1", "at": 1714557600000_i64,
        "symbol": "ETH", "side": "sell", "qty": 0.5, "price": 3000.0, "src": "stdin"}));
    assert!(wait_until(Duration::from_secs(1), || {
        web.json("/api/bot/good")["trades"]
            .as_array()
            .unwrap()
            .iter()
            .any(|trade| trade["seq"] == seq)
    }));
}

#[test]
fn a_bot_that_goes_away_is_unreachable_then_back() {
    let bot = FakeBot::start(Mode::Good, None);
    let addr = bot.addr;
    bot.push(
        json!({"type": "fill", "id": "x1", "at": 1, "symbol": "BTC", "side": "buy",
        "qty": 1.0, "price": 10.0, "src": "stdin"}),
    );
    let web = Web::start(&["--bot", &format!("a={}", bot.url())], &[]);
    assert!(wait_until(SOON, || {
        web.json("/api/bot/a")["trades"][0]["id"] == "x1"
    }));
    drop(bot);
    // A poll in flight at that moment may see the connection reset first.
    assert!(wait_until(SOON, || {
        web.fleet_bot("a")["error"] == "connection refused"
    }));
    let summary = web.fleet_bot("a");
    assert_eq!(summary["state"], "unreachable", "{summary}");
    assert_eq!(summary["level"], "bad");
    assert_eq!(
        web.json("/api/bot/a")["trades"][0]["id"],
        "x1",
        "what was read stays"
    );

    let first = json!({"type": "fill", "id": "x1", "at": 1, "symbol": "BTC", "side": "buy",
        "qty": 1.0, "price": 10.0, "src": "stdin"});
    let second = json!({"type": "fill", "id": "x2", "at": 2, "symbol": "BTC",
        "side": "sell", "qty": 1.0, "price": 11.0, "src": "stdin"});
    let _back = FakeBot::again(addr, Mode::Good, None, &[first, second]);
    let seq = 2;
    assert!(wait_until(SOON, || web.fleet_bot("a")["state"] == "up"));
    assert!(wait_until(SOON, || {
        let trades = web.json("/api/bot/a?after=0")["trades"].clone();
        trades
            .as_array()
            .unwrap()
            .iter()
            .any(|trade| trade["seq"] == seq)
    }));
    let trades = web.json("/api/bot/a")["trades"].clone();
    let ids: Vec<&str> = trades
        .as_array()
        .unwrap()
        .iter()
        .map(|trade| trade["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["x1", "x2"], "resumed without a gap or a repeat");
}

#[test]
fn sigterm_stops_the_dashboard_at_once_even_with_requests_waiting() {
    let bot = FakeBot::start(Mode::Good, None);
    let mut web = Web::start(&["--bot", &format!("a={}", bot.url())], &[]);
    let revision = web.json("/api/fleet")["revision"].as_u64().unwrap();
    let url = web.url(&format!("/api/fleet?wait={revision}"));
    let waiting = std::thread::spawn(move || get(&url, &[]));
    std::thread::sleep(Duration::from_millis(200));
    let stopped = Instant::now();
    web.daemon.signal(SIGTERM);
    let status = web.daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", web.daemon.log.dump());
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    let _ = waiting.join();
}

#[test]
fn web_shows_a_row_per_source_of_a_real_bot_down_in_red() {
    let builder = Builder::new();
    let feed = builder.dir().join("feed.jsonl");
    std::fs::write(&feed, signal_line("t1", "BTC", "buy", 1.0, Some(100.0))).unwrap();
    let sources = builder.dir().join("sources.toml");
    std::fs::write(
        &sources,
        format!(
            "[[source]]\nname = \"tail\"\nkind = \"file\"\npath = {:?}\n\n\
             [[source]]\nname = \"feed\"\nkind = \"exec\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n",
            feed.display().to_string()
        ),
    )
    .unwrap();
    let bot = builder
        .env("SOURCES_FILE", &sources)
        .env("API_TOKEN", "read-real")
        .env("EXEC_BACKOFF", "100ms")
        .env("EXEC_BACKOFF_MAX", "200ms")
        .spawn();
    bot.wait_ready();
    let web = Web::start(
        &[
            "--bot",
            &format!("real=http://{}", bot.addr()),
            "--bot-tokens",
            "real=read-real",
        ],
        &[],
    );

    let row = |name: &str| {
        let sources = web.fleet_bot("real")["sources"].clone();
        sources
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["name"] == name).cloned())
            .unwrap_or_default()
    };
    assert!(
        wait_until(SOON, || row("feed")["reconnects"].as_u64() >= Some(2)
            && !row("tail")["last_signal_age_seconds"].is_null()),
        "{}",
        web.fleet_bot("real")
    );
    let tail = row("tail");
    assert_eq!(tail["kind"], "file");
    assert_eq!(tail["status"], "up");
    assert_eq!(tail["level"], "ok");
    assert!(
        tail["last_message_age_seconds"].as_f64().unwrap() < 60.0,
        "{tail}"
    );
    let feed = row("feed");
    assert_eq!(feed["kind"], "exec");
    assert!(
        feed["last_error"]
            .as_str()
            .unwrap()
            .starts_with("feed process exited (exit status: 3)"),
        "{feed}"
    );
    // Down between its restarts (each of which it dies at once): red.
    assert!(
        wait_until(SOON, || row("feed")["level"] == "bad"),
        "never shown down: {}",
        row("feed")
    );
    let summary = web.fleet_bot("real");
    assert_eq!(summary["level"], "warn", "degraded by its feed: {summary}");
    let detail = web.json("/api/bot/real");
    assert_eq!(detail["sources"].as_array().unwrap().len(), 2, "{detail}");
    let (_, _, page) = web.get("/bot/real", &[]);
    assert!(page.contains("<table id=\"sources\""), "{page}");
}
