//! Process-level benchmarks, side by side with the usual Python peers
//! (../shared/peers). Every figure is taken from outside the process: spawn,
//! connect, /proc. Prints a markdown table.
//!
//!     cargo bench --features failpoints --bench harness
//!
//! RUNS (default 10) sets the repetitions of the start-up and ingest figures; PEERS
//! (default ../shared/peers) where the Python peers live; ONLY (a comma list
//! of startup, memory, load, isolation, stall, stop, ingest, idle, alerts,
//! lifetime, old, feeds) runs only those sections. `lifetime` and `old` are
//! the ledger's (benches/harness/ledger.rs; OLD_BIN, LIFETIMES, WINDOWS);
//! `feeds` is benches/harness/feeds.rs (FEED_MESSAGES).
//!
//! Our daemon is started by the test kit's builder (tests/kit), as the
//! tests start it: `PORT=0`, the port read back from its log, killed with
//! the harness. Unlike the tests, at the daemon's own default intervals.

use std::ffi::OsStr;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The harness uses part of the kit (the builder, the notify socket, HTTP and
// /proc helpers); the `integration` test target compiles all of it with the
// dead-code lint on.
#[allow(dead_code)]
#[path = "../tests/kit/mod.rs"]
mod kit;

use kit::daemon::{Builder, Daemon, BIN};
use kit::http::{http, metric, read_response};
use kit::notify::{is_ping, is_ready, NotifySocket};
use kit::port::Reserved;
use kit::process::{proc_status, SIGTERM};

#[path = "harness/feeds.rs"]
mod feeds;
#[path = "harness/ledger.rs"]
mod ledger;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // must not start a run of many minutes.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("the harness runs under `cargo bench --bench harness`; nothing to test");
        return;
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(10);
    let peers = PathBuf::from(std::env::var("PEERS").unwrap_or_else(|_| "../shared/peers".into()));
    let python = python_with("aiohttp");
    let python = python.as_deref();
    let work = tempfile::Builder::new()
        .prefix("tb-bench-")
        .tempdir()
        .unwrap();
    let mut table = Table::default();
    let only = std::env::var("ONLY").ok();
    let wanted = |section: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|name| name == section))
    };
    let million = work.path().join("million.jsonl");
    if wanted("memory") || wanted("stop") || wanted("alerts") {
        write_feed(&million, 1_000_000);
    }

    if wanted("startup") {
        startup(&mut table, runs, python, &peers);
    }
    if wanted("memory") {
        flush_disk();
        memory(&mut table, python, &peers, &million);
    }
    if wanted("load") {
        load(&mut table, python, &peers);
    }
    if wanted("isolation") {
        flush_disk();
        let busy_feed = work.path().join("busy.jsonl");
        write_feed(&busy_feed, BUSY_FEED_SIGNALS);
        isolation(&mut table, &busy_feed);
    }
    if wanted("stall") {
        let stalls: Vec<(f64, f64)> = (0..runs.min(5)).map(|_| stall_detection()).collect();
        table.row(
            "stall start → /health 503 (STALL_TIMEOUT 1s, tick 100ms)",
            "ms",
            stalls.iter().map(|stall| stall.0).collect(),
            None,
            Better::Lower,
        );
        table.row(
            "stall start → last WATCHDOG=1",
            "ms",
            stalls.iter().map(|stall| stall.1).collect(),
            None,
            Better::Lower,
        );
    }
    if wanted("stop") {
        flush_disk();
        table.row(
            "SIGTERM → exit 0, idle",
            "ms",
            repeat(runs, stop_latency),
            None,
            Better::Lower,
        );
        table.row(
            "SIGTERM → exit 0, backlog in hand (1M-signal file mid-ingest)",
            "ms",
            repeat(runs.min(5), || stop_with_backlog(&million)),
            None,
            Better::Lower,
        );
    }
    if wanted("ingest") {
        flush_disk();
        ingest(&mut table, runs, python, &peers, work.path());
    }
    if wanted("alerts") {
        flush_disk();
        alerts(&mut table, runs, &million);
    }
    if wanted("lifetime") {
        ledger::lifetime(&mut table, work.path());
    }
    if wanted("old") {
        ledger::beside_the_old_release(&mut table, runs, work.path());
    }
    if wanted("feeds") {
        let python = python_with("websockets");
        feeds::feeds(&mut table, runs, python.as_deref(), &peers, work.path());
    }
    if wanted("idle") {
        let (cpu, wakeups) = idle_cost(Duration::from_secs(30));
        table.row(
            "idle CPU time over 30 s",
            "ms",
            vec![cpu],
            None,
            Better::Lower,
        );
        table.row(
            "idle context switches over 30 s (all threads)",
            "",
            vec![wakeups],
            None,
            Better::Lower,
        );
    }
    table.print();
}

