//! The exactly-once index: every signal id with a decision in the journal,
//! so a re-read or re-sent signal is a duplicate rather than a second order.
//!
//! It holds every id for the life of the process, and sees one lookup per
//! signal, so it is built for both: the ids are kept end to end in one
//! buffer (no allocation per id, and less than half the memory of a
//! `HashSet<String>`), and the table keeps each id's hash (one hash per
//! signal, none when the table grows). The hash is std's keyed SipHash:
//! ids come from outside, and crafted ones must not make lookups slow.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hashbrown::HashTable;

#[derive(Default)]
pub struct DecidedIds {
    keys: RandomState,
    table: HashTable<Entry>,
    /// The ids, end to end.
    text: Vec<u8>,
}

struct Entry {
    hash: u64,
    /// Where the id is in `text`.
    start: usize,
    end: usize,
}

impl DecidedIds {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Adds `id`; false when it was there already.
    pub fn insert(&mut self, id: &str) -> bool {
        let hash = self.keys.hash_one(id);
        let text = &self.text;
        let found = self.table.find(hash, |entry| {
            entry.hash == hash && text[entry.start..entry.end] == *id.as_bytes()
        });
        if found.is_some() {
            return false;
        }
        let start = self.text.len();
        self.text.extend_from_slice(id.as_bytes());
        let entry = Entry {
            hash,
            start,
            end: self.text.len(),
        };
        self.table.insert_unique(hash, entry, |entry| entry.hash);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn behaves_as_a_set(ids in proptest::collection::vec("[a-c]{0,3}|\\PC{0,130}", 0..200)) {
            let mut decided = DecidedIds::default();
            let mut model = std::collections::HashSet::new();
            for id in &ids {
                proptest::prop_assert_eq!(decided.insert(id), model.insert(id.clone()));
            }
            proptest::prop_assert_eq!(decided.len(), model.len());
        }
    }
}
