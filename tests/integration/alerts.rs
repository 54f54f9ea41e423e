//! Alerts (issue 14) against fake Discord, Slack, Telegram and JSON
//! receivers over TLS on loopback (alerts_fakes.rs): stalls and
//! recoveries while a destination hangs, the message before an exit after
//! a stall, retries as each service asks, batching, `notify-test`, and no
//! secret in any output.

use std::time::Duration;
#[cfg(feature = "failpoints")]
use std::time::Instant;

use crate::alerts_fakes::{
    Answer, Receiver, Service, DISCORD_TOKEN, JSON_KEY, SIGNING_SECRET, SLACK_TOKEN, TELEGRAM_TOKEN,
};
use serde_json::Value;

use crate::kit::daemon::{stdin_bot, Builder};
use crate::kit::feeds::rtds::{self, Rtds};
use crate::kit::journal::signal_line;
use crate::kit::notify::NotifySocket;
use crate::kit::tls::TestCa;
use crate::kit::wait::{wait_until, SOON};

/// The four services, each with its own receiver, all answering 200.
struct Receivers {
    discord: Receiver,
    slack: Receiver,
    telegram: Receiver,
    json: Receiver,
}

impl Receivers {
    fn start(ca: &TestCa) -> Self {
        Receivers {
            discord: Receiver::start(Service::Discord, ca),
            slack: Receiver::start(Service::Slack, ca),
            telegram: Receiver::start(Service::Telegram, ca),
            json: Receiver::start_signed(Service::Json, ca, Some(SIGNING_SECRET)),
        }
    }

    fn all(&self) -> [&Receiver; 4] {
        [&self.discord, &self.slack, &self.telegram, &self.json]
    }

