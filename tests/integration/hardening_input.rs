//! Hostile input through every source (stdin, file, exec, webhook): each
//! line of a corpus of nasty ones is rejected with its reason or parsed
//! correctly, a 10 MB line costs no more memory than a normal one, the loop
//! keeps beating, and the journal stays readable. Then a property test
//! sends generated lines through a real daemon and holds its decisions to
//! the library's parser, and in-process fuzzing (proptest, many cases)
//! runs the parsers the project owns over arbitrary bytes.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tradingbot::bot::account::Terms;
use tradingbot::bot::engine::{Engine, PaperExecution};
use tradingbot::bot::intake::lines::{Line, LineSplitter, Lines};
use tradingbot::bot::signal::{self, Item, MAX_LINE_BYTES};

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::process::proc_status;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::webhook::{post_signals, webhook_bot};

const TEN_MB: usize = 10 * 1024 * 1024;

/// A 10 MB line may cost the daemon this much at its peak (the line
/// sources keep none of it; this leaves room for the allocator).
const LINE_SOURCE_PEAK_KIB: u64 = 8 * 1024;

fn signal_with(id: &str, qty: &str, rest: &str) -> String {
    format!(
        r#"{{"id":"{id}","ts":1714557600000,"symbol":"BTC","side":"buy","qty":{qty},"price":100{rest}}}"#
    )
}

fn valid(id: &str) -> String {
    signal_with(id, "1", "")
}

