//! The outbox on PostgreSQL: `outbox`, `sent`, `failed`, `in_flight`, and
//! sends in doubt (`settling`) meeting their echoes (`echoes`) under
//! [`ECHO_LOCK`].

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::leases::Leases;
use super::{
    ECHO_LOCK, PostgresBackend, big, conversation_key, count, from_json, records, text, to_json,
};
use crate::model::OutboxMessage;
use crate::storage::{Echo, EchoOutcome, FailedMessage, Outbox, Settling, StorageError};

#[async_trait]
impl Outbox for PostgresBackend {
    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxMessage>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM outbox WHERE partition = ANY($1) \
                 ORDER BY conversation, id LIMIT $2",
                &[&self.leases.owned(), &count(limit)],
            )
            .await?;
        records(&rows, "outbox message")
    }

    async fn outbox_of(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM outbox WHERE conversation = $1 ORDER BY id LIMIT $2",
                &[&conversation.as_bytes(), &count(limit)],
            )
            .await?;
        records(&rows, "outbox message")
    }

    async fn outbox_conversations(&self) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT conversation FROM outbox WHERE partition = ANY($1) \
                 ORDER BY conversation",
                &[&self.leases.owned()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| conversation_key(row.get(0)))
            .collect())
    }

    async fn record_sent(
        &self,
        message: OutboxMessage,
        channel_id: String,
        parts: u32,
    ) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        super::applied_only(&tx).await?;
        tx.execute(
            "INSERT INTO sent (channel_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&channel_id.as_bytes(), &message.id],
        )
        .await?;
        tx.execute("DELETE FROM in_flight WHERE id = $1", &[&message.id])
            .await?;
        tx.execute(
            "DELETE FROM echoes WHERE channel_id = $1",
            &[&channel_id.as_bytes()],
        )
        .await?;
        let mut updated = message;
        updated.sent_parts += 1;
        advance(&tx, &updated, updated.sent_parts >= parts).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_failed(
        &self,
        message: OutboxMessage,
        reason: String,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM outbox WHERE conversation = $1 AND id = $2",
            &[&message.conversation.as_bytes(), &message.id],
        )
        .await?;
        tx.execute("DELETE FROM in_flight WHERE id = $1", &[&message.id])
            .await?;
        let id = message.id.clone();
        let failed = FailedMessage {
            message,
            reason,
            at_ms: now_ms,
        };
        tx.execute(
            "INSERT INTO failed (id, record) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[&id, &to_json(&failed)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks the send only while this node owns the message's partition:
    /// a node that lost it does not start a send the new owner makes.
    async fn mark_in_flight(&self, id: &str, now_ms: u64) -> Result<(), StorageError> {
        let client = self.client().await?;
        let marked = client
            .execute(
                "INSERT INTO in_flight (id, at_ms) \
                 SELECT o.id, $2 FROM outbox o \
                 JOIN partition_leases l ON l.partition = o.partition \
                 WHERE o.id = $1 AND l.owner = $3 AND o.partition = ANY($4) \
                 ON CONFLICT (id) DO UPDATE SET at_ms = EXCLUDED.at_ms",
                &[&id, &big(now_ms), &self.leases.node(), &self.leases.owned()],
            )
            .await?;
        match marked {
            0 => Err(StorageError::NotOwner(-1)),
            _ => Ok(()),
        }
    }

    async fn clear_in_flight(&self, id: &str) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM in_flight WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    /// Sends under way on this node's partitions (another node's are its
    /// own to settle).
    async fn in_flight(&self) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT f.id FROM in_flight f JOIN outbox o ON o.id = f.id \
                 WHERE o.partition = ANY($1) ORDER BY f.id",
                &[&self.leases.owned()],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn begin_settling(&self, settling: Settling) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ECHO_LOCK])
            .await?;
        let settled = match kept_echo_for(&tx, &settling).await? {
            Some(channel_id) => {
                apply_echo(&tx, &settling, &channel_id).await?;
                true
            }
            None => {
                tx.execute(
                    "INSERT INTO settling (message_id, record) VALUES ($1, $2) \
                     ON CONFLICT (message_id) DO UPDATE SET record = EXCLUDED.record",
                    &[&settling.message_id, &to_json(&settling)],
                )
                .await?;
                tx.execute(
                    "DELETE FROM in_flight WHERE id = $1",
                    &[&settling.message_id],
                )
                .await?;
                false
            }
        };
        tx.commit().await?;
        Ok(settled)
    }

    /// Several nodes may hold sends in doubt, so no node can know there
    /// are none without asking: the sender reads `settling` (an empty
    /// table's read) every time.
    fn any_settling(&self) -> bool {
        true
    }

    /// Sends in doubt on this node's partitions.
    async fn settling(&self) -> Result<Vec<Settling>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT record FROM settling ORDER BY message_id", &[])
            .await?;
        let held: Vec<Settling> = records(&rows, "settling send")?;
        let owned = self.leases.owned();
        Ok(held
            .into_iter()
            .filter(|s| owned.contains(&self.leases.partition_of(&s.conversation)))
            .collect())
    }

    async fn end_settling(&self, message_id: &str) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM settling WHERE message_id = $1", &[&message_id])
            .await?;
        Ok(())
    }

    async fn note_echo(&self, echo: Echo, channel_id: &str) -> Result<EchoOutcome, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ECHO_LOCK])
            .await?;
        let known = tx
            .query_opt(
                "SELECT 1 FROM sent WHERE channel_id = $1",
                &[&channel_id.as_bytes()],
            )
            .await?;
        let outcome = if known.is_some() {
            EchoOutcome::Known
        } else if let Some(settling) = settling_for(&tx, &echo).await? {
            apply_echo(&tx, &settling, channel_id).await?;
            EchoOutcome::Settled(settling.message_id)
        } else {
            tx.execute(
                "INSERT INTO echoes (channel_id, at_ms, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (channel_id) DO NOTHING",
                &[&channel_id.as_bytes(), &big(echo.at_ms), &to_json(&echo)],
            )
            .await?;
            EchoOutcome::Kept
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn expire_echoes(&self, cutoff_ms: u64) -> Result<usize, StorageError> {
        let client = self.client().await?;
        let expired = client
            .execute("DELETE FROM echoes WHERE at_ms < $1", &[&big(cutoff_ms)])
            .await?;
        Ok(expired as usize)
    }

    async fn failed_messages(&self) -> Result<Vec<FailedMessage>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT record FROM failed ORDER BY id", &[])
            .await?;
        records(&rows, "failed message")
    }

    async fn sent_as(&self, channel_id: &str) -> Result<Option<String>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT message_id FROM sent WHERE channel_id = $1",
                &[&channel_id.as_bytes()],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }
}

