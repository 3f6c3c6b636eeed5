//! The sender: drains the outbox through each account's channel.
//!
//! Every reply was written to the outbox by the turn that produced it. The
//! sender sends each one through its channel (the Instagram Send API today),
//! in order per conversation, and removes it (or each part of a long one) in
//! the same transaction that records the channel's message id; a restart
//! resumes after the last part the channel accepted. 429 and 5xx answers are
//! retried with exponential backoff and jitter; other refusals are final and
//! recorded with their reason. Instagram's 24-hour window is checked before
//! anything is sent. A send under way is marked durably first; a crash in
//! that moment leaves the message recorded as uncertain rather than sent
//! twice (Meta's Send API has no idempotency key to make a resend safe).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::channels::instagram::send::{self, Answer};
use crate::engine::clock::Clock;
use crate::engine::state::OutboxMessage;
use crate::flow::model::{Account, Flow, resolve_secret};
use crate::storage::{Storage, StorageError};

/// The error a bot reply outside the window gets.
pub const OUTSIDE_WINDOW: &str =
    "sending is only allowed within 24 hours of the customer's last message";
/// The record of a send a crash interrupted.
pub const UNCERTAIN: &str = "delivery uncertain: flowhost stopped while the channel was answering; not sent again, so that it is never sent twice";
/// A human agent's reply with the HUMAN_AGENT tag: 7 days.
const BOT_WINDOW_MS: u64 = 24 * 3600 * 1000;
const AGENT_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// Meta's rate limit for text sends, per account and second.
const SENDS_PER_SECOND: u32 = 300;
/// Backoff: first retry after about this long, doubling to the cap.
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// How to reach one Instagram account's Send API.
#[derive(Clone, Debug)]
pub struct InstagramEndpoint {
    pub ig_user_id: String,
    pub access_token: Option<String>,
    /// Without a scheme-and-host prefix override: `https://graph.instagram.com`.
    pub api_base_url: String,
    pub api_version: String,
}

impl InstagramEndpoint {
    fn messages_url(&self) -> String {
        format!(
            "{}/{}/{}/messages",
            self.api_base_url.trim_end_matches('/'),
            self.api_version,
            self.ig_user_id
        )
    }
}

/// The endpoints of a flow's Instagram accounts, by account key.
pub fn endpoints(flow: &Flow) -> HashMap<String, InstagramEndpoint> {
    flow.accounts
        .iter()
        .filter_map(|(key, account)| match account {
            Account::Instagram {
                ig_user_id,
                access_token,
                api_base_url,
                api_version,
                ..
            } => Some((
                key.clone(),
                InstagramEndpoint {
                    ig_user_id: ig_user_id.clone(),
                    access_token: resolve_secret(access_token),
                    api_base_url: api_base_url
                        .clone()
                        .unwrap_or_else(|| "https://graph.instagram.com".into()),
                    api_version: api_version.clone().unwrap_or_else(|| "v23.0".into()),
                },
            )),
            Account::Connexease { .. } => None,
        })
        .collect()
}

struct Backoff {
    attempts: u32,
    next: Instant,
}

pub struct OutboxSender {
    storage: Storage,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    endpoints: HashMap<String, InstagramEndpoint>,
    backoff: std::sync::Mutex<HashMap<String, Backoff>>,
    /// (account, second) -> sends in that second.
    rate: std::sync::Mutex<HashMap<String, (u64, u32)>>,
}

impl OutboxSender {
    pub fn new(
        storage: Storage,
        clock: Arc<dyn Clock>,
        endpoints: HashMap<String, InstagramEndpoint>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("flowhost/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        OutboxSender {
            storage,
            clock,
            client,
            endpoints,
            backoff: Default::default(),
            rate: Default::default(),
        }
    }

    /// Settles the sends a crash interrupted: Meta may or may not have
    /// taken them, and it offers no idempotency key, so they are not sent
    /// again (a reply is never sent twice) but recorded as uncertain.
    pub fn recover(&self) -> Result<usize, StorageError> {
        let interrupted = self.storage.in_flight()?;
        let outbox = self.storage.outbox()?;
        for id in &interrupted {
            match outbox.iter().find(|m| &m.id == id) {
                Some(message) => {
                    tracing::warn!(
                        message = id,
                        "a send was interrupted by a stop; not sending it again"
                    );
                    self.storage.record_failed(message, UNCERTAIN)?;
                }
                None => self.storage.clear_in_flight(id)?,
            }
        }
        Ok(interrupted.len())
    }

