//! Tickets in the contact center's ticket store (capability `tickets`).

use crate::HostError;
#[cfg(target_arch = "wasm32")]
use crate::bindings::action::flowhost::plugin::tickets as host;
// Natively (a plugin's `cargo test`) calls go to the thread's mock host.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::tickets as host;

pub use crate::bindings::action::flowhost::plugin::tickets::NewTicket;

/// Creates a ticket (stored when the call succeeds); returns its id.
pub fn create(ticket: &NewTicket) -> Result<String, HostError> {
    host::create(ticket)
}
