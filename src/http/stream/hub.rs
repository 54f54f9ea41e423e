//! What every stream client reads from, on the stream thread: the journal
//! (fills and rejects, up to what is durable) through a cache of aligned
//! chunks shared by all clients, and a bounded ring of the events the
//! journal does not hold.
//!
//! Clients pull at their own pace. The journal is the queue: a client that
//! falls behind reads on from the journal where it is, and a chunk is read
//! and turned into JSON once however many clients read it. Only the ring
//! of other events can overrun a client; it is then told how many it lost.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::message::{event_json, record_json, Kind, Kinds};
use crate::bot::events::{self, Event};
use crate::bot::ledger::reader::JournalReader;
use crate::bot::ledger::record::Record;
use crate::health::{HealthState, Status};

/// Records a chunk spans: chunk `k` holds the fills and rejects with seq
/// in `(k * CHUNK, (k + 1) * CHUNK]`.
const CHUNK: u64 = 1024;

/// The cache's bound: about 160 chunks of fills, 160,000 records, the
/// spread between the fastest and the slowest client it absorbs before a
/// chunk is read from the journal a second time.
const CACHE_BYTES: usize = 32 << 20;

/// Events held for clients that have not sent them yet.
const RING: usize = 16 * 1024;

/// One message, shared by every client that sends it.
#[derive(Clone, Debug)]
pub struct Item {
    pub seq: u64,
    pub kind: Kind,
    pub json: Utf8Bytes,
}

/// Where one client is: past the journal's record `seq`, and before the
/// ring's event number `live`.
#[derive(Debug)]
pub struct Cursor {
    pub seq: u64,
    live: u64,
    kinds: Kinds,
}

struct Chunk {
    /// Read up to this seq.
    upto: u64,
    items: Vec<Item>,
    bytes: usize,
    /// When last read, for eviction.
    used: u64,
}

pub struct Hub {
    reader: JournalReader,
    events: Arc<events::Shared>,
    health: Arc<HealthState>,
    durable: u64,
    chunks: HashMap<u64, Chunk>,
    cache_bytes: usize,
    clock: u64,
    ring: VecDeque<Item>,
    /// The number of `ring[0]`; events are numbered from 0 as they come.
    ring_first: u64,
    /// The verdict last told, so only changes are.
    health_told: Option<Status>,
    /// Clients wait on it for more to send.
    pub changed: Rc<Notify>,
    /// Set at the daemon's stop: clients send what is durable, then close.
    pub finishing: bool,
    /// Journal reads that failed (`/health` does not depend on them).
    pub read_errors: u64,
}

impl Hub {
    pub fn new(
        reader: JournalReader,
        events: Arc<events::Shared>,
        health: Arc<HealthState>,
    ) -> Hub {
        Hub {
            health_told: Some(health.view().verdict().status),
            durable: events.durable(),
            reader,
            events,
            health,
            chunks: HashMap::new(),
            cache_bytes: 0,
            clock: 0,
            ring: VecDeque::new(),
            ring_first: 0,
            changed: Rc::new(Notify::new()),
            finishing: false,
            read_errors: 0,
        }
    }

    pub fn durable(&self) -> u64 {
        self.durable
    }

    pub fn reader(&self) -> &JournalReader {
        &self.reader
    }

    /// A client from `after` (a seq it has seen), of `kinds`. An `after`
    /// past the journal's end is taken as its end.
    pub fn cursor(&self, after: u64, kinds: Kinds) -> Cursor {
        Cursor {
            seq: after.min(self.durable),
            live: self.ring_first + self.ring.len() as u64,
            kinds,
        }
    }

