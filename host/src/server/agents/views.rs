//! What the agent API shows: an agent, a conversation's summary and
//! history, an agent's list, a supervisor's queues and their analytics.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::desk;
use crate::engine::agents::HUMAN_AGENT_WINDOW_MS;
use crate::model::agent::{Agent, Role};
use crate::model::{ConversationState, Position, conversation_key};
use crate::server::AppState;
use crate::server::error::ApiError;

/// Waiting conversations listed for pickup, at most.
const WAITING_LISTED: usize = 100;

/// An agent without their token's digest.
pub fn public_view(agent: &Agent) -> Value {
    json!({
        "id": agent.id,
        "name": agent.name,
        "role": agent.role,
        "language": agent.language,
        "queues": agent.queues,
        "status": agent.status,
        "status_since_ms": agent.status_since_ms,
        "missed_offers": agent.missed_offers,
    })
}

/// One line of a list: who, where, what is unread, how long may we answer.
fn summary(state: &ConversationState, now: u64) -> Value {
    let last = state.last_inbound_ms.unwrap_or(state.started_at_ms);
    let offer_until = match &state.position {
        Position::Queued {
            offer: Some(offer), ..
        } => Some(offer.until_ms),
        _ => None,
    };
    json!({
        "key": state.key(),
        "account": state.account,
        "customer": state.customer,
        "name": state.contact.name,
        "session": state.session,
        "language": state.language,
        "queue": state.position.queue(),
        "position": state.position,
        "unread": state.unread,
        "last_inbound_ms": state.last_inbound_ms,
        "window_left_ms": (last + HUMAN_AGENT_WINDOW_MS).saturating_sub(now),
        "offer_until_ms": offer_until,
        "ending": state.ending,
    })
}

/// My conversations, the offers ringing for me, and what waits in my queues.
pub async fn my_conversations(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
) -> Result<Json<Value>, ApiError> {
    let now = desk(&state)?.engine.now_ms();
    let storage = &state.runner.storage;
    let mut mine = Vec::new();
    for key in storage.assigned_to(&agent.id).await? {
        if let Some(conversation) = storage.conversation(&key).await? {
            mine.push(summary(&conversation, now));
        }
    }
    // Sorted from the waiting index alone: only what is listed is loaded,
    // so a long queue does not make every list request read all of it.
    let mut index: Vec<_> = storage
        .waiting()
        .await?
        .into_iter()
        .filter(|(_, w)| agent.serves(&w.queue).is_some())
        .collect();
    index.sort_by_key(|(_, w)| w.since_ms);
    let (ringing, others): (Vec<_>, Vec<_>) = index
        .into_iter()
        .partition(|(_, w)| w.offered_to.contains(&agent.id) && w.offer_until_ms > now);
    let mut offers = Vec::new();
    for (key, _) in ringing {
        offers.extend(storage.conversation(&key).await?.map(|c| summary(&c, now)));
    }
    let mut waiting = Vec::new();
    for (key, _) in others.into_iter().take(WAITING_LISTED) {
        waiting.extend(storage.conversation(&key).await?.map(|c| summary(&c, now)));
    }
    let closed = recently_closed(&state, &agent, now).await?;
    Ok(Json(json!({
        "now_ms": now,
        "conversations": mine,
        "offers": offers,
        "waiting": waiting,
        "closed": closed,
    })))
}

/// What the agent closed lately: each stays for its queue's
/// `closed_conversation_display_time` (or until the customer writes again).
async fn recently_closed(
    state: &AppState,
    agent: &Agent,
    now: u64,
) -> Result<Vec<Value>, ApiError> {
    let queues = &desk(state)?.engine.flow().flow.queues;
    let longest = queues
        .values()
        .map(|q| q.closed_conversation_display_time)
        .max()
        .unwrap_or(0);
    let storage = &state.runner.storage;
    let mut closed = Vec::new();
    for (key, at_ms) in storage
        .closed_by(&agent.id, now.saturating_sub(longest * 1000))
        .await?
    {
        let Some(conversation) = storage.conversation(&key).await? else {
            continue;
        };
        let Some(ending) = conversation.ending.as_ref().filter(|e| e.at_ms == at_ms) else {
            continue;
        };
        let shown_ms = ending
            .queue
            .as_ref()
            .and_then(|q| queues.get(q))
            .map_or(0, |q| q.closed_conversation_display_time * 1000);
        if conversation.position == Position::Ended && at_ms + shown_ms >= now {
            closed.push(summary(&conversation, now));
        }
    }
    Ok(closed)
}

