//! Reading the journal by sequence number beside a running daemon, for the
//! read API and the event stream: read-only, no lock, whole lines only.
//!
//! A record's sequence number (`seq`) is its 1-based ordinal in the whole
//! journal. This version reads today's single `journal.jsonl`; it remembers
//! where every [`INDEX_STEP`]th record starts, so reading on from a recent
//! `seq` (a stream following the journal) never rescans the file.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::journal::{Record, FILE_NAME};

const INDEX_STEP: u64 = 1024;

/// The most bytes one read asks for.
const READ_BYTES: usize = 64 * 1024;

pub struct JournalReader {
    path: PathBuf,
    /// Opened on first use: the journal may not exist yet.
    file: RefCell<Option<File>>,
    /// `index[i]`: the byte offset where record `i * INDEX_STEP + 1` starts.
    index: RefCell<Vec<u64>>,
}

impl JournalReader {
    /// Read-only, no lock: safe beside a running daemon.
    pub fn open(state_dir: &Path) -> io::Result<JournalReader> {
        if !state_dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no state directory {}", state_dir.display()),
            ));
        }
        Ok(JournalReader {
            path: state_dir.join(FILE_NAME),
            file: RefCell::new(None),
            index: RefCell::new(vec![0]),
        })
    }

    /// Whole records with seq > `after`, in order, at most `limit`, that `keep` accepts.
    /// A torn last line (being written) is not returned.
    pub fn after(
        &self,
        after: u64,
        limit: usize,
        mut keep: impl FnMut(&Record<'_>) -> bool,
    ) -> io::Result<Vec<(u64, Record<'static>)>> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let mut slot = self.file.borrow_mut();
        let file = match &mut *slot {
            Some(file) => file,
            empty => match File::open(&self.path) {
                Ok(file) => empty.insert(file),
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(found),
                Err(error) => return Err(error),
            },
        };
        let mut index = self.index.borrow_mut();
        let step = (after / INDEX_STEP).min(index.len() as u64 - 1);
        // Records before `offset`.
        let mut seq = step * INDEX_STEP;
        let mut offset = index[step as usize];
        let mut buffer = vec![0; READ_BYTES];
        // Bytes from `offset` on that hold no whole line yet.
        let mut held = 0;
        loop {
            if held == buffer.len() {
                // A line longer than the buffer: read more of it at once.
                buffer.resize(buffer.len() * 2, 0);
            }
            let read = file.read_at(&mut buffer[held..], offset + held as u64)?;
            if read == 0 {
                // End of file, or a torn line that is still being written.
                return Ok(found);
            }
            let filled = held + read;
            let mut start = 0;
            while let Some(length) = memchr::memchr(b'\n', &buffer[start..filled]) {
                let line = &buffer[start..start + length];
                start += length + 1;
                if line.is_empty() {
                    continue;
                }
                seq += 1;
                if seq % INDEX_STEP == 0 && index.len() as u64 == seq / INDEX_STEP {
                    index.push(offset + start as u64);
                }
                if seq <= after {
                    continue;
                }
                let record: Record<'static> = serde_json::from_slice(line).map_err(|error| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("journal record {seq} is corrupt: {error}"),
                    )
                })?;
                if keep(&record) {
                    found.push((seq, record));
                    if found.len() == limit {
                        return Ok(found);
                    }
                }
            }
            buffer.copy_within(start..filled, 0);
            offset += start as u64;
            held = filled - start;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::io::Write;

    use super::*;
    use crate::bot::signal::Side;

    fn fill(id: usize) -> Record<'static> {
        Record::Fill {
            id: Cow::Owned(format!("f{id}")),
            src: "stdin".into(),
            ts: 1,
            at: 2,
            symbol: "BTC".into(),
            side: Side::Buy,
            qty: 1.0,
            price: 10.0,
            source: None,
        }
    }

    fn line(record: &Record<'_>) -> String {
        serde_json::to_string(record).unwrap() + "\n"
    }

    #[test]
    fn reads_by_sequence_number_and_skips_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let reader = JournalReader::open(dir.path()).unwrap();
        assert!(
            reader.after(0, 10, |_| true).unwrap().is_empty(),
            "no file yet"
        );
        let mut file = File::create(dir.path().join(FILE_NAME)).unwrap();
        let checkpoint = Record::Ckpt {
            src: "file:x".into(),
            dev: 1,
            ino: 2,
            off: 3,
        };
        let mut text = String::new();
        for index in 1..=3000 {
            text += &if index % 10 == 0 {
                line(&checkpoint)
            } else {
                line(&fill(index))
            };
        }
        text += r#"{"t":"fill","id":"torn"#;
        file.write_all(text.as_bytes()).unwrap();
        let fills = |after, limit| {
            reader
                .after(after, limit, |record| matches!(record, Record::Fill { .. }))
                .unwrap()
        };
        let got = fills(0, 3);
        assert_eq!(
            got.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(got[0].1, fill(1));
        // Far on (past two index steps), then back to the start: the same
        // answers whichever way the index was built.
        let late = fills(2048, 5);
        assert_eq!(
            late.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [2049, 2051, 2052, 2053, 2054]
        );
        assert_eq!(late[1].1, fill(2051));
        assert_eq!(
            fills(8, 2).iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [9, 11]
        );
        let rest = fills(2995, 100);
        assert_eq!(
            rest.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [2996, 2997, 2998, 2999],
            "the torn line is not returned"
        );
        let fresh = JournalReader::open(dir.path()).unwrap();
        assert_eq!(fresh.after(2999, 10, |_| true).unwrap().len(), 1);
        assert_eq!(fresh.after(1023, 1, |_| true).unwrap()[0].0, 1024);
    }
}
