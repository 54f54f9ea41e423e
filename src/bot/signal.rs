//! The signal format: one JSON object a line, and the precise reason a line
//! is refused. Parsing never panics and never trusts the input's shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Longest signal line accepted; longer ones are rejected unread.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Longest `id`, `symbol` or `source`: they end up in journals and metric labels.
const MAX_FIELD_CHARS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    pub id: String,
    /// Milliseconds since the Unix epoch, whichever form `ts` came in.
    pub ts_ms: i64,
    pub symbol: String,
    pub side: Side,
    pub qty: f64,
    pub price: Option<f64>,
    pub source: Option<String>,
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
}

impl Reason {
    pub const ALL: [Reason; 17] = [
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
        }
    }

    pub fn from_label(label: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.label() == label)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A refusal: the reason, a sentence for the journal and the operator, and
/// the signal id when the line got far enough to have one.
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    pub reason: Reason,
    pub detail: String,
    pub id: Option<String>,
}

impl Reject {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Reject {
            reason,
            detail: detail.into(),
            id: None,
        }
    }
}

/// Parses one line (without its newline; a trailing `\r` is tolerated).
pub fn parse(line: &[u8]) -> Result<Signal, Reject> {
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
    let text = std::str::from_utf8(line).map_err(|error| {
        Reject::new(
            Reason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", error.valid_up_to()),
        )
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|error| Reject::new(Reason::NotJson, format!("not JSON: {error}")))?;
    let Value::Object(object) = value else {
        return Err(Reject::new(Reason::NotObject, "not a JSON object"));
    };
    let id = name_field(&object, "id", Reason::BadId)?;
    from_object(&object).map_err(|reject| Reject {
        id: Some(id.clone()),
        ..reject
    })
}

fn from_object(object: &Map<String, Value>) -> Result<Signal, Reject> {
    let id = name_field(object, "id", Reason::BadId)?;
    let ts_ms = timestamp(required(object, "ts")?)?;
    let symbol = name_field(object, "symbol", Reason::BadSymbol)?;
    let side = match required(object, "side")? {
        Value::String(side) if side == "buy" => Side::Buy,
        Value::String(side) if side == "sell" => Side::Sell,
        Value::String(side) => {
            return Err(Reject::new(
                Reason::BadSide,
                format!("side {:?} is neither \"buy\" nor \"sell\"", clip(side)),
            ))
        }
        _ => return Err(wrong_type("side", "a string")),
    };
    let qty = positive(required(object, "qty")?, "qty", Reason::BadQty)?;
    let price = match object.get("price") {
        None | Some(Value::Null) => None,
        Some(value) => Some(positive(value, "price", Reason::BadPrice)?),
    };
    let source = match object.get("source") {
        None | Some(Value::Null) => None,
        Some(_) => Some(name_field(object, "source", Reason::BadSource)?),
    };
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

fn required<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a Value, Reject> {
    object
        .get(field)
        .ok_or_else(|| Reject::new(Reason::MissingField, format!("missing field {field:?}")))
}

fn wrong_type(field: &str, expected: &str) -> Reject {
    Reject::new(
        Reason::WrongType,
        format!("field {field:?} must be {expected}"),
    )
}

/// A non-empty printable string of bounded length.
fn name_field(object: &Map<String, Value>, field: &str, bad: Reason) -> Result<String, Reject> {
    let Value::String(text) = required(object, field)? else {
        return Err(wrong_type(field, "a string"));
    };
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
    Ok(text.clone())
}

fn positive(value: &Value, field: &str, bad: Reason) -> Result<f64, Reject> {
    let Value::Number(number) = value else {
        return Err(wrong_type(field, "a number"));
    };
    match number.as_f64() {
        Some(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(Reject::new(
            bad,
            format!("{field:?} must be a finite number above zero, not {number}"),
        )),
    }
}

fn timestamp(value: &Value) -> Result<i64, Reject> {
    match value {
        Value::Number(number) => number.as_i64().filter(|ms| *ms >= 0).ok_or_else(|| {
            Reject::new(
                Reason::BadTs,
                format!("\"ts\" {number} is not a non-negative whole number of epoch milliseconds"),
            )
        }),
        Value::String(text) => OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
            .ok_or_else(|| {
                Reject::new(
                    Reason::BadTs,
                    format!("\"ts\" {:?} is not an RFC 3339 timestamp", clip(text)),
                )
            }),
        _ => Err(wrong_type("ts", "an RFC 3339 string or epoch milliseconds")),
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
    }

    #[test]
    fn every_bad_line_has_its_reason() {
        let ok = r#""id":"x","ts":1,"symbol":"S","side":"buy""#;
        assert_eq!(reason("hello"), Reason::NotJson);
        assert_eq!(reason("[1,2]"), Reason::NotObject);
        assert_eq!(reason(r#"{"id":"x"}"#), Reason::MissingField);
        assert_eq!(reason(&format!("{{{ok}}}")), Reason::MissingField);
        assert_eq!(
            reason(&format!("{{{ok},\"qty\":\"1\"}}")),
            Reason::WrongType
        );
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
        let long = format!("{{\"id\":\"{}\"}}", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(reason(&long), Reason::LineTooLong);
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
