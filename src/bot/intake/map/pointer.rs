//! JSON Pointers (RFC 6901), all of a mapping's found in one pass over a
//! message: no tree is built, each value found is its own text (a number
//! keeps every digit it was sent with), and what no pointer reaches is
//! only checked, never kept. The pass is [`scan`]'s, for what feeds send,
//! or serde_json's, for the rest.

mod scan;

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Most pointers one mapping may hold: what is found lives in an array of
/// this size on the stack, not in an allocation per message.
pub(crate) const MAX_POINTERS: usize = 32;

/// What a walk found: each pointer's value, by slot, as its JSON text.
pub(crate) type Found<'m> = [Option<&'m str>; MAX_POINTERS];

/// A JSON Pointer: `""` is the whole message, `/a/0/b~1c` is the key `b/c`
/// of the first element of `a`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pointer {
    text: String,
    /// Unescaped (`~1` is `/`, `~0` is `~`).
    segments: Vec<String>,
}

impl Pointer {
    pub(crate) fn parse(text: &str) -> Result<Pointer, String> {
        let segments = match text.strip_prefix('/') {
            Some(rest) => rest.split('/').map(unescape).collect::<Result<_, _>>()?,
            None if text.is_empty() => Vec::new(),
            None => {
                return Err(format!(
                    "{text:?} is not a JSON Pointer: it starts with / (\"/payload/size\"), or is empty for the whole message"
                ))
            }
        };
        Ok(Pointer {
            text: text.to_owned(),
            segments,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pointer::parse(&text).map_err(D::Error::custom)
    }
}

fn unescape(segment: &str) -> Result<String, String> {
    let mut unescaped = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(char) = chars.next() {
        if char != '~' {
            unescaped.push(char);
            continue;
        }
        match chars.next() {
            Some('0') => unescaped.push('~'),
            Some('1') => unescaped.push('/'),
            _ => {
                return Err(format!(
                    "{segment:?}: in a JSON Pointer ~ is written ~0, and / is written ~1"
                ))
            }
        }
    }
    Ok(unescaped)
}

/// A set of pointers as a tree of their segments, walked once per message.
#[derive(Debug)]
pub(crate) struct Finder {
    /// The root first.
    nodes: Vec<Node>,
    slots: usize,
}

#[derive(Debug, Default)]
struct Node {
    children: Vec<Child>,
    /// Where the value at this node goes, if a pointer ends here.
    slot: Option<usize>,
}

#[derive(Debug)]
struct Child {
    key: String,
    /// The array index the key also names (`0`, `17`; not `01` or `-`).
    index: Option<usize>,
    node: usize,
}

impl Default for Finder {
    fn default() -> Self {
        Finder {
            nodes: vec![Node::default()],
            slots: 0,
        }
    }
}

impl Finder {
    /// The slot `pointer`'s value will be found in (the same for the same
    /// pointer), or `None` past [`MAX_POINTERS`].
    pub(crate) fn add(&mut self, pointer: &Pointer) -> Option<usize> {
        let mut at = 0;
        for segment in &pointer.segments {
            at = match self.nodes[at].children.iter().find(|c| c.key == *segment) {
                Some(child) => child.node,
                None => {
                    let node = self.nodes.len();
                    self.nodes.push(Node::default());
                    let index = array_index(segment);
                    self.nodes[at].children.push(Child {
                        key: segment.clone(),
                        index,
                        node,
                    });
                    node
                }
            };
        }
        if let Some(slot) = self.nodes[at].slot {
            return Some(slot);
        }
        if self.slots == MAX_POINTERS {
            return None;
        }
        self.nodes[at].slot = Some(self.slots);
        self.slots += 1;
        self.nodes[at].slot
    }

    /// Walks `json` (a whole JSON text, checked to its end), putting each
    /// pointer's value in its slot of `found`; a pointer to nothing leaves
    /// its slot `None`. Of a key given twice, the last one counts.
    pub(crate) fn find<'m>(
        &self,
        json: &'m str,
        found: &mut Found<'m>,
    ) -> Result<(), serde_json::Error> {
        if scan::find(self, json, found).is_some() {
            return Ok(());
        }
        *found = [None; MAX_POINTERS];
        self.walk(json, found)
    }

    /// [`Finder::find`] by serde_json: the whole grammar, and its errors.
    fn walk<'m>(&self, json: &'m str, found: &mut Found<'m>) -> Result<(), serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        Walk {
            finder: self,
            node: 0,
            found,
        }
        .deserialize(&mut deserializer)?;
        deserializer.end()
    }
}

fn array_index(segment: &str) -> Option<usize> {
    let canonical = segment == "0" || !segment.starts_with('0');
    canonical
        .then(|| segment.parse().ok())
        .flatten()
        .filter(|_| segment.bytes().all(|byte| byte.is_ascii_digit()))
}

struct Walk<'f, 's, 'm> {
    finder: &'f Finder,
    node: usize,
    found: &'s mut Found<'m>,
}

