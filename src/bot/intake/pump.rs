//! The read → split → batch → send steps every byte-stream source shares
//! (exec's stdout, stdin, a file). A read fills one buffer, its whole
//! lines go end to end into one [`Lines`] and are parsed into one
//! [`Batch`] right here, on the reader's task or thread, so the loop only
//! decides them: no allocation per line, and parsing beside the loop. A
//! line cut by the end of a read waits in the splitter for the next.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::lines::{LineSplitter, Lines};
use super::{Batch, Outlet};

/// The size of a read, and so the most line bytes one batch carries (a
/// parsed one is about 160 KiB: the loop's channel bounds how many wait).
const CHUNK: usize = 64 * 1024;

/// A stream's buffer and its line splitter; what it hands out are batches.
pub(crate) struct Pump {
    outlet: Outlet,
    buffer: Box<[u8]>,
    splitter: LineSplitter,
}

impl Pump {
    pub(crate) fn new(outlet: &Outlet) -> Self {
        Pump {
            outlet: outlet.clone(),
            buffer: vec![0; CHUNK].into_boxed_slice(),
            splitter: LineSplitter::default(),
        }
    }

    /// Where the next read goes; [`Pump::batch`] then takes what it read.
    pub(crate) fn buffer(&mut self) -> &mut [u8] {
        &mut self.buffer
    }

    /// The lines a read of `count` bytes into the buffer completed, if any.
    pub(crate) fn batch(&mut self, count: usize) -> Option<Batch> {
        // What the read holds; the end of a line the last read cut, if
        // any, grows it once.
        let mut lines = Lines::with_capacity(count);
        self.splitter.push(&self.buffer[..count], &mut lines);
        self.batch_of(lines)
    }

    /// At the end of the stream: its last line, newline or not.
    pub(crate) fn end(&mut self) -> Option<Batch> {
        let mut lines = Lines::default();
        self.splitter.finish(&mut lines);
        self.batch_of(lines)
    }

    /// Bytes read but not yet in a batch (a line still waiting for its newline).
    pub(crate) fn pending(&self) -> usize {
        self.splitter.pending()
    }

    /// Forgets a waiting partial line: the stream starts over (a truncated file).
    pub(crate) fn clear(&mut self) {
        self.splitter.clear();
    }

    fn batch_of(&self, lines: Lines) -> Option<Batch> {
        (!lines.is_empty()).then(|| self.outlet.batch(self.outlet.decoder.lines(lines)))
    }
}

/// How an async stream's pumping ended.
pub(crate) enum Pumped {
    /// The stream ended (end of file, or a read failed), its last line sent.
    Ended(io::Result<()>),
    /// Stopping, or the loop is gone: the stream may hold more.
    Stopped,
}

/// Sends `reader`'s lines to the loop until the stream ends or the source
/// must stop. A send waits while the loop is behind: that wait is the
/// back-pressure that holds a feed while the journal cannot be written.
pub(crate) async fn run(reader: &mut (impl AsyncRead + Unpin), outlet: &Outlet) -> Pumped {
    let mut pump = Pump::new(outlet);
    loop {
        let read = tokio::select! {
            () = outlet.shutdown.cancelled() => return Pumped::Stopped,
            read = reader.read(pump.buffer()) => read,
        };
        let (batch, ended) = match read {
            Ok(0) => (pump.end(), Some(Ok(()))),
            Ok(count) => (pump.batch(count), None),
            Err(error) => (pump.end(), Some(Err(error))),
        };
        if let Some(batch) = batch {
            if outlet.batches.send(batch).await.is_err() {
                return Pumped::Stopped;
            }
        }
        if let Some(ended) = ended {
            return Pumped::Ended(ended);
        }
    }
}
