// An action: greets the customer by name. Build it with
// `cargo build --release --target wasm32-wasip2 --example greet`.

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
