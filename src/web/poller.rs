//! Two OS threads per bot: one polls its status and positions (and its
//! trade report, after fills), one follows
//! its event stream. Blocking requests with their own timeouts, on threads
//! of their own: a bot that hangs or answers garbage holds up only these
//! two, never the page or the other bots.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::client::BotClient;
use super::fleet::{Bot, Positions, Status};
use super::settings::BotSpec;
use crate::backoff::Backoff;

/// The longest wait before the stream is tried again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A stream that stayed open this long was healthy: the next failure
/// starts the backoff over.
const STABLE_STREAM: Duration = Duration::from_secs(1);

pub(crate) fn start(
    bot: &Arc<Bot>,
    spec: &BotSpec,
    poll_interval: Duration,
    timeout: Duration,
) -> std::io::Result<()> {
    let client = Arc::new(BotClient::new(spec, timeout));
    let (poll_bot, poll_client) = (Arc::clone(bot), Arc::clone(&client));
    thread::Builder::new()
        .name(format!("poll:{}", bot.name))
        .spawn(move || poll_forever(&poll_bot, &poll_client, poll_interval))?;
    let stream_bot = Arc::clone(bot);
    thread::Builder::new()
        .name(format!("stream:{}", bot.name))
        .spawn(move || stream_forever(&stream_bot, &client, poll_interval))?;
    Ok(())
}

fn poll_forever(bot: &Bot, client: &BotClient, interval: Duration) {
    let mut reachable: Option<bool> = None;
    loop {
        let started = Instant::now();
        let outcome = client
            .get_json::<Status>("/api/v1/status")
            .and_then(|status| Ok((status, client.get_json::<Positions>("/api/v1/positions")?)));
        // Transitions are logged, not every poll.
        match (&outcome, reachable) {
            (Ok(_), Some(true)) | (Err(_), Some(false)) => {}
            (Ok(_), _) => tracing::info!(bot = %bot.name, "bot reachable"),
            (Err(problem), _) => tracing::warn!(bot = %bot.name, %problem, "bot unreachable"),
        }
        reachable = Some(outcome.is_ok());
        bot.polled(outcome, Instant::now());
        if let Some(fills) = bot.report_due(Instant::now()) {
            let report = client.get_json("/api/v1/report");
            bot.reported(report, fills, Instant::now());
        }
        thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

fn stream_forever(bot: &Bot, client: &BotClient, interval: Duration) {
    let mut backoff = Backoff::new(interval, MAX_BACKOFF);
    loop {
        // The first status says where the journal is.
        let Some(after) = bot.cursor() else {
            thread::sleep(interval);
            continue;
        };
        bot.take_restream();
        let opened = Instant::now();
        let outcome = client.stream(after, || bot.stream_connected(), |event| bot.event(event));
        let lasted = opened.elapsed();
        backoff.settle(lasted, STABLE_STREAM);
        match outcome {
            // A cycle's end, or a reopen the bot asked for: at once,
            // unless the bot keeps closing streams straight away.
            Ok(()) if lasted >= STABLE_STREAM => {
                bot.stream_ended(None);
                continue;
            }
            Ok(()) => bot.stream_ended(None),
            Err(problem) => {
                tracing::debug!(bot = %bot.name, %problem, "event stream failed");
                bot.stream_ended(Some(problem));
            }
        }
        thread::sleep(backoff.next_wait());
    }
}
