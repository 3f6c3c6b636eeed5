//! minijinja templates rendered by the host (capability `templates`).
//!
//! The context has `message`, `conversation`, `contact`, `data`, `language`
//! and the named results of earlier actions of the conversation.

use crate::HostError;
#[cfg(target_arch = "wasm32")]
use crate::bindings::action::flowhost::plugin::templates as host;
// Natively (a plugin's `cargo test`) calls go to the thread's mock host.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::templates as host;

/// Renders `template` against the conversation's context.
pub fn render(template: &str) -> Result<String, HostError> {
    host::render(template)
}
