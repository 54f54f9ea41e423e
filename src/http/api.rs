//! The read API, `/api/v1/…`: status and positions from the figures the
//! bot publishes once per iteration (a copy, never a wait on the loop),
//! fills and rejects from the journal by sequence number, read on the
//! stream thread (a page is at most [`MAX_PAGE`] records), and the trade
//! report, which the stream thread reads the journal for.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Response, StatusCode};
use serde_json::json;

use super::query::{Query, QueryError};
use super::response::{json, json_bytes, text, typed, Body};
use super::stream::message::Kind;
use super::stream::{Stream, MAX_PAGE};
use crate::bot::engine::Held;
use crate::bot::events;
use crate::bot::figures::Tally;
use crate::bot::ledger::query::{instant, INSTANT_FORMS};
use crate::bot::report;
use crate::health::report::{fine_seconds, seconds};
use crate::health::HealthState;

pub struct Api {
    pub health: Arc<HealthState>,
    pub events: Arc<events::Shared>,
    pub stream: Stream,
    pub max_signal_age: Option<Duration>,
}

impl Api {
    /// `/api/v1/status`.
    pub(crate) fn status(&self) -> Response<Body> {
        json(StatusCode::OK, &self.status_document())
    }

    /// `/api/v1/positions`.
    pub(crate) fn positions(&self) -> Response<Body> {
        json(StatusCode::OK, &self.positions_document())
    }

    /// `/api/v1/fills` and `/api/v1/rejects`: a page of `kind` from the
    /// journal, read on the stream thread.
    pub(crate) async fn page(&self, kind: Kind, query: &Query<'_>) -> Response<Body> {
        let (after, limit) = match page_params(query) {
            Ok(page) => page,
            Err(error) => return bad_request(&error),
        };
        match self.stream.page(kind, after, limit).await {
            Ok(body) => typed(StatusCode::OK, "application/json", body),
            Err(error) => {
                tracing::warn!(%error, "a read API page could not be read");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the journal cannot be read just now; try again\n",
                )
            }
        }
    }

    /// `/api/v1/report`: the trade report over the durable journal, read
    /// on the stream thread; `?since=` (RFC 3339, epoch ms, or a duration
    /// ago) and `?symbol=` as `tradingbot journal report` takes them.
    pub(crate) async fn report(&self, query: &Query<'_>) -> Response<Body> {
        let window = match report_window(query) {
            Ok(window) => window,
            Err(error) => return bad_request(&error),
        };
        match self.stream.report(window).await {
            Ok(body) => json_bytes(StatusCode::OK, body),
            Err(error) => {
                tracing::warn!(%error, "the trade report could not be made");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the trade report cannot be made just now; try again\n",
                )
            }
        }
    }

    fn status_document(&self) -> serde_json::Value {
        let view = self.health.view();
        let verdict = view.verdict();
        let figures = self.events.figures().unwrap_or_default();
        let fsync = match (figures.fsync.quantile(0.5), figures.fsync.quantile(0.99)) {
            (Some(p50), Some(p99)) => {
                json!({ "p50": fine_seconds(p50), "p99": fine_seconds(p99) })
            }
            _ => serde_json::Value::Null,
        };
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "status": verdict.status,
            "reasons": verdict.reasons,
            "uptime_seconds": seconds(view.uptime),
            "heartbeat_age_seconds": view.heartbeat_age.map(seconds),
            "last_signal_age_seconds": figures.last_signal.map(|(at, _)| seconds(at.elapsed())),
            "max_signal_age_seconds": self.max_signal_age.map(|age| age.as_secs_f64()),
            "stall_timeout_seconds": view.stall_timeout.as_secs_f64(),
            "signals_total": figures.total(None),
            "fills_total": figures.total(Some(Tally::Filled)),
            "rejects_total": figures.total(Some(Tally::Rejected)),
            "duplicates_total": figures.duplicates,
            "last_seq": self.events.durable(),
            "fsync_seconds": fsync,
            "sources": self.events.sources(),
        })
    }

    fn positions_document(&self) -> serde_json::Value {
        let figures = self.events.figures().unwrap_or_default();
        let positions: Vec<Held> = figures
            .positions
            .iter()
            .map(|(symbol, position)| Held::of(symbol, position))
            .collect();
        // The account's figures (`cash`, `equity`, …) beside the positions.
        let mut document = serde_json::to_value(figures.account).unwrap_or_default();
        document["positions"] = json!(positions);
        document["last_seq"] = json!(self.events.durable());
        document
    }
}

/// `after` (default 0) and `limit` (default 100, at most [`MAX_PAGE`]).
fn page_params(query: &Query<'_>) -> Result<(u64, usize), QueryError> {
    let after = query.number("after", 0, 0..=u64::MAX, "a sequence number (0 or more)")?;
    let limit = query.number("limit", 100, 1..=MAX_PAGE as u64, "1 to 1000")?;
    Ok((after, limit as usize))
}

fn report_window(query: &Query<'_>) -> Result<report::Window, QueryError> {
    let since = query
        .one("since")?
        .map(instant)
        .transpose()
        .map_err(|_| QueryError::Invalid {
            name: "since",
            expected: INSTANT_FORMS,
        })?;
    let symbol = query.one("symbol")?.map(str::to_owned);
    Ok(report::Window {
        since_ms: since,
        symbol,
    })
}

pub(crate) fn bad_request(error: &QueryError) -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error.to_string() }),
    )
}
