//! A builder that runs the real binary in a temp dir, and the real things
//! the tests talk to it with: TCP, a notify socket, signals, files.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tradingbot");

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(15);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes. Used
/// only where the thing awaited has no event to wait on (an HTTP status).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon reading signals from a pipe the test writes (see [`Daemon::write_stdin`]).
pub fn stdin_bot() -> Builder {
    Builder::new().arg("--source").arg("stdin").piped_stdin()
}

pub struct Builder {
    dir: tempfile::TempDir,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    port: u16,
    stdin: bool,
    fd_limit: Option<u64>,
}

impl Builder {
    /// Short intervals, JSON logs, loopback only, state in a fresh temp dir.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tb-test-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut builder = Builder {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            port,
            stdin: false,
            fd_limit: None,
        };
        let state = builder.dir.path().join("state");
        let health_file = builder.dir.path().join("healthy");
        builder = builder
            .env("PORT", port.to_string())
            .env("HEALTH_BIND", "127.0.0.1")
            .env("STATE_DIR", state)
            .env("HEALTH_FILE", health_file)
            .env("HEARTBEAT_INTERVAL", "100ms")
            .env("STALL_TIMEOUT", "1s")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // Test lines carry fixed timestamps (2024): a window of a
            // century keeps them from being refused as too old.
            .env("DEDUPE_WINDOW", "36500d");
        builder
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
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

    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .args(&self.args)
            .current_dir(self.dir.path());
        if let Some(limit) = self.fd_limit {
            use std::os::unix::process::CommandExt;
            let rlimit = Rlimit {
                current: limit,
                max: limit,
            };
            // SAFETY: setrlimit(2) is async-signal-safe and touches only the child.
            unsafe {
                command.pre_exec(move || {
                    if libc_setrlimit(RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command
    }

    pub fn spawn(self) -> Daemon {
        let mut command = self.command();
        command
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn tradingbot");
        let log = Log::default();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.push(line);
            }
            sink.close();
        });
        Daemon {
            child,
            port: self.port,
            log,
            dir: self.dir,
        }
    }

    /// Runs to completion (for commands that exit on their own).
    pub fn output(self) -> std::process::Output {
        self.command()
            .stdin(Stdio::null())
            .output()
            .expect("run tradingbot")
    }
}

/// The daemon's stderr, one line at a time, awaitable.
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<(Mutex<Lines>, Condvar)>,
}

#[derive(Default)]
struct Lines {
    unread: VecDeque<String>,
    all: Vec<String>,
    closed: bool,
}

impl Log {
    fn push(&self, line: String) {
        let (lock, condvar) = &*self.inner;
        let mut guard = lock.lock().unwrap();
        guard.unread.push_back(line.clone());
        guard.all.push(line);
        condvar.notify_all();
    }

    fn close(&self) {
        let (lock, condvar) = &*self.inner;
        lock.lock().unwrap().closed = true;
        condvar.notify_all();
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.all()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().all.clone()
    }

    /// Waits for the next line (after those already consumed) containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, condvar) = &*self.inner;
        let mut guard = lock.lock().unwrap();
        loop {
            while let Some(line) = guard.unread.pop_front() {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            if guard.closed {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = condvar.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }
}

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub log: Log,
    dir: tempfile::TempDir,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn health_file(&self) -> PathBuf {
        self.dir.path().join("healthy")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// One request on a fresh connection: (status code, body).
    pub fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        http(self.addr(), method, path, &[])
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path)
            .unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// `/health` parsed as JSON.
    pub fn health(&self) -> (u16, serde_json::Value) {
        let (code, body) = self.get("/health");
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")),
        )
    }

