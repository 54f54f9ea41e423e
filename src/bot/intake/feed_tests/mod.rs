//! The feed clients against the kit's fakes (`tests/kit/feeds/`): real
//! servers on loopback speaking RTDS's WebSocket shape and a cursor-paged
//! HTTP list, with their bad days. Here rather than in a test target
//! because the clients are the crate's own; the fakes depend on nothing
//! of it, so they are included by path.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::feed::{Counts, Delivered, Delivery, FeedSink, Status};

#[path = "../../../../tests/kit/feeds/mod.rs"]
mod feeds;
#[path = "../../../../tests/kit/tls.rs"]
mod test_ca;

mod poll;
mod ws;

/// How long anything that should happen soon may take on a loaded machine.
const SOON: Duration = Duration::from_secs(15);

/// The statuses of a feed quiet once and back: quiet is no failure (no
/// `down`), and no `connecting` is shown while quiet.
const QUIET_ONCE: [Status; 4] = [Status::Connecting, Status::Up, Status::Quiet, Status::Up];

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// What a client told its sink.
#[derive(Debug)]
enum Told {
    Status(Status, Counts),
    Delivery(Delivery),
}

/// A sink that records what it is told; a delivery maps to a signal when
/// one of its messages passes `maps`.
struct Recorder {
    told: mpsc::Sender<Told>,
    maps: fn(&[u8]) -> bool,
}

impl FeedSink for Recorder {
    fn status(&mut self, status: &Status, counts: Counts) {
        let _ = self.told.send(Told::Status(status.clone(), counts));
    }

    fn deliver(&mut self, delivery: Delivery) -> impl Future<Output = Delivered> + Send {
        let signals = delivery.messages.iter().any(|message| (self.maps)(message));
        let _ = self.told.send(Told::Delivery(delivery));
        std::future::ready(if signals {
            Delivered::Signals
        } else {
            Delivered::NoSignal
        })
    }
}

/// The test's side of a [`Recorder`]: everything told so far, in order.
struct Heard {
    told: mpsc::Receiver<Told>,
    log: Vec<Told>,
}

fn recorder(maps: fn(&[u8]) -> bool) -> (Recorder, Heard) {
    let (told, heard) = mpsc::channel();
    let heard = Heard {
        told: heard,
        log: Vec::new(),
    };
    (Recorder { told, maps }, heard)
}

impl Heard {
    /// Waits until `done` holds of what was told; panics, naming `what`,
    /// when it does not soon.
    fn until(&mut self, what: &str, done: impl Fn(&Heard) -> bool) {
        let deadline = std::time::Instant::now() + SOON;
        while !done(self) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.told.recv_timeout(left) {
                Ok(told) => self.log.push(told),
                Err(_) => panic!("not told {what} within {SOON:?}: {:#?}", self.log),
            }
        }
    }

    /// Takes in what was told by now, without waiting.
    fn drain(&mut self) {
        self.log.extend(self.told.try_iter());
    }

    fn statuses(&self) -> Vec<&Status> {
        self.log
            .iter()
            .filter_map(|told| match told {
                Told::Status(status, _) => Some(status),
                Told::Delivery(_) => None,
            })
            .collect()
    }

    /// The statuses, each told again with new counts only once.
    fn changes(&self) -> Vec<&Status> {
        let mut changes = self.statuses();
        changes.dedup();
        changes
    }

    fn counts(&self) -> Vec<Counts> {
        self.log
            .iter()
            .filter_map(|told| match told {
                Told::Status(_, counts) => Some(*counts),
                Told::Delivery(_) => None,
            })
            .collect()
    }

    fn deliveries(&self) -> Vec<&Delivery> {
        self.log
            .iter()
            .filter_map(|told| match told {
                Told::Delivery(delivery) => Some(delivery),
                Told::Status(..) => None,
            })
            .collect()
    }

    fn messages(&self) -> Vec<&[u8]> {
        self.deliveries()
            .into_iter()
            .flat_map(|delivery| delivery.messages.iter().map(|message| &message[..]))
            .collect()
    }

    fn is(&self, status: &Status) -> bool {
        self.statuses().last() == Some(&status)
    }

    /// The errors of every `Down` so far.
    fn errors(&self) -> Vec<&str> {
        self.statuses()
            .into_iter()
            .filter_map(|status| match status {
                Status::Down { error, .. } => Some(error.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A client on a runtime of its own, until dropped.
struct Running {
    _runtime: Runtime,
    shutdown: CancellationToken,
    ended: mpsc::Receiver<()>,
}

impl Running {
    /// `start` starts the client on the runtime, to stop on the token and
    /// then say so on the sender.
    fn start(start: impl FnOnce(&Runtime, CancellationToken, mpsc::Sender<()>)) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shutdown = CancellationToken::new();
        let (ended, told) = mpsc::channel();
        start(&runtime, shutdown.clone(), ended);
        Running {
            _runtime: runtime,
            shutdown,
            ended: told,
        }
    }

    /// Fires the shutdown token; true when the client ended within `bound`.
    fn stops_within(self, bound: Duration) -> bool {
        self.shutdown.cancel();
        self.ended.recv_timeout(bound).is_ok()
    }
}
