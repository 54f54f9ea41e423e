//! Every setting: a flag with an env var, parsed and validated once.
//!
//! Nothing after [`Config::from_args`] reads the environment: the rest of the
//! daemon takes a `Config`.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::bot::{FsyncPolicy, RiskLimits, SourceSpec, SymbolSettings};
use crate::health::notify::{NotifySocket, Watchdog};

const ABOUT: &str = "A signal-driven paper-trading bot that runs as a first-class Linux service.";

const LONG_ABOUT: &str = "\
A signal-driven paper-trading bot that runs as a first-class Linux service.

Its health signal tells the truth: /health, the health file and the systemd
watchdog are green only while the bot loop is making progress. The health port
is bound before anything slow, so a platform probe never races the start-up.

Every flag can be set with the environment variable shown beside it.
Durations take a unit: 500ms, 5s, 2m.

Exit codes: 0 clean stop, 1 runtime failure, 2 usage or configuration error,
70 stalled past --stall-exit-after, 75 another instance holds the lock.";

#[derive(Debug, Parser)]
#[command(
    name = "tradingbot",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bot (the default when no subcommand is given).
    Run(RunArgs),
    /// Probe a running daemon through its health file (for HEALTHCHECK).
    ///
    /// Exits 0 when the health file is a regular file no older than
    /// --max-age (and, with --http, /health answers 200); exits 1 with one
    /// line on stderr saying why otherwise.
    Health(HealthArgs),
    /// Validate the configuration, print it, and exit (0 valid, 2 invalid).
    CheckConfig(RunArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Health port tried first (the PaaS convention). Default 8080 when
    /// neither this nor --health-server-ports is set.
    #[arg(long, env = "PORT", value_name = "PORT")]
    pub port: Option<u16>,

    /// Health ports to try in order after --port, comma separated.
    #[arg(
        long,
        env = "HEALTH_SERVER_PORTS",
        value_name = "PORT,...",
        value_delimiter = ','
    )]
    pub health_server_ports: Vec<u16>,

    /// Address the health server binds (0.0.0.0, ::, 127.0.0.1, ...).
    #[arg(
        long,
        env = "HEALTH_BIND",
        default_value = "0.0.0.0",
        value_name = "ADDR"
    )]
    pub health_bind: IpAddr,

    /// Touched while healthy, removed when not; probed by `tradingbot health`.
    #[arg(
        long,
        env = "HEALTH_FILE",
        default_value = "/tmp/bot_healthy",
        value_name = "PATH"
    )]
    pub health_file: PathBuf,

    /// How often an idle bot loop still beats; also the judge's tick
    /// (or half the systemd watchdog timeout, if shorter).
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Duration,

    /// No heartbeat for this long is a stall: /health 503, watchdog pings
    /// stop, the health file is removed.
    #[arg(long, env = "STALL_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub stall_timeout: Duration,

    /// A stall that lasts this long ends the process with exit code 70
    /// (after WATCHDOG=trigger), so any restart policy recovers it. Off when unset.
    #[arg(long, env = "STALL_EXIT_AFTER", value_parser = parse_duration, value_name = "DURATION")]
    pub stall_exit_after: Option<Duration>,

    /// Before its first heartbeat the bot counts as alive (/livez 200) for this long.
    #[arg(long, env = "STARTUP_GRACE", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub startup_grace: Duration,

    /// On SIGTERM, the longest the daemon takes to drain before it exits non-zero.
    #[arg(long, env = "DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,

    /// Directory for the journal, the snapshot, checkpoints and the lock; created if missing.
    #[arg(long, env = "STATE_DIR", default_value = "./state", value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Single-instance lock file [default: STATE_DIR/tradingbot.lock].
    #[arg(long, env = "LOCK_FILE", value_name = "PATH")]
    pub lock_file: Option<PathBuf>,

    /// Log format on stderr (under systemd the journal is used instead).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_enum)]
    pub log_format: LogFormat,

    /// Log filter, e.g. info, debug, tradingbot=debug,hyper=warn.
    #[arg(
        long = "log",
        env = "RUST_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log_filter: String,

    /// A KEY=VALUE file re-read on SIGHUP; RUST_LOG there changes the log filter.
    #[arg(long, env = "ENV_FILE", value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Signal source, repeatable: file:PATH, exec:COMMAND ARGS..., webhook, stdin.
    /// In SIGNAL_SOURCE, separate several with ';'. No source: the bot idles.
    #[arg(long = "source", env = "SIGNAL_SOURCE", value_delimiter = ';', value_parser = SourceSpec::parse, value_name = "SOURCE")]
    pub sources: Vec<SourceSpec>,

    /// Address of the webhook listener (POST /signals), e.g. 0.0.0.0:8090.
    /// Needed by --source webhook; off unless set.
    #[arg(long, env = "WEBHOOK_BIND", value_name = "ADDR:PORT")]
    pub webhook_bind: Option<SocketAddr>,

    /// Bearer token webhook clients must send (prefer --webhook-token-file:
    /// the environment of a process is readable by its owner).
    #[arg(long, env = "WEBHOOK_TOKEN", hide_env_values = true, value_parser = Secret::parse, value_name = "TOKEN")]
    pub webhook_token: Option<Secret>,

    /// File holding the webhook bearer token (surrounding whitespace ignored).
    #[arg(long, env = "WEBHOOK_TOKEN_FILE", value_name = "PATH")]
    pub webhook_token_file: Option<PathBuf>,

    /// Largest webhook request body, in bytes (413 beyond it).
    #[arg(long, env = "WEBHOOK_BODY_LIMIT", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024), value_name = "BYTES")]
    pub webhook_body_limit: u64,

    /// Trade with real money. Not supported yet: true exits 2.
    #[arg(long, env = "LIVE_TRADING", default_value = "false", value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    pub live_trading: bool,

    /// Paper trading, the only mode: false exits 2.
    #[arg(long, env = "DRY_RUN", default_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    pub dry_run: bool,

    /// Largest absolute position per symbol; a signal that would pass it is rejected. Off when unset.
    #[arg(long, env = "MAX_POSITION_QTY", value_parser = parse_positive, value_name = "QTY")]
    pub max_position_qty: Option<f64>,

    /// Largest qty × price of one order; a larger one is rejected. Off when unset.
    #[arg(long, env = "MAX_ORDER_NOTIONAL", value_parser = parse_positive, value_name = "AMOUNT")]
    pub max_order_notional: Option<f64>,

    /// Most fills in any 60 s; more are rejected. Off when unset.
    #[arg(long, env = "MAX_ORDERS_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_orders_per_minute: Option<u32>,

    /// Journal durability: always (fsync per signal), batch (one fsync per
    /// batch, group commit), never (written to the OS only).
    #[arg(long, env = "FSYNC", default_value = "batch", value_enum)]
    pub fsync: FsyncPolicy,

    /// No signal for this long shows the feed as degraded. Off when unset.
    #[arg(long, env = "MAX_SIGNAL_AGE", value_parser = parse_duration, value_name = "DURATION")]
    pub max_signal_age: Option<Duration>,

    /// How often a file source looks for appends, rotation and truncation at end of file.
    #[arg(long, env = "FILE_POLL_INTERVAL", default_value = "200ms", value_parser = parse_duration, value_name = "DURATION")]
    pub file_poll_interval: Duration,

    /// First delay before restarting an exec feed that exited; doubles each time.
    #[arg(long, env = "EXEC_BACKOFF", default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub exec_backoff: Duration,

    /// Longest delay before restarting an exec feed.
    #[arg(long, env = "EXEC_BACKOFF_MAX", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub exec_backoff_max: Duration,

    /// How often STATE_DIR/snapshot.json is rewritten while signals flow (and at stop).
    #[arg(long, env = "SNAPSHOT_INTERVAL", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub snapshot_interval: Duration,

    // Symbols and metric series bounded (issue 16); validated into
    // `bot::SymbolSettings`.
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
    pub symbols: Vec<String>,

    /// Most symbols the bot holds positions for. A signal that would bring
    /// one more is rejected as too_many_symbols (journaled and counted; it
    /// takes no id): each symbol costs memory for the life of the process,
    /// so a feed inventing symbols must not grow it without end. Positions
    /// replayed from the journal are always kept, even past this.
    #[arg(long, env = "MAX_SYMBOLS", default_value_t = crate::bot::DEFAULT_MAX_SYMBOLS, value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    pub max_symbols: u32,

    /// Most symbols with /metrics series of their own; the rest are summed
    /// under symbol="other". Each symbol adds 4 series that Prometheus
    /// stores on every scrape, so /metrics stays under
    /// 4 × (N + 1) + 70 series. Slots go to the --symbols list first, then
    /// to the most active symbols, and are kept while the process runs.
    #[arg(long, env = "METRICS_MAX_SYMBOLS", default_value_t = crate::bot::DEFAULT_METRICS_MAX_SYMBOLS, value_parser = clap::value_parser!(u32).range(0..=1_000), value_name = "N")]
    pub metrics_max_symbols: u32,
}

