//! Conversations on PostgreSQL, and the turn commit: one transaction that
//! writes everything a turn changed (see `TurnCommit`).

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::leases::Leases;
use super::{PostgresBackend, big, count, from_json, records, text, to_json};
use crate::model::{
    ConversationState, HISTORY_TURNS, HistoryEntry, Ticket, conversation_key, parse_conversation_id,
};
use crate::storage::{Conversations, SavedData, StorageError, TurnCommit};

#[async_trait]
impl Conversations for PostgresBackend {
    async fn conversation(&self, key: &str) -> Result<Option<ConversationState>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record FROM conversations WHERE key = $1",
                &[&key.as_bytes()],
            )
            .await?;
        row.map(|row| from_json(row.get(0), &format!("conversation {key:?}")))
            .transpose()
    }

    async fn conversations_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationState>, StorageError> {
        let after = after.unwrap_or_default().as_bytes();
        let rows = self
            .client()
            .await?
            .query(
                "SELECT record FROM conversations WHERE key > $1 ORDER BY key LIMIT $2",
                &[&after, &count(limit)],
            )
            .await?;
        records(&rows, "conversation")
    }

    async fn load_data(&self, conversation_id: &str) -> Result<SavedData, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key, value FROM conversation_data WHERE conversation_id = $1",
                &[&conversation_id.as_bytes()],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((text(row.get(0)), from_json(row.get(1), "saved data")?)))
            .collect()
    }

    async fn history(&self, conversation: &str) -> Result<Vec<HistoryEntry>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT lines FROM history WHERE conversation = $1 ORDER BY turn",
                &[&conversation.as_bytes()],
            )
            .await?;
        let turns: Vec<Vec<HistoryEntry>> = records(&rows, "history")?;
        Ok(turns.into_iter().flatten().collect())
    }

    async fn commit_turn(&self, turn: TurnCommit, now_ms: u64) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        super::applied_only(&tx).await?;
        write_turn(&tx, &self.leases, &turn, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ticket(&self, id: &str) -> Result<Option<Ticket>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM tickets WHERE id = $1", &[&id])
            .await?;
        row.map(|row| from_json(row.get(0), &format!("ticket {id}")))
            .transpose()
    }

    async fn tickets_of(&self, conversation_id: &str) -> Result<Vec<Ticket>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM tickets WHERE conversation_id = $1 ORDER BY created_ms, id",
                &[&conversation_id.as_bytes()],
            )
            .await?;
        records(&rows, "ticket")
    }
}

/// Every write of one turn, in `tx`: only while this node owns the
/// conversation, and only once per inbox event.
async fn write_turn(
    tx: &Transaction<'_>,
    leases: &Leases,
    turn: &TurnCommit,
    now_ms: u64,
) -> Result<(), StorageError> {
    if let Some(conversation) = turn_conversation(turn) {
        leases.fence(tx, &conversation).await?;
    }
    take_from_inbox(tx, &turn.inbox_remove).await?;
    if let Some(state) = &turn.state {
        tx.execute(
            "INSERT INTO conversations (key, record) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record",
            &[&state.key().as_bytes(), &to_json(state)],
        )
        .await?;
        write_history(tx, turn, &state.key()).await?;
        if let Some(change) = &turn.placement {
            super::agents::write_placement(tx, change, &state.key()).await?;
        }
    }
    write_data(tx, turn).await?;
    write_tickets(tx, turn, now_ms).await?;
    super::timers::write_timers(tx, leases, turn).await?;
    super::outbox::queue(tx, leases, &turn.outbox).await?;
    super::analytics::write_facts(tx, turn, now_ms).await
}

/// The key of the conversation a turn belongs to: its state's, or the one
/// its session id names (a plugin call's effects).
fn turn_conversation(turn: &TurnCommit) -> Option<String> {
    match &turn.state {
        Some(state) => Some(state.key()),
        None => parse_conversation_id(&turn.conversation_id)
            .map(|(account, customer, _)| conversation_key(account, customer)),
    }
}

/// Removes the turn's events from the inbox; an event already gone was
/// handled by another run of it, and this turn must not count twice.
async fn take_from_inbox(tx: &Transaction<'_>, seqs: &[u64]) -> Result<(), StorageError> {
    for seq in seqs {
        let removed = tx
            .execute("DELETE FROM inbox WHERE seq = $1", &[&big(*seq)])
            .await?;
        if removed == 0 {
            return Err(StorageError::AlreadyHandled);
        }
    }
    Ok(())
}

/// This turn's lines under its number; turns `HISTORY_TURNS` back go.
async fn write_history(
    tx: &Transaction<'_>,
    turn: &TurnCommit,
    conversation: &str,
) -> Result<(), StorageError> {
    if turn.history.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO history (conversation, turn, lines) VALUES ($1, $2, $3) \
         ON CONFLICT (conversation, turn) DO UPDATE SET lines = EXCLUDED.lines",
        &[
            &conversation.as_bytes(),
            &big(turn.history_from),
            &to_json(&turn.history),
        ],
    )
    .await?;
    if let Some(oldest_gone) = turn.history_from.checked_sub(HISTORY_TURNS) {
        tx.execute(
            "DELETE FROM history WHERE conversation = $1 AND turn <= $2",
            &[&conversation.as_bytes(), &big(oldest_gone)],
        )
        .await?;
    }
    Ok(())
}

async fn write_data(tx: &Transaction<'_>, turn: &TurnCommit) -> Result<(), StorageError> {
    let id = turn.conversation_id.as_bytes();
    for (key, change) in &turn.effects.data_changes {
        let key = key.as_bytes();
        match change {
            Some(value) => {
                tx.execute(
                    "INSERT INTO conversation_data (conversation_id, key, value) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (conversation_id, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&id, &key, &to_json(value)],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM conversation_data WHERE conversation_id = $1 AND key = $2",
                    &[&id, &key],
                )
                .await?
            }
        };
    }
    Ok(())
}

async fn write_tickets(
    tx: &Transaction<'_>,
    turn: &TurnCommit,
    now_ms: u64,
) -> Result<(), StorageError> {
    for ticket in turn.tickets(now_ms) {
        tx.execute(
            "INSERT INTO tickets (id, conversation_id, created_ms, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[
                &ticket.id,
                &ticket.conversation_id.as_bytes(),
                &big(now_ms),
                &to_json(&ticket),
            ],
        )
        .await?;
    }
    Ok(())
}
