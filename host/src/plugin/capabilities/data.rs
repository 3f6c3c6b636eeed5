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
        if let Err(refused) = self.count_data_write() {
            return Ok(Err(refused));
        }
        match self.saved_bytes_with(&key, Some(&value)) {
            Ok(total) => self.scope.data_bytes = Some(total),
            Err(refused) => return Ok(Err(refused)),
        }
        self.scope.context.data.insert(key.clone(), value.clone());
        self.scope.effects.data_changes.insert(key, Some(value));
        Ok(Ok(()))
    }

    async fn remove(&mut self, key: String) -> wasmtime::Result<()> {
        self.require(Capability::ConversationData)
            .map_err(Refused::trap)?;
        self.count_data_write().map_err(Refused::trap)?;
        self.scope.data_bytes = self.saved_bytes_with(&key, None).ok();
        self.scope.context.data.remove(&key);
        self.scope.effects.data_changes.insert(key, None);
        Ok(())
    }
}

impl CallState {
    /// Counts one write against the call's `max_data_writes`.
    fn count_data_write(&mut self) -> Result<(), HostError> {
        let limit = self.plugin.limits.max_data_writes;
        if self.scope.data_writes >= limit {
            return Err(HostError::Invalid(format!(
                "more than {limit} saved-data writes in one call"
            )));
        }
        self.scope.data_writes += 1;
        Ok(())
    }

    /// The bytes of the conversation's saved data once `key` is set to
    /// `value` (or removed), if that stays within `max_data_keys` and
    /// `max_data_bytes`.
    fn saved_bytes_with(&mut self, key: &str, value: Option<&Value>) -> Result<usize, HostError> {
        let data = &self.scope.context.data;
        let total = *self
            .scope
            .data_bytes
            .get_or_insert_with(|| data.iter().map(|(k, v)| entry_bytes(k, v)).sum());
        let old = data.get(key).map_or(0, |v| entry_bytes(key, v));
        let new = value.map_or(0, |v| entry_bytes(key, v));
        let limits = &self.plugin.limits;
        let keys = data.len() + usize::from(value.is_some() && !data.contains_key(key));
        if keys > limits.max_data_keys {
            return Err(HostError::Invalid(format!(
                "the conversation would hold {keys} saved keys; at most {} are kept",
                limits.max_data_keys
            )));
        }
        let total = total - old + new;
        if total > limits.max_data_bytes {
            return Err(HostError::Invalid(format!(
                "the conversation's saved data would be {total} bytes; at most {} are kept",
                limits.max_data_bytes
            )));
        }
        Ok(total)
    }
}

/// What one saved entry counts for: its key and its value as JSON.
fn entry_bytes(key: &str, value: &Value) -> usize {
    key.len() + value.to_string().len()
}
