//! Fake Discord, Slack, Telegram and JSON receivers for the alert tests:
//! real HTTPS servers on loopback, with a certificate from a CA made here
//! (the daemon trusts it through NOTIFY_CA_FILE). Each checks every request
//! against the service's documented format and answers as the service
//! would: success, 429 with its way of saying when to retry, 5xx, a
//! refusal, or a connection that never answers.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::kit::tls::TestCa;

/// The secrets of the fake destinations: each must appear in no output
/// of the daemon. Each has a fragment no other text would contain.
pub const DISCORD_TOKEN: &str = "dscTokenQz81-discordsecretfragment";
pub const SLACK_TOKEN: &str = "slkTokenWx42slacksecretfragment";
pub const TELEGRAM_TOKEN: &str = "7012345678:AAHtelegramsecretfragment_x9";
pub const JSON_KEY: &str = "jsonpathsecretfragment-77";
pub const SIGNING_SECRET: &str = "hmacsigningsecretfragment-5";
pub const TELEGRAM_CHAT: i64 = -1001234567890;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Discord,
    Slack,
    Telegram,
    Json,
}

/// How a receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    Ok,
    /// 429, saying to wait this many seconds the way the service does.
    RateLimited(f64),
    ServerError,
    /// The service's refusal of the destination (unknown webhook, chat not found).
    Refuse,
    /// Reads the request and never answers.
    Hang,
}

/// One request as received, with what was wrong with it.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The message as a person would read it.
    pub text: String,
    /// Departures from the service's documented format.
    pub problems: Vec<String>,
}

struct State {
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    stop: AtomicBool,
    signing_secret: Option<&'static str>,
}

pub struct Receiver {
    pub service: Service,
    pub port: u16,
    state: Arc<State>,
}

impl Receiver {
    pub fn start(service: Service, ca: &TestCa) -> Self {
        Self::start_signed(service, ca, None)
    }

