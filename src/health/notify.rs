//! sd_notify: the datagrams that tell systemd (or any manager speaking the
//! protocol) how the daemon is doing.
//!
//! Written here rather than with the sd-notify crate: that crate connects to
//! `NOTIFY_SOCKET` verbatim, so an abstract `@name` socket silently fails,
//! and the whole protocol is one datagram per message.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where `NOTIFY_SOCKET` points: a path, or an abstract name (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifySocket {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl NotifySocket {
    pub fn parse(value: impl AsRef<OsStr>) -> Result<Self, String> {
        let bytes = value.as_ref().as_bytes();
        match bytes.first() {
            Some(b'@') => Ok(NotifySocket::Abstract(bytes[1..].to_vec())),
            Some(b'/') => Ok(NotifySocket::Path(OsStr::from_bytes(bytes).into())),
            _ => Err(format!(
                "{:?} is neither an absolute path nor an @abstract socket name",
                value.as_ref()
            )),
        }
    }

    fn address(&self) -> io::Result<SocketAddr> {
        match self {
            NotifySocket::Path(path) => SocketAddr::from_pathname(path),
            NotifySocket::Abstract(name) => SocketAddr::from_abstract_name(name),
        }
    }
}

/// The systemd watchdog, when it is armed for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    pub timeout: Duration,
}

impl Watchdog {
    /// `WATCHDOG_USEC` counts only when `WATCHDOG_PID` is unset or names us:
    /// a child that inherited the variables must not ping for its parent.
    pub fn from_env(
        usec: Option<&OsStr>,
        pid: Option<&OsStr>,
        own_pid: u32,
    ) -> Result<Option<Self>, String> {
        let Some(usec) = usec else { return Ok(None) };
        if let Some(pid) = pid {
            if pid.to_str().and_then(|pid| pid.parse::<u32>().ok()) != Some(own_pid) {
                return Ok(None);
            }
        }
        let micros: u64 = usec
            .to_str()
            .and_then(|usec| usec.parse().ok())
            .ok_or_else(|| format!("{usec:?} is not a number of microseconds"))?;
        if micros == 0 {
            return Ok(None);
        }
        Ok(Some(Watchdog {
            timeout: Duration::from_micros(micros),
        }))
    }
}

/// A manager that stops reading its socket fills the datagram queue; past
/// this, a message is dropped rather than wedging the judge or a stop.
const SEND_TIMEOUT: Duration = Duration::from_millis(200);

/// Sends notifications; a no-op without `NOTIFY_SOCKET`. Safe to share
/// between threads: each message is one `sendto`.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Set while sends fail, so the failure is logged once, not every tick.
    failing: AtomicBool,
}

impl Notifier {
    pub fn new(socket: Option<&NotifySocket>) -> io::Result<Self> {
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

    pub fn disabled() -> Self {
        Notifier {
            target: None,
            failing: AtomicBool::new(false),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
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

    pub fn ready(&self, status: &str) {
        self.send_logged(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send_logged(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        self.send_logged("WATCHDOG=1");
    }

    /// Asks the manager to act as if the watchdog had expired.
    pub fn watchdog_trigger(&self, status: &str) {
        self.send_logged(&format!("WATCHDOG=trigger\nSTATUS={}", one_line(status)));
    }

    pub fn stopping(&self) {
        self.send_logged("STOPPING=1\nSTATUS=stopping");
    }

    /// systemd ≥ 253 rejects `RELOADING=1` without `MONOTONIC_USEC`, which
    /// must come from `CLOCK_MONOTONIC`, not the wall clock.
    pub fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.send_logged(&format!(
            "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading"
        ));
    }

    /// Asks for more start-up time while init is slow.
    pub fn extend_timeout(&self, by: Duration) {
        self.send_logged(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()));
    }
}

/// A newline in `STATUS=` would start a new `KEY=` line.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_and_abstract_sockets() {
        assert_eq!(
            NotifySocket::parse("/run/systemd/notify"),
            Ok(NotifySocket::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifySocket::parse("@tb-notify"),
            Ok(NotifySocket::Abstract(b"tb-notify".to_vec()))
        );
        assert!(NotifySocket::parse("relative").is_err());
    }

    #[test]
    fn watchdog_pid_must_be_ours() {
        let usec = Some(OsStr::new("4000000"));
        assert_eq!(
            Watchdog::from_env(usec, None, 7),
            Ok(Some(Watchdog {
                timeout: Duration::from_secs(4)
            }))
        );
        assert!(Watchdog::from_env(usec, Some(OsStr::new("7")), 7)
            .unwrap()
            .is_some());
        assert_eq!(Watchdog::from_env(usec, Some(OsStr::new("8")), 7), Ok(None));
        assert_eq!(Watchdog::from_env(Some(OsStr::new("0")), None, 7), Ok(None));
        assert!(Watchdog::from_env(Some(OsStr::new("x")), None, 7).is_err());
    }

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
