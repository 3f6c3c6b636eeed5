//! The shared store: PostgreSQL, for more than one machine.
//!
//! Every trait request is one statement or one transaction on a pooled
//! connection; a commit is durable when it returns (`synchronous_commit`
//! as the server has it, on by default), so there is no group commit of
//! our own: the server's WAL does it. A turn and a recorded send are the
//! exception, as in the sled store: they commit without waiting for the
//! flush ([`applied_only`]). Records are JSON text; the columns
//! beside them are what the hot paths look up or order by
//! (`schema/*.sql`, applied at start, in order, once).
//!
//! Three orders the sled store gets from its single thread (or has no use
//! for) are kept here by transaction-scoped advisory locks:
//! - **inbox sequences commit in order.** A reader pages the inbox by
//!   sequence; were a later sequence to commit before an earlier one, a
//!   page could skip the earlier event. Accepting events takes
//!   [`INBOX_LOCK`], so sequences become visible in order.
//! - **sends in doubt and echoes meet.** An echo and the send it confirms
//!   may be noted at the same moment on two connections; each takes
//!   [`ECHO_LOCK`], so one of them always sees the other.
//! - **feed ids commit in order**, for the same reason as inbox sequences
//!   ([`FEED_LOCK`], `feed.rs`).
//!
//! Several nodes may share the database: which node works on which
//! conversations, and how a node that lost them is kept from writing, is
//! in [`leases`].

mod agents;
mod analytics;
pub mod cluster;
mod conversations;
mod feed;
mod inbox;
pub mod leases;
mod outbox;
mod registry;
mod timers;
mod versions;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_postgres::NoTls;

use super::{Backlog, CommitStats, SharedFeed, StorageError, Store};
use leases::{Leases, Wakes};

/// Advisory lock keys (arbitrary, fixed): see the module docs.
const INBOX_LOCK: i64 = 0x666c_6f77_0001;
const ECHO_LOCK: i64 = 0x666c_6f77_0002;
const MIGRATION_LOCK: i64 = 0x666c_6f77_0003;
const FEED_LOCK: i64 = 0x666c_6f77_0004;

/// The schema, in order; a deployment applies those it has not yet.
const MIGRATIONS: &[&str] = &[
    include_str!("schema/001_initial.sql"),
    include_str!("schema/002_feed.sql"),
    include_str!("schema/003_node_address.sql"),
];

/// `storage: { postgres: ... }` in the server configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// A libpq connection string: `host=/run/postgresql dbname=flowhost`
    /// or `postgresql://flowhost@db.internal/flowhost`. No TLS: run it on a
    /// trusted network or a Unix socket.
    pub url: String,
    /// Connections in the pool.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    /// This node's name among the nodes sharing the database (default: the
    /// host's name). A restarted node that keeps its name takes its share
    /// at once; two nodes on one host need two names.
    #[serde(default)]
    pub node: Option<String>,
    /// The base URL the other nodes reach this one at, for agents' actions
    /// on conversations this node runs (default: `http://` and the address
    /// the server listens on, the host's name when that is 0.0.0.0).
    #[serde(default)]
    pub advertise_url: Option<String>,
}

fn default_connections() -> usize {
    16
}

/// The PostgreSQL store as the traits see it.
pub struct PostgresBackend {
    pool: Pool,
    leases: Arc<Leases>,
    /// Woken when any node accepted inbound events or appended to the feed.
    wakes: Wakes,
    /// The task that keeps the leases; aborted (and the leases freed with
    /// its connection) when the backend goes.
    keeper: tokio::task::AbortHandle,
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl PostgresBackend {
    /// Connects, brings the schema up to date and takes this node's share
    /// of the partitions.
    pub async fn connect(settings: &PostgresSettings) -> Result<Self, StorageError> {
        let config: tokio_postgres::Config = settings.url.parse()?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections.max(1))
            .build()
            .map_err(|e| StorageError::Pool(e.to_string()))?;
        migrate(&pool).await?;
        let partitions: i32 = client_of(&pool)
            .await?
            .query_one("SELECT partitions FROM flowhost_cluster", &[])
            .await?
            .get(0);
        let node = settings.node.clone().unwrap_or_else(host_name);
        let leases = Arc::new(Leases::new(node, partitions.max(1) as u32));
        let wakes = Wakes::default();
        let lease_client = leases::connect(&config, wakes.clone()).await?;
        take_first_share(&leases, &lease_client).await?;
        let keeper = leases::keep(leases.clone(), config, wakes.clone(), lease_client);
        Ok(PostgresBackend {
            pool,
            leases,
            wakes,
            keeper: tokio::spawn(keeper).abort_handle(),
        })
    }

