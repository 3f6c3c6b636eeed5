//! The live stream of an agent: Server-Sent Events.
//!
//! SSE rather than WebSocket: the stream only flows from the server to the
//! console (actions are ordinary requests), it is plain HTTP that every
//! proxy passes, and resuming is built in: each event carries its feed id,
//! and a client that reconnects sends the last one in `Last-Event-ID` (or
//! `?after=`) to get every event after it (see `engine::feed`). A `resync`
//! event tells the client that events were lost and it must reload.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{MAX_STREAMS_PER_AGENT, desk};
use crate::engine::feed::{FeedEvent, RESYNC, Resume};
use crate::model::agent::{Agent, Role};
use crate::server::AppState;
use crate::server::error::ApiError;

#[derive(Deserialize)]
pub struct After {
    after: Option<u64>,
}

pub async fn stream(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    headers: HeaderMap,
    Query(after): Query<After>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let desk = desk(&state)?;
    let open = StreamSlot::take(&desk.streams, &agent.id).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!("at most {MAX_STREAMS_PER_AGENT} live streams per agent; close one first"),
        )
    })?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(after.after);
    let (resume, receiver) = desk.engine.feed().subscribe(last_seen);
    let backlog: Vec<Event> = match resume {
        Resume::From(events) => events
            .iter()
            .filter(|e| visible(&agent, e))
            .map(to_sse)
            .collect(),
        Resume::Resync => vec![resync()],
    };
    let mut stopping = desk.stopping.clone();
    // The slot travels with the stream and is given back when it ends.
    let live = stream::unfold(
        (receiver, agent, open),
        move |(mut receiver, agent, open)| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) if event.kind == RESYNC => {
                        return Some((resync(), (receiver, agent, open)));
                    }
                    // Already seen: resumed here from a node further on.
                    Ok(event) if last_seen.is_some_and(|seen| event.id <= seen) => continue,
                    Ok(event) if visible(&agent, &event) => {
                        return Some((to_sse(&event), (receiver, agent, open)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        return Some((resync(), (receiver, agent, open)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    let events = stream::iter(backlog)
        .chain(live)
        .take_until(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

type Counts = Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// One of an agent's live streams, counted while it is open.
struct StreamSlot {
    counts: Counts,
    agent: String,
}

impl StreamSlot {
    fn take(counts: &Counts, agent: &str) -> Option<StreamSlot> {
        let mut open = counts.lock().expect("streams lock");
        let count = open.entry(agent.to_string()).or_default();
        if *count >= MAX_STREAMS_PER_AGENT {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            counts: counts.clone(),
            agent: agent.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.counts.lock().expect("streams lock");
        if let Some(count) = open.get_mut(&self.agent) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.agent);
            }
        }
    }
}

/// An agent sees events addressed to them; a supervisor also those of the
/// queues they serve.
fn visible(agent: &Agent, event: &FeedEvent) -> bool {
    event.agents.contains(&agent.id)
        || (agent.role == Role::Supervisor
            && event
                .queue
                .as_deref()
                .is_some_and(|q| agent.serves(q).is_some()))
}

fn to_sse(event: &Arc<FeedEvent>) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .data(event.data.to_string())
}

fn resync() -> Event {
    Event::default().event("resync").data("{}")
}
