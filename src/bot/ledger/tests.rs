//! The ledger's promise as a property: random sequences of signal lines
//! (valid, invalid, resent, too old, too far ahead, breaking a risk limit,
//! overflowing) decided live through the loop's own decision function,
//! with checkpoints, clock steps (backwards too), commits, segment rolls
//! and snapshots between them; then recovered from the journal alone and
//! from every snapshot. Every recovery must hold the live positions, PnL
//! and cash, totals, checkpoints and exactly-once set, and decide what
//! comes next exactly as the live ledger does.
//!
//! And the money's: random fills of up to 8 decimal places (fees,
//! slippage, a balance, shorts allowed or not, price updates), decided
//! live the same way and recovered the same ways, agree exactly with the
//! account computed in plain integers (`account::model`), and a position
//! closed by the quantities that opened it leaves nothing behind.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::bot::account::model::{self, Model};
use crate::bot::account::{Limits, Terms};
use crate::bot::decide::{decide, Verdict};
use crate::bot::engine::PaperExecution;
use crate::bot::money::{Amount, BasisPoints, Decimal, Price, Quantity};
use crate::bot::settings::FsyncPolicy;
use crate::bot::signal;
use crate::bot::symbols::SymbolSettings;

/// Far ahead of the wall clock, which the ledger reads itself (a
/// snapshot and a start move the window on to it): these tests drive the
/// window with their own times alone.
const T0: i64 = 4_000_000_000_000;
const WINDOW_MS: u64 = 1_000;
const SKEW_MS: u64 = 100;

#[derive(Clone, Debug)]
enum Step {
    /// Time moves (back too: the window's clock must not).
    Tick(i64),
    /// A new signal: symbol, buy, qty, price, ts offset from now.
    Signal(u8, bool, u8, Option<u8>, i64),
    /// The `n`th signal sent so far again, as it was (a resend).
    Resend(usize),
    /// The `n`th signal's id with a new ts offset.
    Reuse(usize, i64),
    /// A notional no amount holds, of a quantity and a price that each fit.
    Overflow,
    Garbage,
    Checkpoint(u8, u16),
    /// A poller's cursor, by source.
    Cursor(u8, u16),
    Commit,
    Snapshot,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (-200i64..600).prop_map(Step::Tick),
        8 => (0u8..3, any::<bool>(), 1u8..4, proptest::option::weighted(0.8, 90u8..110), -1_300i64..250)
            .prop_map(|(symbol, buy, qty, price, ts)| Step::Signal(symbol, buy, qty, price, ts)),
        3 => (0usize..64).prop_map(Step::Resend),
        1 => (0usize..64, -1_300i64..250).prop_map(|(index, ts)| Step::Reuse(index, ts)),
        1 => Just(Step::Overflow),
        1 => Just(Step::Garbage),
        1 => (0u8..2, any::<u16>()).prop_map(|(source, offset)| Step::Checkpoint(source, offset)),
        1 => (0u8..2, any::<u16>()).prop_map(|(source, page)| Step::Cursor(source, page)),
        2 => Just(Step::Commit),
        1 => Just(Step::Snapshot),
    ]
}

/// A decimal of `hundredths` / 100.
fn hundredths<K>(hundredths: u32) -> Decimal<K> {
    Decimal::parse(&format!("{hundredths}e-2")).unwrap()
}

fn limits() -> impl Strategy<Value = Terms> {
    (
        proptest::option::of(300u32..800),
        proptest::option::of(20_000u32..40_000),
        proptest::option::of(2u32..6),
    )
        .prop_map(
            |(max_position_qty, max_order_notional, max_orders_per_minute)| Terms {
                limits: Limits {
                    max_position_qty: max_position_qty.map(hundredths),
                    max_order_notional: max_order_notional.map(hundredths),
                    max_orders_per_minute,
                },
                ..Terms::default()
            },
        )
}

