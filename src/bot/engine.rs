//! Paper trading: risk limits, then a fill, then the position it changes.
//!
//! The engine's state is a pure function of the fills it has applied, in
//! order, so replaying the fills journal rebuilds it exactly (same
//! arithmetic, same order, same floating-point results).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::settings::RiskLimits;
use super::signal::{Reason, Reject, Side, Signal};

/// An order the engine decided to place.
#[derive(Clone, Debug, PartialEq)]
pub struct Order<'a> {
    pub symbol: &'a str,
    pub side: Side,
    pub qty: f64,
    pub price: f64,
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
pub struct Position {
    /// Signed: negative is short.
    pub qty: f64,
    pub avg_price: f64,
    pub realized_pnl: f64,
    pub cash: f64,
    pub last_price: f64,
}

/// One executed order, as the journal records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill<'a> {
    pub symbol: &'a str,
    pub side: Side,
    pub qty: f64,
    pub price: f64,
    /// Wall-clock milliseconds of the fill; feeds the orders-per-minute window.
    pub at_ms: i64,
}

pub struct Engine {
    limits: RiskLimits,
    execution: Box<dyn Execution>,
    /// By symbol. Hashed rather than ordered: a lookup on every signal
    /// compared the name against each symbol in a B-tree node in turn.
    books: HashMap<String, Book>,
    /// Fill times within the last minute, oldest first (see [`settle`]).
    recent: VecDeque<i64>,
}

/// One symbol's position, and its fills by side (buy, sell) since this
/// process started: counted here, where the symbol is already looked up.
#[derive(Default)]
struct Book {
    position: Position,
    fills: [u64; 2],
}

const MINUTE_MS: i64 = 60_000;

impl Engine {
    pub fn new(limits: RiskLimits, execution: Box<dyn Execution>) -> Self {
        Engine {
            limits,
            execution,
            books: HashMap::new(),
            recent: VecDeque::new(),
        }
    }

    /// Every position, in symbol order (for the snapshot and the metrics).
    pub fn positions(&self) -> BTreeMap<String, Position> {
        self.books
            .iter()
            .map(|(symbol, book)| (symbol.clone(), book.position.clone()))
            .collect()
    }

    /// One symbol's position.
    pub fn position(&self, symbol: &str) -> Option<&Position> {
        self.books.get(symbol).map(|book| &book.position)
    }

    /// Fill times within the last minute (MAX_ORDERS_PER_MINUTE), for a
    /// snapshot.
    pub fn recent_fills(&self) -> Vec<i64> {
        self.recent.iter().copied().collect()
    }

    /// Puts back the state a snapshot held: positions and recent fill times.
    pub fn restore(&mut self, positions: BTreeMap<String, Position>, recent_fills: Vec<i64>) {
        self.books = positions
            .into_iter()
            .map(|(symbol, position)| {
                (
                    symbol,
                    Book {
                        position,
                        fills: [0; 2],
                    },
                )
            })
            .collect();
        self.recent = recent_fills.into();
    }

    /// Fills decided by this process, by symbol and side (buy, sell); the
    /// ones replayed from the journal are not counted.
    pub fn fills(&self) -> BTreeMap<String, [u64; 2]> {
        self.books
            .iter()
            .filter(|(_, book)| book.fills != [0; 2])
            .map(|(symbol, book)| (symbol.clone(), book.fills))
            .collect()
    }

    /// Checks the limits, executes, and applies the fill; a refusal changes nothing.
    pub fn decide<'s>(&mut self, signal: &'s Signal<'_>, now_ms: i64) -> Result<Fill<'s>, Reject> {
        // One lookup for the checks and the fill (the symbol's name is
        // compared a few times per lookup, which shows at this rate).
        let mut book = self.books.get_mut(signal.symbol.as_ref());
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
            None => self.books.entry(fill.symbol.to_owned()).or_default(),
        };
        settle(&mut book.position, &fill, &self.limits, &mut self.recent);
        book.fills[fill.side as usize] += 1;
        Ok(fill)
    }

    /// Applies a fill that has already happened (a live one, or one replayed
    /// from the journal).
    pub fn apply(&mut self, fill: &Fill<'_>) {
        // A lookup before an insert: `entry` would copy the symbol for
        // every fill, and a symbol is new only once.
        let book = match self.books.get_mut(fill.symbol) {
            Some(book) => book,
            None => self.books.entry(fill.symbol.to_owned()).or_default(),
        };
        settle(&mut book.position, fill, &self.limits, &mut self.recent);
    }
}

/// Books a fill: average-cost accounting of the position, and the fill's
/// time for MAX_ORDERS_PER_MINUTE (kept only under that limit: unlimited,
/// a busy feed would grow it by every fill of the minute for nothing).
fn settle(
    position: &mut Position,
    fill: &Fill<'_>,
    limits: &RiskLimits,
    recent: &mut VecDeque<i64>,
) {
    if limits.max_orders_per_minute.is_some() {
        recent.push_back(fill.at_ms);
        // A replay applies fills without deciding: without this it would
        // keep every fill time of the journal.
        forget_before(recent, fill.at_ms - MINUTE_MS);
    }
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
