//! Messages in and out of a conversation, and what a step changes: the
//! host's own types, shared by plugins, the engine, storage and channels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub name: Option<String>,
    pub username: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// image, video, audio, file, ig_post, ig_reel, story_mention, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

/// The customer's message that moved the conversation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub id: String,
    pub text: Option<String>,
    pub payload: Option<String>,
    pub attachments: Vec<Attachment>,
    pub timestamp_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Button {
    pub title: String,
    pub url: Option<String>,
    pub payload: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuickReply {
    pub title: String,
    pub payload: String,
}

/// A message a plugin asked to send; the channel's outbox sends it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The id the host gave the message when the plugin queued it.
    pub id: String,
    pub text: Option<String>,
    pub buttons: Vec<Button>,
    pub quick_replies: Vec<QuickReply>,
    pub attachments: Vec<Attachment>,
}

/// A ticket a plugin asked to create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketDraft {
    pub id: String,
    pub title: String,
    pub category: String,
    pub comment: String,
}

/// What a successful call changes in the world. Nothing of it is applied
/// until the call has succeeded; then it is applied at once (see
/// `storage::Storage::commit_effects`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Effects {
    /// Saved-data keys set (`Some`) or removed (`None`).
    pub data_changes: BTreeMap<String, Option<Value>>,
    pub messages: Vec<OutgoingMessage>,
    pub tickets: Vec<TicketDraft>,
    /// Log lines dropped because the call's log budget was spent.
    pub dropped_log_lines: u32,
}