/// A value that must never be printed: its `Debug` is redacted, and it
/// is only read through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Secret(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(redacted)")
    }
}

/// The webhook source's settings, present when `--source webhook` is.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub bind: SocketAddr,
    pub token: Secret,
    pub body_limit: usize,
}

fn parse_positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err("expected a finite number above zero".into()),
    }
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The health file the daemon keeps.
    #[arg(
        long,
        env = "HEALTH_FILE",
        default_value = "/tmp/bot_healthy",
        value_name = "PATH"
    )]
    pub file: PathBuf,

    /// Oldest acceptable health file [default: three heartbeat intervals].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub max_age: Option<Duration>,

    /// Used for the default --max-age.
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Duration,

    /// Also GET /health on the address recorded in the health file.
    #[arg(long)]
    pub http: bool,

    /// Timeout of the HTTP probe.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

impl HealthArgs {
    pub fn max_age(&self) -> Duration {
        self.max_age.unwrap_or(self.heartbeat_interval * 3)
    }
}

/// Accepts `500ms`, `5s`, `2m`, `1h 30m`; a bare number or zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| "expected a duration with a unit, like 500ms, 5s or 2m".to_owned())?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(duration)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Already one line naming the flag and its env var.
    #[error("{0}")]
    Invalid(String),
}

