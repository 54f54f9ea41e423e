//! Paper trading: risk limits, then a fill, then the position it changes.
//!
//! The engine's state is a pure function of the fills it has applied, in
//! order, so replaying the fills journal rebuilds it exactly (same
//! arithmetic, same order, same floating-point results).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::settings::RiskLimits;
use super::signal::{Reason, Reject, Side, Signal};
use super::symbols::{self, SymbolBound, SymbolSettings};

/// An order the engine decided to place.
#[derive(Clone, Debug, PartialEq)]
pub struct Order<'a> {
    pub(crate) symbol: &'a str,
    pub(crate) side: Side,
    pub(crate) qty: f64,
    pub(crate) price: f64,
}

/// Where orders are executed. Paper trading fills at the asked price; a
/// live broker would implement this trait without the loop changing.
pub trait Execution: Send {
    /// The price the order filled at.
    fn execute(&mut self, order: &Order<'_>) -> Result<f64, Reject>;
}

pub struct PaperExecution;

impl Execution for PaperExecution {
    fn execute(&mut self, order: &Order<'_>) -> Result<f64, Reject> {
        Ok(order.price)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// Signed: negative is short.
    pub(crate) qty: f64,
    pub(crate) avg_price: f64,
    pub(crate) realized_pnl: f64,
    pub(crate) cash: f64,
    pub(crate) last_price: f64,
}

/// A position as every output shows it (the read API, `tradingbot
/// journal positions --json`, the dashboard): its symbol beside the fields
/// [`Position`] serializes, so they are written in one place.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) symbol: String,
    #[serde(flatten)]
    pub(crate) position: Position,
}

/// One executed order, as the journal records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill<'a> {
    pub(crate) symbol: &'a str,
    pub(crate) side: Side,
    pub(crate) qty: f64,
    pub(crate) price: f64,
    /// Wall-clock milliseconds of the fill; feeds the orders-per-minute window.
    pub(crate) at_ms: i64,
}

pub struct Engine {
    limits: RiskLimits,
    execution: Box<dyn Execution>,
    /// By symbol. Hashed rather than ordered: a lookup on every signal
    /// compared the name against each symbol in a B-tree node in turn.
    /// At most `symbols.max_symbols()` entries, except after replaying a
    /// journal that held more (see `symbols`).
    books: HashMap<String, Book>,
    symbols: SymbolBound,
    /// Fill times within the last minute, oldest first (see [`settle`]).
    recent: VecDeque<i64>,
}

/// One symbol's position, and its fills by side (buy, sell) since this
/// process started: counted here, where the symbol is already looked up.
pub(crate) struct Book {
    pub(crate) position: Position,
    pub(crate) fills: [u64; 2],
    /// Every fill, the journal's included: how active the symbol has been,
    /// which decides what gets a metrics series of its own.
    pub(crate) filled: u64,
    /// In the allowlist (or there is none). Known when the book is made,
    /// so the allowlist costs no lookup per signal; false only for a symbol
    /// replayed from the journal and since left out of `SYMBOLS`.
    listed: bool,
}

impl Book {
    fn new(listed: bool) -> Self {
        Book {
            position: Position::default(),
            fills: [0; 2],
            filled: 0,
            listed,
        }
    }
}

const MINUTE_MS: i64 = 60_000;

impl Engine {
    /// An engine with the default symbol bound (no allowlist, `MAX_SYMBOLS`
    /// 1,000), as the daemon has without settings.
    pub fn new(limits: RiskLimits, execution: Box<dyn Execution>) -> Self {
        Engine {
            limits,
            execution,
            books: HashMap::new(),
            symbols: SymbolBound::default(),
            recent: VecDeque::new(),
        }
    }

    /// The same engine under `settings`' symbol bound.
    pub(crate) fn with_symbols(self, settings: &SymbolSettings) -> Self {
        Engine {
            symbols: SymbolBound::new(settings),
            ..self
        }
    }

