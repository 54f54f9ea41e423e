//! Alerts where operators already look: Discord, Slack, Telegram and
//! generic JSON webhooks (README, "Alerts").
//!
//! The daemon builds one [`Alerts`] from [`Settings`] and hands clones to
//! whoever has news: the judge (stalls, recoveries, components, the exit
//! after a stall), the bot loop (lifecycle, fills, risk rejects), the
//! sources (a feed down or back, refused tokens). [`Alerts::send`] never
//! blocks: each destination has its own thread and bounded inbox (see
//! [`worker`]). Right before a process exit, [`Alerts::flush`] gives
//! pending health and lifecycle messages at most two seconds.

mod batch;
mod delivery;
mod destination;
mod event;
mod metrics;
mod worker;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use event::{Event, Kind};

use delivery::{Client, Verdict};
use destination::{Context, Destination, SigningKey};
use metrics::{AlertMetrics, DestinationMetrics};
use worker::{Outbox, Worker};

use crate::metrics::MetricsSource;

/// Default `NOTIFY_TELEGRAM_API`.
pub(crate) const TELEGRAM_API: &str = "https://api.telegram.org";

/// The notifier's settings, validated. Plain data: the command line's
/// flags (`cli::alerts`) are converted into it once.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    destinations: Vec<Destination>,
    timeout: Duration,
    name: String,
    ca_certificates: Vec<ureq::tls::Certificate<'static>>,
    ca_file: Option<PathBuf>,
    telegram_api: String,
    signing: Option<SigningKey>,
}

