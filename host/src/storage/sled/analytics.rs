//! Analytics facts, in their own tree: time (u64 big-endian ms) + a unique
//! id (u64 big-endian) -> one turn's facts as JSON, so a period is one range
//! scan and a turn adds one key however many facts it has (sled's cost is
//! per key). Turns write them in their own transaction
//! (`SledStore::commit_turn`). Scans and pruning go in pages, so a year's
//! report never holds the storage thread (and the turns behind it) for long.

use serde::{Deserialize, Serialize};

use super::store::{SledStore, from_json, to_json};
use async_trait::async_trait;

use super::SledBackend;
use crate::model::fact::{Fact, Record};
use crate::storage::{Analytics, EachFact, StorageError, TurnCommit};

/// Turns' facts read or removed per storage request.
const PAGE: usize = 2_000;

/// A turn's facts' key and their record as JSON.
pub(super) type FactWrite = ([u8; 16], Vec<u8>);

/// One turn's facts, as stored.
#[derive(Serialize, Deserialize)]
struct TurnFacts {
    at_ms: u64,
    conversation: String,
    facts: Vec<Fact>,
}

pub(super) fn fact_key(at_ms: u64, id: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&at_ms.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

impl SledStore {
    /// The turn's facts as one key and record, for its transaction (the id
    /// is drawn first: sled's `generate_id` cannot run inside one); none
    /// when the turn has no facts.
    pub(super) fn fact_write(
        &self,
        turn: &TurnCommit,
        now_ms: u64,
    ) -> Result<Option<FactWrite>, StorageError> {
        if turn.facts.is_empty() {
            return Ok(None);
        }
        let record = TurnFacts {
            at_ms: now_ms,
            conversation: turn.conversation_id.clone(),
            facts: turn.facts.clone(),
        };
        let key = fact_key(now_ms, self.db().generate_id()?);
        Ok(Some((key, to_json(&record))))
    }

    /// The facts of up to `PAGE` turns from `start` (a key, inclusive) to
    /// before `end_ms`; the key to go on from, when there are more.
    fn facts_page(
        &self,
        start: [u8; 16],
        end_ms: u64,
    ) -> Result<(Vec<Record>, Option<[u8; 16]>), StorageError> {
        let mut records = Vec::new();
        let end = fact_key(end_ms, 0);
        for (read, entry) in self.analytics.range(start..end).enumerate() {
            let (key, value) = entry?;
            if read == PAGE {
                let mut next = [0; 16];
                next.copy_from_slice(&key);
                return Ok((records, Some(next)));
            }
            let turn: TurnFacts = from_json(&value, "a turn's analytics facts")?;
            records.extend(turn.facts.into_iter().map(|fact| Record {
                at_ms: turn.at_ms,
                conversation: turn.conversation.clone(),
                fact,
            }));
        }
        Ok((records, None))
    }

    /// Removes the facts of up to `PAGE` turns older than `before_ms`; how
    /// many turns'.
    fn prune_facts_page(&self, before_ms: u64) -> Result<usize, StorageError> {
        let end = fact_key(before_ms, 0);
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for entry in self.analytics.range(..end).keys().take(PAGE) {
            batch.remove(entry?);
            removed += 1;
        }
        self.analytics.apply_batch(batch)?;
        Ok(removed)
    }
}

#[async_trait]
impl Analytics for SledBackend {
    async fn each_fact(
        &self,
        from_ms: u64,
        to_ms: u64,
        each: &mut EachFact<'_>,
    ) -> Result<(), StorageError> {
        let mut start = Some(fact_key(from_ms, 0));
        while let Some(from) = start {
            let (records, next) = self
                .thread
                .read(move |db| db.facts_page(from, to_ms))
                .await?;
            records.iter().for_each(&mut *each);
            start = next;
        }
        Ok(())
    }

    async fn prune_facts(&self, before_ms: u64) -> Result<usize, StorageError> {
        let mut total = 0;
        loop {
            let removed = self
                .thread
                .apply(move |db| db.prune_facts_page(before_ms))
                .await?;
            total += removed;
            if removed < PAGE {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fact::Fact;
    use crate::storage::Storage;

    fn started(connector: &str) -> Fact {
        Fact::Started {
            connector: connector.into(),
        }
    }

    async fn commit(storage: &Storage, at_ms: u64, facts: Vec<Fact>) {
        let turn = TurnCommit {
            conversation_id: format!("a:c:{at_ms}"),
            facts,
            ..TurnCommit::default()
        };
        storage.commit_turn(turn, at_ms).await.unwrap();
    }

    async fn facts(storage: &Storage, from_ms: u64, to_ms: u64) -> Vec<(u64, Fact)> {
        let mut found = Vec::new();
        storage
            .each_fact(from_ms, to_ms, |r| found.push((r.at_ms, r.fact.clone())))
            .await
            .unwrap();
        found
    }

    /// More turns' facts than a page, read back in order, a period at a
    /// time; pruning removes exactly the older ones.
    #[tokio::test]
    async fn facts_are_read_by_period_across_pages_and_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let n = PAGE as u64 * 2 + 10;
        for at in 0..n {
            commit(&storage, 1_000 + at, vec![started("ig"), started("wa")]).await;
        }
        let all = facts(&storage, 0, u64::MAX).await;
        assert_eq!(all.len() as u64, n * 2);
        assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
        let some = facts(&storage, 1_100, 1_200).await;
        assert_eq!(some.len(), 200);
        assert_eq!((some[0].0, some[199].0), (1_100, 1_199));

        let removed = storage.prune_facts(1_000 + PAGE as u64).await.unwrap();
        assert_eq!(removed, PAGE, "the turns whose facts went");
        let left = facts(&storage, 0, u64::MAX).await;
        assert_eq!(left.len() as u64, (n - PAGE as u64) * 2);
        assert_eq!(left[0].0, 1_000 + PAGE as u64);
    }
}
