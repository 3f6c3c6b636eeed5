//! Conversations on sled: the trait's requests, run on the storage thread.

use async_trait::async_trait;

use super::SledBackend;
use crate::model::{ConversationState, HistoryEntry, Ticket};
use crate::storage::{Conversations, SavedData, StorageError, TurnCommit};

#[async_trait]
impl Conversations for SledBackend {
    async fn conversation(&self, key: &str) -> Result<Option<ConversationState>, StorageError> {
        let key = key.to_string();
        self.thread.read(move |db| db.conversation(&key)).await
    }

    async fn conversations_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationState>, StorageError> {
        let after = after.map(String::from);
        self.thread
            .read(move |db| db.conversations_after(after.as_deref(), limit))
            .await
    }

    async fn conversation_with_data(
        &self,
        key: &str,
    ) -> Result<Option<(ConversationState, SavedData)>, StorageError> {
        let key = key.to_string();
        self.thread
            .read(move |db| {
                let Some(state) = db.conversation(&key)? else {
                    return Ok(None);
                };
                let data = db.load_data(&state.id())?;
                Ok(Some((state, data)))
            })
            .await
    }

    async fn load_data(&self, conversation_id: &str) -> Result<SavedData, StorageError> {
        let id = conversation_id.to_string();
        self.thread.read(move |db| db.load_data(&id)).await
    }

    async fn history(&self, conversation: &str) -> Result<Vec<HistoryEntry>, StorageError> {
        let conversation = conversation.to_string();
        self.thread.read(move |db| db.history(&conversation)).await
    }

    async fn commit_turn(&self, turn: TurnCommit, now_ms: u64) -> Result<(), StorageError> {
        self.turns.write(&self.thread, (turn, now_ms)).await
    }

    async fn ticket(&self, id: &str) -> Result<Option<Ticket>, StorageError> {
        let id = id.to_string();
        self.thread.read(move |db| db.ticket(&id)).await
    }

    async fn tickets_of(&self, conversation_id: &str) -> Result<Vec<Ticket>, StorageError> {
        let id = conversation_id.to_string();
        self.thread.read(move |db| db.tickets_of(&id)).await
    }
}
