//! Webhooks accepted together. Every accept is a sled transaction, and
//! sled writes its log buffer out twice per transaction (`pin_log`): an I/O
//! thread's wake-up, a `pwrite` and a `sync_file_range` each time. So
//! accepts that wait for the storage thread at the same moment are applied
//! in one transaction and answered by the flush after it: the first caller
//! queues a request for the thread, and the callers after it, until the
//! thread takes the lot, join that request.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::SledStore;
use super::thread::{StorageThread, Waiter};
use crate::storage::{InboundEvent, StorageError};

/// One webhook's events and where to send how many were new.
struct Waiting {
    events: Vec<InboundEvent>,
    now_ms: u64,
    answer: oneshot::Sender<Result<usize, StorageError>>,
}

/// Accepts waiting for the storage thread (bounded by the callers: each
/// waits for its answer, and callers are bounded by the server's limits).
#[derive(Clone, Default)]
pub(super) struct Accepts {
    waiting: Arc<Mutex<Vec<Waiting>>>,
}

impl Accepts {
    /// Accepts `events` with whichever accepts are waiting too; durable on
    /// return.
    pub async fn accept(
        &self,
        thread: &StorageThread,
        events: Vec<InboundEvent>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        let (answer, answered) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().expect("accepts lock");
            waiting.push(Waiting {
                events,
                now_ms,
                answer,
            });
            waiting.len() == 1
        };
        if first {
            // Queued from a task of its own: a caller that goes away while
            // the queue is full must not strand the callers who joined it.
            let (thread, waiting) = (thread.clone(), self.waiting.clone());
            tokio::spawn(async move {
                let joined = waiting.clone();
                let queued = thread
                    .run_durable(move |store| apply(store, take(&joined)))
                    .await;
                if queued.is_err() {
                    // The thread is gone: nobody else will answer them.
                    for accept in take(&waiting) {
                        let _ = accept.answer.send(Err(StorageError::Stopped));
                    }
                }
            });
        }
        answered.await.map_err(|_| StorageError::Stopped)?
    }
}

fn take(waiting: &Mutex<Vec<Waiting>>) -> Vec<Waiting> {
    std::mem::take(&mut *waiting.lock().expect("accepts lock"))
}

/// On the storage thread: one transaction for all, answered once flushed.
/// Should it fail, each accept runs alone, so each caller gets its own
/// outcome.
fn apply(store: &SledStore, accepts: Vec<Waiting>) -> Option<Waiter> {
    let batches: Vec<(&[InboundEvent], u64)> = accepts
        .iter()
        .map(|a| (a.events.as_slice(), a.now_ms))
        .collect();
    let counts = match store.accept_together(&batches) {
        Ok(counts) => counts.into_iter().map(Ok).collect(),
        Err(_) if accepts.len() > 1 => accepts
            .iter()
            .map(|a| store.accept_inbound(&a.events, a.now_ms))
            .collect(),
        Err(e) => vec![Err(e)],
    };
    let mut durable = Vec::new();
    for (accept, count) in accepts.into_iter().zip(counts) {
        match count {
            Ok(count) => durable.push((accept.answer, count)),
            Err(e) => {
                let _ = accept.answer.send(Err(e));
            }
        }
    }
    if durable.is_empty() {
        return None;
    }
    Some(Box::new(move |flushed: Result<(), String>| {
        for (answer, count) in durable {
            let outcome = flushed.clone().map(|()| count);
            let _ = answer.send(outcome.map_err(StorageError::Flush));
        }
    }))
}
