//! The exactly-once index: every signal id with a decision in the journal,
//! so a re-read or re-sent signal is a duplicate rather than a second order.
//!
//! It holds every id for the life of the process, and sees one lookup per
//! signal, so it is built for both: the ids are kept end to end in one
//! buffer (no allocation per id), each table entry is 16 bytes (where the
//! id is, and 32 bits of its hash, so the table never hashes an id again
//! when it grows): about 50 bytes an id, against about 80 for a
//! `HashSet<String>`. The hash is std's keyed SipHash: ids come from
//! outside, and crafted ones must not make lookups slow.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hashbrown::HashTable;

#[derive(Default)]
pub(crate) struct DecidedIds {
    keys: RandomState,
    table: HashTable<Entry>,
    /// The ids, end to end.
    text: Vec<u8>,
}

struct Entry {
    /// Where the id starts in `text`.
    start: u64,
    /// Its length; ids are at most 512 bytes (128 characters).
    length: u32,
    hash: u32,
}

impl Entry {
    /// The hash the table sorts by: the kept 32 bits, in both halves, so
    /// the bucket (low bits) and the tag (top bits) both depend on them.
    fn table_hash(&self) -> u64 {
        spread(self.hash)
    }

    fn id<'t>(&self, text: &'t [u8]) -> &'t [u8] {
        let start = usize::try_from(self.start).unwrap_or(usize::MAX);
        text.get(start..)
            .and_then(|rest| rest.get(..self.length as usize))
            .unwrap_or_default()
    }
}

fn spread(hash: u32) -> u64 {
    u64::from(hash) << 32 | u64::from(hash)
}

impl DecidedIds {
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Adds `id`; false when it was there already.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        self.decide_once(id, || ((), true)).is_some()
    }

    /// Runs `decide` unless `id` is here already (`None`: a duplicate),
    /// and adds `id` if `decide` says its outcome takes the id. One hash
    /// of the id either way: the lookup and the insert share it.
    pub(crate) fn decide_once<T>(
        &mut self,
        id: &str,
        decide: impl FnOnce() -> (T, bool),
    ) -> Option<T> {
        let hash = (self.keys.hash_one(id) >> 32) as u32;
        let text = &self.text;
        let found = self.table.find(spread(hash), |entry| {
            entry.hash == hash && entry.id(text) == id.as_bytes()
        });
        if found.is_some() {
            return None;
        }
        let (outcome, takes_id) = decide();
        if takes_id {
            self.add(id, hash);
        }
        Some(outcome)
    }

    fn add(&mut self, id: &str, hash: u32) {
        let entry = Entry {
            start: self.text.len() as u64,
            // An id over 4 GiB cannot get past the 64 KiB line limit; were
            // one here, it would only fail to match itself.
            length: u32::try_from(id.len()).unwrap_or(u32::MAX),
            hash,
        };
        self.text.extend_from_slice(id.as_bytes());
        self.table
            .insert_unique(entry.table_hash(), entry, Entry::table_hash);
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

    #[test]
    fn an_outcome_that_takes_no_id_leaves_it_free() {
        let mut decided = DecidedIds::default();
        assert_eq!(
            decided.decide_once("a", || ("refused", false)),
            Some("refused")
        );
        assert_eq!(
            decided.decide_once("a", || ("filled", true)),
            Some("filled")
        );
        assert_eq!(decided.decide_once("a", || ("again", true)), None);
        assert_eq!(decided.len(), 1);
    }
}
