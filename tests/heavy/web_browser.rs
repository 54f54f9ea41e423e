//! The dashboard in a real browser: Debian's Chromium, headless, driven
//! over WebDriver (chromedriver). Against fake bots that keep to the read
//! API's contract, and against real bots through their read API and event
//! stream (a bot without them fails these tests loudly).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::browser::*;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::web::*;

const TOKEN: &str = "browser-t0ken";

/// A card of the fleet page: its levels, state and text, or null.
fn card(name: &str) -> String {
    format!(
        "const card = document.querySelector('article[data-bot=\"{name}\"]');
         if (!card) return null;
         const signal = card.querySelector('[data-field=signal]');
         const value = (field) => {{
           const node = card.querySelector('[data-field=' + field + ']');
           return node && node.dataset.value !== undefined ? Number(node.dataset.value) : null;
         }};
         return {{level: card.dataset.level, state: card.dataset.state,
                  signal: signal.dataset.level, text: card.innerText,
                  realized_pnl: value('realized_pnl'), cash: value('cash')}};"
    )
}

/// The card of `card`, once `condition` (script over `card`) holds.
fn card_if(name: &str, condition: &str) -> String {
    format!(
        "const card = (() => {{ {} }})(); return card && ({condition}) && card;",
        card(name)
    )
}

/// The row of the live table with this id, as text, or null.
fn row(id: &str) -> String {
    format!(
        "const row = document.querySelector('#trades tr[data-id=\"{id}\"]');
         return row ? row.innerText : null;"
    )
}

/// Marks the page: the mark is gone if the page reloads.
const MARK: &str = "window.__notReloaded = true; return true;";
const MARKED: &str = "return window.__notReloaded === true;";

/// The dashboard over the bots alpha and beta, with two more beside them:
/// one that answers garbage and one that hangs. `tokens` is its
/// `--bot-tokens-file`.
struct Fleet {
    web: Web,
    _garbage: FakeBot,
    _hang: FakeBot,
    _tokens: tempfile::TempDir,
}

impl Fleet {
    fn start(alpha: &str, beta: &str, tokens: &str) -> Fleet {
        let garbage = FakeBot::start(Mode::Garbage, None);
        let hang = FakeBot::start(Mode::Hang, None);
        let dir = tempfile::tempdir().unwrap();
        let tokens_file = dir.path().join("tokens");
        std::fs::write(&tokens_file, tokens).unwrap();
        let web = Web::start(
            &["--bot-tokens-file", tokens_file.to_str().unwrap()],
            &[
                ("WEB_TOKEN", TOKEN),
                (
                    "WEB_BOTS",
                    &format!(
                        "alpha={alpha},beta={beta},garbage={},hang={}",
                        garbage.url(),
                        hang.url()
                    ),
                ),
            ],
        );
        Fleet {
            web,
            _garbage: garbage,
            _hang: hang,
            _tokens: dir,
        }
    }
}