    /// One request with extra headers on a fresh connection: (status, body).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<(u16, String)> {
        http(self.addr(), method, path, headers)
    }

    /// `/metrics` in Prometheus text.
    pub fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "/metrics: {body}");
        body
    }

    /// Waits for a log line containing `needle`, failing the test with the
    /// whole log if it never comes.
    pub fn expect_log(&self, needle: &str) -> String {
        self.log.wait_for(needle, SOON).unwrap_or_else(|| {
            panic!(
                "no log line containing {needle:?}; log:\n{}",
                self.log.all().join("\n")
            )
        })
    }

    /// Waits for the log line that says the daemon is ready.
    pub fn wait_ready(&self) {
        assert!(
            self.log
                .wait_for("ready: first loop iteration done", SOON)
                .is_some(),
            "daemon never became ready; log:\n{}",
            self.log.all().join("\n")
        );
    }

    pub fn wait_status(&self, path: &str, code: u16) -> bool {
        wait_until(SOON, || {
            self.request("GET", path).is_ok_and(|(got, _)| got == code)
        })
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned and still own.
        let result = unsafe { libc_kill(self.pid(), signal) };
        assert_eq!(result, 0, "kill({}, {signal})", self.pid());
    }

    pub fn write_stdin(&mut self, bytes: &[u8]) {
        self.child
            .stdin
            .as_mut()
            .expect("piped_stdin")
            .write_all(bytes)
            .unwrap();
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits for the process to exit, killing it after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "tradingbot did not exit within {timeout:?}; log:\n{}",
                    self.log.all().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(SIGTERM);
        self.wait_exit(SOON)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;

const RLIMIT_NOFILE: i32 = 7;
const CLOCK_MONOTONIC: i32 = 1;

#[repr(C)]
#[derive(Clone, Copy)]
struct Rlimit {
    current: u64,
    max: u64,
}

#[repr(C)]
struct Timespec {
    seconds: i64,
    nanoseconds: i64,
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
    #[link_name = "setrlimit"]
    fn libc_setrlimit(resource: i32, limit: *const Rlimit) -> i32;
    #[link_name = "clock_gettime"]
    fn libc_clock_gettime(clock: i32, time: *mut Timespec) -> i32;
}

/// `CLOCK_MONOTONIC` now, in microseconds: what `MONOTONIC_USEC=` must be
/// comparable with (std's `Instant` does not expose its raw value).
pub fn monotonic_usec() -> u64 {
    let mut now = Timespec {
        seconds: 0,
        nanoseconds: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec into memory we own.
    let result = unsafe { libc_clock_gettime(CLOCK_MONOTONIC, &mut now) };
    assert_eq!(result, 0, "clock_gettime(CLOCK_MONOTONIC)");
    now.seconds as u64 * 1_000_000 + now.nanoseconds as u64 / 1_000
}

/// A raw HTTP/1.1 request with `Connection: close`: (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    request_once(addr, method, path, headers, None)
}

/// A real unix datagram socket to pass as `NOTIFY_SOCKET`, read as promptly
/// as systemd reads its own: a thread drains it into a queue, because the
/// kernel's datagram queue is short (net.unix.max_dgram_qlen, often 10) and a
/// receiver that falls behind blocks the sender.
pub struct NotifySocket {
    messages: Mutex<std::sync::mpsc::Receiver<String>>,
    closed: Arc<std::sync::atomic::AtomicBool>,
    /// The value for `NOTIFY_SOCKET`.
    pub env_value: OsString,
    _dir: Option<tempfile::TempDir>,
}

impl NotifySocket {
    pub fn path() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tb-notify-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self::drained(socket, path.into_os_string(), Some(dir))
    }

    pub fn abstract_name() -> Self {
        let name = format!("tb-notify-{}-{}", std::process::id(), free_port());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        Self::drained(socket, format!("@{name}").into(), None)
    }

    fn drained(socket: UnixDatagram, env_value: OsString, dir: Option<tempfile::TempDir>) -> Self {
        use std::sync::atomic::Ordering;
        let (sender, messages) = std::sync::mpsc::channel();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::clone(&closed);
        // The timeout only lets the thread notice that the test is over.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 4096];
            while !done.load(Ordering::Relaxed) {
                if let Ok(length) = socket.recv(&mut buffer) {
                    let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    if sender.send(message).is_err() {
                        break;
                    }
                }
            }
        });
        NotifySocket {
            messages: Mutex::new(messages),
            closed,
            env_value,
            _dir: dir,
        }
    }

    /// The next datagram, or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.messages.lock().unwrap().recv_timeout(timeout).ok()
    }

    /// Reads datagrams until one satisfies `predicate`; returns it and
    /// every datagram seen before it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> Option<(String, Vec<String>)> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = self.recv(left.max(Duration::from_millis(1)))?;
            if predicate(&message) {
                return Some((message, seen));
            }
            seen.push(message);
        }
    }
}

/// An HTTP/1.1 request with a body and `Connection: close`: (status, body).
pub fn http_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    request_once(addr, method, path, headers, Some(body))
}

/// One request on a fresh connection; `Content-Length` only with a body.
fn request_once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body.unwrap_or_default())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((code, body))
}

