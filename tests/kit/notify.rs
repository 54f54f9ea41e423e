//! A real unix datagram socket to pass as `NOTIFY_SOCKET`, read as promptly
//! as systemd reads its own, and what a manager checks in each datagram.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::wait::SOON;

/// A thread drains the socket into a queue, stamping each datagram with
/// its arrival, because the kernel's datagram queue is short
/// (net.unix.max_dgram_qlen, often 10) and a receiver that falls behind
/// blocks the sender.
pub struct NotifySocket {
    messages: Mutex<Receiver<(Instant, String)>>,
    closed: Arc<AtomicBool>,
    /// The value for `NOTIFY_SOCKET`.
    pub env_value: OsString,
    _dir: Option<tempfile::TempDir>,
}

impl NotifySocket {
    /// A socket at a path in a temp dir of its own.
    pub fn path() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tb-notify-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self::drained(socket, path.into_os_string(), Some(dir))
    }

    /// A socket in the abstract namespace (`NOTIFY_SOCKET=@name`).
    pub fn abstract_name() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "tb-notify-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        Self::drained(socket, format!("@{name}").into(), None)
    }

    fn drained(socket: UnixDatagram, env_value: OsString, dir: Option<tempfile::TempDir>) -> Self {
        let (sender, messages) = std::sync::mpsc::channel();
        let closed = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&closed);
        // The timeout only lets the thread notice that the test is over.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 4096];
            while !done.load(Ordering::Relaxed) {
                if let Ok(length) = socket.recv(&mut buffer) {
                    let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    if sender.send((Instant::now(), message)).is_err() {
                        break;
                    }
                }
            }
        });
        NotifySocket {
            messages: Mutex::new(messages),
            closed,
            env_value,
            _dir: dir,
        }
    }

    /// The next datagram and when it arrived, or `None` after `timeout`.
    pub fn recv_stamped(&self, timeout: Duration) -> Option<(Instant, String)> {
        self.messages.lock().unwrap().recv_timeout(timeout).ok()
    }

    /// Reads datagrams until one satisfies `predicate`; returns it and
    /// every datagram seen before it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> Option<(String, Vec<String>)> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let (_, message) = self.recv_stamped(left.max(Duration::from_millis(1)))?;
            if predicate(&message) {
                return Some((message, seen));
            }
            seen.push(message);
        }
    }

    /// Like [`NotifySocket::wait_for`], failing the test if nothing matches.
    pub fn expect(&self, what: &str, predicate: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        self.wait_for(SOON, predicate)
            .unwrap_or_else(|| panic!("no {what} datagram within {SOON:?}"))
    }

    /// Every datagram that arrives within `window`, with its arrival time.
    pub fn collect(&self, window: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv_stamped(left.max(Duration::from_millis(1))) {
                Some(stamped) => seen.push(stamped),
                None => break,
            }
        }
        seen
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Whether the datagram holds the line `KEY=value` exactly.
pub fn has_line(datagram: &str, line: &str) -> bool {
    datagram.split('\n').any(|got| got == line)
}

pub fn is_ready(datagram: &str) -> bool {
    has_line(datagram, "READY=1")
}

pub fn is_ping(datagram: &str) -> bool {
    has_line(datagram, "WATCHDOG=1")
}

/// Every line of an sd_notify datagram is `KEY=value`; a newline inside a
/// `STATUS=` value would start a line that is not.
pub fn assert_well_formed(datagram: &str) {
    for line in datagram.split('\n') {
        let key = line.split_once('=').map_or("", |(key, _)| key);
        assert!(
            !key.is_empty()
                && key
                    .bytes()
                    .all(|byte| byte.is_ascii_uppercase() || byte == b'_'),
            "line {line:?} of datagram {datagram:?} is not KEY=value"
        );
    }
}

/// `CLOCK_MONOTONIC` now, in microseconds: what `MONOTONIC_USEC=` must be
/// comparable with (std's `Instant` does not expose its raw value).
pub fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec into memory we own.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(result, 0, "clock_gettime(CLOCK_MONOTONIC)");
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}
