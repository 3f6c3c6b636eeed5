//! The outbox on sled: the trait's requests, run on the storage thread.

use async_trait::async_trait;

use super::SledBackend;
use crate::model::OutboxMessage;
use crate::storage::{Echo, EchoOutcome, FailedMessage, Outbox, Settling, StorageError};

#[async_trait]
impl Outbox for SledBackend {
    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxMessage>, StorageError> {
        self.thread.read(move |db| db.outbox(limit)).await
    }

    async fn outbox_of(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StorageError> {
        let conversation = conversation.to_string();
        self.thread
            .read(move |db| db.outbox_of(&conversation, limit))
            .await
    }

    async fn outbox_conversations(&self) -> Result<Vec<String>, StorageError> {
        self.thread.read(|db| db.outbox_conversations()).await
    }

    async fn record_sent(
        &self,
        message: OutboxMessage,
        channel_id: String,
        parts: u32,
    ) -> Result<(), StorageError> {
        self.thread
            .apply(move |db| db.record_sent(&message, &channel_id, parts))
            .await
    }

    async fn record_failed(
        &self,
        message: OutboxMessage,
        reason: String,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        self.thread
            .write(move |db| db.record_failed(&message, &reason, now_ms))
            .await
    }

    async fn mark_in_flight(&self, id: &str, now_ms: u64) -> Result<(), StorageError> {
        let id = id.to_string();
        self.thread
            .write(move |db| db.mark_in_flight(&id, now_ms))
            .await
    }

    async fn clear_in_flight(&self, id: &str) -> Result<(), StorageError> {
        let id = id.to_string();
        self.thread.write(move |db| db.clear_in_flight(&id)).await
    }

    async fn in_flight(&self) -> Result<Vec<String>, StorageError> {
        self.thread.read(|db| db.in_flight()).await
    }

    async fn begin_settling(&self, settling: Settling) -> Result<bool, StorageError> {
        self.thread
            .write(move |db| db.begin_settling(&settling))
            .await
    }

    fn any_settling(&self) -> bool {
        self.settling_any.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn settling(&self) -> Result<Vec<Settling>, StorageError> {
        self.thread.read(|db| db.settling()).await
    }

    async fn end_settling(&self, message_id: &str) -> Result<(), StorageError> {
        let id = message_id.to_string();
        self.thread.write(move |db| db.end_settling(&id)).await
    }

    async fn note_echo(&self, echo: Echo, channel_id: &str) -> Result<EchoOutcome, StorageError> {
        let id = channel_id.to_string();
        let known = {
            let id = id.clone();
            self.thread.read(move |db| db.is_known_send(&id)).await?
        };
        if known {
            return Ok(EchoOutcome::Known);
        }
        self.thread.write(move |db| db.note_echo(&echo, &id)).await
    }

    async fn expire_echoes(&self, cutoff_ms: u64) -> Result<usize, StorageError> {
        self.thread
            .write(move |db| db.expire_echoes(cutoff_ms))
            .await
    }

    async fn failed_messages(&self) -> Result<Vec<FailedMessage>, StorageError> {
        self.thread.read(|db| db.failed_messages()).await
    }

    async fn sent_as(&self, channel_id: &str) -> Result<Option<String>, StorageError> {
        let id = channel_id.to_string();
        self.thread.read(move |db| db.sent_as(&id)).await
    }
}
