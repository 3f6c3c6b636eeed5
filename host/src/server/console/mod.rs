//! The agent console at `/console`: one server-rendered page (minijinja)
//! and a small script that works through the agent API and its stream.
//! Every asset is served from here; the page loads nothing from elsewhere,
//! and its Content-Security-Policy says so.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::{Environment, context};

use super::AppState;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");
/// Breaks the status menu offers (any `break:<name>` is accepted by the API).
const BREAKS: [&str; 3] = ["lunch", "training", "meeting"];
/// Customer pictures and attachments come from Instagram's CDN.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' https: data:; media-src https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route(
            "/console/app.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/console/style.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
}

fn templates() -> &'static Environment<'static> {
    static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut env = Environment::new();
        env.add_template("page.html", PAGE)
            .expect("the console page is a valid template");
        env
    })
}

/// The page, with the flow's queues and decision trees for transfers.
async fn page(State(state): State<AppState>) -> Response {
    let (queues, trees) = match &state.desk {
        Some(desk) => {
            let flow = &desk.engine.flow().flow;
            let queues: Vec<(String, String)> = flow
                .queues
                .iter()
                .map(|(key, queue)| (key.clone(), queue.name.clone()))
                .collect();
            let trees: Vec<(String, String)> = flow
                .decision_trees
                .iter()
                .map(|(key, tree)| (key.clone(), tree.title.clone()))
                .collect();
            (queues, trees)
        }
        None => (Vec::new(), Vec::new()),
    };
    let rendered = templates()
        .get_template("page.html")
        .and_then(|page| page.render(context! { queues, trees, breaks => BREAKS }));
    match rendered {
        Ok(html) => (secure_headers(), Html(html)).into_response(),
        Err(e) => {
            tracing::error!("rendering the console: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the console could not be rendered",
            )
                .into_response()
        }
    }
}

/// A static asset of a page: never sniffed, revalidated on every load.
pub(super) async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn secure_headers() -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ]
}
