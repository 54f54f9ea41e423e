//! Snapshots that recovery trusts: `STATE_DIR/snapshots/<seq, 20 digits>
//! .snap`, the ledger's and the engine's state after record `seq`, so a
//! start reads the newest valid snapshot and replays only what follows it.
//!
//! A snapshot is one JSON line (the header: what it covers and the state,
//! readable with `head -1`), the exactly-once window's records as the
//! window keeps them in memory (binary, see `window.rs`), and a trailer,
//! `sha256 <hex>\n`, over everything before it. It is written on a thread
//! of its own, atomically (temp file, fsync, rename, fsync the directory),
//! only once the journal holds everything it covers durably, and names the
//! last record it covers by position and by the SHA-256 of its line: a
//! snapshot from another journal, or from before a journal was cut, is not
//! mistaken for this one's. A fail point precedes each step.
//!
//! Recovery takes the newest snapshot that passes every check; a damaged
//! one is renamed `*.bad` (kept for a post-mortem, never read again) and
//! logged loudly, and the next older one is tried, down to a full replay.
//! A snapshot of an earlier format (version 1: the float releases' money)
//! is no snapshot: never listed, never trusted; recovery renames it
//! `*.old`, says so loudly, and replays the journal instead.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::journal::sync_dir;
use super::reader::Position;
use super::segments;
use super::window::WindowView;
use crate::bot::account::Position as Holding;

pub(crate) const DIR: &str = "snapshots";
const FORMAT: &str = "tradingbot-snapshot";
/// 2: exact decimals (positions with their cost, fees and mark, as
/// strings). 1 held floats, which are not trusted.
const VERSION: u32 = 2;
/// Snapshots kept: a damaged newest one still leaves two to fall back on.
const KEEP: usize = 3;
/// `sha256 ` + 64 hex digits + newline.
const TRAILER: usize = 72;

/// Counts over the whole journal, restored from the snapshot and moved on
/// by the replay: the same rule for live decisions and recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub(crate) fills: u64,
    pub(crate) rejects: BTreeMap<String, u64>,
    /// Records that took their signal's id.
    pub(crate) ids_taken: u64,
}

/// The snapshot's first line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) written_at: String,
    /// The last record covered, the segment it is in (by first seq), and
    /// where in it that record ends.
    pub(crate) seq: u64,
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) last_record_len: u64,
    pub(crate) last_record_sha256: String,
    /// The window's clock (the latest decision time, epoch ms).
    pub(crate) clock: i64,
    /// Every position, its mark included (price updates are not
    /// journaled: a restart keeps the marks they moved from here).
    pub(crate) positions: BTreeMap<String, Holding>,
    /// Every fill of each symbol that has one: the busiest symbols get
    /// metrics series of their own (METRICS_MAX_SYMBOLS).
    pub(crate) symbol_fills: BTreeMap<String, u64>,
    /// Fill times in the last minute (MAX_ORDERS_PER_MINUTE).
    pub(crate) recent_fills: Vec<i64>,
    pub(crate) checkpoints: BTreeMap<String, Checkpoint>,
    pub(crate) totals: Totals,
    pub(crate) window_ids: usize,
    pub(crate) window_bytes: usize,
    /// The DEDUPE_WINDOW and MAX_CLOCK_SKEW it was taken with, ms
    /// (`tradingbot journal verify` checks with them; snapshots of the
    /// releases before have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dedupe_window_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_clock_skew_ms: Option<u64>,
}

impl Header {
    pub(crate) fn position(&self) -> Position {
        Position {
            seq: self.seq,
            segment: self.segment,
            offset: self.offset,
        }
    }
}

/// A snapshot read back and checked.
pub(crate) struct Loaded {
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
    pub(crate) window: Vec<u8>,
}

/// What the loop hands the writer thread: the state at one record.
pub(crate) struct Job {
    pub(crate) position: Position,
    pub(crate) last_record_len: usize,
    pub(crate) positions: BTreeMap<String, Holding>,
    pub(crate) symbol_fills: BTreeMap<String, u64>,
    pub(crate) recent_fills: Vec<i64>,
    pub(crate) checkpoints: BTreeMap<String, Checkpoint>,
    pub(crate) totals: Totals,
    pub(crate) window: WindowView,
    pub(crate) max_clock_skew_ms: i64,
}

pub(crate) fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR)
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.snap")
}

/// The snapshot files of this format, newest first.
pub(crate) fn list(state_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = files(state_dir)?;
    found.retain(|(_, path)| older_version(path).is_none());
    Ok(found)
}

