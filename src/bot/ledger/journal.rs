//! The journal: one append-only JSONL file, `STATE_DIR/journal.jsonl`, the
//! truth about every decision the bot made.
//!
//! Each line is one record: a `fill` (the accepted signal and the price it
//! filled at), a `reject` (why, and the line as received), or a `ckpt` (how
//! far a file source has been read). Records are buffered and written by
//! [`Journal::commit`] (a large batch in 256 KiB steps as it grows), then
//! fsynced per `FSYNC` (`batch`: one fsync per commit, a group commit,
//! which may run on the sync thread while the loop decides the next batch).
//!
//! Why this gives an exactly-once effect across crashes:
//! 1. Recovery keeps the longest prefix of whole lines; a torn last line is
//!    cut away (it was never acknowledged: acknowledgement follows commit).
//! 2. A file source's checkpoint is appended after the decisions for the
//!    lines it covers, so a checkpoint in the prefix implies those decisions
//!    are in it too. Resuming from it re-reads only lines whose decision may
//!    be missing.
//! 3. The dedupe index is the set of ids with a decision in the prefix, so a
//!    re-read or re-sent signal whose decision survived is a duplicate, not
//!    a second execution.
//! 4. Positions are a replay of the fill records, so they match the journal.
//! 5. A webhook 202 is given only once the commit that wrote its decisions
//!    is durable ([`Journal::commit`] says which are): every acknowledged
//!    signal has its decision in the journal. The snapshot, too, is written
//!    only when every commit is durable, so it is never ahead of it.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bot::settings::FsyncPolicy;
use crate::bot::signal::Side;
use crate::sys;

pub(crate) const FILE_NAME: &str = "journal.jsonl";

/// Buffered bytes past which records are written before the commit. Small
/// enough that one `write` is a short system call: the kernel here does
/// not preempt one (PREEMPT_NONE), and a long one on each core delays
/// the health thread's wake-up by as much.
const EARLY_WRITE_BYTES: usize = 256 << 10;

