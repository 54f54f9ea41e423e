//! The single-instance lock: two copies of the bot would act twice.
//!
//! `flock` on a file that holds the holder's pid; the kernel releases it
//! when the process ends, however it ends, so a crash leaves no stale lock.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another tradingbot ({holder}) holds LOCK_FILE {path}")]
    Held { holder: String, path: PathBuf },
    #[error("cannot open LOCK_FILE {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Held until dropped.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    _file: File,
}

pub(crate) fn acquire(path: &Path) -> Result<InstanceLock, LockError> {
    let io_error = |source: io::Error| LockError::Io {
        path: path.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|errno| io_error(errno.into()))?;
    let mut file = File::from(fd);
    match rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
            let mut recorded = String::new();
            let _ = file.read_to_string(&mut recorded);
            let holder = match recorded.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid unknown".to_owned(),
            };
            return Err(LockError::Held {
                holder,
                path: path.to_owned(),
            });
        }
        Err(errno) => return Err(io_error(errno.into())),
    }
    file.set_len(0).map_err(io_error)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(io_error)?;
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("tb-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tradingbot.lock");
        let held = acquire(&path).unwrap();
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts just as another process would.
        let error = acquire(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "another tradingbot (pid {}) holds LOCK_FILE {}",
                std::process::id(),
                path.display()
            )
        );
        drop(held);
        assert!(acquire(&path).is_ok());
    }
}