/// Hostile lines, each with the outcome it must get: a reject reason's
/// label, or "filled".
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut lines: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut add = |expected: &'static str, line: String| lines.push((expected, line.into_bytes()));

    // Deep nesting: skipped in a field nobody asked for, the wrong type in
    // a known one, unfinished JSON bare.
    add(
        "filled",
        signal_with(
            "deep1",
            "1",
            &format!(",\"x\":{}{}", "[".repeat(20_000), "]".repeat(20_000)),
        ),
    );
    add(
        "wrong_type",
        signal_with(
            "deep2",
            &format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
            "",
        ),
    );
    add("not_json", "[".repeat(30_000));
    add("not_json", "{\"a\":".repeat(10_000));

    // Huge and tiny numbers: read exactly from their text, so refused for
    // the digits an exact decimal cannot hold, naming the limit.
    add(
        "bad_qty",
        signal_with("big1", &format!("1{}", "0".repeat(400)), ""),
    );
    add("bad_qty", signal_with("big2", "1e400", ""));
    add("bad_qty", signal_with("tiny", "1e-400", ""));
    add("bad_qty", signal_with("u64p1", "18446744073709551616", ""));
    // The most a quantity holds, at 100: the notional no amount holds.
    add("bad_qty", signal_with("qmax", "9999999999999999999", ""));
    add(
        "bad_qty",
        r#"{"id":"notional","ts":1,"symbol":"BTC","side":"buy","qty":1e200,"price":1e200}"#.into(),
    );
    add(
        "bad_ts",
        r#"{"id":"ts1","ts":99999999999999999999,"symbol":"BTC","side":"buy","qty":1,"price":1}"#
            .into(),
    );
    add(
        "bad_ts",
        r#"{"id":"ts2","ts":-1,"symbol":"BTC","side":"buy","qty":1,"price":1}"#.into(),
    );
    add(
        "bad_ts",
        r#"{"id":"ts3","ts":"+10000-01-01T00:00:00Z","symbol":"BTC","side":"buy","qty":1,"price":1}"#
            .into(),
    );
    add(
        "bad_ts",
        r#"{"id":"ts4","ts":"1969-12-31T23:59:59.999Z","symbol":"BTC","side":"buy","qty":1,"price":1}"#
            .into(),
    );

    // NaN and infinity, every spelling.
    for spelling in [
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "+Infinity",
        "inf",
        "nan",
    ] {
        add("not_json", signal_with("nan", spelling, ""));
    }
    add("bad_qty", signal_with("e999", "1e999", ""));
    add("wrong_type", signal_with("nans", "\"NaN\"", ""));
    add("wrong_type", signal_with("infs", "\"Infinity\"", ""));
    add(
        "not_json",
        r#"{"id":"pinf","ts":1,"symbol":"BTC","side":"buy","qty":1,"price":Infinity}"#.into(),
    );
    add(
        "bad_price",
        r#"{"id":"pneg0","ts":1,"symbol":"BTC","side":"buy","qty":1,"price":-0.0}"#.into(),
    );
    add("bad_qty", signal_with("qneg0", "-0", ""));

    // Duplicate keys, plain and spelled with an escape.
    add("not_json", signal_with("dup1", "1", ",\"qty\":2"));
    add("not_json", signal_with("dup2", "1", ",\"id\":\"dup3\""));
    add(
        "not_json",
        signal_with("dup4", "1", ",\"\\u0069d\":\"dup5\""),
    );

    // NULs: raw outside and inside strings, escaped inside each name field.
    add("not_json", signal_with("nul1", "1", ",\0\"x\":1"));
    add("not_json", valid("nul\0raw"));
    add("bad_id", valid("nul\\u0000esc"));
    add(
        "bad_symbol",
        r#"{"id":"nul3","ts":1,"symbol":"BT\u0000C","side":"buy","qty":1,"price":1}"#.into(),
    );
    add(
        "bad_source",
        signal_with("nul4", "1", ",\"source\":\"tv\\u0000\""),
    );
    add("not_json", "\0".into());

    // Strings with escapes the parser must decode or refuse.
    add("not_json", valid("\\ud800lone"));
    add("bad_id", valid(&"i".repeat(129)));
    add("filled", valid(&"\u{1d11e}".repeat(128)));
    add(
        "filled",
        r#"{"id":"quote","ts":1,"symbol":"a\"b\\c}{","side":"buy","qty":1,"price":1}"#.into(),
    );

    // Line length at and past the limit.
    let pad = |id: &str, total: usize| {
        let bare = signal_with(id, "1", ",\"pad\":\"\"");
        signal_with(
            id,
            "1",
            &format!(",\"pad\":\"{}\"", "p".repeat(total - bare.len())),
        )
    };
    add("filled", pad("exact", MAX_LINE_BYTES));
    add("line_too_long", pad("over", MAX_LINE_BYTES + 1));

    // Line endings, byte order marks, whitespace, trailing junk.
    add("filled", valid("crlf") + "\r");
    add("filled", signal_with("cr2", "1", "\r\t") + "\r\r");
    add("filled", format!("\u{feff}{}", valid("bom")));
    add("not_json", format!("{{\u{feff}{}", &valid("bom2")[1..]));
    add("filled", format!(" \t {} \t", valid("ws")));
    add("not_json", valid("junk") + " x");
    add("not_json", valid("two1") + &valid("two2"));

    // Not objects, empty objects, wrong shapes.
    for bare in ["null", "true", "42", "\"str\"", "[]"] {
        add("not_object", bare.into());
    }
    add("missing_field", "{}".into());
    add(
        "bad_side",
        r#"{"id":"side1","ts":1,"symbol":"BTC","side":"BUY","qty":1,"price":1}"#.into(),
    );
    add(
        "wrong_type",
        r#"{"id":"side2","ts":1,"symbol":"BTC","side":null,"qty":1,"price":1}"#.into(),
    );

    // Invalid UTF-8: a stray byte, an overlong form, a surrogate, a cut
    // sequence, a UTF-16 byte order mark.
    for bad in [
        &b"\xff"[..],
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xe2\x82",
        b"\xfe\xff",
    ] {
        let mut line = br#"{"id":"utf"#.to_vec();
        line.extend_from_slice(bad);
        line.extend_from_slice(br#"","ts":1,"symbol":"BTC","side":"buy","qty":1,"price":1}"#);
        lines.push(("invalid_utf8", line));
    }
    lines
}

