//! The bot loop. Each iteration waits for a signal line or the idle tick,
//! handles it, and only then beats the heartbeat: a wedged iteration is a
//! missing beat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::SourceSpec;
use crate::config::Config;
use crate::health::metrics::{Kind, MetricsSource, Sample};
use crate::health::{HealthState, Heartbeat};

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("source {source_kind} is not supported yet")]
    Unsupported { source_kind: &'static str },
}

impl BotError {
    /// A configuration mistake (exit 2) rather than a runtime failure.
    pub fn is_config(&self) -> bool {
        matches!(self, BotError::Unsupported { .. })
    }
}

#[derive(Default)]
struct Figures {
    lines: AtomicU64,
    iterations: AtomicU64,
}

impl MetricsSource for Figures {
    fn samples(&self, out: &mut Vec<Sample>) {
        out.push(Sample::new(
            "signal_lines_total",
            Kind::Counter,
            "Signal lines read from every source.",
            self.lines.load(Ordering::Relaxed) as f64,
        ));
        out.push(Sample::new(
            "loop_iterations_total",
            Kind::Counter,
            "Completed bot loop iterations.",
            self.iterations.load(Ordering::Relaxed) as f64,
        ));
    }
}

pub struct Bot {
    sources: Vec<SourceSpec>,
    idle_tick: Duration,
    figures: Arc<Figures>,
}

impl Bot {
    pub async fn init(config: &Config, health: &HealthState) -> Result<Bot, BotError> {
        for source in &config.sources {
            if *source != SourceSpec::Stdin {
                return Err(BotError::Unsupported {
                    source_kind: source.kind(),
                });
            }
        }
        let figures = Arc::new(Figures::default());
        health.set_bot_metrics(figures.clone());
        Ok(Bot {
            sources: config.sources.clone(),
            idle_tick: config.heartbeat_interval,
            figures,
        })
    }

    pub async fn run(
        self,
        heartbeat: Heartbeat,
        shutdown: CancellationToken,
    ) -> Result<(), BotError> {
        let (lines_in, mut lines) = mpsc::channel::<String>(1024);
        if self.sources.contains(&SourceSpec::Stdin) {
            tokio::spawn(read_stdin(lines_in));
        }
        let mut idle = tokio::time::interval(self.idle_tick);
        idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(_line) = lines.recv() => {
                    self.figures.lines.fetch_add(1, Ordering::Relaxed);
                }
                _ = idle.tick() => {}
            }
            fail::fail_point!("bot::iteration");
            self.figures.iterations.fetch_add(1, Ordering::Relaxed);
            heartbeat.beat();
        }
        Ok(())
    }
}

async fn read_stdin(lines_out: mpsc::Sender<String>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if lines_out.send(line).await.is_err() {
            break;
        }
    }
}
