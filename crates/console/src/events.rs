//! `GET /console/api/events`: server-sent events for one session.
//!
//! The stream starts with the agent's `state` and `today`, then follows
//! the engine's [`ConsoleEvent`]s (published from the dispatcher's
//! events): a `state` or `today` event when it concerns this agent, a
//! `callbacks` event (`{"practice": ID}`: fetch the list again) for a
//! practice the agent serves. Nothing is polled: the stream sleeps until an
//! event comes, checking only that its session is still valid once a
//! minute (it ends with the session). A subscriber that fell behind gets
//! its state and figures again.

use crate::router::{Console, St};
use crate::ConsoleEvent;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

/// Interval of the `: keep-alive` comment.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often an idle stream checks that its session is still valid.
const SESSION_CHECK: Duration = Duration::from_secs(60);

/// What to send next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Push {
    State,
    Today,
    Callbacks(String),
}

/// One open stream.
struct Feed {
    console: Arc<Console>,
    token: String,
    agent: String,
    rx: Receiver<ConsoleEvent>,
    pending: VecDeque<Push>,
}

pub(crate) async fn events(State(c): State<St>, headers: HeaderMap) -> Response {
    let (session, token) = match c.authed(&headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let feed = Feed {
        rx: c.backend.subscribe(),
        console: c,
        token,
        agent: session.agent,
        pending: VecDeque::from([Push::State, Push::Today]),
    };
    let stream = futures_util::stream::unfold(feed, next);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

/// The next event of the stream; `None` ends it (session over, engine
/// stopping).
async fn next(mut f: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    loop {
        if let Some(p) = f.pending.pop_front() {
            if let Some(ev) = f.render(p).await {
                return Some((Ok(ev), f));
            }
            continue;
        }
        tokio::select! {
            r = f.rx.recv() => match r {
                Ok(e) => {
                    if let Some(p) = f.wanted(e) {
                        f.queue(p);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    f.queue(Push::State);
                    f.queue(Push::Today);
                }
                Err(RecvError::Closed) => return None,
            },
            _ = tokio::time::sleep(SESSION_CHECK) => {}
        }
        if !f.alive() {
            return None;
        }
    }
}

impl Feed {
    /// Queues `p` unless it is already waiting (bursts collapse).
    fn queue(&mut self, p: Push) {
        if !self.pending.contains(&p) {
            self.pending.push_back(p);
        }
    }

    fn alive(&self) -> bool {
        let now = self.console.backend.now();
        self.console.core.lock().peek(&self.token, now).is_some()
    }

    /// What an engine event means for this agent's page, if anything.
    fn wanted(&self, e: ConsoleEvent) -> Option<Push> {
        match e {
            ConsoleEvent::State { agent } => (agent == self.agent).then_some(Push::State),
            ConsoleEvent::Today { agent } => (agent == self.agent).then_some(Push::Today),
            ConsoleEvent::Callbacks { practice } => self
                .console
                .backend
                .serves(&self.agent, &practice)
                .then_some(Push::Callbacks(practice)),
        }
    }

    async fn render(&self, p: Push) -> Option<Event> {
        let backend = &self.console.backend;
        let (name, data) = match p {
            Push::State => (
                "state",
                serde_json::to_value(backend.state(&self.agent).await),
            ),
            Push::Today => (
                "today",
                serde_json::to_value(backend.today(&self.agent).await),
            ),
            Push::Callbacks(practice) => {
                ("callbacks", Ok(serde_json::json!({ "practice": practice })))
            }
        };
        Event::default().event(name).json_data(data.ok()?).ok()
    }
}
