//! Tickets in the contact center's ticket store (capability `tickets`).

use crate::HostError;
use crate::bindings::action::flowhost::plugin::tickets as host;

pub use host::NewTicket;

/// Creates a ticket (stored when the call succeeds); returns its id.
pub fn create(ticket: &NewTicket) -> Result<String, HostError> {
    host::create(ticket)
}
