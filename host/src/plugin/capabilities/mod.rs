//! Host capabilities, one module each, implementing the WIT imports of
//! `flowhost:plugin`. Every capability checks that the plugin declared it,
//! bounds what the guest can make it do, and charges its time to the host's
//! share of the call (not to the guest's budget).

pub mod data;
pub mod http;
pub mod log;
pub mod messaging;
pub mod templates;
pub mod tickets;

use super::bindings::v0_1_0::flowhost::plugin::types;
use super::state::CallState;

/// A refusal that cannot be expressed in the import's WIT signature (a
/// `get` with no error type, say): it traps the guest, and the call reports
/// it as `CallError::Capability`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub String);

impl Refused {
    /// The trap that carries a refusal out of an import.
    pub fn trap(error: types::HostError) -> wasmtime::Error {
        wasmtime::Error::new(Refused(host_error_text(error)))
    }
}

/// The plain reason inside a `host-error`.
pub(crate) fn host_error_text(error: types::HostError) -> String {
    match error {
        types::HostError::Denied(why)
        | types::HostError::Invalid(why)
        | types::HostError::Failed(why) => why,
        types::HostError::Timeout => "host call timed out".into(),
    }
}

impl types::Host for CallState {}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

/// `text` with control characters (newlines among them) written as
/// escapes, so text from a guest or a customer cannot start a forged line
/// in the host's log.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    /// Issue 8, item 16.
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::escape_controls("plain"), "plain");
        assert_eq!(
            super::escape_controls("ok\n2026-11-22T00:00:00Z ERROR forged\r\x1b[31m"),
            "ok\\n2026-11-22T00:00:00Z ERROR forged\\r\\u{1b}[31m"
        );
    }
}
