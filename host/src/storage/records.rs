//! What the storage traits take and give besides the shared records of
//! `model`: a turn's unit of work, the placement index, the outbox's
//! bookkeeping, and the one error type.

use serde::{Deserialize, Serialize};

use crate::model::Ticket;
use crate::model::version::{FlowVersion, VersionOrigin};
use crate::model::{
    ConversationState, Effects, HistoryEntry, OutboxMessage, Position, Timer, TimerRef,
};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage: corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("storage: flushing to disk failed: {0}")]
    Flush(String),
    #[error("storage: the storage thread has stopped or failed on this request")]
    Stopped,
    #[error("storage: postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("storage: postgres connection pool: {0}")]
    Pool(String),
    /// Another node owns the conversation's partition now (several nodes
    /// on one database): the work is that node's.
    #[error("storage: partition {0} is owned by another node now")]
    NotOwner(i32),
    /// The event this turn handled was handled already (it was read twice
    /// while partitions moved); the turn is dropped.
    #[error("storage: the event was handled already")]
    AlreadyHandled,
}

/// See [`super::Agents::hold_agent`]: released by [`AgentHold::release`],
/// or, if dropped first (a request cut short), by a task of its own.
#[derive(Default)]
pub struct AgentHold {
    release: Option<futures::future::BoxFuture<'static, ()>>,
}

impl AgentHold {
    /// A hold that `release` ends.
    pub fn ended_by(release: futures::future::BoxFuture<'static, ()>) -> Self {
        AgentHold {
            release: Some(release),
        }
    }

    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release.await;
        }
    }
}

impl Drop for AgentHold {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            tokio::spawn(release);
        }
    }
}

/// An inbound event to accept: the channel's dedupe key, the conversation
/// it moves (its key), and the record the intake reads back.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundEvent {
    pub dedupe_key: String,
    pub conversation: String,
    pub record: Vec<u8>,
}

/// A dedupe key the inbox remembers, and when its event was accepted
/// (keys expire by that time).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenKey {
    pub key: String,
    pub at_ms: u64,
}

/// What waits to be worked on: inbound events and outgoing messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backlog {
    /// Events in the inbox (at most the cap asked for).
    pub inbox: usize,
    /// Messages in the outbox (at most the cap asked for).
    pub outbox: usize,
    /// The oldest inbox event's record.
    pub oldest_event: Option<Vec<u8>>,
}

/// A message that could not be delivered, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedMessage {
    pub message: OutboxMessage,
    pub reason: String,
    pub at_ms: u64,
}

/// An inbound event set aside because its turn failed again and again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its inbox sequence.
    pub seq: u64,
    /// The inbox record as it was (JSON text).
    pub record: String,
    pub reason: String,
    pub at_ms: u64,
}

/// A send whose outcome is unknown (flowhost stopped, or the channel did not
/// answer), waiting for the channel's echo of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settling {
    /// The outbox message, and its conversation.
    pub message_id: String,
    pub conversation: String,
    pub account: String,
    pub recipient: String,
    /// The text of the part in doubt, as its echo carries it back.
    pub text: String,
    /// Which part of the message is in doubt, and how many it has.
    pub part: u32,
    pub parts: u32,
    /// Past this without an echo, the part is sent again.
    pub deadline_ms: u64,
}

/// The echo of one of our own messages, as the channel reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Echo {
    pub account: String,
    pub recipient: String,
    pub text: String,
    pub at_ms: u64,
}

/// What an echo told us.
#[derive(Clone, Debug, PartialEq)]
pub enum EchoOutcome {
    /// The send was already recorded.
    Known,
    /// It confirmed this outbox message's send in doubt.
    Settled(String),
    /// Kept: its send is still under way (or in doubt later).
    Kept,
}

/// Everything one engine turn changes, written in one transaction: the
/// conversation's new state, saved data, tickets, outgoing messages and
/// timers. A crash before it leaves the turn undone (and its event to be
/// processed again); a crash after it leaves it done, exactly once.
#[derive(Default)]
pub struct TurnCommit {
    pub state: Option<ConversationState>,
    /// Session conversation id the data changes belong to.
    pub conversation_id: String,
    pub effects: Effects,
    pub outbox: Vec<OutboxMessage>,
    pub timers_add: Vec<Timer>,
    /// Timers done or no longer wanted.
    pub timers_remove: Vec<TimerRef>,
    /// Inbox sequences of the events this turn handled.
    pub inbox_remove: Vec<u64>,
    /// Lines the turn adds to the conversation's history, numbered from
    /// `history_from` (lines older than the last `HISTORY_LIMIT` go).
    pub history: Vec<HistoryEntry>,
    pub history_from: u64,
    /// Where the conversation waits or who answers it, when the turn
    /// changed that (storage keeps both indexed for the router and agents).
    pub placement: Option<PlacementChange>,
    /// What analytics counts of this turn, written with it.
    pub facts: Vec<crate::model::fact::Fact>,
}