/// A numeric field of `/proc/PID/status` (`VmRSS:` in KiB, `Threads:`, ...).
pub fn proc_status(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

impl Daemon {
    /// One series of `/metrics` (Prometheus text): the sample named
    /// `tradingbot_{name}` whose labels include every pair given.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (_, text) = self.get("/metrics");
        let family = format!("tradingbot_{name}");
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(&family)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(key, wanted)| label_text.contains(&format!("{key}=\"{wanted}\"")))
                .then(|| value.parse().ok())?
        })
    }

    /// Waits until `metric(name, labels)` reaches `at_least`; returns the last value seen.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        let mut last = 0.0;
        let reached = wait_until(SOON, || {
            last = self.metric(name, labels).unwrap_or(0.0);
            last >= at_least
        });
        assert!(
            reached,
            "{name}{labels:?} stayed at {last}, wanted {at_least}; log:\n{}",
            self.log.all().join("\n")
        );
        last
    }

    /// Every record of the journal (all its segments).
    pub fn journal(&self) -> Vec<serde_json::Value> {
        read_journal(&self.state_dir())
    }
}

/// The journal's segment files in `state_dir`, in order (an earlier
/// release's single `journal.jsonl` before it is taken over).
pub fn journal_segments(state_dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(state_dir.join("journal"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    if segments.is_empty() && state_dir.join("journal.jsonl").exists() {
        segments.push(state_dir.join("journal.jsonl"));
    }
    segments
}

/// The segment being appended to.
pub fn active_segment(state_dir: &Path) -> PathBuf {
    journal_segments(state_dir)
        .pop()
        .unwrap_or_else(|| state_dir.join("journal/00000000000000000001.jsonl"))
}

/// The whole journal's text, segment after segment.
pub fn journal_text(state_dir: &Path) -> String {
    journal_segments(state_dir)
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap_or_default())
        .collect()
}

/// The header (first line) of the newest snapshot in `state_dir`.
pub fn latest_snapshot(state_dir: &Path) -> serde_json::Value {
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(state_dir.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
        .collect();
    snapshots.sort();
    let bytes = std::fs::read(snapshots.last().expect("a snapshot")).unwrap();
    let header = bytes.split(|byte| *byte == b'\n').next().unwrap();
    serde_json::from_slice(header).unwrap()
}

/// The records of the journal in `state_dir`; panics on a corrupt line.
pub fn read_journal(state_dir: &Path) -> Vec<serde_json::Value> {
    parse_journal(&journal_text(state_dir))
}

/// The records of a running daemon's journal up to its last whole line:
/// the daemon may be halfway through writing the next one.
pub fn read_journal_so_far(state_dir: &Path) -> Vec<serde_json::Value> {
    let text = journal_text(state_dir);
    parse_journal(&text[..text.rfind('\n').map_or(0, |end| end + 1)])
}

fn parse_journal(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("corrupt journal line {line:?}"))
        })
        .collect()
}

/// A valid signal line (with its newline).
pub fn signal_line(id: &str, symbol: &str, side: &str, qty: f64, price: Option<f64>) -> String {
    let price = price.map_or(String::new(), |price| format!(",\"price\":{price}"));
    format!(
        "{{\"id\":\"{id}\",\"ts\":1714557600000,\"symbol\":\"{symbol}\",\"side\":\"{side}\",\"qty\":{qty}{price}}}\n"
    )
}
/// Writes `request` as is and reads until the server closes. A write that
/// fails (the server may close mid-request) is not an error: what matters
/// is what the server answered, if anything.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(response)
}

/// The value of one series (`name` or `name{labels}`) in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
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
    wait_until(SOON, || std::fs::symlink_metadata(path).is_ok() == exists)
}

pub fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .unwrap_or_else(|error| panic!("mtime of {}: {error}", path.display()))
}

impl NotifySocket {
    /// Every datagram that arrives within `window`, with its arrival time.
    pub fn collect(&self, window: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left.max(Duration::from_millis(1))) {
                Some(message) => seen.push((Instant::now(), message)),
                None => break,
            }
        }
        seen
    }

    /// Like [`NotifySocket::wait_for`], failing the test if nothing matches.
    pub fn expect(&self, what: &str, predicate: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        self.wait_for(SOON, predicate)
            .unwrap_or_else(|| panic!("no {what} datagram within {SOON:?}"))
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Every line of an sd_notify datagram is `KEY=value`; a newline inside a
/// `STATUS=` value would start a line that is not.
pub fn assert_well_formed(datagram: &str) {
    for line in datagram.split('\n') {
        let key = line.split_once('=').map_or("", |(key, _)| key);
        assert!(
            !key.is_empty()
                && key
                    .bytes()
                    .all(|byte| byte.is_ascii_uppercase() || byte == b'_'),
            "line {line:?} of datagram {datagram:?} is not KEY=value"
        );
    }
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
pub fn plant_target(dir: &Path) -> (PathBuf, std::time::SystemTime) {
    let target = dir.join("precious");
    std::fs::write(&target, "precious\n").unwrap();
    let planted = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&target)
        .unwrap()
        .set_modified(planted)
        .unwrap();
    (target, planted)
}
