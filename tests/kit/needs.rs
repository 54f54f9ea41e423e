//! What a test needs of the machine (root, a tool, a kernel feature), and
//! what happens where it is missing: under CI (`CI=true`) the test fails,
//! because CI installs everything and runs as root
//! (.ci/install-system-deps), so a test that cannot run there must not
//! pass unseen; elsewhere a loud SKIP line, and the test returns.

use std::io::Write;

/// True when this machine has every tool in `tools` (and root, if
/// `needs_root`); otherwise [`skip`] and false.
pub fn can_run(test: &str, needs_root: bool, tools: &[&str]) -> bool {
    let mut missing: Vec<&str> = Vec::new();
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if needs_root && unsafe { libc::geteuid() } != 0 {
        missing.push("root");
    }
    missing.extend(tools.iter().copied().filter(|tool| !on_path(tool)));
    if missing.is_empty() {
        return true;
    }
    skip(test, &missing.join(", "));
    false
}

/// `test` cannot run here for want of `needs`: under CI a panic, elsewhere
/// a SKIP line (and the caller returns).
pub fn skip(test: &str, needs: &str) {
    let message = format!("SKIP {test}: needs {needs}; run .ci/install-system-deps as root");
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{message}: under CI every test must run");
    }
    // Straight to fd 2: the test harness captures eprintln! of passing
    // tests, and a skip must not pass unseen.
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! {message} !!!!!!!!\n");
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}
