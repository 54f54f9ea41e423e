//! `STATE_DIR/snapshot.json`: the engine's state for operators and tools,
//! written atomically (temp file, fsync, rename, fsync the directory) so a
//! reader never sees half of one. It is derived from the journal, which
//! stays the truth: recovery replays the journal, never the snapshot.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::journal::sync_dir;
use crate::bot::engine::Position;

pub(crate) const FILE_NAME: &str = "snapshot.json";

#[derive(Serialize)]
pub(crate) struct Snapshot<'a> {
    pub(crate) written_at: String,
    /// Journal records the snapshot reflects.
    pub(crate) journal_records: u64,
    pub(crate) positions: &'a BTreeMap<String, Position>,
    pub(crate) checkpoints: &'a BTreeMap<String, Checkpoint>,
    pub(crate) signals: u64,
    pub(crate) fills: u64,
    pub(crate) rejects: u64,
    pub(crate) duplicates: u64,
}

/// How far a file source has been read: a byte offset in one file, named
/// by device and inode so a rotated or replaced file is not mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Checkpoint {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) offset: u64,
}

pub(crate) fn write(dir: &Path, snapshot: &Snapshot<'_>) -> io::Result<()> {
    let path = dir.join(FILE_NAME);
    let temp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut bytes = serde_json::to_vec_pretty(snapshot).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, &path)?;
    sync_dir(dir)
}
