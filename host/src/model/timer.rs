//! Durable timers: events the engine schedules into a conversation.

use serde::{Deserialize, Serialize};

/// A durable timer: fires an event into a conversation at `due_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    /// Unique (a UUID).
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

impl Timer {
    /// What names this timer to cancel or finish it.
    pub fn reference(&self) -> TimerRef {
        TimerRef {
            due_ms: self.due_ms,
            id: self.id.clone(),
        }
    }
}

/// Names one timer: its id, with its due time so a store that keeps timers
/// in time order finds it without another index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TimerRef {
    pub due_ms: u64,
    pub id: String,
}

/// Conversations saved before timers had typed references kept sled's key
/// for each: the due time (8 bytes, big-endian) then the id, in hex. Both
/// forms are read; the typed one is written.
impl<'de> Deserialize<'de> for TimerRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Typed { due_ms: u64, id: String },
            Legacy(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Typed { due_ms, id } => Ok(TimerRef { due_ms, id }),
            Either::Legacy(hex_key) => TimerRef::from_legacy_hex(&hex_key)
                .ok_or_else(|| serde::de::Error::custom(format!("bad timer key `{hex_key}`"))),
        }
    }
}

impl TimerRef {
    fn from_legacy_hex(hex_key: &str) -> Option<TimerRef> {
        let bytes = hex::decode(hex_key).ok()?;
        let (due, id) = bytes.split_at_checked(8)?;
        Some(TimerRef {
            due_ms: u64::from_be_bytes(due.try_into().ok()?),
            id: String::from_utf8(id.to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_hex_key_reads_as_the_same_timer() {
        let timer = TimerRef {
            due_ms: 1_700_000_000_123,
            id: "0193a1b2-7c00-7000-8000-000000000001".into(),
        };
        let mut key = timer.due_ms.to_be_bytes().to_vec();
        key.extend_from_slice(timer.id.as_bytes());
        let legacy = format!("\"{}\"", hex::encode(key));
        assert_eq!(serde_json::from_str::<TimerRef>(&legacy).unwrap(), timer);
        let typed = serde_json::to_string(&timer).unwrap();
        assert_eq!(serde_json::from_str::<TimerRef>(&typed).unwrap(), timer);
        assert!(serde_json::from_str::<TimerRef>("\"zz\"").is_err());
    }
}