/// The symbol bound: the allowlist of `S0` and `S1` or none, and room for
/// two symbols or plenty (the steps use `S0` to `S2`).
fn symbol_bounds() -> impl Strategy<Value = SymbolSettings> {
    (any::<bool>(), prop_oneof![Just(2usize), Just(1_000)]).prop_map(|(listed, max_symbols)| {
        SymbolSettings {
            allowlist: listed.then(|| vec!["S0".to_owned(), "S1".to_owned()]),
            max_symbols,
            ..SymbolSettings::default()
        }
    })
}

fn settings(
    state_dir: &Path,
    account: Terms,
    segment_size: u64,
    symbols: &SymbolSettings,
) -> crate::bot::settings::Settings {
    crate::bot::settings::Settings {
        state_dir: state_dir.to_owned(),
        account,
        fsync: FsyncPolicy::Never,
        max_signal_age: None,
        snapshot_interval: Duration::from_secs(3600),
        intake: crate::bot::intake::Settings {
            sources: Vec::new(),
            file_poll_interval: Duration::from_secs(1),
            exec_backoff: Duration::from_secs(1),
            exec_backoff_max: Duration::from_secs(1),
        },
        symbols: symbols.clone(),
        ledger: settings::Settings {
            segment_size,
            dedupe_window: Duration::from_millis(WINDOW_MS),
            max_clock_skew: Duration::from_millis(SKEW_MS),
            retention: None,
        },
    }
}

/// A ledger and its engine, recovered from `config.state_dir`.
struct Bot {
    ledger: Ledger,
    engine: Engine,
}

impl Bot {
    fn recover(config: &crate::bot::settings::Settings) -> (Bot, Recovery) {
        let health =
            crate::health::HealthState::new(Duration::from_secs(10), Duration::from_secs(10));
        let mut engine =
            Engine::new(config.account, Box::new(PaperExecution)).with_symbols(&config.symbols);
        let (ledger, recovery) = Ledger::recover(config, Arc::clone(&health), &mut engine).unwrap();
        (Bot { ledger, engine }, recovery)
    }

    /// Decides one line at `wall` ms, as the loop does; what became of it.
    fn decide(&mut self, line: &str, wall: i64) -> String {
        let now = self.ledger.now(wall);
        let parsed = signal::parse(line.as_bytes());
        let item = parsed.as_ref();
        match decide(
            &mut self.ledger,
            &mut self.engine,
            "test",
            line.as_bytes(),
            item,
            None,
            now,
        ) {
            Verdict::Invalid(reject) => format!("invalid {}", reject.reason.label()),
            Verdict::Duplicate(_) => "duplicate".into(),
            Verdict::Filled(_, fill) => format!("filled {} at {}", fill.qty, fill.price),
            Verdict::Rejected(_, reject) => format!("rejected {}", reject.reason.label()),
            Verdict::Marked => "marked".into(),
            Verdict::Unmarked(_, reject) => format!("unmarked {}", reject.reason.label()),
        }
    }

    /// Everything a recovery must restore, compared at the same clock (a
    /// batch of duplicates moves the live clock without a record; the set
    /// is a function of the ids taken and the clock, see `window.rs`).
    fn state(&mut self, clock: i64) -> String {
        self.ledger.now(clock);
        let window: Vec<(i64, &str)> = self.ledger.state.window.iter().collect();
        format!(
            "positions {:?}\naccount {:?}\nfills by symbol {:?}\ntotals {:?}\ncheckpoints {:?}\nwindow {:?} at {}\nlast seq {}",
            self.engine.positions(),
            self.engine.summary(),
            self.engine.symbol_fills(),
            self.ledger.state.totals,
            self.ledger.state.checkpoints,
            window,
            self.ledger.state.window.clock(),
            self.ledger.last_seq(),
        )
    }
}

