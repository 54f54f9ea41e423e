//! `file:PATH`: tails a JSONL file another program appends to.
//!
//! Runs on its own thread with plain blocking reads (a local file read is
//! quick, and it keeps the bot's runtime free of blocking calls). At end of
//! file it polls: a file shorter than what was read has been truncated (read
//! again from the start); a path that now names another inode has been
//! rotated (finish the old file, then read the new one from the start). A
//! partial last line waits for its newline. Each batch carries the offset
//! just past its last whole line; the loop journals it as the checkpoint
//! after the batch's decisions, and a restart resumes there in the same file
//! (by device and inode, even if it was rotated away meanwhile).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::feed::Status;
use super::pump::Pump;
use super::{Batch, Outlet};
use crate::bot::ledger::checkpoint::Checkpoint;

/// Starts tailing `path`, from `resume` if the journal has a checkpoint for
/// it. Must be called inside the bot's runtime: the thread waits on its
/// timer and shutdown token.
pub(crate) fn spawn(
    outlet: Outlet,
    path: PathBuf,
    poll: Duration,
    resume: Option<Checkpoint>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let source = FileSource {
        outlet,
        path,
        poll,
        resume,
    };
    std::thread::Builder::new()
        .name("source-file".into())
        .spawn(move || {
            crate::bot::yield_cpu_to_health();
            source.run(&runtime)
        })?;
    Ok(())
}

struct FileSource {
    outlet: Outlet,
    path: PathBuf,
    poll: Duration,
    resume: Option<Checkpoint>,
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes read from `file` so far.
    offset: u64,
    pump: Pump,
}

impl FileSource {
    /// Waits one poll interval, or less if the daemon starts stopping: a
    /// plain sleep would hold every stop up by up to FILE_POLL_INTERVAL.
    fn pause(&self, runtime: &tokio::runtime::Handle) {
        runtime.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                () = self.outlet.shutdown.cancelled() => {}
            }
        });
    }

    fn run(mut self, runtime: &tokio::runtime::Handle) {
        let mut open: Option<Open> = None;
        while !self.outlet.shutdown.is_cancelled() {
            let Some(current) = &mut open else {
                match self.open() {
                    Ok(opened) => {
                        self.outlet.set_status(Status::Up);
                        open = Some(opened);
                    }
                    Err(error) => {
                        let down = Status::Down {
                            error: format!("cannot open the file: {error}"),
                            retry_in: self.poll,
                        };
                        if self.outlet.set_status(down) {
                            tracing::warn!(path = %self.path.display(), %error, "file source: cannot open the file; retrying");
                        }
                        self.pause(runtime);
                    }
                }
                continue;
            };
            match current.file.read(current.pump.buffer()) {
                Ok(0) => match self.at_end(current) {
                    Ok(End::Wait) => self.pause(runtime),
                    Ok(End::Again) => {}
                    Ok(End::Rotated) => open = None,
                    Err(error) => {
                        tracing::warn!(path = %self.path.display(), %error, "file source: read failed; reopening");
                        open = None;
                        self.pause(runtime);
                    }
                },
                Ok(count) => {
                    current.offset += count as u64;
                    let batch = current.pump.batch(count);
                    if !self.send(current, batch) {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "file source: read failed; reopening");
                    open = None;
                    self.pause(runtime);
                }
            }
        }
    }

    /// Opens the file to read next: the checkpointed one first (at PATH, or
    /// rotated away beside it while the bot was down, so its last lines are
    /// not skipped), else PATH from the start.
    fn open(&mut self) -> io::Result<Open> {
        if let Some(Checkpoint::File { dev, ino, offset }) = self.resume {
            if let Some((file, found)) = find_file(&self.path, dev, ino) {
                self.resume = None;
                return opened(file, &found, offset, &self.outlet);
            }
        }
        let file = File::open(&self.path)?;
        if self.resume.take().is_some() {
            tracing::warn!(path = %self.path.display(), "file source: the checkpointed file is gone; reading the current one from the start");
        }
        opened(file, &self.path, 0, &self.outlet)
    }

    /// At end of file: truncated, rotated, or just nothing new yet?
    fn at_end(&self, current: &mut Open) -> io::Result<End> {
        if current.file.metadata()?.len() < current.offset {
            tracing::warn!(path = %self.path.display(), offset = current.offset, "file source: file truncated; reading from the start");
            current.file.seek(SeekFrom::Start(0))?;
            current.offset = 0;
            current.pump.clear();
            return Ok(End::Again);
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) != (current.dev, current.ino) => {
                // The writer may have appended between our last read and the rename.
                loop {
                    match current.file.read(current.pump.buffer())? {
                        0 => break,
                        count => {
                            current.offset += count as u64;
                            let batch = current.pump.batch(count);
                            if !self.send(current, batch) {
                                return Ok(End::Wait);
                            }
                        }
                    }
                }
                let batch = current.pump.end();
                self.send(current, batch);
                tracing::info!(path = %self.path.display(), "file source: file rotated; following the new one");
                Ok(End::Rotated)
            }
            _ => Ok(End::Wait),
        }
    }

    /// Hands a batch to the loop with the offset just past its last line;
    /// false once the loop is gone.
    fn send(&self, current: &Open, batch: Option<Batch>) -> bool {
        let Some(mut batch) = batch else {
            return true;
        };
        batch.checkpoint = Some(Checkpoint::File {
            dev: current.dev,
            ino: current.ino,
            offset: current.offset.saturating_sub(current.pump.pending() as u64),
        });
        self.outlet.batches.blocking_send(batch).is_ok()
    }
}

enum End {
    Wait,
    Again,
    Rotated,
}

fn opened(mut file: File, path: &Path, offset: u64, outlet: &Outlet) -> io::Result<Open> {
    let meta = file.metadata()?;
    let offset = if offset > meta.len() {
        tracing::warn!(path = %path.display(), checkpoint = offset, len = meta.len(), "file source: the file was truncated while the bot was down; reading from the start");
        0
    } else {
        file.seek(SeekFrom::Start(offset))?
    };
    tracing::info!(path = %path.display(), offset, "file source: reading");
    Ok(Open {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
        offset,
        pump: Pump::new(outlet),
    })
}

/// The file with this identity: `path` itself or a sibling (`signals.jsonl.1`).
fn find_file(path: &Path, dev: u64, ino: u64) -> Option<(File, PathBuf)> {
    let open_if_same = |candidate: PathBuf| {
        let meta = std::fs::metadata(&candidate).ok()?;
        if (meta.dev(), meta.ino()) != (dev, ino) || !meta.is_file() {
            return None;
        }
        let file = File::open(&candidate).ok()?;
        let meta = file.metadata().ok()?;
        ((meta.dev(), meta.ino()) == (dev, ino)).then_some((file, candidate))
    };
    if let Some(found) = open_if_same(path.to_owned()) {
        return Some(found);
    }
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find_map(|entry| open_if_same(entry.path()))
}
