//! Connexease, an aggregator that forwards Instagram conversations: its
//! outgoing webhooks in, its messages API out.
//!
//! Parts of Connexease's documentation are not public; what follows is what
//! public integrations do, and what is uncertain is configurable per account
//! (signature mode, reply path). See the README.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::flow::model::ConnexeaseSign;
use crate::model::Handover;
use crate::plugin::OutgoingMessage;

/// Checks `X-Connexease-Webhook-Sign` for a channel.
pub fn verify_sign(mode: ConnexeaseSign, secret: &str, channel_uuid: &str, header: &str) -> bool {
    let expected = match mode {
        ConnexeaseSign::HmacOfChannel => expected_sign(secret, channel_uuid),
        ConnexeaseSign::RawSecret => secret.to_string(),
    };
    crate::server::same_secret(header.trim(), &expected)
}

/// base64(HMAC-SHA256(secret, channel uuid)).
pub fn expected_sign(secret: &str, channel_uuid: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(channel_uuid.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A customer's message from a `message.created` hook.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerMessage {
    pub channel: String,
    pub conversation: String,
    pub message_id: String,
    pub text: Option<String>,
    pub customer_name: Option<String>,
    /// Media the customer sent: `(kind, url)`.
    pub attachments: Vec<(String, String)>,
}

/// What a webhook body is.
#[derive(Clone, Debug, PartialEq)]
pub enum Hook {
    /// A customer wrote (`message.created` with no agent).
    Message(CustomerMessage),
    /// A Connexease agent took the conversation (`conversation.assigned`,
    /// or an agent's own message), gave it back (assigned to nobody,
    /// `conversation.unassigned`) or closed it (`conversation.archived`).
    Handover {
        conversation: String,
        /// Unique per delivery body: redeliveries of it are dropped.
        event_id: String,
        handover: Handover,
    },
    /// Anything else (agent and bot messages, conversation events): kept in
    /// the log, never routed.
    Other { hook: String },
}

/// Reads a webhook body defensively; `None` when it is not JSON or names
/// no channel.
pub fn parse(body: &[u8]) -> Option<(String, Hook)> {
    let root: Value = serde_json::from_slice(body).ok()?;
    let channel = root["channel"]["uuid"].as_str()?.to_string();
    let hook = root["hook"].as_str().unwrap_or_default().to_string();
    let payload = &root["payload"];
    if let Some(handover) = handover_of(&hook, payload) {
        let conversation = payload["conversation_uuid"]
            .as_str()
            .or_else(|| payload["conversation"]["uuid"].as_str())
            .or_else(|| {
                payload["uuid"]
                    .as_str()
                    .filter(|_| hook.starts_with("conversation."))
            });
        let Some(conversation) = conversation else {
            return Some((channel, Hook::Other { hook }));
        };
        let event = Hook::Handover {
            conversation: conversation.to_string(),
            event_id: hex::encode(Sha256::digest(body)),
            handover,
        };
        return Some((channel, event));
    }
    if hook != "message.created" {
        return Some((channel, Hook::Other { hook }));
    }
    let Some(conversation) = payload["conversation_uuid"]
        .as_str()
        .or_else(|| payload["conversation"]["uuid"].as_str())
    else {
        return Some((channel, Hook::Other { hook }));
    };
    // Without a message id, the body itself identifies a redelivery.
    let message_id = payload["uuid"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| hex::encode(Sha256::digest(body)));
    Some((
        channel.clone(),
        Hook::Message(CustomerMessage {
            channel,
            conversation: conversation.to_string(),
            message_id,
            text: payload["content"].as_str().map(String::from),
            customer_name: payload["customer"]["name"].as_str().map(String::from),
            attachments: attachments(payload),
        }),
    ))
}

/// The handover a hook means, if it means one.
fn handover_of(hook: &str, payload: &Value) -> Option<Handover> {
    let agent = &payload["agent"];
    let agent_name = || {
        agent["name"]
            .as_str()
            .or_else(|| agent["uuid"].as_str())
            .or_else(|| agent.as_str())
            .unwrap_or("an agent")
            .to_string()
    };
    match hook {
        "message.created" | "conversation.assigned" if !agent.is_null() => Some(Handover::Taken {
            by: format!("Connexease agent {}", agent_name()),
        }),
        "conversation.assigned" | "conversation.unassigned" => Some(Handover::Returned),
        "conversation.archived" | "conversation.closed" => Some(Handover::Closed),
        _ => None,
    }
}

/// Media of a message. Connexease's field names are not publicly
/// documented, so the shapes public integrations show are all read:
/// `attachments[]` (objects or bare URLs) and a single `attachment`, each
/// with its URL under `url`, `link`, `file`, `file_url` or `media_url` and
/// its kind under `type`, `content_type` or `mime_type` (`image/png` is
/// read as `image`).
fn attachments(payload: &Value) -> Vec<(String, String)> {
    let listed = payload["attachments"].as_array().into_iter().flatten();
    listed
        .chain(std::iter::once(&payload["attachment"]))
        .filter_map(|item| {
            let url = match item {
                Value::String(url) => Some(url.as_str()),
                _ => ["url", "link", "file", "file_url", "media_url"]
                    .iter()
                    .find_map(|k| item[k].as_str()),
            }?;
            let kind = ["type", "content_type", "mime_type"]
                .iter()
                .find_map(|k| item[k].as_str())
                .map(|k| k.split('/').next().unwrap_or(k))
                .unwrap_or("file");
            Some((kind.to_string(), url.to_string()))
        })
        .collect()
}

/// The reply body: `{"uuid": conversation, "messages": [{"type": "text", "content": ...}]}`.
/// Quick replies become numbered lines (answering with the number or the
/// title works); links and attachments become lines too.
pub fn reply_body(conversation: &str, message: &OutgoingMessage) -> Value {
    let mut text = message.text.clone().unwrap_or_default();
    for (i, reply) in message.quick_replies.iter().enumerate() {
        text.push_str(&format!("\n{}. {}", i + 1, reply.title));
    }
    for button in &message.buttons {
        text.push_str(&format!(
            "\n{}{}",
            button.title,
            button
                .url
                .as_deref()
                .map(|u| format!(": {u}"))
                .unwrap_or_default()
        ));
    }
    for attachment in &message.attachments {
        text.push_str(&format!("\n{}", attachment.url));
    }
    json!({"uuid": conversation, "messages": [{"type": "text", "content": text.trim()}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_signature_forms_are_checked_in_their_mode() {
        let sign = expected_sign("s3cret", "channel-1");
        assert!(verify_sign(
            ConnexeaseSign::HmacOfChannel,
            "s3cret",
            "channel-1",
            &sign
        ));
        assert!(!verify_sign(
            ConnexeaseSign::HmacOfChannel,
            "s3cret",
            "channel-2",
            &sign
        ));
        assert!(!verify_sign(
            ConnexeaseSign::HmacOfChannel,
            "s3cret",
            "channel-1",
            "s3cret"
        ));
        assert!(verify_sign(
            ConnexeaseSign::RawSecret,
            "s3cret",
            "channel-1",
            "s3cret"
        ));
        assert!(!verify_sign(
            ConnexeaseSign::RawSecret,
            "s3cret",
            "channel-1",
            &sign
        ));
    }

    #[test]
    fn customer_messages_are_routed_and_agents_take_the_thread() {
        let customer = br#"{"hook":"message.created","channel":{"uuid":"ch"},"payload":{"uuid":"m1","content":"hello","conversation_uuid":"conv-1","customer":{"name":"Ada","phone_number":"+90"},"agent":null}}"#;
        let (channel, hook) = parse(customer).unwrap();
        assert_eq!(channel, "ch");
        assert!(
            matches!(hook, Hook::Message(m) if m.conversation == "conv-1" && m.text.as_deref() == Some("hello"))
        );

        let handover = |body: &[u8]| match parse(body).unwrap().1 {
            Hook::Handover {
                conversation,
                handover,
                ..
            } => (conversation, handover),
            other => panic!("not a handover: {other:?}"),
        };
        let agent = br#"{"hook":"message.created","channel":{"uuid":"ch"},"payload":{"uuid":"m2","content":"hi","conversation_uuid":"conv-1","agent":{"name":"Bo"}}}"#;
        let taken = Handover::Taken {
            by: "Connexease agent Bo".into(),
        };
        assert_eq!(handover(agent), ("conv-1".into(), taken.clone()));
        let assigned = br#"{"hook":"conversation.assigned","channel":{"uuid":"ch"},"payload":{"uuid":"conv-1","agent":{"name":"Bo"}}}"#;
        assert_eq!(handover(assigned), ("conv-1".into(), taken));
        let nobody = br#"{"hook":"conversation.assigned","channel":{"uuid":"ch"},"payload":{"uuid":"conv-1","agent":null}}"#;
        assert_eq!(handover(nobody), ("conv-1".into(), Handover::Returned));
        let archived = br#"{"hook":"conversation.archived","channel":{"uuid":"ch"},"payload":{"uuid":"conv-1"}}"#;
        assert_eq!(handover(archived), ("conv-1".into(), Handover::Closed));

        let created = br#"{"hook":"conversation.created","channel":{"uuid":"ch"},"payload":{"uuid":"conv-1"}}"#;
        assert_eq!(
            parse(created).unwrap().1,
            Hook::Other {
                hook: "conversation.created".into()
            }
        );
    }

    #[test]
    fn media_is_read_in_every_shape_integrations_show() {
        let body = br#"{"hook":"message.created","channel":{"uuid":"ch"},"payload":{"uuid":"m3","content":null,"conversation_uuid":"c","agent":null,
            "attachments":[{"type":"image","url":"https://cdn/a.jpg"},{"content_type":"video/mp4","link":"https://cdn/b.mp4"},"https://cdn/c.pdf"],
            "attachment":{"mime_type":"audio/ogg","file_url":"https://cdn/d.ogg"}}}"#;
        let Hook::Message(message) = parse(body).unwrap().1 else {
            panic!("a customer message")
        };
        assert_eq!(
            message.attachments,
            [
                ("image".to_string(), "https://cdn/a.jpg".to_string()),
                ("video".into(), "https://cdn/b.mp4".into()),
                ("file".into(), "https://cdn/c.pdf".into()),
                ("audio".into(), "https://cdn/d.ogg".into()),
            ]
        );
    }

    #[test]
    fn replies_carry_quick_replies_as_numbered_lines() {
        let message = OutgoingMessage {
            text: Some("How can we help?".into()),
            quick_replies: vec![crate::plugin::QuickReply {
                title: "Order status".into(),
                payload: "order-status".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            reply_body("conv-1", &message),
            json!({"uuid": "conv-1", "messages": [{"type": "text", "content": "How can we help?\n1. Order status"}]})
        );
    }
}
