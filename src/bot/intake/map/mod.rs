//! Mapping a feed's own JSON to signals (`[source.map]`). What a source
//! receives (a WebSocket frame, a webhook body, a polled page) holds one
//! message or an array of them, or `items` points to them; a message that
//! matches `when` has its fields found by JSON Pointers (or a regular
//! expression's named groups) and is then checked exactly as a signal line
//! is, so a mapped signal and a line obey the same rules.
//!
//! Each message found comes out as a [`Mapped`]: a signal, or the reject
//! that says why it is not one (`unmapped: /payload/size (qty) missing`),
//! both journaled as a line's would be; ignored (it did not match `when`);
//! or garbage (not JSON, or neither object nor array).

mod pointer;
mod settings;

use std::borrow::Cow;

use regex::{CaptureLocations, Regex};
use serde_json::value::RawValue;

use crate::bot::signal::{self, Arrival, Fields, Ids, Item, Raw, Reason, Reject, Side, Signal};
pub(crate) use pointer::Pointer;
use pointer::{Finder, Found, MAX_POINTERS};
pub(crate) use settings::{toml_string, Expected, FieldSpec, MapSettings, TsUnit, JOIN};

/// What became of one message.
#[derive(Debug, PartialEq)]
pub enum Mapped<'m> {
    /// A message to decide: its item (a signal; in the bot's own format, a
    /// price update too), or why it is not one. `raw` is the
    /// message's own text, for the journal.
    Message {
        raw: &'m [u8],
        signal: Result<Item<'m>, Reject>,
    },
    /// Not a message to map: counted, and dropped.
    Ignored { raw: &'m [u8], why: Unmatched },
    /// Not JSON, or JSON that is neither an object nor an array.
    Garbage { raw: &'m [u8], reject: Reject },
}

/// Why a message was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// The `when` pair at this index (in pointer order) did not match.
    When(usize),
    /// No `items` in it.
    NoItems,
    /// `text`'s regular expression did not match.
    Text,
}

/// A mistake in `[source.map]`: the key at fault (`map.qty`) and what is
/// wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MapError {
    pub(crate) key: String,
    pub(crate) message: String,
}

/// A mapping, ready to map messages.
#[derive(Debug)]
pub struct Map {
    settings: MapSettings,
    /// `items`, found in its own pass (the messages are inside what it finds).
    items: Option<Finder>,
    finder: Finder,
    when: Vec<(usize, Expected)>,
    text: Option<Text>,
    id: Option<Field>,
    symbol: Field,
    side: Field,
    qty: Field,
    price: Option<Field>,
    ts: Option<Field>,
}

#[derive(Debug)]
struct Text {
    slot: usize,
    from: Pointer,
    regex: Regex,
}

/// One field, compiled: its name (for a reject's detail) and where it is.
#[derive(Debug)]
struct Field {
    name: &'static str,
    at: Place,
}

#[derive(Debug)]
enum Place {
    /// By slot; several are joined.
    Pointers(Vec<(usize, Pointer)>),
    /// The index of `text`'s group, and its name.
    Group(usize, String),
}

