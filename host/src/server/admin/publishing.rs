//! The publishing half of the admin API: the sandbox and its entities,
//! validation, the diff, apply, the versions and rollback. The logic is in
//! `crate::publishing`; these handlers read requests and shape answers.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::model::version::{FlowVersion, Sandbox, VersionOrigin};
use crate::publishing::diff::{EntityChange, diff, diff_plugins};
use crate::publishing::{PublishError, Validation};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiJson};

/// The largest flow document (or entity) accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_sandbox, put_sandbox))
        .routes(routes!(reset_sandbox))
        .routes(routes!(put_test_contacts))
        .routes(routes!(validate_sandbox))
        .routes(routes!(get_entity, put_entity, delete_entity))
        .routes(routes!(get_diff))
        .routes(routes!(apply))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(rollback))
        .routes(routes!(get_diagram))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_DOCUMENT_BYTES))
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        let message = e.to_string();
        match e {
            PublishError::Invalid(issues) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", message)
                    .with_issues(issues)
            }
            PublishError::Conflict { .. } => ApiError::conflict(message),
            PublishError::NotFound(_) => ApiError::not_found(message),
            PublishError::Unsafe { code, issues, .. } => {
                ApiError::new(StatusCode::CONFLICT, code, message).with_issues(issues)
            }
            PublishError::Storage(e) => e.into(),
        }
    }
}

/// The sandbox with what validation says of it now.
#[derive(Serialize, ToSchema)]
struct SandboxView {
    /// The production version the sandbox is based on (0: none).
    based_on: u64,
    updated_at_ms: u64,
    /// Customers whose new sessions run on the sandbox while it validates.
    test_contacts: Vec<String>,
    /// Uploaded plugins the sandbox runs with, name -> SHA-256.
    plugins: std::collections::BTreeMap<String, String>,
    document: Value,
    validation: Validation,
}

fn sandbox_view(sandbox: Sandbox, validation: Validation) -> SandboxView {
    SandboxView {
        based_on: sandbox.based_on,
        updated_at_ms: sandbox.updated_at_ms,
        test_contacts: sandbox.test_contacts,
        plugins: sandbox.plugins,
        document: sandbox.document,
        validation,
    }
}

#[derive(Deserialize, IntoParams)]
struct Format {
    /// `yaml` for the document as YAML text; JSON otherwise.
    format: Option<String>,
}

/// `document` as YAML when asked, else `json` as JSON.
fn shaped(format: &Format, document: &Value, json: impl Serialize) -> Response {
    if format.format.as_deref() == Some("yaml") {
        let text = serde_norway::to_string(document).unwrap_or_default();
        ([(header::CONTENT_TYPE, "application/yaml")], text).into_response()
    } else {
        axum::Json(json).into_response()
    }
}

/// The sandbox (a copy of production until it is first edited).
#[utoipa::path(get, path = "/sandbox", tag = "publishing", params(Format),
    responses((status = 200, body = SandboxView, description = "the sandbox, or with `format=yaml` its document as YAML")))]
async fn get_sandbox(
    State(state): State<AppState>,
    Query(format): Query<Format>,
) -> Result<Response, ApiError> {
    let sandbox = state.publisher.sandbox().await?;
    let validation = state
        .publisher
        .validate(&sandbox.document, &sandbox.plugins)
        .await;
    let document = sandbox.document.clone();
    Ok(shaped(
        &format,
        &document,
        sandbox_view(sandbox, validation),
    ))
}

/// Replaces the sandbox with a whole flow document (YAML or JSON); it is
/// then based on the production version. Kept even if it does not validate
/// (the answer says why); refused if it does not parse.
#[utoipa::path(put, path = "/sandbox", tag = "publishing",
    request_body(content = String, description = "a flow document, YAML or JSON", content_type = "application/yaml"),
    responses((status = 200, body = SandboxView), (status = 422, body = ErrorBody, description = "not a flow document")))]
