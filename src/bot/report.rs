//! The trade report, as a pure module: round trips from the fills in
//! journal order, and the figures over them per symbol and in total.
//!
//! A round trip is a position from flat back to flat: its entries (the
//! fills that opened or added to it) and its exits (those that reduced and
//! closed it). A fill through zero closes one round trip and opens the
//! next, its quantity and fee shared between them. A round trip's PnL is
//! exact and net of fees: what its exits brought in less what its entries
//! cost, less every fee paid on it (the account's realized PnL over the
//! same fills, less their fees). The window ([`Window`]) takes the round
//! trips that closed in it.
//!
//! Equity, for the drawdown, is marked to market: every fill's cash flow
//! (fees included) plus each position at its mark, the last price seen
//! (its last fill's asked price: price updates are not journaled one by
//! one). docs/money.md compares the figures with freqtrade's.

use std::collections::{BTreeMap, HashMap};

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use super::account::{Fill, Position};
use super::money::{Amount, Overflow, Price, Quantity, Ratio, Rounding};
use super::signal::Side;

/// What the report covers: the round trips that closed at or after
/// `since_ms`, of `symbol` only if one is named. The fills before `since_ms`
/// are still read (a round trip that closes in the window may have opened
/// before it); the drawdown is measured from the equity the window starts
/// with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Window {
    #[serde(rename = "since")]
    pub(crate) since_ms: Option<i64>,
    pub(crate) symbol: Option<String>,
}

impl Window {
    fn has_symbol(&self, symbol: &str) -> bool {
        self.symbol.as_deref().is_none_or(|only| only == symbol)
    }

    fn has_time(&self, at_ms: i64) -> bool {
        self.since_ms.is_none_or(|since| at_ms >= since)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    Long,
    Short,
}

impl Direction {
    fn of(side: Side) -> Direction {
        match side {
            Side::Buy => Direction::Long,
            Side::Sell => Direction::Short,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Long => "long",
            Direction::Short => "short",
        }
    }
}

/// A position from flat back to flat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoundTrip {
    pub(crate) symbol: String,
    pub(crate) direction: Direction,
    pub(crate) opened_ms: i64,
    pub(crate) closed_ms: i64,
    /// All that was entered, and so all that was exited.
    pub(crate) qty: Quantity,
    /// What the entries cost, exactly.
    pub(crate) entry_notional: Amount,
    /// What the exits brought in, exactly.
    pub(crate) exit_notional: Amount,
    /// The average entry price, rounded for people (the exact figures are
    /// the notional and the quantity).
    pub(crate) entry_price: Price,
    pub(crate) exit_price: Price,
    pub(crate) fees: Amount,
    /// Net of fees.
    pub(crate) pnl: Amount,
}

impl RoundTrip {
    pub(crate) fn duration_ms(&self) -> i64 {
        self.closed_ms - self.opened_ms
    }
}

/// Times as epoch milliseconds, as a fill's `at`; amounts as strings.
impl Serialize for RoundTrip {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut trip = serializer.serialize_struct("RoundTrip", 12)?;
        trip.serialize_field("symbol", &self.symbol)?;
        trip.serialize_field("direction", &self.direction)?;
        trip.serialize_field("opened_at", &self.opened_ms)?;
        trip.serialize_field("closed_at", &self.closed_ms)?;
        trip.serialize_field("duration_ms", &self.duration_ms())?;
        trip.serialize_field("qty", &self.qty)?;
        trip.serialize_field("entry_price", &self.entry_price)?;
        trip.serialize_field("exit_price", &self.exit_price)?;
        trip.serialize_field("entry_notional", &self.entry_notional)?;
        trip.serialize_field("exit_notional", &self.exit_notional)?;
        trip.serialize_field("fees", &self.fees)?;
        trip.serialize_field("pnl", &self.pnl)?;
        trip.end()
    }
}

/// A position not yet back to flat, valued at its mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct OpenTrip {
    pub(crate) symbol: String,
    pub(crate) direction: Direction,
    #[serde(rename = "opened_at")]
    pub(crate) opened_ms: i64,
    /// Held now.
    pub(crate) qty: Quantity,
    pub(crate) entry_price: Price,
    #[serde(rename = "mark_price")]
    pub(crate) mark: Price,
    /// If it were closed at the mark, with no further fee.
    pub(crate) pnl: Amount,
}

