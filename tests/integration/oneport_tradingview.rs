//! The webhook on the main port, fed exactly what TradingView sends: the
//! token in the URL (it can add no header), the shipped alert template
//! pretty-printed with its placeholders filled in (numbers quoted, no id),
//! `Content-Type: application/json`, or `text/plain`.

use std::net::SocketAddr;

use crate::kit::daemon::Builder;
use crate::kit::http::http_with_body;

const TOKEN: &str = "tv-Wr1te-t0ken-5ecret";

/// The shipped template with TradingView's placeholders filled in.
fn alert(action: &str, contracts: &str, price: &str, timenow: &str) -> String {
    let template = include_str!("../../samples/tradingview-alert.json");
    template
        .replace("{{ticker}}", "BTCUSDT")
        .replace("{{strategy.order.action}}", action)
        .replace("{{strategy.order.contracts}}", contracts)
        .replace("{{strategy.order.price}}", price)
        .replace("{{timenow}}", timenow)
}

/// `{{timenow}}` as TradingView fills it in: the alert's time, some
/// minutes ago (inside the exactly-once window, as a live alert is).
fn timenow(minutes_ago: u64) -> String {
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(60 * minutes_ago);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn tradingview_bot(builder: Builder) -> Builder {
    let token_file = builder.dir().join("webhook-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    builder
        .arg("--source")
        .arg("webhook")
        .env("WEBHOOK_TOKEN_FILE", token_file)
}

/// A POST as TradingView makes it: the body, one content type, no auth header.
fn deliver(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    deliver_with(addr, path, &[("Content-Type", content_type)], body)
}

fn deliver_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let (code, answer) = http_with_body(addr, "POST", path, headers, body.as_bytes()).unwrap();
    let answer = serde_json::from_str(&answer).unwrap_or(serde_json::Value::String(answer));
    (code, answer)
}

#[test]
fn a_tradingview_alert_fills_once_on_the_main_port() {
    let mut daemon = tradingview_bot(Builder::new()).spawn();
    daemon.wait_ready();
    let addr = daemon.addr();
    let first = alert("buy", "0.5", "64000.5", &timenow(2));
    assert!(first.lines().count() > 3, "the template is pretty-printed");
    let path = format!("/signals/{TOKEN}");

    let (code, answer) = deliver(addr, &path, "application/json", &first);
    assert_eq!(code, 202, "{answer}");
    let result = &answer["results"][0];
    assert_eq!(result["result"], "filled", "{answer}");
    let id = result["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("auto-"), "{id}");
    let journaled = daemon.records("fill");
    assert_eq!(
        journaled.len(),
        1,
        "the 202 came once the fill was journaled"
    );
    assert_eq!(journaled[0]["id"], id.as_str());
    assert_eq!(journaled[0]["symbol"], "BTCUSDT");
    assert_eq!(journaled[0]["side"], "buy");
    assert_eq!(journaled[0]["qty"], "0.5");
    assert_eq!(journaled[0]["price"], "64000.5");
    assert_eq!(journaled[0]["source"], "tradingview");

    // The same delivery again (a retry): a duplicate, not a second fill.
    let (code, answer) = deliver(addr, &path, "application/json", &first);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["results"][0]["result"], "duplicate", "{answer}");
    assert_eq!(answer["results"][0]["id"], id.as_str());
    assert_eq!(daemon.records("fill").len(), 1);

    // The next alert, as text/plain, with the token as ?token= instead.
    let second = alert("sell", "0.25", "64100", &timenow(1));
    let (code, answer) = deliver(
        addr,
        &format!("/signals?token={TOKEN}"),
        "text/plain",
        &second,
    );
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["results"][0]["result"], "filled", "{answer}");
    assert_eq!(daemon.records("fill").len(), 2);
    assert_eq!(daemon.records("fill")[1]["side"], "sell");

    // An alert message that is not JSON at all: 400, with its reason.
    let (code, answer) = deliver(addr, &path, "text/plain", "BTCUSDT crossed 64000");
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["results"][0]["reason"], "not_json", "{answer}");
    // A template broken in the middle: one reason, not one a line.
    let broken = first.replace("\"qty\"", "qty");
    let (code, answer) = deliver(addr, &path, "application/json", &broken);
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["results"].as_array().unwrap().len(), 1, "{answer}");

    // No token and a wrong token get the same answer.
    let (missing, missing_answer) = deliver(addr, "/signals", "application/json", &first);
    let (wrong, wrong_answer) = deliver(
        addr,
        &format!("/signals/{TOKEN}x"),
        "application/json",
        &first,
    );
    assert_eq!((missing, wrong), (401, 401));
    assert_eq!(missing_answer, wrong_answer);
    // JSONL with a bearer token still works, one signal a line.
    let lines = "{\"id\":\"j1\",\"ts\":1,\"symbol\":\"ETH\",\"side\":\"buy\",\"qty\":1,\"price\":10}\n\
                 {\"id\":\"j2\",\"ts\":1,\"symbol\":\"ETH\",\"side\":\"sell\",\"qty\":1,\"price\":11}\n";
    let bearer = format!("Bearer {TOKEN}");
    let (code, answer) = deliver_with(addr, "/signals", &[("Authorization", &bearer)], lines);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["results"].as_array().unwrap().len(), 2);

    // After a restart the derived id is the same: still a duplicate.
    assert!(daemon.stop().success());
    let restarted = Builder::new()
        .env("STATE_DIR", daemon.state_dir())
        .arg("--source")
        .arg("webhook")
        .env("WEBHOOK_TOKEN", TOKEN)
        .spawn();
    restarted.wait_ready();
    let (code, answer) = deliver(restarted.addr(), &path, "application/json", &first);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["results"][0]["result"], "duplicate", "{answer}");

    let log = daemon.log.all().join("\n") + &restarted.log.all().join("\n");
    assert!(!log.contains(TOKEN), "the token is in the log");
    assert!(!restarted.metrics().contains(TOKEN));
}

