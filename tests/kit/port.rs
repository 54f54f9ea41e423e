//! Ports the test must choose for the daemon. The health port needs none
//! (the daemon binds `PORT=0` and says which port it got); a second
//! listener such as `WEBHOOK_BIND` does, and a port merely "free a moment
//! ago" can be taken by a parallel test before the daemon binds it. So the
//! test binds it and holds it until just before the spawn.

use std::net::{SocketAddr, TcpListener};

use super::wait::{wait_until, SOON};

/// A loopback address held bound until released (see `Builder::bind_env`).
pub struct Reserved {
    listener: TcpListener,
}

impl Reserved {
    /// A free loopback port, bound now.
    pub fn loopback() -> Self {
        Reserved {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    /// `addr` again, for the next daemon on the same address (a restart):
    /// bound as soon as the last one has let go of it.
    pub fn again(addr: SocketAddr) -> Self {
        let mut listener = None;
        let bound = wait_until(SOON, || {
            listener = TcpListener::bind(addr).ok();
            listener.is_some()
        });
        assert!(bound, "{addr} still taken after {SOON:?}");
        Reserved {
            listener: listener.unwrap(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }
}
