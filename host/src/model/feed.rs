//! One event of the agents' feed (see `engine::feed`), as the feed and a
//! store shared by several nodes keep it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One event for some agents (and the supervisors of its queue).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// Larger than every event's before it (in the order clients see).
    pub id: u64,
    /// `offer`, `message`, `conversation`, `status`.
    pub kind: String,
    /// The agents it is for.
    pub agents: Vec<String>,
    /// The queue it concerns, for supervisors.
    pub queue: Option<String>,
    pub data: Value,
}
