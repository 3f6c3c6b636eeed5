//! The feed: what agents are told, live, about the conversations they see
//! (offers, customer messages, moves between queues and agents, statuses).
//!
//! Every event gets an id larger than any before it, so a client that lost
//! its connection asks for what came after the last id it saw. The feed
//! keeps the last [`RETAINED`] events in memory; a client whose last id is
//! older than that, or from before this feed started, is told to `resync`:
//! to load its state again rather than trust a stream with a gap.
//!
//! One process numbers its events itself (from the wall clock in
//! microseconds, so ids grow across restarts too). Where several nodes
//! share a store, each event is appended to the store's shared feed and
//! comes back through [`Feed::relay`], numbered in one order for every
//! node: an agent's stream shows every conversation, whichever node runs
//! it, and a stream that reconnects to another node resumes where it was.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

pub use crate::model::feed::FeedEvent;
use crate::model::{ConversationState, Position};
use crate::storage::Storage;

/// Events kept for clients that reconnect.
pub const RETAINED: usize = 4096;
/// Events a slow live client may fall behind before it must resync.
const LIVE_BUFFER: usize = 1024;
/// The kind of the event that tells every live client to resync.
pub const RESYNC: &str = "resync";
/// Events read from a shared feed at a time.
const PAGE: usize = 512;
/// How often a relay looks at the shared feed without being woken (a
/// notification lost with a connection costs at most this long).
const POLL: Duration = Duration::from_secs(1);
/// How long a shared feed keeps events, and how often a relay prunes it.
const SHARED_KEPT: Duration = Duration::from_secs(15 * 60);
const PRUNE_EVERY: Duration = Duration::from_secs(60);

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
    /// The first id that can be resumed from.
    first_id: u64,
    recent: VecDeque<Arc<FeedEvent>>,
}

