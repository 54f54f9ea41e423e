//! What the dashboard's tests share, and nothing else does: the real
//! `tradingbot web` and real bots as children that die with the test
//! (process groups killed on drop, panics included), and fake bots that
//! speak the read API's contract, or garbage, or nothing.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_tradingbot");

/// Generous bound for "soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

/// A child in a process group of its own, killed with the whole group
/// when dropped (a test that panics leaves nothing running). Its stderr
/// is kept for failure messages.
pub struct Child {
    child: std::process::Child,
    stderr: Arc<Mutex<String>>,
    pub stdin: Option<std::process::ChildStdin>,
}

impl Child {
    pub fn spawn(command: &mut Command) -> Child {
        command
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(read) = pipe.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        let stdin = child.stdin.take();
        Child {
            child,
            stderr,
            stdin,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal)
            .unwrap();
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the whole group, and reaped.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&self.child),
                rustix::process::Signal::KILL,
            );
            let _ = self.child.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GET with headers: (status, headers with lower-case names, body).
pub fn get(url: &str, headers: &[(&str, &str)]) -> (u16, BTreeMap<String, String>, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(SOON))
        .build()
        .new_agent();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request
        .call()
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), headers, body)
}

/// The real `tradingbot web` on a loopback port.
pub struct Web {
    pub child: Child,
    pub port: u16,
}

impl Web {
    /// Starts it with `args` after `--bind 127.0.0.1 --port P` and short
    /// polls, and waits until `/health` answers.
    pub fn start(args: &[&str]) -> Web {
        Web::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Web {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .args(["web", "--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--poll-interval", "250ms", "--bot-timeout", "1s"])
            .args(args)
            .stdin(Stdio::null());
        let child = Child::spawn(&mut command);
        let web = Web { child, port };
        let up = wait_until(SOON, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() && web.get("/health", &[]).0 == 200
        });
        assert!(
            up,
            "tradingbot web never served; stderr:\n{}",
            web.child.stderr()
        );
        web
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, BTreeMap<String, String>, String) {
        get(&self.url(path), headers)
    }

    pub fn json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let (code, _, body) = self.get(path, headers);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// One bot's entry in `/api/fleet`.
    pub fn fleet_bot(&self, name: &str, headers: &[(&str, &str)]) -> Value {
        let fleet = self.json("/api/fleet", headers);
        fleet["bots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|bot| bot["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no bot {name} in {fleet}"))
    }
}

// ---- fake bots ----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Speaks the read API's contract.
    Good,
    /// Answers 200 with bodies that are not the API's.
    Garbage,
    /// Accepts, reads the request, and never answers.
    Hang,
}

/// A bot's read API as the contract describes it, served from memory.
pub struct FakeBot {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    mode: Mode,
    token: Option<String>,
    stop: AtomicBool,
    state: Mutex<FakeState>,
    changed: Condvar,
}

struct FakeState {
    status: Value,
    positions: Value,
    trades: Vec<Value>,
    requests: Vec<(String, String, Option<String>)>,
}

impl FakeBot {
    pub fn start(mode: Mode, token: Option<&str>) -> FakeBot {
        FakeBot::on_port(free_port(), mode, token, &[])
    }