/// What systemd (or a container manager) told the process through its environment.
#[derive(Debug, Clone, Default)]
pub struct ServiceEnv {
    pub notify_socket: Option<NotifySocket>,
    pub watchdog: Option<Watchdog>,
    /// `JOURNAL_STREAM`'s device and inode: stderr is the journal when they match fd 2.
    pub journal_stream: Option<(u64, u64)>,
}

impl ServiceEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
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

/// The validated settings of `tradingbot run`.
#[derive(Debug, Clone)]
pub struct Config {
    pub ports: Vec<u16>,
    pub health_bind: IpAddr,
    pub health_file: PathBuf,
    pub heartbeat_interval: Duration,
    pub stall_timeout: Duration,
    pub stall_exit_after: Option<Duration>,
    pub startup_grace: Duration,
    pub drain_timeout: Duration,
    pub state_dir: PathBuf,
    pub lock_file: PathBuf,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub env_file: Option<PathBuf>,
    pub sources: Vec<SourceSpec>,
    pub webhook: Option<WebhookConfig>,
    pub risk: RiskLimits,
    pub fsync: FsyncPolicy,
    pub max_signal_age: Option<Duration>,
    pub file_poll_interval: Duration,
    pub exec_backoff: Duration,
    pub exec_backoff_max: Duration,
    pub snapshot_interval: Duration,
    pub service: ServiceEnv,
    /// Issue 16: the allowlist, MAX_SYMBOLS, METRICS_MAX_SYMBOLS.
    pub symbols: SymbolSettings,
}

fn invalid(flag: &str, env: &str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("invalid --{flag} ({env}): {problem}"))
}

