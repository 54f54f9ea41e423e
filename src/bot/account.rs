//! The paper account, as a pure module: a position per symbol at average
//! cost, cash, fees, slippage, marks, and every check an order must pass.
//! No clock, no I/O: given the state and an order, a decision; given a
//! fill, the next state, the same live and in replay.
//!
//! Cost method: average cost (docs/money.md says why). A position keeps
//! its exact cost; the average entry price is that cost over the quantity,
//! rounded once by the account's [`Rounding`] as of each fill that adds to
//! it, and a partial close releases the closed quantity at that price.
//! The division is done when the average is read (a partial close, an
//! output, a snapshot: [`Position::settled`]), not on every fill that
//! adds: cost and quantity do not move between the last such fill and
//! then, so it is the same figure, and a feed that scales in does not
//! divide on every fill for a figure read once a loop iteration.
//! The fill that brings the position back to zero releases whatever cost
//! is left, so a position closed back to flat has realized exactly its net
//! cash flow: the sum of its sales less the sum of its purchases. Realized
//! PnL is counted before fees; fees are their own figure, so
//! `equity = starting cash + realized − fees + unrealized`, always exactly.

#[cfg(test)]
pub(crate) mod model;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::money::{Amount, BasisPoints, Overflow, Price, Quantity, Rounding};
use super::signal::{Reason, Reject, Side};

const MINUTE_MS: i64 = 60_000;

/// The limits an order must pass, each off when `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_POSITION_QTY`: on the size of the position after the fill,
    /// long or short.
    pub max_position_qty: Option<Quantity>,
    /// `MAX_ORDER_NOTIONAL`: on qty × the price filled at (slippage
    /// included, fee not).
    pub max_order_notional: Option<Amount>,
    /// `MAX_ORDERS_PER_MINUTE`: fills in the minute up to the order.
    pub max_orders_per_minute: Option<u32>,
}

/// What the account is set up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    /// `PAPER_BALANCE`: the cash it starts with. `None`: cash starts at 0,
    /// may go below it, and no buy is refused for want of it.
    pub balance: Option<Amount>,
    /// `FEE_BPS`, charged on every fill's notional.
    pub fee: BasisPoints,
    /// `SLIPPAGE_BPS`: every fill's price moved against the order.
    pub slippage: BasisPoints,
    /// `ALLOW_SHORT`: a sell may take the position below zero.
    pub allow_short: bool,
    /// `MONEY_DECIMALS`: the places a fee, a slipped price and an average
    /// price are rounded to.
    pub rounding: Rounding,
    pub limits: Limits,
}

/// Today's account: unlimited cash, no fee, no slippage, shorts allowed.
impl Default for Terms {
    fn default() -> Self {
        Terms {
            balance: None,
            fee: BasisPoints::ZERO,
            slippage: BasisPoints::ZERO,
            allow_short: true,
            rounding: Rounding::DEFAULT,
            limits: Limits::default(),
        }
    }
}

/// One symbol's position. Its figures are exact, but for the average price,
/// which a fill that adds leaves due: [`Position::avg_price`] works it out,
/// and [`Position::settled`] (as [`crate::bot::engine::Engine`]'s
/// `positions` hands them out, to snapshots and outputs) stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// Signed: negative is short.
    pub(crate) qty: Quantity,
    /// What the open quantity cost, signed like it (a short's is what its
    /// sales brought in, negative): its fills' notionals less what partial
    /// closes released.
    pub(crate) cost: Amount,
    /// The average entry price of the open quantity, rounded; 0 when flat.
    /// Private: stale while `due`.
    avg_price: Price,
    /// Before fees.
    pub(crate) realized_pnl: Amount,
    pub(crate) fees: Amount,
    /// The last price seen for the symbol: a fill's asked price or a price
    /// update. Market value and unrealized PnL are taken at it.
    #[serde(
        default,
        rename = "mark_price",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) mark: Option<Price>,
    /// Fills only added to the position since `avg_price` was worked out,
    /// the last with these places: the average is `cost / qty` rounded to
    /// them, neither having moved since.
    #[serde(skip)]
    due: Option<Rounding>,
}

/// An order to decide: the signal's side, quantity (above 0) and price,
/// if it named one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Order<'a> {
    pub(crate) symbol: &'a str,
    pub(crate) side: Side,
    pub(crate) qty: Quantity,
    pub(crate) price: Option<Price>,
}

/// An executed order: what the journal records of it, and all that replay
/// needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub(crate) side: Side,
    pub(crate) qty: Quantity,
    /// The price the signal named, or the mark it filled at without one.
    pub(crate) asked: Price,
    /// What it filled at: `asked` moved by the slippage.
    pub(crate) price: Price,
    pub(crate) fee: Amount,
    /// Wall-clock milliseconds (`MAX_ORDERS_PER_MINUTE` counts them).
    pub(crate) at_ms: i64,
    /// The places the position's average price is rounded to on this
    /// fill: the account's when it was decided, so a replay rounds as the
    /// decision did whatever `MONEY_DECIMALS` says by then.
    pub(crate) rounding: Rounding,
}

