//! minijinja templates rendered by the host (capability `templates`).
//!
//! The context has `message`, `conversation`, `contact`, `data`, `language`
//! and the named results of earlier actions of the conversation.

use crate::HostError;
use crate::bindings::action::flowhost::plugin::templates as host;

/// Renders `template` against the conversation's context.
pub fn render(template: &str) -> Result<String, HostError> {
    host::render(template)
}
