//! `[source.map]` as written in the sources file, each value checked as it
//! is read (so a mistake is reported with its key), and shown back in full
//! by `check-config`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use regex::Regex;
use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::pointer::Pointer;
use crate::bot::signal::Side;

/// How a feed's message becomes a signal. Every field is found by a JSON
/// Pointer into the message, or taken from a named group of `text`'s
/// regular expression.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MapSettings {
    /// Where the messages are inside what was received (an array of them,
    /// or one object); without it, what was received is the message.
    #[serde(default)]
    pub(crate) items: Option<Pointer>,
    /// Pointer = value pairs a message must match to be mapped; any other
    /// message (an acknowledgement, a pong, another topic) is ignored.
    #[serde(default)]
    pub(crate) when: BTreeMap<Pointer, Expected>,
    /// None: the id is derived from the signal's content, as the
    /// webhook's is.
    #[serde(default)]
    pub(crate) id: Option<FieldSpec>,
    pub(crate) symbol: FieldSpec,
    pub(crate) side: FieldSpec,
    pub(crate) qty: FieldSpec,
    #[serde(default)]
    pub(crate) price: Option<FieldSpec>,
    /// None: the signal has no `ts`, and the signal rules say what that means.
    #[serde(default)]
    pub(crate) ts: Option<FieldSpec>,
    #[serde(default)]
    pub(crate) ts_unit: TsUnit,
    /// A feed's words for a side (`long = "buy"`), compared ignoring ASCII
    /// case, as `buy` and `sell` themselves always are; any other word is
    /// left to the signal's check, which refuses it.
    #[serde(default)]
    pub(crate) side_values: BTreeMap<String, Side>,
    #[serde(default)]
    pub(crate) text: Option<TextSettings>,
}

/// The string field a regular expression reads fields from, by the names
/// of its groups: an alert written for people ("BUY 0.5 BTC-USD @ 64000").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextSettings {
    pub(crate) from: Pointer,
    #[serde(deserialize_with = "regex")]
    pub(crate) regex: Regex,
}

/// Where one field's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldSpec {
    Pointer(Pointer),
    /// Values joined with [`JOIN`] (`id` and `symbol` only): a feed whose
    /// messages are unique only by several fields together.
    Joined(Vec<Pointer>),
    /// A named group of `text`'s regular expression.
    Group(String),
}

/// What the parts of a joined field are joined with.
pub(crate) const JOIN: &str = ":";

/// A value `when` compares a message's value with: a string, an integer
/// (compared with the JSON number's text) or a boolean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// What a number in `ts` counts. `auto`: a number below 10^11 is seconds
/// (10^11 seconds is the year 5138), any other milliseconds (10^11 ms is
/// March 1973); a string that is not a number is RFC 3339.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TsUnit {
    S,
    Ms,
    Rfc3339,
    #[default]
    Auto,
}

impl TsUnit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TsUnit::S => "s",
            TsUnit::Ms => "ms",
            TsUnit::Rfc3339 => "rfc3339",
            TsUnit::Auto => "auto",
        }
    }
}

fn regex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Regex, D::Error> {
    let pattern = String::deserialize(deserializer)?;
    Regex::new(&pattern).map_err(|error| {
        D::Error::custom(format!(
            "not a regular expression: {}",
            error.to_string().replace('\n', " ")
        ))
    })
}

impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldSpecVisitor)
    }
}

struct FieldSpecVisitor;

impl<'de> Visitor<'de> for FieldSpecVisitor {
    type Value = FieldSpec;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(
            "a JSON Pointer (\"/payload/size\"), a list of them, or { group = \"NAME\" }",
        )
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<FieldSpec, E> {
        Pointer::parse(text)
            .map(FieldSpec::Pointer)
            .map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<FieldSpec, A::Error> {
        let mut pointers = Vec::new();
        while let Some(pointer) = items.next_element::<Pointer>()? {
            pointers.push(pointer);
        }
        if pointers.is_empty() {
            return Err(A::Error::custom("an empty list names no field"));
        }
        Ok(FieldSpec::Joined(pointers))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<FieldSpec, A::Error> {
        let mut group = None;
        while let Some(key) = entries.next_key::<String>()? {
            if key != "group" || group.is_some() {
                return Err(A::Error::custom(format!(
                    "{key:?}: a field's table holds one key, group (the name of a group of text.regex)"
                )));
            }
            group = Some(entries.next_value::<String>()?);
        }
        group
            .map(FieldSpec::Group)
            .ok_or_else(|| A::Error::custom("a field's table needs group = \"NAME\""))
    }
}

impl<'de> Deserialize<'de> for Expected {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExpectedVisitor)
    }
}

