//! Instagram webhook events, parsed defensively: every documented messaging
//! event becomes an [`EventKind`]; anything else is kept as `Unknown` with
//! its raw JSON, so a new kind of event is recorded and skipped, never an
//! error. A malformed item does not spoil the rest of its batch.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One media item of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// image, video, audio, file, share / ig_post (post shares; `share` was
    /// replaced by `ig_post` in early 2026, both are accepted), story_mention,
    /// ig_reel, reel, or whatever Meta sends next.
    pub kind: String,
    pub url: Option<String>,
}

impl Attachment {
    /// Whether this is a shared post, under either of its names.
    pub fn is_post_share(&self) -> bool {
        matches!(self.kind.as_str(), "share" | "ig_post")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// A message; `is_echo` when it is the business's own message coming back.
    Message {
        mid: String,
        text: Option<String>,
        attachments: Vec<Attachment>,
        /// The payload of a tapped quick reply.
        quick_reply: Option<String>,
        /// The message (`mid`) or story (URL) this one replies to.
        reply_to: Option<String>,
        is_echo: bool,
    },
    /// The customer deleted a message.
    MessageDeleted { mid: String },
    /// A message Instagram cannot show through the API.
    MessageUnsupported { mid: String },
    /// The customer edited a message.
    MessageEdit {
        mid: String,
        text: Option<String>,
        num_edit: u64,
    },
    /// A tapped button (postback).
    Postback {
        mid: String,
        title: Option<String>,
        payload: Option<String>,
    },
    /// A reaction added or removed.
    Reaction {
        mid: String,
        action: String,
        reaction: Option<String>,
        emoji: Option<String>,
    },
    /// The customer read messages up to `mid`.
    Read { mid: String },
    /// The customer came from an ad, a link or a post.
    Referral {
        source: Option<String>,
        referral_type: Option<String>,
        reference: Option<String>,
    },
    /// The handover protocol: another app took the thread from us
    /// (`take_thread_control`) or passed it to us (`pass_thread_control`).
    ThreadControl {
        to_us: bool,
        other_app: Option<String>,
    },
    /// Anything else: kept, logged and skipped.
    Unknown { fields: Vec<String> },
}

impl EventKind {
    /// The kind's name, for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            EventKind::Message { is_echo: true, .. } => "echo",
            EventKind::Message { .. } => "message",
            EventKind::MessageDeleted { .. } => "message_deleted",
            EventKind::MessageUnsupported { .. } => "message_unsupported",
            EventKind::MessageEdit { .. } => "message_edit",
            EventKind::Postback { .. } => "postback",
            EventKind::Reaction { .. } => "reaction",
            EventKind::Read { .. } => "read",
            EventKind::Referral { .. } => "referral",
            EventKind::ThreadControl { .. } => "thread_control",
            EventKind::Unknown { .. } => "unknown",
        }
    }
}

/// One messaging item of a webhook, with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `entry[].id`: the Instagram professional account the event is for.
    pub account_id: String,
    pub sender: String,
    pub recipient: String,
    /// `timestamp` in milliseconds.
    pub timestamp_ms: u64,
    /// Delivered under `standby` (another app had the thread).
    pub standby: bool,
    pub kind: EventKind,
    /// The item as received.
    pub raw: Value,
}

impl Event {
    /// The key duplicates share: Meta retries deliveries for 36 hours. Messages
    /// are unique by `mid`; reactions, reads and postbacks by kind, `mid` and
    /// timestamp.
    pub fn dedupe_key(&self) -> String {
        match &self.kind {
            EventKind::Message {
                mid,
                is_echo: false,
                ..
            } => format!("message:{mid}"),
            EventKind::Message {
                mid, is_echo: true, ..
            } => format!("echo:{mid}"),
            EventKind::MessageDeleted { mid } => format!("deleted:{mid}"),
            EventKind::MessageUnsupported { mid } => format!("unsupported:{mid}"),
            EventKind::MessageEdit { mid, num_edit, .. } => format!("edit:{mid}:{num_edit}"),
            EventKind::Postback { mid, .. } => format!("postback:{mid}:{}", self.timestamp_ms),
            EventKind::Reaction { mid, action, .. } => {
                format!("reaction:{mid}:{action}:{}", self.timestamp_ms)
            }
            EventKind::Read { mid } => format!("read:{mid}:{}", self.timestamp_ms),
            EventKind::Referral { .. } => format!("referral:{}:{}", self.sender, self.timestamp_ms),
            EventKind::ThreadControl { to_us, .. } => {
                format!("thread:{to_us}:{}:{}", self.sender, self.timestamp_ms)
            }
            EventKind::Unknown { .. } => format!(
                "unknown:{}",
                hex::encode(Sha256::digest(self.raw.to_string()))
            ),
        }
    }

