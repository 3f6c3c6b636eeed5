//! A stand-in of Meta's side of "Instagram API with Instagram Login" on
//! loopback, speaking its documented formats: the authorization window
//! (which approves at once, or denies, and redirects back with `code` and
//! `state`), the code exchange, the long-lived token and its refresh, `me`,
//! the webhook subscription, and a Send API that checks the bearer token
//! and answers error 190 once tokens are revoked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub const APP_ID: &str = "990602627938098";
pub const APP_SECRET: &str = "meta-app-secret-for-tests";
/// The professional account the stand-in's user owns.
pub const IG_USER_ID: &str = "17841400000000999";
pub const USERNAME: &str = "shop.ig";
/// Meta's long-lived tokens live 60 days.
pub const LONG_LIVED_SECONDS: u64 = 60 * 24 * 3600;

#[derive(Default)]
pub struct Seen {
    /// code -> the redirect URI it was issued for.
    codes: HashMap<String, String>,
    short_tokens: HashSet<String>,
    /// Long-lived tokens that work.
    pub valid: HashSet<String>,
    /// Every token issued, in order.
    pub issued: Vec<String>,
    pub refreshes: usize,
    /// The fields of each subscription, with the token it came with.
    pub subscriptions: Vec<(String, String)>,
    /// Every Send API request: the bearer token and the body.
    pub sends: Vec<(String, Value)>,
    /// The authorization window denies instead of approving.
    pub deny: bool,
    counter: u64,
}

#[derive(Clone, Default)]
pub struct Meta {
    pub seen: Arc<Mutex<Seen>>,
}

impl Meta {
    /// Starts the stand-in; its base URL serves every endpoint.
    pub async fn start() -> (Meta, String) {
        let meta = Meta::default();
        let router = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/access_token", post(exchange_code))
            .route("/access_token", get(long_lived))
            .route("/refresh_access_token", get(refresh))
            .route("/v23.0/me", get(me))
            .route("/v23.0/me/subscribed_apps", post(subscribe))
            .route("/v23.0/{ig_id}/messages", post(send))
            .with_state(meta.clone());
        let addr = crate::serve(router).await;
        (meta, format!("http://{addr}"))
    }

    /// Every token stops working (the owner changed the password).
    pub fn revoke_all(&self) {
        self.seen.lock().unwrap().valid.clear();
    }

