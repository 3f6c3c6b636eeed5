//! Messages waiting for the channel's sender.

use serde::{Deserialize, Serialize};

use super::message::OutgoingMessage;

/// A message waiting in the outbox for the channel's sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// The message's id (also the idempotency key of its send).
    pub id: String,
    /// Storage key of the conversation.
    pub conversation: String,
    /// Session conversation id.
    pub conversation_id: String,
    pub account: String,
    pub recipient: String,
    pub message: OutgoingMessage,
    pub created_ms: u64,
    /// `bot` or `agent`.
    pub sender: String,
    /// Parts already accepted by the channel (a long text goes out in
    /// several); a restart resumes after them.
    #[serde(default)]
    pub sent_parts: u32,
    /// The customer's last message as the turn that queued this left it:
    /// where the channel's messaging window starts, so the sender need not
    /// read the conversation. A later message only moves the window on, so
    /// this errs towards not sending. `None` in records from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_from_ms: Option<u64>,
}
