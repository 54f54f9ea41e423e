//! The health model's settings (ARCHITECTURE.md, "Design rules": truthful health), validated
//! once by `cli`; plain values, so this module depends on nothing else.

use std::ffi::OsStr;
use std::io;
use std::net::IpAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Tried in order; the first that binds serves every route.
    pub(crate) ports: Vec<u16>,
    pub(crate) bind: IpAddr,
    pub(crate) file: PathBuf,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) stall_timeout: Duration,
    pub(crate) stall_exit_after: Option<Duration>,
    pub(crate) startup_grace: Duration,
    /// On a forced stop's deadline: the longest the drain may take.
    pub(crate) drain_timeout: Duration,
    pub(crate) notify_socket: Option<NotifySocket>,
    pub(crate) watchdog: Option<Watchdog>,
}

impl Settings {
    /// The judge's tick: the heartbeat interval, or half the watchdog
    /// timeout if that is shorter (systemd's own advice for the ping rate).
    pub(crate) fn tick(&self) -> Duration {
        match &self.watchdog {
            Some(watchdog) => self.heartbeat_interval.min(watchdog.timeout / 2),
            None => self.heartbeat_interval,
        }
    }
}

/// `tradingbot health`: the probe's settings.
#[derive(Debug, Clone)]
pub(crate) struct ProbeSettings {
    pub(crate) file: PathBuf,
    pub(crate) max_age: Duration,
    pub(crate) http: bool,
    pub(crate) timeout: Duration,
    /// GET `/health` here and skip the file (`tradingbot web` keeps none).
    pub(crate) addr: Option<std::net::SocketAddr>,
}

/// Where `NOTIFY_SOCKET` points: a path, or an abstract name (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotifySocket {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl NotifySocket {
    pub(crate) fn parse(value: impl AsRef<OsStr>) -> Result<Self, String> {
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

    pub(crate) fn address(&self) -> io::Result<SocketAddr> {
        match self {
            NotifySocket::Path(path) => SocketAddr::from_pathname(path),
            NotifySocket::Abstract(name) => SocketAddr::from_abstract_name(name),
        }
    }
}

/// The systemd watchdog, when it is armed for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watchdog {
    pub(crate) timeout: Duration,
}

impl Watchdog {
    /// `WATCHDOG_USEC` counts only when `WATCHDOG_PID` is unset or names us:
    /// a child that inherited the variables must not ping for its parent.
    pub(crate) fn from_env(
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
}
