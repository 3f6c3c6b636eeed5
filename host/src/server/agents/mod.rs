//! The agent API: each agent, by their own token, sees their offers and
//! conversations, answers, transfers and closes them, sets their status,
//! and follows it all live ([`stream`]). Supervisors also see their queues.
//!
//! Conversations are addressed as `/conversations/{account}/{customer}`.
//! Every change is an engine turn (see `engine::agents`), so it is ordered
//! with the customer's own messages.

mod forward;
mod stream;
mod views;

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, ApiJson};
use crate::engine::Engine;
use crate::engine::agents::{AgentAction, TransferTo};
use crate::flow::model::Destination;
use crate::model::agent::{Agent, AgentStatus};
use crate::model::conversation_key;
use crate::plugin::{Attachment, OutgoingMessage, QuickReply};
use crate::routing::queues::Router as QueueRouter;
use crate::routing::queues::router::status_news;
pub use views::public_view;

/// What the agent API works with; present when a flow is loaded.
pub struct AgentDesk {
    pub engine: Arc<Engine>,
    pub router: Arc<QueueRouter>,
    /// Held while an agent's capacity is checked and a conversation given
    /// to them, so two at once cannot both take the last free place.
    assigning: tokio::sync::Mutex<()>,
    /// Turns true at shutdown: live streams end.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Open live streams per agent.
    streams: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl AgentDesk {
    pub fn new(
        engine: Arc<Engine>,
        router: Arc<QueueRouter>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        AgentDesk {
            engine,
            router,
            assigning: tokio::sync::Mutex::new(()),
            stopping,
            streams: Default::default(),
        }
    }
}

/// Instagram's limit on quick replies in one message.
const MAX_QUICK_REPLIES: usize = 13;
/// Live streams one agent may hold open at once (tabs, devices).
pub const MAX_STREAMS_PER_AGENT: usize = 8;

/// SHA-256 of a token, hex: how storage knows it.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn router(state: AppState) -> Router<AppState> {
    let conversation = "/conversations/{account}/{customer}";
    // Changes run where the conversation's turns run (several nodes).
    let actions = Router::new()
        .route(&format!("{conversation}/{{action}}"), post(bodiless))
        .route(&format!("{conversation}/reply"), post(reply))
        .route(&format!("{conversation}/transfer"), post(transfer))
        .route(&format!("{conversation}/close"), post(close))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            forward::to_owner,
        ));
    Router::new()
        .route("/me", get(me))
        .route("/status", put(set_status))
        .route("/conversations", get(views::my_conversations))
        .route(conversation, get(views::conversation))
        .merge(actions)
        .route("/queues", get(views::queues))
        .route("/analytics", get(views::analytics))
        .route("/stream", get(stream::stream))
        .route_layer(middleware::from_fn_with_state(state, require_agent))
}

/// Finds the agent by their bearer token (by its SHA-256; the token itself
/// is never stored) and hands them to the handler.
async fn require_agent(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = super::auth::bearer(&request).map(token_digest);
    let Some(digest) = presented else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the agent API needs `Authorization: Bearer <agent token>`",
        )
            .into_response();
    };
    match state.runner.storage.agent_by_token(&digest).await {
        Ok(Some(agent)) => {
            request.extensions_mut().insert(agent);
            next.run(request).await
        }
        Ok(None) => ApiError::forbidden("no agent has this token").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn desk(state: &AppState) -> Result<&AgentDesk, ApiError> {
    state.desk.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_flow",
            "no flow is loaded, so there are no queues",
        )
    })
}

async fn me(Extension(agent): Extension<Agent>) -> Json<Value> {
    Json(public_view(&agent))
}

#[derive(Deserialize)]
struct StatusChange {
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    ApiJson(change): ApiJson<StatusChange>,
) -> Result<Json<Value>, ApiError> {
    let desk = desk(&state)?;
    let status = AgentStatus::parse(&change.status)
        .map_err(|e| ApiError::bad_request(format!("`status`: {e}")))?;
    let now = desk.engine.now_ms();
    let updated = state
        .runner
        .storage
        .modify_agent(&agent.id, move |agent| {
            if agent.status != status {
                if status == AgentStatus::Online {
                    agent.last_activity_ms = now;
                    agent.missed_offers = 0;
                }
                agent.status = status;
                agent.status_since_ms = now;
            }
        })
        .await?
        .ok_or_else(|| ApiError::not_found("this agent was removed"))?;
    desk.engine.feed().publish(status_news(&updated)).await;
    desk.router.wake();
    Ok(Json(public_view(&updated)))
}

/// Runs one agent action on the conversation and answers with its new state.
async fn act(
    state: &AppState,
    agent: &Agent,
    (account, customer): (String, String),
    action: AgentAction,
) -> Result<Json<Value>, ApiError> {
    let desk = desk(state)?;
    let key = conversation_key(&account, &customer);
    let report = desk.engine.agent_turn(&key, agent, action).await?;
    desk.router.wake();
    Ok(Json(json!({
        "conversation": key,
        "position": report.position,
        "messages": report.messages.iter().map(|m| &m.id).collect::<Vec<_>>(),
        "notes": report.notes,
    })))
}

