//! Where the journal lives: numbered segment files, `STATE_DIR/journal/
//! <seq of its first record, 20 digits>.jsonl`, in order. A record's seq
//! is its 1-based ordinal in the whole journal, derived from its position
//! (the record format has no seq field); the names carry it across
//! segments, and retention deleting old segments renumbers nothing.
//!
//! The releases before segments kept one file, `STATE_DIR/journal.jsonl`:
//! it is taken over on the first start as segment 1, by a rename, so
//! nothing is copied and nothing can be lost half-way.

use std::io;
use std::path::{Path, PathBuf};

use super::journal::{sync_dir, JournalError};

/// The directory of the segments, in the state directory.
pub(crate) const DIR: &str = "journal";
/// The one journal file of the releases before segments.
pub(crate) const LEGACY: &str = "journal.jsonl";
/// The snapshot those releases kept for people and tools; derived data,
/// removed with the takeover so that nothing reads a stale one.
const LEGACY_SNAPSHOT: &str = "snapshot.json";

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The seq of its first record.
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
}

pub(crate) fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR)
}

pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.jsonl")
}

pub(crate) fn path(state_dir: &Path, first_seq: u64) -> PathBuf {
    dir(state_dir).join(file_name(first_seq))
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".jsonl")?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|seq| *seq > 0)
}

/// The segments, oldest first. Read-only: before the takeover, a legacy
/// `journal.jsonl` is segment 1 (so `tradingbot journal` reads a state
/// directory of any release). Other files in the directory are ignored.
pub(crate) fn list(state_dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    match std::fs::read_dir(dir(state_dir)) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                if let Some(first_seq) = name.to_str().and_then(parse_name) {
                    segments.push(Segment {
                        first_seq,
                        path: entry.path(),
                    });
                }
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    segments.sort_by_key(|segment| segment.first_seq);
    let legacy = state_dir.join(LEGACY);
    if segments.is_empty() && legacy.is_file() {
        segments.push(Segment {
            first_seq: 1,
            path: legacy,
        });
    }
    Ok(segments)
}

/// Makes a legacy `journal.jsonl` segment 1; true if there was one. A
/// state directory holding both is refused: which one is the truth is a
/// question for the operator, not a guess.
pub(crate) fn take_over_legacy(state_dir: &Path) -> Result<bool, JournalError> {
    let legacy = state_dir.join(LEGACY);
    if !legacy.exists() {
        return Ok(false);
    }
    let segments = dir(state_dir);
    let io_error = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| JournalError::Io { what, path, source }
    };
    let existing = list(state_dir).map_err(io_error("cannot list the journal", &segments))?;
    if existing.iter().any(|segment| segment.path != legacy) {
        return Err(JournalError::Corrupt {
            path: legacy,
            line: 0,
            detail: format!(
                "it was written by a release without segments, but {} holds segments too; \
                 move one of them away",
                segments.display()
            ),
        });
    }
    create_dir(state_dir)?;
    let target = path(state_dir, 1);
    fail::fail_point!("ledger::takeover::rename");
    std::fs::rename(&legacy, &target).map_err(io_error(
        "cannot move the journal into its segment",
        &legacy,
    ))?;
    sync_dir(&segments).map_err(io_error("cannot fsync", &segments))?;
    sync_dir(state_dir).map_err(io_error("cannot fsync", state_dir))?;
    let old_snapshot = state_dir.join(LEGACY_SNAPSHOT);
    if old_snapshot.exists() {
        if let Err(error) = std::fs::remove_file(&old_snapshot) {
            tracing::warn!(path = %old_snapshot.display(), %error, "cannot remove the snapshot of the earlier release");
        }
    }
    tracing::info!(
        from = %legacy.display(),
        to = %target.display(),
        "took over the journal of an earlier release as segment 1"
    );
    Ok(true)
}

/// Creates `STATE_DIR/journal/` if missing, durably.
pub(crate) fn create_dir(state_dir: &Path) -> Result<(), JournalError> {
    let segments = dir(state_dir);
    match std::fs::create_dir(&segments) {
        Ok(()) => sync_dir(state_dir).map_err(|source| JournalError::Io {
            what: "cannot fsync",
            path: state_dir.to_owned(),
            source,
        }),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(JournalError::Io {
            what: "cannot create the journal directory",
            path: segments,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_seq_and_strays_are_ignored() {
        let state = tempfile::tempdir().unwrap();
        create_dir(state.path()).unwrap();
        for name in [
            file_name(1001),
            file_name(1),
            "notes.txt".into(),
            "123.jsonl".into(),
        ] {
            std::fs::write(dir(state.path()).join(name), "").unwrap();
        }
        let seqs: Vec<u64> = list(state.path())
            .unwrap()
            .iter()
            .map(|segment| segment.first_seq)
            .collect();
        assert_eq!(seqs, [1, 1001]);
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
    }

    #[test]
    fn the_legacy_journal_becomes_segment_one() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join(LEGACY), "{}\n").unwrap();
        std::fs::write(state.path().join(LEGACY_SNAPSHOT), "{}").unwrap();
        assert_eq!(list(state.path()).unwrap()[0].first_seq, 1);
        assert!(take_over_legacy(state.path()).unwrap());
        assert!(!state.path().join(LEGACY).exists());
        assert!(!state.path().join(LEGACY_SNAPSHOT).exists());
        assert_eq!(
            std::fs::read_to_string(path(state.path(), 1)).unwrap(),
            "{}\n"
        );
        assert!(!take_over_legacy(state.path()).unwrap());
    }

    #[test]
    fn both_kinds_of_journal_are_refused() {
        let state = tempfile::tempdir().unwrap();
        create_dir(state.path()).unwrap();
        std::fs::write(path(state.path(), 1), "").unwrap();
        std::fs::write(state.path().join(LEGACY), "").unwrap();
        let error = take_over_legacy(state.path()).unwrap_err().to_string();
        assert!(error.contains("holds segments too"), "{error}");
    }
}
