//! The ledger's figures (issue 11): start-up and memory after a long
//! lifetime, against the lifetime and against the exactly-once window,
//! beside the release before segments (`OLD_BIN`, a binary of it); and
//! ingest and memory beside it on the same feed.
//!
//!     ONLY=lifetime OLD_BIN=/path/to/old/tradingbot cargo bench --features failpoints --bench harness
//!
//! A lifetime is a journal of `LIFETIMES` (default 1000000,10000000)
//! fills at 10 signals a second, ending now, written in the daemon's own
//! record format into 64 MiB segments (the old release gets the same
//! records as one journal.jsonl). Each is started with each of `WINDOWS`
//! (default 1h,24h): once with no snapshot (a full replay, as after the
//! takeover), then again from the snapshot that stop wrote.
//!
//! Both binaries are spawned here, the same way, rather than ours by the
//! test kit's builder: the builder runs only this build's binary, and the
//! comparison is fair only if the two get the same environment.

use std::io::{BufWriter, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::kit::http::{http, metric};
use super::kit::port::Reserved;
use super::{flush_disk, rss_mib, write_feed, Better, Table, BIN};

const SEGMENT_BYTES: u64 = 64 << 20;
/// One signal every 100 ms: a busy feed (26 M ids a month).
const SPACING_MS: i64 = 100;

/// A free loopback port, let go at once: the port is passed by number.
fn free_port() -> u16 {
    Reserved::loopback().addr().port()
}

/// `GET path` on loopback `port`: the body, if it answered 200.
fn fetch(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match http(addr, "GET", path, &[]) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

pub(super) fn lifetime(table: &mut Table, work: &Path) {
    let old = std::env::var_os("OLD_BIN").map(PathBuf::from);
    let windows = list("WINDOWS", "1h,24h");
    for signals in list("LIFETIMES", "1000000,10000000") {
        let signals: u64 = signals.parse().expect("LIFETIMES: numbers of signals");
        let history = work.join(format!("history-{signals}"));
        let started = Instant::now();
        let bytes = write_history(&history, signals);
        eprintln!(
            "lifetime of {signals} signals: {} MiB written in {:.1?}",
            bytes >> 20,
            started.elapsed()
        );
        let label = |what: &str, window: &str| {
            format!("after {signals} signals at 10/s, DEDUPE_WINDOW={window}: {what}")
        };
        for window in &windows {
            let _ = std::fs::remove_dir_all(history.join("snapshots"));
            flush_disk();
            drop_caches();
            let full = measure(BIN.as_ref(), &history, window);
            flush_disk();
            drop_caches();
            let snapshot = measure(BIN.as_ref(), &history, window);
            for (how, figures) in [
                ("no snapshot (full replay)", &full),
                ("from the snapshot", &snapshot),
            ] {
                table.row(
                    &label(&format!("exec → READY=1, {how}"), window),
                    "ms",
                    vec![figures.ready_ms],
                    None,
                    Better::Lower,
                );
                table.row(
                    &label(&format!("RSS once ready, {how}"), window),
                    "MiB",
                    vec![figures.rss_mib],
                    None,
                    Better::Lower,
                );
                table.row(
                    &label(
                        &format!("recovery, {how} (records replayed: {})", figures.replayed),
                        window,
                    ),
                    "ms",
                    vec![figures.recovery_ms],
                    None,
                    Better::Lower,
                );
            }
            table.row(
                &label("ids in the window", window),
                "",
                vec![snapshot.window_ids],
                None,
                Better::Lower,
            );
        }
        if let Some(old) = &old {
            let legacy = work.join(format!("legacy-{signals}"));
            std::fs::create_dir_all(&legacy).unwrap();
            concatenate(&history, &legacy.join("journal.jsonl"));
            flush_disk();
            drop_caches();
            let figures = measure(old, &legacy, "7d");
            table.row(
                &format!("after {signals} signals: exec → READY=1, the release before segments (full replay)"),
                "ms",
                vec![figures.ready_ms],
                None,
                Better::Lower,
            );
            table.row(
                &format!("after {signals} signals: RSS once ready, the release before segments"),
                "MiB",
                vec![figures.rss_mib],
                None,
                Better::Lower,
            );
            let _ = std::fs::remove_dir_all(&legacy);
        }
        let _ = std::fs::remove_dir_all(&history);
    }
}

/// Ingest throughput and memory on the same feed (signals of now), this
/// build against `OLD_BIN`, interleaved run by run.
pub(super) fn beside_the_old_release(table: &mut Table, runs: usize, work: &Path) {
    let Some(old) = std::env::var_os("OLD_BIN").map(PathBuf::from) else {
        eprintln!(
            "OLD_BIN not set: the ingest comparison with the release before segments is skipped"
        );
        return;
    };
    let feed = work.join("ingest-now.jsonl");
    write_feed(&feed, 200_000);
    let million = work.join("million-now.jsonl");
    write_feed(&million, 1_000_000);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (bin, rates) in [(BIN.as_ref(), &mut ours), (old.as_path(), &mut theirs)] {
            flush_disk();
            rates.push(ingest(bin, &feed, 200_000).0);
        }
    }
    table.row(
        "ingest, file source → journal, FSYNC=batch, 200,000 signals of now: this build",
        "signals/s",
        ours,
        None,
        Better::Higher,
    );
    table.row(
        "same, the release before segments (OLD_BIN)",
        "signals/s",
        theirs,
        None,
        Better::Higher,
    );
    for (bin, who) in [
        (BIN.as_ref(), "this build"),
        (old.as_path(), "the release before segments"),
    ] {
        flush_disk();
        let (_, rss) = ingest(bin, &million, 1_000_000);
        table.row(
            &format!("RSS after 1,000,000 signals of now (DEDUPE_WINDOW 7d holds them all), {who}"),
            "MiB",
            vec![rss],
            None,
            Better::Lower,
        );
    }
}

/// Spawn → every signal of `feed` decided: (signals/s, RSS MiB then).
fn ingest(bin: &Path, feed: &Path, count: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let mut child = spawn(
        bin,
        &dir.path().join("state"),
        port,
        &[
            ("SIGNAL_SOURCE", &format!("file:{}", feed.display())),
            ("FSYNC", "batch"),
        ],
        None,
    );
    while decided(port) != Some(count) {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "ingest never finished"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let rss = rss_mib(child.id() as i32);
    let _ = child.kill();
    let _ = child.wait();
    (rate, rss)
}

fn decided(port: u16) -> Option<u64> {
    let text = fetch(port, "/metrics")?;
    Some(
        text.lines()
            .filter(|line| line.starts_with("tradingbot_signals_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

struct Start {
    ready_ms: f64,
    rss_mib: f64,
    recovery_ms: f64,
    replayed: u64,
    window_ids: f64,
}

/// Starts `bin` on `state_dir` with no source: exec → READY=1, RSS then,
/// and the recovery figures it reports; then SIGTERM (which writes the
/// snapshot the next start reads).
fn measure(bin: &Path, state_dir: &Path, window: &str) -> Start {
    let sockets = tempfile::tempdir().unwrap();
    let socket_path = sockets.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    let port = free_port();
    let started = Instant::now();
    let mut child = spawn(
        bin,
        state_dir,
        port,
        &[("DEDUPE_WINDOW", window), ("STARTUP_GRACE", "600s")],
        Some(&socket_path),
    );
    let mut buffer = [0u8; 1024];
    let ready_ms = loop {
        let length = socket.recv(&mut buffer).expect("READY=1 never came");
        if buffer[..length].starts_with(b"READY=1") {
            break started.elapsed().as_secs_f64() * 1000.0;
        }
    };
    std::thread::sleep(Duration::from_millis(200));
    let rss = rss_mib(child.id() as i32);
    let figure = |name: &str| {
        fetch(port, "/metrics").and_then(|text| metric(&text, &format!("tradingbot_{name}")))
    };
    let figures = Start {
        ready_ms,
        rss_mib: rss,
        recovery_ms: figure("recovery_seconds").map_or(f64::NAN, |seconds| seconds * 1000.0),
        replayed: figure("recovery_records").unwrap_or(f64::NAN) as u64,
        window_ids: figure("dedupe_window_ids").unwrap_or(f64::NAN),
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{} exited {status}", bin.display());
    figures
}

fn spawn(
    bin: &Path,
    state_dir: &Path,
    port: u16,
    env: &[(&str, &str)],
    notify: Option<&Path>,
) -> Child {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("PORT", port.to_string())
        .env("HEALTH_BIND", "127.0.0.1")
        .env("STATE_DIR", state_dir)
        .env("HEALTH_FILE", state_dir.with_extension("healthy"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    if let Some(notify) = notify {
        command.env("NOTIFY_SOCKET", notify);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A journal of `signals` fills at 10 a second ending now, in segments as
/// the daemon rolls them; its size in bytes.
fn write_history(state_dir: &Path, signals: u64) -> u64 {
    let journal = state_dir.join("journal");
    let _ = std::fs::remove_dir_all(state_dir);
    std::fs::create_dir_all(&journal).unwrap();
    let end = now_ms();
    let start = end - signals as i64 * SPACING_MS;
    let mut total = 0u64;
    let mut segment_bytes = 0u64;
    let mut out: Option<BufWriter<std::fs::File>> = None;
    let mut line = String::with_capacity(256);
    for index in 0..signals {
        if out.is_none() || segment_bytes >= SEGMENT_BYTES {
            if let Some(mut done) = out.take() {
                done.flush().unwrap();
            }
            let name = journal.join(format!("{:020}.jsonl", index + 1));
            out = Some(BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(name).unwrap(),
            ));
            segment_bytes = 0;
        }
        let at = start + index as i64 * SPACING_MS;
        let side = if index % 2 == 0 { "buy" } else { "sell" };
        line.clear();
        use std::fmt::Write as _;
        let _ = writeln!(
            line,
            r#"{{"t":"fill","id":"life-{index}","src":"file:/feeds/history.jsonl","ts":{},"at":{at},"symbol":"SYM{}","side":"{side}","qty":1.0,"price":{}.5}}"#,
            at - 40,
            index % 10,
            100 + index % 7
        );
        out.as_mut().unwrap().write_all(line.as_bytes()).unwrap();
        segment_bytes += line.len() as u64;
        total += line.len() as u64;
    }
    if let Some(mut done) = out.take() {
        done.flush().unwrap();
    }
    total
}

/// The segments of `state_dir` end to end: the old release's one file.
fn concatenate(state_dir: &Path, to: &Path) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(state_dir.join("journal"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    segments.sort();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(to).unwrap());
    for segment in segments {
        std::io::copy(&mut std::fs::File::open(segment).unwrap(), &mut out).unwrap();
    }
    out.flush().unwrap();
}

/// A cold start reads the journal from disk, not from the page cache
/// (root only; otherwise the figures are warm, and say so).
fn drop_caches() {
    if std::fs::write("/proc/sys/vm/drop_caches", "1").is_err() {
        eprintln!("cannot drop the page cache (not root): start-up figures are warm");
    }
}