#[test]
fn browser_follows_contract_fakes_live_and_unslowed() {
    let Some(browser) = Browser::open("browser_follows_contract_fakes_live_and_unslowed") else {
        return;
    };
    let alpha = FakeBot::start(Mode::Good, Some("read-alpha"));
    alpha.set_positions(json!({
        "positions": [{"symbol": "BTC", "qty": 0.5, "avg_price": 64000.25, "realized_pnl": 120.5,
                       "cash": -31879.625, "last_price": 64100.0}],
        "realized_pnl": 120.5, "cash": -31879.625, "last_seq": 0,
    }));
    alpha.push(
        json!({"type": "fill", "id": "a1", "ts": 1, "at": 1714557600000_i64,
        "symbol": "BTC", "side": "buy", "qty": 0.5, "price": 64000.25, "src": "webhook"}),
    );
    let beta = FakeBot::start(Mode::Good, None);
    beta.set_status(
        json!({"status": "degraded", "reasons": ["signals: no signal for 75s (MAX_SIGNAL_AGE 1m)"],
        "last_signal_age_seconds": 75.0, "sources": [
            {"name": "rtds", "kind": "ws", "status": "down", "last_message_age_seconds": 40.0,
             "last_signal_age_seconds": 75.0, "reconnects": 7, "last_error": "<b>no</b> frame for 15s"},
            {"name": "whop", "kind": "poll", "status": "quiet", "last_message_age_seconds": 3.0,
             "last_signal_age_seconds": null, "reconnects": 0, "last_error": null}]}),
    );
    beta.push(
        json!({"type": "reject", "id": "b1", "at": 1714557600000_i64,
        "reason": "bad_json", "detail": "<b>not</b> json", "src": "stdin"}),
    );
    let fleet = Fleet::start(&alpha.url(), &beta.url(), "alpha=read-alpha\n");
    let web = &fleet.web;

    // In with the token in the address; the page drops it and keeps a cookie.
    let opened = Instant::now();
    browser.goto(&web.url(&format!("/?token={TOKEN}")));
    assert_eq!(browser.run("return location.search;"), "");
    let shown = browser.wait_for(
        Duration::from_secs(1),
        &card_if("alpha", "card.state === 'up'"),
    );
    let shown = shown.unwrap_or_else(|| {
        panic!(
            "alpha not shown within 1 s: {}",
            browser.run(&card("alpha"))
        )
    });
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "{:?}",
        opened.elapsed()
    );
    assert_eq!(shown["level"], "ok");
    assert_eq!(shown["realized_pnl"], 120.5);
    assert!(
        shown["text"].as_str().unwrap().contains("120.50"),
        "{shown}"
    );

    // The unreachable ones turn red with their reason; the others are not held up.
    let red = |name: &str, why: &str| {
        let script = card_if(
            name,
            &format!("card.level === 'bad' && card.text.includes({why:?})"),
        );
        browser
            .wait_for(SOON, &script)
            .unwrap_or_else(|| panic!("{name} not red with {why:?}: {}", browser.run(&card(name))))
    };
    let garbage_card = red("garbage", "unreachable: invalid answer");
    assert_eq!(garbage_card["signal"], "bad");
    red("hang", "unreachable: no answer within 1s");
    let beta_card = browser.run(&card("beta"));
    assert_eq!(beta_card["level"], "warn", "{beta_card}");
    assert!(beta_card["text"]
        .as_str()
        .unwrap()
        .contains("no signal for 75s"));
    let chips = browser.run(
        "return [...document.querySelectorAll('article[data-bot=\"beta\"] .sources li')]
           .map((chip) => [chip.innerText, chip.dataset.level]);",
    );
    assert_eq!(
        chips,
        json!([["rtds down", "bad"], ["whop quiet", "warn"]]),
        "each source on the card, coloured by its status"
    );
    browser.keep_screenshot("fake-fleet.png");

    // One bot's page: a new fill shows within a second, without a reload.
    browser.goto(&web.url("/bot/alpha"));
    assert!(
        browser.wait_for(SOON, &row("a1")).is_some(),
        "backfilled row"
    );
    browser.run(MARK);
    let sent = Instant::now();
    alpha.push(
        json!({"type": "fill", "id": "a2", "ts": 2, "at": 1714557601000_i64,
        "symbol": "BTC", "side": "sell", "qty": 0.25, "price": 64500.0, "src": "webhook"}),
    );
    let text = browser
        .wait_for(Duration::from_secs(1), &row("a2"))
        .unwrap_or_else(|| panic!("the fill did not show within 1 s"));
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert!(text.as_str().unwrap().contains("64,500"), "{text}");
    assert_eq!(browser.run(MARKED), true, "the page reloaded");
    let position = browser.run(
        "const row = document.querySelector('#positions tr[data-symbol=\"BTC\"]');
         return row && Number(row.querySelector('[data-field=avg_price]').dataset.value);",
    );
    assert_eq!(position, 64000.25);
    browser.keep_screenshot("fake-bot.png");

    // Text from a bot is text, never markup.
    browser.goto(&web.url("/bot/beta"));
    let text = browser.wait_for(SOON, &row("b1")).unwrap();
    assert!(
        text.as_str().unwrap().contains("bad_json: <b>not</b> json"),
        "{text}"
    );
    let source = browser
        .wait_for(
            SOON,
            "const row = document.querySelector('#sources tr[data-source=\"rtds\"]');
             return row && [row.dataset.level, row.innerText];",
        )
        .expect("a row per source");
    assert_eq!(source[0], "bad", "{source}");
    let text = source[1].as_str().unwrap();
    assert!(text.contains("DOWN") || text.contains("down"), "{text}");
    assert!(text.contains("<b>no</b> frame for 15s"), "{text}");
    assert_eq!(
        browser.run("return document.querySelectorAll('#sources b').length;"),
        0
    );
    assert_eq!(
        browser.run("return document.querySelectorAll('#trades b').length;"),
        0
    );
}

