//! Built-in chatbot adapter `webhook-bot`: the reference product's webhook
//! bot protocol.
//!
//! Each customer message is posted to the bot's URL as
//! `{name, time, direction: "IN", conversation: {name, title, time,
//! response_url, customFields}, text, attachments, quickreply}`, empty
//! optional values as `null`. The bot answers in the HTTP response or later
//! at `response_url` with `{text, button, quickreply, queue | transfer}`
//! (plus `conversation.name` and `hash` in a callback). An empty 2xx
//! response means the bot answers later.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowhost_sdk::chatbot::{AdapterError, BotReply, BotTurn, Callback, Inbound, Session};
use flowhost_sdk::http;
use flowhost_sdk::{Attachment, Button, Capability, Chatbot, Context, PluginInfo, QuickReply};
use serde::Deserialize;
use serde_json::{Map, Value, json};

struct WebhookBot;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    #[serde(default)]
    send_attachments: bool,
    /// Text of the start message (`null` when unset).
    #[serde(default)]
    start_text: Option<String>,
    /// Headers sent with every request (a bot's API key, say).
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl Chatbot for WebhookBot {
    type Config = Config;

    fn describe() -> PluginInfo {
        flowhost_sdk::plugin_info(
            "webhook-bot",
            env!("CARGO_PKG_VERSION"),
            "Talks to a bot over the webhook bot protocol (JSON posted to the bot; answers at once or at response_url).",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "minLength": 1},
                    "send_attachments": {"type": "boolean"},
                    "start_text": {"type": "string", "description": "Text of the start message; null when unset."},
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
        let body = request_body(context, &config, session, inbound);
        let mut request = http::post_json(&config.url, &body);
        request.headers.extend(config.headers);
        let response =
            http::send(request).map_err(|e| AdapterError::Unavailable(http::explain(&e)))?;
        if !(200..300).contains(&response.status) {
            return Err(AdapterError::Unavailable(format!(
                "the bot answered HTTP {}",
                response.status
            )));
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            // It answers later, at response_url.
            return Ok(BotTurn {
                replies: Vec::new(),
                handoff_queue: None,
            });
        }
        let answer: Value = serde_json::from_slice(&response.body)
            .map_err(|e| AdapterError::Protocol(format!("the bot's answer is not JSON: {e}")))?;
        read_answer(&answer)
    }

    fn parse_callback(_config: Config, body: &[u8]) -> Result<Callback, AdapterError> {
        let answer: Value = serde_json::from_slice(body)
            .map_err(|e| AdapterError::Protocol(format!("the callback is not JSON: {e}")))?;
        let text_at = |pointer: &str| -> Result<String, AdapterError> {
            match answer.pointer(pointer) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(AdapterError::Protocol(format!(
                    "`{}` must be a string, not {other}",
                    &pointer[1..].replace('/', ".")
                ))),
            }
        };
        Ok(Callback {
            conversation: text_at("/conversation/name")?,
            hash: text_at("/hash")?,
            turn: read_answer(&answer)?,
        })
    }
}

/// The body posted to the bot, field for field as the protocol has it.
fn request_body(context: &Context, config: &Config, session: &Session, inbound: Inbound) -> Value {
    let custom_fields: Vec<Value> = session
        .custom_fields
        .iter()
        .map(|f| json!({"name": f.name, "title": f.title, "value": f.value}))
        .collect();
    let contact = &context.contact;
    let title = contact.name.clone().or_else(|| contact.username.clone());
    let (text, quickreply) = match (&inbound.quick_reply, inbound.is_start) {
        (_, true) => (config.start_text.clone(), Value::Null),
        (Some(payload), false) => (inbound.text.clone(), json!({"name": payload})),
        (None, false) => (inbound.text.clone(), Value::Null),
    };
    let attachments: Vec<Value> = inbound
        .attachments
        .iter()
        .filter(|_| config.send_attachments)
        .map(|a| json!({"link": a.url, "title": null, "type": a.kind, "size": null}))
        .collect();
    json!({
        "name": inbound.id,
        "time": message_time(context, &inbound),
        "direction": "IN",
        "conversation": {
            "name": context.conversation.id,
            "title": title,
            "time": rfc3339(context.conversation.started_at_ms),
            "response_url": session.response_url,
            "customFields": custom_fields,
        },
        "text": text.filter(|t| !t.is_empty()),
        "attachments": if attachments.is_empty() { Value::Null } else { Value::Array(attachments) },
        "quickreply": quickreply,
    })
}

/// When the customer wrote the message (as the channel stamped it), or now
/// for the start message.
fn message_time(context: &Context, inbound: &Inbound) -> String {
    let stamped = context
        .last_message
        .as_ref()
        .filter(|m| !inbound.is_start && m.id == inbound.id && m.timestamp_ms > 0)
        .map(|m| m.timestamp_ms);
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    rfc3339(stamped.unwrap_or_else(now))
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Reads a bot's answer: `text`, `button`, `quickreply`, and `queue` or
/// `transfer`. Anything else the protocol does not allow is an error.
fn read_answer(answer: &Value) -> Result<BotTurn, AdapterError> {
    let answer = answer.as_object().ok_or_else(|| {
        AdapterError::Protocol(format!("the answer must be a JSON object, not {answer}"))
    })?;
    let text = optional_string(answer, "text")?;
    let buttons = list(answer, "button", |item| {
        Ok(Button {
            title: required_string(item, "button", "text")?,
            url: Some(required_string(item, "button", "url")?),
            payload: None,
        })
    })?;
    let quick_replies = list(answer, "quickreply", |item| {
        Ok(QuickReply {
            title: required_string(item, "quickreply", "text")?,
            payload: required_string(item, "quickreply", "name")?,
        })
    })?;
    let handoff_queue = match queue_name(answer, "queue")? {
        Some(queue) => Some(queue),
        None => queue_name(answer, "transfer")?,
    };
    let says_something = text.is_some() || !buttons.is_empty() || !quick_replies.is_empty();
    let replies = if says_something {
        vec![BotReply {
            text,
            buttons,
            quick_replies,
            attachments: Vec::<Attachment>::new(),
        }]
    } else {
        Vec::new()
    };
    Ok(BotTurn {
        replies,
        handoff_queue,
    })
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, AdapterError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(AdapterError::Protocol(format!(
            "`{field}` must be a string, not {other}"
        ))),
    }
}

fn required_string(
    item: &Map<String, Value>,
    list: &str,
    field: &str,
) -> Result<String, AdapterError> {
    match item.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(AdapterError::Protocol(format!(
            "every `{list}` entry needs a non-empty string `{field}`"
        ))),
    }
}

/// A list field of objects (absent or null: empty).
fn list<T>(
    object: &Map<String, Value>,
    field: &str,
    read: impl Fn(&Map<String, Value>) -> Result<T, AdapterError>,
) -> Result<Vec<T>, AdapterError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_object().ok_or_else(|| {
                    AdapterError::Protocol(format!("`{field}` entries must be objects, not {item}"))
                })
            })
            .map(|item| item.and_then(&read))
            .collect(),
        Some(other) => Err(AdapterError::Protocol(format!(
            "`{field}` must be a list, not {other}"
        ))),
    }
}

/// `queue` or `transfer`: a queue's name or a numeric id (bots often use
/// numbers such as 10001; the chatbot's `queue_aliases` map them).
fn queue_name(object: &Map<String, Value>, field: &str) -> Result<Option<String>, AdapterError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(AdapterError::Protocol(format!(
            "`{field}` must name a queue (a string or a number), not {other}"
        ))),
    }
}

flowhost_sdk::export_chatbot!(WebhookBot);
