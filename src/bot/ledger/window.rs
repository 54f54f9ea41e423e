//! The exactly-once window: the ids decided within `DEDUPE_WINDOW`, so a
//! re-read or re-sent signal is a duplicate rather than a second order,
//! in memory proportional to the signals in the window, not to the bot's
//! lifetime.
//!
//! Its clock is the latest decision time it has seen (a record's `at`); it
//! never goes back, so replaying the journal moves it exactly as the live
//! decisions did. Ids leave in decision order: the oldest decision goes
//! once its signal's `ts` is behind `clock - span`, and a younger one never
//! leaves before it. An id is therefore remembered at least while its `ts`
//! is within the window (and at most `MAX_CLOCK_SKEW` longer), and the loop
//! refuses a signal whose `ts` is already behind (`too_old`): an id that
//! has been forgotten can never be decided again with the same `ts`.
//!
//! The set is a pure function of the ids taken, in order, and the clock:
//! whenever the clock moves or an id is taken, the longest run of the
//! oldest ids whose `ts` is behind the cutoff leaves. Live decisions and a
//! replay of their records (whole or from a snapshot) thus hold the same
//! set at every record.
//!
//! Layout, built for one lookup per signal at millions a second: the ids
//! are kept in decision order, end to end, in 64 KiB chunks, each as
//! `[ts: i64 LE][length: u16 LE][id]`; each table entry is 16 bytes (where
//! the record is, its length, and 32 bits of the id's hash, so the table
//! never hashes an id again when it grows). Forgetting pops records off the
//! front and frees whole chunks. A full chunk never changes again, so a
//! snapshot shares it (an `Arc`) instead of copying the ids. The hash is
//! std's keyed SipHash: ids come from outside, and crafted ones must not
//! make lookups slow. Its keys are one set a process ([`id_hash`]), so a
//! source hashes a signal's id on its own thread, where it parsed the line,
//! and the loop, which bounds ingest, does not.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;

const CHUNK: usize = 64 << 10;
/// `ts` and the id's length, before each id.
const HEADER: usize = 10;
/// Longest id the window holds. The parser allows 128 characters (at most
/// 512 bytes); a journal or snapshot with a longer id is refused as corrupt.
pub(crate) const MAX_ID_BYTES: usize = 1024;

pub(crate) struct Window {
    table: HashTable<Entry>,
    /// Full chunks, oldest first: never written again.
    sealed: VecDeque<Arc<Vec<u8>>>,
    /// The chunk being filled.
    active: Vec<u8>,
    /// Number of the oldest chunk held (`sealed[0]`, or `active` when no
    /// chunk is sealed); chunk `n` holds the records at `n * CHUNK ..`.
    first_chunk: u64,
    /// Where the oldest remembered record starts in the oldest chunk.
    front: usize,
    span_ms: i64,
    clock_ms: i64,
}

struct Entry {
    /// Where the record starts: chunk number × CHUNK + offset in it.
    start: u64,
    /// The id's length in bytes.
    length: u32,
    hash: u32,
}

impl Entry {
    /// The hash the table sorts by: the kept 32 bits, in both halves, so
    /// the bucket (low bits) and the tag (top bits) both depend on them.
    fn table_hash(&self) -> u64 {
        spread(self.hash)
    }
}

/// The keys of every window's hash: one set a process, drawn at random
/// on first use, so an id hashed on any thread is found in whichever
/// window the loop holds (a recovered one, a snapshot's).
static KEYS: OnceLock<RandomState> = OnceLock::new();

/// The 32 bits of `id`'s keyed hash that a window keeps.
#[inline]
pub(crate) fn id_hash(id: &str) -> u32 {
    hash_bytes(id.as_bytes())
}

/// Hashes the bytes as `str` hashes itself (they are always an id's),
/// without a length prefix: one SipHash write fewer than `[u8]`'s.
#[inline]
fn hash_bytes(id: &[u8]) -> u32 {
    use std::hash::Hasher;
    let mut hasher = KEYS.get_or_init(RandomState::new).build_hasher();
    hasher.write(id);
    hasher.write_u8(0xff);
    (hasher.finish() >> 32) as u32
}

fn spread(hash: u32) -> u64 {
    u64::from(hash) << 32 | u64::from(hash)
}

/// A record's `ts` and id at `at` in `chunk`.
fn record(chunk: &[u8], at: usize) -> Option<(i64, &[u8])> {
    let header = chunk.get(at..at + HEADER)?;
    let ts = i64::from_le_bytes(header[..8].try_into().ok()?);
    let length = usize::from(u16::from_le_bytes(header[8..].try_into().ok()?));
    Some((ts, chunk.get(at + HEADER..at + HEADER + length)?))
}

