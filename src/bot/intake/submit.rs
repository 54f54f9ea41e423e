//! The submit handle: how a source that receives whole messages (today
//! the webhook's requests) gives the loop a body and waits for what
//! became of each of its signals, durably. The handle decodes the body
//! with its source's [`Decoder`] (the bot's own format, an id derived from
//! the content when a signal has none; or the source's mapping), so the
//! transport that received the body knows nothing of signals.
//!
//! It never holds a body it cannot take: before the intake has started,
//! once it is stopping and while the loop has paused intake (the journal
//! cannot be written), it says so at once; and a body already handed over
//! is answered the same way the moment intake pauses. Either way nothing
//! was acknowledged, and a resend is never decided twice: the signals are
//! the same, so their ids are, and the exactly-once window knows them.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Batch, Outcome, Outlet};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

/// Cloned by every transport that submits; the loop holds its [`Gate`].
#[derive(Clone, Default)]
pub(crate) struct Submit(Arc<Shared>);

struct Shared {
    state: Mutex<State>,
    /// Why intake is paused, if it is: set by the loop every iteration.
    paused: watch::Sender<Option<String>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            state: Mutex::default(),
            paused: watch::Sender::new(None),
        }
    }
}

#[derive(Default)]
enum State {
    #[default]
    Starting,
    Open(Outlet),
    Stopped,
}

/// Why a body's outcome cannot be given: nothing of it is acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The intake has not started yet.
    Starting,
    /// The daemon is stopping.
    Stopping,
    /// Intake is paused, for this reason (never a path: the client reads it).
    Paused(String),
}

impl Submit {
    /// Splits and parses `body`, has the loop decide its signals, and
    /// returns what became of each once the decisions are durable. A body
    /// that holds no signal is answered at once: no outcome when it is
    /// empty, and `ignored` for each message the source's mapping leaves
    /// out (a service that posts several kinds of events to one URL must
    /// not be told it sent nothing, nor be refused).
    pub(crate) async fn submit(&self, body: Bytes) -> Result<Vec<Outcome>, Unavailable> {
        let mut paused = self.0.paused.subscribe();
        let outlet = self.target()?;
        if let Some(reason) = paused.borrow().clone() {
            return Err(Unavailable::Paused(reason));
        }
        let items = outlet.decoder.message(&body);
        if items.is_empty() {
            outlet.sources.received(outlet.index, &items);
            return Ok(vec![Outcome::ignored(); items.ignored() as usize]);
        }
        let (reply, answer) = oneshot::channel();
        let batch = Batch {
            reply: Some(reply),
            ..outlet.batch(items)
        };
        let batches = outlet.batches;
        tokio::select! {
            biased;
            sent = batches.send(batch) => sent.map_err(|_| Unavailable::Stopping)?,
            reason = until_paused(&mut paused) => return Err(Unavailable::Paused(reason)),
        }
        // The loop's channel must close once the bodies in flight are
        // answered: this request no longer keeps it open.
        drop(batches);
        tokio::select! {
            biased;
            outcomes = answer => outcomes.map_err(|_| Unavailable::Stopping),
            reason = until_paused(&mut paused) => Err(Unavailable::Paused(reason)),
        }
    }

    /// Whether a body would be taken now: a transport asks before it
    /// reads one, so that a client is never held to send what would be
    /// refused. While the [`InFlight`] it returns is held, the loop's stop
    /// waits for it: the body still arriving then gets its answer
    /// (`Stopping`) rather than a reset.
    pub(crate) fn ready(&self) -> Result<InFlight, Unavailable> {
        let outlet = self.target()?;
        match self.0.paused.borrow().clone() {
            Some(reason) => Err(Unavailable::Paused(reason)),
            None => Ok(InFlight {
                _batches: outlet.batches,
            }),
        }
    }

    /// The loop's side of this handle.
    pub(crate) fn gate(&self) -> Gate {
        Gate(Arc::clone(&self.0))
    }

    /// Takes bodies for `outlet`'s source until it stops. Inside the bot's
    /// runtime.
    pub(super) fn open(&self, outlet: Outlet) {
        let shutdown = outlet.shutdown.clone();
        *self.state() = State::Open(outlet);
        let submit = self.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            *submit.state() = State::Stopped;
        });
    }

    /// Where a body's batch goes, while bodies are taken. A body that
    /// finished arriving after the stop began is refused rather than
    /// raced against the drain.
    fn target(&self) -> Result<Outlet, Unavailable> {
        match &*self.state() {
            State::Open(outlet) if !outlet.shutdown.is_cancelled() => Ok(outlet.clone()),
            State::Starting => Err(Unavailable::Starting),
            State::Open(_) | State::Stopped => Err(Unavailable::Stopping),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A body on its way to [`Submit::submit`]: it keeps the loop's channel
/// open.
pub(crate) struct InFlight {
    _batches: mpsc::Sender<Batch>,
}

/// Whether intake is paused, as the loop says it.
pub(crate) struct Gate(Arc<Shared>);

impl Gate {
    /// `Some(reason)` pauses intake (bodies are refused, and those waiting
    /// are answered), `None` resumes it.
    pub(crate) fn set(&self, paused: Option<&str>) {
        self.0.paused.send_if_modified(|current| {
            let changed = current.as_deref() != paused;
            if changed {
                *current = paused.map(str::to_owned);
            }
            changed
        });
    }
}

/// Once intake is paused, why.
async fn until_paused(paused: &mut watch::Receiver<Option<String>>) -> String {
    let reason = paused
        .wait_for(Option::is_some)
        .await
        .map(|reason| reason.clone().unwrap_or_default());
    match reason {
        Ok(reason) => reason,
        // The handle holds the sender: it cannot be gone.
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn open(submit: &Submit) -> (mpsc::Receiver<Batch>, CancellationToken) {
        let (batches, received) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        *submit.state() = State::Open(Outlet::webhook_for_test(batches, shutdown.clone()));
        (received, shutdown)
    }

    const SIGNAL: &[u8] = br#"{"symbol":"BTC","side":"buy","qty":1,"price":10,"ts":1}"#;

    #[tokio::test]
    async fn says_why_it_cannot_take_a_body() {
        let submit = Submit::default();
        let body = Bytes::from_static(SIGNAL);
        assert_eq!(
            submit.submit(body.clone()).await.unwrap_err(),
            Unavailable::Starting
        );
        let (_received, shutdown) = open(&submit);
        assert!(submit.submit(Bytes::new()).await.unwrap().is_empty());
        submit.gate().set(Some("the journal cannot be written"));
        assert_eq!(
            submit.submit(body.clone()).await.unwrap_err(),
            Unavailable::Paused("the journal cannot be written".into())
        );
        submit.gate().set(None);
        shutdown.cancel();
        assert_eq!(
            submit.submit(body).await.unwrap_err(),
            Unavailable::Stopping
        );
    }

    #[tokio::test]
    async fn a_body_waiting_on_its_answer_is_answered_when_intake_pauses() {
        let submit = Submit::default();
        let (mut received, _shutdown) = open(&submit);
        let waiting = tokio::spawn({
            let submit = submit.clone();
            async move { submit.submit(Bytes::from_static(SIGNAL)).await }
        });
        let batch = received.recv().await.unwrap();
        assert_eq!(batch.lines.len(), 1);
        submit.gate().set(Some("paused"));
        assert_eq!(
            waiting.await.unwrap().unwrap_err(),
            Unavailable::Paused("paused".into())
        );
        // The loop still holds the reply: answering it later is harmless.
        let _ = batch.reply.unwrap().send(Vec::new());
    }
}
