//! The sender: drains the outbox through each account's channel.
//!
//! Every reply was written to the outbox by the turn that produced it. The
//! sender sends each one through its channel (the Instagram Send API, or
//! Connexease's messages API), in order per conversation, and removes it (or
//! each part of a long one) in the same transaction that records the
//! channel's message id; a restart resumes after the last part the channel
//! accepted. 429 and 5xx answers and network failures are retried with
//! exponential backoff and jitter; other refusals are final and recorded
//! with their reason; so is a request that got no answer after it was sent
//! (it may have been delivered). Instagram's 24-hour window is checked
//! before anything is sent. A send under way is marked durably first; a crash in that moment
//! leaves the message recorded as uncertain rather than sent twice (neither
//! API has an idempotency key that would make a resend safe).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::channels::connexease;
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
const BOT_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// A human agent's reply with the HUMAN_AGENT tag: 7 days.
const AGENT_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// Meta's rate limits per account and second: text, and audio or video.
const SENDS_PER_SECOND: u32 = 300;
const MEDIA_SENDS_PER_SECOND: u32 = 10;
/// Backoff: first retry after about this long, doubling to the cap.
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Where one account's replies go.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Instagram {
        ig_user_id: String,
        access_token: Option<String>,
        api_base_url: String,
        api_version: String,
    },
    Connexease {
        api_base_url: String,
        username: Option<String>,
        password: Option<String>,
        api_token: Option<String>,
        reply_path: String,
    },
}

/// The endpoints of a flow's accounts, by account key, secrets resolved.
pub fn endpoints(flow: &Flow) -> HashMap<String, Endpoint> {
    flow.accounts
        .iter()
        .map(|(key, account)| {
            let endpoint = match account {
                Account::Instagram {
                    ig_user_id,
                    access_token,
                    api_base_url,
                    api_version,
                    ..
                } => Endpoint::Instagram {
                    ig_user_id: ig_user_id.clone(),
                    access_token: resolve_secret(access_token),
                    api_base_url: api_base_url
                        .clone()
                        .unwrap_or_else(|| "https://graph.instagram.com".into()),
                    api_version: api_version.clone().unwrap_or_else(|| "v23.0".into()),
                },
                Account::Connexease {
                    api_base_url,
                    username,
                    password,
                    api_token,
                    reply_path,
                    ..
                } => Endpoint::Connexease {
                    api_base_url: api_base_url
                        .clone()
                        .unwrap_or_else(|| "https://api.connexease.com".into()),
                    username: resolve_secret(username),
                    password: resolve_secret(password),
                    api_token: resolve_secret(api_token),
                    reply_path: reply_path.clone().unwrap_or_else(|| "/v2/messages/".into()),
                },
            };
            (key.clone(), endpoint)
        })
        .collect()
}

/// What became of one attempt.
enum Attempt {
    /// The channel took it, under this id.
    Sent(String),
    Retry(String),
    Failed(String),
}

/// A request that got no answer. A failure to connect means nothing was
/// sent: retry. Anything later (a time-out while the channel was working)
/// may have been delivered: recorded as uncertain, never sent twice.
fn failed_request(error: reqwest::Error) -> Attempt {
    if error.is_connect() {
        Attempt::Retry(error.to_string())
    } else {
        tracing::warn!("a send got no answer: {error}");
        Attempt::Failed(format!("{UNCERTAIN} ({error})"))
    }
}

struct Backoff {
    attempts: u32,
    next: Instant,
}

pub struct OutboxSender {
    storage: Storage,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    endpoints: HashMap<String, Endpoint>,
    backoff: std::sync::Mutex<HashMap<String, Backoff>>,
    /// account -> (second, sends in that second).
    rate: std::sync::Mutex<HashMap<String, (u64, u32)>>,
    /// account -> Connexease JWT (valid 24 hours; refreshed on 401).
    jwt: tokio::sync::Mutex<HashMap<String, String>>,
}