    async fn client(&self) -> Result<Object, StorageError> {
        client_of(&self.pool).await
    }
}

async fn client_of(pool: &Pool) -> Result<Object, StorageError> {
    pool.get()
        .await
        .map_err(|e| StorageError::Pool(e.to_string()))
}

/// The host's name, the default node name.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "flowhost".into())
}

/// Rounds until this node owns its fair share, for at most 10 s: a node
/// that restarts finds its old session's locks freed a moment after the
/// old process died, and should not start with nothing to do.
async fn take_first_share(
    leases: &Leases,
    client: &tokio_postgres::Client,
) -> Result<(), StorageError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (owned, fair) = leases.round(client).await?;
        if owned >= fair || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies the migrations this database has not had, under a lock, so
/// nodes starting together apply each once.
async fn migrate(pool: &Pool) -> Result<(), StorageError> {
    let mut client = client_of(pool).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS flowhost_schema (version integer PRIMARY KEY)")
        .await?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM flowhost_schema", &[])
        .await?;
    let applied: i32 = row.get(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(sql).await?;
        let version = index as i32 + 1;
        tx.execute("INSERT INTO flowhost_schema VALUES ($1)", &[&version])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresBackend {
    async fn backlog(&self, cap: usize) -> Result<Backlog, StorageError> {
        let client = self.client().await?;
        let cap = count(cap);
        let depth = |table: &str| {
            format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT $1) AS capped")
        };
        let inbox: i64 = client.query_one(&depth("inbox"), &[&cap]).await?.get(0);
        let outbox: i64 = client.query_one(&depth("outbox"), &[&cap]).await?.get(0);
        let oldest = client
            .query_opt("SELECT record FROM inbox ORDER BY seq LIMIT 1", &[])
            .await?;
        Ok(Backlog {
            inbox: inbox as usize,
            outbox: outbox as usize,
            oldest_event: oldest.map(|row| row.get(0)),
        })
    }

    async fn size_on_disk(&self) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.client().await?.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    /// Every commit is durable when it returns: nothing to do.
    async fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn commit_stats(&self) -> CommitStats {
        CommitStats::default()
    }

    fn ownership_generation(&self) -> u64 {
        self.leases.generation()
    }

    fn owns(&self, conversation: &str) -> bool {
        self.leases.owns(conversation)
    }

    fn nodes_alive(&self) -> usize {
        self.leases.nodes_alive()
    }

    fn inbox_wake(&self) -> Option<Arc<Notify>> {
        Some(self.wakes.inbox.clone())
    }

    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        Some(self)
    }

    fn advertise(&self, address: String) {
        self.leases.advertise(address);
    }

    async fn owner_address(&self, conversation: &str) -> Result<Option<String>, StorageError> {
        let partition = self.leases.partition_of(conversation);
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT n.address FROM partition_leases l JOIN nodes n ON n.id = l.owner \
                 WHERE l.partition = $1 AND n.address IS NOT NULL",
                &[&partition],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }
}

/// Lets `tx` commit without waiting for its WAL flush, as the sled store
/// *applies* a turn or a recorded send rather than flushing it: visible at
/// once, durable with the next durable commit (WAL is flushed in order).
/// Safe for the same reason (module docs of `storage::sled`): nothing
/// leaves the process on the strength of such a write alone; a send
/// starts only after its in-flight mark's durable commit, which flushes
/// the turn that queued it. Only a crash of the database server can lose
/// one, and then the event it handled is still in the inbox.
async fn applied_only(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StorageError> {
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    Ok(())
}

/// A time or sequence as PostgreSQL's `bigint` (times past year 292 million
/// are clamped).
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `bigint` read back.
fn unbig(value: i64) -> u64 {
    value.max(0) as u64
}

/// A conversation key read back from its bytea column (the key holds a
/// zero byte, which a text column cannot).
fn conversation_key(bytes: &[u8]) -> String {
    text(bytes)
}

/// A string kept as bytea (it may hold a zero byte), read back.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `LIMIT`.
fn count(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialise to JSON")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt {
        key: what.to_string(),
        reason: e.to_string(),
    })
}