fn startup(table: &mut Table, runs: usize, python: Option<&Path>, peers: &Path) {
    let ours = repeat(runs, || time_to_livez(&mut Server::ours(&[])));
    let peer =
        python.map(|python| repeat(runs, || time_to_livez(&mut Server::peer(python, peers))));
    table.row(
        "exec → first 200 on the health port",
        "ms",
        ours,
        peer,
        Better::Lower,
    );
    table.row(
        "exec → READY=1 on NOTIFY_SOCKET",
        "ms",
        repeat(runs, time_to_ready),
        None,
        Better::Lower,
    );
}

fn memory(table: &mut Table, python: Option<&Path>, peers: &Path, million: &Path) {
    let ours = repeat(3, || rss_once_up(&mut Server::ours(&[])));
    let peer = python.map(|python| repeat(3, || rss_once_up(&mut Server::peer(python, peers))));
    table.row("RSS once up", "MiB", ours, peer, Better::Lower);
    table.row(
        "RSS after 1,000,000 signals (FSYNC=batch)",
        "MiB",
        vec![rss_after_ingest(million, 1_000_000)],
        None,
        Better::Lower,
    );
}

fn load(table: &mut Table, python: Option<&Path>, peers: &Path) {
    if let Some(wrk) = which("wrk") {
        // Two wrk threads and the server are three busy threads on a
        // 2-core machine: wrk's own threads are preempted while they time
        // requests, which shows in the tail. One wrk thread leaves a core
        // to each side; both are shown, for both servers.
        for threads in [2, 1] {
            saturation_rows(table, &wrk, threads, python, peers);
        }
    } else {
        eprintln!("wrk not found (apt-get install wrk): saturation figures skipped");
    }
    let mut idle = Server::ours(&[]);
    wait_for_code(&idle, 200);
    table.latency_rows(
        "/health at a steady 1,000 req/s, idle bot",
        open_loop(&mut idle, 1000, Duration::from_secs(5)),
    );
}

/// Enough signals to keep the loop busy for the whole open-loop second
/// (about 2 M signals/s are ingested here).
const BUSY_FEED_SIGNALS: usize = 4_000_000;

fn isolation(table: &mut Table, busy_feed: &Path) {
    let (busy, still_ingesting) = open_loop_while_ingesting(busy_feed);
    let label = if still_ingesting {
        "/health at 1,000 req/s, loop saturated (4M-signal file being ingested)"
    } else {
        "/health at 1,000 req/s, loop saturated (ingest finished early: partly idle)"
    };
    table.latency_rows(label, busy);
    let mut stalled = Server::ours(&[
        ("FAILPOINTS", "bot::iteration=5*off->sleep(600000)"),
        ("STALL_TIMEOUT", "1s"),
        ("HEARTBEAT_INTERVAL", "100ms"),
    ]);
    wait_for_code(&stalled, 503);
    table.latency_rows(
        "/health at 1,000 req/s, loop stalled (503)",
        open_loop(&mut stalled, 1000, Duration::from_secs(5)),
    );
}

fn ingest(table: &mut Table, runs: usize, python: Option<&Path>, peers: &Path, work: &Path) {
    let small = work.join("small.jsonl");
    write_feed(&small, 200_000);
    let tiny = work.join("tiny.jsonl");
    write_feed(&tiny, 2_000);
    let peer_script = peers.join("python_ingest.py");
    for (fsync, feed, count) in [
        ("batch", &small, 200_000),
        ("never", &small, 200_000),
        ("always", &tiny, 2_000),
    ] {
        let ours = repeat(runs, || ingest_rate(feed, count, fsync));
        let peer = python.map(|python| {
            repeat(runs, || {
                python_ingest_rate(python, &peer_script, feed, work, fsync)
            })
        });
        table.row(
            &format!("ingest, file source → journal, FSYNC={fsync} ({count} signals)"),
            "signals/s",
            ours,
            peer,
            Better::Higher,
        );
    }
}