/// The chunks and the offset of the front, as the table's borrow needs them.
struct Chunks<'w> {
    sealed: &'w VecDeque<Arc<Vec<u8>>>,
    active: &'w [u8],
    first_chunk: u64,
}

impl Chunks<'_> {
    fn id(&self, entry: &Entry) -> &[u8] {
        let chunk = (entry.start / CHUNK as u64).wrapping_sub(self.first_chunk);
        let at = (entry.start % CHUNK as u64) as usize + HEADER;
        let bytes = match self.sealed.get(chunk as usize) {
            Some(sealed) => sealed.as_slice(),
            None => self.active,
        };
        bytes
            .get(at..at + entry.length as usize)
            .unwrap_or_default()
    }
}

impl Window {
    pub(crate) fn new(span_ms: i64) -> Window {
        Window {
            table: HashTable::new(),
            sealed: VecDeque::new(),
            active: Vec::new(),
            first_chunk: 0,
            front: 0,
            span_ms,
            clock_ms: i64::MIN,
        }
    }

    /// Ids remembered.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes of the remembered records (what a snapshot writes of them).
    pub(crate) fn bytes(&self) -> usize {
        let sealed: usize = self.sealed.iter().map(|chunk| chunk.len()).sum();
        sealed + self.active.len() - self.front
    }

    /// The latest decision time seen, epoch ms (`i64::MIN` before any).
    pub(crate) fn clock(&self) -> i64 {
        self.clock_ms
    }

    /// DEDUPE_WINDOW, ms.
    pub(crate) fn span_ms(&self) -> i64 {
        self.span_ms
    }

    /// Signals with a `ts` before this are too old to decide.
    pub(crate) fn cutoff(&self) -> i64 {
        self.clock_ms.saturating_sub(self.span_ms)
    }

    /// Whether `id` (hashed by [`id_hash`]) is remembered.
    #[inline]
    pub(crate) fn contains(&self, hash: u32, id: &str) -> bool {
        let chunks = self.chunks();
        self.table
            .find(spread(hash), |entry| {
                entry.hash == hash && chunks.id(entry) == id.as_bytes()
            })
            .is_some()
    }

