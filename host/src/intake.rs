//! Intake: inbound customer events, accepted durably before the webhook
//! answers, then handed to the engine in order.
//!
//! The webhook handler calls [`Intake::accept`], which writes the events to
//! sled's inbox (dropping duplicates by their dedupe key) and flushes before
//! returning, so the 200 goes out in milliseconds whatever the flow does.
//! The worker ([`Intake::run`]) takes the inbox in arrival order, groups it
//! by conversation, orders each group by the channel's timestamp, and runs
//! the groups in parallel (bounded), each strictly in order. An event leaves
//! the inbox in the same transaction as the turn that handled it, so a crash
//! neither loses nor repeats one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, watch};

use crate::engine::{Engine, EngineError};
use crate::plugin::{Contact, InboundMessage};
use crate::storage::{Storage, StorageError};

/// One accepted customer event, as kept in the inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxRecord {
    /// The flow's key of the account the event is for.
    pub account: String,
    pub contact: Contact,
    pub message: InboundMessage,
}

/// Events taken from the inbox per round.
const BATCH: usize = 512;

pub struct Intake {
    engine: Arc<Engine>,
    storage: Storage,
    wake: Notify,
    /// Conversations handled at once.
    lanes: Arc<Semaphore>,
}

impl Intake {
    pub fn new(engine: Arc<Engine>, storage: Storage, parallel_conversations: usize) -> Self {
        Intake {
            engine,
            storage,
            wake: Notify::new(),
            lanes: Arc::new(Semaphore::new(parallel_conversations.max(1))),
        }
    }

    /// Stores new events durably (duplicates dropped); returns how many were new.
    pub async fn accept(&self, events: &[(String, InboxRecord)]) -> Result<usize, StorageError> {
        let records: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|(key, record)| {
                (
                    key.clone(),
                    serde_json::to_vec(record).expect("records serialise"),
                )
            })
            .collect();
        let accepted = self.storage.accept_inbound(&records).await?;
        if accepted > 0 {
            self.wake.notify_one();
        }
        Ok(accepted)
    }

    /// Handles the inbox until `stop` turns true, then finishes the round
    /// under way.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            match self.drain().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(e) => tracing::error!("inbox: {e}"),
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One round: every conversation with waiting events, in parallel.
    /// Returns how many events were handled.
    pub async fn drain(&self) -> Result<usize, StorageError> {
        let batch = self.storage.inbox(BATCH)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let mut lanes: BTreeMap<String, Vec<(String, InboxRecord)>> = BTreeMap::new();
        for (key, bytes) in batch {
            match serde_json::from_slice::<InboxRecord>(&bytes) {
                Ok(record) => {
                    let conversation =
                        crate::engine::state::conversation_key(&record.account, &record.contact.id);
                    lanes.entry(conversation).or_default().push((key, record));
                }
                Err(e) => {
                    tracing::error!(key, "dropping an unreadable inbox record: {e}");
                    self.storage.remove_from_inbox(&key)?;
                }
            }
        }
        let mut handled = 0;
        let mut tasks = tokio::task::JoinSet::new();
        for (_, mut events) in lanes {
            // Meta does not guarantee order: the channel's timestamp does.
            events.sort_by_key(|(_, record)| record.message.timestamp_ms);
            handled += events.len();
            let permit = self
                .lanes
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let engine = self.engine.clone();
            let storage = self.storage.clone();
            tasks.spawn(async move {
                let _permit = permit;
                for (key, record) in events {
                    let result = engine
                        .handle_inbound(
                            &record.account,
                            record.contact,
                            record.message,
                            key.clone(),
                        )
                        .await;
                    match result {
                        Ok(_) => {}
                        Err(EngineError::NoConnector(account)) => {
                            tracing::warn!(
                                account,
                                "no connector takes this account's messages; event dropped"
                            );
                            let _ = storage.remove_from_inbox(&key);
                        }
                        Err(e) => {
                            // Left in the inbox: the next round tries again.
                            tracing::error!("handling an inbound event: {e}");
                            return;
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(handled)
    }
}
