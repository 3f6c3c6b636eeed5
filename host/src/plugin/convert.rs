//! Conversions between the generated bindings of contract 0.1.0 and the
//! host's own types in `types.rs`.

use super::bindings::v0_1_0::exports::flowhost::plugin::action_plugin::{ActionError, Outcome};
use super::bindings::v0_1_0::flowhost::plugin::types as wit;
use super::capabilities::host_error_text;
use super::error::CallError;
use super::types::*;

impl From<wit::Capability> for Capability {
    fn from(c: wit::Capability) -> Self {
        match c {
            wit::Capability::Log => Capability::Log,
            wit::Capability::ConversationData => Capability::ConversationData,
            wit::Capability::Messaging => Capability::Messaging,
            wit::Capability::Tickets => Capability::Tickets,
            wit::Capability::Templates => Capability::Templates,
            wit::Capability::Http => Capability::Http,
        }
    }
}

impl From<wit::OutgoingMessage> for OutgoingMessage {
    fn from(m: wit::OutgoingMessage) -> Self {
        OutgoingMessage {
            id: String::new(),
            text: m.text,
            buttons: m
                .buttons
                .into_iter()
                .map(|b| Button {
                    title: b.title,
                    url: b.url,
                    payload: b.payload,
                })
                .collect(),
            quick_replies: m
                .quick_replies
                .into_iter()
                .map(|q| QuickReply {
                    title: q.title,
                    payload: q.payload,
                })
                .collect(),
            attachments: m.attachments.into_iter().map(Attachment::from).collect(),
        }
    }
}

impl From<wit::Attachment> for Attachment {
    fn from(a: wit::Attachment) -> Self {
        Attachment {
            kind: a.kind,
            url: a.url,
        }
    }
}

impl From<&Attachment> for wit::Attachment {
    fn from(a: &Attachment) -> Self {
        wit::Attachment {
            kind: a.kind.clone(),
            url: a.url.clone(),
        }
    }
}

/// The context record sent into the guest, and its size in bytes (for the
/// input limit).
pub(crate) fn context_to_wit(ctx: &ActionContext) -> (wit::Context, usize) {
    let data = serde_json::to_string(&ctx.data).unwrap_or_else(|_| "{}".into());
    let context = wit::Context {
        conversation: wit::Conversation {
            id: ctx.conversation.id.clone(),
            channel: ctx.conversation.channel.clone(),
            account_id: ctx.conversation.account_id.clone(),
            started_at_ms: ctx.conversation.started_at_ms,
        },
        contact: wit::Contact {
            id: ctx.contact.id.clone(),
            name: ctx.contact.name.clone(),
            username: ctx.contact.username.clone(),
        },
        last_message: ctx.last_message.as_ref().map(|m| wit::Message {
            id: m.id.clone(),
            text: m.text.clone(),
            payload: m.payload.clone(),
            attachments: m.attachments.iter().map(wit::Attachment::from).collect(),
            timestamp_ms: m.timestamp_ms,
        }),
        data,
        language: ctx.language.clone(),
    };
    let size = context.data.len()
        + context.conversation.id.len()
        + context.contact.id.len()
        + context.language.len()
        + context
            .last_message
            .as_ref()
            .map(|m| {
                m.text.as_deref().unwrap_or("").len()
                    + m.attachments.iter().map(|a| a.url.len()).sum::<usize>()
            })
            .unwrap_or(0);
    (context, size)
}

/// An outcome from the guest, checked against the output limit.
pub(crate) fn outcome_from_wit(
    outcome: Outcome,
    max_output: usize,
) -> Result<ActionOutput, CallError> {
    let store = match outcome.store {
        None => None,
        Some(named) => {
            if named.value.len() > max_output {
                return Err(CallError::OutputTooLarge {
                    size: named.value.len(),
                    limit: max_output,
                });
            }
            if named.name.trim().is_empty() {
                return Err(CallError::InvalidOutput {
                    reason: "a stored value needs a name".into(),
                });
            }
            let value =
                serde_json::from_str(&named.value).map_err(|e| CallError::InvalidOutput {
                    reason: format!("stored value `{}` is not JSON: {e}", named.name),
                })?;
            Some((named.name, value))
        }
    };
    if let Some(target) = &outcome.next_target
        && target.len() > max_output
    {
        return Err(CallError::OutputTooLarge {
            size: target.len(),
            limit: max_output,
        });
    }
    Ok(ActionOutput {
        store,
        next_target: outcome.next_target,
        effects: Effects::default(),
    })
}

