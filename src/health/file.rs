//! The health file: its mtime is the signal, its one JSON line says who
//! wrote it and where the HTTP server listens.
//!
//! It often lives in world-writable `/tmp`, so a symlink planted at the path
//! is refused, never followed, and the new record is written to a file
//! created with `O_EXCL | O_NOFOLLOW` and renamed into place.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

/// The line written into the health file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HealthRecord {
    pub(crate) pid: u32,
    /// Where the health server listens; absent when no port could be bound.
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) port: Option<u16>,
    pub(crate) heartbeats: u64,
    pub(crate) status: String,
    pub(crate) time: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("{path} is a symlink; refusing to follow it (its target is left untouched)")]
    Symlink { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub(crate) struct HealthFile {
    path: PathBuf,
}

impl HealthFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        HealthFile { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the record into a fresh file beside the path and renames it
    /// into place, so a reader sees the old record or the new one, never an
    /// empty or half-written file; the new file's mtime is the signal.
    pub(crate) fn touch(&self, record: &HealthRecord) -> Result<(), FileError> {
        self.refuse_planted()?;
        let mut line = serde_json::to_vec(record).map_err(|error| self.io(error.into()))?;
        line.push(b'\n');
        let temp = self.temp_path();
        let written = self.write_new(&temp, &line).and_then(|()| {
            rustix::fs::rename(&temp, &self.path).map_err(|errno| self.open_error(errno))
        });
        if written.is_err() {
            let _ = rustix::fs::unlink(&temp);
        }
        written
    }

    /// A symlink or a non-file at the path is the operator's to see: it is
    /// reported, not replaced.
    fn refuse_planted(&self) -> Result<(), FileError> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(metadata) if metadata.file_type().is_symlink() => Err(FileError::Symlink {
                path: self.path.clone(),
            }),
            Ok(metadata) if !metadata.file_type().is_file() => Err(FileError::NotRegular {
                path: self.path.clone(),
            }),
            Ok(_) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(self.io(error)),
        }
    }

    fn temp_path(&self) -> PathBuf {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        self.path
            .with_file_name(format!(".{name}.{}.tmp", std::process::id()))
    }

    /// `O_EXCL | O_NOFOLLOW`: in a world-writable directory nothing planted
    /// at the temp name is ever written through.
    fn write_new(&self, temp: &Path, line: &[u8]) -> Result<(), FileError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o644);
        let fd = match rustix::fs::open(temp, flags, mode) {
            // Left by a crash of an earlier process with our pid.
            Err(rustix::io::Errno::EXIST) => {
                let _ = rustix::fs::unlink(temp);
                rustix::fs::open(temp, flags, mode)
            }
            opened => opened,
        }
        .map_err(|errno| self.open_error(errno))?;
        let written = rustix::io::write(&fd, line).map_err(|errno| self.io(errno.into()))?;
        if written != line.len() {
            return Err(self.io(io::Error::new(io::ErrorKind::WriteZero, "short write")));
        }
        Ok(())
    }

    /// Removes the file if it is a regular file; a planted symlink or
    /// directory is left for the operator to see.
    pub(crate) fn remove(&self) -> Result<(), FileError> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(metadata) if metadata.file_type().is_file() => {
                std::fs::remove_file(&self.path).map_err(|error| self.io(error))
            }
            Ok(_) | Err(_) => Ok(()),
        }
    }

    fn open_error(&self, errno: rustix::io::Errno) -> FileError {
        if errno == rustix::io::Errno::LOOP {
            FileError::Symlink {
                path: self.path.clone(),
            }
        } else if errno == rustix::io::Errno::ISDIR {
            FileError::NotRegular {
                path: self.path.clone(),
            }
        } else {
            self.io(errno.into())
        }
    }

    fn io(&self, source: io::Error) -> FileError {
        FileError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str) -> HealthRecord {
        HealthRecord {
            pid: 1,
            addr: Some("0.0.0.0:8080".parse().unwrap()),
            port: Some(8080),
            heartbeats: 3,
            status: status.into(),
            time: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tb-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_one_line_and_shrinks_it() {
        let dir = temp_dir("line");
        let file = HealthFile::new(dir.join("healthy"));
        file.touch(&record("healthy-with-a-long-status")).unwrap();
        file.touch(&record("ok")).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(text.lines().count(), 1);
        let parsed: HealthRecord = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(parsed, record("ok"));
        file.remove().unwrap();
        assert!(!file.path().exists());
    }

    #[test]
    fn refuses_a_symlink_and_leaves_its_target() {
        let dir = temp_dir("symlink");
        let target = dir.join("target");
        std::fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("healthy")).unwrap();
        let file = HealthFile::new(dir.join("healthy"));
        assert!(matches!(
            file.touch(&record("ok")),
            Err(FileError::Symlink { .. })
        ));
        file.remove().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(dir.join("healthy")).is_ok());
    }

    #[test]
    fn refuses_a_directory() {
        let dir = temp_dir("dir");
        std::fs::create_dir(dir.join("healthy")).unwrap();
        let file = HealthFile::new(dir.join("healthy"));
        assert!(matches!(
            file.touch(&record("ok")),
            Err(FileError::NotRegular { .. })
        ));
    }
}
