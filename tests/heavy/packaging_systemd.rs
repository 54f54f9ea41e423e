//! The shipped unit under a real systemd: a container booted with
//! systemd-nspawn from the host's own /usr, the daemon started as a
//! `Type=notify` service with only the binary path and test intervals
//! overridden by a drop-in.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kit::wait::wait_until;
use crate::packaging::machine::{self, unit_binds, Bind, Machine, Root};
use crate::packaging::{can_run, exposure, shipped};

const UNIT: &str = "tradingbot.service";

/// Overrides only the binary path and the intervals, so a test runs in
/// seconds; everything else is the shipped unit.
const DROP_IN: &str = "\
[Service]
ExecStart=
ExecStart=/opt/tradingbot/tradingbot run
WatchdogSec=4s
RestartSec=1s
Environment=HEARTBEAT_INTERVAL=200ms STALL_TIMEOUT=2s DRAIN_TIMEOUT=2s
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn shipped_unit_scores_ok_in_systemd_analyze_security() {
    if !can_run(
        "shipped_unit_scores_ok_in_systemd_analyze_security",
        false,
        &["systemd-analyze"],
    ) {
        return;
    }
    let (score, output) = exposure("tradingbot.service");
    eprintln!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{output}");
}

#[test]
fn systemd_runs_the_shipped_unit() {
    if !can_run(
        "systemd_runs_the_shipped_unit",
        true,
        &["systemd-nspawn", "nsenter", "systemd-id128"],
    ) {
        return;
    }
    let files = tempfile::Builder::new()
        .prefix("tb-unit-")
        .tempdir()
        .unwrap();
    let drop_in = write(files.path(), "test.conf", DROP_IN);
    // A copy of the shipped env file, writable so reload can be shown.
    let env_file = files.path().join("tradingbot.env");
    std::fs::copy(shipped("systemd/tradingbot.env"), &env_file).unwrap();
    machine::sweep_leftovers();
    let mut binds = unit_binds(UNIT, drop_in);
    binds.push(Bind {
        host: env_file.clone(),
        target: "/etc/tradingbot/tradingbot.env".into(),
        writable: true,
    });
    let machine = Machine::boot("unit", Root::Volatile, &binds);
    machine.assert_verifies(UNIT);

    // `start` returns only after READY=1: the first loop iteration is held
    // for 1.5 s, so a unit that did not wait for READY would return at once.
    machine.ok(&[
        "systemctl",
        "set-environment",
        "FAILPOINTS=bot::iteration=1*sleep(1500)->off",
    ]);
    let started = Instant::now();
    machine.ok(&["systemctl", "start", UNIT]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "start returned after {took:?}, before READY"
    );
    assert_eq!(machine.property(UNIT, "SubState"), "running");
    let first_pid = machine.property(UNIT, "MainPID");

    // The unit's system call filter still lets the bot's threads yield
    // the CPU to the health thread: niceness 10 for the bot, 0 for it.
    let niceness = machine.ok(&[
        "sh",
        "-c",
        &format!("for t in /proc/{first_pid}/task/*; do echo $(cat $t/comm) $(cut -d' ' -f19 $t/stat); done"),
    ]);
    assert!(niceness.lines().any(|line| line == "bot 10"), "{niceness}");
    assert!(
        niceness.lines().any(|line| line == "health-http 0"),
        "{niceness}"
    );

    // The judge's STATUS= line shows in `systemctl status`, and the probe
    // finds the health file in the RuntimeDirectory.
    assert!(wait_until(Duration::from_secs(10), || {
        machine
            .property(UNIT, "StatusText")
            .starts_with("healthy: ")
    }));
    let status = machine.sh(&["systemctl", "status", UNIT, "--no-pager"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("Status: \"healthy: "), "{status}");
    assert!(wait_until(Duration::from_secs(10), || machine
        .sh(&[
            "/opt/tradingbot/tradingbot",
            "health",
            "--http",
            "--file",
            "/run/tradingbot/healthy"
        ])
        .status
        .success()));

    // Structured fields reach the journal, at the priorities of their levels.
    let starting = machine.wait_journal(UNIT, "starting");
    assert_eq!(starting["F_VERSION"], env!("CARGO_PKG_VERSION"));
    assert_eq!(starting["SYSLOG_IDENTIFIER"], "tradingbot");
    assert_eq!(starting["PRIORITY"], "6");
    assert_eq!(starting["_PID"].as_str(), Some(first_pid.as_str()));

    // Reload re-reads the env file: RUST_LOG changes without a restart.
    let mut env = std::fs::read_to_string(&env_file).unwrap();
    env.push_str("RUST_LOG=debug\n");
    std::fs::write(&env_file, env).unwrap();
    machine.ok(&["systemctl", "reload", UNIT]);
    let reloaded = machine.wait_journal(UNIT, "reload: log filter changed");
    assert_eq!(reloaded["F_FILTER"], "debug");
    assert_eq!(machine.property(UNIT, "MainPID"), first_pid);
    assert_eq!(machine.property(UNIT, "ActiveState"), "active");

    // A clean stop: exit 0, its last words in the journal, no health file.
    machine.ok(&["systemctl", "stop", UNIT]);
    assert_eq!(machine.property(UNIT, "Result"), "success");
    assert_eq!(machine.property(UNIT, "ExecMainStatus"), "0");
    machine.wait_journal(UNIT, "stopped cleanly");
    assert!(!machine
        .sh(&["test", "-e", "/run/tradingbot/healthy"])
        .status
        .success());

    // A stall: the loop blocks after ten iterations. The daemon removes its
    // health file and stops pinging; systemd's watchdog kills it and
    // restarts it.
    machine.ok(&[
        "systemctl",
        "set-environment",
        "FAILPOINTS=bot::iteration=10*off->sleep(60000)",
    ]);
    machine.ok(&["systemctl", "start", UNIT]);
    let stalled_pid = machine.property(UNIT, "MainPID");
    machine.wait_journal(
        UNIT,
        "bot loop stalled: watchdog pings stopped, health file removed",
    );
    assert_eq!(machine.property(UNIT, "MainPID"), stalled_pid);
    assert!(!machine
        .sh(&["test", "-e", "/run/tradingbot/healthy"])
        .status
        .success());
    assert!(
        wait_until(Duration::from_secs(30), || {
            machine
                .property(UNIT, "NRestarts")
                .parse::<u32>()
                .unwrap_or(0)
                >= 1
                && machine.property(UNIT, "SubState") == "running"
        }),
        "no restart after the stall:\n{}",
        machine.ok(&["journalctl", "-u", UNIT, "--no-pager"])
    );
    assert_ne!(machine.property(UNIT, "MainPID"), stalled_pid);
    let failures = machine.journal(UNIT, &["UNIT_RESULT=watchdog"]);
    assert!(
        !failures.is_empty(),
        "no unit failure with result 'watchdog' in the journal"
    );

    // -p warning keeps the stall warning and drops the info lines.
    let warnings = machine.ok(&["journalctl", "-u", UNIT, "-p", "warning", "--no-pager"]);
    assert!(warnings.contains("bot loop stalled"), "{warnings}");
    assert!(
        !warnings.contains("ready: first loop iteration done"),
        "{warnings}"
    );
    let infos = machine.ok(&["journalctl", "-u", UNIT, "-p", "info", "--no-pager"]);
    assert!(
        infos.contains("ready: first loop iteration done"),
        "{infos}"
    );
}
