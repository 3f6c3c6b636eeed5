//! A human agent as stored: operational data managed through the admin API,
//! not part of the flow document.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::flow::model::ManagementAccess;

/// What an agent may do beyond answering their own conversations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Agent,
    /// Sees every queue and may take over or transfer any conversation of
    /// the queues they serve.
    Supervisor,
}

/// An agent's availability. Only `online` agents are offered conversations.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AgentStatus {
    Online,
    Away,
    #[default]
    Offline,
    /// A named break (`break:lunch`), counted apart from `away` in reports.
    Break(String),
}

impl AgentStatus {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "online" => Ok(AgentStatus::Online),
            "away" => Ok(AgentStatus::Away),
            "offline" => Ok(AgentStatus::Offline),
            _ => match text.strip_prefix("break:") {
                Some(name) if is_break_name(name) => Ok(AgentStatus::Break(name.to_string())),
                _ => Err(format!(
                    "`{text}` is not a status: online, away, offline or break:<name> (letters, digits, - and _, at most 32)"
                )),
            },
        }
    }
}

fn is_break_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentStatus::Online => f.write_str("online"),
            AgentStatus::Away => f.write_str("away"),
            AgentStatus::Offline => f.write_str("offline"),
            AgentStatus::Break(name) => write!(f, "break:{name}"),
        }
    }
}

impl Serialize for AgentStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        AgentStatus::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A queue an agent serves; agents of a higher `priority` are offered its
/// conversations before the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub queue: String,
    #[serde(default)]
    pub priority: u8,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub role: Role,
    /// ISO 639-1: the language the agent reads.
    pub language: String,
    pub queues: Vec<Membership>,
    pub status: AgentStatus,
    pub status_since_ms: u64,
    /// SHA-256 of the agent's bearer token, hex; the token itself is shown
    /// once, when it is made.
    pub token_sha256: String,
    /// When the agent last took, closed or passed on a conversation, or
    /// came online: the start of their idle time.
    #[serde(default)]
    pub last_activity_ms: u64,
    /// When the agent was last offered a conversation (round robin).
    #[serde(default)]
    pub last_offer_ms: u64,
    /// Offers let lapse in a row.
    #[serde(default)]
    pub missed_offers: u32,
}

impl Agent {
    pub fn serves(&self, queue: &str) -> Option<&Membership> {
        self.queues.iter().find(|m| m.queue == queue)
    }

    /// Whether the queue's `agent_management_access` lets this agent take
    /// over or transfer its conversations that others answer.
    pub fn manages(&self, queue: &str, access: ManagementAccess) -> bool {
        let serves = self.serves(queue).is_some();
        match access {
            ManagementAccess::Supervisors => serves && self.role == Role::Supervisor,
            ManagementAccess::Agents => serves,
            ManagementAccess::Nobody => false,
        }
    }
}

/// Agent ids travel in URLs and storage keys: letters, digits, `-`, `_`, `.`.
pub fn is_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        for text in ["online", "away", "offline", "break:lunch"] {
            assert_eq!(AgentStatus::parse(text).unwrap().to_string(), text);
        }
        assert!(AgentStatus::parse("busy").is_err());
        assert!(AgentStatus::parse("break:").is_err());
        assert!(AgentStatus::parse("break:a b").is_err());
    }
}
