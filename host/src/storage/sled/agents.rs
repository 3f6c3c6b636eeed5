//! Agents and the placement index: which conversations wait in which
//! queue, and which agent answers which conversation.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::store::{SledStore, from_json, settle, to_json};
use async_trait::async_trait;

use super::SledBackend;
use crate::model::agent::Agent;
use crate::storage::{AgentChange, Agents, PlacementChange, StorageError, WaitingIn};

const WAITING: &[u8] = b"w\0";
const ASSIGNED: &[u8] = b"a\0";
const CLOSED: &[u8] = b"c\0";

fn waiting_key(conversation: &str) -> Vec<u8> {
    [WAITING, conversation.as_bytes()].concat()
}

fn assigned_prefix(agent: &str) -> Vec<u8> {
    [ASSIGNED, agent.as_bytes(), b"\0"].concat()
}

fn assigned_key(agent: &str, conversation: &str) -> Vec<u8> {
    [assigned_prefix(agent).as_slice(), conversation.as_bytes()].concat()
}

fn closed_prefix(agent: &str) -> Vec<u8> {
    [CLOSED, agent.as_bytes(), b"\0"].concat()
}

/// The index writes of one turn's placement change: removals first, so a
/// conversation that stays where it was keeps its entry.
pub(super) fn placement_writes(
    change: &PlacementChange,
    conversation: &str,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut writes = Vec::new();
    if change.before.waiting.is_some() {
        writes.push((waiting_key(conversation), None));
    }
    if let Some(agent) = &change.before.agent {
        writes.push((assigned_key(agent, conversation), None));
    }
    if let Some(waiting) = &change.after.waiting {
        writes.push((waiting_key(conversation), Some(to_json(waiting))));
    }
    if let Some(agent) = &change.after.agent {
        writes.push((assigned_key(agent, conversation), Some(Vec::new())));
    }
    if let Some((agent, at_ms)) = &change.closed_by {
        let key = [closed_prefix(agent).as_slice(), conversation.as_bytes()].concat();
        writes.push((key, Some(at_ms.to_be_bytes().to_vec())));
    }
    writes
}

impl SledStore {
    pub fn agent(&self, id: &str) -> Result<Option<Agent>, StorageError> {
        self.agents
            .get(id.as_bytes())?
            .map(|bytes| from_json(&bytes, "agent"))
            .transpose()
    }

    pub fn agents(&self) -> Result<Vec<Agent>, StorageError> {
        self.agents
            .iter()
            .values()
            .map(|bytes| from_json(&bytes?, "agent"))
            .collect()
    }

