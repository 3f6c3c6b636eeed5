//! {{NAME}}: a flowhost chatbot adapter. It speaks a simple JSON protocol,
//! which you change to your bot's:
//! - flowhost posts `{"conversation", "text", "reply_url", "fields"}`;
//! - the bot answers `200 {"replies": ["..."], "handoff": "<queue>"}` at
//!   once, or `202` with no body and later posts the same JSON to
//!   `reply_url` (it names the conversation and its hash).
//!
//!   cargo test                                         # unit tests, against the SDK's mock host
//!   cargo build --release --target wasm32-wasip2       # the component
//!   flowhost plugin test target/wasm32-wasip2/release/{{CRATE}}.wasm fixtures/
//!                                                      # the component, in flowhost's real runtime

use flowhost_sdk::chatbot::{AdapterError, BotReply, BotTurn, Callback, Inbound, Session};
use flowhost_sdk::{Capability, Chatbot, Context, PluginInfo, http, plugin_info};
use serde::Deserialize;

struct {{TYPE}};

/// The chatbot node's configuration: its `url` (and `send_attachments`),
/// and anything of its `config:`.
#[derive(Deserialize)]
struct Config {
    url: String,
}

/// What the bot answers, at once or later.
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

impl Chatbot for {{TYPE}} {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "{{NAME}}",
            "0.1.0",
            "Talks to a bot that answers at once or later.",
            serde_json::json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": { "type": "string" },
                    "send_attachments": { "type": "boolean" }
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
            202 => Ok(BotTurn {
                replies: Vec::new(),
                handoff_queue: None,
            }),
            200 => read_answer(&response.body),
            status => Err(AdapterError::Unavailable(format!(
                "the bot answered HTTP {status}"
            ))),
        }
    }

    /// Called when the bot posts to `reply_url`; flowhost has already
    /// checked the URL's conversation and hash (empty ones here mean "as
    /// the URL says").
    fn parse_callback(_config: Config, body: &[u8]) -> Result<Callback, AdapterError> {
        Ok(Callback {
            conversation: String::new(),
            hash: String::new(),
            turn: read_answer(body)?,
        })
    }
}

fn read_answer(body: &[u8]) -> Result<BotTurn, AdapterError> {
    serde_json::from_slice::<Answer>(body)
        .map(Answer::into_turn)
        .map_err(|e| AdapterError::Protocol(format!("the bot's answer: {e}")))
}

flowhost_sdk::export_chatbot!({{TYPE}});

#[cfg(test)]
mod tests {
    use super::*;
    use flowhost_sdk::http::Method;
    use flowhost_sdk::testing::{MockHost, context, inbound};

    const BOT: &str = "https://bot.example/talk";

    #[test]
    fn the_customer_message_goes_to_the_bot_and_its_answer_comes_back() {
        let (turn, host) = MockHost::new()
            .answer(
                Method::Post,
                BOT,
                200,
                r#"{"replies": ["Hello!"], "handoff": "sales"}"#,
            )
            .deliver::<{{TYPE}}>(
                &context("hi"),
                serde_json::json!({ "url": BOT }),
                inbound("hi"),
            );
        let turn = turn.unwrap();
        assert_eq!(turn.replies[0].text.as_deref(), Some("Hello!"));
        assert_eq!(turn.handoff_queue.as_deref(), Some("sales"));
        let sent: serde_json::Value =
            serde_json::from_slice(host.requests[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(sent["text"], "hi");
    }

    #[test]
    fn an_error_status_sends_the_customer_to_the_fallback() {
        let (turn, _) = MockHost::new()
            .answer(Method::Post, BOT, 503, "")
            .deliver::<{{TYPE}}>(
                &context("hi"),
                serde_json::json!({ "url": BOT }),
                inbound("hi"),
            );
        assert!(matches!(turn, Err(AdapterError::Unavailable(_))));
    }

    #[test]
    fn a_later_answer_is_read_from_the_callback() {
        let (callback, _) = MockHost::new().parse_callback::<{{TYPE}}>(
            serde_json::json!({ "url": BOT }),
            br#"{"replies": ["Done"]}"#,
        );
        assert_eq!(
            callback.unwrap().turn.replies[0].text.as_deref(),
            Some("Done")
        );
        let (callback, _) =
            MockHost::new().parse_callback::<{{TYPE}}>(serde_json::json!({ "url": BOT }), b"{");
        assert!(matches!(callback, Err(AdapterError::Protocol(_))));
    }
}
