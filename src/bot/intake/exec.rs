//! `exec:COMMAND ARGS…`: a feed process, in any language, whose stdout
//! lines are signals and whose stderr is logged. It runs in a process group
//! of its own, so stopping it stops whatever it started too; when it exits
//! it is restarted after the shared [`Backoff`] (`EXEC_BACKOFF` doubling to
//! `EXEC_BACKOFF_MAX`, with jitter), and the `feed` component is degraded
//! while it is down.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::feed::Status;
use super::lines::{Line, LineSplitter, Lines};
use super::pump::{self, Pumped};
use super::Outlet;
use crate::backoff::Backoff;

/// A feed that ran this long before exiting was healthy: its restart
/// starts the backoff over.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// How long a feed process group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Starts running `command` as a task of the bot's runtime (restarting it
/// after `backoff`), until the outlet's shutdown.
pub(crate) fn spawn(outlet: Outlet, command: Vec<String>, backoff: Backoff) {
    tokio::spawn(ExecSource { outlet, command }.run(backoff));
}

struct ExecSource {
    outlet: Outlet,
    command: Vec<String>,
}

impl ExecSource {
    async fn run(self, mut backoff: Backoff) {
        let mut restarts = 0;
        loop {
            let started = Instant::now();
            let problem = match self.spawn() {
                Ok(child) => {
                    self.outlet.set_status(Status::Up);
                    match self.feed_from(child).await {
                        None => return,
                        Some(Ok(status)) => format!("feed process exited ({status})"),
                        Some(Err(error)) => format!("feed process failed: {error}"),
                    }
                }
                Err(error) => format!("cannot start feed process: {error}"),
            };
            backoff.settle(started.elapsed(), STABLE_RUN);
            let within = humantime::format_duration(backoff.ceiling());
            tracing::warn!(source = %self.outlet.name, problem = %problem, "exec source: restarting within {within}");
            let wait = backoff.next_wait();
            self.outlet.set_status(Status::Down {
                error: format!("{problem}; restarting within {within}"),
                retry_in: wait,
            });
            tokio::select! {
                () = self.outlet.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            restarts += 1;
            self.outlet.sources.reconnected(self.outlet.index, restarts);
        }
    }

    fn spawn(&self) -> io::Result<Child> {
        let child = start(&self.command, Stdio::piped())?;
        tracing::info!(source = %self.outlet.name, pid = child.id(), "exec source: feed process started");
        Ok(child)
    }

    /// Reads the feed until it ends; `None` when stopping (the group is
    /// terminated first).
    async fn feed_from(&self, mut child: Child) -> Option<io::Result<ExitStatus>> {
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Some(Err(io::Error::other("feed process has no stdout")));
        };
        tokio::spawn(log_stderr(self.outlet.name.clone(), stderr));
        if let Pumped::Stopped = pump::run(&mut stdout, &self.outlet).await {
            terminate(&mut child).await;
            return None;
        }
        // A feed that closed its stdout but lives on would otherwise look
        // up forever while sending nothing.
        Some(match tokio::time::timeout(TERM_GRACE, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                terminate(&mut child).await;
                Err(io::Error::other(
                    "closed its stdout but kept running; terminated",
                ))
            }
        })
    }
}

/// Starts a feed process: in a process group of its own (so stopping it
/// stops whatever it started), its stdout piped, no stdin, its stderr to
/// `stderr`, and SIGTERM if the thread that starts it dies.
pub(super) fn start(command: &[String], stderr: Stdio) -> io::Result<Child> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::other("empty command"));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0);
    crate::sys::terminate_with_parent(&mut command);
    command.spawn()
}

/// SIGTERM to the feed's process group, SIGKILL if it lingers.
pub(super) async fn terminate(child: &mut Child) {
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
