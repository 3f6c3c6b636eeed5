//! Built-in chatbot adapter `rasa`: Rasa's REST channel, or its callback
//! channel.
//!
//! REST (`mode: rest`, the default): `POST {url}` (Rasa's
//! `/webhooks/rest/webhook`) with `{"sender", "message"}`; Rasa answers with
//! a list of messages `{recipient_id, text, image, buttons: [{title,
//! payload}], attachment, custom}`. Buttons become quick replies, whose
//! payload comes back as the customer's message.
//!
//! Callback (`mode: callback`): `POST {url}` (Rasa's
//! `/webhooks/callback/webhook`), which Rasa answers with `success`; it
//! later posts each message to the callback URL of its `credentials.yml`
//! (`https://<flowhost>/chatbots/<name>/callback`). That URL is the same
//! for every conversation, so the sender id carries the conversation and
//! its hash (`<conversation>~<hash>`) and comes back as `recipient_id`.
//!
//! Hand-off: a message whose `custom` object has the `handoff_key` (default
//! `handoff`) hands the conversation to the queue it names (`{"handoff":
//! "sales"}` or `{"handoff": {"queue": "sales"}}`); a customer pressing a
//! button whose payload is the `handoff_intent` (default `/handoff`,
//! optionally with entities such as `/handoff{"queue":"sales"}`) does the
//! same without asking Rasa.

use std::collections::BTreeMap;

use flowhost_sdk::chatbot::{AdapterError, BotReply, BotTurn, Callback, Inbound, Session};
use flowhost_sdk::http;
use flowhost_sdk::{Attachment, Capability, Chatbot, Context, PluginInfo, QuickReply};
use serde::Deserialize;
use serde_json::{Map, Value, json};

struct Rasa;

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Rest,
    Callback,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    #[serde(default)]
    send_attachments: bool,
    #[serde(default)]
    mode: Mode,
    /// What the start message says to Rasa.
    #[serde(default = "default_start")]
    start_message: String,
    #[serde(default = "default_handoff_key")]
    handoff_key: String,
    #[serde(default = "default_handoff_intent")]
    handoff_intent: String,
    /// The queue a hand-off goes to when it names none.
    #[serde(default)]
    handoff_queue: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A turn with nothing in it (the answer comes later, or there is none).
fn nothing() -> BotTurn {
    BotTurn {
        replies: Vec::new(),
        handoff_queue: None,
    }
}

fn default_start() -> String {
    "/session_start".into()
}

fn default_handoff_key() -> String {
    "handoff".into()
}

fn default_handoff_intent() -> String {
    "/handoff".into()
}

/// Separates the conversation from its hash in a callback-mode sender id
/// (hashes are hex, so the last one splits).
const SENDER_SEPARATOR: char = '~';

impl Chatbot for Rasa {
    type Config = Config;