/// The snapshot files of an earlier format, with the version each says.
pub(crate) fn older(state_dir: &Path) -> io::Result<Vec<(PathBuf, u32)>> {
    let files = files(state_dir)?;
    Ok(files
        .into_iter()
        .filter_map(|(_, path)| older_version(&path).map(|version| (path, version)))
        .collect())
}

/// The version a snapshot's first line says, when it is older than this
/// one; `None` for this one's, and for a file too damaged to say (which
/// the full read then finds).
fn older_version(path: &Path) -> Option<u32> {
    #[derive(Deserialize)]
    struct Said {
        format: String,
        version: u32,
    }
    let line = first_line(path)?;
    let said: Said = serde_json::from_slice(&line).ok()?;
    (said.format == FORMAT && said.version < VERSION).then_some(said.version)
}

/// A file's first line, unchecked.
pub(crate) fn first_line(path: &Path) -> Option<Vec<u8>> {
    use std::io::BufRead;
    let mut line = Vec::new();
    io::BufReader::new(File::open(path).ok()?)
        .read_until(b'\n', &mut line)
        .ok()?;
    Some(line)
}

/// Every `*.snap` file, newest first.
fn files(state_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    match std::fs::read_dir(dir(state_dir)) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let seq = name
                    .to_str()
                    .and_then(|name| name.strip_suffix(".snap"))
                    .filter(|digits| digits.len() == 20)
                    .and_then(|digits| digits.parse::<u64>().ok());
                if let Some(seq) = seq {
                    found.push((seq, entry.path()));
                }
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    found.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    Ok(found)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The SHA-256 of the record that ends at `position`, `len` bytes long.
fn record_sha256(state_dir: &Path, position: &Position, len: u64) -> io::Result<String> {
    if position.seq == 0 {
        return Ok(String::new());
    }
    let start = position
        .offset
        .checked_sub(len)
        .filter(|_| len > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no last record there"))?;
    let mut line = vec![0; len as usize];
    File::open(segments::path(state_dir, position.segment))?.read_exact_at(&mut line, start)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no record ends there",
        ));
    }
    Ok(hex(ring::digest::digest(&SHA256, &line).as_ref()))
}

#[cfg(feature = "failpoints")]
fn injected(step: &str) -> io::Error {
    io::Error::other(format!("snapshot {step} failed (fail point)"))
}

/// Writes `job` atomically; returns the path and the bytes written.
pub(crate) fn write(state_dir: &Path, job: &Job) -> io::Result<(PathBuf, u64)> {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        written_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        seq: job.position.seq,
        segment: job.position.segment,
        offset: job.position.offset,
        last_record_len: job.last_record_len as u64,
        last_record_sha256: record_sha256(state_dir, &job.position, job.last_record_len as u64)?,
        clock: job.window.clock_ms,
        positions: job.positions.clone(),
        symbol_fills: job.symbol_fills.clone(),
        recent_fills: job.recent_fills.clone(),
        checkpoints: job.checkpoints.clone(),
        totals: job.totals.clone(),
        window_ids: job.window.ids,
        window_bytes: job.window.bytes(),
        dedupe_window_ms: u64::try_from(job.window.span_ms).ok(),
        max_clock_skew_ms: u64::try_from(job.max_clock_skew_ms).ok(),
    };
    let dir = dir(state_dir);
    match std::fs::create_dir(&dir) {
        Ok(()) => sync_dir(state_dir)?,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let path = dir.join(file_name(header.seq));
    let temp = dir.join(format!("{}.tmp", file_name(header.seq)));
    fail::fail_point!("ledger::snapshot::create", |_| Err(injected("create")));
    let file = File::create(&temp)?;
    let mut out = Hashing {
        out: BufWriter::with_capacity(256 << 10, file),
        context: Context::new(&SHA256),
        bytes: 0,
    };
    serde_json::to_writer(&mut out, &header).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    job.window.write_to(&mut out)?;
    fail::fail_point!("ledger::snapshot::write", |_| Err(injected("write")));
    let digest = out.context.finish();
    let bytes = out.bytes + TRAILER as u64;
    let mut file = out.out.into_inner().map_err(|error| error.into_error())?;
    file.write_all(format!("sha256 {}\n", hex(digest.as_ref())).as_bytes())?;
    fail::fail_point!("ledger::snapshot::fsync", |_| Err(injected("fsync")));
    file.sync_all()?;
    drop(file);
    fail::fail_point!("ledger::snapshot::rename", |_| Err(injected("rename")));
    std::fs::rename(&temp, &path)?;
    fail::fail_point!("ledger::snapshot::fsync_dir", |_| Err(injected(
        "directory fsync"
    )));
    sync_dir(&dir)?;
    Ok((path, bytes))
}