fn line(id: &str, ts: i64, symbol: u8, buy: bool, qty: u8, price: Option<u8>) -> String {
    let price = price.map_or(String::new(), |price| format!(",\"price\":{price}"));
    let side = if buy { "buy" } else { "sell" };
    format!(
        "{{\"id\":\"{id}\",\"ts\":{ts},\"symbol\":\"S{symbol}\",\"side\":\"{side}\",\"qty\":{qty}{price}}}"
    )
}

/// An order whose notional no amount holds: 10^10 at 10^10.
fn overflowing(id: &str, ts: i64) -> String {
    format!(
        "{{\"id\":\"{id}\",\"ts\":{ts},\"symbol\":\"S0\",\"side\":\"buy\",\"qty\":9999999999,\"price\":9999999999}}"
    )
}

/// A copy of the journal of `from` (and of the one snapshot `keep`, if any).
fn copy_state(from: &Path, keep: Option<&Path>) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    segments::create_dir(copy.path()).unwrap();
    for segment in segments::list(from).unwrap() {
        std::fs::copy(
            &segment.path,
            segments::dir(copy.path()).join(segment.path.file_name().unwrap()),
        )
        .unwrap();
    }
    if let Some(snapshot) = keep {
        let dir = snapshot::dir(copy.path());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(snapshot, dir.join(snapshot.file_name().unwrap())).unwrap();
    }
    copy
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn live_decisions_and_every_recovery_agree(
        steps in proptest::collection::vec(step(), 1..90),
        risk in limits(),
        segment_size in prop_oneof![Just(1_024u64), Just(1 << 20)],
        symbols in symbol_bounds(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = settings(dir.path(), risk, segment_size, &symbols);
        let (mut live, _) = Bot::recover(&config);
        let mut wall = T0;
        let mut sent: Vec<String> = Vec::new();
        let mut next_id = 0usize;
        for step in &steps {
            let text = match step {
                Step::Tick(by) => {
                    wall += by;
                    continue;
                }
                Step::Signal(symbol, buy, qty, price, ts) => {
                    next_id += 1;
                    line(&format!("s{next_id}"), wall + ts, *symbol, *buy, *qty, *price)
                }
                Step::Resend(index) if !sent.is_empty() => sent[index % sent.len()].clone(),
                Step::Reuse(index, ts) if next_id > 0 => {
                    line(&format!("s{}", 1 + index % next_id), wall + ts, 0, true, 1, Some(100))
                }
                Step::Overflow => {
                    next_id += 1;
                    overflowing(&format!("s{next_id}"), wall)
                }
                Step::Garbage => "{\"id\":\"g\",\"qty\":".to_owned(),
                Step::Checkpoint(source, offset) => {
                    live.ledger.append_checkpoint(&format!("file:{source}"), Checkpoint::File {
                        dev: 1,
                        ino: u64::from(*source),
                        offset: u64::from(*offset),
                    });
                    continue;
                }
                Step::Cursor(source, page) => {
                    live.ledger.append_checkpoint(&format!("poll:{source}"), Checkpoint::Cursor(format!("page-{page}")));
                    continue;
                }
                Step::Commit => {
                    live.ledger.commit(false);
                    continue;
                }
                Step::Snapshot => {
                    live.ledger.finish(EngineState::of(&live.engine));
                    continue;
                }
                Step::Resend(_) | Step::Reuse(..) => continue,
            };
            live.decide(&text, wall);
            sent.push(text);
        }
        live.ledger.commit(false);
        let clock = live.ledger.state.window.clock().max(wall);
        let expected = live.state(clock);
        prop_assert!(!live.ledger.is_blocked());

        let mut recoveries = vec![(copy_state(dir.path(), None), "the journal alone".to_owned())];
        for (seq, path) in snapshot::list(dir.path()).unwrap() {
            recoveries.push((copy_state(dir.path(), Some(&path)), format!("snapshot seq {seq}")));
        }
        let probes: Vec<String> = (0..6)
            .map(|index| match sent.get(index * 7) {
                Some(resent) if index % 2 == 0 => resent.clone(),
                _ => line(&format!("probe{index}"), clock, 0, index % 3 == 0, 2, Some(100)),
            })
            .collect();
        let live_after: Vec<String> = probes.iter().map(|probe| live.decide(probe, clock)).collect();
        for (copy, from) in &recoveries {
            let config = settings(copy.path(), risk, segment_size, &symbols);
            let (mut recovered, recovery) = Bot::recover(&config);
            if from != "the journal alone" {
                prop_assert!(recovery.snapshot.is_some(), "{} was not used", from);
            }
            prop_assert_eq!(recovered.state(clock), expected.clone(), "recovered from {}", from);
            let after: Vec<String> = probes.iter().map(|probe| recovered.decide(probe, clock)).collect();
            prop_assert_eq!(&after, &live_after, "deciding on after recovering from {}", from);
        }
    }
}