/// A conversation's place among queues and agents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// The queue it waits in.
    pub waiting: Option<WaitingIn>,
    /// The agent answering it.
    pub agent: Option<String>,
}

impl Placement {
    /// Where `position` puts a conversation in the placement index.
    pub fn of(position: &Position, last_agent: &Option<String>) -> Placement {
        match position {
            Position::Queued {
                queue,
                since_ms,
                offer,
                passed,
            } => Placement {
                waiting: Some(WaitingIn {
                    queue: queue.clone(),
                    since_ms: *since_ms,
                    offered_to: offer.as_ref().map(|o| o.agents.clone()).unwrap_or_default(),
                    offer_until_ms: offer.as_ref().map_or(0, |o| o.until_ms),
                    passed: passed.clone(),
                    last_agent: last_agent.clone(),
                }),
                agent: None,
            },
            Position::WithAgent { agent, .. } => Placement {
                waiting: None,
                agent: Some(agent.clone()),
            },
            _ => Placement::default(),
        }
    }
}

/// Where and since when a conversation waits, and what the router needs
/// to know of it, so a pass of the router reads only this index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingIn {
    pub queue: String,
    pub since_ms: u64,
    /// The agents its offer rings for, and until when (none: no offer).
    #[serde(default)]
    pub offered_to: Vec<String>,
    #[serde(default)]
    pub offer_until_ms: u64,
    /// Agents who declined it or let it lapse.
    #[serde(default)]
    pub passed: Vec<String>,
    /// The agent who last answered this customer (`sticky`).
    #[serde(default)]
    pub last_agent: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlacementChange {
    pub before: Placement,
    pub after: Placement,
    /// The agent who just closed it, and when: it stays in their list for
    /// the queue's display time.
    pub closed_by: Option<(String, u64)>,
}

/// A version to publish; storage gives it its number.
#[derive(Clone, Debug)]
pub struct NewVersion {
    pub document: serde_json::Value,
    pub applied_by: String,
    pub applied_at_ms: u64,
    pub comment: String,
    pub origin: VersionOrigin,
    /// Publish only if production is still this version (0: none yet).
    pub expected_production: u64,
    /// Whether the sandbox, if any, now counts as based on the new version
    /// (it was the sandbox that was applied).
    pub rebase_sandbox: bool,
    /// The uploads it runs with, name -> SHA-256.
    pub plugins: std::collections::BTreeMap<String, String>,
}

/// Why a version was not published.
#[derive(Debug, PartialEq)]
pub struct ProductionMoved {
    pub expected: u64,
    pub current: u64,
}

/// Group-commit figures since start.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommitStats {
    /// `flush` calls.
    pub flushes: u64,
    /// Durable writes those flushes answered.
    pub durable_writes: u64,
    /// The most writes one flush answered.
    pub largest_batch: u64,
    /// Requests the store's thread ran (reads and writes): each is a round
    /// trip between an async task and that thread.
    pub requests: u64,
}

impl TurnCommit {
    /// The tickets the turn's effects open, as stored.
    pub fn tickets(&self, now_ms: u64) -> Vec<Ticket> {
        self.effects
            .tickets
            .iter()
            .map(|draft| Ticket {
                id: draft.id.clone(),
                conversation_id: self.conversation_id.clone(),
                title: draft.title.clone(),
                category: draft.category.clone(),
                comment: draft.comment.clone(),
                created_at_ms: now_ms,
            })
            .collect()
    }
}

impl NewVersion {
    /// The version as published under `number`.
    pub fn numbered(self, number: u64) -> FlowVersion {
        FlowVersion {
            number,
            document: self.document,
            applied_by: self.applied_by,
            applied_at_ms: self.applied_at_ms,
            comment: self.comment,
            origin: self.origin,
            plugins: self.plugins,
        }
    }
}
