//! Feeds (issue 22): a `ws` source's throughput through the mapping and
//! the journal, beside the Python peer (`ws_feed_peer.py`: a `websockets`
//! client doing the same mapping, appending JSONL with an fsync per 1,000
//! signals), both reading the kit's fast loopback server in the same run;
//! CPU over a minute with a connected, idle feed, both at once; RSS with
//! 1, 10 and 50 idle sources.
//!
//!     ONLY=feeds cargo bench --features failpoints --bench harness
//!
//! `FEED_MESSAGES` (default 1000000) sets the trades each client reads.
//! The server frames them all once, in memory (about 330 bytes each), one
//! trade a frame as RTDS sends them, and writes the whole buffer to each
//! connection as soon as it subscribed: neither client waits on it. The
//! daemon reads them through the shipped RTDS sample's mapping, its url
//! pointed at the server. Each client's clock starts when the server got
//! its subscribe and stops when every signal is decided (ours: its
//! metrics; the peer: its exit, after its last fsync).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::kit::feeds::fast::FastFeed;
use super::kit::feeds::rtds::{trade, Rtds};
use super::kit::process::proc_status;
use super::kit::sources::{replaced, rtds_sources, RTDS};
use super::{cpu_ms, rss_mib, wait_until_decided, Better, Server, Table};

/// Idle sources the memory rows are taken with.
const SOURCE_COUNTS: [usize; 3] = [1, 10, 50];

/// The window the idle CPU is measured over.
const IDLE_WINDOW: Duration = Duration::from_secs(60);

pub(crate) fn feeds(
    table: &mut Table,
    runs: usize,
    python: Option<&Path>,
    peers: &Path,
    work: &Path,
) {
    let count: u64 = std::env::var("FEED_MESSAGES")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(1_000_000);
    let peer = python.map(|python| Peer {
        python: python.to_owned(),
        script: peers.join("ws_feed_peer.py"),
        work: work.to_owned(),
    });
    throughput(table, runs.min(3), count, peer.as_ref(), work);
    idle_cpu(table, peer.as_ref(), work);
    memory(table, peer.as_ref(), work);
}

/// The Python peer, ready to run.
struct Peer {
    python: PathBuf,
    script: PathBuf,
    work: PathBuf,
}

impl Peer {
    /// Reads `count` signals from `url` into a fresh JSONL file.
    fn command(&self, url: &str, count: u64) -> Command {
        let out = self.work.join("peer-feed.jsonl");
        let _ = std::fs::remove_file(&out);
        let mut command = Command::new(&self.python);
        command
            .arg(&self.script)
            .arg(url)
            .arg(out)
            .args(["--count", &count.to_string(), "--fsync", "batch"])
            .stdin(Stdio::null());
        command
    }
}

fn throughput(table: &mut Table, runs: usize, count: u64, peer: Option<&Peer>, work: &Path) {
    let started = Instant::now();
    let fast = FastFeed::start((0..count).map(|index| {
        let side = if index % 2 == 0 { "BUY" } else { "SELL" };
        trade(
            &format!("market-{}", index % 10),
            side,
            1.0 + (index % 7) as f64,
            0.5,
        )
        .to_string()
    }));
    eprintln!("feeds: {count} trades framed in {:?}", started.elapsed());
    let sources = sources_file(work, "throughput", &fast.url(), 1);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..runs {
        super::flush_disk();
        ours.push(our_rate(&fast, &sources, count));
        if let Some(peer) = peer {
            super::flush_disk();
            theirs.push(peer_rate(peer, &fast, count));
        }
    }
    table.row(
        &format!("ws feed → journal, {count} RTDS trades one a frame, mapped, FSYNC=batch"),
        "signals/s",
        ours,
        peer.map(|_| theirs),
        Better::Higher,
    );
}

/// The `index`th connection's subscribe, once the server got it.
fn subscribed(fast: &FastFeed, index: usize) -> Instant {
    fast.blasted().subscribed[index]
}

fn our_rate(fast: &FastFeed, sources: &Path, count: u64) -> f64 {
    let connection = fast.blasted().subscribed.len();
    let sources = sources.display().to_string();
    let ours = Server::ours(&[("SOURCES_FILE", sources.as_str()), ("FSYNC", "batch")]);
    wait_until_decided(&ours, count, Duration::from_millis(2));
    let took = subscribed(fast, connection).elapsed();
    count as f64 / took.as_secs_f64()
}

