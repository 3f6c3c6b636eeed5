//! Trial chats with the sandbox (`crate::publishing::trial`): open one
//! (optionally at a given moment), write as the customer, run or skip to
//! the timers, end it. `flowhost chat --server` is their client.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engine::TurnReport;
use crate::publishing::trial::{TrialError, TrialOptions, TrialStarted};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiJson};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_trial))
        .routes(routes!(say))
        .routes(routes!(timers))
        .routes(routes!(close_trial))
}

impl From<TrialError> for ApiError {
    fn from(e: TrialError) -> Self {
        let message = e.to_string();
        match e {
            TrialError::Invalid(issues) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", message)
                    .with_issues(issues)
            }
            TrialError::BadRequest(_) => ApiError::bad_request(message),
            TrialError::NotFound(_) => ApiError::not_found(message),
            TrialError::TooMany => ApiError::new(StatusCode::CONFLICT, "too_many_trials", message),
            TrialError::Engine(e) => e.into(),
            TrialError::Storage(e) => e.into(),
            TrialError::Io(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "trial_storage", message)
            }
        }
    }
}

/// Opens a trial chat with the sandbox: the real engine and the sandbox's
/// plugins over storage of its own, so nothing reaches customers,
/// production or analytics. `at` fixes the moment its clock starts at.
#[utoipa::path(post, path = "/trials", tag = "publishing", request_body = TrialOptions,
    responses((status = 201, body = TrialStarted),
        (status = 400, body = super::publishing::ErrorBody, description = "a bad `at` or an unknown connector"),
        (status = 409, body = super::publishing::ErrorBody, description = "too many trial chats open"),
        (status = 422, body = super::publishing::ErrorBody, description = "the sandbox does not validate")))]
async fn open_trial(
    State(state): State<AppState>,
    ApiJson(options): ApiJson<TrialOptions>,
) -> Result<(StatusCode, Json<TrialStarted>), ApiError> {
    let (compiled, plugins) = state
        .publisher
        .compiled_sandbox()
        .await
        .map_err(TrialError::Invalid)?;
    let started = state.trials.open(compiled, plugins, options).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// What the customer writes: text, or a quick reply's payload with its title.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Said {
    text: String,
    payload: Option<String>,
}

/// The customer writes; the answer is what the turn did (its messages,
/// where the conversation is now, how it ended, notes).
#[utoipa::path(post, path = "/trials/{id}/messages", tag = "publishing", request_body = Said,
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::publishing::ErrorBody)))]
async fn say(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(said): ApiJson<Said>,
) -> Result<Json<TurnReport>, ApiError> {
    Ok(Json(state.trials.say(&id, said.text, said.payload).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TimerRequest {
    /// Move the chat's clock to its next timer first.
    #[serde(default)]
    skip: bool,
}

/// Runs the chat's due timers (`skip`: jumps to the next one first); what
/// each timer's turn did.
#[utoipa::path(post, path = "/trials/{id}/timers", tag = "publishing", request_body = TimerRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::publishing::ErrorBody)))]
async fn timers(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<TimerRequest>,
) -> Result<Json<Vec<TurnReport>>, ApiError> {
    Ok(Json(state.trials.timers(&id, request.skip).await?))
}

/// Ends a trial chat and drops its storage.
#[utoipa::path(delete, path = "/trials/{id}", tag = "publishing",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::publishing::ErrorBody)))]
async fn close_trial(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state.trials.close(&id) {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(TrialError::NotFound(id).into()),
    }
}
