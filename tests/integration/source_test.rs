//! `tradingbot source-test NAME`, the real binary against the kit's fakes
//! and each kind of source: the next messages raw beside what each maps
//! to, the exit codes (0 after the count, 1 when it could not connect or
//! the messages did not come, 2 for a bad name or setting), no secret
//! printed, and nothing written (no journal, lock, health file or port).

use std::path::Path;
use std::process::Output;

use crate::kit::daemon::Builder;
use crate::kit::feeds::paged::{self, Paged};
use crate::kit::feeds::rtds::{self, Rtds};
use crate::kit::sources::{rtds_sources, whop_sources};
use crate::kit::tls::TestCa;

/// A builder whose sources are `toml`, written beside its state.
fn with_sources(toml: &str) -> Builder {
    let builder = Builder::new();
    let file = builder.dir().join("sources.toml");
    std::fs::write(&file, toml).unwrap();
    builder.env("SOURCES_FILE", file)
}

fn source_test(builder: Builder, args: &[&str]) -> (i32, String, String) {
    piped(builder, args, b"")
}

/// `source-test ARGS`, `input` piped to its stdin.
fn piped(builder: Builder, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let dir = builder.dir().to_owned();
    let mut builder = builder.arg("source-test");
    for arg in args {
        builder = builder.arg(arg);
    }
    said(&dir, &builder.output_with_stdin(input))
}

