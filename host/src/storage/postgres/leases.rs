//! Which node works on which conversations.
//!
//! Conversations fall into a fixed number of partitions by a hash of their
//! key ([`partition_of`]). A node owns a partition while it holds the
//! partition's session advisory lock on its own dedicated connection: if
//! the node dies, PostgreSQL ends its session and the lock is free for
//! another node. Taking a partition bumps its `epoch` in
//! `partition_leases`; every turn's transaction checks, under `FOR SHARE`,
//! that the row still names this node and the epoch it took
//! ([`Leases::fence`]), so a node that lost a partition cannot commit for
//! it, and a takeover waits for the old owner's commit under way.
//!
//! Each node says it is alive every [`TICK`] (`nodes`, by the database's
//! clock, so the nodes' clocks do not matter) and aims at its fair share:
//! the partitions divided by the nodes seen in the last [`ALIVE_FOR`]. It
//! takes free partitions up to that share and lets go of those above it,
//! so a joining node gets work and a dead node's partitions move.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Transaction;
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::storage::StorageError;

/// How often a node says it is alive and rebalances.
pub const TICK: Duration = Duration::from_millis(500);
/// A node not heard from for this long no longer counts for fair shares.
const ALIVE_FOR_MS: i64 = 5_000;
/// The advisory-lock class of partition leases (the object is the partition).
const LEASE_CLASS: i32 = 0x666c_6f77;

/// The partition of a conversation key: FNV-1a, stable across versions
/// and machines.
pub fn partition_of(conversation: &str, partitions: u32) -> i32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in conversation.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as i32
}

/// This node's leases.
pub struct Leases {
    node: String,
    partitions: u32,
    /// Partition -> the epoch this node took it at.
    owned: RwLock<BTreeMap<i32, i64>>,
    /// Nodes seen alive in the last round.
    alive: AtomicUsize,
    /// Counts the rounds that gained partitions (readers of partitioned
    /// rows start again from the beginning when it moves).
    gained: AtomicU64,
    /// Where the other nodes reach this one, once the server listens.
    address: RwLock<Option<String>>,
}

impl Leases {
    pub fn new(node: String, partitions: u32) -> Self {
        Leases {
            node,
            partitions,
            owned: RwLock::new(BTreeMap::new()),
            alive: AtomicUsize::new(1),
            gained: AtomicU64::new(0),
            address: RwLock::new(None),
        }
    }