impl Fill {
    /// The quantity signed by side: what the position moves by.
    pub(crate) fn signed_qty(&self) -> Quantity {
        match self.side {
            Side::Buy => self.qty,
            Side::Sell => -self.qty,
        }
    }

    /// What a fill of `notional` (qty × price) pays: positive for a buy,
    /// negative (received) for a sell. One product per fill.
    fn flow(&self, notional: Amount) -> Amount {
        match self.side {
            Side::Buy => notional,
            Side::Sell => -notional,
        }
    }
}

/// An order the account accepted: the fill, and the position and cash
/// it leaves, for [`Account::commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) fill: Fill,
    pub(crate) position: Position,
    cash: Amount,
}

/// The account's figures over its positions (read back by the dashboard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// `PAPER_BALANCE`, the cash it started with, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) starting_balance: Option<Amount>,
    pub(crate) cash: Amount,
    /// Cash plus every position at its mark.
    pub(crate) equity: Amount,
    pub(crate) realized_pnl: Amount,
    pub(crate) unrealized_pnl: Amount,
    pub(crate) fees: Amount,
}

/// The account: its terms, its cash and its recent fill times. The
/// positions are the caller's (the engine keeps each in its symbol's
/// book, found with one lookup), handed in by reference.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    terms: Terms,
    cash: Amount,
    /// Fill times within the minute up to the latest fill, oldest first;
    /// kept only under `MAX_ORDERS_PER_MINUTE`.
    recent: VecDeque<i64>,
}

impl Account {
    pub(crate) fn new(terms: Terms) -> Self {
        Account {
            terms,
            cash: terms.balance.unwrap_or_default(),
            recent: VecDeque::new(),
        }
    }

