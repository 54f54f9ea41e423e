//! The signal format: one JSON object a line, and the precise reason a line
//! is refused. Parsing never panics and never trusts the input's shape.

mod scan;

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::money::{Decimal, NumberError, Price, Quantity};

/// Longest signal line accepted; longer ones are rejected unread.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Longest `id`, `symbol` or `source`: they end up in journals and metric labels.
pub(crate) const MAX_FIELD_CHARS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// A valid signal, borrowing its strings from the line where it can (a
/// string with an escape in it is the exception that owns its text).
#[derive(Clone, Debug, PartialEq)]
pub struct Signal<'a> {
    pub id: Cow<'a, str>,
    /// Milliseconds since the Unix epoch, whichever form `ts` came in; its
    /// [`Arrival`] for a signal with an `id` and no `ts`.
    pub ts_ms: i64,
    pub symbol: Cow<'a, str>,
    pub side: Side,
    /// Read from the line's own text, exactly (never through an `f64`).
    pub qty: Quantity,
    pub price: Option<Price>,
    pub source: Option<Cow<'a, str>>,
}

/// A price update (`"type":"price"`): the symbol's mark moves to `price`.
/// It trades nothing and is not journaled; a `ts`, if sent, is checked as
/// a signal's is.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceUpdate<'a> {
    pub symbol: Cow<'a, str>,
    pub price: Price,
}

/// What one line holds: a signal, or a price update.
#[derive(Clone, Debug, PartialEq)]
pub enum Item<'a> {
    Signal(Signal<'a>),
    Price(PriceUpdate<'a>),
}

/// Why a line or a signal was refused. `label()` is the metric label, so
/// the set is closed: a hostile feed cannot grow the series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    LineTooLong,
    InvalidUtf8,
    NotJson,
    NotObject,
    MissingField,
    WrongType,
    BadId,
    BadTs,
    BadSymbol,
    BadSide,
    BadQty,
    BadPrice,
    BadSource,
    NoPrice,
    MaxPositionQty,
    MaxOrderNotional,
    MaxOrdersPerMinute,
    /// A buy whose cost with fees is more than the cash (`PAPER_BALANCE`).
    InsufficientFunds,
    /// A sell of more than is held, with `ALLOW_SHORT` off.
    InsufficientPosition,
    /// Not in the `SYMBOLS` allowlist.
    UnknownSymbol,
    /// A symbol past `MAX_SYMBOLS`.
    TooManySymbols,
    /// Older than the exactly-once window reaches back (`DEDUPE_WINDOW`).
    TooOld,
    /// More than `MAX_CLOCK_SKEW` ahead of the bot's clock.
    TsInFuture,
    /// A feed's message that matched its mapping's `when` but lacks a
    /// mapped field, or holds it with the wrong JSON type.
    Unmapped,
}

impl Reason {
    pub const ALL: [Reason; 24] = [
        Reason::LineTooLong,
        Reason::InvalidUtf8,
        Reason::NotJson,
        Reason::NotObject,
        Reason::MissingField,
        Reason::WrongType,
        Reason::BadId,
        Reason::BadTs,
        Reason::BadSymbol,
        Reason::BadSide,
        Reason::BadQty,
        Reason::BadPrice,
        Reason::BadSource,
        Reason::NoPrice,
        Reason::MaxPositionQty,
        Reason::MaxOrderNotional,
        Reason::MaxOrdersPerMinute,
        Reason::InsufficientFunds,
        Reason::InsufficientPosition,
        Reason::UnknownSymbol,
        Reason::TooManySymbols,
        Reason::TooOld,
        Reason::TsInFuture,
        Reason::Unmapped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::LineTooLong => "line_too_long",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::BadId => "bad_id",
            Reason::BadTs => "bad_ts",
            Reason::BadSymbol => "bad_symbol",
            Reason::BadSide => "bad_side",
            Reason::BadQty => "bad_qty",
            Reason::BadPrice => "bad_price",
            Reason::BadSource => "bad_source",
            Reason::NoPrice => "no_price",
            Reason::MaxPositionQty => "max_position_qty",
            Reason::MaxOrderNotional => "max_order_notional",
            Reason::MaxOrdersPerMinute => "max_orders_per_minute",
            Reason::InsufficientFunds => "insufficient_funds",
            Reason::InsufficientPosition => "insufficient_position",
            Reason::UnknownSymbol => "unknown_symbol",
            Reason::TooManySymbols => "too_many_symbols",
            Reason::TooOld => "too_old",
            Reason::TsInFuture => "ts_in_future",
            Reason::Unmapped => "unmapped",
        }
    }

    pub(crate) fn from_label(label: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.label() == label)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// A reject by one of the risk limits or the account's own (funds, a
    /// position to sell): what an operator is alerted to.
    pub(crate) fn is_risk_limit(self) -> bool {
        matches!(
            self,
            Reason::MaxPositionQty
                | Reason::MaxOrderNotional
                | Reason::MaxOrdersPerMinute
                | Reason::InsufficientFunds
                | Reason::InsufficientPosition
        )
    }
}

