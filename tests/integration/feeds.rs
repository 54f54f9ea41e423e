//! Feeds end to end: the real daemon, given a sources file, reading the
//! kit's fakes on loopback (RTDS over WebSocket, plain and TLS; a
//! Whop-shaped paged API) with their bad days, and what it tells of each
//! source: fills in the journal and the read API, `/health`,
//! `/api/v1/status`, metrics and the event stream. The shipped samples are
//! used as they are, only pointed at the fakes with short intervals.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kit::daemon::{Builder, Daemon};
use crate::kit::decimal::{self, scaled};
use crate::kit::feeds::paged::{Answer, Paged, TOKEN};
use crate::kit::feeds::rtds::{trade, Rtds, WALLET};
use crate::kit::journal::signal_line;
use crate::kit::sources::{rtds_sources, whop_sample, with_sources, READ_TOKEN, RTDS};
use crate::kit::tls::TestCa;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::webhook::post_signals;

/// The Whop sample's source name.
const WHOP: &str = "whop-alerts";

/// The fake drops a client that sent no text `ping` for this long: five
/// of the daemon's 200 ms pings.
const PING_WITHIN: Duration = Duration::from_secs(1);

/// A daemon reading the sources in `sources`, with the read API on.
fn feed_bot(sources: &str) -> Builder {
    with_sources(Builder::new(), sources)
}

/// An RTDS fake, and a daemon reading it by the sample (pinging every
/// 200 ms), its source up.
fn rtds_up(quiet_after: &str) -> (Rtds, Daemon) {
    let rtds = Rtds::start_with(Some(PING_WITHIN), None);
    let daemon = feed_bot(&rtds_sources(&rtds.url(), "200ms", quiet_after, "")).spawn();
    daemon.wait_ready();
    daemon.wait_source(RTDS, "up");
    (rtds, daemon)
}

fn wait_filled(daemon: &Daemon, count: usize) {
    daemon.wait_metric("signals_total", &[("result", "filled")], count as f64);
}

/// `tradingbot_source_messages_total` of source `name` by result.
fn messages(daemon: &Daemon, name: &str, result: &str) -> f64 {
    daemon
        .metric(
            "source_messages_total",
            &[("source", name), ("result", result)],
        )
        .unwrap_or(0.0)
}

/// The RTDS symbol of a trade of `slug` (the sample joins slug and outcome).
fn rtds_symbol(slug: &str) -> String {
    format!("{slug}:Yes")
}

/// The `source` events of the event stream.
struct SourceEvents {
    socket: tungstenite::WebSocket<TcpStream>,
}

impl SourceEvents {
    fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(SOON)).unwrap();
        let url = format!("ws://{addr}/ws?token={READ_TOKEN}&types=source");
        let (socket, _) = tungstenite::client(url, stream).unwrap();
        SourceEvents { socket }
    }

    /// Reads events until source `name` is `status`; returns that event.
    fn expect(&mut self, name: &str, status: &str) -> Value {
        let mut seen = Vec::new();
        loop {
            let message = self
                .socket
                .read()
                .unwrap_or_else(|error| panic!("no {name} {status} event ({error}): {seen:?}"));
            let tungstenite::Message::Text(text) = message else {
                continue;
            };
            let event: Value = serde_json::from_str(&text).unwrap();
            if event["type"] == "source" && event["source"] == name && event["status"] == status {
                return event;
            }
            seen.push(event);
        }
    }
}

