//! Where messages go: one `NOTIFY_URLS` entry parsed into a destination,
//! and each service's request and answer formats.
//!
//! Accepted forms (each may end in `?events=...&min_interval=...`):
//! - a Discord webhook URL: `https://HOST/api/webhooks/ID/TOKEN` (any host,
//!   so a test or a proxy can stand in for discord.com), or Apprise's
//!   `discord://ID/TOKEN`;
//! - a Slack incoming-webhook URL: `https://HOST/services/T.../B.../...`, or
//!   Apprise's `slack://T.../B.../...`;
//! - `tgram://BOT_TOKEN/CHAT_ID` (Apprise's scheme; the API base is
//!   `NOTIFY_TELEGRAM_API`, for a self-hosted Bot API server);
//! - `json://HOST[:PORT]/PATH` (HTTP) and `jsons://...` (HTTPS): the event
//!   as JSON, Apprise's JSON fields plus the event's own.
//!
//! A URL is a credential: it is kept here and never printed. Logs, metrics
//! and errors name a destination by its label (`discord#1`), and every
//! text that came back from a request is passed through [`Destination::redact`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::event::{Kind, Severity};

/// Trade and source events are batched to one message per this, per
/// destination, unless the URL says `min_interval=`.
pub(crate) const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// A service's error text is cut to this before it is logged or printed.
const MAX_ERROR_TEXT: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    Discord,
    Slack,
    Telegram,
    Json,
}

impl Service {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Discord => "discord",
            Service::Slack => "slack",
            Service::Telegram => "telegram",
            Service::Json => "json",
        }
    }

    /// Longest message text, in UTF-16 code units (how Discord and
    /// Telegram count characters): Discord's `content` takes 2,000,
    /// Telegram's `text` 4,096; Slack truncates past 40,000 but advises
    /// 4,000; the JSON receiver is ours to spare.
    pub(crate) fn max_text(self) -> usize {
        match self {
            Service::Discord => 2_000,
            Service::Slack => 4_000,
            Service::Telegram => 4_096,
            Service::Json => 16_384,
        }
    }

    /// The token bucket that keeps a destination within the service's
    /// published limits: (burst, one more message per). Discord: 30
    /// messages a minute per webhook; Slack: one a second, short bursts
    /// allowed; Telegram: 20 a minute in a group (one a second in a
    /// private chat); a JSON receiver: ten a second.
    pub(crate) fn rate(self) -> (u32, Duration) {
        match self {
            Service::Discord => (5, Duration::from_secs(2)),
            Service::Slack => (3, Duration::from_secs(1)),
            Service::Telegram => (3, Duration::from_secs(3)),
            Service::Json => (10, Duration::from_millis(100)),
        }
    }
}

/// `NOTIFY_SIGNING_SECRET` as an HMAC-SHA256 key.
#[derive(Clone)]
pub(crate) struct SigningKey(ring::hmac::Key);

impl SigningKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        SigningKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// `sha256=` and the hex HMAC of `TIMESTAMP.BODY`: the timestamp is
    /// signed too, so a receiver can refuse a replayed old request.
    pub(crate) fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let mut context = ring::hmac::Context::with_key(&self.0);
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        let tag = context.sign();
        let mut out = String::from("sha256=");
        for byte in tag.as_ref() {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SigningKey(redacted)")
    }
}

/// A parsed `NOTIFY_URLS` entry. Its `Debug` shows the label only.
#[derive(Clone)]
pub(crate) struct Destination {
    pub(crate) label: String,
    pub(crate) service: Service,
    /// A bit per [`Kind`] (see [`Kind::bit`]).
    pub(crate) events: u16,
    pub(crate) events_text: String,
    pub(crate) min_interval: Duration,
    endpoint: String,
    chat_id: Option<Value>,
    signing: Option<SigningKey>,
    /// Every piece of the URL that could be a credential, longest first.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.label)
    }
}

/// One HTTP POST, ready to send. Its `url` is a secret.
pub(crate) struct Request<'d> {
    pub(crate) url: &'d str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

/// A message rendered from one event or a batch, before any service's format.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(crate) title: String,
    pub(crate) text: String,
    pub(crate) severity: Severity,
    /// The facts, for the JSON destination.
    pub(crate) fields: Value,
}

/// What parsing needs besides the URL itself.
pub(crate) struct Context<'a> {
    /// `NOTIFY_TELEGRAM_API`, without a trailing slash.
    pub(crate) telegram_api: &'a str,
    pub(crate) signing: Option<&'a SigningKey>,
}

