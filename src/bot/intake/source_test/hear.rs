//! Hearing one source for `source-test`: what it receives and how it is
//! doing, over one channel, with nothing of the bot behind it (no loop, no
//! journal). A `ws` or `poll` source is its real client with a sink that
//! passes everything on; the others are read here as their sources would
//! read them, minus what needs the journal (a file is read from its start,
//! not from its checkpoint) and the restarts (a feed process that exits
//! ends the test).

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::super::decode::Came;
use super::super::exec::{self, terminate};
use super::super::feed::{Counts, Delivered, Delivery, FeedSink, Status};
use super::super::lines::{Line, LineSplitter, Lines};
use super::super::remote;
use super::super::sources_file::Kind;
use super::super::IntakeError;
use super::Request;

/// One thing heard from the source.
pub(super) enum Heard {
    Status(Status),
    /// A whole message (a frame, a page, a body) or a line.
    Message(Bytes),
    /// A line over the limit, by its length.
    TooLong(usize),
    /// The input ended, as input does (stdin, a webhook body).
    End(String),
    /// The source failed, and a test cannot go on without the bot's
    /// restarts (a feed process that could not start, or exited).
    Failed(String),
}

/// A source being heard.
pub(super) struct Hearing {
    /// How its messages came, which decides how the bot's own format
    /// splits them.
    pub(super) came: Came,
    /// What must finish before the test ends (a feed process's group is
    /// terminated there); the rest ends with the runtime.
    pub(super) cleanup: Option<JoinHandle<()>>,
}

/// Starts hearing `request`'s source: its news goes to `heard` until
/// `shutdown`, or until `heard` is dropped.
pub(super) fn start(
    request: &Request,
    heard: mpsc::Sender<Heard>,
    shutdown: &CancellationToken,
) -> Result<Hearing, IntakeError> {
    let source = &request.source;
    let (came, cleanup) = match &source.kind {
        Kind::Ws(settings) => {
            let client = remote::ws_client(&source.name, settings, None)?;
            tokio::spawn(client.run(Relay(heard), shutdown.clone()));
            (Came::Frame, None)
        }
        Kind::Poll(settings) => {
            remote::poller(&source.name, settings, None)?
                .spawn(Relay(heard), None, shutdown.clone())
                .map_err(IntakeError::start("poll source thread"))?;
            (Came::Frame, None)
        }
        Kind::File { path } => {
            tokio::spawn(file(path.clone(), request.file_poll_interval, heard));
            (Came::Line, None)
        }
        Kind::Exec { command } => {
            let run = exec(command.clone(), heard, shutdown.clone());
            (Came::Line, Some(tokio::spawn(run)))
        }
        Kind::Stdin => {
            tokio::spawn(stdin(heard));
            (Came::Line, None)
        }
        Kind::Webhook => {
            tokio::spawn(body(request.body_limit, heard));
            (Came::Body, None)
        }
    };
    Ok(Hearing { came, cleanup })
}

/// A remote client's sink that passes on what it is told.
struct Relay(mpsc::Sender<Heard>);

impl FeedSink for Relay {
    fn status(&mut self, status: &Status, _counts: Counts) {
        // A status is news only while the test listens; a full channel
        // means it has heard enough.
        let _ = self.0.try_send(Heard::Status(status.clone()));
    }

    async fn deliver(&mut self, delivery: Delivery) -> Delivered {
        for message in delivery.messages {
            if self.0.send(Heard::Message(message)).await.is_err() {
                return Delivered::Closed;
            }
        }
        Delivered::NoSignal
    }
}

/// A file's lines from its start, then its appends; it is opened again
/// every `poll` while it cannot be.
async fn file(path: std::path::PathBuf, poll: Duration, heard: mpsc::Sender<Heard>) {
    let mut file = loop {
        match tokio::fs::File::open(&path).await {
            Ok(file) => break file,
            Err(error) => {
                let status = Status::Down {
                    error: format!("cannot open {}: {error}", path.display()),
                    retry_in: poll,
                };
                if heard.send(Heard::Status(status)).await.is_err() {
                    return;
                }
                tokio::time::sleep(poll).await;
            }
        }
    };
    if heard.send(Heard::Status(Status::Up)).await.is_ok() {
        if let Err(error) = lines(&mut file, Some(poll), &heard).await {
            let _ = heard.send(Heard::Failed(read_failed(&path, &error))).await;
        }
    }
}

