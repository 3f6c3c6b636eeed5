//! Analytics facts on PostgreSQL: one row per turn in `analytics`, by time;
//! read and pruned a page at a time.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};

use super::{PostgresBackend, big, count, from_json, to_json, unbig};
use crate::model::fact::{Fact, Record};
use crate::storage::{Analytics, EachFact, StorageError, TurnCommit};

/// Turns' facts read or removed per statement.
const PAGE: usize = 2_000;

/// One turn's facts, as stored.
#[derive(Serialize, Deserialize)]
struct TurnFacts {
    conversation: String,
    facts: Vec<Fact>,
}

#[async_trait]
impl Analytics for PostgresBackend {
    async fn each_fact(
        &self,
        from_ms: u64,
        to_ms: u64,
        each: &mut EachFact<'_>,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        let (mut at, mut after_id) = (big(from_ms), 0_i64);
        loop {
            let rows = client
                .query(
                    "SELECT id, at_ms, record FROM analytics \
                     WHERE (at_ms, id) > ($1, $2) AND at_ms < $3 \
                     ORDER BY at_ms, id LIMIT $4",
                    &[&at, &after_id, &big(to_ms), &count(PAGE)],
                )
                .await?;
            for row in &rows {
                (after_id, at) = (row.get(0), row.get(1));
                let turn: TurnFacts = from_json(row.get(2), "a turn's analytics facts")?;
                for fact in turn.facts {
                    each(&Record {
                        at_ms: unbig(at),
                        conversation: turn.conversation.clone(),
                        fact,
                    });
                }
            }
            if rows.len() < PAGE {
                return Ok(());
            }
        }
    }

    async fn prune_facts(&self, before_ms: u64) -> Result<usize, StorageError> {
        let client = self.client().await?;
        let mut total = 0;
        loop {
            let removed = client
                .execute(
                    "DELETE FROM analytics WHERE id IN \
                     (SELECT id FROM analytics WHERE at_ms < $1 LIMIT $2)",
                    &[&big(before_ms), &count(PAGE)],
                )
                .await? as usize;
            total += removed;
            if removed < PAGE {
                return Ok(total);
            }
        }
    }
}

/// A turn's facts, one row, in the turn's transaction.
pub(super) async fn write_facts(
    tx: &Transaction<'_>,
    turn: &TurnCommit,
    now_ms: u64,
) -> Result<(), StorageError> {
    if turn.facts.is_empty() {
        return Ok(());
    }
    let record = TurnFacts {
        conversation: turn.conversation_id.clone(),
        facts: turn.facts.clone(),
    };
    tx.execute(
        "INSERT INTO analytics (at_ms, record) VALUES ($1, $2)",
        &[&big(now_ms), &to_json(&record)],
    )
    .await?;
    Ok(())
}
