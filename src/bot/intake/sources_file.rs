//! The sources file (`SOURCES_FILE`, TOML): one `[[source]]` table a
//! source, each with a name, a kind, the kind's settings and an optional
//! `[source.map]`. `SIGNAL_SOURCE`'s plain values (`file:PATH`,
//! `exec:COMMAND`, `stdin`, `webhook`, and `ws:URL` / `poll:URL` for a feed
//! already in the bot's own format) become the same list of
//! [`SourceSettings`].
//!
//! Secrets come from files (`headers_file`) and are held as secrets;
//! [`describe`] shows every source with them redacted, and URLs with
//! their credentials and query values redacted, since a feed's key often
//! rides in its URL.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use super::headers::Headers;
use super::map::{toml_string, Map, MapSettings, Pointer};

/// A WebSocket source's ping, when the file says none.
pub(crate) const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// A poll source's round, when the file says none.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pages followed in one round while the cursor moves.
pub(crate) const DEFAULT_MAX_PAGES: u32 = 10;

/// One source, from either form.
#[derive(Clone, Debug)]
pub(crate) struct SourceSettings {
    /// Its label in `/health`, metrics, alerts and the dashboard: letters,
    /// digits, `-`, `_` and `.`, so never a path, a command or a secret.
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// No mapped message for this long makes the source `quiet`; `None`:
    /// never (a quiet market is not a fault).
    pub(crate) quiet_after: Option<Duration>,
    /// `None`: messages are in the bot's own signal format.
    pub(crate) map: Option<Arc<Map>>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    File { path: PathBuf },
    Exec { command: Vec<String> },
    Stdin,
    Webhook,
    Ws(WsSettings),
    Poll(PollSettings),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WsSettings {
    pub(crate) url: String,
    /// Sent as text frames after every connect.
    pub(crate) subscribe: Vec<String>,
    pub(crate) ping_interval: Duration,
    /// An application's ping text (RTDS wants `ping`); `None`: WebSocket
    /// ping frames.
    pub(crate) ping_text: Option<String>,
    pub(crate) headers: HeadersFile,
    /// PEM certificates trusted besides the bundled roots.
    pub(crate) ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PollSettings {
    pub(crate) url: String,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) headers: HeadersFile,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) cursor: Option<Cursor>,
    pub(crate) max_pages: u32,
}

/// Where the next page's cursor is in an answer, and the query parameter
/// that sends it back.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cursor {
    pub(crate) from: Pointer,
    pub(crate) param: String,
}

/// A source's `headers_file`, read at start: their values are
/// credentials, so only the names are ever shown.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeadersFile {
    pub(crate) file: Option<PathBuf>,
    pub(crate) headers: Headers,
}

impl PartialEq for HeadersFile {
    /// Two are the same file; what a secret holds is never compared.
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}

/// A mistake in a source's settings: where, and what.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SourcesError(String);

impl std::fmt::Display for SourcesError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for SourcesError {}

/// Reads and checks the sources file at `path`.
pub(crate) fn load(path: &Path) -> Result<Vec<SourceSettings>, SourcesError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        SourcesError(format!(
            "sources file (SOURCES_FILE) {}: {error}",
            path.display()
        ))
    })?;
    parse(path, &text)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    source: Vec<toml::Spanned<toml::Table>>,
}

