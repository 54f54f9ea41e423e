//! `tradingbot run`'s flags, a group per module, and their conversion into
//! each module's settings. A new setting: its field in its module's
//! `Settings`, its flag in its group here, its use.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, ValueEnum};

use super::alerts::AlertArgs;
use super::values::{parse_decimal, parse_duration, parse_positive, parse_size};
use super::{invalid, ConfigError};
use crate::bot::account::{Limits, Terms};
use crate::bot::intake::{self, sources_file, Kind, SourceSettings};
use crate::bot::ledger::settings as ledger;
use crate::bot::money::{self, Amount, BasisPoints, Quantity, Rounding, PLACES};
use crate::bot::settings::{self as bot, FsyncPolicy};
use crate::bot::symbols::{SymbolSettings, DEFAULT_MAX_SYMBOLS, DEFAULT_METRICS_MAX_SYMBOLS};
use crate::daemon::settings as daemon;
use crate::daemon::settings::Config;
use crate::health::settings::{self as health, NotifySocket, Watchdog};
use crate::http::settings::{self as http, Cidr, WebhookSettings};
use crate::logging::{self, LogFormat};
use crate::secret::Secret;

#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten, next_help_heading = "Health")]
    health: HealthArgs,
    #[command(flatten, next_help_heading = "Bot")]
    bot: BotArgs,
    #[command(flatten, next_help_heading = "Sources")]
    intake: IntakeArgs,
    #[command(
        flatten,
        next_help_heading = "Routes: webhook access, read API, stream"
    )]
    routes: RouteArgs,
    #[command(flatten, next_help_heading = "Journal")]
    ledger: LedgerArgs,
    #[command(flatten, next_help_heading = "Process")]
    daemon: DaemonArgs,
    #[command(flatten, next_help_heading = "Logging")]
    log: LogArgs,
    #[command(flatten)]
    alerts: AlertArgs,
}

impl RunArgs {
    pub(super) fn into_config(self) -> Result<Config, ConfigError> {
        let service = ServiceEnv::from_env()?;
        let sources = self.intake.source_settings()?;
        let webhook = self.intake.webhook_settings(&self.routes, &sources)?;
        let bot = self
            .bot
            .into_settings(self.intake, sources, self.ledger.into_settings())?;
        Ok(Config {
            http: self.routes.into_settings(webhook)?,
            daemon: self.daemon.into_settings(&bot.state_dir),
            health: self.health.into_settings(&service)?,
            log: self.log.into_settings(service.journal_stream)?,
            alerts: self.alerts.settings()?,
            bot,
        })
    }
}

#[derive(Debug, Clone, Args)]
struct HealthArgs {
    /// Health port tried first (the PaaS convention; 0 picks a free one).
    /// Default 8080 when neither this nor --health-server-ports is set.
    #[arg(long, env = "PORT", value_name = "PORT")]
    port: Option<u16>,

    /// Health ports to try in order after --port, comma separated.
    #[arg(
        long,
        env = "HEALTH_SERVER_PORTS",
        value_name = "PORT,...",
        value_delimiter = ','
    )]
    health_server_ports: Vec<u16>,

    /// Address the health server binds (0.0.0.0, ::, 127.0.0.1, ...).
    #[arg(
        long,
        env = "HEALTH_BIND",
        default_value = "0.0.0.0",
        value_name = "ADDR"
    )]
    health_bind: IpAddr,

    /// Touched while healthy, removed when not; probed by `tradingbot health`.
    #[arg(
        long,
        env = "HEALTH_FILE",
        default_value = "/tmp/bot_healthy",
        value_name = "PATH"
    )]
    health_file: PathBuf,

    /// How often an idle bot loop still beats; also the judge's tick
    /// (or half the systemd watchdog timeout, if shorter).
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    heartbeat_interval: Duration,

    /// No heartbeat for this long is a stall: /health 503, watchdog pings
    /// stop, the health file is removed.
    #[arg(long, env = "STALL_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    stall_timeout: Duration,

    /// A stall that lasts this long ends the process with exit code 70
    /// (after WATCHDOG=trigger), so any restart policy recovers it. Off when unset.
    #[arg(long, env = "STALL_EXIT_AFTER", value_parser = parse_duration, value_name = "DURATION")]
    stall_exit_after: Option<Duration>,

    /// Before its first heartbeat the bot counts as alive (/livez 200) for this long.
    #[arg(long, env = "STARTUP_GRACE", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    startup_grace: Duration,

    /// On SIGTERM, the longest the daemon takes to drain before it exits non-zero.
    #[arg(long, env = "DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    drain_timeout: Duration,
}

