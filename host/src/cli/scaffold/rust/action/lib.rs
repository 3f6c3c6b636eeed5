//! {{NAME}}: a flowhost action. It greets the customer by name and
//! remembers that it did.
//!
//!   cargo test                                         # unit tests, against the SDK's mock host
//!   cargo build --release --target wasm32-wasip2       # the component
//!   flowhost plugin test target/wasm32-wasip2/release/{{CRATE}}.wasm fixtures/
//!                                                      # the component, in flowhost's real runtime

use flowhost_sdk::{Action, ActionError, Capability, Context, Outcome, PluginInfo, plugin_info};
use serde::Deserialize;

struct {{TYPE}};

/// The action's configuration in a flow (after the host rendered its
/// templates), as its schema in `describe` says.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    greeting: String,
}

impl Action for {{TYPE}} {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "{{NAME}}",
            "0.1.0",
            "Greets the customer by name and remembers that it did.",
            serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["greeting"],
                "properties": { "greeting": { "type": "string", "minLength": 1 } }
            }),
            &[Capability::Messaging, Capability::ConversationData],
        )
    }

    fn run(context: &Context, config: Config) -> Result<Outcome, ActionError> {
        let name = context.contact.name.as_deref().unwrap_or("there");
        let text = format!("{}, {name}!", config.greeting);
        flowhost_sdk::messaging::send_text(&text)?;
        flowhost_sdk::data::set("greeted", &serde_json::json!(true))?;
        Ok(Outcome::store("greeting", &serde_json::json!(text)))
    }
}

flowhost_sdk::export_action!({{TYPE}});

#[cfg(test)]
mod tests {
    use super::*;
    use flowhost_sdk::testing::{MockHost, context};

    #[test]
    fn greets_the_customer_by_name_and_remembers_it() {
        let mut customer = context("hi");
        customer.contact.name = Some("Ada".into());
        let (outcome, host) = MockHost::new()
            .run_action::<{{TYPE}}>(&customer, serde_json::json!({ "greeting": "Hello" }));
        assert_eq!(outcome.unwrap().store.unwrap().value, r#""Hello, Ada!""#);
        assert_eq!(host.sent_texts(), ["Hello, Ada!"]);
        assert_eq!(host.data["greeted"], true);
    }

    #[test]
    fn a_configuration_without_a_greeting_is_refused() {
        let (outcome, host) =
            MockHost::new().run_action::<{{TYPE}}>(&context("hi"), serde_json::json!({}));
        assert!(matches!(outcome, Err(ActionError::InvalidConfig(_))));
        assert!(host.sent.is_empty());
    }
}
