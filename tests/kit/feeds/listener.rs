//! What the fakes share: a listener on 127.0.0.1, port 0, whose accept
//! thread hands each connection, plain or TLS, to a thread of its own
//! until the fake is dropped; and one read of a WebSocket.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tungstenite::{Message, WebSocket};

/// A connection as a fake reads and writes it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }

    /// How long a read may wait before it returns `WouldBlock`.
    pub fn set_read_timeout(&self, timeout: Duration) {
        let _ = self.tcp().set_read_timeout(Some(timeout));
    }

    /// Closes the connection now, whatever is buffered.
    pub fn shutdown(&self) {
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buffer),
            Stream::Tls(tls) => tls.read(buffer),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buffer),
            Stream::Tls(tls) => tls.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// What one read of a fake's WebSocket came to.
pub enum Incoming {
    /// A text `ping`, answered `pong`.
    Ping,
    Message(Message),
    /// Nothing within the read timeout (the fakes look at their modes
    /// between reads).
    Nothing,
    /// A close (answered) or an error: the connection is over.
    Ended,
}

pub fn read(socket: &mut WebSocket<Stream>) -> Incoming {
    match socket.read() {
        Ok(Message::Text(text)) if text.as_str() == "ping" => {
            match socket.send(Message::text("pong")) {
                Ok(()) => Incoming::Ping,
                Err(_) => Incoming::Ended,
            }
        }
        Ok(Message::Close(_)) => {
            let _ = socket.flush();
            Incoming::Ended
        }
        Ok(message) => Incoming::Message(message),
        Err(tungstenite::Error::Io(error))
            if matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Incoming::Nothing
        }
        Err(_) => Incoming::Ended,
    }
}

/// A bound listener and the flag that stops its threads.
pub struct Listener {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Serves every connection with `serve` on a thread of its own, over
    /// TLS when `tls` is given. `serve` should return once `stopped` says so.
    pub fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        serve: impl Fn(Stream, &AtomicBool) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let serve = Arc::new(serve);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let _ = tcp.set_nodelay(true);
                let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
                let stream = match &tls {
                    None => Stream::Plain(tcp),
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(Arc::clone(config))
                        else {
                            continue;
                        };
                        Stream::Tls(Box::new(rustls::StreamOwned::new(connection, tcp)))
                    }
                };
                let (serve, stopped) = (Arc::clone(&serve), Arc::clone(&stopped));
                std::thread::spawn(move || serve(stream, &stopped));
            }
        });
        Listener { addr, stop }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept thread so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}