impl Destination {
    /// Parses one entry; `number` (from 1) makes its label. The error
    /// never repeats the URL.
    pub(crate) fn parse(text: &str, number: usize, context: &Context<'_>) -> Result<Self, String> {
        let text = text.trim();
        let (base, query) = text.split_once('?').unwrap_or((text, ""));
        let Some((scheme, rest)) = base.split_once("://") else {
            return Err(
                "not a URL: use a Discord or Slack webhook URL, tgram://, json:// or jsons://"
                    .into(),
            );
        };
        let scheme = scheme.to_ascii_lowercase();
        let mut options = Options::parse(query)?;
        let (service, endpoint, chat_id) = match scheme.as_str() {
            "tgram" => {
                if !options.passthrough.is_empty() {
                    return Err(
                        "tgram:// takes no parameters besides events= and min_interval=".into(),
                    );
                }
                let (token, chat) = telegram_parts(rest)?;
                let endpoint = format!("{}/bot{token}/sendMessage", context.telegram_api);
                (Service::Telegram, endpoint, Some(chat))
            }
            "discord" => {
                let [id, token] = segments::<2>(rest)
                    .ok_or("discord:// needs discord://WEBHOOK_ID/WEBHOOK_TOKEN")?;
                let url = format!("https://discord.com/api/webhooks/{id}/{token}");
                (Service::Discord, options.with_passthrough(url), None)
            }
            "slack" => {
                let [a, b, c] =
                    segments::<3>(rest).ok_or("slack:// needs slack://TOKEN_A/TOKEN_B/TOKEN_C")?;
                let url = format!("https://hooks.slack.com/services/{a}/{b}/{c}");
                (Service::Slack, options.with_passthrough(url), None)
            }
            "json" | "jsons" => {
                split_host(rest)?;
                let real = if scheme == "json" { "http" } else { "https" };
                let url = format!("{real}://{rest}");
                (Service::Json, options.with_passthrough(url), None)
            }
            "https" | "http" => {
                let (_, path) = split_host(rest)?;
                let service = if is_discord_path(path) {
                    Service::Discord
                } else if path.starts_with("/services/") && path.len() > "/services/".len() {
                    Service::Slack
                } else {
                    return Err(format!(
                        "an {scheme}:// URL must be a Discord webhook (path /api/webhooks/ID/TOKEN) \
                         or a Slack incoming webhook (path /services/...); for any other receiver \
                         use json:// or jsons://"
                    ));
                };
                if scheme == "http" {
                    return Err(format!(
                        "a {} webhook URL must be https:// (its token would travel in clear)",
                        service.name()
                    ));
                }
                (
                    service,
                    options.with_passthrough(format!("https://{rest}")),
                    None,
                )
            }
            _ => {
                return Err(format!(
                    "unknown scheme {scheme:?}: use a Discord or Slack webhook URL, tgram://, \
                     json:// or jsons://"
                ))
            }
        };
        let label = format!("{}#{number}", service.name());
        let mut secrets: Vec<String> = vec![text.to_owned(), endpoint.clone()];
        secrets.extend(
            endpoint
                .split(['/', '?', '&', '=', '@'])
                .chain(rest.split(['/', '?', '&', '=', '@']))
                .filter(|piece| piece.len() >= 8 && !piece.contains('.'))
                .map(str::to_owned),
        );
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Ok(Destination {
            label,
            service,
            events: options
                .events
                .take()
                .unwrap_or(Kind::selected_by("all").unwrap_or(0)),
            events_text: options.events_text.take().unwrap_or_else(|| "all".into()),
            min_interval: options.min_interval.unwrap_or(DEFAULT_MIN_INTERVAL),
            endpoint,
            chat_id,
            signing: (service == Service::Json)
                .then(|| context.signing.cloned())
                .flatten(),
            secrets,
        })
    }

    pub(crate) fn is_signed(&self) -> bool {
        self.signing.is_some()
    }