/// A refusal: the reason, a sentence for the journal and the operator, and
/// the signal id when the line got far enough to have one.
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    pub reason: Reason,
    pub detail: String,
    pub(crate) id: Option<String>,
}

impl Reject {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Reject {
            reason,
            detail: detail.into(),
            id: None,
        }
    }
}

/// Parses one line (without its newline; a trailing `\r` and a leading
/// UTF-8 byte order mark are tolerated: Windows tools write both, and RFC
/// 8259 lets a parser ignore the mark).
pub fn parse(line: &[u8]) -> Result<Item<'_>, Reject> {
    parse_with(line, Ids::Required)
}

/// Whether a signal must carry its `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ids {
    Required,
    /// Without one, the id is derived from the signal's content (see
    /// [`derived_id`]): the webhook's rule, since TradingView's templates
    /// have no placeholder that gives a unique id.
    Derived,
}

/// When a line arrived: the `ts` of a signal that has an `id` and no `ts`.
/// Real feeds often send none, and an id is enough to tell a resend; a
/// signal without an id needs its `ts`, because its derived id hashes it
/// (a resend must derive the same id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The wall clock, read as the line is parsed.
    Now,
    /// Milliseconds since the Unix epoch, for two parses that must agree.
    At(i64),
}

impl Arrival {
    fn ms(self) -> i64 {
        match self {
            Arrival::Now => now_ms(),
            Arrival::At(ms) => ms,
        }
    }
}

/// The wall clock in milliseconds since the Unix epoch, the bot's one
/// reading of it (0 before the epoch).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// [`parse`], with the rule for a missing `id`.
pub fn parse_with(line: &[u8], ids: Ids) -> Result<Item<'_>, Reject> {
    parse_at(line, ids, Arrival::Now)
}

/// [`parse_with`], arrived at `arrival`.
pub fn parse_at(line: &[u8], ids: Ids, arrival: Arrival) -> Result<Item<'_>, Reject> {
    let text = text_of(line)?;
    let fields = match scan::fields(text) {
        Some(fields) => fields,
        None => general_fields(text)?,
    };
    item(fields, ids, arrival)
}

/// [`parse_at`] without the fast scanner, ids required: every line through
/// serde_json. The reference the scanner is tested and fuzzed against.
pub fn parse_general(line: &[u8], arrival: Arrival) -> Result<Item<'_>, Reject> {
    item(general_fields(text_of(line)?)?, Ids::Required, arrival)
}

fn text_of(line: &[u8]) -> Result<&str, Reject> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Reject::new(
            Reason::LineTooLong,
            format!(
                "line of {} bytes is over the {MAX_LINE_BYTES}-byte limit",
                line.len()
            ),
        ));
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    std::str::from_utf8(line).map_err(|error| {
        Reject::new(
            Reason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", error.valid_up_to()),
        )
    })
}

/// The fields of any JSON text, or why it is not a JSON object.
fn general_fields(text: &str) -> Result<Fields<'_>, Reject> {
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => Reject::new(Reason::NotObject, "not a JSON object"),
            Err(error) => Reject::new(Reason::NotJson, format!("not JSON: {error}")),
        });
    }
    serde_json::from_str(text)
        .map_err(|error| Reject::new(Reason::NotJson, format!("not JSON: {error}")))
}

/// The signal's fields as found, before they are checked. Parsing into
/// this rather than a `serde_json::Value` tree borrows the strings and the
/// numbers' text from the line and skips most allocations; unknown fields
/// are ignored, a repeated one is refused as not JSON. A feed's mapping
/// fills it from the message it maps, so a mapped signal is checked as a
/// line is.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub(crate) struct Fields<'a> {
    /// `"price"` for a price update; anything else (or nothing) is a
    /// signal, as before the field had a meaning.
    #[serde(borrow, default, rename = "type")]
    pub(crate) kind: Raw<'a>,
    #[serde(borrow, default)]
    pub(crate) id: Raw<'a>,
    #[serde(borrow, default)]
    pub(crate) ts: Raw<'a>,
    #[serde(borrow, default)]
    pub(crate) symbol: Raw<'a>,
    #[serde(borrow, default)]
    pub(crate) side: Raw<'a>,
    #[serde(borrow, default)]
    pub(crate) qty: Raw<'a>,
    #[serde(borrow, default)]
    pub(crate) price: Raw<'a>,
    #[serde(borrow, default)]
    pub(crate) source: Raw<'a>,
}