    /// The account that `positions` (a snapshot's) and the fill times of
    /// its last minute leave: the cash is what every fill moved, which a
    /// position's figures say exactly (its realized PnL less its fees and
    /// what its open quantity cost).
    pub(crate) fn restore<'a>(
        terms: Terms,
        positions: impl IntoIterator<Item = &'a Position>,
        recent: Vec<i64>,
    ) -> Result<Self, Overflow> {
        let mut cash = terms.balance.unwrap_or_default();
        for position in positions {
            cash = cash
                .checked_add(position.realized_pnl)?
                .checked_sub(position.fees)?
                .checked_sub(position.cost)?;
        }
        Ok(Account {
            terms,
            cash,
            recent: recent.into(),
        })
    }

    pub(crate) fn terms(&self) -> &Terms {
        &self.terms
    }

    #[cfg(test)]
    pub(crate) fn cash(&self) -> Amount {
        self.cash
    }

    /// Fill times of the last minute (for a snapshot).
    pub(crate) fn recent_fills(&self) -> impl Iterator<Item = i64> + '_ {
        self.recent.iter().copied()
    }

    /// Checks `order` against the terms, in the order the engine always
    /// has (price, amount, notional, position, then the new checks, then
    /// the rate), and returns the fill it makes; changes nothing.
    pub(crate) fn decide(
        &self,
        position: &Position,
        order: &Order<'_>,
        now_ms: i64,
    ) -> Result<Decision, Reject> {
        let terms = &self.terms;
        let Some(asked) = order.price.or(position.mark) else {
            return Err(Reject::new(
                Reason::NoPrice,
                format!(
                    "no price in the signal and no last price for {}",
                    order.symbol
                ),
            ));
        };
        let beyond = |_: Overflow| {
            Reject::new(
                Reason::BadQty,
                format!(
                    "qty {} at price {asked} is beyond any amount held",
                    order.qty
                ),
            )
        };
        let price = if terms.slippage.is_zero() {
            asked
        } else {
            asked
                .slipped(terms.slippage, order.side == Side::Buy, terms.rounding)
                .map_err(beyond)?
        };
        let notional = order.qty.times(price).map_err(beyond)?;
        let fee = if terms.fee.is_zero() {
            Amount::ZERO
        } else {
            notional.bps(terms.fee, terms.rounding).map_err(beyond)?
        };
        if let Some(max) = terms.limits.max_order_notional {
            if notional > max {
                let slipped = if price == asked {
                    String::new()
                } else {
                    format!(
                        " (at {price}: {asked} and {} bps of slippage)",
                        terms.slippage
                    )
                };
                return Err(Reject::new(
                    Reason::MaxOrderNotional,
                    format!("order notional {notional}{slipped} is over MAX_ORDER_NOTIONAL {max}"),
                ));
            }
        }
        let fill = Fill {
            side: order.side,
            qty: order.qty,
            asked,
            price,
            fee,
            at_ms: now_ms,
            rounding: terms.rounding,
        };
        let flow = fill.flow(notional);
        let after = position.after(&fill, flow).map_err(beyond)?;
        if let Some(max) = terms.limits.max_position_qty {
            if after.qty.abs() > max {
                return Err(Reject::new(
                    Reason::MaxPositionQty,
                    format!(
                        "position in {} would be {}, beyond MAX_POSITION_QTY {max}",
                        order.symbol, after.qty
                    ),
                ));
            }
        }
        if order.side == Side::Sell && after.qty.is_negative() && !terms.allow_short {
            return Err(Reject::new(
                Reason::InsufficientPosition,
                format!(
                    "a sell of {} {} is more than the {} held, and ALLOW_SHORT is off",
                    order.qty,
                    order.symbol,
                    position.qty.max(Quantity::ZERO)
                ),
            ));
        }
        let cash = self.cash_after(&fill, flow).map_err(beyond)?;
        if order.side == Side::Buy && terms.balance.is_some() && cash.is_negative() {
            let cost = notional.checked_add(fee).map_err(beyond)?;
            return Err(Reject::new(
                Reason::InsufficientFunds,
                format!(
                    "a buy of {} {} at {price} costs {cost} with fees, more than the cash {}",
                    order.qty, order.symbol, self.cash
                ),
            ));
        }
        if let Some(max) = terms.limits.max_orders_per_minute {
            if self.fills_in_the_minute_to(now_ms, max) >= max {
                return Err(Reject::new(
                    Reason::MaxOrdersPerMinute,
                    format!("{max} orders in the last minute already (MAX_ORDERS_PER_MINUTE)"),
                ));
            }
        }
        Ok(Decision {
            fill,
            position: after,
            cash,
        })
    }

    /// Books what [`Account::decide`] decided: `position` is the order's
    /// symbol's. Returns the fill.
    pub(crate) fn commit(&mut self, position: &mut Position, decision: Decision) -> Fill {
        *position = decision.position;
        self.cash = decision.cash;
        self.remember(decision.fill.at_ms);
        decision.fill
    }

    /// Books a fill that already happened (one replayed from the journal),
    /// to the state deciding it left. Never refused: it is history. Only a
    /// fill no decision could have made (amounts beyond the range) fails,
    /// and then nothing changes.
    pub(crate) fn apply(&mut self, position: &mut Position, fill: &Fill) -> Result<(), Overflow> {
        let flow = fill.flow(fill.qty.times(fill.price)?);
        let after = position.after(fill, flow)?;
        let cash = self.cash_after(fill, flow)?;
        self.commit(
            position,
            Decision {
                fill: *fill,
                position: after,
                cash,
            },
        );
        Ok(())
    }

    /// The account's figures, over every position it holds.
    pub(crate) fn summary<'a>(
        &self,
        positions: impl IntoIterator<Item = &'a Position>,
    ) -> Result<Summary, Overflow> {
        let mut summary = Summary {
            starting_balance: self.terms.balance,
            cash: self.cash,
            equity: self.cash,
            ..Summary::default()
        };
        for position in positions {
            summary.equity = summary.equity.checked_add(position.value()?)?;
            summary.realized_pnl = summary.realized_pnl.checked_add(position.realized_pnl)?;
            summary.unrealized_pnl = summary
                .unrealized_pnl
                .checked_add(position.unrealized_pnl()?)?;
            summary.fees = summary.fees.checked_add(position.fees)?;
        }
        Ok(summary)
    }

    /// The cash once `fill`, whose cash flow is `flow`, is paid.
    fn cash_after(&self, fill: &Fill, flow: Amount) -> Result<Amount, Overflow> {
        self.cash.checked_sub(flow)?.checked_sub(fill.fee)
    }

    /// Fills in the minute up to `now_ms`, counted up to `max` (the rest
    /// do not matter), without forgetting any: deciding changes nothing.
    fn fills_in_the_minute_to(&self, now_ms: i64, max: u32) -> u32 {
        let cutoff = now_ms - MINUTE_MS;
        let within = self.recent.iter().rev().take_while(|at| **at > cutoff);
        within.take(max as usize).count() as u32
    }

    /// Keeps the fill's time for `MAX_ORDERS_PER_MINUTE`: only under that
    /// limit (unlimited, a busy feed would grow it by every fill of the
    /// minute for nothing), and only for the minute up to the fill, so
    /// replaying a long journal does not keep every fill it ever made.
    fn remember(&mut self, at_ms: i64) {
        if self.terms.limits.max_orders_per_minute.is_none() {
            return;
        }
        self.recent.push_back(at_ms);
        let cutoff = at_ms - MINUTE_MS;
        while self.recent.front().is_some_and(|at| *at <= cutoff) {
            self.recent.pop_front();
        }
    }
}