/// The corpus's expectations hold for the library's parser (the engine's
/// share aside), so a mismatch below is the daemon's, not the corpus's.
#[test]
fn the_corpus_means_what_it_says() {
    for (expected, line) in corpus() {
        let got = match signal::parse(&line) {
            Ok(_) => "filled",
            Err(reject) => reject.reason.label(),
        };
        let engine_says = expected == "bad_qty" && got == "filled";
        assert!(
            got == expected || engine_says,
            "{:?}: parser says {got}, corpus says {expected}",
            String::from_utf8_lossy(&line[..line.len().min(120)])
        );
    }
}

fn joined(corpus: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (_, line) in corpus {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    bytes
}

/// Sums of `signals_total` by result, and `rejects_total` by reason.
fn figures(daemon: &Daemon) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let text = daemon.metrics();
    assert_exposition_is_well_formed(&text);
    let mut results = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    for line in text.lines() {
        let grab = |prefix: &str, key: &str| {
            let rest = line.strip_prefix(prefix)?;
            let start = rest.find(&format!("{key}=\""))? + key.len() + 2;
            let label = &rest[start..start + rest[start..].find('"')?];
            let value: f64 = line.rsplit_once(' ')?.1.parse().ok()?;
            Some((label.to_owned(), value))
        };
        if let Some((result, value)) = grab("tradingbot_signals_total{", "result") {
            *results.entry(result).or_insert(0.0) += value;
        }
        if let Some((reason, value)) = grab("tradingbot_rejects_total{", "reason") {
            reasons.insert(reason, value);
        }
    }
    (results, reasons)
}

fn handled(daemon: &Daemon) -> f64 {
    figures(daemon).0.values().sum()
}

/// Every sample line of a Prometheus text exposition is `name{k="v",...} value`
/// with label values escaped: a hostile symbol must not forge a series.
fn assert_exposition_is_well_formed(text: &str) {
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            let mut chars = labels.char_indices();
            let mut in_value = false;
            let end = loop {
                let (at, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                match (in_value, c) {
                    (true, '\\') => {
                        let (_, escaped) = chars.next().unwrap();
                        assert!(
                            matches!(escaped, '\\' | '"' | 'n'),
                            "bad escape in {line:?}"
                        );
                    }
                    (true, '"') => in_value = false,
                    (false, '"') => in_value = true,
                    (false, '}') => break at,
                    _ => {}
                }
            };
            rest = &labels[end + 1..];
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line:?}"));
        assert!(
            value.parse::<f64>().is_ok() || matches!(value, "NaN" | "+Inf" | "-Inf"),
            "bad value in {line:?}"
        );
    }
}

/// Waits for the corpus to be decided, then holds the figures and the
/// journal to its expectations; the daemon stays healthy throughout.
fn expect_corpus_decided(daemon: &Daemon, corpus: &[(&str, Vec<u8>)], before: f64) {
    let total = before + corpus.len() as f64;
    assert!(
        wait_until(SOON, || handled(daemon) >= total),
        "only {} of {total} lines decided; log:\n{}",
        handled(daemon),
        daemon.log.dump()
    );
    let mut expected: BTreeMap<&str, f64> = BTreeMap::new();
    for (outcome, _) in corpus {
        *expected.entry(outcome).or_default() += 1.0;
    }
    let (results, reasons) = figures(daemon);
    assert_eq!(
        results.get("filled").copied().unwrap_or(0.0),
        expected.remove("filled").unwrap_or(0.0),
        "fills; results {results:?}"
    );
    for (reason, count) in &expected {
        assert_eq!(
            reasons.get(*reason).copied().unwrap_or(0.0),
            *count,
            "rejects_total{{reason={reason}}}; all {reasons:?}"
        );
    }
    let journal = daemon.journal();
    let mut journaled: BTreeMap<&str, f64> = BTreeMap::new();
    for record in journal.iter().filter(|record| record["t"] == "reject") {
        *journaled
            .entry(match record["reason"].as_str().unwrap() {
                reason if expected.contains_key(reason) => {
                    expected.get_key_value(reason).unwrap().0
                }
                other => panic!("unexpected reject reason {other}"),
            })
            .or_default() += 1.0;
        assert!(
            record["line"].as_str().unwrap().len() <= 4 * 1024,
            "a reject record keeps a bounded part of the line"
        );
    }
    assert_eq!(journaled, expected, "reject records in the journal");
    let (code, health) = daemon.health();
    assert_eq!(code, 200, "{health}");
}

