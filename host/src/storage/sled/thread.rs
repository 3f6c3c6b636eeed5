//! The storage thread and the group-commit flusher (design in the parent
//! module's docs).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::{mpsc as async_mpsc, oneshot};

use super::SledStore;
use crate::storage::{CommitStats, StorageError};

/// Requests waiting for the storage thread; past this, callers wait.
const QUEUE: usize = 1024;
/// Durable writes waiting for the flusher; past this, the storage thread
/// waits (and so, through the queue above, do callers).
const FLUSH_QUEUE: usize = 4096;

/// Told the outcome of the flush that made a write durable.
pub(super) type Waiter = Box<dyn FnOnce(Result<(), String>) + Send>;
/// One request: runs on the storage thread; a durable write hands back
/// the waiter to answer once flushed.
type Job = Box<dyn FnOnce(&SledStore) -> Option<Waiter> + Send>;

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    durable_writes: AtomicU64,
    largest_batch: AtomicU64,
    requests: AtomicU64,
}

#[derive(Clone)]
pub(super) struct StorageThread {
    // Declared (and so dropped) before `_threads`: the last handle's sender
    // is gone, ending the storage thread's queue, before the join.
    jobs: async_mpsc::Sender<Job>,
    counters: Arc<Counters>,
    _threads: Arc<Threads>,
}

/// Joins both threads when the last handle goes, so the database is closed
/// (and its lock released) when the last `Storage` is dropped.
struct Threads {
    storage: Option<std::thread::JoinHandle<()>>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        for thread in [self.storage.take(), self.flusher.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
    }
}

impl StorageThread {
    /// Starts both threads; they end when the last handle is dropped,
    /// after a final flush.
    pub fn start(store: SledStore) -> Result<Self, StorageError> {
        let (jobs, queue) = async_mpsc::channel::<Job>(QUEUE);
        let (to_flusher, flush_queue) = mpsc::sync_channel::<Waiter>(FLUSH_QUEUE);
        let counters = Arc::new(Counters::default());
        let db = store.db();
        let flusher_counters = counters.clone();
        let flusher = std::thread::Builder::new()
            .name("storage-flush".into())
            .spawn(move || flush_loop(db, flush_queue, &flusher_counters))
            .map_err(|e| StorageError::Flush(format!("starting the flusher: {e}")))?;
        let storage = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || serve(store, queue, to_flusher))
            .map_err(|e| StorageError::Flush(format!("starting the storage thread: {e}")))?;
        let threads = Threads {
            storage: Some(storage),
            flusher: Some(flusher),
        };
        Ok(StorageThread {
            jobs,
            counters,
            _threads: Arc::new(threads),
        })
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            flushes: self.counters.flushes.load(Ordering::Relaxed),
            durable_writes: self.counters.durable_writes.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` on the storage thread and returns its result.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&SledStore) -> Result<T, StorageError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.submit(Box::new(move |store| {
            let _ = answer.send(f(store));
            None
        }))
        .await?;
        answered.await.map_err(|_| StorageError::Stopped)?
    }

    /// Runs a write on the storage thread and returns at once, before it is
    /// durable: later reads see it, and the next durable write's flush
    /// covers it (one thread applies both in order).
    pub async fn apply<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&SledStore) -> Result<T, StorageError> + Send + 'static,
    {
        self.read(f).await
    }

    /// Runs `f` on the storage thread and returns its result once a flush
    /// has made it durable (a failed `f` is answered at once).
    pub async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&SledStore) -> Result<T, StorageError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.submit(Box::new(move |store| match f(store) {
            Ok(value) => Some(Box::new(move |flushed: Result<(), String>| {
                let _ = answer.send(flushed.map(|()| value).map_err(StorageError::Flush));
            }) as Waiter),
            Err(e) => {
                let _ = answer.send(Err(e));
                None
            }
        }))
        .await?;
        answered.await.map_err(|_| StorageError::Stopped)?
    }

    /// Runs `job` on the storage thread; the waiter it returns, if any, is
    /// told the outcome of the flush that made its writes durable (for a
    /// request that answers its callers itself).
    pub async fn run_durable<F>(&self, job: F) -> Result<(), StorageError>
    where
        F: FnOnce(&SledStore) -> Option<Waiter> + Send + 'static,
    {
        self.submit(Box::new(job)).await
    }

    async fn submit(&self, job: Job) -> Result<(), StorageError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).await.map_err(|_| StorageError::Stopped)
    }
}

/// The storage thread: runs requests one at a time, passing durable
/// writes on to the flusher.
fn serve(
    store: SledStore,
    mut queue: async_mpsc::Receiver<Job>,
    flusher: mpsc::SyncSender<Waiter>,
) {
    while let Some(job) = queue.blocking_recv() {
        match catch_unwind(AssertUnwindSafe(|| job(&store))) {
            Ok(Some(waiter)) => {
                if flusher.send(waiter).is_err() {
                    tracing::error!("storage: the flusher has stopped; writes are not durable");
                }
            }
            Ok(None) => {}
            // The job's answer channel was dropped while unwinding, so its
            // caller gets `StorageError::Stopped`; the thread carries on.
            Err(_) => tracing::error!("storage: a request panicked on the storage thread"),
        }
    }
}

/// The flusher: one `flush` answers every durable write waiting when it
/// began (group commit).
fn flush_loop(db: sled::Db, queue: mpsc::Receiver<Waiter>, counters: &Counters) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let outcome = db.flush().map(|_| ()).map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::error!("storage: flush failed: {e}");
        }
        let size = batch.len() as u64;
        counters.flushes.fetch_add(1, Ordering::Relaxed);
        counters.durable_writes.fetch_add(size, Ordering::Relaxed);
        counters.largest_batch.fetch_max(size, Ordering::Relaxed);
        for waiter in batch {
            waiter(outcome.clone());
        }
    }
    // Every handle is gone: one last flush for writes nobody waited on.
    if let Err(e) = db.flush() {
        tracing::error!("storage: final flush failed: {e}");
    }
}