impl Position {
    /// No position: what a symbol the engine has no book for holds.
    pub(crate) const FLAT: Position = Position {
        qty: Quantity::ZERO,
        cost: Amount::ZERO,
        avg_price: Price::ZERO,
        realized_pnl: Amount::ZERO,
        fees: Amount::ZERO,
        mark: None,
        due: None,
    };

    /// Moves the mark: a price update for the symbol.
    pub(crate) fn mark_at(&mut self, price: Price) {
        self.mark = Some(price);
    }

    /// The open quantity at the mark (at the average price before any
    /// mark: a position restored from a state that had none).
    pub(crate) fn value(&self) -> Result<Amount, Overflow> {
        match self.mark {
            Some(mark) => self.qty.times(mark),
            None => self.qty.times(self.average()?),
        }
    }

    /// A position as a snapshot might carry it, its average not stored.
    #[cfg(test)]
    pub(crate) fn carried(qty: Quantity, cost: Amount, mark: Price) -> Position {
        Position {
            qty,
            cost,
            mark: Some(mark),
            ..Position::default()
        }
    }

    /// The average entry price of the open quantity, rounded; 0 when flat.
    /// (An average past what a price holds, of fills at the very top of
    /// the range, stays the last one worked out.)
    pub(crate) fn avg_price(&self) -> Price {
        self.average().unwrap_or(self.avg_price)
    }

    /// The average entry price, worked out if it is due.
    fn average(&self) -> Result<Price, Overflow> {
        match self.due {
            Some(rounding) => self.cost.per(self.qty, rounding),
            None => Ok(self.avg_price),
        }
    }

    /// The position with its average price worked out and stored: what
    /// every snapshot, output and comparison serializes or compares.
    pub(crate) fn settled(&self) -> Position {
        Position {
            avg_price: self.avg_price(),
            due: None,
            ..self.clone()
        }
    }

    /// What closing at the mark would realize, before fees.
    pub(crate) fn unrealized_pnl(&self) -> Result<Amount, Overflow> {
        self.value()?.checked_sub(self.cost)
    }

