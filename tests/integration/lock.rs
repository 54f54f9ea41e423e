//! Single instance: two bots on one state would act twice.

use crate::kit::daemon::{Builder, LISTENING};

#[test]
fn a_second_instance_exits_75_naming_the_first_before_binding() {
    let first = Builder::new().spawn();
    first.wait_ready();

    // Its own ports are free: only the lock can stop it, and it must stop
    // before trying them, or a fallback port could hide the duplicate.
    let output = Builder::new().env("STATE_DIR", first.state_dir()).output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "stderr: {stderr}");
    let refusal: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("another tradingbot"))
        .collect();
    assert_eq!(refusal.len(), 1, "{stderr}");
    assert!(
        refusal[0].contains(&format!("pid {}", first.pid())),
        "holder's pid not named: {stderr}"
    );
    assert!(refusal[0].contains("LOCK_FILE"), "{stderr}");
    assert!(
        !stderr.contains(LISTENING) && !stderr.contains("cannot bind"),
        "the duplicate got as far as the port: {stderr}"
    );
    assert_eq!(
        first.get("/health").0,
        200,
        "the first instance was disturbed"
    );
}

#[test]
fn lock_file_setting_is_honoured_across_state_dirs() {
    let shared = tempfile::tempdir().unwrap();
    let lock = shared.path().join("bot.lock");
    let first = Builder::new().env("LOCK_FILE", &lock).spawn();
    first.wait_ready();
    let output = Builder::new().env("LOCK_FILE", &lock).output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "stderr: {stderr}");
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
}
