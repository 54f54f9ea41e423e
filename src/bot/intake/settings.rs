//! What the intake reads and how: the command line (and the sources file)
//! build these, and nothing here knows how they were spelled. How the
//! webhook is reached and who may use it are the port's (`http::settings`).

use std::sync::Arc;
use std::time::Duration;

use super::decode::Decoder;
use super::sources_file::{Kind, SourceSettings};
use crate::bot::signal::Ids;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// In order: a source's index here is the one its batches carry.
    pub(crate) sources: Vec<SourceSettings>,
    /// How often a file source at end of file looks for appends, rotation
    /// and truncation.
    pub(crate) file_poll_interval: Duration,
    /// The first delay before an exited exec feed is restarted; it doubles
    /// with each restart up to `exec_backoff_max`.
    pub(crate) exec_backoff: Duration,
    pub(crate) exec_backoff_max: Duration,
}

impl SourceSettings {
    /// How its input becomes items: its mapping, or the bot's own format,
    /// in which a webhook's signals may come without an id (TradingView's
    /// templates have no placeholder for one) and get one derived from
    /// their content.
    pub(crate) fn decoder(&self) -> Decoder {
        match (&self.map, &self.kind) {
            (Some(map), _) => Decoder::Mapped(Arc::clone(map)),
            (None, Kind::Webhook) => Decoder::Own(Ids::Derived),
            (None, _) => Decoder::Own(Ids::Required),
        }
    }

    /// Whether the lines it delivered can be read again after a restart,
    /// from its journaled position: a file can, and a poller that pages by
    /// cursor; a feed process, stdin, a socket and a webhook client cannot.
    pub(crate) fn rereadable(&self) -> bool {
        match &self.kind {
            Kind::File { .. } => true,
            Kind::Poll(poll) => poll.cursor.is_some(),
            Kind::Exec { .. } | Kind::Stdin | Kind::Webhook | Kind::Ws(_) => false,
        }
    }
}
