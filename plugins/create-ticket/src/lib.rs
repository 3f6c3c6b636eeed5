//! Built-in action `create-ticket`: opens a ticket and keeps its id.

use flowhost_sdk::tickets::{self, NewTicket};
use flowhost_sdk::{Action, ActionError, Capability, Context, Outcome, PluginInfo, plugin_info};
use serde::Deserialize;
use serde_json::json;

struct CreateTicket;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    title: String,
    category: String,
    #[serde(default)]
    comment: String,
    /// Where the new ticket's id is kept; `ticket` unless set.
    #[serde(default = "default_name")]
    name: String,
}

fn default_name() -> String {
    "ticket".into()
}

impl Action for CreateTicket {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "create-ticket",
            env!("CARGO_PKG_VERSION"),
            "Creates a ticket with a title, category and comment, and keeps its id.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["title", "category"],
                "additionalProperties": false,
                "properties": {
                    "title": {"type": "string", "minLength": 1},
                    "category": {"type": "string", "minLength": 1},
                    "comment": {"type": "string"},
                    "name": {"type": "string", "minLength": 1, "default": "ticket"}
                }
            }),
            &[Capability::Tickets],
        )
    }

    fn run(_context: &Context, config: Config) -> Result<Outcome, ActionError> {
        if config.title.trim().is_empty() {
            return Err(ActionError::InvalidConfig("title must not be empty".into()));
        }
        let id = tickets::create(&NewTicket {
            title: config.title,
            category: config.category,
            comment: config.comment,
        })?;
        Ok(Outcome::store(config.name, &json!({ "id": id })))
    }
}

flowhost_sdk::export_action!(CreateTicket);
