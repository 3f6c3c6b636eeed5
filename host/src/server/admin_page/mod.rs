//! The admin page at `/admin/ui`: one static page and a small script that
//! works only through the admin API (sandbox and production side by side,
//! each entity's diagram tree, a flow file to load, plugin uploads, the
//! diff, apply with the errors in place, history with rollback) and analytics (`analytics.js`: tables,
//! a chart of sessions per day, CSV downloads). Every asset is served from
//! here.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::console::asset;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const ANALYTICS: &str = include_str!("analytics.js");
const STYLE: &str = include_str!("style.css");
/// Diagrams are SVG images the script makes into `blob:` URLs.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/ui", get(page))
        .route(
            "/admin/ui/app.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/admin/ui/analytics.js",
            get(|| asset(ANALYTICS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/admin/ui/style.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(PAGE),
    )
        .into_response()
}