/// After the corpus: a 10 MB line (no newline for 10 MB) is refused as too
/// long without being held, a valid line behind it is still filled, and
/// the loop goes on beating. Returns the peak RSS growth in KiB.
fn ten_mb_line_then_a_valid_one(daemon: &Daemon, mut send: impl FnMut(&[u8])) -> u64 {
    let rss_before = proc_status(daemon.pid(), "VmRSS:");
    let too_long_before = figures(daemon)
        .1
        .get("line_too_long")
        .copied()
        .unwrap_or(0.0);
    let filled_before = figures(daemon).0.get("filled").copied().unwrap_or(0.0);
    let mut big = vec![b'{'; TEN_MB];
    big.push(b'\n');
    send(&big);
    send(format!("{}\n", valid("after-big")).as_bytes());
    daemon.wait_metric(
        "rejects_total",
        &[("reason", "line_too_long")],
        too_long_before + 1.0,
    );
    daemon.wait_metric(
        "signals_total",
        &[("result", "filled")],
        filled_before + 1.0,
    );
    let peak = proc_status(daemon.pid(), "VmHWM:");
    let iterations = daemon.metric("loop_iterations_total", &[]).unwrap();
    daemon.wait_metric("loop_iterations_total", &[], iterations + 3.0);
    assert_eq!(daemon.health().0, 200);
    peak.saturating_sub(rss_before)
}

