//! The admin API (token required): the loaded plugins, the events set
//! aside as dead letters, and the agents ([`agents`]).

mod agents;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::{Value, json};

use super::AppState;
use super::auth::require_admin;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list_plugins))
        .route("/dead-letters", get(list_dead_letters))
        .merge(agents::router())
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}

/// Every loaded plugin: what it said about itself and where it came from.
async fn list_plugins(State(state): State<AppState>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .runner
        .registry
        .iter()
        .map(|(plugin, origin)| {
            json!({
                "info": plugin.info(),
                "origin": origin,
                "limits": plugin.limits(),
            })
        })
        .collect();
    Json(json!({ "plugins": plugins }))
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default = "default_page")]
    limit: usize,
}

fn default_page() -> usize {
    100
}

/// Inbound events whose turns kept failing or kept stopping the server,
/// oldest first (`?limit=`, at most 1,000): what each was and why it was
/// set aside.
async fn list_dead_letters(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let letters = state
        .runner
        .storage
        .dead_letters(page.limit.min(1_000))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let letters: Vec<Value> = letters
        .into_iter()
        .map(|letter| {
            let record = serde_json::from_str::<Value>(&letter.record)
                .unwrap_or(Value::String(letter.record));
            json!({"seq": letter.seq, "reason": letter.reason, "at_ms": letter.at_ms, "record": record})
        })
        .collect();
    Ok(Json(json!({ "dead_letters": letters })))
}