impl HealthArgs {
    fn into_settings(self, service: &ServiceEnv) -> Result<health::Settings, ConfigError> {
        let mut ports: Vec<u16> = self.port.into_iter().collect();
        for port in self.health_server_ports {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        if ports.is_empty() {
            ports.push(8080);
        }
        let format = |duration| humantime::format_duration(duration);
        if self.stall_timeout <= self.heartbeat_interval {
            return Err(invalid(
                "stall-timeout",
                "STALL_TIMEOUT",
                format_args!(
                    "{} must be longer than --heartbeat-interval (HEARTBEAT_INTERVAL) {}, \
                     or an idle bot would look stalled",
                    format(self.stall_timeout),
                    format(self.heartbeat_interval)
                ),
            ));
        }
        if let Some(watchdog) = &service.watchdog {
            if self.stall_timeout >= watchdog.timeout {
                return Err(invalid(
                    "stall-timeout",
                    "STALL_TIMEOUT",
                    format_args!(
                        "{} must be shorter than the systemd watchdog timeout {} (WATCHDOG_USEC, \
                         WatchdogSec=): systemd would kill the daemon before it noticed a stall",
                        format(self.stall_timeout),
                        format(watchdog.timeout)
                    ),
                ));
            }
        }
        if let Some(exit_after) = self.stall_exit_after {
            if exit_after < self.stall_timeout {
                return Err(invalid(
                    "stall-exit-after",
                    "STALL_EXIT_AFTER",
                    format_args!(
                        "{} must be at least --stall-timeout (STALL_TIMEOUT) {}",
                        format(exit_after),
                        format(self.stall_timeout)
                    ),
                ));
            }
        }
        if self.health_file.as_os_str().is_empty() || self.health_file.ends_with("/") {
            return Err(invalid("health-file", "HEALTH_FILE", "must name a file"));
        }
        Ok(health::Settings {
            ports,
            bind: self.health_bind,
            file: self.health_file,
            heartbeat_interval: self.heartbeat_interval,
            stall_timeout: self.stall_timeout,
            stall_exit_after: self.stall_exit_after,
            startup_grace: self.startup_grace,
            drain_timeout: self.drain_timeout,
            notify_socket: service.notify_socket.clone(),
            watchdog: service.watchdog,
        })
    }
}

#[derive(Debug, Clone, Args)]
struct BotArgs {
    /// Directory for the journal, the snapshot, checkpoints and the lock; created if missing.
    #[arg(long, env = "STATE_DIR", default_value = "./state", value_name = "DIR")]
    state_dir: PathBuf,

    /// Trade with real money. Not supported yet: true exits 2.
    #[arg(long, env = "LIVE_TRADING", default_value = "false", value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    live_trading: bool,

    /// Paper trading, the only mode: false exits 2.
    #[arg(long, env = "DRY_RUN", default_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    dry_run: bool,

    /// Largest absolute position per symbol (exact decimal); a signal that
    /// would pass it is rejected. Off when unset.
    #[arg(long, env = "MAX_POSITION_QTY", value_parser = parse_positive::<money::kind::Quantity>, value_name = "QTY")]
    max_position_qty: Option<Quantity>,

    /// Largest qty × price of one order, at the price it fills at (slippage
    /// included, fee not); a larger one is rejected. Off when unset.
    #[arg(long, env = "MAX_ORDER_NOTIONAL", value_parser = parse_positive::<money::kind::Amount>, value_name = "AMOUNT")]
    max_order_notional: Option<Amount>,

    /// The paper account's starting cash, in the quote currency: a buy whose
    /// cost with fees is more than the cash is rejected (insufficient_funds).
    /// Unset: cash starts at 0 and may go below it (no such check).
    #[arg(long, env = "PAPER_BALANCE", value_parser = parse_decimal::<money::kind::Amount>, value_name = "AMOUNT")]
    paper_balance: Option<Amount>,