/// The finding of the last round, on its own: an order whose notional
/// overflows is refused without taking its id, live and replayed alike,
/// so its corrected resend is decided after a restart as it would be live.
#[test]
fn an_overflowing_order_takes_no_id_live_or_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let config = settings(
        dir.path(),
        Terms::default(),
        1 << 20,
        &SymbolSettings::default(),
    );
    let (mut live, _) = Bot::recover(&config);
    assert_eq!(live.decide(&overflowing("o1", T0), T0), "rejected bad_qty");
    live.ledger.finish(EngineState::of(&live.engine));
    drop(live);
    let (mut restarted, _) = Bot::recover(&config);
    let corrected = line("o1", T0, 0, true, 1, Some(100));
    assert_eq!(restarted.decide(&corrected, T0), "filled 1 at 100");
    assert_eq!(restarted.decide(&corrected, T0), "duplicate");
}

/// The window's bound, across a restart: ids older than the window are
/// forgotten, their signals refused as too old, so none is filled twice.
#[test]
fn a_forgotten_id_is_never_filled_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = settings(
        dir.path(),
        Terms::default(),
        1 << 20,
        &SymbolSettings::default(),
    );
    let (mut live, _) = Bot::recover(&config);
    let first = line("a", T0, 0, true, 1, Some(100));
    assert_eq!(live.decide(&first, T0), "filled 1 at 100");
    let later = T0 + WINDOW_MS as i64 + 1;
    assert_eq!(live.decide(&first, later), "rejected too_old");
    assert_eq!(live.ledger.decided_ids(), 0);
    live.ledger.finish(EngineState::of(&live.engine));
    drop(live);
    let (mut restarted, _) = Bot::recover(&config);
    assert_eq!(restarted.decide(&first, later), "rejected too_old");
    let ahead = line("b", later + SKEW_MS as i64 + 1, 0, true, 1, Some(100));
    assert_eq!(restarted.decide(&ahead, later), "rejected ts_in_future");
}

/// A symbol the bound refuses (`MAX_SYMBOLS`, `SYMBOLS`) takes no id, live
/// or replayed: the same signal is decided once the operator raises the
/// cap or lists the symbol, and only once.
#[test]
fn a_symbol_refused_by_the_bound_takes_no_id_live_or_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let capped = SymbolSettings {
        max_symbols: 1,
        ..SymbolSettings::default()
    };
    let config = settings(dir.path(), Terms::default(), 1 << 20, &capped);
    let (mut live, _) = Bot::recover(&config);
    assert_eq!(
        live.decide(&line("a", T0, 0, true, 1, Some(100)), T0),
        "filled 1 at 100"
    );
    let second = line("b", T0, 1, true, 1, Some(100));
    assert_eq!(live.decide(&second, T0), "rejected too_many_symbols");
    assert_eq!(live.decide(&second, T0), "rejected too_many_symbols");
    live.ledger.finish(EngineState::of(&live.engine));
    drop(live);
    let listed = SymbolSettings {
        allowlist: Some(vec!["S0".to_owned()]),
        ..SymbolSettings::default()
    };
    let config = settings(dir.path(), Terms::default(), 1 << 20, &listed);
    let (mut restarted, _) = Bot::recover(&config);
    assert_eq!(restarted.decide(&second, T0), "rejected unknown_symbol");
    drop(restarted);
    let config = settings(
        dir.path(),
        Terms::default(),
        1 << 20,
        &SymbolSettings::default(),
    );
    let (mut raised, _) = Bot::recover(&config);
    assert_eq!(raised.decide(&second, T0), "filled 1 at 100");
    assert_eq!(raised.decide(&second, T0), "duplicate");
}

