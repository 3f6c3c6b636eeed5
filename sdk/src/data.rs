//! The conversation's saved data (capability `conversation-data`).
//!
//! Writes are visible to later reads in the same call and are stored by the
//! host only when the call succeeds.

use crate::HostError;
#[cfg(target_arch = "wasm32")]
use crate::bindings::action::flowhost::plugin::conversation_data as host;
// Natively (a plugin's `cargo test`) calls go to the thread's mock host.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::conversation_data as host;

/// The saved value under `key`, if any.
pub fn get(key: &str) -> Option<serde_json::Value> {
    host::get(key).and_then(|json| serde_json::from_str(&json).ok())
}

/// Saves `value` under `key`.
pub fn set(key: &str, value: &serde_json::Value) -> Result<(), HostError> {
    host::set(key, &value.to_string())
}

/// Forgets `key`.
pub fn remove(key: &str) {
    host::remove(key)
}