    /// Fee on every fill's notional, in basis points (up to 2 decimals:
    /// 7.5 is 0.075 %).
    #[arg(long, env = "FEE_BPS", default_value = "0", value_parser = BasisPoints::parse, value_name = "BPS")]
    fee_bps: BasisPoints,

    /// Every fill's price moves this many basis points against the order (a
    /// buy pays more, a sell gets less), before the risk limits are checked.
    #[arg(long, env = "SLIPPAGE_BPS", default_value = "0", value_parser = BasisPoints::parse, value_name = "BPS")]
    slippage_bps: BasisPoints,

    /// A sell may take a position below zero (short); false rejects it as
    /// insufficient_position. Default: true without --paper-balance (every
    /// sell fills, as before accounts), false with one (a cash account).
    #[arg(long, env = "ALLOW_SHORT", value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    allow_short: Option<bool>,

    /// Decimal places a fee, a slipped price and an average price are
    /// rounded to (half to even), once per fill; 0 to 18.
    #[arg(long, env = "MONEY_DECIMALS", default_value_t = Rounding::DEFAULT.places(), value_parser = clap::value_parser!(u32).range(0..=i64::from(PLACES)), value_name = "N")]
    money_decimals: u32,

    /// Most fills in any 60 s; more are rejected. Off when unset.
    #[arg(long, env = "MAX_ORDERS_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    max_orders_per_minute: Option<u32>,

    /// Journal durability: always (fsync per signal), batch (one fsync per
    /// batch, group commit), never (written to the OS only).
    #[arg(long, env = "FSYNC", default_value = "batch", value_name = "POLICY",
          value_parser = PossibleValuesParser::new(FsyncPolicy::NAMES).try_map(|name| FsyncPolicy::parse(&name)))]
    fsync: FsyncPolicy,

    /// No signal for this long shows the feed as degraded. Off when unset.
    #[arg(long, env = "MAX_SIGNAL_AGE", value_parser = parse_duration, value_name = "DURATION")]
    max_signal_age: Option<Duration>,

    /// How often a snapshot (STATE_DIR/snapshots/) is written while signals flow, at
    /// most (a large exactly-once window is written less often; README); and at stop.
    #[arg(long, env = "SNAPSHOT_INTERVAL", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    snapshot_interval: Duration,

    /// The only symbols traded, comma separated; a signal for any other is
    /// rejected as unknown_symbol (journaled and counted; it takes no id, so
    /// it is handled if sent again once its symbol is listed). Unset: any
    /// symbol, up to --max-symbols. A list protects against a feed whose
    /// symbol field is wrong or hostile; its symbols are also the first to
    /// get metric series of their own.
    #[arg(
        long,
        env = "SYMBOLS",
        value_delimiter = ',',
        value_name = "SYMBOL,..."
    )]
    symbols: Vec<String>,

    /// Most symbols the bot holds positions for. A signal that would bring
    /// one more is rejected as too_many_symbols (journaled and counted; it
    /// takes no id): each symbol costs memory for the life of the process,
    /// so a feed inventing symbols must not grow it without end. Positions
    /// replayed from the journal are always kept, even past this.
    #[arg(long, env = "MAX_SYMBOLS", default_value_t = DEFAULT_MAX_SYMBOLS, value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    max_symbols: u32,

    /// Most symbols with /metrics series of their own; the rest are summed
    /// under symbol="other". Each symbol adds 5 series that Prometheus
    /// stores on every scrape, so /metrics stays under
    /// 5 × (N + 1) + 89 series (plus a fixed few with the webhook and the
    /// read API). Slots go to the --symbols list first, then
    /// to the most active symbols, and are kept while the process runs.
    #[arg(long, env = "METRICS_MAX_SYMBOLS", default_value_t = DEFAULT_METRICS_MAX_SYMBOLS, value_parser = clap::value_parser!(u32).range(0..=1_000), value_name = "N")]
    metrics_max_symbols: u32,
}

