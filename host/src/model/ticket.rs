//! Tickets a plugin opened for a conversation.

use serde::{Deserialize, Serialize};

/// A ticket as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub conversation_id: String,
    pub title: String,
    pub category: String,
    pub comment: String,
    pub created_at_ms: u64,
}
