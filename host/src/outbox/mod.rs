//! The sender: drains the outbox through each account's channel.
//!
//! Every reply was written to the outbox by the turn that produced it, and
//! that commit wakes the sender (no polling delay). The sender gives each
//! conversation with waiting messages its own task, which sends them in
//! order; conversations and accounts go out concurrently (at most
//! [`CONCURRENT_SENDS`] requests at once), each part counted against its
//! account's sliding-second limit ([`rate`]). A message leaves the outbox
//! (or each part of a long one is recorded) in the same transaction that
//! records the channel's message id, so a restart resumes after the last
//! part the channel accepted.
//!
//! 429 and 5xx answers and connection failures are retried with backoff
//! ([`backoff`]), in the conversation's task, so only that conversation
//! waits; after [`backoff::MAX_ATTEMPTS`] the message is failed with its
//! last cause. Other refusals are final and recorded with their reason; so
//! is a request that got no answer after it was sent (it may have been
//! delivered). Instagram's 24-hour window (7 days for a human agent) is
//! checked before anything is sent.
//!
//! A send under way is marked durably first. A send whose outcome is
//! unknown (a crash while the channel answered, or no answer in time) is
//! *settled* where the channel can tell us: an Instagram
//! account subscribed to `message_echoes` waits for the echo of that text
//! to that customer and counts it as sent, or sends it again once the grace
//! period passes without one. Where nothing can be known (Connexease, or an
//! account without echoes) it is recorded as uncertain and not sent again:
//! never twice (neither API has an idempotency key).

mod backoff;
mod deliver;
pub mod health;
pub mod rate;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::engine::clock::Clock;
use crate::model::OutboxMessage;
use crate::storage::{Settling, Storage, StorageError};
pub use deliver::{AccessToken, Endpoint, endpoints};
use deliver::{Attempt, Channels};
use rate::{RateLimits, SendClass};

/// The error a bot reply outside the window gets.
pub const OUTSIDE_WINDOW: &str =
    "sending is only allowed within 24 hours of the customer's last message";
/// The record of a send a crash interrupted.
pub const UNCERTAIN: &str = "delivery uncertain: the channel may or may not have taken this message, and nothing can tell; not sent again, so that it is never sent twice";
const BOT_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// A human agent's reply with the HUMAN_AGENT tag: 7 days.
const AGENT_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// Requests to the channels under way at once.
pub const CONCURRENT_SENDS: usize = 64;
/// One conversation's messages read at a time.
const BATCH: usize = 16;
/// How often every conversation with waiting messages is looked at, for
/// retries and released doubts (new messages wake the sender at once).
const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

pub struct OutboxSender {
    storage: Storage,
    clock: Arc<dyn Clock>,
    channels: Channels,
    rate: RateLimits,
    sends: Semaphore,
    /// Conversations with a sending task.
    busy: Mutex<HashSet<String>>,
    /// Which accounts' sends keep failing.
    health: Arc<health::SendHealth>,
}

impl OutboxSender {
    pub fn new(
        storage: Storage,
        clock: Arc<dyn Clock>,
        endpoints: std::collections::HashMap<String, Endpoint>,
    ) -> Self {
        OutboxSender {
            storage,
            clock,
            channels: Channels::new(endpoints),
            rate: RateLimits::default(),
            sends: Semaphore::new(CONCURRENT_SENDS),
            busy: Default::default(),
            health: Default::default(),
        }
    }

    /// Sends as connected accounts with the tokens of `connections`.
    pub fn with_connections(mut self, connections: Arc<crate::connections::Connections>) -> Self {
        self.channels = self.channels.with_connections(connections);
        self
    }

    /// Which accounts' sends keep failing (for readiness).
    pub fn health(&self) -> Arc<health::SendHealth> {
        self.health.clone()
    }

