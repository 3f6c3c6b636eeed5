//! What analytics counts of a conversation, as a turn records it.

use serde::{Deserialize, Serialize};

/// Something that happened to a conversation, as analytics counts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fact {
    /// A session began at a connector.
    Started { connector: String },
    /// A session went from the flow to people (into a queue).
    HandedToQueue { connector: String, queue: String },
    /// A session ended, at a terminate or closed by an agent.
    Ended {
        connector: String,
        /// The terminate's name, or `agent:<id>`.
        terminate: String,
        answered: bool,
        /// Whether it ever reached a queue (if not, the bot ended it).
        reached_people: bool,
    },
    /// The flow entered a decision.
    DecisionEntered { tree: String, decision: String },
    /// The flow left a decision by one of its targets.
    DecisionLeft {
        tree: String,
        decision: String,
        target: String,
    },
    /// A chatbot handed the conversation to a queue.
    ChatbotHandoff { chatbot: String, queue: String },
    /// A chatbot failed and sent the conversation to its fallback.
    ChatbotFallback { chatbot: String, reason: String },
    /// A conversation stopped waiting in a queue.
    LeftQueue {
        connector: String,
        queue: String,
        waited_ms: u64,
        exit: QueueExit,
    },
    /// An agent's first reply since taking the conversation.
    FirstReply {
        agent: String,
        queue: String,
        after_ms: u64,
    },
    /// An agent stopped answering a conversation (closed, transferred or
    /// otherwise gone), after `handle_ms` with it.
    Handled {
        agent: String,
        queue: String,
        handle_ms: u64,
    },
}

/// How a wait in a queue ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueExit {
    /// An agent took it.
    Taken,
    /// It moved to another queue (an overflow).
    Moved,
    /// It left without an agent: ended, timed out to the flow, or the
    /// customer's session ended.
    Abandoned,
}

/// A fact with when it happened and whose it is, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub at_ms: u64,
    /// The session's conversation id.
    pub conversation: String,
    pub fact: Fact,
}
