//! Feeds over many seconds: a daemon against a WebSocket server that
//! closes every connection at once, its reconnects counted and timed over
//! ten seconds (the backoff's first wait is a second, not configurable).

use std::time::{Duration, Instant};

use crate::kit::daemon::Builder;
use crate::kit::feeds::rtds::Rtds;
use crate::kit::sources::{rtds_sources, with_sources, RTDS};
use crate::kit::wait::{wait_until, SOON};

/// The connects' gaps, in order.
fn gaps(connects: &[Instant]) -> Vec<Duration> {
    connects.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

#[test]
fn a_server_that_closes_every_connection_sees_the_backoff_not_a_storm() {
    let rtds = Rtds::start();
    rtds.set_closing(true);
    let sources = rtds_sources(&rtds.url(), "200ms", "5m", "");
    let mut daemon = with_sources(Builder::new(), &sources).spawn();
    daemon.wait_ready();
    let first = rtds
        .wait("a connect", |seen| !seen.connects.is_empty())
        .connects[0];
    // Over ten seconds from the first connect: each wait is at least the
    // first (1 s) and at most its ceiling (1, 2, 4, 8 s...), give or take
    // a connect's time.
    let ten = Duration::from_secs(10);
    assert!(wait_until(ten + SOON, || first.elapsed() >= ten));
    let seen = rtds.seen();
    let within: Vec<Instant> = seen
        .connects
        .iter()
        .copied()
        .filter(|at| *at - first <= ten)
        .collect();
    let gaps = gaps(&within);
    assert!(
        (3..=11).contains(&within.len()),
        "{} connects in 10 s: {gaps:?}",
        within.len()
    );
    let second = Duration::from_secs(1);
    assert!(
        gaps.iter().all(|gap| *gap >= second),
        "a wait under the first: {gaps:?}"
    );
    for (index, gap) in gaps.iter().enumerate() {
        let ceiling = second * (1 << index.min(6));
        assert!(
            *gap <= ceiling + second,
            "wait {index} over its ceiling {ceiling:?}: {gaps:?}"
        );
    }
    assert_eq!(seen.subscribes, seen.connects.len(), "each resubscribed");
    let down = daemon.wait_source(RTDS, "down");
    assert_eq!(
        down["last_error"],
        "the server closed the connection (1012 service restart)"
    );
    let reconnects = down["reconnects"].as_u64().unwrap();
    let connects = rtds.seen().connects.len() as u64;
    assert!(
        (connects.saturating_sub(1)..=connects).contains(&reconnects),
        "{reconnects} reconnects, {connects} connects"
    );
    assert!(daemon.stop().success());
}