    /// Why this event cannot be taken in, if it cannot: a message or
    /// postback without `mid` would share one dedupe key with every other,
    /// and one without a customer id could not be answered.
    pub fn refusal(&self) -> Option<&'static str> {
        let mid = match &self.kind {
            EventKind::Message { mid, .. } | EventKind::Postback { mid, .. } => mid,
            _ => return None,
        };
        if mid.is_empty() {
            Some("it has no `mid`")
        } else if self.customer().is_empty() {
            Some("it names no customer (`sender.id`, or `recipient.id` for an echo)")
        } else {
            None
        }
    }

    /// The customer's id: the sender, or for an echo the recipient.
    pub fn customer(&self) -> &str {
        match &self.kind {
            EventKind::Message { is_echo: true, .. } => &self.recipient,
            _ => &self.sender,
        }
    }
}

/// Meta batches at most 1,000 updates into one delivery; more is not Meta.
pub const MAX_ENTRIES: usize = 1_000;

/// Why a webhook body was refused as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("`object` is {0:?}, not \"instagram\"")]
    NotInstagram(String),
    #[error("the body has no `entry` list")]
    NoEntries,
    #[error("the body has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
}

/// The account ids a body's entries name, read without building the rest
/// of the body: this runs before the signature is checked, so it must stay
/// cheap for whatever an unauthenticated client sends.
pub fn claimed_accounts(body: &[u8]) -> Result<Vec<String>, ParseError> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        object: Option<String>,
        #[serde(default)]
        entry: Option<Entries>,
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().contains(TOO_MANY) {
            ParseError::TooManyEntries
        } else {
            ParseError::NotJson(e.to_string())
        }
    })?;
    let object = envelope.object.unwrap_or_default();
    if object != "instagram" {
        return Err(ParseError::NotInstagram(object));
    }
    Ok(envelope.entry.ok_or(ParseError::NoEntries)?.0)
}

const TOO_MANY: &str = "too many entries";