    fn describe() -> PluginInfo {
        flowhost_sdk::plugin_info(
            "rasa",
            env!("CARGO_PKG_VERSION"),
            "Talks to a Rasa assistant over its REST channel (or its callback channel).",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "minLength": 1, "description": "Rasa's /webhooks/rest/webhook (or /webhooks/callback/webhook in callback mode)."},
                    "send_attachments": {"type": "boolean"},
                    "mode": {"enum": ["rest", "callback"], "default": "rest"},
                    "start_message": {"type": "string", "default": "/session_start"},
                    "handoff_key": {"type": "string", "minLength": 1, "default": "handoff"},
                    "handoff_intent": {"type": "string", "minLength": 1, "default": "/handoff"},
                    "handoff_queue": {"type": "string", "minLength": 1},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }),
            &[Capability::Http],
        )
    }

    fn deliver(
        context: &Context,
        config: Config,
        session: &Session,
        inbound: Inbound,
    ) -> Result<BotTurn, AdapterError> {
        let Some(message) = message_for_rasa(&config, &inbound) else {
            return Ok(nothing());
        };
        if let Some(queue) = handoff_intent(&config, &message)? {
            return Ok(BotTurn {
                replies: Vec::new(),
                handoff_queue: Some(queue),
            });
        }
        let sender = match config.mode {
            Mode::Rest => context.conversation.id.clone(),
            Mode::Callback => format!(
                "{}{SENDER_SEPARATOR}{}",
                context.conversation.id, session.hash
            ),
        };
        let mut body = json!({"sender": sender, "message": message});
        if !session.custom_fields.is_empty() {
            let fields: Map<String, Value> = session
                .custom_fields
                .iter()
                .map(|f| (f.name.clone(), json!(f.value)))
                .collect();
            body["metadata"] = Value::Object(fields);
        }
        let mut request = http::post_json(&config.url, &body);
        request.headers.extend(config.headers.clone());
        let response =
            http::send(request).map_err(|e| AdapterError::Unavailable(http::explain(&e)))?;
        if !(200..300).contains(&response.status) {
            return Err(AdapterError::Unavailable(format!(
                "Rasa answered HTTP {}",
                response.status
            )));
        }
        if config.mode == Mode::Callback {
            // Rasa answers `success`; its messages come to the callback URL.
            return Ok(nothing());
        }
        let messages: Value = serde_json::from_slice(&response.body)
            .map_err(|e| AdapterError::Protocol(format!("Rasa's answer is not JSON: {e}")))?;
        let messages = messages.as_array().ok_or_else(|| {
            AdapterError::Protocol(format!(
                "Rasa's answer must be a list of messages, not {messages}"
            ))
        })?;
        read_messages(&config, messages)
    }

    fn parse_callback(config: Config, body: &[u8]) -> Result<Callback, AdapterError> {
        let message: Value = serde_json::from_slice(body)
            .map_err(|e| AdapterError::Protocol(format!("the callback is not JSON: {e}")))?;
        let recipient = message
            .get("recipient_id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                AdapterError::Protocol("the callback has no string `recipient_id`".into())
            })?;
        let (conversation, hash) = recipient.rsplit_once(SENDER_SEPARATOR).ok_or_else(|| {
            AdapterError::Protocol(
                "`recipient_id` is not a sender flowhost gave (conversation~hash)".into(),
            )
        })?;
        Ok(Callback {
            conversation: conversation.to_string(),
            hash: hash.to_string(),
            turn: read_messages(&config, std::slice::from_ref(&message))?,
        })
    }
}

/// What the customer said, as Rasa takes it: a pressed button's payload,
/// else the text, else (attachments only) their links when the chatbot
/// sends attachments. `None`: nothing Rasa could read.
fn message_for_rasa(config: &Config, inbound: &Inbound) -> Option<String> {
    if inbound.is_start {
        return Some(config.start_message.clone());
    }
    if let Some(payload) = inbound.quick_reply.clone().filter(|p| !p.is_empty()) {
        return Some(payload);
    }
    if let Some(text) = inbound.text.clone().filter(|t| !t.trim().is_empty()) {
        return Some(text);
    }
    let links: Vec<&str> = inbound.attachments.iter().map(|a| a.url.as_str()).collect();
    (config.send_attachments && !links.is_empty()).then(|| links.join(" "))
}

/// The queue a pressed hand-off intent names (`/handoff` or
/// `/handoff{"queue":"sales"}`), or the configured `handoff_queue`.
fn handoff_intent(config: &Config, message: &str) -> Result<Option<String>, AdapterError> {
    let Some(rest) = message.strip_prefix(config.handoff_intent.as_str()) else {
        return Ok(None);
    };
    let named = if rest.is_empty() {
        None
    } else if rest.starts_with('{') {
        let entities: Value = serde_json::from_str(rest).map_err(|e| {
            AdapterError::Protocol(format!("the hand-off intent's entities are not JSON: {e}"))
        })?;
        entities.get("queue").and_then(queue_of)
    } else {
        // `/handoffs` is another intent.
        return Ok(None);
    };
    named
        .or_else(|| config.handoff_queue.clone())
        .map(Some)
        .ok_or_else(|| {
            AdapterError::Protocol(
                "a hand-off names no queue and `handoff_queue` is not set".into(),
            )
        })
}

