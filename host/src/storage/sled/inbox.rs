//! The inbox on sled: the trait's requests, run on the storage thread
//! (`SledStore` keeps the trees and their keys).

use async_trait::async_trait;

use super::SledBackend;
use crate::storage::{DeadLetter, InboundEvent, Inbox, SeenKey, StorageError};

#[async_trait]
impl Inbox for SledBackend {
    async fn accept_inbound(
        &self,
        events: Vec<InboundEvent>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        self.accepts.write(&self.thread, (events, now_ms)).await
    }

    async fn expire_seen(&self, cutoff_ms: u64, limit: usize) -> Result<usize, StorageError> {
        self.thread
            .write(move |db| db.expire_seen(cutoff_ms, limit))
            .await
    }

    async fn seen_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SeenKey>, StorageError> {
        let after = after.map(str::to_owned);
        self.thread
            .read(move |db| db.seen_after(after.as_deref(), limit))
            .await
    }

    async fn remember_seen(&self, keys: Vec<SeenKey>) -> Result<(), StorageError> {
        self.thread.write(move |db| db.remember_seen(&keys)).await
    }

    async fn inbox(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.thread.read(move |db| db.inbox(after, limit)).await
    }

    async fn inbox_record(&self, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.thread.read(move |db| db.inbox_record(seq)).await
    }

    async fn remove_from_inbox(&self, seq: u64) -> Result<(), StorageError> {
        self.thread.apply(move |db| db.remove_from_inbox(seq)).await
    }

    async fn dead_letter(&self, seq: u64, reason: String, now_ms: u64) -> Result<(), StorageError> {
        self.thread
            .write(move |db| db.dead_letter(seq, &reason, now_ms))
            .await
    }

    async fn begin_recovery(&self) -> Result<u64, StorageError> {
        self.thread.apply(move |db| db.begin_recovery()).await
    }

    async fn count_restart(&self, seq: u64) -> Result<u32, StorageError> {
        self.thread.write(move |db| db.count_restart(seq)).await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StorageError> {
        self.thread.read(move |db| db.dead_letters(limit)).await
    }
}