    /// `text` with every piece of this destination's URL replaced, and cut
    /// to a length fit for a log line.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        truncate(&text, MAX_ERROR_TEXT)
    }

    /// The service's request for `message`; `name` says which bot it is.
    pub(crate) fn request(&self, name: &str, message: &Message) -> Request<'_> {
        let limit = self.service.max_text();
        let title = format!("[{name}] {}", message.title);
        let body = match self.service {
            Service::Discord => json!({
                "content": truncate(&format!("**{title}**\n{}", message.text), limit),
                // Text from a feed or an error must never ping @everyone.
                "allowed_mentions": { "parse": [] },
            }),
            Service::Slack => json!({
                "text": truncate_escaped(&slack_escape(&format!("*{title}*\n{}", message.text)), limit),
            }),
            Service::Telegram => json!({
                "chat_id": self.chat_id,
                "text": truncate(&format!("{title}\n{}", message.text), limit),
            }),
            Service::Json => json!({
                "version": "1.0",
                "title": title,
                "message": truncate(&message.text, limit),
                "type": message.severity.as_str(),
                "bot": name,
                "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                "event": message.fields,
            }),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/json".to_owned())];
        if let Some(key) = &self.signing {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            headers.push(("X-Tradingbot-Timestamp", timestamp.to_string()));
            headers.push(("X-Tradingbot-Signature", key.sign(timestamp, &body)));
        }
        Request {
            url: &self.endpoint,
            headers,
            body,
        }
    }

    /// The service's own words for a failure, from its answer's body.
    pub(crate) fn service_error(&self, body: &str) -> Option<String> {
        let json: Option<Value> = serde_json::from_str(body).ok();
        let text = match (self.service, json) {
            (Service::Discord, Some(json)) => {
                let message = json["message"].as_str()?;
                match json["code"].as_u64() {
                    Some(code) if code != 0 => format!("{message} (code {code})"),
                    _ => message.to_owned(),
                }
            }
            (Service::Telegram, Some(json)) => json["description"].as_str()?.to_owned(),
            _ => body.trim().to_owned(),
        };
        (!text.is_empty()).then(|| self.redact(&text))
    }

    /// A wait the service asked for in its answer's body: Discord's
    /// `retry_after` (seconds, fractional), Telegram's
    /// `parameters.retry_after`.
    pub(crate) fn retry_after_in_body(&self, body: &str) -> Option<Duration> {
        let json: Value = serde_json::from_str(body).ok()?;
        let seconds = match self.service {
            Service::Discord => json["retry_after"].as_f64()?,
            Service::Telegram => json["parameters"]["retry_after"].as_f64()?,
            Service::Slack | Service::Json => return None,
        };
        Duration::try_from_secs_f64(seconds).ok()
    }
}

/// `events=` and `min_interval=` taken out of a query; the rest is kept
/// for the service (Discord's `thread_id=`, say).
#[derive(Default)]
struct Options {
    events: Option<u16>,
    events_text: Option<String>,
    min_interval: Option<Duration>,
    passthrough: Vec<String>,
}

impl Options {
    fn parse(query: &str) -> Result<Self, String> {
        let mut options = Options::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "events" => {
                    let value = value.replace("%2C", ",").replace("%2c", ",");
                    let mut mask = 0;
                    for word in value
                        .split(',')
                        .map(str::trim)
                        .filter(|word| !word.is_empty())
                    {
                        mask |= Kind::selected_by(word).ok_or_else(|| {
                            format!(
                                "events={word:?} is not an event: use all, health, lifecycle, \
                                 trading, sources, or {}",
                                Kind::ALL
                                    .iter()
                                    .filter(|kind| **kind != Kind::Test)
                                    .map(|kind| kind.name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })?;
                    }
                    if mask == 0 {
                        return Err("events= names no event".into());
                    }
                    options.events = Some(mask);
                    options.events_text = Some(value);
                }
                "min_interval" => {
                    let interval = humantime::parse_duration(value)
                        .map_err(|_| "min_interval= needs a duration, like 30s or 5m".to_owned())?;
                    if interval < Duration::from_secs(1) {
                        return Err("min_interval= must be at least 1s".into());
                    }
                    options.min_interval = Some(interval);
                }
                _ => options.passthrough.push(pair.to_owned()),
            }
        }
        Ok(options)
    }

    fn with_passthrough(&self, url: String) -> String {
        if self.passthrough.is_empty() {
            url
        } else if url.contains('?') {
            format!("{url}&{}", self.passthrough.join("&"))
        } else {
            format!("{url}?{}", self.passthrough.join("&"))
        }
    }
}

/// Exactly `N` non-empty path segments (a trailing slash allowed).
fn segments<const N: usize>(rest: &str) -> Option<[&str; N]> {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let parts: [&str; N] = parts.try_into().ok()?;
    parts
        .iter()
        .all(|part| !part.is_empty() && part.bytes().all(is_url_safe))
        .then_some(parts)
}

