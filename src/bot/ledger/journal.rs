//! The journal: append-only JSONL segments under `STATE_DIR/journal/`
//! (see `segments.rs`), the truth about every decision the bot made.
//!
//! Each line is one record (`record.rs`: a `fill`, a `reject` or a `ckpt`,
//! each with its checksum). Records are buffered and written by
//! [`Journal::commit`] (a large batch in 256 KiB steps as it grows), then
//! fsynced per `FSYNC` (`batch`: one fsync per commit, a group commit,
//! which may run on the sync thread while the loop decides the next batch).
//!
//! Why this gives an exactly-once effect across crashes:
//! 1. Recovery keeps the longest prefix of whole lines; a torn last line is
//!    cut away (it was never acknowledged: acknowledgement follows commit).
//! 2. A source's checkpoint is appended after the decisions for the
//!    lines it covers, so a checkpoint in the prefix implies those decisions
//!    are in it too. Resuming from it re-reads only lines whose decision may
//!    be missing.
//! 3. The exactly-once window is rebuilt from the records in the prefix by
//!    the same rule the live decisions used, so a re-read or re-sent signal
//!    whose decision survived is a duplicate, not a second execution.
//! 4. Positions are a replay of the fill records, so they match the journal.
//! 5. A webhook 202 is given only once the bytes holding its decisions are
//!    durable ([`Journal::commit`] says how far that is): every
//!    acknowledged signal has its decision in the journal. A snapshot, too,
//!    is taken only when everything is durable, so it is never ahead of it.
//! 6. A segment is rolled only once it is whole and durable, so only the
//!    last segment can end torn, and a sequence is never missing a middle.
//! 7. A failed fsync is never retried on the same pages: on Linux the
//!    kernel may already have dropped them, and a second fsync can then
//!    report success for data that never reached the disk. Nothing written
//!    since the last successful fsync is trusted: the segment is cut back
//!    to the length that fsync covered (which also drops those pages from
//!    the page cache), the bytes are written again from memory, and only a
//!    later successful fsync acknowledges them.
//! 8. Every line carries the CRC32C of its bytes (`record.rs`): a record
//!    changed on disk after it was written is named by the reader and never
//!    replayed into a state the journal did not hold.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::reader::{End, Position};
use super::record::{self, Record};
use super::segments;
use crate::bot::settings::FsyncPolicy;
use crate::sys;

/// Buffered bytes past which records are written before the commit. Small
/// enough that one `write` is a short system call: the kernel here does
/// not preempt one (PREEMPT_NONE), and a long one on each core delays
/// the health thread's wake-up by as much.
const EARLY_WRITE_BYTES: usize = 256 << 10;

/// Bytes written but not known durable past which an early write fsyncs
/// them at once, on the loop. They are kept in memory until an fsync
/// covers them, to be written again if it fails; without a bound, a commit
/// of a flood of rejects (64 batches of short lines, each record carrying
/// its line: tens of MB) would be held whole. Above what a commit of fills
/// at full rate writes (64 batches of 64 KiB of lines, about 6 MiB of
/// records), so durable ingest never waits for this.
const MAX_UNSYNCED_BYTES: usize = 8 << 20;

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
    /// A record that cannot be believed: unreadable, or its checksum off.
    #[error(
        "journal {path} is corrupt at line {line}, byte {offset}: record seq {seq}: {detail}; \
         refusing to guess what was decided"
    )]
    Damaged {
        path: PathBuf,
        line: usize,
        offset: u64,
        seq: u64,
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
            JournalError::Corrupt { path, line, detail } => {
                format!("{} is corrupt at line {line}: {detail}", name(path))
            }
            JournalError::Damaged {
                path,
                line,
                offset,
                seq,
                detail,
            } => format!(
                "{} is corrupt at line {line}, byte {offset}: record seq {seq}: {detail}",
                name(path)
            ),
        }
    }
}