impl BotArgs {
    fn into_settings(
        self,
        intake: IntakeArgs,
        sources: Vec<SourceSettings>,
        ledger: ledger::Settings,
    ) -> Result<bot::Settings, ConfigError> {
        if self.live_trading {
            return Err(invalid(
                "live-trading",
                "LIVE_TRADING",
                "live execution is not supported yet; this build trades on paper only",
            ));
        }
        if !self.dry_run {
            return Err(invalid(
                "dry-run",
                "DRY_RUN",
                "live execution is not supported yet; paper trading (true) is the only mode",
            ));
        }
        let symbols =
            SymbolSettings::new(&self.symbols, self.max_symbols, self.metrics_max_symbols)
                .map_err(|error| invalid(error.flag, error.env, error.problem))?;
        if intake.exec_backoff_max < intake.exec_backoff {
            return Err(invalid(
                "exec-backoff-max",
                "EXEC_BACKOFF_MAX",
                "must be at least --exec-backoff (EXEC_BACKOFF)",
            ));
        }
        Ok(bot::Settings {
            state_dir: self.state_dir,
            account: Terms {
                balance: self.paper_balance,
                fee: self.fee_bps,
                slippage: self.slippage_bps,
                allow_short: self.allow_short.unwrap_or(self.paper_balance.is_none()),
                rounding: Rounding::new(self.money_decimals)
                    .map_err(|problem| invalid("money-decimals", "MONEY_DECIMALS", problem))?,
                limits: Limits {
                    max_position_qty: self.max_position_qty,
                    max_order_notional: self.max_order_notional,
                    max_orders_per_minute: self.max_orders_per_minute,
                },
            },
            fsync: self.fsync,
            max_signal_age: self.max_signal_age,
            snapshot_interval: self.snapshot_interval,
            intake: intake::Settings {
                sources,
                file_poll_interval: intake.file_poll_interval,
                exec_backoff: intake.exec_backoff,
                exec_backoff_max: intake.exec_backoff_max,
            },
            symbols,
            ledger,
        })
    }
}

#[derive(Debug, Clone, Args)]
struct LedgerArgs {
    /// A journal segment (STATE_DIR/journal/) is closed, and the next one
    /// started, once it holds this many bytes (KiB, MiB, GiB).
    #[arg(long, env = "JOURNAL_SEGMENT_SIZE", default_value = "64MiB", value_parser = parse_size, value_name = "BYTES")]
    journal_segment_size: u64,

    /// Signal ids decided within this window (judged by the signal's ts) are
    /// remembered, so a resend is a duplicate; a signal whose ts is older is
    /// rejected (too_old). Memory follows the signals in the window.
    #[arg(long, env = "DEDUPE_WINDOW", default_value = "7d", value_parser = parse_duration, value_name = "DURATION")]
    dedupe_window: Duration,

    /// A signal whose ts is further ahead of the clock than this is rejected (ts_in_future).
    #[arg(long, env = "MAX_CLOCK_SKEW", default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    max_clock_skew: Duration,

    /// Closed journal segments older than this, and covered by every kept
    /// snapshot, are deleted. Unset: the journal is kept whole.
    #[arg(long, env = "JOURNAL_RETENTION", value_parser = parse_duration, value_name = "DURATION")]
    journal_retention: Option<Duration>,
}

impl LedgerArgs {
    fn into_settings(self) -> ledger::Settings {
        ledger::Settings {
            segment_size: self.journal_segment_size,
            dedupe_window: self.dedupe_window,
            max_clock_skew: self.max_clock_skew,
            retention: self.journal_retention,
        }
    }
}

#[derive(Debug, Clone, Args)]
struct IntakeArgs {
    /// Signal source, repeatable: file:PATH, exec:COMMAND ARGS..., webhook,
    /// stdin, or a feed already in the bot's own format, ws:URL or poll:URL.
    /// In SIGNAL_SOURCE, separate several with ';'. No source: the bot idles.
    /// For names, mappings and a feed's settings, use --sources-file.
    #[arg(long = "source", env = "SIGNAL_SOURCE", value_delimiter = ';', value_parser = sources_file::parse_plain, value_name = "SOURCE")]
    sources: Vec<Kind>,

    /// A TOML file of sources, one [[source]] table each: name, kind
    /// (file, exec, stdin, webhook, ws, poll), its settings, quiet_after and
    /// a [source.map] for a feed's own JSON (README, "Feeds"). Instead of
    /// --source.
    #[arg(long, env = "SOURCES_FILE", value_name = "PATH")]
    sources_file: Option<PathBuf>,

    /// How often a file source looks for appends, rotation and truncation at end of file.
    #[arg(long, env = "FILE_POLL_INTERVAL", default_value = "200ms", value_parser = parse_duration, value_name = "DURATION")]
    file_poll_interval: Duration,

