//! Talking to the channels: the request bodies of one outbox message, and
//! one attempt to send one of them (Instagram's Send API, or Connexease's
//! messages API with its JWT login), classified as sent, worth a retry, or
//! failed for good.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::channels::instagram::send::{self, Answer};
use crate::channels::{cause_chain, connexease};
use crate::connections::Connections;
use crate::flow::model::{Account, CONNECTED_TOKEN, Flow, resolve_secret};
use crate::model::OutboxMessage;

/// The token an Instagram account sends with.
#[derive(Clone, Debug)]
pub enum AccessToken {
    /// None is set: nothing can be sent.
    Missing,
    /// Written in the flow (or its environment).
    Fixed(String),
    /// The token of the account connected from the admin page, looked up
    /// at each send (it is refreshed, or reconnected, while flowhost runs).
    Connected,
}

/// Where one account's replies go.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Instagram {
        ig_user_id: String,
        access_token: AccessToken,
        api_base_url: String,
        api_version: String,
        /// How long an uncertain send waits for its echo (see the flow's
        /// `settle_by_echo_seconds`); `None`: never resent.
        echo_grace_ms: Option<u64>,
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
                    settle_by_echo_seconds,
                    ..
                } => Endpoint::Instagram {
                    echo_grace_ms: settle_by_echo_seconds.map(|s| s.saturating_mul(1000)),
                    ig_user_id: ig_user_id.clone(),
                    access_token: match access_token.as_deref() {
                        Some(CONNECTED_TOKEN) => AccessToken::Connected,
                        _ => resolve_secret(access_token)
                            .map_or(AccessToken::Missing, AccessToken::Fixed),
                    },
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
pub enum Attempt {
    /// The channel took it, under this id.
    Sent(String),
    Retry(String),
    /// Sent, with no answer: the channel may or may not have taken it.
    Uncertain(String),
    Failed(String),
}

/// A request that got no answer. A failure to connect means nothing was
/// sent: retry. Anything later (a time-out while the channel was working)
/// may have been delivered: recorded as uncertain, never sent twice.
fn failed_request(error: reqwest::Error) -> Attempt {
    if error.is_connect() {
        Attempt::Retry(cause_chain(&error))
    } else {
        Attempt::Uncertain(cause_chain(&error))
    }
}

/// The channels' HTTP client, endpoints and logins.
pub struct Channels {
    client: reqwest::Client,
    endpoints: HashMap<String, Endpoint>,
    /// account -> Connexease JWT (valid 24 hours; refreshed on 401).
    jwt: tokio::sync::Mutex<HashMap<String, String>>,
    /// The tokens of accounts connected from the admin page.
    connections: Option<Arc<Connections>>,
}

impl Channels {
    pub fn new(endpoints: HashMap<String, Endpoint>) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("flowhost/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Channels {
            client,
            endpoints,
            jwt: Default::default(),
            connections: None,
        }
    }

    /// Sends as connected accounts with the tokens of `connections`.
    pub fn with_connections(mut self, connections: Arc<Connections>) -> Self {
        self.connections = Some(connections);
        self
    }

    /// The request bodies `message` goes out as (a long text is several);
    /// `None` when its account is not in the flow.
    pub fn bodies(&self, message: &OutboxMessage) -> Option<Vec<Value>> {
        Some(match self.endpoints.get(&message.account)? {
            Endpoint::Instagram { .. } => {
                let who = if message.sender == "agent" {
                    send::Sender::HumanAgent
                } else {
                    send::Sender::Bot
                };
                send::request_bodies(&message.recipient, &message.message, who)
            }
            Endpoint::Connexease { .. } => {
                vec![connexease::reply_body(&message.recipient, &message.message)]
            }
        })
    }

    /// How long an uncertain send of `account` may wait for its echo.
    pub fn echo_grace_ms(&self, account: &str) -> Option<u64> {
        match self.endpoints.get(account)? {
            Endpoint::Instagram { echo_grace_ms, .. } => *echo_grace_ms,
            Endpoint::Connexease { .. } => None,
        }
    }

    /// The text part `part` of `message` goes out with (what its echo
    /// carries back).
    pub fn part_text(&self, message: &OutboxMessage, part: u32) -> Option<String> {
        let bodies = self.bodies(message)?;
        let body = bodies.get(part as usize)?;
        body["message"]["text"].as_str().map(String::from)
    }

    /// One attempt to send one body of `message`.
    pub async fn send(&self, message: &OutboxMessage, body: &Value) -> Attempt {
        match self.endpoints.get(&message.account) {
            Some(endpoint @ Endpoint::Instagram { .. }) => {
                self.send_instagram(endpoint, body).await
            }
            Some(endpoint @ Endpoint::Connexease { .. }) => {
                self.send_connexease(&message.account, endpoint, body).await
            }
            None => Attempt::Failed(format!("account `{}` is not in the flow", message.account)),
        }
    }

    async fn send_instagram(&self, endpoint: &Endpoint, body: &Value) -> Attempt {
        let Endpoint::Instagram {
            ig_user_id,
            access_token,
            api_base_url,
            api_version,
            ..
        } = endpoint
        else {
            unreachable!("called for Instagram endpoints")
        };
        let token = match access_token {
            AccessToken::Fixed(token) => token.clone(),
            AccessToken::Connected => match self.connected_token(ig_user_id) {
                Ok(token) => token,
                Err(why) => return Attempt::Failed(why),
            },
            AccessToken::Missing => {
                return Attempt::Failed("the account has no access token".into());
            }
        };
        let url = format!(
            "{}/{api_version}/{ig_user_id}/messages",
            api_base_url.trim_end_matches('/')
        );
        let answer = match self
            .client
            .post(url)
            .bearer_auth(&token)
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
            Answer::OutsideWindow => Attempt::Failed(super::OUTSIDE_WINDOW.into()),
            Answer::TokenExpired { reason } => {
                tracing::error!(
                    "an Instagram access token no longer works; reconnect the account: {reason}"
                );
                if let (AccessToken::Connected, Some(connections)) =
                    (access_token, &self.connections)
                {
                    connections.rejected(ig_user_id, &token, &reason).await;
                }
                Attempt::Failed(format!(
                    "the account's access token expired or was revoked; reconnect it ({reason})"
                ))
            }
            Answer::Refused { reason } => Attempt::Failed(reason),
        }
    }

    fn connected_token(&self, ig_user_id: &str) -> Result<String, String> {
        match &self.connections {
            Some(connections) => connections.token(ig_user_id),
            None => Err("connected accounts are not available here".into()),
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
            .map_err(|e| Attempt::Retry(format!("Connexease login: {}", cause_chain(&e))))?;
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