#[derive(Debug, Default, PartialEq)]
pub(crate) enum Raw<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    /// A JSON number, as its own text: an exact decimal is read from it,
    /// never through an `f64`.
    Number(&'a str),
    /// Epoch milliseconds a mapping computed (from seconds, say).
    Int(i64),
    /// A boolean, an array or an object.
    Other,
}

impl<'a> Raw<'a> {
    /// A JSON number, from its own text (a mapping found it as such): the
    /// one place a mapped number becomes what the checks read.
    pub(crate) fn number(text: &'a str) -> Raw<'a> {
        Raw::Number(text)
    }

    /// A JSON value, from its own text (which serde_json has checked, but
    /// for what a string's escapes decode to: a lone surrogate is not
    /// text).
    fn of(text: &'a str) -> Result<Raw<'a>, serde_json::Error> {
        Ok(match text.as_bytes().first() {
            Some(b'"') => match text.get(1..text.len() - 1) {
                Some(inner) if !inner.contains('\\') => Raw::Str(Cow::Borrowed(inner)),
                _ => Raw::Str(Cow::Owned(serde_json::from_str(text)?)),
            },
            Some(b'-' | b'0'..=b'9') => Raw::number(text),
            Some(b'n') => Raw::Null,
            _ => Raw::Other,
        })
    }
}

/// Each field as its own text (serde_json's `raw_value`), so a number
/// keeps its digits; never its `arbitrary_precision`, which breaks tagged
/// enums and `flatten` elsewhere in the crate.
impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <&'de RawValue>::deserialize(deserializer)?;
        Raw::of(value.get()).map_err(serde::de::Error::custom)
    }
}