    /// A JSON receiver that checks the HMAC signature keyed by `secret`.
    pub fn start_signed(service: Service, ca: &TestCa, secret: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            received: Mutex::default(),
            arrived: Condvar::new(),
            script: Mutex::default(),
            default: Mutex::new(Answer::Ok),
            stop: AtomicBool::new(false),
            signing_secret: secret,
        });
        let config = ca.server_config();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (config, shared) = (Arc::clone(&config), Arc::clone(&shared));
                std::thread::spawn(move || serve(service, stream, config, &shared));
            }
        });
        Receiver {
            service,
            port,
            state,
        }
    }

    /// The NOTIFY_URLS entry that reaches this receiver (for Telegram,
    /// with NOTIFY_TELEGRAM_API set to [`Receiver::base`]).
    pub fn url(&self) -> String {
        match self.service {
            Service::Discord => format!(
                "https://127.0.0.1:{}/api/webhooks/112233445566778899/{DISCORD_TOKEN}",
                self.port
            ),
            Service::Slack => format!(
                "https://127.0.0.1:{}/services/T0ABCDEFG/B0ABCDEFG/{SLACK_TOKEN}",
                self.port
            ),
            Service::Telegram => format!("tgram://{TELEGRAM_TOKEN}/{TELEGRAM_CHAT}"),
            Service::Json => format!("jsons://127.0.0.1:{}/hooks/{JSON_KEY}", self.port),
        }
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Answers the next requests so, then as [`Receiver::always`] says.
    pub fn then(&self, answers: &[Answer]) {
        self.state.script.lock().unwrap().extend(answers);
    }

    pub fn always(&self, answer: Answer) {
        *self.state.default.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Requests whose text contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.received()
            .iter()
            .filter(|received| received.text.contains(needle))
            .count()
    }

    /// Waits for a request whose text contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        let mut received = self.state.received.lock().unwrap();
        loop {
            if let Some(found) = received
                .iter()
                .find(|request| request.text.contains(needle))
            {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            received = self.state.arrived.wait_timeout(received, left).unwrap().0;
        }
    }

    /// Fails the test if any request broke the service's format.
    pub fn assert_well_formed(&self) {
        for received in self.received() {
            assert!(
                received.problems.is_empty(),
                "{:?} got a malformed request: {:?}\n{}",
                self.service,
                received.problems,
                received.body
            );
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(service: Service, tcp: TcpStream, config: Arc<rustls::ServerConfig>, state: &State) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut reader = BufReader::new(rustls::StreamOwned::new(connection, tcp));
    // Keep-alive: the client may send several requests on one connection.
    while let Some((path, headers, body)) = read_request(&mut reader) {
        let mut received = check(service, &path, &headers, &body, state.signing_secret);
        let answer = if received.problems.is_empty() {
            state
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(*state.default.lock().unwrap())
        } else {
            Answer::Refuse
        };
        received.at = Instant::now();
        state.received.lock().unwrap().push(received);
        state.arrived.notify_all();
        if answer == Answer::Hang {
            while !state.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        let response = respond(service, answer, &body);
        if reader.get_mut().write_all(&response).is_err() || reader.get_mut().flush().is_err() {
            return;
        }
    }
}

type Head = (String, HashMap<String, String>, Vec<u8>);

fn read_request(reader: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    headers.insert(":method".to_owned(), method);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, headers, body))
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Checks a request against the service's documented format.
fn check(
    service: Service,
    path: &str,
    headers: &HashMap<String, String>,
    raw: &[u8],
    secret: Option<&str>,
) -> Received {
    let mut problems = Vec::new();
    if headers.get(":method").map(String::as_str) != Some("POST") {
        problems.push(format!("method {:?}, not POST", headers.get(":method")));
    }
    if !headers
        .get("content-type")
        .is_some_and(|value| value.starts_with("application/json"))
    {
        problems.push("Content-Type is not application/json".into());
    }
    let body: Value = serde_json::from_slice(raw).unwrap_or_else(|_| {
        problems.push("body is not JSON".into());
        Value::Null
    });
    if !body.is_object() {
        problems.push("body is not a JSON object".into());
    }
    let string = |key: &str, max: usize, problems: &mut Vec<String>| -> String {
        match body[key].as_str() {
            Some(text) if !text.is_empty() && utf16_len(text) <= max => text.to_owned(),
            Some(text) => {
                problems.push(format!(
                    "{key} has {} characters (1..={max})",
                    utf16_len(text)
                ));
                text.to_owned()
            }
            None => {
                problems.push(format!("no string {key}"));
                String::new()
            }
        }
    };
    let text = match service {
        Service::Discord => {
            if path != format!("/api/webhooks/112233445566778899/{DISCORD_TOKEN}") {
                problems.push(format!("path {path}"));
            }
            if body["allowed_mentions"] != json!({ "parse": [] }) {
                problems.push("mentions are not disabled".into());
            }
            string("content", 2_000, &mut problems)
        }
        Service::Slack => {
            if path != format!("/services/T0ABCDEFG/B0ABCDEFG/{SLACK_TOKEN}") {
                problems.push(format!("path {path}"));
            }
            let text = string("text", 40_000, &mut problems);
            if text.contains(['<', '>']) {
                problems.push("text has an unescaped < or >".into());
            }
            text
        }
        Service::Telegram => {
            if path != format!("/bot{TELEGRAM_TOKEN}/sendMessage") {
                problems.push(format!("path {path}"));
            }
            if body["chat_id"] != json!(TELEGRAM_CHAT) {
                problems.push(format!("chat_id {}", body["chat_id"]));
            }
            string("text", 4_096, &mut problems)
        }
        Service::Json => {
            if path != format!("/hooks/{JSON_KEY}") {
                problems.push(format!("path {path}"));
            }
            if body["version"] != "1.0" {
                problems.push("version is not \"1.0\"".into());
            }
            if !["info", "success", "warning", "failure"]
                .contains(&body["type"].as_str().unwrap_or(""))
            {
                problems.push(format!("type {}", body["type"]));
            }
            if !body["event"]["kind"].is_string() {
                problems.push("no event.kind".into());
            }
            if let Some(secret) = secret {
                check_signature(headers, raw, secret, &mut problems);
            }
            format!(
                "{}\n{}",
                string("title", usize::MAX, &mut problems),
                string("message", usize::MAX, &mut problems)
            )
        }
    };
    Received {
        at: Instant::now(),
        path: path.to_owned(),
        headers: headers.clone(),
        body,
        text,
        problems,
    }
}

/// `X-Tradingbot-Signature: sha256=HEX(HMAC-SHA256(secret, "TIMESTAMP.BODY"))`,
/// with a timestamp within a minute of now.
fn check_signature(
    headers: &HashMap<String, String>,
    raw: &[u8],
    secret: &str,
    problems: &mut Vec<String>,
) {
    let (Some(timestamp), Some(signature)) = (
        headers.get("x-tradingbot-timestamp"),
        headers.get("x-tradingbot-signature"),
    ) else {
        problems.push("no signature headers".into());
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if timestamp
        .parse::<u64>()
        .map_or(true, |at| at.abs_diff(now) > 60)
    {
        problems.push(format!("timestamp {timestamp} is not now"));
    }
    let Some(hex) = signature.strip_prefix("sha256=") else {
        problems.push("signature does not start with sha256=".into());
        return;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|at| {
            hex.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        problems.push("signature is not hex".into());
        return;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(raw);
    if ring::hmac::verify(&key, &signed, &tag).is_err() {
        problems.push("signature does not verify".into());
    }
}

/// The service's answer, as it documents it.
fn respond(service: Service, answer: Answer, body: &[u8]) -> Vec<u8> {
    let (status, reason, headers, content): (u16, &str, Vec<(&str, String)>, String) =
        match (service, answer) {
            (Service::Discord, Answer::Ok) => (204, "No Content", Vec::new(), String::new()),
            (Service::Discord, Answer::RateLimited(seconds)) => (
                429,
                "Too Many Requests",
                vec![
                    ("Retry-After", (seconds.ceil() as u64).to_string()),
                    ("X-RateLimit-Limit", "5".into()),
                    ("X-RateLimit-Remaining", "0".into()),
                    ("X-RateLimit-Reset-After", seconds.to_string()),
                    ("X-RateLimit-Scope", "shared".into()),
                    ("Content-Type", "application/json".into()),
                ],
                json!({ "message": "You are being rate limited.", "retry_after": seconds, "global": false })
                    .to_string(),
            ),
            (Service::Discord, Answer::ServerError) => (
                500,
                "Internal Server Error",
                vec![("Content-Type", "application/json".into())],
                json!({ "message": "500: Internal Server Error", "code": 0 }).to_string(),
            ),
            (Service::Discord, _) => (
                404,
                "Not Found",
                vec![("Content-Type", "application/json".into())],
                json!({ "message": "Unknown Webhook", "code": 10015 }).to_string(),
            ),
            (Service::Slack, Answer::Ok) => (200, "OK", Vec::new(), "ok".into()),
            (Service::Slack, Answer::RateLimited(seconds)) => (
                429,
                "Too Many Requests",
                vec![("Retry-After", (seconds.ceil() as u64).to_string())],
                "rate_limited".into(),
            ),
            (Service::Slack, Answer::ServerError) => {
                (500, "Internal Server Error", Vec::new(), "internal_error".into())
            }
            (Service::Slack, _) => (404, "Not Found", Vec::new(), "no_service".into()),
            (Service::Telegram, Answer::Ok) => {
                let sent: Value = serde_json::from_slice(body).unwrap_or_default();
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
                (
                    200,
                    "OK",
                    vec![("Content-Type", "application/json".into())],
                    json!({ "ok": true, "result": {
                        "message_id": 42, "date": now,
                        "chat": { "id": TELEGRAM_CHAT, "type": "supergroup", "title": "alerts" },
                        "text": sent["text"],
                    }})
                    .to_string(),
                )
            }
            (Service::Telegram, Answer::RateLimited(seconds)) => {
                let seconds = seconds.ceil() as u64;
                (
                    429,
                    "Too Many Requests",
                    vec![("Content-Type", "application/json".into())],
                    json!({ "ok": false, "error_code": 429,
                        "description": format!("Too Many Requests: retry after {seconds}"),
                        "parameters": { "retry_after": seconds } })
                    .to_string(),
                )
            }
            (Service::Telegram, Answer::ServerError) => {
                (502, "Bad Gateway", Vec::new(), "<html>502 Bad Gateway</html>".into())
            }
            (Service::Telegram, _) => (
                400,
                "Bad Request",
                vec![("Content-Type", "application/json".into())],
                json!({ "ok": false, "error_code": 400, "description": "Bad Request: chat not found" })
                    .to_string(),
            ),
            (Service::Json, Answer::Ok) => (200, "OK", Vec::new(), "ok".into()),
            (Service::Json, Answer::RateLimited(seconds)) => (
                429,
                "Too Many Requests",
                vec![("Retry-After", (seconds.ceil() as u64).to_string())],
                String::new(),
            ),
            (Service::Json, Answer::ServerError) => {
                (503, "Service Unavailable", Vec::new(), "busy".into())
            }
            (Service::Json, _) => (400, "Bad Request", Vec::new(), "refused".into()),
        };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n",
        content.len()
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&content);
    response.into_bytes()
}
