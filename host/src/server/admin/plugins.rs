//! Plugins in the admin API: what the server has, uploads (checked,
//! stored by hash and pinned in the sandbox, never in production before an
//! apply), and taking an upload out of the sandbox again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::model::version::UploadedPlugin;
use crate::publishing::Validation;
use crate::publishing::uploads::{MAX_UPLOAD_BYTES, UploadError};
use crate::server::AppState;
use crate::server::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, upload_plugin))
        .routes(routes!(unpin_plugin))
        // One byte more than accepted, so an oversized component gets this
        // module's answer (413 with the limit) rather than a cut-off body.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1))
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let message = e.to_string();
        match e {
            UploadError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            UploadError::TooMany => {
                ApiError::new(StatusCode::CONFLICT, "too_many_uploads", message)
            }
            UploadError::Load(load) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_plugin",
                load.to_string(),
            ),
            UploadError::ReservedName(_) => {
                ApiError::new(StatusCode::CONFLICT, "reserved_name", message)
            }
            UploadError::Storage(e) => e.into(),
        }
    }
}

/// The server's own plugins (built-ins and its plugin directory's: what
/// each said about itself, where it came from, its limits) and every
/// upload's record.
#[utoipa::path(get, path = "/plugins", tag = "plugins", responses((status = 200, body = Object)))]
async fn list_plugins(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
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
    let uploads = state.publisher.uploads().await?;
    Ok(Json(json!({ "plugins": plugins, "uploads": uploads })))
}

/// What an upload did.
#[derive(Serialize, ToSchema)]
struct Uploaded {
    plugin: UploadedPlugin,
    /// The sandbox's uploads now, name -> SHA-256.
    sandbox_plugins: std::collections::BTreeMap<String, String>,
    /// The sandbox's validation with the upload in it.
    validation: Validation,
}

/// Uploads a plugin component (the `.wasm` file as the body). It is
/// checked (a component for a contract this server speaks, whose
/// `describe` answers with a configuration schema that compiles), compiled
/// once, stored by the SHA-256 of its bytes and pinned in the sandbox under
/// the name it declares. Production is unchanged until the sandbox is
/// applied; each version keeps the uploads it ran with.
#[utoipa::path(post, path = "/plugins", tag = "plugins",
    request_body(content = Vec<u8>, description = "a WebAssembly component", content_type = "application/wasm"),
    responses(
        (status = 201, body = Uploaded),
        (status = 409, body = super::publishing::ErrorBody, description = "named like one of the server's own plugins, or too many uploads"),
        (status = 413, body = super::publishing::ErrorBody, description = "larger than 48 MiB"),
        (status = 422, body = super::publishing::ErrorBody, description = "not a usable plugin: why")))]
async fn upload_plugin(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let (plugin, sandbox, validation) = state.publisher.upload_plugin(body.to_vec()).await?;
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            plugin,
            sandbox_plugins: sandbox.plugins,
            validation,
        }),
    ))
}

/// Takes an uploaded plugin out of the sandbox (production keeps what it
/// runs until the sandbox is applied; the stored component stays, for the
/// versions that pin it).
#[utoipa::path(delete, path = "/sandbox/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "the plugin's declared name")),
    responses((status = 200, body = Validation), (status = 404, body = super::publishing::ErrorBody)))]
async fn unpin_plugin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Validation>, ApiError> {
    let (_, validation) = state.publisher.unpin_plugin(&name).await?;
    Ok(Json(validation))
}