/// A 1M-signal ingest and `/health` at 1,000 req/s during it, without
/// alerts and with every event (a million fills) going to a destination
/// that accepts connections and never answers: the loop and the health
/// server must not notice it.
fn alerts(table: &mut Table, runs: usize, million: &Path) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging = format!(
        "json://127.0.0.1:{}/hook?min_interval=1s",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let source = format!("file:{}", million.display());
    for (label, urls) in [
        ("alerts off", None),
        ("a hanging alert destination", Some(hanging.as_str())),
    ] {
        let mut env = vec![("SIGNAL_SOURCE", source.as_str()), ("FSYNC", "batch")];
        if let Some(urls) = urls {
            env.extend([("NOTIFY_URLS", urls), ("NOTIFY_TIMEOUT", "600s")]);
        }
        let rates = repeat(runs.min(3), || {
            flush_disk();
            let started = Instant::now();
            let ours = Server::ours(&env);
            wait_until_decided(&ours, 1_000_000, Duration::from_millis(2));
            1_000_000.0 / started.elapsed().as_secs_f64()
        });
        table.row(
            &format!("ingest, 1M signals, FSYNC=batch, {label}"),
            "signals/s",
            rates,
            None,
            Better::Higher,
        );
        flush_disk();
        let mut ours = Server::ours(&env);
        time_to_livez(&mut ours);
        table.latency_rows(
            &format!("/health at 1,000 req/s during that ingest, {label}"),
            open_loop(&mut ours, 1000, Duration::from_millis(500)),
        );
    }
}

/// Writes back what earlier sections left dirty (gigabytes of journals),
/// so the disk is not still busy with it while the next one is measured.
fn flush_disk() {
    let _ = Command::new("sync").status();
}

/// The machine's figures, to read the table against.
fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    println!(
        "machine: {cpu}, {cores} cores; tradingbot {} ({})",
        env!("CARGO_PKG_VERSION"),
        BIN
    );
}

/// A server under test, killed when dropped: ours or the peer.
enum Server {
    Ours(Daemon),
    Peer { child: Child, port: u16 },
}

/// What load and latency are measured on, for both.
const HEALTH_PATH: &str = "/health";

impl Server {
    fn ours(env: &[(&str, &str)]) -> Self {
        Self::ours_with(env, None)
    }

    /// Ours at its own default intervals (the builder's are the tests'),
    /// with `env` on top.
    fn ours_with(env: &[(&str, &str)], notify: Option<&OsStr>) -> Self {
        let mut builder = Builder::new()
            .remove_env("HEARTBEAT_INTERVAL")
            .remove_env("STALL_TIMEOUT");
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        if let Some(notify) = notify {
            builder = builder.env("NOTIFY_SOCKET", notify);
        }
        Server::Ours(builder.spawn())
    }

