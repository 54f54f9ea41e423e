//! Remote feeds (`ws`, `poll`) plugged into the intake: their clients own
//! the connection (see [`super::feed`]); this is the sink they report to.
//! It decodes what they received with the source's decoder (its mapping,
//! or the bot's own format), sends it to the loop as one batch (a full
//! channel is the back-pressure that holds a feed), and keeps the source's
//! status and counts.

use std::path::Path;
use std::time::Duration;

use super::feed::{Counts, Delivered, Delivery, FeedSink, Status};
use super::parsed::ParsedLines;
use super::poll::{PollConfig, Poller};
use super::sources_file::{PollSettings, WsSettings};
use super::ws::{Ping, WsClient, WsConfig};
use super::{IntakeError, Outlet};
use crate::backoff::Backoff;

/// A remote feed's first wait before it connects again, and the longest.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(60);

struct Sink {
    outlet: Outlet,
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
        let batch = self.outlet.batch(items);
        if batch.lines.is_empty() {
            return Delivered::NoSignal;
        }
        if self.outlet.batches.send(batch).await.is_err() {
            return Delivered::Closed;
        }
        if signals {
            Delivered::Signals
        } else {
            Delivered::NoSignal
        }
    }
}

/// Starts a `ws` source as a task of the bot's runtime.
pub(crate) fn spawn_ws(
    outlet: Outlet,
    settings: &WsSettings,
    quiet_after: Option<Duration>,
) -> Result<(), IntakeError> {
    let refused = |problem: String| IntakeError::Source {
        name: outlet.name.clone(),
        problem,
    };
    let certificates = ca_certificates(settings.ca_file.as_deref()).map_err(refused)?;
    let config = WsConfig {
        url: settings.url.clone(),
        subscribe: settings.subscribe.clone(),
        ping: settings.ping_text.clone().map_or(Ping::Frames, Ping::Text),
        ping_interval: settings.ping_interval,
        quiet_after,
        headers: settings.headers.headers.clone(),
        tls: crate::tls::rustls_client(&certificates).map_err(refused)?,
        backoff: Backoff::new(FIRST_WAIT, LONGEST_WAIT),
    };
    let client = WsClient::new(config).map_err(refused)?;
    let shutdown = outlet.shutdown.clone();
    client
        .spawn(Sink { outlet }, shutdown)
        .map_err(IntakeError::start("ws source thread"))?;
    Ok(())
}

/// Starts a `poll` source on a thread of its own.
pub(crate) fn spawn_poll(
    outlet: Outlet,
    settings: &PollSettings,
    quiet_after: Option<Duration>,
) -> Result<(), IntakeError> {
    let refused = |problem: String| IntakeError::Source {
        name: outlet.name.clone(),
        problem,
    };
    let config = PollConfig {
        url: settings.url.clone(),
        interval: settings.interval,
        timeout: settings.timeout,
        headers: settings.headers.headers.clone(),
        ca_certificates: ca_certificates(settings.ca_file.as_deref()).map_err(refused)?,
        cursor: settings.cursor.clone(),
        max_pages: settings.max_pages,
        quiet_after,
        backoff: Backoff::new(FIRST_WAIT, LONGEST_WAIT),
    };
    let poller = Poller::new(config).map_err(refused)?;
    let shutdown = outlet.shutdown.clone();
    poller
        .spawn(Sink { outlet }, None, shutdown)
        .map_err(IntakeError::start("poll source thread"))?;
    Ok(())
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
