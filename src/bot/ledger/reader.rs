//! Reading the journal: its records in order, each with its seq, from any
//! position, across segments. Recovery, `tradingbot journal` and (through
//! [`JournalReader`]) the read API and the event stream all read through
//! [`Scan`]. Reading takes no lock and writes nothing, so it is
//! safe beside a running daemon: a last line still being written (no
//! newline yet) is not returned.
//!
//! A record is believed only once its checksum matches (see `record.rs`);
//! one that does not, or that cannot be read at all, is named (segment,
//! line, byte offset, seq) and ends the read: nothing after damage is
//! replayed into a state the journal does not vouch for. A torn last line
//! of the last segment is not damage: a crash cut it, and it was never
//! acknowledged. Records of the releases before checksums carry none and
//! are read as they always were; they are counted ([`Scan::unchecked`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::journal::JournalError;
use super::record::{self, Record};
use super::segments::{self, Segment};

/// A place in the journal: just after record `seq`, which ends at byte
/// `offset` of the segment whose first record is `segment` (`seq` 0 and
/// `segment` 0: before the first record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) seq: u64,
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// What to do with what a running daemon or a crash can leave behind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Recovery and verification: a missing segment or a sequence gap is
    /// an error.
    Strict,
    /// `tradingbot journal` beside a running daemon: a segment deleted by
    /// retention between listing and reading is skipped.
    Lenient,
}

struct Open {
    segment: Segment,
    reader: BufReader<File>,
    offset: u64,
    /// Lines read in this segment from where reading started in it.
    line: usize,
}

pub(crate) struct Scan {
    segments: Vec<Segment>,
    /// Index of the next segment to open.
    next: usize,
    open: Option<Open>,
    /// The seq of the last record returned (or of the start position).
    seq: u64,
    last: Option<(u64, u64, usize)>,
    buf: Vec<u8>,
    mode: Mode,
    torn: Option<(PathBuf, u64)>,
    done: bool,
    /// A segment was skipped (deleted since listed): the next one starts
    /// where it starts.
    skipped: bool,
    /// Where the line last read starts in its segment.
    line_start: u64,
    unchecked: Unchecked,
}

/// The records a scan read without a checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Unchecked {
    pub(crate) records: u64,
    /// The first of them that came after a record with one: an earlier
    /// release wrote on after this one (a downgrade).
    pub(crate) first_after_checked: Option<u64>,
    checked_seen: bool,
}

/// The end of a whole scan: what the writer resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct End {
    /// The last segment and the length of its whole lines (a torn tail
    /// past it is cut before anything is written).
    pub(crate) last_segment: Option<(u64, u64)>,
    pub(crate) last_seq: u64,
    /// The last record: its segment, where it ends, and its length.
    pub(crate) tail: Option<(u64, u64, usize)>,
}

impl Scan {
    /// From the first record of `segments`.
    pub(crate) fn new(segments: Vec<Segment>, mode: Mode) -> Scan {
        let seq = segments.first().map_or(0, |segment| segment.first_seq - 1);
        Scan {
            segments,
            next: 0,
            open: None,
            seq,
            last: None,
            buf: Vec::with_capacity(1024),
            mode,
            torn: None,
            done: false,
            skipped: false,
            line_start: 0,
            unchecked: Unchecked::default(),
        }
    }

    /// From `position`, whose segment must be among `segments`.
    pub(crate) fn from(
        segments: Vec<Segment>,
        position: Position,
        mode: Mode,
    ) -> Result<Scan, JournalError> {
        if position.segment == 0 {
            let mut scan = Scan::new(segments, mode);
            scan.seq = scan.seq.max(position.seq);
            return Ok(scan);
        }
        let Some(index) = segments
            .iter()
            .position(|segment| segment.first_seq == position.segment)
        else {
            return Err(JournalError::Corrupt {
                path: PathBuf::from(segments::file_name(position.segment)),
                line: 0,
                detail: "the segment is missing".into(),
            });
        };
        let segment = segments[index].clone();
        let io_error = |source| JournalError::Io {
            what: "cannot read journal segment",
            path: segment.path.clone(),
            source,
        };
        let mut file = File::open(&segment.path).map_err(io_error)?;
        file.seek(SeekFrom::Start(position.offset))
            .map_err(io_error)?;
        let mut scan = Scan::new(segments, mode);
        scan.next = index + 1;
        scan.seq = position.seq;
        scan.open = Some(Open {
            segment,
            reader: BufReader::with_capacity(256 << 10, file),
            offset: position.offset,
            line: 0,
        });
        Ok(scan)
    }

    /// The seq of the last record returned.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Just after the record last returned, while its segment is open.
    fn position(&self) -> Option<Position> {
        self.open.as_ref().map(|open| Position {
            seq: self.seq,
            segment: open.segment.first_seq,
            offset: open.offset,
        })
    }

