//! The daemon's stderr, one line at a time, awaitable: a test waits for the
//! line that says a thing happened instead of sleeping until it probably has.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<(Mutex<Lines>, Condvar)>,
}

#[derive(Default)]
struct Lines {
    all: Vec<String>,
    /// How many lines [`Log::wait_for`] has consumed.
    consumed: usize,
    closed: bool,
}

impl Log {
    /// Reads `stream` to its end on a thread of its own.
    pub fn follow(stream: impl Read + Send + 'static) -> Log {
        let log = Log::default();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.update(|lines| lines.all.push(line));
            }
            sink.update(|lines| lines.closed = true);
        });
        log
    }

    fn update(&self, change: impl FnOnce(&mut Lines)) {
        let (lock, condvar) = &*self.inner;
        change(&mut lock.lock().unwrap());
        condvar.notify_all();
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        let lines = self.inner.0.lock().unwrap();
        lines
            .all
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().all.clone()
    }

    /// Whether the daemon has closed its stderr (it has exited, as a rule).
    pub fn is_closed(&self) -> bool {
        self.inner.0.lock().unwrap().closed
    }

    /// Every line so far, one a line: for a failure message.
    pub fn dump(&self) -> String {
        self.all().join("\n")
    }

    /// Waits for the next line (after those already consumed) containing
    /// `needle`, and consumes it and every line before it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.await_line(timeout, true, |line| line.contains(needle))
    }

    /// Waits for any line, consumed or not, that satisfies `predicate`;
    /// consumes nothing.
    pub fn find(&self, timeout: Duration, predicate: impl Fn(&str) -> bool) -> Option<String> {
        self.await_line(timeout, false, predicate)
    }

    fn await_line(
        &self,
        timeout: Duration,
        consume: bool,
        predicate: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, condvar) = &*self.inner;
        let mut lines = lock.lock().unwrap();
        let mut next = if consume { lines.consumed } else { 0 };
        loop {
            while next < lines.all.len() {
                next += 1;
                if predicate(&lines.all[next - 1]) {
                    if consume {
                        lines.consumed = next;
                    }
                    return Some(lines.all[next - 1].clone());
                }
            }
            if consume {
                lines.consumed = next;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if lines.closed {
                return None;
            }
            lines = condvar.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// A JSON log line (`LOG_FORMAT=json`) parsed; panics on anything else.
pub fn parse(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"))
}

/// When the daemon wrote a JSON log line (its `timestamp`): when it did
/// the thing, not when the test got to read it.
pub fn time_of(line: &str) -> SystemTime {
    let record = parse(line);
    let stamp = record["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("no timestamp in {line}"));
    humantime::parse_rfc3339(stamp).unwrap_or_else(|error| panic!("{stamp}: {error}"))
}
