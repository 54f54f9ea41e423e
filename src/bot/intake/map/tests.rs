use super::*;

/// RTDS's trades (`activity`/`trades`), mapped as the shipped sample maps them.
fn rtds() -> Map {
    let sample = include_str!("../../../../samples/sources/polymarket-rtds.toml");
    Map::from_toml(sample.split("[source.map]").nth(1).unwrap()).unwrap()
}

fn trade(side: &str, size: &str, price: &str, hash: &str) -> String {
    format!(
        r#"{{"topic":"activity","type":"trades","timestamp":1750000000123,"connection_id":"c1","payload":{{"asset":"7132104567925221259","conditionId":"0xc8f1","eventSlug":"fed","outcome":"Yes","outcomeIndex":0,"proxyWallet":"0x1111","side":"{side}","size":{size},"price":{price},"slug":"fed-cut-june","timestamp":1750000000,"title":"Fed cut?","transactionHash":"{hash}"}}}}"#
    )
}

/// Each outcome in one line: what a table of cases compares.
fn outcomes(map: &Map, frame: &[u8]) -> Vec<String> {
    let mut outcomes = Vec::new();
    map.map(frame, &mut |mapped| outcomes.push(show(map, &mapped)));
    outcomes
}

fn show(map: &Map, mapped: &Mapped<'_>) -> String {
    match mapped {
        Mapped::Message {
            signal: Ok(Item::Signal(signal)),
            ..
        } => format!(
            "signal {} {} {} {} {:?} {}",
            signal.id,
            signal.symbol,
            signal.side.as_str(),
            signal.qty,
            signal.price,
            signal.ts_ms
        ),
        Mapped::Message {
            signal: Ok(Item::Price(update)),
            ..
        } => format!("price {} {}", update.symbol, update.price),
        Mapped::Message {
            signal: Err(reject),
            ..
        } => format!("{}: {}", reject.reason.label(), reject.detail),
        Mapped::Ignored { why, .. } => format!("ignored: {}", map.explain(*why)),
        Mapped::Garbage { reject, .. } => format!("garbage {}", reject.reason.label()),
    }
}

fn map(toml: &str) -> Map {
    Map::from_toml(toml).unwrap()
}

#[test]
fn rtds_trades_map_to_signals() {
    let rtds = rtds();
    assert_eq!(
        outcomes(&rtds, trade("BUY", "12.5", "0.53", "0xabc").as_bytes()),
        ["signal 0xabc:0x1111:0 fed-cut-june:Yes buy 12.5 Some(0.53) 1750000000000"]
    );
    assert_eq!(
        outcomes(&rtds, trade("SELL", "3", "0.47", "0xdef").as_bytes()),
        ["signal 0xdef:0x1111:0 fed-cut-june:Yes sell 3 Some(0.47) 1750000000000"]
    );
}