#[derive(Clone, Debug)]
enum Money {
    /// Symbol, buy, qty and price in 10^-8 (no price: at the mark), and
    /// whether the numbers come quoted (as TradingView sends them).
    Order(usize, bool, i128, Option<i128>, bool),
    /// Symbol, price in 10^-8: sells or buys back exactly what it holds.
    Close(usize, i128),
    /// Symbol, price in 10^-8: a price update.
    Mark(usize, i128),
    Commit,
    Snapshot,
}

fn money_step() -> impl Strategy<Value = Money> {
    let qty = prop_oneof![1i128..=10 * model::QTY, 1i128..=1000];
    let price = prop_oneof![model::QTY..=100_000 * model::QTY, 1i128..=100_000];
    prop_oneof![
        8 => (0usize..3, any::<bool>(), qty, proptest::option::weighted(0.8, price.clone()), any::<bool>())
            .prop_map(|(symbol, buy, qty, price, quoted)| Money::Order(symbol, buy, qty, price, quoted)),
        3 => (0usize..3, price.clone()).prop_map(|(symbol, price)| Money::Close(symbol, price)),
        2 => (0usize..3, price).prop_map(|(symbol, price)| Money::Mark(symbol, price)),
        1 => Just(Money::Commit),
        1 => Just(Money::Snapshot),
    ]
}