    /// The newest long-lived token issued.
    pub fn newest_token(&self) -> String {
        self.seen
            .lock()
            .unwrap()
            .issued
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// The Send API requests to `customer`, with their tokens.
    pub fn sends_to(&self, customer: &str) -> Vec<(String, Value)> {
        let seen = self.seen.lock().unwrap();
        seen.sends
            .iter()
            .filter(|(_, body)| body["recipient"]["id"] == customer)
            .cloned()
            .collect()
    }
}

fn oauth_error(message: &str) -> Response {
    let body = json!({"error_type": "OAuthException", "code": 400, "error_message": message});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn graph_error(code: i64, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn invalid_token() -> Response {
    graph_error(
        190,
        "Error validating access token: The session has been invalidated because the user changed their password.",
    )
}

async fn authorize(State(meta): State<Meta>, Query(q): Query<HashMap<String, String>>) -> Response {
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    let scope_ok = q.get("scope").is_some_and(|s| {
        s.split(',')
            .any(|p| p == "instagram_business_manage_messages")
    });
    if q.get("client_id").map(String::as_str) != Some(APP_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
        || !scope_ok
        || redirect.is_empty()
    {
        return oauth_error("Invalid platform app");
    }
    let mut seen = meta.seen.lock().unwrap();
    let encoded = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let joiner = if redirect.contains('?') { '&' } else { '?' };
    if seen.deny {
        return Redirect::to(&format!(
            "{redirect}{joiner}error=access_denied&error_reason=user_denied&error_description={}&state={}#_",
            encoded("The user denied your request."),
            encoded(&state)
        ))
        .into_response();
    }
    seen.counter += 1;
    let code = format!("AQBx-code-{}", seen.counter);
    seen.codes.insert(code.clone(), redirect.clone());
    // Meta appends `#_` to the redirect.
    Redirect::to(&format!(
        "{redirect}{joiner}code={code}&state={}#_",
        encoded(&state)
    ))
    .into_response()
}

async fn exchange_code(
    State(meta): State<Meta>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut seen = meta.seen.lock().unwrap();
    let field = |name: &str| f.get(name).map(String::as_str).unwrap_or("");
    if field("client_id") != APP_ID || field("client_secret") != APP_SECRET {
        return oauth_error("Invalid client_secret");
    }
    if field("grant_type") != "authorization_code" {
        return oauth_error("Unsupported grant_type");
    }
    match seen.codes.remove(field("code")) {
        Some(redirect) if redirect == field("redirect_uri") => {}
        Some(_) => {
            return oauth_error(
                "Error validating verification code. Please make sure your redirect_uri is identical",
            );
        }
        None => return oauth_error("This authorization code has been used"),
    }
    seen.counter += 1;
    let token = format!("IGQVJ-short-{}", seen.counter);
    seen.short_tokens.insert(token.clone());
    Json(json!({"data": [{
        "access_token": token,
        "user_id": "9876543210123456",
        "permissions": "instagram_business_basic,instagram_business_manage_messages"
    }]}))
    .into_response()
}

fn new_long_token(seen: &mut Seen) -> Response {
    seen.counter += 1;
    let token = format!("IGAA-long-{}", seen.counter);
    seen.valid.insert(token.clone());
    seen.issued.push(token.clone());
    Json(json!({"access_token": token, "token_type": "bearer", "expires_in": LONG_LIVED_SECONDS}))
        .into_response()
}

async fn long_lived(
    State(meta): State<Meta>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut seen = meta.seen.lock().unwrap();
    if q.get("grant_type").map(String::as_str) != Some("ig_exchange_token")
        || q.get("client_secret").map(String::as_str) != Some(APP_SECRET)
    {
        return graph_error(100, "Invalid parameter");
    }
    let short = q.get("access_token").cloned().unwrap_or_default();
    if !seen.short_tokens.remove(&short) {
        return invalid_token();
    }
    new_long_token(&mut seen)
}

async fn refresh(State(meta): State<Meta>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut seen = meta.seen.lock().unwrap();
    if q.get("grant_type").map(String::as_str) != Some("ig_refresh_token") {
        return graph_error(100, "Invalid parameter");
    }
    let token = q.get("access_token").cloned().unwrap_or_default();
    if !seen.valid.contains(&token) {
        return invalid_token();
    }
    seen.refreshes += 1;
    new_long_token(&mut seen)
}

fn token_valid(meta: &Meta, q: &HashMap<String, String>) -> bool {
    let token = q.get("access_token").cloned().unwrap_or_default();
    meta.seen.lock().unwrap().valid.contains(&token)
}

async fn me(State(meta): State<Meta>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !token_valid(&meta, &q) {
        return invalid_token();
    }
    Json(json!({"user_id": IG_USER_ID, "username": USERNAME, "id": "9876543210123456"}))
        .into_response()
}

async fn subscribe(State(meta): State<Meta>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !token_valid(&meta, &q) {
        return invalid_token();
    }
    let fields = q.get("subscribed_fields").cloned().unwrap_or_default();
    let token = q.get("access_token").cloned().unwrap_or_default();
    meta.seen
        .lock()
        .unwrap()
        .subscriptions
        .push((fields, token));
    Json(json!({"success": true})).into_response()
}

async fn send(
    State(meta): State<Meta>,
    Path(ig_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let mut seen = meta.seen.lock().unwrap();
    if ig_id != IG_USER_ID || !seen.valid.contains(&token) {
        return invalid_token();
    }
    seen.sends.push((token, body.clone()));
    let id = format!("m_meta_{}", seen.sends.len());
    Json(json!({"recipient_id": body["recipient"]["id"], "message_id": id})).into_response()
}
