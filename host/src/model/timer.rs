//! Durable timers: events the engine schedules into a conversation.

use serde::{Deserialize, Serialize};

/// A durable timer: fires an event into a conversation at `due_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    /// Unique; part of the storage key.
    pub id: String,
    pub conversation: String,
    pub session: u64,
    pub due_ms: u64,
    pub kind: TimerKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum TimerKind {
    /// Send message `index` of an automessage.
    AutomessageSend { automessage: String, index: usize },
    /// Leave the automessage for its next destination.
    AutomessageNext { automessage: String },
    /// One of a queue's clocks (see `engine::queue_clocks`).
    Queue { check: QueueCheck },
}

/// What a queue timer checks when it fires. Each carries the time its
/// clock started from; a clock that was restarted since (a newer message,
/// another assignment) finds the state moved on and does nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "check")]
pub enum QueueCheck {
    /// Tell the waiting customer their place again.
    Announce {
        since_ms: u64,
    },
    /// Waited too long without an agent (`message_timeout`).
    WaitLimit {
        since_ms: u64,
    },
    /// The session has been with people too long (`session_timeout`).
    SessionLimit,
    /// The agent accepted but has not answered (`agent_timeout`).
    AgentFirstReply {
        since_ms: u64,
    },
    /// The customer's message has no answer (`agent_message_timeout`).
    AgentAnswer {
        customer_ms: u64,
    },
    /// The customer is quiet after the agent's message.
    CustomerIdle {
        reply_ms: u64,
    },
    CustomerGone {
        reply_ms: u64,
    },
}
