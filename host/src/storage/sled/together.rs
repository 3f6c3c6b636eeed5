//! Writes applied together. sled writes its log buffer out twice for every
//! transaction (`pin_log`): an I/O thread's wake-up, a `pwrite` and a
//! `sync_file_range` each time, whatever the transaction's size. So turns
//! that wait for the storage thread at the same moment go in one
//! transaction; and webhooks' accepts (no transaction: see `inbox_entry`)
//! that wait together go in one request and share its flush. The first
//! caller queues a request for the thread, and the callers after it, until
//! the thread takes the lot, join that request. Each caller still hears
//! its own outcome, once the write is applied or, for a durable kind, once
//! the flush after it returns.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::SledStore;
use super::thread::{StorageThread, Waiter};
use crate::storage::StorageError;

/// Applies several writes in order (in one transaction, for a kind that
/// needs one); an outcome each.
pub(super) type ApplyAll<W, T> = fn(&SledStore, &[W]) -> Result<Vec<T>, StorageError>;
/// Applies one write alone.
pub(super) type ApplyOne<W, T> = fn(&SledStore, &W) -> Result<T, StorageError>;

type Answer<T> = oneshot::Sender<Result<T, StorageError>>;
/// Writes waiting, each with where its outcome goes.
type Waiting<W, T> = Arc<Mutex<Vec<(W, Answer<T>)>>>;

/// Writes of one kind waiting for the storage thread. The queue is
/// bounded by its callers: each waits for its answer, and they are bounded
/// by the server's limits on requests and lanes.
pub(super) struct Together<W, T> {
    waiting: Waiting<W, T>,
    all: ApplyAll<W, T>,
    one: ApplyOne<W, T>,
    /// Whether callers hear only once a flush made the write durable.
    durable: bool,
}

impl<W: Send + 'static, T: Send + Clone + 'static> Together<W, T> {
    pub fn new(all: ApplyAll<W, T>, one: ApplyOne<W, T>, durable: bool) -> Self {
        Together {
            waiting: Arc::default(),
            all,
            one,
            durable,
        }
    }

    /// Applies `write` with whichever writes of its kind are waiting too.
    pub async fn write(&self, thread: &StorageThread, write: W) -> Result<T, StorageError> {
        let (answer, answered) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().expect("together lock");
            waiting.push((write, answer));
            waiting.len() == 1
        };
        if first {
            self.queue(thread);
        }
        answered.await.map_err(|_| StorageError::Stopped)?
    }

    /// Queues the request that takes every waiting write, from a task of
    /// its own: a caller that goes away while the thread's queue is full
    /// must not strand the callers who joined it.
    fn queue(&self, thread: &StorageThread) {
        let (thread, waiting) = (thread.clone(), self.waiting.clone());
        let (all, one, durable) = (self.all, self.one, self.durable);
        tokio::spawn(async move {
            let joined = waiting.clone();
            let job = move |store: &SledStore| apply(store, take(&joined), all, one, durable);
            if thread.run_durable(job).await.is_err() {
                // The thread is gone: nobody else will answer them.
                for (_, answer) in take(&waiting) {
                    let _ = answer.send(Err(StorageError::Stopped));
                }
            }
        });
    }
}

fn take<X>(waiting: &Mutex<Vec<X>>) -> Vec<X> {
    std::mem::take(&mut *waiting.lock().expect("together lock"))
}

/// On the storage thread: all in one go. Should that fail, each write runs
/// alone, so each caller gets its own outcome. (An accept run again drops
/// the events whose keys the first run remembered; a store that failed
/// between an entry and its key fails the second run as well.)
fn apply<W, T: Clone + Send + 'static>(
    store: &SledStore,
    writes: Vec<(W, Answer<T>)>,
    all: ApplyAll<W, T>,
    one: ApplyOne<W, T>,
    durable: bool,
) -> Option<Waiter> {
    let (writes, answers): (Vec<W>, Vec<Answer<T>>) = writes.into_iter().unzip();
    let outcomes = match all(store, &writes) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(_) if writes.len() > 1 => writes.iter().map(|w| one(store, w)).collect(),
        Err(e) => vec![Err(e)],
    };
    let mut applied = Vec::new();
    for (answer, outcome) in answers.into_iter().zip(outcomes) {
        match outcome {
            Ok(value) if durable => applied.push((answer, value)),
            outcome => {
                let _ = answer.send(outcome);
            }
        }
    }
    if applied.is_empty() {
        return None;
    }
    Some(Box::new(move |flushed: Result<(), String>| {
        for (answer, value) in applied {
            let outcome = flushed.clone().map(|()| value);
            let _ = answer.send(outcome.map_err(StorageError::Flush));
        }
    }))
}