    /// Settles the sends a crash interrupted: the channel may or may not
    /// have taken them, so they are recorded as uncertain, not sent again.
    /// Also run when this node takes conversations over from a node that
    /// died: its sends under way are in doubt the same way (this node's own
    /// sends under way are skipped).
    pub async fn recover(&self) -> Result<usize, StorageError> {
        let interrupted = self.storage.in_flight().await?;
        if interrupted.is_empty() {
            return Ok(0);
        }
        let outbox = self.storage.outbox(usize::MAX).await?;
        let busy = self.busy.lock().expect("busy lock").clone();
        for id in &interrupted {
            match outbox.iter().find(|m| &m.id == id) {
                Some(message) if busy.contains(&message.conversation) => {}
                Some(message) => {
                    let reason = "a send was interrupted by a stop";
                    self.in_doubt(message, message.sent_parts, reason).await?;
                }
                None => self.storage.clear_in_flight(id).await?,
            }
        }
        Ok(interrupted.len())
    }

    /// Sends until `stop` turns true; a send under way when it does is
    /// abandoned (and so recorded as uncertain at the next start).
    /// Call [`OutboxSender::recover`] first, before webhooks are taken (an
    /// echo may settle what it finds).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let wake = self.storage.outbox_wake();
        let mut tasks = JoinSet::new();
        let mut dirty: HashSet<String> = HashSet::new();
        let mut next_scan = tokio::time::Instant::now();
        let mut generation = self.storage.ownership_generation();
        while !*stop.borrow() {
            if self.storage.ownership_generation() != generation {
                generation = self.storage.ownership_generation();
                if let Err(e) = self.recover().await {
                    tracing::error!("settling sends of conversations taken over: {e}");
                }
            }
            self.rate.set_nodes(self.storage.nodes_alive());
            dirty.extend(self.storage.take_queued());
            if tokio::time::Instant::now() >= next_scan {
                // Retries, released doubts and anything a wake missed.
                match self.storage.outbox_conversations().await {
                    Ok(all) => dirty.extend(all),
                    Err(e) => tracing::error!("reading the outbox: {e}"),
                }
                next_scan = tokio::time::Instant::now() + FULL_SCAN_EVERY;
            }
            if self.storage.ownership_generation() != generation {
                // Taken over during the scan: settle their sends first.
                continue;
            }
            if let Err(e) = self
                .start_conversations(&mut dirty, &mut tasks, &stop)
                .await
            {
                tracing::error!("outbox: {e}");
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(next_scan) => {}
                _ = stop.changed() => {}
            }
        }
        tasks.shutdown().await;
    }

    /// Every conversation with waiting messages, sent to the end; returns
    /// how many messages left the outbox. (For tests and tools.)
    pub async fn send_round(self: &Arc<Self>) -> Result<usize, StorageError> {
        let (_keep, stop) = watch::channel(false);
        let mut dirty: HashSet<String> = self
            .storage
            .outbox_conversations()
            .await?
            .into_iter()
            .collect();
        self.storage.take_queued();
        let mut tasks = JoinSet::new();
        self.start_conversations(&mut dirty, &mut tasks, &stop)
            .await?;
        let mut done = 0;
        while let Some(sent) = tasks.join_next().await {
            done += sent.unwrap_or(0);
        }
        Ok(done)
    }

    /// Starts a task for each `dirty` conversation that has none and no
    /// send in doubt. A busy one stays dirty: its task may have looked at
    /// the outbox before the new messages came.
    async fn start_conversations(
        self: &Arc<Self>,
        dirty: &mut HashSet<String>,
        tasks: &mut JoinSet<usize>,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), StorageError> {
        let in_doubt = self.settle_due().await?;
        let mut busy = self.busy.lock().expect("busy lock");
        let mut start = Vec::new();
        dirty.retain(|conversation| {
            if in_doubt.contains(conversation) {
                false // back with the scan after its doubt is settled
            } else if busy.contains(conversation) {
                true
            } else {
                start.push(conversation.clone());
                false
            }
        });
        for conversation in start {
            busy.insert(conversation.clone());
            let sender = self.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                let done = sender.send_conversation(&conversation, stop).await;
                sender.busy.lock().expect("busy lock").remove(&conversation);
                sender.storage.outbox_wake().notify_one();
                done
            });
        }
        Ok(())
    }

    /// Sends one conversation's waiting messages in order until none is
    /// left (or one is in doubt); returns how many left the outbox.
    async fn send_conversation(
        &self,
        conversation: &str,
        mut stop: watch::Receiver<bool>,
    ) -> usize {
        let mut done = 0;
        loop {
            let messages = match self.storage.outbox_of(conversation, BATCH).await {
                Ok(messages) if !messages.is_empty() => messages,
                Ok(_) => return done,
                Err(e) => {
                    tracing::error!(conversation, "outbox: {e}");
                    return done;
                }
            };
            let last_batch = messages.len() < BATCH;
            for message in messages {
                let delivery = tokio::select! {
                    delivery = self.deliver(&message).instrument(send_span(&message)) => delivery,
                    _ = stop.wait_for(|stop| *stop) => return done,
                };
                match delivery {
                    Ok(Delivered::Done) => done += 1,
                    Ok(Delivered::InDoubt) => return done,
                    Err(e) => {
                        tracing::error!(message = message.id, "outbox: {e}");
                        return done;
                    }
                }
            }
            if last_batch {
                // Messages queued meanwhile marked the conversation dirty.
                return done;
            }
        }
    }

    /// Sends a message's remaining parts, retrying what may be retried,
    /// until it leaves the outbox (sent, or failed for good).
    async fn deliver(&self, message: &OutboxMessage) -> Result<Delivered, StorageError> {
        if let Some(reason) = self.outside_window(message).await? {
            tracing::warn!(message = message.id, "not sent: {reason}");
            return self.fail(message, reason.into()).await;
        }
        let Some(bodies) = self.channels.bodies(message) else {
            let reason = format!("account `{}` is not in the flow", message.account);
            return self.fail(message, reason).await;
        };
        let parts = bodies.len() as u32;
        if parts == 0 {
            return self.fail(message, "the message is empty".into()).await;
        }
        let class = send_class(message);
        let mut progress = message.clone();
        for body in bodies.into_iter().skip(message.sent_parts as usize) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                self.rate.acquire(&message.account, class).await;
                let outcome = {
                    let _send = self.sends.acquire().await.expect("never closed");
                    let now = self.clock.now_ms();
                    self.storage.mark_in_flight(&message.id, now).await?;
                    self.channels.send(message, &body).await
                };
                self.observe(&message.account, &outcome);
                match outcome {
                    Attempt::Sent(channel_id) => {
                        self.storage
                            .record_sent(progress.clone(), channel_id, parts)
                            .await?;
                        progress.sent_parts += 1;
                        break;
                    }
                    Attempt::Failed(reason) => {
                        tracing::warn!(message = message.id, "send failed for good: {reason}");
                        return self.fail(&progress, reason).await;
                    }
                    Attempt::Uncertain(reason) => {
                        let reason = format!("the channel did not answer: {reason}");
                        return self.in_doubt(&progress, progress.sent_parts, &reason).await;
                    }
                    Attempt::Retry(reason) if attempt >= backoff::MAX_ATTEMPTS => {
                        let reason = format!("gave up after {attempt} attempts: {reason}");
                        tracing::warn!(message = message.id, "{reason}");
                        return self.fail(&progress, reason).await;
                    }
                    Attempt::Retry(reason) => {
                        self.storage.clear_in_flight(&message.id).await?;
                        let delay = backoff::delay(attempt);
                        tracing::warn!(
                            message = message.id,
                            attempt,
                            "send will be retried in {delay:?}: {reason}"
                        );
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        Ok(Delivered::Done)
    }

    /// Counts an attempt, keeps the account's health, and logs a send.
    fn observe(&self, account: &str, outcome: &Attempt) {
        let (label, failure) = match outcome {
            Attempt::Sent(_) => ("sent", None),
            Attempt::Retry(reason) => ("retry", Some(reason)),
            Attempt::Failed(reason) => ("failed", Some(reason)),
            Attempt::Uncertain(reason) => ("uncertain", Some(reason)),
        };
        let labels = [
            ("account", account.to_string()),
            ("outcome", label.to_string()),
        ];
        metrics::counter!(crate::telemetry::SENDS, &labels).increment(1);
        match failure {
            None => {
                self.health.sent(account);
                tracing::info!(account, "message part sent");
            }
            Some(reason) => self.health.failed(account, reason),
        }
    }

    async fn fail(
        &self,
        message: &OutboxMessage,
        reason: String,
    ) -> Result<Delivered, StorageError> {
        let now = self.clock.now_ms();
        self.storage
            .record_failed(message.clone(), reason, now)
            .await?;
        Ok(Delivered::Done)
    }

    /// Part `part` of `message` may or may not have reached the customer:
    /// wait for its echo where the account has echoes, else record it as
    /// uncertain (never sent twice).
    async fn in_doubt(
        &self,
        message: &OutboxMessage,
        part: u32,
        reason: &str,
    ) -> Result<Delivered, StorageError> {
        let grace = self.channels.echo_grace_ms(&message.account);
        let text = self.channels.part_text(message, part);
        let parts = self.channels.bodies(message).map_or(0, |b| b.len() as u32);
        match (grace, text) {
            (Some(grace), Some(text)) => {
                tracing::warn!(
                    message = message.id,
                    "{reason}; waiting {grace} ms for its echo before sending it again"
                );
                let settling = Settling {
                    message_id: message.id.clone(),
                    conversation: message.conversation.clone(),
                    account: message.account.clone(),
                    recipient: message.recipient.clone(),
                    text,
                    part,
                    parts,
                    deadline_ms: self.clock.now_ms().saturating_add(grace),
                };
                if self.storage.begin_settling(settling).await? {
                    tracing::info!(message = message.id, "its echo had come already: sent");
                    return Ok(Delivered::Done);
                }
                Ok(Delivered::InDoubt)
            }
            _ => {
                tracing::warn!(message = message.id, "{reason}; not sending it again");
                self.fail(message, format!("{UNCERTAIN} ({reason})")).await
            }
        }
    }

    /// Conversations with a send in doubt still waiting for its echo; those
    /// past their grace period are released to be sent again.
    async fn settle_due(&self) -> Result<HashSet<String>, StorageError> {
        let mut waiting = HashSet::new();
        if !self.storage.any_settling() {
            return Ok(waiting);
        }
        let now = self.clock.now_ms();
        for settling in self.storage.settling().await? {
            if now >= settling.deadline_ms {
                tracing::warn!(
                    message = settling.message_id,
                    "no echo confirmed a send in doubt; sending it again"
                );
                self.storage.end_settling(&settling.message_id).await?;
            } else {
                waiting.insert(settling.conversation);
            }
        }
        Ok(waiting)
    }

    /// Why the channel's messaging window forbids this send, if it does.
    async fn outside_window(
        &self,
        message: &OutboxMessage,
    ) -> Result<Option<&'static str>, StorageError> {
        let last_inbound = match message.window_from_ms {
            Some(from) => from,
            None => self
                .storage
                .conversation(&message.conversation)
                .await?
                .and_then(|c| c.last_inbound_ms)
                .unwrap_or(0),
        };
        let age = self.clock.now_ms().saturating_sub(last_inbound);
        Ok(if message.sender == "agent" {
            (age > AGENT_WINDOW_MS).then_some(
                "a human agent may only reply within 7 days of the customer's last message",
            )
        } else {
            (age > BOT_WINDOW_MS).then_some(OUTSIDE_WINDOW)
        })
    }
}

/// What became of one outbox message.
enum Delivered {
    /// It left the outbox: sent, or failed for good.
    Done,
    /// A part's outcome is unknown; it waits for its echo.
    InDoubt,
}

/// Audio and video have their own, lower limit.
fn send_class(message: &OutboxMessage) -> SendClass {
    let media = message
        .message
        .attachments
        .iter()
        .any(|a| matches!(a.kind.as_str(), "audio" | "video"));
    if media {
        SendClass::AudioVideo
    } else {
        SendClass::Text
    }
}

/// The span of one message's delivery: its account, conversation and id.
fn send_span(message: &OutboxMessage) -> tracing::Span {
    tracing::info_span!(
        "send",
        account = %message.account,
        conversation = %crate::plugin::capabilities::escape_controls(&message.conversation_id),
        message_id = %message.id,
    )
}