    /// The records read so far that had no checksum.
    pub(crate) fn unchecked(&self) -> Unchecked {
        self.unchecked
    }

    /// A torn last line that ended the scan: the file and its bytes.
    pub(crate) fn torn(&self) -> Option<&(PathBuf, u64)> {
        self.torn.as_ref()
    }

    /// Where the scan ended; meaningful once [`Scan::record`] returned `None`.
    pub(crate) fn end(&self) -> End {
        End {
            last_segment: self
                .open
                .as_ref()
                .map(|open| (open.segment.first_seq, open.offset))
                .or_else(|| self.segments.last().map(|last| (last.first_seq, 0))),
            last_seq: self.seq,
            tail: self.last,
        }
    }

    /// Reads the next record's line into `buf`; false at the end of the
    /// journal.
    fn next_line(&mut self) -> Result<bool, JournalError> {
        loop {
            if self.done {
                return Ok(false);
            }
            let Some(open) = &mut self.open else {
                if !self.open_next()? {
                    self.done = true;
                }
                continue;
            };
            self.buf.clear();
            let read = open
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| JournalError::Io {
                    what: "cannot read journal segment",
                    path: open.segment.path.clone(),
                    source,
                })?;
            if read == 0 {
                if self.next == self.segments.len() {
                    self.done = true;
                    continue;
                }
                self.open_next()?;
                continue;
            }
            open.line += 1;
            if self.buf.last() != Some(&b'\n') {
                let path = open.segment.path.clone();
                if self.next < self.segments.len() {
                    return Err(JournalError::Corrupt {
                        path,
                        line: open.line,
                        detail: "the segment ends mid-record but is not the last one".into(),
                    });
                }
                self.torn = Some((path, read as u64));
                self.done = true;
                continue;
            }
            self.line_start = open.offset;
            open.offset += read as u64;
            if self.buf.len() == 1 {
                continue;
            }
            self.seq += 1;
            self.last = Some((open.segment.first_seq, open.offset, read));
            return Ok(true);
        }
    }

    /// The next record, parsed (borrowing the line it was read from).
    pub(crate) fn record(&mut self) -> Result<Option<(u64, Record<'_>)>, JournalError> {
        if !self.next_line()? {
            return Ok(None);
        }
        let line = &self.buf[..self.buf.len() - 1];
        if record::is_checksummed(line) {
            self.unchecked.checked_seen = true;
        } else {
            self.unchecked.records += 1;
            if self.unchecked.checked_seen {
                self.unchecked.first_after_checked.get_or_insert(self.seq);
            }
        }
        match record::parse(line) {
            Ok(record) => Ok(Some((self.seq, record))),
            Err(detail) => Err(self.damaged(detail)),
        }
    }

    /// The error for the line last read: where it is, and what is wrong.
    fn damaged(&self, detail: String) -> JournalError {
        let (path, line) = self.open.as_ref().map_or_else(
            || (PathBuf::new(), 0),
            |open| (open.segment.path.clone(), open.line),
        );
        JournalError::Damaged {
            path,
            line,
            offset: self.line_start,
            seq: self.seq,
            detail,
        }
    }

    /// Opens the next segment; false when there is none.
    fn open_next(&mut self) -> Result<bool, JournalError> {
        let Some(segment) = self.segments.get(self.next).cloned() else {
            return Ok(false);
        };
        self.next += 1;
        let expected = self.seq + 1;
        let file = match File::open(&segment.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound && self.mode == Mode::Lenient => {
                // Deleted by retention since it was listed.
                self.skipped = true;
                return Ok(true);
            }
            Err(source) => {
                return Err(JournalError::Io {
                    what: "cannot read journal segment",
                    path: segment.path,
                    source,
                })
            }
        };
        if segment.first_seq != expected && !std::mem::take(&mut self.skipped) {
            return Err(JournalError::Corrupt {
                path: segment.path,
                line: 0,
                detail: format!(
                    "sequence gap: the segment starts at seq {} but the one before it ends at seq {}",
                    segment.first_seq, self.seq
                ),
            });
        }
        self.seq = segment.first_seq - 1;
        self.open = Some(Open {
            segment,
            reader: BufReader::with_capacity(256 << 10, file),
            offset: 0,
            line: 0,
        });
        Ok(true)
    }
}

/// Where the reader remembers a position: every this many records.
const INDEX_STEP: u64 = 1024;

