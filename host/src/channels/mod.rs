//! Channels: how conversations reach flowhost and how replies leave it.
//! Each channel module knows its wire formats; the server's webhooks
//! (`crate::server::webhooks`) and the sender (`crate::outbox`) use them.

pub mod connexease;
pub mod instagram;

/// An error with its causes ("error sending request: ...: connection
/// refused"), since reqwest's own text leaves them out.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
