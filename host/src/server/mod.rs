//! The HTTP server: health probes, the Instagram and Connexease webhooks,
//! the admin API, the agent API and the agent console.

mod admin;
mod admin_page;
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
    /// The sandbox and the flow versions (the admin API's publishing).
    pub publisher: Arc<crate::publishing::Publisher>,
    pub admin_token: Arc<str>,
    /// False while starting and while shutting down.
    pub ready: Arc<AtomicBool>,
    /// Customer events in; `None` when no flow is loaded.
    pub intake: Option<Arc<crate::intake::Intake>>,
    pub instagram: Arc<webhooks::InstagramAccounts>,
    pub connexease: Arc<webhooks::ConnexeaseAccounts>,
    /// Agents and queues; `None` when no flow is loaded.
    pub desk: Option<Arc<agents::AgentDesk>>,
    /// Which accounts' sends keep failing; `None` when no flow is loaded.
    pub sends: Option<Arc<crate::outbox::health::SendHealth>>,
    /// What `/metrics` renders.
    pub metrics: &'static metrics_exporter_prometheus::PrometheusHandle,
    /// The bearer token `/metrics` wants; `None`: the admin token.
    pub metrics_token: Option<Arc<str>>,
    /// Instagram accounts connected through Meta's login.
    pub connections: Arc<crate::connections::Connections>,
    /// Admins' trial chats with the sandbox.
    pub trials: Arc<crate::publishing::trial::TrialChats>,
    /// Chatbot callbacks being read now (per server, not per process: two
    /// servers in one process do not share it).
    pub callback_parsing: Arc<tokio::sync::Semaphore>,
}

/// Where Meta sends an admin back after its authorization window.
pub const INSTAGRAM_CALLBACK_PATH: &str = "/admin/ui/instagram/callback";

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let (admin, openapi) = openapi_router(state.clone());
    let openapi = Arc::new(openapi);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi.as_ref().clone()) }),
        )
        .merge(admin)
        .nest("/agent", agents::router(state.clone()))
        .merge(admin_page::router())
        .merge(console::router())
        .merge(webhooks::router())
        .with_state(state)
}

/// The admin API under `/admin`, and its OpenAPI document.
fn openapi_router(state: AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    utoipa_axum::router::OpenApiRouter::with_openapi(admin::AdminApi::openapi())
        .nest("/admin", admin::router(state))
        .split_for_parts()
}

/// 200 when the server can do its work; otherwise 503 with every reason:
/// starting or shutting down, no flow loaded, storage not answering, an
/// account whose sends keep failing. (`/healthz` only says the process
/// answers.)
async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if !state.ready.load(Ordering::Relaxed) {
        problems.push("starting or shutting down".to_string());
    }
    if state.intake.is_none() {
        problems.push("no flow is loaded (`flow:` in the configuration)".to_string());
    }
    if let Err(e) = state.runner.storage.ping().await {
        problems.push(format!("storage does not answer: {e}"));
    }
    if let Some(sends) = &state.sends {
        problems.extend(sends.problems());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        let body = format!("not ready:\n{}\n", problems.join("\n"));
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// Prometheus's text format, for a scraper holding the metrics token (or
/// the admin token when none is configured).
async fn metrics_text(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<String, error::ApiError> {
    let wanted = state.metrics_token.as_ref().unwrap_or(&state.admin_token);
    match auth::bearer_of(&headers) {
        Some(token) if same_secret(token, wanted) => {
            let now_ms = match &state.intake {
                Some(intake) => intake.now_ms(),
                None => crate::engine::clock::Clock::now_ms(&crate::engine::clock::SystemClock),
            };
            crate::telemetry::observe_storage(&state.runner.storage, now_ms).await;
            if let Some(intake) = &state.intake {
                let queues: Vec<String> =
                    intake.engine().flow().flow.queues.keys().cloned().collect();
                crate::telemetry::observe_people(&state.runner.storage, &queues, intake.now_ms())
                    .await;
            }
            Ok(state.metrics.render())
        }
        _ => Err(error::ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "`/metrics` wants `Authorization: Bearer <metrics_token>` (the admin token when no metrics_token is configured)",
        )),
    }
}
