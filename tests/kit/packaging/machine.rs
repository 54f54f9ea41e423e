//! A booted systemd in a container (systemd-nspawn on a throwaway root
//! made of this machine's own files), for the unit and the package.
//!
//! Its name is `tbtest-OWNER-...` (see [`super::owner`]). It is powered off
//! on drop (killed if it will not go), and nspawn is told to stop it when the
//! test binary dies (SIGTERM on the parent's death: nspawn then powers the
//! container off), so no exit path of a test leaves a machine running.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{ok, owner, run, shipped};
use crate::kit::daemon::BIN;
use crate::kit::process::{self, SIGKILL, SIGTERM};
use crate::kit::wait::wait_until;

/// The prefix of every test machine's name.
pub const PREFIX: &str = "tbtest-";

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
    pub target: String,
    pub writable: bool,
}

impl Bind {
    pub fn read_only(host: impl Into<PathBuf>, target: impl Into<String>) -> Bind {
        Bind {
            host: host.into(),
            target: target.into(),
            writable: false,
        }
    }
}

/// What runs the shipped `systemd/UNIT` under a booted systemd with this
/// build's binary (at `/opt/tradingbot/tradingbot`) and the test's
/// `drop_in` beside it.
pub fn unit_binds(unit: &str, drop_in: PathBuf) -> Vec<Bind> {
    vec![
        Bind::read_only(BIN, "/opt/tradingbot/tradingbot"),
        Bind::read_only(
            shipped(&format!("systemd/{unit}")),
            format!("/etc/systemd/system/{unit}"),
        ),
        Bind::read_only(drop_in, format!("/etc/systemd/system/{unit}.d/test.conf")),
    ]
}

impl Machine {
    /// Boots a machine named after `what` with `binds` on a throwaway root
    /// made of this machine's own files, leaving the host untouched:
    /// `Root::Volatile` is a tmpfs with the host's /usr read-only (fast,
    /// enough for a unit), and `Root::Overlay` a writable overlay of the
    /// whole host (for dpkg).
    pub fn boot(what: &str, root: Root, binds: &[Bind]) -> Machine {
        let name = format!("{PREFIX}{}-{what}", owner());
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
            .args(["-M", &name])
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
        process::die_with_parent(&mut command, SIGTERM);
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

    /// `systemd-analyze verify` of `unit` as this systemd loads it (drop-ins
    /// included): it must pass with no complaint naming the bot.
    pub fn assert_verifies(&self, unit: &str) {
        let verify = self.sh(&["systemd-analyze", "verify", unit]);
        let complaints = String::from_utf8_lossy(&verify.stderr);
        assert!(
            verify.status.success() && !complaints.contains("tradingbot"),
            "systemd-analyze verify: {complaints}"
        );
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
            let _ = process::kill(self.init, SIGKILL);
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The pid of `parent`'s child whose command name is `name`.
fn child_named(parent: i32, name: &str) -> Option<i32> {
    process::children(parent)
        .into_iter()
        .find(|pid| super::comm(*pid) == name)
}

/// Every running test machine: (nspawn's pid, the machine's name).
pub fn running() -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
            if !args.first()?.ends_with(b"systemd-nspawn") {
                return None;
            }
            let name = args.windows(2).find(|pair| pair[0] == b"-M")?[1];
            let name = String::from_utf8_lossy(name).into_owned();
            name.starts_with(PREFIX).then_some((pid, name))
        })
        .collect()
}

/// Kills the machines of test binaries that are gone; those of a run still
/// going are left alone. Says what it killed.
pub fn sweep_leftovers() {
    for (nspawn, name) in running() {
        let owner = name[PREFIX.len()..]
            .rsplit_once('-')
            .map_or("", |(owner, _)| owner);
        if super::owner_alive(owner) {
            continue;
        }
        eprintln!("killing leftover test machine {name} (nspawn pid {nspawn})");
        // Its PID 1 first: that ends every process in its namespace.
        for pid in process::children(nspawn) {
            let _ = process::kill(pid, SIGKILL);
        }
        let _ = process::kill(nspawn, SIGKILL);
    }
}
