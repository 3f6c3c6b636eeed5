//! Built-in action `save-data`: keeps a value in the conversation's saved data.

use flowhost_sdk::{
    Action, ActionError, Capability, Context, Outcome, PluginInfo, data, plugin_info,
};
use serde::Deserialize;
use serde_json::{Value, json};

struct SaveData;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    key: String,
    /// Any JSON value; strings have been rendered as templates by the host.
    value: Value,
}

impl Action for SaveData {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "save-data",
            env!("CARGO_PKG_VERSION"),
            "Saves a value under a key in the conversation's data.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["key", "value"],
                "additionalProperties": false,
                "properties": {
                    "key": {"type": "string", "minLength": 1},
                    "value": {}
                }
            }),
            &[Capability::ConversationData],
        )
    }

    fn run(_context: &Context, config: Config) -> Result<Outcome, ActionError> {
        if config.key.trim().is_empty() {
            return Err(ActionError::InvalidConfig("key must not be empty".into()));
        }
        data::set(&config.key, &config.value)?;
        Ok(Outcome::default())
    }
}

flowhost_sdk::export_action!(SaveData);
