//! An action whose configuration schema is JSON but not a schema (`type`
//! must be a string or a list): the host must refuse to load it rather
//! than check its configuration against nothing.

use flowhost_sdk::{Action, ActionError, Context, Outcome, PluginInfo, plugin_info};
use serde_json::json;

struct BadSchema;

impl Action for BadSchema {
    type Config = serde_json::Value;

    fn describe() -> PluginInfo {
        plugin_info(
            "bad-schema",
            "0.1.0",
            "Declares a schema that does not compile.",
            json!({"type": 12}),
            &[],
        )
    }

    fn run(_context: &Context, _config: serde_json::Value) -> Result<Outcome, ActionError> {
        Ok(Outcome::default())
    }
}

flowhost_sdk::export_action!(BadSchema);