    /// The Python peer cannot bind port 0 and say which it got: a port is
    /// held for it and let go just before its spawn.
    fn peer(python: &Path, peers: &Path) -> Self {
        let port = Reserved::loopback().addr().port();
        let child = Command::new(python)
            .arg(peers.join("aiohttp_health.py"))
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server::Peer { child, port }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Server::Ours(daemon) => daemon.addr(),
            Server::Peer { port, .. } => SocketAddr::from(([127, 0, 0, 1], *port)),
        }
    }

    /// What says "the process is up": /livez for us, the peer's only route for it.
    fn probe_path(&self) -> &'static str {
        match self {
            Server::Ours(_) => "/livez",
            Server::Peer { .. } => HEALTH_PATH,
        }
    }

    fn pid(&self) -> i32 {
        match self {
            Server::Ours(daemon) => daemon.pid(),
            Server::Peer { child, .. } => child.id() as i32,
        }
    }

    fn daemon(&self) -> &Daemon {
        match self {
            Server::Ours(daemon) => daemon,
            Server::Peer { .. } => panic!("the peer is not ours"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Peer { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> Option<u16> {
    http(addr, "GET", path, &[]).ok().map(|(code, _)| code)
}

/// The clock starts at the caller's spawn: exec → first 200 on the probe path.
fn time_to_livez(server: &mut Server) -> f64 {
    let started = Instant::now();
    loop {
        if get(server.addr(), server.probe_path()) == Some(200) {
            return started.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server never answered"
        );
        std::thread::yield_now();
    }
}

fn time_to_ready() -> f64 {
    let socket = NotifySocket::path();
    let started = Instant::now();
    let _ours = Server::ours_with(&[], Some(&socket.env_value));
    socket.expect("READY=1", is_ready);
    started.elapsed().as_secs_f64() * 1000.0
}

fn rss_mib(pid: i32) -> f64 {
    proc_status(pid, "VmRSS:") as f64 / 1024.0
}

fn rss_once_up(server: &mut Server) -> f64 {
    time_to_livez(server);
    // Let start-up allocations settle: a few requests, then read.
    for _ in 0..10 {
        get(server.addr(), HEALTH_PATH);
    }
    rss_mib(server.pid())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// A Python interpreter (not a version-manager shim) that can import
/// `module`, installing it with pip if needed.
fn python_with(module: &str) -> Option<PathBuf> {
    let real = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))?;
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !has(&real) {
        let _ = Command::new(&real)
            .args(["-m", "pip", "install", "-q", module])
            .status();
    }
    if has(&real) {
        Some(real)
    } else {
        eprintln!("{module} unavailable: its peer's figures skipped");
        None
    }
}

struct Saturation {
    requests_per_second: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Requests/s and p50, p99, max under `wrk -tTHREADS -c50 -d5s`, three
/// runs each, for us and the peer.
fn saturation_rows(
    table: &mut Table,
    wrk: &Path,
    threads: usize,
    python: Option<&Path>,
    peers: &Path,
) {
    const RUNS: usize = 3;
    let runs = |server: &mut Server| -> Vec<Saturation> {
        (0..RUNS)
            .map(|_| saturation(wrk, threads, server))
            .collect()
    };
    let ours = runs(&mut Server::ours(&[]));
    let peer = python.map(|python| runs(&mut Server::peer(python, peers)));
    let load = format!("wrk -t{threads} -c50 -d5s");
    for (name, unit, pick, better) in [
        (
            "requests/s",
            "req/s",
            (|run: &Saturation| run.requests_per_second) as fn(&Saturation) -> f64,
            Better::Higher,
        ),
        ("p50", "ms", |run| run.p50, Better::Lower),
        ("p99", "ms", |run| run.p99, Better::Lower),
        ("max", "ms", |run| run.max, Better::Lower),
    ] {
        let figures = |runs: &Vec<Saturation>| runs.iter().map(pick).collect::<Vec<_>>();
        table.row(
            &format!("/health {name} at saturation ({load})"),
            unit,
            figures(&ours),
            peer.as_ref().map(figures),
            better,
        );
    }
}

/// wrk's requests/s and latency percentiles (ms).
fn saturation(wrk: &Path, threads: usize, server: &mut Server) -> Saturation {
    time_to_livez(server);
    let url = format!("http://{}{}", server.addr(), HEALTH_PATH);
    let output = Command::new(wrk)
        .arg(format!("-t{threads}"))
        .args(["-c50", "-d5s", "--latency", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix).map(str::trim))
    };
    Saturation {
        requests_per_second: field("Requests/sec:")
            .and_then(|value| value.parse().ok())
            .unwrap_or(f64::NAN),
        p50: field("50%").map_or(f64::NAN, parse_wrk_duration),
        p99: field("99%").map_or(f64::NAN, parse_wrk_duration),
        // "Latency   avg   stdev   max   +/- stdev"
        max: field("Latency")
            .and_then(|value| value.split_whitespace().nth(2))
            .map_or(f64::NAN, parse_wrk_duration),
    }
}

fn parse_wrk_duration(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        _ => f64::NAN,
    }
}

/// Requests on a fixed schedule over keep-alive connections; each latency is
/// measured from the request's scheduled time, so a slow answer also delays
/// (and is charged to) the requests queued behind it.
fn open_loop(server: &mut Server, rate: u32, duration: Duration) -> Vec<f64> {
    let connections = 4u32;
    let addr = server.addr();
    let path = HEALTH_PATH;
    let start = Instant::now() + Duration::from_millis(50);
    let total = (rate as f64 * duration.as_secs_f64()) as u32;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut latencies = Vec::new();
                let mut index = worker;
                while index < total {
                    let scheduled = start + interval * index;
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    read_response(&mut reader);
                    latencies.push(scheduled.elapsed().as_secs_f64() * 1000.0);
                    index += connections;
                }
                latencies
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|worker| worker.join().unwrap())
        .collect()
}

fn wait_for_code(server: &Server, code: u16) {
    let started = Instant::now();
    while get(server.addr(), HEALTH_PATH) != Some(code) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never got {code}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Watches `/metrics` every 2 ms: the stall starts when the heartbeat
/// counter stops moving, and is detected when `/health` turns 503. The
/// notify socket stamps every datagram as it arrives. Returns (→ 503, →
/// last WATCHDOG=1) in ms.
fn stall_detection() -> (f64, f64) {
    let socket = NotifySocket::path();
    let ours = Server::ours_with(
        &[
            ("FAILPOINTS", "bot::iteration=20*off->sleep(600000)"),
            ("STALL_TIMEOUT", "1s"),
            ("HEARTBEAT_INTERVAL", "100ms"),
            ("WATCHDOG_USEC", "3000000"),
        ],
        Some(&socket.env_value),
    );
    let addr = ours.addr();
    let mut last_beats = None;
    let mut last_change = Instant::now();
    loop {
        if get(addr, "/health") == Some(503) && last_beats.is_some_and(|beats: u64| beats >= 20) {
            let detected = last_change.elapsed().as_secs_f64() * 1000.0;
            let mut last_ping = None;
            while let Some((at, datagram)) = socket.recv_stamped(Duration::from_millis(1)) {
                if is_ping(&datagram) {
                    last_ping = Some(at);
                }
            }
            let last_ping = last_ping.map_or(f64::NAN, |ping| {
                if ping >= last_change {
                    (ping - last_change).as_secs_f64() * 1000.0
                } else {
                    -((last_change - ping).as_secs_f64() * 1000.0)
                }
            });
            return (detected, last_ping);
        }
        let beats = heartbeats(addr);
        if beats != last_beats {
            last_beats = beats;
            last_change = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn heartbeats(addr: SocketAddr) -> Option<u64> {
    let (_, text) = http(addr, "GET", "/metrics", &[]).ok()?;
    metric(&text, "tradingbot_heartbeats_total").map(|beats| beats as u64)
}

fn stop_latency() -> f64 {
    let mut ours = Server::ours(&[]);
    time_to_livez(&mut ours);
    wait_for_code(&ours, 200);
    sigterm_to_exit_ms(&mut ours)
}

/// SIGTERM → exit 0, in ms.
fn sigterm_to_exit_ms(server: &mut Server) -> f64 {
    let Server::Ours(daemon) = server else {
        panic!("the peer is not ours to stop");
    };
    let started = Instant::now();
    daemon.signal(SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit {status}");
    started.elapsed().as_secs_f64() * 1000.0
}

/// CPU time (ms) and context switches of every thread over an idle window.
fn idle_cost(window: Duration) -> (f64, f64) {
    let mut ours = Server::ours(&[]);
    time_to_livez(&mut ours);
    wait_for_code(&ours, 200);
    let pid = ours.pid();
    let before = (cpu_ms(pid), context_switches(pid));
    std::thread::sleep(window);
    let after = (cpu_ms(pid), context_switches(pid));
    (after.0 - before.0, after.1 - before.1)
}

/// CPU time of every thread of `pid` so far, in ms, from the scheduler's
/// own count in nanoseconds (`/proc/PID/stat` counts 10 ms ticks, too
/// coarse for an idle minute).
fn cpu_ms(pid: i32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return f64::NAN;
    };
    let nanoseconds: f64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    nanoseconds / 1e6
}

fn context_switches(pid: i32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return f64::NAN;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches"))
                .filter_map(|line| line.split(':').nth(1)?.trim().parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// `count` distinct, valid signals over ten symbols, alternating sides,
/// all of now (older than DEDUPE_WINDOW, they would be refused unread).
fn write_feed(path: &Path, count: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    for index in 0..count {
        let side = if index % 2 == 0 { "buy" } else { "sell" };
        writeln!(
            out,
            r#"{{"id":"bench-{index}","ts":{now},"symbol":"SYM{}","side":"{side}","qty":1,"price":{}.5}}"#,
            index % 10,
            100 + index % 7
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// Signals decided so far (every result), from `/metrics`.
fn signals_decided(server: &Server) -> u64 {
    server.daemon().decided() as u64
}

fn ingesting(feed: &Path, fsync: &str) -> Server {
    let source = format!("file:{}", feed.display());
    Server::ours(&[("SIGNAL_SOURCE", source.as_str()), ("FSYNC", fsync)])
}

/// Spawn → every signal of the feed decided and committed, as signals/s.
fn ingest_rate(feed: &Path, count: u64, fsync: &str) -> f64 {
    let started = Instant::now();
    let ours = ingesting(feed, fsync);
    wait_until_decided(&ours, count, Duration::from_millis(2));
    count as f64 / started.elapsed().as_secs_f64()
}

fn rss_after_ingest(feed: &Path, count: u64) -> f64 {
    let ours = ingesting(feed, "batch");
    wait_until_decided(&ours, count, Duration::from_millis(20));
    rss_mib(ours.pid())
}

/// Polls `/metrics` every `poll` until `count` signals are decided.
fn wait_until_decided(server: &Server, count: u64, poll: Duration) {
    let started = Instant::now();
    while signals_decided(server) != count {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "ingest never finished"
        );
        std::thread::sleep(poll);
    }
}

/// The peer's own figure: accepted signals over its measured seconds.
fn python_ingest_rate(python: &Path, script: &Path, feed: &Path, work: &Path, fsync: &str) -> f64 {
    let out = work.join(format!("peer-{fsync}.jsonl"));
    let _ = std::fs::remove_file(&out);
    let output = Command::new(python)
        .arg(script)
        .arg(feed)
        .arg(&out)
        .args(["--fsync", fsync])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    report["accepted"].as_f64().unwrap_or(f64::NAN) / report["seconds"].as_f64().unwrap_or(f64::NAN)
}

/// Open-loop latency for one second while the loop works through the feed;
/// also says whether the loop was still busy when the second ended.
fn open_loop_while_ingesting(feed: &Path) -> (Vec<f64>, bool) {
    let mut ours = ingesting(feed, "batch");
    time_to_livez(&mut ours);
    let latencies = open_loop(&mut ours, 1000, Duration::from_secs(1));
    let busy = signals_decided(&ours) < BUSY_FEED_SIGNALS as u64;
    (latencies, busy)
}

/// SIGTERM once 100,000 signals are in: the drain finishes the batch in
/// hand, commits, fsyncs and checkpoints before exit 0.
fn stop_with_backlog(feed: &Path) -> f64 {
    let mut ours = ingesting(feed, "batch");
    while signals_decided(&ours) < 100_000 {
        std::thread::sleep(Duration::from_millis(2));
    }
    sigterm_to_exit_ms(&mut ours)
}

fn repeat(runs: usize, mut measure: impl FnMut() -> f64) -> Vec<f64> {
    (0..runs).map(|_| measure()).collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Better {
    Lower,
    Higher,
}

#[derive(Default)]
struct Table {
    rows: Vec<[String; 4]>,
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[rank]
}

fn summary(values: &[f64]) -> (f64, String) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = percentile(&sorted, 0.5);
    let text = if sorted.len() > 1 {
        format!(
            "{} (p90 {}, max {})",
            fmt(median),
            fmt(percentile(&sorted, 0.9)),
            fmt(*sorted.last().unwrap())
        )
    } else {
        fmt(median)
    };
    (median, text)
}

fn fmt(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

impl Table {
    fn row(
        &mut self,
        figure: &str,
        unit: &str,
        ours: Vec<f64>,
        peer: Option<Vec<f64>>,
        better: Better,
    ) {
        let (ours_median, ours_text) = summary(&ours);
        let (peer_text, ratio) = match peer {
            Some(peer) => {
                let (peer_median, peer_text) = summary(&peer);
                let ratio = match better {
                    Better::Lower => peer_median / ours_median,
                    Better::Higher => ours_median / peer_median,
                };
                (peer_text, format!("{}×", fmt(ratio)))
            }
            None => ("—".into(), "—".into()),
        };
        let label = if unit.is_empty() {
            figure.to_owned()
        } else {
            format!("{figure} ({unit})")
        };
        self.rows.push([label, ours_text, peer_text, ratio]);
    }

    fn latency_rows(&mut self, figure: &str, latencies: Vec<f64>) {
        let mut sorted = latencies;
        sorted.sort_by(f64::total_cmp);
        self.rows.push([
            format!("{figure}: p50 / p99 / max (ms)"),
            format!(
                "{} / {} / {}",
                fmt(percentile(&sorted, 0.5)),
                fmt(percentile(&sorted, 0.99)),
                fmt(*sorted.last().unwrap_or(&f64::NAN))
            ),
            "—".into(),
            "—".into(),
        ]);
    }

    fn print(&self) {
        print_machine();
        println!();
        println!(
            "| figure | tradingbot: median (p90, max) | peer: median (p90, max) | ours vs peer |"
        );
        println!("|---|---|---|---|");
        for [figure, ours, peer, ratio] in &self.rows {
            println!("| {figure} | {ours} | {peer} | {ratio} |");
        }
    }
}