/// A writer that hashes what it writes.
struct Hashing<W> {
    out: W,
    context: Context,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.out.write(bytes)?;
        self.context.update(&bytes[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads a snapshot and checks its checksum and shape; what is wrong, in
/// a sentence, otherwise.
pub(crate) fn read(path: &Path) -> Result<Loaded, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|error| format!("cannot read it: {error}"))?;
    let Some(body_len) = bytes.len().checked_sub(TRAILER) else {
        return Err(format!("truncated: {} bytes", bytes.len()));
    };
    let (body, trailer) = bytes.split_at(body_len);
    let expected = trailer
        .strip_prefix(b"sha256 ")
        .and_then(|rest| rest.strip_suffix(b"\n"))
        .ok_or_else(|| "truncated: no checksum at its end".to_owned())?;
    let actual = hex(ring::digest::digest(&SHA256, body).as_ref());
    if actual.as_bytes() != expected {
        return Err("checksum mismatch: the file is damaged".into());
    }
    let header_end = memchr::memchr(b'\n', body).ok_or("no header line")?;
    let header: Header = serde_json::from_slice(&body[..header_end])
        .map_err(|error| format!("unreadable header: {error}"))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(format!(
            "format {} version {}, not {FORMAT} version {VERSION}",
            header.format, header.version
        ));
    }
    let window = body[header_end + 1..].to_vec();
    if window.len() != header.window_bytes {
        return Err(format!(
            "{} bytes of window records, the header says {}",
            window.len(),
            header.window_bytes
        ));
    }
    Ok(Loaded {
        path: path.to_owned(),
        header,
        window,
    })
}

/// Whether the journal still holds, at the snapshot's position, the very
/// record the snapshot was taken after.
pub(crate) fn matches_journal(state_dir: &Path, header: &Header) -> Result<(), String> {
    if header.seq == 0 {
        return Ok(());
    }
    let found =
        record_sha256(state_dir, &header.position(), header.last_record_len).map_err(|error| {
            format!(
                "its last record (seq {}, segment {}, byte {}) cannot be read: {error}",
                header.seq,
                segments::file_name(header.segment),
                header.offset
            )
        })?;
    if found != header.last_record_sha256 {
        return Err(format!(
            "the journal's record seq {} is not the one it was taken after",
            header.seq
        ));
    }
    Ok(())
}

/// Removes what writes cut short by a crash left (`*.tmp`): never read,
/// and otherwise never deleted.
pub(crate) fn remove_leftovers(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else {
        return;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.extension().is_some_and(|ext| ext == "tmp") {
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot remove a half-written snapshot");
            }
        }
    }
}

/// Moves a snapshot that failed a check out of the way, keeping it.
pub(crate) fn set_aside(path: &Path) {
    rename_to(path, "bad");
}

/// Moves every snapshot of an earlier format out of the way (kept as
/// `*.old`), saying loudly why it is not used; true if there was one.
pub(crate) fn set_aside_older(state_dir: &Path) -> bool {
    let older = older(state_dir).unwrap_or_default();
    for (path, version) in &older {
        tracing::warn!(
            snapshot = %path.display(),
            version,
            "SNAPSHOT OF AN EARLIER FORMAT: its positions are floats, which exact decimals do \
             not trust; set aside as *.old, and the journal is replayed instead (each fill read \
             as the decimal its text says)"
        );
        rename_to(path, "old");
    }
    !older.is_empty()
}

fn rename_to(path: &Path, suffix: &str) {
    let mut renamed = path.as_os_str().to_owned();
    renamed.push(".");
    renamed.push(suffix);
    if let Err(error) = std::fs::rename(path, &renamed) {
        tracing::warn!(path = %path.display(), %error, "cannot rename the unusable snapshot");
    }
}

/// What the writer thread did with one job.
pub(crate) struct Written {
    pub(crate) seq: u64,
    pub(crate) bytes: u64,
    pub(crate) took: Duration,
    pub(crate) at: SystemTime,
    /// Segments retention deleted after it: first seq, bytes.
    pub(crate) deleted: Vec<(u64, u64)>,
}

/// The thread that writes snapshots, prunes old ones and applies
/// retention, so none of that is on the loop's path. Started with the
/// first snapshot: a daemon that has written none has no thread for it.
pub(crate) struct Writer {
    state_dir: PathBuf,
    /// The valid snapshots recovery found (seq and segment), oldest
    /// first; handed to the thread when it starts.
    kept: Vec<(u64, u64)>,
    retention: Option<Duration>,
    thread: Option<Thread>,
    busy: bool,
}

struct Thread {
    jobs: std::sync::mpsc::SyncSender<Job>,
    results: std::sync::mpsc::Receiver<Result<Written, String>>,
}