/// One conversation with its whole history (the bot's part too), for an
/// agent of its queue or the agent who last answered it.
pub async fn conversation(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    Path((account, customer)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let now = desk(&state)?.engine.now_ms();
    let key = conversation_key(&account, &customer);
    let storage = &state.runner.storage;
    let conversation = storage
        .conversation(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no conversation with {customer}")))?;
    let in_my_queue = conversation
        .position
        .queue()
        .is_some_and(|q| agent.serves(q).is_some());
    let was_mine = conversation.last_agent.as_deref() == Some(agent.id.as_str());
    if !in_my_queue && !was_mine {
        return Err(ApiError::forbidden(
            "this conversation is not in a queue you serve",
        ));
    }
    let history = storage.history(&key).await?;
    let mut body = summary(&conversation, now);
    body["history"] = json!(history);
    body["last_message"] = json!(conversation.last_message);
    body["contact"] = json!(conversation.contact);
    let queue_key = conversation.position.queue().or(conversation
        .ending
        .as_ref()
        .and_then(|e| e.queue.as_deref()));
    let flow = desk(&state).ok().map(|desk| desk.engine.flow());
    if let Some(queue) = queue_key.and_then(|q| flow.as_ref()?.flow.queues.get(q)) {
        body["queue_info"] = json!({
            "name": queue.name,
            "logo_url": queue.logo_url,
            "call_me_text": queue.call_me_text,
            "notes": queue.notes,
        });
    }
    Ok(Json(body))
}

/// For supervisors: each queue they serve, with its waiting count, its
/// longest wait and its agents by status.
pub async fn queues(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
) -> Result<Json<Value>, ApiError> {
    if agent.role != Role::Supervisor {
        return Err(ApiError::forbidden("only supervisors see the queues"));
    }
    let now = desk(&state)?.engine.now_ms();
    let storage = &state.runner.storage;
    let agents = storage.agents().await?;
    let mut waiting: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    for (_, waits) in storage.waiting().await? {
        let entry = waiting.entry(waits.queue).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(now.saturating_sub(waits.since_ms));
    }
    let queues: Vec<Value> = agent
        .queues
        .iter()
        .map(|membership| {
            let name = &membership.queue;
            let (count, longest) = waiting.get(name).copied().unwrap_or_default();
            let mut by_status: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for member in agents.iter().filter(|a| a.serves(name).is_some()) {
                by_status
                    .entry(member.status.to_string())
                    .or_default()
                    .push(&member.id);
            }
            json!({"queue": name, "waiting": count, "longest_wait_ms": longest, "agents": by_status})
        })
        .collect();
    Ok(Json(json!({ "queues": queues })))
}

/// For supervisors: a period's analytics, with the queues they serve and
/// the agents of those queues (the flow-wide sections in full).
pub async fn analytics(
    State(state): State<AppState>,
    Extension(agent): Extension<Agent>,
    Query(query): Query<crate::server::admin::analytics::PeriodQuery>,
) -> Result<Json<crate::analytics::report::Report>, ApiError> {
    if agent.role != Role::Supervisor {
        return Err(ApiError::forbidden("only supervisors see analytics"));
    }
    let period = query.period(&state)?;
    let storage = &state.runner.storage;
    let mut report = crate::analytics::report(storage, &period).await?;
    let serves = |someone: &Agent| {
        agent
            .queues
            .iter()
            .any(|m| someone.serves(&m.queue).is_some())
    };
    let colleagues: Vec<String> = storage
        .agents()
        .await?
        .into_iter()
        .filter(|a| serves(a))
        .map(|a| a.id)
        .collect();
    report.queues.retain(|q| agent.serves(&q.queue).is_some());
    report.agents.retain(|a| colleagues.contains(&a.agent));
    Ok(Json(report))
}
