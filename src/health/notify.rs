//! sd_notify: the datagrams that tell systemd (or any manager speaking the
//! protocol) how the daemon is doing.
//!
//! Written here rather than with the sd-notify crate: that crate connects to
//! `NOTIFY_SOCKET` verbatim, so an abstract `@name` socket silently fails,
//! and the whole protocol is one datagram per message.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::settings::NotifySocket;

/// A manager that stops reading its socket fills the datagram queue; past
/// this, a message is dropped rather than wedging the judge or a stop.
const SEND_TIMEOUT: Duration = Duration::from_millis(200);

/// Sends notifications; a no-op without `NOTIFY_SOCKET`. Safe to share
/// between threads: each message is one `sendto`.
#[derive(Debug)]
pub(crate) struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Set while sends fail, so the failure is logged once, not every tick.
    failing: AtomicBool,
}

impl Notifier {
    pub(crate) fn new(socket: Option<&NotifySocket>) -> io::Result<Self> {
        let target = match socket {
            None => None,
            Some(socket) => {
                let datagram = UnixDatagram::unbound()?;
                datagram.set_write_timeout(Some(SEND_TIMEOUT))?;
                Some((datagram, socket.address()?))
            }
        };
        Ok(Notifier {
            target,
            failing: AtomicBool::new(false),
        })
    }

    pub(crate) fn disabled() -> Self {
        Notifier {
            target: None,
            failing: AtomicBool::new(false),
        }
    }

    fn send(&self, message: &str) -> io::Result<()> {
        match &self.target {
            Some((socket, address)) => socket.send_to_addr(message.as_bytes(), address).map(drop),
            None => Ok(()),
        }
    }

    fn send_logged(&self, message: &str) {
        match self.send(message) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("sd_notify works again");
                }
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    let kind = message.split('=').next().unwrap_or_default();
                    tracing::warn!(%error, message = kind, "sd_notify failed; messages are dropped until it works");
                }
            }
        }
    }

    pub(crate) fn ready(&self, status: &str) {
        self.send_logged(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub(crate) fn status(&self, status: &str) {
        self.send_logged(&format!("STATUS={}", one_line(status)));
    }

    pub(crate) fn watchdog(&self) {
        self.send_logged("WATCHDOG=1");
    }

    /// Asks the manager to act as if the watchdog had expired.
    pub(crate) fn watchdog_trigger(&self, status: &str) {
        self.send_logged(&format!("WATCHDOG=trigger\nSTATUS={}", one_line(status)));
    }

    pub(crate) fn stopping(&self) {
        self.send_logged("STOPPING=1\nSTATUS=stopping");
    }

    /// systemd ≥ 253 rejects `RELOADING=1` without `MONOTONIC_USEC`, which
    /// must come from `CLOCK_MONOTONIC`, not the wall clock.
    pub(crate) fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.send_logged(&format!(
            "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading"
        ));
    }

    /// Asks for more start-up time while init is slow.
    pub(crate) fn extend_timeout(&self, by: Duration) {
        self.send_logged(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()));
    }
}

/// A newline in `STATUS=` would start a new `KEY=` line.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use std::os::linux::net::SocketAddrExt;

    use super::*;

    #[test]
    fn sends_to_an_abstract_socket_without_newlines_in_status() {
        let name = format!("tradingbot-unit-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier::new(Some(&NotifySocket::Abstract(name.into_bytes()))).unwrap();
        notifier.status("two\nlines");
        let mut buffer = [0u8; 256];
        let length = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"STATUS=two lines");
    }
}
