//! A partner's action, for the upload tests: greets the customer with the
//! configured greeting. The same as the SDK's `greet` example.

use flowhost_sdk::{Action, ActionError, Capability, Context, Outcome, PluginInfo, plugin_info};
use serde::Deserialize;

/// Greets the customer by name.
struct Greet;

#[derive(Deserialize)]
struct Config {
    greeting: String,
}

impl Action for Greet {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "greet",
            "1.0.0",
            "Greets the customer by name.",
            serde_json::json!({
                "type": "object",
                "required": ["greeting"],
                "properties": { "greeting": { "type": "string" } }
            }),
            &[Capability::Messaging],
        )
    }

    fn run(context: &Context, config: Config) -> Result<Outcome, ActionError> {
        let name = context.contact.name.as_deref().unwrap_or("there");
        flowhost_sdk::messaging::send_text(&format!("{}, {name}!", config.greeting))?;
        Ok(Outcome::default())
    }
}

flowhost_sdk::export_action!(Greet);