fn is_url_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'%' | b':' | b'@')
}

/// `HOST[:PORT]` and the path (from its `/`) of what follows `scheme://`.
fn split_host(rest: &str) -> Result<(&str, &str), String> {
    let (host, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let bare = host.rsplit_once('@').map_or(host, |(_, host)| host);
    if bare.is_empty()
        || bare
            .bytes()
            .any(|byte| byte.is_ascii_whitespace() || byte < 0x20)
    {
        return Err("the URL has no valid host".into());
    }
    if path
        .bytes()
        .any(|byte| byte.is_ascii_whitespace() || byte < 0x20)
    {
        return Err("the URL's path has a space or a control character".into());
    }
    Ok((host, path))
}

/// `/api/webhooks/ID/TOKEN`, or with an API version: `/api/v10/webhooks/...`.
fn is_discord_path(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["", "api", "webhooks", id, token] | ["", "api", _, "webhooks", id, token] => {
            !id.is_empty() && !token.is_empty()
        }
        _ => false,
    }
}

/// `BOT_TOKEN/CHAT_ID` of a `tgram://` URL. The token is `DIGITS:SECRET`
/// (Apprise also accepts a leading `bot`); the chat is a number or an
/// `@channelusername`.
fn telegram_parts(rest: &str) -> Result<(String, Value), String> {
    const SHAPE: &str = "tgram:// needs tgram://BOT_TOKEN/CHAT_ID (one chat per URL)";
    let [token, chat] = segments::<2>(rest).ok_or(SHAPE)?;
    let token = token.strip_prefix("bot").unwrap_or(token);
    let valid_token = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|byte| byte.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    });
    if !valid_token {
        return Err(
            "tgram://: the bot token must look like 123456789:AAH... (as @BotFather gives it)"
                .into(),
        );
    }
    let chat = if let Ok(id) = chat.parse::<i64>() {
        Value::from(id)
    } else if chat.len() > 1
        && chat.starts_with('@')
        && chat[1..]
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
    {
        Value::from(chat)
    } else {
        return Err("tgram://: the chat must be a numeric chat id or an @channelusername".into());
    };
    Ok((token.to_owned(), chat))
}

