//! Issue 12's figures, taken from outside the process like the harness's:
//! the webhook's POST → 202 (durable) latency on the main port, and the
//! event stream under load. Prints markdown rows for BENCHMARKS.md.
//!
//!     cargo bench --bench oneport                  # both sections
//!     ONLY=webhook cargo bench --bench oneport     # or ONLY=stream
//!
//! RUNS (default 3) repeats each stream ingest. CLIENT_NICE (default 19)
//! is the niceness of the 50 stream clients' threads: on this 2-core
//! machine they stand in for dashboards that would run elsewhere, so by
//! default they take only the CPU the daemon leaves. Needs nothing
//! installed: the WebSocket clients are tungstenite's.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

// For reading the journal's segments and HTTP responses as the tests do; the `integration`
// test target compiles all of the kit with the dead-code lint on.
#[allow(dead_code)]
#[path = "../tests/kit/mod.rs"]
mod kit;

use kit::http::read_response;

const BIN: &str = env!("CARGO_BIN_EXE_tradingbot");
const WEBHOOK_TOKEN: &str = "bench-webhook-token";
const API_TOKEN: &str = "bench-api-token";

fn main() {
    let only = std::env::var("ONLY").ok();
    let wanted = |section: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|name| name == section))
    };
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(3);
    println!("| figure | p50 | p99 | max | other |");
    println!("|---|---|---|---|---|");
    if wanted("webhook") {
        webhook();
    }
    if wanted("stream") {
        stream(runs);
    }
}

// ---------------------------------------------------------------- webhook

/// TradingView's alert, as the shipped template fills in; `n` makes each
/// one a new signal (its time), so every request is a fill.
fn alert(n: u64) -> String {
    let template = include_str!("../samples/tradingview-alert.json");
    // Unique by `n` ms.
    let ts = humantime::format_rfc3339_millis(an_hour_ago() + Duration::from_millis(n)).to_string();
    template
        .replace("{{ticker}}", "BTCUSDT")
        .replace(
            "{{strategy.order.action}}",
            if n % 2 == 0 { "buy" } else { "sell" },
        )
        .replace("{{strategy.order.contracts}}", "0.01")
        .replace("{{strategy.order.price}}", "64000.5")
        .replace("{{timenow}}", &ts)
}

fn webhook() {
    let work = TempDir::new("webhook");
    let busy_feed = work.path().join("busy.jsonl");
    std::fs::write(&busy_feed, "").unwrap();
    let source = format!("webhook;file:{}", busy_feed.display());
    let daemon = Daemon::spawn(
        &work,
        &[
            ("SIGNAL_SOURCE", source.as_str()),
            ("WEBHOOK_TOKEN", WEBHOOK_TOKEN),
            ("FSYNC", "batch"),
            ("FILE_POLL_INTERVAL", "20ms"),
        ],
    );
    let counter = AtomicU64::new(0);
    let next = || counter.fetch_add(1, Ordering::Relaxed);

    let idle = steady_posts(daemon.addr, 100, Duration::from_secs(20), &next);
    row(
        "POST → 202 (durable), steady 100 req/s, idle loop",
        &idle,
        "",
    );

    // The loop kept busy by a file feed of 20,000 signals/s.
    let feeding = Arc::new(AtomicBool::new(true));
    let feeder = feed_steadily(&busy_feed, 20_000, Arc::clone(&feeding));
    let busy = steady_posts(daemon.addr, 100, Duration::from_secs(20), &next);
    row(
        "POST → 202 (durable), steady 100 req/s, loop busy (file feed 20,000 signals/s)",
        &busy,
        "",
    );
    let (saturated, rate) = saturating_posts(daemon.addr, 16, Duration::from_secs(5), &next);
    row(
        "POST → 202 (durable), saturation (16 keep-alive clients), loop busy",
        &saturated,
        &format!("{rate:.0} requests/s"),
    );
    feeding.store(false, Ordering::Relaxed);
    let fed = feeder.join().unwrap();
    let decided = wait_decided(daemon.addr, fed + counter.load(Ordering::Relaxed));
    eprintln!(
        "webhook: {fed} file signals and {} webhook signals decided ({decided})",
        counter.load(Ordering::Relaxed)
    );

    // Worst case: the loop saturated by a 4M-signal file being ingested.
    let big = work.path().join("big.jsonl");
    write_feed(&big, 4_000_000, "big");
    let work2 = TempDir::new("webhook-saturated");
    let source = format!("webhook;file:{}", big.display());
    let saturated_loop = Daemon::spawn(
        &work2,
        &[
            ("SIGNAL_SOURCE", source.as_str()),
            ("WEBHOOK_TOKEN", WEBHOOK_TOKEN),
            ("FSYNC", "batch"),
        ],
    );
    let during = steady_posts_while(saturated_loop.addr, 100, &next, || {
        decided_so_far(saturated_loop.addr) < 3_900_000
    });
    row(
        "POST → 202 (durable), steady 100 req/s, loop saturated (4M-signal file ingest)",
        &during,
        "",
    );
}

