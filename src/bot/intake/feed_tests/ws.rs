//! The WebSocket client against the RTDS fake and the fast feed.

use std::time::{Duration, Instant};

use super::feeds::fast::FastFeed;
use super::feeds::rtds::{trade, Rtds};
use super::test_ca::TestCa;
use super::{ms, recorder, Heard, Running, QUIET_ONCE};
use crate::backoff::Backoff;
use crate::bot::intake::feed::Status;
use crate::bot::intake::headers::Headers;
use crate::bot::intake::ws::{Ping, WsClient, WsConfig, MAX_MESSAGE};

/// A client of RTDS's shape: subscribe, a text `ping` every 200 ms (so
/// dead after 600 ms without a frame), a backoff from 100 ms.
fn config(url: String) -> WsConfig {
    WsConfig {
        url,
        subscribe: vec![Rtds::subscribe_message()],
        ping: Ping::Text("ping".into()),
        ping_interval: ms(200),
        quiet_after: None,
        headers: Headers::default(),
        tls: crate::tls::rustls_client(&[]).unwrap(),
        backoff: Backoff::new(ms(100), ms(400)),
    }
}

/// A message maps when it is a trade.
fn is_trade(message: &[u8]) -> bool {
    String::from_utf8_lossy(message).contains(r#""type":"trades""#)
}

fn start(config: WsConfig) -> (Running, Heard) {
    let (sink, heard) = recorder(is_trade);
    let client = WsClient::new(config).unwrap();
    let running = Running::start(|runtime, shutdown, ended| {
        runtime.spawn(async move {
            client.run(sink, shutdown).await;
            let _ = ended.send(());
        });
    });
    (running, heard)
}

fn is_down(status: &Status) -> bool {
    matches!(status, Status::Down { .. })
}

#[test]
fn subscribes_after_every_connect_pings_in_text_and_sends_the_headers() {
    let rtds = Rtds::start_with(Some(Duration::from_secs(2)), None);
    let mut config = config(rtds.url());
    config.headers = Headers::parse("X-Api-Key: s3cretkey").unwrap();
    let (_client, mut heard) = start(config);
    heard.until("up", |heard| heard.is(&Status::Up));
    rtds.push_trade(&trade("will-it-rain", "BUY", 10.0, 0.53));
    heard.until("the trade", |heard| heard.messages().len() == 1);

    // Connected for 3 s (15 pings) against a server that drops a client
    // silent for 2 s: the pings keep it.
    let seen = rtds.wait("15 pings", |seen| seen.pings >= 15);
    assert_eq!(seen.dropped_for_no_ping, 0, "{seen:?}");
    assert_eq!((seen.connects.len(), seen.subscribes), (1, 1), "{seen:?}");
    assert_eq!(
        seen.headers[0].get("x-api-key").map(String::as_str),
        Some("s3cretkey")
    );

    rtds.close_all();
    rtds.wait("a new socket, subscribed", |seen| {
        seen.connects.len() == 2 && seen.subscribes == 2
    });
    // A service that sends a trade again after a reconnect: the client
    // hands it on again (the loop's exactly-once window decides it once).
    rtds.replay(1);
    heard.until("the trade again", |heard| heard.messages().len() == 2);
    let messages = heard.messages();
    assert_eq!(messages[0], messages[1]);
    assert!(
        heard.errors()[0].starts_with("the server closed the connection (1012"),
        "{:?}",
        heard.statuses()
    );
    assert_eq!(heard.counts().last().unwrap().reconnects, 1);
}

#[test]
fn a_connection_that_answers_nothing_is_dead_after_three_pings() {
    let rtds = Rtds::start_with(None, None);
    let (_client, mut heard) = start(config(rtds.url()));
    heard.until("up", |heard| heard.is(&Status::Up));
    rtds.set_dead(true);
    heard.until("down", |heard| {
        heard
            .errors()
            .contains(&"no frame for 600ms: the connection is dead")
    });
    rtds.set_dead(false);
    rtds.wait("a new socket, subscribed", |seen| seen.subscribes >= 2);
    heard.until("up again", |heard| heard.is(&Status::Up));
}

#[test]
fn a_feed_that_answers_pings_but_maps_nothing_is_quiet_then_replaced() {
    let rtds = Rtds::start();
    let mut config = config(rtds.url());
    config.quiet_after = Some(Duration::from_secs(1));
    let (_client, mut heard) = start(config);
    heard.until("up", |heard| heard.is(&Status::Up));
    rtds.set_silent(true);
    heard.until("quiet", |heard| heard.is(&Status::Quiet));
    let seen = rtds.wait("a new socket, subscribed", |seen| {
        seen.connects.len() >= 2 && seen.subscribes >= 2
    });
    assert!(seen.pings > 0 && seen.dropped_for_no_ping == 0, "{seen:?}");
    heard.until("the new socket counted while quiet", |heard| {
        heard.is(&Status::Quiet) && heard.counts().last().unwrap().reconnects >= 1
    });
    rtds.set_silent(false);
    rtds.push_trade(&trade("at-last", "SELL", 1.0, 0.4));
    heard.until("up once a trade maps", |heard| heard.is(&Status::Up));
    heard.drain();
    assert_eq!(heard.changes(), QUIET_ONCE.iter().collect::<Vec<_>>());
    assert_eq!(heard.messages().len(), 1);
}

#[test]
fn a_server_closing_every_connection_sees_the_backoff_not_a_storm() {
    let rtds = Rtds::start();
    rtds.set_closing(true);
    let mut config = config(rtds.url());
    config.backoff = Backoff::new(ms(250), ms(1_000));
    let (_client, mut heard) = start(config);
    let seen = rtds.wait("six connections, each subscribed", |seen| {
        seen.subscribes >= 6 && seen.subscribes == seen.connects.len()
    });
    let gaps: Vec<Duration> = seen
        .connects
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .collect();
    assert!(
        gaps.iter().all(|gap| *gap >= ms(250)),
        "no attempt before the first wait: {gaps:?}"
    );
    heard.until("a down for each close", |heard| heard.errors().len() >= 5);
    for error in heard.errors() {
        assert_eq!(
            error,
            "the server closed the connection (1012 service restart)"
        );
    }
    let reconnects: Vec<u64> = heard
        .counts()
        .iter()
        .map(|counts| counts.reconnects)
        .collect();
    assert!(reconnects.windows(2).all(|pair| pair[0] <= pair[1]));
    assert!(*reconnects.last().unwrap() >= 4, "{reconnects:?}");
}

#[test]
fn garbage_and_binary_frames_are_handed_on_and_an_oversized_one_replaces_the_socket() {
    let rtds = Rtds::start();
    let (_client, mut heard) = start(config(rtds.url()));
    heard.until("up", |heard| heard.is(&Status::Up));
    rtds.push_text("this is not json {");
    rtds.push_binary(br#"{"binary":true}"#);
    rtds.push_trades(&[trade("a", "BUY", 1.0, 0.5), trade("b", "SELL", 2.0, 0.25)]);
    heard.until("three messages", |heard| heard.messages().len() == 3);
    let messages = heard.messages();
    assert_eq!(messages[0], b"this is not json {");
    assert_eq!(messages[1], br#"{"binary":true}"#);
    assert!(messages[2].starts_with(b"[{") && is_trade(messages[2]));
    assert_eq!(rtds.seen().connects.len(), 1, "garbage ends no connection");

    rtds.push_oversized(MAX_MESSAGE + 1);
    heard.until("down", |heard| !heard.errors().is_empty());
    assert!(
        heard.errors()[0].starts_with("a frame over the 1024 KiB limit"),
        "{:?}",
        heard.errors()
    );
    rtds.wait("a new socket, subscribed", |seen| seen.subscribes == 2);
    rtds.push_trade(&trade("after", "BUY", 1.0, 0.5));
    heard.until("the trade after", |heard| heard.messages().len() == 4);
}

#[test]
fn tls_with_the_test_ca_and_refused_without_it() {
    let ca = TestCa::new();
    let rtds = Rtds::start_with(None, Some(ca.server_config()));
    assert!(rtds.url().starts_with("wss://"));
    let pem = std::fs::read(&ca.pem_path).unwrap();
    let trusted = crate::tls::parse_pem_certificates(&pem).unwrap();
    let mut config_with_ca = config(rtds.url());
    config_with_ca.tls = crate::tls::rustls_client(&trusted).unwrap();
    let (_client, mut heard) = start(config_with_ca);
    heard.until("up", |heard| heard.is(&Status::Up));
    rtds.push_trade(&trade("over-tls", "BUY", 1.0, 0.5));
    heard.until("the trade", |heard| heard.messages().len() == 1);

    let (_refused, mut refused) = start(config(rtds.url()));
    refused.until("down", |heard| !heard.errors().is_empty());
    let error = refused.errors()[0];
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert_eq!(rtds.seen().connects.len(), 1, "no handshake without the CA");
}

#[test]
fn ping_frames_keep_a_connection_whose_only_frames_are_pongs() {
    let rtds = Rtds::start_with(None, None);
    let mut config = config(rtds.url());
    config.ping = Ping::Frames;
    let (_client, mut heard) = start(config);
    heard.until("up", |heard| heard.is(&Status::Up));
    // Eight pings: 1.6 s, well past the 600 ms a connection without a
    // frame is given, with nothing but pongs coming back.
    rtds.wait("eight ping frames", |seen| seen.ping_frames >= 8);
    heard.drain();
    assert!(
        !heard.statuses().into_iter().any(is_down),
        "{:?}",
        heard.statuses()
    );
    assert_eq!(rtds.seen().connects.len(), 1);
}

#[test]
fn frames_read_together_are_handed_on_together_in_order() {
    let messages: Vec<String> = (0..20_000)
        .map(|number| trade(&format!("market-{number}"), "BUY", 1.0, 0.5).to_string())
        .collect();
    let fast = FastFeed::start(messages.clone());
    let (_client, mut heard) = start(config(fast.url()));
    heard.until("every message", |heard| {
        heard.messages().len() == messages.len()
    });
    fast.wait_blasted(1);
    assert_eq!(fast.blasted().subscribed.len(), 1, "one subscribe");
    let received = heard.messages();
    assert!(received
        .iter()
        .zip(&messages)
        .all(|(received, sent)| *received == sent.as_bytes()));
    let deliveries = heard.deliveries().len();
    assert!(
        deliveries < messages.len() / 10,
        "{deliveries} deliveries for {} messages",
        messages.len()
    );
}

#[test]
fn shutdown_ends_a_connect_a_backoff_and_a_read_at_once() {
    let bound = Duration::from_secs(5);

    // A connect: the port accepts TCP and never answers the upgrade; the
    // connect would be given 90 s.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut connecting = config(format!("ws://{}/", mute.local_addr().unwrap()));
    connecting.ping_interval = Duration::from_secs(30);
    let (client, mut heard) = start(connecting);
    heard.until("connecting", |heard| heard.is(&Status::Connecting));
    let asked = Instant::now();
    assert!(client.stops_within(bound), "stuck in a connect");
    assert!(asked.elapsed() < bound);

    // A backoff of at least 30 s after a refused connect.
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut backing_off = config(format!("ws://{refused}/"));
    backing_off.backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(60));
    let (client, mut heard) = start(backing_off);
    heard.until("down", |heard| heard.statuses().into_iter().any(is_down));
    assert!(client.stops_within(bound), "stuck in a backoff");

    // A read, connected to a feed that sends nothing; the socket is closed.
    let rtds = Rtds::start();
    let (client, mut heard) = start(config(rtds.url()));
    heard.until("up", |heard| heard.is(&Status::Up));
    assert!(client.stops_within(bound), "stuck in a read");
    rtds.wait("the socket closed", |seen| seen.open == 0);
}
