//! `exec:COMMAND ARGS…`: a feed process, in any language, whose stdout
//! lines are signals and whose stderr is logged. It runs in a process group
//! of its own, so stopping it stops whatever it started too; when it exits
//! it is restarted with an exponential backoff (capped), and the `feed`
//! component is degraded while it is down.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::{Line, LineSplitter, Lines};
use super::{Batch, FeedHealth, ParsedLines};

/// A feed that ran this long before exiting was healthy: its restart
/// starts the backoff over.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// How long a feed process group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

pub struct ExecSource {
    pub index: usize,
    pub name: String,
    pub command: Vec<String>,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub batches: mpsc::Sender<Batch>,
    pub feed: Arc<FeedHealth>,
    pub shutdown: CancellationToken,
}

impl ExecSource {
    pub async fn run(self) {
        let mut backoff = self.backoff;
        loop {
            let started = Instant::now();
            let problem = match self.spawn() {
                Ok(child) => {
                    self.feed.set(&self.name, None);
                    match self.feed_from(child).await {
                        None => return,
                        Some(Ok(status)) => format!("feed process exited ({status})"),
                        Some(Err(error)) => format!("feed process failed: {error}"),
                    }
                }
                Err(error) => format!("cannot start feed process: {error}"),
            };
            if started.elapsed() >= STABLE_RUN {
                backoff = self.backoff;
            }
            let delay = humantime::format_duration(backoff);
            tracing::warn!(source = %self.name, problem = %problem, "exec source: restarting in {delay}");
            self.feed.set(
                &self.name,
                Some(format!("{problem}; restarting in {delay}")),
            );
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.backoff_max);
        }
    }

    fn spawn(&self) -> io::Result<Child> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(io::Error::other("empty command"));
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of the
        // parent. A SIGKILLed daemon then takes its feed process with it
        // instead of leaving an orphan that a restarted daemon would double.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(Signal::TERM))
                    .map_err(io::Error::from)
            });
        }
        let child = command.spawn()?;
        tracing::info!(source = %self.name, pid = child.id(), "exec source: feed process started");
        Ok(child)
    }

    /// Reads the feed until it ends; `None` when stopping (the group is
    /// terminated first).
    async fn feed_from(&self, mut child: Child) -> Option<io::Result<ExitStatus>> {
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Some(Err(io::Error::other("feed process has no stdout")));
        };
        tokio::spawn(log_stderr(self.name.clone(), stderr));
        let mut buffer = vec![0u8; 64 * 1024];
        let mut splitter = LineSplitter::default();
        loop {
            let read = tokio::select! {
                () = self.shutdown.cancelled() => {
                    terminate(&mut child).await;
                    return None;
                }
                read = stdout.read(&mut buffer) => read,
            };
            let mut lines = Lines::default();
            let ended = splitter.feed(&read, &buffer, &mut lines);
            if !lines.is_empty() {
                let batch = Batch {
                    source: self.index,
                    lines: ParsedLines::new(lines),
                    checkpoint: None,
                    reply: None,
                };
                if self.batches.send(batch).await.is_err() {
                    terminate(&mut child).await;
                    return None;
                }
            }
            if ended {
                // A feed that closed its stdout but lives on would otherwise
                // look up forever while sending nothing.
                return Some(match tokio::time::timeout(TERM_GRACE, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        terminate(&mut child).await;
                        Err(io::Error::other(
                            "closed its stdout but kept running; terminated",
                        ))
                    }
                });
            }
        }
    }
}

/// SIGTERM to the feed's process group, SIGKILL if it lingers.
async fn terminate(child: &mut Child) {
    let Some(pid) = child.id().and_then(|pid| Pid::from_raw(pid as i32)) else {
        return;
    };
    let _ = kill_process_group(pid, Signal::TERM);
    if tokio::time::timeout(TERM_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = child.wait().await;
    }
}

/// Logs the feed's stderr a line at a time, whatever its bytes: a reader
/// that stopped at bad UTF-8 would let the pipe fill and wedge the feed.
async fn log_stderr(name: String, mut stderr: impl AsyncRead + Unpin) {
    let mut buffer = vec![0u8; 8 * 1024];
    let mut splitter = LineSplitter::default();
    loop {
        let mut lines = Lines::default();
        let read = stderr.read(&mut buffer).await;
        let ended = splitter.feed(&read, &buffer, &mut lines);
        for line in lines.iter() {
            match line {
                Line::Bytes(bytes) => {
                    tracing::info!(source = %name, "feed stderr: {}", String::from_utf8_lossy(bytes));
                }
                Line::TooLong(length) => {
                    tracing::warn!(source = %name, "feed stderr: a line of {length} bytes, not logged");
                }
            }
        }
        if ended {
            return;
        }
    }
}
