//! `tradingbot journal`'s flags, converted into the query's plain request.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::values::parse_duration;
use crate::bot::ledger::query::{Query, Request};
use crate::bot::signal::Reason;

#[derive(Debug, Clone, Args)]
pub(super) struct JournalArgs {
    /// The state directory whose journal to read. Read-only and without
    /// the lock: safe while the daemon runs.
    #[arg(long, env = "STATE_DIR", default_value = "./state", value_name = "DIR")]
    state_dir: PathBuf,

    /// One JSON object a line instead of a table.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: JournalCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum JournalCommand {
    /// Fills, oldest first.
    Fills {
        #[command(flatten)]
        span: Span,
        /// Only this symbol.
        #[arg(long, value_name = "SYMBOL")]
        symbol: Option<String>,
    },
    /// Rejected lines and signals, oldest first.
    Rejects {
        #[command(flatten)]
        span: Span,
        /// Only this reason (a label of tradingbot_rejects_total).
        #[arg(long, value_name = "REASON", value_parser = PossibleValuesParser::new(Reason::ALL.map(Reason::label)))]
        reason: Option<String>,
    },
    /// Positions replayed from the journal, compared with the newest
    /// snapshot (exit 1 if they differ).
    Positions,
    /// Realized profit and loss, by symbol or by day (UTC).
    Pnl {
        #[arg(long, value_enum, default_value = "symbol")]
        by: PnlBy,
    },
    /// Checks the journal: torn, corrupt or damaged records (a checksum
    /// that does not match), sequence gaps, ids decided twice within the
    /// window, and every snapshot (intact, at a record of this journal,
    /// equal to the replay up to it). Exits 1 naming the first problem.
    Verify {
        /// The daemon's DEDUPE_WINDOW, for the records no snapshot records
        /// it for (a journal without snapshots, or of an earlier release):
        /// an id decided twice within it is a problem. Unset: the window
        /// the oldest snapshot records, else 7d.
        #[arg(long, env = "DEDUPE_WINDOW", value_parser = parse_duration, value_name = "DURATION")]
        dedupe_window: Option<Duration>,
    },
}

/// When a fill or reject was decided (its `at`).
#[derive(Debug, Clone, Args)]
struct Span {
    /// From this time on: RFC 3339, epoch milliseconds, or a duration ago (90m, 2h, 7d).
    #[arg(long, value_parser = parse_instant, value_name = "TIME")]
    since: Option<i64>,
    /// Before this time (same forms).
    #[arg(long, value_parser = parse_instant, value_name = "TIME")]
    until: Option<i64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PnlBy {
    Day,
    Symbol,
}

/// An instant as epoch milliseconds: RFC 3339, epoch ms, or a duration ago.
fn parse_instant(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        "expected an RFC 3339 time, epoch milliseconds, or a duration ago like 2h".to_owned()
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ok(now.saturating_sub(ago).as_millis() as i64)
}

impl JournalArgs {
    pub(super) fn into_request(self) -> Request {
        let query = match self.command {
            JournalCommand::Fills { span, symbol } => Query::Fills {
                since: span.since,
                until: span.until,
                symbol,
            },
            JournalCommand::Rejects { span, reason } => Query::Rejects {
                since: span.since,
                until: span.until,
                reason,
            },
            JournalCommand::Positions => Query::Positions,
            JournalCommand::Pnl { by } => Query::Pnl {
                by_day: matches!(by, PnlBy::Day),
            },
            JournalCommand::Verify { dedupe_window } => Query::Verify { dedupe_window },
        };
        Request {
            state_dir: self.state_dir,
            json: self.json,
            query,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_three_forms() {
        assert_eq!(parse_instant("1714557600250"), Ok(1_714_557_600_250));
        assert_eq!(
            parse_instant("2024-05-01T12:00:00.250+02:00"),
            Ok(1_714_557_600_250)
        );
        let hour_ago = parse_instant("1h").unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((now - 3_600_000 - hour_ago).abs() < 5_000);
        assert!(parse_instant("yesterday").is_err());
    }
}