async fn put_sandbox(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<axum::Json<SandboxView>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the document is not UTF-8 text"))?;
    let (sandbox, validation) = state.publisher.replace_sandbox(text).await?;
    Ok(axum::Json(sandbox_view(sandbox, validation)))
}

/// Makes the sandbox a copy of production again.
#[utoipa::path(post, path = "/sandbox/reset", tag = "publishing",
    responses((status = 200, body = SandboxView)))]
async fn reset_sandbox(State(state): State<AppState>) -> Result<axum::Json<SandboxView>, ApiError> {
    let (sandbox, validation) = state.publisher.reset_sandbox().await?;
    Ok(axum::Json(sandbox_view(sandbox, validation)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestContacts {
    /// Customers' channel ids (an Instagram-scoped id, say).
    customers: Vec<String>,
}

/// Sets the test contacts: their new sessions run on the sandbox, on live
/// traffic, while it validates (everyone else stays on production).
#[utoipa::path(put, path = "/sandbox/test-contacts", tag = "publishing", request_body = TestContacts,
    responses((status = 200, body = SandboxView), (status = 422, body = ErrorBody)))]
async fn put_test_contacts(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TestContacts>,
) -> Result<axum::Json<SandboxView>, ApiError> {
    let (sandbox, validation) = state.publisher.set_test_contacts(request.customers).await?;
    Ok(axum::Json(sandbox_view(sandbox, validation)))
}

/// Validates the sandbox against the loaded plugins: every error and
/// warning, with its path.
#[utoipa::path(post, path = "/sandbox/validate", tag = "publishing",
    responses((status = 200, body = Validation)))]
async fn validate_sandbox(
    State(state): State<AppState>,
) -> Result<axum::Json<Validation>, ApiError> {
    let sandbox = state.publisher.sandbox().await?;
    Ok(axum::Json(
        state
            .publisher
            .validate(&sandbox.document, &sandbox.plugins)
            .await,
    ))
}

#[derive(Deserialize, IntoParams)]
struct EntityPath {
    /// `accounts`, `connectors`, `time_groups`, `time_conditions`,
    /// `automessages`, `decision_trees`, `chatbots`, `queues`,
    /// `terminates` or `vars`.
    section: String,
    name: String,
}

/// One entity of the sandbox.
#[utoipa::path(get, path = "/sandbox/{section}/{name}", tag = "publishing", params(EntityPath),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_entity(
    State(state): State<AppState>,
    Path(at): Path<EntityPath>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        state.publisher.entity(&at.section, &at.name).await?,
    ))
}

/// Creates or replaces one entity of the sandbox (JSON or YAML).
#[utoipa::path(put, path = "/sandbox/{section}/{name}", tag = "publishing", params(EntityPath),
    request_body(content = Object, description = "the entity, JSON or YAML"),
    responses((status = 200, body = SandboxView), (status = 422, body = ErrorBody)))]
async fn put_entity(
    State(state): State<AppState>,
    Path(at): Path<EntityPath>,
    body: Bytes,
) -> Result<axum::Json<SandboxView>, ApiError> {
    let value: Value = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| serde_norway::from_str(text).ok())
        .ok_or_else(|| ApiError::bad_request("the entity is not JSON or YAML"))?;
    let (sandbox, validation) = state
        .publisher
        .put_entity(&at.section, &at.name, Some(value))
        .await?;
    Ok(axum::Json(sandbox_view(sandbox, validation)))
}

/// Removes one entity from the sandbox.
#[utoipa::path(delete, path = "/sandbox/{section}/{name}", tag = "publishing", params(EntityPath),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody)))]
async fn delete_entity(
    State(state): State<AppState>,
    Path(at): Path<EntityPath>,
) -> Result<axum::Json<SandboxView>, ApiError> {
    let (sandbox, validation) = state
        .publisher
        .put_entity(&at.section, &at.name, None)
        .await?;
    Ok(axum::Json(sandbox_view(sandbox, validation)))
}