pub(crate) struct Journal {
    state_dir: PathBuf,
    policy: FsyncPolicy,
    segment_size: u64,
    active: Active,
    /// Bytes written and handed to the sync thread's fsync: the file from
    /// `durable_len` on. Kept until an fsync covers them, to be written
    /// again if it fails.
    inflight: Vec<u8>,
    /// The bytes after those: the first `written` are in the file (not
    /// known durable yet), the rest are not written yet. A commit swaps a
    /// fully written `pending` with the emptied `inflight` rather than
    /// copying it.
    pending: Vec<u8>,
    written: usize,
    /// Records appended so far: the seq of the last one.
    last_seq: u64,
    /// The last record written to a segment: its segment, where it ends,
    /// its length.
    tail: Option<(u64, u64, usize)>,
    /// Bytes appended since this process started, and how many of them are
    /// durable: a reply waits until its bytes are.
    appended: u64,
    durable: u64,
    /// An fsync failed: the active segment's tail past `durable_len` is not
    /// trusted, and is cut before anything is written.
    cut_needed: bool,
    /// A failed fsync of an early write, for the next commit to report:
    /// the cut and the rewrite that follow it must not hide it.
    failed_early: Option<JournalError>,
    syncer: Option<Syncer>,
    /// fsync durations not yet taken by [`Journal::fsync_times`].
    fsync_times: Vec<Duration>,
    /// Segments closed by a roll, not yet taken by [`Journal::rolled`].
    rolled: Vec<(u64, u64)>,
}

/// The segment being appended to.
struct Active {
    first_seq: u64,
    path: Arc<Path>,
    file: Option<Arc<File>>,
    /// Bytes of whole records in the file; a torn tail past it is cut
    /// when the file is opened.
    len: u64,
    /// What the last successful fsync covered.
    durable_len: u64,
}

impl Active {
    fn new(state_dir: &Path, first_seq: u64, len: u64) -> Active {
        Active {
            first_seq,
            path: segments::path(state_dir, first_seq).into(),
            file: None,
            len,
            durable_len: len,
        }
    }
}

struct SyncRequest {
    file: Arc<File>,
    path: Arc<Path>,
    durable_len: u64,
    len: u64,
}

/// The thread that fsyncs a commit while the loop decides the next batch.
struct Syncer {
    requests: mpsc::Sender<SyncRequest>,
    results: mpsc::Receiver<io::Result<Duration>>,
    /// The length its running fsync covers.
    running: Option<u64>,
}