/// `entry[].id` of at most [`MAX_ENTRIES`] entries, ids as text.
struct Entries(Vec<String>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Entries, A::Error> {
                #[derive(Deserialize)]
                struct Entry {
                    #[serde(default)]
                    id: Value,
                }
                let mut ids = Vec::new();
                while let Some(entry) = seq.next_element::<Entry>()? {
                    if ids.len() == MAX_ENTRIES {
                        return Err(serde::de::Error::custom(TOO_MANY));
                    }
                    ids.push(text(&entry.id).unwrap_or_default());
                }
                Ok(Entries(ids))
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

/// Parses a webhook body into its events, in the order received.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let object = root["object"].as_str().unwrap_or_default();
    if object != "instagram" {
        return Err(ParseError::NotInstagram(object.to_string()));
    }
    let entries = root["entry"].as_array().ok_or(ParseError::NoEntries)?;
    if entries.len() > MAX_ENTRIES {
        return Err(ParseError::TooManyEntries);
    }
    let mut events = Vec::new();
    for entry in entries {
        let account_id = text(&entry["id"]).unwrap_or_default();
        for (list, standby) in [("messaging", false), ("standby", true)] {
            for item in entry[list].as_array().into_iter().flatten() {
                events.push(parse_item(&account_id, item, standby));
            }
        }
    }
    Ok(events)
}

fn parse_item(account_id: &str, item: &Value, standby: bool) -> Event {
    let timestamp_ms = item["timestamp"].as_u64().unwrap_or(0);
    Event {
        account_id: account_id.to_string(),
        sender: text(&item["sender"]["id"]).unwrap_or_default(),
        recipient: text(&item["recipient"]["id"]).unwrap_or_default(),
        timestamp_ms,
        standby,
        kind: parse_kind(item),
        raw: item.clone(),
    }
}

fn parse_kind(item: &Value) -> EventKind {
    if let Some(message) = item.get("message").filter(|m| m.is_object()) {
        let mid = text(&message["mid"]).unwrap_or_default();
        if message["is_deleted"].as_bool() == Some(true) {
            return EventKind::MessageDeleted { mid };
        }
        if message["is_unsupported"].as_bool() == Some(true) {
            return EventKind::MessageUnsupported { mid };
        }
        let attachments = message["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| Attachment {
                kind: text(&a["type"]).unwrap_or_else(|| "unknown".into()),
                url: text(&a["payload"]["url"]),
            })
            .collect();
        let reply_to = text(&message["reply_to"]["mid"])
            .or_else(|| text(&message["reply_to"]["story"]["url"]));
        return EventKind::Message {
            mid,
            text: text(&message["text"]),
            attachments,
            quick_reply: text(&message["quick_reply"]["payload"]),
            reply_to,
            is_echo: message["is_echo"].as_bool().unwrap_or(false),
        };
    }
    if let Some(postback) = item.get("postback").filter(|p| p.is_object()) {
        return EventKind::Postback {
            mid: text(&postback["mid"]).unwrap_or_default(),
            title: text(&postback["title"]),
            payload: text(&postback["payload"]),
        };
    }
    if let Some(reaction) = item.get("reaction").filter(|r| r.is_object()) {
        return EventKind::Reaction {
            mid: text(&reaction["mid"]).unwrap_or_default(),
            action: text(&reaction["action"]).unwrap_or_else(|| "react".into()),
            reaction: text(&reaction["reaction"]),
            emoji: text(&reaction["emoji"]),
        };
    }
    if let Some(read) = item.get("read").filter(|r| r.is_object()) {
        return EventKind::Read {
            mid: text(&read["mid"]).unwrap_or_default(),
        };
    }
    if let Some(edit) = item.get("message_edit").filter(|e| e.is_object()) {
        return EventKind::MessageEdit {
            mid: text(&edit["mid"]).unwrap_or_default(),
            text: text(&edit["text"]),
            num_edit: edit["num_edit"].as_u64().unwrap_or(0),
        };
    }
    if let Some(passed) = item.get("pass_thread_control").filter(|p| p.is_object()) {
        return EventKind::ThreadControl {
            to_us: true,
            other_app: text(&passed["previous_owner_app_id"]),
        };
    }
    if let Some(taken) = item.get("take_thread_control").filter(|t| t.is_object()) {
        return EventKind::ThreadControl {
            to_us: false,
            other_app: text(&taken["new_owner_app_id"]),
        };
    }
    if let Some(referral) = item.get("referral").filter(|r| r.is_object()) {
        return EventKind::Referral {
            source: text(&referral["source"]),
            referral_type: text(&referral["type"]),
            reference: text(&referral["ref"]),
        };
    }
    let fields = item
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !matches!(k.as_str(), "sender" | "recipient" | "timestamp"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    EventKind::Unknown { fields }
}

/// A string field, or a number written as one (ids come both ways).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(items: Vec<Value>) -> Vec<u8> {
        json!({"object": "instagram", "entry": [{"id": "17841400000000001", "time": 1_700_000_000_000u64, "messaging": items}]})
            .to_string()
            .into_bytes()
    }

    fn item(body: Value) -> Value {
        let mut item = json!({"sender": {"id": "IGSID-1"}, "recipient": {"id": "17841400000000001"}, "timestamp": 1_700_000_000_123u64});
        item.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        item
    }

    #[test]
    fn every_documented_event_is_parsed() {
        let body = batch(vec![
            item(json!({"message": {"mid": "m1", "text": "hello"}})),
            item(json!({"message": {"mid": "m2", "attachments": [
                {"type": "image", "payload": {"url": "https://cdn/1.jpg"}},
                {"type": "share", "payload": {"url": "https://ig/p/1"}},
                {"type": "ig_post", "payload": {"url": "https://ig/p/2"}},
                {"type": "story_mention", "payload": {"url": "https://ig/s/1"}},
                {"type": "ig_reel", "payload": {"url": "https://ig/r/1"}}
            ]}})),
            item(
                json!({"message": {"mid": "m3", "text": "Order status", "quick_reply": {"payload": "order-status"}}}),
            ),
            item(json!({"message": {"mid": "m4", "text": "this one", "reply_to": {"mid": "m1"}}})),
            item(json!({"message": {"mid": "m5", "is_deleted": true}})),
            item(json!({"message": {"mid": "m6", "is_unsupported": true}})),
            item(json!({"message": {"mid": "m7", "text": "our reply", "is_echo": true}})),
            item(json!({"postback": {"mid": "m8", "title": "Yes", "payload": "yes"}})),
            item(
                json!({"reaction": {"mid": "m1", "action": "react", "reaction": "love", "emoji": "❤️"}}),
            ),
            item(json!({"read": {"mid": "m7"}})),
            item(json!({"referral": {"ref": "summer", "source": "ADS", "type": "OPEN_THREAD"}})),
            item(json!({"message_edit": {"mid": "m1", "text": "hello!", "num_edit": 1}})),
            item(
                json!({"take_thread_control": {"previous_owner_app_id": "1", "new_owner_app_id": "263902037430900"}}),
            ),
            item(
                json!({"pass_thread_control": {"previous_owner_app_id": "263902037430900", "new_owner_app_id": "1"}}),
            ),
            item(json!({"optin": {"ref": "x"}})),
        ]);
        let events = parse(&body).unwrap();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Message { is_echo: true, .. } => "echo",
                EventKind::Message { .. } => "message",
                EventKind::MessageDeleted { .. } => "deleted",
                EventKind::MessageUnsupported { .. } => "unsupported",
                EventKind::MessageEdit { .. } => "edit",
                EventKind::Postback { .. } => "postback",
                EventKind::Reaction { .. } => "reaction",
                EventKind::Read { .. } => "read",
                EventKind::Referral { .. } => "referral",
                EventKind::ThreadControl { to_us: false, .. } => "taken",
                EventKind::ThreadControl { to_us: true, .. } => "passed",
                EventKind::Unknown { .. } => "unknown",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "message",
                "message",
                "message",
                "message",
                "deleted",
                "unsupported",
                "echo",
                "postback",
                "reaction",
                "read",
                "referral",
                "edit",
                "taken",
                "passed",
                "unknown"
            ]
        );
        let EventKind::Message { attachments, .. } = &events[1].kind else {
            unreachable!()
        };
        assert_eq!(attachments.iter().filter(|a| a.is_post_share()).count(), 2);
        assert_eq!(attachments[3].kind, "story_mention");
        let EventKind::Message { quick_reply, .. } = &events[2].kind else {
            unreachable!()
        };
        assert_eq!(quick_reply.as_deref(), Some("order-status"));
        let EventKind::Message { reply_to, .. } = &events[3].kind else {
            unreachable!()
        };
        assert_eq!(reply_to.as_deref(), Some("m1"));
        assert_eq!(
            events[6].customer(),
            "17841400000000001",
            "an echo's customer is its recipient"
        );
        assert_eq!(events[0].customer(), "IGSID-1");
        assert_eq!(
            events[14].kind,
            EventKind::Unknown {
                fields: vec!["optin".into()]
            }
        );
        assert!(events.iter().all(|e| e.account_id == "17841400000000001" && e.timestamp_ms == 1_700_000_000_123));
    }

    #[test]
    fn duplicates_share_a_key_and_distinct_events_do_not() {
        let reaction = |ts: u64| {
            item(
                json!({"reaction": {"mid": "m1", "action": "react", "reaction": "love"}, "timestamp": ts}),
            )
        };
        let events = parse(&batch(vec![
            item(json!({"message": {"mid": "m1", "text": "hi"}})),
            item(json!({"message": {"mid": "m1", "text": "hi"}})),
            reaction(1),
            reaction(1),
            reaction(2),
            item(json!({"read": {"mid": "m1"}})),
        ]))
        .unwrap();
        let keys: Vec<String> = events.iter().map(Event::dedupe_key).collect();
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[2], keys[3]);
        assert_ne!(keys[3], keys[4]);
        assert_ne!(keys[0], keys[5]);
    }

    #[test]
    fn batches_with_several_entries_and_standby_are_read_in_order() {
        let body = json!({"object": "instagram", "entry": [
            {"id": "A", "time": 1, "messaging": [item(json!({"message": {"mid": "a1", "text": "1"}}))]},
            {"id": "B", "time": 2, "messaging": [item(json!({"message": {"mid": "b1", "text": "2"}}))],
             "standby": [item(json!({"message": {"mid": "b2", "text": "3"}}))]}
        ]});
        let events = parse(body.to_string().as_bytes()).unwrap();
        let seen: Vec<(&str, bool)> = events
            .iter()
            .map(|e| (e.account_id.as_str(), e.standby))
            .collect();
        assert_eq!(seen, [("A", false), ("B", false), ("B", true)]);
    }

    #[test]
    fn bodies_that_are_not_instagram_webhooks_are_refused() {
        assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
        assert_eq!(
            parse(br#"{"object":"page","entry":[]}"#),
            Err(ParseError::NotInstagram("page".into()))
        );
        assert_eq!(
            parse(br#"{"object":"instagram"}"#),
            Err(ParseError::NoEntries)
        );
        assert_eq!(parse(br#"{"object":"instagram","entry":[]}"#), Ok(vec![]));
    }

    #[test]
    fn claimed_accounts_are_read_as_text_and_capped() {
        let body = br#"{"object":"instagram","entry":[{"id":"A","messaging":[{"x":[1,2]}]},{"id":17841400000000001},{}]}"#;
        assert_eq!(
            claimed_accounts(body),
            Ok(vec!["A".into(), "17841400000000001".into(), String::new()])
        );
        assert_eq!(
            claimed_accounts(br#"{"object":"instagram"}"#),
            Err(ParseError::NoEntries)
        );
        let many = format!(
            r#"{{"object":"instagram","entry":[{}]}}"#,
            vec![r#"{"id":"A"}"#; MAX_ENTRIES + 1].join(",")
        );
        assert_eq!(
            claimed_accounts(many.as_bytes()),
            Err(ParseError::TooManyEntries)
        );
        assert!(matches!(
            claimed_accounts(b"{\"object\":\"instagram\",\"entry\":[{\"id\":\"A\"}"),
            Err(ParseError::NotJson(_))
        ));
    }
}
