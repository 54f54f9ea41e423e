//! File-system faults: the health file's directory missing or read-only, a
//! symlink or a directory planted at its path while the daemon runs, a
//! read-only state dir at start, and a full disk in the middle of a batch.
//! Health goes on by HTTP and sd_notify when only the file is hurt; the
//! journal fails loudly, keeps what it acknowledged and recovers when the
//! disk does. The tests that mount a tmpfs need root; CI runs as root.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kit::daemon::{Builder, Daemon, LISTENING};
use crate::kit::health_file::{health_record, mtime, plant_target, wait_path};
use crate::kit::journal::{active_segment, read_journal, signal_line};
use crate::kit::needs::can_run;
use crate::kit::notify::NotifySocket;
use crate::kit::port::Reserved;
use crate::kit::process::SIGKILL;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::webhook::post_signals;

/// Whether `test` can mount a tmpfs here (see [`can_run`]).
fn can_mount(test: &str) -> bool {
    can_run(test, true, &["mount", "umount"])
}

/// A tmpfs mounted for one test, unmounted (lazily: the daemon may still
/// hold it) however the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .expect("mount(8)");
        assert!(status.success(), "mount -t tmpfs -o {options} failed");
        Tmpfs(at.to_owned())
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .expect("mount(8)");
        assert!(status.success(), "remount,{options} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `WATCHDOG=1` keeps coming: sd_notify health does not depend on the file.
fn expect_pings(socket: &NotifySocket, count: usize) {
    for _ in 0..count {
        socket.expect("WATCHDOG=1", |message| message == "WATCHDOG=1");
    }
}

fn with_notify(builder: Builder, socket: &NotifySocket) -> Builder {
    builder
        .env("NOTIFY_SOCKET", &socket.env_value)
        .env("WATCHDOG_USEC", "2000000")
}

#[test]
fn a_missing_health_file_directory_warns_once_and_health_goes_on() {
    let socket = NotifySocket::path();
    let builder = Builder::new();
    let dir = builder.dir().join("run");
    let path = dir.join("healthy");
    let daemon = with_notify(builder.env("HEALTH_FILE", &path), &socket).spawn();
    // Said when the judge first writes the file, just before READY=1.
    let warning = daemon.expect_log("health stays on HTTP and sd_notify");
    daemon.wait_ready();
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    assert!(warning.contains("No such file or directory"), "{warning}");
    expect_pings(&socket, 3);
    assert_eq!(daemon.get("/health").0, 200);
    assert_eq!(
        daemon.log.count("health stays on HTTP"),
        1,
        "logged every tick"
    );

    // The directory appears (a late tmpfiles.d, say): the file follows.
    std::fs::create_dir(&dir).unwrap();
    daemon.expect_log("health file writable again");
    assert!(wait_path(&path, true));
    assert_eq!(health_record(&path)["pid"], daemon.pid());
}

#[test]
fn a_read_only_health_file_directory_warns_and_health_goes_on() {
    if !can_mount("a_read_only_health_file_directory_warns_and_health_goes_on") {
        return;
    }
    let socket = NotifySocket::path();
    // Outside the daemon's temp dir, which is removed before the unmount.
    let dir = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&dir.path().join("run"), "size=64k,ro");
    let path = mount.0.join("healthy");
    let daemon = with_notify(Builder::new().env("HEALTH_FILE", &path), &socket).spawn();
    // Said when the judge first writes the file, just before READY=1.
    let warning = daemon.expect_log("health stays on HTTP and sd_notify");
    daemon.wait_ready();
    assert!(warning.contains("Read-only file system"), "{warning}");
    expect_pings(&socket, 3);
    assert_eq!(daemon.get("/health").0, 200);

    mount.remount("rw");
    daemon.expect_log("health file writable again");
    assert!(wait_path(&path, true));
    assert_eq!(daemon.get("/health").0, 200);
}

#[test]
fn a_symlink_or_directory_planted_while_running_is_refused_then_the_file_returns() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    assert!(wait_path(&path, true));

    let (target, planted) = plant_target(daemon.dir());
    // rename(2) over the live file: the swap is atomic, as an attacker's would be.
    let link = daemon.dir().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::rename(&link, &path).unwrap();
    daemon.expect_log("is a symlink; refusing to follow it");
    daemon.wait_heartbeats(5);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert_eq!(mtime(&target), planted, "the symlink's target was touched");
    assert_eq!(daemon.get("/health").0, 200);

    std::fs::remove_file(&path).unwrap();
    daemon.expect_log("health file writable again");
    assert!(wait_path(&path, true));

    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    daemon.expect_log("is not a regular file");
    assert_eq!(daemon.get("/health").0, 200);
    std::fs::remove_dir(&path).unwrap();
    daemon.expect_log("health file writable again");
    assert!(wait_path(&path, true));
    assert_eq!(health_record(&path)["pid"], daemon.pid());
}