/// [`load`], on the file's text.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Vec<SourceSettings>, SourcesError> {
    let file = || format!("sources file (SOURCES_FILE) {}", path.display());
    let document: Document = toml::from_str(text).map_err(|error| {
        let at = error
            .span()
            .map(|span| format!(", line {}", line_of(text, span.start)))
            .unwrap_or_default();
        SourcesError(format!("{}{at}: {}", file(), error.message()))
    })?;
    if document.source.is_empty() {
        return Err(SourcesError(format!(
            "{}: no [[source]] table: a source needs at least name and kind",
            file()
        )));
    }
    let mut sources = Vec::new();
    let mut names = BTreeSet::new();
    for (index, table) in document.source.into_iter().enumerate() {
        let line = line_of(text, table.span().start);
        let table = table.into_inner();
        // A name that is not one is not echoed: it may be a command line
        // or a URL, with a credential in it.
        let name = table.get("name").and_then(toml::Value::as_str);
        let label = match name.filter(|name| check_name(name).is_ok()) {
            Some(name) => format!("source {} ({name:?}, line {line})", index + 1),
            None => format!("source {} (line {line})", index + 1),
        };
        let at = |key: &str, message: &str| {
            SourcesError(format!("{}: {label}: {key}: {message}", file()))
        };
        let source: SourceToml =
            toml::Value::Table(table)
                .try_into()
                .map_err(|error: toml::de::Error| {
                    let (message, key) = split_key(&error.to_string());
                    at(&key.unwrap_or_else(|| "(table)".to_owned()), &message)
                })?;
        let source = source
            .build()
            .map_err(|(key, message)| at(&key, &message))?;
        if !names.insert(source.name.clone()) {
            return Err(at(
                "name",
                &format!("{:?} names another source too", source.name),
            ));
        }
        sources.push(source);
    }
    Ok(sources)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count()
        + 1
}

/// A value's error as toml words it, `message\nin `a.b``, split into the
/// message and the key (an unknown key's own name included).
fn split_key(error: &str) -> (String, Option<String>) {
    let error = error.trim_end();
    let (message, parent) = match error.rsplit_once("\nin `") {
        Some((message, key)) => (message.trim(), Some(key.trim_end_matches('`'))),
        None => (error.trim(), None),
    };
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key);
    let key = match (parent, unknown) {
        (Some(parent), Some(key)) => Some(format!("{parent}.{key}")),
        (parent, key) => parent.or(key).map(str::to_owned),
    };
    (message.to_owned(), key)
}

/// A `[[source]]` table as written: every key any kind has, checked
/// against the kind once read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceToml {
    name: Name,
    kind: KindName,
    path: Option<PathBuf>,
    command: Option<Command>,
    url: Option<String>,
    subscribe: Option<Vec<serde_json::Value>>,
    ping_interval: Option<Interval>,
    ping_text: Option<String>,
    headers_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    interval: Option<Interval>,
    timeout: Option<Interval>,
    cursor: Option<Cursor>,
    max_pages: Option<u32>,
    quiet_after: Option<Interval>,
    map: Option<MapSettings>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindName {
    File,
    Exec,
    Stdin,
    Webhook,
    Ws,
    Poll,
}

impl KindName {
    fn as_str(self) -> &'static str {
        match self {
            KindName::File => "file",
            KindName::Exec => "exec",
            KindName::Stdin => "stdin",
            KindName::Webhook => "webhook",
            KindName::Ws => "ws",
            KindName::Poll => "poll",
        }
    }

    /// The keys a source of this kind may have besides name, kind,
    /// quiet_after and map.
    fn keys(self) -> &'static [&'static str] {
        match self {
            KindName::File => &["path"],
            KindName::Exec => &["command"],
            KindName::Stdin | KindName::Webhook => &[],
            KindName::Ws => &[
                "url",
                "subscribe",
                "ping_interval",
                "ping_text",
                "headers_file",
                "ca_file",
            ],
            KindName::Poll => &[
                "url",
                "interval",
                "timeout",
                "headers_file",
                "ca_file",
                "cursor",
                "max_pages",
            ],
        }
    }
}

/// A source's name: a label safe to show anywhere.
#[derive(Clone, Debug)]
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        check_name(&name).map_err(D::Error::custom)?;
        Ok(Name(name))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let fits = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
    if fits {
        Ok(())
    } else {
        Err("is not a name (not shown): 1 to 64 letters, digits, '-', '_' or '.', since it labels the source in /health, metrics and alerts, so never a path, URL or secret".to_owned())
    }
}

/// `command`: an array of words, or a string split at whitespace as
/// `exec:` is.
#[derive(Debug)]
struct Command(Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Line(String),
            Words(Vec<String>),
        }
        let words = match Either::deserialize(deserializer)
            .map_err(|_| D::Error::custom("expected a command: a string, or an array of strings"))?
        {
            Either::Line(line) => line.split_whitespace().map(str::to_owned).collect(),
            Either::Words(words) => words,
        };
        if words
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            return Err(D::Error::custom("the command is empty"));
        }
        Ok(Command(words))
    }
}

