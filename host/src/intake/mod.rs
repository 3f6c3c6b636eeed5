//! Intake: inbound customer events, accepted durably before the webhook
//! answers, then handed to the engine in order.
//!
//! The webhook handler calls [`Intake::accept`], which writes the events to
//! the inbox (dropping duplicates by their dedupe key); the write is durable
//! when it returns (group commit), so the 200 goes out at once whatever the
//! flows do. The dispatcher ([`Intake::run`]) reads the inbox from a cursor
//! and hands each event to its conversation's [`lanes::Lanes`] lane; due
//! timers join the same lanes. An event leaves the inbox in the same
//! transaction as the turn that handled it, so a crash neither loses nor
//! repeats one: at start the cursor is empty and every waiting event is
//! dispatched again.

pub mod lanes;
pub use lanes::MAX_RESTARTS;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::engine::Engine;
use crate::engine::chatbot::BotAnswer;
use crate::model::{Handover, conversation_key};
use crate::plugin::{Contact, InboundMessage};
use crate::storage::{InboundEvent, Storage, StorageError};
use lanes::{LaneEvent, Lanes};

/// One accepted customer event, as kept in the inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxRecord {
    /// The flow's key of the account the event is for.
    pub account: String,
    pub contact: Contact,
    pub message: InboundMessage,
    /// Set when the event is not a message but a handover of the thread
    /// (`message` then only identifies and orders it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// Set when the event is a chatbot's later answer, posted to its
    /// callback URL (`contact` then only names the customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<Box<BotAnswer>>,
}

/// Events read from the inbox at a time.
const BATCH: usize = 512;
/// Due timers read at a time.
const TIMER_BATCH: usize = 256;
/// How often due timers are looked for.
const TIMER_TICK: Duration = Duration::from_millis(250);
/// Dedupe keys are kept this long (Meta retries for 36 hours).
pub const DEDUPE_RETENTION_MS: u64 = 48 * 3600 * 1000;
/// Echoes that confirmed nothing are kept this long (a send in doubt is
/// settled within minutes of its echo).
const ECHO_RETENTION_MS: u64 = 3600 * 1000;
/// How often expired dedupe keys are swept, and how many per sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_LIMIT: usize = 10_000;

/// How much intake works on at once.
#[derive(Clone, Copy, Debug)]
pub struct IntakeLimits {
    /// Turns running at once (across conversations).
    pub turns: usize,
    /// Events taken out of storage and not yet finished.
    pub held_events: usize,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            turns: 64,
            held_events: 4096,
        }
    }
}

pub struct Intake {
    engine: Arc<Engine>,
    storage: Storage,
    wake: Notify,
    lanes: Arc<Lanes>,
    /// Timers handed to a lane and not finished yet, by id.
    timers_in_lanes: Arc<Mutex<HashSet<String>>>,
}

impl Intake {
    pub fn new(engine: Arc<Engine>, limits: IntakeLimits) -> Self {
        let timers_in_lanes: Arc<Mutex<HashSet<String>>> = Default::default();
        let done = timers_in_lanes.clone();
        let lanes = Lanes::new(
            engine.clone(),
            limits.turns,
            limits.held_events,
            Box::new(move |key| {
                done.lock().expect("timers lock").remove(key);
            }),
        );
        Intake {
            storage: engine.storage().clone(),
            engine,
            wake: Notify::new(),
            lanes,
            timers_in_lanes,
        }
    }

    /// Stores new events durably (duplicates dropped); returns how many were new.
    pub async fn accept(&self, events: &[(String, InboxRecord)]) -> Result<usize, StorageError> {
        let records: Vec<InboundEvent> = events
            .iter()
            .map(|(key, record)| InboundEvent {
                dedupe_key: key.clone(),
                conversation: conversation_key(&record.account, &record.contact.id),
                record: serde_json::to_vec(record).expect("records serialise"),
            })
            .collect();
        let accepted = self
            .storage
            .accept_inbound(records, self.engine.now_ms())
            .await?;
        if accepted > 0 {
            self.wake.notify_one();
        }
        Ok(accepted)
    }

    /// The engine the events go to.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The engine's clock.
    pub fn now_ms(&self) -> u64 {
        self.engine.now_ms()
    }