impl Writer {
    pub(crate) fn new(
        state_dir: PathBuf,
        kept: Vec<(u64, u64)>,
        retention: Option<Duration>,
    ) -> Writer {
        Writer {
            state_dir,
            kept,
            retention,
            thread: None,
            busy: false,
        }
    }

    fn spawn(&mut self) -> io::Result<Thread> {
        let (jobs, incoming) = std::sync::mpsc::sync_channel::<Job>(1);
        let (done, results) = std::sync::mpsc::channel();
        let state_dir = self.state_dir.clone();
        let mut kept = std::collections::VecDeque::from(std::mem::take(&mut self.kept));
        let retention = self.retention;
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                crate::bot::yield_cpu_to_health();
                for job in incoming {
                    let result = write_and_tidy(&state_dir, &job, &mut kept, retention);
                    if done.send(result).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Thread { jobs, results })
    }

    pub(crate) fn busy(&self) -> bool {
        self.busy
    }

    /// Hands over a job, starting the thread if need be.
    pub(crate) fn start(&mut self, job: Job) -> Result<(), String> {
        if self.thread.is_none() {
            let thread = self
                .spawn()
                .map_err(|error| format!("cannot start the snapshot thread: {error}"))?;
            self.thread = Some(thread);
        }
        let sent = self
            .thread
            .as_ref()
            .is_some_and(|thread| thread.jobs.send(job).is_ok());
        if !sent {
            return Err("the snapshot thread is gone".into());
        }
        self.busy = true;
        Ok(())
    }

    /// The finished job's result, if it has finished (waiting for it when
    /// `wait`).
    pub(crate) fn finished(&mut self, wait: bool) -> Option<Result<Written, String>> {
        if !self.busy {
            return None;
        }
        let thread = self.thread.as_ref()?;
        let result = if wait {
            thread
                .results
                .recv()
                .unwrap_or_else(|_| Err("the snapshot thread is gone".into()))
        } else {
            thread.results.try_recv().ok()?
        };
        self.busy = false;
        Some(result)
    }
}

fn write_and_tidy(
    state_dir: &Path,
    job: &Job,
    kept: &mut std::collections::VecDeque<(u64, u64)>,
    retention: Option<Duration>,
) -> Result<Written, String> {
    let started = Instant::now();
    let (path, bytes) = write(state_dir, job).map_err(|error| error.to_string())?;
    let took = started.elapsed();
    kept.retain(|(seq, _)| *seq != job.position.seq);
    kept.push_back((job.position.seq, job.position.segment));
    while kept.len() > KEEP {
        if let Some((seq, _)) = kept.pop_front() {
            let old = dir(state_dir).join(file_name(seq));
            let prune = || {
                fail::fail_point!("ledger::snapshot::prune", |_| Err(injected("prune")));
                std::fs::remove_file(&old)
            };
            if let Err(error) = prune() {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %old.display(), %error, "cannot delete an old snapshot");
                }
            }
        }
    }
    tracing::debug!(path = %path.display(), bytes, took_ms = took.as_millis() as u64, "snapshot written");
    let floor = kept.iter().map(|(_, segment)| *segment).min().unwrap_or(0);
    let deleted = match retention {
        Some(retention) => retain(state_dir, floor, retention),
        None => Vec::new(),
    };
    Ok(Written {
        seq: job.position.seq,
        bytes,
        took,
        at: SystemTime::now(),
        deleted,
    })
}

/// Deletes the closed segments older than `retention` that every kept
/// snapshot has moved past (all before the segment of the oldest one's
/// last record), so no snapshot recovery may fall back to loses its replay.
/// The last segment is never closed, so never deleted.
fn retain(state_dir: &Path, floor: u64, retention: Duration) -> Vec<(u64, u64)> {
    let mut deleted = Vec::new();
    let Ok(segments) = segments::list(state_dir) else {
        return deleted;
    };
    for pair in segments.windows(2) {
        let (segment, next) = (&pair[0], &pair[1]);
        if next.first_seq > floor {
            break;
        }
        let Ok(metadata) = std::fs::metadata(&segment.path) else {
            continue;
        };
        let old_enough = metadata
            .modified()
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= retention);
        if !old_enough {
            continue;
        }
        let delete = || {
            fail::fail_point!("ledger::retention::delete", |_| Err(injected("retention")));
            std::fs::remove_file(&segment.path)
        };
        match delete() {
            Ok(()) => {
                tracing::info!(segment = %segment.path.display(), bytes = metadata.len(), "journal segment deleted (JOURNAL_RETENTION)");
                deleted.push((segment.first_seq, metadata.len()));
            }
            Err(error) => {
                tracing::warn!(segment = %segment.path.display(), %error, "cannot delete a journal segment past its retention");
                break;
            }
        }
    }
    deleted
}
