// A chatbot adapter for a bot that answers at once. Build it with
// `cargo build --release --target wasm32-wasip2 --example echo_bot`.

use flowhost_sdk::chatbot::{AdapterError, BotReply, BotTurn, Callback, Inbound, Session};
use flowhost_sdk::{Capability, Chatbot, Context, PluginInfo, http, plugin_info};
use serde::Deserialize;

/// Forwards each message to an echo bot that answers at once.
struct Echo;

#[derive(Deserialize)]
struct Config {
    url: String,
}

impl Chatbot for Echo {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "echo-bot",
            "1.0.0",
            "Talks to an echo bot.",
            serde_json::json!({"type": "object", "required": ["url"]}),
            &[Capability::Http],
        )
    }

    fn deliver(
        _context: &Context,
        config: Config,
        _session: &Session,
        inbound: Inbound,
    ) -> Result<BotTurn, AdapterError> {
        let body = serde_json::json!({ "text": inbound.text });
        let response = http::send(http::post_json(&config.url, &body))
            .map_err(|e| AdapterError::Unavailable(e.to_string()))?;
        let answer: serde_json::Value =
            http::json(&response).map_err(|e| AdapterError::Protocol(e.to_string()))?;
        Ok(BotTurn {
            replies: vec![BotReply::text(answer["text"].as_str().unwrap_or_default())],
            handoff_queue: None,
        })
    }

    fn parse_callback(_config: Config, _body: &[u8]) -> Result<Callback, AdapterError> {
        Err(AdapterError::Protocol("this bot never calls back".into()))
    }
}

flowhost_sdk::export_chatbot!(Echo);