/// The exit code, stdout and stderr of a test that wrote nothing.
fn said(dir: &Path, output: &Output) -> (i32, String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for written in ["state", "healthy"] {
        assert!(
            !dir.join(written).exists(),
            "source-test wrote {written}\n{stdout}{stderr}"
        );
    }
    assert!(
        !stderr.contains("listening"),
        "source-test bound a port: {stderr}"
    );
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn source_test_rtds_shows_each_message_raw_and_what_it_maps_to() {
    let fake = Rtds::start();
    let builder = with_sources(&rtds_sources(&fake.url(), "500ms", "5m", ""));
    let trade = rtds::trade("fed-cut-june", "BUY", 12.5, 0.53);
    let hash = trade["payload"]["transactionHash"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.push_trade(&trade);
    fake.push_text(r#"{"topic":"crypto_prices","type":"update","payload":{"value":64000}}"#);
    let mut sizeless = rtds::trade("fed-cut-june", "SELL", 1.0, 0.4);
    sizeless["payload"].as_object_mut().unwrap().remove("size");
    fake.push_trades(&[sizeless, rtds::trade("fed-cut-june", "SELL", 3.0, 0.47)]);

    let (code, stdout, stderr) = source_test(
        builder,
        &["polymarket-rtds", "--count", "4", "--timeout", "20s"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "source polymarket-rtds (ws {}), mapped by its [source.map]: up to 4 messages",
            fake.url()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("\nconnecting\nup\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("1. {trade}\n")),
        "the message as received: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "   signal: id={hash}:{wallet}:0 symbol=fed-cut-june:Yes side=buy qty=12.5 price=0.53 ts=",
            wallet = rtds::WALLET
        )),
        "{stdout}"
    );
    assert!(
        stdout
            .contains(r#"   ignored: /topic is not "activity" (when); here it is "crypto_prices""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("   rejected: unmapped: /payload/size (qty) missing"),
        "{stdout}"
    );
    assert!(stdout.contains("side=sell qty=3 price=0.47"), "{stdout}");
    assert!(
        stdout.ends_with("4 messages: 2 signals, 1 ignored, 1 rejected\n"),
        "{stdout}"
    );
    assert_eq!(fake.seen().subscribes, 1, "subscribed as the service would");
}

#[test]
fn source_test_without_its_subscribe_says_nothing_came_and_fails() {
    let fake = Rtds::start();
    let toml = rtds_sources(&fake.url(), "500ms", "5m", "");
    let start = toml.find("subscribe = [").unwrap();
    let end = start + toml[start..].find("\n]\n").unwrap() + 3;
    let builder = with_sources(&format!("{}{}", &toml[..start], &toml[end..]));
    fake.push_trade(&rtds::trade("fed-cut-june", "BUY", 1.0, 0.5));

    let (code, stdout, stderr) = source_test(
        builder,
        &["polymarket-rtds", "--count", "1", "--timeout", "2s"],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.ends_with(
            "0 messages: 0 signals, 0 ignored, 0 rejected\nonly 0 of 1 message within 2s: \
             the feed is quiet, or asks for nothing (its subscribe, its url)\n"
        ),
        "{stdout}"
    );
}

#[test]
fn source_test_over_tls_needs_the_ca_file() {
    let ca = TestCa::new();
    let fake = Rtds::start_with(Some(rtds::PING_WITHIN), Some(ca.server_config()));
    fake.push_trade(&rtds::trade("fed-cut-june", "BUY", 2.0, 0.6));

    let trusting = format!("ca_file = {:?}", ca.pem_path.display().to_string());
    let builder = with_sources(&rtds_sources(&fake.url(), "500ms", "5m", &trusting));
    let (code, stdout, stderr) = source_test(
        builder,
        &["polymarket-rtds", "--count", "1", "--timeout", "20s"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("signal: id=0x"), "{stdout}");

    let builder = with_sources(&rtds_sources(&fake.url(), "500ms", "5m", ""));
    let (code, stdout, stderr) = source_test(
        builder,
        &["polymarket-rtds", "--count", "1", "--timeout", "2s"],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("could not connect within 2s: connection error: invalid peer certificate: UnknownIssuer"),
        "{stdout}"
    );
}

#[test]
fn source_test_polls_a_whop_shaped_list_and_reads_alerts_by_regex() {
    let fake = Paged::start(2);
    fake.post("BUY 0.5 BTC-USD @ 64000");
    fake.post("good morning everyone");
    fake.post("short 2 ETH-USD");
    let builder = Builder::new();
    let file = whop_sources(builder.dir(), &format!("{}?channel_id=chat_1", fake.url()));
    let builder = builder.env("SOURCES_FILE", file);

    let (code, stdout, stderr) = source_test(
        builder,
        &["whop-alerts", "--count", "3", "--timeout", "20s"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("(poll {}?channel_id=***)", fake.url())),
        "the url's query values are not shown: {stdout}"
    );
    assert!(
        stdout.contains("   signal: id=msg_1 symbol=BTC-USD side=buy qty=0.5 price=64000 ts="),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            r#"   ignored: /content does not match text.regex; here it is "good morning everyone""#
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "   signal: id=msg_3 symbol=ETH-USD side=sell qty=2 price=none (fills at the symbol's last price)"
        ),
        "{stdout}"
    );
    for output in [&stdout, &stderr] {
        assert!(!output.contains(paged::TOKEN), "the token was printed");
    }
    let asked = fake.asked();
    assert!(asked.iter().all(|asked| asked.authorized), "{asked:?}");
    assert_eq!(
        asked[1].cursor.as_deref(),
        Some("2"),
        "the second page from the first's cursor"
    );
}

#[test]
fn source_test_reads_a_file_from_its_start_and_a_feed_process_until_the_count() {
    let files = tempfile::tempdir().unwrap();
    let feed = files.path().join("feed.jsonl");
    std::fs::write(
        &feed,
        "{\"id\":\"f1\",\"symbol\":\"BTC\",\"side\":\"buy\",\"qty\":1,\"price\":100}\nnot json\n",
    )
    .unwrap();
    let pid_file = files.path().join("feed.pid");
    let script = format!(
        "echo $$ > {pid}; echo '{{\"id\":\"e1\",\"symbol\":\"ETH\",\"side\":\"sell\",\"qty\":2}}'; echo '{{\"id\":\"e2\"}}'; exec sleep 60",
        pid = pid_file.display()
    );
    let sources = format!(
        "[[source]]\nname = \"tail\"\nkind = \"file\"\npath = {feed:?}\n\n\
         [[source]]\nname = \"feed\"\nkind = \"exec\"\ncommand = [\"sh\", \"-c\", {script:?}]\n",
        feed = feed.display().to_string(),
    );
    let file = files.path().join("sources.toml");
    std::fs::write(&file, sources).unwrap();

    let builder = Builder::new().env("SOURCES_FILE", &file);
    let (code, stdout, stderr) = source_test(builder, &["tail", "--count", "2"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(", read from its start), in the bot's own signal format"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1. {\"id\":\"f1\"") && stdout.contains("   signal: id=f1 symbol=BTC"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2. not json\n   rejected: not_json: "),
        "{stdout}"
    );

    let builder = Builder::new().env("SOURCES_FILE", &file);
    let (code, stdout, stderr) = source_test(builder, &["feed", "--count", "2"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("(exec sh)"), "only the program: {stdout}");
    assert!(
        stdout.contains("   signal: id=e1 symbol=ETH side=sell qty=2"),
        "{stdout}"
    );
    assert!(stdout.contains("   rejected: missing_field: "), "{stdout}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the feed process {pid} was left running"
    );
}

#[test]
fn source_test_a_feed_process_that_exits_early_fails_the_test() {
    let builder = with_sources(
        "[[source]]\nname = \"feed\"\nkind = \"exec\"\n\
         command = [\"sh\", \"-c\", \"echo '{\\\"id\\\":\\\"x\\\"}'\"]\n",
    );
    let (code, stdout, stderr) = source_test(builder, &["feed", "--count", "3"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.ends_with(
            "1 message: 0 signals, 0 ignored, 1 rejected\nthe feed process closed its stdout (exit status: 0)\n"
        ),
        "{stdout}"
    );
}

#[test]
fn source_test_stdin_and_a_mapped_webhook_read_what_is_piped_in() {
    let (code, stdout, stderr) = piped(
        Builder::new(),
        &["stdin", "--source", "stdin"],
        b"{\"id\":\"s1\",\"symbol\":\"SOL\",\"side\":\"buy\",\"qty\":3,\"price\":20}\n",
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("   signal: id=s1 symbol=SOL side=buy qty=3 price=20"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("1 message: 1 signal, 0 ignored, 0 rejected\nend of input\n"),
        "{stdout}"
    );

    // A service's own webhook shape, mapped: one body, as if POSTed.
    let builder = with_sources(
        r#"
[[source]]
name = "whop-hook"
kind = "webhook"

[source.map]
items = "/data/alerts"
id = "/id"
symbol = "/ticker"
side = "/direction"
qty = "/amount"
side_values = { long = "buy", short = "sell" }
"#,
    )
    .env("WEBHOOK_TOKEN", "hooktokenfragment-77");
    let (code, stdout, stderr) = piped(
        builder,
        &["whop-hook"],
        br#"{"action":"alert.created","data":{"alerts":[{"id":"a1","ticker":"BTC-USD","direction":"long","amount":"0.1"},{"id":"a2","ticker":"BTC-USD","direction":"sideways","amount":"0.1"}]}}"#,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("(webhook: one body piped in, as if POSTed), mapped by its [source.map]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("   signal: id=a1 symbol=BTC-USD side=buy qty=0.1"),
        "{stdout}"
    );
    assert!(stdout.contains("   rejected: bad_side: "), "{stdout}");
    assert!(!stdout.contains("hooktokenfragment"), "{stdout}");
}

#[test]
fn source_test_a_wrong_name_or_setting_exits_2_and_a_refused_connect_1() {
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("sources.toml");
    std::fs::write(
        &file,
        "[[source]]\nname = \"rtds\"\nkind = \"ws\"\nurl = \"ws://127.0.0.1:1/\"\n\
         [[source]]\nname = \"tail\"\nkind = \"file\"\npath = \"feed.jsonl\"\n",
    )
    .unwrap();
    let builder = Builder::new().env("SOURCES_FILE", &file);
    let (code, stdout, stderr) = source_test(builder, &["rdts"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("no source is named \"rdts\"; the sources are: rtds, tail"),
        "{stderr}"
    );

    let builder = Builder::new().env("SOURCES_FILE", &file);
    let (code, stdout, stderr) = source_test(builder, &["rtds", "--timeout", "1500ms"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("\ndown: connection error: Connection refused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("could not connect within 1s 500ms: connection error: "),
        "{stdout}"
    );

    let builder = with_sources(
        "[[source]]\nname = \"rtds\"\nkind = \"ws\"\nurl = \"ws://127.0.0.1:1/\"\npoll_interval = \"1s\"\n",
    );
    let (code, stdout, stderr) = source_test(builder, &["rtds"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("poll_interval"), "{stderr}");
}