/// The figures over a set of round trips (a symbol's, or all of them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Summary {
    pub(crate) trades: u64,
    /// PnL above zero.
    pub(crate) wins: u64,
    /// PnL below zero; the rest are draws.
    pub(crate) losses: u64,
    /// Wins over trades, to 4 places; none without a trade.
    pub(crate) win_rate: Option<Ratio>,
    /// Net of fees.
    pub(crate) pnl: Amount,
    /// Gross profit over gross loss, to 4 places; none without a loss.
    pub(crate) profit_factor: Option<Ratio>,
    pub(crate) avg_win: Option<Amount>,
    /// Negative.
    pub(crate) avg_loss: Option<Amount>,
    pub(crate) largest_win: Option<Amount>,
    /// Negative.
    pub(crate) largest_loss: Option<Amount>,
    pub(crate) avg_duration_ms: Option<i64>,
    /// The largest fall of equity from a peak within the window: from
    /// `drawdown_from_ms` (the peak) to `drawdown_to_ms` (the trough).
    pub(crate) max_drawdown: Amount,
    #[serde(rename = "max_drawdown_start")]
    pub(crate) drawdown_from_ms: Option<i64>,
    #[serde(rename = "max_drawdown_end")]
    pub(crate) drawdown_to_ms: Option<i64>,
    pub(crate) fees: Amount,
    /// The notional of every entry and exit.
    pub(crate) volume: Amount,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    pub(crate) total: Summary,
    pub(crate) by_symbol: BTreeMap<String, Summary>,
    /// In the order they closed.
    pub(crate) round_trips: Vec<RoundTrip>,
    /// In symbol order.
    pub(crate) open: Vec<OpenTrip>,
}

/// Builds a [`Report`] from the journal read once, in order.
#[derive(Debug)]
pub(crate) struct Builder {
    window: Window,
    rounding: Rounding,
    books: HashMap<String, Book>,
    /// Every symbol's equity summed.
    equity: Amount,
    drawdown: Drawdown,
    tally: Tally,
    round_trips: Vec<RoundTrip>,
}

impl Builder {
    /// `rounding`: for the average prices shown until a fill says the
    /// account's (each fill's own is used from then on).
    pub(crate) fn new(window: Window, rounding: Rounding) -> Self {
        Builder {
            window,
            rounding,
            books: HashMap::new(),
            equity: Amount::ZERO,
            drawdown: Drawdown::default(),
            tally: Tally::default(),
            round_trips: Vec::new(),
        }
    }

    /// A fill of `symbol`, as the journal records it. Its rounding (the
    /// `MONEY_DECIMALS` the record keeps) is used for the fee a fill
    /// through zero shares and the average prices shown: the report
    /// rounds as the account did.
    pub(crate) fn fill(&mut self, symbol: &str, fill: &Fill) -> Result<(), Overflow> {
        if !self.window.has_symbol(symbol) {
            return Ok(());
        }
        let book = self.books.entry(symbol.to_owned()).or_default();
        let was = book.equity()?;
        self.rounding = fill.rounding;
        let closed = book.trade(fill)?;
        let now = book.equity()?;
        self.moved(symbol, was, now, fill.at_ms)?;
        if let Some(trip) = closed.filter(|trip| self.window.has_time(trip.closed_ms)) {
            let book = self.books.get_mut(symbol).ok_or(Overflow)?;
            book.tally.count(&trip)?;
            self.tally.count(&trip)?;
            self.round_trips.push(RoundTrip {
                symbol: symbol.to_owned(),
                ..trip
            });
        }
        Ok(())
    }