    /// Every symbol held, with its book.
    pub(crate) fn books(&self) -> impl Iterator<Item = (&str, &Book)> {
        self.books
            .iter()
            .map(|(symbol, book)| (symbol.as_str(), book))
    }

    /// How many symbols are held.
    pub(crate) fn symbols(&self) -> usize {
        self.books.len()
    }

    /// Says so when replay left more symbols than `MAX_SYMBOLS`: they are
    /// all kept (history is not refused), and no new one is admitted.
    pub(crate) fn warn_if_over_bound(&self) {
        let max = self.symbols.max_symbols();
        if self.books.len() > max {
            tracing::warn!(
                symbols = self.books.len(),
                max_symbols = max,
                "the journal holds more symbols than MAX_SYMBOLS: their positions are kept, \
                 and signals for any new symbol are rejected as too_many_symbols"
            );
        }
    }

    /// Every position, in symbol order (for the snapshot and the metrics).
    pub(crate) fn positions(&self) -> BTreeMap<String, Position> {
        self.books
            .iter()
            .map(|(symbol, book)| (symbol.clone(), book.position.clone()))
            .collect()
    }

    /// One symbol's position.
    pub(crate) fn position(&self, symbol: &str) -> Option<&Position> {
        self.books.get(symbol).map(|book| &book.position)
    }

    /// Every fill of each symbol, the journal's included (for a snapshot:
    /// which symbols get metrics series of their own follows it).
    pub(crate) fn symbol_fills(&self) -> BTreeMap<String, u64> {
        self.books
            .iter()
            .filter(|(_, book)| book.filled > 0)
            .map(|(symbol, book)| (symbol.clone(), book.filled))
            .collect()
    }

    /// Fill times within the last minute (MAX_ORDERS_PER_MINUTE), for a
    /// snapshot.
    pub(crate) fn recent_fills(&self) -> Vec<i64> {
        self.recent.iter().copied().collect()
    }

    /// Puts back the state a snapshot held: positions, each symbol's fill
    /// count and recent fill times. Never refused, whatever the symbol
    /// bound, like a replayed fill: the positions are history.
    pub(crate) fn restore(
        &mut self,
        positions: BTreeMap<String, Position>,
        symbol_fills: &BTreeMap<String, u64>,
        recent_fills: Vec<i64>,
    ) {
        self.books = positions
            .into_iter()
            .map(|(symbol, position)| {
                let book = Book {
                    position,
                    fills: [0; 2],
                    filled: symbol_fills.get(&symbol).copied().unwrap_or(0),
                    listed: self.symbols.listed(&symbol),
                };
                (symbol, book)
            })
            .collect();
        self.recent = recent_fills.into();
    }