    /// First delay before restarting an exec feed that exited; doubles each time.
    #[arg(long, env = "EXEC_BACKOFF", default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    exec_backoff: Duration,

    /// Longest delay before restarting an exec feed.
    #[arg(long, env = "EXEC_BACKOFF_MAX", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    exec_backoff_max: Duration,

    /// A listener of the webhook's own (POST /signals), e.g. 0.0.0.0:8090.
    /// Unset: the webhook is served on the main port (PORT).
    #[arg(long, env = "WEBHOOK_BIND", value_name = "ADDR:PORT")]
    webhook_bind: Option<SocketAddr>,

    /// The write token webhook clients must send: as a bearer token, as
    /// ?token=, or as the last path segment, /signals/TOKEN (prefer
    /// --webhook-token-file: the environment of a process is readable by
    /// its owner).
    #[arg(long, env = "WEBHOOK_TOKEN", hide_env_values = true, value_parser = Secret::parse, value_name = "TOKEN")]
    webhook_token: Option<Secret>,

    /// File holding the webhook token (surrounding whitespace ignored).
    #[arg(long, env = "WEBHOOK_TOKEN_FILE", value_name = "PATH")]
    webhook_token_file: Option<PathBuf>,

    /// Largest webhook request body, in bytes (413 beyond it).
    #[arg(long, env = "WEBHOOK_BODY_LIMIT", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024), value_name = "BYTES")]
    webhook_body_limit: u64,
}

impl IntakeArgs {
    /// The sources, from --sources-file or --source (not both: which would
    /// be meant?), each named.
    fn source_settings(&self) -> Result<Vec<SourceSettings>, ConfigError> {
        if let Some(path) = &self.sources_file {
            if !self.sources.is_empty() {
                return Err(invalid(
                    "sources-file",
                    "SOURCES_FILE",
                    "is set and so is --source (SIGNAL_SOURCE): list every source in the file",
                ));
            }
            return sources_file::load(path)
                .map_err(|error| ConfigError::Invalid(error.to_string()));
        }
        for (index, source) in self.sources.iter().enumerate() {
            if self.sources[..index].contains(source) {
                return Err(invalid(
                    "source",
                    "SIGNAL_SOURCE",
                    format_args!("a {} source is listed twice", source.label()),
                ));
            }
        }
        Ok(sources_file::from_plain(self.sources.clone()))
    }

    /// The webhook's settings, with a webhook source; its own listener or
    /// its access rules without one are refused (a listener nobody asked
    /// for, or a webhook without a token, is a mistake).
    fn webhook_settings(
        &self,
        routes: &RouteArgs,
        sources: &[SourceSettings],
    ) -> Result<Option<WebhookSettings>, ConfigError> {
        if !sources.iter().any(|source| source.kind == Kind::Webhook) {
            if self.webhook_bind.is_some() {
                return Err(invalid(
                    "webhook-bind",
                    "WEBHOOK_BIND",
                    "is set but no --source webhook (SIGNAL_SOURCE) is; add it or unset WEBHOOK_BIND",
                ));
            }
            if !routes.webhook_allow.is_empty() {
                return Err(invalid(
                    "webhook-allow",
                    "WEBHOOK_ALLOW",
                    "is set but no --source webhook (SIGNAL_SOURCE) is; add it or unset WEBHOOK_ALLOW",
                ));
            }
            return Ok(None);
        }
        let token = match (&self.webhook_token, &self.webhook_token_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "webhook-token",
                    "WEBHOOK_TOKEN",
                    "set either it or --webhook-token-file (WEBHOOK_TOKEN_FILE), not both",
                ))
            }
            (Some(token), None) => token.clone(),
            (None, Some(path)) => read_secret(path, "webhook-token-file", "WEBHOOK_TOKEN_FILE")?,
            (None, None) => {
                return Err(invalid(
                    "webhook-token",
                    "WEBHOOK_TOKEN",
                    "the webhook refuses to start without a bearer token \
                     (WEBHOOK_TOKEN or WEBHOOK_TOKEN_FILE)",
                ))
            }
        };
        Ok(Some(WebhookSettings {
            bind: self.webhook_bind,
            token,
            body_limit: self.webhook_body_limit as usize,
            allow: routes.webhook_allow.clone(),
            trusted_proxies: routes.trusted_proxies.clone(),
        }))
    }
}

