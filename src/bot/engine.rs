//! Paper trading: the symbol bound, then the account (risk limits, cash,
//! fees, slippage, marks), then the fill and the position it changes.
//!
//! The engine keeps each symbol's book (its position, found with one
//! lookup per signal) and hands it to [`Account`], which decides and books
//! every fill with exact decimals. Its state is a function of the fills it
//! has applied, in order, and of the marks it has seen: replaying the
//! journal's fills rebuilds the positions exactly (the same arithmetic,
//! [`Account::apply`]), and a snapshot keeps the marks that price updates,
//! which are not journaled, moved.

use std::collections::BTreeMap;

use hashbrown::HashMap;

use serde::{Deserialize, Serialize};

use super::account::{Account, Fill, Order, Position, Summary, Terms};
use super::money::{Amount, Overflow};
use super::signal::{PriceUpdate, Reject, Signal};
use super::symbols::{self, SymbolBound, SymbolSettings};

/// Where orders are executed. Paper trading fills every order as the
/// account decided it; a live broker would implement this trait without
/// the loop changing.
pub trait Execution: Send {
    /// Executes the order `fill` describes, or refuses it.
    fn execute(&mut self, symbol: &str, fill: &Fill) -> Result<(), Reject>;
}

pub struct PaperExecution;

impl Execution for PaperExecution {
    fn execute(&mut self, _symbol: &str, _fill: &Fill) -> Result<(), Reject> {
        Ok(())
    }
}

/// A position as every output shows it (the read API, `tradingbot
/// journal positions --json`, the dashboard): its symbol beside the fields
/// [`Position`] serializes, and what closing it at the mark would realize,
/// so they are written in one place.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) symbol: String,
    #[serde(flatten)]
    pub(crate) position: Position,
    /// Before fees; none past what a value holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unrealized_pnl: Option<Amount>,
}

impl Held {
    pub(crate) fn of(symbol: &str, position: &Position) -> Held {
        Held {
            symbol: symbol.to_owned(),
            position: position.settled(),
            unrealized_pnl: position.unrealized_pnl().ok(),
        }
    }
}

pub struct Engine {
    account: Account,
    execution: Box<dyn Execution>,
    /// By symbol. Hashed rather than ordered: a lookup on every signal
    /// compared the name against each symbol in a B-tree node in turn.
    /// Hashed with foldhash (hashbrown's own, seeded per process) rather
    /// than std's SipHash, which cost more than the rest of the lookup:
    /// the keys are bounded by `MAX_SYMBOLS`, so a flood of colliding
    /// symbols has no table to grow. At most `symbols.max_symbols()`
    /// entries, except after replaying a journal that held more (see
    /// `symbols`).
    books: HashMap<String, Book>,
    symbols: SymbolBound,
    /// Price updates applied since the start: a stop's snapshot keeps the
    /// marks they moved, though no record came.
    marks: u64,
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
    fn new(position: Position, listed: bool) -> Self {
        Book {
            position,
            fills: [0; 2],
            filled: 0,
            listed,
        }
    }
}

