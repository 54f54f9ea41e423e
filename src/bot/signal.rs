//! The signal format: one JSON object a line, and the precise reason a line
//! is refused. Parsing never panics and never trusts the input's shape.

mod scan;

use std::borrow::Cow;
use std::marker::PhantomData;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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
    pub qty: f64,
    pub price: Option<f64>,
    pub source: Option<Cow<'a, str>>,
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
    pub const ALL: [Reason; 22] = [
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

    /// A reject by one of the risk limits: what an operator is alerted to.
    pub(crate) fn is_risk_limit(self) -> bool {
        matches!(
            self,
            Reason::MaxPositionQty | Reason::MaxOrderNotional | Reason::MaxOrdersPerMinute
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
pub fn parse(line: &[u8]) -> Result<Signal<'_>, Reject> {
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
            Arrival::Now => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as i64),
            Arrival::At(ms) => ms,
        }
    }
}

/// [`parse`], with the rule for a missing `id`.
pub fn parse_with(line: &[u8], ids: Ids) -> Result<Signal<'_>, Reject> {
    parse_at(line, ids, Arrival::Now)
}

/// [`parse_with`], arrived at `arrival`.
pub fn parse_at(line: &[u8], ids: Ids, arrival: Arrival) -> Result<Signal<'_>, Reject> {
    let text = text_of(line)?;
    let fields = match scan::fields(text) {
        Some(fields) => fields,
        None => general_fields(text)?,
    };
    from_fields(fields, ids, arrival)
}

/// [`parse_at`] without the fast scanner, ids required: every line through
/// serde_json. The reference the scanner is tested and fuzzed against.
pub fn parse_general(line: &[u8], arrival: Arrival) -> Result<Signal<'_>, Reject> {
    from_fields(general_fields(text_of(line)?)?, Ids::Required, arrival)
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
/// this rather than a `serde_json::Value` tree borrows the strings from the
/// line and skips most allocations; unknown fields are ignored, a repeated
/// one is refused as not JSON. A feed's mapping fills it from the message
/// it maps, so a mapped signal is checked as a line is.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub(crate) struct Fields<'a> {
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
    Int(i64),
    Float(f64),
    /// A boolean, an array or an object.
    Other,
}