#[test]
fn hostile_lines_through_stdin() {
    let mut daemon = stdin_bot().spawn();
    daemon.wait_ready();
    let corpus = corpus();
    daemon.write_stdin(&joined(&corpus));
    expect_corpus_decided(&daemon, &corpus, 0.0);
    let mut stdin = daemon.take_stdin();
    let growth = ten_mb_line_then_a_valid_one(&daemon, |bytes| stdin.write_all(bytes).unwrap());
    eprintln!(
        "stdin: {} hostile lines, 10 MB line: peak RSS growth {growth} KiB",
        corpus.len()
    );
    assert!(
        growth < LINE_SOURCE_PEAK_KIB,
        "a 10 MB line grew RSS by {growth} KiB"
    );
    drop(stdin);
    assert!(daemon.stop().success());
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn hostile_lines_through_a_file() {
    let builder = Builder::new().env("FILE_POLL_INTERVAL", "20ms");
    let feed = builder.dir().join("feed.jsonl");
    append(&feed, b"");
    let source = format!("file:{}", feed.display());
    let mut daemon = builder.arg("--source").arg(&source).spawn();
    daemon.wait_ready();
    let corpus = corpus();
    append(&feed, &joined(&corpus));
    expect_corpus_decided(&daemon, &corpus, 0.0);
    let growth = ten_mb_line_then_a_valid_one(&daemon, |bytes| append(&feed, bytes));
    eprintln!(
        "file: {} hostile lines, 10 MB line: peak RSS growth {growth} KiB",
        corpus.len()
    );
    assert!(
        growth < LINE_SOURCE_PEAK_KIB,
        "a 10 MB line grew RSS by {growth} KiB"
    );
    assert!(daemon.stop().success());
}

#[test]
fn hostile_lines_through_an_exec_feed() {
    let builder = Builder::new();
    // The feed is `cat` on a FIFO: it sends exactly what the test writes,
    // when the test writes it.
    let fifo = builder.dir().join("feed.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let source = format!("exec:cat {}", fifo.display());
    let mut daemon = builder.arg("--source").arg(&source).spawn();
    daemon.wait_ready();
    let mut writer = OpenOptions::new().write(true).open(&fifo).unwrap();
    let corpus = corpus();
    writer.write_all(&joined(&corpus)).unwrap();
    expect_corpus_decided(&daemon, &corpus, 0.0);
    let growth = ten_mb_line_then_a_valid_one(&daemon, |bytes| writer.write_all(bytes).unwrap());
    eprintln!(
        "exec: {} hostile lines, 10 MB line: peak RSS growth {growth} KiB",
        corpus.len()
    );
    assert!(
        growth < LINE_SOURCE_PEAK_KIB,
        "a 10 MB line grew RSS by {growth} KiB"
    );
    drop(writer);
    assert!(daemon.stop().success());
}

const TOKEN: &str = "hardening-input-token";

#[test]
fn hostile_lines_through_the_webhook() {
    let (builder, addr) = webhook_bot(Builder::new());
    let daemon = builder
        .env("WEBHOOK_TOKEN", TOKEN)
        // The most the webhook allows, so a 10 MB line reaches the splitter.
        .env("WEBHOOK_BODY_LIMIT", (16 * 1024 * 1024).to_string())
        .spawn();
    daemon.wait_ready();
    let post = |body: &[u8]| post_signals(addr, TOKEN, body).unwrap();
    let corpus = corpus();
    let (code, body) = post(&joined(&corpus));
    assert_eq!(code, 400, "{body}");
    // One result per line, in order, each with the expected outcome.
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), corpus.len());
    for ((expected, line), result) in corpus.iter().zip(results) {
        let got = match result["result"].as_str().unwrap() {
            "filled" => "filled",
            _ => result["reason"].as_str().unwrap(),
        };
        assert_eq!(
            got,
            *expected,
            "{:?}: {result}",
            String::from_utf8_lossy(&line[..line.len().min(120)])
        );
    }
    expect_corpus_decided(&daemon, &corpus, 0.0);

    let rss_before = proc_status(daemon.pid(), "VmRSS:");
    let mut big = vec![b'{'; TEN_MB];
    big.push(b'\n');
    big.extend_from_slice(valid("after-big").as_bytes());
    let (code, body) = post(&big);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("line_too_long") && body.contains("filled"),
        "{body}"
    );
    let growth = proc_status(daemon.pid(), "VmHWM:").saturating_sub(rss_before);
    let settled = proc_status(daemon.pid(), "VmRSS:");
    eprintln!(
        "webhook: {} hostile lines, 10 MB body: peak RSS growth {growth} KiB, RSS {rss_before} -> {settled} KiB",
        corpus.len()
    );
    // The body is held while it is read (at most WEBHOOK_BODY_LIMIT), never more.
    assert!(growth < 48 * 1024, "a 10 MB body grew RSS by {growth} KiB");
    assert_eq!(daemon.health().0, 200);
}