    pub fn agent_by_token(&self, token_sha256: &str) -> Result<Option<Agent>, StorageError> {
        match self.agent_tokens.get(token_sha256.as_bytes())? {
            Some(id) => self.agent(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Creates or replaces an agent; a replaced token stops working.
    pub fn put_agent(&self, agent: &Agent) -> Result<(), StorageError> {
        let old_token = self.agent(&agent.id)?.map(|old| old.token_sha256);
        let result: Result<(), TransactionError<()>> = (&self.agents, &self.agent_tokens)
            .transaction(|(agents, tokens)| {
                if let Some(old) = &old_token {
                    tokens.remove(old.as_bytes())?;
                }
                tokens.insert(agent.token_sha256.as_bytes(), agent.id.as_bytes())?;
                agents.insert(agent.id.as_bytes(), to_json(agent))?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        settle(result)
    }

    pub fn remove_agent(&self, id: &str) -> Result<bool, StorageError> {
        let Some(agent) = self.agent(id)? else {
            return Ok(false);
        };
        let result: Result<(), TransactionError<()>> = (&self.agents, &self.agent_tokens)
            .transaction(|(agents, tokens)| {
                tokens.remove(agent.token_sha256.as_bytes())?;
                agents.remove(id.as_bytes())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        settle(result)?;
        Ok(true)
    }

    /// Conversations waiting for an agent, by conversation key.
    pub fn waiting(&self) -> Result<Vec<(String, WaitingIn)>, StorageError> {
        self.placements
            .scan_prefix(WAITING)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((
                    String::from_utf8_lossy(&key[WAITING.len()..]).into_owned(),
                    from_json(&value, "waiting entry")?,
                ))
            })
            .collect()
    }

    /// Conversations `agent` closed, and when, oldest first; entries closed
    /// before `forget_before_ms` are removed on the way.
    pub fn closed_by(
        &self,
        agent: &str,
        forget_before_ms: u64,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let prefix = closed_prefix(agent);
        let mut kept = Vec::new();
        for entry in self.placements.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let at_ms = value
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if at_ms < forget_before_ms {
                self.placements.remove(&key)?;
            } else {
                let conversation = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                kept.push((conversation, at_ms));
            }
        }
        kept.sort_by_key(|(_, at)| *at);
        Ok(kept)
    }

    /// Keys of the conversations `agent` answers.
    pub fn assigned_to(&self, agent: &str) -> Result<Vec<String>, StorageError> {
        let prefix = assigned_prefix(agent);
        self.placements
            .scan_prefix(&prefix)
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?[prefix.len()..]).into_owned()))
            .collect()
    }
}

#[async_trait]
impl Agents for SledBackend {
    async fn agent(&self, id: &str) -> Result<Option<Agent>, StorageError> {
        let id = id.to_string();
        self.thread.read(move |db| db.agent(&id)).await
    }

    async fn agents(&self) -> Result<Vec<Agent>, StorageError> {
        self.thread.read(|db| db.agents()).await
    }

    async fn agent_by_token(&self, token_sha256: &str) -> Result<Option<Agent>, StorageError> {
        let hash = token_sha256.to_string();
        self.thread.read(move |db| db.agent_by_token(&hash)).await
    }

    async fn put_agent(&self, agent: Agent) -> Result<(), StorageError> {
        self.thread.write(move |db| db.put_agent(&agent)).await
    }

    async fn modify_agent(
        &self,
        id: &str,
        change: AgentChange,
    ) -> Result<Option<Agent>, StorageError> {
        let id = id.to_string();
        self.thread
            .apply(move |db| {
                let Some(mut agent) = db.agent(&id)? else {
                    return Ok(None);
                };
                change(&mut agent);
                db.put_agent(&agent)?;
                Ok(Some(agent))
            })
            .await
    }

    async fn remove_agent(&self, id: &str) -> Result<bool, StorageError> {
        let id = id.to_string();
        self.thread.write(move |db| db.remove_agent(&id)).await
    }

    async fn waiting(&self) -> Result<Vec<(String, WaitingIn)>, StorageError> {
        self.thread.read(|db| db.waiting()).await
    }

    async fn closed_by(
        &self,
        agent: &str,
        forget_before_ms: u64,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let agent = agent.to_string();
        self.thread
            .apply(move |db| db.closed_by(&agent, forget_before_ms))
            .await
    }

    async fn assigned_to(&self, agent: &str) -> Result<Vec<String>, StorageError> {
        let agent = agent.to_string();
        self.thread.read(move |db| db.assigned_to(&agent)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Placement;

    fn placed(waiting: Option<&str>, agent: Option<&str>) -> Placement {
        Placement {
            waiting: waiting.map(|queue| WaitingIn {
                queue: queue.into(),
                since_ms: 7,
                ..WaitingIn::default()
            }),
            agent: agent.map(String::from),
        }
    }

    #[test]
    fn a_move_removes_the_old_entries_before_adding_the_new() {
        let change = PlacementChange {
            before: placed(Some("sales"), None),
            after: placed(None, Some("ayse")),
            closed_by: None,
        };
        let writes = placement_writes(&change, "acct\0cust");
        assert_eq!(
            writes,
            vec![
                (b"w\0acct\0cust".to_vec(), None),
                (b"a\0ayse\0acct\0cust".to_vec(), Some(Vec::new())),
            ]
        );
    }
}
