//! Logging: the journal when stderr is the journal, else text or JSON on
//! stderr. The filter can be changed at run time (SIGHUP).

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Where and how to log, validated once by `cli`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) format: LogFormat,
    /// An `EnvFilter` directive list, already checked to parse.
    pub(crate) filter: String,
    /// `JOURNAL_STREAM`'s device and inode: stderr is the journal when they match fd 2.
    pub(crate) journal_stream: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Changes the log filter of the running process.
#[derive(Clone)]
pub(crate) struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl LogControl {
    pub(crate) fn set_filter(&self, directives: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(directives).map_err(|error| error.to_string())?;
        self.filter
            .reload(filter)
            .map_err(|error| error.to_string())
    }
}

/// Where log lines went, for the one line that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    Journald,
    Stderr(LogFormat),
}

/// stderr is the journal when `JOURNAL_STREAM` names its device and inode.
fn stderr_is_journal(journal_stream: Option<(u64, u64)>) -> bool {
    let Some((device, inode)) = journal_stream else {
        return false;
    };
    rustix::fs::fstat(std::io::stderr().as_fd())
        .is_ok_and(|stat| stat.st_dev == device && stat.st_ino == inode)
}

pub(crate) fn init(settings: &Settings) -> (LogControl, Sink) {
    // The filter was validated with the config; "info" is only a fallback.
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);

    let journald = stderr_is_journal(settings.journal_stream)
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|layer| {
            layer
                .with_syslog_identifier("tradingbot".to_owned())
                .with_priority_mappings(tracing_journald::PriorityMappings {
                    // The crate maps INFO to notice (5); `journalctl -p info` expects 6.
                    info: tracing_journald::Priority::Informational,
                    ..tracing_journald::PriorityMappings::new()
                })
        });
    let sink = match (&journald, settings.format) {
        (Some(_), _) => Sink::Journald,
        (None, format) => Sink::Stderr(format),
    };
    let ansi = std::io::stderr().is_terminal();
    let text = (sink == Sink::Stderr(LogFormat::Text)).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .boxed()
    });
    let json = (sink == Sink::Stderr(LogFormat::Json)).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(without_http_client_detail())
        .with(journald)
        .with(text)
        .with(json)
        .try_init();
    (LogControl { filter: handle }, sink)
}

/// Alerts (issue 14): the HTTP client (ureq) logs request lines and
/// headers at debug and trace, and a webhook URL's path is its token. No
/// RUST_LOG may show them: below WARN, its records are dropped.
fn without_http_client_detail() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::filter_fn(|metadata| {
        !metadata.target().starts_with("ureq") || *metadata.level() <= tracing::Level::WARN
    })
}
