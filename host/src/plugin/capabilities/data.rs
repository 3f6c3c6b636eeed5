//! `conversation-data`: the conversation's saved data. Reads see the call's
//! own writes; writes become effects, stored only if the call succeeds.

use serde_json::Value;

use super::super::bindings::v0_1_0::flowhost::plugin::conversation_data::Host;
use super::super::bindings::v0_1_0::flowhost::plugin::types::HostError;
use super::super::state::CallState;
use super::super::types::Capability;
use super::Refused;

/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 256;

impl Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::ConversationData)
            .map_err(Refused::trap)?;
        Ok(self.scope.context.data.get(&key).map(Value::to_string))
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(denied) = self.require(Capability::ConversationData) {
            return Ok(Err(denied));
        }
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Ok(Err(HostError::Invalid(format!(
                "a key has 1 to {MAX_KEY_BYTES} bytes"
            ))));
        }
        let limit = self.plugin.limits.max_output_bytes;
        if value.len() > limit {
            return Ok(Err(HostError::Invalid(format!(
                "value of {} bytes exceeds the limit of {limit} bytes",
                value.len()
            ))));
        }
        let value: Value = match serde_json::from_str(&value) {
            Ok(value) => value,
            Err(e) => return Ok(Err(HostError::Invalid(format!("value is not JSON: {e}")))),
        };
        self.scope.context.data.insert(key.clone(), value.clone());
        self.scope.effects.data_changes.insert(key, Some(value));
        Ok(Ok(()))
    }

    async fn remove(&mut self, key: String) -> wasmtime::Result<()> {
        self.require(Capability::ConversationData)
            .map_err(Refused::trap)?;
        self.scope.context.data.remove(&key);
        self.scope.effects.data_changes.insert(key, None);
        Ok(())
    }
}