impl Config {
    pub fn from_args(args: RunArgs, service: ServiceEnv) -> Result<Self, ConfigError> {
        let mut ports: Vec<u16> = args.port.into_iter().collect();
        for port in args.health_server_ports.iter().copied() {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        if ports.is_empty() {
            ports.push(8080);
        }

        if args.stall_timeout <= args.heartbeat_interval {
            return Err(invalid(
                "stall-timeout",
                "STALL_TIMEOUT",
                format_args!(
                    "{} must be longer than --heartbeat-interval (HEARTBEAT_INTERVAL) {}, \
                     or an idle bot would look stalled",
                    humantime::format_duration(args.stall_timeout),
                    humantime::format_duration(args.heartbeat_interval)
                ),
            ));
        }
        if let Some(watchdog) = &service.watchdog {
            if args.stall_timeout >= watchdog.timeout {
                return Err(invalid(
                    "stall-timeout",
                    "STALL_TIMEOUT",
                    format_args!(
                        "{} must be shorter than the systemd watchdog timeout {} (WATCHDOG_USEC, \
                         WatchdogSec=): systemd would kill the daemon before it noticed a stall",
                        humantime::format_duration(args.stall_timeout),
                        humantime::format_duration(watchdog.timeout)
                    ),
                ));
            }
        }
        if let Some(exit_after) = args.stall_exit_after {
            if exit_after < args.stall_timeout {
                return Err(invalid(
                    "stall-exit-after",
                    "STALL_EXIT_AFTER",
                    format_args!(
                        "{} must be at least --stall-timeout (STALL_TIMEOUT) {}",
                        humantime::format_duration(exit_after),
                        humantime::format_duration(args.stall_timeout)
                    ),
                ));
            }
        }
        if args.health_file.as_os_str().is_empty() || args.health_file.ends_with("/") {
            return Err(invalid("health-file", "HEALTH_FILE", "must name a file"));
        }
        if let Err(problem) = tracing_subscriber::EnvFilter::try_new(&args.log_filter) {
            return Err(invalid("log", "RUST_LOG", problem));
        }

        if args.live_trading {
            return Err(invalid(
                "live-trading",
                "LIVE_TRADING",
                "live execution is not supported yet; this build trades on paper only",
            ));
        }
        if !args.dry_run {
            return Err(invalid(
                "dry-run",
                "DRY_RUN",
                "live execution is not supported yet; paper trading (true) is the only mode",
            ));
        }
        for (index, source) in args.sources.iter().enumerate() {
            if args.sources[..index].contains(source) {
                return Err(invalid(
                    "source",
                    "SIGNAL_SOURCE",
                    format_args!("{} is listed twice", source.name()),
                ));
            }
        }
        if args.exec_backoff_max < args.exec_backoff {
            return Err(invalid(
                "exec-backoff-max",
                "EXEC_BACKOFF_MAX",
                "must be at least --exec-backoff (EXEC_BACKOFF)",
            ));
        }
        let webhook = webhook_config(&args)?;
        let symbols =
            SymbolSettings::new(&args.symbols, args.max_symbols, args.metrics_max_symbols)
                .map_err(|error| invalid(error.flag, error.env, error.problem))?;

        let lock_file = args
            .lock_file
            .unwrap_or_else(|| args.state_dir.join("tradingbot.lock"));
        Ok(Config {
            ports,
            health_bind: args.health_bind,
            health_file: args.health_file,
            heartbeat_interval: args.heartbeat_interval,
            stall_timeout: args.stall_timeout,
            stall_exit_after: args.stall_exit_after,
            startup_grace: args.startup_grace,
            drain_timeout: args.drain_timeout,
            state_dir: args.state_dir,
            lock_file,
            log_format: args.log_format,
            log_filter: args.log_filter,
            env_file: args.env_file,
            sources: args.sources,
            webhook,
            risk: RiskLimits {
                max_position_qty: args.max_position_qty,
                max_order_notional: args.max_order_notional,
                max_orders_per_minute: args.max_orders_per_minute,
            },
            fsync: args.fsync,
            max_signal_age: args.max_signal_age,
            file_poll_interval: args.file_poll_interval,
            exec_backoff: args.exec_backoff,
            exec_backoff_max: args.exec_backoff_max,
            snapshot_interval: args.snapshot_interval,
            service,
            symbols,
        })
    }

    /// The settings as `KEY=value` lines, for `check-config`.
    pub fn describe(&self) -> String {
        let duration = |value: std::time::Duration| humantime::format_duration(value).to_string();
        let lines = [
            ("PORTS", format!("{:?}", self.ports)),
            ("HEALTH_BIND", self.health_bind.to_string()),
            ("HEALTH_FILE", self.health_file.display().to_string()),
            ("HEARTBEAT_INTERVAL", duration(self.heartbeat_interval)),
            ("STALL_TIMEOUT", duration(self.stall_timeout)),
            (
                "STALL_EXIT_AFTER",
                self.stall_exit_after.map_or("off".into(), duration),
            ),
            ("STARTUP_GRACE", duration(self.startup_grace)),
            ("DRAIN_TIMEOUT", duration(self.drain_timeout)),
            ("STATE_DIR", self.state_dir.display().to_string()),
            ("LOCK_FILE", self.lock_file.display().to_string()),
            (
                "LOG_FORMAT",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
            ("RUST_LOG", self.log_filter.clone()),
            (
                "ENV_FILE",
                self.env_file
                    .as_ref()
                    .map_or("none".into(), |path| path.display().to_string()),
            ),
            ("SIGNAL_SOURCE", format!("{:?}", self.sources)),
            (
                "WEBHOOK_BIND",
                self.webhook
                    .as_ref()
                    .map_or("off".into(), |webhook| webhook.bind.to_string()),
            ),
            (
                "WEBHOOK_TOKEN",
                self.webhook
                    .as_ref()
                    .map_or("none".into(), |_| "(set, redacted)".into()),
            ),
            (
                "WEBHOOK_BODY_LIMIT",
                self.webhook
                    .as_ref()
                    .map_or("off".into(), |webhook| webhook.body_limit.to_string()),
            ),
            ("LIVE_TRADING", "false".into()),
            ("DRY_RUN", "true".into()),
            ("MAX_POSITION_QTY", optional(self.risk.max_position_qty)),
            ("MAX_ORDER_NOTIONAL", optional(self.risk.max_order_notional)),
            (
                "MAX_ORDERS_PER_MINUTE",
                optional(self.risk.max_orders_per_minute),
            ),
            ("FSYNC", format!("{:?}", self.fsync).to_lowercase()),
            (
                "MAX_SIGNAL_AGE",
                self.max_signal_age.map_or("off".into(), duration),
            ),
            ("FILE_POLL_INTERVAL", duration(self.file_poll_interval)),
            ("EXEC_BACKOFF", duration(self.exec_backoff)),
            ("EXEC_BACKOFF_MAX", duration(self.exec_backoff_max)),
            ("SNAPSHOT_INTERVAL", duration(self.snapshot_interval)),
            (
                "WATCHDOG",
                self.service
                    .watchdog
                    .map_or("off".into(), |watchdog| duration(watchdog.timeout)),
            ),
            ("TICK", duration(self.tick())),
        ];
        lines
            .iter()
            .chain(&self.symbols.describe())
            .map(|(key, value)| format!("{key}={value}\n"))
            .collect()
    }

    /// The judge's tick: the heartbeat interval, or half the watchdog
    /// timeout if that is shorter (systemd's own advice for the ping rate).
    pub fn tick(&self) -> Duration {
        match &self.service.watchdog {
            Some(watchdog) => self.heartbeat_interval.min(watchdog.timeout / 2),
            None => self.heartbeat_interval,
        }
    }
}

fn optional(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "off".to_owned(), |value| value.to_string())
}

/// The webhook's settings: needed by `--source webhook`, refused without it
/// (a listener nobody asked for, or a webhook without a token, is a mistake).
fn webhook_config(args: &RunArgs) -> Result<Option<WebhookConfig>, ConfigError> {
    let wanted = args.sources.contains(&SourceSpec::Webhook);
    let Some(bind) = args.webhook_bind else {
        if wanted {
            return Err(invalid(
                "webhook-bind",
                "WEBHOOK_BIND",
                "--source webhook needs an address to listen on, e.g. 0.0.0.0:8090",
            ));
        }
        return Ok(None);
    };
    if !wanted {
        return Err(invalid(
            "webhook-bind",
            "WEBHOOK_BIND",
            "is set but no --source webhook (SIGNAL_SOURCE) is; add it or unset WEBHOOK_BIND",
        ));
    }
    let token = match (&args.webhook_token, &args.webhook_token_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "webhook-token",
                "WEBHOOK_TOKEN",
                "set either it or --webhook-token-file (WEBHOOK_TOKEN_FILE), not both",
            ))
        }
        (Some(token), None) => token.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|error| {
                invalid(
                    "webhook-token-file",
                    "WEBHOOK_TOKEN_FILE",
                    format_args!("cannot read {}: {error}", path.display()),
                )
            })
            .and_then(|text| {
                Secret::parse(&text).map_err(|problem| {
                    invalid(
                        "webhook-token-file",
                        "WEBHOOK_TOKEN_FILE",
                        format_args!("{}: {problem}", path.display()),
                    )
                })
            })?,
        (None, None) => {
            return Err(invalid(
                "webhook-token",
                "WEBHOOK_TOKEN",
                "the webhook refuses to start without a bearer token \
                 (WEBHOOK_TOKEN or WEBHOOK_TOKEN_FILE)",
            ))
        }
    };
    Ok(Some(WebhookConfig {
        bind,
        token,
        body_limit: args.webhook_body_limit as usize,
    }))
}

