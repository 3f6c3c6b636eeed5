//! The HTTP server: health probes and the admin API. (Webhooks, the
//! chatbot callback and the agent API join here as they are built.)

mod admin;
mod auth;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::actions::ActionRunner;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub runner: ActionRunner,
    pub admin_token: Arc<str>,
    /// False while starting and while shutting down.
    pub ready: Arc<AtomicBool>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .nest("/admin", admin::router(state.clone()))
        .with_state(state)
}

/// 200 once plugins are loaded and storage is open; 503 while shutting down.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