/// Slack's three control characters, escaped as its formatting guide asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` within `limit` UTF-16 code units, ending in `…` when cut.
pub(crate) fn truncate(text: &str, limit: usize) -> String {
    if text.encode_utf16().count() <= limit {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 1; // the ellipsis
    for character in text.chars() {
        used += character.len_utf16();
        if used > limit {
            break;
        }
        out.push(character);
    }
    out.push('…');
    out
}

/// Like [`truncate`], without leaving half an `&amp;` at the cut.
fn truncate_escaped(text: &str, limit: usize) -> String {
    let cut = truncate(text, limit);
    let Some(body) = cut.strip_suffix('…') else {
        return cut;
    };
    match body.rfind('&') {
        Some(at) if !body[at..].contains(';') => format!("{}…", &body[..at]),
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "https://api.telegram.org";

    fn parse(text: &str) -> Result<Destination, String> {
        Destination::parse(
            text,
            1,
            &Context {
                telegram_api: API,
                signing: None,
            },
        )
    }

    #[test]
    fn recognises_each_service() {
        let discord = parse("https://discord.com/api/webhooks/123/abcDEF_token-xyz").unwrap();
        assert_eq!(discord.service, Service::Discord);
        assert_eq!(discord.label, "discord#1");
        let apprise = parse("discord://123/abcDEF_token-xyz").unwrap();
        assert_eq!(apprise.endpoint, discord.endpoint);
        let slack = parse("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX").unwrap();
        assert_eq!(slack.service, Service::Slack);
        let telegram = parse("tgram://123456:AAHsecretTOKEN/-100123").unwrap();
        assert_eq!(telegram.service, Service::Telegram);
        assert_eq!(
            telegram.endpoint,
            "https://api.telegram.org/bot123456:AAHsecretTOKEN/sendMessage"
        );
        assert_eq!(telegram.chat_id, Some(Value::from(-100123)));
        let channel = parse("tgram://bot123456:AAHsecretTOKEN/@alerts_channel").unwrap();
        assert_eq!(channel.chat_id, Some(Value::from("@alerts_channel")));
        let json = parse("jsons://hooks.example.net:8443/tradingbot?key=1").unwrap();
        assert_eq!(
            json.endpoint,
            "https://hooks.example.net:8443/tradingbot?key=1"
        );
        let plain = parse("json://127.0.0.1:9000/in").unwrap();
        assert_eq!(plain.endpoint, "http://127.0.0.1:9000/in");
    }

    #[test]
    fn a_test_receiver_stands_in_for_discord_by_the_path() {
        let local = parse("https://127.0.0.1:4443/api/webhooks/1/tok?wait=true").unwrap();
        assert_eq!(local.service, Service::Discord);
        assert_eq!(
            local.endpoint,
            "https://127.0.0.1:4443/api/webhooks/1/tok?wait=true"
        );
    }

    #[test]
    fn options_are_ours_the_rest_is_the_services() {
        let destination = parse(
            "https://discord.com/api/webhooks/1/tok?events=health,fill&thread_id=9&min_interval=30s",
        )
        .unwrap();
        assert_eq!(
            destination.endpoint,
            "https://discord.com/api/webhooks/1/tok?thread_id=9"
        );
        let wants = |kind: Kind| destination.events & kind.bit() != 0;
        assert!(wants(Kind::Stalled));
        assert!(wants(Kind::Fill));
        assert!(!wants(Kind::Reject));
        assert_eq!(destination.min_interval, Duration::from_secs(30));
    }

    #[test]
    fn errors_never_repeat_the_url() {
        let secret = "SUPERSECRETTOKENVALUE";
        for bad in [
            format!("https://example.com/{secret}"),
            format!("http://discord.com/api/webhooks/1/{secret}"),
            format!("tgram://{secret}"),
            format!("tgram://12:{secret}/not a chat"),
            format!("ftp://{secret}"),
            secret.to_string(),
            format!("discord://1/{secret}?events=nope"),
            format!("discord://1/{secret}?min_interval=soon"),
            format!("discord://1/{secret}?min_interval=10ms"),
        ] {
            let error = parse(&bad).unwrap_err();
            assert!(!error.contains(secret), "{error}");
        }
    }

    #[test]
    fn redacts_every_piece_of_the_url() {
        let destination = parse("tgram://123456:AAHsecretTOKEN/-100123").unwrap();
        let echoed = destination.redact(
            "error sending to https://api.telegram.org/bot123456:AAHsecretTOKEN/sendMessage",
        );
        assert!(!echoed.contains("AAHsecretTOKEN"), "{echoed}");
        assert!(echoed.contains("[redacted]"));
    }

    #[test]
    fn texts_fit_each_service() {
        let long = "é".repeat(5_000);
        assert_eq!(truncate(&long, 2_000).encode_utf16().count(), 2_000);
        assert!(truncate(&long, 2_000).ends_with('…'));
        let emoji = "🚀".repeat(3_000);
        assert!(truncate(&emoji, 4_096).encode_utf16().count() <= 4_096);
        assert_eq!(truncate("short", 10), "short");
        let escaped = slack_escape(&"<>&".repeat(2_000));
        let cut = truncate_escaped(&escaped, 4_000);
        assert!(cut.encode_utf16().count() <= 4_000);
        let body = cut.trim_end_matches('…');
        assert!(body.ends_with(';'), "{}", &body[body.len() - 10..]);
    }

    #[test]
    fn signs_timestamp_and_body() {
        // RFC 4231 style check against ring itself: same key, same input.
        let key = SigningKey::new(b"key");
        let signature = key.sign(1_700_000_000, b"{}");
        let expected = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"key"),
            b"1700000000.{}",
        );
        let hex: String = expected
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(signature, format!("sha256={hex}"));
    }

    #[test]
    fn reads_each_services_error_and_wait() {
        let discord = parse("discord://1/tok").unwrap();
        let body = r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#;
        assert_eq!(
            discord.retry_after_in_body(body),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            discord
                .service_error(r#"{"message":"Unknown Webhook","code":10015}"#)
                .as_deref(),
            Some("Unknown Webhook (code 10015)")
        );
        let telegram = parse("tgram://1:abc/5").unwrap();
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#;
        assert_eq!(
            telegram.retry_after_in_body(body),
            Some(Duration::from_secs(3))
        );
        let slack = parse("slack://T1/B2/C3").unwrap();
        assert_eq!(
            slack.service_error("no_service\n").as_deref(),
            Some("no_service")
        );
    }
}
