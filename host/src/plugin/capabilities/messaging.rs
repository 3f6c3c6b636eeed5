//! `messaging`: messages to the customer, queued as effects.

use super::super::bindings::v0_1_0::flowhost::plugin::messaging::Host;
use super::super::bindings::v0_1_0::flowhost::plugin::types::{HostError, OutgoingMessage};
use super::super::state::CallState;
use super::super::types::{self as host_types, Capability};

impl Host for CallState {
    async fn send(
        &mut self,
        message: OutgoingMessage,
    ) -> wasmtime::Result<Result<String, HostError>> {
        if let Err(denied) = self.require(Capability::Messaging) {
            return Ok(Err(denied));
        }
        let limits = &self.plugin.limits;
        if self.scope.effects.messages.len() as u32 >= limits.max_messages {
            return Ok(Err(HostError::Denied(format!(
                "more than {} messages in one call",
                limits.max_messages
            ))));
        }
        let mut message: host_types::OutgoingMessage = message.into();
        let size = serde_json::to_string(&message)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if size > limits.max_output_bytes {
            return Ok(Err(HostError::Invalid(format!(
                "message of {size} bytes exceeds the limit of {} bytes",
                limits.max_output_bytes
            ))));
        }
        if message.text.as_deref().unwrap_or("").trim().is_empty() && message.attachments.is_empty()
        {
            return Ok(Err(HostError::Invalid(
                "a message needs text or an attachment".into(),
            )));
        }
        message.id = uuid::Uuid::now_v7().to_string();
        let id = message.id.clone();
        self.scope.effects.messages.push(message);
        Ok(Ok(id))
    }
}