fn queue_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Rasa's messages as flowhost replies, and a hand-off if one asks for it.
fn read_messages(config: &Config, messages: &[Value]) -> Result<BotTurn, AdapterError> {
    let mut turn = nothing();
    for message in messages {
        let message = message.as_object().ok_or_else(|| {
            AdapterError::Protocol(format!("a Rasa message must be an object, not {message}"))
        })?;
        if let Some(custom) = message.get("custom").filter(|c| !c.is_null())
            && let Some(queue) = custom_handoff(config, custom)?
        {
            turn.handoff_queue = Some(queue);
        }
        if let Some(reply) = reply_of(message)? {
            turn.replies.push(reply);
        }
    }
    Ok(turn)
}

/// `custom: {"<handoff_key>": "sales" | {"queue": "sales"} | true}`.
fn custom_handoff(config: &Config, custom: &Value) -> Result<Option<String>, AdapterError> {
    let Some(handoff) = custom.get(&config.handoff_key) else {
        return Ok(None);
    };
    let named = match handoff {
        Value::Object(_) => handoff.get("queue").and_then(queue_of),
        Value::Bool(false) | Value::Null => return Ok(None),
        other => queue_of(other),
    };
    named
        .or_else(|| config.handoff_queue.clone())
        .map(Some)
        .ok_or_else(|| {
            AdapterError::Protocol(format!(
                "`custom.{}` names no queue and `handoff_queue` is not set",
                config.handoff_key
            ))
        })
}

/// One Rasa message as a reply: text, image, attachment, buttons (as quick
/// replies). `None` for a message with nothing to show (a bare `custom`).
fn reply_of(message: &Map<String, Value>) -> Result<Option<BotReply>, AdapterError> {
    let text = match message.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(other) => {
            return Err(AdapterError::Protocol(format!(
                "`text` must be a string, not {other}"
            )));
        }
    };
    let mut attachments = Vec::new();
    if let Some(image) = message.get("image").filter(|v| !v.is_null()) {
        let url = image
            .as_str()
            .ok_or_else(|| AdapterError::Protocol(format!("`image` must be a URL, not {image}")))?;
        attachments.push(Attachment {
            kind: "image".into(),
            url: url.to_string(),
        });
    }
    if let Some(attachment) = message.get("attachment").filter(|v| !v.is_null()) {
        attachments.push(attachment_of(attachment)?);
    }
    let quick_replies = match message.get("buttons") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(buttons)) => buttons
            .iter()
            .map(quick_reply_of)
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(AdapterError::Protocol(format!(
                "`buttons` must be a list, not {other}"
            )));
        }
    };
    if text.is_none() && attachments.is_empty() && quick_replies.is_empty() {
        return Ok(None);
    }
    Ok(Some(BotReply {
        text,
        buttons: Vec::new(),
        quick_replies,
        attachments,
    }))
}

/// A button `{title, payload}` as a quick reply.
fn quick_reply_of(button: &Value) -> Result<QuickReply, AdapterError> {
    let field = |name: &str| {
        button
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| AdapterError::Protocol(format!("every button needs a string `{name}`")))
    };
    Ok(QuickReply {
        title: field("title")?,
        payload: field("payload")?,
    })
}

/// `attachment`: a URL, or `{type, payload: {src | url}}` as Rasa's
/// channels send it.
fn attachment_of(attachment: &Value) -> Result<Attachment, AdapterError> {
    if let Some(url) = attachment.as_str() {
        return Ok(Attachment {
            kind: "file".into(),
            url: url.to_string(),
        });
    }
    let url = ["src", "url"].iter().find_map(|key| {
        attachment
            .pointer(&format!("/payload/{key}"))
            .and_then(Value::as_str)
    });
    match url {
        Some(url) => Ok(Attachment {
            kind: attachment
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("file")
                .to_string(),
            url: url.to_string(),
        }),
        None => Err(AdapterError::Protocol(format!(
            "`attachment` has no URL: {attachment}"
        ))),
    }
}

flowhost_sdk::export_chatbot!(Rasa);