fn peer_rate(peer: &Peer, fast: &FastFeed, count: u64) -> f64 {
    let connection = fast.blasted().subscribed.len();
    let output = peer.command(&fast.url(), count).output().unwrap();
    let took = subscribed(fast, connection).elapsed();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert_eq!(
        report["accepted"].as_u64(),
        Some(count),
        "the peer: {report} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    count as f64 / took.as_secs_f64()
}

/// CPU time of ours and the peer, each with one idle RTDS feed connected
/// (a text ping every 5 s, the sample's), and of ours with no source, over
/// the same minute.
fn idle_cpu(table: &mut Table, peer: Option<&Peer>, work: &Path) {
    let rtds = Rtds::start_with(None, None);
    let sources = sources_file(work, "idle", &rtds.url(), 1);
    let bare = Server::ours(&[]);
    let ours = our_daemon(&sources);
    rtds.wait("our subscribe", |seen| seen.subscribes >= 1);
    let theirs = peer.map(|peer| Running(peer.command(&rtds.url(), u64::MAX).spawn().unwrap()));
    if theirs.is_some() {
        rtds.wait("the peer's subscribe", |seen| seen.subscribes >= 2);
    }
    let pids = [
        Some(bare.pid()),
        Some(ours.pid()),
        theirs.as_ref().map(|peer| peer.0.id() as i32),
    ];
    let before = pids.map(|pid| pid.map(cpu_ms));
    std::thread::sleep(IDLE_WINDOW);
    let after = pids.map(|pid| pid.map(cpu_ms));
    let used: Vec<Option<f64>> = after
        .iter()
        .zip(&before)
        .map(|(after, before)| Some(after.as_ref()? - before.as_ref()?))
        .collect();
    let pings = rtds.seen().pings;
    eprintln!("feeds: {pings} text pings seen over the idle minute (both clients)");
    table.row(
        "CPU time over 60 s, idle, no source (the daemon's own)",
        "ms",
        used[0].into_iter().collect(),
        None,
        Better::Lower,
    );
    table.row(
        "CPU time over 60 s, one connected idle ws feed (text ping every 5 s)",
        "ms",
        used[1].into_iter().collect(),
        used[2].map(|peer| vec![peer]),
        Better::Lower,
    );
}

/// RSS with 1, 10 and 50 idle sources, and what each added source costs
/// beside the peer's whole process (one process a feed, as it is run).
fn memory(table: &mut Table, peer: Option<&Peer>, work: &Path) {
    let mut rss = Vec::new();
    for count in SOURCE_COUNTS {
        let rtds = Rtds::start_with(None, None);
        let sources = sources_file(work, &format!("idle-{count}"), &rtds.url(), count);
        let ours = our_daemon(&sources);
        rtds.wait("every source subscribed", |seen| seen.subscribes >= count);
        let megabytes = rss_mib(ours.pid());
        table.row(
            &format!("RSS with {count} idle ws source(s), each mapped"),
            "MiB",
            vec![megabytes],
            None,
            Better::Lower,
        );
        rss.push((count, megabytes));
    }
    let (first, last) = (rss[0], rss[rss.len() - 1]);
    let per_source = (last.1 - first.1) / (last.0 - first.0) as f64;
    let peer_process = peer.map(|peer| {
        let rtds = Rtds::start_with(None, None);
        let running = Running(peer.command(&rtds.url(), u64::MAX).spawn().unwrap());
        rtds.wait("the peer's subscribe", |seen| seen.subscribes >= 1);
        let kib = proc_status(running.0.id() as i32, "VmRSS:");
        vec![kib as f64 / 1024.0]
    });
    table.row(
        "RSS per added idle ws source (ours: the slope 1 → 50; peer: its process, one a feed)",
        "MiB",
        vec![per_source],
        peer_process,
        Better::Lower,
    );
}

fn our_daemon(sources: &Path) -> Server {
    let sources = sources.display().to_string();
    Server::ours(&[("SOURCES_FILE", sources.as_str())])
}

/// A child killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A sources file of `count` copies of the shipped RTDS sample, named
/// `feed-1`…, each pointed at `url`.
fn sources_file(work: &Path, name: &str, url: &str, count: usize) -> PathBuf {
    let pointed = rtds_sources(url, "5s", "5m", "");
    let shipped_name = format!("name = {RTDS:?}");
    let text: String = (1..=count)
        .map(|index| replaced(&pointed, &shipped_name, &format!("name = \"feed-{index}\"")))
        .collect();
    let path = work.join(format!("sources-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}