struct ExpectedVisitor;

impl Visitor<'_> for ExpectedVisitor {
    type Value = Expected;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string, an integer, true or false")
    }

    fn visit_str<E>(self, text: &str) -> Result<Expected, E> {
        Ok(Expected::Str(text.to_owned()))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Expected, E> {
        Ok(Expected::Int(number))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Expected, E> {
        Ok(Expected::Bool(value))
    }
}

/// `text` as a TOML string, which shows any character plainly.
pub(crate) fn toml_string(text: &str) -> String {
    // JSON's escapes are all TOML's too.
    serde_json::to_string(text).unwrap_or_default()
}

impl fmt::Display for FieldSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldSpec::Pointer(pointer) => formatter.write_str(&toml_string(pointer.as_str())),
            FieldSpec::Joined(pointers) => {
                let quoted: Vec<String> = pointers
                    .iter()
                    .map(|pointer| toml_string(pointer.as_str()))
                    .collect();
                write!(formatter, "[{}]", quoted.join(", "))
            }
            FieldSpec::Group(name) => write!(formatter, "{{ group = {} }}", toml_string(name)),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Str(text) => formatter.write_str(&toml_string(text)),
            Expected::Int(number) => write!(formatter, "{number}"),
            Expected::Bool(value) => write!(formatter, "{value}"),
        }
    }
}

impl MapSettings {
    /// The mapping in full, as the sources file would say it, defaults
    /// included: `table` is the TOML table's name (`source.map`).
    pub(crate) fn describe(&self, table: &str) -> String {
        let mut out = format!("[{table}]\n");
        let mut line = |key: &str, value: Option<String>, without: &str| {
            let _ = match value {
                Some(value) => writeln!(out, "{key} = {value}"),
                None => writeln!(out, "# {key}: {without}"),
            };
        };
        line(
            "items",
            self.items.as_ref().map(|items| toml_string(items.as_str())),
            "none, what is received is the message (or an array of them)",
        );
        let pairs =
            |pairs: Vec<String>| (!pairs.is_empty()).then(|| format!("{{ {} }}", pairs.join(", ")));
        line(
            "when",
            pairs(
                self.when
                    .iter()
                    .map(|(pointer, value)| format!("{} = {value}", toml_string(pointer.as_str())))
                    .collect(),
            ),
            "none, every message is mapped",
        );
        line(
            "id",
            self.id.as_ref().map(|id| match id {
                FieldSpec::Joined(_) => format!("{id}  # joined with {JOIN:?}"),
                _ => id.to_string(),
            }),
            "none, derived from the signal's content (auto-…)",
        );
        line("symbol", Some(self.symbol.to_string()), "");
        line("side", Some(self.side.to_string()), "");
        line("qty", Some(self.qty.to_string()), "");
        line(
            "price",
            self.price.as_ref().map(ToString::to_string),
            "none, the order fills at the symbol's last price",
        );
        line(
            "ts",
            self.ts.as_ref().map(ToString::to_string),
            "none, the signal rules decide",
        );
        line("ts_unit", Some(toml_string(self.ts_unit.as_str())), "");
        line(
            "side_values",
            pairs(
                self.side_values
                    .iter()
                    .map(|(word, side)| {
                        format!("{} = {}", toml_string(word), toml_string(side.as_str()))
                    })
                    .collect(),
            ),
            "none, side is \"buy\" or \"sell\" as sent",
        );
        if let Some(text) = &self.text {
            let _ = write!(
                out,
                "[{table}.text]\nfrom = {}\nregex = {}\n",
                toml_string(text.from.as_str()),
                toml_string(text.regex.as_str())
            );
        }
        out
    }
}