#[test]
fn a_read_only_state_dir_at_start_exits_naming_state_dir() {
    if !can_mount("a_read_only_state_dir_at_start_exits_naming_state_dir") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&dir.path().join("state"), "size=64k,ro");
    let output = Builder::new().env("STATE_DIR", &mount.0).output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|line| line.starts_with("tradingbot: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains("STATE_DIR"), "{error}");
    assert!(error.contains("Read-only file system"), "{error}");
    // Refused before the port: nothing half-started was left behind.
    assert!(!stderr.contains(LISTENING), "bound a port first: {stderr}");
}

/// Fills the file system under `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![b'x'; 4096];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(28), "{error}");
                break;
            }
        }
    }
    // The last partial chunk: every byte of the last page taken.
    while file.write(b"x").is_ok_and(|count| count == 1) {}
    path
}

fn post(addr: SocketAddr, body: &str) -> std::io::Result<(u16, String)> {
    post_signals(addr, "disk-full-token", body.as_bytes())
}

fn batch(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|index| {
            signal_line(
                &format!("{prefix}-{index}"),
                "BTC",
                "buy",
                0.001,
                Some(10.0),
            )
        })
        .collect()
}

fn journal_ids(state: &Path) -> Vec<String> {
    read_journal(state)
        .iter()
        .filter_map(|record| record["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_full_disk_mid_batch_tears_nothing_loses_nothing_and_recovers() {
    if !can_mount("a_full_disk_mid_batch_tears_nothing_loses_nothing_and_recovers") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _mount = Tmpfs::mount(&state, "size=256k");
    let mut reserved = Some(Reserved::loopback());
    let webhook = reserved.as_ref().unwrap().addr();
    // Both starts on the same address, held for each until its spawn.
    let mut start = || {
        let address = reserved.take().unwrap_or_else(|| Reserved::again(webhook));
        Builder::new()
            .env("STATE_DIR", &state)
            .arg("--source")
            .arg("webhook")
            .bind_env("WEBHOOK_BIND", address)
            .env("WEBHOOK_TOKEN", "disk-full-token")
            .spawn()
    };
    let daemon = start();
    daemon.wait_ready();
    assert_eq!(post(webhook, &batch("before", 5)).unwrap().0, 202);

    // Full while a batch is in flight: it is answered 503 (not recorded
    // yet) rather than held, and so is one sent while the disk is full;
    // sent again once there is space, it is decided once.
    let filler = fill(&state);
    let body = batch("during", 60);
    let waiting = std::thread::spawn(move || post(webhook, &body));
    let journal_check = |daemon: &Daemon| daemon.health().1["checks"]["journal"].clone();
    assert!(
        wait_until(SOON, || journal_check(&daemon)["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("No space left on device"))),
        "journal never failed: {}",
        journal_check(&daemon)
    );
    assert_eq!(daemon.health().0, 503);
    assert!(
        daemon.wait_status("/livez", 200),
        "the loop stopped beating"
    );
    let (code, answer) = waiting.join().unwrap().unwrap();
    assert_eq!(code, 503, "{answer}");
    assert_eq!(post(webhook, &batch("during", 60)).unwrap().0, 503);
    std::fs::remove_file(&filler).unwrap();
    assert!(daemon.wait_status("/health", 200), "health never recovered");
    let (code, answer) = post(webhook, &batch("during", 60)).unwrap();
    assert_eq!(code, 202, "{answer}");

    // Full again, and killed while a batch is half written: the retry after
    // the restart decides each signal once, and no torn line is left.
    let filler = fill(&state);
    let body = batch("killed", 60);
    let lost = std::thread::spawn(move || post(webhook, &body));
    assert!(wait_until(SOON, || journal_check(&daemon)["status"] == "failed"));
    daemon.signal(SIGKILL);
    drop(daemon);
    let torn = !std::fs::read(active_segment(&state))
        .unwrap()
        .ends_with(b"\n");
    eprintln!("killed with a full disk; journal left with a torn last line: {torn}");
    assert!(
        !matches!(lost.join().unwrap(), Ok((202, _))),
        "a batch the journal never took was acknowledged"
    );
    std::fs::remove_file(&filler).unwrap();
    let mut daemon = start();
    daemon.wait_ready();
    assert_eq!(post(webhook, &batch("killed", 60)).unwrap().0, 202);
    assert!(daemon.stop().success());

    let ids = journal_ids(&state);
    let mut expected: Vec<String> = (0..5).map(|index| format!("before-{index}")).collect();
    expected.extend((0..60).map(|index| format!("during-{index}")));
    expected.extend((0..60).map(|index| format!("killed-{index}")));
    assert_eq!(ids, expected, "lost, doubled or reordered decisions");
}