impl OutboxSender {
    pub fn new(
        storage: Storage,
        clock: Arc<dyn Clock>,
        endpoints: HashMap<String, Endpoint>,
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
            jwt: Default::default(),
        }
    }

    /// Settles the sends a crash interrupted: the channel may or may not
    /// have taken them, so they are recorded as uncertain, not sent again.
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
            let sent = self.send_round().await.unwrap_or_else(|e| {
                tracing::error!("outbox: {e}");
                0
            });
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
                || !self.within_rate(&message)
            {
                held.insert(message.conversation.clone());
                continue;
            }
            if self.deliver(&message).await? {
                done += 1;
            } else {
                held.insert(message.conversation.clone());
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

    /// Counts the send against its account's limit for this second.
    fn within_rate(&self, message: &OutboxMessage) -> bool {
        let media = message
            .message
            .attachments
            .iter()
            .any(|a| matches!(a.kind.as_str(), "audio" | "video"));
        let (class, limit) = if media {
            ("media", MEDIA_SENDS_PER_SECOND)
        } else {
            ("text", SENDS_PER_SECOND)
        };
        let second = self.clock.now_ms() / 1000;
        let mut rate = self.rate.lock().expect("rate lock");
        let entry = rate
            .entry(format!("{}/{class}", message.account))
            .or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }

    /// Sends a message's remaining parts. `Ok(true)` when it left the
    /// outbox (sent or failed for good), `Ok(false)` when it waits to retry.
    async fn deliver(&self, message: &OutboxMessage) -> Result<bool, StorageError> {
        let Some(endpoint) = self.endpoints.get(&message.account) else {
            self.storage.record_failed(
                message,
                &format!("account `{}` is not in the flow", message.account),
            )?;
            return Ok(true);
        };
        let agent = message.sender == "agent";
        let last_inbound = self
            .storage
            .conversation(&message.conversation)?
            .and_then(|c| c.last_inbound_ms)
            .unwrap_or(0);
        if self.clock.now_ms().saturating_sub(last_inbound)
            > if agent {
                AGENT_WINDOW_MS
            } else {
                BOT_WINDOW_MS
            }
        {
            let reason = if agent {
                "a human agent may only reply within 7 days of the customer's last message"
            } else {
                OUTSIDE_WINDOW
            };
            tracing::warn!(message = message.id, "{reason}");
            self.storage.record_failed(message, reason)?;
            return Ok(true);
        }
        let requests: Vec<Value> = match endpoint {
            Endpoint::Instagram { .. } => {
                let who = if agent {
                    send::Sender::HumanAgent
                } else {
                    send::Sender::Bot
                };
                send::request_bodies(&message.recipient, &message.message, who)
            }
            Endpoint::Connexease { .. } => {
                vec![connexease::reply_body(&message.recipient, &message.message)]
            }
        };
        let parts = requests.len() as u32;
        if parts == 0 {
            self.storage
                .record_failed(message, "the message is empty")?;
            return Ok(true);
        }
        let mut progress = message.clone();
        for body in requests.into_iter().skip(message.sent_parts as usize) {
            self.storage.mark_in_flight(&message.id).await?;
            let attempt = match endpoint {
                Endpoint::Instagram { .. } => self.send_instagram(endpoint, &body).await,
                Endpoint::Connexease { .. } => {
                    self.send_connexease(&message.account, endpoint, &body)
                        .await
                }
            };
            match attempt {
                Attempt::Sent(channel_id) => {
                    self.storage.record_sent(&progress, &channel_id, parts)?;
                    progress.sent_parts += 1;
                }
                Attempt::Retry(reason) => {
                    self.storage.clear_in_flight(&message.id)?;
                    self.schedule_retry(&message.id, &reason);
                    return Ok(false);
                }
                Attempt::Failed(reason) => {
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

    fn schedule_retry(&self, id: &str, reason: &str) {
        let mut backoff = self.backoff.lock().expect("backoff lock");
        let entry = backoff.entry(id.to_string()).or_insert(Backoff {
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
            message = id,
            attempts = entry.attempts,
            "send will be retried: {reason}"
        );
    }

    async fn send_instagram(&self, endpoint: &Endpoint, body: &Value) -> Attempt {
        let Endpoint::Instagram {
            ig_user_id,
            access_token,
            api_base_url,
            api_version,
        } = endpoint
        else {
            unreachable!("called for Instagram endpoints")
        };
        let Some(token) = access_token else {
            return Attempt::Failed("the account has no access token".into());
        };
        let url = format!(
            "{}/{api_version}/{ig_user_id}/messages",
            api_base_url.trim_end_matches('/')
        );
        let answer = match self
            .client
            .post(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                send::read_answer(status, &response.bytes().await.unwrap_or_default())
            }
            Err(e) => return failed_request(e),
        };
        match answer {
            Answer::Sent { message_id } => Attempt::Sent(message_id),
            Answer::Retry { reason } => Attempt::Retry(reason),
            Answer::OutsideWindow => Attempt::Failed(OUTSIDE_WINDOW.into()),
            Answer::TokenExpired { reason } => {
                tracing::error!(
                    "an Instagram access token no longer works; reconnect the account: {reason}"
                );
                Attempt::Failed(format!(
                    "the account's access token expired or was revoked; reconnect it ({reason})"
                ))
            }
            Answer::Refused { reason } => Attempt::Failed(reason),
        }
    }

    /// Posts a reply to Connexease, logging in (JWT) when needed and once
    /// more after a 401.
    async fn send_connexease(&self, account: &str, endpoint: &Endpoint, body: &Value) -> Attempt {
        let Endpoint::Connexease {
            api_base_url,
            reply_path,
            ..
        } = endpoint
        else {
            unreachable!("called for Connexease endpoints")
        };
        let url = format!("{}{}", api_base_url.trim_end_matches('/'), reply_path);
        for refresh in [false, true] {
            let authorization = match self.connexease_auth(account, endpoint, refresh).await {
                Ok(header) => header,
                Err(attempt) => return attempt,
            };
            let response = match self
                .client
                .post(&url)
                .header("authorization", authorization)
                .json(body)
                .send()
                .await
            {
                Ok(response) => response,
                Err(e) => return failed_request(e),
            };
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            match status {
                200..=299 => {
                    let id = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["uuid"].as_str().map(String::from));
                    return Attempt::Sent(
                        id.unwrap_or_else(|| format!("connexease:{}", uuid::Uuid::now_v7())),
                    );
                }
                401 if !refresh => continue,
                429 | 500..=599 => return Attempt::Retry(format!("HTTP {status}: {text}")),
                _ => return Attempt::Failed(format!("Connexease answered HTTP {status}: {text}")),
            }
        }
        Attempt::Failed("Connexease refused the credentials (HTTP 401 after a fresh login)".into())
    }

    async fn connexease_auth(
        &self,
        account: &str,
        endpoint: &Endpoint,
        refresh: bool,
    ) -> Result<String, Attempt> {
        let Endpoint::Connexease {
            api_base_url,
            username,
            password,
            api_token,
            ..
        } = endpoint
        else {
            unreachable!("called for Connexease endpoints")
        };
        if let Some(token) = api_token {
            return Ok(format!("Bearer {token}"));
        }
        let mut cache = self.jwt.lock().await;
        if !refresh && let Some(token) = cache.get(account) {
            return Ok(format!("JWT {token}"));
        }
        let (Some(username), Some(password)) = (username, password) else {
            return Err(Attempt::Failed(
                "the Connexease account has neither an api_token nor username and password".into(),
            ));
        };
        let login = format!("{}/jwt/", api_base_url.trim_end_matches('/'));
        let response = self
            .client
            .post(login)
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .map_err(|e| Attempt::Retry(format!("Connexease login: {e}")))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (status, body["token"].as_str()) {
            (200..=299, Some(token)) => {
                cache.insert(account.to_string(), token.to_string());
                Ok(format!("JWT {token}"))
            }
            (429 | 500..=599, _) => Err(Attempt::Retry(format!("Connexease login: HTTP {status}"))),
            _ => Err(Attempt::Failed(format!(
                "Connexease login refused (HTTP {status}); check username and password"
            ))),
        }
    }
}
