//! A small builder that runs the real `tradingbot` executable in a temp dir
//! of its own, and the running daemon it gives back.
//!
//! The daemon binds `PORT=0` and the test reads back the port it got (see
//! [`Daemon::port`]): no test guesses a free port for it. Every daemon dies
//! with its [`Daemon`] (a failed assertion included) and with the test
//! binary (an abort included), and takes its descendants (exec feeds) along.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::log::Log;
use super::port::Reserved;
use super::process::{self, SIGKILL, SIGTERM};
use super::wait::SOON;

pub const BIN: &str = env!("CARGO_BIN_EXE_tradingbot");

/// The line the daemon logs once its health listener is bound, with fields
/// `addr` and `port`, before anything slow.
pub const LISTENING: &str = "health server listening";

/// The line the daemon logs once its first loop iteration is done.
pub const READY: &str = "ready: first loop iteration done";

pub struct Builder {
    dir: tempfile::TempDir,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: bool,
    fd_limit: Option<u64>,
    wrapper: Vec<OsString>,
    reserved: Vec<Reserved>,
}

/// A daemon reading signals from a pipe the test writes (see [`Daemon::write_stdin`]).
pub fn stdin_bot() -> Builder {
    Builder::new().arg("--source").arg("stdin").piped_stdin()
}

impl Builder {
    /// Short intervals, JSON logs, loopback only, any free port, state in a
    /// fresh temp dir.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tb-test-")
            .tempdir()
            .unwrap();
        let state = dir.path().join("state");
        let health_file = dir.path().join("healthy");
        Builder {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            stdin: false,
            fd_limit: None,
            wrapper: Vec::new(),
            reserved: Vec::new(),
        }
        .env("PORT", "0")
        .env("HEALTH_BIND", "127.0.0.1")
        .env("STATE_DIR", state)
        .env("HEALTH_FILE", health_file)
        .env("HEARTBEAT_INTERVAL", "100ms")
        .env("STALL_TIMEOUT", "1s")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        // Test lines carry fixed timestamps (2024, see `signal_line`): a
        // window of a century keeps them from being refused as too old.
        .env("DEDUPE_WINDOW", "36500d")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        let key = key.into();
        self.env.retain(|(existing, _)| *existing != key);
        self.env.push((key, value.into()));
        self
    }

    pub fn remove_env(mut self, key: &str) -> Self {
        self.env.retain(|(existing, _)| existing != key);
        self
    }

    /// Sets `key` (say `WEBHOOK_BIND`) to an address the test holds bound
    /// until just before the daemon starts, so no one else takes it first.
    pub fn bind_env(mut self, key: &str, reserved: Reserved) -> Self {
        self = self.env(key, reserved.addr().to_string());
        self.reserved.push(reserved);
        self
    }

    /// Give the daemon a pipe on stdin (see [`Daemon::write_stdin`]).
    pub fn piped_stdin(mut self) -> Self {
        self.stdin = true;
        self
    }

    /// Caps the daemon's open descriptors (RLIMIT_NOFILE), to provoke EMFILE.
    pub fn fd_limit(mut self, limit: u64) -> Self {
        self.fd_limit = Some(limit);
        self
    }

    /// Runs the daemon through `wrapper`, a command that ends by exec'ing
    /// its arguments (`unshare ... sh -c '...; exec "$@"' sh`): the daemon
    /// keeps the wrapper's pid.
    pub fn via(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(OsString::from).collect();
        self
    }

    fn command(&mut self) -> Command {
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .args(&self.args)
            .current_dir(self.dir.path());
        process::die_with_parent(&mut command, SIGKILL);
        if let Some(limit) = self.fd_limit {
            process::limit_open_files(&mut command, limit);
        }
        // The daemon binds these itself in a moment.
        self.reserved.clear();
        command
    }

    pub fn spawn(mut self) -> Daemon {
        let mut command = self.command();
        command
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn tradingbot");
        let log = Log::follow(child.stderr.take().unwrap());
        Daemon {
            child,
            log,
            port: OnceLock::new(),
            dir: self.dir,
        }
    }

    /// Runs to completion (for commands that exit on their own).
    pub fn output(mut self) -> Output {
        self.command()
            .stdin(Stdio::null())
            .output()
            .expect("run tradingbot")
    }

    /// Runs to completion with `input` on its stdin, then its end.
    pub fn output_with_stdin(mut self, input: &[u8]) -> Output {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tradingbot");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().expect("run tradingbot");
        let _ = writer.join();
        output
    }
}

pub struct Daemon {
    child: Child,
    pub log: Log,
    port: OnceLock<u16>,
    dir: tempfile::TempDir,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The health port the daemon bound (it was given `PORT=0`, or a list),
    /// read from its [`LISTENING`] log line; failing that (a `RUST_LOG`
    /// that hides info lines), from its health file once it is healthy.
    pub fn port(&self) -> u16 {
        *self.port.get_or_init(|| {
            let deadline = Instant::now() + SOON;
            loop {
                let slice = Duration::from_millis(100);
                if let Some(line) = self.log.find(slice, |line| line.contains(LISTENING)) {
                    return listening_port(&line);
                }
                let record = std::fs::read_to_string(self.health_file()).ok();
                let recorded = record
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .and_then(|record| record["port"].as_u64());
                if let Some(port) = recorded {
                    return port as u16;
                }
                assert!(
                    Instant::now() < deadline && !self.log.is_closed(),
                    "no health port: no {LISTENING:?} line and no port in the health file; log:\n{}",
                    self.log.dump()
                );
            }
        })
    }

    /// The health server's address on loopback.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// Whether it has exited yet (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for the log line that says the daemon is ready.
    pub fn wait_ready(&self) {
        assert!(
            self.log.wait_for(READY, SOON).is_some(),
            "daemon never became ready; log:\n{}",
            self.log.dump()
        );
    }

    /// Waits for a log line containing `needle`, failing the test with the
    /// whole log if it never comes.
    pub fn expect_log(&self, needle: &str) -> String {
        self.log.wait_for(needle, SOON).unwrap_or_else(|| {
            panic!(
                "no log line containing {needle:?}; log:\n{}",
                self.log.dump()
            )
        })
    }

    pub fn signal(&self, signal: i32) {
        process::kill(self.pid(), signal)
            .unwrap_or_else(|error| panic!("kill({}, {signal}): {error}", self.pid()));
    }

    pub fn write_stdin(&mut self, bytes: &[u8]) {
        self.child
            .stdin
            .as_mut()
            .expect("piped_stdin")
            .write_all(bytes)
            .unwrap();
    }

    /// The write end of the daemon's stdin, for a test that writes from elsewhere.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("piped_stdin")
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits for the process to exit, failing the test after `timeout`
    /// (the daemon is killed on drop).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "tradingbot did not exit within {timeout:?}; log:\n{}",
                self.log.dump()
            );
            process::await_exit(self.pid(), left);
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(SIGTERM);
        self.wait_exit(SOON)
    }
}

impl Drop for Daemon {
    /// Kills a daemon still running, and whatever it started (an exec feed
    /// and its children live in process groups of their own, which only a
    /// clean stop would end).
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let family = process::descendants(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in family {
            let _ = process::kill(pid, SIGKILL);
        }
    }
}

/// The `port` of a [`LISTENING`] line, JSON (`LOG_FORMAT=json`) or text.
fn listening_port(line: &str) -> u16 {
    let port = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(record) => record["port"].as_u64(),
        Err(_) => line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("port="))
            .and_then(|port| port.parse().ok()),
    };
    port.and_then(|port| u16::try_from(port).ok())
        .unwrap_or_else(|| panic!("no port in {line}"))
}