/// Lines built to stress the parser: mutations of a valid signal, arbitrary
/// bytes, and pieces of JSON glued together.
fn hostile_line() -> impl Strategy<Value = Vec<u8>> {
    let template = valid("TEMPLATE");
    let pieces = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        "\\",
        "\\u0000",
        "\\ud800",
        "NaN",
        "-Infinity",
        "1e999",
        "1e-999",
        "-0",
        "null",
        "true",
        "\"id\"",
        "\"qty\"",
        "\"ts\"",
        "\"side\"",
        "\"buy\"",
        "\u{feff}",
        "\r",
        "\t",
        " ",
        "\0",
        "99999999999999999999",
    ]);
    prop_oneof![
        (0..template.len(), prop::collection::vec(any::<u8>(), 0..12)).prop_map(
            move |(cut, junk)| {
                let mut line = template.as_bytes()[..cut].to_vec();
                line.extend(junk);
                line.extend_from_slice(&template.as_bytes()[cut..]);
                line
            }
        ),
        (0..valid("TEMPLATE").len(), 0..8usize).prop_map(|(cut, len)| {
            let template = valid("TEMPLATE").into_bytes();
            let end = (cut + len).min(template.len());
            [&template[..cut], &template[end..]].concat()
        }),
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(pieces, 0..40).prop_map(|pieces| pieces.concat().into_bytes()),
    ]
    .prop_map(|line: Vec<u8>| line.into_iter().filter(|byte| *byte != b'\n').collect())
}

/// `needle` replaced in raw bytes (lossy UTF-8 would hide invalid bytes).
fn replace(line: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match line
        .windows(needle.len())
        .position(|window| window == needle)
    {
        Some(at) => [&line[..at], with, &line[at + needle.len()..]].concat(),
        None => line.to_vec(),
    }
}

/// What the daemon must journal for each line, computed in process with
/// the library's parser and engine: a fill by id, or a reject with its
/// reason and detail; duplicates journal nothing.
struct Oracle {
    engine: Engine,
    seen: HashSet<String>,
}

impl Oracle {
    fn decide(&mut self, line: &[u8]) -> Option<(String, String)> {
        let signal = match signal::parse(line) {
            Ok(Item::Signal(signal)) => signal,
            // A price update moves a mark: nothing journaled.
            Ok(Item::Price(_)) => return None,
            Err(reject) => return Some((reject.reason.label().to_owned(), reject.detail)),
        };
        if !self.seen.insert(signal.id.to_string()) {
            return None;
        }
        Some(match self.engine.decide(&signal, 0) {
            Ok(_) => ("fill".to_owned(), signal.id.into_owned()),
            Err(reject) => (reject.reason.label().to_owned(), reject.detail),
        })
    }
}

/// Generated lines through a real daemon: every one is decided exactly as
/// the library decides it (fill, or reason and detail, in order), the
/// daemon never dies, and the journal stays readable.
#[test]
fn generated_lines_through_stdin_are_decided_as_the_library_decides() {
    // The oracle has no clock: no generated ts counts as ahead of it.
    let mut daemon = stdin_bot().env("MAX_CLOCK_SKEW", "300000000years").spawn();
    daemon.wait_ready();
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        // The daemon's state moves on with every case; a shrunk rerun
        // would not be the case that failed.
        max_shrink_iters: 0,
        ..Config::default()
    });
    let cases = Cell::new(0usize);
    let lines_sent = Cell::new(0usize);
    let daemon = RefCell::new(&mut daemon);
    let oracle = RefCell::new(Oracle {
        engine: Engine::new(Terms::default(), Box::new(PaperExecution)),
        seen: HashSet::new(),
    });
    runner
        .run(&prop::collection::vec(hostile_line(), 1..24), |lines| {
            let case = cases.get() + 1;
            cases.set(case);
            let mut daemon = daemon.borrow_mut();
            let mut oracle = oracle.borrow_mut();
            let journal_before = daemon.journal().len();
            let decided_before = handled(&daemon);
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            let mut decided = 0usize;
            for (index, line) in lines.iter().enumerate() {
                let id = format!("c{case}l{index}");
                let line = replace(line, b"TEMPLATE", id.as_bytes());
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                decided += 1;
                expected.extend(oracle.decide(&line));
                bytes.extend_from_slice(&line);
                bytes.push(b'\n');
            }
            lines_sent.set(lines_sent.get() + decided);
            daemon.write_stdin(&bytes);
            let target = decided_before + decided as f64;
            prop_assert!(
                wait_until(SOON, || handled(&daemon) >= target),
                "case {case}: {} of {target} decided",
                handled(&daemon)
            );
            let journal = daemon.journal();
            let got: Vec<(String, String)> = journal[journal_before..]
                .iter()
                .map(|record| match record["t"].as_str().unwrap() {
                    "fill" => ("fill".to_owned(), record["id"].as_str().unwrap().to_owned()),
                    _ => (
                        record["reason"].as_str().unwrap().to_owned(),
                        record["detail"].as_str().unwrap().to_owned(),
                    ),
                })
                .collect();
            prop_assert_eq!(&got, &expected, "case {}", case);
            Ok(())
        })
        .unwrap();
    let daemon = daemon.into_inner();
    eprintln!(
        "property: {} cases, {} generated lines through stdin, each decided as the library decides",
        cases.get(),
        lines_sent.get()
    );
    assert_eq!(daemon.health().0, 200);
    assert!(daemon.stop().success());
}