#[derive(Deserialize, IntoParams)]
struct DiffRange {
    /// `production` (the default), `sandbox` or a version number.
    from: Option<String>,
    /// `sandbox` (the default), `production` or a version number.
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct DiffView {
    from: String,
    to: String,
    changes: Vec<EntityChange>,
}

/// What changes from one document to another, entity by entity, with the
/// paths and the old and new values of every change.
#[utoipa::path(get, path = "/diff", tag = "publishing", params(DiffRange),
    responses((status = 200, body = DiffView), (status = 404, body = ErrorBody)))]
async fn get_diff(
    State(state): State<AppState>,
    Query(range): Query<DiffRange>,
) -> Result<axum::Json<DiffView>, ApiError> {
    let from = range.from.unwrap_or_else(|| "production".into());
    let to = range.to.unwrap_or_else(|| "sandbox".into());
    let (old, old_plugins) = document_of(&state, &from).await?;
    let (new, new_plugins) = document_of(&state, &to).await?;
    let mut changes = diff(&old, &new);
    changes.extend(diff_plugins(&old_plugins, &new_plugins));
    Ok(axum::Json(DiffView { changes, from, to }))
}

/// The document `which` names (`sandbox`, `production` or a number) and
/// the uploads it pins.
async fn document_of(state: &AppState, which: &str) -> Result<(Value, Pins), ApiError> {
    let publisher = &state.publisher;
    match which {
        "sandbox" => {
            let sandbox = publisher.sandbox().await?;
            Ok((sandbox.document, sandbox.plugins))
        }
        "production" => Ok(publisher.production().await?.map_or_else(
            || (serde_json::json!({}), Pins::new()),
            |v| (v.document, v.plugins),
        )),
        number => {
            let number: u64 = number.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "`{number}`: say `sandbox`, `production` or a version number"
                ))
            })?;
            let version = state.runner.storage.flow_version(number).await?;
            let version = version
                .ok_or_else(|| ApiError::not_found(format!("there is no version {number}")))?;
            Ok((version.document, version.plugins))
        }
    }
}

type Pins = std::collections::BTreeMap<String, String>;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Publish {
    /// What changes and why, for the history.
    #[serde(default)]
    comment: String,
    /// Publish only if production is still this version; by default the
    /// version the sandbox is based on (for a rollback: production now).
    expected_production: Option<u64>,
}

/// A version without its document, for lists and answers.
#[derive(Serialize, ToSchema)]
struct VersionSummary {
    number: u64,
    applied_by: String,
    applied_at_ms: u64,
    comment: String,
    origin: VersionOrigin,
    /// The uploaded plugins it runs with, name -> SHA-256.
    plugins: Pins,
    /// Whether it is production now.
    production: bool,
}

fn summary(version: &FlowVersion, production: u64) -> VersionSummary {
    VersionSummary {
        number: version.number,
        applied_by: version.applied_by.clone(),
        applied_at_ms: version.applied_at_ms,
        comment: version.comment.clone(),
        plugins: version.plugins.clone(),
        origin: version.origin.clone(),
        production: version.number == production,
    }
}

#[derive(Serialize, ToSchema)]
struct Applied {
    version: VersionSummary,
    /// Whether new sessions run on it already (false when the server
    /// started without a flow: it serves after a restart).
    live: bool,
}

fn applied(state: &AppState, version: &FlowVersion) -> axum::Json<Applied> {
    axum::Json(Applied {
        version: summary(version, version.number),
        live: state.publisher.is_live(),
    })
}

/// Validates the sandbox and publishes it as the next production version,
/// all or nothing. New sessions run on it at once; sessions under way
/// finish on the version they began on.
#[utoipa::path(post, path = "/apply", tag = "publishing", request_body = Publish,
    responses((status = 200, body = Applied),
        (status = 409, body = ErrorBody, description = "production moved since, or the change would strand conversations"),
        (status = 422, body = ErrorBody, description = "the sandbox does not validate: every error with its path")))]