/// One journal line. Its strings borrow when written (a decision is
/// journaled without copying the signal's strings) and own when read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub(crate) enum Record<'a> {
    Fill {
        id: Cow<'a, str>,
        src: Cow<'a, str>,
        /// The signal's own timestamp, epoch milliseconds.
        ts: i64,
        /// When it filled, epoch milliseconds.
        at: i64,
        symbol: Cow<'a, str>,
        side: Side,
        qty: f64,
        price: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<Cow<'a, str>>,
    },
    Reject {
        id: Option<String>,
        src: Cow<'a, str>,
        at: i64,
        reason: String,
        detail: String,
        line: String,
    },
    Ckpt {
        src: Cow<'a, str>,
        dev: u64,
        ino: u64,
        off: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "journal {path} is corrupt at line {line}: {detail}; refusing to guess what was decided"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

impl JournalError {
    /// The error with its path cut to the file name, for `/health`: the
    /// port is often public, and must not map the host's directories.
    pub(crate) fn without_dir(&self) -> String {
        let name = |path: &Path| {
            path.file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
        };
        match self {
            JournalError::Io { what, path, source } => format!("{what} {}: {source}", name(path)),
            JournalError::Corrupt {
                path, line, detail, ..
            } => format!("{} is corrupt at line {line}: {detail}", name(path)),
        }
    }
}

pub(crate) struct Journal {
    path: PathBuf,
    dir: PathBuf,
    policy: FsyncPolicy,
    file: Option<File>,
    /// Length of the recovered prefix: anything past it when the file is
    /// (re)opened is a torn tail.
    valid_len: u64,
    /// Records not written yet: at most about [`EARLY_WRITE_BYTES`], since
    /// what is written early is dropped from it, so a large commit (64
    /// batches of rejects carry their lines: tens of MB) is not held in
    /// memory whole, nor is a buffer of its size kept afterwards.
    pending: Vec<u8>,
    /// Bytes of `pending` already written; a failed write resumes here.
    written: usize,
    /// Records appended since the last commit (some may be written early).
    uncommitted: bool,
    /// Written since the last fsync was started.
    unsynced: bool,
    /// Commits that wrote records, counted; a webhook reply waits until
    /// its commit's number is durable.
    commits_written: u64,
    commits_durable: u64,
    syncer: Option<Syncer>,
    /// fsync durations not yet taken by [`Journal::fsync_times`].
    fsync_times: Vec<Duration>,
}

/// The thread that fsyncs a commit while the loop decides the next batch.
struct Syncer {
    requests: mpsc::Sender<()>,
    results: mpsc::Receiver<io::Result<Duration>>,
    /// The commit its fsync is running for.
    running: Option<u64>,
}

impl Syncer {
    fn spawn(file: File) -> io::Result<Syncer> {
        let (requests, requested) = mpsc::channel::<()>();
        let (done, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || {
                crate::bot::yield_cpu_to_health();
                for () in requested {
                    let started = Instant::now();
                    let result = file.sync_data().map(|()| started.elapsed());
                    if done.send(result).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Syncer {
            requests,
            results,
            running: None,
        })
    }
}

impl Journal {
    /// Reads the journal's records, leaving out a torn last line, and
    /// returns them with a journal to append to. The file is opened for
    /// writing (and the torn tail cut) by [`Journal::commit`], which retries,
    /// so an unwritable directory is a health problem, not a start-up failure.
    pub(crate) fn recover(
        dir: &Path,
        policy: FsyncPolicy,
    ) -> Result<(Journal, Vec<Record<'static>>), JournalError> {
        let path = dir.join(FILE_NAME);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)
                    .map_err(|source| JournalError::Io {
                        what: "cannot read journal",
                        path: path.clone(),
                        source,
                    })?;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(JournalError::Io {
                    what: "cannot open journal",
                    path,
                    source,
                })
            }
        }
        let whole = bytes
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |at| at + 1);
        if whole < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = bytes.len() - whole,
                "journal ends with a torn line (a crash mid-write); it is cut away"
            );
        }
        let mut records = Vec::new();
        for (index, line) in bytes[..whole].split(|byte| *byte == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let record = serde_json::from_slice(line).map_err(|error| JournalError::Corrupt {
                path: path.clone(),
                line: index + 1,
                detail: error.to_string(),
            })?;
            records.push(record);
        }
        let journal = Journal {
            path,
            dir: dir.to_owned(),
            policy,
            file: None,
            valid_len: whole as u64,
            pending: Vec::with_capacity(64 * 1024),
            written: 0,
            uncommitted: false,
            unsynced: false,
            commits_written: 0,
            commits_durable: 0,
            syncer: None,
            fsync_times: Vec::new(),
        };
        Ok((journal, records))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Buffers one record; nothing reaches the file before [`Journal::commit`].
    pub(crate) fn append(&mut self, record: &Record<'_>) {
        let written = match record {
            Record::Fill {
                id,
                src,
                ts,
                at,
                symbol,
                side,
                qty,
                price,
                source,
            } => {
                let out = &mut self.pending;
                out.extend_from_slice(b"{\"t\":\"fill\",\"id\":");
                string(out, id);
                out.extend_from_slice(b",\"src\":");
                string(out, src);
                out.extend_from_slice(b",\"ts\":");
                out.extend_from_slice(itoa::Buffer::new().format(*ts).as_bytes());
                out.extend_from_slice(b",\"at\":");
                out.extend_from_slice(itoa::Buffer::new().format(*at).as_bytes());
                out.extend_from_slice(b",\"symbol\":");
                string(out, symbol);
                out.extend_from_slice(b",\"side\":\"");
                out.extend_from_slice(side.as_str().as_bytes());
                out.extend_from_slice(b"\",\"qty\":");
                number(out, *qty);
                out.extend_from_slice(b",\"price\":");
                number(out, *price);
                if let Some(source) = source {
                    out.extend_from_slice(b",\"source\":");
                    string(out, source);
                }
                out.push(b'}');
                true
            }
            _ => serde_json::to_writer(&mut self.pending, record).is_ok(),
        };
        if written {
            self.pending.push(b'\n');
            self.uncommitted = true;
        }
        if self.pending.len() - self.written >= EARLY_WRITE_BYTES {
            self.write_early();
        }
    }

    /// Writes what is buffered before the commit, and starts the disk on
    /// it, so a large commit's fsync finds most of its pages already
    /// written back instead of waiting for all of them. Safe at any time:
    /// records reach the file in order, and nothing is acknowledged before
    /// the commit's fsync. A failure is left for the commit to report.
    fn write_early(&mut self) {
        let from = self.valid_len;
        if self.file.is_none() || self.write_pending().is_err() {
            return;
        }
        self.pending.clear();
        self.written = 0;
        if self.policy == FsyncPolicy::Never {
            return;
        }
        if let Some(file) = &self.file {
            // Only a head start for the fsync, which reports what matters.
            if let Err(error) = sys::start_writeback(file.as_fd(), from, self.valid_len - from) {
                tracing::debug!(%error, "sync_file_range failed; the commit's fsync does it all");
            }
        }
    }

    /// Writes what is buffered and makes it durable per the policy; returns
    /// how many commits are durable (see [`Journal::commits_written`]). On
    /// error the buffer is kept, and the next call resumes where this one
    /// stopped.
    ///
    /// With `overlap` under FSYNC=batch, the fsync runs on the journal's
    /// sync thread while the loop decides the next batch, and the next
    /// commit waits for it first: durable ingest then costs little more
    /// than writing. The loop asks for it only while batches are waiting,
    /// so the next commit comes at once and a client waiting on a durable
    /// answer is not kept waiting.
    pub(crate) fn commit(&mut self, overlap: bool) -> Result<u64, JournalError> {
        // Even with nothing to write: a journal that cannot be opened must
        // show as failed before the first signal, not after it.
        self.open()?;
        self.finish_sync()?;
        if self.uncommitted {
            self.write_pending()?;
            self.pending.clear();
            self.written = 0;
            self.uncommitted = false;
            self.commits_written += 1;
        }
        if self.policy == FsyncPolicy::Never || !self.unsynced {
            self.unsynced = false;
            self.commits_durable = self.commits_written;
            return Ok(self.commits_durable);
        }
        if overlap && self.policy == FsyncPolicy::Batch && self.start_sync() {
            return Ok(self.commits_durable);
        }
        let Some(file) = &self.file else {
            return Ok(self.commits_durable);
        };
        let started = Instant::now();
        file.sync_data().map_err(|source| JournalError::Io {
            what: "cannot fsync journal",
            path: self.path.clone(),
            source,
        })?;
        self.fsync_times.push(started.elapsed());
        self.unsynced = false;
        self.commits_durable = self.commits_written;
        Ok(self.commits_durable)
    }

    /// Commits that wrote records so far.
    pub(crate) fn commits_written(&self) -> u64 {
        self.commits_written
    }

    /// The fsyncs made since the last call, for the metrics.
    pub(crate) fn fsync_times(&mut self) -> std::vec::Drain<'_, Duration> {
        self.fsync_times.drain(..)
    }

    /// Hands an fsync of everything written to the sync thread; false if
    /// there is none to hand it to (the caller then fsyncs itself).
    fn start_sync(&mut self) -> bool {
        if self.syncer.is_none() {
            let Some(file) = self.file.as_ref().and_then(|file| file.try_clone().ok()) else {
                return false;
            };
            self.syncer = Syncer::spawn(file).ok();
        }
        let Some(syncer) = &mut self.syncer else {
            return false;
        };
        if syncer.requests.send(()).is_err() {
            self.syncer = None;
            return false;
        }
        syncer.running = Some(self.commits_written);
        self.unsynced = false;
        true
    }

    /// Waits for the sync thread's fsync, if one is running.
    fn finish_sync(&mut self) -> Result<(), JournalError> {
        let Some(syncer) = &mut self.syncer else {
            return Ok(());
        };
        let Some(commit) = syncer.running.take() else {
            return Ok(());
        };
        let source = match syncer.results.recv() {
            Ok(Ok(took)) => {
                self.fsync_times.push(took);
                self.commits_durable = self.commits_durable.max(commit);
                return Ok(());
            }
            Ok(Err(source)) => source,
            Err(_) => {
                self.syncer = None;
                io::Error::other("the journal's sync thread is gone")
            }
        };
        // Not known durable: the next commit fsyncs it again.
        self.unsynced = true;
        Err(JournalError::Io {
            what: "cannot fsync journal",
            path: self.path.clone(),
            source,
        })
    }

    /// Writes `pending` from where the last write stopped; on error,
    /// `written` says how far it got.
    fn write_pending(&mut self) -> Result<(), JournalError> {
        let Journal {
            file: Some(file),
            pending,
            written,
            path,
            ..
        } = self
        else {
            return Ok(());
        };
        while *written < pending.len() {
            match file.write(&pending[*written..]) {
                Ok(0) => {
                    return Err(JournalError::Io {
                        what: "cannot append to journal",
                        path: path.clone(),
                        source: io::ErrorKind::WriteZero.into(),
                    })
                }
                Ok(count) => {
                    *written += count;
                    self.valid_len += count as u64;
                    self.unsynced = true;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(JournalError::Io {
                        what: "cannot append to journal",
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Opens for appending if not open yet, cutting a torn tail first.
    fn open(&mut self) -> Result<(), JournalError> {
        if self.file.is_some() {
            return Ok(());
        }
        let io_error = |what, source| JournalError::Io {
            what,
            path: self.path.clone(),
            source,
        };
        let existed = self.path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| io_error("cannot open journal for appending", source))?;
        let len = file
            .metadata()
            .map_err(|source| io_error("cannot stat journal", source))?
            .len();
        if len > self.valid_len {
            file.set_len(self.valid_len)
                .map_err(|source| io_error("cannot cut the torn tail of journal", source))?;
        }
        if !existed {
            sync_dir(&self.dir)
                .map_err(|source| io_error("cannot fsync the directory of", source))?;
        }
        self.file = Some(file);
        Ok(())
    }
}

/// A JSON string, byte for byte as serde_json writes it. Fills are most of
/// the journal, and their strings (ids, symbols, the source's name) rarely
/// hold anything to escape: those are copied as they are.
fn string(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        let _ = serde_json::to_writer(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether any byte is a quote, a backslash or a control character, eight
/// bytes at a time (the classic "has a zero byte" and "has a byte less
/// than" word tricks, exact as a yes or no).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quote = below(word ^ (ONES * u64::from(b'"')), 1);
        let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
        if quote | backslash | below(word, 0x20) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

/// A number as serde_json writes an `f64`: shortest round-trip form, `null`
/// for what JSON cannot hold. Whole quantities are common, and printing
/// them as integers is a fraction of the cost of the general algorithm.
fn number(out: &mut Vec<u8>, value: f64) {
    const EXACT: f64 = 1e15;
    if value.fract() == 0.0 && value.abs() < EXACT && !(value == 0.0 && value.is_sign_negative()) {
        out.extend_from_slice(itoa::Buffer::new().format(value as i64).as_bytes());
        out.extend_from_slice(b".0");
    } else if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Makes a new or renamed directory entry durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;

    fn fill(id: &str) -> Record<'static> {
        Record::Fill {
            id: id.to_owned().into(),
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

    proptest::proptest! {
        /// The hand-written fill line is the one serde_json would write.
        #[test]
        fn a_fill_is_written_as_serde_json_writes_it(
            id in "\\PC{1,12}|[\"\\\\\u{0}-\u{1f}\u{7f}é]{1,4}|[a-zé]{0,20}[\"\\\\\u{0}-\u{1f}]?[a-z]{0,20}",
            src in "[a-z:/.]{1,20}",
            ts in proptest::prelude::any::<i64>(),
            at in proptest::prelude::any::<i64>(),
            qty in proptest::prop_oneof![
                proptest::prelude::any::<f64>(),
                (-2e15..2e15f64).prop_map(f64::trunc),
            ],
            price in proptest::num::f64::POSITIVE | proptest::num::f64::SUBNORMAL,
            source in proptest::option::of("\\PC{0,8}"),
        ) {
            let record = Record::Fill {
                id: id.into(),
                src: src.into(),
                ts,
                at,
                symbol: "ETH-USD".into(),
                side: if ts % 2 == 0 { Side::Buy } else { Side::Sell },
                qty,
                price,
                source: source.map(Cow::Owned),
            };
            let dir = tempfile::tempdir().unwrap();
            let (mut journal, _) = Journal::recover(dir.path(), FsyncPolicy::Never).unwrap();
            journal.append(&record);
            let mut expected = serde_json::to_vec(&record).unwrap();
            expected.push(b'\n');
            proptest::prop_assert_eq!(String::from_utf8_lossy(&journal.pending), String::from_utf8_lossy(&expected));
        }
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, records) = Journal::recover(dir.path(), FsyncPolicy::Batch).unwrap();
        assert!(records.is_empty());
        journal.append(&fill("a"));
        journal.append(&fill("b"));
        assert_eq!(journal.commit(false).unwrap(), 1);
        assert_eq!(journal.fsync_times().count(), 1);
        drop(journal);
        let path = dir.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"t":"fill","id":"c","sr"#).unwrap();
        let (mut journal, records) = Journal::recover(dir.path(), FsyncPolicy::Batch).unwrap();
        assert_eq!(records, vec![fill("a"), fill("b")]);
        journal.append(&fill("d"));
        journal.commit(false).unwrap();
        let (_, records) = Journal::recover(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(records, vec![fill("a"), fill("b"), fill("d")]);
    }

    #[test]
    fn an_overlapped_fsync_is_durable_by_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::recover(dir.path(), FsyncPolicy::Batch).unwrap();
        journal.append(&fill("a"));
        assert_eq!(journal.commit(true).unwrap(), 0, "fsync still running");
        journal.append(&fill("b"));
        assert_eq!(journal.commit(true).unwrap(), 1, "the first one waited for");
        assert_eq!(journal.commit(false).unwrap(), 2);
        assert_eq!(journal.commits_written(), 2);
        assert_eq!(journal.fsync_times().count(), 2);
        let (_, records) = Journal::recover(dir.path(), FsyncPolicy::Batch).unwrap();
        assert_eq!(records, vec![fill("a"), fill("b")]);
    }

    #[test]
    fn a_large_commit_is_written_early_and_never_held_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::recover(dir.path(), FsyncPolicy::Batch).unwrap();
        journal.commit(false).unwrap(); // opens the file; nothing to count
        let mut appended = Vec::new();
        // Up to the moment an early write has left nothing buffered.
        while appended.len() < 2 || !journal.pending.is_empty() {
            let record = fill(&format!("early-{}", appended.len()));
            journal.append(&record);
            appended.push(record);
            assert!(journal.pending.len() <= EARLY_WRITE_BYTES + 1024);
        }
        assert!(appended.len() > 1000, "{} records", appended.len());
        assert!(journal.pending.capacity() <= 2 * EARLY_WRITE_BYTES);
        assert_eq!(
            journal.commit(false).unwrap(),
            1,
            "records all written early still make a commit"
        );
        assert_eq!(journal.fsync_times().count(), 1);
        let (_, records) = Journal::recover(dir.path(), FsyncPolicy::Batch).unwrap();
        assert_eq!(records, appended);
    }

    #[test]
    fn a_corrupt_middle_line_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "garbage\n").unwrap();
        let error = Journal::recover(dir.path(), FsyncPolicy::Batch)
            .err()
            .unwrap();
        assert!(matches!(error, JournalError::Corrupt { line: 1, .. }));
    }
}