    /// A bot on `port` whose journal already holds `trades` when it
    /// starts answering.
    pub fn on_port(port: u16, mode: Mode, token: Option<&str>, trades: &[Value]) -> FakeBot {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            mode,
            token: token.map(str::to_owned),
            stop: AtomicBool::new(false),
            state: Mutex::new(FakeState {
                status: json!({
                    "version": "0.0.0-fake", "status": "healthy", "reasons": [],
                    "uptime_seconds": 100.0, "heartbeat_age_seconds": 0.1,
                    "last_signal_age_seconds": 2.0, "max_signal_age_seconds": 60.0,
                    "stall_timeout_seconds": 10.0, "signals_total": 0, "fills_total": 0,
                    "rejects_total": 0, "duplicates_total": 0, "last_seq": 0,
                    "fsync_seconds": {"p50": 0.0004, "p99": 0.0021},
                }),
                positions: json!({"positions": [], "realized_pnl": 0.0, "cash": 0.0, "last_seq": 0}),
                trades: Vec::new(),
                requests: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let mut bot = FakeBot {
            port,
            shared,
            accept: None,
        };
        for trade in trades {
            bot.push(trade.clone());
        }
        let accept_shared = Arc::clone(&bot.shared);
        let accept = std::thread::spawn(move || {
            while !accept_shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = Arc::clone(&accept_shared);
                        std::thread::spawn(move || serve(&shared, stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        bot.accept = Some(accept);
        bot
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.shared.state.lock().unwrap()
    }

    /// Sets fields of `/api/v1/status`.
    pub fn set_status(&self, fields: Value) {
        let mut state = self.state();
        for (key, value) in fields.as_object().unwrap() {
            state.status[key] = value.clone();
        }
    }

    pub fn set_positions(&self, positions: Value) {
        self.state().positions = positions;
    }

    /// Appends a fill or a reject (`type` and its fields; `seq` is
    /// assigned) and sends it to every open stream.
    pub fn push(&self, mut trade: Value) -> u64 {
        let mut state = self.state();
        let seq = state.status["last_seq"].as_u64().unwrap() + 1;
        trade["seq"] = json!(seq);
        let counter = if trade["type"] == "fill" {
            "fills_total"
        } else {
            "rejects_total"
        };
        for key in [counter, "signals_total"] {
            state.status[key] = json!(state.status[key].as_u64().unwrap() + 1);
        }
        state.status["last_seq"] = json!(seq);
        state.status["last_signal_age_seconds"] = json!(0.0);
        state.trades.push(trade);
        self.shared.changed.notify_all();
        seq
    }

    /// Every request so far: (method, path with query, Authorization).
    pub fn requests(&self) -> Vec<(String, String, Option<String>)> {
        self.state().requests.clone()
    }
}

impl Drop for FakeBot {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(shared: &Shared, mut stream: TcpStream) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let mut words = request_line.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    shared
        .state
        .lock()
        .unwrap()
        .requests
        .push((method, target.clone(), authorization.clone()));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let respond = |stream: &mut TcpStream, code: &str, content_type: &str, body: &str| {
        let _ = write!(
            stream,
            "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    match shared.mode {
        Mode::Hang => {
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        Mode::Garbage => {
            let body = if path == "/events" {
                "data: {\"type\": \"fill\", \"seq\": \"not a number\"\n\n"
            } else {
                "{\"status\": 42, \"reasons\": \"<script>alert(1)</script>\", \"positions\": ["
            };
            let kind = if path == "/events" {
                "text/event-stream"
            } else {
                "application/json"
            };
            return respond(&mut stream, "200 OK", kind, body);
        }
        Mode::Good => {}
    }
    if let Some(token) = &shared.token {
        if authorization.as_deref() != Some(&format!("Bearer {token}")) {
            return respond(
                &mut stream,
                "401 Unauthorized",
                "text/plain",
                "read token needed\n",
            );
        }
    }
    let state = || shared.state.lock().unwrap();
    match path {
        "/api/v1/status" => {
            let body = state().status.to_string();
            respond(&mut stream, "200 OK", "application/json", &body);
        }
        "/api/v1/positions" => {
            let body = state().positions.to_string();
            respond(&mut stream, "200 OK", "application/json", &body);
        }
        "/events" => {
            let mut cursor: u64 = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("after="))
                .and_then(|after| after.parse().ok())
                .unwrap_or(0);
            if write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n: open\n\n"
            )
            .is_err()
            {
                return;
            }
            let mut guard = state();
            while !shared.stop.load(Ordering::Relaxed) {
                let fresh: Vec<Value> = guard
                    .trades
                    .iter()
                    .filter(|trade| trade["seq"].as_u64().unwrap() > cursor)
                    .cloned()
                    .collect();
                drop(guard);
                for trade in fresh {
                    cursor = trade["seq"].as_u64().unwrap();
                    let message = format!(
                        "id: {cursor}\nevent: {}\ndata: {trade}\n\n",
                        trade["type"].as_str().unwrap()
                    );
                    if stream.write_all(message.as_bytes()).is_err() {
                        return;
                    }
                }
                guard = state();
                guard = shared
                    .changed
                    .wait_timeout(guard, Duration::from_millis(100))
                    .unwrap()
                    .0;
            }
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
    }
}

// ---- real bots --------------------------------------------------------------

/// A real bot reading signals from a pipe, with its read API on a loopback
/// port and state in a temp dir that outlives restarts.
pub struct RealBot {
    pub port: u16,
    pub token: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    pub child: Option<Child>,
}

impl RealBot {
    /// `env` adds to (or overrides) short intervals, loopback, JSON logs.
    pub fn start(token: &str, env: &[(&str, &str)]) -> RealBot {
        let dir = tempfile::Builder::new()
            .prefix("tb-web-bot-")
            .tempdir()
            .unwrap();
        let mut bot = RealBot {
            port: free_port(),
            token: token.to_owned(),
            env: env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            dir,
            child: None,
        };
        bot.restart();
        bot
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts it (again, on the same port and state) and waits for /readyz.
    pub fn restart(&mut self) {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", self.port.to_string())
            .env("HEALTH_BIND", "127.0.0.1")
            .env("STATE_DIR", self.state_dir())
            .env("HEALTH_FILE", self.dir.path().join("healthy"))
            .env("HEARTBEAT_INTERVAL", "100ms")
            .env("STALL_TIMEOUT", "1s")
            .env("SIGNAL_SOURCE", "stdin")
            .env("API_TOKEN", &self.token)
            .env("LOG_FORMAT", "json")
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .args(["run"])
            .stdin(Stdio::piped());
        self.child = Some(Child::spawn(&mut command));
        let url = self.url();
        let ready = wait_until(SOON, || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && get(&format!("{url}/readyz"), &[]).0 == 200
        });
        assert!(
            ready,
            "bot never ready; stderr:\n{}",
            self.child.as_ref().unwrap().stderr()
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Writes signal lines to its stdin.
    pub fn send(&mut self, lines: &str) {
        let child = self.child.as_mut().expect("running");
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// `/health` without a token (the health routes need none).
    pub fn health(&self) -> (u16, Value) {
        let (code, _, body) = get(&format!("{}/health", self.url()), &[]);
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Every whole record of its journal, in order, read from disk.
    pub fn journal(&self) -> Vec<Value> {
        read_journal(&self.state_dir())
    }
}

/// The journal's records, from `journal.jsonl` or, when the journal is
/// kept in segments, from every `*.jsonl` under `journal/` in name order;
/// only whole lines (a running bot may be writing the next one).
pub fn read_journal(state_dir: &Path) -> Vec<Value> {
    let mut files = vec![state_dir.join("journal.jsonl")];
    if let Ok(entries) = std::fs::read_dir(state_dir.join("journal")) {
        let mut segments: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
            .collect();
        segments.sort();
        files.extend(segments);
    }
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        records.extend(
            whole
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap()),
        );
    }
    records
}

/// A valid signal line.
pub fn signal(id: &str, symbol: &str, side: &str, qty: f64, price: f64) -> String {
    format!(
        "{{\"id\":\"{id}\",\"ts\":1714557600000,\"symbol\":\"{symbol}\",\"side\":\"{side}\",\"qty\":{qty},\"price\":{price}}}\n"
    )
}

/// Positions from a journal's fills, computed here with average-cost
/// accounting (independently of the bot's engine): symbol → (qty, average
/// price, realized PnL, cash).
pub fn positions_from(records: &[Value]) -> BTreeMap<String, (f64, f64, f64, f64)> {
    let mut books: BTreeMap<String, (f64, f64, f64, f64)> = BTreeMap::new();
    for fill in records.iter().filter(|record| record["t"] == "fill") {
        let qty = fill["qty"].as_f64().unwrap();
        let price = fill["price"].as_f64().unwrap();
        let signed = if fill["side"] == "buy" { qty } else { -qty };
        let book = books
            .entry(fill["symbol"].as_str().unwrap().to_owned())
            .or_default();
        let (held, average, realized, cash) = book;
        *cash -= signed * price;
        if *held == 0.0 || held.signum() == signed.signum() {
            *average = (held.abs() * *average + qty * price) / (*held + signed).abs();
            *held += signed;
        } else {
            let closed = qty.min(held.abs());
            *realized += closed * (price - *average) * held.signum();
            let left = *held + signed;
            if left == 0.0 {
                *average = 0.0;
            } else if left.signum() != held.signum() {
                *average = price;
            }
            *held = left;
        }
    }
    books
}

// ---- a real browser -----------------------------------------------------------

/// True when this machine has every tool in `tools`; otherwise a loud SKIP
/// line and false, but a panic under CI (`CI=true`), which installs them
/// all (.ci/install-system-deps) and must run these tests.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    };
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIP {test}: needs {}; run .ci/install-system-deps as root",
        missing.join(", ")
    );
    assert!(
        std::env::var("CI").map_or(true, |ci| ci != "true"),
        "{message}: under CI every test must run"
    );
    // Straight to fd 2: the harness captures the output of passing tests.
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! {message} !!!!!!!!\n");
    false
}

/// One browser at a time: two Chromiums on two shared cores make every
/// timing in these tests meaningless.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// Headless Chromium driven over WebDriver (chromedriver on a loopback
/// port), with a fresh profile. Dropping it ends the session and kills
/// chromedriver's process group, Chromium with it.
pub struct Browser {
    session: String,
    base: String,
    agent: ureq::Agent,
    _driver: Child,
    _profile: tempfile::TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// None (after a loud SKIP) where Chromium or chromedriver is missing.
    pub fn open(test: &str) -> Option<Browser> {
        if !have_tools(test, &["chromium", "chromedriver"]) {
            return None;
        }
        let turn = ONE_BROWSER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let port = free_port();
        let driver = Child::spawn(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null()),
        );
        let base = format!("http://127.0.0.1:{port}");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let status = format!("{base}/status");
        let up = wait_until(SOON, || {
            agent
                .get(&status)
                .call()
                .is_ok_and(|response| response.status() == 200)
        });
        assert!(
            up,
            "chromedriver never answered; stderr:\n{}",
            driver.stderr()
        );
        let profile = tempfile::Builder::new()
            .prefix("tb-web-chromium-")
            .tempdir()
            .unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let answer: Value = json_of(
            agent
                .post(format!("{base}/session"))
                .header("Content-Type", "application/json")
                .send(capabilities.to_string()),
        );
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_owned();
        Some(Browser {
            session,
            base,
            agent,
            _driver: driver,
            _profile: profile,
            _turn: turn,
        })
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let answer = json_of(match method {
            "GET" => self.agent.get(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        });
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    /// Loads `url` and returns when the page has loaded.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `return` what is wanted) in the page.
    pub fn run(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Runs `script` every 25 ms until it returns something other than
    /// null or false; that value, or None after `timeout`.
    pub fn wait_for(&self, timeout: Duration, script: &str) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.run(script);
            if !value.is_null() && value != Value::Bool(false) {
                return Some(value);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The page as a PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.command("GET", "/screenshot", Value::Null);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }

    /// Saves a screenshot as `name` in `$TRADINGBOT_SCREENSHOTS` when set
    /// (`docs` refreshes the README's); checks it is a PNG either way.
    pub fn keep_screenshot(&self, name: &str) {
        let png = self.screenshot();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        if let Some(dir) = std::env::var_os("TRADINGBOT_SCREENSHOTS") {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), png).unwrap();
        }
    }
}

/// A WebDriver answer's JSON (screenshots run to megabytes).
fn json_of(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Value {
    let text = response
        .unwrap_or_else(|error| panic!("WebDriver: {error}"))
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("WebDriver answered {text}"))
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(format!("{}/session/{}", self.base, self.session))
            .config()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call();
    }
}