async fn apply(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<Publish>,
) -> Result<axum::Json<Applied>, ApiError> {
    let version = state
        .publisher
        .apply(request.comment, request.expected_production)
        .await?;
    Ok(applied(&state, &version))
}

#[derive(Deserialize, IntoParams)]
struct Page {
    /// At most this many, newest first (default 100, at most 1,000).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
struct VersionList {
    versions: Vec<VersionSummary>,
}

/// The published versions, newest first.
#[utoipa::path(get, path = "/versions", tag = "publishing", params(Page),
    responses((status = 200, body = VersionList)))]
async fn list_versions(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<axum::Json<VersionList>, ApiError> {
    let limit = page.limit.unwrap_or(100).min(1_000);
    let production = state.publisher.production().await?.map_or(0, |v| v.number);
    let versions = state.runner.storage.flow_versions(limit).await?;
    Ok(axum::Json(VersionList {
        versions: versions.iter().map(|v| summary(v, production)).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
struct VersionPath {
    /// A version number, or `production`.
    version: String,
}

/// One version with its document (the export: `format=yaml`).
#[utoipa::path(get, path = "/versions/{version}", tag = "publishing", params(VersionPath, Format),
    responses((status = 200, body = FlowVersion), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    Path(at): Path<VersionPath>,
    Query(format): Query<Format>,
) -> Result<Response, ApiError> {
    let version = match at.version.as_str() {
        "production" => state.publisher.production().await?,
        number => match number.parse() {
            Ok(number) => state.runner.storage.flow_version(number).await?,
            Err(_) => None,
        },
    }
    .ok_or_else(|| ApiError::not_found(format!("there is no version {}", at.version)))?;
    Ok(shaped(&format, &version.document, &version))
}

/// Publishes an older version's document again, as the next version
/// with the uploads it pinned (validated first, like an apply).
#[utoipa::path(post, path = "/versions/{version}/rollback", tag = "publishing",
    params(("version" = u64, Path, description = "the version to go back to")), request_body = Publish,
    responses((status = 200, body = Applied), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rollback(
    State(state): State<AppState>,
    Path(version): Path<u64>,
    body: Bytes,
) -> Result<axum::Json<Applied>, ApiError> {
    let request: Publish = if body.is_empty() {
        Publish {
            comment: String::new(),
            expected_production: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    let comment = if request.comment.is_empty() {
        format!("rollback to version {version}")
    } else {
        request.comment
    };
    let published = state
        .publisher
        .rollback(version, comment, request.expected_production)
        .await?;
    Ok(applied(&state, &published))
}

#[derive(Deserialize, IntoParams)]
struct DiagramPath {
    /// `production`, `sandbox` or a version number.
    which: String,
    /// `connectors`, `time_conditions`, `automessages`, `decision_trees`,
    /// `chatbots`, `queues` or `terminates`.
    section: String,
    name: String,
}

/// One entity's diagram tree (it and everything it leads to) as an SVG
/// image drawn by flowhost.
#[utoipa::path(get, path = "/diagram/{which}/{section}/{name}", tag = "publishing", params(DiagramPath),
    responses((status = 200, content_type = "image/svg+xml", body = String), (status = 404, body = ErrorBody)))]
async fn get_diagram(
    State(state): State<AppState>,
    Path(at): Path<DiagramPath>,
) -> Result<Response, ApiError> {
    let (document, _) = document_of(&state, &at.which).await?;
    let flow: crate::flow::Flow = serde_json::from_value(document)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))?;
    let svg =
        crate::flow::diagram::svg_of_entity(&flow, &at.section, &at.name).ok_or_else(|| {
            ApiError::not_found(format!(
                "{} has no {}.{} to draw",
                at.which, at.section, at.name
            ))
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        svg,
    )
        .into_response())
}

/// The shape of every refusal (see `ApiError`).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Stable and machine-readable: `invalid_flow`, `conflict`, `not_found`, ...
    code: String,
    message: String,
    /// Where the problems are, when the request's content is at fault.
    issues: Vec<crate::flow::Issue>,
}
