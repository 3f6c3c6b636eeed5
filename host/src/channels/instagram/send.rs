//! The Instagram Send API: what one outgoing message becomes on the wire,
//! and what Meta's answer means.
//!
//! `POST {api}/{version}/{ig_user_id}/messages` with `recipient.id` and one
//! of `message.text` (at most 1,000 UTF-8 bytes; longer texts are split at
//! word boundaries into several messages, sent in order), an attachment by
//! URL, or text with `quick_replies` (at most 13, titles cut to 20
//! characters; the text carries them, so a desktop user who does not see
//! them can still type an answer). Link buttons become lines of the text.

use serde_json::{Value, json};

use crate::plugin::OutgoingMessage;

/// Meta's limits.
pub const MAX_TEXT_BYTES: usize = 1000;
pub const MAX_QUICK_REPLIES: usize = 13;
pub const MAX_QUICK_REPLY_TITLE: usize = 20;

/// How a message is sent: a bot reply inside the 24-hour window, or a human
/// agent's reply with the HUMAN_AGENT tag (allowed for 7 days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Bot,
    HumanAgent,
}

/// The request bodies for one outgoing message, in sending order.
pub fn request_bodies(recipient: &str, message: &OutgoingMessage, sender: Sender) -> Vec<Value> {
    let mut text = message.text.clone().unwrap_or_default();
    for button in &message.buttons {
        if let Some(url) = &button.url {
            text.push_str(&format!("\n{}: {url}", button.title));
        }
    }
    let mut quick_replies: Vec<Value> = message
        .quick_replies
        .iter()
        .map(|q| json!({"content_type": "text", "title": cut_chars(&q.title, MAX_QUICK_REPLY_TITLE), "payload": q.payload}))
        .collect();
    // Buttons without a URL answer with their payload: quick replies too.
    quick_replies.extend(message.buttons.iter().filter(|b| b.url.is_none()).map(|b| {
        json!({"content_type": "text", "title": cut_chars(&b.title, MAX_QUICK_REPLY_TITLE), "payload": b.payload.clone().unwrap_or_else(|| b.title.clone())})
    }));
    quick_replies.truncate(MAX_QUICK_REPLIES);

    let mut payloads: Vec<Value> = Vec::new();
    let parts = split_text(text.trim(), MAX_TEXT_BYTES);
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.into_iter().enumerate() {
        let mut body = json!({"text": part});
        if i == last && !quick_replies.is_empty() {
            body["quick_replies"] = Value::Array(quick_replies.clone());
        }
        payloads.push(body);
    }
    for attachment in &message.attachments {
        let kind = match attachment.kind.as_str() {
            "image" | "video" | "audio" | "file" => attachment.kind.as_str(),
            _ => "file",
        };
        payloads.push(json!({"attachment": {"type": kind, "payload": {"url": attachment.url}}}));
    }
    payloads
        .into_iter()
        .map(|message| {
            let mut body = json!({"recipient": {"id": recipient}, "message": message});
            match sender {
                Sender::Bot => body["messaging_type"] = json!("RESPONSE"),
                Sender::HumanAgent => {
                    body["messaging_type"] = json!("MESSAGE_TAG");
                    body["tag"] = json!("HUMAN_AGENT");
                }
            }
            body
        })
        .collect()
}

/// Splits `text` into parts of at most `max` bytes, at whitespace where
/// possible, never inside a character.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut]
            .rfind(char::is_whitespace)
            .filter(|&s| s > max / 2)
        {
            cut = space;
        }
        parts.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

fn cut_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// What Meta's answer to one send means.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Sent; Meta's id of the message (its echo carries it).
    Sent { message_id: String },
    /// Try again later (429, 5xx, a network failure).
    Retry { reason: String },
    /// Outside the messaging window (error 10 / subcode 2534022).
    OutsideWindow,
    /// The access token expired or was revoked (error 190): the account
    /// needs reconnecting; retrying cannot help.
    TokenExpired { reason: String },
    /// Any other refusal: final.
    Refused { reason: String },
}