/// A field's value as found, before its kind is checked.
enum Value<'m, 'p> {
    /// Its JSON text.
    Json(&'m str, &'p Pointer),
    /// From a group, or joined from several values.
    Text(Cow<'m, str>),
    /// An optional group that took no part in the match.
    Absent,
}

impl Map {
    pub(crate) fn new(settings: MapSettings) -> Result<Map, MapError> {
        let mut finder = Finder::default();
        let mut add = |key: &str, pointer: &Pointer| {
            finder.add(pointer).ok_or_else(|| MapError {
                key: key.to_owned(),
                message: format!("a mapping holds at most {MAX_POINTERS} pointers"),
            })
        };
        let mut when = Vec::new();
        for (pointer, expected) in &settings.when {
            when.push((add("map.when", pointer)?, expected.clone()));
        }
        let text = match &settings.text {
            Some(text) => Some(Text {
                slot: add("map.text.from", &text.from)?,
                from: text.from.clone(),
                regex: text.regex.clone(),
            }),
            None => None,
        };
        let mut field = |name: &'static str, spec: &FieldSpec| -> Result<Field, MapError> {
            let key = format!("map.{name}");
            let from = match spec {
                FieldSpec::Pointer(pointer) => {
                    Place::Pointers(vec![(add(&key, pointer)?, pointer.clone())])
                }
                FieldSpec::Joined(pointers) if matches!(name, "id" | "symbol") => Place::Pointers(
                    pointers
                        .iter()
                        .map(|pointer| Ok((add(&key, pointer)?, pointer.clone())))
                        .collect::<Result<_, MapError>>()?,
                ),
                FieldSpec::Joined(_) => {
                    return Err(MapError {
                        key,
                        message: "only id and symbol may join several pointers".into(),
                    })
                }
                FieldSpec::Group(group) => {
                    Place::Group(group_index(&text, group, &key)?, group.clone())
                }
            };
            Ok(Field { name, at: from })
        };
        let id = settings
            .id
            .as_ref()
            .map(|spec| field("id", spec))
            .transpose()?;
        let symbol = field("symbol", &settings.symbol)?;
        let side = field("side", &settings.side)?;
        let qty = field("qty", &settings.qty)?;
        let price = settings
            .price
            .as_ref()
            .map(|spec| field("price", spec))
            .transpose()?;
        let ts = settings
            .ts
            .as_ref()
            .map(|spec| field("ts", spec))
            .transpose()?;
        let mut words: Vec<&str> = settings.side_values.keys().map(String::as_str).collect();
        words.sort_by_key(|word| word.to_ascii_lowercase());
        if let Some(pair) = words
            .windows(2)
            .find(|pair| pair[0].eq_ignore_ascii_case(pair[1]))
        {
            return Err(MapError {
                key: "map.side_values".into(),
                message: format!(
                    "{:?} and {:?} are one word (case is ignored)",
                    pair[0], pair[1]
                ),
            });
        }
        let items = settings.items.as_ref().map(|items| {
            let mut finder = Finder::default();
            finder.add(items);
            finder
        });
        Ok(Map {
            items,
            finder,
            when,
            text,
            id,
            symbol,
            side,
            qty,
            price,
            ts,
            settings,
        })
    }

    /// A mapping from the text of a `[source.map]` table (the tests' and
    /// the benchmarks' way to write one).
    pub fn from_toml(text: &str) -> Result<Map, String> {
        let settings = toml::from_str(text).map_err(|error| error.to_string())?;
        Map::new(settings).map_err(|error| format!("{}: {}", error.key, error.message))
    }

    pub(crate) fn settings(&self) -> &MapSettings {
        &self.settings
    }

    /// Why a message was ignored, in words.
    pub fn explain(&self, why: Unmatched) -> String {
        match why {
            Unmatched::When(index) => match self.settings.when.iter().nth(index) {
                Some((pointer, expected)) => format!("{pointer} is not {expected} (when)"),
                None => "did not match when".to_owned(),
            },
            Unmatched::NoItems => match &self.settings.items {
                Some(items) => format!("no {items} (items)"),
                None => "no items".to_owned(),
            },
            Unmatched::Text => match &self.text {
                Some(text) => format!("{} does not match text.regex", text.from),
                None => "text.regex did not match".to_owned(),
            },
        }
    }

    /// Maps what was received (`frame`), handing each message's outcome to
    /// `each`, in order.
    pub fn map<'m>(&self, frame: &'m [u8], each: &mut impl FnMut(Mapped<'m>)) {
        if let Err(reject) = messages(frame, |message| self.message(message, &mut *each)) {
            each(Mapped::Garbage { raw: frame, reject });
        }
    }

    fn message<'m>(&self, message: &'m str, each: &mut impl FnMut(Mapped<'m>)) {
        let Some(items) = &self.items else {
            return each(self.item(message));
        };
        let mut found: Found<'m> = [None; MAX_POINTERS];
        if let Err(error) = items.find(message, &mut found) {
            return each(garbage(message, &error));
        }
        let raw = message.as_bytes();
        match found[0] {
            None => each(Mapped::Ignored {
                raw,
                why: Unmatched::NoItems,
            }),
            Some(value) if value.starts_with('[') => {
                // Already checked by the walk.
                let list: Vec<&RawValue> = serde_json::from_str(value).unwrap_or_default();
                for item in list {
                    each(self.item(item.get()));
                }
            }
            Some(value) if value.starts_with('{') => each(self.item(value)),
            Some(value) => {
                let items = self.settings.items.as_ref().map_or("", Pointer::as_str);
                each(Mapped::Message {
                    raw,
                    signal: Err(Reject::new(
                        Reason::Unmapped,
                        format!(
                            "{items} (items) is {}, not an array or an object",
                            kind(value)
                        ),
                    )),
                });
            }
        }
    }

