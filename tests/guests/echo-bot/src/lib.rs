//! A minimal chatbot adapter: proves the `chatbot` world builds with the
//! SDK and loads in the host. It answers every message with its own text
//! (`flood N`: N times).

use flowhost_sdk::chatbot::{AdapterError, BotReply, BotTurn, Callback, Inbound, Session};
use flowhost_sdk::{Capability, Chatbot, Context, PluginInfo, plugin_info};
use serde::Deserialize;

struct EchoBot;

#[derive(Deserialize)]
struct Config {}

impl Chatbot for EchoBot {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "echo-bot",
            "0.1.0",
            "Echoes the customer.",
            serde_json::json!({"type": "object"}),
            &[Capability::Log],
        )
    }

    fn deliver(
        _: &Context,
        _: Config,
        _: &Session,
        inbound: Inbound,
    ) -> Result<BotTurn, AdapterError> {
        let text = inbound.text.unwrap_or_default();
        // `flood N` answers N times (a bot that says too much).
        let times = text
            .strip_prefix("flood ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        Ok(BotTurn {
            replies: vec![BotReply::text(text.clone()); times],
            handoff_queue: None,
        })
    }

    fn parse_callback(_: Config, _: &[u8]) -> Result<Callback, AdapterError> {
        Err(AdapterError::Protocol("echo-bot never calls back".into()))
    }
}

flowhost_sdk::export_chatbot!(EchoBot);