pub struct Feed {
    log: Mutex<Log>,
    live: broadcast::Sender<Arc<FeedEvent>>,
    /// The store whose shared feed numbers and carries the events, where
    /// several nodes share one.
    shared: Option<Storage>,
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
    /// A feed of this process alone.
    pub fn new() -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Self::starting_at(micros, micros, None)
    }

    /// The feed for `storage`: shared when the store shares one (then its
    /// events arrive once [`Feed::relay`] runs).
    pub fn for_store(storage: &Storage) -> Self {
        match storage.shared_feed() {
            // Nothing can be resumed until the relay knows where the
            // shared ids stand.
            Some(_) => Self::starting_at(1, u64::MAX, Some(storage.clone())),
            None => Self::new(),
        }
    }

    fn starting_at(next_id: u64, first_id: u64, shared: Option<Storage>) -> Self {
        Feed {
            log: Mutex::new(Log {
                next_id,
                first_id,
                recent: VecDeque::with_capacity(RETAINED),
            }),
            live: broadcast::channel(LIVE_BUFFER).0,
            shared,
        }
    }

    /// Tells the agents `news`: at once in this process, or through the
    /// shared feed. An event the shared feed could not take is lost to
    /// every stream, so every live stream here is told to resync.
    pub async fn publish(&self, news: News) {
        let event = FeedEvent {
            id: 0,
            kind: news.kind.to_string(),
            agents: news.agents,
            queue: news.queue,
            data: news.data,
        };
        let Some(shared) = self.shared.as_ref().and_then(|s| s.shared_feed()) else {
            self.number_and_deliver(event);
            return;
        };
        if let Err(e) = shared.append_feed(&event, wall_clock_ms()).await {
            tracing::warn!("an agents' feed event was lost ({e}); live streams resync");
            self.lose_history();
        }
    }

    fn number_and_deliver(&self, mut event: FeedEvent) {
        let mut log = self.log.lock().expect("feed lock");
        event.id = log.next_id;
        self.keep(&mut log, event);
    }

    /// Keeps `event`, numbered by the shared feed, unless already kept.
    fn deliver(&self, event: FeedEvent) {
        let mut log = self.log.lock().expect("feed lock");
        if event.id >= log.next_id {
            self.keep(&mut log, event);
        }
    }

    /// Keeps `event` for clients that resume and sends it to live ones.
    fn keep(&self, log: &mut Log, event: FeedEvent) {
        let event = Arc::new(event);
        log.next_id = event.id + 1;
        if log.recent.len() == RETAINED {
            log.recent.pop_front();
        }
        log.recent.push_back(event.clone());
        // No live client is not an error.
        let _ = self.live.send(event);
    }

    /// Nothing before now can be resumed, and live clients resync.
    fn lose_history(&self) {
        let mut log = self.log.lock().expect("feed lock");
        log.first_id = log.next_id;
        log.recent.clear();
        let _ = self.live.send(Arc::new(FeedEvent {
            id: 0,
            kind: RESYNC.into(),
            agents: Vec::new(),
            queue: None,
            data: json!({}),
        }));
    }

    /// Where several nodes share the store: brings every node's events
    /// (this one's too) into this feed in the shared order, woken by each
    /// append and at least every [`POLL`], until `stop`; prunes the shared
    /// feed as it goes. Returns at once for a feed of one process.
    pub async fn relay(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(storage) = self.shared.clone() else {
            return;
        };
        let Some(shared) = storage.shared_feed() else {
            return;
        };
        let wake = shared.feed_wake();
        let mut after = None;
        let mut pruned = tokio::time::Instant::now();
        while !*stop.borrow() {
            let read = match after {
                // The last RETAINED events, so streams that come here from
                // a node that stopped resume without a gap.
                None => shared.feed_head().await.map(|head| {
                    let start = head.saturating_sub(RETAINED as u64);
                    self.begin_at(start + 1);
                    after = Some(start);
                    false
                }),
                Some(last) => shared.feed_after(last, PAGE).await.map(|events| {
                    let full = events.len() == PAGE;
                    for event in events {
                        after = Some(event.id);
                        self.deliver(event);
                    }
                    full
                }),
            };
            match read {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!("reading the shared agents' feed: {e}"),
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = tokio::time::Instant::now();
                let before = wall_clock_ms().saturating_sub(SHARED_KEPT.as_millis() as u64);
                if let Err(e) = shared.prune_feed(before).await {
                    tracing::warn!("pruning the shared agents' feed: {e}");
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// The shared feed's ids start after `first_id - 1` here.
    fn begin_at(&self, first_id: u64) {
        let mut log = self.log.lock().expect("feed lock");
        log.first_id = first_id;
        log.next_id = log.next_id.max(first_id);
    }

    /// The events after `last_seen` (none: only live ones from now) and a
    /// receiver for the live ones after them, with no gap and no repeat:
    /// both are taken under the lock `deliver` holds.
    pub fn subscribe(
        &self,
        last_seen: Option<u64>,
    ) -> (Resume, broadcast::Receiver<Arc<FeedEvent>>) {
        let log = self.log.lock().expect("feed lock");
        let receiver = self.live.subscribe();
        let resume = match last_seen {
            None => Resume::From(Vec::new()),
            Some(id) if id < log.first_id => Resume::Resync,
            Some(id) if id + 1 >= log.next_id => Resume::From(Vec::new()),
            Some(id) => {
                let oldest = log.recent.front().map_or(log.next_id, |e| e.id);
                if id + 1 < oldest {
                    Resume::Resync
                } else {
                    Resume::From(log.recent.iter().filter(|e| e.id > id).cloned().collect())
                }
            }
        };
        (resume, receiver)
    }
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

    /// Publishes `n` events and returns their ids.
    async fn publish(feed: &Feed, n: u64) -> Vec<u64> {
        let (_, mut watcher) = feed.subscribe(None);
        let mut ids = Vec::new();
        for n in 0..n {
            feed.publish(news(n)).await;
            ids.push(watcher.try_recv().unwrap().id);
        }
        ids
    }

    #[tokio::test]
    async fn a_client_resumes_after_its_last_id_without_gaps_or_repeats() {
        let feed = Feed::new();
        let ids = publish(&feed, 5).await;
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        let (Resume::From(missed), mut live) = feed.subscribe(Some(ids[2])) else {
            panic!("expected a resume");
        };
        assert_eq!(missed.iter().map(|e| e.id).collect::<Vec<_>>(), ids[3..]);
        feed.publish(news(5)).await;
        assert_eq!(live.try_recv().unwrap().id, ids[4] + 1);
    }

    #[tokio::test]
    async fn a_client_too_far_behind_or_from_an_earlier_run_must_resync() {
        let feed = Feed::new();
        let first = publish(&feed, 1).await[0];
        publish(&feed, RETAINED as u64 + 10).await;
        assert!(matches!(feed.subscribe(Some(first)).0, Resume::Resync));
        assert!(matches!(feed.subscribe(Some(1)).0, Resume::Resync));
    }
}