    fn item<'m>(&self, item: &'m str) -> Mapped<'m> {
        let raw = item.as_bytes();
        if !item.trim_start().starts_with('{') {
            return Mapped::Garbage {
                raw,
                reject: Reject::new(Reason::NotObject, "a message must be a JSON object"),
            };
        }
        let mut found: Found<'m> = [None; MAX_POINTERS];
        if let Err(error) = self.finder.find(item, &mut found) {
            return garbage(item, &error);
        }
        for (index, (slot, expected)) in self.when.iter().enumerate() {
            if !found[*slot].is_some_and(|value| matches(value, expected)) {
                return Mapped::Ignored {
                    raw,
                    why: Unmatched::When(index),
                };
            }
        }
        let groups = match &self.text {
            None => None,
            Some(text) => match self.groups(text, &found) {
                Ok(Some(groups)) => Some(groups),
                Ok(None) => {
                    return Mapped::Ignored {
                        raw,
                        why: Unmatched::Text,
                    }
                }
                Err(reject) => {
                    return Mapped::Message {
                        raw,
                        signal: Err(reject),
                    }
                }
            },
        };
        let signal = self.signal(&found, groups.as_ref()).map(Item::Signal);
        Mapped::Message { raw, signal }
    }

    /// The text's groups, or `None` when its regex does not match.
    fn groups<'m>(&self, text: &Text, found: &Found<'m>) -> Result<Option<Groups<'m>>, Reject> {
        let value = found[text.slot].ok_or_else(|| missing(&text.from, "text"))?;
        let string =
            string(value).ok_or_else(|| wrong_type(value, &text.from, "text", "a string"))?;
        let mut locations = text.regex.capture_locations();
        if text.regex.captures_read(&mut locations, &string).is_none() {
            return Ok(None);
        }
        Ok(Some(Groups {
            text: string,
            locations,
        }))
    }

    fn signal<'m>(
        &self,
        found: &Found<'m>,
        groups: Option<&Groups<'m>>,
    ) -> Result<Signal<'m>, Reject> {
        let id = match &self.id {
            Some(field) => self.name(field, found, groups)?,
            None => Raw::Absent,
        };
        let with_id = |reject: Reject| Reject {
            id: match &id {
                Raw::Str(id) => Some(id.clone().into_owned()),
                _ => None,
            },
            ..reject
        };
        let symbol = self.name(&self.symbol, found, groups).map_err(with_id)?;
        let side = self.side(found, groups).map_err(with_id)?;
        let qty = self.number(&self.qty, found, groups).map_err(with_id)?;
        let price = match &self.price {
            Some(field) => self.number(field, found, groups).map_err(with_id)?,
            None => Raw::Absent,
        };
        let ts = match &self.ts {
            Some(field) => self.ts(field, found, groups).map_err(with_id)?,
            None => Raw::Absent,
        };
        let ids = if self.id.is_some() {
            Ids::Required
        } else {
            Ids::Derived
        };
        let fields = Fields {
            id,
            ts,
            symbol,
            side,
            qty,
            price,
            ..Fields::default()
        };
        signal::from_fields(fields, ids, Arrival::Now)
    }

    fn value<'m, 'p>(
        &self,
        field: &'p Field,
        found: &Found<'m>,
        groups: Option<&Groups<'m>>,
    ) -> Result<Value<'m, 'p>, Reject> {
        match &field.at {
            Place::Pointers(pointers) if pointers.len() == 1 => {
                let (slot, pointer) = &pointers[0];
                let value = found[*slot].ok_or_else(|| missing(pointer, field.name))?;
                Ok(Value::Json(value, pointer))
            }
            Place::Pointers(pointers) => {
                // At most the values' JSON text and the separators.
                let room = pointers
                    .iter()
                    .map(|(slot, _)| found[*slot].map_or(0, str::len) + JOIN.len())
                    .sum();
                let mut joined = String::with_capacity(room);
                for (index, (slot, pointer)) in pointers.iter().enumerate() {
                    let value = found[*slot].ok_or_else(|| missing(pointer, field.name))?;
                    let part = name_text(value).ok_or_else(|| {
                        wrong_type(value, pointer, field.name, "a string or a number")
                    })?;
                    if index > 0 {
                        joined.push_str(JOIN);
                    }
                    joined.push_str(&part);
                }
                Ok(Value::Text(Cow::Owned(joined)))
            }
            Place::Group(index, name) => match groups.and_then(|groups| groups.get(*index)) {
                Some(text) => Ok(Value::Text(text)),
                None if field.name == "price" => Ok(Value::Absent),
                None => Err(Reject::new(
                    Reason::Unmapped,
                    format!(
                        "group {name} ({}) took no part in text.regex's match",
                        field.name
                    ),
                )),
            },
        }
    }

    /// `id` or `symbol`: a string, or a number's text.
    fn name<'m>(
        &self,
        field: &Field,
        found: &Found<'m>,
        groups: Option<&Groups<'m>>,
    ) -> Result<Raw<'m>, Reject> {
        match self.value(field, found, groups)? {
            Value::Json(value, pointer) => name_text(value)
                .map(Raw::Str)
                .ok_or_else(|| wrong_type(value, pointer, field.name, "a string or a number")),
            Value::Text(text) => Ok(Raw::Str(text)),
            Value::Absent => Ok(Raw::Absent),
        }
    }

    fn side<'m>(&self, found: &Found<'m>, groups: Option<&Groups<'m>>) -> Result<Raw<'m>, Reject> {
        let word = match self.value(&self.side, found, groups)? {
            Value::Json(value, pointer) => {
                string(value).ok_or_else(|| wrong_type(value, pointer, "side", "a string"))?
            }
            Value::Text(text) => text,
            Value::Absent => return Ok(Raw::Absent),
        };
        let listed = self
            .settings
            .side_values
            .iter()
            .find(|(listed, _)| listed.eq_ignore_ascii_case(&word))
            .map(|(_, side)| *side);
        let side = listed
            .or_else(|| {
                [Side::Buy, Side::Sell]
                    .into_iter()
                    .find(|side| side.as_str().eq_ignore_ascii_case(&word))
            })
            .map(Side::as_str);
        Ok(Raw::Str(side.map_or(word, Cow::Borrowed)))
    }

    /// `qty` or `price`: a number (its own text), or a string holding one.
    fn number<'m>(
        &self,
        field: &Field,
        found: &Found<'m>,
        groups: Option<&Groups<'m>>,
    ) -> Result<Raw<'m>, Reject> {
        match self.value(field, found, groups)? {
            Value::Json(value, pointer) => match kind(value) {
                "a number" => Ok(Raw::number(value)),
                "a string" => Ok(Raw::Str(string(value).unwrap_or_default())),
                // A price sent as null is no price, as in a line.
                "null" if field.name == "price" => Ok(Raw::Null),
                _ => Err(wrong_type(
                    value,
                    pointer,
                    field.name,
                    "a number or a string holding one",
                )),
            },
            Value::Text(text) => Ok(Raw::Str(text)),
            Value::Absent => Ok(Raw::Absent),
        }
    }

    fn ts<'m>(
        &self,
        field: &Field,
        found: &Found<'m>,
        groups: Option<&Groups<'m>>,
    ) -> Result<Raw<'m>, Reject> {
        let unit = self.settings.ts_unit;
        let text = match self.value(field, found, groups)? {
            Value::Json(value, pointer) => match (kind(value), unit) {
                ("a number", TsUnit::Rfc3339) => {
                    return Err(wrong_type(
                        value,
                        pointer,
                        "ts",
                        "an RFC 3339 string (ts_unit)",
                    ))
                }
                ("a number", _) => Cow::Borrowed(value),
                ("a string", _) => string(value).unwrap_or_default(),
                _ => return Err(wrong_type(value, pointer, "ts", "a number or a string")),
            },
            Value::Text(text) => text,
            Value::Absent => return Ok(Raw::Absent),
        };
        if unit == TsUnit::Rfc3339 || (unit == TsUnit::Auto && !is_decimal(&text)) {
            return Ok(Raw::Str(text));
        }
        epoch_ms(&text, unit).map(Raw::Int).ok_or_else(|| {
            Reject::new(
                Reason::BadTs,
                format!(
                    "ts {:?} is not epoch {} (ts_unit = {})",
                    text.chars().take(40).collect::<String>(),
                    if unit == TsUnit::Ms {
                        "milliseconds"
                    } else {
                        "seconds or milliseconds"
                    },
                    unit.as_str()
                ),
            )
        })
    }
}

