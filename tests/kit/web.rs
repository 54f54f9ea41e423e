//! The dashboard from outside: the real `tradingbot web` (run by the
//! builder, on a port it picks and logs), a GET with headers, and fake
//! bots that keep to the read API's contract (issue 12), answer garbage,
//! or never answer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};

use super::daemon::{Builder, Daemon};
use super::wait::{wait_until, SOON};

/// The line `tradingbot web` logs once bound, with its `port`.
pub const LISTENING: &str = "dashboard listening";

/// A GET with headers, on loopback: (status, headers with lower-case
/// names, body).
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
            let value = value.to_str().unwrap_or_default().to_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), headers, body)
}

/// The real `tradingbot web` on loopback, killed when dropped.
pub struct Web {
    pub daemon: Daemon,
    pub port: u16,
}

impl Web {
    /// `tradingbot web --bind 127.0.0.1` on any free port, reading its bots
    /// every 250 ms with a 1 s timeout, plus `args` and `env`; returns once
    /// it serves.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Web {
        let mut builder = Builder::new();
        let defaults = [
            "web",
            "--bind",
            "127.0.0.1",
            "--poll-interval",
            "250ms",
            "--bot-timeout",
            "1s",
        ];
        for arg in defaults.iter().chain(args) {
            builder = builder.arg(arg);
        }
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        let daemon = builder.spawn();
        let line = daemon.log.wait_for(LISTENING, SOON).unwrap_or_else(|| {
            panic!("tradingbot web never listened; log:\n{}", daemon.log.dump())
        });
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("no port in {line}")) as u16;
        Web { daemon, port }
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

    /// A 200 answer's JSON.
    pub fn json(&self, path: &str) -> Value {
        let (code, _, body) = self.get(path, &[]);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// One bot's entry in `/api/fleet`.
    pub fn fleet_bot(&self, name: &str) -> Value {
        let fleet = self.json("/api/fleet");
        fleet["bots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|bot| bot["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no bot {name} in {fleet}"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Keeps to the read API's contract.
    Good,
    /// Answers 200 with bodies that are not the API's.
    Garbage,
    /// Accepts, reads the request, and never answers.
    Hang,
}

/// A bot's read API as the contract describes it, served from memory on
/// threads of its own; stopped when dropped.
pub struct FakeBot {
    pub addr: SocketAddr,
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
    report: Value,
    trades: Vec<Value>,
    /// (method, target, Authorization) of every request.
    requests: Vec<(String, String, Option<String>)>,
}

impl FakeBot {
    /// On a free loopback port; `token` is the read token it insists on.
    pub fn start(mode: Mode, token: Option<&str>) -> FakeBot {
        FakeBot::serve(TcpListener::bind("127.0.0.1:0").unwrap(), mode, token, &[])
    }

    /// On `addr` again (a bot restarted where the dashboard expects it),
    /// its journal already holding `trades` when it starts answering.
    pub fn again(addr: SocketAddr, mode: Mode, token: Option<&str>, trades: &[Value]) -> FakeBot {
        let mut listener = None;
        let bound = wait_until(SOON, || {
            listener = TcpListener::bind(addr).ok();
            listener.is_some()
        });
        assert!(bound, "{addr} still taken");
        FakeBot::serve(listener.unwrap(), mode, token, trades)
    }

    fn serve(listener: TcpListener, mode: Mode, token: Option<&str>, trades: &[Value]) -> FakeBot {
        listener.set_nonblocking(true).unwrap();
        let mut bot = FakeBot {
            addr: listener.local_addr().unwrap(),
            shared: Arc::new(Shared {
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
                    positions: json!({"positions": [], "cash": "0", "equity": "0",
                        "realized_pnl": "0", "unrealized_pnl": "0", "fees": "0", "last_seq": 0}),
                    report: json!({"since": null, "symbol": null, "last_seq": 0,
                        "total": {"trades": 0}, "by_symbol": {}, "round_trips": [], "open": []}),
                    trades: Vec::new(),
                    requests: Vec::new(),
                }),
                changed: Condvar::new(),
            }),
            accept: None,
        };
        for trade in trades {
            bot.push(trade.clone());
        }
        let shared = Arc::clone(&bot.shared);
        bot.accept = Some(std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = Arc::clone(&shared);
                        std::thread::spawn(move || answer(&shared, stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
        bot
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
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

    /// What `/api/v1/report` answers.
    pub fn set_report(&self, report: Value) {
        self.state().report = report;
    }

    /// Appends a fill or a reject (`type` and its fields; `seq` is the
    /// next one), counts it, and sends it to every open stream.
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

    /// Every request so far: (method, path and query, Authorization).
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

fn answer(shared: &Shared, mut stream: TcpStream) {
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
    let method = words.next().unwrap_or_default().to_owned();
    let target = words.next().unwrap_or_default().to_owned();
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
        Mode::Garbage if path == "/events" => {
            let body = "data: {\"type\": \"fill\", \"seq\": \"not a number\"\n\n";
            return respond(&mut stream, "200 OK", "text/event-stream", body);
        }
        Mode::Garbage => {
            let body =
                "{\"status\": 42, \"reasons\": \"<script>alert(1)</script>\", \"positions\": [";
            return respond(&mut stream, "200 OK", "application/json", body);
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
        "/api/v1/report" => {
            let body = state().report.to_string();
            respond(&mut stream, "200 OK", "application/json", &body);
        }
        "/events" => {
            let mut cursor: u64 = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("after="))
                .and_then(|after| after.parse().ok())
                .unwrap_or(0);
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n: open\n\n";
            if stream.write_all(head.as_bytes()).is_err() {
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
                    let kind = trade["type"].as_str().unwrap();
                    let message = format!("id: {cursor}\nevent: {kind}\ndata: {trade}\n\n");
                    if stream.write_all(message.as_bytes()).is_err() {
                        return;
                    }
                }
                guard = shared
                    .changed
                    .wait_timeout(state(), Duration::from_millis(100))
                    .unwrap()
                    .0;
            }
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
    }
}