/// Reads column 0 of every row as a record.
fn records<T: serde::de::DeserializeOwned>(
    rows: &[tokio_postgres::Row],
    what: &str,
) -> Result<Vec<T>, StorageError> {
    rows.iter()
        .map(|row| from_json(row.get::<_, &str>(0), what))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, OnceLock};

    use super::cluster::LocalCluster;
    use super::{Leases, PostgresBackend, PostgresSettings};
    use crate::storage::conformance::{Opening, Reopen};
    use crate::storage::{Storage, StorageError};

    /// One private cluster for this test process.
    pub(crate) fn cluster() -> &'static LocalCluster {
        static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| LocalCluster::start().expect("starting a private PostgreSQL"))
    }

    /// A fresh, empty database.
    pub(crate) async fn fresh_database() -> PostgresSettings {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let url = cluster().create_database(&name).await.unwrap();
        PostgresSettings {
            url,
            max_connections: 4,
            node: Some("conformance".into()),
            advertise_url: None,
        }
    }

    async fn place() -> Box<dyn Reopen> {
        let settings = fresh_database().await;
        Box::new(move || -> Opening {
            let settings = settings.clone();
            Box::pin(async move {
                let backend = PostgresBackend::connect(&settings).await.unwrap();
                Storage::over(Arc::new(backend))
            })
        })
    }

    mod conformance {
        crate::conformance_tests!(super::place);
    }

    async fn node(settings: &PostgresSettings, name: &str) -> (Storage, Arc<Leases>) {
        let settings = PostgresSettings {
            node: Some(name.into()),
            ..settings.clone()
        };
        let backend = PostgresBackend::connect(&settings).await.unwrap();
        let leases = backend.leases.clone();
        (Storage::over(Arc::new(backend)), leases)
    }

    /// A hold request cut short while it waits (an agent's request whose
    /// client went away) must not leave the agent held: the lock could be
    /// granted on its connection after the request was dropped.
    #[tokio::test]
    async fn a_hold_given_up_while_waiting_leaves_the_agent_free() {
        let settings = fresh_database().await;
        let (storage, _) = node(&settings, "a").await;
        let held = storage.hold_agent("ana").await.unwrap();
        let wait = std::time::Duration::from_millis(300);
        let given_up = tokio::time::timeout(wait, storage.hold_agent("ana")).await;
        assert!(given_up.is_err(), "the second hold waits for the first");
        held.release().await;
        // Every connection of the pool in turn: none may still hold ana.
        for _ in 0..settings.max_connections * 2 {
            let wait = std::time::Duration::from_secs(5);
            let again = tokio::time::timeout(wait, storage.hold_agent("ana")).await;
            let again = again.expect("ana is free again").unwrap();
            let other = tokio::spawn({
                let storage = storage.clone();
                async move { storage.hold_agent("ana").await.unwrap().release().await }
            });
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            again.release().await;
            tokio::time::timeout(wait, other)
                .await
                .expect("a hold on another connection follows")
                .unwrap();
        }
    }

    /// Issue 14, item 4: what any node publishes reaches every node's feed,
    /// in one order, so a stream resumes on another node where it was, and a
    /// node that starts later can resume streams from before it started.
    #[tokio::test]
    async fn every_node_s_feed_carries_every_node_s_events_in_one_order() {
        use crate::engine::feed::{Feed, News, Resume};
        let settings = fresh_database().await;
        let (stop_relays, stop) = tokio::sync::watch::channel(false);
        let mut feeds = Vec::new();
        for name in ["a", "b"] {
            let feed = Arc::new(Feed::for_store(&node(&settings, name).await.0));
            tokio::spawn(feed.clone().relay(stop.clone()));
            feeds.push(feed);
        }
        let mut live: Vec<_> = feeds.iter().map(|feed| feed.subscribe(None).1).collect();
        let publishing = (0..20u64).map(|n| {
            let feed = feeds[n as usize % 2].clone();
            async move {
                let news = News {
                    kind: "message",
                    agents: vec!["ana".into()],
                    queue: Some("sales".into()),
                    data: serde_json::json!(n),
                };
                feed.publish(news).await
            }
        });
        futures::future::join_all(publishing).await;
        let mut seen = [Vec::new(), Vec::new()];
        for (events, live) in seen.iter_mut().zip(&mut live) {
            while events.len() < 20 {
                let wait = std::time::Duration::from_secs(10);
                let event = tokio::time::timeout(wait, live.recv()).await;
                let event = event.expect("every event arrives").unwrap();
                events.push((event.id, event.data.as_u64().unwrap()));
            }
        }
        assert_eq!(seen[0], seen[1], "both nodes in one order");
        assert!(seen[0].windows(2).all(|w| w[0].0 < w[1].0));
        let mut published: Vec<u64> = seen[0].iter().map(|e| e.1).collect();
        published.sort();
        assert_eq!(published, (0..20).collect::<Vec<_>>());

        // A stream that saw ten events on a resumes on b with the rest.
        let ids: Vec<u64> = seen[0].iter().map(|e| e.0).collect();
        let (Resume::From(rest), _) = feeds[1].subscribe(Some(ids[9])) else {
            panic!("expected a resume on the other node");
        };
        assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), ids[10..]);

        // A node started now resumes it too, once its relay has read the
        // shared feed; before that it asks for a resync, never a gap.
        let late = Arc::new(Feed::for_store(&node(&settings, "c").await.0));
        assert!(matches!(late.subscribe(Some(ids[9])).0, Resume::Resync));
        tokio::spawn(late.clone().relay(stop.clone()));
        let mut resumed = Vec::new();
        for _ in 0..100 {
            if let Resume::From(rest) = late.subscribe(Some(ids[9])).0 {
                resumed = rest.iter().map(|e| e.id).collect();
                if resumed.len() == 10 {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(resumed, ids[10..]);
        stop_relays.send(true).unwrap();
    }

    fn event(customer: &str) -> crate::storage::InboundEvent {
        crate::storage::InboundEvent {
            dedupe_key: customer.into(),
            conversation: format!("acct\0{customer}"),
            record: customer.as_bytes().to_vec(),
        }
    }

    /// Two nodes split the partitions; each reads only its own partitions'
    /// events; a node that still believes it owns a partition another node
    /// took over cannot commit a turn for it (the epoch check), and one that
    /// lost it cannot start a send for it.
    #[tokio::test]
    async fn a_node_whose_partition_was_taken_over_cannot_commit() {
        let settings = fresh_database().await;
        let (a, a_leases) = node(&settings, "a").await;
        let (b, b_leases) = node(&settings, "b").await;
        // b's first rounds wait for a to let go of b's share.
        let (owned_a, owned_b) = (a_leases.owned(), b_leases.owned());
        assert_eq!(owned_a.len() + owned_b.len(), 32, "{owned_a:?} {owned_b:?}");
        assert!(owned_a.iter().all(|p| !owned_b.contains(p)));
        assert_eq!(owned_b.len(), 16, "b took its fair share");

        // Customers on b's partitions: b reads their events, a does not.
        let on_b: Vec<String> = (0..200)
            .map(|i| format!("c{i}"))
            .filter(|c| owned_b.contains(&b_leases.partition_of(&format!("acct\0{c}"))))
            .take(3)
            .collect();
        let events = on_b.iter().map(|c| event(c)).collect();
        assert_eq!(a.accept_inbound(events, 1).await.unwrap(), 3);
        assert!(a.inbox(None, 10).await.unwrap().is_empty());
        let waiting = b.inbox(None, 10).await.unwrap();
        assert_eq!(waiting.len(), 3);

        // a believes it still owns the first customer's partition, at the
        // epoch before b's: its turn is refused, b's commits.
        let conversation = format!("acct\0{}", on_b[0]);
        let partition = a_leases.partition_of(&conversation);
        a_leases.assume(partition, 1);
        let state = crate::model::ConversationState::new(
            "acct",
            crate::model::Contact {
                id: on_b[0].clone(),
                ..Default::default()
            },
            1,
            "en",
            0,
        );
        let turn = || crate::storage::TurnCommit {
            state: Some(state.clone()),
            conversation_id: state.id(),
            inbox_remove: vec![waiting[0].0],
            ..Default::default()
        };
        let refused = a.commit_turn(turn(), 5).await.unwrap_err();
        assert!(
            matches!(refused, StorageError::NotOwner(p) if p == partition),
            "{refused}"
        );
        b.commit_turn(turn(), 5).await.unwrap();
        assert_eq!(
            a.conversation(&state.key()).await.unwrap(),
            Some(state.clone())
        );
        // The same event again (read twice while partitions moved): dropped.
        let again = b.commit_turn(turn(), 6).await.unwrap_err();
        assert!(matches!(again, StorageError::AlreadyHandled), "{again}");
    }
}
