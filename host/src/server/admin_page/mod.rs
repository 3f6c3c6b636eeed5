//! The admin page at `/admin/ui`: one static page and a small script that
//! works only through the admin API (sandbox and production side by side,
//! each entity's diagram tree, a flow file to load, plugin uploads, the
//! diff, apply with the errors in place, history with rollback) and analytics (`analytics.js`: tables,
//! a chart of sessions per day, CSV downloads), connected Instagram
//! accounts, and the page Meta's login returns to. Every asset is served
//! from here.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::{Environment, context};

use super::console::asset;
use super::{AppState, INSTAGRAM_CALLBACK_PATH};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const ANALYTICS: &str = include_str!("analytics.js");
const STYLE: &str = include_str!("style.css");
const CALLBACK: &str = include_str!("callback.html");
const INSTAGRAM: &str = include_str!("instagram.js");
/// Diagrams are SVG images the script makes into `blob:` URLs.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/ui", get(page))
        .route(INSTAGRAM_CALLBACK_PATH, get(instagram_callback))
        .route(
            "/admin/ui/app.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/admin/ui/analytics.js",
            get(|| asset(ANALYTICS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/admin/ui/instagram.js",
            get(|| asset(INSTAGRAM, "text/javascript; charset=utf-8")),
        )
        .route(
            "/admin/ui/style.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
}

const HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
];

async fn page() -> Response {
    (HEADERS, Html(PAGE)).into_response()
}

/// Where Meta sends the admin's browser back from its authorization
/// window: with `code` and `state` when the account's owner allowed it,
/// with `error` and `error_description` when not. No bearer token comes
/// with a browser redirect: the login's one-time state, which only an
/// admin's `POST /admin/instagram/connect` can make, authenticates it.
async fn instagram_callback(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let login_state = query.get("state").map(String::as_str).unwrap_or("");
    let outcome = match (query.get("code"), query.get("error")) {
        (Some(code), None) => state
            .connections
            .finish(login_state, code)
            .await
            .map_err(|e| e.to_string()),
        _ => {
            state.connections.abandon(login_state);
            let why = query
                .get("error_description")
                .or(query.get("error_reason"))
                .or(query.get("error"))
                .map_or("no code came back", String::as_str);
            Err(format!("Meta did not authorise the account: {why}"))
        }
    };
    let (status, page) = match &outcome {
        Ok(account) => {
            let expires = jiff::Timestamp::from_millisecond(account.token_expires_at_ms as i64)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            (
                StatusCode::OK,
                context! { outcome => "connected", title => "Instagram account connected", account, expires },
            )
        }
        Err(problem) => {
            tracing::warn!("connecting an Instagram account failed: {problem}");
            (
                StatusCode::BAD_REQUEST,
                context! { outcome => "failed", title => "The Instagram account was not connected", problem },
            )
        }
    };
    match callback_template().render(page) {
        Ok(html) => (status, HEADERS, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("rendering the Instagram callback page: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

fn callback_template() -> minijinja::Template<'static, 'static> {
    static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();
    TEMPLATES
        .get_or_init(|| {
            let mut env = Environment::new();
            env.add_template("callback.html", CALLBACK)
                .expect("the callback page is a valid template");
            env
        })
        .get_template("callback.html")
        .expect("the callback page was added")
}
