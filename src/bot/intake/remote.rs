//! Remote feeds (`ws`, `poll`) plugged into the intake: their clients own
//! the connection (see [`super::feed`]); this is the sink they report to.
//! It decodes what they received with the source's decoder (its mapping,
//! or the bot's own format), sends it to the loop as one batch (a full
//! channel is the back-pressure that holds a feed), and keeps the source's
//! status and counts. A poller's cursor rides on the batch of its page as
//! the batch's checkpoint: the loop journals it after the page's
//! decisions, as a file's offset, and a restart starts from it.

use std::path::Path;
use std::time::Duration;

use super::feed::{Counts, Delivered, Delivery, FeedSink, Status};
use super::parsed::ParsedLines;
use super::poll::{PollConfig, Poller};
use super::sources_file::{PollSettings, WsSettings};
use super::ws::{Ping, WsClient, WsConfig};
use super::{IntakeError, Outlet};
use crate::backoff::Backoff;
use crate::bot::ledger::checkpoint::Checkpoint;

/// A remote feed's first wait before it connects again, and the longest.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(60);

struct Sink {
    outlet: Outlet,
    /// The cursor last handed to the loop: one that did not move is not
    /// journaled again at every round.
    cursor: Option<String>,
}

impl FeedSink for Sink {
    fn status(&mut self, status: &Status, counts: Counts) {
        let sources = &self.outlet.sources;
        sources.reconnected(self.outlet.index, counts.reconnects);
        sources.set(self.outlet.index, status.clone());
    }

    async fn deliver(&mut self, delivery: Delivery) -> Delivered {
        let mut items = ParsedLines::default();
        for message in &delivery.messages {
            self.outlet.decoder.message_into(message, &mut items);
        }
        let signals = items.signals() > 0;
        let mut batch = self.outlet.batch(items);
        // A page of nothing to decide still moves the cursor past it.
        let moved = delivery
            .cursor
            .filter(|cursor| self.cursor.as_ref() != Some(cursor));
        if batch.lines.is_empty() && moved.is_none() {
            return Delivered::NoSignal;
        }
        batch.checkpoint = moved.clone().map(Checkpoint::Cursor);
        if self.outlet.batches.send(batch).await.is_err() {
            return Delivered::Closed;
        }
        if moved.is_some() {
            self.cursor = moved;
        }
        if signals {
            Delivered::Signals
        } else {
            Delivered::NoSignal
        }
    }
}

/// Starts a `ws` source on a thread of its own.
pub(crate) fn spawn_ws(
    outlet: Outlet,
    settings: &WsSettings,
    quiet_after: Option<Duration>,
) -> Result<(), IntakeError> {
    let client = ws_client(&outlet.name, settings, quiet_after)?;
    let shutdown = outlet.shutdown.clone();
    let sink = Sink {
        outlet,
        cursor: None,
    };
    client
        .spawn(sink, shutdown)
        .map_err(IntakeError::start("ws source thread"))?;
    Ok(())
}

/// Starts a `poll` source on a thread of its own, from the cursor
/// journaled in `resume` (a file's checkpoint under its name is none).
pub(crate) fn spawn_poll(
    outlet: Outlet,
    settings: &PollSettings,
    quiet_after: Option<Duration>,
    resume: Option<Checkpoint>,
) -> Result<(), IntakeError> {
    let poller = poller(&outlet.name, settings, quiet_after)?;
    let shutdown = outlet.shutdown.clone();
    let cursor = match resume {
        Some(Checkpoint::Cursor(cursor)) => Some(cursor),
        Some(Checkpoint::File { .. }) | None => None,
    };
    if let Some(cursor) = &cursor {
        tracing::info!(source = %outlet.name, %cursor, "poll source: resuming from the journaled cursor");
    }
    let sink = Sink {
        outlet,
        cursor: cursor.clone(),
    };
    poller
        .spawn(sink, cursor, shutdown)
        .map_err(IntakeError::start("poll source thread"))?;
    Ok(())
}

/// Source `name`'s WebSocket client, its files read.
pub(crate) fn ws_client(
    name: &str,
    settings: &WsSettings,
    quiet_after: Option<Duration>,
) -> Result<WsClient, IntakeError> {
    let refused = refused(name);
    let certificates = ca_certificates(settings.ca_file.as_deref()).map_err(&refused)?;
    let config = WsConfig {
        url: settings.url.clone(),
        subscribe: settings.subscribe.clone(),
        ping: settings.ping_text.clone().map_or(Ping::Frames, Ping::Text),
        ping_interval: settings.ping_interval,
        quiet_after,
        headers: settings.headers.headers.clone(),
        tls: crate::tls::rustls_client(&certificates).map_err(&refused)?,
        backoff: Backoff::new(FIRST_WAIT, LONGEST_WAIT),
    };
    WsClient::new(config).map_err(refused)
}

/// Source `name`'s poller, its files read.
pub(crate) fn poller(
    name: &str,
    settings: &PollSettings,
    quiet_after: Option<Duration>,
) -> Result<Poller, IntakeError> {
    let refused = refused(name);
    let config = PollConfig {
        url: settings.url.clone(),
        interval: settings.interval,
        timeout: settings.timeout,
        headers: settings.headers.headers.clone(),
        ca_certificates: ca_certificates(settings.ca_file.as_deref()).map_err(&refused)?,
        cursor: settings.cursor.clone(),
        max_pages: settings.max_pages,
        quiet_after,
        backoff: Backoff::new(FIRST_WAIT, LONGEST_WAIT),
    };
    Poller::new(config).map_err(refused)
}

/// A source's settings that only starting it could check, refused.
fn refused(name: &str) -> impl Fn(String) -> IntakeError + '_ {
    move |problem| IntakeError::Source {
        name: name.to_owned(),
        problem,
    }
}

fn ca_certificates(file: Option<&Path>) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let Some(file) = file else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(file)
        .map_err(|error| format!("cannot read ca_file {}: {error}", file.display()))?;
    crate::tls::parse_pem_certificates(&pem)
        .map_err(|error| format!("ca_file {}: {error}", file.display()))
}