/// A duration with a unit, as the flags take them (`500ms`, `5s`, `2m`).
#[derive(Clone, Copy, Debug)]
struct Interval(Duration);

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if !duration.is_zero() => Ok(Interval(duration)),
            Ok(_) => Err(D::Error::custom("must be greater than zero")),
            Err(_) => Err(D::Error::custom(
                "expected a duration with a unit, like 500ms, 5s or 2m",
            )),
        }
    }
}

type KeyError = (String, String);

impl SourceToml {
    fn build(self) -> Result<SourceSettings, KeyError> {
        let kind_name = self.kind;
        let given = [
            ("path", self.path.is_some()),
            ("command", self.command.is_some()),
            ("url", self.url.is_some()),
            ("subscribe", self.subscribe.is_some()),
            ("ping_interval", self.ping_interval.is_some()),
            ("ping_text", self.ping_text.is_some()),
            ("headers_file", self.headers_file.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("interval", self.interval.is_some()),
            ("timeout", self.timeout.is_some()),
            ("cursor", self.cursor.is_some()),
            ("max_pages", self.max_pages.is_some()),
        ];
        if let Some((key, _)) = given
            .iter()
            .find(|(key, given)| *given && !kind_name.keys().contains(key))
        {
            return Err((
                (*key).to_owned(),
                format!("is not a setting of a {} source", kind_name.as_str()),
            ));
        }
        let required = |key: &str| {
            (
                key.to_owned(),
                format!("a {} source needs it", kind_name.as_str()),
            )
        };
        let kind = match kind_name {
            KindName::File => Kind::File {
                path: self.path.ok_or_else(|| required("path"))?,
            },
            KindName::Exec => Kind::Exec {
                command: self.command.ok_or_else(|| required("command"))?.0,
            },
            KindName::Stdin => Kind::Stdin,
            KindName::Webhook => Kind::Webhook,
            KindName::Ws => Kind::Ws(WsSettings {
                url: check_url(self.url.ok_or_else(|| required("url"))?, &["ws", "wss"])?,
                subscribe: self
                    .subscribe
                    .unwrap_or_default()
                    .into_iter()
                    .map(|message| match message {
                        serde_json::Value::String(text) => text,
                        other => other.to_string(),
                    })
                    .collect(),
                ping_interval: self
                    .ping_interval
                    .map_or(DEFAULT_PING_INTERVAL, |interval| interval.0),
                ping_text: self.ping_text,
                headers: read_headers(self.headers_file)?,
                ca_file: check_ca_file(self.ca_file)?,
            }),
            KindName::Poll => Kind::Poll(PollSettings {
                url: check_url(self.url.ok_or_else(|| required("url"))?, &["http", "https"])?,
                interval: self
                    .interval
                    .map_or(DEFAULT_POLL_INTERVAL, |interval| interval.0),
                timeout: self
                    .timeout
                    .map_or(DEFAULT_POLL_TIMEOUT, |timeout| timeout.0),
                headers: read_headers(self.headers_file)?,
                ca_file: check_ca_file(self.ca_file)?,
                cursor: self.cursor,
                max_pages: match self.max_pages {
                    Some(0) => return Err(("max_pages".into(), "must be at least 1".into())),
                    Some(pages) => pages,
                    None => DEFAULT_MAX_PAGES,
                },
            }),
        };
        let map = self
            .map
            .map(Map::new)
            .transpose()
            .map_err(|error| (error.key, error.message))?
            .map(Arc::new);
        Ok(SourceSettings {
            name: self.name.0,
            kind,
            quiet_after: self.quiet_after.map(|interval| interval.0),
            map,
        })
    }
}

/// A URL with one of `schemes` and a host. Checked here so a typo stops
/// the start (exit 2) rather than failing every connect.
fn check_url(url: String, schemes: &[&str]) -> Result<String, KeyError> {
    let bad = |why: String| ("url".to_owned(), format!("{}: {why}", redact_url(&url)));
    let uri: hyper::Uri = url
        .parse()
        .map_err(|error| bad(format!("not a URL ({error})")))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if !schemes.contains(&scheme) {
        return Err(bad(format!("the scheme must be {}", schemes.join(" or "))));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it names no host".into()));
    }
    Ok(url)
}

/// A `ca_file` that holds PEM certificates, checked here so a wrong file
/// stops the start (exit 2) rather than failing every connect.
fn check_ca_file(path: Option<PathBuf>) -> Result<Option<PathBuf>, KeyError> {
    let Some(file) = &path else {
        return Ok(path);
    };
    let bad = |why: String| ("ca_file".to_owned(), format!("{} {why}", file.display()));
    if !file.is_file() {
        return Err(bad("is not a readable file".into()));
    }
    let pem = std::fs::read(file).map_err(|error| bad(format!("cannot be read: {error}")))?;
    crate::tls::parse_pem_certificates(&pem)
        .map_err(|error| bad(format!("holds no usable certificate: {error}")))?;
    Ok(path)
}

/// Reads a `headers_file` ([`Headers::load`]: an error names the file
/// and the line, never a value).
fn read_headers(file: Option<PathBuf>) -> Result<HeadersFile, KeyError> {
    let Some(file) = file else {
        return Ok(HeadersFile::default());
    };
    let headers = Headers::load(&file).map_err(|error| ("headers_file".to_owned(), error))?;
    Ok(HeadersFile {
        file: Some(file),
        headers,
    })
}

/// One `SIGNAL_SOURCE` value: the plain forms, with `ws:URL` and
/// `poll:URL` for feeds already in the bot's own format.
pub(crate) fn parse_plain(text: &str) -> Result<Kind, String> {
    let text = text.trim();
    let url_kind = |url: &str, schemes: &[&str]| {
        check_url(url.to_owned(), schemes).map_err(|(_, message)| message)
    };
    if let Some(url) = text.strip_prefix("ws:") {
        return Ok(Kind::Ws(WsSettings {
            url: url_kind(url, &["ws", "wss"])?,
            subscribe: Vec::new(),
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_text: None,
            headers: HeadersFile::default(),
            ca_file: None,
        }));
    }
    if let Some(url) = text.strip_prefix("poll:") {
        return Ok(Kind::Poll(PollSettings {
            url: url_kind(url, &["http", "https"])?,
            interval: DEFAULT_POLL_INTERVAL,
            timeout: DEFAULT_POLL_TIMEOUT,
            headers: HeadersFile::default(),
            ca_file: None,
            cursor: None,
            max_pages: DEFAULT_MAX_PAGES,
        }));
    }
    if let Some(path) = text.strip_prefix("file:") {
        if path.is_empty() {
            return Err("file: needs a path, as in file:/var/lib/feed/signals.jsonl".into());
        }
        return Ok(Kind::File { path: path.into() });
    }
    if let Some(command) = text.strip_prefix("exec:") {
        let command: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        if command.is_empty() {
            return Err(
                "exec: needs a command, as in exec:/usr/local/bin/feed --symbol BTC".into(),
            );
        }
        return Ok(Kind::Exec { command });
    }
    match text {
        "webhook" => Ok(Kind::Webhook),
        "stdin" | "-" => Ok(Kind::Stdin),
        _ => Err(format!(
            "{text:?} is not a source: use file:PATH, exec:COMMAND ARGS..., webhook, stdin, \
             ws:URL or poll:URL (or a SOURCES_FILE)"
        )),
    }
}

/// The plain forms named as the sources file would name them: by kind,
/// numbered from the second of a kind on (`file`, `file-2`).
pub(crate) fn from_plain(kinds: Vec<Kind>) -> Vec<SourceSettings> {
    let mut seen: Vec<&'static str> = Vec::new();
    kinds
        .into_iter()
        .map(|kind| {
            let label = kind.label();
            seen.push(label);
            let count = seen.iter().filter(|seen| **seen == label).count();
            SourceSettings {
                name: if count == 1 {
                    label.to_owned()
                } else {
                    format!("{label}-{count}")
                },
                kind,
                quiet_after: None,
                map: None,
            }
        })
        .collect()
}

impl Kind {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Kind::File { .. } => "file",
            Kind::Exec { .. } => "exec",
            Kind::Stdin => "stdin",
            Kind::Webhook => "webhook",
            Kind::Ws(_) => "ws",
            Kind::Poll(_) => "poll",
        }
    }
}