    /// Takes what the bot published: how far the journal is durable, and
    /// its events; wakes the clients if anything is new. Returns how many
    /// events the bot could not queue for it meanwhile.
    pub fn refresh(&mut self) -> u64 {
        let durable = self.events.durable();
        let mut taken = Vec::new();
        let lost = self.events.take(&mut taken);
        let mut moved = durable > self.durable;
        self.durable = self.durable.max(durable);
        for event in taken {
            moved = true;
            self.add(event);
        }
        if lost > 0 {
            moved = true;
            tracing::warn!(lost, "the stream fell behind the bot; events lost");
            self.push(
                Kind::Dropped,
                self.durable,
                serde_json::json!({ "count": lost }),
            );
        }
        if moved {
            self.changed.notify_waiters();
        }
        lost
    }

    /// Tells the clients when the verdict's status changed since last told.
    pub fn check_health(&mut self) {
        let verdict = self.health.view().verdict();
        if self.health_told == Some(verdict.status) {
            return;
        }
        self.health_told = Some(verdict.status);
        let fields = self.health_fields();
        self.push(Kind::Health, self.durable, fields);
        self.changed.notify_waiters();
    }

    /// The verdict now, as the first message for a client that just came:
    /// numbered where the client starts, so the numbers it sees never go
    /// down (an SSE client resumes from the last one).
    pub fn health_now(&self, cursor: &Cursor) -> Item {
        Item {
            seq: cursor.seq,
            kind: Kind::Health,
            json: event_json(Kind::Health, cursor.seq, self.health_fields()).into(),
        }
    }

    /// A health message's fields: the verdict, and the heartbeat's age
    /// beside the stall timeout, so a reader tells a stall from another
    /// failure without asking the status route.
    fn health_fields(&self) -> serde_json::Value {
        let view = self.health.view();
        let verdict = view.verdict();
        let seconds = |age: std::time::Duration| (age.as_secs_f64() * 1000.0).round() / 1000.0;
        serde_json::json!({
            "status": verdict.status,
            "reasons": verdict.reasons,
            "heartbeat_age_seconds": view.heartbeat_age.map(seconds),
            "stall_timeout_seconds": view.stall_timeout.as_secs_f64(),
        })
    }