#[derive(Debug, Clone, Args)]
struct RouteArgs {
    /// The read token of /api/v1/..., /ws and /events, as a bearer token or
    /// ?token= (prefer --api-token-file). Without one, those routes are off.
    #[arg(long, env = "API_TOKEN", hide_env_values = true, value_parser = Secret::parse, value_name = "TOKEN")]
    api_token: Option<Secret>,

    /// File holding the read token (surrounding whitespace ignored).
    #[arg(long, env = "API_TOKEN_FILE", value_name = "PATH")]
    api_token_file: Option<PathBuf>,

    /// Addresses or networks the webhook takes signals from, comma
    /// separated (403 for others), e.g. TradingView's:
    /// 52.89.214.238,34.212.75.30,54.218.53.128,52.32.178.7. Unset: any.
    #[arg(long, env = "WEBHOOK_ALLOW", value_delimiter = ',', value_parser = Cidr::parse, value_name = "CIDR,...")]
    webhook_allow: Vec<Cidr>,

    /// Proxies (addresses or networks, comma separated) whose
    /// X-Forwarded-For or Forwarded header names the client for
    /// --webhook-allow: the platform's router or your reverse proxy.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = Cidr::parse, value_name = "CIDR,...")]
    trusted_proxies: Vec<Cidr>,

    /// Most stream clients (/ws and /events together) at once; 503 beyond.
    #[arg(long, env = "WS_MAX_CLIENTS", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000), value_name = "N")]
    ws_max_clients: u64,

    /// A stream client that takes no byte for this long is dropped (a
    /// WebSocket gets a close frame saying where to resume).
    #[arg(long, env = "WS_SEND_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    ws_send_timeout: Duration,

    /// How often a stream is pinged (SSE: a comment line); a WebSocket
    /// that answers nothing for two intervals is dropped.
    #[arg(long, env = "WS_PING_INTERVAL", default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    ws_ping_interval: Duration,

    /// A kept-alive connection older than this is closed after its next
    /// response, which says so (Connection: close): a client opens a new
    /// one and loses no request. An idle connection is closed after 5s.
    #[arg(long, env = "HTTP_MAX_CONNECTION_AGE", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    http_max_connection_age: Duration,
}

impl RouteArgs {
    fn into_settings(
        self,
        webhook: Option<WebhookSettings>,
    ) -> Result<http::Settings, ConfigError> {
        if !self.trusted_proxies.is_empty() && self.webhook_allow.is_empty() {
            return Err(invalid(
                "trusted-proxies",
                "TRUSTED_PROXIES",
                "only says who may name the client for --webhook-allow (WEBHOOK_ALLOW), which is not set",
            ));
        }
        let api_token = match (self.api_token, &self.api_token_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "api-token",
                    "API_TOKEN",
                    "set either it or --api-token-file (API_TOKEN_FILE), not both",
                ))
            }
            (token, None) => token,
            (None, Some(path)) => Some(read_secret(path, "api-token-file", "API_TOKEN_FILE")?),
        };
        Ok(http::Settings {
            api_token,
            webhook,
            max_connection_age: self.http_max_connection_age,
            ws_max_clients: self.ws_max_clients as usize,
            ws_send_timeout: self.ws_send_timeout,
            ws_ping_interval: self.ws_ping_interval,
        })
    }
}

/// A secret kept in a file (surrounding whitespace ignored).
fn read_secret(path: &PathBuf, flag: &str, env: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        invalid(
            flag,
            env,
            format_args!("cannot read {}: {error}", path.display()),
        )
    })?;
    Secret::parse(&text)
        .map_err(|problem| invalid(flag, env, format_args!("{}: {problem}", path.display())))
}

#[derive(Debug, Clone, Args)]
struct DaemonArgs {
    /// Single-instance lock file [default: STATE_DIR/tradingbot.lock].
    #[arg(long, env = "LOCK_FILE", value_name = "PATH")]
    lock_file: Option<PathBuf>,

    /// A KEY=VALUE file re-read on SIGHUP; RUST_LOG there changes the log filter.
    #[arg(long, env = "ENV_FILE", value_name = "PATH")]
    env_file: Option<PathBuf>,
}