    /// Sends until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if let Err(e) = self.recover() {
            tracing::error!("outbox recovery: {e}");
        }
        while !*stop.borrow() {
            let sent = match self.send_round().await {
                Ok(sent) => sent,
                Err(e) => {
                    tracing::error!("outbox: {e}");
                    0
                }
            };
            if sent == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// One pass over the outbox; returns how many messages left it.
    pub async fn send_round(&self) -> Result<usize, StorageError> {
        let mut done = 0;
        // A conversation whose earlier message waits keeps its later ones
        // waiting too: replies arrive in order.
        let mut held: HashSet<String> = HashSet::new();
        for message in self.storage.outbox()? {
            if held.contains(&message.conversation)
                || !self.due(&message.id)
                || !self.within_rate(&message.account)
            {
                held.insert(message.conversation.clone());
                continue;
            }
            match self.deliver(&message).await? {
                true => done += 1,
                false => {
                    held.insert(message.conversation.clone());
                }
            }
        }
        Ok(done)
    }

    fn due(&self, id: &str) -> bool {
        self.backoff
            .lock()
            .expect("backoff lock")
            .get(id)
            .is_none_or(|b| Instant::now() >= b.next)
    }

    fn within_rate(&self, account: &str) -> bool {
        let second = self.clock.now_ms() / 1000;
        let mut rate = self.rate.lock().expect("rate lock");
        let entry = rate.entry(account.to_string()).or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        entry.1 += 1;
        entry.1 <= SENDS_PER_SECOND
    }

    /// Sends one message's remaining parts. `Ok(true)` when it left the
    /// outbox (sent or failed for good), `Ok(false)` when it waits to retry.
    async fn deliver(&self, message: &OutboxMessage) -> Result<bool, StorageError> {
        let Some(endpoint) = self.endpoints.get(&message.account) else {
            self.storage.record_failed(
                message,
                &format!("account `{}` has no Instagram endpoint", message.account),
            )?;
            return Ok(true);
        };
        let agent = message.sender == "agent";
        let last_inbound = self
            .storage
            .conversation(&message.conversation)?
            .and_then(|c| c.last_inbound_ms)
            .unwrap_or(0);
        let window = if agent {
            AGENT_WINDOW_MS
        } else {
            BOT_WINDOW_MS
        };
        if self.clock.now_ms().saturating_sub(last_inbound) > window {
            let reason = if agent {
                "a human agent may only reply within 7 days of the customer's last message"
            } else {
                OUTSIDE_WINDOW
            };
            tracing::warn!(message = message.id, "{reason}");
            self.storage.record_failed(message, reason)?;
            return Ok(true);
        }
        let Some(token) = &endpoint.access_token else {
            self.storage.record_failed(
                message,
                &format!("account `{}` has no access token", message.account),
            )?;
            return Ok(true);
        };
        let who = if agent {
            send::Sender::HumanAgent
        } else {
            send::Sender::Bot
        };
        let bodies = send::request_bodies(&message.recipient, &message.message, who);
        let parts = bodies.len() as u32;
        if parts == 0 {
            self.storage
                .record_failed(message, "the message is empty")?;
            return Ok(true);
        }
        let mut progress = message.clone();
        for body in bodies.into_iter().skip(message.sent_parts as usize) {
            self.storage.mark_in_flight(&message.id).await?;
            let answer = match self
                .client
                .post(endpoint.messages_url())
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let bytes = response.bytes().await.unwrap_or_default();
                    send::read_answer(status, &bytes)
                }
                Err(e) => Answer::Retry {
                    reason: e.to_string(),
                },
            };
            match answer {
                Answer::Sent { message_id } => {
                    self.storage.record_sent(&progress, &message_id, parts)?;
                    progress.sent_parts += 1;
                }
                Answer::Retry { reason } => {
                    self.storage.clear_in_flight(&message.id)?;
                    let mut backoff = self.backoff.lock().expect("backoff lock");
                    let entry = backoff.entry(message.id.clone()).or_insert(Backoff {
                        attempts: 0,
                        next: Instant::now(),
                    });
                    entry.attempts += 1;
                    let delay = BACKOFF_START
                        .saturating_mul(1 << entry.attempts.min(16))
                        .min(BACKOFF_CAP);
                    // Jitter of ±50 %, from a random UUID's bits.
                    let jitter = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
                    entry.next = Instant::now() + delay.mul_f64(jitter);
                    tracing::info!(
                        message = message.id,
                        attempts = entry.attempts,
                        "send will be retried: {reason}"
                    );
                    return Ok(false);
                }
                Answer::OutsideWindow => {
                    self.storage.record_failed(&progress, OUTSIDE_WINDOW)?;
                    return Ok(true);
                }
                Answer::TokenExpired { reason } => {
                    tracing::error!(
                        account = message.account,
                        "the access token no longer works; reconnect the account: {reason}"
                    );
                    self.storage.record_failed(&progress, &format!("the account's access token expired or was revoked; reconnect it ({reason})"))?;
                    return Ok(true);
                }
                Answer::Refused { reason } => {
                    self.storage.record_failed(&progress, &reason)?;
                    return Ok(true);
                }
            }
        }
        self.backoff
            .lock()
            .expect("backoff lock")
            .remove(&message.id);
        Ok(true)
    }
}
