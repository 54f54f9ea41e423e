//! `stdin`: signal lines piped into the daemon. Nothing can replay them, so
//! a line read is a line handed to the loop; at end of input the source
//! ends and the bot goes on with its other sources (or idles).

use super::feed::Status;
use super::pump::{self, Pumped};
use super::Outlet;

pub(crate) fn spawn(outlet: Outlet) {
    // Open from the start: a pipe has no connection to wait for.
    outlet.set_status(Status::Up);
    tokio::spawn(async move {
        if let Pumped::Ended(ended) = pump::run(&mut tokio::io::stdin(), &outlet).await {
            if let Err(error) = ended {
                tracing::warn!(%error, "stdin source: read failed; the source ends");
            }
            tracing::info!("stdin source: end of input");
        }
    });
}