#[test]
fn joined_values_keep_their_places_when_one_is_empty() {
    let joined = map(r#"id = ["/a", "/b"]
symbol = ["/a", "/b"]
side = "/d"
qty = "/q"
ts = "/t""#);
    for (message, id) in [
        (r#"{"a":"","b":"x","d":"buy","q":1,"t":1}"#, ":x"),
        (r#"{"a":"x","b":"","d":"buy","q":1,"t":1}"#, "x:"),
        (r#"{"a":7,"b":"x","d":"buy","q":1,"t":1}"#, "7:x"),
    ] {
        assert_eq!(
            outcomes(&joined, message.as_bytes()),
            [format!("signal {id} {id} buy 1 None 1000")]
        );
    }
}

#[test]
fn when_ignores_acks_pongs_and_other_topics() {
    let rtds = rtds();
    let other_topic =
        r#"{"topic":"crypto_prices","type":"update","payload":{"symbol":"btcusdt","value":64000}}"#;
    assert_eq!(
        outcomes(&rtds, other_topic.as_bytes()),
        [r#"ignored: /topic is not "activity" (when)"#]
    );
    let other_type = r#"{"topic":"activity","type":"orders_matched","payload":{}}"#;
    assert_eq!(
        outcomes(&rtds, other_type.as_bytes()),
        [r#"ignored: /type is not "trades" (when)"#]
    );
    assert_eq!(
        outcomes(&rtds, br#"{"event":"subscribed"}"#),
        [r#"ignored: /topic is not "activity" (when)"#]
    );
    let numbers = map(r#"when = { "/code" = 0, "/ok" = true }
symbol = "/s"
side = "/d"
qty = "/q"
ts = "/t""#);
    let matching = outcomes(
        &numbers,
        br#"{"code":0,"ok":true,"s":"X","d":"buy","q":1,"t":1}"#,
    );
    assert!(
        matching.len() == 1 && matching[0].starts_with("signal"),
        "{matching:?}"
    );
    assert_eq!(
        outcomes(&numbers, br#"{"code":"0","ok":true}"#),
        ["ignored: /code is not 0 (when)"]
    );
    assert_eq!(
        outcomes(&numbers, br#"{"code":0,"ok":1}"#),
        ["ignored: /ok is not true (when)"]
    );
}

#[test]
fn an_array_frame_is_a_list_of_messages() {
    let rtds = rtds();
    let frame = format!(
        "[{}, {{\"type\":\"ack\"}}, {}]",
        trade("BUY", "1", "0.5", "0x1"),
        trade("SELL", "2", "0.6", "0x2")
    );
    let got = outcomes(&rtds, frame.as_bytes());
    assert_eq!(got.len(), 3);
    assert!(got[0].starts_with("signal 0x1:"), "{got:?}");
    assert!(got[1].starts_with("ignored"), "{got:?}");
    assert!(got[2].starts_with("signal 0x2:"), "{got:?}");
    // Each message keeps its own text for the journal.
    let mut raws = Vec::new();
    rtds.map(frame.as_bytes(), &mut |mapped| {
        if let Mapped::Message { raw, .. } | Mapped::Ignored { raw, .. } = mapped {
            raws.push(String::from_utf8(raw.to_vec()).unwrap());
        }
    });
    assert_eq!(raws[0], trade("BUY", "1", "0.5", "0x1"));
    assert_eq!(raws[1], "{\"type\":\"ack\"}");
}

/// The CLOB's market channel: string prices, millisecond strings, frames
/// that are arrays of events of every kind.
const CLOB: &str = r#"
when = { "/event_type" = "last_trade_price" }
symbol = "/asset_id"
side = "/side"
qty = "/size"
price = "/price"
ts = "/timestamp"
ts_unit = "ms"
side_values = { BUY = "buy", SELL = "sell" }
"#;

#[test]
fn clob_last_trade_prices_map_with_string_prices() {
    let clob = map(CLOB);
    let frame = r#"[{"event_type":"book","asset_id":"2174","market":"0xdd22","bids":[{"price":".48","size":"30"}],"asks":[],"timestamp":"1730371451593","hash":"0x0"},
        {"asset_id":"2174","event_type":"last_trade_price","fee_rate_bps":"0","market":"0xdd22","price":"0.648","side":"SELL","size":"27.79","timestamp":"1730371451633","transaction_hash":"0xeee"}]"#;
    let got = outcomes(&clob, frame.as_bytes());
    assert_eq!(
        got[0],
        r#"ignored: /event_type is not "last_trade_price" (when)"#
    );
    let id = got[1].split(' ').nth(1).unwrap();
    assert!(id.starts_with("auto-"), "derived from the content: {id}");
    assert_eq!(
        got[1].replace(id, "ID"),
        "signal ID 2174 sell 27.79 Some(0.648) 1730371451633"
    );
    // The same trade again is the same signal, so a duplicate.
    assert_eq!(outcomes(&clob, frame.as_bytes()), got);
}

/// A Whop-style page: messages under `/data`, alerts written for people.
const WHOP: &str = r#"
items = "/data"
when = { "/message_type" = "regular" }
id = "/id"
symbol = { group = "symbol" }
side = { group = "side" }
qty = { group = "qty" }
price = { group = "price" }
ts = "/created_at"
side_values = { long = "buy", short = "sell" }
[text]
from = "/content"
regex = '(?i)^\s*(?P<side>buy|sell|long|short)\s+(?P<qty>[0-9]+(?:\.[0-9]+)?)\s+(?P<symbol>[A-Z0-9]+(?:-[A-Z0-9]+)?)(?:\s*@\s*(?P<price>[0-9]+(?:\.[0-9]+)?))?'
"#;

#[test]
fn a_regex_reads_alerts_written_for_people() {
    let whop = map(WHOP);
    let page = r#"{"data":[
        {"id":"msg_1","content":"BUY 0.5 BTC-USD @ 64000","created_at":"2024-05-01T12:00:00.401Z","message_type":"regular"},
        {"id":"msg_2","content":"gm everyone, watching ETH today","created_at":"2024-05-01T12:01:00Z","message_type":"regular"},
        {"id":"msg_3","content":"Short 2 ETH-USD","created_at":"2024-05-01T12:02:00Z","message_type":"regular"},
        {"id":"msg_4","content":"BUY 1 SOL @ 150 \u2014 tight stop","created_at":"2024-05-01T12:03:00Z","message_type":"regular"},
        {"id":"msg_5","content":"pinned","created_at":"2024-05-01T12:04:00Z","message_type":"system"},
        {"id":"msg_6","content":7,"created_at":"2024-05-01T12:05:00Z","message_type":"regular"}
    ],"page_info":{"end_cursor":"c2","has_next_page":false}}"#;
    assert_eq!(
        outcomes(&whop, page.as_bytes()),
        [
            "signal msg_1 BTC-USD buy 0.5 Some(64000) 1714564800401",
            "ignored: /content does not match text.regex",
            "signal msg_3 ETH-USD sell 2 None 1714564920000",
            "signal msg_4 SOL buy 1 Some(150) 1714564980000",
            r#"ignored: /message_type is not "regular" (when)"#,
            "unmapped: /content (text) is a number, not a string",
        ]
    );
    assert_eq!(
        outcomes(&whop, br#"{"error":"unauthorized"}"#),
        ["ignored: no /data (items)"]
    );
    assert_eq!(
        outcomes(&whop, br#"{"data":"soon"}"#),
        ["unmapped: /data (items) is a string, not an array or an object"]
    );
    let one = r#"{"data":{"id":"m","content":"sell 1 X","created_at":"2024-05-01T12:00:00Z","message_type":"regular"}}"#;
    assert_eq!(
        outcomes(&whop, one.as_bytes()),
        ["signal m X sell 1 None 1714564800000"]
    );
}

#[test]
fn side_values_ignore_case_and_leave_other_words_to_the_checks() {
    let sides = map(r#"symbol = "/s"
side = "/d"
qty = "/q"
ts = "/ts"
side_values = { LONG = "buy", short = "sell" }"#);
    let side = |word: &str| {
        outcomes(
            &sides,
            format!(r#"{{"id":"i","ts":1,"s":"X","d":"{word}","q":1}}"#).as_bytes(),
        )
    };
    assert!(side("long")[0].contains(" buy "));
    assert!(side("Long")[0].contains(" buy "));
    assert!(side("SHORT")[0].contains(" sell "));
    assert!(side("buy")[0].contains(" buy "), "{:?}", side("buy"));
    assert_eq!(
        side("hold"),
        [r#"bad_side: side "hold" is neither "buy" nor "sell""#]
    );
    assert_eq!(
        Map::from_toml(
            r#"symbol = "/s"
side = "/d"
qty = "/q"
side_values = { BUY = "buy", buy = "buy" }"#
        )
        .unwrap_err(),
        r#"map.side_values: "BUY" and "buy" are one word (case is ignored)"#
    );
}

fn ts_of(unit: &str, value: &str) -> String {
    let toml = format!("id = \"/i\"\nsymbol = \"/s\"\nside = \"/d\"\nqty = \"/q\"\nts = \"/t\"\nts_unit = \"{unit}\"");
    let message = format!(r#"{{"i":"x","s":"X","d":"buy","q":1,"t":{value}}}"#);
    let got = outcomes(&map(&toml), message.as_bytes()).remove(0);
    got.rsplit_once(' ')
        .filter(|_| got.starts_with("signal"))
        .map_or(got.clone(), |(_, ms)| ms.to_owned())
}

#[test]
fn ts_units() {
    let may_1 = "1714564800000";
    for (unit, value) in [
        ("s", "1714564800"),
        ("s", "\"1714564800\""),
        ("ms", "1714564800000"),
        ("ms", "\"1714564800000\""),
        ("rfc3339", "\"2024-05-01T12:00:00Z\""),
        ("auto", "1714564800"),
        ("auto", "1714564800000"),
        ("auto", "\"1714564800000\""),
        ("auto", "\"2024-05-01T14:00:00+02:00\""),
    ] {
        assert_eq!(ts_of(unit, value), may_1, "{unit} {value}");
    }
    assert_eq!(ts_of("s", "1714564800.25"), "1714564800250");
    assert_eq!(ts_of("s", "1714564800.123456"), "1714564800123");
    assert_eq!(ts_of("ms", "1714564800000.9"), may_1);
    assert_eq!(
        ts_of("s", "\"yesterday\""),
        r#"bad_ts: ts "yesterday" is not epoch seconds or milliseconds (ts_unit = s)"#
    );
    assert_eq!(
        ts_of("ms", "1.7e12"),
        r#"bad_ts: ts "1.7e12" is not epoch milliseconds (ts_unit = ms)"#
    );
    assert_eq!(
        ts_of("rfc3339", "1714564800"),
        "unmapped: /t (ts) is a number, not an RFC 3339 string (ts_unit)"
    );
    assert_eq!(
        ts_of("auto", "\"soon\""),
        r#"bad_ts: "ts" "soon" is not an RFC 3339 timestamp from 1970 on"#
    );
    assert!(
        ts_of("s", "-5").starts_with("bad_ts"),
        "{}",
        ts_of("s", "-5")
    );
    assert!(ts_of("s", "99999999999999999").starts_with("bad_ts"));
    assert_eq!(
        ts_of("auto", "true"),
        "unmapped: /t (ts) is a boolean, not a number or a string"
    );
}

#[test]
fn each_unmapped_reason_names_the_field() {
    let rtds = rtds();
    let without_size = trade("BUY", "1", "0.5", "0xa").replace(r#""size":1,"#, "");
    let reject = |frame: &str| {
        let mut rejects = Vec::new();
        rtds.map(frame.as_bytes(), &mut |mapped| {
            if let Mapped::Message {
                signal: Err(reject),
                ..
            } = mapped
            {
                rejects.push(reject);
            }
        });
        rejects.remove(0)
    };
    let missing = reject(&without_size);
    assert_eq!(
        (
            missing.reason,
            missing.detail.as_str(),
            missing.id.as_deref()
        ),
        (
            Reason::Unmapped,
            "/payload/size (qty) missing",
            Some("0xa:0x1111:0")
        )
    );
    assert_eq!(
        reject(&trade("BUY", "{\"n\":1}", "0.5", "0xa")).detail,
        "/payload/size (qty) is an object, not a number or a string holding one"
    );
    assert_eq!(
        reject(&trade("BUY", "1", "[0.5]", "0xa")).detail,
        "/payload/price (price) is an array, not a number or a string holding one"
    );
    assert_eq!(
        reject(&trade("7", "1", "0.5", "0xa").replace("\"7\"", "7")).detail,
        "/payload/side (side) is a number, not a string"
    );
    assert_eq!(
        reject(&trade("BUY", "1", "0.5", "0xa").replace("\"0x1111\"", "{}")).detail,
        "/payload/proxyWallet (id) is an object, not a string or a number"
    );
    assert_eq!(
        reject(&trade("BUY", "1", "0.5", "0xa").replace("\"slug\":\"fed-cut-june\",", "")).detail,
        "/payload/slug (symbol) missing"
    );
    // The signal's own checks, on mapped values.
    let zero = reject(&trade("BUY", "0", "0.5", "0xa"));
    assert_eq!(zero.reason, Reason::BadQty);
    assert_eq!(zero.id.as_deref(), Some("0xa:0x1111:0"));
    assert_eq!(
        reject(&trade("BUY", "\"lots\"", "0.5", "0xa")).reason,
        Reason::WrongType
    );
    let whop = map(WHOP);
    let groupless = r#"{"data":[{"id":"m","content":"BUY 1","created_at":"2024-05-01T12:00:00Z","message_type":"regular"}]}"#;
    assert_eq!(
        outcomes(&whop, groupless.as_bytes()),
        ["ignored: /content does not match text.regex"]
    );
    let textless =
        r#"{"data":[{"id":"m","created_at":"2024-05-01T12:00:00Z","message_type":"regular"}]}"#;
    assert_eq!(
        outcomes(&whop, textless.as_bytes()),
        ["unmapped: /content (text) missing"]
    );
    let optional = map(r#"symbol = { group = "symbol" }
side = "/d"
qty = "/q"
[text]
from = "/t"
regex = '(?P<symbol>[A-Z]+)?!'"#);
    assert_eq!(
        outcomes(&optional, br#"{"t":"!","d":"buy","q":1}"#),
        ["unmapped: group symbol (symbol) took no part in text.regex's match"]
    );
}

#[test]
fn a_price_sent_as_null_is_no_price() {
    let rtds = rtds();
    let got = outcomes(&rtds, trade("BUY", "1", "null", "0xa").as_bytes());
    assert_eq!(
        got,
        ["signal 0xa:0x1111:0 fed-cut-june:Yes buy 1 None 1750000000000"]
    );
}

#[test]
fn ids_and_symbols_may_be_numbers_or_escaped() {
    let plain = map("id = \"/i\"\nsymbol = \"/s\"\nside = \"/d\"\nqty = \"/q\"\nts = \"/t\"");
    assert_eq!(
        outcomes(
            &plain,
            br#"{"i":12345,"s":"BTC\u002dUSD","d":"buy","q":"0.1","t":1}"#
        ),
        ["signal 12345 BTC-USD buy 0.1 None 1000"]
    );
}

#[test]
fn garbage_is_its_own_outcome() {
    let rtds = rtds();
    for (frame, reason) in [
        (&b"pong"[..], "not_json"),
        (b"", "not_json"),
        (b"42", "not_object"),
        (b"\"text\"", "not_object"),
        (b"{\"topic\":", "not_json"),
        (b"{\"topic\":\"activity\"} trailing", "not_json"),
        (b"[1, 2", "not_json"),
        (b"\xff{}", "invalid_utf8"),
    ] {
        assert_eq!(
            outcomes(&rtds, frame),
            [format!("garbage {reason}")],
            "{}",
            String::from_utf8_lossy(frame)
        );
    }
    assert_eq!(
        outcomes(&rtds, b"[1, [], {\"type\":\"x\"}]"),
        [
            "garbage not_object",
            "garbage not_object",
            r#"ignored: /topic is not "activity" (when)"#
        ]
    );
}

#[test]
fn the_bots_own_format_splits_arrays_too() {
    let mut got = Vec::new();
    let frame = br#"[{"id":"a","ts":1,"symbol":"X","side":"buy","qty":1},{"id":"b"},{"type":"price","symbol":"X","price":2}]"#;
    own_format(frame, Ids::Required, &mut |mapped| {
        got.push(match mapped {
            Mapped::Message {
                signal: Ok(Item::Signal(signal)),
                ..
            } => signal.id.into_owned(),
            Mapped::Message {
                signal: Err(reject),
                ..
            } => reject.reason.label().to_owned(),
            other => format!("{other:?}"),
        })
    });
    assert_eq!(got[..2], ["a", "missing_field"]);
    assert!(got[2].contains("Price"), "{got:?}");
    let mut garbage = 0;
    own_format(b"pong", Ids::Required, &mut |mapped| {
        garbage += usize::from(matches!(mapped, Mapped::Garbage { .. }));
    });
    assert_eq!(garbage, 1);
}

#[test]
fn mistakes_in_a_mapping_name_their_key() {
    let base = "symbol = \"/s\"\nside = \"/d\"\n";
    for (toml, expected) in [
        (format!("{base}qty = \"q\""), "not a JSON Pointer"),
        (format!("{base}qty = [\"/a\", \"/b\"]"), "map.qty: only id and symbol may join several pointers"),
        (format!("{base}qty = {{ group = \"qty\" }}"), "map.qty: group \"qty\" needs [source.map.text]"),
        (
            format!("{base}qty = {{ group = \"size\" }}\n[text]\nfrom = \"/t\"\nregex = '(?P<qty>\\d+)'"),
            "map.qty: text.regex has no group named \"size\"",
        ),
        (format!("{base}qty = {{ grp = \"q\" }}"), "a field's table holds one key, group"),
        (format!("{base}qty = []"), "an empty list names no field"),
        (format!("{base}qty = 5"), "a JSON Pointer (\"/payload/size\"), a list of them, or { group = \"NAME\" }"),
        (format!("{base}qty = \"/q\"\nqtty = \"/x\""), "unknown field `qtty`"),
        (format!("{base}qty = \"/q\"\nside_values = {{ BUY = \"hold\" }}"), "unknown variant `hold`"),
        (format!("{base}qty = \"/q\"\nts_unit = \"us\""), "unknown variant `us`"),
        (format!("{base}qty = \"/q\"\nwhen = {{ \"topic\" = \"x\" }}"), "not a JSON Pointer"),
        (format!("{base}qty = \"/q\"\nwhen = {{ \"/v\" = 1.5 }}"), "a string, an integer, true or false"),
        (format!("{base}qty = \"/q\"\n[text]\nfrom = \"/t\"\nregex = '(?P<x'"), "not a regular expression"),
        (format!("{base}qty = \"/a~2\""), "~ is written ~0"),
        ("side = \"/d\"\nqty = \"/q\"".to_owned(), "missing field `symbol`"),
    ] {
        let error = Map::from_toml(&toml).unwrap_err();
        assert!(error.contains(expected), "{toml}\n→ {error}");
    }
    let many: String = (0..MAX_POINTERS)
        .map(|index| format!("\"/w{index}\" = 1, "))
        .collect();
    let error = Map::from_toml(&format!("{base}qty = \"/q\"\nwhen = {{ {many} }}")).unwrap_err();
    assert!(
        error.ends_with("a mapping holds at most 32 pointers"),
        "{error}"
    );
}

#[test]
fn describe_shows_the_mapping_in_full() {
    let described = map(WHOP).settings().describe("source.map");
    assert!(
        described.starts_with("[source.map]\nitems = \"/data\"\n"),
        "{described}"
    );
    for line in [
        "when = { \"/message_type\" = \"regular\" }",
        "id = \"/id\"",
        "symbol = { group = \"symbol\" }",
        "ts_unit = \"auto\"",
        "side_values = { \"long\" = \"buy\", \"short\" = \"sell\" }",
        "[source.map.text]\nfrom = \"/content\"\nregex = \"(?i)^\\\\s*(?P<side>",
    ] {
        assert!(described.contains(line), "{line}\n{described}");
    }
    let described = rtds().settings().describe("source.map");
    assert!(described.contains(
        "id = [\"/payload/transactionHash\", \"/payload/proxyWallet\", \"/payload/outcomeIndex\"]  # joined with \":\""
    ));
    assert!(described.contains("# items: none"));
    // What describe prints reads back as the same mapping.
    let again = described.replace("[source.map]\n", "");
    let again = Map::from_toml(&again).unwrap();
    assert_eq!(again.settings().describe("source.map"), described);
}
