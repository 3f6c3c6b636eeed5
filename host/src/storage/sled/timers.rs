//! Timers on sled: the trait's requests, run on the storage thread.

use async_trait::async_trait;

use super::SledBackend;
use crate::model::Timer;
use crate::storage::{StorageError, Timers};

#[async_trait]
impl Timers for SledBackend {
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<Timer>, StorageError> {
        self.thread
            .read(move |db| db.due_timers(now_ms, limit))
            .await
    }

    async fn next_timer_due(&self) -> Result<Option<u64>, StorageError> {
        self.thread.read(|db| db.next_timer_due()).await
    }
}
