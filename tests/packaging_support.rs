//! What the packaging tests share: whether this machine can run them, where
//! the shipped files are, and running a command that must succeed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file shipped in the repository (unit, Dockerfile, manifests, ...).
pub fn shipped(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

extern "C" {
    fn geteuid() -> u32;
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// True when this machine has every tool in `tools` (and root, if
/// `needs_root`). Otherwise a loud SKIP line and false; but under CI
/// (`CI=true`) a panic, because CI installs everything
/// (.ci/install-system-deps) and must run them all.
pub fn can_run(test: &str, needs_root: bool, tools: &[&str]) -> bool {
    let mut missing: Vec<&str> = Vec::new();
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if needs_root && unsafe { geteuid() } != 0 {
        missing.push("root");
    }
    missing.extend(tools.iter().copied().filter(|tool| !on_path(tool)));
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIP {test}: needs {}; run .ci/install-system-deps as root",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{message}: under CI every packaging test must run");
    }
    // Straight to fd 2: the test harness captures eprintln! of passing
    // tests, and a skip must not pass unseen.
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! {message} !!!!!!!!\n");
    false
}

/// Runs `command`; panics with its output unless it exits 0. Returns stdout.
pub fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}