    /// Dispatches inbox events and due timers until `stop` turns true, then
    /// lets the turns under way finish.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        match self.storage.begin_recovery().await {
            Ok(seq) => self.lanes.set_recovered_below(seq),
            Err(e) => tracing::error!("reading what the last run left: {e}"),
        }
        let mut stopped = stop.clone();
        tokio::join!(
            self.dispatch_inbox(stop.clone()),
            self.dispatch_timers(stop.clone()),
            self.sweep_dedupe_keys(stop),
            async {
                let _ = stopped.wait_for(|stop| *stop).await;
                self.lanes.stop().await;
            },
        );
    }

    async fn dispatch_inbox(&self, mut stop: watch::Receiver<bool>) {
        let mut cursor = None;
        let mut generation = self.storage.ownership_generation();
        let remote_wake = self.storage.inbox_wake();
        while !*stop.borrow() {
            // Conversations taken over from another node: their waiting
            // events may lie behind the cursor. An event read twice is
            // harmless: its second turn finds it handled and is dropped.
            let now_owned = self.storage.ownership_generation();
            if now_owned != generation {
                (generation, cursor) = (now_owned, None);
            }
            let read = self.storage.inbox(cursor, BATCH).await;
            if self.storage.ownership_generation() != generation {
                // Gained during the read: the page may hold a gained
                // conversation's later events without its earlier ones.
                continue;
            }
            match read {
                Ok(batch) => {
                    let full = batch.len() == BATCH;
                    for (seq, bytes) in batch {
                        cursor = Some(seq);
                        self.dispatch_record(seq, &bytes).await;
                    }
                    if full {
                        continue;
                    }
                    // A short batch was all there was: an event accepted
                    // since left a wake permit, so no read to find nothing.
                }
                Err(e) => tracing::error!("reading the inbox: {e}"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = notified(&remote_wake) => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn dispatch_record(&self, seq: u64, bytes: &[u8]) {
        match serde_json::from_slice::<InboxRecord>(bytes) {
            Ok(record) => {
                let conversation = conversation_key(&record.account, &record.contact.id);
                self.lanes
                    .submit(conversation, LaneEvent::Inbound { seq, record })
                    .await;
            }
            Err(e) => {
                let reason = format!("unreadable inbox record: {e}");
                tracing::error!(seq, "{reason}; set aside as a dead letter");
                let now = self.engine.now_ms();
                if let Err(e) = self.storage.dead_letter(seq, reason, now).await {
                    tracing::error!(seq, "setting an event aside failed: {e}");
                }
            }
        }
    }

    async fn dispatch_timers(&self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self
                .storage
                .due_timers(self.engine.now_ms(), TIMER_BATCH)
                .await
            {
                Ok(due) => {
                    for timer in due {
                        let fresh = self
                            .timers_in_lanes
                            .lock()
                            .expect("timers lock")
                            .insert(timer.id.clone());
                        if fresh {
                            let conversation = timer.conversation.clone();
                            self.lanes
                                .submit(conversation, LaneEvent::Timer(timer))
                                .await;
                        }
                    }
                }
                Err(e) => tracing::error!("reading due timers: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(TIMER_TICK) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Forgets dedupe keys older than [`DEDUPE_RETENTION_MS`], so the data
    /// directory stays bounded under a steady load.
    async fn sweep_dedupe_keys(&self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let cutoff = self.engine.now_ms().saturating_sub(DEDUPE_RETENTION_MS);
            match self.storage.expire_seen(cutoff, SWEEP_LIMIT).await {
                Ok(n) if n > 0 => tracing::info!("forgot {n} dedupe keys older than 48 h"),
                Ok(_) => {}
                Err(e) => tracing::error!("expiring dedupe keys: {e}"),
            }
            let echo_cutoff = self.engine.now_ms().saturating_sub(ECHO_RETENTION_MS);
            if let Err(e) = self.storage.expire_echoes(echo_cutoff).await {
                tracing::error!("expiring kept echoes: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Waits for `wake`, or forever when there is none.
async fn notified(wake: &Option<Arc<Notify>>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
    }
}