    /// Written with every round from now on.
    pub fn advertise(&self, address: String) {
        *self.address.write().expect("leases lock") = Some(address);
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn partition_of(&self, conversation: &str) -> i32 {
        partition_of(conversation, self.partitions)
    }

    pub fn owns(&self, conversation: &str) -> bool {
        let partition = self.partition_of(conversation);
        self.owned
            .read()
            .expect("leases lock")
            .contains_key(&partition)
    }

    /// The partitions this node owns now.
    pub fn owned(&self) -> Vec<i32> {
        self.owned
            .read()
            .expect("leases lock")
            .keys()
            .copied()
            .collect()
    }

    pub fn nodes_alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    /// Moves when partitions are gained, in the same step as they join
    /// `owned`. A reader that pages through partitioned rows by a cursor
    /// reads the generation before and after each page and, when it moved,
    /// drops the page and starts again from the beginning: the page may
    /// hold a gained partition's later rows before its earlier ones.
    pub fn generation(&self) -> u64 {
        self.gained.load(Ordering::SeqCst)
    }

    /// Fails the transaction's commit unless this node still owns the
    /// conversation's partition at the epoch it took it.
    pub async fn fence(
        &self,
        tx: &Transaction<'_>,
        conversation: &str,
    ) -> Result<(), StorageError> {
        let partition = self.partition_of(conversation);
        let epoch = self
            .owned
            .read()
            .expect("leases lock")
            .get(&partition)
            .copied();
        let Some(epoch) = epoch else {
            return Err(StorageError::NotOwner(partition));
        };
        let row = tx
            .query_opt(
                "SELECT 1 FROM partition_leases \
                 WHERE partition = $1 AND owner = $2 AND epoch = $3 FOR SHARE",
                &[&partition, &self.node, &epoch],
            )
            .await?;
        match row {
            Some(_) => Ok(()),
            None => {
                self.owned.write().expect("leases lock").remove(&partition);
                Err(StorageError::NotOwner(partition))
            }
        }
    }

    /// One round on the lease connection: say this node is alive, then take
    /// or let go of partitions towards the fair share. Returns how many
    /// this node owns after it, and the fair share.
    pub async fn round(&self, client: &Client) -> Result<(usize, usize), StorageError> {
        let now: i64 = client
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .await?
            .get(0);
        let address = self.address.read().expect("leases lock").clone();
        client
            .execute(
                "INSERT INTO nodes (id, seen_ms, address) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE \
                 SET seen_ms = EXCLUDED.seen_ms, address = EXCLUDED.address",
                &[&self.node, &now, &address],
            )
            .await?;
        let alive: i64 = client
            .query_one(
                "SELECT count(*) FROM nodes WHERE seen_ms > $1",
                &[&(now - ALIVE_FOR_MS)],
            )
            .await?
            .get(0);
        self.alive.store(alive.max(1) as usize, Ordering::Relaxed);
        let fair = (self.partitions as usize).div_ceil(alive.max(1) as usize);
        let owned = self.owned().len();
        if owned < fair {
            self.take(client, fair - owned).await?;
        } else if owned > fair {
            self.let_go(client, owned - fair).await?;
        }
        Ok((self.owned().len(), fair))
    }

    /// Takes up to `wanted` free partitions, starting at a place of this
    /// node's own so that nodes starting together do not all race for the
    /// same ones.
    async fn take(&self, client: &Client, wanted: usize) -> Result<(), StorageError> {
        let start = partition_of(&self.node, self.partitions);
        let mut taken = Vec::new();
        for step in 0..self.partitions as i32 {
            if taken.len() == wanted {
                break;
            }
            let partition = (start + step) % self.partitions as i32;
            if self
                .owned
                .read()
                .expect("leases lock")
                .contains_key(&partition)
            {
                continue;
            }
            let locked: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&LEASE_CLASS, &partition],
                )
                .await?
                .get(0);
            if !locked {
                continue;
            }
            let epoch: i64 = client
                .query_one(
                    "UPDATE partition_leases SET owner = $2, epoch = epoch + 1 \
                     WHERE partition = $1 RETURNING epoch",
                    &[&partition, &self.node],
                )
                .await?
                .get(0);
            taken.push((partition, epoch));
        }
        if taken.is_empty() {
            return Ok(());
        }
        // Owned and counted in one step, under the lock readers take: a
        // read that sees the new partitions finds the generation moved
        // when it looks again, and starts over (see `generation`).
        let mut owned = self.owned.write().expect("leases lock");
        owned.extend(taken.iter().copied());
        self.gained.fetch_add(1, Ordering::SeqCst);
        drop(owned);
        tracing::info!(node = %self.node, taken = taken.len(), "took partitions");
        Ok(())
    }

    /// Lets go of `extra` partitions: forgotten here first (no new work
    /// starts on them), then unlocked for the node that takes them.
    async fn let_go(&self, client: &Client, extra: usize) -> Result<(), StorageError> {
        let released: Vec<i32> = {
            let mut owned = self.owned.write().expect("leases lock");
            let last: Vec<i32> = owned.keys().rev().take(extra).copied().collect();
            for partition in &last {
                owned.remove(partition);
            }
            last
        };
        for partition in &released {
            client
                .execute(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&LEASE_CLASS, partition],
                )
                .await?;
        }
        tracing::info!(node = %self.node, released = released.len(), "let go of partitions");
        Ok(())
    }

    /// Believes it owns `partition` at `epoch` (tests: a node that has not
    /// noticed yet that it lost a partition).
    #[cfg(test)]
    pub(crate) fn assume(&self, partition: i32, epoch: i64) {
        self.owned
            .write()
            .expect("leases lock")
            .insert(partition, epoch);
    }

    /// Every lease is gone with the connection that held them.
    pub fn lose_all(&self) {
        self.owned.write().expect("leases lock").clear();
    }
}

/// What the notifications heard on the lease connection wake.
#[derive(Clone, Default)]
pub struct Wakes {
    /// Some node accepted inbound events (`NOTIFY flowhost_inbox`).
    pub inbox: Arc<Notify>,
    /// Some node appended to the agents' feed (`NOTIFY flowhost_feed`).
    pub feed: Arc<Notify>,
}

/// Opens the lease connection (outside the pool: it must live as long as
/// the leases it holds). It also listens for events accepted by any node
/// and for the agents' feed (`NOTIFY`, sent by the writing transaction)
/// and wakes `wakes` for each, so events reach their owner at once and
/// agents' streams on every node hear of them.
pub async fn connect(
    config: &tokio_postgres::Config,
    wakes: Wakes,
) -> Result<Client, StorageError> {
    let (client, mut connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) if note.channel() == "flowhost_feed" => {
                    wakes.feed.notify_one()
                }
                Ok(AsyncMessage::Notification(_)) => wakes.inbox.notify_one(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("the lease connection ended: {e}");
                    return;
                }
            }
        }
    });
    client
        .batch_execute("LISTEN flowhost_inbox; LISTEN flowhost_feed")
        .await?;
    Ok(client)
}

/// Keeps the leases until the task is aborted: a round every [`TICK`]; a
/// failed round drops the connection (and with it every lease) and opens
/// a new one.
pub async fn keep(
    leases: Arc<Leases>,
    config: tokio_postgres::Config,
    wakes: Wakes,
    mut client: Client,
) {
    loop {
        tokio::time::sleep(TICK).await;
        if let Err(e) = leases.round(&client).await {
            tracing::warn!("a lease round failed; leases dropped: {e}");
            leases.lose_all();
            drop(client);
            client = loop {
                match connect(&config, wakes.clone()).await {
                    Ok(client) => break client,
                    Err(e) => {
                        tracing::warn!("reconnecting the lease connection: {e}");
                        tokio::time::sleep(TICK).await;
                    }
                }
            };
        }
    }
}
