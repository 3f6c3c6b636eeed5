//! `POST /chatbots/{name}/callback`: a third-party bot's later answer.
//!
//! The URL the engine hands the bot carries the conversation and its hash,
//! so a forged or stale callback is refused from the URL alone, before any
//! plugin runs. The chatbot's adapter then reads the body
//! (`parse-callback`), and the answer is written to the inbox, durable
//! before the 2xx like a webhook; the conversation's lane acts on it as a
//! turn. A bot whose callback URL cannot carry a query (Rasa's is fixed in
//! its configuration) names the conversation and hash in the body instead.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::engine::Engine;
use crate::engine::chatbot::{BotAnswer, CallbackVerdict};
use crate::intake::InboxRecord;
use crate::model::{conversation_key, parse_conversation_id};
use crate::plugin::{BotCallback, Contact, InboundMessage};
use crate::server::AppState;
use crate::server::error::ApiError;

/// Largest callback body: a bot's answer is a few messages.
pub const MAX_CALLBACK_BYTES: usize = 64 * 1024;

/// Callback bodies one server's adapters read at once
/// ([`AppState::callback_parsing`]). Past it callbacks are refused with 429
/// rather than queued, so a flood of them cannot take the plugin runtime
/// from the conversations.
pub const CALLBACKS_PARSED_AT_ONCE: usize = 8;

/// Callbacks one visit to a chatbot (one hash) may post per minute: a bot
/// holding a valid hash still cannot fill the inbox or flood the customer.
const CALLBACKS_PER_MINUTE: u32 = 60;

/// Longest `Idempotency-Key` kept.
const MAX_IDEMPOTENCY_KEY: usize = 200;

#[derive(Deserialize)]
pub(super) struct Named {
    conversation: Option<String>,
    hash: Option<String>,
}

pub(super) async fn receive(
    state: State<AppState>,
    Path(chatbot): Path<String>,
    named: Query<Named>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let answer = take_callback(state, &chatbot, named, headers, body).await;
    let outcome = match &answer {
        Ok(Json(body)) if body["status"] == "duplicate" => "duplicate",
        Ok(_) => "accepted",
        Err(e) => match e.code {
            "forbidden" | "not_found" => "refused",
            "moved_on" => "moved_on",
            "busy" => "busy",
            "rate_limited" => "rate_limited",
            "storage" | "engine" | "no_flow" => "failed",
            _ => "unreadable",
        },
    };
    let labels = [("chatbot", chatbot), ("outcome", outcome.to_string())];
    metrics::counter!(crate::telemetry::CHATBOT_CALLBACKS, &labels).increment(1);
    answer
}

async fn take_callback(
    State(state): State<AppState>,
    chatbot: &str,
    Query(named): Query<Named>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let intake = state.intake.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_flow",
            "no flow is loaded",
        )
    })?;
    let engine = intake.engine();
    let named = named.conversation.zip(named.hash);
    let key = named
        .as_ref()
        .and_then(|(conversation, _)| parse_conversation_id(conversation))
        .map(|(account, customer, _)| conversation_key(account, customer));
    let Some(flow) = engine.callback_flow(chatbot, key.as_deref()).await else {
        return Err(ApiError::not_found(format!(
            "no chatbot is named `{chatbot}`"
        )));
    };
    if let Some((conversation, hash)) = &named {
        admit(engine, chatbot, conversation, hash).await?;
        within_rate(hash)?;
    }
    let parsed = read_body(&state.callback_parsing, engine, &flow, chatbot, &body).await?;
    let (conversation, hash) = match named {
        Some(named) => agree(named, &parsed)?,
        None => {
            admit(engine, chatbot, &parsed.conversation, &parsed.hash).await?;
            within_rate(&parsed.hash)?;
            (parsed.conversation.clone(), parsed.hash.clone())
        }
    };
    let (account, customer, session) =
        parse_conversation_id(&conversation).expect("admitted ids parse");
    let record = InboxRecord {
        account: account.to_string(),
        contact: Contact {
            id: customer.to_string(),
            ..Contact::default()
        },
        message: InboundMessage {
            id: format!("callback-{}", uuid::Uuid::now_v7()),
            timestamp_ms: intake.now_ms(),
            ..InboundMessage::default()
        },
        handover: None,
        bot: Some(Box::new(BotAnswer {
            chatbot: chatbot.to_string(),
            session,
            hash: hash.clone(),
            turn: parsed.turn,
        })),
    };
    let dedupe = format!(
        "chatbot:{chatbot}:{hash}:{}",
        idempotency_key(&headers, &body)
    );
    let accepted = intake.accept(&[(dedupe, record)]).await?;
    tracing::info!(
        chatbot,
        conversation = %crate::plugin::capabilities::escape_controls(&conversation),
        duplicate = accepted == 0,
        "chatbot callback accepted"
    );
    let status = if accepted == 0 {
        "duplicate"
    } else {
        "accepted"
    };
    Ok(Json(json!({ "status": status })))
}

