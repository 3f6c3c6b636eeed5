//! Analytics facts, in their own tree: time (u64 big-endian ms) + a unique
//! id (u64 big-endian) -> `Record` as JSON, so a period is one range scan.
//! Turns write them in their own transaction (`SledStore::commit_turn`).
//! Scans and pruning go in pages, so a year's report never holds the
//! storage thread (and the turns behind it) for long.

use super::sled_store::{SledStore, from_json, to_json};
use super::{Storage, StorageError, TurnCommit};
use crate::analytics::Record;

/// Facts read or removed per storage request.
const PAGE: usize = 2_000;

/// A fact's key and its record as JSON.
pub(super) type FactWrite = ([u8; 16], Vec<u8>);

pub(super) fn fact_key(at_ms: u64, id: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&at_ms.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

impl SledStore {
    /// The turn's facts as keys and records, for its transaction (ids are
    /// drawn first: sled's `generate_id` cannot run inside one).
    pub(super) fn fact_writes(
        &self,
        turn: &TurnCommit,
        now_ms: u64,
    ) -> Result<Vec<FactWrite>, StorageError> {
        let mut writes = Vec::with_capacity(turn.facts.len());
        for fact in &turn.facts {
            let record = Record {
                at_ms: now_ms,
                conversation: turn.conversation_id.clone(),
                fact: fact.clone(),
            };
            writes.push((fact_key(now_ms, self.db().generate_id()?), to_json(&record)));
        }
        Ok(writes)
    }

    /// Up to `PAGE` facts from `start` (a key, inclusive) to before `end_ms`;
    /// the key to go on from, when there are more.
    fn facts_page(
        &self,
        start: [u8; 16],
        end_ms: u64,
    ) -> Result<(Vec<Record>, Option<[u8; 16]>), StorageError> {
        let mut records = Vec::new();
        let end = fact_key(end_ms, 0);
        for entry in self.analytics.range(start..end) {
            let (key, value) = entry?;
            if records.len() == PAGE {
                let mut next = [0; 16];
                next.copy_from_slice(&key);
                return Ok((records, Some(next)));
            }
            records.push(from_json(&value, "an analytics fact")?);
        }
        Ok((records, None))
    }

    /// Removes up to `PAGE` facts older than `before_ms`; how many.
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

impl Storage {
    /// Calls `each` with every fact from `from_ms` to before `to_ms`, in
    /// time order, a page at a time.
    pub async fn each_fact(
        &self,
        from_ms: u64,
        to_ms: u64,
        mut each: impl FnMut(&Record),
    ) -> Result<(), StorageError> {
        let mut start = Some(fact_key(from_ms, 0));
        while let Some(from) = start {
            let (records, next) = self
                .thread
                .read(move |db| db.facts_page(from, to_ms))
                .await?;
            records.iter().for_each(&mut each);
            start = next;
        }
        Ok(())
    }

    /// Removes every fact older than `before_ms`; how many.
    pub async fn prune_facts(&self, before_ms: u64) -> Result<usize, StorageError> {
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
    use crate::analytics::Fact;

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

    /// More facts than a page, read back in order, a period at a time;
    /// pruning removes exactly the older ones.
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
        assert_eq!(removed, PAGE * 2);
        let left = facts(&storage, 0, u64::MAX).await;
        assert_eq!(left.len() as u64, (n - PAGE as u64) * 2);
        assert_eq!(left[0].0, 1_000 + PAGE as u64);
    }
}