/// Queues a turn's messages.
pub(super) async fn queue(
    tx: &Transaction<'_>,
    leases: &Leases,
    messages: &[OutboxMessage],
) -> Result<(), StorageError> {
    for message in messages {
        tx.execute(
            "INSERT INTO outbox (conversation, id, partition, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (conversation, id) DO UPDATE SET record = EXCLUDED.record",
            &[
                &message.conversation.as_bytes(),
                &message.id,
                &leases.partition_of(&message.conversation),
                &to_json(message),
            ],
        )
        .await?;
    }
    Ok(())
}

/// A message with one more part taken: kept for the next part, or gone
/// with its last.
async fn advance(
    tx: &Transaction<'_>,
    message: &OutboxMessage,
    done: bool,
) -> Result<(), StorageError> {
    if done {
        tx.execute(
            "DELETE FROM outbox WHERE conversation = $1 AND id = $2",
            &[&message.conversation.as_bytes(), &message.id],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE outbox SET record = $3 WHERE conversation = $1 AND id = $2",
            &[
                &message.conversation.as_bytes(),
                &message.id,
                &to_json(message),
            ],
        )
        .await?;
    }
    Ok(())
}

/// An echo kept earlier that confirms `settling`, by its channel id.
async fn kept_echo_for(
    tx: &Transaction<'_>,
    settling: &Settling,
) -> Result<Option<String>, StorageError> {
    let rows = tx
        .query(
            "SELECT channel_id, record FROM echoes \
             WHERE NOT EXISTS (SELECT 1 FROM sent WHERE sent.channel_id = echoes.channel_id) \
             ORDER BY channel_id",
            &[],
        )
        .await?;
    for row in rows {
        let echo: Echo = from_json(row.get(1), "echo")?;
        if echo.account == settling.account
            && echo.recipient == settling.recipient
            && echo.text == settling.text
        {
            return Ok(Some(text(row.get(0))));
        }
    }
    Ok(None)
}

/// The send in doubt an echo confirms.
async fn settling_for(tx: &Transaction<'_>, echo: &Echo) -> Result<Option<Settling>, StorageError> {
    let rows = tx
        .query("SELECT record FROM settling ORDER BY message_id", &[])
        .await?;
    let held: Vec<Settling> = records(&rows, "settling send")?;
    Ok(held.into_iter().find(|s| {
        s.account == echo.account && s.recipient == echo.recipient && s.text == echo.text
    }))
}

/// Records the part in doubt as sent under `channel_id`, its echo's id.
async fn apply_echo(
    tx: &Transaction<'_>,
    settling: &Settling,
    channel_id: &str,
) -> Result<(), StorageError> {
    let id = &settling.message_id;
    tx.execute("DELETE FROM settling WHERE message_id = $1", &[id])
        .await?;
    tx.execute(
        "DELETE FROM echoes WHERE channel_id = $1",
        &[&channel_id.as_bytes()],
    )
    .await?;
    tx.execute("DELETE FROM in_flight WHERE id = $1", &[id])
        .await?;
    let row = tx
        .query_opt(
            "SELECT record FROM outbox WHERE conversation = $1 AND id = $2",
            &[&settling.conversation.as_bytes(), id],
        )
        .await?;
    if let Some(row) = row {
        let mut message: OutboxMessage = from_json(row.get(0), "outbox message")?;
        message.sent_parts = settling.part + 1;
        tx.execute(
            "INSERT INTO sent (channel_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&channel_id.as_bytes(), id],
        )
        .await?;
        advance(tx, &message, message.sent_parts >= settling.parts).await?;
    }
    Ok(())
}
