//! Saves as much conversation data as its configuration asks for:
//! `{"keys": 100000, "value_bytes": 1000}` writes `k0`, `k1`, ... each a
//! string of that many bytes (or `k0` every time, with `"same_key": true`). The host must cap what one call and one
//! conversation can keep.

use flowhost_sdk::{
    Action, ActionError, Capability, Context, Outcome, PluginInfo, data, plugin_info,
};
use serde::Deserialize;
use serde_json::json;

struct DataHog;

#[derive(Deserialize)]
struct Config {
    keys: usize,
    value_bytes: usize,
    #[serde(default)]
    prefix: String,
    /// Write the same key every time instead.
    #[serde(default)]
    same_key: bool,
}

impl Action for DataHog {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "data-hog",
            "0.1.0",
            "Saves too much data on purpose.",
            json!({"type": "object"}),
            &[Capability::ConversationData],
        )
    }

    fn run(_context: &Context, config: Config) -> Result<Outcome, ActionError> {
        let value = json!("x".repeat(config.value_bytes));
        for i in 0..config.keys {
            let n = if config.same_key { 0 } else { i };
            data::set(&format!("{}k{n}", config.prefix), &value)?;
        }
        Ok(Outcome::store("saved", &json!(config.keys)))
    }
}

flowhost_sdk::export_action!(DataHog);