    /// Checks the limits, executes, and applies the fill; a refusal changes nothing.
    pub fn decide<'s>(&mut self, signal: &'s Signal<'_>, now_ms: i64) -> Result<Fill<'s>, Reject> {
        // One lookup for the checks and the fill (the symbol's name is
        // compared a few times per lookup, which shows at this rate).
        let held = self.books.len();
        let mut book = self.books.get_mut(signal.symbol.as_ref());
        // The symbol first: a signal for one the bot does not trade is
        // refused for that, whatever else is wrong with it.
        match &book {
            Some(book) if !book.listed => return Err(symbols::unlisted(&signal.symbol)),
            Some(_) => {}
            None => self.symbols.admit(&signal.symbol, held)?,
        }
        let price = signal
            .price
            .or_else(|| book.as_ref().map(|book| book.position.last_price))
            .ok_or_else(|| {
                Reject::new(
                    Reason::NoPrice,
                    format!(
                        "no price in the signal and no last price for {}",
                        signal.symbol
                    ),
                )
            })?;
        let notional = signal.qty * price;
        if !notional.is_finite() {
            return Err(Reject::new(
                Reason::BadQty,
                format!("qty {} × price {price} is beyond any amount", signal.qty),
            ));
        }
        if let Some(max) = self.limits.max_order_notional {
            if notional > max {
                return Err(Reject::new(
                    Reason::MaxOrderNotional,
                    format!("order notional {notional} is over MAX_ORDER_NOTIONAL {max}"),
                ));
            }
        }
        if let Some(max) = self.limits.max_position_qty {
            let current = book.as_ref().map_or(0.0, |book| book.position.qty);
            let after = match signal.side {
                Side::Buy => current + signal.qty,
                Side::Sell => current - signal.qty,
            };
            if after.abs() > max {
                return Err(Reject::new(
                    Reason::MaxPositionQty,
                    format!(
                        "position in {} would be {after}, beyond MAX_POSITION_QTY {max}",
                        signal.symbol
                    ),
                ));
            }
        }
        if let Some(max) = self.limits.max_orders_per_minute {
            forget_before(&mut self.recent, now_ms - MINUTE_MS);
            if self.recent.len() >= max as usize {
                return Err(Reject::new(
                    Reason::MaxOrdersPerMinute,
                    format!("{max} orders in the last minute already (MAX_ORDERS_PER_MINUTE)"),
                ));
            }
        }
        let order = Order {
            symbol: &signal.symbol,
            side: signal.side,
            qty: signal.qty,
            price,
        };
        let filled_at = self.execution.execute(&order)?;
        let fill = Fill {
            symbol: &signal.symbol,
            side: signal.side,
            qty: signal.qty,
            price: filled_at,
            at_ms: now_ms,
        };
        let book = match book.take() {
            Some(book) => book,
            None => self
                .books
                .entry(fill.symbol.to_owned())
                .or_insert(Book::new(true)),
        };
        settle(book, &fill, &self.limits, &mut self.recent);
        book.fills[fill.side as usize] += 1;
        Ok(fill)
    }

    /// Applies a fill that has already happened (one replayed from the
    /// journal). Never refused, whatever the symbol bound: the fill is
    /// history, and its position must be there.
    pub(crate) fn apply(&mut self, fill: &Fill<'_>) {
        // A lookup before an insert: `entry` would copy the symbol for
        // every fill, and a symbol is new only once.
        let book = match self.books.get_mut(fill.symbol) {
            Some(book) => book,
            None => {
                let listed = self.symbols.listed(fill.symbol);
                self.books
                    .entry(fill.symbol.to_owned())
                    .or_insert(Book::new(listed))
            }
        };
        settle(book, fill, &self.limits, &mut self.recent);
    }
}

/// Books a fill: average-cost accounting of the position, and the fill's
/// time for MAX_ORDERS_PER_MINUTE (kept only under that limit: unlimited,
/// a busy feed would grow it by every fill of the minute for nothing; and
/// only for the minute up to the fill, so replaying a long journal does
/// not keep every fill it ever made).
fn settle(book: &mut Book, fill: &Fill<'_>, limits: &RiskLimits, recent: &mut VecDeque<i64>) {
    if limits.max_orders_per_minute.is_some() {
        recent.push_back(fill.at_ms);
        forget_before(recent, fill.at_ms - MINUTE_MS);
    }
    book.filled += 1;
    let position = &mut book.position;
    let signed = match fill.side {
        Side::Buy => fill.qty,
        Side::Sell => -fill.qty,
    };
    position.cash -= signed * fill.price;
    position.last_price = fill.price;
    if position.qty == 0.0 || position.qty.signum() == signed.signum() {
        let total = position.qty + signed;
        position.avg_price =
            (position.qty.abs() * position.avg_price + fill.qty * fill.price) / total.abs();
        position.qty = total;
        return;
    }
    let closed = fill.qty.min(position.qty.abs());
    position.realized_pnl += closed * (fill.price - position.avg_price) * position.qty.signum();
    let remaining = position.qty + signed;
    if remaining == 0.0 || remaining.signum() == position.qty.signum() {
        position.qty = remaining;
        if remaining == 0.0 {
            position.avg_price = 0.0;
        }
    } else {
        position.qty = remaining;
        position.avg_price = fill.price;
    }
}