/// Appends `rate` signals a second to `feed`, 1/100 of them every 10 ms,
/// until `feeding` is cleared; returns how many it wrote.
fn feed_steadily(feed: &Path, rate: u64, feeding: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let feed = feed.to_owned();
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&feed)
            .unwrap();
        let started = Instant::now();
        let mut written = 0u64;
        while feeding.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            let mut chunk = String::new();
            while written < due {
                chunk += &line(&format!("busy-{written}"), written);
                written += 1;
            }
            file.write_all(chunk.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        written
    })
}

/// POSTs at a steady `rate` for `length`, each on a fresh connection (as
/// TradingView connects), timed from when it was due (a late send counts).
fn steady_posts(
    addr: SocketAddr,
    rate: u64,
    length: Duration,
    next: &(dyn Fn() -> u64 + Sync),
) -> Vec<f64> {
    let until = Instant::now() + length;
    steady_posts_while(addr, rate, next, || Instant::now() < until)
}

fn steady_posts_while(
    addr: SocketAddr,
    rate: u64,
    next: &(dyn Fn() -> u64 + Sync),
    mut going: impl FnMut() -> bool,
) -> Vec<f64> {
    let (jobs, queue) = mpsc::channel::<(Instant, String)>();
    let queue = Arc::new(Mutex::new(queue));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    // Enough senders that a slow answer never delays the next request.
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let latencies = Arc::clone(&latencies);
            std::thread::spawn(move || loop {
                let job = queue.lock().unwrap().recv();
                let Ok((due, body)) = job else { break };
                let code = post(addr, &body);
                assert_eq!(code, 202);
                latencies
                    .lock()
                    .unwrap()
                    .push(due.elapsed().as_secs_f64() * 1000.0);
            })
        })
        .collect();
    let started = Instant::now();
    let mut sent = 0u64;
    while going() {
        let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        jobs.send((due, alert(next()))).unwrap();
        sent += 1;
    }
    drop(jobs);
    for worker in workers {
        worker.join().unwrap();
    }
    let mut latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// `clients` keep-alive connections posting as fast as they are answered.
fn saturating_posts(
    addr: SocketAddr,
    clients: usize,
    length: Duration,
    next: &(dyn Fn() -> u64 + Sync),
) -> (Vec<f64>, f64) {
    let until = Instant::now() + length;
    let mut latencies = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || {
                    let stream = TcpStream::connect(addr).unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut reader = BufReader::new(stream);
                    let mut mine = Vec::new();
                    while Instant::now() < until {
                        let body = alert(next());
                        let started = Instant::now();
                        let request = format!(
                            "POST /signals/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        reader.get_mut().write_all(request.as_bytes()).unwrap();
                        assert_eq!(read_response(&mut reader), 202);
                        mine.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    mine
                })
            })
            .collect();
        for handle in handles {
            latencies.extend(handle.join().unwrap());
        }
    });
    let rate = latencies.len() as f64 / length.as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    (latencies, rate)
}