// ---- against real bots, through their read API and stream ---------------------

/// Fails loudly where the bot has no read API.
fn assert_has_read_api(bot: &RealBot) {
    let (code, _, body) = get(
        &format!("{}/api/v1/status", bot.url()),
        &[("Authorization", &format!("Bearer {}", bot.token))],
    );
    assert_eq!(
        code, 200,
        "the bot has no read API (GET /api/v1/status: {code} {body})"
    );
}

/// Waits until `bot`'s journal holds `count` fills and rejects.
fn wait_journal(bot: &RealBot, count: usize) -> Vec<Value> {
    let mut records = Vec::new();
    let done = wait_until(SOON, || {
        records = bot.journal();
        records
            .iter()
            .filter(|record| record["t"] == "fill" || record["t"] == "reject")
            .count()
            >= count
    });
    assert!(done, "journal holds {records:?}");
    records
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn browser_shows_two_real_bots_as_their_journals_say() {
    let Some(browser) = Browser::open("browser_shows_two_real_bots_as_their_journals_say") else {
        return;
    };
    let mut alpha = RealBot::start("read-alpha", &[("MAX_SIGNAL_AGE", "1h")]);
    let mut beta = RealBot::start("read-beta", &[]);
    assert_has_read_api(&alpha);
    alpha.send(
        &[
            signal("a1", "BTC", "buy", 0.5, 64000.0),
            signal("a2", "BTC", "buy", 0.25, 64400.0),
            signal("a3", "ETH", "buy", 2.0, 3100.0),
            signal("a4", "BTC", "sell", 0.5, 65000.5),
            "{not json}\n".to_owned(),
            signal("a5", "ETH", "sell", 3.0, 3050.25),
        ]
        .concat(),
    );
    beta.send(
        &[
            signal("b1", "SOL", "buy", 10.0, 150.0),
            signal("b2", "SOL", "sell", 4.0, 155.5),
        ]
        .concat(),
    );
    let alpha_journal = wait_journal(&alpha, 6);
    let beta_journal = wait_journal(&beta, 2);
    let fleet = Fleet::start(
        &alpha.url(),
        &beta.url(),
        "alpha=read-alpha\nbeta=read-beta\n",
    );
    let web = &fleet.web;
    browser.goto(&web.url(&format!("/?token={TOKEN}")));

    // The fleet page: each bot's PnL and cash as its journal says.
    for (name, journal) in [("alpha", &alpha_journal), ("beta", &beta_journal)] {
        let expected = positions_from(journal);
        let pnl: f64 = expected.values().map(|book| book.2).sum();
        let cash: f64 = expected.values().map(|book| book.3).sum();
        let script = card_if(name, "card.state === 'up'");
        let shown = browser
            .wait_for(SOON, &script)
            .unwrap_or_else(|| panic!("{name} never up: {}", browser.run(&card(name))));
        assert_eq!(shown["level"], "ok", "{shown}");
        assert!(
            close(shown["realized_pnl"].as_f64().unwrap(), pnl),
            "{name}: {shown} vs {pnl}"
        );
        assert!(
            close(shown["cash"].as_f64().unwrap(), cash),
            "{name}: {shown} vs {cash}"
        );
    }
    for name in ["garbage", "hang"] {
        let script = card_if(name, "card.level === 'bad'");
        assert!(browser.wait_for(SOON, &script).is_some(), "{name} not red");
    }
    browser.keep_screenshot("fleet.png");

    // One bot's page: every position as the journal says.
    browser.goto(&web.url("/bot/alpha"));
    let expected = positions_from(&alpha_journal);
    for (symbol, (qty, average, realized, cash)) in &expected {
        let script = format!(
            "const row = document.querySelector('#positions tr[data-symbol=\"{symbol}\"]');
             if (!row) return null;
             const value = (field) => Number(row.querySelector('[data-field=' + field + ']').dataset.value);
             return [value('qty'), value('avg_price'), value('realized_pnl'), value('cash')];"
        );
        let shown = browser
            .wait_for(SOON, &script)
            .unwrap_or_else(|| panic!("no {symbol} row"));
        let shown: Vec<f64> = shown
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (got, want) in shown.iter().zip([qty, average, realized, cash]) {
            assert!(
                close(*got, *want),
                "{symbol}: shown {shown:?}, journal {:?}",
                expected[symbol]
            );
        }
    }
    browser
        .wait_for(
            SOON,
            "const row = document.querySelector('#sources tr[data-source=\"stdin\"]');
             return row && row.dataset.level === 'ok'
               && row.querySelector('[data-field=last_signal_age]').dataset.value !== undefined
               && row.innerText;",
        )
        .expect("the stdin source's row: up, with the age of its last signal");
    assert!(browser.wait_for(SOON, &row("a5")).is_some());
    let reject = browser.run(
        "const row = document.querySelector('#trades tr.reject'); return row && row.innerText;",
    );
    assert!(
        reject
            .as_str()
            .is_some_and(|text| text.contains("not_json") || text.contains("json")),
        "{reject}"
    );

    // A new fill, within a second, without a reload.
    browser.run(MARK);
    let sent = Instant::now();
    alpha.send(&signal("a6", "BTC", "buy", 0.1, 65100.0));
    assert!(
        browser
            .wait_for(Duration::from_secs(1), &row("a6"))
            .is_some(),
        "the fill did not show within 1 s"
    );
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(browser.run(MARKED), true, "the page reloaded");
    // Let the charts gather a few points before the picture.
    std::thread::sleep(Duration::from_secs(2));
    browser.keep_screenshot("bot.png");
}

#[test]
fn browser_turns_red_on_a_stall_and_a_death_and_back() {
    let Some(browser) = Browser::open("browser_turns_red_on_a_stall_and_a_death_and_back") else {
        return;
    };
    // About 150 iterations (15 s at a 100 ms heartbeat) after its start,
    // the loop blocks for 4 s: a stall that ends on its own.
    let mut bot = RealBot::start(
        "read-stall",
        &[("FAILPOINTS", "bot::iteration=150*off->1*sleep(4000)->off")],
    );
    let started = Instant::now();
    assert_has_read_api(&bot);
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "stall=read-stall\n").unwrap();
    let web = Web::start(
        &[
            "--bot",
            &format!("stall={}", bot.url()),
            "--bot-tokens-file",
            tokens.to_str().unwrap(),
        ],
        &[],
    );
    browser.goto(&web.url("/"));
    let seen = |card: Option<Value>| {
        card.map(|card| {
            format!("{}/{}/{}", card["state"], card["level"], card["signal"]).replace('"', "")
        })
    };
    let green = card_if("stall", "card.level === 'ok' && card.signal === 'ok'");
    assert_eq!(
        seen(browser.wait_for(SOON, &green)).as_deref(),
        Some("up/ok/ok"),
        "green before the stall"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "too slow to see the stall start"
    );

    // Red within STALL_TIMEOUT + 2 s of the stall's start: when the page
    // first shows red, the bot's own heartbeat is at most 3 s old.
    // The stall starts some 150 iterations in, 10 to 15 s after the bot
    // did; the wait is for that, the bound is the heartbeat's age below.
    let red = browser.wait_for(
        Duration::from_secs(30),
        &card_if("stall", "card.level === 'bad'"),
    );
    let (_, health) = bot.health();
    assert_eq!(
        seen(red).as_deref(),
        Some("up/bad/bad"),
        "stalled, reachable, red: {health}"
    );
    let stale_for = health["heartbeat_age_seconds"].as_f64().unwrap();
    assert!(
        stale_for <= 1.0 + 2.0,
        "red only {stale_for}s into the stall"
    );

    // Back to green within 2 s of the bot's own recovery.
    assert!(wait_until(SOON, || bot.health().0 == 200));
    let recovered = Instant::now();
    assert!(browser.wait_for(Duration::from_secs(2), &green).is_some());
    assert!(recovered.elapsed() < Duration::from_secs(2));

    // Killed: unreachable; restarted: back, its table continued.
    bot.send(&signal("k1", "BTC", "buy", 1.0, 100.0));
    wait_journal(&bot, 1);
    bot.kill();
    let dead = browser.wait_for(
        Duration::from_secs(3),
        &card_if("stall", "card.state === 'unreachable'"),
    );
    assert_eq!(seen(dead).as_deref(), Some("unreachable/bad/bad"));
    bot.restart();
    assert!(browser
        .wait_for(SOON, &card_if("stall", "card.state === 'up'"))
        .is_some());
    browser.goto(&web.url("/bot/stall"));
    bot.send(&signal("k2", "BTC", "sell", 1.0, 101.0));
    assert!(browser.wait_for(SOON, &row("k1")).is_some());
    assert!(browser.wait_for(SOON, &row("k2")).is_some());
}
