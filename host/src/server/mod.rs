//! The HTTP server: health probes, the Instagram and Connexease webhooks,
//! the admin API, the agent API and the agent console.

mod admin;
pub mod agents;
pub(crate) mod auth;
mod console;
pub mod error;
mod listen;
pub use auth::same_secret;
pub use listen::{HttpLimits, serve};
pub mod webhooks;

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
    /// Customer events in; `None` when no flow is loaded.
    pub intake: Option<Arc<crate::intake::Intake>>,
    pub instagram: Arc<webhooks::InstagramAccounts>,
    pub connexease: Arc<webhooks::ConnexeaseAccounts>,
    /// Agents and queues; `None` when no flow is loaded.
    pub desk: Option<Arc<agents::AgentDesk>>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .nest("/admin", admin::router(state.clone()))
        .nest("/agent", agents::router(state.clone()))
        .merge(console::router())
        .merge(webhooks::router())
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