impl Settings {
    /// No destination yet. `name` heads every message (which bot is it?);
    /// `telegram_api` is the Bot API's base URL.
    pub(crate) fn new(name: &str, timeout: Duration, telegram_api: &str) -> Result<Self, String> {
        let telegram_api = telegram_api.trim().trim_end_matches('/');
        let valid = ["https://", "http://"]
            .iter()
            .any(|scheme| telegram_api.len() > scheme.len() && telegram_api.starts_with(scheme))
            && !telegram_api.contains(['?', '#', ' ']);
        if !valid {
            return Err("must be an http(s):// base URL, like https://api.telegram.org".into());
        }
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err("must be a short name on one line".into());
        }
        Ok(Settings {
            destinations: Vec::new(),
            timeout,
            name: name.to_owned(),
            ca_certificates: Vec::new(),
            ca_file: None,
            telegram_api: telegram_api.to_owned(),
            signing: None,
        })
    }

    /// Keys the HMAC-SHA256 signature of JSON destinations added after this.
    pub(crate) fn set_signing_secret(&mut self, secret: &str) {
        self.signing = Some(SigningKey::new(secret.as_bytes()));
    }

    /// Adds the destinations in `text`: URLs separated by `;` or new
    /// lines; blank lines and lines starting with `#` are skipped. The
    /// error names the entry by its position, never by its text.
    pub(crate) fn add_destinations(&mut self, text: &str) -> Result<(), String> {
        let entries = text
            .split(['\n', ';'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty() && !entry.starts_with('#'));
        for entry in entries {
            let number = self.destinations.len() + 1;
            let context = Context {
                telegram_api: &self.telegram_api,
                signing: self.signing.as_ref(),
            };
            let destination = Destination::parse(entry, number, &context)
                .map_err(|problem| format!("destination {number}: {problem}"))?;
            self.destinations.push(destination);
        }
        Ok(())
    }

    /// Trusts the CA certificates of a PEM file besides the bundled roots.
    pub(crate) fn add_ca_file(&mut self, path: PathBuf, pem: &[u8]) -> Result<(), String> {
        self.ca_certificates
            .extend(crate::tls::parse_pem_certificates(pem)?);
        self.ca_file = Some(path);
        Ok(())
    }

    /// Checks what only the whole set can tell.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.signing.is_some() && !self.destinations.iter().any(Destination::is_signed) {
            return Err("is set but no json:// or jsons:// destination would be signed".into());
        }
        Ok(())
    }

    pub(crate) fn is_enabled(&self) -> bool {
        !self.destinations.is_empty()
    }

    /// `KEY=value` pairs for `check-config`: labels and options, never a URL
    /// or a secret.
    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        let destinations = if self.destinations.is_empty() {
            "none (alerts off)".to_owned()
        } else {
            self.destinations
                .iter()
                .map(|destination| {
                    format!(
                        "{} (redacted; events={}, min_interval={})",
                        destination.label,
                        destination.events_text,
                        humantime::format_duration(destination.min_interval)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            ("NOTIFY_URLS", destinations),
            (
                "NOTIFY_SIGNING_SECRET",
                if self.signing.is_some() {
                    "(set, redacted)".into()
                } else {
                    "none".into()
                },
            ),
            (
                "NOTIFY_TIMEOUT",
                humantime::format_duration(self.timeout).to_string(),
            ),
            (
                "NOTIFY_CA_FILE",
                self.ca_file
                    .as_ref()
                    .map_or("none".into(), |path| path.display().to_string()),
            ),
            ("NOTIFY_TELEGRAM_API", redact_userinfo(&self.telegram_api)),
            ("NOTIFY_NAME", self.name.clone()),
        ]
    }

    fn client(&self) -> Client {
        Client::new(self.timeout, crate::tls::root_certs(&self.ca_certificates))
    }
}

/// `https://user:pass@host` → `https://[redacted]@host`.
fn redact_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest))
            if rest
                .split('/')
                .next()
                .is_some_and(|host| host.contains('@')) =>
        {
            let host = rest.split_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://[redacted]@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The handle everyone sends events through. Cheap to clone; a disabled
/// one (no destination) does nothing.
#[derive(Clone, Default)]
pub(crate) struct Alerts {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    routes: Vec<Route>,
    /// Every kind some destination wants (a bit per [`Kind`]).
    wanted: u16,
    metrics: Arc<AlertMetrics>,
}

struct Route {
    events: u16,
    outbox: Arc<Outbox>,
    metrics: Arc<DestinationMetrics>,
}

impl Alerts {
    /// A handle that sends nothing.
    pub(crate) fn disabled() -> Self {
        Alerts::default()
    }

    /// Starts a thread per destination; disabled without destinations.
    pub(crate) fn start(settings: &Settings) -> std::io::Result<Self> {
        if !settings.is_enabled() {
            return Ok(Alerts::disabled());
        }
        let name: Arc<str> = Arc::from(settings.name.as_str());
        let mut routes = Vec::new();
        for destination in &settings.destinations {
            let outbox = Arc::new(Outbox::default());
            let metrics = Arc::new(DestinationMetrics::new(destination.label.clone()));
            routes.push(Route {
                events: destination.events,
                outbox: Arc::clone(&outbox),
                metrics: Arc::clone(&metrics),
            });
            Worker {
                destination: destination.clone(),
                name: Arc::clone(&name),
                client: settings.client(),
                outbox,
                metrics,
            }
            .spawn()?;
        }
        let wanted = routes.iter().fold(0, |mask, route| mask | route.events);
        let metrics = Arc::new(AlertMetrics {
            destinations: routes
                .iter()
                .map(|route| Arc::clone(&route.metrics))
                .collect(),
        });
        tracing::info!(
            destinations = %settings
                .destinations
                .iter()
                .map(|destination| destination.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            "alerts on"
        );
        Ok(Alerts {
            inner: Some(Arc::new(Inner {
                routes,
                wanted,
                metrics,
            })),
        })
    }

    /// Whether any destination takes this kind: lets a hot path skip
    /// building an event nobody wants.
    pub(crate) fn wants(&self, kind: Kind) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.wanted & kind.bit() != 0)
    }

    /// Queues `event` for every destination that wants it. Never blocks.
    pub(crate) fn send(&self, event: Event) {
        let Some(inner) = &self.inner else {
            return;
        };
        let kind = event.kind();
        if inner.wanted & kind.bit() == 0 {
            return;
        }
        let event = Arc::new(event);
        for route in &inner.routes {
            if route.events & kind.bit() != 0 {
                route.outbox.push(Arc::clone(&event), &route.metrics);
            }
        }
    }

    /// Waits at most `max_wait` (never more than 2 s) for every health and
    /// lifecycle message already sent to be delivered or given up. For
    /// right before a process exit.
    pub(crate) fn flush(&self, max_wait: Duration) {
        let Some(inner) = &self.inner else {
            return;
        };
        let deadline = Instant::now() + max_wait.min(worker::MAX_FLUSH);
        for route in &inner.routes {
            route.outbox.wait_idle(deadline);
        }
    }

    /// The notifier's figures for `/metrics`, when alerts are on.
    pub(crate) fn metrics(&self) -> Option<Arc<dyn MetricsSource>> {
        let inner = self.inner.as_ref()?;
        Some(Arc::clone(&inner.metrics) as Arc<dyn MetricsSource>)
    }
}

