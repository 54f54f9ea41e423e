//! The paper account in plain integers, for the property tests (the
//! account's own and the ledger's): an independent computation the exact
//! decimals must agree with to the last digit. Quantities and prices are
//! in 10^-8, amounts in 10^-16, fees in 10^-8, basis points in hundredths,
//! with a half-to-even division of its own.

use crate::bot::signal::Reason;

/// One unit in 10^-8.
pub(crate) const QTY: i128 = 100_000_000;

pub(crate) fn div_half_even(n: i128, d: i128) -> i128 {
    let (quotient, remainder) = (n / d, n % d);
    let twice = 2 * remainder.abs();
    let away = twice > d.abs() || (twice == d.abs() && quotient % 2 != 0);
    if away {
        quotient + n.signum() * d.signum()
    } else {
        quotient
    }
}

/// `value` × 10^-`places` as decimal text.
pub(crate) fn text(value: i128, places: u32) -> String {
    let scale = 10i128.pow(places);
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.abs();
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = places as usize
    )
}

/// One symbol's position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) qty: i128,
    pub(crate) cost: i128,
    pub(crate) avg: i128,
    pub(crate) realized: i128,
    pub(crate) fees: i128,
    pub(crate) mark: Option<i128>,
}

impl Held {
    /// A fill of `signed` at `price`, fee `fee`, asked `asked`.
    pub(crate) fn fill(&mut self, signed: i128, price: i128, fee: i128, asked: i128) {
        let flow = signed * price;
        self.fees += fee;
        self.mark = Some(asked);
        let remaining = self.qty + signed;
        if self.qty == 0 || self.qty.signum() == signed.signum() {
            self.qty = remaining;
            self.cost += flow;
            self.avg = div_half_even(self.cost, self.qty);
        } else if remaining == 0 {
            self.realized += -flow - self.cost;
            self.qty = 0;
            self.cost = 0;
            self.avg = 0;
        } else if remaining.signum() == self.qty.signum() {
            let released = -signed * self.avg;
            self.realized += -flow - released;
            self.qty = remaining;
            self.cost -= released;
        } else {
            self.realized += self.qty * price - self.cost;
            self.qty = remaining;
            self.cost = remaining * price;
            self.avg = price;
        }
    }
}

/// The whole account: its terms, its cash and a position per symbol (no
/// risk limits: the tests that use it set none).
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub(crate) held: Vec<Held>,
    /// 10^-16.
    pub(crate) cash: i128,
    /// Whole units.
    pub(crate) balance: Option<i128>,
    pub(crate) fee: u32,
    pub(crate) slippage: u32,
    pub(crate) allow_short: bool,
}

/// A fill the model made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Filled {
    /// The quantity signed by side.
    pub(crate) signed: i128,
    pub(crate) asked: i128,
    pub(crate) price: i128,
    pub(crate) fee: i128,
}

impl Model {
    pub(crate) fn new(
        symbols: usize,
        balance: Option<i128>,
        fee: u32,
        slippage: u32,
        allow_short: bool,
    ) -> Model {
        Model {
            held: vec![Held::default(); symbols],
            cash: balance.unwrap_or(0) * QTY * QTY,
            balance,
            fee,
            slippage,
            allow_short,
        }
    }

    /// The cash it started with (10^-16).
    pub(crate) fn start(&self) -> i128 {
        self.balance.unwrap_or(0) * QTY * QTY
    }

    /// Decides an order as the account must (no price and no mark, a short
    /// not allowed, funds short), and books it when it fills.
    pub(crate) fn order(
        &mut self,
        symbol: usize,
        buy: bool,
        qty: i128,
        asked: Option<i128>,
    ) -> Result<Filled, Reason> {
        let held = &mut self.held[symbol];
        let asked = asked.or(held.mark).ok_or(Reason::NoPrice)?;
        let slip = i128::from(self.slippage);
        let price = div_half_even(
            asked * (1_000_000 + if buy { slip } else { -slip }),
            1_000_000,
        );
        let fee = div_half_even(qty * price * i128::from(self.fee), 100_000_000_000_000);
        let signed = if buy { qty } else { -qty };
        let cash_after = self.cash - signed * price - fee * QTY;
        if !buy && held.qty - qty < 0 && !self.allow_short {
            return Err(Reason::InsufficientPosition);
        }
        if buy && self.balance.is_some() && cash_after < 0 {
            return Err(Reason::InsufficientFunds);
        }
        held.fill(signed, price, fee, asked);
        self.cash = cash_after;
        Ok(Filled {
            signed,
            asked,
            price,
            fee,
        })
    }

    /// The identity that holds whatever the fills: cash is the starting
    /// cash, plus what was realized, less fees and what is still open.
    pub(crate) fn cash_adds_up(&self) -> bool {
        let realized: i128 = self.held.iter().map(|held| held.realized).sum();
        let fees: i128 = self.held.iter().map(|held| held.fees).sum();
        let open: i128 = self.held.iter().map(|held| held.cost).sum();
        self.cash == self.start() + realized - fees * QTY - open
    }
}
