//! Agents and the placement index on PostgreSQL: `agents`, `waiting`,
//! `assigned`, `closed`.

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::{PostgresBackend, big, conversation_key, from_json, records, to_json, unbig};
use crate::model::agent::Agent;
use crate::storage::{AgentChange, AgentHold, Agents, PlacementChange, StorageError, WaitingIn};

/// The advisory-lock class of agents' holds (the object is a hash of the
/// agent's id; the leases' class is another).
const HOLD_CLASS: i32 = 0x666c_6f78;

/// A pooled connection asking for a hold. If the request is dropped while
/// it waits (its client went away), PostgreSQL may still grant the lock on
/// this connection: so it is closed, which ends its session and the lock,
/// rather than going back to the pool holding the agent.
struct ClosedUnlessKept(Option<deadpool_postgres::Object>);

impl ClosedUnlessKept {
    fn keep(mut self) -> deadpool_postgres::Object {
        self.0.take().expect("kept once")
    }
}

impl Drop for ClosedUnlessKept {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

#[async_trait]
impl Agents for PostgresBackend {
    async fn agent(&self, id: &str) -> Result<Option<Agent>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM agents WHERE id = $1", &[&id])
            .await?;
        row.map(|row| from_json(row.get(0), "agent")).transpose()
    }

    /// A session advisory lock on a pooled connection, unlocked at release;
    /// a connection whose unlock failed leaves the pool, and its session
    /// (and the lock) ends with it.
    async fn hold_agent(&self, agent: &str) -> Result<AgentHold, StorageError> {
        let waiting = ClosedUnlessKept(Some(self.client().await?));
        let client = waiting.0.as_ref().expect("kept until locked");
        client
            .execute(
                "SELECT pg_advisory_lock($1, hashtext($2))",
                &[&HOLD_CLASS, &agent],
            )
            .await?;
        let client = waiting.keep();
        let agent = agent.to_string();
        Ok(AgentHold::ended_by(Box::pin(async move {
            let unlocked = client
                .execute(
                    "SELECT pg_advisory_unlock($1, hashtext($2))",
                    &[&HOLD_CLASS, &agent],
                )
                .await;
            if let Err(e) = unlocked {
                tracing::warn!("releasing agent {agent}'s hold: {e}; its connection is closed");
                drop(deadpool_postgres::Object::take(client));
            }
        })))
    }

    async fn agents(&self) -> Result<Vec<Agent>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT record FROM agents ORDER BY id", &[])
            .await?;
        records(&rows, "agent")
    }

    async fn agent_by_token(&self, token_sha256: &str) -> Result<Option<Agent>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record FROM agents WHERE token_sha256 = $1",
                &[&token_sha256],
            )
            .await?;
        row.map(|row| from_json(row.get(0), "agent")).transpose()
    }

    async fn put_agent(&self, agent: Agent) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO agents (id, token_sha256, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE \
                 SET token_sha256 = EXCLUDED.token_sha256, record = EXCLUDED.record",
                &[&agent.id, &agent.token_sha256, &to_json(&agent)],
            )
            .await?;
        Ok(())
    }

    async fn modify_agent(
        &self,
        id: &str,
        change: AgentChange,
    ) -> Result<Option<Agent>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt("SELECT record FROM agents WHERE id = $1 FOR UPDATE", &[&id])
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut agent: Agent = from_json(row.get(0), "agent")?;
        change(&mut agent);
        tx.execute(
            "UPDATE agents SET token_sha256 = $2, record = $3 WHERE id = $1",
            &[&id, &agent.token_sha256, &to_json(&agent)],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(agent))
    }

    async fn remove_agent(&self, id: &str) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM agents WHERE id = $1", &[&id])
            .await?;
        Ok(removed > 0)
    }

    async fn waiting(&self) -> Result<Vec<(String, WaitingIn)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT conversation, record FROM waiting ORDER BY conversation",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let waiting = from_json(row.get(1), "waiting entry")?;
                Ok((conversation_key(row.get(0)), waiting))
            })
            .collect()
    }

    async fn closed_by(
        &self,
        agent: &str,
        forget_before_ms: u64,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM closed WHERE agent = $1 AND at_ms < $2",
                &[&agent, &big(forget_before_ms)],
            )
            .await?;
        let rows = client
            .query(
                "SELECT conversation, at_ms FROM closed WHERE agent = $1 \
                 ORDER BY at_ms, conversation",
                &[&agent],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (conversation_key(row.get(0)), unbig(row.get(1))))
            .collect())
    }

    async fn assigned_to(&self, agent: &str) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT conversation FROM assigned WHERE agent = $1 ORDER BY conversation",
                &[&agent],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| conversation_key(row.get(0)))
            .collect())
    }
}

/// A turn's placement change: removals first, so a conversation that stays
/// where it was keeps its entry.
pub(super) async fn write_placement(
    tx: &Transaction<'_>,
    change: &PlacementChange,
    conversation: &str,
) -> Result<(), StorageError> {
    let conversation = conversation.as_bytes();
    if change.before.waiting.is_some() {
        tx.execute(
            "DELETE FROM waiting WHERE conversation = $1",
            &[&conversation],
        )
        .await?;
    }
    if let Some(agent) = &change.before.agent {
        tx.execute(
            "DELETE FROM assigned WHERE agent = $1 AND conversation = $2",
            &[agent, &conversation],
        )
        .await?;
    }
    if let Some(waiting) = &change.after.waiting {
        tx.execute(
            "INSERT INTO waiting (conversation, record) VALUES ($1, $2) \
             ON CONFLICT (conversation) DO UPDATE SET record = EXCLUDED.record",
            &[&conversation, &to_json(waiting)],
        )
        .await?;
    }
    if let Some(agent) = &change.after.agent {
        tx.execute(
            "INSERT INTO assigned (agent, conversation) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[agent, &conversation],
        )
        .await?;
    }
    if let Some((agent, at_ms)) = &change.closed_by {
        tx.execute(
            "INSERT INTO closed (agent, conversation, at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (agent, conversation) DO UPDATE SET at_ms = EXCLUDED.at_ms",
            &[agent, &conversation, &big(*at_ms)],
        )
        .await?;
    }
    Ok(())
}