    /// A position held where the read of the journal starts (retention
    /// deleted the fills that opened it; a snapshot holds it): its round
    /// trip is taken as opened at `at_ms`, at its exact cost, with no fee
    /// before. The equity starts with it at its mark (its average price
    /// before any).
    pub(crate) fn carry(
        &mut self,
        symbol: &str,
        position: &Position,
        at_ms: i64,
    ) -> Result<(), Overflow> {
        let (qty, cost) = (position.qty, position.cost);
        if qty.is_zero() || !self.window.has_symbol(symbol) {
            return Ok(());
        }
        let mark = position.mark.unwrap_or(position.avg_price());
        let book = self.books.entry(symbol.to_owned()).or_default();
        let was = book.equity()?;
        book.qty = book.qty.checked_add(qty)?;
        book.flow = book.flow.checked_sub(cost)?;
        book.mark = Some(mark);
        book.open = Some(Open {
            direction: if qty.is_negative() {
                Direction::Short
            } else {
                Direction::Long
            },
            opened_ms: at_ms,
            held: qty.abs(),
            entry_qty: qty.abs(),
            entry_notional: cost.abs(),
            ..Open::default()
        });
        let now = book.equity()?;
        self.equity = self.equity.checked_sub(was)?.checked_add(now)?;
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Report, Overflow> {
        let mut by_symbol = BTreeMap::new();
        let mut open = Vec::new();
        for (symbol, book) in self.books {
            if let Some(trip) = &book.open {
                open.push(trip.valued(&symbol, book.mark, self.rounding)?);
            }
            if book.tally.trades > 0 || book.drawdown.peak.is_some() {
                by_symbol.insert(symbol, book.tally.summary(&book.drawdown)?);
            }
        }
        open.sort_by(|a: &OpenTrip, b| a.symbol.cmp(&b.symbol));
        Ok(Report {
            round_trips: self.round_trips,
            open,
            by_symbol,
            total: self.tally.summary(&self.drawdown)?,
        })
    }

    /// A symbol's equity went from `was` to `now`: the total moves with it,
    /// and both drawdowns see it if it happened in the window.
    fn moved(
        &mut self,
        symbol: &str,
        was: Amount,
        now: Amount,
        at_ms: i64,
    ) -> Result<(), Overflow> {
        let total_was = self.equity;
        self.equity = self.equity.checked_sub(was)?.checked_add(now)?;
        if !self.window.has_time(at_ms) {
            return Ok(());
        }
        self.drawdown.observe(total_was, self.equity, at_ms)?;
        let book = self.books.get_mut(symbol).ok_or(Overflow)?;
        book.drawdown.observe(was, now, at_ms)
    }
}

/// One symbol as the report follows it.
#[derive(Debug, Default)]
struct Book {
    /// Signed.
    qty: Quantity,
    /// Every fill's cash flow, fees included: equity less the position.
    flow: Amount,
    mark: Option<Price>,
    open: Option<Open>,
    tally: Tally,
    drawdown: Drawdown,
}

impl Book {
    fn equity(&self) -> Result<Amount, Overflow> {
        let value = match self.mark {
            Some(mark) => self.qty.times(mark)?,
            None => Amount::ZERO,
        };
        self.flow.checked_add(value)
    }

    /// Books the fill, rounding as it says; the round trip it closes, if
    /// it does (its symbol left empty for the caller, who has it).
    fn trade(&mut self, trade: &Fill) -> Result<Option<RoundTrip>, Overflow> {
        let rounding = trade.rounding;
        let signed = trade.signed_qty();
        let paid = signed.times(trade.price)?.checked_add(trade.fee)?;
        self.flow = self.flow.checked_sub(paid)?;
        self.qty = self.qty.checked_add(signed)?;
        self.mark = Some(trade.asked);
        let direction = Direction::of(trade.side);
        let (mut qty, mut fee) = (trade.qty, trade.fee);
        let mut closed = None;
        if let Some(open) = self
            .open
            .as_mut()
            .filter(|open| open.direction != direction)
        {
            let exited = qty.min(open.held);
            let exit_fee = if exited == qty {
                fee
            } else {
                fee.share(exited, qty, rounding)?
            };
            open.exit(exited, trade.price, exit_fee)?;
            qty = qty.checked_sub(exited)?;
            fee = fee.checked_sub(exit_fee)?;
            if open.held.is_zero() {
                closed = self
                    .open
                    .take()
                    .map(|open| open.closed(trade.at_ms, rounding))
                    .transpose()?;
            }
        }
        if qty.is_positive() {
            let open = self.open.get_or_insert(Open {
                direction,
                opened_ms: trade.at_ms,
                ..Open::default()
            });
            open.enter(qty, trade.price, fee)?;
        }
        Ok(closed)
    }
}

/// A round trip in progress.
#[derive(Debug)]
struct Open {
    direction: Direction,
    opened_ms: i64,
    /// Held now, unsigned.
    held: Quantity,
    entry_qty: Quantity,
    entry_notional: Amount,
    exit_notional: Amount,
    fees: Amount,
}

impl Default for Open {
    fn default() -> Self {
        Open {
            direction: Direction::Long,
            opened_ms: 0,
            held: Quantity::ZERO,
            entry_qty: Quantity::ZERO,
            entry_notional: Amount::ZERO,
            exit_notional: Amount::ZERO,
            fees: Amount::ZERO,
        }
    }
}

impl Open {
    fn enter(&mut self, qty: Quantity, price: Price, fee: Amount) -> Result<(), Overflow> {
        self.held = self.held.checked_add(qty)?;
        self.entry_qty = self.entry_qty.checked_add(qty)?;
        self.entry_notional = self.entry_notional.checked_add(qty.times(price)?)?;
        self.fees = self.fees.checked_add(fee)?;
        Ok(())
    }

