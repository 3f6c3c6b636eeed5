//! Structured logging into the host's log (capability `log`).
//!
//! The host attaches the plugin name and the conversation id, and drops
//! messages beyond the per-call log budget.

#[cfg(target_arch = "wasm32")]
use crate::bindings::action::flowhost::plugin::log as host;
// Natively (a plugin's `cargo test`) calls go to the thread's mock host.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::log as host;

pub use crate::bindings::action::flowhost::plugin::log::Level;

/// Logs `message` with key-value `fields` at `level`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    host::log(level, message, &fields);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}
