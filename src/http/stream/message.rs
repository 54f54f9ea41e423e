//! The JSON the read API and the stream speak: one shape per kind, the
//! same fields in an API item and in a stream message (which adds `type`);
//! a fill's is `tradingbot journal fills --json`'s too ([`FillItem`]).

use serde::Serialize;

use crate::bot::ledger::query::FillItem;
use crate::bot::ledger::record::Record;

/// The kinds of stream message; `types=` filters by these names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fill,
    Reject,
    Duplicate,
    Health,
    Source,
    Start,
    Stop,
    Dropped,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Fill,
        Kind::Reject,
        Kind::Duplicate,
        Kind::Health,
        Kind::Source,
        Kind::Start,
        Kind::Stop,
        Kind::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fill => "fill",
            Kind::Reject => "reject",
            Kind::Duplicate => "duplicate",
            Kind::Health => "health",
            Kind::Source => "source",
            Kind::Start => "start",
            Kind::Stop => "stop",
            Kind::Dropped => "dropped",
        }
    }
}

/// A set of kinds: what a client asked for with `types=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(u16);

impl Kinds {
    pub const ALL: Kinds = Kinds(u16::MAX);

    /// `fill,reject,…`; an unknown name is an error naming the known ones.
    pub fn parse(list: &str) -> Result<Kinds, &'static str> {
        let mut kinds = Kinds(0);
        for name in list.split(',').filter(|name| !name.is_empty()) {
            let kind = Kind::ALL
                .into_iter()
                .find(|kind| kind.as_str() == name)
                .ok_or(
                "fill, reject, duplicate, health, source, start, stop or dropped, comma separated",
            )?;
            kinds.0 |= 1 << kind as u16;
        }
        Ok(kinds)
    }

    pub fn has(self, kind: Kind) -> bool {
        self.0 & (1 << kind as u16) != 0
    }

    /// Whether fills or rejects, the journal's kinds, are wanted.
    pub fn any_journaled(self) -> bool {
        self.has(Kind::Fill) || self.has(Kind::Reject)
    }
}

#[derive(Serialize)]
struct RejectItem<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    seq: u64,
    id: Option<&'a str>,
    at: i64,
    reason: &'a str,
    detail: &'a str,
    src: &'a str,
}

/// A fill or reject record as an API item (`typed`: as a stream message);
/// `None` for a checkpoint, which is neither.
pub fn record_json(seq: u64, record: &Record<'_>, typed: bool) -> Option<(Kind, String)> {
    let json = match record {
        Record::Fill { .. } => {
            let mut item = FillItem::of(seq, record)?;
            item.kind = typed.then_some("fill");
            (Kind::Fill, serde_json::to_string(&item))
        }
        Record::Reject {
            id,
            src,
            at,
            reason,
            detail,
            ..
        } => (
            Kind::Reject,
            serde_json::to_string(&RejectItem {
                kind: typed.then_some("reject"),
                seq,
                id: id.as_deref(),
                at: *at,
                reason,
                detail,
                src,
            }),
        ),
        Record::Ckpt { .. } => return None,
    };
    Some((json.0, json.1.unwrap_or_default()))
}

/// A stream message that is not a journal record: `{"type", "seq", …fields}`.
/// `fields` is an object; `type` and `seq` come first, as in every message.
pub fn event_json(kind: Kind, seq: u64, fields: serde_json::Value) -> String {
    let head = format!("{{\"type\":\"{}\",\"seq\":{seq}", kind.as_str());
    let fields = fields.to_string();
    match fields.strip_prefix('{').filter(|rest| *rest != "}") {
        Some(rest) => format!("{head},{rest}"),
        None => format!("{head}}}"),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::bot::signal::Side;

    #[test]
    fn kinds_parse_and_filter() {
        let kinds = Kinds::parse("fill,health").unwrap();
        assert!(kinds.has(Kind::Fill) && kinds.has(Kind::Health));
        assert!(!kinds.has(Kind::Reject) && kinds.any_journaled());
        assert!(Kinds::parse("fill,bogus").is_err());
        assert!(!Kinds::parse("").unwrap().any_journaled());
        assert!(Kinds::ALL.has(Kind::Dropped));
    }

    #[test]
    fn a_record_reads_the_same_in_the_api_and_the_stream() {
        let fill = Record::Fill {
            id: Cow::Borrowed("a1"),
            src: Cow::Borrowed("webhook"),
            ts: 1,
            at: 2,
            symbol: Cow::Borrowed("BTC"),
            side: Side::Sell,
            qty: "0.5".parse().unwrap(),
            price: "64415.13".parse().unwrap(),
            asked: Some("64422.58".parse().unwrap()),
            fee: Some("0.03220757".parse().unwrap()),
            places: crate::bot::money::Rounding::DEFAULT,
            source: None,
        };
        let (kind, item) = record_json(7, &fill, false).unwrap();
        assert_eq!(kind, Kind::Fill);
        assert_eq!(
            item,
            r#"{"seq":7,"id":"a1","ts":1,"at":2,"symbol":"BTC","side":"sell","qty":"0.5","price":"64415.13","asked":"64422.58","fee":"0.03220757","src":"webhook"}"#
        );
        let (_, message) = record_json(7, &fill, true).unwrap();
        assert_eq!(message, format!("{{\"type\":\"fill\",{}", &item[1..]));
        let reject = Record::Reject {
            id: None,
            src: Cow::Borrowed("stdin"),
            ts: None,
            at: 3,
            reason: "not_json".into(),
            detail: "not JSON".into(),
            line: "the raw line stays in the journal".into(),
        };
        let (kind, item) = record_json(8, &reject, false).unwrap();
        assert_eq!(kind, Kind::Reject);
        assert_eq!(
            item,
            r#"{"seq":8,"id":null,"at":3,"reason":"not_json","detail":"not JSON","src":"stdin"}"#
        );
        assert_eq!(
            event_json(
                Kind::Health,
                9,
                serde_json::json!({"status": "healthy", "reasons": []})
            ),
            r#"{"type":"health","seq":9,"reasons":[],"status":"healthy"}"#
        );
        assert_eq!(
            event_json(Kind::Dropped, 9, serde_json::json!({})),
            r#"{"type":"dropped","seq":9}"#
        );
    }
}