/// A line's item from its fields: a price update when its `type` says so,
/// else a signal.
fn item(fields: Fields<'_>, ids: Ids, arrival: Arrival) -> Result<Item<'_>, Reject> {
    match &fields.kind {
        Raw::Str(kind) if kind == "price" => price_update(fields).map(Item::Price),
        _ => from_fields(fields, ids, arrival).map(Item::Signal),
    }
}

fn price_update(fields: Fields<'_>) -> Result<PriceUpdate<'_>, Reject> {
    let symbol = name_field(fields.symbol, "symbol", Reason::BadSymbol)?;
    let price = positive(&fields.price, "price", Reason::BadPrice)?;
    if !matches!(fields.ts, Raw::Absent) {
        timestamp(&fields.ts)?;
    }
    Ok(PriceUpdate { symbol, price })
}

pub(crate) fn from_fields(
    fields: Fields<'_>,
    ids: Ids,
    arrival: Arrival,
) -> Result<Signal<'_>, Reject> {
    let id = match fields.id {
        Raw::Absent if ids == Ids::Derived => None,
        given => Some(name_field(given, "id", Reason::BadId)?),
    };
    let with_id = |reject: Reject| Reject {
        id: id.as_ref().map(|id| id.clone().into_owned()),
        ..reject
    };
    let ts_ms = match (&fields.ts, &id) {
        (Raw::Absent, Some(_)) => arrival.ms(),
        (ts, _) => timestamp(ts).map_err(with_id)?,
    };
    let symbol = name_field(fields.symbol, "symbol", Reason::BadSymbol).map_err(with_id)?;
    let side = match &fields.side {
        Raw::Str(side) if side == "buy" => Side::Buy,
        Raw::Str(side) if side == "sell" => Side::Sell,
        Raw::Str(side) => {
            return Err(with_id(Reject::new(
                Reason::BadSide,
                format!("side {:?} is neither \"buy\" nor \"sell\"", clip(side)),
            )))
        }
        other => return Err(with_id(not_a(other, "side", "a string"))),
    };
    let qty = positive(&fields.qty, "qty", Reason::BadQty).map_err(with_id)?;
    let price = match &fields.price {
        Raw::Absent | Raw::Null => None,
        value => Some(positive(value, "price", Reason::BadPrice).map_err(with_id)?),
    };
    let source = match fields.source {
        Raw::Absent | Raw::Null => None,
        value => Some(name_field(value, "source", Reason::BadSource).map_err(with_id)?),
    };
    let id = id.unwrap_or_else(|| Cow::Owned(derived_id(&symbol, side, qty, price, ts_ms)));
    Ok(Signal {
        id,
        ts_ms,
        symbol,
        side,
        qty,
        price,
        source,
    })
}

/// The id of a signal sent without one: `auto-` and 96 bits of the SHA-256
/// of what the signal says (symbol, side, qty, price, ts), so a delivery
/// sent again is a duplicate rather than a second order. Numbers are
/// hashed by value (`"0.50"` and `0.5` are one signal) as their shortest
/// text, which for any number of up to 17 significant digits is the text
/// the float releases hashed: a retry across the upgrade is a duplicate.
/// Nothing random goes in, so the id is the same after a restart.
pub fn derived_id(
    symbol: &str,
    side: Side,
    qty: Quantity,
    price: Option<Price>,
    ts_ms: i64,
) -> String {
    use std::fmt::Write;
    let price = price.map_or_else(|| "-".to_owned(), |price| price.to_string());
    let content = format!("{symbol}\n{}\n{qty}\n{price}\n{ts_ms}", side.as_str());
    let digest = ring::digest::digest(&ring::digest::SHA256, content.as_bytes());
    let mut id = String::from("auto-");
    for byte in &digest.as_ref()[..12] {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// Missing, or present with the wrong JSON type.
fn not_a(value: &Raw<'_>, field: &str, expected: &str) -> Reject {
    match value {
        Raw::Absent => Reject::new(Reason::MissingField, format!("missing field {field:?}")),
        _ => Reject::new(
            Reason::WrongType,
            format!("field {field:?} must be {expected}"),
        ),
    }
}

/// A non-empty printable string of bounded length.
fn name_field<'a>(value: Raw<'a>, field: &str, bad: Reason) -> Result<Cow<'a, str>, Reject> {
    let Raw::Str(text) = value else {
        return Err(not_a(&value, field, "a string"));
    };
    // Names are nearly always short printable ASCII, which needs no
    // decoding to count or to check.
    let printable_ascii =
        text.len() <= MAX_FIELD_CHARS && text.bytes().all(|byte| (b' '..b'\x7f').contains(&byte));
    if printable_ascii && !text.is_empty() {
        return Ok(text);
    }
    if text.is_empty() || text.chars().count() > MAX_FIELD_CHARS {
        return Err(Reject::new(
            bad,
            format!("{field:?} must have 1 to {MAX_FIELD_CHARS} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Reject::new(
            bad,
            format!("{field:?} must not contain control characters"),
        ));
    }
    Ok(text)
}

/// An exact decimal above zero, from a JSON number's text or a string
/// holding one (TradingView's templates quote their placeholders:
/// `"qty": "{{strategy.order.contracts}}"` arrives as `"qty": "0.5"`).
/// More digits than a value holds are refused naming the limit, never
/// rounded.
fn positive<K>(value: &Raw<'_>, field: &str, bad: Reason) -> Result<Decimal<K>, Reject> {
    let text = match value {
        Raw::Number(text) => text,
        Raw::Str(text) => text.as_ref(),
        other => return Err(not_a(other, field, "a number")),
    };
    match Decimal::parse(text) {
        Ok(number) if number.is_positive() => Ok(number),
        Ok(number) => Err(Reject::new(
            bad,
            format!("{field:?} must be above zero, not {number}"),
        )),
        Err(NumberError::NotANumber) => Err(Reject::new(
            Reason::WrongType,
            format!(
                "field {field:?} must be a number or a string holding one, not {:?}",
                clip(text)
            ),
        )),
        Err(limit) => Err(Reject::new(
            bad,
            format!("{field:?} {} {limit}", clip(text)),
        )),
    }
}

fn timestamp(value: &Raw<'_>) -> Result<i64, Reject> {
    match value {
        Raw::Int(ms) if *ms >= 0 => Ok(*ms),
        Raw::Number(text) => whole_ms(text).ok_or_else(negative_ms),
        Raw::Int(_) => Err(negative_ms()),
        Raw::Str(text) => OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
            // Before 1970 is as wrong here as a negative epoch number.
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| {
                Reject::new(
                    Reason::BadTs,
                    format!(
                        "\"ts\" {:?} is not an RFC 3339 timestamp from 1970 on",
                        clip(text)
                    ),
                )
            }),
        other => Err(not_a(
            other,
            "ts",
            "an RFC 3339 string or epoch milliseconds",
        )),
    }
}

/// A JSON number's text as epoch milliseconds, if it is a whole number
/// from 0 up; up to 18 digits, the usual case, without `str::parse`.
fn whole_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() > 18 {
        return text.parse().ok().filter(|ms| *ms >= 0);
    }
    let mut ms = 0i64;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        ms = ms * 10 + i64::from(digit);
    }
    Some(ms)
}

fn negative_ms() -> Reject {
    Reject::new(
        Reason::BadTs,
        "\"ts\" must be a non-negative whole number of epoch milliseconds",
    )
}

