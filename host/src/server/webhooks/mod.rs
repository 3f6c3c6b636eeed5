//! Webhooks in: Meta's Instagram webhooks, Connexease's outgoing webhooks
//! and third-party chatbots' callbacks. Signatures are checked before anything is stored; accepted
//! events are durable before the 2xx goes out.

mod chatbot;
mod connexease;
mod instagram;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use chatbot::CALLBACKS_PARSED_AT_ONCE;
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

/// Counts a delivery that was not accepted, by the status it got.
fn count_refusal(channel: &'static str, status: axum::http::StatusCode) {
    let outcome = match status.as_u16() {
        200..=299 => return,
        401 | 403 => "refused",
        400 | 413 => "unreadable",
        503 => "no_flow",
        _ => "failed",
    };
    metrics::counter!(crate::telemetry::WEBHOOKS, "channel" => channel, "outcome" => outcome)
        .increment(1);
}

/// Counts and logs a delivery whose `events` the inbox took (`new` of
/// them were not seen before). No message text: it is customer data.
fn count_accepted(channel: &'static str, events: usize, new: usize) {
    use crate::telemetry::{EVENTS_ACCEPTED, WEBHOOKS};
    let outcome = if new == 0 && events > 0 {
        "duplicate"
    } else {
        "accepted"
    };
    metrics::counter!(WEBHOOKS, "channel" => channel, "outcome" => outcome).increment(1);
    metrics::counter!(EVENTS_ACCEPTED, "channel" => channel).increment(new as u64);
    tracing::info!(channel, events, new, "webhook received");
}
