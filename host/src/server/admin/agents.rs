//! Agents as operational data: created, changed, given a new token and
//! removed by an admin. A token is shown once, when it is made; storage
//! keeps only its SHA-256.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::model::agent::{Agent, AgentStatus, Membership, Role, is_agent_id};
use crate::server::AppState;
use crate::server::agents::{public_view, token_digest};
use crate::server::error::{ApiError, ApiJson};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, change, remove))
        .routes(routes!(new_token))
}

/// The fields an admin sets; all optional on a change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFields {
    id: Option<String>,
    name: Option<String>,
    role: Option<Role>,
    language: Option<String>,
    queues: Option<Vec<Membership>>,
    status: Option<String>,
}

#[utoipa::path(get, path = "/agents", tag = "agents", responses((status = 200, body = Object)))]
async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let agents = state.runner.storage.agents().await?;
    let agents: Vec<Value> = agents.iter().map(public_view).collect();
    Ok(Json(json!({ "agents": agents })))
}

#[utoipa::path(get, path = "/agents/{id}", tag = "agents", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 404, body = Object)))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(public_view(&existing(&state, &id).await?)))
}

#[utoipa::path(post, path = "/agents", tag = "agents", request_body = Object, responses((status = 201, body = Object, description = "the agent, with its token (shown once)"), (status = 400, body = Object), (status = 409, body = Object)))]
async fn create(
    State(state): State<AppState>,
    ApiJson(fields): ApiJson<AgentFields>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(id) = fields.id.clone() else {
        return Err(ApiError::bad_request("`id` is required"));
    };
    if !is_agent_id(&id) {
        return Err(ApiError::bad_request(format!(
            "`id`: `{id}` must be 1 to 64 letters, digits, `-`, `_` or `.`"
        )));
    }
    if state.runner.storage.agent(&id).await?.is_some() {
        return Err(ApiError::conflict(format!("an agent `{id}` exists")));
    }
    let token = new_token_text();
    let mut agent = Agent {
        id: id.clone(),
        name: id,
        role: Role::Agent,
        language: "en".into(),
        queues: Vec::new(),
        status: AgentStatus::Offline,
        status_since_ms: now_ms(&state),
        token_sha256: token_digest(&token),
        last_activity_ms: 0,
        last_offer_ms: 0,
        missed_offers: 0,
    };
    apply(&state, &mut agent, fields)?;
    state.runner.storage.put_agent(agent.clone()).await?;
    wake_router(&state);
    let mut body = public_view(&agent);
    body["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(put, path = "/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = Object, responses((status = 200, body = Object), (status = 404, body = Object)))]
async fn change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(fields): ApiJson<AgentFields>,
) -> Result<Json<Value>, ApiError> {
    if fields.id.as_ref().is_some_and(|new| *new != id) {
        return Err(ApiError::bad_request("`id` cannot change"));
    }
    let mut agent = existing(&state, &id).await?;
    apply(&state, &mut agent, fields)?;
    state.runner.storage.put_agent(agent.clone()).await?;
    wake_router(&state);
    Ok(Json(public_view(&agent)))
}

/// A new token; the old one stops working at once.
#[utoipa::path(post, path = "/agents/{id}/token", tag = "agents", params(("id" = String, Path)), responses((status = 200, body = Object, description = "the new token (shown once); the old one stops working")))]
async fn new_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut agent = existing(&state, &id).await?;
    let token = new_token_text();
    agent.token_sha256 = token_digest(&token);
    state.runner.storage.put_agent(agent).await?;
    Ok(Json(json!({ "id": id, "token": token })))
}

/// Removes an agent who answers no conversation.
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 404, body = Object)))]
async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let storage = &state.runner.storage;
    let held = storage.assigned_to(&id).await?.len();
    if held > 0 {
        return Err(ApiError::conflict(format!(
            "agent `{id}` answers {held} conversations; transfer or close them first"
        )));
    }
    if storage.remove_agent(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no agent `{id}`")))
    }
}

async fn existing(state: &AppState, id: &str) -> Result<Agent, ApiError> {
    state
        .runner
        .storage
        .agent(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent `{id}`")))
}

/// Checks and applies the given fields.
fn apply(state: &AppState, agent: &mut Agent, fields: AgentFields) -> Result<(), ApiError> {
    if let Some(name) = fields.name {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(ApiError::bad_request("`name` must be 1 to 100 bytes"));
        }
        agent.name = name;
    }
    if let Some(role) = fields.role {
        agent.role = role;
    }
    if let Some(language) = fields.language {
        if isolang::Language::from_639_1(&language).is_none() {
            return Err(ApiError::bad_request(format!(
                "`language`: `{language}` is not an ISO 639-1 code (such as en, tr)"
            )));
        }
        agent.language = language;
    }
    if let Some(queues) = fields.queues {
        if let Some(desk) = &state.desk {
            let flow = &desk.engine.flow().flow;
            for (i, membership) in queues.iter().enumerate() {
                if !flow.queues.contains_key(&membership.queue) {
                    return Err(ApiError::bad_request(format!(
                        "`queues[{i}].queue`: the flow has no queue `{}`",
                        membership.queue
                    )));
                }
            }
        }
        agent.queues = queues;
    }
    if let Some(status) = fields.status {
        let status = AgentStatus::parse(&status)
            .map_err(|e| ApiError::bad_request(format!("`status`: {e}")))?;
        if status != agent.status {
            agent.status = status;
            agent.status_since_ms = now_ms(state);
        }
    }
    Ok(())
}

/// 256 random bits, hex.
fn new_token_text() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn now_ms(state: &AppState) -> u64 {
    match &state.desk {
        Some(desk) => desk.engine.now_ms(),
        None => crate::engine::clock::Clock::now_ms(&crate::engine::clock::SystemClock),
    }
}

fn wake_router(state: &AppState) {
    if let Some(desk) = &state.desk {
        desk.router.wake();
    }
}
