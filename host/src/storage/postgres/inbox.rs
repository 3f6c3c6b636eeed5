//! The inbox on PostgreSQL: `inbox`, `seen`, `dead_letters`, `restarts`.

use async_trait::async_trait;

use super::{INBOX_LOCK, PostgresBackend, big, count, records, to_json, unbig};
use crate::storage::{DeadLetter, InboundEvent, Inbox, SeenKey, StorageError};

#[async_trait]
impl Inbox for PostgresBackend {
    async fn accept_inbound(
        &self,
        events: Vec<InboundEvent>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INBOX_LOCK])
            .await?;
        let remember = tx
            .prepare_cached("INSERT INTO seen (key, at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .await?;
        let append = tx
            .prepare_cached(
                "INSERT INTO inbox (partition, record, accepted_ms) VALUES ($1, $2, $3)",
            )
            .await?;
        let now = big(now_ms);
        let mut accepted = 0;
        for event in &events {
            let key = event.dedupe_key.as_bytes();
            if tx.execute(&remember, &[&key, &now]).await? == 1 {
                let partition = self.leases.partition_of(&event.conversation);
                tx.execute(&append, &[&partition, &event.record, &now])
                    .await?;
                accepted += 1;
            }
        }
        if accepted > 0 {
            // Delivered at commit, to every node listening (leases.rs).
            tx.batch_execute("NOTIFY flowhost_inbox").await?;
        }
        tx.commit().await?;
        Ok(accepted)
    }

    async fn expire_seen(&self, cutoff_ms: u64, limit: usize) -> Result<usize, StorageError> {
        let client = self.client().await?;
        let expired = client
            .execute(
                "DELETE FROM seen WHERE key IN \
                 (SELECT key FROM seen WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
                &[&big(cutoff_ms), &count(limit)],
            )
            .await?;
        Ok(expired as usize)
    }

    async fn seen_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SeenKey>, StorageError> {
        let client = self.client().await?;
        // bytea compares byte by byte: the order sled keeps them in.
        let after = after.map(str::as_bytes);
        let rows = client
            .query(
                "SELECT key, at_ms FROM seen WHERE $1::bytea IS NULL OR key > $1 \
                 ORDER BY key LIMIT $2",
                &[&after, &count(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| SeenKey {
                key: String::from_utf8_lossy(row.get::<_, &[u8]>(0)).into_owned(),
                at_ms: unbig(row.get(1)),
            })
            .collect())
    }

    async fn remember_seen(&self, keys: Vec<SeenKey>) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let remember = tx
            .prepare_cached("INSERT INTO seen (key, at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .await?;
        for seen in &keys {
            tx.execute(&remember, &[&seen.key.as_bytes(), &big(seen.at_ms)])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn inbox(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let client = self.client().await?;
        let after = after.map_or(-1, big);
        let rows = client
            .query(
                "SELECT seq, record FROM inbox WHERE seq > $1 AND partition = ANY($2) \
                 ORDER BY seq LIMIT $3",
                &[&after, &self.leases.owned(), &count(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (unbig(row.get(0)), row.get(1)))
            .collect())
    }

    async fn inbox_record(&self, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM inbox WHERE seq = $1", &[&big(seq)])
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn remove_from_inbox(&self, seq: u64) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM inbox WHERE seq = $1", &[&big(seq)])
            .await?;
        Ok(())
    }

    async fn dead_letter(&self, seq: u64, reason: String, now_ms: u64) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let removed = tx
            .query_opt(
                "DELETE FROM inbox WHERE seq = $1 RETURNING record",
                &[&big(seq)],
            )
            .await?;
        if let Some(row) = removed {
            let record: Vec<u8> = row.get(0);
            let letter = DeadLetter {
                seq,
                record: String::from_utf8_lossy(&record).into_owned(),
                reason,
                at_ms: now_ms,
            };
            tx.execute(
                "INSERT INTO dead_letters (seq, record) VALUES ($1, $2) \
                 ON CONFLICT (seq) DO UPDATE SET record = EXCLUDED.record",
                &[&big(seq), &to_json(&letter)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn begin_recovery(&self) -> Result<u64, StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM restarts WHERE NOT EXISTS \
                 (SELECT 1 FROM inbox WHERE inbox.seq = restarts.seq)",
                &[],
            )
            .await?;
        let row = client
            .query_one("SELECT coalesce(max(seq) + 1, 0) FROM inbox", &[])
            .await?;
        Ok(unbig(row.get(0)))
    }

    async fn count_restart(&self, seq: u64) -> Result<u32, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO restarts (seq, runs) VALUES ($1, 1) \
                 ON CONFLICT (seq) DO UPDATE SET runs = restarts.runs + 1 RETURNING runs",
                &[&big(seq)],
            )
            .await?;
        Ok(row.get::<_, i32>(0).max(0) as u32)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM dead_letters ORDER BY seq LIMIT $1",
                &[&count(limit)],
            )
            .await?;
        records(&rows, "dead letter")
    }
}