/// Keeps echoed input short in journals and logs.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::money::literals::{price, quantity};

    fn reason(line: &str) -> Reason {
        parse(line.as_bytes()).unwrap_err().reason
    }

    fn detail(line: &str) -> String {
        parse(line.as_bytes()).unwrap_err().detail
    }

    /// The signal a line holds.
    fn signal(line: &[u8], ids: Ids) -> Signal<'_> {
        match parse_with(line, ids) {
            Ok(Item::Signal(signal)) => signal,
            other => panic!("not a signal: {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_signal() {
        let signal = signal(br#"{"id":"a1","ts":"2024-05-01T12:00:00.250+02:00","symbol":"BTC-USD","side":"buy","qty":0.5,"price":64000,"source":"tv"}"#, Ids::Required);
        assert_eq!(signal.id, "a1");
        assert_eq!(signal.ts_ms, 1_714_557_600_250);
        assert_eq!(signal.side, Side::Buy);
        assert_eq!(signal.qty, quantity("0.5"));
        assert_eq!(signal.price, Some(price("64000")));
        assert_eq!(signal.source.as_deref(), Some("tv"));
        let signal = super::tests::signal(
            br#"{"id":"a2","ts":1714557600250,"symbol":"ETH","side":"sell","qty":2}"#,
            Ids::Required,
        );
        assert_eq!(signal.ts_ms, 1_714_557_600_250);
        assert_eq!(signal.price, None);
        let signal = super::tests::signal(
            b"\xef\xbb\xbf{\"id\":\"a3\",\"ts\":1,\"symbol\":\"E\",\"side\":\"buy\",\"qty\":1}\r",
            Ids::Required,
        );
        assert_eq!(signal.id, "a3");
    }

    #[test]
    fn numbers_are_read_exactly_from_their_own_text() {
        for (qty, read) in [
            ("0.1", "0.1"),
            ("0.100000000000000005", "0.100000000000000005"),
            ("\"0.30000000000000004\"", "0.30000000000000004"),
            ("1e-7", "0.0000001"),
            ("2.50", "2.5"),
            ("\"64415.130\"", "64415.13"),
            (
                "9999999999999999999.999999999999999999",
                "9999999999999999999.999999999999999999",
            ),
        ] {
            let line = format!(
                r#"{{"id":"x","ts":1,"symbol":"S","side":"buy","qty":{qty},"price":{qty}}}"#
            );
            let signal = signal(line.as_bytes(), Ids::Required);
            assert_eq!(signal.qty, quantity(read), "{qty}");
            assert_eq!(signal.price, Some(price(read)), "{qty}");
        }
        // More than a value holds is refused, naming the limit: never rounded.
        let ok = r#""id":"x","ts":1,"symbol":"S","side":"buy""#;
        for (field, number, limit) in [
            (
                "qty",
                "0.0000000000000000001",
                "more than 18 decimal places",
            ),
            ("qty", "\"1e-19\"", "more than 18 decimal places"),
            (
                "qty",
                "10000000000000000000",
                "more than 19 digits before the point",
            ),
            ("qty", "1e999", "more than 19 digits before the point"),
            (
                "price",
                "64000.0000000000000000001",
                "more than 18 decimal places",
            ),
        ] {
            let line = if field == "qty" {
                format!("{{{ok},\"qty\":{number}}}")
            } else {
                format!("{{{ok},\"qty\":1,\"price\":{number}}}")
            };
            let reject = parse(line.as_bytes()).unwrap_err();
            let bad = if field == "qty" {
                Reason::BadQty
            } else {
                Reason::BadPrice
            };
            assert_eq!(reject.reason, bad, "{line}");
            assert!(reject.detail.contains(limit), "{}", reject.detail);
            assert_eq!(parse_general(line.as_bytes(), Arrival::At(1)), Err(reject));
        }
        assert_eq!(
            detail(&format!("{{{ok},\"qty\":-0.5}}")),
            "\"qty\" must be above zero, not -0.5"
        );
    }

    #[test]
    fn a_price_update_moves_a_mark_and_is_no_signal() {
        let update =
            parse(br#"{"type":"price","symbol":"BTC-USD","price":"64410.5","ts":1714564800000}"#);
        assert_eq!(
            update,
            Ok(Item::Price(PriceUpdate {
                symbol: "BTC-USD".into(),
                price: price("64410.5"),
            }))
        );
        assert_eq!(
            parse(br#"{"type":"price","symbol":"B","price":1}"#),
            Ok(Item::Price(PriceUpdate {
                symbol: "B".into(),
                price: price("1"),
            }))
        );
        assert_eq!(
            reason(r#"{"type":"price","symbol":"B"}"#),
            Reason::MissingField
        );
        assert_eq!(
            reason(r#"{"type":"price","symbol":"B","price":0}"#),
            Reason::BadPrice
        );
        assert_eq!(
            reason(r#"{"type":"price","price":1}"#),
            Reason::MissingField
        );
        assert_eq!(
            reason(r#"{"type":"price","symbol":"B","price":1,"ts":"soon"}"#),
            Reason::BadTs
        );
        // Any other type is a signal's business, as before it had a meaning.
        let line = br#"{"type":"market","id":"m","ts":1,"symbol":"S","side":"buy","qty":1}"#;
        assert_eq!(signal(line, Ids::Required).id, "m");
        assert_eq!(
            parse_general(
                br#"{"type":"price","symbol":"B\u0031","price":2e1}"#,
                Arrival::At(1)
            ),
            Ok(Item::Price(PriceUpdate {
                symbol: "B1".into(),
                price: price("20"),
            }))
        );
    }

    #[test]
    fn every_bad_line_has_its_reason() {
        let ok = r#""id":"x","ts":1,"symbol":"S","side":"buy""#;
        assert_eq!(reason("hello"), Reason::NotJson);
        assert_eq!(reason("[1,2]"), Reason::NotObject);
        assert_eq!(reason(r#"{"id":"x"}"#), Reason::MissingField);
        assert_eq!(reason(&format!("{{{ok}}}")), Reason::MissingField);
        assert_eq!(
            reason(&format!("{{{ok},\"qty\":\"one\"}}")),
            Reason::WrongType
        );
        assert_eq!(reason(&format!("{{{ok},\"qty\":\"-1\"}}")), Reason::BadQty);
        assert_eq!(
            reason(&format!("{{{ok},\"qty\":\"1e999\"}}")),
            Reason::BadQty
        );
        for not_a_number in [
            "", " 1", "1 ", "+1", "01", "1.", ".5", "0x10", "NaN", "Infinity", "1e", "1_000",
        ] {
            assert_eq!(
                reason(&format!("{{{ok},\"qty\":{not_a_number:?}}}")),
                Reason::WrongType,
                "{not_a_number:?}"
            );
        }
        assert_eq!(reason(&format!("{{{ok},\"qty\":-1}}")), Reason::BadQty);
        assert_eq!(reason(&format!("{{{ok},\"qty\":NaN}}")), Reason::NotJson);
        assert_eq!(reason(&format!("{{{ok},\"qty\":1e999}}")), Reason::BadQty);
        assert_eq!(
            reason(&format!("{{{ok},\"qty\":1,\"price\":0}}")),
            Reason::BadPrice
        );
        assert_eq!(
            reason(r#"{"id":"x","ts":1,"symbol":"S","side":"hold","qty":1}"#),
            Reason::BadSide
        );
        assert_eq!(
            reason(r#"{"id":"x","ts":"yesterday","symbol":"S","side":"buy","qty":1}"#),
            Reason::BadTs
        );
        assert_eq!(
            reason(r#"{"id":"","ts":1,"symbol":"S","side":"buy","qty":1}"#),
            Reason::BadId
        );
        assert_eq!(
            reason(r#"{"id":7,"ts":1,"symbol":"S","side":"buy","qty":1}"#),
            Reason::WrongType
        );
        assert_eq!(
            parse(b"{\"id\":\"x\",\xff}").unwrap_err().reason,
            Reason::InvalidUtf8
        );
        assert_eq!(
            reason(&format!("{{{ok},\"qty\":1,\"qty\":2}}")),
            Reason::NotJson
        );
        assert_eq!(
            reason(r#"{"id":"x","ts":1.5,"symbol":"S","side":"buy","qty":1}"#),
            Reason::BadTs
        );
        assert_eq!(
            reason(r#"{"id":"x","ts":"0024-05-01T12:00:00Z","symbol":"S","side":"buy","qty":1}"#),
            Reason::BadTs
        );
        assert_eq!(reason(&format!("{{{ok},\"qty\":null}}")), Reason::WrongType);
        assert_eq!(reason(&format!("{{{ok},\"qty\":[1]}}")), Reason::WrongType);
        assert_eq!(reason("\"just a string\""), Reason::NotObject);
        assert_eq!(reason("  {"), Reason::NotJson);
        assert!(parse(
            format!("{{{ok},\"qty\":1,\"price\":null,\"extra\":{{\"a\":[1]}}}}").as_bytes()
        )
        .is_ok());
        let long = format!("{{\"id\":\"{}\"}}", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(reason(&long), Reason::LineTooLong);
    }

    #[test]
    fn numbers_may_come_quoted() {
        let signal = signal(
            br#"{"id":"q","ts":1,"symbol":"BTC","side":"buy","qty":"0.5","price":"64000.25"}"#,
            Ids::Required,
        );
        assert_eq!(
            (signal.qty, signal.price),
            (quantity("0.5"), Some(price("64000.25")))
        );
        let signal = super::tests::signal(
            br#"{"id":"q","ts":1,"symbol":"BTC","side":"buy","qty":"1E2","price":"2"}"#,
            Ids::Required,
        );
        assert_eq!(
            (signal.qty, signal.price),
            (quantity("100"), Some(price("2")))
        );
    }

    #[test]
    fn a_missing_id_is_derived_from_the_content_where_allowed() {
        let pretty = b"{\n  \"symbol\": \"BTCUSDT\",\n  \"side\": \"buy\",\n  \"qty\": \"0.50\",\n  \"price\": \"64000\",\n  \"ts\": \"2026-11-30T19:30:00Z\"\n}";
        assert_eq!(parse(pretty).unwrap_err().reason, Reason::MissingField);
        let signal = super::tests::signal(pretty, Ids::Derived);
        let again = super::tests::signal(
            br#"{"ts":"2026-11-30T19:30:00Z","qty":0.5,"price":64000.0,"side":"buy","symbol":"BTCUSDT"}"#,
            Ids::Derived,
        );
        assert_eq!(signal.id, again.id, "the same content, however spelled");
        assert!(
            signal.id.starts_with("auto-") && signal.id.len() == 29,
            "{}",
            signal.id
        );
        let other = super::tests::signal(
            br#"{"ts":"2026-11-30T19:30:01Z","qty":0.5,"price":64000.0,"side":"buy","symbol":"BTCUSDT"}"#,
            Ids::Derived,
        );
        assert_ne!(signal.id, other.id);
        // A given id is kept as it is, and still checked.
        let given = super::tests::signal(
            br#"{"id":"mine","ts":1,"symbol":"S","side":"buy","qty":1}"#,
            Ids::Derived,
        );
        assert_eq!(given.id, "mine");
        assert_eq!(
            parse_with(
                br#"{"id":"","ts":1,"symbol":"S","side":"buy","qty":1}"#,
                Ids::Derived
            )
            .unwrap_err()
            .reason,
            Reason::BadId
        );
    }

    /// A TradingView retry across the upgrade must stay a duplicate: the
    /// ids the float release derived (computed by d8cef8f's `derived_id`
    /// from these values as `f64`s) are derived again from the decimals.
    #[test]
    fn derived_ids_are_the_float_releases_for_usual_values() {
        for (symbol, side, qty, at, ts_ms, id) in [
            (
                "BTCUSDT",
                Side::Buy,
                "0.5",
                Some("64000"),
                1796073000000,
                "auto-4f0a94313ecab62ccf72aa6e",
            ),
            (
                "BTC-USD",
                Side::Sell,
                "0.1",
                Some("64250.5"),
                1714564801000,
                "auto-56182106eb5b90123754eafd",
            ),
            (
                "ETH-USD",
                Side::Buy,
                "2",
                Some("3100.75"),
                1714564802000,
                "auto-02111c586d5aa7cc6d0de5cf",
            ),
            (
                "SOL-USD",
                Side::Buy,
                "10",
                None,
                1714564804000,
                "auto-1843a2a1b93480b4c10146b7",
            ),
            (
                "DOGE-USD",
                Side::Buy,
                "1000",
                Some("0.1234"),
                1714564815000,
                "auto-628bca22f92aefd44800275c",
            ),
            (
                "ETH-USD",
                Side::Buy,
                "0.001",
                Some("3333.33"),
                1714564814000,
                "auto-e18e1951e574aaa6a6802209",
            ),
            (
                "BTC",
                Side::Buy,
                "0.00012345",
                Some("65010.75"),
                1714564813000,
                "auto-d5435b29df2d17e2d7deadf8",
            ),
            (
                "X",
                Side::Sell,
                "0.0000001",
                Some("0.0000001"),
                1,
                "auto-2957799f14b1fc759287ca43",
            ),
            (
                "AAPL",
                Side::Buy,
                "150",
                Some("189.99"),
                1764532800000,
                "auto-1f4cab1f0dc6e7f20570e344",
            ),
        ] {
            assert_eq!(
                derived_id(symbol, side, quantity(qty), at.map(price), ts_ms),
                id,
                "{symbol}"
            );
        }
        // Spelled as TradingView's templates do: quoted, trailing zeros.
        let line = br#"{"symbol":"BTCUSDT","side":"buy","qty":"0.50","price":"64000.00","ts":1796073000000}"#;
        assert_eq!(
            signal(line, Ids::Derived).id,
            "auto-4f0a94313ecab62ccf72aa6e"
        );
    }

    #[test]
    fn a_signal_with_an_id_and_no_ts_is_of_its_arrival() {
        let line = br#"{"id":"n","symbol":"S","side":"buy","qty":1}"#;
        for ids in [Ids::Required, Ids::Derived] {
            let Ok(Item::Signal(signal)) = parse_at(line, ids, Arrival::At(42)) else {
                panic!("not a signal");
            };
            assert_eq!((signal.id.as_ref(), signal.ts_ms), ("n", 42));
        }
        let before = Arrival::Now.ms();
        let signal = signal(line, Ids::Required);
        assert!((before..=Arrival::Now.ms()).contains(&signal.ts_ms));
        // A derived id hashes the ts, so a signal without an id needs one.
        let reject = parse_at(
            br#"{"symbol":"S","side":"buy","qty":1}"#,
            Ids::Derived,
            Arrival::At(42),
        )
        .unwrap_err();
        assert_eq!(reject.reason, Reason::MissingField);
        assert!(reject.detail.contains("\"ts\""), "{}", reject.detail);
        // Present, a ts is checked as ever: null is not absent.
        let reject = parse_at(
            br#"{"id":"n","ts":null,"symbol":"S","side":"buy","qty":1}"#,
            Ids::Required,
            Arrival::At(42),
        )
        .unwrap_err();
        assert_eq!(reject.reason, Reason::WrongType);
    }

    proptest::proptest! {
        /// Whichever fields a signal leaves out, the scanner and the
        /// reference read it alike, and the arrival stands in for a `ts`
        /// only beside an `id`.
        #[test]
        fn any_fields_left_out_read_alike(kept in proptest::collection::vec(proptest::prelude::any::<bool>(), 7), arrival in 0i64..4_000_000_000_000) {
            let members = [
                r#""id":"a1""#,
                r#""ts":"2024-05-01T12:00:00Z""#,
                r#""symbol":"BTC""#,
                r#""side":"sell""#,
                r#""qty":"0.5""#,
                r#""price":64000"#,
                r#""source":"tv""#,
            ];
            let chosen: Vec<&str> = members.iter().zip(&kept).filter(|(_, kept)| **kept).map(|(member, _)| *member).collect();
            let line = format!("{{{}}}", chosen.join(","));
            let arrival = Arrival::At(arrival);
            let parsed = parse_at(line.as_bytes(), Ids::Required, arrival);
            proptest::prop_assert_eq!(&parsed, &parse_general(line.as_bytes(), arrival));
            if let Ok(Item::Signal(signal)) = parsed {
                let expected = if kept[1] { 1_714_564_800_000 } else { arrival.ms() };
                proptest::prop_assert_eq!(signal.ts_ms, expected);
            }
        }

        /// A quoted number is read as the same number unquoted.
        #[test]
        fn a_quoted_number_reads_as_the_number(number in proptest::num::f64::POSITIVE | proptest::num::f64::NORMAL, exponent in proptest::prelude::any::<bool>()) {
            let text = if exponent { format!("{number:e}") } else { number.to_string() };
            let quoted = format!(r#"{{"id":"n","ts":1,"symbol":"S","side":"buy","qty":"{text}"}}"#);
            let bare = format!(r#"{{"id":"n","ts":1,"symbol":"S","side":"buy","qty":{text}}}"#);
            let qty = |line: String| match parse(line.as_bytes()) {
                Ok(Item::Signal(signal)) => Ok(signal.qty),
                Ok(Item::Price(_)) => Err(None),
                Err(reject) => Err(Some(reject.reason)),
            };
            let (quoted, bare) = (qty(quoted), qty(bare));
            if bare != Err(Some(Reason::NotJson)) {
                proptest::prop_assert_eq!(quoted, bare);
            }
        }
    }

    #[test]
    fn a_reject_keeps_the_id_when_there_is_one() {
        let reject = parse(br#"{"id":"k","ts":1,"symbol":"S","side":"buy","qty":0}"#).unwrap_err();
        assert_eq!(reject.id.as_deref(), Some("k"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_a_damaged_signal(cut in 0usize..120, junk in "[\\PC]{0,16}") {
            let valid = r#"{"id":"a1","ts":"2024-05-01T12:00:00Z","symbol":"BTC","side":"buy","qty":0.5,"price":64000}"#;
            let mut line = valid.as_bytes()[..cut.min(valid.len())].to_vec();
            line.extend_from_slice(junk.as_bytes());
            line.extend_from_slice(&valid.as_bytes()[cut.min(valid.len())..]);
            if let Err(reject) = parse(&line) {
                proptest::prop_assert!(!reject.detail.is_empty());
            }
        }
    }

    #[test]
    fn labels_round_trip() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_label(reason.label()), Some(reason));
            assert_eq!(Reason::ALL[reason.index()], reason);
        }
    }
}