impl Syncer {
    fn spawn() -> io::Result<Syncer> {
        let (requests, requested) = mpsc::channel::<SyncRequest>();
        let (done, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || {
                crate::bot::yield_cpu_to_health();
                for request in requested {
                    let result = fsync(
                        &request.file,
                        &request.path,
                        request.durable_len,
                        request.len,
                    );
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

/// fsync, and how long it took. Under the `failpoints` feature,
/// `ledger::fsync` can fail it with EIO, and with `return(lose)` first
/// overwrite what it was to make durable, as a disk that never got those
/// pages would show them on a later read.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
fn fsync(file: &File, path: &Path, durable_len: u64, len: u64) -> io::Result<Duration> {
    fail::fail_point!("ledger::fsync", |how: Option<String>| {
        if how.as_deref() == Some("lose") {
            lose(path, durable_len, len);
        }
        Err(io::Error::from_raw_os_error(libc::EIO))
    });
    let started = Instant::now();
    file.sync_data()?;
    Ok(started.elapsed())
}

#[cfg(feature = "failpoints")]
fn lose(path: &Path, from: u64, to: u64) {
    use std::os::unix::fs::FileExt;
    // Not the journal's descriptor: it appends, and pwrite there would too.
    if let Ok(file) = OpenOptions::new().write(true).open(path) {
        let _ = file.write_all_at(&vec![0; (to - from) as usize], from);
    }
}

#[cfg(feature = "failpoints")]
fn injected(what: &str) -> io::Error {
    io::Error::other(format!("{what} failed (fail point)"))
}

impl Journal {
    /// A journal to append to where a scan of it ended (see
    /// [`super::reader::Scan::end`]). Nothing is opened yet: the first
    /// [`Journal::commit`] opens the last segment (cutting a torn tail) or
    /// creates the first, and retries, so an unwritable directory is a
    /// health problem, not a start-up failure.
    pub(crate) fn resume(
        state_dir: &Path,
        policy: FsyncPolicy,
        segment_size: u64,
        end: &End,
    ) -> Journal {
        let (first_seq, len) = end.last_segment.unwrap_or((end.last_seq + 1, 0));
        Journal {
            state_dir: state_dir.to_owned(),
            policy,
            segment_size,
            active: Active::new(state_dir, first_seq, len),
            inflight: Vec::new(),
            pending: Vec::with_capacity(64 * 1024),
            written: 0,
            last_seq: end.last_seq,
            tail: end.tail,
            appended: 0,
            durable: 0,
            cut_needed: false,
            failed_early: None,
            syncer: None,
            fsync_times: Vec::new(),
            rolled: Vec::new(),
        }
    }

    /// The segment being appended to.
    pub(crate) fn path(&self) -> &Path {
        &self.active.path
    }

    /// The active segment: its first seq and its length.
    pub(crate) fn active(&self) -> (u64, u64) {
        (self.active.first_seq, self.active.len)
    }

    pub(crate) fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Bytes appended since start; a reply waits until [`Journal::commit`]
    /// reports them durable.
    pub(crate) fn appended(&self) -> u64 {
        self.appended
    }

    /// Where the last record ends, and its length; `None` while records
    /// are not all written, or while where the last one is is not known.
    pub(crate) fn position(&self) -> Option<(Position, usize)> {
        if self.written < self.pending.len() {
            return None;
        }
        match self.tail {
            _ if self.last_seq == 0 => Some((Position::default(), 0)),
            Some((segment, offset, len)) => Some((
                Position {
                    seq: self.last_seq,
                    segment,
                    offset,
                },
                len,
            )),
            None => None,
        }
    }

    /// Segments closed by a roll since the last call: first seq, length.
    pub(crate) fn rolled(&mut self) -> std::vec::Drain<'_, (u64, u64)> {
        self.rolled.drain(..)
    }

    /// Buffers one record, and returns its seq; nothing reaches the file
    /// before [`Journal::commit`].
    pub(crate) fn append(&mut self, record: &Record<'_>) -> u64 {
        let before = self.pending.len();
        record::write_line(record, &mut self.pending);
        self.last_seq += 1;
        self.appended += (self.pending.len() - before) as u64;
        if self.pending.len() - self.written >= EARLY_WRITE_BYTES {
            self.write_early();
        }
        self.last_seq
    }

    /// Writes what is buffered before the commit (rolling the segment if
    /// it is full), and starts the disk on it, so a large commit's fsync
    /// finds most of its pages already written back instead of waiting for
    /// all of them; past [`MAX_UNSYNCED_BYTES`] it fsyncs them, so what is
    /// kept for a rewrite stays bounded. Safe at any time: records reach
    /// the file in order, and nothing is acknowledged before the commit.
    /// A failed write or roll is left for the commit to meet again; a
    /// failed fsync, which the cut and rewrite after it would hide, is
    /// kept for the commit to report.
    fn write_early(&mut self) {
        if self.active.file.is_none() || self.cut_needed {
            return;
        }
        if let Err(error) = self.write_early_steps() {
            if self.cut_needed {
                self.failed_early = Some(error);
            }
        }
    }

    fn write_early_steps(&mut self) -> Result<(), JournalError> {
        if self.roll_due() {
            // The roll fsyncs the segment it closes: the last commit's
            // fsync, maybe still running, must have ended first.
            self.finish_sync()?;
            self.roll()?;
        }
        let from = self.active.len;
        let limit = self.segment_limit();
        self.write_to(limit)?;
        if self.policy == FsyncPolicy::Never {
            // Nothing waits for an fsync: written is as durable as it gets.
            self.mark_durable(self.active.len);
            return Ok(());
        }
        if self.inflight.len() + self.written >= MAX_UNSYNCED_BYTES {
            self.finish_sync()?;
            return self.sync_now();
        }
        if let Some(file) = &self.active.file {
            // Only a head start for the fsync, which reports what matters.
            if let Err(error) = sys::start_writeback(file.as_fd(), from, self.active.len - from) {
                tracing::debug!(%error, "sync_file_range failed; the commit's fsync does it all");
            }
        }
        Ok(())
    }

    /// Writes what is buffered and makes it durable per the policy; returns
    /// how many of the bytes appended since start are durable (see
    /// [`Journal::appended`]). On error what is buffered is kept, and the
    /// next call goes on from there.
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
        if let Some(error) = self.failed_early.take() {
            return Err(error);
        }
        if self.cut_needed {
            self.cut()?;
        }
        self.write_pending()?;
        if self.policy == FsyncPolicy::Never {
            self.mark_durable(self.active.len);
            return Ok(self.durable);
        }
        if self.active.durable_len == self.active.len {
            return Ok(self.durable);
        }
        if overlap && self.policy == FsyncPolicy::Batch && self.start_sync() {
            return Ok(self.durable);
        }
        self.sync_now()?;
        Ok(self.durable)
    }

    /// The fsyncs made since the last call, for the metrics.
    pub(crate) fn fsync_times(&mut self) -> std::vec::Drain<'_, Duration> {
        self.fsync_times.drain(..)
    }

    /// Everything up to `len` in the active segment is durable: what
    /// `inflight`, then `pending`, held of it is let go.
    fn mark_durable(&mut self, len: u64) {
        let newly = (len - self.active.durable_len) as usize;
        let from_inflight = newly.min(self.inflight.len());
        if from_inflight == self.inflight.len() {
            self.inflight.clear();
        } else {
            self.inflight.drain(..from_inflight);
        }
        let from_pending = newly - from_inflight;
        if from_pending == self.pending.len() {
            self.pending.clear();
        } else if from_pending > 0 {
            self.pending.drain(..from_pending);
        }
        self.written -= from_pending;
        self.active.durable_len = len;
        self.durable += newly as u64;
    }

    fn fsync_error(&mut self, source: io::Error) -> JournalError {
        self.cut_needed = true;
        tracing::error!(
            segment = %self.active.path.display(),
            durable_bytes = self.active.durable_len,
            unsynced_bytes = self.active.len - self.active.durable_len,
            %source,
            "journal fsync failed: what was written since the last successful fsync is no \
             longer trusted; nothing is acknowledged until it has been cut, written again and \
             fsynced"
        );
        JournalError::Io {
            what: "cannot fsync journal segment",
            path: self.active.path.to_path_buf(),
            source,
        }
    }

    fn sync_now(&mut self) -> Result<(), JournalError> {
        let Some(file) = &self.active.file else {
            return Ok(());
        };
        let len = self.active.len;
        match fsync(file, &self.active.path, self.active.durable_len, len) {
            Ok(took) => {
                self.fsync_times.push(took);
                self.mark_durable(len);
                Ok(())
            }
            Err(source) => Err(self.fsync_error(source)),
        }
    }

    /// Hands an fsync of everything written to the sync thread; false if
    /// there is none to hand it to (the caller then fsyncs itself).
    fn start_sync(&mut self) -> bool {
        let Some(file) = &self.active.file else {
            return false;
        };
        if self.syncer.is_none() {
            self.syncer = Syncer::spawn().ok();
        }
        let Some(syncer) = &mut self.syncer else {
            return false;
        };
        let request = SyncRequest {
            file: Arc::clone(file),
            path: Arc::clone(&self.active.path),
            durable_len: self.active.durable_len,
            len: self.active.len,
        };
        if syncer.requests.send(request).is_err() {
            self.syncer = None;
            return false;
        }
        syncer.running = Some(self.active.len);
        // All of `pending` is written (the commit wrote it) and `inflight`
        // is empty (the last fsync finished): a swap, not a copy.
        if self.inflight.is_empty() && self.written == self.pending.len() {
            std::mem::swap(&mut self.inflight, &mut self.pending);
        } else {
            self.inflight
                .extend_from_slice(&self.pending[..self.written]);
            self.pending.drain(..self.written);
        }
        self.written = 0;
        true
    }

    /// Waits for the sync thread's fsync, if one is running.
    fn finish_sync(&mut self) -> Result<(), JournalError> {
        let Some(syncer) = &mut self.syncer else {
            return Ok(());
        };
        let Some(len) = syncer.running.take() else {
            return Ok(());
        };
        let source = match syncer.results.recv() {
            Ok(Ok(took)) => {
                self.fsync_times.push(took);
                self.mark_durable(len);
                return Ok(());
            }
            Ok(Err(source)) => source,
            Err(_) => {
                self.syncer = None;
                io::Error::other("the journal's sync thread is gone")
            }
        };
        Err(self.fsync_error(source))
    }

    /// After a failed fsync: cuts the active segment back to what the last
    /// successful fsync covered, and makes the cut durable; what was cut
    /// stays in `pending`, to be written again.
    fn cut(&mut self) -> Result<(), JournalError> {
        let Some(file) = &self.active.file else {
            return Ok(());
        };
        if !self.inflight.is_empty() {
            // One buffer again, in file order, to be written again whole.
            let inflight = self.inflight.len();
            self.inflight.extend_from_slice(&self.pending);
            std::mem::swap(&mut self.inflight, &mut self.pending);
            self.inflight.clear();
            self.written += inflight;
        }
        let io_error = |what, source| JournalError::Io {
            what,
            path: self.active.path.to_path_buf(),
            source,
        };
        file.set_len(self.active.durable_len).map_err(|source| {
            io_error("cannot cut the untrusted tail of journal segment", source)
        })?;
        file.sync_all()
            .map_err(|source| io_error("cannot fsync the cut of journal segment", source))?;
        tracing::warn!(
            segment = %self.active.path.display(),
            cut_to = self.active.durable_len,
            writing_again = self.pending.len(),
            "journal segment cut back to its last fsynced length; writing the rest again"
        );
        self.active.len = self.active.durable_len;
        self.written = 0;
        self.cut_needed = false;
        Ok(())
    }

    /// A roll is due when the active segment has reached its size and what
    /// is written of it ends with a whole record.
    fn roll_due(&self) -> bool {
        self.active.len >= self.segment_size
            && (self.written == 0 || self.pending[self.written - 1] == b'\n')
    }

    /// Closes the active segment and starts the next one. The closed one is
    /// whole and durable before any record goes into the next: a crash can
    /// then never leave a hole in the middle of the journal.
    fn roll(&mut self) -> Result<(), JournalError> {
        if self.policy == FsyncPolicy::Never {
            // Counted now: the next segment's bytes are counted from zero.
            self.mark_durable(self.active.len);
        } else if self.active.durable_len < self.active.len {
            self.sync_now()?;
        }
        let unwritten = memchr::memchr_iter(b'\n', &self.pending[self.written..]).count() as u64;
        let first_seq = self.last_seq - unwritten + 1;
        let path = segments::path(&self.state_dir, first_seq);
        let io_error = |what, source| JournalError::Io {
            what,
            path: path.clone(),
            source,
        };
        let create = || {
            fail::fail_point!("ledger::roll::create", |_| Err(injected("create")));
            // An empty one is this roll's own, from an attempt that failed
            // after creating it: the lock keeps any other writer away.
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            if file.metadata()?.len() > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the next segment exists already, with records",
                ));
            }
            Ok(file)
        };
        let file = create().map_err(|source| io_error("cannot create journal segment", source))?;
        let sync = || {
            fail::fail_point!("ledger::roll::fsync_dir", |_| Err(injected("fsync")));
            sync_dir(&segments::dir(&self.state_dir))
        };
        sync().map_err(|source| io_error("cannot fsync the directory of", source))?;
        fail::fail_point!("ledger::roll::switch");
        tracing::debug!(closed = %self.active.path.display(), bytes = self.active.len, next = %path.display(), "journal segment rolled");
        self.rolled.push((self.active.first_seq, self.active.len));
        self.active = Active::new(&self.state_dir, first_seq, 0);
        self.active.file = Some(Arc::new(file));
        Ok(())
    }

    /// Writes `pending` from where the last write stopped, rolling the
    /// segment wherever it reaches its size (between two records); on
    /// error, `written` says how far it got.
    fn write_pending(&mut self) -> Result<(), JournalError> {
        while self.written < self.pending.len() {
            if self.roll_due() {
                self.roll()?;
            }
            let limit = self.segment_limit();
            self.write_to(limit)?;
        }
        Ok(())
    }

    /// How far into `pending` the active segment takes records: to the end
    /// of the record that brings it to its size, or all of them.
    fn segment_limit(&self) -> usize {
        let room = self.segment_size.saturating_sub(self.active.len) as usize;
        let rest = &self.pending[self.written..];
        if rest.len() <= room {
            return self.pending.len();
        }
        memchr::memchr(b'\n', &rest[room.saturating_sub(1)..]).map_or(self.pending.len(), |at| {
            self.written + room.saturating_sub(1) + at + 1
        })
    }

    /// Writes `pending` up to `limit` into the active segment.
    fn write_to(&mut self, limit: usize) -> Result<(), JournalError> {
        let Some(file) = &self.active.file else {
            return Ok(());
        };
        let before = self.written;
        while self.written < limit {
            match (&**file).write(&self.pending[self.written..limit]) {
                Ok(0) => {
                    return Err(JournalError::Io {
                        what: "cannot append to journal segment",
                        path: self.active.path.to_path_buf(),
                        source: io::ErrorKind::WriteZero.into(),
                    })
                }
                Ok(count) => {
                    self.written += count;
                    self.active.len += count as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(JournalError::Io {
                        what: "cannot append to journal segment",
                        path: self.active.path.to_path_buf(),
                        source,
                    })
                }
            }
        }
        if self.written > before {
            // The last record written: `pending` starts at a record's start.
            let end = self.written;
            let start = memchr::memrchr(b'\n', &self.pending[..end - 1]).map_or(0, |at| at + 1);
            self.tail = Some((self.active.first_seq, self.active.len, end - start));
        }
        Ok(())
    }

    /// Opens the active segment for appending if not open yet, cutting a
    /// torn tail first.
    fn open(&mut self) -> Result<(), JournalError> {
        if self.active.file.is_some() {
            return Ok(());
        }
        segments::create_dir(&self.state_dir)?;
        let io_error = |what, source| JournalError::Io {
            what,
            path: self.active.path.to_path_buf(),
            source,
        };
        let existed = self.active.path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.active.path)
            .map_err(|source| io_error("cannot open journal segment for appending", source))?;
        let len = file
            .metadata()
            .map_err(|source| io_error("cannot stat journal segment", source))?
            .len();
        if len > self.active.len {
            file.set_len(self.active.len).map_err(|source| {
                io_error("cannot cut the torn tail of journal segment", source)
            })?;
        } else if len < self.active.len {
            return Err(JournalError::Corrupt {
                path: self.active.path.to_path_buf(),
                line: 0,
                detail: format!(
                    "it is {len} bytes long, but {} bytes of it were read at start",
                    self.active.len
                ),
            });
        }
        if !existed {
            let dir = segments::dir(&self.state_dir);
            sync_dir(&dir).map_err(|source| JournalError::Io {
                what: "cannot fsync the directory",
                path: dir,
                source,
            })?;
        }
        self.active.file = Some(Arc::new(file));
        Ok(())
    }
}