    fn exit(&mut self, qty: Quantity, price: Price, fee: Amount) -> Result<(), Overflow> {
        self.held = self.held.checked_sub(qty)?;
        self.exit_notional = self.exit_notional.checked_add(qty.times(price)?)?;
        self.fees = self.fees.checked_add(fee)?;
        Ok(())
    }

    /// The PnL net of fees were what is held now exited at `price` (with
    /// no fee).
    fn pnl_at(&self, price: Price) -> Result<Amount, Overflow> {
        let out = self.exit_notional.checked_add(self.held.times(price)?)?;
        let gain = match self.direction {
            Direction::Long => out.checked_sub(self.entry_notional)?,
            Direction::Short => self.entry_notional.checked_sub(out)?,
        };
        gain.checked_sub(self.fees)
    }

    fn closed(self, closed_ms: i64, rounding: Rounding) -> Result<RoundTrip, Overflow> {
        Ok(RoundTrip {
            symbol: String::new(),
            direction: self.direction,
            opened_ms: self.opened_ms,
            closed_ms,
            qty: self.entry_qty,
            entry_notional: self.entry_notional,
            exit_notional: self.exit_notional,
            entry_price: self.entry_notional.per(self.entry_qty, rounding)?,
            exit_price: self.exit_notional.per(self.entry_qty, rounding)?,
            fees: self.fees,
            pnl: self.pnl_at(Price::ZERO)?,
        })
    }

    fn valued(
        &self,
        symbol: &str,
        mark: Option<Price>,
        rounding: Rounding,
    ) -> Result<OpenTrip, Overflow> {
        let entry_price = self.entry_notional.per(self.entry_qty, rounding)?;
        let mark = mark.unwrap_or(entry_price);
        Ok(OpenTrip {
            symbol: symbol.to_owned(),
            direction: self.direction,
            opened_ms: self.opened_ms,
            qty: self.held,
            entry_price,
            mark,
            pnl: self.pnl_at(mark)?,
        })
    }
}

/// Sums over round trips, from which a [`Summary`] is made.
#[derive(Debug, Default)]
struct Tally {
    trades: u64,
    wins: u64,
    losses: u64,
    gross_profit: Amount,
    /// Negative.
    gross_loss: Amount,
    largest_win: Option<Amount>,
    largest_loss: Option<Amount>,
    duration_ms: i128,
    fees: Amount,
    volume: Amount,
}

impl Tally {
    fn count(&mut self, trip: &RoundTrip) -> Result<(), Overflow> {
        self.trades += 1;
        if trip.pnl.is_positive() {
            self.wins += 1;
            self.gross_profit = self.gross_profit.checked_add(trip.pnl)?;
            self.largest_win = self.largest_win.max(Some(trip.pnl));
        } else if trip.pnl.is_negative() {
            self.losses += 1;
            self.gross_loss = self.gross_loss.checked_add(trip.pnl)?;
            self.largest_loss = Some(
                self.largest_loss
                    .map_or(trip.pnl, |loss| loss.min(trip.pnl)),
            );
        }
        self.duration_ms += i128::from(trip.duration_ms());
        self.fees = self.fees.checked_add(trip.fees)?;
        self.volume = self
            .volume
            .checked_add(trip.entry_notional)?
            .checked_add(trip.exit_notional)?;
        Ok(())
    }