/// The regex's match over the text, kept as positions so a group borrows
/// from the message when the text did.
struct Groups<'m> {
    text: Cow<'m, str>,
    locations: CaptureLocations,
}

impl<'m> Groups<'m> {
    fn get(&self, index: usize) -> Option<Cow<'m, str>> {
        let (start, end) = self.locations.get(index)?;
        Some(match &self.text {
            Cow::Borrowed(text) => Cow::Borrowed(text.get(start..end)?),
            Cow::Owned(text) => Cow::Owned(text.get(start..end)?.to_owned()),
        })
    }
}

fn group_index(text: &Option<Text>, group: &str, key: &str) -> Result<usize, MapError> {
    let error = |message: String| MapError {
        key: key.to_owned(),
        message,
    };
    let text = text.as_ref().ok_or_else(|| {
        error(format!(
            "group {group:?} needs [source.map.text] (from, regex)"
        ))
    })?;
    text.regex
        .capture_names()
        .position(|name| name == Some(group))
        .ok_or_else(|| {
            error(format!(
                "text.regex has no group named {group:?}: write (?P<{group}>…)"
            ))
        })
}

/// The messages in `frame`: itself if an object, its elements if an array.
fn messages<'m>(frame: &'m [u8], mut each: impl FnMut(&'m str)) -> Result<(), Reject> {
    let text = std::str::from_utf8(frame).map_err(|error| {
        Reject::new(
            Reason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", error.valid_up_to()),
        )
    })?;
    let not_json =
        |error: serde_json::Error| Reject::new(Reason::NotJson, format!("not JSON: {error}"));
    match text.trim_start().as_bytes().first() {
        // Checked as it is walked.
        Some(b'{') => each(text),
        Some(b'[') => {
            for message in serde_json::from_str::<Vec<&RawValue>>(text).map_err(not_json)? {
                each(message.get());
            }
        }
        _ => {
            serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(not_json)?;
            return Err(Reject::new(
                Reason::NotObject,
                "neither a JSON object nor an array of them",
            ));
        }
    }
    Ok(())
}

