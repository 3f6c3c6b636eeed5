//! The host's own view of what goes into and comes out of a plugin call.
//! The rest of flowhost uses these types and never the generated bindings,
//! so a new contract version changes `convert.rs`, not the engine.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::model::message::{
    Attachment, Button, Contact, Effects, InboundMessage, OutgoingMessage, QuickReply, TicketDraft,
};

/// A host capability a plugin declares in `describe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    Log,
    ConversationData,
    Messaging,
    Tickets,
    Templates,
    Http,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Log => "log",
            Capability::ConversationData => "conversation-data",
            Capability::Messaging => "messaging",
            Capability::Tickets => "tickets",
            Capability::Templates => "templates",
            Capability::Http => "http",
        })
    }
}

/// Which world a component exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    Action,
    Chatbot,
    /// Translates between a customer's and an agent's language (contract
    /// 0.2.0).
    Translator,
}

/// A translator's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Translation {
    pub text: String,
    /// The language the text was in, as the translator detected it.
    pub source_language: Option<String>,
}

/// What a plugin said about itself in `describe`, plus what the host found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub config_schema: Value,
    pub capabilities: Vec<Capability>,
    pub kind: PluginKind,
    /// The `flowhost:plugin` contract version the component was built for.
    pub contract: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub channel: String,
    pub account_id: String,
    pub started_at_ms: u64,
}

/// Everything a call may know about its conversation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionContext {
    pub conversation: Conversation,
    pub contact: Contact,
    pub last_message: Option<InboundMessage>,
    /// The conversation's saved data.
    pub data: BTreeMap<String, Value>,
    /// ISO 639-1 code of the customer's language.
    pub language: String,
    /// Named results of earlier actions (a request's response, a ticket id),
    /// visible to templates by name.
    pub results: BTreeMap<String, Value>,
}

impl ActionContext {
    /// The value templates are rendered against: `message`, `conversation`,
    /// `contact`, `data`, `language`, and every named result at the top level.
    pub fn template_context(&self) -> Value {
        let mut root = serde_json::Map::new();
        for (name, value) in &self.results {
            root.insert(name.clone(), value.clone());
        }
        root.insert(
            "message".into(),
            serde_json::to_value(&self.last_message).unwrap_or(Value::Null),
        );
        root.insert(
            "conversation".into(),
            serde_json::to_value(&self.conversation).unwrap_or(Value::Null),
        );
        root.insert(
            "contact".into(),
            serde_json::to_value(&self.contact).unwrap_or(Value::Null),
        );
        root.insert(
            "data".into(),
            serde_json::to_value(&self.data).unwrap_or(Value::Null),
        );
        root.insert("language".into(), Value::String(self.language.clone()));
        Value::Object(root)
    }
}

/// What an action hands back to the flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionOutput {
    /// A value to keep under a name in the conversation's results.
    pub store: Option<(String, Value)>,
    /// The id of a target of the current decision to follow next.
    pub next_target: Option<String>,
    pub effects: Effects,
}

/// A custom field sent to a chatbot with every message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldValue {
    pub name: String,
    pub title: String,
    pub value: Option<String>,
}

/// The bot-side session of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatbotSession {
    pub response_url: String,
    pub hash: String,
    pub custom_fields: Vec<CustomFieldValue>,
}

/// What the customer did, forwarded to a chatbot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatbotInbound {
    pub id: String,
    pub text: Option<String>,
    pub quick_reply: Option<String>,
    pub attachments: Vec<Attachment>,
    pub is_start: bool,
}

/// A body a bot posted to its callback URL, as its adapter read it. Empty
/// `conversation` and `hash` mean the body does not name them (the URL does).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BotCallback {
    pub conversation: String,
    pub hash: String,
    pub turn: BotTurn,
}

/// A chatbot's answer: messages, and perhaps a hand-off to a queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BotTurn {
    pub replies: Vec<OutgoingMessage>,
    pub handoff_queue: Option<String>,
}
