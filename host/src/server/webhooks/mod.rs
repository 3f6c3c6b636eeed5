//! Webhooks in: Meta's Instagram webhooks, Connexease's outgoing webhooks
//! and third-party chatbots' callbacks. Signatures are checked before anything is stored; accepted
//! events are durable before the 2xx goes out.

mod chatbot;
mod connexease;
mod instagram;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use connexease::ConnexeaseAccounts;
pub use instagram::InstagramAccounts;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/instagram",
            get(instagram::verify).post(instagram::receive),
        )
        .route("/webhooks/connexease", post(connexease::receive))
        .route(
            "/chatbots/{name}/callback",
            post(chatbot::receive).layer(DefaultBodyLimit::max(chatbot::MAX_CALLBACK_BYTES)),
        )
}
