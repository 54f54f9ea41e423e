use super::*;
use crate::bot::intake::map::Mapped;
use crate::bot::signal::Item;

fn sample(name: &str) -> String {
    let path = format!("{}/samples/sources/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

fn parsed(text: &str) -> Result<Vec<SourceSettings>, String> {
    parse(Path::new("/etc/sources.toml"), text).map_err(|error| error.to_string())
}

/// The one signal (or reject) `source` maps `frame` to.
fn mapped_once(source: &SourceSettings, frame: &str) -> String {
    let mut got = Vec::new();
    source
        .map
        .as_ref()
        .unwrap()
        .map(frame.as_bytes(), &mut |mapped| {
            got.push(match mapped {
                Mapped::Message {
                    signal: Ok(Item::Signal(signal)),
                    ..
                } => format!(
                    "{} {} {} {} {:?} {}",
                    signal.id,
                    signal.symbol,
                    signal.side.as_str(),
                    signal.qty,
                    signal.price,
                    signal.ts_ms
                ),
                other => format!("{other:?}"),
            })
        });
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

#[test]
fn the_rtds_sample_parses_and_maps_a_trade() {
    let sources = parsed(&sample("polymarket-rtds.toml")).unwrap();
    let [rtds] = &sources[..] else {
        panic!("{sources:?}")
    };
    assert_eq!(rtds.name, "polymarket-rtds");
    let Kind::Ws(ws) = &rtds.kind else {
        panic!("{rtds:?}")
    };
    assert_eq!(ws.url, "wss://ws-live-data.polymarket.com");
    assert_eq!(
        ws.subscribe,
        [r#"{"action":"subscribe","subscriptions":[{"topic":"activity","type":"trades"}]}"#]
    );
    assert_eq!(
        (ws.ping_interval, ws.ping_text.as_deref()),
        (Duration::from_secs(5), Some("ping"))
    );
    assert_eq!(rtds.quiet_after, Some(Duration::from_secs(300)));
    let trade = r#"{"topic":"activity","type":"trades","timestamp":1750000000123,"payload":{"slug":"fed-cut-june","outcome":"Yes","outcomeIndex":0,"side":"BUY","size":12.5,"price":0.53,"timestamp":1750000000,"proxyWallet":"0x1111","transactionHash":"0xabc"}}"#;
    assert_eq!(
        mapped_once(rtds, trade),
        "0xabc:0x1111:0 fed-cut-june:Yes buy 12.5 Some(0.53) 1750000000000"
    );
}

#[test]
fn the_clob_sample_parses_and_maps_a_last_trade_price() {
    let sources = parsed(&sample("polymarket-clob.toml")).unwrap();
    let Kind::Ws(ws) = &sources[0].kind else {
        panic!()
    };
    assert_eq!(
        ws.url,
        "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    );
    assert_eq!(ws.ping_text.as_deref(), Some("PING"));
    assert!(
        ws.subscribe[0].starts_with(r#"{"assets_ids":["2174"#),
        "{}",
        ws.subscribe[0]
    );
    let event = r#"{"asset_id":"2174","event_type":"last_trade_price","fee_rate_bps":"0","market":"0xdd22","price":"0.648","side":"SELL","size":"27.79","timestamp":"1730371451633"}"#;
    let got = mapped_once(&sources[0], event);
    assert!(
        got.starts_with("auto-") && got.ends_with(" 2174 sell 27.79 Some(0.648) 1730371451633"),
        "{got}"
    );
}

#[test]
fn the_whop_sample_parses_and_reads_an_alert() {
    let headers = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        headers.path(),
        "# the key\nAuthorization: Bearer s3cret-key\n",
    )
    .unwrap();
    let text = sample("whop-poll.toml").replace(
        "/etc/tradingbot/whop.headers",
        &headers.path().display().to_string(),
    );
    let sources = parsed(&text).unwrap();
    let Kind::Poll(poll) = &sources[0].kind else {
        panic!()
    };
    let headers: Vec<_> = poll.headers.headers.iter().collect();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].name, "authorization");
    assert_eq!(headers[0].value.expose(), "Bearer s3cret-key");
    assert_eq!(
        poll.cursor,
        Some(Cursor {
            from: Pointer::parse("/page_info/end_cursor").unwrap(),
            param: "after".into()
        })
    );
    assert_eq!(
        (poll.interval, poll.max_pages),
        (Duration::from_secs(10), 5)
    );
    let page = r#"{"data":[{"id":"msg_1","content":"long 0.5 BTC-USD @ 64000","created_at":"2024-05-01T12:00:00.401Z","message_type":"regular"}],"page_info":{"end_cursor":"c1"}}"#;
    assert_eq!(
        mapped_once(&sources[0], page),
        "msg_1 BTC-USD buy 0.5 Some(64000) 1714564800401"
    );
    // Shown in full, the key never.
    let described = describe(&sources);
    assert!(!described.contains("s3cret"), "{described}");
    assert!(
        described.contains("# authorization (values redacted)"),
        "{described}"
    );
    assert!(
        described.contains(
            "url = \"https://api.whop.com/api/v1/messages?channel_id=***&direction=***&first=***\""
        ),
        "{described}"
    );
    assert!(
        described.contains("cursor = { from = \"/page_info/end_cursor\", param = \"after\" }"),
        "{described}"
    );
    assert!(
        described.contains("[source.map.text]\nfrom = \"/content\""),
        "{described}"
    );
}

#[test]
fn every_kind_and_its_defaults() {
    let sources = parsed(
        r#"
[[source]]
name = "orders"
kind = "file"
path = "/var/lib/feed/signals.jsonl"

[[source]]
name = "feed.py"
kind = "exec"
command = "python3 feed.py --fast"

[[source]]
name = "feed_2"
kind = "exec"
command = ["/usr/bin/feed", "--symbol", "BTC USD"]

[[source]]
name = "in"
kind = "stdin"

[[source]]
name = "tv"
kind = "webhook"
[source.map]
symbol = "/ticker"
side = "/action"
qty = "/contracts"

[[source]]
name = "raw-ws"
kind = "ws"
url = "ws://127.0.0.1:9000/feed"

[[source]]
name = "raw-poll"
kind = "poll"
url = "http://127.0.0.1:9000/signals"
"#,
    )
    .unwrap();
    let kinds: Vec<&Kind> = sources.iter().map(|source| &source.kind).collect();
    assert_eq!(
        kinds[0],
        &Kind::File {
            path: "/var/lib/feed/signals.jsonl".into()
        }
    );
    assert_eq!(
        kinds[1],
        &Kind::Exec {
            command: vec!["python3".into(), "feed.py".into(), "--fast".into()]
        }
    );
    assert_eq!(
        kinds[2],
        &Kind::Exec {
            command: vec!["/usr/bin/feed".into(), "--symbol".into(), "BTC USD".into()]
        }
    );
    assert_eq!((kinds[3], kinds[4]), (&Kind::Stdin, &Kind::Webhook));
    assert!(sources[4].map.is_some());
    let Kind::Ws(ws) = kinds[5] else { panic!() };
    assert_eq!(
        (ws.ping_interval, &ws.ping_text, ws.subscribe.len()),
        (DEFAULT_PING_INTERVAL, &None, 0)
    );
    let Kind::Poll(poll) = kinds[6] else { panic!() };
    assert_eq!(
        (poll.interval, poll.timeout, poll.max_pages, &poll.cursor),
        (
            DEFAULT_POLL_INTERVAL,
            DEFAULT_POLL_TIMEOUT,
            DEFAULT_MAX_PAGES,
            &None
        )
    );
    assert_eq!(sources[0].resume_key(), "file:/var/lib/feed/signals.jsonl");
    assert_eq!(sources[5].resume_key(), "raw-ws");
    let described = describe(&sources);
    assert!(
        described.contains("command = [\"/usr/bin/feed\", \"--symbol\", \"BTC USD\"]"),
        "{described}"
    );
    assert!(
        described.contains("ping_interval = \"10s\"\n# ping_text: none, WebSocket ping frames"),
        "{described}"
    );
    assert!(
        described.contains("# map: none, the bot's own signal format"),
        "{described}"
    );
}

#[test]
fn mistakes_name_the_file_the_source_and_the_key() {
    let head = "[[source]]\nname = \"a\"\nkind = \"ws\"\nurl = \"wss://x.example/\"\n";
    for (text, expected) in [
        (
            format!("{head}urll = \"x\""),
            "source 1 (\"a\", line 1): urll: unknown field `urll`",
        ),
        (format!("{head}ping_interval = 5"), "source 1 (\"a\", line 1): ping_interval: invalid type: integer `5`, expected a string"),
        (format!("{head}ping_interval = \"5\""), "ping_interval: expected a duration with a unit, like 500ms, 5s or 2m"),
        (format!("{head}quiet_after = \"0s\""), "quiet_after: must be greater than zero"),
        (format!("{head}interval = \"5s\""), "interval: is not a setting of a ws source"),
        (format!("{head}[source.map]\nsymbol = \"s\"\nside = \"/d\"\nqty = \"/q\""), "map.symbol: \"s\" is not a JSON Pointer"),
        (format!("{head}[source.map]\nsymbol = \"/s\"\nside = \"/d\"\nqty = \"/q\"\n[source.map.text]\nfrom = \"/t\"\nregex = \"(\""), "map.text.regex: not a regular expression"),
        (format!("{head}[source.map]\nsymbol = \"/s\"\nside = \"/d\"\nqty = {{ group = \"q\" }}"), "map.qty: group \"q\" needs [source.map.text]"),
        (format!("{head}[source.map]\nsymbol = \"/s\"\nside = \"/d\""), "map: missing field `qty`"),
        (format!("{head}[source.cursor]\nfrom = \"/c\"\nparam = \"c\""), "cursor: is not a setting of a ws source"),
        (format!("{head}\n[[source]]\nname = \"a\"\nkind = \"stdin\""), "source 2 (\"a\", line 6): name: \"a\" names another source too"),
        ("[[source]]\nname = \"exec:/bin/feed --key=s3cret\"\nkind = \"stdin\"".to_owned(), "source 1 (line 1): name: is not a name (not shown)"),
        ("[[source]]\nname = \"a\"\nkind = \"kafka\"".to_owned(), "kind: unknown variant `kafka`, expected one of `file`, `exec`, `stdin`, `webhook`, `ws`, `poll`"),
        ("[[source]]\nname = \"a\"\nkind = \"file\"".to_owned(), "path: a file source needs it"),
        ("[[source]]\nname = \"a\"\nkind = \"exec\"\ncommand = []".to_owned(), "command: the command is empty"),
        ("[[source]]\nname = \"a\"\nkind = \"ws\"\nurl = \"https://x.example/?key=s3cret\"".to_owned(), "url: https://x.example/?key=***: the scheme must be ws or wss"),
        ("[[source]]\nname = \"a\"\nkind = \"poll\"\nurl = \"http:///x\"".to_owned(), "url: http:///x: not a URL"),
        ("[[source]]\nname = \"a\"\nkind = \"poll\"\nurl = \"http://x/\"\nmax_pages = 0".to_owned(), "max_pages: must be at least 1"),
        ("[[source]]\nname = \"a\"\nkind = \"poll\"\nurl = \"http://x/\"\nheaders_file = \"/nonexistent/h\"".to_owned(), "headers_file: cannot read /nonexistent/h: No such file"),
        ("[[source]]\nname = \"a\"\nkind = \"ws\"\nurl = \"ws://x/\"\nca_file = \"/nonexistent/ca.pem\"".to_owned(), "ca_file: /nonexistent/ca.pem is not a readable file"),
        ("[[sources]]\nname = \"a\"".to_owned(), "sources file (SOURCES_FILE) /etc/sources.toml, line 1: unknown field `sources`, expected `source`"),
        ("[[source]]\nname = \"a\"\nkind = \"ws\"\nurl = \"ws://x/\"\nping_text = ".to_owned(), "/etc/sources.toml, line 5: "),
        (String::new(), "no [[source]] table"),
    ] {
        let error = parsed(&text).unwrap_err();
        assert!(error.starts_with("sources file (SOURCES_FILE) /etc/sources.toml"), "{error}");
        assert!(error.contains(expected), "{text}\n→ {error}\n  expected {expected}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}

#[test]
fn header_files_are_checked_and_never_shown() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let source = |headers: &str| {
        std::fs::write(file.path(), headers).unwrap();
        parsed(&format!(
            "[[source]]\nname = \"a\"\nkind = \"ws\"\nurl = \"wss://x/\"\nheaders_file = \"{}\"",
            file.path().display()
        ))
    };
    for (headers, expected) in [
        (
            "Authorization Bearer s3cret",
            "line 1: not a header: write it as Name: value",
        ),
        (
            "\n\nX Key: s3cret",
            "line 3: the name before ':' is not a valid header name",
        ),
        ("X-Key:   ", "line 1: the value of x-key"),
    ] {
        let error = source(headers).unwrap_err();
        assert!(
            error.contains(&format!(
                "headers_file: {}: {expected}",
                file.path().display()
            )),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
    }
    let sources = source("Authorization: Bearer s3cret\nX-Key: k:v\n").unwrap();
    let Kind::Ws(ws) = &sources[0].kind else {
        panic!()
    };
    let headers: Vec<_> = ws.headers.headers.iter().collect();
    assert_eq!(headers[1].name, "x-key");
    assert_eq!(headers[1].value.expose(), "k:v");
    assert!(!format!("{sources:?}").contains("s3cret"));
    assert!(!describe(&sources).contains("s3cret"));
}

#[test]
fn the_plain_forms_become_the_same_settings() {
    let kinds = [
        "file:/x.jsonl",
        "exec:feed --fast",
        "stdin",
        "webhook",
        "ws:wss://feed.example/signals",
        "poll:https://feed.example/signals?key=k",
        "file:/y.jsonl",
    ]
    .map(|text| parse_plain(text).unwrap());
    let sources = from_plain(kinds.into());
    let names: Vec<&str> = sources.iter().map(|source| source.name.as_str()).collect();
    assert_eq!(
        names,
        ["file", "exec", "stdin", "webhook", "ws", "poll", "file-2"]
    );
    assert_eq!(sources[6].resume_key(), "file:/y.jsonl");
    let Kind::Ws(ws) = &sources[4].kind else {
        panic!()
    };
    assert_eq!(
        (ws.url.as_str(), ws.ping_interval),
        ("wss://feed.example/signals", DEFAULT_PING_INTERVAL)
    );
    assert!(sources.iter().all(|source| source.map.is_none()));
    assert!(describe(&sources).contains("url = \"https://feed.example/signals?key=***\""));
    for (bad, expected) in [
        ("ws:https://x/", "the scheme must be ws or wss"),
        ("poll:", "not a URL"),
        (
            "kafka",
            "use file:PATH, exec:COMMAND ARGS..., webhook, stdin, ws:URL or poll:URL",
        ),
        ("file:", "file: needs a path"),
    ] {
        let error = parse_plain(bad).unwrap_err();
        assert!(error.contains(expected), "{bad} → {error}");
    }
}

#[test]
fn urls_lose_their_credentials_when_shown() {
    assert_eq!(
        redact_url("wss://user:pw@host.example:443/a/b?k=v&flag&x=1"),
        "wss://***@host.example:443/a/b?k=***&flag&x=***"
    );
    assert_eq!(redact_url("https://host/p"), "https://host/p");
}