    fn chunks(&self) -> Chunks<'_> {
        Chunks {
            sealed: &self.sealed,
            active: &self.active,
            first_chunk: self.first_chunk,
        }
    }

    /// Remembers `id`, decided for a signal of time `ts`; false (and
    /// nothing changes) when it is remembered already.
    pub(crate) fn insert(&mut self, hash: u32, id: &str, ts: i64) -> bool {
        if self.contains(hash, id) {
            return false;
        }
        self.insert_new(hash, id, ts);
        true
    }

    /// [`Window::insert`] of an id the caller has just found absent (the
    /// loop's admission, for the decision it then records): one lookup a
    /// signal, not two.
    #[inline]
    pub(crate) fn insert_new(&mut self, hash: u32, id: &str, ts: i64) {
        debug_assert!(!self.contains(hash, id), "{id} is remembered already");
        // Longer ids never get here (the parser allows 512 bytes, the
        // journal and snapshot readers refuse more); one that did would not
        // be remembered, and, too long to parse, never decided either.
        if id.len() > MAX_ID_BYTES {
            return;
        }
        let bytes = id.as_bytes();
        if self.active.len() + HEADER + bytes.len() > CHUNK {
            let full = std::mem::replace(&mut self.active, Vec::with_capacity(CHUNK));
            self.sealed.push_back(Arc::new(full));
        } else if self.active.capacity() == 0 {
            self.active.reserve_exact(CHUNK);
        }
        let chunk = self.first_chunk + self.sealed.len() as u64;
        let entry = Entry {
            start: chunk * CHUNK as u64 + self.active.len() as u64,
            length: bytes.len() as u32,
            hash,
        };
        self.active.extend_from_slice(&ts.to_le_bytes());
        self.active
            .extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        self.active.extend_from_slice(bytes);
        self.table
            .insert_unique(entry.table_hash(), entry, Entry::table_hash);
        // An id whose ts is already behind the cutoff (a replayed record of
        // a release without the window) leaves as the rule says, now, if
        // nothing younger is ahead of it; one within the window changes
        // nothing that could leave.
        if ts < self.cutoff() {
            self.forget();
        }
    }

    /// Moves the clock to `now_ms` (never back), forgetting what fell out.
    pub(crate) fn advance(&mut self, now_ms: i64) {
        if now_ms > self.clock_ms {
            self.clock_ms = now_ms;
            self.forget();
        }
    }

    /// Pops the oldest records while their `ts` is behind the cutoff.
    fn forget(&mut self) {
        let cutoff = self.cutoff();
        let mut forgot = false;
        loop {
            let chunk = self.sealed.front().map_or(&self.active[..], |c| c);
            let Some((ts, id)) = record(chunk, self.front) else {
                // The oldest chunk is used up: free it (or, the active one,
                // start it over; no entry points into it any more).
                if self.sealed.pop_front().is_some() {
                    self.first_chunk += 1;
                    self.front = 0;
                    continue;
                }
                self.active.clear();
                self.front = 0;
                break;
            };
            if ts >= cutoff {
                break;
            }
            let start = self.first_chunk * CHUNK as u64 + self.front as u64;
            let length = id.len();
            let hash = hash_bytes(id);
            if let Ok(entry) = self
                .table
                .find_entry(spread(hash), |entry| entry.start == start)
            {
                entry.remove();
            }
            self.front += HEADER + length;
            forgot = true;
        }
        // After a burst, give the table's memory back as the window drains.
        if forgot && self.table.capacity() > 1024 && self.table.len() * 4 < self.table.capacity() {
            self.table
                .shrink_to(self.table.len() * 2, Entry::table_hash);
        }
    }

    /// The remembered ids, oldest decision first, with their signals' `ts`.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, &str)> + '_ {
        let mut chunks = self
            .sealed
            .iter()
            .map(|chunk| chunk.as_slice())
            .chain(std::iter::once(&self.active[..]));
        let mut current = chunks.next().unwrap_or_default();
        let mut at = self.front;
        std::iter::from_fn(move || loop {
            match record(current, at) {
                Some((ts, id)) => {
                    at += HEADER + id.len();
                    return Some((ts, std::str::from_utf8(id).unwrap_or_default()));
                }
                None => {
                    current = chunks.next()?;
                    at = 0;
                }
            }
        })
    }

    /// What a snapshot needs to write the window later, on another thread:
    /// the full chunks shared, the one being filled copied.
    pub(crate) fn view(&self) -> WindowView {
        WindowView {
            sealed: self.sealed.iter().cloned().collect(),
            active: self.active.clone(),
            front: self.front,
            ids: self.len(),
            clock_ms: self.clock_ms,
            span_ms: self.span_ms,
        }
    }

    /// Rebuilds the window from a snapshot's records (`ids` of them, as
    /// its header says: the table is sized once, not grown by doubling)
    /// at `clock_ms`. The oldest records that the clock has already put
    /// out of the window are skipped, not loaded and forgotten: the same
    /// set, without the cost of a burst long gone.
    pub(crate) fn load(
        &mut self,
        mut records: &[u8],
        ids: usize,
        clock_ms: i64,
    ) -> Result<(), String> {
        let cutoff = clock_ms.saturating_sub(self.span_ms);
        let mut skipped = 0;
        while let Some((_, id)) = record(records, 0).filter(|(ts, _)| *ts < cutoff) {
            records = &records[HEADER + id.len()..];
            skipped += 1;
        }
        // No more than the bytes can hold, whatever the header says.
        self.table.reserve(
            ids.saturating_sub(skipped)
                .min(records.len() / (HEADER + 1)),
            Entry::table_hash,
        );
        while !records.is_empty() {
            let (ts, id) = record(records, 0)
                .ok_or_else(|| "the window's records end mid-record".to_owned())?;
            let id = std::str::from_utf8(id)
                .map_err(|_| "an id in the window is not UTF-8".to_owned())?;
            if id.len() > MAX_ID_BYTES {
                return Err(format!("an id in the window is over {MAX_ID_BYTES} bytes"));
            }
            if !self.insert(id_hash(id), id, ts) {
                return Err(format!("id {id:?} is twice in the window"));
            }
            records = &records[HEADER + id.len()..];
        }
        self.advance(clock_ms);
        Ok(())
    }
}

/// The window at one instant, for the snapshot writer.
pub(crate) struct WindowView {
    sealed: Vec<Arc<Vec<u8>>>,
    active: Vec<u8>,
    front: usize,
    pub(crate) ids: usize,
    pub(crate) clock_ms: i64,
    pub(crate) span_ms: i64,
}

impl WindowView {
    fn slices(&self) -> impl Iterator<Item = &[u8]> {
        let front = self.front;
        self.sealed
            .iter()
            .map(|chunk| chunk.as_slice())
            .chain(std::iter::once(self.active.as_slice()))
            .enumerate()
            .map(move |(index, chunk)| if index == 0 { &chunk[front..] } else { chunk })
    }

    pub(crate) fn bytes(&self) -> usize {
        self.slices().map(<[u8]>::len).sum()
    }