/// Records by seq beside a running daemon, for the read API and the event
/// stream: read-only, no lock, whole lines only, across segments (a
/// segment retention deletes is skipped). It remembers where every
/// [`INDEX_STEP`]th record ends, so reading on from a recent seq (a stream
/// following the journal) opens one segment there instead of rescanning.
pub(crate) struct JournalReader {
    state_dir: PathBuf,
    /// Seq → the position just after that record.
    index: RefCell<BTreeMap<u64, Position>>,
}

impl JournalReader {
    pub(crate) fn open(state_dir: &Path) -> io::Result<JournalReader> {
        if !state_dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no state directory {}", state_dir.display()),
            ));
        }
        Ok(JournalReader {
            state_dir: state_dir.to_owned(),
            index: RefCell::new(BTreeMap::new()),
        })
    }

    /// Whole records with seq > `after`, in order, at most `limit`, that
    /// `keep` accepts. Records retention deleted are not there to return:
    /// the first is then the oldest kept.
    pub(crate) fn after(
        &self,
        after: u64,
        limit: usize,
        mut keep: impl FnMut(&Record<'_>) -> bool,
    ) -> io::Result<Vec<(u64, Record<'static>)>> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let segments = segments::list(&self.state_dir)?;
        let Some(oldest) = segments.first().map(|segment| segment.first_seq) else {
            return Ok(found);
        };
        let mut index = self.index.borrow_mut();
        index.retain(|_, position| position.segment >= oldest);
        let start = index
            .range(..=after)
            .next_back()
            .map(|(_, position)| *position)
            .unwrap_or_else(|| {
                let first_seq = segments
                    .iter()
                    .rev()
                    .map(|segment| segment.first_seq)
                    .find(|first_seq| *first_seq <= after + 1)
                    .unwrap_or(oldest);
                Position {
                    seq: first_seq - 1,
                    segment: first_seq,
                    offset: 0,
                }
            });
        let unreadable = |error: JournalError| io::Error::other(error.to_string());
        let mut scan = Scan::from(segments, start, Mode::Lenient).map_err(unreadable)?;
        while let Some((seq, record)) = scan.record().map_err(unreadable)? {
            let wanted = (seq > after && keep(&record)).then(|| record.into_owned());
            if seq % INDEX_STEP == 0 {
                if let Some(position) = scan.position() {
                    index.insert(seq, position);
                }
            }
            if let Some(record) = wanted {
                found.push((seq, record));
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::bot::ledger::checkpoint::Checkpoint;

    fn write(state: &Path, first_seq: u64, text: &str) {
        segments::create_dir(state).unwrap();
        std::fs::write(segments::path(state, first_seq), text).unwrap();
    }

    fn ckpt(offset: u64) -> String {
        format!("{{\"t\":\"ckpt\",\"src\":\"s\",\"dev\":1,\"ino\":2,\"off\":{offset}}}\n")
    }

    fn offsets(records: &[(u64, Record<'static>)]) -> Vec<(u64, u64)> {
        records
            .iter()
            .map(|(seq, record)| match record {
                Record::Ckpt {
                    checkpoint: Checkpoint::File { offset, .. },
                    ..
                } => (*seq, *offset),
                _ => (*seq, 0),
            })
            .collect()
    }

    /// Every record of `state`'s journal, from the first.
    fn all(state: &Path, mode: Mode) -> Result<Vec<(u64, Record<'static>)>, JournalError> {
        let mut scan = Scan::new(segments::list(state).unwrap(), mode);
        let mut records = Vec::new();
        while let Some((seq, record)) = scan.record()? {
            records.push((seq, record.into_owned()));
        }
        Ok(records)
    }

    #[test]
    fn records_are_numbered_across_segments_and_a_torn_tail_is_not_returned() {
        let state = tempfile::tempdir().unwrap();
        write(state.path(), 1, &(ckpt(1) + &ckpt(2)));
        write(state.path(), 3, &(ckpt(3) + "{\"t\":\"ck"));
        let mut scan = Scan::new(segments::list(state.path()).unwrap(), Mode::Strict);
        let mut offsets_read = Vec::new();
        while let Some((seq, record)) = scan.record().unwrap() {
            offsets_read.push(offsets(&[(seq, record.into_owned())])[0]);
        }
        assert_eq!(offsets_read, [(1, 1), (2, 2), (3, 3)]);
        let (path, bytes) = scan.torn().unwrap();
        assert_eq!((path, *bytes), (&segments::path(state.path(), 3), 8));
        assert_eq!(scan.end().last_seq, 3);
    }

    /// A checksummed ckpt line, at `offset`.
    fn checked_ckpt(offset: u64) -> String {
        let mut line = Vec::new();
        record::write_line(
            &Record::Ckpt {
                src: "s".into(),
                checkpoint: Checkpoint::File {
                    dev: 1,
                    ino: 2,
                    offset,
                },
            },
            &mut line,
        );
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn a_damaged_record_is_named_and_records_without_a_checksum_are_counted() {
        let state = tempfile::tempdir().unwrap();
        let first = ckpt(1) + &checked_ckpt(2) + &checked_ckpt(3) + &checked_ckpt(4);
        write(state.path(), 1, &first);
        // An earlier release wrote on after this one.
        write(state.path(), 5, &ckpt(5));
        let mut scan = Scan::new(segments::list(state.path()).unwrap(), Mode::Strict);
        let mut read = Vec::new();
        while let Some((seq, record)) = scan.record().unwrap() {
            read.push((seq, record.into_owned()));
        }
        assert_eq!(offsets(&read), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]);
        let unchecked = scan.unchecked();
        assert_eq!(
            (unchecked.records, unchecked.first_after_checked),
            (2, Some(5))
        );

        // One digit changed on disk in the closed segment: seq 3 is named,
        // where it is, and nothing from it on is read.
        let damaged = first.replacen("\"off\":3", "\"off\":8", 1);
        write(state.path(), 1, &damaged);
        let start = ckpt(1).len() + checked_ckpt(2).len();
        let error = all(state.path(), Mode::Strict).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "00000000000000000001.jsonl is corrupt at line 3, byte {start}: record seq 3: checksum mismatch"
            )),
            "{error}"
        );
    }

    #[test]
    fn retained_segments_start_late_and_a_gap_is_an_error() {
        let state = tempfile::tempdir().unwrap();
        write(state.path(), 5, &(ckpt(5) + &ckpt(6)));
        write(state.path(), 7, &ckpt(7));
        for mode in [Mode::Strict, Mode::Lenient] {
            assert_eq!(
                offsets(&all(state.path(), mode).unwrap()),
                [(5, 5), (6, 6), (7, 7)]
            );
        }
        write(state.path(), 9, &ckpt(9));
        for mode in [Mode::Strict, Mode::Lenient] {
            let error = all(state.path(), mode).unwrap_err().to_string();
            assert!(error.contains("sequence gap"), "{error}");
        }
    }

    #[test]
    fn a_torn_line_in_an_older_segment_is_corruption() {
        let state = tempfile::tempdir().unwrap();
        write(state.path(), 1, &(ckpt(1) + "{\"t\""));
        write(state.path(), 2, &ckpt(2));
        let mut scan = Scan::new(segments::list(state.path()).unwrap(), Mode::Strict);
        assert!(scan.record().unwrap().is_some());
        assert!(record::parse(
            br#"{"t":"fill","id":"a","src":"s","ts":1,"at":2,"symbol":"S","side":"buy","qty":1.0}"#
        )
        .unwrap_err()
        .contains("without \"price\""));
        let error = scan.record().unwrap_err().to_string();
        assert!(error.contains("not the last one"), "{error}");
    }

    #[test]
    fn the_journal_reader_pages_by_seq_across_segments_and_skips_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let reader = JournalReader::open(state).unwrap();
        assert!(
            reader.after(0, 10, |_| true).unwrap().is_empty(),
            "no journal yet"
        );
        // Three segments of 1,000 records: seq n is a checkpoint at offset n.
        for first in [1, 1001, 2001] {
            let text: String = (first..first + 1000).map(ckpt).collect();
            write(state, first, &text);
        }
        let torn = std::fs::OpenOptions::new()
            .append(true)
            .open(segments::path(state, 2001))
            .unwrap();
        std::io::Write::write_all(&mut &torn, b"{\"t\":\"ckpt\",\"src\":\"s\"").unwrap();
        let page = |after, limit| offsets(&reader.after(after, limit, |_| true).unwrap());
        assert_eq!(page(0, 3), [(1, 1), (2, 2), (3, 3)]);
        // Far on (past the index step, into the third segment), then back.
        assert_eq!(page(2047, 2), [(2048, 2048), (2049, 2049)]);
        assert_eq!(page(999, 2), [(1000, 1000), (1001, 1001)]);
        assert_eq!(
            page(2997, 10),
            [(2998, 2998), (2999, 2999), (3000, 3000)],
            "not the torn line"
        );
        let even = reader
            .after(
                1500,
                3,
                |record| matches!(record, Record::Ckpt { checkpoint: Checkpoint::File { offset, .. }, .. } if offset % 2 == 0),
            )
            .unwrap();
        assert_eq!(offsets(&even), [(1502, 1502), (1504, 1504), (1506, 1506)]);
        // Retention deleted the first segment: the oldest kept comes first.
        std::fs::remove_file(segments::path(state, 1)).unwrap();
        assert_eq!(page(0, 1), [(1001, 1001)]);
        assert_eq!(page(2047, 1), [(2048, 2048)]);
    }
}