impl<'f, 'm> Walk<'f, '_, 'm> {
    fn children(&self) -> &'f [Child] {
        &self.finder.nodes[self.node].children
    }

    fn child(&mut self, node: usize) -> Walk<'f, '_, 'm> {
        Walk {
            finder: self.finder,
            node,
            found: &mut *self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let finder = self.finder;
        let node = &finder.nodes[self.node];
        if let Some(slot) = node.slot {
            let value = <&RawValue>::deserialize(deserializer)?;
            self.found[slot] = Some(value.get());
            // A pointer may end inside another's value: walk that again.
            if !node.children.is_empty() {
                let mut inner = serde_json::Deserializer::from_str(value.get());
                inner.deserialize_any(self).map_err(D::Error::custom)?;
            }
            return Ok(());
        }
        if node.children.is_empty() {
            IgnoredAny::deserialize(deserializer)?;
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut entries: A) -> Result<(), A::Error> {
        let children = self.children();
        while let Some(node) = entries.next_key_seed(Key(children))? {
            match node {
                Some(node) => entries.next_value_seed(self.child(node))?,
                None => {
                    entries.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut items: A) -> Result<(), A::Error> {
        let children = self.children();
        for index in 0.. {
            let child = children
                .iter()
                .find(|child| child.index == Some(index))
                .map(|child| child.node);
            let more = match child {
                Some(node) => items.next_element_seed(self.child(node))?.is_some(),
                None => items.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                break;
            }
        }
        Ok(())
    }

    // A scalar where the pointer goes on holds nothing it points to.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// An object's key, compared with a node's children without copying it:
/// the child it names, if any.
struct Key<'c>(&'c [Child]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self
            .0
            .iter()
            .find(|child| child.key == key)
            .map(|child| child.node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_all(pointers: &[&str], json: &str) -> Result<Vec<Option<String>>, String> {
        let mut finder = Finder::default();
        let slots: Vec<usize> = pointers
            .iter()
            .map(|text| finder.add(&Pointer::parse(text).unwrap()).unwrap())
            .collect();
        let mut found: Found<'_> = [None; MAX_POINTERS];
        finder
            .find(json, &mut found)
            .map_err(|error| error.to_string())?;
        Ok(slots
            .into_iter()
            .map(|slot| found[slot].map(str::to_owned))
            .collect())
    }

    #[test]
    fn finds_what_value_pointer_finds_keeping_the_text() {
        let json =
            r#"{"a":{"b/c":[10,{"d~e":0.1000}],"":"empty key","n":null},"x":1e2,"s":"t\u0041"}"#;
        let pointers = [
            "",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a//",
            "/a/",
            "/x",
            "/s",
            "/a/n",
            "/a/zz",
            "/a/b~1c/2",
            "/x/y",
        ];
        let found = find_all(&pointers, json).unwrap();
        let tree: serde_json::Value = serde_json::from_str(json).unwrap();
        for (pointer, found) in pointers.iter().zip(&found) {
            let expected = tree.pointer(pointer);
            assert_eq!(
                found
                    .as_deref()
                    .map(|text| serde_json::from_str::<serde_json::Value>(text).unwrap()),
                expected.cloned(),
                "{pointer}"
            );
        }
        // The number as it was written, not as an f64 would print it.
        assert_eq!(found[2].as_deref(), Some("0.1000"));
        assert_eq!(found[5].as_deref(), Some("1e2"));
    }

    #[test]
    fn a_pointer_inside_another_is_found_too() {
        let found = find_all(&["/p", "/p/q"], r#"{"p":{"q":"r"}}"#).unwrap();
        assert_eq!(found[0].as_deref(), Some(r#"{"q":"r"}"#));
        assert_eq!(found[1].as_deref(), Some(r#""r""#));
    }

    #[test]
    fn array_indexes_are_canonical() {
        let json = r#"{"a":["zero","one"]}"#;
        let found = find_all(&["/a/1", "/a/01", "/a/-", "/a/+1"], json).unwrap();
        assert_eq!(found, [Some(r#""one""#.to_owned()), None, None, None]);
    }

    #[test]
    fn the_last_of_a_repeated_key_counts() {
        let found = find_all(&["/k"], r#"{"k":1,"k":2}"#).unwrap();
        assert_eq!(found[0].as_deref(), Some("2"));
    }

    #[test]
    fn bad_json_is_an_error_wherever_it_is() {
        for json in [
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"{"b":[1,}"#,
            r#"{"a":NaN}"#,
            "",
        ] {
            assert!(find_all(&["/a"], json).is_err(), "{json}");
        }
        // Deep nesting is only skipped over, without recursion.
        let deep = format!("{{\"b\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(find_all(&["/a"], &deep), Ok(vec![None]));
    }

    #[test]
    fn pointers_are_checked() {
        assert!(Pointer::parse("payload/size").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert!(Pointer::parse("/a~").is_err());
        assert_eq!(
            Pointer::parse("/a~1b/~0").unwrap().segments,
            ["a/b".to_owned(), "~".to_owned()]
        );
        assert!(Pointer::parse("").unwrap().segments.is_empty());
    }

    #[test]
    fn slots_are_bounded_and_shared() {
        let mut finder = Finder::default();
        let pointer = Pointer::parse("/same").unwrap();
        assert_eq!(finder.add(&pointer), finder.add(&pointer));
        for index in 1..MAX_POINTERS {
            assert!(finder
                .add(&Pointer::parse(&format!("/{index}")).unwrap())
                .is_some());
        }
        assert_eq!(finder.add(&Pointer::parse("/one/more").unwrap()), None);
    }
}
