//! The health file as a container `HEALTHCHECK` sees it, and
//! `tradingbot health`, the probe that reads it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use super::daemon::{Daemon, BIN};
use super::wait::{wait_until, SOON};

impl Daemon {
    pub fn health_file(&self) -> PathBuf {
        self.dir().join("healthy")
    }
}

/// `tradingbot health --file FILE ARGS...` in a clean environment: (exit code, stderr).
pub fn probe(file: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(BIN)
        .env_clear()
        .arg("health")
        .arg("--file")
        .arg(file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tradingbot health");
    (
        output.status.code().expect("probe killed by a signal"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls for a path to appear (`true`) or vanish (`false`): a file has no
/// event the test could wait on short of inotify.
pub fn wait_path(path: &Path, exists: bool) -> bool {
    wait_until(SOON, || exists_now(path) == exists)
}

/// Whether anything (a file, a symlink, a directory) is at `path`.
pub fn exists_now(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

pub fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .unwrap_or_else(|error| panic!("mtime of {}: {error}", path.display()))
}

/// How old the file at `path` is (zero if it is missing or in the future).
pub fn age(path: &Path) -> Duration {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .unwrap_or_default()
}

/// The health file's JSON record, once there is one: the daemon creates the
/// file before it writes the line, so a reader can briefly see it empty.
pub fn health_record(path: &Path) -> serde_json::Value {
    let mut record = None;
    let parsed = wait_until(SOON, || {
        record = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        record.is_some()
    });
    assert!(parsed, "no JSON record in {}", path.display());
    record.unwrap()
}

/// A file an attacker would like the daemon to write through a symlink:
/// "precious\n", with an mtime far in the past so any touch shows.
pub fn plant_target(dir: &Path) -> (PathBuf, SystemTime) {
    let target = dir.join("precious");
    std::fs::write(&target, "precious\n").unwrap();
    let planted = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&target)
        .unwrap()
        .set_modified(planted)
        .unwrap();
    (target, planted)
}