fn post(addr: SocketAddr, body: &str) -> u16 {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream);
    let request = format!(
        "POST /signals/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    reader.get_mut().write_all(request.as_bytes()).unwrap();
    read_response(&mut reader)
}

// ----------------------------------------------------------------- stream

const STREAM_SIGNALS: usize = 1_000_000;
const STREAM_CLIENTS: usize = 50;

fn stream(runs: usize) {
    let work = TempDir::new("stream");
    let million = work.path().join("million.jsonl");
    write_feed(&million, STREAM_SIGNALS, "m");

    // /health when nothing happens, the reference for the rest.
    let quiet = TempDir::new("quiet");
    let idle_daemon = Daemon::spawn(&quiet, &[("API_TOKEN", API_TOKEN)]);
    let idle = steady_health(idle_daemon.addr, 1000, || true, Duration::from_secs(3));
    row("/health at 1,000 req/s, idle, stream on", &idle, "");
    drop(idle_daemon);

    let mut alone = Vec::new();
    let mut with_clients = Vec::new();
    for run in 0..runs {
        alone.push(ingest(&million, 0, run));
        with_clients.push(ingest(&million, STREAM_CLIENTS, run));
    }
    let with_label = format!(
        "50 stream clients (their threads at nice {})",
        client_nice()
    );
    for (label, results) in [
        ("no stream client", &alone),
        (with_label.as_str(), &with_clients),
    ] {
        let mut rates: Vec<f64> = results.iter().map(|result| result.rate).collect();
        rates.sort_by(f64::total_cmp);
        let mut health: Vec<f64> = results
            .iter()
            .flat_map(|result| result.health.clone())
            .collect();
        health.sort_by(f64::total_cmp);
        let delivered: Vec<String> = results
            .iter()
            .filter_map(|result| {
                result
                    .delivered
                    .map(|took| format!("{:.1} s", took.as_secs_f64()))
            })
            .collect();
        row(
            &format!(
                "1M-signal file ingest (FSYNC=batch), {label}: /health at 1,000 req/s during it"
            ),
            &health,
            &format!(
                "ingest {} signals/s (median of {}; runs {}){}",
                fmt(rates[rates.len() / 2]),
                rates.len(),
                rates
                    .iter()
                    .map(|rate| fmt(*rate))
                    .collect::<Vec<_>>()
                    .join(", "),
                if delivered.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; every client had every fill after {}",
                        delivered.join(", ")
                    )
                }
            ),
        );
    }
}

struct Ingest {
    rate: f64,
    health: Vec<f64>,
    /// With clients: from the file appearing to the last client's last fill.
    delivered: Option<Duration>,
}