    /// The position `fill` leaves; `flow` is what the position pays for
    /// it (negative: receives). Always inlined: built in place in the
    /// decision, rather than returned by a call and copied into it (the
    /// copies of a position were most of the stores on a fill).
    #[inline(always)]
    fn after(&self, fill: &Fill, flow: Amount) -> Result<Position, Overflow> {
        let rounding = fill.rounding;
        let signed = fill.signed_qty();
        let mut next = Position {
            fees: self.fees.checked_add(fill.fee)?,
            mark: Some(fill.asked),
            ..self.clone()
        };
        let remaining = self.qty.checked_add(signed)?;
        let adds = self.qty.is_zero() || self.qty.is_negative() == signed.is_negative();
        if adds {
            next.qty = remaining;
            next.cost = self.cost.checked_add(flow)?;
            next.due = Some(rounding);
        } else if remaining.is_zero() {
            next.realized_pnl = self
                .realized_pnl
                .checked_add((-flow).checked_sub(self.cost)?)?;
            next.qty = Quantity::ZERO;
            next.cost = Amount::ZERO;
            next.avg_price = Price::ZERO;
            next.due = None;
        } else if remaining.is_negative() == self.qty.is_negative() {
            next.avg_price = self.average()?;
            next.due = None;
            let released = (-signed).times(next.avg_price)?;
            next.realized_pnl = self
                .realized_pnl
                .checked_add((-flow).checked_sub(released)?)?;
            next.qty = remaining;
            next.cost = self.cost.checked_sub(released)?;
        } else {
            // Through zero: closes all that was held at the fill's price,
            // and opens the rest there.
            let closed = self.qty.times(fill.price)?;
            next.realized_pnl = self
                .realized_pnl
                .checked_add(closed.checked_sub(self.cost)?)?;
            next.qty = remaining;
            next.cost = remaining.times(fill.price)?;
            next.due = Some(rounding);
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::model::{self, Model};
    use super::*;
    use crate::bot::money::literals::{amount, price, quantity};

    fn order<'a>(side: Side, qty: &str, asked: Option<&str>) -> Order<'a> {
        Order {
            symbol: "BTC",
            side,
            qty: quantity(qty),
            price: asked.map(price),
        }
    }

    /// Decides and commits; the reason when refused.
    fn trade(
        account: &mut Account,
        position: &mut Position,
        order: &Order<'_>,
        now_ms: i64,
    ) -> Result<Fill, Reason> {
        let decision = account
            .decide(position, order, now_ms)
            .map_err(|refusal| refusal.reason)?;
        Ok(account.commit(position, decision))
    }

    #[test]
    fn a_tenth_and_two_tenths_fill_under_a_limit_of_three_tenths() {
        let mut account = Account::new(Terms {
            limits: Limits {
                max_position_qty: Some(quantity("0.3")),
                ..Limits::default()
            },
            ..Terms::default()
        });
        let mut btc = Position::default();
        trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "0.1", Some("64000")),
            0,
        )
        .unwrap();
        trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "0.2", Some("64000")),
            0,
        )
        .unwrap();
        assert_eq!(btc.qty, quantity("0.3"));
        let refused = account
            .decide(&btc, &order(Side::Buy, "0.000000000000000001", None), 0)
            .unwrap_err();
        assert_eq!(refused.reason, Reason::MaxPositionQty);
        assert_eq!(
            refused.detail,
            "position in BTC would be 0.300000000000000001, beyond MAX_POSITION_QTY 0.3"
        );
    }

    #[test]
    fn bought_in_two_parts_and_sold_in_one_is_exactly_flat() {
        let mut account = Account::new(Terms::default());
        let mut eth = Position::default();
        trade(
            &mut account,
            &mut eth,
            &order(Side::Buy, "0.1", Some("3000.1")),
            0,
        )
        .unwrap();
        trade(
            &mut account,
            &mut eth,
            &order(Side::Buy, "0.2", Some("3000.2")),
            0,
        )
        .unwrap();
        // 300.01 + 600.04 over 0.3: 3000.16666666666…, rounded for the average.
        assert_eq!(eth.avg_price(), price("3000.16666667"));
        assert_eq!(eth.cost, amount("900.05"));
        trade(
            &mut account,
            &mut eth,
            &order(Side::Sell, "0.3", Some("3000.3")),
            0,
        )
        .unwrap();
        assert_eq!(eth.qty, Quantity::ZERO);
        assert_eq!(eth.qty.to_string(), "0");
        assert_eq!(eth.cost, Amount::ZERO);
        assert_eq!(eth.avg_price(), Price::ZERO);
        // 900.09 received less 900.05 paid.
        assert_eq!(eth.realized_pnl, amount("0.04"));
        assert_eq!(account.cash(), amount("0.04"));
    }

    #[test]
    fn long_then_through_zero_to_short_realizes_at_average_cost() {
        let mut account = Account::new(Terms::default());
        let mut btc = Position::default();
        trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "2", Some("100")),
            0,
        )
        .unwrap();
        trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "2", Some("110")),
            0,
        )
        .unwrap();
        assert_eq!((btc.qty, btc.avg_price()), (quantity("4"), price("105")));
        trade(
            &mut account,
            &mut btc,
            &order(Side::Sell, "1", Some("120")),
            0,
        )
        .unwrap();
        assert_eq!(btc.realized_pnl, amount("15"));
        assert_eq!(
            (btc.qty, btc.cost, btc.avg_price()),
            (quantity("3"), amount("315"), price("105"))
        );
        trade(
            &mut account,
            &mut btc,
            &order(Side::Sell, "4", Some("120")),
            0,
        )
        .unwrap();
        assert_eq!(btc.qty, quantity("-1"));
        assert_eq!(btc.avg_price(), price("120"));
        assert_eq!(btc.cost, amount("-120"));
        assert_eq!(btc.realized_pnl, amount("60"));
        assert_eq!(account.cash(), amount("180"));
        // Covered without a price: at the mark, the last price seen.
        let fill = trade(&mut account, &mut btc, &order(Side::Buy, "1", None), 0).unwrap();
        assert_eq!(fill.price, price("120"));
        assert_eq!(
            (btc.qty, btc.cost, btc.realized_pnl),
            (Quantity::ZERO, Amount::ZERO, amount("60"))
        );
        assert_eq!(account.cash(), amount("60"));
    }

    #[test]
    fn fees_and_slippage_are_charged_and_the_notional_limit_binds_on_what_is_paid() {
        let terms = Terms {
            fee: BasisPoints::parse("10").unwrap(),
            slippage: BasisPoints::parse("5").unwrap(),
            limits: Limits {
                max_order_notional: Some(amount("1000")),
                ..Limits::default()
            },
            ..Terms::default()
        };
        let mut account = Account::new(terms);
        let mut btc = Position::default();
        // 10 at 100 is 1000 asked, but 1000.5 at the slipped 100.05.
        let refused = account
            .decide(&btc, &order(Side::Buy, "10", Some("100")), 0)
            .unwrap_err();
        assert_eq!(refused.reason, Reason::MaxOrderNotional);
        assert_eq!(
            refused.detail,
            "order notional 1000.5 (at 100.05: 100 and 5 bps of slippage) is over MAX_ORDER_NOTIONAL 1000"
        );
        let fill = trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "9", Some("100")),
            0,
        )
        .unwrap();
        assert_eq!((fill.asked, fill.price), (price("100"), price("100.05")));
        // 10 bps of 900.45.
        assert_eq!(fill.fee, amount("0.90045"));
        assert_eq!(account.cash(), amount("-901.35045"));
        // A sell slips down.
        let fill = trade(
            &mut account,
            &mut btc,
            &order(Side::Sell, "9", Some("100")),
            0,
        )
        .unwrap();
        assert_eq!(fill.price, price("99.95"));
        assert_eq!(fill.fee, amount("0.89955"));
        // Bought at 900.45, sold at 899.55: the slippage, before fees.
        assert_eq!(btc.realized_pnl, amount("-0.9"));
        assert_eq!(btc.fees, amount("1.8"));
        assert_eq!(account.cash(), amount("-2.7"));
        let summary = account.summary([&btc]).unwrap();
        assert_eq!(summary.equity, amount("-2.7"));
    }

    #[test]
    fn a_balance_refuses_what_the_cash_cannot_pay_and_shorts_need_allowing() {
        let mut account = Account::new(Terms {
            balance: Some(amount("1000")),
            fee: BasisPoints::parse("10").unwrap(),
            allow_short: false,
            ..Terms::default()
        });
        let mut btc = Position::default();
        // 1000 of notional and a fee of 1.
        let refused = account
            .decide(&btc, &order(Side::Buy, "10", Some("100")), 0)
            .unwrap_err();
        assert_eq!(refused.reason, Reason::InsufficientFunds);
        assert_eq!(
            refused.detail,
            "a buy of 10 BTC at 100 costs 1001 with fees, more than the cash 1000"
        );
        trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "9.99", Some("100")),
            0,
        )
        .unwrap();
        assert_eq!(account.cash(), amount("0.001"));
        let refused = account
            .decide(&btc, &order(Side::Sell, "10", Some("100")), 0)
            .unwrap_err();
        assert_eq!(refused.reason, Reason::InsufficientPosition);
        assert_eq!(
            refused.detail,
            "a sell of 10 BTC is more than the 9.99 held, and ALLOW_SHORT is off"
        );
        trade(
            &mut account,
            &mut btc,
            &order(Side::Sell, "9.99", Some("100")),
            0,
        )
        .unwrap();
        assert_eq!(
            account
                .decide(&btc, &order(Side::Sell, "1", None), 0)
                .unwrap_err()
                .reason,
            Reason::InsufficientPosition
        );
        let mut shorting = Account::new(Terms {
            balance: Some(amount("1000")),
            allow_short: true,
            ..Terms::default()
        });
        let mut eth = Position::default();
        trade(
            &mut shorting,
            &mut eth,
            &order(Side::Sell, "1", Some("2000")),
            0,
        )
        .unwrap();
        assert_eq!(shorting.cash(), amount("3000"));
        // Buying back is a buy: it needs the cash.
        trade(
            &mut shorting,
            &mut eth,
            &order(Side::Buy, "1", Some("2500")),
            0,
        )
        .unwrap();
        assert_eq!(shorting.cash(), amount("500"));
        assert_eq!(eth.realized_pnl, amount("-500"));
    }

    #[test]
    fn a_mark_moves_unrealized_pnl_and_equity_without_a_fill() {
        let mut account = Account::new(Terms {
            balance: Some(amount("100000")),
            ..Terms::default()
        });
        let mut btc = Position::default();
        trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "0.5", Some("64000")),
            0,
        )
        .unwrap();
        let before = account.summary([&btc]).unwrap();
        assert_eq!(before.unrealized_pnl, Amount::ZERO);
        assert_eq!(before.equity, amount("100000"));
        btc.mark_at(price("64410.5"));
        let after = account.summary([&btc]).unwrap();
        assert_eq!(after.cash, amount("68000"));
        assert_eq!(after.unrealized_pnl, amount("205.25"));
        assert_eq!(after.equity, amount("100205.25"));
        // And a signal without a price fills at it.
        let fill = trade(&mut account, &mut btc, &order(Side::Sell, "0.5", None), 0).unwrap();
        assert_eq!(fill.price, price("64410.5"));
        assert_eq!(btc.realized_pnl, amount("205.25"));
    }

    #[test]
    fn refusals_keep_the_engine_order() {
        let mut account = Account::new(Terms {
            limits: Limits {
                max_position_qty: Some(quantity("3")),
                max_order_notional: Some(amount("1000")),
                max_orders_per_minute: Some(2),
            },
            ..Terms::default()
        });
        let mut btc = Position::default();
        let reason = |account: &Account, btc: &Position, order: Order<'_>, now: i64| {
            account.decide(btc, &order, now).unwrap_err().reason
        };
        assert_eq!(
            reason(&account, &btc, order(Side::Buy, "1", None), 0),
            Reason::NoPrice
        );
        assert_eq!(
            reason(&account, &btc, order(Side::Buy, "11", Some("100")), 0),
            Reason::MaxOrderNotional
        );
        assert_eq!(
            reason(
                &account,
                &btc,
                order(Side::Buy, "9999999999", Some("9999999999")),
                0
            ),
            Reason::BadQty
        );
        trade(
            &mut account,
            &mut btc,
            &order(Side::Buy, "3", Some("100")),
            0,
        )
        .unwrap();
        assert_eq!(
            reason(&account, &btc, order(Side::Buy, "0.5", Some("100")), 1),
            Reason::MaxPositionQty
        );
        trade(
            &mut account,
            &mut btc,
            &order(Side::Sell, "1", Some("100")),
            2,
        )
        .unwrap();
        assert_eq!(
            reason(&account, &btc, order(Side::Sell, "1", Some("100")), 3),
            Reason::MaxOrdersPerMinute
        );
        assert_eq!(
            reason(
                &account,
                &btc,
                order(Side::Sell, "1", Some("100")),
                MINUTE_MS - 1
            ),
            Reason::MaxOrdersPerMinute
        );
        trade(
            &mut account,
            &mut btc,
            &order(Side::Sell, "1", Some("100")),
            MINUTE_MS,
        )
        .unwrap();
        assert_eq!(btc.qty, quantity("1"));
    }

    #[test]
    fn replay_keeps_only_the_last_minute_of_fill_times() {
        let mut account = Account::new(Terms {
            limits: Limits {
                max_orders_per_minute: Some(5),
                ..Limits::default()
            },
            ..Terms::default()
        });
        let mut position = Position::default();
        for second in 0..10_000 {
            let fill = Fill {
                side: Side::Buy,
                qty: quantity("1"),
                asked: price("10"),
                price: price("10"),
                fee: Amount::ZERO,
                at_ms: second * 1000,
                rounding: Rounding::DEFAULT,
            };
            account.apply(&mut position, &fill).unwrap();
        }
        assert_eq!(account.recent_fills().count(), 60);
    }

    #[test]
    fn a_fill_no_decision_could_make_fails_to_apply_and_changes_nothing() {
        let mut account = Account::new(Terms::default());
        let mut position = Position::default();
        let fill = Fill {
            side: Side::Buy,
            qty: quantity("9999999999"),
            asked: price("9999999999"),
            price: price("9999999999"),
            fee: Amount::ZERO,
            at_ms: 0,
            rounding: Rounding::DEFAULT,
        };
        assert_eq!(account.apply(&mut position, &fill), Err(Overflow));
        assert_eq!(
            (position, account.cash()),
            (Position::default(), Amount::ZERO)
        );
    }

    #[test]
    fn a_position_serializes_with_strings() {
        let position = Position {
            qty: quantity("0.3"),
            cost: amount("19324.539"),
            avg_price: price("64415.13"),
            mark: Some(price("64420")),
            ..Position::default()
        };
        let json = serde_json::to_string(&position).unwrap();
        assert_eq!(
            json,
            r#"{"qty":"0.3","cost":"19324.539","avg_price":"64415.13","realized_pnl":"0","fees":"0","mark_price":"64420"}"#
        );
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), position);
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// Symbol, buy, qty and price in 10^-8, or no price (the mark).
        Trade(usize, bool, i128, Option<i128>),
        /// Symbol: closes whatever it holds, at the mark.
        Close(usize),
        /// Symbol, price in 10^-8: a price update.
        Mark(usize, i128),
    }

    fn step() -> impl Strategy<Value = Step> {
        let qty = prop_oneof![1i128..=10 * model::QTY, 1i128..=1000];
        let price = prop_oneof![model::QTY..=100_000 * model::QTY, 1i128..=100_000];
        prop_oneof![
            6 => (0usize..3, any::<bool>(), qty, proptest::option::weighted(0.8, price.clone()))
                .prop_map(|(symbol, buy, qty, price)| Step::Trade(symbol, buy, qty, price)),
            2 => (0usize..3).prop_map(Step::Close),
            1 => (0usize..3, price).prop_map(|(symbol, price)| Step::Mark(symbol, price)),
        ]
    }

    fn bps() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0u32), 0u32..5000]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Live decisions, then a replay of their fills, agree exactly with
        /// the integer model; a position back at zero leaves no residue and
        /// has realized exactly its cash flow.
        #[test]
        fn decided_and_replayed_agree_with_integers(
            steps in proptest::collection::vec(step(), 1..60),
            fee in bps(),
            slippage in bps(),
            balance in proptest::option::of(0i128..=1_000_000),
            allow_short in any::<bool>(),
        ) {
            let bps_text = |hundredths: u32| format!("{}.{:02}", hundredths / 100, hundredths % 100);
            let terms = Terms {
                balance: balance.map(|cash| Amount::from_int(cash as i64).unwrap()),
                fee: BasisPoints::parse(&bps_text(fee)).unwrap(),
                slippage: BasisPoints::parse(&bps_text(slippage)).unwrap(),
                allow_short,
                ..Terms::default()
            };
            let mut account = Account::new(terms);
            let mut positions = vec![Position::default(); 3];
            let mut integers = Model::new(3, balance, fee, slippage, allow_short);
            let mut fills = Vec::new();
            // Per symbol: realized PnL when its round trip opened, and the
            // trip's cash flow before fees since (10^-16).
            let mut trips = [(Amount::ZERO, 0i128); 3];
            for (at, step) in steps.into_iter().enumerate() {
                let (symbol, buy, qty, asked) = match step {
                    Step::Mark(symbol, price) => {
                        positions[symbol].mark_at(Price::parse(&model::text(price, 8)).unwrap());
                        integers.held[symbol].mark = Some(price);
                        continue;
                    }
                    Step::Close(symbol) if integers.held[symbol].qty == 0 => continue,
                    Step::Close(symbol) => (symbol, integers.held[symbol].qty < 0, integers.held[symbol].qty.abs(), None),
                    Step::Trade(symbol, buy, qty, price) => (symbol, buy, qty, price),
                };
                let order = Order {
                    symbol: "S",
                    side: if buy { Side::Buy } else { Side::Sell },
                    qty: Quantity::parse(&model::text(qty, 8)).unwrap(),
                    price: asked.map(|price| Price::parse(&model::text(price, 8)).unwrap()),
                };
                let decided = account.decide(&positions[symbol], &order, at as i64);
                let was = integers.held[symbol].qty;
                match (decided, integers.order(symbol, buy, qty, asked)) {
                    (Ok(decision), Ok(filled)) => {
                        let (signed, price) = (filled.signed, filled.price);
                        fills.push((symbol, account.commit(&mut positions[symbol], decision)));
                        let realized = positions[symbol].realized_pnl;
                        let (opened, flow) = &mut trips[symbol];
                        let through_zero = was != 0 && (was + signed) != 0 && (was + signed).signum() != was.signum();
                        if was == 0 {
                            (*opened, *flow) = (realized, -signed * price);
                        } else if through_zero {
                            let closing = *flow + was * price;
                            prop_assert_eq!(realized.checked_sub(*opened).unwrap(), Amount::parse(&model::text(closing, 16)).unwrap());
                            (*opened, *flow) = (realized, -(was + signed) * price);
                        } else {
                            *flow -= signed * price;
                            if was + signed == 0 {
                                prop_assert_eq!(realized.checked_sub(*opened).unwrap(), Amount::parse(&model::text(*flow, 16)).unwrap(), "a round trip realizes its cash flow");
                            }
                        }
                    }
                    (Err(refusal), Err(reason)) => prop_assert_eq!(refusal.reason, reason),
                    (decided, expected) => prop_assert!(false, "decided {:?}, expected {:?}", decided, expected),
                }
                let (position, held) = (&positions[symbol], &integers.held[symbol]);
                prop_assert_eq!(position.qty, Quantity::parse(&model::text(held.qty, 8)).unwrap());
                prop_assert_eq!(position.cost, Amount::parse(&model::text(held.cost, 16)).unwrap());
                prop_assert_eq!(position.avg_price(), Price::parse(&model::text(held.avg, 8)).unwrap());
                prop_assert_eq!(position.realized_pnl, Amount::parse(&model::text(held.realized, 16)).unwrap());
                prop_assert_eq!(position.fees, Amount::parse(&model::text(held.fees, 8)).unwrap());
                prop_assert_eq!(account.cash(), Amount::parse(&model::text(integers.cash, 16)).unwrap());
                if held.qty == 0 {
                    prop_assert_eq!(position.cost, Amount::ZERO);
                    prop_assert_eq!(position.avg_price(), Price::ZERO);
                }
            }
            // Realized PnL is exactly what the fills moved, once flat.
            prop_assert!(integers.cash_adds_up());

            let mut replayed = Account::new(terms);
            let mut replayed_positions = vec![Position::default(); 3];
            for (symbol, fill) in &fills {
                replayed.apply(&mut replayed_positions[*symbol], fill).unwrap();
            }
            // Marks from price updates are not fills: the live positions'
            // marks may differ, nothing else.
            for (live, replayed) in positions.iter().zip(&replayed_positions) {
                prop_assert_eq!(Position { mark: None, ..live.clone() }, Position { mark: None, ..replayed.clone() });
            }
            prop_assert_eq!(replayed.cash(), account.cash());
            let restored = Account::restore(terms, &positions, Vec::new()).unwrap();
            prop_assert_eq!(restored.cash(), account.cash());
            let summary = account.summary(&positions).unwrap();
            prop_assert_eq!(
                summary.equity,
                terms.balance.unwrap_or_default()
                    .checked_add(summary.realized_pnl).unwrap()
                    .checked_sub(summary.fees).unwrap()
                    .checked_add(summary.unrealized_pnl).unwrap()
            );
        }
    }
}
