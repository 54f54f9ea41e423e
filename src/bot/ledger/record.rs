//! A journal record: its kinds and their fields, defined once (the
//! [`records!`] table at the end), from which the enum, the line writer
//! and the reader all follow. A new field is one line of the table; its
//! type says how it is written and read ([`Value`]).
//!
//! A line is `{"t":"<kind>",<fields in table order>,"crc":"<8 hex digits>"}`:
//! one JSON object (people `jq` the journal), the kind first, an absent
//! optional field left out. `crc` is the CRC32C (Castagnoli, as
//! PostgreSQL's WAL and Kafka's record batches use) of the line's bytes
//! before `,"crc":`, so a byte changed on disk is found before the record
//! is believed. Lines of the releases before checksums have no `crc`, and
//! are read as they always were (see `reader.rs` for what that means).
//!
//! Reading goes straight from the line into the kind its first field
//! names, with no buffering of fields; strings borrow from the line where
//! they hold no escape. A field the kind does not have, a field twice, a
//! `crc` that is not a checksum at the line's end: each is damage.
//! Numbers are handed to their field's type as serde_json reads them, so
//! a type that wants a number's own text takes it as a `&RawValue`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::checkpoint::Checkpoint;
use super::window::MAX_ID_BYTES;
use crate::bot::json_text;
use crate::bot::money::{Amount, Decimal, NumberError, Price, Quantity, Rounding};
use crate::bot::signal::Side;

/// What ends a checksummed line: `,"crc":"`, 8 hex digits, `"}`.
const CRC_PREFIX: &[u8] = b",\"crc\":\"";
const CRC_SUFFIX_LEN: usize = CRC_PREFIX.len() + 8 + 2;

/// How a field's value is written, read and owned.
pub(crate) trait Value<'a>: Sized {
    /// The value with nothing borrowed from a line.
    type Owned;
    /// Writes the value as JSON.
    fn write(&self, out: &mut Vec<u8>);
    fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error>;
    fn into_owned(self) -> Self::Owned;
    /// False leaves the field out of the line (an absent optional).
    fn is_written(&self) -> bool {
        true
    }
    /// The value of a field the line leaves out; `None`: it is required.
    fn when_absent() -> Option<Self> {
        None
    }
}

/// A member of a record: one field, or a group of fields read into one
/// value (a checkpoint). Every [`Value`] is a field of its own name.
pub(crate) trait Field<'a>: Sized {
    type Owned;
    /// What the fields read so far hold of it.
    type Partial: Default;
    /// Writes `member` (`,"name":`, made at compile time) and the value,
    /// or a group's fields.
    fn write(&self, member: &str, out: &mut Vec<u8>);
    /// Reads the value of `key` if it is one of its fields; false if not.
    fn take<A: MapAccess<'a>>(
        partial: &mut Self::Partial,
        name: &str,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error>;
    /// The member once every field is read; what is wrong otherwise
    /// (`without "price"`).
    fn finish(partial: Self::Partial, name: &str) -> Result<Self, String>;
    fn into_owned(self) -> Self::Owned;
}

impl<'a, T: Value<'a>> Field<'a> for T {
    type Owned = T::Owned;
    type Partial = Option<T>;

    #[inline]
    fn write(&self, member: &str, out: &mut Vec<u8>) {
        if self.is_written() {
            out.extend_from_slice(member.as_bytes());
            Value::write(self, out);
        }
    }

    #[inline]
    fn take<A: MapAccess<'a>>(
        partial: &mut Option<T>,
        name: &str,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        if key != name {
            return Ok(false);
        }
        if partial.is_some() {
            return Err(de::Error::custom(format_args!("{name:?} twice")));
        }
        *partial = Some(map.next_value_seed(Read::<T>(PhantomData))?);
        Ok(true)
    }

    #[inline]
    fn finish(partial: Option<T>, name: &str) -> Result<T, String> {
        partial
            .or_else(T::when_absent)
            .ok_or_else(|| format!("without {name:?}"))
    }

    #[inline]
    fn into_owned(self) -> T::Owned {
        Value::into_owned(self)
    }
}