/// Parses the command line (and env vars); on error, returns the one line
/// to print, naming the flag and its env var.
pub fn parse_cli<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// Turns a clap error into one line that names the flag and, where it has
/// one, its env var (clap's own message names only the flag).
pub fn one_line_error(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = error.to_string();
    let first_line = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return first_line;
    };
    let long = arg
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches("--");
    let command = Cli::command();
    let env = command
        .get_subcommands()
        .chain(std::iter::once(&command))
        .flat_map(|command| command.get_arguments())
        .find(|candidate| candidate.get_long() == Some(long))
        .and_then(|candidate| candidate.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match env {
        Some(env) if !first_line.contains(&format!("(env {env})")) => {
            format!("{first_line} (env {env})")
        }
        _ => first_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = parse_cli(std::iter::once("tradingbot").chain(args.iter().copied())).unwrap();
        cli.run
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn port_comes_first_then_the_list_without_repeats() {
        let args = run_args(&["--port", "9000", "--health-server-ports", "9001,9000,9002"]);
        let config = Config::from_args(args, ServiceEnv::default()).unwrap();
        assert_eq!(config.ports, vec![9000, 9001, 9002]);
    }

    #[test]
    fn default_port_is_8080() {
        let config = Config::from_args(run_args(&[]), ServiceEnv::default()).unwrap();
        assert_eq!(config.ports, vec![8080]);
        assert_eq!(config.lock_file, PathBuf::from("./state/tradingbot.lock"));
    }

    #[test]
    fn stall_timeout_must_undercut_the_watchdog() {
        let service = ServiceEnv {
            watchdog: Some(Watchdog {
                timeout: Duration::from_secs(5),
            }),
            ..ServiceEnv::default()
        };
        let error = Config::from_args(run_args(&["--stall-timeout", "5s"]), service).unwrap_err();
        let message = error.to_string();
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
        let config = Config::from_args(
            run_args(&["--heartbeat-interval", "20s", "--stall-timeout", "25s"]),
            service,
        )
        .unwrap();
        assert_eq!(config.tick(), Duration::from_secs(15));
    }

    #[test]
    fn bad_value_names_flag_and_env() {
        let error = parse_cli(["tradingbot", "--heartbeat-interval", "soon"]).unwrap_err();
        let line = one_line_error(&error);
        assert!(line.contains("--heartbeat-interval"), "{line}");
        assert!(line.contains("HEARTBEAT_INTERVAL"), "{line}");
        assert!(!line.contains('\n'));
    }
}
