//! HTTP/1.1 spoken by hand over real TCP, as probes and clients speak it,
//! and the daemon's HTTP surface: health, metrics, status codes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tradingbot::http::route::{Auth, Declared, Methods, Path};

use super::daemon::Daemon;
use super::wait::{wait_until, SOON};

/// A request with `Connection: close` on a fresh connection: (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    answer(addr, method, path, headers, None).map(|answer| (answer.code, answer.body))
}

/// What a server answered.
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    /// Names lowercased; a repeated header's last value.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// Reads one response off a kept-alive connection: the status line, the
/// headers, and the `Content-Length` body. The code is 0 if the status
/// line is not HTTP.
pub fn read_answer(reader: &mut BufReader<TcpStream>) -> std::io::Result<Answer> {
    let (code, headers) = read_head(reader)?;
    let length = headers
        .get("content-length")
        .and_then(|length| length.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Answer {
        code,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn read_head(
    reader: &mut BufReader<TcpStream>,
) -> std::io::Result<(u16, BTreeMap<String, String>)> {
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let code = status
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header == "\r\n" || header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    Ok((code, headers))
}

/// [`read_answer`]'s status code, for a client that needs nothing else.
pub fn read_response(reader: &mut BufReader<TcpStream>) -> u16 {
    read_answer(reader).unwrap().code
}

/// A request with a body and `Connection: close`: (status, body).
pub fn http_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    answer(addr, method, path, headers, Some(body)).map(|answer| (answer.code, answer.body))
}

/// One request on a fresh connection with `Connection: close`;
/// `Content-Length` only with a body.
pub fn answer(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Answer> {
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
    let mut reader = BufReader::new(stream);
    let (code, headers) = read_head(&mut reader)?;
    let mut body = String::new();
    reader.read_to_string(&mut body)?;
    if code == 0 {
        return Err(std::io::Error::other(format!("not HTTP: {body:?}")));
    }
    Ok(Answer {
        code,
        headers,
        body,
    })
}

/// For every route of a port: a path beside it is 404 whatever the
/// method, a method it does not take is 405 with its `Allow`, `HEAD` is
/// taken wherever `GET` is (without a body), and a route with no auth asks
/// for no token while one with auth does.
pub fn walk_routes(addr: SocketAddr, routes: &[Declared]) {
    let request = |method: &str, path: &str| {
        answer(addr, method, path, &[], Some(b""))
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    };
    for route in routes {
        let (path, beside) = match route.path {
            Path::Is(path) => (path.to_owned(), [format!("{path}x"), format!("{path}/x")]),
            Path::Below { prefix, .. } => (
                format!("{prefix}x"),
                [prefix.to_owned(), format!("{prefix}x/y")],
            ),
        };
        let undeclared = beside
            .iter()
            .filter(|beside| !routes.iter().any(|other| other.path.matches(beside)));
        for beside in undeclared {
            for method in ["GET", "HEAD", "POST", "PUT", "DELETE"] {
                assert_eq!(request(method, beside).code, 404, "{method} {beside}");
            }
        }
        let refused: &[&str] = match route.methods {
            Methods::Get => &["POST", "PUT", "DELETE", "PATCH"],
            Methods::Post => &["GET", "HEAD", "PUT", "DELETE"],
        };
        for method in refused {
            let answer = request(method, &path);
            assert_eq!(answer.code, 405, "{method} {path}");
            assert_eq!(
                answer.headers.get("allow").map(String::as_str),
                Some(route.methods.allowed()),
                "{method} {path}"
            );
        }
        let method = match route.methods {
            Methods::Get => "HEAD",
            Methods::Post => "POST",
        };
        let answer = request(method, &path);
        match route.auth {
            Auth::None => assert!(
                matches!(answer.code, 200 | 503),
                "{method} {path}: {answer:?}"
            ),
            Auth::Read | Auth::Write => {
                assert_eq!(answer.code, 401, "{method} {path}: {answer:?}")
            }
        }
        if method == "HEAD" {
            assert!(
                answer.body.is_empty(),
                "HEAD {path} sent a body: {answer:?}"
            );
        }
    }
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

/// The value of one series (`name` or `name{labels}`, exactly) in
/// Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// The daemon's health port, spoken to as a probe and an operator would.
impl Daemon {
    /// One request on a fresh connection: (status code, body).
    pub fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        http(self.addr(), method, path, &[])
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

    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path)
            .unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// A GET of the read API with `token` as a bearer: the status and the
    /// body as JSON (a body that is not JSON as a JSON string).
    pub fn read_api(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let bearer = format!("Bearer {token}");
        let (code, body) = self
            .request_with("GET", path, &[("Authorization", &bearer)])
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
        (code, json)
    }

    /// `/health` parsed as JSON.
    pub fn health(&self) -> (u16, serde_json::Value) {
        let (code, body) = self.get("/health");
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")),
        )
    }

    /// `/metrics` in Prometheus text.
    pub fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "/metrics: {body}");
        body
    }

    /// Waits until `path` answers `code`.
    pub fn wait_status(&self, path: &str, code: u16) -> bool {
        wait_until(SOON, || {
            self.request("GET", path).is_ok_and(|(got, _)| got == code)
        })
    }

    /// `/health`'s heartbeat count.
    pub fn heartbeats(&self) -> u64 {
        let (_, health) = self.health();
        health["heartbeats"]
            .as_u64()
            .unwrap_or_else(|| panic!("no heartbeats in {health}"))
    }

    /// Waits for `more` heartbeats past the present count: the loop went
    /// round that many more times, each a chance for whatever is under test.
    pub fn wait_heartbeats(&self, more: u64) {
        let from = self.heartbeats();
        assert!(
            wait_until(SOON, || self.heartbeats() >= from + more),
            "fewer than {more} heartbeats after {from}; log:\n{}",
            self.log.dump()
        );
    }

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
            self.log.dump()
        );
        last
    }

    /// Signals decided so far (every source, every result), from
    /// `/metrics`; 0 until the port answers.
    pub fn decided(&self) -> f64 {
        let Ok((_, text)) = self.request("GET", "/metrics") else {
            return 0.0;
        };
        text.lines()
            .filter(|line| line.starts_with("tradingbot_signals_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until `count` signals are decided.
    pub fn wait_decided(&self, count: f64) {
        assert!(
            wait_until(SOON, || self.decided() >= count),
            "{} of {count} decided; log:\n{}",
            self.decided(),
            self.log.all().join("\n")
        );
    }
}
