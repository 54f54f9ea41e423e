//! The poller against the cursor-paged fake.

use std::time::{Duration, SystemTime};

use super::feeds::paged::{Answer, Paged, TOKEN};
use super::{ms, recorder, Heard, Running, QUIET_ONCE};
use crate::backoff::Backoff;
use crate::bot::intake::feed::Status;
use crate::bot::intake::headers::Headers;
use crate::bot::intake::map::Pointer;
use crate::bot::intake::poll::{PollConfig, Poller, LONGEST_RETRY_AFTER};
use crate::bot::intake::sources_file::Cursor;

/// Every 200 ms, the fake's token and cursor, ten pages a round at most.
fn config(url: String) -> PollConfig {
    PollConfig {
        url,
        interval: ms(200),
        timeout: Duration::from_secs(5),
        headers: Headers::parse(&format!("Authorization: Bearer {TOKEN}")).unwrap(),
        ca_certificates: Vec::new(),
        cursor: Some(Cursor {
            from: Pointer::parse("/page_info/end_cursor").unwrap(),
            param: "after".into(),
        }),
        max_pages: 10,
        quiet_after: None,
        backoff: Backoff::new(ms(100), ms(400)),
    }
}

/// A page maps when it lists an order.
fn lists_an_order(page: &[u8]) -> bool {
    String::from_utf8_lossy(page).contains("BUY ")
}

fn start(config: PollConfig, resume: Option<&str>) -> (Running, Heard) {
    let (sink, heard) = recorder(lists_an_order);
    let poller = Poller::new(config).unwrap();
    let resume = resume.map(str::to_owned);
    let running = Running::start(|runtime, shutdown, ended| {
        let _inside = runtime.enter();
        let thread = poller.spawn(sink, resume, shutdown).unwrap();
        std::thread::spawn(move || {
            let _ = thread.join();
            let _ = ended.send(());
        });
    });
    (running, heard)
}

fn cursors(heard: &Heard) -> Vec<Option<&str>> {
    heard
        .deliveries()
        .iter()
        .map(|delivery| delivery.cursor.as_deref())
        .collect()
}

fn post_orders(paged: &Paged, count: usize) {
    for number in 1..=count {
        paged.post(&format!("BUY 0.{number} BTC-USD @ 64000"));
    }
}