fn forget_before(recent: &mut VecDeque<i64>, cutoff_ms: i64) {
    while recent.front().is_some_and(|at| *at <= cutoff_ms) {
        recent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(id: &str, side: Side, qty: f64, price: Option<f64>) -> Signal<'_> {
        Signal {
            id: id.into(),
            ts_ms: 0,
            symbol: "BTC".into(),
            side,
            qty,
            price,
            source: None,
        }
    }

    fn engine(limits: RiskLimits) -> Engine {
        Engine::new(limits, Box::new(PaperExecution))
    }

    #[test]
    fn long_then_flip_short_realizes_pnl() {
        let mut engine = engine(RiskLimits::default());
        engine
            .decide(&signal("1", Side::Buy, 2.0, Some(100.0)), 0)
            .unwrap();
        engine
            .decide(&signal("2", Side::Buy, 2.0, Some(110.0)), 0)
            .unwrap();
        let position = &engine.positions()["BTC"];
        assert_eq!(position.qty, 4.0);
        assert_eq!(position.avg_price, 105.0);
        engine
            .decide(&signal("3", Side::Sell, 5.0, Some(120.0)), 0)
            .unwrap();
        let position = &engine.positions()["BTC"];
        assert_eq!(position.qty, -1.0);
        assert_eq!(position.avg_price, 120.0);
        assert_eq!(position.realized_pnl, 60.0);
        assert_eq!(position.cash, -200.0 - 220.0 + 600.0);
        engine
            .decide(&signal("4", Side::Buy, 1.0, None), 0)
            .unwrap();
        let position = &engine.positions()["BTC"];
        assert_eq!(position.qty, 0.0);
        assert_eq!(position.avg_price, 0.0);
        assert_eq!(position.realized_pnl, 60.0);
    }

    proptest::proptest! {
        /// Average-cost accounting: cash plus the position at its average
        /// price is the realized PnL, whatever the sequence of fills.
        #[test]
        fn cash_and_position_at_cost_add_up_to_realized_pnl(
            orders in proptest::collection::vec((proptest::bool::ANY, 1u32..5, 50u32..150), 1..40)
        ) {
            let mut engine = engine(RiskLimits::default());
            for (index, (buy, qty, price)) in orders.into_iter().enumerate() {
                let side = if buy { Side::Buy } else { Side::Sell };
                let id = index.to_string();
                engine.decide(&signal(&id, side, f64::from(qty), Some(f64::from(price))), 0).unwrap();
            }
            let position = &engine.positions()["BTC"];
            let at_cost = position.cash + position.qty * position.avg_price;
            proptest::prop_assert!((at_cost - position.realized_pnl).abs() < 1e-6, "{:?}", position);
        }
    }

    fn priced(id: &str, symbol: &str) -> Signal<'static> {
        Signal {
            id: id.to_owned().into(),
            ts_ms: 0,
            symbol: symbol.to_owned().into(),
            side: Side::Buy,
            qty: 1.0,
            price: Some(10.0),
            source: None,
        }
    }

    fn bounded(symbols: &[&str], max_symbols: u32) -> Engine {
        let list: Vec<String> = symbols.iter().map(|symbol| (*symbol).to_owned()).collect();
        engine(RiskLimits::default())
            .with_symbols(&SymbolSettings::new(&list, max_symbols, 0).unwrap())
    }

    #[test]
    fn symbols_past_the_bound_or_off_the_list_are_refused_without_changing_state() {
        let mut engine = bounded(&[], 2);
        engine.decide(&priced("1", "A"), 0).unwrap();
        engine.decide(&priced("2", "B"), 0).unwrap();
        let refused = engine.decide(&priced("3", "C"), 0).unwrap_err();
        assert_eq!(refused.reason, Reason::TooManySymbols);
        assert_eq!(engine.symbols(), 2);
        // The symbols held still trade.
        engine.decide(&priced("4", "A"), 0).unwrap();
        assert_eq!(engine.positions()["A"].qty, 2.0);

        let mut engine = bounded(&["A"], 2);
        let refused = engine.decide(&priced("5", "B"), 0).unwrap_err();
        assert_eq!(refused.reason, Reason::UnknownSymbol);
        assert_eq!(engine.symbols(), 0);
        // Refused for the symbol before any check of the signal itself.
        let no_price = Signal {
            price: None,
            ..priced("6", "B")
        };
        assert_eq!(
            engine.decide(&no_price, 0).unwrap_err().reason,
            Reason::UnknownSymbol
        );
    }

    #[test]
    fn replay_keeps_every_position_past_the_bound_and_admits_no_new_symbol() {
        // A journal written with no allowlist and a larger cap.
        let mut engine = bounded(&["A", "B"], 2);
        for symbol in ["A", "B", "C"] {
            engine.apply(&Fill {
                symbol,
                side: Side::Buy,
                qty: 1.0,
                price: 10.0,
                at_ms: 0,
            });
        }
        assert_eq!(engine.symbols(), 3, "history is never refused");
        engine.decide(&priced("1", "A"), 0).unwrap();
        // C is held, but the allowlist says it is not traded any more.
        assert_eq!(
            engine.decide(&priced("2", "C"), 0).unwrap_err().reason,
            Reason::UnknownSymbol
        );
        let mut engine = bounded(&[], 2);
        for symbol in ["A", "B", "C"] {
            engine.apply(&Fill {
                symbol,
                side: Side::Buy,
                qty: 1.0,
                price: 10.0,
                at_ms: 0,
            });
        }
        engine.decide(&priced("3", "C"), 0).unwrap();
        assert_eq!(
            engine.decide(&priced("4", "D"), 0).unwrap_err().reason,
            Reason::TooManySymbols
        );
    }

    #[test]
    fn replay_keeps_only_the_last_minute_of_fill_times() {
        let mut engine = engine(RiskLimits {
            max_orders_per_minute: Some(5),
            ..RiskLimits::default()
        });
        for second in 0..10_000 {
            engine.apply(&Fill {
                symbol: "A",
                side: Side::Buy,
                qty: 1.0,
                price: 10.0,
                at_ms: second * 1000,
            });
        }
        assert_eq!(engine.recent.len(), 60);
    }

    #[test]
    fn limits_reject_without_changing_state() {
        let mut engine = engine(RiskLimits {
            max_position_qty: Some(3.0),
            max_order_notional: Some(1000.0),
            max_orders_per_minute: Some(2),
        });
        let reason = |result: Result<Fill<'_>, Reject>| result.unwrap_err().reason;
        assert_eq!(
            reason(engine.decide(&signal("a", Side::Buy, 1.0, None), 0)),
            Reason::NoPrice
        );
        assert_eq!(
            reason(engine.decide(&signal("b", Side::Buy, 11.0, Some(100.0)), 0)),
            Reason::MaxOrderNotional
        );
        engine
            .decide(&signal("c", Side::Buy, 3.0, Some(100.0)), 0)
            .unwrap();
        assert_eq!(
            reason(engine.decide(&signal("d", Side::Buy, 0.5, Some(100.0)), 1)),
            Reason::MaxPositionQty
        );
        engine
            .decide(&signal("e", Side::Sell, 1.0, Some(100.0)), 2)
            .unwrap();
        assert_eq!(
            reason(engine.decide(&signal("f", Side::Sell, 1.0, Some(100.0)), 3)),
            Reason::MaxOrdersPerMinute
        );
        engine
            .decide(&signal("g", Side::Sell, 1.0, Some(100.0)), MINUTE_MS + 1)
            .unwrap();
        assert_eq!(engine.positions()["BTC"].qty, 1.0);
    }
}