/// Makes a new or renamed directory entry durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A fill record for tests, with `id` and fixed figures.
#[cfg(test)]
pub(crate) fn test_fill(id: &str) -> Record<'static> {
    use crate::bot::signal::Side;
    Record::Fill {
        id: id.to_owned().into(),
        src: "stdin".into(),
        ts: 1,
        at: 2,
        symbol: "BTC".into(),
        side: Side::Buy,
        qty: crate::bot::money::Quantity::from_int(1).unwrap_or_default(),
        price: crate::bot::money::Price::from_int(10).unwrap_or_default(),
        asked: None,
        fee: None,
        places: crate::bot::money::Rounding::DEFAULT,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::ledger::reader::{Mode, Scan};

    fn fill(id: &str) -> Record<'static> {
        super::test_fill(id)
    }

    /// Every record of the journal, and where the scan ended.
    fn read(dir: &Path) -> (Vec<(u64, Record<'static>)>, End) {
        let mut scan = Scan::new(segments::list(dir).unwrap(), Mode::Strict);
        let mut records = Vec::new();
        while let Some((seq, record)) = scan.record().unwrap() {
            records.push((seq, record.into_owned()));
        }
        (records, scan.end())
    }

    fn reopen(dir: &Path, policy: FsyncPolicy, segment_size: u64) -> Journal {
        Journal::resume(dir, policy, segment_size, &read(dir).1)
    }

    fn ids(dir: &Path) -> Vec<(u64, String)> {
        read(dir)
            .0
            .into_iter()
            .map(|(seq, record)| match record {
                Record::Fill { id, .. } => (seq, id.into_owned()),
                _ => (seq, String::new()),
            })
            .collect()
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = reopen(dir.path(), FsyncPolicy::Batch, 1 << 20);
        assert_eq!(journal.append(&fill("a")), 1);
        assert_eq!(journal.append(&fill("b")), 2);
        assert_eq!(journal.commit(false).unwrap(), journal.appended());
        assert_eq!(journal.fsync_times().count(), 1);
        drop(journal);
        let path = segments::path(dir.path(), 1);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"t":"fill","id":"c","sr"#).unwrap();
        let (records, _) = read(dir.path());
        assert_eq!(records, vec![(1, fill("a")), (2, fill("b"))]);
        let mut journal = reopen(dir.path(), FsyncPolicy::Batch, 1 << 20);
        assert_eq!(journal.append(&fill("d")), 3);
        journal.commit(false).unwrap();
        assert_eq!(
            ids(dir.path()),
            [(1, "a".into()), (2, "b".into()), (3, "d".into())]
        );
    }

    #[test]
    fn an_overlapped_fsync_is_durable_by_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = reopen(dir.path(), FsyncPolicy::Batch, 1 << 20);
        journal.append(&fill("a"));
        let first = journal.appended();
        assert_eq!(journal.commit(true).unwrap(), 0, "fsync still running");
        journal.append(&fill("b"));
        assert_eq!(
            journal.commit(true).unwrap(),
            first,
            "the first one waited for"
        );
        assert_eq!(journal.commit(false).unwrap(), journal.appended());
        assert_eq!(journal.fsync_times().count(), 2);
        assert_eq!(ids(dir.path()), [(1, "a".into()), (2, "b".into())]);
    }

    #[test]
    fn segments_roll_at_their_size_between_whole_records() {
        for policy in [FsyncPolicy::Always, FsyncPolicy::Batch, FsyncPolicy::Never] {
            let dir = tempfile::tempdir().unwrap();
            let mut journal = reopen(dir.path(), policy, 300);
            for index in 0..40 {
                journal.append(&fill(&format!("id-{index}")));
                if index % 3 == 0 {
                    let overlap = index % 2 == 0;
                    let durable = journal.commit(overlap).unwrap();
                    if !overlap || policy != FsyncPolicy::Batch {
                        // A commit that rolled mid-way counts all its bytes.
                        assert_eq!(durable, journal.appended(), "{policy:?}");
                    }
                }
            }
            assert_eq!(journal.commit(false).unwrap(), journal.appended());
            assert!(journal.pending.is_empty() && journal.inflight.is_empty());
            let rolled: Vec<(u64, u64)> = journal.rolled().collect();
            let segments = segments::list(dir.path()).unwrap();
            assert!(segments.len() > 5, "{segments:?}");
            assert_eq!(rolled.len(), segments.len() - 1);
            for ((first_seq, len), segment) in rolled.iter().zip(&segments) {
                assert_eq!(*first_seq, segment.first_seq);
                let bytes = std::fs::read(&segment.path).unwrap();
                assert_eq!(bytes.len() as u64, *len);
                assert!(bytes.len() >= 300 && bytes.ends_with(b"\n"));
            }
            let expected: Vec<(u64, String)> = (0..40)
                .map(|index| (index + 1, format!("id-{index}")))
                .collect();
            assert_eq!(ids(dir.path()), expected);
            // Resuming appends to the last segment, numbering on.
            let mut journal = reopen(dir.path(), policy, 300);
            assert_eq!(journal.append(&fill("next")), 41);
            journal.commit(false).unwrap();
            assert_eq!(ids(dir.path()).last().unwrap(), &(41, "next".to_owned()));
        }
    }

    /// A commit larger than [`MAX_UNSYNCED_BYTES`] (a flood of rejects) is
    /// written and fsynced as it grows, rolling segments on the way, so
    /// what is kept for a rewrite stays bounded; all of it reads back.
    #[test]
    fn a_large_commit_is_never_held_whole() {
        for (policy, segment_size) in [
            (FsyncPolicy::Batch, 1 << 30),
            (FsyncPolicy::Batch, 1 << 20),
            (FsyncPolicy::Never, 1 << 20),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut journal = reopen(dir.path(), policy, segment_size);
            journal.commit(false).unwrap(); // opens the segment
            let mut count = 0;
            while journal.appended() < 3 * MAX_UNSYNCED_BYTES as u64 {
                journal.append(&fill(&format!("early-{count}")));
                count += 1;
                let held = journal.inflight.len() + journal.pending.len();
                assert!(
                    held <= MAX_UNSYNCED_BYTES + EARLY_WRITE_BYTES + 1024,
                    "{policy:?}, {segment_size}: {held} bytes held"
                );
            }
            if policy == FsyncPolicy::Batch {
                assert!(journal.fsync_times().count() >= 2, "fsynced as it grew");
            }
            assert_eq!(journal.commit(false).unwrap(), journal.appended());
            let (records, _) = read(dir.path());
            assert_eq!(records.len(), count, "{policy:?}, {segment_size}");
            assert_eq!(
                records.last().unwrap().1,
                fill(&format!("early-{}", count - 1))
            );
        }
    }

    /// What a failed fsync leaves (the pages since the last good one lost,
    /// here overwritten as a later read could show them) is cut and written
    /// again from memory; nothing is reported durable before that.
    #[test]
    fn after_a_failed_fsync_the_untrusted_tail_is_cut_and_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = reopen(dir.path(), FsyncPolicy::Batch, 1 << 20);
        journal.append(&fill("durable"));
        journal.commit(false).unwrap();
        let durable = journal.appended();
        journal.append(&fill("lost-1"));
        journal.append(&fill("lost-2"));
        journal.open().unwrap();
        journal.write_pending().unwrap();
        let path = journal.path().to_owned();
        let (from, to) = (journal.active.durable_len, journal.active.len);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&vec![0; (to - from) as usize], from)
            })
            .unwrap();
        let _ = journal.fsync_error(io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(journal.durable, durable, "nothing new is durable");
        journal.append(&fill("after"));
        assert_eq!(journal.commit(false).unwrap(), journal.appended());
        assert_eq!(
            ids(dir.path()),
            [
                (1, "durable".into()),
                (2, "lost-1".into()),
                (3, "lost-2".into()),
                (4, "after".into())
            ]
        );
    }
}