#[test]
fn pages_follow_the_cursor_until_it_stops_and_a_304_decides_nothing() {
    let paged = Paged::start(2);
    post_orders(&paged, 5);
    let (_poller, mut heard) = start(config(paged.url()), None);
    heard.until("four pages", |heard| heard.deliveries().len() == 4);
    assert_eq!(
        cursors(&heard),
        [Some("2"), Some("4"), Some("5"), Some("5")]
    );
    let page = String::from_utf8_lossy(heard.messages()[2]).into_owned();
    assert!(page.contains(r#""id":"msg_5""#), "{page}");

    let asked = paged.wait("a 304", |asked| asked.iter().any(|one| one.status == 304));
    let not_modified = asked.iter().find(|one| one.status == 304).unwrap();
    assert_eq!(not_modified.cursor.as_deref(), Some("5"));
    assert_eq!(not_modified.if_none_match.as_deref(), Some(r#""5-5""#));
    heard.drain();
    assert_eq!(heard.deliveries().len(), 4, "a 304 hands nothing on");

    paged.post("BUY 0.6 BTC-USD @ 64000");
    heard.until("the new message", |heard| heard.deliveries().len() == 6);
    assert_eq!(&cursors(&heard)[4..], [Some("6"), Some("6")]);
    assert!(heard
        .statuses()
        .iter()
        .all(|status| !matches!(status, Status::Down { .. })));
}

#[test]
fn max_pages_bounds_a_round_and_the_next_goes_on_an_interval_later() {
    let paged = Paged::start(2);
    post_orders(&paged, 5);
    let mut config = config(paged.url());
    config.max_pages = 2;
    config.interval = ms(500);
    let (_poller, mut heard) = start(config, None);
    heard.until("four pages", |heard| heard.deliveries().len() == 4);
    assert_eq!(
        cursors(&heard),
        [Some("2"), Some("4"), Some("5"), Some("5")]
    );
    let asked = paged.asked();
    let cursors_sent: Vec<Option<&str>> = asked.iter().map(|one| one.cursor.as_deref()).collect();
    assert_eq!(cursors_sent[..4], [None, Some("2"), Some("4"), Some("5")]);
    assert!(
        asked[2].at - asked[1].at >= ms(500),
        "a round ends at max_pages"
    );
}

#[test]
fn a_429_and_a_503_are_retried_when_retry_after_says() {
    let paged = Paged::start(10);
    post_orders(&paged, 1);
    paged.then(Answer::TooMany("1".into()));
    // A date has whole seconds, and is read a second later: 3 to 4 s.
    let later = SystemTime::now() + Duration::from_secs(5);
    paged.then(Answer::Unavailable(crate::backoff::http_date(later)));
    let (_poller, mut heard) = start(config(paged.url()), None);
    heard.until("up", |heard| heard.is(&Status::Up));
    let statuses: Vec<&Status> = heard.statuses();
    let Status::Down { error, retry_in } = statuses[1] else {
        panic!("{statuses:?}");
    };
    assert_eq!(
        (error.as_str(), *retry_in),
        ("HTTP 429", Duration::from_secs(1))
    );
    let Status::Down { error, retry_in } = statuses[2] else {
        panic!("{statuses:?}");
    };
    assert_eq!(error, "HTTP 503");
    assert!(
        *retry_in > Duration::from_secs(2) && *retry_in <= Duration::from_secs(5),
        "{retry_in:?}"
    );
    assert_eq!(
        heard.deliveries().len(),
        2,
        "the page, then the cursor's end"
    );
    let asked = paged.asked();
    assert!(asked[1].at - asked[0].at >= ms(1_000), "{asked:#?}");
    assert!(asked[2].at - asked[1].at >= ms(2_000), "{asked:#?}");
}

#[test]
fn a_retry_after_of_an_hour_is_cut_and_shutdown_ends_the_wait() {
    let paged = Paged::start(10);
    paged.then(Answer::TooMany("3600".into()));
    let (poller, mut heard) = start(config(paged.url()), None);
    heard.until("down", |heard| heard.statuses().len() == 2);
    assert_eq!(
        heard.statuses()[1],
        &Status::Down {
            error: "HTTP 429".into(),
            retry_in: LONGEST_RETRY_AFTER
        }
    );
    assert!(
        poller.stops_within(Duration::from_secs(5)),
        "stuck in a wait"
    );
}

#[test]
fn an_answer_past_the_timeout_is_a_failure_and_the_next_round_recovers() {
    let paged = Paged::start(10);
    post_orders(&paged, 1);
    paged.then(Answer::Hang);
    let mut config = config(paged.url());
    config.timeout = ms(300);
    let (_poller, mut heard) = start(config, None);
    heard.until("up", |heard| heard.is(&Status::Up));
    assert_eq!(heard.errors(), ["no answer within 300ms"]);
    assert_eq!(
        heard.deliveries().len(),
        2,
        "the page, then the cursor's end"
    );
    assert_eq!(heard.counts().last().unwrap().reconnects, 1);
}

#[test]
fn a_restart_resumes_from_the_cursor_it_is_given() {
    let paged = Paged::start(10);
    post_orders(&paged, 5);
    let (_poller, mut heard) = start(config(paged.url()), Some("3"));
    heard.until("a page", |heard| !heard.deliveries().is_empty());
    assert_eq!(paged.asked()[0].cursor.as_deref(), Some("3"));
    let page = String::from_utf8_lossy(heard.messages()[0]).into_owned();
    assert!(
        page.contains("msg_4") && page.contains("msg_5") && !page.contains("msg_3"),
        "{page}"
    );
    assert_eq!(cursors(&heard)[0], Some("5"));
}

#[test]
fn a_wrong_token_is_down_and_never_quoted() {
    let paged = Paged::start(10);
    let mut config = config(paged.url());
    config.headers = Headers::parse("Authorization: Bearer wr0ngtoken").unwrap();
    let (_poller, mut heard) = start(config, None);
    heard.until("down", |heard| !heard.errors().is_empty());
    assert_eq!(heard.errors()[0], "HTTP 401");
    assert!(!paged.asked()[0].authorized);
    assert!(heard.deliveries().is_empty());
}

#[test]
fn pages_that_map_nothing_make_a_quiet_feed_until_one_does() {
    let paged = Paged::start(10);
    let mut config = config(paged.url());
    config.quiet_after = Some(ms(500));
    let (_poller, mut heard) = start(config, None);
    heard.until("quiet", |heard| heard.is(&Status::Quiet));
    paged.post("BUY 1 BTC-USD @ 64000");
    heard.until("up", |heard| heard.is(&Status::Up));
    assert_eq!(heard.statuses(), QUIET_ONCE.iter().collect::<Vec<_>>());
}

#[test]
fn shutdown_during_a_request_does_not_wait_for_its_answer() {
    let paged = Paged::start(10);
    paged.then(Answer::Hang);
    let mut config = config(paged.url());
    config.timeout = Duration::from_secs(60);
    let (poller, _heard) = start(config, None);
    paged.wait("the request", |asked| !asked.is_empty());
    assert!(
        poller.stops_within(Duration::from_secs(5)),
        "stuck in a request"
    );
}