/// Ingests `feed` (renamed into place once everything is connected) with
/// `clients` WebSocket clients reading every fill (and one that reads
/// nothing, to be dropped), and `/health` asked 1,000 times a second.
fn ingest(feed: &Path, clients: usize, run: usize) -> Ingest {
    let work = TempDir::new(&format!("ingest-{clients}-{run}"));
    let watched = work.path().join("feed.jsonl");
    let source = format!("file:{}", watched.display());
    let daemon = Daemon::spawn(
        &work,
        &[
            ("SIGNAL_SOURCE", source.as_str()),
            ("FSYNC", "batch"),
            ("API_TOKEN", API_TOKEN),
            ("WS_SEND_TIMEOUT", "2s"),
            ("FILE_POLL_INTERVAL", "10ms"),
        ],
    );
    let addr = daemon.addr;
    let readers: Vec<_> = (0..clients).map(|_| StreamReader::start(addr)).collect();
    let stalled = (clients > 0).then(|| {
        let stream = TcpStream::connect(addr).unwrap();
        tungstenite::client(
            format!("ws://{addr}/ws?token={API_TOKEN}&types=fill"),
            stream,
        )
        .unwrap()
        .0
    });
    while clients > 0 && stream_clients(addr) < clients as u64 + 1 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::copy(feed, work.path().join("staged.jsonl")).unwrap();
    let started = Instant::now();
    std::fs::rename(work.path().join("staged.jsonl"), &watched).unwrap();
    let mut finished = None;
    let health = steady_health(
        addr,
        1000,
        || {
            let done = decided_so_far(addr) >= STREAM_SIGNALS as u64;
            if done && finished.is_none() {
                finished = Some(started.elapsed());
            }
            !done
        },
        Duration::from_secs(600),
    );
    wait_decided(addr, STREAM_SIGNALS as u64);
    let took = finished.unwrap_or_else(|| started.elapsed());
    let journal = journal_fills(&work.path().join("state"));
    let mut delivered = None;
    if clients > 0 {
        // Every reader told its count first: each then ends as soon as it
        // has it, not in turn.
        for reader in &readers {
            reader.expect(journal.len());
        }
        for reader in readers {
            let got = reader.finish();
            assert_eq!(got.count, journal.len(), "a client missed fills");
            assert_eq!(
                got.sum,
                journal.iter().sum::<u64>(),
                "a client's fills differ"
            );
            assert!(got.in_order, "a client got fills out of order");
            delivered = delivered.max(Some(got.at.duration_since(started)));
        }
        let dropped = metric(
            addr,
            "tradingbot_stream_clients_dropped_total{reason=\"slow\"}",
        );
        eprintln!("run {run}: the client that read nothing: dropped {dropped} (slow)");
        drop(stalled);
    }
    let mut health = health;
    health.sort_by(f64::total_cmp);
    eprintln!(
        "run {run}: {clients} clients, ingest {:.3} s, /health p99 {:.3} ms",
        took.as_secs_f64(),
        percentile(&health, 0.99)
    );
    Ingest {
        rate: STREAM_SIGNALS as f64 / took.as_secs_f64(),
        health,
        delivered,
    }
}

/// A WebSocket client on its own thread, counting fills: how many, their
/// seqs' sum, whether in order, and when the last came.
struct StreamReader {
    handle: std::thread::JoinHandle<Received>,
    expected: Arc<AtomicU64>,
}

struct Received {
    count: usize,
    sum: u64,
    in_order: bool,
    at: Instant,
}

impl StreamReader {
    fn start(addr: SocketAddr) -> StreamReader {
        let expected = Arc::new(AtomicU64::new(u64::MAX));
        let wanted = Arc::clone(&expected);
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let (mut socket, _) = tungstenite::client(
            format!("ws://{addr}/ws?token={API_TOKEN}&types=fill&after=0"),
            stream,
        )
        .unwrap();
        // Short, so a reader that has everything sees the count it is told.
        socket
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let nice = client_nice();
        let handle = std::thread::spawn(move || {
            let thread = rustix::thread::gettid();
            rustix::process::setpriority_process(Some(thread), nice).unwrap();
            let mut received = Received {
                count: 0,
                sum: 0,
                in_order: true,
                at: Instant::now(),
            };
            let mut last = 0;
            let mut quiet_since = Instant::now();
            while (received.count as u64) < wanted.load(Ordering::Relaxed) {
                let message = match socket.read() {
                    Ok(tungstenite::Message::Text(text)) => text,
                    Ok(_) => continue,
                    Err(tungstenite::Error::Io(error))
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        assert!(
                            quiet_since.elapsed() < Duration::from_secs(120),
                            "stream client: nothing for 2 minutes"
                        );
                        continue;
                    }
                    Err(error) => panic!("stream client: {error}"),
                };
                quiet_since = Instant::now();
                let seq = seq_of(&message);
                received.in_order &= seq > last;
                last = seq;
                received.count += 1;
                received.sum += seq;
                received.at = Instant::now();
            }
            received
        });
        StreamReader { handle, expected }
    }

    fn expect(&self, count: usize) {
        self.expected.store(count as u64, Ordering::Relaxed);
    }

    fn finish(self) -> Received {
        self.handle.join().unwrap()
    }
}