    fn summary(&self, drawdown: &Drawdown) -> Result<Summary, Overflow> {
        let average = |sum: Amount, count: u64| {
            (count > 0)
                .then(|| sum.divided(count, Rounding::DEFAULT))
                .transpose()
        };
        let trades = (self.trades > 0).then_some(self.trades);
        Ok(Summary {
            trades: self.trades,
            wins: self.wins,
            losses: self.losses,
            win_rate: trades
                .map(|trades| Ratio::of(self.wins, trades, Rounding::RATIO))
                .transpose()?,
            pnl: self.gross_profit.checked_add(self.gross_loss)?,
            profit_factor: (self.losses > 0)
                .then(|| self.gross_profit.ratio(-self.gross_loss, Rounding::RATIO))
                .transpose()?,
            avg_win: average(self.gross_profit, self.wins)?,
            avg_loss: average(self.gross_loss, self.losses)?,
            largest_win: self.largest_win,
            largest_loss: self.largest_loss,
            avg_duration_ms: trades
                .and_then(|trades| i64::try_from(self.duration_ms / i128::from(trades)).ok()),
            max_drawdown: drawdown.largest,
            drawdown_from_ms: drawdown.from_ms,
            drawdown_to_ms: drawdown.to_ms,
            fees: self.fees,
            volume: self.volume,
        })
    }
}

/// The largest fall of an equity curve from its running peak.
#[derive(Debug, Default)]
struct Drawdown {
    /// The highest equity seen in the window, and when; the first is the
    /// equity the window starts with.
    peak: Option<(Amount, i64)>,
    largest: Amount,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

impl Drawdown {
    fn observe(&mut self, was: Amount, now: Amount, at_ms: i64) -> Result<(), Overflow> {
        let (peak, peak_ms) = *self.peak.get_or_insert((was, at_ms));
        if now > peak {
            self.peak = Some((now, at_ms));
            return Ok(());
        }
        let depth = peak.checked_sub(now)?;
        if depth > self.largest {
            self.largest = depth;
            self.from_ms = Some(peak_ms);
            self.to_ms = Some(at_ms);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::money::literals::{amount, price, quantity, ratio};

    /// A fill at its asked price: symbol, time, side, qty, price, fee.
    fn trade<'a>(
        symbol: &'a str,
        at_ms: i64,
        side: Side,
        qty: &str,
        at: &str,
        fee: &str,
    ) -> (&'a str, Fill) {
        let fill = Fill {
            side,
            qty: quantity(qty),
            asked: price(at),
            price: price(at),
            fee: amount(fee),
            at_ms,
            rounding: Rounding::DEFAULT,
        };
        (symbol, fill)
    }

    impl Builder {
        fn trade(&mut self, (symbol, fill): (&str, Fill)) -> Result<(), Overflow> {
            self.fill(symbol, &fill)
        }

        /// A price update (not journaled, so only the tests give one):
        /// moves the symbol's mark, and so its equity.
        fn mark(&mut self, symbol: &str, price: Price, at_ms: i64) -> Result<(), Overflow> {
            if !self.window.has_symbol(symbol) {
                return Ok(());
            }
            let book = self.books.entry(symbol.to_owned()).or_default();
            let was = book.equity()?;
            book.mark = Some(price);
            let now = book.equity()?;
            self.moved(symbol, was, now, at_ms)
        }
    }

    fn report(window: Window, trades: &[(&str, Fill)]) -> Report {
        let mut builder = Builder::new(window, Rounding::DEFAULT);
        for trade in trades {
            builder.trade(*trade).unwrap();
        }
        builder.finish().unwrap()
    }

    /// Three round trips worked out by hand: a long built in two parts and
    /// sold in one, a long sold through zero into a short (its fee shared
    /// 2:1), and that short bought back.
    fn three_round_trips() -> Vec<(&'static str, Fill)> {
        vec![
            trade("BTC", 1_000, Side::Buy, "1", "100", "0.1"),
            trade("BTC", 2_000, Side::Buy, "1", "110", "0.11"),
            trade("BTC", 5_000, Side::Sell, "2", "120", "0.24"),
            trade("ETH", 10_000, Side::Buy, "2", "10", "0.02"),
            trade("ETH", 10_010, Side::Sell, "3", "12", "0.036"),
            trade("ETH", 10_030, Side::Buy, "1", "13", "0.013"),
        ]
    }

    #[test]
    fn round_trips_by_hand() {
        let report = report(Window::default(), &three_round_trips());
        let [btc, eth_long, eth_short] = &report.round_trips[..] else {
            panic!("{:?}", report.round_trips);
        };
        assert_eq!(
            *btc,
            RoundTrip {
                symbol: "BTC".into(),
                direction: Direction::Long,
                opened_ms: 1_000,
                closed_ms: 5_000,
                qty: quantity("2"),
                entry_notional: amount("210"),
                exit_notional: amount("240"),
                entry_price: price("105"),
                exit_price: price("120"),
                fees: amount("0.45"),
                // 240 − 210 − 0.45
                pnl: amount("29.55"),
            }
        );
        assert_eq!(btc.duration_ms(), 4_000);
        // Sold 3 at 12 with 2 held: 2 close the long with 2/3 of the fee.
        assert_eq!(eth_long.qty, quantity("2"));
        assert_eq!(eth_long.fees, amount("0.044"));
        assert_eq!(eth_long.pnl, amount("3.956"));
        // The third opens a short at 12, with the other third of the fee.
        assert_eq!(eth_short.direction, Direction::Short);
        assert_eq!((eth_short.opened_ms, eth_short.closed_ms), (10_010, 10_030));
        assert_eq!(eth_short.fees, amount("0.025"));
        // 12 − 13 − 0.025
        assert_eq!(eth_short.pnl, amount("-1.025"));
        assert!(report.open.is_empty());

        let total = &report.total;
        assert_eq!((total.trades, total.wins, total.losses), (3, 2, 1));
        assert_eq!(total.win_rate, Some(ratio("0.6667")));
        assert_eq!(total.pnl, amount("32.481"));
        // 33.506 / 1.025
        assert_eq!(total.profit_factor, Some(ratio("32.6888")));
        assert_eq!(total.avg_win, Some(amount("16.753")));
        assert_eq!(total.avg_loss, Some(amount("-1.025")));
        assert_eq!(total.largest_win, Some(amount("29.55")));
        assert_eq!(total.largest_loss, Some(amount("-1.025")));
        assert_eq!(total.fees, amount("0.519"));
        // 210 + 240 + 20 + 24 + 12 + 13
        assert_eq!(total.volume, amount("519"));
        assert_eq!(total.avg_duration_ms, Some((4_000 + 10 + 20) / 3));

        let eth = &report.by_symbol["ETH"];
        assert_eq!((eth.trades, eth.wins, eth.losses), (2, 1, 1));
        assert_eq!(eth.win_rate, Some(ratio("0.5")));
        assert_eq!(eth.profit_factor, Some(ratio("3.8595")));
        let btc = &report.by_symbol["BTC"];
        assert_eq!(btc.profit_factor, None, "no loss: no profit factor");
        assert_eq!(btc.avg_loss, None);
    }

    #[test]
    fn the_window_takes_the_round_trips_that_closed_in_it() {
        let trips = three_round_trips();
        let since = report(
            Window {
                since_ms: Some(10_020),
                symbol: None,
            },
            &trips,
        );
        let closed: Vec<_> = since
            .round_trips
            .iter()
            .map(|trip| trip.closed_ms)
            .collect();
        assert_eq!(closed, [10_030], "opened before the window, closed in it");
        assert_eq!(since.total.trades, 1);
        let btc = report(
            Window {
                since_ms: None,
                symbol: Some("BTC".into()),
            },
            &trips,
        );
        assert_eq!(btc.round_trips.len(), 1);
        assert_eq!(btc.total.pnl, amount("29.55"));
        assert_eq!(btc.by_symbol.keys().collect::<Vec<_>>(), ["BTC"]);
        let nothing = report(
            Window {
                since_ms: Some(20_000),
                symbol: None,
            },
            &trips,
        );
        assert_eq!(nothing.total, Summary::default());
    }

    #[test]
    fn drawdown_is_of_equity_at_the_marks() {
        let mut builder = Builder::new(Window::default(), Rounding::DEFAULT);
        builder
            .trade(trade("BTC", 0, Side::Buy, "1", "100", "0"))
            .unwrap();
        builder.mark("BTC", price("120"), 10).unwrap();
        // From 20 up to −10: 30 down.
        builder.mark("BTC", price("90"), 20).unwrap();
        builder
            .trade(trade("BTC", 30, Side::Sell, "1", "95", "0"))
            .unwrap();
        builder
            .trade(trade("BTC", 40, Side::Buy, "1", "95", "0"))
            .unwrap();
        builder.mark("BTC", price("130"), 50).unwrap();
        // From 30 to 5: 25, less than the first.
        builder.mark("BTC", price("105"), 60).unwrap();
        builder.mark("ETH", price("1"), 70).unwrap();
        let report = builder.finish().unwrap();
        assert_eq!(report.total.max_drawdown, amount("30"));
        assert_eq!(
            (report.total.drawdown_from_ms, report.total.drawdown_to_ms),
            (Some(10), Some(20))
        );
        assert_eq!(report.by_symbol["BTC"].max_drawdown, amount("30"));
        assert_eq!(report.round_trips[0].pnl, amount("-5"));
        let [open] = &report.open[..] else {
            panic!("{:?}", report.open);
        };
        assert_eq!(
            *open,
            OpenTrip {
                symbol: "BTC".into(),
                direction: Direction::Long,
                opened_ms: 40,
                qty: quantity("1"),
                entry_price: price("95"),
                mark: price("105"),
                pnl: amount("10"),
            }
        );

        // From 40 on: the equity starts at −5 and peaks at 30.
        let mut since = Builder::new(
            Window {
                since_ms: Some(40),
                symbol: None,
            },
            Rounding::DEFAULT,
        );
        since
            .trade(trade("BTC", 0, Side::Buy, "1", "100", "0"))
            .unwrap();
        since
            .trade(trade("BTC", 30, Side::Sell, "1", "95", "0"))
            .unwrap();
        since
            .trade(trade("BTC", 40, Side::Buy, "1", "95", "0"))
            .unwrap();
        since.mark("BTC", price("130"), 50).unwrap();
        since.mark("BTC", price("120"), 60).unwrap();
        let report = since.finish().unwrap();
        assert_eq!(report.total.max_drawdown, amount("10"));
        assert_eq!(report.total.drawdown_from_ms, Some(50));
        assert_eq!(
            report.total.trades, 0,
            "the round trip closed before the window"
        );
    }

    #[test]
    fn fees_count_against_equity_and_a_short_gains_as_the_price_falls() {
        let report = report(
            Window::default(),
            &[
                trade("SOL", 0, Side::Sell, "10", "150", "1.5"),
                trade("SOL", 60_000, Side::Buy, "4", "140", "0.56"),
                trade("SOL", 120_000, Side::Buy, "6", "145", "0.87"),
            ],
        );
        let [trip] = &report.round_trips[..] else {
            panic!("{:?}", report.round_trips);
        };
        // 1500 in, 560 + 870 out, 2.93 of fees.
        assert_eq!(trip.direction, Direction::Short);
        assert_eq!(trip.exit_price, price("143"));
        assert_eq!(trip.pnl, amount("67.07"));
        // Equity 97.94 after the first buy (937.94 of cash, 6 short at
        // 140), then 67.07 as the mark rose to 145.
        assert_eq!(report.total.max_drawdown, amount("30.87"));
        assert_eq!(report.total.drawdown_from_ms, Some(60_000));
    }

    #[test]
    fn a_position_carried_from_a_snapshot_closes_its_round_trip() {
        let mut builder = Builder::new(Window::default(), Rounding::DEFAULT);
        let held = |qty: &str, cost: &str, mark: &str| {
            Position::carried(quantity(qty), amount(cost), price(mark))
        };
        builder
            .carry("BTC", &held("2", "210", "110"), 3_000)
            .unwrap();
        builder
            .carry("ETH", &held("-1", "-12", "12"), 3_000)
            .unwrap();
        // Equity starts at the carried positions' worth (10 up, 0): the
        // first fill's fall is measured from there.
        builder
            .trade(trade("BTC", 5_000, Side::Sell, "2", "100", "0.2"))
            .unwrap();
        let report = builder.finish().unwrap();
        let [btc] = &report.round_trips[..] else {
            panic!("{:?}", report.round_trips);
        };
        assert_eq!((btc.direction, btc.opened_ms), (Direction::Long, 3_000));
        assert_eq!(
            (btc.entry_price, btc.exit_price),
            (price("105"), price("100"))
        );
        // 200 − 210 − 0.2: no fee known before the carry.
        assert_eq!(btc.pnl, amount("-10.2"));
        assert_eq!(report.total.max_drawdown, amount("20.2"));
        let [eth] = &report.open[..] else {
            panic!("{:?}", report.open);
        };
        assert_eq!((eth.direction, eth.qty), (Direction::Short, quantity("1")));
        assert_eq!(eth.pnl, Amount::ZERO);
    }

    #[test]
    fn the_json_has_exact_strings_and_epoch_milliseconds() {
        let report = report(Window::default(), &three_round_trips()[..3]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["round_trips"][0],
            serde_json::json!({
                "symbol": "BTC", "direction": "long", "opened_at": 1_000, "closed_at": 5_000,
                "duration_ms": 4_000, "qty": "2", "entry_price": "105", "exit_price": "120",
                "entry_notional": "210", "exit_notional": "240", "fees": "0.45", "pnl": "29.55",
            })
        );
        assert_eq!(json["total"]["win_rate"], "1");
        assert_eq!(json["total"]["profit_factor"], serde_json::Value::Null);
        // The first fee, the only fall.
        assert_eq!(json["total"]["max_drawdown"], "0.1");
        assert_eq!(json["total"]["max_drawdown_start"], 1_000);
        assert_eq!(json["by_symbol"]["BTC"]["volume"], "450");
        assert_eq!(json["open"], serde_json::json!([]));
    }

    proptest::proptest! {
        /// The round trips and the open positions add up to what the
        /// account made: its equity less its starting cash, exactly.
        #[test]
        fn round_trips_add_up_to_the_account(
            steps in proptest::collection::vec((0usize..2, proptest::bool::ANY, 1u32..2000, 1u32..5000), 1..80),
            fee in 0u32..100,
            slippage in 0u32..100,
        ) {
            use crate::bot::account::{Account, Order, Position, Terms};
            use crate::bot::money::BasisPoints;

            let terms = Terms {
                fee: BasisPoints::parse(&fee.to_string()).unwrap(),
                slippage: BasisPoints::parse(&slippage.to_string()).unwrap(),
                ..Terms::default()
            };
            let mut account = Account::new(terms);
            let mut positions = [Position::default(), Position::default()];
            let mut builder = Builder::new(Window::default(), terms.rounding);
            for (at, (symbol, buy, qty, price)) in steps.into_iter().enumerate() {
                let order = Order {
                    symbol: ["A", "B"][symbol],
                    side: if buy { Side::Buy } else { Side::Sell },
                    qty: Quantity::parse(&format!("{}.{:02}", qty / 100, qty % 100)).unwrap(),
                    price: Some(Price::parse(&format!("{}.{:01}", price / 10, price % 10)).unwrap()),
                };
                let decision = account.decide(&positions[symbol], &order, at as i64).unwrap();
                let fill = account.commit(&mut positions[symbol], decision);
                builder.fill(order.symbol, &fill).unwrap();
            }
            let report = builder.finish().unwrap();
            let made = report
                .round_trips
                .iter()
                .map(|trip| trip.pnl)
                .chain(report.open.iter().map(|open| open.pnl))
                .try_fold(Amount::ZERO, Amount::checked_add)
                .unwrap();
            let summary = account.summary(&positions).unwrap();
            proptest::prop_assert_eq!(made, summary.equity);
            let fees = report
                .round_trips
                .iter()
                .map(|trip| trip.fees)
                .try_fold(Amount::ZERO, Amount::checked_add)
                .unwrap();
            proptest::prop_assert_eq!(report.total.fees, fees);
            proptest::prop_assert!(fees <= summary.fees);
        }
    }
}