#[test]
fn rtds_trades_become_fills_by_the_shipped_mapping_with_the_subscribe_and_the_text_ping() {
    let (rtds, mut daemon) = rtds_up("5m");
    rtds.push_trade(&trade("fed-cut-june", "BUY", 12.5, 0.53));
    rtds.push_trades(&[
        trade("fed-cut-june", "SELL", 2.5, 0.55),
        trade("rain-in-nyc", "BUY", 4.0, 0.21),
    ]);
    wait_filled(&daemon, 3);

    let fills = daemon.records("fill");
    let seen: Vec<(&str, &str, i128, i128, &str)> = fills
        .iter()
        .map(|fill| {
            (
                fill["symbol"].as_str().unwrap(),
                fill["side"].as_str().unwrap(),
                decimal::of(&fill["qty"]),
                decimal::of(&fill["price"]),
                fill["src"].as_str().unwrap(),
            )
        })
        .collect();
    let june = rtds_symbol("fed-cut-june");
    let rain = rtds_symbol("rain-in-nyc");
    assert_eq!(
        seen,
        [
            (june.as_str(), "buy", scaled("12.5"), scaled("0.53"), RTDS),
            (june.as_str(), "sell", scaled("2.5"), scaled("0.55"), RTDS),
            (rain.as_str(), "buy", scaled("4"), scaled("0.21"), RTDS),
        ]
    );
    // The id joins the transaction hash, the wallet and the outcome.
    let id = fills[0]["id"].as_str().unwrap();
    assert!(
        id.starts_with("0x") && id.ends_with(&format!(":{WALLET}:0")),
        "{id}"
    );
    let page = daemon.api("/api/v1/fills");
    let listed: Vec<&str> = page["fills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fill| fill["id"].as_str().unwrap())
        .collect();
    let journaled: Vec<&str> = fills
        .iter()
        .map(|fill| fill["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, journaled);

    // Two seconds of text pings against a server that drops a client
    // silent for one: one socket, subscribed once, never dropped.
    let seen = rtds.wait("ten pings", |seen| seen.pings >= 10);
    assert_eq!(
        (
            seen.connects.len(),
            seen.subscribes,
            seen.dropped_for_no_ping
        ),
        (1, 1, 0),
        "{seen:?}"
    );
    assert_eq!(messages(&daemon, RTDS, "mapped"), 3.0);
    assert_eq!(daemon.metric("source_up", &[("source", RTDS)]), Some(1.0));
    let (code, health) = daemon.health();
    assert_eq!((code, health["status"].as_str()), (200, Some("healthy")));
    assert!(daemon.stop().success());
}

#[test]
fn a_feed_that_answers_pings_but_sends_nothing_goes_quiet_is_replaced_and_comes_back() {
    let (rtds, mut daemon) = rtds_up("1s");
    let mut events = SourceEvents::open(daemon.addr());
    rtds.push_trade(&trade("fed-cut-june", "BUY", 1.0, 0.5));
    wait_filled(&daemon, 1);

    // Frozen: pings answered, nothing sent (what is pushed is held).
    rtds.set_silent(true);
    rtds.push_trade(&trade("fed-cut-june", "SELL", 1.0, 0.6));
    let quiet = events.expect(RTDS, "quiet");
    assert!(
        quiet["problem"]
            .as_str()
            .is_some_and(|problem| problem.contains("no signal for 1s")),
        "{quiet}"
    );
    daemon.wait_source(RTDS, "quiet");
    let (code, health) = daemon.health();
    assert_eq!(code, 200, "quiet is degraded, not down: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reasons"].to_string().contains(RTDS),
        "the reasons name the source: {health}"
    );
    assert_eq!(daemon.metric("source_up", &[("source", RTDS)]), Some(0.0));
    let seen = rtds.wait("a new socket, subscribed again", |seen| {
        seen.connects.len() >= 2 && seen.subscribes >= 2
    });
    assert_eq!(seen.dropped_for_no_ping, 0, "{seen:?}");
    daemon.wait_metric("source_reconnects_total", &[("source", RTDS)], 1.0);

    // Data returns: the held trade maps, and the source is up again.
    rtds.set_silent(false);
    wait_filled(&daemon, 2);
    let up = daemon.wait_source(RTDS, "up");
    events.expect(RTDS, "up");
    assert!(
        up["last_signal_age_seconds"].as_f64().unwrap() < 5.0,
        "{up}"
    );
    assert_eq!(daemon.metric("source_up", &[("source", RTDS)]), Some(1.0));
    assert!(wait_until(SOON, || daemon.health().1["status"] == "healthy"));
    assert!(daemon.stop().success());
}

#[test]
fn garbage_binary_oversized_and_foreign_frames_are_counted_or_rejected_and_mapping_goes_on() {
    let (rtds, mut daemon) = rtds_up("5m");
    let mut no_size = trade("fed-cut-june", "BUY", 1.0, 0.5);
    no_size["payload"].as_object_mut().unwrap().remove("size");
    rtds.push_text("this is not json");
    rtds.push_binary(&[0xff, 0xfe, 0x00, 0x7b]);
    rtds.push_binary(trade("binary-json", "BUY", 1.0, 0.5).to_string().as_bytes());
    rtds.push_text(r#"{"topic":"comments","type":"comment_created","payload":{}}"#);
    rtds.push_trade(&no_size);
    rtds.push_trade(&trade("after-the-garbage", "SELL", 2.0, 0.4));
    wait_filled(&daemon, 2);
    daemon.wait_metric(
        "source_messages_total",
        &[("source", RTDS), ("result", "unmapped")],
        3.0,
    );
    assert_eq!(messages(&daemon, RTDS, "ignored"), 1.0);
    assert_eq!(messages(&daemon, RTDS, "mapped"), 2.0);
    let rejects = daemon.records("reject");
    let reasons: Vec<(&str, &str)> = rejects
        .iter()
        .map(|reject| {
            (
                reject["reason"].as_str().unwrap(),
                reject["detail"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{rejects:?}");
    assert_eq!(reasons[0].0, "not_json", "{rejects:?}");
    assert!(
        matches!(reasons[1].0, "invalid_utf8" | "not_json"),
        "{rejects:?}"
    );
    assert_eq!(
        reasons[2],
        ("unmapped", "/payload/size (qty) missing"),
        "{rejects:?}"
    );
    assert!(rejects.iter().all(|reject| reject["src"] == RTDS));

    // A frame over the client's limit is refused from its header: that
    // socket cannot go on, so a new one is opened and subscribed.
    rtds.push_oversized((1 << 20) + 1);
    let down = daemon.wait_source(RTDS, "down");
    assert!(
        down["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("a frame over the 1024 KiB limit")),
        "{down}"
    );
    rtds.wait("a new socket, subscribed", |seen| seen.subscribes == 2);
    daemon.wait_source(RTDS, "up");
    rtds.push_trade(&trade("after-the-reconnect", "BUY", 3.0, 0.7));
    wait_filled(&daemon, 3);
    let last = daemon.records("fill").pop().unwrap();
    assert_eq!(last["symbol"], rtds_symbol("after-the-reconnect"));
    let (code, health) = daemon.health();
    assert_eq!((code, &health["status"]), (200, &Value::from("healthy")));
    assert!(daemon.stop().success());
}

#[test]
fn tls_with_the_test_ca_fills_and_without_it_the_source_is_down_with_the_error() {
    let ca = TestCa::new();
    let rtds = Rtds::start_with(Some(PING_WITHIN), Some(ca.server_config()));
    assert!(rtds.url().starts_with("wss://"));
    let trusting = format!("ca_file = {:?}", ca.pem_path.display().to_string());
    let mut daemon = feed_bot(&rtds_sources(&rtds.url(), "200ms", "5m", &trusting)).spawn();
    daemon.wait_ready();
    daemon.wait_source(RTDS, "up");
    rtds.push_trade(&trade("over-tls", "BUY", 1.0, 0.5));
    wait_filled(&daemon, 1);
    assert!(daemon.stop().success());

    let mut refusing = feed_bot(&rtds_sources(&rtds.url(), "200ms", "5m", "")).spawn();
    refusing.wait_ready();
    let down = refusing.wait_source(RTDS, "down");
    let error = down["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{down}"
    );
    let (code, health) = refusing.health();
    assert_eq!((code, &health["status"]), (200, &Value::from("degraded")));
    assert!(health["reasons"].to_string().contains(RTDS), "{health}");
    assert_eq!(rtds.seen().subscribes, 1, "only the trusting daemon got in");
    assert!(refusing.stop().success());
}

#[test]
fn a_trade_sent_again_after_a_reconnect_is_a_duplicate_filled_once() {
    let (rtds, mut daemon) = rtds_up("5m");
    rtds.push_trade(&trade("fed-cut-june", "BUY", 1.0, 0.5));
    wait_filled(&daemon, 1);
    rtds.close_all();
    rtds.wait("a new socket, subscribed", |seen| seen.subscribes == 2);
    rtds.replay(1);
    rtds.push_trade(&trade("fed-cut-june", "SELL", 1.0, 0.6));
    wait_filled(&daemon, 2);
    daemon.wait_metric("duplicates_total", &[], 1.0);
    let ids: Vec<String> = daemon
        .records("fill")
        .iter()
        .map(|fill| fill["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        messages(&daemon, RTDS, "mapped"),
        3.0,
        "the replay was read"
    );
    let status = daemon.api("/api/v1/status");
    assert_eq!(
        (&status["fills_total"], &status["duplicates_total"]),
        (&Value::from(2), &Value::from(1))
    );
    assert_eq!(daemon.source(RTDS)["reconnects"], 1);
    assert!(daemon.stop().success());
}

/// A daemon polling `paged` by the shipped Whop sample.
fn whop_bot(paged: &Paged) -> Daemon {
    let builder = Builder::new();
    let sources = whop_sample(builder.dir(), &paged.url());
    let daemon = with_sources(builder, &sources).spawn();
    daemon.wait_ready();
    daemon
}

/// (id, symbol, side, qty, price) of each fill in the journal.
fn fill_rows(daemon: &Daemon) -> Vec<(String, String, String, i128, i128)> {
    daemon
        .records("fill")
        .iter()
        .map(|fill| {
            (
                fill["id"].as_str().unwrap().to_owned(),
                fill["symbol"].as_str().unwrap().to_owned(),
                fill["side"].as_str().unwrap().to_owned(),
                decimal::of(&fill["qty"]),
                decimal::of(&fill["price"]),
            )
        })
        .collect()
}

fn row(
    id: &str,
    symbol: &str,
    side: &str,
    qty: &str,
    price: &str,
) -> (String, String, String, i128, i128) {
    (
        id.into(),
        symbol.into(),
        side.into(),
        scaled(qty),
        scaled(price),
    )
}

#[test]
fn whop_alerts_written_for_people_are_polled_page_by_page_and_parsed_by_the_shipped_regex() {
    let paged = Paged::start(2);
    paged.post("BUY 0.5 BTC-USD @ 64000");
    paged.post_as("system", "alice joined the channel");
    paged.post("gm everyone, big day today");
    paged.post("short 2 ETH/USD @ 3100.25");
    paged.post("long 10 SOL-USD @ 150");
    let daemon = whop_bot(&paged);
    wait_filled(&daemon, 3);
    assert_eq!(
        fill_rows(&daemon),
        [
            row("msg_1", "BTC-USD", "buy", "0.5", "64000"),
            row("msg_4", "ETH/USD", "sell", "2", "3100.25"),
            row("msg_5", "SOL-USD", "buy", "10", "150"),
        ]
    );
    assert_eq!(
        messages(&daemon, WHOP, "ignored"),
        2.0,
        "a join and chatter"
    );
    assert_eq!(messages(&daemon, WHOP, "unmapped"), 0.0);
    // Three pages of two, then the cursor's end answered 304 with its ETag.
    let asked = paged.wait("a 304", |asked| asked.iter().any(|one| one.status == 304));
    let cursors: Vec<Option<&str>> = asked.iter().map(|one| one.cursor.as_deref()).collect();
    assert_eq!(cursors[..4], [None, Some("2"), Some("4"), Some("5")]);
    assert!(asked.iter().all(|one| one.authorized), "{asked:#?}");
    let not_modified = asked.iter().find(|one| one.status == 304).unwrap();
    assert_eq!(not_modified.if_none_match.as_deref(), Some(r#""5-5""#));
    let decided = daemon.records("fill").len() + daemon.records("reject").len();
    assert_eq!(decided, 3, "a 304 decides nothing");
    assert_eq!(daemon.wait_source(WHOP, "up")["last_error"], Value::Null);
}

#[test]
fn a_poller_waits_out_a_429s_retry_after_and_an_answer_past_its_timeout_then_goes_on() {
    let paged = Paged::start(10);
    paged.post("BUY 1 BTC-USD @ 64000");
    let mut daemon = whop_bot(&paged);
    wait_filled(&daemon, 1);
    paged.wait("a 304", |asked| asked.iter().any(|one| one.status == 304));

    paged.then(Answer::TooMany("2".into()));
    paged.then(Answer::Hang);
    paged.post("SELL 1 BTC-USD @ 65000");
    let down = daemon.wait_source(WHOP, "down");
    assert_eq!(down["last_error"], "HTTP 429", "{down}");
    let (code, health) = daemon.health();
    assert_eq!((code, &health["status"]), (200, &Value::from("degraded")));
    assert!(wait_until(SOON, || {
        daemon.source(WHOP)["last_error"] == "no answer within 1s"
    }));
    wait_filled(&daemon, 2);
    daemon.wait_source(WHOP, "up");

    let asked = paged.asked();
    let too_many = asked.iter().position(|one| one.status == 429).unwrap();
    let (refused, hung, answered) = (&asked[too_many], &asked[too_many + 1], &asked[too_many + 2]);
    assert_eq!((hung.status, answered.status), (0, 200), "{asked:#?}");
    let after_429 = hung.at - refused.at;
    assert!(
        after_429 >= Duration::from_secs(2) && after_429 < Duration::from_secs(4),
        "Retry-After: 2 waited {after_429:?}"
    );
    // The timeout, then at least the backoff's first wait.
    assert!(
        answered.at - hung.at >= Duration::from_secs(2),
        "{asked:#?}"
    );
    assert_eq!(
        fill_rows(&daemon)[1],
        row("msg_2", "BTC-USD", "sell", "1", "65000")
    );
    assert!(daemon.source(WHOP)["reconnects"].as_u64().unwrap() >= 2);
    assert!(daemon.stop().success());
}

const WEBHOOK_TOKEN: &str = "feeds-wr1te-t0ken-9876543210";

/// A webhook that takes an alert service's own JSON, mapped.
const FOREIGN_WEBHOOK: &str = r#"
[[source]]
name = "alerts-hook"
kind = "webhook"

[source.map]
when = { "/event" = "order" }
id = "/alert/uid"
symbol = "/alert/ticker"
side = "/alert/action"
qty = "/alert/contracts"
price = "/alert/close"
ts = "/alert/time"
ts_unit = "rfc3339"
side_values = { long = "buy", short = "sell" }
"#;

#[test]
fn a_webhook_with_a_mapping_takes_a_foreign_json_shape() {
    let mut daemon = feed_bot(FOREIGN_WEBHOOK)
        .env("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .spawn();
    daemon.wait_ready();
    let post = |body: &str| post_signals(daemon.addr(), WEBHOOK_TOKEN, body.as_bytes()).unwrap();
    let order = r#"{"event":"order","alert":{"uid":"o-1","ticker":"BTCUSDT","action":"long","contracts":"0.5","close":"64000.5","time":"2024-05-01T12:00:00Z"}}"#;
    let (code, body) = post(order);
    assert_eq!(code, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["results"][0]["result"], "filled", "{answer}");
    assert_eq!(answer["results"][0]["id"], "o-1", "{answer}");
    assert_eq!(
        fill_rows(&daemon),
        [row("o-1", "BTCUSDT", "buy", "0.5", "64000.5")]
    );
    let (code, body) = post(order);
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("duplicate"), "sent again: {body}");

    let no_size = r#"{"event":"order","alert":{"uid":"o-2","ticker":"BTCUSDT","action":"short","close":"64000.5","time":"2024-05-01T12:00:00Z"}}"#;
    let (code, body) = post(no_size);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("unmapped") && body.contains("/alert/contracts (qty) missing"),
        "{body}"
    );
    let rejects = daemon.records("reject");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0]["src"], "alerts-hook");

    // Another kind of event to the same URL: not for the mapping, so
    // counted and answered as ignored, neither refused nor decided.
    let (code, body) = post(r#"{"event":"heartbeat","at":"2024-05-01T12:00:00Z"}"#);
    assert_eq!(code, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["results"][0]["result"], "ignored", "{answer}");
    assert_eq!(daemon.journal().len(), 2, "a fill and a reject");
    assert_eq!(messages(&daemon, "alerts-hook", "mapped"), 2.0);
    assert_eq!(messages(&daemon, "alerts-hook", "unmapped"), 1.0);
    assert_eq!(messages(&daemon, "alerts-hook", "ignored"), 1.0);
    assert!(daemon.stop().success());
}

#[test]
fn sigterm_during_a_connect_a_backoff_and_a_hanging_poll_stops_within_drain_timeout_losing_nothing()
{
    // Accepts connections (the kernel does) and never answers an upgrade.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let paged = Paged::start(10);
    paged.then(Answer::Hang);
    let builder = Builder::new()
        .env("DRAIN_TIMEOUT", "5s")
        .env("FILE_POLL_INTERVAL", "20ms");
    let feed = builder.dir().join("feed.jsonl");
    let lines: String = (0..20)
        .map(|index| signal_line(&format!("f{index}"), "BTC", "buy", 1.0, Some(100.0)))
        .collect();
    std::fs::write(&feed, lines).unwrap();
    let headers = builder.dir().join("poll.headers");
    std::fs::write(&headers, format!("Authorization: Bearer {TOKEN}\n")).unwrap();
    let sources = format!(
        r#"
[[source]]
name = "connecting"
kind = "ws"
url = "ws://{mute}/"
ping_interval = "10s"

[[source]]
name = "backing-off"
kind = "ws"
url = "ws://{refused}/"

[[source]]
name = "polling"
kind = "poll"
url = "{poll}"
timeout = "30s"
headers_file = {headers:?}

[[source]]
name = "file"
kind = "file"
path = {feed:?}
"#,
        mute = mute.local_addr().unwrap(),
        poll = paged.url(),
        feed = feed.display().to_string(),
        headers = headers.display().to_string(),
    );
    let mut daemon = with_sources(builder, &sources).spawn();
    daemon.wait_ready();
    wait_filled(&daemon, 20);
    daemon.wait_source("backing-off", "down");
    paged.wait("the poll in flight", |asked| !asked.is_empty());
    for name in ["connecting", "polling"] {
        let source = daemon.source(name);
        assert_eq!(source["status"], "connecting", "{source}");
    }

    let asked_to_stop = Instant::now();
    daemon.signal(crate::kit::process::SIGTERM);
    let status = daemon.wait_exit(SOON);
    let took = asked_to_stop.elapsed();
    assert!(status.success(), "{status}; log:\n{}", daemon.log.dump());
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert_eq!(daemon.records("fill").len(), 20);
}