/// Reads a `T` where serde asks for a seed.
struct Read<T>(PhantomData<T>);

impl<'a, T: Value<'a>> DeserializeSeed<'a> for Read<T> {
    type Value = T;

    #[inline]
    fn deserialize<D: Deserializer<'a>>(self, from: D) -> Result<T, D::Error> {
        T::read(from)
    }
}

/// Reads the value of a field named `key` in a group, once.
pub(crate) fn take_once<'a, T: Value<'a>, A: MapAccess<'a>>(
    slot: &mut Option<T>,
    key: &str,
    map: &mut A,
) -> Result<bool, A::Error> {
    <T as Field<'a>>::take(slot, key, key, map)
}

impl<'a> Value<'a> for Cow<'a, str> {
    type Owned = Cow<'static, str>;

    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        string(out, self);
    }

    #[inline]
    fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
        from.deserialize_str(Text)
    }

    fn into_owned(self) -> Cow<'static, str> {
        Cow::Owned(self.into_owned())
    }
}

/// A string, borrowed from the line unless it holds an escape.
struct Text;

impl<'a> Visitor<'a> for Text {
    type Value = Cow<'a, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'a str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text))
    }
}

impl<'a> Value<'a> for String {
    type Owned = String;

    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        string(out, self);
    }

    fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
        String::deserialize(from)
    }

    fn into_owned(self) -> String {
        self
    }
}

/// Integers, written with itoa.
macro_rules! integer_values {
    ($($integer:ty),*) => {$(
        impl<'a> Value<'a> for $integer {
            type Owned = $integer;

            #[inline]
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
            }

            #[inline]
            fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
                <$integer>::deserialize(from)
            }

            fn into_owned(self) -> $integer {
                self
            }
        }
    )*};
}

integer_values!(i64, u64);

/// An exact decimal, written as a JSON string of its exact text (`"0.3"`),
/// as exchange APIs write money. Read from a string or from a number's own
/// text, so the float releases' `0.1`, `2.0`, `0.30000000000000004` and
/// `1e-7` read as the decimals they say. A number with more digits than a
/// value holds is refused, never read rounded: such a record could come
/// only from a float release's signal that carried them, and the start
/// stops naming it rather than replay another amount.
impl<'a, K> Value<'a> for Decimal<K> {
    type Owned = Decimal<K>;

    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        self.write_to(out);
        out.push(b'"');
    }

    #[inline]
    fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
        let json = <&'a RawValue>::deserialize(from)?.get();
        let text = json
            .strip_prefix('"')
            .and_then(|quoted| quoted.strip_suffix('"'))
            .unwrap_or(json);
        Decimal::parse(text).map_err(|error| {
            let text: String = text.chars().take(40).collect();
            match error {
                NumberError::NotANumber => de::Error::custom(format_args!("{text} {error}")),
                limit => de::Error::custom(format_args!(
                    "{text} {limit}: a number the journal holds is never read rounded"
                )),
            }
        })
    }

    fn into_owned(self) -> Decimal<K> {
        self
    }
}

/// The places a fill's average price was rounded to (`MONEY_DECIMALS`),
/// left out at the default.
impl<'a> Value<'a> for Rounding {
    type Owned = Rounding;

    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(self.places()).as_bytes());
    }

    fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
        Rounding::new(u32::deserialize(from)?).map_err(de::Error::custom)
    }

    fn into_owned(self) -> Rounding {
        self
    }

    fn is_written(&self) -> bool {
        *self != Rounding::DEFAULT
    }

    fn when_absent() -> Option<Self> {
        Some(Rounding::DEFAULT)
    }
}

impl<'a> Value<'a> for Side {
    type Owned = Side;

    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(self.as_str().as_bytes());
        out.push(b'"');
    }

    #[inline]
    fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
        Side::deserialize(from)
    }

    fn into_owned(self) -> Side {
        self
    }
}

