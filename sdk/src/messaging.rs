//! Messages to the customer (capability `messaging`).
//!
//! Messages are queued by the host and handed to the channel's outbox when
//! the call succeeds; the channel enforces its own limits (Instagram: text up
//! to 1,000 bytes, at most 13 quick replies with 20-character titles).

#[cfg(target_arch = "wasm32")]
use crate::bindings::action::flowhost::plugin::messaging as host;
// Natively (a plugin's `cargo test`) calls go to the thread's mock host.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::messaging as host;
use crate::{HostError, OutgoingMessage};

/// Queues `message`; returns the id the host gave it.
pub fn send(message: &OutgoingMessage) -> Result<String, HostError> {
    host::send(message)
}

/// Queues a plain text message.
pub fn send_text(text: &str) -> Result<String, HostError> {
    send(&OutgoingMessage::text(text))
}

impl OutgoingMessage {
    /// A message with text only.
    pub fn text(text: impl Into<String>) -> Self {
        OutgoingMessage {
            text: Some(text.into()),
            buttons: Vec::new(),
            quick_replies: Vec::new(),
            attachments: Vec::new(),
        }
    }
}
