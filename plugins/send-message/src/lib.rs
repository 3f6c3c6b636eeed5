//! Built-in action `send-message`: sends text, buttons or quick replies.
//!
//! The default text (and buttons, quick replies) can be overridden per
//! language: the variant of the customer's language wins, then its primary
//! subtag (`pt` for `pt-BR`), then the default.

use std::collections::BTreeMap;

use flowhost_sdk::{
    Action, ActionError, Attachment, Button, Capability, Context, Outcome, OutgoingMessage,
    PluginInfo, QuickReply, messaging, plugin_info,
};
use serde::Deserialize;
use serde_json::json;

struct SendMessage;

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Content {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    buttons: Option<Vec<ButtonConfig>>,
    #[serde(default)]
    quick_replies: Option<Vec<QuickReplyConfig>>,
    #[serde(default)]
    attachments: Option<Vec<AttachmentConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(flatten)]
    default: Content,
    /// Language code -> content that replaces the default's parts.
    #[serde(default)]
    variants: BTreeMap<String, Content>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ButtonConfig {
    title: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    payload: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct QuickReplyConfig {
    title: String,
    /// Defaults to the title.
    #[serde(default)]
    payload: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct AttachmentConfig {
    #[serde(rename = "type")]
    kind: String,
    url: String,
}

fn content_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "buttons": {"type": "array", "items": {
                "type": "object", "required": ["title"], "additionalProperties": false,
                "properties": {"title": {"type": "string"}, "url": {"type": "string"}, "payload": {"type": "string"}}
            }},
            "quick_replies": {"type": "array", "items": {
                "type": "object", "required": ["title"], "additionalProperties": false,
                "properties": {"title": {"type": "string"}, "payload": {"type": "string"}}
            }},
            "attachments": {"type": "array", "items": {
                "type": "object", "required": ["type", "url"], "additionalProperties": false,
                "properties": {"type": {"type": "string"}, "url": {"type": "string"}}
            }}
        }
    })
}

impl Action for SendMessage {
    type Config = Config;

    fn describe() -> PluginInfo {
        let mut schema = content_schema();
        schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        schema["properties"]["variants"] = json!({
            "type": "object",
            "description": "Per language (ISO 639-1) replacements of text, buttons, quick replies or attachments.",
            "additionalProperties": content_schema(),
        });
        plugin_info(
            "send-message",
            env!("CARGO_PKG_VERSION"),
            "Sends the customer a message in their language, with buttons or quick replies.",
            schema,
            &[Capability::Messaging],
        )
    }

    fn run(context: &Context, config: Config) -> Result<Outcome, ActionError> {
        let content = pick_variant(&config, &context.language);
        let message = OutgoingMessage {
            text: content.text,
            buttons: content
                .buttons
                .unwrap_or_default()
                .into_iter()
                .map(|b| Button {
                    title: b.title,
                    url: b.url,
                    payload: b.payload,
                })
                .collect(),
            quick_replies: content
                .quick_replies
                .unwrap_or_default()
                .into_iter()
                .map(|q| QuickReply {
                    payload: q.payload.unwrap_or_else(|| q.title.clone()),
                    title: q.title,
                })
                .collect(),
            attachments: content
                .attachments
                .unwrap_or_default()
                .into_iter()
                .map(|a| Attachment {
                    kind: a.kind,
                    url: a.url,
                })
                .collect(),
        };
        if message.text.as_deref().unwrap_or("").is_empty() && message.attachments.is_empty() {
            return Err(ActionError::InvalidConfig(
                "a message needs text or an attachment".into(),
            ));
        }
        let id = messaging::send(&message)?;
        Ok(Outcome::store("last_sent_message", &json!({ "id": id })))
    }
}

/// The default content with the parts of the best language variant laid over it.
fn pick_variant(config: &Config, language: &str) -> Content {
    let primary = language.split(['-', '_']).next().unwrap_or(language);
    let variant = config
        .variants
        .get(language)
        .or_else(|| config.variants.get(primary));
    let mut content = config.default.clone();
    if let Some(v) = variant.cloned() {
        content.text = v.text.or(content.text);
        content.buttons = v.buttons.or(content.buttons);
        content.quick_replies = v.quick_replies.or(content.quick_replies);
        content.attachments = v.attachments.or(content.attachments);
    }
    content
}

flowhost_sdk::export_action!(SendMessage);