impl DaemonArgs {
    fn into_settings(self, state_dir: &std::path::Path) -> daemon::Settings {
        daemon::Settings {
            lock_file: self
                .lock_file
                .unwrap_or_else(|| state_dir.join("tradingbot.lock")),
            env_file: self.env_file,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Shared with `tradingbot web` (`web.rs`).
#[derive(Debug, Clone, Args)]
pub(super) struct LogArgs {
    /// Log format on stderr (under systemd the journal is used instead).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_enum)]
    log_format: LogFormatArg,

    /// Log filter, e.g. info, debug, tradingbot=debug,hyper=warn.
    #[arg(
        long = "log",
        env = "RUST_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    log_filter: String,
}

impl LogArgs {
    pub(super) fn into_settings(
        self,
        journal_stream: Option<(u64, u64)>,
    ) -> Result<logging::Settings, ConfigError> {
        if let Err(problem) = tracing_subscriber::EnvFilter::try_new(&self.log_filter) {
            return Err(invalid("log", "RUST_LOG", problem));
        }
        Ok(logging::Settings {
            format: match self.log_format {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            },
            filter: self.log_filter,
            journal_stream,
        })
    }
}

/// What systemd (or a container manager) told the process through its
/// environment: read here, once, with the flags.
#[derive(Debug, Clone, Default)]
pub(super) struct ServiceEnv {
    pub(super) notify_socket: Option<NotifySocket>,
    watchdog: Option<Watchdog>,
    pub(super) journal_stream: Option<(u64, u64)>,
}

impl ServiceEnv {
    pub(super) fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        let notify_socket = var("NOTIFY_SOCKET")
            .map(NotifySocket::parse)
            .transpose()
            .map_err(|reason| ConfigError::Invalid(format!("NOTIFY_SOCKET: {reason}")))?;
        let watchdog = Watchdog::from_env(
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
        .map_err(|reason| ConfigError::Invalid(format!("WATCHDOG_USEC: {reason}")))?;
        let journal_stream = var("JOURNAL_STREAM").and_then(|value| {
            let (device, inode) = value.to_str()?.split_once(':')?;
            Some((device.parse().ok()?, inode.parse().ok()?))
        });
        Ok(ServiceEnv {
            notify_socket,
            watchdog,
            journal_stream,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Only {
        #[command(flatten)]
        run: RunArgs,
    }

    fn run_args(args: &[&str]) -> RunArgs {
        Only::try_parse_from(std::iter::once("tradingbot").chain(args.iter().copied()))
            .unwrap()
            .run
    }

    fn health(args: &[&str], service: &ServiceEnv) -> Result<health::Settings, ConfigError> {
        run_args(args).health.into_settings(service)
    }

    #[test]
    fn port_comes_first_then_the_list_without_repeats() {
        let settings = health(
            &["--port", "9000", "--health-server-ports", "9001,9000,9002"],
            &ServiceEnv::default(),
        )
        .unwrap();
        assert_eq!(settings.ports, vec![9000, 9001, 9002]);
    }

    #[test]
    fn default_port_is_8080_and_the_lock_lives_in_the_state_dir() {
        let args = run_args(&[]);
        assert_eq!(
            args.health
                .into_settings(&ServiceEnv::default())
                .unwrap()
                .ports,
            vec![8080]
        );
        let daemon = args.daemon.into_settings(std::path::Path::new("./state"));
        assert_eq!(daemon.lock_file, PathBuf::from("./state/tradingbot.lock"));
    }

    #[test]
    fn stall_timeout_must_undercut_the_watchdog() {
        let service = ServiceEnv {
            watchdog: Some(Watchdog {
                timeout: Duration::from_secs(5),
            }),
            ..ServiceEnv::default()
        };
        let message = health(&["--stall-timeout", "5s"], &service)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--stall-timeout (STALL_TIMEOUT)"),
            "{message}"
        );
        assert!(message.contains("WATCHDOG_USEC"), "{message}");
    }

    #[test]
    fn tick_is_half_the_watchdog_when_shorter() {
        let service = ServiceEnv {
            watchdog: Some(Watchdog {
                timeout: Duration::from_secs(30),
            }),
            ..ServiceEnv::default()
        };
        let settings = health(
            &["--heartbeat-interval", "20s", "--stall-timeout", "25s"],
            &service,
        )
        .unwrap();
        assert_eq!(settings.tick(), Duration::from_secs(15));
    }
}