/// Reads Meta's answer.
pub fn read_answer(status: u16, body: &[u8]) -> Answer {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return match json["message_id"].as_str() {
            Some(id) => Answer::Sent {
                message_id: id.to_string(),
            },
            None => Answer::Refused {
                reason: format!("a {status} answer without message_id"),
            },
        };
    }
    let error = &json["error"];
    let code = error["code"].as_i64();
    let subcode = error["error_subcode"].as_i64();
    let reason = format!(
        "HTTP {status}: {} (code {}, subcode {})",
        error["message"].as_str().unwrap_or("no message"),
        code.map_or("-".into(), |c| c.to_string()),
        subcode.map_or("-".into(), |c| c.to_string())
    );
    match (status, code, subcode) {
        (_, Some(10), Some(2534022)) => Answer::OutsideWindow,
        (_, Some(190), _) => Answer::TokenExpired { reason },
        (429, _, _) | (500..=599, _, _) => Answer::Retry { reason },
        // Meta's throttling codes come with a 400 at times.
        (_, Some(4 | 17 | 32 | 613), _) => Answer::Retry { reason },
        _ => Answer::Refused { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Attachment, Button, QuickReply};

    #[test]
    fn long_texts_are_split_at_words_within_the_byte_limit() {
        let text = "ğüşiöç ".repeat(300); // 13 bytes a word, multi-byte letters
        let parts = split_text(text.trim(), MAX_TEXT_BYTES);
        assert!(parts.len() >= 4);
        assert!(
            parts
                .iter()
                .all(|p| p.len() <= MAX_TEXT_BYTES && !p.starts_with(' ') && !p.ends_with(' '))
        );
        assert_eq!(parts.join(" "), text.trim());
    }

    #[test]
    fn quick_replies_are_cut_to_metas_limits_and_ride_on_the_text() {
        let message = OutgoingMessage {
            text: Some("Pick one".into()),
            quick_replies: (0..20)
                .map(|i| QuickReply {
                    title: format!("A rather long option number {i}"),
                    payload: format!("p{i}"),
                })
                .collect(),
            ..Default::default()
        };
        let bodies = request_bodies("IGSID", &message, Sender::Bot);
        assert_eq!(bodies.len(), 1);
        let replies = bodies[0]["message"]["quick_replies"].as_array().unwrap();
        assert_eq!(replies.len(), 13);
        assert_eq!(replies[0]["title"], "A rather long option");
        assert_eq!(bodies[0]["messaging_type"], "RESPONSE");
        assert_eq!(bodies[0]["recipient"]["id"], "IGSID");
    }

    #[test]
    fn attachments_links_and_agent_tags() {
        let message = OutgoingMessage {
            text: Some("Your invoice".into()),
            buttons: vec![Button {
                title: "Track".into(),
                url: Some("https://t.example/1".into()),
                payload: None,
            }],
            attachments: vec![Attachment {
                kind: "image".into(),
                url: "https://cdn/i.png".into(),
            }],
            ..Default::default()
        };
        let bodies = request_bodies("IGSID", &message, Sender::HumanAgent);
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            bodies[0]["message"]["text"],
            "Your invoice\nTrack: https://t.example/1"
        );
        assert_eq!(
            bodies[1]["message"]["attachment"],
            json!({"type": "image", "payload": {"url": "https://cdn/i.png"}})
        );
        assert!(
            bodies
                .iter()
                .all(|b| b["messaging_type"] == "MESSAGE_TAG" && b["tag"] == "HUMAN_AGENT")
        );
    }

    #[test]
    fn metas_answers_are_classified() {
        assert_eq!(
            read_answer(200, br#"{"recipient_id":"1","message_id":"m.1"}"#),
            Answer::Sent {
                message_id: "m.1".into()
            }
        );
        assert_eq!(
            read_answer(
                400,
                br#"{"error":{"message":"outside window","code":10,"error_subcode":2534022}}"#
            ),
            Answer::OutsideWindow
        );
        assert!(matches!(
            read_answer(401, br#"{"error":{"message":"expired","code":190}}"#),
            Answer::TokenExpired { .. }
        ));
        assert!(matches!(read_answer(503, b"busy"), Answer::Retry { .. }));
        assert!(matches!(read_answer(429, b"{}"), Answer::Retry { .. }));
        assert!(matches!(
            read_answer(400, br#"{"error":{"message":"bad","code":100}}"#),
            Answer::Refused { .. }
        ));
    }
}
