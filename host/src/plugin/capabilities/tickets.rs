//! `tickets`: tickets created by the call, stored when it succeeds.

use super::super::bindings::v0_1_0::flowhost::plugin::tickets::{Host, NewTicket};
use super::super::bindings::v0_1_0::flowhost::plugin::types::HostError;
use super::super::state::CallState;
use super::super::types::{Capability, TicketDraft};

impl Host for CallState {
    async fn create(&mut self, ticket: NewTicket) -> wasmtime::Result<Result<String, HostError>> {
        if let Err(denied) = self.require(Capability::Tickets) {
            return Ok(Err(denied));
        }
        let limits = &self.plugin.limits;
        if self.scope.effects.tickets.len() as u32 >= limits.max_tickets {
            return Ok(Err(HostError::Denied(format!(
                "more than {} tickets in one call",
                limits.max_tickets
            ))));
        }
        if ticket.title.trim().is_empty() || ticket.category.trim().is_empty() {
            return Ok(Err(HostError::Invalid(
                "a ticket needs a title and a category".into(),
            )));
        }
        let size = ticket.title.len() + ticket.category.len() + ticket.comment.len();
        if size > limits.max_output_bytes {
            return Ok(Err(HostError::Invalid(format!(
                "ticket of {size} bytes exceeds the limit of {} bytes",
                limits.max_output_bytes
            ))));
        }
        let id = uuid::Uuid::now_v7().to_string();
        self.scope.effects.tickets.push(TicketDraft {
            id: id.clone(),
            title: ticket.title,
            category: ticket.category,
            comment: ticket.comment,
        });
        Ok(Ok(id))
    }
}