impl From<ActionError> for CallError {
    fn from(error: ActionError) -> Self {
        match error {
            ActionError::InvalidConfig(reason) => CallError::InvalidConfig { reason },
            ActionError::Host(error) => CallError::Capability {
                reason: host_error_text(error),
            },
            ActionError::Http(reason) => CallError::Http { reason },
            ActionError::Failed(reason) => CallError::Failed { reason },
        }
    }
}

mod chatbot {
    use super::super::bindings::v0_1_0::chatbot::exports::flowhost::plugin::chatbot_adapter as wit_bot;
    use super::super::bindings::v0_1_0::flowhost::plugin::types as wit;
    use super::super::capabilities::host_error_text;
    use super::super::error::CallError;
    use super::super::types::*;

    impl From<&ChatbotSession> for wit_bot::Session {
        fn from(s: &ChatbotSession) -> Self {
            wit_bot::Session {
                response_url: s.response_url.clone(),
                hash: s.hash.clone(),
                custom_fields: s
                    .custom_fields
                    .iter()
                    .map(|f| wit_bot::CustomField {
                        name: f.name.clone(),
                        title: f.title.clone(),
                        value: f.value.clone(),
                    })
                    .collect(),
            }
        }
    }

    impl From<&ChatbotInbound> for wit_bot::Inbound {
        fn from(i: &ChatbotInbound) -> Self {
            wit_bot::Inbound {
                id: i.id.clone(),
                text: i.text.clone(),
                quick_reply: i.quick_reply.clone(),
                attachments: i.attachments.iter().map(wit::Attachment::from).collect(),
                is_start: i.is_start,
            }
        }
    }

    impl From<wit_bot::BotTurn> for BotTurn {
        fn from(turn: wit_bot::BotTurn) -> Self {
            BotTurn {
                replies: turn
                    .replies
                    .into_iter()
                    .map(|r| {
                        OutgoingMessage::from(wit::OutgoingMessage {
                            text: r.text,
                            buttons: r.buttons,
                            quick_replies: r.quick_replies,
                            attachments: r.attachments,
                        })
                    })
                    .collect(),
                handoff_queue: turn.handoff_queue,
            }
        }
    }

    impl From<wit_bot::AdapterError> for CallError {
        fn from(error: wit_bot::AdapterError) -> Self {
            match error {
                wit_bot::AdapterError::InvalidConfig(reason) => CallError::InvalidConfig { reason },
                wit_bot::AdapterError::Unavailable(reason) => CallError::BotUnavailable { reason },
                wit_bot::AdapterError::Protocol(reason) => CallError::BotProtocol { reason },
                wit_bot::AdapterError::Host(error) => CallError::Capability {
                    reason: host_error_text(error),
                },
            }
        }
    }

    use crate::plugin::bindings::v0_2_0::exports::flowhost::plugin0_2_0::translator_plugin as wit_tr;

    impl From<wit_tr::TranslateError> for CallError {
        fn from(error: wit_tr::TranslateError) -> Self {
            match error {
                wit_tr::TranslateError::InvalidConfig(reason) => {
                    CallError::InvalidConfig { reason }
                }
                wit_tr::TranslateError::UnsupportedLanguages(reason) => {
                    CallError::UnsupportedLanguages { reason }
                }
                wit_tr::TranslateError::Unavailable(reason) => {
                    CallError::TranslatorUnavailable { reason }
                }
                wit_tr::TranslateError::Host(error) => CallError::Capability {
                    reason: host_error_text(error),
                },
            }
        }
    }
}