    fn add(&mut self, event: Event) {
        let now = self.durable;
        match event {
            Event::Duplicates(duplicates) => {
                for (seq, id, source) in duplicates.iter() {
                    self.push(
                        Kind::Duplicate,
                        seq,
                        serde_json::json!({ "id": id, "src": source }),
                    );
                }
            }
            Event::Source {
                source,
                status,
                problem,
            } => {
                self.push(
                    Kind::Source,
                    now,
                    serde_json::json!({ "source": source, "status": status, "problem": problem }),
                );
            }
            Event::Start {
                journal_records,
                recovered_fills,
            } => self.push(
                Kind::Start,
                now,
                serde_json::json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "journal_records": journal_records,
                    "recovered_fills": recovered_fills,
                }),
            ),
            Event::Stop {
                signals,
                fills,
                rejects,
            } => self.push(
                Kind::Stop,
                now,
                serde_json::json!({ "signals": signals, "fills": fills, "rejects": rejects }),
            ),
        }
    }

    fn push(&mut self, kind: Kind, seq: u64, fields: serde_json::Value) {
        if self.ring.len() == RING {
            self.ring.pop_front();
            self.ring_first += 1;
        }
        self.ring.push_back(Item {
            seq,
            kind,
            json: event_json(kind, seq, fields).into(),
        });
    }

    /// Appends to `out` what `cursor` is to send next, in order, at most
    /// `room` messages (fewer when caught up), and moves it on.
    pub fn next(
        &mut self,
        cursor: &mut Cursor,
        out: &mut Vec<Item>,
        room: usize,
    ) -> io::Result<()> {
        while out.len() < room {
            if cursor.live < self.ring_first {
                let lost = self.ring_first - cursor.live;
                cursor.live = self.ring_first;
                if cursor.kinds.has(Kind::Dropped) {
                    out.push(Item {
                        seq: cursor.seq,
                        kind: Kind::Dropped,
                        json: event_json(
                            Kind::Dropped,
                            cursor.seq,
                            serde_json::json!({ "count": lost }),
                        )
                        .into(),
                    });
                    continue;
                }
            }
            let event = self.ring.get((cursor.live - self.ring_first) as usize);
            // The journal up to the next event (an event follows the record
            // it names), and never past what is durable.
            let until = event.map_or(self.durable, |event| event.seq.min(self.durable));
            if cursor.seq < until {
                if cursor.kinds.any_journaled() {
                    let left = room - out.len();
                    cursor.seq = self.journal(cursor.seq, until, cursor.kinds, out, left)?;
                } else {
                    cursor.seq = until;
                }
                continue;
            }
            match event {
                Some(event) if event.seq <= cursor.seq => {
                    if cursor.kinds.has(event.kind) {
                        out.push(event.clone());
                    }
                    cursor.live += 1;
                }
                // Caught up, or the next event waits for its record to be durable.
                _ => break,
            }
        }
        Ok(())
    }

    /// Appends fills and rejects with seq in `(after, until]` of `kinds`,
    /// at most `room`, from one chunk; returns the seq it got to.
    fn journal(
        &mut self,
        after: u64,
        until: u64,
        kinds: Kinds,
        out: &mut Vec<Item>,
        mut room: usize,
    ) -> io::Result<u64> {
        let index = after / CHUNK;
        let end = until.min((index + 1) * CHUNK);
        let chunk = self.chunk(index, end)?;
        let first = chunk.items.partition_point(|item| item.seq <= after);
        let mut reached = after;
        for item in chunk.items[first..]
            .iter()
            .take_while(|item| item.seq <= end)
        {
            if kinds.has(item.kind) {
                if room == 0 {
                    return Ok(reached);
                }
                out.push(item.clone());
                room -= 1;
            }
            reached = item.seq;
        }
        Ok(end)
    }

    /// Chunk `index`, read from the journal up to `end` at least.
    fn chunk(&mut self, index: u64, end: u64) -> io::Result<&Chunk> {
        self.clock += 1;
        let chunk = self.chunks.entry(index).or_insert_with(|| Chunk {
            upto: index * CHUNK,
            items: Vec::new(),
            bytes: 0,
            used: 0,
        });
        chunk.used = self.clock;
        if chunk.upto < end {
            let wanted = (end - chunk.upto) as usize;
            let records = self
                .reader
                .after(chunk.upto, wanted, |record| {
                    matches!(record, Record::Fill { .. } | Record::Reject { .. })
                })
                .inspect_err(|_| self.read_errors += 1)?;
            let before = chunk.bytes;
            for (seq, record) in records.into_iter().take_while(|(seq, _)| *seq <= end) {
                if let Some((kind, json)) = record_json(seq, &record, true) {
                    chunk.bytes += json.len() + std::mem::size_of::<Item>();
                    chunk.items.push(Item {
                        seq,
                        kind,
                        json: json.into(),
                    });
                }
            }
            chunk.upto = end;
            self.cache_bytes += chunk.bytes - before;
            self.evict(index);
        }
        Ok(&self.chunks[&index])
    }

    /// Drops the least recently read chunks (never `keep`) past the bound.
    fn evict(&mut self, keep: u64) {
        while self.cache_bytes > CACHE_BYTES {
            let Some(oldest) = self
                .chunks
                .iter()
                .filter(|(index, _)| **index != keep)
                .min_by_key(|(_, chunk)| chunk.used)
                .map(|(index, _)| *index)
            else {
                return;
            };
            if let Some(chunk) = self.chunks.remove(&oldest) {
                self.cache_bytes -= chunk.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bot::events::{Duplicates, Events};
    use crate::bot::ledger::journal::test_fill;
    use crate::bot::ledger::record::write_line;

    fn fill(id: u64) -> String {
        let mut line = Vec::new();
        write_line(&test_fill(&format!("f{id}")), &mut line);
        String::from_utf8(line).unwrap()
    }

    fn seqs(items: &[Item]) -> Vec<(u64, &'static str)> {
        items
            .iter()
            .map(|item| (item.seq, item.kind.as_str()))
            .collect()
    }

    #[test]
    fn clients_get_the_journal_and_the_events_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let journal: String = (1..=2500).map(fill).collect();
        std::fs::write(dir.path().join("journal.jsonl"), journal).unwrap();
        let events = Events::enabled();
        let shared = Arc::clone(events.shared().unwrap());
        let health = HealthState::new(Duration::from_secs(5), Duration::from_secs(5));
        let mut hub = Hub::new(
            JournalReader::open(dir.path()).unwrap(),
            Arc::clone(&shared),
            health,
        );
        let mut from_start = hub.cursor(0, Kinds::ALL);
        let mut live = hub.cursor(hub.durable(), Kinds::parse("duplicate,fill").unwrap());
        let mut duplicates = Duplicates::default();
        duplicates.add(3, "f2", "stdin");
        duplicates.add(2400, "f1", "stdin");
        // Durable only up to 2000: the journal beyond it is not shown yet,
        // nor the duplicate that follows record 2400.
        events.publish(2000, &mut duplicates);
        hub.refresh();
        let mut out = Vec::new();
        hub.next(&mut from_start, &mut out, 5).unwrap();
        assert_eq!(
            seqs(&out),
            [
                (1, "fill"),
                (2, "fill"),
                (3, "fill"),
                (3, "duplicate"),
                (4, "fill")
            ]
        );
        out.clear();
        hub.next(&mut from_start, &mut out, 10_000).unwrap();
        assert_eq!(out.len(), 1996);
        assert_eq!(out.last().map(|item| item.seq), Some(2000));
        assert_eq!(from_start.seq, 2000);
        // The live client started at 0 (durable then); its first event
        // (after record 3) comes after records 1 to 3.
        out.clear();
        hub.next(&mut live, &mut out, 10).unwrap();
        assert_eq!(
            seqs(&out)[..4],
            [(1, "fill"), (2, "fill"), (3, "fill"), (3, "duplicate")]
        );
        events.publish(2500, &mut Duplicates::default());
        hub.refresh();
        out.clear();
        hub.next(&mut from_start, &mut out, 10_000).unwrap();
        assert_eq!(out.len(), 501);
        assert_eq!(
            seqs(&out)[399..402],
            [(2400, "fill"), (2400, "duplicate"), (2401, "fill")]
        );
        // A filtered client sees its kinds only; a client that comes now
        // gets the journal replayed, not the events that went before it.
        let mut rejects = hub.cursor(0, Kinds::parse("reject,duplicate").unwrap());
        out.clear();
        hub.next(&mut rejects, &mut out, 10).unwrap();
        assert_eq!(seqs(&out), []);
        assert_eq!(rejects.seq, 2500);
        let mut duplicates = Duplicates::default();
        duplicates.add(2500, "f9", "stdin");
        events.publish(2500, &mut duplicates);
        hub.refresh();
        hub.next(&mut rejects, &mut out, 10).unwrap();
        assert_eq!(seqs(&out), [(2500, "duplicate")]);
    }

    #[test]
    fn a_client_the_ring_overran_is_told_how_many_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::enabled();
        let health = HealthState::new(Duration::from_secs(5), Duration::from_secs(5));
        let mut hub = Hub::new(
            JournalReader::open(dir.path()).unwrap(),
            Arc::clone(events.shared().unwrap()),
            health,
        );
        let mut slow = hub.cursor(hub.durable(), Kinds::ALL);
        for _ in 0..RING + 5 {
            hub.push(Kind::Source, 0, serde_json::json!({}));
        }
        let mut out = Vec::new();
        hub.next(&mut slow, &mut out, 3).unwrap();
        assert_eq!(out[0].kind, Kind::Dropped);
        assert!(
            out[0].json.as_str().contains("\"count\":5"),
            "{}",
            out[0].json
        );
        assert_eq!(out[1].kind, Kind::Source);
    }
}