#[test]
fn only_tradingviews_addresses_get_through_a_trusted_proxy() {
    let daemon = tradingview_bot(Builder::new())
        .env(
            "WEBHOOK_ALLOW",
            "52.89.214.238,34.212.75.30,54.218.53.128,52.32.178.7",
        )
        // The test's own connections come from 127.0.0.1: the "proxy".
        .env("TRUSTED_PROXIES", "127.0.0.0/8")
        .spawn();
    daemon.wait_ready();
    let path = format!("/signals/{TOKEN}");
    let body = alert("buy", "1", "100", &timenow(2));
    let json = ("Content-Type", "application/json");
    let cases = [
        (vec![json], 403),
        (vec![json, ("X-Forwarded-For", "52.89.214.238")], 202),
        (
            vec![
                json,
                ("Forwarded", "for=\"34.212.75.30:50123\";proto=https"),
            ],
            202,
        ),
        (vec![json, ("X-Forwarded-For", "203.0.113.9")], 403),
        // A client cannot forge its way in from behind the proxy.
        (
            vec![json, ("X-Forwarded-For", "52.89.214.238, 203.0.113.9")],
            403,
        ),
    ];
    for (headers, expected) in cases {
        let (code, answer) = deliver_with(daemon.addr(), &path, &headers, &body);
        assert_eq!(code, expected, "{headers:?}: {answer}");
    }
    // Without a trusted proxy the header is not believed.
    let direct = tradingview_bot(Builder::new())
        .env("WEBHOOK_ALLOW", "52.89.214.238")
        .spawn();
    direct.wait_ready();
    let (code, _) = deliver_with(
        direct.addr(),
        &path,
        &[json, ("X-Forwarded-For", "52.89.214.238")],
        &body,
    );
    assert_eq!(code, 403);
    // The health endpoints are never behind any of it.
    assert_eq!(direct.health().0, 200);
}

#[test]
fn the_access_settings_are_checked() {
    let refused = |builder: Builder, needle: &str| {
        let output = builder.output();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    };
    refused(
        Builder::new().env("WEBHOOK_ALLOW", "52.89.214.238"),
        "--source webhook",
    );
    refused(
        tradingview_bot(Builder::new()).env("TRUSTED_PROXIES", "10.0.0.0/8"),
        "WEBHOOK_ALLOW",
    );
    refused(
        tradingview_bot(Builder::new()).env("WEBHOOK_ALLOW", "52.89.214.238/33"),
        "WEBHOOK_ALLOW",
    );
}
