//! A real browser for the dashboard's tests (the `heavy` target): Debian's
//! Chromium, headless, driven over WebDriver by chromedriver on a loopback
//! port; and real bots with the read API, restartable on the same port and
//! state, whose journals the tests read to check the page's numbers.
//!
//! Chromium and chromedriver die with the test binary too: as root they run
//! in a PID namespace of their own whose init (chromedriver, under
//! `unshare --kill-child`) is killed when the test binary dies, taking
//! every Chromium process with it.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::kit::daemon::{stdin_bot, Daemon};
use crate::kit::decimal::{ratio, scaled, times, PLACES_8};
use crate::kit::log::Log;
use crate::kit::process::{self, SIGKILL};
use crate::kit::wait::{wait_until, SOON};
use crate::kit::web::get;
use crate::packaging::can_run;

/// A real bot reading signals from a pipe, with its read API (`API_TOKEN`)
/// on its health port; restartable on the same port and state.
pub struct RealBot {
    pub token: String,
    port: u16,
    state_dir: PathBuf,
    env: Vec<(String, String)>,
    /// Every process it has been, the running one last (the first holds
    /// the temp dir of the state).
    lives: Vec<Daemon>,
}

impl RealBot {
    /// `env` adds to the builder's short intervals and loopback port.
    pub fn start(token: &str, env: &[(&str, &str)]) -> RealBot {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let daemon = RealBot::spawn(token, &env, None);
        RealBot {
            token: token.to_owned(),
            port: daemon.port(),
            state_dir: daemon.state_dir(),
            env,
            lives: vec![daemon],
        }
    }

    fn spawn(token: &str, env: &[(String, String)], again: Option<(u16, &Path)>) -> Daemon {
        let mut builder = stdin_bot().env("API_TOKEN", token);
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        if let Some((port, state_dir)) = again {
            builder = builder
                .env("PORT", port.to_string())
                .env("STATE_DIR", state_dir);
        }
        let daemon = builder.spawn();
        daemon.wait_ready();
        daemon
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.lives.last_mut().unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes signal lines to its stdin.
    pub fn send(&mut self, lines: &str) {
        self.daemon().write_stdin(lines.as_bytes());
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        let daemon = self.daemon();
        daemon.signal(SIGKILL);
        daemon.wait_exit(SOON);
    }

    /// Starts it again on the same port and state; returns once ready.
    pub fn restart(&mut self) {
        let daemon = RealBot::spawn(&self.token, &self.env, Some((self.port, &self.state_dir)));
        self.lives.push(daemon);
    }

    /// `/health`, which needs no token.
    pub fn health(&self) -> (u16, Value) {
        let (code, _, body) = get(&format!("{}/health", self.url()), &[]);
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn journal(&self) -> Vec<Value> {
        read_journal(&self.state_dir)
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

/// A symbol's position from a journal's fills, worked out here with the
/// README's average cost (independently of the bot's engine), in whole
/// numbers of 10^-12 (`kit::decimal`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Book {
    pub qty: i128,
    pub cost: i128,
    pub avg_price: i128,
    pub realized_pnl: i128,
    pub fees: i128,
    pub mark: i128,
}

impl Book {
    pub fn unrealized_pnl(&self) -> i128 {
        times(self.qty, self.mark) - self.cost
    }

    /// Books a fill: its signed quantity, the price it filled at, the
    /// price asked and its fee.
    fn fill(&mut self, signed: i128, price: i128, asked: i128, fee: i128) {
        let flow = times(signed, price);
        let remaining = self.qty + signed;
        self.fees += fee;
        self.mark = asked;
        if self.qty == 0 || self.qty.signum() == signed.signum() {
            self.cost += flow;
            self.qty = remaining;
            self.avg_price = ratio(self.cost.abs(), remaining.abs(), PLACES_8);
        } else if remaining == 0 {
            self.realized_pnl += -flow - self.cost;
            *self = Book {
                qty: 0,
                cost: 0,
                avg_price: 0,
                ..*self
            };
        } else if remaining.signum() == self.qty.signum() {
            let released = times(-signed, self.avg_price);
            self.realized_pnl += -flow - released;
            self.cost -= released;
            self.qty = remaining;
        } else {
            self.realized_pnl += times(self.qty, price) - self.cost;
            self.cost = times(remaining, price);
            self.qty = remaining;
            self.avg_price = ratio(self.cost.abs(), remaining.abs(), PLACES_8);
        }
    }
}

/// What a journal's fills leave, worked out here: each symbol's [`Book`]
/// and the account's cash (no `PAPER_BALANCE`: it starts at 0).
pub fn positions_from(records: &[Value]) -> (BTreeMap<String, Book>, i128) {
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    let mut cash = 0;
    for fill in records.iter().filter(|record| record["t"] == "fill") {
        let decimal = |field: &str| fill[field].as_str().map(scaled);
        let (qty, price) = (decimal("qty").unwrap(), decimal("price").unwrap());
        let signed = if fill["side"] == "buy" { qty } else { -qty };
        let fee = decimal("fee").unwrap_or(0);
        cash -= times(signed, price) + fee;
        books
            .entry(fill["symbol"].as_str().unwrap().to_owned())
            .or_default()
            .fill(signed, price, decimal("asked").unwrap_or(price), fee);
    }
    (books, cash)
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
    _driver: Driver,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// None (after a loud SKIP) where Chromium or chromedriver is missing.
    pub fn open(test: &str) -> Option<Browser> {
        if !can_run(test, false, &["chromium", "chromedriver"]) {
            return None;
        }
        let turn = ONE_BROWSER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let driver = Driver::start();
        let base = format!("http://127.0.0.1:{}", driver.port);
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
        assert!(up, "chromedriver never answered:\n{}", driver.log.dump());
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

/// chromedriver on a loopback port of its choosing; killed, with every
/// Chromium it started, when dropped or when the test binary dies.
struct Driver {
    child: Child,
    port: u16,
    log: Log,
}

impl Driver {
    fn start() -> Driver {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let root = unsafe { libc::geteuid() } == 0;
        let mut command = if root {
            let mut command = Command::new("unshare");
            command.args([
                "--pid",
                "--fork",
                "--kill-child=SIGKILL",
                "--mount-proc",
                "chromedriver",
            ]);
            command
        } else {
            let mut command = Command::new("chromedriver");
            command.process_group(0);
            command
        };
        // Port 0: chromedriver picks one and says which.
        command
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        process::die_with_parent(&mut command, SIGKILL);
        let mut child = command.spawn().expect("spawn chromedriver");
        let log = Log::follow(child.stdout.take().unwrap());
        let line = log
            .wait_for("was started successfully on port", SOON)
            .unwrap_or_else(|| panic!("chromedriver did not start:\n{}", log.dump()));
        let port = line
            .rsplit("on port ")
            .next()
            .and_then(|rest| {
                rest.trim_end_matches('.')
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Driver { child, port, log }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Without the namespace, its process group holds Chromium.
        let pid = self.child.id() as i32;
        let _ = process::kill(-pid, SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
