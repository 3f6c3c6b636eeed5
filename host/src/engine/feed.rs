//! The feed: what agents are told, live, about the conversations they see
//! (offers, customer messages, moves between queues and agents, statuses).
//!
//! Every event gets an id larger than any before it, also across restarts
//! (ids start from the wall clock in microseconds), so a client that lost
//! its connection asks for what came after the last id it saw. The feed
//! keeps the last [`RETAINED`] events in memory; a client whose last id is
//! older than that, or from before this process started, is told to
//! `resync`: to load its state again rather than trust a stream with a gap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::model::{ConversationState, Position};

/// Events kept for clients that reconnect.
pub const RETAINED: usize = 4096;
/// Events a slow live client may fall behind before it must resync.
const LIVE_BUFFER: usize = 1024;

/// One event for some agents (and the supervisors of its queue).
#[derive(Clone, Debug, Serialize)]
pub struct FeedEvent {
    pub id: u64,
    /// `offer`, `message`, `conversation`, `status`.
    pub kind: String,
    /// The agents it is for.
    #[serde(skip)]
    pub agents: Vec<String>,
    /// The queue it concerns, for supervisors.
    #[serde(skip)]
    pub queue: Option<String>,
    pub data: Value,
}

/// An event before it has an id.
#[derive(Clone, Debug, PartialEq)]
pub struct News {
    pub kind: &'static str,
    pub agents: Vec<String>,
    pub queue: Option<String>,
    pub data: Value,
}

struct Log {
    next_id: u64,
    /// The first id of this process: older ids cannot be resumed.
    first_id: u64,
    recent: VecDeque<Arc<FeedEvent>>,
}

pub struct Feed {
    log: Mutex<Log>,
    live: broadcast::Sender<Arc<FeedEvent>>,
}

/// Where a client picks up.
pub enum Resume {
    /// Every event after the client's last id, then the live ones.
    From(Vec<Arc<FeedEvent>>),
    /// Some events are gone: the client must load its state again.
    Resync,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Feed {
            log: Mutex::new(Log {
                next_id: micros,
                first_id: micros,
                recent: VecDeque::with_capacity(RETAINED),
            }),
            live: broadcast::channel(LIVE_BUFFER).0,
        }
    }

    /// Gives `news` the next id, keeps it, and sends it to live clients.
    pub fn publish(&self, news: News) -> u64 {
        let mut log = self.log.lock().expect("feed lock");
        let event = Arc::new(FeedEvent {
            id: log.next_id,
            kind: news.kind.to_string(),
            agents: news.agents,
            queue: news.queue,
            data: news.data,
        });
        log.next_id += 1;
        if log.recent.len() == RETAINED {
            log.recent.pop_front();
        }
        log.recent.push_back(event.clone());
        // No live client is not an error.
        let _ = self.live.send(event.clone());
        event.id
    }

    /// The events after `last_seen` (none: only live ones from now) and a
    /// receiver for the live ones after them, with no gap and no repeat:
    /// both are taken under the lock `publish` holds.
    pub fn subscribe(
        &self,
        last_seen: Option<u64>,
    ) -> (Resume, broadcast::Receiver<Arc<FeedEvent>>) {
        let log = self.log.lock().expect("feed lock");
        let receiver = self.live.subscribe();
        let resume = match last_seen {
            None => Resume::From(Vec::new()),
            Some(id) if id + 1 >= log.next_id => Resume::From(Vec::new()),
            Some(id) => {
                let oldest = log.recent.front().map_or(log.next_id, |e| e.id);
                if id < log.first_id || id + 1 < oldest {
                    Resume::Resync
                } else {
                    Resume::From(log.recent.iter().filter(|e| e.id > id).cloned().collect())
                }
            }
        };
        (resume, receiver)
    }
}

/// What a turn that went from `before` to `state` tells agents, if anything.
pub fn news_of(before: &Position, state: &ConversationState, inbound: bool) -> Option<News> {
    let after = &state.position;
    let mut agents: Vec<String> = Vec::new();
    for position in [before, after] {
        agents.extend(position.agent().map(String::from));
        if let Position::Queued {
            offer: Some(offer), ..
        } = position
        {
            agents.extend(offer.agents.iter().cloned());
        }
    }
    agents.sort();
    agents.dedup();
    let queue = after.queue().or(before.queue()).map(String::from);
    queue.as_ref()?;
    let new_offer = match after {
        Position::Queued {
            offer: Some(offer), ..
        } => match before {
            Position::Queued {
                offer: Some(old), ..
            } => old != offer,
            _ => true,
        },
        _ => false,
    };
    let kind = if new_offer {
        "offer"
    } else if inbound && before == after {
        "message"
    } else {
        "conversation"
    };
    Some(News {
        kind,
        agents,
        queue,
        data: json!({
            "conversation": state.key(),
            "session": state.session,
            "position": after,
            "unread": state.unread,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn news(n: u64) -> News {
        News {
            kind: "message",
            agents: vec!["a".into()],
            queue: Some("q".into()),
            data: json!(n),
        }
    }

    #[test]
    fn a_client_resumes_after_its_last_id_without_gaps_or_repeats() {
        let feed = Feed::new();
        let ids: Vec<u64> = (0..5).map(|n| feed.publish(news(n))).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        let (Resume::From(missed), mut live) = feed.subscribe(Some(ids[2])) else {
            panic!("expected a resume");
        };
        assert_eq!(missed.iter().map(|e| e.id).collect::<Vec<_>>(), ids[3..]);
        let next = feed.publish(news(5));
        assert_eq!(live.try_recv().unwrap().id, next);
    }

    #[test]
    fn a_client_too_far_behind_or_from_an_earlier_run_must_resync() {
        let feed = Feed::new();
        let first = feed.publish(news(0));
        for n in 0..RETAINED as u64 + 10 {
            feed.publish(news(n));
        }
        assert!(matches!(feed.subscribe(Some(first)).0, Resume::Resync));
        assert!(matches!(feed.subscribe(Some(1)).0, Resume::Resync));
    }
}