fn read_failed(path: &Path, error: &io::Error) -> String {
    format!("cannot read {}: {error}", path.display())
}

/// A feed process's stdout lines, until it ends or the test does; its
/// stderr is the test's.
async fn exec(command: Vec<String>, heard: mpsc::Sender<Heard>, shutdown: CancellationToken) {
    let mut child = match exec::start(&command, Stdio::inherit()) {
        Ok(child) => child,
        Err(error) => {
            let program = command.first().map_or("", String::as_str);
            let failed = format!("cannot start the feed process {program}: {error}");
            let _ = heard.send(Heard::Failed(failed)).await;
            return;
        }
    };
    let Some(mut stdout) = child.stdout.take() else {
        return terminate(&mut child).await;
    };
    let _ = heard.send(Heard::Status(Status::Up)).await;
    let read = tokio::select! {
        () = shutdown.cancelled() => return terminate(&mut child).await,
        read = lines(&mut stdout, None, &heard) => read,
    };
    // Its stdout is done; whatever of its group lives on goes too.
    terminate(&mut child).await;
    let ended = match (read, child.wait().await) {
        (Err(error), _) => format!("reading the feed process failed: {error}"),
        (Ok(()), Ok(status)) => format!("the feed process closed its stdout ({status})"),
        (Ok(()), Err(error)) => format!("the feed process closed its stdout ({error})"),
    };
    let _ = heard.send(Heard::Failed(ended)).await;
}

/// Lines piped into the test, until their end.
async fn stdin(heard: mpsc::Sender<Heard>) {
    let _ = heard.send(Heard::Status(Status::Up)).await;
    let end = match lines(&mut tokio::io::stdin(), None, &heard).await {
        Ok(()) => Heard::End("end of input".to_owned()),
        Err(error) => Heard::Failed(format!("cannot read stdin: {error}")),
    };
    let _ = heard.send(end).await;
}

/// One webhook body, read from stdin whole, at most `limit` bytes.
async fn body(limit: usize, heard: mpsc::Sender<Heard>) {
    let mut body = Vec::new();
    let read = tokio::io::stdin()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .await;
    let end = match read {
        Err(error) => Heard::Failed(format!("cannot read stdin: {error}")),
        Ok(_) if body.len() > limit => Heard::Failed(format!(
            "the body is over the {limit}-byte limit (WEBHOOK_BODY_LIMIT): the webhook answers 413"
        )),
        Ok(_) => {
            let _ = heard.send(Heard::Status(Status::Up)).await;
            let _ = heard.send(Heard::Message(Bytes::from(body))).await;
            Heard::End("end of the body".to_owned())
        }
    };
    let _ = heard.send(end).await;
}

/// Sends `reader`'s lines, as the bot splits them, until it ends; with
/// `follow`, its end is waited out that long at a time (a file that grows).
async fn lines(
    reader: &mut (impl AsyncRead + Unpin),
    follow: Option<Duration>,
    heard: &mpsc::Sender<Heard>,
) -> io::Result<()> {
    let mut buffer = vec![0; 64 * 1024];
    let mut splitter = LineSplitter::default();
    loop {
        let read = reader.read(&mut buffer).await;
        if let (Ok(0), Some(wait)) = (&read, follow) {
            tokio::time::sleep(wait).await;
            continue;
        }
        let mut lines = Lines::default();
        let ended = splitter.feed(&read, &buffer, &mut lines);
        for line in lines.iter() {
            let line = match line {
                Line::Bytes(bytes) => Heard::Message(Bytes::copy_from_slice(bytes)),
                Line::TooLong(length) => Heard::TooLong(length),
            };
            if heard.send(line).await.is_err() {
                return Ok(());
            }
        }
        if ended {
            return read.map(drop);
        }
    }
}