/// Like [`act`] for actions that give the conversation to `taker`: their
/// capacity (the queue's `max_concurrent_chats` plus its `extra_chats`) is
/// checked under the assigning lock, and under the store's hold on the
/// agent where several nodes share it.
async fn assign_to(
    state: &AppState,
    agent: &Agent,
    taker: &Agent,
    conversation: (String, String),
    action: AgentAction,
) -> Result<Json<Value>, ApiError> {
    let desk = desk(state)?;
    let _assigning = desk.assigning.lock().await;
    let hold = state.runner.storage.hold_agent(&taker.id).await?;
    let answer = assign_within_capacity(state, agent, taker, conversation, action).await;
    hold.release().await;
    answer
}

async fn assign_within_capacity(
    state: &AppState,
    agent: &Agent,
    taker: &Agent,
    conversation: (String, String),
    action: AgentAction,
) -> Result<Json<Value>, ApiError> {
    let desk = desk(state)?;
    let key = conversation_key(&conversation.0, &conversation.1);
    let current = state
        .runner
        .storage
        .conversation(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no conversation {}", conversation.1)))?;
    if let Some(queue) = current.position.queue()
        && let Some(settings) = desk.engine.flow().flow.queues.get(queue)
    {
        let held = state.runner.storage.assigned_to(&taker.id).await?.len() as u32;
        let limit = settings.max_concurrent_chats + settings.extra_chats;
        if held >= limit {
            return Err(ApiError::conflict(format!(
                "{} already answers {held} conversations, the most queue `{queue}` allows ({} plus {} extra)",
                taker.id, settings.max_concurrent_chats, settings.extra_chats
            )));
        }
    }
    let answer = act(state, agent, conversation, action).await?;
    let now = desk.engine.now_ms();
    state
        .runner
        .storage
        .modify_agent(&taker.id, move |agent| {
            agent.last_activity_ms = now;
            agent.missed_offers = 0;
        })
        .await?;
    Ok(answer)
}

type Conversation = Path<(String, String)>;

/// The actions without a body: `accept`, `decline`, `pickup`, `takeover`,
/// `read` (`POST …/{account}/{customer}/{action}`).
async fn bodiless(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    Path((account, customer, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let at = (account, customer);
    match name.as_str() {
        "accept" => assign_to(&state, &agent, &agent, at, AgentAction::Accept).await,
        "pickup" => assign_to(&state, &agent, &agent, at, AgentAction::Pickup).await,
        "takeover" => assign_to(&state, &agent, &agent, at, AgentAction::TakeOver).await,
        "decline" => act(&state, &agent, at, AgentAction::Decline).await,
        "read" => act(&state, &agent, at, AgentAction::Read).await,
        other => Err(ApiError::not_found(format!(
            "no action `{other}`: accept, decline, pickup, takeover, read, reply, transfer or close"
        ))),
    }
}

/// An agent's message: text, quick replies, attachments by URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    quick_replies: Vec<QuickReply>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

async fn reply(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    Path(at): Conversation,
    ApiJson(body): ApiJson<ReplyBody>,
) -> Result<Json<Value>, ApiError> {
    let text = body.text.filter(|t| !t.trim().is_empty());
    if text.is_none() && body.attachments.is_empty() {
        return Err(ApiError::bad_request(
            "a reply needs `text` or `attachments`",
        ));
    }
    check_reply(text.as_deref(), &body.quick_replies, &body.attachments)?;
    let message = OutgoingMessage {
        text,
        quick_replies: body.quick_replies,
        attachments: body.attachments,
        ..Default::default()
    };
    act(&state, &agent, at, AgentAction::Reply(message)).await
}

/// What one agent message may carry: what Instagram can send, so nothing
/// is stored that could not go out.
fn check_reply(
    text: Option<&str>,
    quick_replies: &[QuickReply],
    attachments: &[Attachment],
) -> Result<(), ApiError> {
    let max_text = crate::engine::MAX_OUTBOUND_TEXT_BYTES;
    if let Some(text) = text
        && text.len() > max_text
    {
        return Err(ApiError::bad_request(format!(
            "`text` is {} bytes; at most {max_text}",
            text.len()
        )));
    }
    if quick_replies.len() > MAX_QUICK_REPLIES {
        return Err(ApiError::bad_request(format!(
            "{} quick replies; Instagram shows at most {MAX_QUICK_REPLIES}",
            quick_replies.len()
        )));
    }
    for (i, reply) in quick_replies.iter().enumerate() {
        if reply.title.trim().is_empty() || reply.title.len() > 80 || reply.payload.len() > 1000 {
            return Err(ApiError::bad_request(format!(
                "`quick_replies[{i}]`: a title of 1 to 80 bytes and a payload of at most 1,000"
            )));
        }
    }
    if attachments.len() > crate::engine::MAX_ATTACHMENTS {
        return Err(ApiError::bad_request(format!(
            "{} attachments; at most {}",
            attachments.len(),
            crate::engine::MAX_ATTACHMENTS
        )));
    }
    for (i, attachment) in attachments.iter().enumerate() {
        let web = attachment.url.starts_with("https://") || attachment.url.starts_with("http://");
        if !web || attachment.url.len() > 2048 {
            return Err(ApiError::bad_request(format!(
                "`attachments[{i}].url` must be an http(s) URL of at most 2,048 bytes"
            )));
        }
    }
    Ok(())
}

/// Exactly one of the fields: where the conversation goes
/// (`default_queue: true` is the connector's default queue).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    queue: Option<String>,
    agent: Option<String>,
    decision_tree: Option<String>,
    chatbot: Option<String>,
    #[serde(default)]
    default_queue: bool,
}

async fn transfer(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    Path(at): Conversation,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<Json<Value>, ApiError> {
    let named = (body.queue, body.agent, body.decision_tree, body.chatbot);
    let to = match named {
        (None, None, None, None) if body.default_queue => TransferTo::DefaultQueue,
        _ if body.default_queue => {
            return Err(ApiError::bad_request(
                "name exactly one of `queue`, `agent`, `decision_tree`, `chatbot`, `default_queue`",
            ));
        }
        (Some(queue), None, None, None) => TransferTo::Queue(queue),
        (None, Some(other), None, None) => {
            let taker = eligible_taker(&state, &other, &at).await?;
            let action = AgentAction::Transfer(TransferTo::Agent(other));
            return assign_to(&state, &agent, &taker, at, action).await;
        }
        (None, None, Some(tree), None) => TransferTo::Flow(Destination::DecisionTree(tree)),
        (None, None, None, Some(bot)) => TransferTo::Flow(Destination::Chatbot(bot)),
        _ => {
            return Err(ApiError::bad_request(
                "name exactly one of `queue`, `agent`, `decision_tree`, `chatbot`, `default_queue`",
            ));
        }
    };
    act(&state, &agent, at, AgentAction::Transfer(to)).await
}

/// The agent a conversation is transferred to: online, in its queue.
async fn eligible_taker(
    state: &AppState,
    id: &str,
    (account, customer): &(String, String),
) -> Result<Agent, ApiError> {
    let taker = state
        .runner
        .storage
        .agent(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent `{id}`")))?;
    let key = conversation_key(account, customer);
    let queue = state
        .runner
        .storage
        .conversation(&key)
        .await?
        .and_then(|c| c.position.queue().map(String::from));
    if let Some(queue) = queue
        && taker.serves(&queue).is_none()
    {
        return Err(ApiError::conflict(format!(
            "{id} does not serve queue `{queue}`"
        )));
    }
    if taker.status != AgentStatus::Online {
        return Err(ApiError::conflict(format!(
            "{id} is {}, not online",
            taker.status
        )));
    }
    Ok(taker)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    cause: String,
    #[serde(default)]
    answered: bool,
}

async fn close(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    Path(at): Conversation,
    ApiJson(body): ApiJson<CloseBody>,
) -> Result<Json<Value>, ApiError> {
    if body.cause.trim().is_empty() || body.cause.len() > 200 {
        return Err(ApiError::bad_request("`cause` must be 1 to 200 bytes"));
    }
    let desk = desk(&state)?;
    let key = conversation_key(&at.0, &at.1);
    let queue = state
        .runner
        .storage
        .conversation(&key)
        .await?
        .and_then(|c| c.position.queue().map(String::from));
    let action = AgentAction::Close {
        cause: body.cause,
        answered: body.answered,
    };
    let Json(mut answer) = act(&state, &agent, at, action).await?;
    let now = desk.engine.now_ms();
    state
        .runner
        .storage
        .modify_agent(&agent.id, move |agent| agent.last_activity_ms = now)
        .await?;
    let auto_assign = queue
        .as_ref()
        .and_then(|q| desk.engine.flow().flow.queues.get(q).cloned())
        .is_some_and(|q| q.close_auto_assign);
    if let (true, Some(queue)) = (auto_assign, queue) {
        answer["next"] = json!(take_next(&state, &agent, &queue).await);
    }
    Ok(Json(answer))
}

/// `close_auto_assign`: the agent who closed gets the longest-waiting
/// conversation of the queue at once, if they have room; its key, if any.
async fn take_next(state: &AppState, agent: &Agent, queue: &str) -> Option<String> {
    let waiting = state.runner.storage.waiting().await.ok()?;
    let (key, _) = waiting
        .into_iter()
        .filter(|(_, w)| w.queue == queue)
        .min_by_key(|(_, w)| w.since_ms)?;
    let (account, customer) = key.split_once('\0')?;
    let at = (account.to_string(), customer.to_string());
    match assign_to(state, agent, agent, at, AgentAction::Pickup).await {
        Ok(_) => Some(key),
        Err(e) => {
            tracing::info!(agent = %agent.id, "no conversation given on close: {}", e.message);
            None
        }
    }
}
