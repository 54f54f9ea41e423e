//! `tradingbot health`: the probe for a container `HEALTHCHECK` without curl.
//!
//! It trusts the health file only if it is a regular file (not a symlink)
//! whose mtime is recent and not in the future; with `--http` it also asks
//! `/health` on the address the daemon recorded, never the name `localhost`
//! (which may resolve to `::1` where the server listens on IPv4 only).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::file::HealthRecord;
use super::settings::ProbeSettings;

/// Why the probe failed; its `Display` is the one line printed on stderr.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProbeError {
    #[error(
        "unhealthy: {path} is missing (the daemon is not running, not yet healthy, or stalled)"
    )]
    Missing { path: String },
    #[error("unhealthy: {path} is a symlink, not the daemon's health file")]
    Symlink { path: String },
    #[error("unhealthy: {path} is not a regular file")]
    NotRegular { path: String },
    #[error("unhealthy: {path} is stale by {stale_by:.1}s (older than --max-age {max_age:.1}s)")]
    Stale {
        path: String,
        stale_by: f64,
        max_age: f64,
    },
    #[error("unhealthy: {path} has an mtime {ahead:.1}s in the future")]
    InFuture { path: String, ahead: f64 },
    #[error("unhealthy: cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("unhealthy: {path} records no HTTP address (no health port could be bound)")]
    NoAddress { path: String },
    #[error("unhealthy: GET http://{addr}/health failed: {reason}")]
    Http { addr: SocketAddr, reason: String },
    #[error("unhealthy: HTTP {code} from http://{addr}/health: {reason}")]
    Status {
        addr: SocketAddr,
        code: u16,
        reason: String,
    },
}

/// Slack for filesystems whose timestamps are coarser than the clock.
const FUTURE_SLACK: Duration = Duration::from_secs(1);

pub(crate) fn probe(args: &ProbeSettings) -> Result<(), ProbeError> {
    if let Some(addr) = args.addr {
        return check_http(connectable(addr), args.timeout);
    }
    let record = check_file(&args.file, args.max_age, SystemTime::now())?;
    if args.http {
        let path = args.file.display().to_string();
        let record = record?;
        let addr = record.addr.ok_or(ProbeError::NoAddress { path })?;
        check_http(connectable(addr), args.timeout)?;
    }
    Ok(())
}

/// Checks the file's kind and age; returns its record (parsed lazily, as
/// only `--http` needs it).
fn check_file(
    path: &Path,
    max_age: Duration,
    now: SystemTime,
) -> Result<Result<HealthRecord, ProbeError>, ProbeError> {
    let shown = path.display().to_string();
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProbeError::Missing { path: shown })
        }
        Err(error) => {
            return Err(ProbeError::Unreadable {
                path: shown,
                reason: error.to_string(),
            })
        }
    };
    if metadata.file_type().is_symlink() {
        return Err(ProbeError::Symlink { path: shown });
    }
    if !metadata.file_type().is_file() {
        return Err(ProbeError::NotRegular { path: shown });
    }
    let modified = metadata
        .modified()
        .map_err(|error| ProbeError::Unreadable {
            path: shown.clone(),
            reason: error.to_string(),
        })?;
    match now.duration_since(modified) {
        Ok(age) if age > max_age => {
            return Err(ProbeError::Stale {
                path: shown,
                stale_by: (age - max_age).as_secs_f64(),
                max_age: max_age.as_secs_f64(),
            })
        }
        Ok(_) => {}
        Err(ahead) if ahead.duration() > FUTURE_SLACK => {
            return Err(ProbeError::InFuture {
                path: shown,
                ahead: ahead.duration().as_secs_f64(),
            })
        }
        Err(_) => {}
    }
    Ok(read_record(path))
}

fn read_record(path: &Path) -> Result<HealthRecord, ProbeError> {
    let unreadable = |reason: String| ProbeError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| unreadable(error.to_string()))?;
    let line = text.lines().next().unwrap_or_default();
    serde_json::from_str(line).map_err(|error| unreadable(format!("not a health record: {error}")))
}

/// A wildcard bind is reached on loopback of the same family.
fn connectable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn check_http(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let failed = |reason: String| ProbeError::Http { addr, reason };
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|error| failed(error.to_string()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|error| failed(error.to_string()))?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|error| failed(error.to_string()))?;
    let mut response = Vec::with_capacity(2048);
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(|error| failed(error.to_string()))?;
    let response = String::from_utf8_lossy(&response);
    let code = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| failed("not an HTTP response".to_owned()))?;
    if code == 200 {
        return Ok(());
    }
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Err(ProbeError::Status {
        addr,
        code,
        reason: reason_from_body(body),
    })
}

/// The reasons `/health` gives, or its status, joined on one line.
fn reason_from_body(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return "no JSON body".to_owned();
    };
    let reasons: Vec<&str> = json["reasons"]
        .as_array()
        .map(|reasons| {
            reasons
                .iter()
                .filter_map(|reason| reason.as_str())
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        json["status"].as_str().unwrap_or("unknown").to_owned()
    } else {
        reasons.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_probed_on_loopback() {
        assert_eq!(
            connectable("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            connectable("[::]:81".parse().unwrap()),
            "[::1]:81".parse().unwrap()
        );
        assert_eq!(
            connectable("10.1.2.3:80".parse().unwrap()),
            "10.1.2.3:80".parse().unwrap()
        );
    }

    #[test]
    fn reasons_come_from_the_body() {
        let body = r#"{"status":"unhealthy","reasons":["heartbeat stale for 7.2s"]}"#;
        assert_eq!(reason_from_body(body), "heartbeat stale for 7.2s");
        assert_eq!(
            reason_from_body(r#"{"status":"starting","reasons":[]}"#),
            "starting"
        );
    }

    #[test]
    fn future_and_stale_files_fail() {
        let dir = std::env::temp_dir().join(format!("tb-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("healthy");
        std::fs::write(&path, "{}\n").unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let max_age = Duration::from_secs(3);
        assert!(check_file(&path, max_age, modified + Duration::from_secs(1)).is_ok());
        assert!(matches!(
            check_file(&path, max_age, modified + Duration::from_secs(10)),
            Err(ProbeError::Stale { .. })
        ));
        assert!(matches!(
            check_file(&path, max_age, modified - Duration::from_secs(10)),
            Err(ProbeError::InFuture { .. })
        ));
        assert!(matches!(
            check_file(&dir.join("absent"), max_age, modified),
            Err(ProbeError::Missing { .. })
        ));
    }
}