fn client_nice() -> i32 {
    std::env::var("CLIENT_NICE")
        .ok()
        .and_then(|nice| nice.parse().ok())
        .unwrap_or(19)
}

/// `"seq":N` from a message, without parsing the rest (the reader's CPU
/// is the machine's too).
fn seq_of(message: &str) -> u64 {
    let at = message.find("\"seq\":").expect("a seq") + 6;
    message[at..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0, |seq, digit| seq * 10 + u64::from(digit - b'0'))
}

/// The seqs of the fills in the journal.
fn journal_fills(state: &Path) -> Vec<u64> {
    kit::journal::journal_text(state)
        .lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with("{\"t\":\"fill\""))
        .map(|(index, _)| index as u64 + 1)
        .collect()
}

// ----------------------------------------------------------------- common

/// GET /health at a steady `rate`, each on a fresh connection, while
/// `going` (or for at most `length`): the latencies in ms.
fn steady_health(
    addr: SocketAddr,
    rate: u64,
    mut going: impl FnMut() -> bool,
    length: Duration,
) -> Vec<f64> {
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut asked = 0u64;
    while going() && started.elapsed() < length {
        let due = started + Duration::from_secs_f64(asked as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now();
        let (code, _) = get(addr, "/health");
        assert_eq!(code, 200);
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        asked += 1;
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (code, body)
}

fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (_, text) = get(addr, "/metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn decided_so_far(addr: SocketAddr) -> u64 {
    let (_, text) = get(addr, "/metrics");
    text.lines()
        .filter(|line| line.starts_with("tradingbot_signals_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn stream_clients(addr: SocketAddr) -> u64 {
    metric(addr, "tradingbot_stream_clients ") as u64
}

fn wait_decided(addr: SocketAddr, count: u64) -> u64 {
    let started = Instant::now();
    loop {
        let decided = decided_so_far(addr);
        if decided >= count {
            return decided;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "never decided {count}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An hour before the bench started: every signal's `ts` is inside the
/// exactly-once window (and not in the future), so each is a fill, not
/// a `too_old` reject.
fn an_hour_ago() -> std::time::SystemTime {
    static BASE: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| std::time::SystemTime::now() - Duration::from_secs(3600))
}

fn line(id: &str, index: u64) -> String {
    let side = if index % 2 == 0 { "buy" } else { "sell" };
    let ts = an_hour_ago()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "{{\"id\":\"{id}\",\"ts\":{ts},\"symbol\":\"SYM{}\",\"side\":\"{side}\",\"qty\":1,\"price\":{}.5}}\n",
        index % 10,
        100 + index % 7
    )
}

fn write_feed(path: &Path, count: usize, prefix: &str) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for index in 0..count as u64 {
        out.write_all(line(&format!("{prefix}-{index}"), index).as_bytes())
            .unwrap();
    }
    out.flush().unwrap();
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn row(label: &str, sorted: &[f64], other: &str) {
    println!(
        "| {label} | {:.3} | {:.3} | {:.3} | {} samples{}{other} |",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN),
        sorted.len(),
        if other.is_empty() { "" } else { "; " },
    );
}

fn fmt(rate: f64) -> String {
    let whole = rate.round() as u64;
    let text = whole.to_string();
    let mut out = String::new();
    for (index, digit) in text.chars().enumerate() {
        if index > 0 && (text.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    fn spawn(work: &TempDir, env: &[(&str, &str)]) -> Daemon {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(BIN)
            .env_clear()
            .env("PORT", port.to_string())
            .env("HEALTH_BIND", "127.0.0.1")
            .env("STATE_DIR", work.path().join("state"))
            .env("HEALTH_FILE", work.path().join("healthy"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let daemon = Daemon { child, addr };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() || get(addr, "/readyz").0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(30), "never ready");
            std::thread::sleep(Duration::from_millis(5));
        }
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tb-oneport-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
