//! Instagram accounts connected through Meta's login: start a login (the
//! admin page sends the browser to the URL it answers with), list the
//! connected accounts and their state, refresh a token now, disconnect.
//! Meta sends the browser back to the callback page (`admin_page`), which
//! the login's one-time state authenticates.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::connections::ConnectError;
use crate::model::connection::Connection;
use crate::server::AppState;
use crate::server::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(begin_login))
        .routes(routes!(disconnect))
        .routes(routes!(refresh_now))
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        let message = e.to_string();
        match e {
            ConnectError::NotConfigured => {
                ApiError::new(StatusCode::CONFLICT, "not_configured", message)
            }
            ConnectError::UnknownLogin => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_login", message)
            }
            ConnectError::NoSuchAccount(_) => ApiError::not_found(message),
            ConnectError::Refused(_) => ApiError::conflict(message),
            ConnectError::Meta(e) if e.token_rejected() => {
                ApiError::new(StatusCode::BAD_GATEWAY, "reconnect_needed", message)
            }
            ConnectError::Meta(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "meta_refused", message)
            }
            ConnectError::Storage(e) => e.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct Accounts {
    /// Whether this server can start a login (`instagram_login:` is set).
    can_connect: bool,
    accounts: Vec<Connection>,
}

/// The connected accounts: who, since when, whether the token works, when
/// it expires. Tokens are never shown.
#[utoipa::path(get, path = "/instagram/accounts", tag = "instagram", responses((status = 200, body = Accounts)))]
async fn list_accounts(State(state): State<AppState>) -> Json<Accounts> {
    Json(Accounts {
        can_connect: state.connections.can_connect(),
        accounts: state.connections.list(),
    })
}

#[derive(Serialize, ToSchema)]
struct Login {
    /// Meta's authorization window: send the admin's browser there.
    authorize_url: String,
}

/// Starts connecting an account ("Authorise your Instagram Business
/// Account"): the URL of Meta's authorization window, with a one-time
/// state that is good for 10 minutes.
#[utoipa::path(post, path = "/instagram/connect", tag = "instagram", responses(
    (status = 200, body = Login),
    (status = 409, body = super::publishing::ErrorBody, description = "no Meta app configured")))]
async fn begin_login(State(state): State<AppState>) -> Result<Json<Login>, ApiError> {
    let authorize_url = state.connections.begin("admin")?;
    Ok(Json(Login { authorize_url }))
}

/// Forgets a connected account: flow accounts with `access_token:
/// connected` for it can no longer send.
#[utoipa::path(delete, path = "/instagram/accounts/{ig_user_id}", tag = "instagram",
    params(("ig_user_id" = String, Path)),
    responses((status = 204), (status = 404, body = super::publishing::ErrorBody)))]
async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state.connections.disconnect(&id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ConnectError::NoSuchAccount(id).into()),
    }
}

/// Refreshes the account's long-lived token now (flowhost also does it
/// by itself before the token expires). Meta's error 190 marks the account
/// "reconnect needed".
#[utoipa::path(post, path = "/instagram/accounts/{ig_user_id}/refresh", tag = "instagram",
    params(("ig_user_id" = String, Path)),
    responses((status = 200, body = Connection), (status = 404, body = super::publishing::ErrorBody),
        (status = 502, body = super::publishing::ErrorBody, description = "Meta refused")))]
async fn refresh_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(state.connections.refresh(&id).await?))
}
