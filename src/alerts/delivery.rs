//! One destination's HTTP: a blocking client (ureq over rustls, on the
//! destination's own thread), the service's rate limit, retries with
//! exponential backoff and jitter, and the waits a service asks for
//! (`Retry-After`, Discord's and Telegram's `retry_after`, Discord's
//! `X-RateLimit-Reset-After`).

use std::time::{Duration, Instant};

use ureq::tls::{RootCerts, TlsConfig};

use super::destination::{Destination, Request};

/// Attempts per message, the first included.
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// The first retry waits about this long; each later one twice as long.
const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// No backoff is longer than this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A service asking for a longer wait than this is treated as down: the
/// message is given up rather than holding the destination for hours.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The most of an answer's body read (for the service's error text).
const MAX_ANSWER: u64 = 16 * 1024;

/// What one attempt came to.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The HTTP status, when an answer came.
    pub(crate) status: Option<u16>,
    pub(crate) latency: Duration,
    /// Why it failed, in words fit to log (redacted): the service's own
    /// text, or what went wrong on the way.
    pub(crate) error: Option<String>,
    pub(crate) verdict: Verdict,
    /// The service says to wait this long before the next request
    /// (successful or not: Discord's bucket may just have emptied).
    pub(crate) wait: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Delivered,
    /// A timeout, a refused connection, a 5xx, a 429: worth another try.
    Retry,
    /// The service refused the message itself (a 4xx): retrying changes nothing.
    Refused,
}

pub(crate) struct Client {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Client {
    pub(crate) fn new(timeout: Duration, roots: RootCerts) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // A webhook never redirects; following one would hand the
            // body (and a signed header) to whoever the answer names.
            .max_redirects(0)
            .user_agent(concat!("tradingbot/", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        Client {
            agent: config.new_agent(),
            timeout,
        }
    }

    /// One POST of `request` to `destination`; never fails, says how it went.
    pub(crate) fn post(&self, destination: &Destination, request: &Request<'_>) -> Attempt {
        let started = Instant::now();
        let mut builder = self.agent.post(request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.send(&request.body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_ANSWER)
                    .read_to_string()
                    .unwrap_or_default();
                let latency = started.elapsed();
                let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
                let mut wait = None;
                if header("x-ratelimit-remaining") == Some("0") {
                    wait =
                        header("x-ratelimit-reset-after").and_then(crate::backoff::parse_seconds);
                }
                let verdict = match status {
                    200..=299 => Verdict::Delivered,
                    429 => {
                        wait = destination
                            .retry_after_in_body(&body)
                            .or_else(|| {
                                header("retry-after").and_then(crate::backoff::parse_retry_after)
                            })
                            .or(wait);
                        Verdict::Retry
                    }
                    408 | 500..=599 => Verdict::Retry,
                    _ => Verdict::Refused,
                };
                let error = (verdict != Verdict::Delivered).then(|| {
                    destination
                        .service_error(&body)
                        .unwrap_or_else(|| format!("HTTP {status}"))
                });
                Attempt {
                    status: Some(status),
                    latency,
                    error,
                    verdict,
                    wait,
                }
            }
            Err(error) => Attempt {
                status: None,
                latency: started.elapsed(),
                error: Some(destination.redact(&self.describe(&error))),
                verdict: Verdict::Retry,
                wait: None,
            },
        }
    }

    /// A transport error in our words: ureq's own may quote the URL.
    fn describe(&self, error: &ureq::Error) -> String {
        match error {
            ureq::Error::Timeout(_) => format!(
                "no answer within NOTIFY_TIMEOUT {}",
                humantime::format_duration(self.timeout)
            ),
            ureq::Error::HostNotFound => "host not found".into(),
            ureq::Error::ConnectionFailed => "connection failed".into(),
            ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
            ureq::Error::Tls(problem) => format!("TLS: {problem}"),
            ureq::Error::Rustls(problem) => format!("TLS: {problem}"),
            ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
                "the receiver answered with a redirect (not followed)".into()
            }
            other => format!("request failed: {other}"),
        }
    }
}

/// How long to wait before attempt `attempt + 1` (`attempt` from 1): the
/// service's word if it gave one, else an exponential backoff with jitter
/// (half fixed, half random, so many bots restarted together spread out).
/// `None`: give up.
pub(crate) fn retry_delay(attempt: u32, asked: Option<Duration>) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    if let Some(asked) = asked {
        return (asked <= LONGEST_RETRY_AFTER).then_some(asked);
    }
    let exponential = BACKOFF_BASE
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(BACKOFF_MAX);
    Some(exponential / 2 + exponential.mul_f64(crate::backoff::random_fraction() / 2.0))
}

/// A token bucket: `burst` messages at once, then one per `every`.
pub(crate) struct RateLimit {
    burst: f64,
    every: Duration,
    tokens: f64,
    at: Instant,
    /// No request before this (a service asked for a pause).
    hold_until: Option<Instant>,
}

impl RateLimit {
    pub(crate) fn new((burst, every): (u32, Duration)) -> Self {
        RateLimit {
            burst: f64::from(burst),
            every,
            tokens: f64::from(burst),
            at: Instant::now(),
            hold_until: None,
        }
    }

    /// How long to wait before the next request may go (zero: now), taking
    /// its token when it may.
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        if let Some(until) = self.hold_until {
            if until > now {
                return until - now;
            }
            self.hold_until = None;
        }
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() / self.every.as_secs_f64();
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            self.every.mul_f64(1.0 - self.tokens)
        }
    }

    pub(crate) fn hold(&mut self, until: Instant) {
        self.hold_until = Some(self.hold_until.map_or(until, |held| held.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_jitters_and_ends() {
        for attempt in 1..MAX_ATTEMPTS {
            let delay = retry_delay(attempt, None).unwrap();
            let full = BACKOFF_BASE * (1 << (attempt - 1));
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
        assert_eq!(retry_delay(MAX_ATTEMPTS, None), None);
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_delay(1, Some(Duration::from_secs(3_600))), None);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_paces() {
        let start = Instant::now();
        let mut limit = RateLimit::new((2, Duration::from_secs(1)));
        assert_eq!(limit.take(start), Duration::ZERO);
        assert_eq!(limit.take(start), Duration::ZERO);
        assert_eq!(limit.take(start), Duration::from_secs(1));
        assert_eq!(limit.take(start + Duration::from_secs(1)), Duration::ZERO);
        limit.hold(start + Duration::from_secs(10));
        assert_eq!(
            limit.take(start + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
    }
}