/// In-process fuzzing with proptest, for the normal test run: `parse` and
/// the line splitter over arbitrary bytes. `FUZZ_CASES` sets the count
/// (README: "Fuzzing").
fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn fuzz_the_signal_parser() {
    let mut runner = TestRunner::new(Config {
        cases: fuzz_cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let strategy = prop_oneof![hostile_line(), prop::collection::vec(any::<u8>(), 0..2048)];
    runner
        .run(&strategy, |line| {
            match signal::parse(&line) {
                Ok(Item::Signal(signal)) => {
                    prop_assert!(signal.qty.is_positive());
                    prop_assert!(signal.price.is_none_or(|price| price.is_positive()));
                    prop_assert!(!signal.id.is_empty() && signal.id.chars().count() <= 128);
                    prop_assert!(!signal.id.chars().any(char::is_control));
                }
                Ok(Item::Price(update)) => prop_assert!(update.price.is_positive()),
                Err(reject) => {
                    prop_assert!(!reject.detail.is_empty());
                    prop_assert!(
                        reject.detail.len() < 512,
                        "detail echoes too much: {}",
                        reject.detail
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "fuzz parse: {} cases in {:?}",
        fuzz_cases(),
        started.elapsed()
    );
}

#[test]
fn fuzz_the_line_splitter() {
    let mut runner = TestRunner::new(Config {
        cases: fuzz_cases() / 4,
        failure_persistence: None,
        ..Config::default()
    });
    // Bytes below 16 become newlines, so lines are short and many.
    let bytes = prop::collection::vec(any::<u8>(), 0..1024).prop_map(|bytes| {
        bytes
            .into_iter()
            .map(|byte| if byte < 16 { b'\n' } else { byte })
            .collect::<Vec<u8>>()
    });
    runner
        .run(
            &(bytes, prop::collection::vec(0usize..1024, 0..16)),
            |(bytes, mut cuts)| {
                // Whatever the chunking, the same lines come out, none over the
                // limit, none blank, none holding a newline.
                let mut whole = Lines::default();
                let mut splitter = LineSplitter::default();
                splitter.push(&bytes, &mut whole);
                splitter.finish(&mut whole);
                cuts.iter_mut()
                    .for_each(|cut| *cut = (*cut).min(bytes.len()));
                cuts.sort_unstable();
                let mut pieces = Lines::default();
                let mut splitter = LineSplitter::default();
                let mut start = 0;
                for cut in cuts.into_iter().chain([bytes.len()]) {
                    splitter.push(&bytes[start..cut], &mut pieces);
                    start = cut;
                }
                splitter.finish(&mut pieces);
                prop_assert_eq!(&whole, &pieces);
                for line in whole.iter() {
                    if let Line::Bytes(line) = line {
                        prop_assert!(line.len() <= MAX_LINE_BYTES && !line.contains(&b'\n'));
                        prop_assert!(line.iter().any(|byte| !byte.is_ascii_whitespace()));
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