/// A number of 10^-8 as a signal line writes it.
fn number(value: i128, quoted: bool) -> String {
    let text = model::text(value, 8);
    if quoted {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// Each position as the integers have it, but for the marks (price
/// updates are not journaled: a replay has the fills' own).
fn positions_agree(engine: &Engine, integers: &Model) -> Result<(), TestCaseError> {
    let positions = engine.positions();
    for (symbol, held) in integers.held.iter().enumerate() {
        let Some(position) = positions.get(&format!("S{symbol}")) else {
            prop_assert_eq!(
                *held,
                model::Held {
                    mark: held.mark,
                    ..model::Held::default()
                }
            );
            continue;
        };
        prop_assert_eq!(
            position.qty,
            Quantity::parse(&model::text(held.qty, 8)).unwrap()
        );
        prop_assert_eq!(
            position.cost,
            Amount::parse(&model::text(held.cost, 16)).unwrap()
        );
        prop_assert_eq!(
            position.avg_price(),
            Price::parse(&model::text(held.avg, 8)).unwrap()
        );
        prop_assert_eq!(
            position.realized_pnl,
            Amount::parse(&model::text(held.realized, 16)).unwrap()
        );
        prop_assert_eq!(
            position.fees,
            Amount::parse(&model::text(held.fees, 8)).unwrap()
        );
        if held.qty == 0 {
            // Closed by the quantities that opened it: nothing left over.
            prop_assert_eq!(
                (position.cost, position.avg_price()),
                (Amount::ZERO, Price::ZERO)
            );
        }
    }
    prop_assert_eq!(
        engine.summary().unwrap().cash,
        Amount::parse(&model::text(integers.cash, 16)).unwrap()
    );
    Ok(())
}

/// The marks, by symbol.
fn marks(engine: &Engine) -> Vec<(String, Option<Price>)> {
    engine
        .positions()
        .into_iter()
        .map(|(symbol, position)| (symbol, position.mark))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn money_decided_live_and_recovered_agrees_with_integers(
        steps in proptest::collection::vec(money_step(), 1..80),
        fee in prop_oneof![Just(0u32), 0u32..5000],
        slippage in prop_oneof![Just(0u32), 0u32..5000],
        balance in proptest::option::of(0i128..=1_000_000),
        allow_short in any::<bool>(),
        segment_size in prop_oneof![Just(1_024u64), Just(1 << 20)],
    ) {
        let bps = |hundredths: u32| BasisPoints::parse(&format!("{hundredths}e-2")).unwrap();
        let terms = Terms {
            balance: balance.map(|cash| Amount::from_int(cash as i64).unwrap()),
            fee: bps(fee),
            slippage: bps(slippage),
            allow_short,
            ..Terms::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let config = settings(dir.path(), terms, segment_size, &SymbolSettings::default());
        let (mut live, _) = Bot::recover(&config);
        let mut integers = Model::new(3, balance, fee, slippage, allow_short);
        let mut wall = T0;
        for (index, step) in steps.iter().enumerate() {
            wall += 1;
            let (symbol, buy, qty, asked, quoted) = match *step {
                Money::Order(symbol, buy, qty, asked, quoted) => (symbol, buy, qty, asked, quoted),
                Money::Close(symbol, _) if integers.held[symbol].qty == 0 => continue,
                Money::Close(symbol, price) => {
                    let held = integers.held[symbol].qty;
                    (symbol, held < 0, held.abs(), Some(price), false)
                }
                Money::Mark(symbol, price) => {
                    let update = format!(r#"{{"type":"price","symbol":"S{symbol}","price":"{}"}}"#, model::text(price, 8));
                    prop_assert_eq!(live.decide(&update, wall), "marked");
                    integers.held[symbol].mark = Some(price);
                    continue;
                }
                Money::Commit => {
                    live.ledger.commit(false);
                    continue;
                }
                Money::Snapshot => {
                    live.ledger.finish(EngineState::of(&live.engine));
                    continue;
                }
            };
            let price = asked.map_or(String::new(), |price| format!(",\"price\":{}", number(price, quoted)));
            let side = if buy { "buy" } else { "sell" };
            let order = format!(
                r#"{{"id":"m{index}","ts":{wall},"symbol":"S{symbol}","side":"{side}","qty":{}{price}}}"#,
                number(qty, quoted)
            );
            let expected = match integers.order(symbol, buy, qty, asked) {
                Ok(filled) => format!(
                    "filled {} at {}",
                    Quantity::parse(&model::text(qty, 8)).unwrap(),
                    Price::parse(&model::text(filled.price, 8)).unwrap()
                ),
                Err(reason) => format!("rejected {}", reason.label()),
            };
            prop_assert_eq!(live.decide(&order, wall), expected, "{}", order);
            positions_agree(&live.engine, &integers)?;
        }
        prop_assert!(integers.cash_adds_up());
        live.ledger.commit(false);

        // Every recovery rebuilds the same money, exactly.
        let mut recoveries = vec![copy_state(dir.path(), None)];
        for (_, path) in snapshot::list(dir.path()).unwrap() {
            recoveries.push(copy_state(dir.path(), Some(&path)));
        }
        for copy in &recoveries {
            let (recovered, _) = Bot::recover(&settings(copy.path(), terms, segment_size, &SymbolSettings::default()));
            positions_agree(&recovered.engine, &integers)?;
        }
        // A stop's snapshot keeps the marks price updates moved.
        live.ledger.finish(EngineState::of(&live.engine));
        let newest = snapshot::list(dir.path()).unwrap().into_iter().next().map(|(_, path)| path);
        let copy = copy_state(dir.path(), newest.as_deref());
        let (restarted, _) = Bot::recover(&settings(copy.path(), terms, segment_size, &SymbolSettings::default()));
        prop_assert_eq!(marks(&restarted.engine), marks(&live.engine));
    }
}