/// The messages of a frame of a feed in the bot's own signal format (a
/// source with no map): one signal, or an array of them.
pub(crate) fn own_format<'m>(frame: &'m [u8], ids: Ids, each: &mut impl FnMut(Mapped<'m>)) {
    let result = messages(frame, |message| {
        each(Mapped::Message {
            raw: message.as_bytes(),
            signal: signal::parse_with(message.as_bytes(), ids),
        })
    });
    if let Err(reject) = result {
        each(Mapped::Garbage { raw: frame, reject });
    }
}

fn garbage<'m>(message: &'m str, error: &serde_json::Error) -> Mapped<'m> {
    Mapped::Garbage {
        raw: message.as_bytes(),
        reject: Reject::new(Reason::NotJson, format!("not JSON: {error}")),
    }
}

fn matches(value: &str, expected: &Expected) -> bool {
    match expected {
        Expected::Str(expected) => string(value).is_some_and(|text| text == *expected),
        Expected::Int(expected) => value.parse::<i64>().is_ok_and(|number| number == *expected),
        Expected::Bool(expected) => value == if *expected { "true" } else { "false" },
    }
}

/// A JSON string's text, borrowed unless it holds an escape.
fn string(json: &str) -> Option<Cow<'_, str>> {
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str(json).ok().map(Cow::Owned)
}

/// A string's text, or a number's own text (`id: 12345`).
fn name_text(value: &str) -> Option<Cow<'_, str>> {
    match kind(value) {
        "a number" => Some(Cow::Borrowed(value)),
        _ => string(value),
    }
}

fn kind(value: &str) -> &'static str {
    match value.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn missing(pointer: &Pointer, field: &str) -> Reject {
    Reject::new(Reason::Unmapped, format!("{pointer} ({field}) missing"))
}

fn wrong_type(value: &str, pointer: &Pointer, field: &str, expected: &str) -> Reject {
    Reject::new(
        Reason::Unmapped,
        format!("{pointer} ({field}) is {}, not {expected}", kind(value)),
    )
}

/// `12`, `-3`, `1714557600.25`: digits with an optional fraction.
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole
            .bytes()
            .chain(fraction.bytes())
            .all(|byte| byte.is_ascii_digit())
}

/// Below this, `auto` reads a number as seconds (see [`TsUnit::Auto`]).
const AUTO_SECONDS_BELOW: i64 = 100_000_000_000;

/// Epoch milliseconds from a decimal's text, read in `unit`: exact, with
/// digits past the millisecond dropped. `None`: not a decimal, or too large.
fn epoch_ms(text: &str, unit: TsUnit) -> Option<i64> {
    if !is_decimal(text) {
        return None;
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole: i64 = whole.parse().ok()?;
    let seconds = match unit {
        TsUnit::S => true,
        TsUnit::Ms => false,
        TsUnit::Auto => whole < AUTO_SECONDS_BELOW,
        TsUnit::Rfc3339 => return None,
    };
    let ms = if seconds {
        let millis = fraction
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0, |millis, digit| millis * 10 + i64::from(digit - b'0'));
        whole.checked_mul(1000)?.checked_add(millis)?
    } else {
        whole
    };
    Some(if negative { -ms } else { ms })
}

#[cfg(test)]
mod tests;
