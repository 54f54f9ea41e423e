//! The shipped unit under a real systemd: a container booted with
//! systemd-nspawn from the host's own /usr, the daemon started as a
//! `Type=notify` service with only the binary path and test intervals
//! overridden by a drop-in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{wait_until, BIN};
use crate::packaging_support::{can_run, ok, run, shipped};

/// A booted systemd in a container; powered off (or killed) on drop, so no
/// exit path of a test leaves it running.
pub struct Machine {
    nspawn: Child,
    init: i32,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// What the machine boots on.
pub enum Root {
    Volatile,
    Overlay,
}

/// A host path mounted into the machine.
pub struct Bind {
    pub host: PathBuf,
    pub target: &'static str,
    pub writable: bool,
}

impl Machine {
    /// Boots `name` with `binds` on a throwaway root made of this machine's
    /// own files, leaving the host untouched: `Root::Volatile` is a tmpfs
    /// with the host's /usr read-only (fast, enough for a unit), and
    /// `Root::Overlay` a writable overlay of the whole host (for dpkg).
    pub fn boot(name: &str, root: Root, binds: &[Bind]) -> Machine {
        let dir = tempfile::Builder::new()
            .prefix("tb-machine-")
            .tempdir()
            .unwrap();
        let machine_id = dir.path().join("machine-id");
        std::fs::write(&machine_id, ok(Command::new("systemd-id128").arg("new"))).unwrap();
        let log = dir.path().join("nspawn.log");
        let mut command = match root {
            Root::Volatile => {
                let mut command = Command::new("systemd-nspawn");
                command.args(["-D", "/", "--volatile=yes"]);
                command
            }
            Root::Overlay => {
                // nspawn refuses an overlay of "/" itself; this one is
                // mounted in a mount namespace of its own, so it vanishes
                // with nspawn whatever happens to the test.
                let layers = dir.path().join("layers");
                let root = dir.path().join("root");
                std::fs::create_dir_all(&layers).unwrap();
                std::fs::create_dir_all(&root).unwrap();
                let mut command = Command::new("unshare");
                command
                    .args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg(
                        r#"set -e
                        mount -t tmpfs tmpfs "$1"
                        mkdir "$1/upper" "$1/work"
                        mount -t overlay overlay -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$2"
                        root=$2
                        shift 2
                        exec systemd-nspawn -D "$root" "$@""#,
                    )
                    .arg("sh")
                    .arg(layers)
                    .arg(root);
                command
            }
        };
        command
            .args(["--register=no", "--keep-unit", "--console=passive"])
            .args(["-M", name])
            // Its own network namespace: the daemon's port 8080 never meets
            // the host's (nor another test's).
            .arg("--private-network")
            .arg(format!(
                "--bind-ro={}:/etc/machine-id",
                machine_id.display()
            ))
            .arg("--bind-ro=/dev/null:/etc/systemd/system/systemd-machine-id-commit.service");
        for bind in binds {
            let kind = if bind.writable { "--bind" } else { "--bind-ro" };
            command.arg(format!("{kind}={}:{}", bind.host.display(), bind.target));
        }
        let output = std::fs::File::create(&log).unwrap();
        let nspawn = command
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("spawn systemd-nspawn");
        let mut machine = Machine {
            init: 0,
            nspawn,
            log,
            _dir: dir,
        };
        // The container's PID 1 is nspawn's child; it is systemd once it has
        // exec'd, and usable once its manager answers.
        let parent = machine.nspawn.id() as i32;
        assert!(
            wait_until(Duration::from_secs(30), || {
                machine.init = child_named(parent, "systemd").unwrap_or(0);
                machine.init != 0 || matches!(machine.nspawn.try_wait(), Ok(Some(_)))
            }) && machine.init != 0,
            "no systemd in the container; nspawn said:\n{}",
            machine.nspawn_log()
        );
        assert!(
            // "degraded" is booted too: a unit of the host's that cannot run
            // in a container (podman's, say) is none of this test's business.
            wait_until(Duration::from_secs(60), || {
                let state = machine
                    .sh(&["systemctl", "is-system-running", "--wait"])
                    .stdout;
                state.starts_with(b"running") || state.starts_with(b"degraded")
            }),
            "the container's systemd never finished booting: {}\n{}",
            String::from_utf8_lossy(&machine.sh(&["systemctl", "--failed"]).stdout),
            machine.nspawn_log()
        );
        machine
    }

    fn nspawn_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a command inside the machine (all of its namespaces).
    pub fn sh(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// Runs a command inside the machine; it must succeed. Returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.command(args))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.init.to_string(), "-a", "--"])
            .args(args);
        command
    }

    /// One property of a unit, as `systemctl show --value` prints it.
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.ok(&["systemctl", "show", unit, "-p", name, "--value"])
            .trim()
            .to_owned()
    }

    /// The unit's journal as JSON entries.
    pub fn journal(&self, unit: &str, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["journalctl", "-u", unit, "-o", "json", "--no-pager"];
        args.extend_from_slice(extra);
        self.ok(&args)
            .lines()
            .map(|line| serde_json::from_str(line).expect("journalctl -o json line"))
            .collect()
    }

    /// Waits until the unit's journal holds an entry with this MESSAGE;
    /// journald takes the daemon's datagrams asynchronously.
    pub fn wait_journal(&self, unit: &str, message: &str) -> serde_json::Value {
        let mut found = None;
        let seen = wait_until(Duration::from_secs(15), || {
            found = self
                .journal(unit, &[])
                .into_iter()
                .find(|entry| entry["MESSAGE"] == message);
            found.is_some()
        });
        assert!(
            seen,
            "no {message:?} in the journal of {unit}:\n{}",
            self.ok(&["journalctl", "-u", unit, "--no-pager"])
        );
        found.unwrap()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if self.init != 0 {
            let _ = self.sh(&["systemctl", "poweroff"]);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Killing the container's PID 1 ends every process in its namespace.
        if self.init != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.init.to_string()])
                .status();
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The pid of `parent`'s child whose command name is `name`.
fn child_named(parent: i32, name: &str) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
}

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
    let output = ok(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(shipped("systemd/tradingbot.service")));
    let score: f64 = output
        .lines()
        .find_map(|line| line.split_once("Overall exposure level for tradingbot.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{output}"));
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
    let machine = Machine::boot(
        &format!("tbunit{}", std::process::id()),
        Root::Volatile,
        &[
            Bind {
                host: BIN.into(),
                target: "/opt/tradingbot/tradingbot",
                writable: false,
            },
            Bind {
                host: shipped("systemd/tradingbot.service"),
                target: "/etc/systemd/system/tradingbot.service",
                writable: false,
            },
            Bind {
                host: drop_in,
                target: "/etc/systemd/system/tradingbot.service.d/test.conf",
                writable: false,
            },
            Bind {
                host: env_file.clone(),
                target: "/etc/tradingbot/tradingbot.env",
                writable: true,
            },
        ],
    );

    // The unit as systemd itself loads it, drop-in included.
    let verify = machine.sh(&["systemd-analyze", "verify", UNIT]);
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && !complaints.contains("tradingbot"),
        "systemd-analyze verify: {complaints}"
    );

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
