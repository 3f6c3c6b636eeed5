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
