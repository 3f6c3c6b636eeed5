// A complete chatbot adapter, for an imaginary "relay" bot that answers at
// once or later. Build it (from `sdk/`) with
// `cargo build --release --target wasm32-wasip2 --example relay_bot`;
// the component is `target/wasm32-wasip2/release/examples/relay_bot.wasm`.
// Copy it into the server's `plugins_dir` as `relay-bot.wasm` (a plugin's
// file is named after the name it declares) and name it in a flow:
// `chatbots: { helper: { adapter: relay-bot, url: ..., fallback: ... } }`.
//
// The relay bot's protocol, which this adapter speaks:
// - flowhost posts `{"conversation", "text", "reply_url", "fields"}`;
// - the bot answers `200 {"replies": ["..."], "handoff": "<queue>"}` at
//   once, or `202` with no body and later posts the same JSON to
//   `reply_url` (the session's `response_url`, which carries the
//   conversation and its hash, so the body need not name them).

use flowhost_sdk::chatbot::{AdapterError, BotReply, BotTurn, Callback, Inbound, Session};
use flowhost_sdk::{Capability, Chatbot, Context, PluginInfo, http, plugin_info};
use serde::Deserialize;

struct RelayBot;

/// The chatbot node's configuration: `url` and `send_attachments` come from
/// the node itself, anything else from its `config:`.
#[derive(Deserialize)]
struct Config {
    url: String,
}

/// What the relay bot answers, at once or later.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    replies: Vec<String>,
    #[serde(default)]
    handoff: Option<String>,
}

impl Answer {
    fn into_turn(self) -> BotTurn {
        BotTurn {
            replies: self.replies.into_iter().map(BotReply::text).collect(),
            handoff_queue: self.handoff,
        }
    }
}

impl Chatbot for RelayBot {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "relay-bot",
            "1.0.0",
            "Talks to a relay bot, which answers at once or later.",
            serde_json::json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {"type": "string"},
                    "send_attachments": {"type": "boolean"}
                }
            }),
            // Only what it uses: the host refuses any other capability.
            &[Capability::Http],
        )
    }

    /// Called for every customer message while the conversation is with
    /// the chatbot (and for the start message, `inbound.is_start`).
    fn deliver(
        context: &Context,
        config: Config,
        session: &Session,
        inbound: Inbound,
    ) -> Result<BotTurn, AdapterError> {
        let fields: serde_json::Map<String, serde_json::Value> = session
            .custom_fields
            .iter()
            .map(|f| (f.name.clone(), serde_json::json!(f.value)))
            .collect();
        let body = serde_json::json!({
            "conversation": context.conversation.id,
            // A pressed quick reply answers with its payload.
            "text": inbound.quick_reply.or(inbound.text),
            "reply_url": session.response_url,
            "fields": fields,
        });
        // `Unavailable` and `Protocol` send the conversation to the
        // chatbot's fallback, so the customer is never left unanswered.
        let response = http::send(http::post_json(&config.url, &body))
            .map_err(|e| AdapterError::Unavailable(http::explain(&e)))?;
        match response.status {
            202 => Ok(Answer {
                replies: Vec::new(),
                handoff: None,
            }
            .into_turn()),
            200 => serde_json::from_slice::<Answer>(&response.body)
                .map(Answer::into_turn)
                .map_err(|e| AdapterError::Protocol(format!("the bot's answer: {e}"))),
            status => Err(AdapterError::Unavailable(format!(
                "the bot answered HTTP {status}"
            ))),
        }
    }

    /// Called when the bot posts to `reply_url`. The host has already
    /// checked the URL's conversation and hash; empty ones here mean "as
    /// the URL says".
    fn parse_callback(_config: Config, body: &[u8]) -> Result<Callback, AdapterError> {
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|e| AdapterError::Protocol(format!("the callback: {e}")))?;
        Ok(Callback {
            conversation: String::new(),
            hash: String::new(),
            turn: answer.into_turn(),
        })
    }
}

flowhost_sdk::export_chatbot!(RelayBot);