impl<'a> Raw<'a> {
    /// A JSON number, from its own text (a mapping found it as such): the
    /// one place a mapped number becomes what the checks read.
    pub(crate) fn number(text: &'a str) -> Raw<'a> {
        serde_json::from_str(text).unwrap_or(Raw::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor(PhantomData))
    }
}

struct RawVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for RawVisitor<'a> {
    type Value = Raw<'a>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Raw<'a>, E> {
        Ok(Raw::Str(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Raw<'a>, E> {
        Ok(Raw::Str(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Raw<'a>, E> {
        Ok(Raw::Str(Cow::Owned(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Raw<'a>, E> {
        Ok(Raw::Int(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Raw<'a>, E> {
        Ok(i64::try_from(value).map_or(Raw::Float(value as f64), Raw::Int))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Raw<'a>, E> {
        Ok(Raw::Float(value))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Raw<'a>, E> {
        Ok(Raw::Other)
    }

    fn visit_unit<E>(self) -> Result<Raw<'a>, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw<'a>, E> {
        Ok(Raw::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Raw<'a>, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Raw<'a>, A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Other)
    }
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
/// hashed by value (`"0.50"` and `0.5` are one signal), and nothing random
/// goes in, so the id is the same after a restart.
pub fn derived_id(symbol: &str, side: Side, qty: f64, price: Option<f64>, ts_ms: i64) -> String {
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

fn positive(value: &Raw<'_>, field: &str, bad: Reason) -> Result<f64, Reject> {
    let number = match value {
        Raw::Int(number) => *number as f64,
        Raw::Float(number) => *number,
        // TradingView's templates quote their placeholders:
        // "qty": "{{strategy.order.contracts}}" arrives as "qty": "0.5".
        Raw::Str(text) => numeric_string(text).ok_or_else(|| {
            Reject::new(
                Reason::WrongType,
                format!(
                    "field {field:?} must be a number or a string holding one, not {:?}",
                    clip(text)
                ),
            )
        })?,
        other => return Err(not_a(other, field, "a number")),
    };
    if number.is_finite() && number > 0.0 {
        Ok(number)
    } else {
        Err(Reject::new(
            bad,
            format!("{field:?} must be a finite number above zero, not {number}"),
        ))
    }
}

/// The value of a string that is exactly a JSON number (`"0.5"`, `"2"`,
/// `"1e3"`, `"-1"`): no spaces, no sign but a leading minus, no `NaN` or
/// `Infinity`. Infinity itself comes out of `"1e999"`, and the caller
/// refuses it as it refuses any non-finite value.
fn numeric_string(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    };
    let whole = digits(&mut at);
    if whole == 0 || (whole > 1 && bytes[at - whole] == b'0') {
        return None;
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return None;
        }
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return None;
        }
    }
    (at == bytes.len()).then(|| text.parse().ok()).flatten()
}

fn timestamp(value: &Raw<'_>) -> Result<i64, Reject> {
    match value {
        Raw::Int(ms) if *ms >= 0 => Ok(*ms),
        Raw::Int(_) | Raw::Float(_) => Err(Reject::new(
            Reason::BadTs,
            "\"ts\" must be a non-negative whole number of epoch milliseconds",
        )),
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

/// Keeps echoed input short in journals and logs.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> Reason {
        parse(line.as_bytes()).unwrap_err().reason
    }

    #[test]
    fn parses_a_full_signal() {
        let signal = parse(br#"{"id":"a1","ts":"2024-05-01T12:00:00.250+02:00","symbol":"BTC-USD","side":"buy","qty":0.5,"price":64000,"source":"tv"}"#).unwrap();
        assert_eq!(signal.id, "a1");
        assert_eq!(signal.ts_ms, 1_714_557_600_250);
        assert_eq!(signal.side, Side::Buy);
        assert_eq!(signal.qty, 0.5);
        assert_eq!(signal.price, Some(64000.0));
        assert_eq!(signal.source.as_deref(), Some("tv"));
        let signal =
            parse(br#"{"id":"a2","ts":1714557600250,"symbol":"ETH","side":"sell","qty":2}"#)
                .unwrap();
        assert_eq!(signal.ts_ms, 1_714_557_600_250);
        assert_eq!(signal.price, None);
        let signal = parse(
            b"\xef\xbb\xbf{\"id\":\"a3\",\"ts\":1,\"symbol\":\"E\",\"side\":\"buy\",\"qty\":1}\r",
        )
        .unwrap();
        assert_eq!(signal.id, "a3");
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
        assert_eq!(reason(&format!("{{{ok},\"qty\":1e999}}")), Reason::NotJson);
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
        let signal = parse(
            br#"{"id":"q","ts":1,"symbol":"BTC","side":"buy","qty":"0.5","price":"64000.25"}"#,
        )
        .unwrap();
        assert_eq!((signal.qty, signal.price), (0.5, Some(64000.25)));
        let signal =
            parse(br#"{"id":"q","ts":1,"symbol":"BTC","side":"buy","qty":"1E2","price":"2"}"#)
                .unwrap();
        assert_eq!((signal.qty, signal.price), (100.0, Some(2.0)));
    }

    #[test]
    fn a_missing_id_is_derived_from_the_content_where_allowed() {
        let pretty = b"{\n  \"symbol\": \"BTCUSDT\",\n  \"side\": \"buy\",\n  \"qty\": \"0.50\",\n  \"price\": \"64000\",\n  \"ts\": \"2026-11-30T19:30:00Z\"\n}";
        assert_eq!(parse(pretty).unwrap_err().reason, Reason::MissingField);
        let signal = parse_with(pretty, Ids::Derived).unwrap();
        let again = parse_with(
            br#"{"ts":"2026-11-30T19:30:00Z","qty":0.5,"price":64000.0,"side":"buy","symbol":"BTCUSDT"}"#,
            Ids::Derived,
        )
        .unwrap();
        assert_eq!(signal.id, again.id, "the same content, however spelled");
        assert!(
            signal.id.starts_with("auto-") && signal.id.len() == 29,
            "{}",
            signal.id
        );
        let other = parse_with(
            br#"{"ts":"2026-11-30T19:30:01Z","qty":0.5,"price":64000.0,"side":"buy","symbol":"BTCUSDT"}"#,
            Ids::Derived,
        )
        .unwrap();
        assert_ne!(signal.id, other.id);
        // A given id is kept as it is, and still checked.
        let given = parse_with(
            br#"{"id":"mine","ts":1,"symbol":"S","side":"buy","qty":1}"#,
            Ids::Derived,
        )
        .unwrap();
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

    #[test]
    fn a_signal_with_an_id_and_no_ts_is_of_its_arrival() {
        let line = br#"{"id":"n","symbol":"S","side":"buy","qty":1}"#;
        for ids in [Ids::Required, Ids::Derived] {
            let signal = parse_at(line, ids, Arrival::At(42)).unwrap();
            assert_eq!((signal.id.as_ref(), signal.ts_ms), ("n", 42));
        }
        let before = Arrival::Now.ms();
        let signal = parse(line).unwrap();
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
            if let Ok(signal) = parsed {
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
            let quoted = parse(quoted.as_bytes()).map(|signal| signal.qty).map_err(|reject| reject.reason);
            let bare = parse(bare.as_bytes()).map(|signal| signal.qty).map_err(|reject| reject.reason);
            if bare.is_ok() {
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