impl SourceSettings {
    /// The key its resumable position is journaled under. A file's is its
    /// path, as before the sources file (`file:PATH`), whichever form named
    /// it: the position belongs to the file, not to the label.
    pub(crate) fn resume_key(&self) -> String {
        match &self.kind {
            Kind::File { path } => format!("file:{}", path.display()),
            _ => self.name.clone(),
        }
    }
}

/// `url` with its user, password and query values shown as `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let (before_query, query) = url
        .split_once('?')
        .map_or((url, None), |(a, b)| (a, Some(b)));
    let mut redacted = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
            let host = authority
                .rsplit_once('@')
                .map_or(authority.to_owned(), |(_, host)| format!("***@{host}"));
            format!("{scheme}://{host}{path}")
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

/// `check-config`'s view of the sources: TOML as the sources file would
/// say it, every default filled in, secrets redacted.
pub(crate) fn describe(sources: &[SourceSettings]) -> String {
    let mut out = String::new();
    for source in sources {
        let _ = writeln!(out, "[[source]]\nname = {}", toml_string(&source.name));
        let _ = writeln!(out, "kind = {}", toml_string(source.kind.label()));
        let duration =
            |duration: Duration| toml_string(&humantime::format_duration(duration).to_string());
        match &source.kind {
            Kind::File { path } => {
                let _ = writeln!(out, "path = {}", toml_string(&path.display().to_string()));
            }
            Kind::Exec { command } => {
                let words: Vec<String> = command.iter().map(|word| toml_string(word)).collect();
                let _ = writeln!(out, "command = [{}]", words.join(", "));
            }
            Kind::Stdin | Kind::Webhook => {}
            Kind::Ws(ws) => {
                let _ = writeln!(out, "url = {}", toml_string(&redact_url(&ws.url)));
                let subscribe: Vec<String> =
                    ws.subscribe.iter().map(|text| toml_string(text)).collect();
                let _ = writeln!(out, "subscribe = [{}]", subscribe.join(", "));
                let _ = writeln!(out, "ping_interval = {}", duration(ws.ping_interval));
                let _ = match &ws.ping_text {
                    Some(text) => writeln!(out, "ping_text = {}", toml_string(text)),
                    None => writeln!(out, "# ping_text: none, WebSocket ping frames"),
                };
                describe_files(&mut out, &ws.headers, ws.ca_file.as_deref());
            }
            Kind::Poll(poll) => {
                let _ = writeln!(out, "url = {}", toml_string(&redact_url(&poll.url)));
                let _ = writeln!(out, "interval = {}", duration(poll.interval));
                let _ = writeln!(out, "timeout = {}", duration(poll.timeout));
                let _ = writeln!(out, "max_pages = {}", poll.max_pages);
                describe_files(&mut out, &poll.headers, poll.ca_file.as_deref());
                let _ = match &poll.cursor {
                    Some(cursor) => writeln!(
                        out,
                        "cursor = {{ from = {}, param = {} }}",
                        toml_string(cursor.from.as_str()),
                        toml_string(&cursor.param)
                    ),
                    None => writeln!(out, "# cursor: none, one page a round"),
                };
            }
        }
        let _ = match source.quiet_after {
            Some(quiet) => writeln!(out, "quiet_after = {}", duration(quiet)),
            None => writeln!(out, "# quiet_after: off"),
        };
        match &source.map {
            Some(map) => out.push_str(&map.settings().describe("source.map")),
            None => out.push_str("# map: none, the bot's own signal format\n"),
        }
    }
    out
}

fn describe_files(out: &mut String, headers: &HeadersFile, ca_file: Option<&Path>) {
    let _ = match &headers.file {
        Some(file) => {
            let names: Vec<&str> = headers
                .headers
                .iter()
                .map(|header| header.name.as_str())
                .collect();
            writeln!(
                out,
                "headers_file = {}  # {} (values redacted)",
                toml_string(&file.display().to_string()),
                names.join(", ")
            )
        }
        None => writeln!(out, "# headers_file: none"),
    };
    let _ = match ca_file {
        Some(file) => writeln!(
            out,
            "ca_file = {}",
            toml_string(&file.display().to_string())
        ),
        None => writeln!(out, "# ca_file: none, the bundled roots only"),
    };
}

#[cfg(test)]
mod tests;
