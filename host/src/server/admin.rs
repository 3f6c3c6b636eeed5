//! The admin API (token required). For now: the loaded plugins.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::{Value, json};

use super::AppState;
use super::auth::require_admin;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list_plugins))
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