impl Engine {
    /// An engine on an account of `terms`, with the default symbol bound
    /// (no allowlist, `MAX_SYMBOLS` 1,000).
    pub fn new(terms: Terms, execution: Box<dyn Execution>) -> Self {
        Engine {
            account: Account::new(terms),
            execution,
            books: HashMap::new(),
            symbols: SymbolBound::default(),
            marks: 0,
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

    /// Every position, settled, in symbol order (for the snapshot and the
    /// figures).
    pub(crate) fn positions(&self) -> BTreeMap<String, Position> {
        self.books
            .iter()
            .map(|(symbol, book)| (symbol.clone(), book.position.settled()))
            .collect()
    }

    /// One symbol's position, its average price perhaps due.
    pub(crate) fn position(&self, symbol: &str) -> Option<&Position> {
        self.books.get(symbol).map(|book| &book.position)
    }

    /// The account's figures over every position.
    pub(crate) fn summary(&self) -> Result<Summary, Overflow> {
        self.account
            .summary(self.books.values().map(|book| &book.position))
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
        self.account.recent_fills().collect()
    }

    /// How many price updates moved a mark since the start.
    pub(crate) fn marks_moved(&self) -> u64 {
        self.marks
    }

    /// Puts back the state a snapshot held: positions (marks included),
    /// each symbol's fill count and recent fill times; the cash follows
    /// from the positions. Never refused, whatever the symbol bound, like
    /// a replayed fill: the positions are history.
    pub(crate) fn restore(
        &mut self,
        positions: BTreeMap<String, Position>,
        symbol_fills: &BTreeMap<String, u64>,
        recent_fills: Vec<i64>,
    ) -> Result<(), Overflow> {
        self.account = Account::restore(*self.account.terms(), positions.values(), recent_fills)?;
        self.books = positions
            .into_iter()
            .map(|(symbol, position)| {
                let mut book = Book::new(position, self.symbols.listed(&symbol));
                book.filled = symbol_fills.get(&symbol).copied().unwrap_or(0);
                (symbol, book)
            })
            .collect();
        Ok(())
    }

    /// The symbol bound, then the account's checks, then the execution;
    /// returns the fill and books it. A refusal changes nothing.
    pub fn decide(&mut self, signal: &Signal<'_>, now_ms: i64) -> Result<Fill, Reject> {
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
        let order = Order {
            symbol: &signal.symbol,
            side: signal.side,
            qty: signal.qty,
            price: signal.price,
        };
        let position = book.as_ref().map_or(&Position::FLAT, |book| &book.position);
        let decision = self.account.decide(position, &order, now_ms)?;
        self.execution.execute(&signal.symbol, &decision.fill)?;
        let book = match book.take() {
            Some(book) => book,
            None => self
                .books
                .entry(signal.symbol.to_string())
                .or_insert(Book::new(Position::FLAT, true)),
        };
        book.fills[decision.fill.side as usize] += 1;
        book.filled += 1;
        Ok(self.account.commit(&mut book.position, decision))
    }

    /// Moves a symbol's mark (a price update): through the symbol bound
    /// like a signal's symbol, so a price feed for symbols the bot does not
    /// trade grows nothing.
    pub(crate) fn mark(&mut self, update: &PriceUpdate<'_>) -> Result<(), Reject> {
        let held = self.books.len();
        let book = match self.books.get_mut(update.symbol.as_ref()) {
            Some(book) if !book.listed => return Err(symbols::unlisted(&update.symbol)),
            Some(book) => book,
            None => {
                self.symbols.admit(&update.symbol, held)?;
                self.books
                    .entry(update.symbol.to_string())
                    .or_insert(Book::new(Position::default(), true))
            }
        };
        book.position.mark_at(update.price);
        self.marks += 1;
        Ok(())
    }

    /// Applies a fill that has already happened (one replayed from the
    /// journal). Never refused, whatever the symbol bound: the fill is
    /// history, and its position must be there. Only a fill no decision
    /// could have made (amounts past what a value holds) fails, changing
    /// nothing.
    pub(crate) fn apply(&mut self, symbol: &str, fill: &Fill) -> Result<(), Overflow> {
        // A lookup before an insert: `entry` would copy the symbol for
        // every fill, and a symbol is new only once.
        if let Some(book) = self.books.get_mut(symbol) {
            self.account.apply(&mut book.position, fill)?;
            book.filled += 1;
            return Ok(());
        }
        let mut position = Position::default();
        self.account.apply(&mut position, fill)?;
        let mut book = Book::new(position, self.symbols.listed(symbol));
        book.filled = 1;
        self.books.insert(symbol.to_owned(), book);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::account::Limits;
    use crate::bot::money::literals::{amount, price, quantity};
    use crate::bot::money::{Price, Quantity, Rounding};
    use crate::bot::signal::{Reason, Side};

    fn signal<'a>(
        id: &'a str,
        symbol: &'a str,
        side: Side,
        qty: &str,
        at: Option<&str>,
    ) -> Signal<'a> {
        Signal {
            id: id.into(),
            ts_ms: 0,
            symbol: symbol.into(),
            side,
            qty: quantity(qty),
            price: at.map(price),
            source: None,
        }
    }

    fn priced<'a>(id: &'a str, symbol: &'a str) -> Signal<'a> {
        signal(id, symbol, Side::Buy, "1", Some("10"))
    }

    fn engine(terms: Terms) -> Engine {
        Engine::new(terms, Box::new(PaperExecution))
    }

    fn bounded(symbols: &[&str], max_symbols: u32) -> Engine {
        let list: Vec<String> = symbols.iter().map(|symbol| (*symbol).to_owned()).collect();
        engine(Terms::default()).with_symbols(&SymbolSettings::new(&list, max_symbols, 0).unwrap())
    }

    fn fill(qty: &str, at: &str) -> Fill {
        Fill {
            side: Side::Buy,
            qty: quantity(qty),
            asked: price(at),
            price: price(at),
            fee: Amount::ZERO,
            at_ms: 0,
            rounding: Rounding::DEFAULT,
        }
    }

    #[test]
    fn a_tenth_and_two_tenths_fill_under_three_tenths_and_close_to_exactly_flat() {
        let mut engine = engine(Terms {
            limits: Limits {
                max_position_qty: Some(quantity("0.3")),
                ..Limits::default()
            },
            ..Terms::default()
        });
        for (id, qty, at) in [("1", "0.1", "3000.1"), ("2", "0.2", "3000.2")] {
            engine
                .decide(&signal(id, "ETH", Side::Buy, qty, Some(at)), 0)
                .unwrap();
        }
        engine
            .decide(&signal("3", "ETH", Side::Sell, "0.3", Some("3000.3")), 0)
            .unwrap();
        let eth = &engine.positions()["ETH"];
        assert_eq!((eth.qty, eth.cost), (Quantity::ZERO, Amount::ZERO));
        assert_eq!(eth.realized_pnl, amount("0.04"));
        assert_eq!(engine.summary().unwrap().cash, amount("0.04"));
    }

    #[test]
    fn a_price_update_moves_the_mark_and_a_signal_without_price_fills_there() {
        let mut engine = bounded(&["BTC", "ETH"], 2);
        let no_price = signal("1", "BTC", Side::Buy, "1", None);
        assert_eq!(
            engine.decide(&no_price, 0).unwrap_err().reason,
            Reason::NoPrice
        );
        assert_eq!(engine.symbols(), 0, "a refusal holds no symbol");
        let update = PriceUpdate {
            symbol: "BTC".into(),
            price: price("64410.5"),
        };
        engine.mark(&update).unwrap();
        assert_eq!(engine.marks_moved(), 1);
        let fill = engine.decide(&no_price, 0).unwrap();
        assert_eq!(fill.price, price("64410.5"));
        engine
            .mark(&PriceUpdate {
                symbol: "BTC".into(),
                price: price("64420.5"),
            })
            .unwrap();
        let summary = engine.summary().unwrap();
        assert_eq!(summary.unrealized_pnl, amount("10"));
        assert_eq!(summary.equity, amount("10"));
        assert_eq!(summary.cash, amount("-64410.5"));
        let refused = engine
            .mark(&PriceUpdate {
                symbol: "SOL".into(),
                price: price("1"),
            })
            .unwrap_err();
        assert_eq!(refused.reason, Reason::UnknownSymbol);
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
        assert_eq!(engine.positions()["A"].qty, quantity("2"));

        let mut engine = bounded(&["A"], 2);
        let refused = engine.decide(&priced("5", "B"), 0).unwrap_err();
        assert_eq!(refused.reason, Reason::UnknownSymbol);
        assert_eq!(engine.symbols(), 0);
        // Refused for the symbol before any check of the signal itself.
        let no_price = signal("6", "B", Side::Buy, "1", None);
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
            engine.apply(symbol, &fill("1", "10")).unwrap();
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
            engine.apply(symbol, &fill("1", "10")).unwrap();
        }
        engine.decide(&priced("3", "C"), 0).unwrap();
        assert_eq!(
            engine.decide(&priced("4", "D"), 0).unwrap_err().reason,
            Reason::TooManySymbols
        );
    }

    #[test]
    fn a_replayed_fill_past_any_amount_changes_nothing() {
        let mut engine = bounded(&[], 10);
        assert_eq!(
            engine.apply("A", &fill("9999999999", "9999999999")),
            Err(Overflow)
        );
        assert_eq!(engine.symbols(), 0);
    }

    #[test]
    fn restored_positions_give_back_the_cash_and_the_marks() {
        let mut live = engine(Terms {
            balance: Some(amount("1000")),
            ..Terms::default()
        });
        live.decide(&signal("1", "A", Side::Buy, "2", Some("100")), 0)
            .unwrap();
        live.mark(&PriceUpdate {
            symbol: "A".into(),
            price: price("110"),
        })
        .unwrap();
        let mut restored = engine(*live.account.terms());
        restored
            .restore(live.positions(), &live.symbol_fills(), live.recent_fills())
            .unwrap();
        assert_eq!(restored.summary(), live.summary());
        assert_eq!(restored.summary().unwrap().equity, amount("1020"));
        assert_eq!(
            restored.positions()["A"].mark,
            Some(Price::parse("110").unwrap())
        );
    }
}
