//! What the intake reads and how. A leaf (std only): the command line
//! builds these, and nothing here knows how it was spelled. How the
//! webhook is reached and who may use it are the port's (`http::settings`).

use std::path::PathBuf;
use std::time::Duration;

use super::decode::Decoder;
use crate::bot::signal::Ids;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// In order: a source's index here is the one its batches carry.
    pub(crate) sources: Vec<SourceSpec>,
    /// How often a file source at end of file looks for appends, rotation
    /// and truncation.
    pub(crate) file_poll_interval: Duration,
    /// The first delay before an exited exec feed is restarted; it doubles
    /// with each restart up to `exec_backoff_max`.
    pub(crate) exec_backoff: Duration,
    pub(crate) exec_backoff_max: Duration,
}

/// One `--source` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceSpec {
    /// `file:PATH`: tail a JSONL file.
    File(PathBuf),
    /// `exec:COMMAND ARGS...`: read a feed process's stdout.
    Exec(Vec<String>),
    /// `webhook`: bodies posted to `POST /signals`, on the main port or `WEBHOOK_BIND`.
    Webhook,
    /// `stdin`.
    Stdin,
}

impl SourceSpec {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path, as in file:/var/lib/feed/signals.jsonl".into());
            }
            return Ok(SourceSpec::File(path.into()));
        }
        if let Some(command) = text.strip_prefix("exec:") {
            let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
            if words.is_empty() {
                return Err(
                    "exec: needs a command, as in exec:/usr/local/bin/feed --symbol BTC".into(),
                );
            }
            return Ok(SourceSpec::Exec(words));
        }
        match text {
            "webhook" => Ok(SourceSpec::Webhook),
            "stdin" | "-" => Ok(SourceSpec::Stdin),
            _ => Err(format!(
                "{text:?} is not a source: use file:PATH, exec:COMMAND ARGS..., webhook or stdin"
            )),
        }
    }

    /// The name journal records carry, e.g. `file:/var/lib/feed/signals.jsonl`.
    pub(crate) fn name(&self) -> String {
        match self {
            SourceSpec::File(path) => format!("file:{}", path.display()),
            SourceSpec::Exec(words) => format!("exec:{}", words.join(" ")),
            SourceSpec::Webhook => "webhook".to_owned(),
            SourceSpec::Stdin => "stdin".to_owned(),
        }
    }

    /// How its input becomes items: the bot's own format; a webhook's
    /// signals may come without an id (TradingView's templates have no
    /// placeholder for one), and get one derived from their content.
    pub(crate) fn decoder(&self) -> Decoder {
        match self {
            SourceSpec::Webhook => Decoder::Own(Ids::Derived),
            _ => Decoder::Own(Ids::Required),
        }
    }

    /// Whether the lines it delivered can be read again after a restart,
    /// from its journaled checkpoint: a file can; a feed process, stdin
    /// and a webhook client cannot.
    pub(crate) fn rereadable(&self) -> bool {
        matches!(self, SourceSpec::File(_))
    }

    /// A short name for logs and metric labels.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            SourceSpec::File(_) => "file",
            SourceSpec::Exec(_) => "exec",
            SourceSpec::Webhook => "webhook",
            SourceSpec::Stdin => "stdin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            SourceSpec::parse("file:/x.jsonl"),
            Ok(SourceSpec::File("/x.jsonl".into()))
        );
        assert_eq!(
            SourceSpec::parse("exec:feed --symbol BTC"),
            Ok(SourceSpec::Exec(vec![
                "feed".into(),
                "--symbol".into(),
                "BTC".into()
            ]))
        );
        assert_eq!(SourceSpec::parse("webhook"), Ok(SourceSpec::Webhook));
        assert_eq!(SourceSpec::parse("stdin"), Ok(SourceSpec::Stdin));
        assert!(SourceSpec::parse("file:").is_err());
        assert!(SourceSpec::parse("kafka").is_err());
    }
}
