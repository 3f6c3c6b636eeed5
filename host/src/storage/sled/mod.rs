//! The embedded store: sled, in one data directory.
//!
//! # Concurrency design
//!
//! sled 0.34 deadlocks when it is used concurrently in ways flowhost needs:
//! concurrent `flush_async` calls hang forever (spacejam/sled#1308, fixed
//! only on sled's unreleased main), a range scan racing a transaction can
//! hang both (spacejam/sled#1301), and gets and inserts from many threads
//! have been reported to deadlock under load (spacejam/sled#1412). Under
//! concurrent webhooks flowhost hit the first one: tokio workers blocked in
//! `TransactionalTrees::stage` while sled's I/O threads waited in
//! `iobuf::flush`, and nothing answered again.
//!
//! So sled is never called from two of our threads at once, and never from
//! an async worker:
//! - **one storage thread** owns the [`SledStore`] and runs every request
//!   (reads, scans, transactions) in arrival order. Callers send a closure
//!   over a bounded channel and await its answer; a full channel is
//!   back-pressure, not a growing queue;
//! - **one flusher thread** makes writes durable by *group commit*: a
//!   request that must be durable (a webhook's inbox write, a turn, a send
//!   marker) is answered only after a `flush` that began after it was
//!   applied. The flusher takes every such request waiting when it starts,
//!   calls `flush` once, and answers all of them, so N concurrent webhooks
//!   share one fsync. sled's own periodic flusher is off
//!   (`flush_every_ms(None)`), so this is the only thread that flushes;
//!   `flush` running beside the storage thread's writes is sled's ordinary
//!   mode (its background flusher does the same). sled itself is patched
//!   to wake one of its I/O threads per log write rather than all seven
//!   (`vendor/sled/PATCHED.md`);
//! - **as few sled transactions as atomicity allows**: every one writes the
//!   log buffer out twice (`PageCache::pin_log`), an I/O thread's `pwrite`
//!   and `sync_file_range` each time. Turns that wait together share one
//!   transaction (`together.rs`). An accept and a recorded send need none:
//!   their writes go in an order whose every prefix a crash may keep is
//!   safe, the accept's with a repair at the next open (`inbox_entry.rs`,
//!   `SledStore::record_sent`). Accepts that wait together share one
//!   request and its flush.
//!
//! Records are zstd-compressed in new data directories (`compression`):
//! the storage thread compresses what it writes, at most a few percent more
//! CPU for a third of the bytes on disk and less than half of those written.
//!
//! Reads see every write made before them (one thread applies both in
//! order). Only two kinds of write wait for a flush, because only they
//! guard something that leaves the process: accepting a webhook's events
//! (the 2xx tells the channel not to deliver again) and marking a send in
//! flight (the request tells the customer). Every other write (a turn, a
//! recorded send) is *applied*: visible at once, durable with the next
//! flush. That is safe because a flush makes durable everything applied
//! before it: a reply is sent only after its in-flight mark is flushed, and
//! so after the turn that queued it. A crash loses only applied writes
//! whose effects never left: their events are still in the inbox and run
//! again, and a send whose record was lost is still marked in flight and
//! settled as a send in doubt.

mod agents;
mod analytics;
mod compression;
mod connections;
mod conversations;
mod inbox;
mod inbox_entry;
mod outbox;
mod plugins;
mod store;
mod thread;
mod timers;
mod together;
mod versions;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;

use super::{Backlog, CommitStats, StorageError, Store};
pub use store::SledStore;
use thread::StorageThread;
use together::Together;

use crate::storage::{InboundEvent, TurnCommit};

/// How the embedded store is opened.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Whether a new data directory's records are compressed (an existing
    /// one keeps its own choice; see `compression`).
    pub compress_new: bool,
}

impl SledOptions {
    /// A page cache of `cache_bytes`, new directories compressed.
    pub fn cache(cache_bytes: u64) -> Self {
        SledOptions {
            cache_bytes,
            compress_new: true,
        }
    }
}

/// Runs `open` until it finds the directory unlocked: sled's I/O threads
/// may hold the lock for a moment after the last handle is dropped (a
/// restarted process would find it free).
#[cfg(test)]
fn when_unlocked<T>(open: impl Fn() -> Result<T, StorageError>) -> T {
    let started = std::time::Instant::now();
    loop {
        match open() {
            Ok(opened) => return opened,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                assert!(started.elapsed().as_secs() < 30, "{e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// The sled store as the traits see it: requests go to its storage thread.
pub struct SledBackend {
    thread: StorageThread,
    /// Webhooks' accepts waiting to be applied together (durably).
    accepts: Together<(Vec<InboundEvent>, u64), usize>,
    /// Turns waiting to be applied together.
    turns: Together<(TurnCommit, u64), ()>,
    /// Whether a send may be in doubt (kept by the storage thread).
    settling_any: Arc<AtomicBool>,
}

impl SledBackend {
    /// Opens (or creates) the database in `dir` and starts its threads.
    pub fn open(dir: &Path, options: &SledOptions) -> Result<Self, StorageError> {
        let store = SledStore::open(dir, options)?;
        Ok(SledBackend {
            settling_any: store.settling_flag(),
            thread: StorageThread::start(store)?,
            accepts: Together::new(
                SledStore::accept_together,
                |store, accept| Ok(store.accept_together(std::slice::from_ref(accept))?[0]),
                true,
            ),
            turns: Together::new(
                |store, turns| {
                    store.commit_turns(turns)?;
                    Ok(vec![(); turns.len()])
                },
                |store, turn| store.commit_turns(std::slice::from_ref(turn)),
                false,
            ),
        })
    }
}

#[async_trait]
impl Store for SledBackend {
    async fn backlog(&self, cap: usize) -> Result<Backlog, StorageError> {
        self.thread.read(move |db| db.backlog(cap)).await
    }

    async fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.thread
            .read(|store| Ok(store.db().size_on_disk()?))
            .await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.thread.read(|_| Ok(())).await
    }

    async fn flush(&self) -> Result<(), StorageError> {
        self.thread.write(|_| Ok(())).await
    }

    fn commit_stats(&self) -> CommitStats {
        self.thread.stats()
    }
}

#[cfg(test)]
mod conformance {
    use std::path::Path;
    use std::sync::Arc;

    use crate::storage::Storage;
    use crate::storage::conformance::{Opening, Reopen};

    /// A fresh directory; each reopen opens the store there.
    async fn place() -> Box<dyn Reopen> {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Box::new(move || -> Opening {
            let dir = dir.clone();
            Box::pin(async move { reopen(dir.path()) })
        })
    }

    /// Opens the store in `dir` as a restarted process would.
    fn reopen(dir: &Path) -> Storage {
        super::when_unlocked(|| Storage::open(dir))
    }

    crate::conformance_tests!(place);
}
