//! `stdin`: signal lines piped into the daemon. Nothing can replay them, so
//! a line read is a line handed to the loop; at end of input the source
//! ends and the bot goes on with its other sources (or idles).

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::{LineSplitter, Lines};
use super::{Batch, ParsedLines};

pub async fn run(index: usize, batches: mpsc::Sender<Batch>, shutdown: CancellationToken) {
    let mut stdin = tokio::io::stdin();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut splitter = LineSplitter::default();
    loop {
        let read = tokio::select! {
            () = shutdown.cancelled() => return,
            read = stdin.read(&mut buffer) => read,
        };
        if let Err(error) = &read {
            tracing::warn!(%error, "stdin source: read failed; the source ends");
        }
        let mut lines = Lines::default();
        let ended = splitter.feed(&read, &buffer, &mut lines);
        if !lines.is_empty() {
            let batch = Batch {
                source: index,
                lines: ParsedLines::new(lines),
                checkpoint: None,
                reply: None,
            };
            if batches.send(batch).await.is_err() {
                return;
            }
        }
        if ended {
            tracing::info!("stdin source: end of input");
            return;
        }
    }
}
