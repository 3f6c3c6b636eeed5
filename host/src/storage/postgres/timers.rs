//! Timers on PostgreSQL: `timers`, indexed by due time.

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::leases::Leases;
use super::{PostgresBackend, big, count, records, to_json, unbig};
use crate::model::Timer;
use crate::storage::{StorageError, Timers, TurnCommit};

#[async_trait]
impl Timers for PostgresBackend {
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<Timer>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM timers WHERE due_ms <= $1 AND partition = ANY($2) \
                 ORDER BY due_ms, id LIMIT $3",
                &[&big(now_ms), &self.leases.owned(), &count(limit)],
            )
            .await?;
        records(&rows, "timer")
    }

    async fn next_timer_due(&self) -> Result<Option<u64>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(due_ms) FROM timers WHERE partition = ANY($1)",
                &[&self.leases.owned()],
            )
            .await?;
        Ok(row.get::<_, Option<i64>>(0).map(unbig))
    }
}

/// A turn's timer changes: those it ended go, those it set come.
pub(super) async fn write_timers(
    tx: &Transaction<'_>,
    leases: &Leases,
    turn: &TurnCommit,
) -> Result<(), StorageError> {
    for timer in &turn.timers_remove {
        tx.execute("DELETE FROM timers WHERE id = $1", &[&timer.id])
            .await?;
    }
    for timer in &turn.timers_add {
        tx.execute(
            "INSERT INTO timers (id, partition, due_ms, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET due_ms = EXCLUDED.due_ms, record = EXCLUDED.record",
            &[
                &timer.id,
                &leases.partition_of(&timer.conversation),
                &big(timer.due_ms),
                &to_json(timer),
            ],
        )
        .await?;
    }
    Ok(())
}