    /// Writes the records, oldest first, as [`Window::load`] reads them.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        for slice in self.slices() {
            out.write_all(slice)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window::new(100)
    }

    fn insert(window: &mut Window, id: &str, ts: i64) -> bool {
        window.insert(id_hash(id), id, ts)
    }

    fn ids(window: &Window) -> Vec<(i64, String)> {
        window.iter().map(|(ts, id)| (ts, id.to_owned())).collect()
    }

    proptest::proptest! {
        #[test]
        fn behaves_as_a_set_while_nothing_is_forgotten(ids in proptest::collection::vec("[a-c]{0,3}|\\PC{0,130}", 0..200)) {
            let mut window = window();
            window.advance(0);
            let mut model = std::collections::HashSet::new();
            for id in &ids {
                proptest::prop_assert_eq!(insert(&mut window, id, 0), model.insert(id.clone()));
            }
            proptest::prop_assert_eq!(window.len(), model.len());
            for id in &ids {
                proptest::prop_assert!(window.contains(id_hash(id), id));
            }
        }

        /// Against a model: the remembered ids are the taken ones less the
        /// longest run of the oldest whose ts is behind the cutoff; and a
        /// snapshot's view loads into the same window.
        #[test]
        fn forgets_the_oldest_run_behind_the_cutoff(
            steps in proptest::collection::vec((0u8..40, -50i64..150, 0i64..30), 0..400),
            later in 0i64..300,
        ) {
            let mut window = window();
            let mut model: Vec<(i64, String)> = Vec::new();
            let mut clock = i64::MIN;
            for (id, ts, tick) in steps {
                let id = format!("id-{id}-{}", "x".repeat(usize::from(id) * 7));
                if tick < 5 {
                    let now = clock.max(0) + tick * 10;
                    window.advance(now);
                    clock = clock.max(now);
                } else {
                    let known = model.iter().any(|(_, known)| *known == id);
                    proptest::prop_assert_eq!(insert(&mut window, &id, ts), !known);
                    if !known {
                        model.push((ts, id));
                    }
                }
                let cutoff = clock.saturating_sub(100);
                let gone = model.iter().take_while(|(ts, _)| *ts < cutoff).count();
                model.drain(..gone);
                proptest::prop_assert_eq!(ids(&window), model.clone());
                proptest::prop_assert_eq!(window.len(), model.len());
            }
            let view = window.view();
            let mut bytes = Vec::new();
            view.write_to(&mut bytes).unwrap();
            proptest::prop_assert_eq!(bytes.len(), window.bytes());
            let mut loaded = Window::new(100);
            loaded.load(&bytes, view.ids, view.clock_ms).unwrap();
            proptest::prop_assert_eq!(ids(&loaded), ids(&window));
            proptest::prop_assert_eq!(loaded.clock(), window.clock());
            // Loaded at a later clock: what leaving the window then leaves.
            let now = window.clock().max(0) + later;
            let mut skipping = Window::new(100);
            skipping.load(&bytes, view.ids, now).unwrap();
            window.advance(now);
            proptest::prop_assert_eq!(ids(&skipping), ids(&window));
            proptest::prop_assert_eq!(skipping.len(), window.len());
            proptest::prop_assert_eq!(skipping.clock(), window.clock());
        }
    }

    #[test]
    fn memory_follows_the_window_across_many_chunks() {
        let mut window = Window::new(1_000);
        for second in 0..200_i64 {
            window.advance(second * 1_000);
            for index in 0..1_000 {
                let id = format!("signal-{second}-{index}");
                assert!(insert(&mut window, &id, second * 1_000));
            }
        }
        // One second of ids in the window (and the second being filled).
        assert!(window.len() <= 2_000, "{}", window.len());
        assert!(window.sealed.len() <= 2, "{} chunks", window.sealed.len());
        assert!(
            window.table.capacity() < 8_192,
            "{}",
            window.table.capacity()
        );
        assert!(window.contains(id_hash("signal-199-5"), "signal-199-5"));
        assert!(!window.contains(id_hash("signal-100-5"), "signal-100-5"));
    }

    #[test]
    fn a_view_shares_full_chunks_and_survives_later_forgetting() {
        let mut window = Window::new(10);
        window.advance(0);
        for index in 0..10_000 {
            insert(&mut window, &format!("id-{index}"), 0);
        }
        let before = ids(&window);
        let view = window.view();
        window.advance(1_000);
        assert_eq!(window.len(), 0);
        let mut bytes = Vec::new();
        view.write_to(&mut bytes).unwrap();
        let mut loaded = Window::new(10);
        loaded.load(&bytes, 0, 0).unwrap();
        assert_eq!(ids(&loaded), before);
        let error = Window::new(10)
            .load(&bytes[..bytes.len() - 1], 0, 0)
            .unwrap_err();
        assert!(error.contains("mid-record"), "{error}");
        let error = loaded.load(&bytes, 0, 0).unwrap_err();
        assert!(error.contains("twice"), "{error}");
    }
}
