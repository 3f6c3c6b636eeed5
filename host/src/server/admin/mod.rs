//! The admin API (admin token required): the plugins and their uploads
//! ([`plugins`]), the events set aside as dead letters, the agents ([`agents`]), publishing
//! ([`publishing`]), analytics ([`analytics`]) and connected Instagram accounts ([`instagram`]). Every route is described in the OpenAPI document
//! (`/openapi.json`), generated from the handlers.

mod agents;
pub(in crate::server) mod analytics;
mod instagram;
mod plugins;
mod publishing;
mod trials;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Json, middleware};
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::require_admin;

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .merge(plugins::router())
        .merge(agents::router())
        .merge(publishing::router())
        .merge(analytics::router())
        .merge(instagram::router())
        .merge(trials::router())
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}

/// The OpenAPI document's frame: the admin routes fill its paths.
#[derive(OpenApi)]
#[openapi(
    info(title = "flowhost admin API", description = "Every route wants `Authorization: Bearer <admin token>`."),
    modifiers(&BearerToken),
    security(("admin_token" = [])),
)]
pub struct AdminApi;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme =
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("admin_token", scheme);
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct Page {
    /// At most this many (default 100, at most 1,000).
    #[serde(default = "default_page")]
    limit: usize,
}

fn default_page() -> usize {
    100
}

/// Inbound events whose turns kept failing or kept stopping the server,
/// oldest first (`?limit=`, at most 1,000): what each was and why it was
/// set aside.
#[utoipa::path(get, path = "/dead-letters", tag = "plugins", params(Page), responses((status = 200, body = Object)))]
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
