//! One item's decision, from admission to its record: a line that is not
//! a signal is refused; a signal goes to the exactly-once window (already
//! decided, too old, too far ahead), then to the engine (the symbol bound,
//! the account: risk limits, cash, fees, slippage, the paper fill), and
//! whatever became of it is appended to the journal under the window's one
//! rule. A price update moves its symbol's mark and is not journaled.
//! Nothing else decides, live or in the ledger's property test, which
//! drives exactly this function; the loop around it only batches, commits
//! and publishes.

use std::borrow::Cow;

use super::account::Fill;
use super::engine::Engine;
use super::ledger::record::Record;
use super::ledger::{Ledger, Refusal};
use super::signal::{Item, PriceUpdate, Reject, Signal};

/// Longest raw line kept in a reject record.
const MAX_REJECT_LINE: usize = 1024;

/// What became of one item; every outcome but a duplicate and a price
/// update is journaled already (to be durable at the next commit).
pub(crate) enum Verdict<'s> {
    /// Not a signal at all.
    Invalid(&'s Reject),
    /// Its id is in the exactly-once window: nothing journaled.
    Duplicate(&'s Signal<'s>),
    /// Refused by the window (too old, too far ahead) or by the engine.
    Rejected(&'s Signal<'s>, Reject),
    Filled(&'s Signal<'s>, Fill),
    /// A price update that moved its symbol's mark: nothing journaled.
    Marked,
    /// A price update the symbol bound refused: counted, not journaled (a
    /// price feed for symbols the bot does not trade would fill the
    /// journal with them).
    Unmarked(&'s PriceUpdate<'s>, Reject),
}

/// Decides `item` (a parsed line of source `src`, `bytes` as received) at
/// the ledger's clock `now_ms`, and journals the decision. `hashed` is a
/// signal's id hashed for the window where it was parsed, if it was.
pub(crate) fn decide<'s>(
    ledger: &mut Ledger,
    engine: &mut Engine,
    src: &str,
    bytes: &[u8],
    item: Result<&'s Item<'s>, &'s Reject>,
    hashed: Option<u32>,
    now_ms: i64,
) -> Verdict<'s> {
    let signal = match item {
        Ok(Item::Signal(signal)) => signal,
        Ok(Item::Price(update)) => {
            return match engine.mark(update) {
                Ok(()) => Verdict::Marked,
                Err(reject) => Verdict::Unmarked(update, reject),
            }
        }
        Err(reject) => {
            ledger.append(&reject_record(src, bytes, reject, None, now_ms));
            return Verdict::Invalid(reject);
        }
    };
    let admitted = match ledger.admit(signal, hashed, now_ms) {
        Ok(admitted) => admitted,
        Err(Refusal::Duplicate) => return Verdict::Duplicate(signal),
        Err(Refusal::Reject(refused)) => {
            let reject = with_id(refused, signal);
            ledger.append(&reject_record(
                src,
                bytes,
                &reject,
                Some(signal.ts_ms),
                now_ms,
            ));
            return Verdict::Rejected(signal, reject);
        }
    };
    match engine.decide(signal, now_ms) {
        Ok(fill) => {
            tracing::debug!(id = %signal.id, symbol = %signal.symbol, side = fill.side.as_str(), qty = %fill.qty, price = %fill.price, fee = %fill.fee, "filled");
            ledger.append_decision(&fill_record(src, signal, &fill), admitted);
            Verdict::Filled(signal, fill)
        }
        Err(refused) => {
            let reject = with_id(refused, signal);
            ledger.append_decision(
                &reject_record(src, bytes, &reject, Some(signal.ts_ms), now_ms),
                admitted,
            );
            Verdict::Rejected(signal, reject)
        }
    }
}

fn with_id(refused: Reject, signal: &Signal<'_>) -> Reject {
    Reject {
        id: Some(signal.id.to_string()),
        ..refused
    }
}

fn fill_record<'r>(src: &'r str, signal: &'r Signal<'_>, fill: &Fill) -> Record<'r> {
    Record::Fill {
        id: Cow::Borrowed(&signal.id),
        src: Cow::Borrowed(src),
        ts: signal.ts_ms,
        at: fill.at_ms,
        symbol: Cow::Borrowed(&signal.symbol),
        side: fill.side,
        qty: fill.qty,
        price: fill.price,
        asked: (fill.asked != fill.price).then_some(fill.asked),
        fee: (!fill.fee.is_zero()).then_some(fill.fee),
        places: fill.rounding,
        source: signal.source.as_deref().map(Cow::Borrowed),
    }
}

/// A reject's record; `ts` is the signal's, when the line parsed.
fn reject_record<'r>(
    src: &'r str,
    bytes: &[u8],
    reject: &Reject,
    ts: Option<i64>,
    now_ms: i64,
) -> Record<'r> {
    tracing::debug!(id = ?reject.id, reason = reject.reason.label(), detail = %reject.detail, "rejected");
    Record::Reject {
        id: reject.id.clone(),
        src: Cow::Borrowed(src),
        ts,
        at: now_ms,
        reason: reject.reason.label().to_owned(),
        detail: reject.detail.clone(),
        line: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_REJECT_LINE)]).into_owned(),
    }
}