    /// The daemon's settings for them, each URL ending in `options`.
    fn configure(&self, builder: Builder, ca: &TestCa, options: &str) -> Builder {
        let urls: Vec<String> = self
            .all()
            .iter()
            .map(|receiver| format!("{}?{options}", receiver.url()))
            .collect();
        builder
            .env("NOTIFY_URLS", urls.join(";"))
            .env("NOTIFY_CA_FILE", &ca.pem_path)
            .env("NOTIFY_TELEGRAM_API", self.telegram.base())
            .env("NOTIFY_SIGNING_SECRET", SIGNING_SECRET)
            .env("NOTIFY_NAME", "bot-under-test")
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn alerts_a_stall_gives_one_stalled_and_one_recovered_per_destination_while_one_hangs() {
    let builder = Builder::new();
    let ca = TestCa::new();
    let receivers = Receivers::start(&ca);
    let hanging = Receiver::start(Service::Json, &ca);
    hanging.always(Answer::Hang);
    let urls: Vec<String> = receivers
        .all()
        .iter()
        .chain([&&hanging])
        .map(|receiver| format!("{}?events=health", receiver.url()))
        .collect();
    let daemon = receivers
        .configure(builder, &ca, "")
        .env("NOTIFY_URLS", urls.join(";"))
        // The hanging destination holds its thread for the whole test.
        .env("NOTIFY_TIMEOUT", "60s")
        .env("FAILPOINTS", "bot::iteration=20*off->1*sleep(4000)->off")
        .spawn();
    daemon.wait_ready();
    daemon.expect_log("bot loop stalled");
    let stalled_at = Instant::now();
    for receiver in receivers.all() {
        let received = receiver
            .wait_for("STALLED", SOON)
            .unwrap_or_else(|| panic!("{:?} got no stall alert", receiver.service));
        assert!(
            received.at.duration_since(stalled_at) < Duration::from_secs(3),
            "{:?}: the stall alert took {:?}",
            receiver.service,
            received.at.duration_since(stalled_at)
        );
        assert!(
            received.text.contains("[bot-under-test]"),
            "{}",
            received.text
        );
    }
    // The hanging destination has the stall alert and holds it.
    assert!(hanging.wait_for("STALLED", SOON).is_some());

    daemon.expect_log("bot loop recovered");
    let recovered_at = Instant::now();
    for receiver in receivers.all() {
        let received = receiver
            .wait_for("recovered", SOON)
            .unwrap_or_else(|| panic!("{:?} got no recovery alert", receiver.service));
        assert!(
            received.at.duration_since(recovered_at) < Duration::from_secs(3),
            "{:?}: the recovery alert took {:?} behind a hanging destination",
            receiver.service,
            received.at.duration_since(recovered_at)
        );
        assert!(
            received.text.contains("after a stall of "),
            "{}",
            received.text
        );
        eprintln!(
            "{:?}: recovery alert {:?} after the recovery was logged",
            receiver.service,
            received.at.duration_since(recovered_at)
        );
    }
    // Each transition once, not once per tick.
    std::thread::sleep(Duration::from_secs(2));
    for receiver in receivers.all() {
        assert_eq!(receiver.count("STALLED"), 1, "{:?}", receiver.service);
        assert_eq!(receiver.count("recovered"), 1, "{:?}", receiver.service);
        assert_eq!(receiver.received().len(), 2, "{:?}", receiver.service);
        receiver.assert_well_formed();
    }
    assert_eq!(hanging.received().len(), 1, "one request, still hanging");
    let json = &receivers.json.received()[0];
    assert_eq!(json.body["event"]["kind"], "stalled");
    assert_eq!(json.body["type"], "failure");
    assert_eq!(json.body["bot"], "bot-under-test");
}

#[cfg(feature = "failpoints")]
#[test]
fn alerts_the_exit_after_a_stall_is_sent_before_the_process_ends() {
    let builder = Builder::new();
    let ca = TestCa::new();
    let discord = Receiver::start(Service::Discord, &ca);
    let hanging = Receiver::start(Service::Slack, &ca);
    hanging.always(Answer::Hang);
    let mut daemon = builder
        .env(
            "NOTIFY_URLS",
            format!(
                "{}?events=health,lifecycle;{}",
                discord.url(),
                hanging.url()
            ),
        )
        .env("NOTIFY_CA_FILE", &ca.pem_path)
        .env("NOTIFY_TIMEOUT", "60s")
        .env("STALL_EXIT_AFTER", "3s")
        .env("FAILPOINTS", "bot::iteration=10*off->sleep(60000)")
        .spawn();
    daemon.wait_ready();
    daemon.expect_log("past STALL_EXIT_AFTER");
    let decided = Instant::now();
    let status = daemon.wait_exit(SOON);
    let exited = Instant::now();
    assert_eq!(status.code(), Some(70), "{status}");
    let exiting = discord
        .received()
        .into_iter()
        .find(|received| received.text.contains("EXITING with code 70"))
        .expect("the exit alert reached Discord before the process ended");
    assert!(exiting.at <= exited);
    assert!(
        exiting.text.contains("STALL_EXIT_AFTER"),
        "{}",
        exiting.text
    );
    eprintln!(
        "exit 70 came {:?} after the decision; the exit alert reached Discord {:?} before it",
        exited.duration_since(decided),
        exited.duration_since(exiting.at)
    );
    // The hanging destination holds the exit up for the bounded wait only.
    assert!(
        exited.duration_since(decided) < Duration::from_secs(4),
        "exit took {:?} after the decision",
        exited.duration_since(decided)
    );
    assert_eq!(discord.count("STALLED"), 1);
    assert_eq!(discord.count("Started"), 1);
    discord.assert_well_formed();
}

#[test]
fn alerts_each_service_is_retried_as_it_asks() {
    let builder = Builder::new();
    let ca = TestCa::new();
    let receivers = Receivers::start(&ca);
    receivers.discord.then(&[Answer::RateLimited(1.5)]);
    receivers.slack.then(&[Answer::ServerError]);
    receivers.telegram.then(&[Answer::RateLimited(2.0)]);
    receivers
        .json
        .then(&[Answer::ServerError, Answer::RateLimited(1.0)]);
    let daemon = receivers
        .configure(builder, &ca, "events=lifecycle")
        .spawn();
    daemon.wait_ready();
    let waits = [
        (&receivers.discord, 2, Duration::from_millis(1_450)),
        (&receivers.slack, 2, Duration::from_millis(400)),
        (&receivers.telegram, 2, Duration::from_millis(1_950)),
        (&receivers.json, 3, Duration::from_millis(1_400)),
    ];
    for (receiver, attempts, least) in waits {
        let delivered = wait_until(SOON, || receiver.received().len() >= attempts);
        assert!(
            delivered,
            "{:?}: {:?}",
            receiver.service,
            receiver.received()
        );
        let received = receiver.received();
        assert!(received
            .iter()
            .all(|request| request.text.contains("Started")));
        let first_to_last = received[attempts - 1].at.duration_since(received[0].at);
        assert!(
            first_to_last >= least,
            "{:?} retried after {first_to_last:?}, asked for at least {least:?}",
            receiver.service
        );
        receiver.assert_well_formed();
    }
    std::thread::sleep(Duration::from_millis(500));
    for (receiver, attempts, _) in waits {
        assert_eq!(
            receiver.received().len(),
            attempts,
            "{:?}: delivered once",
            receiver.service
        );
    }
    let delivered = daemon.wait_metric(
        "notifications_total",
        &[
            ("destination", "discord#1"),
            ("event", "started"),
            ("result", "delivered"),
        ],
        1.0,
    );
    assert_eq!(delivered, 1.0);
    assert_eq!(
        daemon.metric(
            "notifications_total",
            &[
                ("destination", "json#4"),
                ("event", "started"),
                ("result", "retried")
            ],
        ),
        Some(2.0)
    );
    assert!(daemon
        .metric(
            "notification_delivery_seconds_count",
            &[("destination", "slack#2")]
        )
        .is_some_and(|count| count >= 2.0));
}

#[test]
fn alerts_fills_and_rejects_are_batched_per_min_interval() {
    let builder = stdin_bot();
    let ca = TestCa::new();
    let json = Receiver::start(Service::Json, &ca);
    let mut daemon = builder
        .env(
            "NOTIFY_URLS",
            format!("{}?events=trading&min_interval=3s", json.url()),
        )
        .env("NOTIFY_CA_FILE", &ca.pem_path)
        .env("MAX_POSITION_QTY", "100")
        .spawn();
    daemon.wait_ready();
    daemon.write_stdin(signal_line("first", "BTC", "buy", 1.0, Some(100.0)).as_bytes());
    let first = json
        .wait_for("BUY 1 BTC", SOON)
        .expect("the first fill at once");
    assert_eq!(first.body["event"]["kind"], "batch");
    let mut burst = String::new();
    for number in 0..20 {
        burst.push_str(&signal_line(
            &format!("f{number}"),
            "ETH",
            "sell",
            1.0,
            Some(10.0),
        ));
    }
    for number in 0..3 {
        burst.push_str(&signal_line(
            &format!("big{number}"),
            "SOL",
            "buy",
            1_000.0,
            Some(1.0),
        ));
    }
    daemon.write_stdin(burst.as_bytes());
    let summary = json
        .wait_for("more fills", SOON)
        .unwrap_or_else(|| panic!("no summary for the burst: {:?}", json.received()));
    assert!(
        summary.at.duration_since(first.at) >= Duration::from_millis(2_900),
        "the summary came {:?} after the first message",
        summary.at.duration_since(first.at)
    );
    assert!(
        summary.text.contains("] 20 fills, 3 rejects\n"),
        "{}",
        summary.text
    );
    assert!(
        summary.text.contains("15 more fills, 3 rejects since "),
        "{}",
        summary.text
    );
    assert_eq!(summary.body["event"]["more"]["fill"], 15);
    assert_eq!(summary.body["event"]["more"]["reject"], 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(json.received().len(), 2, "{:?}", json.received());
    json.assert_well_formed();
    assert!(daemon.stop().success());
}

#[test]
fn alerts_a_source_quiet_down_and_up_again_each_read_as_one_line() {
    let builder = Builder::new();
    let ca = TestCa::new();
    let receivers = Receivers::start(&ca);
    let elsewhere = Receiver::start(Service::Json, &ca);
    let fake = Rtds::start();
    let marker = builder.dir().join("feed-may-run");
    let sources = format!(
        r#"
[[source]]
name = "polymarket-rtds"
kind = "ws"
url = "{url}"
subscribe = ['{subscribe}']
ping_interval = "300ms"
ping_text = "ping"
quiet_after = "1s"

[source.map]
when = {{ "/topic" = "activity", "/type" = "trades" }}
id = "/payload/transactionHash"
symbol = "/payload/slug"
side = "/payload/side"
qty = "/payload/size"
price = "/payload/price"
side_values = {{ BUY = "buy", SELL = "sell" }}

[[source]]
name = "feed"
kind = "exec"
command = ["sh", "-c", "test -e {marker} || exit 3; echo hello; exec sleep 600"]
"#,
        url = fake.url(),
        subscribe = Rtds::subscribe_message(),
        marker = marker.display(),
    );
    let file = builder.dir().join("sources.toml");
    std::fs::write(&file, sources).unwrap();
    let daemon = receivers
        .configure(builder, &ca, "events=sources&min_interval=1s")
        .env(
            "NOTIFY_URLS",
            receivers
                .all()
                .iter()
                .map(|receiver| format!("{}?events=sources&min_interval=1s", receiver.url()))
                .chain([format!(
                    "{}?events=health,lifecycle,trading",
                    elsewhere.url()
                )])
                .collect::<Vec<_>>()
                .join(";"),
        )
        .env("SOURCES_FILE", file)
        .env("EXEC_BACKOFF", "100ms")
        .env("EXEC_BACKOFF_MAX", "200ms")
        .spawn();
    daemon.wait_ready();

    for receiver in receivers.all() {
        let quiet = receiver
            .wait_for("polymarket-rtds source quiet", SOON)
            .unwrap_or_else(|| panic!("{:?}: no quiet alert", receiver.service));
        assert!(
            quiet.text.contains("no signal for 1s (quiet_after)"),
            "{:?}: {}",
            receiver.service,
            quiet.text
        );
        let down = receiver
            .wait_for("feed source down", SOON)
            .unwrap_or_else(|| panic!("{:?}: no down alert", receiver.service));
        assert!(
            down.text.contains("feed process exited (exit status: 3)"),
            "{:?}: {}",
            receiver.service,
            down.text
        );
    }
    // Restarted again and again, failing each time: one trouble, one alert.
    daemon.wait_metric("source_reconnects_total", &[("source", "feed")], 4.0);
    std::fs::write(&marker, "").unwrap();
    fake.push_trade(&rtds::trade("fed-cut-june", "BUY", 1.0, 0.5));
    for receiver in receivers.all() {
        for back in ["polymarket-rtds source up again", "feed source up again"] {
            let received = receiver
                .wait_for(back, SOON)
                .unwrap_or_else(|| panic!("{:?}: no {back:?}", receiver.service));
            assert!(
                received.text.contains(" quiet") || received.text.contains(" down"),
                "{:?}: {}",
                receiver.service,
                received.text
            );
        }
        assert_eq!(
            receiver.count("feed source down"),
            1,
            "{:?}",
            receiver.service
        );
        receiver.assert_well_formed();
    }
    let events: Vec<Value> = receivers
        .json
        .received()
        .iter()
        .flat_map(|received| {
            received.body["event"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let quiet = events
        .iter()
        .find(|event| event["source"] == "polymarket-rtds" && event["status"] == "quiet")
        .unwrap_or_else(|| panic!("no quiet event: {events:?}"));
    assert_eq!(quiet["kind"], "source");
    assert_eq!(quiet["problem"], "no signal for 1s (quiet_after)");
    let back = events
        .iter()
        .find(|event| event["source"] == "feed" && event["status"] == "up")
        .unwrap_or_else(|| panic!("no up event: {events:?}"));
    assert_eq!(back["was"], "down");
    assert!(back["lasted_seconds"].as_f64().unwrap() > 0.0, "{back}");
    assert_eq!(
        elsewhere.count("source"),
        0,
        "outside the sources group: {:?}",
        elsewhere.received()
    );
}

fn notify_test(builder: Builder) -> (i32, String, String) {
    let output = builder.arg("notify-test").output();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn alerts_notify_test_reports_each_destination_and_fails_if_one_did() {
    let builder = Builder::new();
    let ca = TestCa::new();
    let receivers = Receivers::start(&ca);
    receivers.telegram.always(Answer::Refuse);
    let (code, stdout, stderr) = notify_test(receivers.configure(builder, &ca, ""));
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("discord#1\tok\tHTTP 204\t"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("slack#2\tok\tHTTP 200\t"), "{stdout}");
    assert!(
        lines[2].starts_with("telegram#3\tFAILED\tHTTP 400\t")
            && lines[2].ends_with("\tBad Request: chat not found"),
        "{stdout}"
    );
    assert!(lines[3].starts_with("json#4\tok\tHTTP 200\t"), "{stdout}");
    for receiver in receivers.all() {
        assert_eq!(receiver.count("Test message"), 1, "{:?}", receiver.service);
        receiver.assert_well_formed();
    }

    receivers.telegram.always(Answer::Ok);
    let builder = Builder::new();
    let (code, stdout, _) = notify_test(receivers.configure(builder, &ca, ""));
    assert_eq!(code, 0, "{stdout}");
}

/// Every piece of every secret the alert tests use.
const SECRETS: [&str; 10] = [
    DISCORD_TOKEN,
    SLACK_TOKEN,
    TELEGRAM_TOKEN,
    JSON_KEY,
    SIGNING_SECRET,
    "discordsecretfragment",
    "slacksecretfragment",
    "telegramsecretfragment",
    "jsonpathsecretfragment",
    "hmacsigningsecretfragment",
];

fn assert_no_secret(place: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret:?} leaked into {place}:\n{text}"
        );
    }
}

#[test]
fn alerts_no_secret_appears_in_any_output() {
    for format in ["json", "text"] {
        let builder = stdin_bot();
        let ca = TestCa::new();
        let receivers = Receivers::start(&ca);
        // Failures make the daemon talk about its destinations.
        receivers.discord.always(Answer::Refuse);
        receivers.slack.then(&[Answer::ServerError]);
        receivers.telegram.always(Answer::Refuse);
        let notify = NotifySocket::path();
        let mut daemon = receivers
            .configure(builder, &ca, "")
            .env("NOTIFY_SOCKET", &notify.env_value)
            .env("LOG_FORMAT", format)
            .env("RUST_LOG", "trace")
            .spawn();
        daemon.wait_ready();
        daemon.write_stdin(signal_line("s1", "BTC", "buy", 1.0, Some(1.0)).as_bytes());
        daemon.expect_log("notification refused by the service");
        assert!(receivers.json.wait_for("Fill", SOON).is_some());
        for path in ["/health", "/metrics", "/livez", "/readyz"] {
            let (_, body) = daemon.get(path);
            assert_no_secret(path, &body);
        }
        let metrics = daemon.metrics();
        assert!(metrics.contains("destination=\"discord#1\""), "{metrics}");
        assert!(daemon.stop().success());
        for (_, datagram) in notify.collect(Duration::from_millis(200)) {
            assert_no_secret("an sd_notify datagram", &datagram);
        }
        let log = daemon.log.all().join("\n");
        assert!(
            log.contains("Unknown Webhook"),
            "the service's error is logged"
        );
        assert_no_secret(&format!("the {format} log at trace"), &log);
    }

    let builder = Builder::new();
    let ca = TestCa::new();
    let receivers = Receivers::start(&ca);
    let configured = |builder: Builder| receivers.configure(builder, &ca, "");
    for (place, output) in [
        (
            "check-config",
            configured(Builder::new()).arg("check-config").output(),
        ),
        ("--help", configured(Builder::new()).arg("--help").output()),
        ("run --help", configured(Builder::new()).args_help()),
    ] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{place}: {text}");
        assert_no_secret(place, &text);
    }
    receivers.telegram.always(Answer::Refuse);
    let (_, stdout, stderr) = notify_test(configured(builder));
    assert_no_secret("notify-test", &format!("{stdout}{stderr}"));
    // A configuration error names the entry, never its text.
    for bad in [
        format!("https://127.0.0.1:1/elsewhere/{DISCORD_TOKEN}"),
        format!("tgram://{TELEGRAM_TOKEN}"),
        format!("jsons://127.0.0.1:1/{JSON_KEY}?events=nonsense"),
    ] {
        let output = Builder::new()
            .env("NOTIFY_URLS", bad)
            .arg("check-config")
            .output();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with("tradingbot: invalid --notify-urls (NOTIFY_URLS): destination 1: "),
            "{stderr}"
        );
        assert_no_secret("a configuration error", &stderr);
    }
}

trait HelpOutput {
    fn args_help(self) -> std::process::Output;
}

impl HelpOutput for Builder {
    fn args_help(self) -> std::process::Output {
        self.arg("run").arg("--help").output()
    }
}
