//! A fake of a cursor-paged message list, shaped like Whop's (a channel's
//! messages as its API lists them), over HTTP/1.1 on loopback:
//!
//! `GET /api/v1/messages[?after=C]` with `Authorization: Bearer TOKEN`
//! answers
//! `{"data":[{"id":"msg_N","content":"BUY 0.5 BTC-USD @ 64000","message_type":"regular","created_at":"RFC 3339"}],"page_info":{"end_cursor":"N","has_next_page":false}}`:
//! the messages after cursor `C` (from the first without one), oldest
//! first (`direction=asc`), at most `page_size`; `end_cursor` is the
//! number of the last message listed, or `C` again when none is after it
//! (null when there is neither). Cursors are message numbers: digits,
//! never escaped.
//!
//! Every 200 carries an `ETag`; a request whose `If-None-Match` is the
//! `ETag` its answer would have gets `304 Not Modified`. Without the
//! token: 401. A test scripts the next answers: 429 or 503 with a
//! `Retry-After`, or a hang (the request is read and never answered).
//! Each answer closes its connection.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::listener::{Listener, Stream};
use super::watched::Watched;

/// The bearer token the fake wants.
pub const TOKEN: &str = "whopfaketokenfragment-31";

/// The path of the list.
pub const PATH: &str = "/api/v1/messages";

/// A scripted answer, instead of the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 429 Too Many Requests with this `Retry-After` (seconds or a date).
    TooMany(String),
    /// 503 Service Unavailable with this `Retry-After`.
    Unavailable(String),
    /// Reads the request and never answers.
    Hang,
}

/// One request, as the fake took it.
#[derive(Clone, Debug)]
pub struct Asked {
    pub at: Instant,
    pub cursor: Option<String>,
    pub if_none_match: Option<String>,
    pub authorized: bool,
    /// What it was answered; 0 for a hang.
    pub status: u16,
}

/// The list, and what a test scripted.
#[derive(Default)]
struct List {
    /// Message `N` at `N - 1`.
    messages: Vec<Posted>,
    script: VecDeque<Answer>,
}

struct Posted {
    content: String,
    message_type: String,
    at: SystemTime,
}

struct Shared {
    list: Mutex<List>,
    asked: Watched<Vec<Asked>>,
    page_size: usize,
}

impl Shared {
    fn list(&self) -> MutexGuard<'_, List> {
        self.list.lock().unwrap()
    }
}

pub struct Paged {
    listener: Listener,
    shared: Arc<Shared>,
}

impl Paged {
    pub fn start(page_size: usize) -> Self {
        let shared = Arc::new(Shared {
            list: Mutex::default(),
            asked: Watched::default(),
            page_size,
        });
        let serving = Arc::clone(&shared);
        let listener = Listener::start(None, move |stream, stopped| {
            serve(&serving, stream, stopped)
        });
        Paged { listener, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{PATH}", self.listener.addr.port())
    }

    /// Adds a message (`regular`, a member's post) to the list; returns
    /// its id (`msg_N`).
    pub fn post(&self, content: &str) -> String {
        self.post_as("regular", content)
    }

    /// Adds a message of `message_type` (`system`: a join, a pin).
    pub fn post_as(&self, message_type: &str, content: &str) -> String {
        let mut list = self.shared.list();
        list.messages.push(Posted {
            content: content.to_owned(),
            message_type: message_type.to_owned(),
            at: SystemTime::now(),
        });
        format!("msg_{}", list.messages.len())
    }

    /// Answers the next request so (then the ones after in order).
    pub fn then(&self, answer: Answer) {
        self.shared.list().script.push_back(answer);
    }

    pub fn asked(&self) -> Vec<Asked> {
        self.shared.asked.get()
    }

    /// Waits until `until` holds of the requests so far, and returns them;
    /// panics, naming `what`, when it does not soon.
    pub fn wait(&self, what: &str, until: impl Fn(&Vec<Asked>) -> bool) -> Vec<Asked> {
        self.shared.asked.wait(what, until)
    }
}

fn serve(shared: &Shared, stream: Stream, stopped: &AtomicBool) {
    stream.set_read_timeout(Duration::from_secs(5));
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let mut stream = reader.into_inner();
    let (answer, status) = answer(shared, &request);
    shared.asked.change(|asked| {
        asked.push(Asked {
            at: Instant::now(),
            cursor: request.cursor,
            if_none_match: request.if_none_match,
            authorized: request.authorized,
            status,
        })
    });
    match answer {
        Some(answer) => {
            let _ = stream.write_all(&answer);
            let _ = stream.flush();
        }
        None => {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

struct Request {
    path: String,
    cursor: Option<String>,
    if_none_match: Option<String>,
    authorized: bool,
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let cursor = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("after="))
        .map(str::to_owned);
    let mut request = Request {
        path: path.to_owned(),
        cursor,
        if_none_match: None,
        authorized: false,
    };
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            return Some(request);
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => request.authorized = value == format!("Bearer {TOKEN}"),
            "if-none-match" => request.if_none_match = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// The bytes to answer `request` with (none: hang), and their status.
fn answer(shared: &Shared, request: &Request) -> (Option<Vec<u8>>, u16) {
    if request.path != PATH {
        return (Some(response(404, &[], "")), 404);
    }
    if !request.authorized {
        return (Some(response(401, &[], "")), 401);
    }
    let mut list = shared.list();
    match list.script.pop_front() {
        Some(Answer::TooMany(after)) => {
            return (Some(response(429, &[("Retry-After", &after)], "")), 429)
        }
        Some(Answer::Unavailable(after)) => {
            return (Some(response(503, &[("Retry-After", &after)], "")), 503)
        }
        Some(Answer::Hang) => return (None, 0),
        None => {}
    }
    let (page, etag) = page(&list, shared.page_size, request.cursor.as_deref());
    if request.if_none_match.as_deref() == Some(etag.as_str()) {
        return (Some(response(304, &[("ETag", &etag)], "")), 304);
    }
    let body = page.to_string();
    (Some(response(200, &[("ETag", &etag)], &body)), 200)
}

/// The page after `cursor`, and its `ETag`.
fn page(list: &List, page_size: usize, cursor: Option<&str>) -> (Value, String) {
    let after: usize = cursor.and_then(|cursor| cursor.parse().ok()).unwrap_or(0);
    let listed: Vec<Value> = list
        .messages
        .iter()
        .enumerate()
        .skip(after)
        .take(page_size)
        .map(|(index, posted)| {
            json!({
                "id": format!("msg_{}", index + 1),
                "content": posted.content,
                "message_type": posted.message_type,
                "created_at": humantime::format_rfc3339_millis(posted.at).to_string(),
            })
        })
        .collect();
    let next = match listed.len() {
        0 => cursor.map(str::to_owned),
        count => Some((after + count).to_string()),
    };
    let etag = format!("\"{}-{}\"", cursor.unwrap_or("first"), list.messages.len());
    let has_next_page = after + listed.len() < list.messages.len();
    let page_info = json!({"end_cursor": next, "has_next_page": has_next_page});
    (json!({"data": listed, "page_info": page_info}), etag)
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Service Unavailable",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if status != 304 {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}
