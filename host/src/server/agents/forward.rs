//! Agents' actions on a conversation another node runs (several nodes on
//! one database): the action must run where the conversation's turns run,
//! so this node passes the request on to that node, as the agent sent it
//! (their token included), and passes its answer back. Reads need no
//! forwarding: every node reads the shared store.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::model::conversation_key;
use crate::server::AppState;
use crate::server::error::ApiError;

/// Marks a forwarded request: the node it reaches runs it or refuses it,
/// never forwards it again (partitions may be moving).
const FORWARDED: HeaderName = HeaderName::from_static("x-flowhost-forwarded");
/// The largest body passed on either way (an agent's reply with
/// attachments' links is far smaller).
const MAX_BODY: usize = 1 << 20;

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        // An action may wait for a translator: the owner bounds that.
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
});

/// Runs the request here when this node runs the conversation, else
/// forwards it to the node that does.
pub async fn to_owner(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let (Some(account), Some(customer)) = (params.get("account"), params.get("customer")) else {
        return next.run(request).await;
    };
    let key = conversation_key(account, customer);
    let storage = &state.runner.storage;
    if storage.owns(&key) {
        return next.run(request).await;
    }
    if request.headers().contains_key(&FORWARDED) {
        return elsewhere(
            "it moved to another node while the request was on its way; send it again",
        );
    }
    match storage.owner_address(&key).await {
        Ok(Some(address)) => forward(&address, request).await.unwrap_or_else(|e| {
            elsewhere(&format!(
                "the node running it ({address}) did not answer: {e}"
            ))
        }),
        Ok(None) => elsewhere(
            "no node runs it at this moment (nodes are joining or leaving); send it again",
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn forward(address: &str, request: Request) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0)
        .path_and_query()
        .map_or("/", |p| p.as_str());
    let body = to_bytes(body, MAX_BODY).await.map_err(|e| e.to_string())?;
    let mut outgoing = CLIENT
        .request(parts.method, format!("{address}{path}"))
        .header(&FORWARDED, "1")
        .body(body);
    for name in [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT_LANGUAGE,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let mut answer = outgoing.send().await.map_err(|e| e.to_string())?;
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(format!("its answer exceeds {MAX_BODY} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

fn elsewhere(why: &str) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "other_node",
        format!("another node runs this conversation: {why}"),
    )
    .into_response()
}