/// Refuses a callback whose conversation and hash do not name a
/// conversation talking to `chatbot` now. A wrong hash and an unknown
/// conversation get the same answer, so neither tells an outsider anything.
async fn admit(
    engine: &Engine,
    chatbot: &str,
    conversation: &str,
    hash: &str,
) -> Result<(), ApiError> {
    let forged = || {
        ApiError::forbidden(format!(
            "no conversation talking to chatbot `{chatbot}` has this conversation and hash"
        ))
    };
    let (account, customer, session) = parse_conversation_id(conversation).ok_or_else(forged)?;
    let key = conversation_key(account, customer);
    match engine.check_callback(&key, chatbot, session, hash).await? {
        CallbackVerdict::Current => Ok(()),
        CallbackVerdict::Refused => Err(forged()),
        CallbackVerdict::MovedOn(where_it_is) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "moved_on",
            format!(
                "conversation `{conversation}` {where_it_is}; chatbot `{chatbot}` no longer answers it"
            ),
        )),
    }
}

/// Refuses a hash's callbacks past [`CALLBACKS_PER_MINUTE`]. Only admitted
/// hashes are counted, so the map holds live conversations only.
fn within_rate(hash: &str) -> Result<(), ApiError> {
    const WINDOW: Duration = Duration::from_secs(60);
    static RECENT: LazyLock<Mutex<HashMap<String, (Instant, u32)>>> =
        LazyLock::new(Default::default);
    let now = Instant::now();
    let mut recent = RECENT.lock().expect("callback rate lock");
    if recent.len() > 10_000 {
        recent.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
    }
    let (since, count) = recent.entry(hash.to_string()).or_insert((now, 0));
    if now.duration_since(*since) >= WINDOW {
        (*since, *count) = (now, 0);
    }
    *count += 1;
    if *count > CALLBACKS_PER_MINUTE {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("more than {CALLBACKS_PER_MINUTE} callbacks a minute for this conversation"),
        ));
    }
    Ok(())
}

/// The adapter's reading of the body, at most [`CALLBACKS_PARSED_AT_ONCE`] at once.
async fn read_body(
    parsing: &Semaphore,
    engine: &Engine,
    flow: &crate::engine::versions::LiveFlow,
    chatbot: &str,
    body: &[u8],
) -> Result<BotCallback, ApiError> {
    let _permit = parsing.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "too many callbacks at once; try again shortly",
        )
    })?;
    engine
        .parse_callback(flow, chatbot, body)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                e.code(),
                format!("chatbot `{chatbot}`'s adapter could not read the callback: {e}"),
            )
        })
}

/// The URL's conversation and hash, when the body names none or the same.
fn agree(
    (conversation, hash): (String, String),
    parsed: &BotCallback,
) -> Result<(String, String), ApiError> {
    let differs = |body: &str, url: &str| !body.is_empty() && body != url;
    if differs(&parsed.conversation, &conversation) {
        return Err(ApiError::bad_request(format!(
            "the body names conversation `{}` but the URL `{conversation}`",
            parsed.conversation
        )));
    }
    if differs(&parsed.hash, &hash) {
        return Err(ApiError::bad_request(
            "the body's hash is not the URL's".to_string(),
        ));
    }
    Ok((conversation, hash))
}

/// What makes two callbacks the same one: the bot's `Idempotency-Key`
/// header if it sends one, else the body's digest (a bot that retries a
/// callback sends the same bytes).
fn idempotency_key(headers: &HeaderMap, body: &[u8]) -> String {
    match headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_IDEMPOTENCY_KEY)
    {
        Some(key) => format!("key:{key}"),
        None => format!("sha256:{:x}", Sha256::digest(body)),
    }
}
