//! The agents' feed on PostgreSQL: `feed_events`.
//!
//! Appending takes [`FEED_LOCK`] before the id is drawn and holds it to the
//! commit, so ids become visible in order, as inbox sequences do: a node
//! reading the events after the last id it saw never skips one that
//! commits later. Each append sends `NOTIFY flowhost_feed`, heard on the
//! lease connection (`leases.rs`), which wakes every node's reader.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{FEED_LOCK, PostgresBackend, big, count, from_json, to_json, unbig};
use crate::model::feed::FeedEvent;
use crate::storage::{SharedFeed, StorageError};

#[async_trait]
impl SharedFeed for PostgresBackend {
    async fn append_feed(&self, event: &FeedEvent, now_ms: u64) -> Result<u64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Telling agents is not worth a WAL flush: an event a database
        // crash loses is one the consoles reload anyway.
        super::applied_only(&tx).await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
            .await?;
        let row = tx
            .query_one(
                "INSERT INTO feed_events (at_ms, record) VALUES ($1, $2) RETURNING id",
                &[&big(now_ms), &to_json(event)],
            )
            .await?;
        tx.batch_execute("NOTIFY flowhost_feed").await?;
        tx.commit().await?;
        Ok(unbig(row.get(0)))
    }

    async fn feed_after(&self, id: u64, limit: usize) -> Result<Vec<FeedEvent>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, record FROM feed_events WHERE id > $1 ORDER BY id LIMIT $2",
                &[&big(id), &count(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let mut event: FeedEvent = from_json(row.get(1), "feed event")?;
                event.id = unbig(row.get(0));
                Ok(event)
            })
            .collect()
    }

    async fn feed_head(&self) -> Result<u64, StorageError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT coalesce(max(id), 0) FROM feed_events", &[])
            .await?;
        Ok(unbig(row.get(0)))
    }

    async fn prune_feed(&self, before_ms: u64) -> Result<u64, StorageError> {
        let pruned = self
            .client()
            .await?
            .execute(
                "DELETE FROM feed_events WHERE at_ms < $1",
                &[&big(before_ms)],
            )
            .await?;
        Ok(pruned)
    }

    fn feed_wake(&self) -> Arc<Notify> {
        self.wakes.feed.clone()
    }
}