/// `tradingbot notify-test`: one test message to every destination at
/// once, one attempt each; writes a line per destination (label, outcome,
/// HTTP status, latency, the service's error) and returns whether all
/// were delivered.
pub(crate) fn notify_test(settings: &Settings, out: &mut dyn Write) -> std::io::Result<bool> {
    if !settings.is_enabled() {
        writeln!(
            out,
            "no destination configured (NOTIFY_URLS or NOTIFY_URLS_FILE)"
        )?;
        return Ok(false);
    }
    let message = worker::render(&Event::Test);
    let attempts: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = settings
            .destinations
            .iter()
            .map(|destination| {
                let message = &message;
                scope.spawn(move || {
                    let request = destination.request(&settings.name, message);
                    settings.client().post(destination, &request)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().ok())
            .collect()
    });
    let mut all_delivered = true;
    for (destination, attempt) in settings.destinations.iter().zip(attempts) {
        let Some(attempt) = attempt else {
            all_delivered = false;
            writeln!(out, "{}\tFAILED\t-\t-\tthe test crashed", destination.label)?;
            continue;
        };
        let delivered = attempt.verdict == Verdict::Delivered;
        all_delivered &= delivered;
        writeln!(
            out,
            "{}\t{}\t{}\t{} ms{}",
            destination.label,
            if delivered { "ok" } else { "FAILED" },
            attempt
                .status
                .map_or_else(|| "no answer".to_owned(), |status| format!("HTTP {status}")),
            attempt.latency.as_millis(),
            attempt
                .error
                .map_or_else(String::new, |error| format!("\t{error}")),
        )?;
    }
    Ok(all_delivered)
}

/// Trade events of one kind sent in full per loop iteration; the rest of
/// the iteration's are counted. A destination shows five per message at
/// most anyway, and a busy loop then pays a counter increment per fill
/// instead of an allocation and a lock.
const DIGEST_SHOWN: u64 = 5;

/// One loop iteration's trade events (fills, risk rejects): the first few
/// of each kind in full, the rest as one count, all sent by
/// [`Digest::send`] at the iteration's end.
#[derive(Default)]
pub(crate) struct Digest {
    events: Vec<Event>,
    /// Per kind (indexed by `Kind as usize`): events seen this iteration.
    seen: [u64; Kind::ALL.len()],
}

impl Digest {
    /// Notes one event of `kind`; `make` builds it only if it will be sent in full.
    pub(crate) fn add(&mut self, alerts: &Alerts, kind: Kind, make: impl FnOnce() -> Event) {
        if !alerts.wants(kind) {
            return;
        }
        let seen = &mut self.seen[kind as usize];
        *seen += 1;
        if *seen <= DIGEST_SHOWN {
            self.events.push(make());
        }
    }

    /// Sends what the iteration gathered.
    pub(crate) fn send(&mut self, alerts: &Alerts) {
        for event in self.events.drain(..) {
            alerts.send(event);
        }
        for kind in Kind::ALL {
            let seen = std::mem::take(&mut self.seen[kind as usize]);
            if seen > DIGEST_SHOWN {
                alerts.send(Event::Counted {
                    kind,
                    count: seen - DIGEST_SHOWN,
                });
            }
        }
    }
}

/// Refusals of the webhook's token that make a burst worth an alert.
const REFUSAL_BURST: u64 = 10;

/// The window a burst is counted in.
const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// Counts the webhook's refusals of a missing or wrong token, and says
/// once per window when they became a burst (someone guessing, or a
/// client with a stale token).
#[derive(Default)]
pub(crate) struct RefusedTokens {
    window: Option<(Instant, u64)>,
}

impl RefusedTokens {
    /// Notes one refusal; the event to send when it completes a burst.
    pub(crate) fn refused(&mut self, now: Instant) -> Option<Event> {
        let (started, count) = match self.window {
            Some((started, count)) if now.duration_since(started) < REFUSAL_WINDOW => {
                (started, count + 1)
            }
            _ => (now, 1),
        };
        self.window = Some((started, count));
        (count == REFUSAL_BURST).then(|| Event::TokensRefused {
            count,
            within: now.duration_since(started),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_numbered_and_errors_say_which() {
        let mut settings = Settings::new("bot", Duration::from_secs(10), TELEGRAM_API).unwrap();
        settings
            .add_destinations("# comment\ndiscord://1/secret-token-aaaa\n\njson://127.0.0.1:9/x")
            .unwrap();
        let error = settings
            .add_destinations("tgram://nonsense-secret-token")
            .unwrap_err();
        assert!(error.starts_with("destination 3: "), "{error}");
        assert!(!error.contains("nonsense-secret-token"));
        let described = format!("{:?}", settings.describe());
        assert!(described.contains("discord#1 (redacted; events=all, min_interval=1m)"));
        assert!(described.contains("json#2"));
        assert!(!described.contains("secret-token"), "{described}");
        assert!(!format!("{settings:?}").contains("secret-token"));
    }

    #[test]
    fn a_signing_secret_needs_a_json_destination() {
        let mut settings = Settings::new("bot", Duration::from_secs(10), TELEGRAM_API).unwrap();
        settings.set_signing_secret("s3cret");
        settings.add_destinations("discord://1/token").unwrap();
        assert!(settings.validate().is_err());
        settings
            .add_destinations("jsons://example.net/hook")
            .unwrap();
        assert!(settings.validate().is_ok());
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn the_telegram_api_must_be_a_base_url() {
        for bad in ["", "api.telegram.org", "https://", "https://x/?a=b"] {
            assert!(
                Settings::new("bot", Duration::from_secs(1), bad).is_err(),
                "{bad}"
            );
        }
        let settings =
            Settings::new("bot", Duration::from_secs(1), "https://tg.local:8081/").unwrap();
        assert_eq!(settings.telegram_api, "https://tg.local:8081");
        assert_eq!(
            redact_userinfo("https://me:pw@tg.local/"),
            "https://[redacted]@tg.local/"
        );
    }

    #[test]
    fn a_disabled_handle_does_nothing_at_once() {
        let alerts = Alerts::disabled();
        assert!(!alerts.wants(Kind::Stalled));
        alerts.send(Event::Test);
        let started = Instant::now();
        alerts.flush(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(alerts.metrics().is_none());
    }

    #[test]
    fn a_digest_builds_five_events_a_kind_and_counts_the_rest() {
        let mut settings = Settings::new("bot", Duration::from_secs(1), TELEGRAM_API).unwrap();
        settings
            .add_destinations("json://127.0.0.1:1/x?events=fill")
            .unwrap();
        let alerts = Alerts::start(&settings).unwrap();
        let mut digest = Digest::default();
        let mut built = 0;
        for _ in 0..12 {
            digest.add(&alerts, Kind::Fill, || {
                built += 1;
                Event::Test
            });
        }
        digest.add(&alerts, Kind::Reject, || {
            unreachable!("nobody wants rejects")
        });
        assert_eq!(built, 5);
        assert_eq!(digest.events.len(), 5);
        assert_eq!(digest.seen[Kind::Fill as usize], 12);
        assert_eq!(digest.seen[Kind::Reject as usize], 0);
    }

    #[test]
    fn ten_refusals_within_a_minute_make_one_burst() {
        let mut refused = RefusedTokens::default();
        let start = Instant::now();
        let events: Vec<_> = (0..25)
            .filter_map(|second| refused.refused(start + Duration::from_secs(second)))
            .collect();
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0], Event::TokensRefused { count: 10, .. }));
        // A new window, a new burst.
        let later = start + Duration::from_secs(120);
        let again = (0..10).filter_map(|_| refused.refused(later)).count();
        assert_eq!(again, 1);
    }
}
