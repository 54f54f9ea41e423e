//! `file:PATH`: tails a JSONL file another program appends to.
//!
//! Runs on its own thread with plain blocking reads (a local file read is
//! quick, and it keeps the bot's runtime free of blocking calls). At end of
//! file it polls: a file shorter than what was read has been truncated (read
//! again from the start); a path that now names another inode has been
//! rotated (finish the old file, then read the new one from the start). A
//! partial last line waits for its newline. Each batch carries the offset
//! just past its last whole line; the loop journals it as the checkpoint
//! after the batch's decisions, and a restart resumes there if the file is
//! still the same one (device and inode).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::LineSplitter;
use super::{Batch, FeedHealth};
use crate::bot::snapshot::Checkpoint;

const CHUNK: usize = 64 * 1024;

pub struct FileSource {
    pub index: usize,
    pub name: String,
    pub path: PathBuf,
    pub poll: Duration,
    pub resume: Option<Checkpoint>,
    pub batches: mpsc::Sender<Batch>,
    pub feed: Arc<FeedHealth>,
    pub shutdown: CancellationToken,
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes read from `file` so far.
    offset: u64,
    splitter: LineSplitter,
}

impl FileSource {
    pub fn spawn(self) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("source-file".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut buffer = vec![0u8; CHUNK];
        let mut open: Option<Open> = None;
        while !self.shutdown.is_cancelled() {
            let Some(current) = &mut open else {
                match self.open() {
                    Ok(opened) => {
                        self.feed.set(&self.name, None);
                        open = Some(opened);
                    }
                    Err(error) => {
                        self.feed.set(
                            &self.name,
                            Some(format!("cannot open {}: {error}", self.path.display())),
                        );
                        std::thread::sleep(self.poll);
                    }
                }
                continue;
            };
            match current.file.read(&mut buffer) {
                Ok(0) => match self.at_end(current, &mut buffer) {
                    Ok(End::Wait) => std::thread::sleep(self.poll),
                    Ok(End::Again) => {}
                    Ok(End::Rotated) => open = None,
                    Err(error) => {
                        tracing::warn!(path = %self.path.display(), %error, "file source: read failed; reopening");
                        open = None;
                        std::thread::sleep(self.poll);
                    }
                },
                Ok(count) => {
                    current.offset += count as u64;
                    if !self.send(current, &buffer[..count], false) {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "file source: read failed; reopening");
                    open = None;
                    std::thread::sleep(self.poll);
                }
            }
        }
    }

    /// Opens the file, resuming from the checkpoint if it is the same file.
    fn open(&mut self) -> io::Result<Open> {
        let mut file = File::open(&self.path)?;
        let meta = file.metadata()?;
        let (dev, ino) = (meta.dev(), meta.ino());
        let mut offset = 0;
        if let Some(resume) = self.resume.take() {
            if (resume.dev, resume.ino) != (dev, ino) {
                tracing::warn!(path = %self.path.display(), "file source: the file was replaced while the bot was down; reading the new one from the start");
            } else if resume.offset > meta.len() {
                tracing::warn!(path = %self.path.display(), checkpoint = resume.offset, len = meta.len(), "file source: the file was truncated while the bot was down; reading from the start");
            } else {
                offset = file.seek(SeekFrom::Start(resume.offset))?;
            }
        }
        tracing::info!(path = %self.path.display(), offset, "file source: reading");
        Ok(Open {
            file,
            dev,
            ino,
            offset,
            splitter: LineSplitter::default(),
        })
    }

    /// At end of file: truncated, rotated, or just nothing new yet?
    fn at_end(&self, current: &mut Open, buffer: &mut [u8]) -> io::Result<End> {
        if current.file.metadata()?.len() < current.offset {
            tracing::warn!(path = %self.path.display(), offset = current.offset, "file source: file truncated; reading from the start");
            current.file.seek(SeekFrom::Start(0))?;
            current.offset = 0;
            current.splitter.clear();
            return Ok(End::Again);
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) != (current.dev, current.ino) => {
                // The writer may have appended between our last read and the rename.
                loop {
                    match current.file.read(buffer)? {
                        0 => break,
                        count => {
                            current.offset += count as u64;
                            let bytes = buffer[..count].to_vec();
                            if !self.send(current, &bytes, false) {
                                return Ok(End::Wait);
                            }
                        }
                    }
                }
                self.send(current, &[], true);
                tracing::info!(path = %self.path.display(), "file source: file rotated; following the new one");
                Ok(End::Rotated)
            }
            _ => Ok(End::Wait),
        }
    }

    /// Hands the whole lines in `bytes` to the loop; false once the loop is gone.
    fn send(&self, current: &mut Open, bytes: &[u8], last: bool) -> bool {
        let mut lines = Vec::new();
        current.splitter.push(bytes, &mut lines);
        if last {
            current.splitter.finish(&mut lines);
        }
        if lines.is_empty() {
            return true;
        }
        let batch = Batch {
            source: self.index,
            lines,
            checkpoint: Some(Checkpoint {
                dev: current.dev,
                ino: current.ino,
                offset: current
                    .offset
                    .saturating_sub(current.splitter.pending() as u64),
            }),
            reply: None,
        };
        self.batches.blocking_send(batch).is_ok()
    }
}

enum End {
    Wait,
    Again,
    Rotated,
}