impl<'a, T: Value<'a>> Value<'a> for Option<T> {
    type Owned = Option<T::Owned>;

    fn write(&self, out: &mut Vec<u8>) {
        if let Some(value) = self {
            Value::write(value, out);
        }
    }

    fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
        from.deserialize_option(Maybe(PhantomData))
    }

    fn into_owned(self) -> Self::Owned {
        self.map(Value::into_owned)
    }

    fn is_written(&self) -> bool {
        self.is_some()
    }

    fn when_absent() -> Option<Self> {
        Some(None)
    }
}

/// An optional value: `null` (as releases before this one wrote an absent
/// reject id) or the value.
struct Maybe<T>(PhantomData<T>);

impl<'a, T: Value<'a>> Visitor<'a> for Maybe<T> {
    type Value = Option<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'a>>(self, from: D) -> Result<Self::Value, D::Error> {
        T::read(from).map(Some)
    }
}

/// A table of record kinds: each kind's name, its `t`, and its fields in
/// the order they are written. It makes the enum, [`Kinds`] (the writer's
/// and the reader's half of each kind) and `into_owned`.
macro_rules! records {
    (
        $(#[$doc:meta])*
        $vis:vis enum $name:ident<$a:lifetime> {
            $(
                $(#[$kind_doc:meta])*
                $kind:ident = $tag:literal {
                    $( $(#[$field_doc:meta])* $field:ident: $ty:ty, )*
                },
            )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        $vis enum $name<$a> {
            $(
                $(#[$kind_doc])*
                $kind { $( $(#[$field_doc])* $field: $ty, )* },
            )*
        }

        impl $name<'_> {
            /// The record with nothing borrowed from a line.
            $vis fn into_owned(self) -> $name<'static> {
                match self {
                    $( $name::$kind { $($field,)* } => $name::$kind {
                        $( $field: $crate::bot::ledger::record::Field::into_owned($field), )*
                    }, )*
                }
            }
        }

        impl<$a> $crate::bot::ledger::record::Kinds<$a> for $name<$a> {
            #[inline]
            fn write_fields(&self, out: &mut Vec<u8>) {
                match self {
                    $( $name::$kind { $($field,)* } => {
                        out.extend_from_slice(concat!("{\"t\":\"", $tag, "\"").as_bytes());
                        $(
                            $crate::bot::ledger::record::Field::write(
                                $field,
                                concat!(",\"", stringify!($field), "\":"),
                                out,
                            );
                        )*
                    } )*
                }
            }

            #[inline]
            fn read_fields<M: serde::de::MapAccess<$a>>(
                tag: &str,
                mut map: M,
                checked: bool,
            ) -> Result<Self, M::Error> {
                use $crate::bot::ledger::record::Field;
                match tag {
                    $( $tag => {
                        $( let mut $field = <<$ty as Field<$a>>::Partial as Default>::default(); )*
                        let mut crc_seen = false;
                        while let Some(key) = $crate::bot::ledger::record::next_key(&mut map)? {
                            $(
                                if <$ty as Field<$a>>::take(&mut $field, stringify!($field), &key, &mut map)? {
                                    continue;
                                }
                            )*
                            $crate::bot::ledger::record::other_key(&key, &mut map, checked, &mut crc_seen)?;
                        }
                        Ok($name::$kind {
                            $(
                                $field: <$ty as Field<$a>>::finish($field, stringify!($field)).map_err(|problem| {
                                    <M::Error as serde::de::Error>::custom(format_args!("a {} record {problem}", $tag))
                                })?,
                            )*
                        })
                    } )*
                    other => Err(<M::Error as serde::de::Error>::custom(format_args!("unknown record type {other:?}"))),
                }
            }
        }
    };
}

/// The two halves of each kind of a [`records!`] table.
pub trait Kinds<'a>: Sized {
    /// Writes `{"t":"<kind>"` and the fields, all but the closing brace.
    fn write_fields(&self, out: &mut Vec<u8>);
    /// Reads the fields of the kind `tag` from the rest of its line;
    /// `checked`: the line's checksum was found and matched.
    fn read_fields<M: MapAccess<'a>>(tag: &str, map: M, checked: bool) -> Result<Self, M::Error>;
}

/// The next key of a line, borrowed from it.
#[inline]
fn next_key<'a, M: MapAccess<'a>>(map: &mut M) -> Result<Option<Cow<'a, str>>, M::Error> {
    map.next_key_seed(Read::<Cow<'a, str>>(PhantomData))
}

/// A key no field of the kind took: the checksum (once, and only when it
/// was found at the line's end), or damage.
fn other_key<'a, M: MapAccess<'a>>(
    key: &str,
    map: &mut M,
    checked: bool,
    crc_seen: &mut bool,
) -> Result<(), M::Error> {
    if key != "crc" {
        return Err(de::Error::custom(format_args!("unknown field {key:?}")));
    }
    if !checked || std::mem::replace(crc_seen, true) {
        return Err(de::Error::custom(
            "a \"crc\" that is not the line's checksum (8 hex digits, last)",
        ));
    }
    map.next_value::<de::IgnoredAny>()?;
    Ok(())
}

/// Writes `record` as its journal line, checksum and newline included, at
/// the end of `out`.
pub fn write_line<'a, R: Kinds<'a>>(record: &R, out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let start = out.len();
    record.write_fields(out);
    let crc = crc32c::crc32c(&out[start..]);
    let mut end = *b",\"crc\":\"00000000\"}\n";
    for (at, digit) in end[CRC_PREFIX.len()..CRC_PREFIX.len() + 8]
        .iter_mut()
        .enumerate()
    {
        *digit = DIGITS[(crc >> (28 - 4 * at) & 0xf) as usize];
    }
    out.extend_from_slice(&end);
}

/// The checksum a line ends with, and where its member starts; `None`
/// for a line without one (of a release before checksums, or damaged
/// there: the reader tells which).
fn checksum(line: &[u8]) -> Option<(usize, u32)> {
    let start = line.len().checked_sub(CRC_SUFFIX_LEN)?;
    let suffix = &line[start..];
    if !suffix.starts_with(CRC_PREFIX) || !suffix.ends_with(b"\"}") {
        return None;
    }
    let digits = &suffix[CRC_PREFIX.len()..CRC_PREFIX.len() + 8];
    let mut value = 0u32;
    for &digit in digits {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        value = value << 4 | u32::from(nibble);
    }
    Some((start, value))
}

/// Whether a line (without its newline) ends with a checksum.
pub(crate) fn is_checksummed(line: &[u8]) -> bool {
    checksum(line).is_some()
}

/// One record line (without its newline), its checksum checked when it
/// has one; what is wrong with it, in a phrase, otherwise.
pub fn parse(line: &[u8]) -> Result<Record<'_>, String> {
    let record: Record<'_> = read(line)?;
    let id = match &record {
        Record::Fill { id, .. } => Some(id.as_ref()),
        Record::Reject { id, .. } => id.as_deref(),
        Record::Ckpt { .. } => None,
    };
    if id.is_some_and(|id| id.len() > MAX_ID_BYTES) {
        return Err(format!("an id over {MAX_ID_BYTES} bytes"));
    }
    Ok(record)
}

/// A line of any [`records!`] table.
fn read<'a, R: Kinds<'a>>(line: &'a [u8]) -> Result<R, String> {
    let checked = match checksum(line) {
        Some((end, expected)) => {
            let actual = crc32c::crc32c(&line[..end]);
            if actual != expected {
                return Err(format!(
                    "checksum mismatch: the line says crc {expected:08x}, its bytes give {actual:08x}"
                ));
            }
            true
        }
        None => false,
    };
    let mut from = serde_json::Deserializer::from_slice(line);
    let record = from
        .deserialize_map(Line {
            checked,
            kinds: PhantomData,
        })
        .map_err(|error| error.to_string())?;
    from.end().map_err(|error| error.to_string())?;
    Ok(record)
}

/// A line: its kind first, then that kind's fields.
struct Line<R> {
    checked: bool,
    kinds: PhantomData<R>,
}

impl<'a, R: Kinds<'a>> Visitor<'a> for Line<R> {
    type Value = R;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a journal record, a JSON object")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> Result<R, M::Error> {
        if next_key(&mut map)?.as_deref() != Some("t") {
            return Err(de::Error::custom(
                "a record that does not begin with its kind, \"t\"",
            ));
        }
        let tag = map.next_value_seed(Read::<Cow<'a, str>>(PhantomData))?;
        R::read_fields(&tag, map, self.checked)
    }
}

/// A JSON string, byte for byte as serde_json writes it. Fills are most of
/// the journal, and their strings (ids, symbols, the source's name) rarely
/// hold anything to escape: those are copied as they are.
fn string(out: &mut Vec<u8>, text: &str) {
    if json_text::plain_length(text.as_bytes()) < text.len() {
        let _ = serde_json::to_writer(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

records! {
    /// One journal line. Its strings borrow when written (a decision is
    /// journaled without copying the signal's strings) and, where they
    /// hold no escape, when read.
    pub enum Record<'a> {
        /// A signal filled.
        Fill = "fill" {
            id: Cow<'a, str>,
            /// The source's name (`file:PATH`, `webhook`, ...).
            src: Cow<'a, str>,
            /// The signal's own timestamp, epoch milliseconds.
            ts: i64,
            /// When it filled, epoch milliseconds.
            at: i64,
            symbol: Cow<'a, str>,
            side: Side,
            qty: Quantity,
            /// The price it filled at: the asked one, slipped.
            price: Price,
            /// The price the signal asked (or the mark it filled at without
            /// one), when slippage moved `price` from it.
            asked: Option<Price>,
            /// `FEE_BPS` of the notional, when not zero.
            fee: Option<Amount>,
            /// The places the position's average price was rounded to on
            /// this fill (`MONEY_DECIMALS`), when not the default 8: a
            /// replay rounds as the decision did.
            places: Rounding,
            /// The signal's `source`, when it had one.
            source: Option<Cow<'a, str>>,
        },
        /// A line or a signal refused, and why.
        Reject = "reject" {
            /// The signal's id, when the line got far enough to have one.
            id: Option<String>,
            src: Cow<'a, str>,
            /// The signal's own timestamp, when the line got far enough to
            /// have one (records of earlier releases have none).
            ts: Option<i64>,
            at: i64,
            reason: String,
            detail: String,
            /// The line as received (cut at 1 KiB).
            line: String,
        },
        /// How far a source has been read: where it resumes.
        Ckpt = "ckpt" {
            src: Cow<'a, str>,
            checkpoint: Checkpoint,
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        "\\PC{0,12}|[\"\\\\\u{0}-\u{1f}\u{7f}é]{1,4}|[a-zé]{0,20}[\"\\\\\u{0}-\u{1f}]?[a-z]{0,20}"
    }

    /// Any value a decimal holds, and the usual ones.
    fn number<K: 'static>() -> impl Strategy<Value = Decimal<K>> {
        prop_oneof![
            (any::<i64>(), 0u32..=18).prop_map(|(mantissa, places)| {
                Decimal::parse(&format!("{mantissa}e-{places}")).unwrap()
            }),
            (0u32..100_000).prop_map(|cents| Decimal::parse(&format!("{cents}e-2")).unwrap()),
        ]
    }

    fn any_record() -> impl Strategy<Value = Record<'static>> {
        prop_oneof![
            (
                (text(), text(), any::<i64>(), any::<i64>(), text()),
                (
                    any::<bool>(),
                    number(),
                    number(),
                    proptest::option::of(number()),
                    proptest::option::of(number()),
                    0u32..=18,
                    proptest::option::of(text())
                ),
            )
                .prop_map(
                    |((id, src, ts, at, symbol), (buy, qty, price, asked, fee, places, source))| {
                        Record::Fill {
                            id: id.into(),
                            src: src.into(),
                            ts,
                            at,
                            symbol: symbol.into(),
                            side: if buy { Side::Buy } else { Side::Sell },
                            qty,
                            price,
                            asked,
                            fee,
                            places: Rounding::new(places).unwrap(),
                            source: source.map(Cow::Owned),
                        }
                    }
                ),
            (
                proptest::option::of(text()),
                text(),
                proptest::option::of(any::<i64>()),
                any::<i64>(),
                (text(), text(), text()),
            )
                .prop_map(|(id, src, ts, at, (reason, detail, line))| Record::Reject {
                    id,
                    src: src.into(),
                    ts,
                    at,
                    reason,
                    detail,
                    line,
                }),
            (text(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
                |(src, dev, ino, offset)| {
                    Record::Ckpt {
                        src: src.into(),
                        checkpoint: Checkpoint::File { dev, ino, offset },
                    }
                }
            ),
            (text(), text()).prop_map(|(src, cursor)| Record::Ckpt {
                src: src.into(),
                checkpoint: Checkpoint::Cursor(cursor),
            }),
        ]
    }

    /// A record's line as serde_json writes each of its values, without
    /// the closing brace; `old`: as the releases before this one wrote it,
    /// an absent reject id as `null` rather than left out, and a fill's
    /// numbers as JSON numbers rather than strings.
    fn reference(record: &Record<'_>, old: bool) -> String {
        fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
            serde_json::to_string(value).unwrap()
        }
        let mut fields: Vec<(&str, String)> = Vec::new();
        let kind = match record {
            Record::Fill {
                id,
                src,
                ts,
                at,
                symbol,
                side,
                qty,
                price,
                asked,
                fee,
                places,
                source,
            } => {
                let number = |text: String| if old { text } else { json(&text) };
                fields.extend([
                    ("id", json(id)),
                    ("src", json(src)),
                    ("ts", json(ts)),
                    ("at", json(at)),
                    ("symbol", json(symbol)),
                    ("side", json(side)),
                    ("qty", number(qty.to_string())),
                    ("price", number(price.to_string())),
                ]);
                fields.extend(asked.map(|asked| ("asked", number(asked.to_string()))));
                fields.extend(fee.map(|fee| ("fee", number(fee.to_string()))));
                if *places != Rounding::DEFAULT {
                    fields.push(("places", json(&places.places())));
                }
                fields.extend(source.as_ref().map(|source| ("source", json(source))));
                "fill"
            }
            Record::Reject {
                id,
                src,
                ts,
                at,
                reason,
                detail,
                line,
            } => {
                if id.is_some() || old {
                    fields.push(("id", json(id)));
                }
                fields.push(("src", json(src)));
                fields.extend(ts.map(|ts| ("ts", json(&ts))));
                fields.extend([
                    ("at", json(at)),
                    ("reason", json(reason)),
                    ("detail", json(detail)),
                    ("line", json(line)),
                ]);
                "reject"
            }
            Record::Ckpt { src, checkpoint } => {
                fields.push(("src", json(src)));
                match checkpoint {
                    Checkpoint::File { dev, ino, offset } => fields.extend([
                        ("dev", json(dev)),
                        ("ino", json(ino)),
                        ("off", json(offset)),
                    ]),
                    Checkpoint::Cursor(cursor) => fields.push(("cursor", json(cursor))),
                }
                "ckpt"
            }
        };
        let fields: String = fields
            .iter()
            .map(|(name, value)| format!(",\"{name}\":{value}"))
            .collect();
        format!("{{\"t\":\"{kind}\"{fields}")
    }

    fn line(record: &Record<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        write_line(record, &mut out);
        assert_eq!(out.pop(), Some(b'\n'));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        /// The line is serde_json's text of each value, in table order,
        /// then the CRC32C of those bytes; it reads back as the record.
        #[test]
        fn a_record_is_written_as_serde_json_writes_its_values_and_reads_back(record in any_record()) {
            let written = line(&record);
            let body = reference(&record, false);
            let crc = crc32c::crc32c(body.as_bytes());
            prop_assert_eq!(
                String::from_utf8_lossy(&written),
                format!("{body},\"crc\":\"{crc:08x}\"}}")
            );
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&written).is_ok());
            prop_assert_eq!(parse(&written).unwrap(), record);
        }

        /// A line as the releases before checksums wrote it (no `crc`, an
        /// absent reject id as `null`, numbers as numbers) reads as it
        /// always did, each number as the decimal its text says.
        #[test]
        fn a_line_without_a_checksum_reads_as_it_always_did(record in any_record(), old in any::<bool>()) {
            let old = format!("{}}}", reference(&record, old));
            prop_assert!(!is_checksummed(old.as_bytes()));
            prop_assert_eq!(parse(old.as_bytes()).unwrap(), record);
        }
    }

    /// Every byte of a line, changed to every other value: the line is
    /// never read as a record (the checksum covers what comes before it,
    /// and a damaged checksum is no checksum and no field either).
    #[test]
    fn a_byte_changed_anywhere_in_a_line_is_found() {
        let records = [
            crate::bot::ledger::journal::test_fill("tv-1"),
            Record::Reject {
                id: None,
                src: "stdin".into(),
                ts: Some(5),
                at: 6,
                reason: "bad_side".into(),
                detail: "\"side\" is \"hold\"".into(),
                line: "{\"side\":\"hold\"}".into(),
            },
            Record::Ckpt {
                src: "poll:x".into(),
                checkpoint: Checkpoint::Cursor("7".into()),
            },
        ];
        for record in &records {
            let written = line(record);
            for at in 0..written.len() {
                for byte in 0..=u8::MAX {
                    if byte == written[at] {
                        continue;
                    }
                    let mut damaged = written.clone();
                    damaged[at] = byte;
                    assert!(
                        parse(&damaged).is_err(),
                        "{:?} read as {:?}",
                        String::from_utf8_lossy(&damaged),
                        parse(&damaged)
                    );
                }
            }
        }
    }

    #[test]
    fn what_a_line_must_be_is_said() {
        let problem = |line: &str| parse(line.as_bytes()).unwrap_err();
        let fill =
            r#""id":"a","src":"s","ts":1,"at":2,"symbol":"S","side":"buy","qty":1.0,"price":2.0"#;
        assert!(parse(format!(r#"{{"t":"fill",{fill}}}"#).as_bytes()).is_ok());
        assert!(problem(&format!(r#"{{{fill},"t":"fill"}}"#)).contains("begin with its kind"));
        assert!(
            problem(&format!(r#"{{"t":"fill",{fill},"tip":1}}"#)).contains("unknown field \"tip\"")
        );
        assert!(problem(&format!(r#"{{"t":"fill",{fill},"fee":"x"}}"#))
            .contains("x is not a decimal number"));
        assert!(
            problem(&format!(r#"{{"t":"fill",{fill},"fee":1e-19}}"#)).contains(
                "1e-19 has more than 18 decimal places: a number the journal holds is never read rounded"
            )
        );
        assert!(problem(&format!(r#"{{"t":"fill",{fill},"places":19}}"#))
            .contains("19 decimal places is more than the 18"));
        assert!(problem(&format!(r#"{{"t":"fill",{fill},"id":"b"}}"#)).contains("\"id\" twice"));
        assert!(problem(r#"{"t":"fill","id":"a"}"#).contains("a fill record without \"src\""));
        assert!(problem(r#"{"t":"note","src":"s"}"#).contains("unknown record type \"note\""));
        assert!(problem(&format!(r#"{{"t":"fill",{fill},"crc":"zz"}}"#))
            .contains("not the line's checksum"));
        assert!(
            problem(&format!(r#"{{"t":"fill",{fill},"crc":"00000000"}}"#))
                .contains("checksum mismatch")
        );
        assert!(problem(r#"{"t":"ckpt","src":"s","dev":1,"ino":2}"#)
            .contains("a ckpt record with neither"));
        assert!(
            problem(r#"{"t":"ckpt","src":"s","dev":1,"ino":2,"off":3,"cursor":"c"}"#)
                .contains("a ckpt record with neither")
        );
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert!(problem(&format!(
            r#"{{"t":"reject","id":"{long}","src":"s","at":1,"reason":"r","detail":"d","line":""}}"#
        ))
        .contains("an id over"));
    }

    /// A fill of a float release reads each number as the decimal its text
    /// says (the release wrote the shortest text that reads back as its
    /// float), with no fee, no slippage and the default places.
    #[test]
    fn a_float_release_fill_reads_as_the_decimals_its_text_says() {
        for (qty, price) in [
            ("0.1", "64250.5"),
            ("2.0", "3100.75"),
            ("0.30000000000000004", "1e-7"),
            ("1000.0", "0.1234"),
        ] {
            let line = format!(
                r#"{{"t":"fill","id":"a","src":"s","ts":1,"at":2,"symbol":"S","side":"buy","qty":{qty},"price":{price}}}"#
            );
            let Record::Fill {
                qty: read_qty,
                price: read_price,
                asked,
                fee,
                places,
                ..
            } = parse(line.as_bytes()).unwrap()
            else {
                panic!("not a fill");
            };
            assert_eq!(read_qty, Quantity::parse(qty).unwrap());
            assert_eq!(read_price, Price::parse(price).unwrap());
            assert_eq!((asked, fee, places), (None, None, Rounding::DEFAULT));
        }
        let mut out = Vec::new();
        write_line(&crate::bot::ledger::journal::test_fill("x"), &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.contains(r#","qty":"1","price":"10","source""#)
                || line.contains(r#","qty":"1","price":"10","crc""#),
            "{line}"
        );
    }

    /// The journal of the release before segments, as it was written.
    #[test]
    fn the_records_of_earlier_releases_read() {
        let journal = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/old-release-state/journal.jsonl"
        ))
        .unwrap();
        let whole: Vec<&str> = journal
            .split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .collect();
        assert_eq!(whole.len(), 11);
        for line in whole {
            let line = line.trim_end_matches('\n').as_bytes();
            let record = parse(line)
                .unwrap_or_else(|problem| panic!("{problem}: {}", String::from_utf8_lossy(line)));
            assert!(!is_checksummed(line));
            assert!(matches!(
                record,
                Record::Fill { .. } | Record::Reject { .. } | Record::Ckpt { .. }
            ));
        }
    }

    /// A number's own text, as an exact decimal type reads it: never
    /// through a float.
    #[derive(Clone, Debug, PartialEq)]
    struct Exact<'a>(Cow<'a, str>);

    impl<'a> Value<'a> for Exact<'a> {
        type Owned = Exact<'static>;

        fn write(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(self.0.as_bytes());
        }

        fn read<D: Deserializer<'a>>(from: D) -> Result<Self, D::Error> {
            let raw = <&'a serde_json::value::RawValue>::deserialize(from)?;
            Ok(Exact(Cow::Borrowed(raw.get())))
        }

        fn into_owned(self) -> Exact<'static> {
            Exact(Cow::Owned(self.0.into_owned()))
        }
    }

    records! {
        /// A table of one kind with a field read from its text.
        enum Priced<'a> {
            Quote = "quote" {
                price: Exact<'a>,
                note: Option<Cow<'a, str>>,
            },
        }
    }

    #[test]
    fn a_field_can_read_a_number_from_its_own_text() {
        for text in [
            "0.1",
            "64250.5",
            "2.0",
            "64250.50000000000000000001",
            "1e-30",
        ] {
            let quote = Priced::Quote {
                price: Exact(text.into()),
                note: None,
            };
            let mut out = Vec::new();
            write_line(&quote, &mut out);
            let read: Priced<'_> = read(&out[..out.len() - 1]).unwrap();
            assert_eq!(read.clone().into_owned(), quote);
            let Priced::Quote { price, .. } = read;
            assert!(matches!(price.0, Cow::Borrowed(borrowed) if borrowed == text));
        }
    }
}
