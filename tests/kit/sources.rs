//! A daemon given its sources in a file (`SOURCES_FILE`), the shipped
//! samples pointed at a fake, and what the daemon says of each source
//! through its read API.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::daemon::{Builder, Daemon};
use super::feeds::paged::TOKEN;
use super::shipped::shipped;
use super::wait::{wait_until, SOON};

/// The read token of a daemon given its sources by [`with_sources`].
pub const READ_TOKEN: &str = "feeds-re4d-t0ken-0123456789";

/// The RTDS sample's source name.
pub const RTDS: &str = "polymarket-rtds";

/// A shipped sample's text (`samples/sources/NAME`).
pub fn sample(name: &str) -> String {
    std::fs::read_to_string(shipped(&format!("samples/sources/{name}"))).unwrap()
}

/// `text` with `from` replaced by `to`, which must be there: a sample
/// that changed fails here rather than testing something else.
pub fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in:\n{text}");
    text.replacen(from, to, 1)
}

/// The shipped RTDS sample pointed at `url`, pinging every
/// `ping_interval`, quiet after `quiet_after`; `extra` lines go in its
/// `[[source]]` table.
pub fn rtds_sources(url: &str, ping_interval: &str, quiet_after: &str, extra: &str) -> String {
    let sample = sample("polymarket-rtds.toml");
    let sample = replaced(
        &sample,
        r#"url = "wss://ws-live-data.polymarket.com""#,
        &format!("url = {url:?}\n{extra}"),
    );
    let sample = replaced(
        &sample,
        r#"ping_interval = "5s""#,
        &format!("ping_interval = {ping_interval:?}"),
    );
    replaced(
        &sample,
        r#"quiet_after = "5m""#,
        &format!("quiet_after = {quiet_after:?}"),
    )
}

/// The shipped Whop sample pointed at `url` (the kit's paged list),
/// polling every 100 ms with a timeout of 1 s, the fake's token in a
/// headers file written in `dir`.
pub fn whop_sample(dir: &Path, url: &str) -> String {
    let headers = dir.join("whop.headers");
    std::fs::write(&headers, format!("Authorization: Bearer {TOKEN}\n")).unwrap();
    let sample = sample("whop-poll.toml");
    let sample = replaced(
        &sample,
        "https://api.whop.com/api/v1/messages?channel_id=chat_XXXXXXXX&direction=asc&first=50",
        url,
    );
    let sample = replaced(&sample, r#"interval = "10s""#, r#"interval = "100ms""#);
    let sample = replaced(&sample, r#"timeout = "10s""#, r#"timeout = "1s""#);
    replaced(
        &sample,
        r#"headers_file = "/etc/tradingbot/whop.headers""#,
        &format!("headers_file = {:?}", headers.display().to_string()),
    )
}

/// [`whop_sample`] as the sources file `dir/sources.toml`; returns it.
pub fn whop_sources(dir: &Path, url: &str) -> PathBuf {
    write_sources(dir, &whop_sample(dir, url))
}

/// `builder` reading the sources in `sources`, with the read API on.
pub fn with_sources(builder: Builder, sources: &str) -> Builder {
    let path = write_sources(builder.dir(), sources);
    builder
        .env("SOURCES_FILE", path)
        .env("API_TOKEN", READ_TOKEN)
}

fn write_sources(dir: &Path, sources: &str) -> PathBuf {
    let path = dir.join("sources.toml");
    std::fs::write(&path, sources).unwrap();
    path
}

impl Daemon {
    /// A read API route's JSON, which must answer 200.
    pub fn api(&self, path: &str) -> Value {
        let (code, json) = self.read_api(READ_TOKEN, path);
        assert_eq!(code, 200, "GET {path}: {json}");
        // `read_api` hands back a body that is not JSON as a string; no
        // route answers a bare string, so one here is a body that was not.
        assert!(!json.is_string(), "GET {path}: not JSON: {json}");
        json
    }

    /// Source `name` as `/api/v1/status` lists it.
    pub fn source(&self, name: &str) -> Value {
        let status = self.api("/api/v1/status");
        status["sources"]
            .as_array()
            .and_then(|sources| sources.iter().find(|source| source["name"] == name))
            .unwrap_or_else(|| panic!("no source {name} in {status}"))
            .clone()
    }

    /// Waits until source `name` is `status`; returns it then.
    pub fn wait_source(&self, name: &str, status: &str) -> Value {
        let mut last = Value::Null;
        let reached = wait_until(SOON, || {
            last = self.source(name);
            last["status"] == status
        });
        assert!(
            reached,
            "source {name} never {status}: {last}; log:\n{}",
            self.log.dump()
        );
        last
    }
}
