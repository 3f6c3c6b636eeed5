//! `POST /webhooks/connexease`: Connexease's outgoing webhooks, checked
//! with the channel's `X-Connexease-Webhook-Sign`.

use std::collections::HashMap;
use tracing::Instrument;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::channels::connexease;
use crate::flow::model::{Account, ConnexeaseSign, Flow, resolve_secret};
use crate::intake::InboxRecord;
use crate::plugin::{Attachment, Contact, InboundMessage};
use crate::server::AppState;

/// The Connexease accounts of the flow, by channel uuid.
#[derive(Default)]
pub struct ConnexeaseAccounts {
    by_channel: HashMap<String, CxAccount>,
}

struct CxAccount {
    key: String,
    secret: Option<String>,
    mode: ConnexeaseSign,
}

impl ConnexeaseAccounts {
    pub fn from_flow(flow: &Flow) -> Self {
        let by_channel = flow
            .accounts
            .iter()
            .filter_map(|(key, account)| match account {
                Account::Connexease {
                    channel_id,
                    webhook_secret,
                    webhook_sign,
                    ..
                } => Some((
                    channel_id.clone(),
                    CxAccount {
                        key: key.clone(),
                        secret: resolve_secret(webhook_secret),
                        mode: *webhook_sign,
                    },
                )),
                Account::Instagram { .. } => None,
            })
            .collect();
        ConnexeaseAccounts { by_channel }
    }
}

impl CxAccount {
    /// Whether `header` is this channel's sign (an account without a
    /// secret verifies nothing).
    fn verifies(&self, channel: &str, header: &str) -> bool {
        self.secret
            .as_deref()
            .is_some_and(|secret| connexease::verify_sign(self.mode, secret, channel, header))
    }
}

/// `POST /webhooks/connexease`: the channel's secret, then the inbox.
/// Connexease resends until it gets a 2xx, so duplicates are dropped by the
/// message's uuid.
pub(super) async fn receive(
    state: State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let span = tracing::info_span!("webhook", channel = "connexease");
    let answer = take_delivery(state, headers, body).instrument(span).await;
    super::count_refusal("connexease", answer.0);
    answer
}

async fn take_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(intake) = &state.intake else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no flow is loaded");
    };
    let Some((channel, hook)) = connexease::parse(&body) else {
        return (StatusCode::BAD_REQUEST, "not a Connexease webhook");
    };
    // The same answers whether or not the channel is configured, so they
    // tell an outsider nothing about which channels exist.
    let Some(header) = headers
        .get("x-connexease-webhook-sign")
        .and_then(|v| v.to_str().ok())
    else {
        return (
            StatusCode::UNAUTHORIZED,
            "missing X-Connexease-Webhook-Sign",
        );
    };
    let Some(account) = state
        .connexease
        .by_channel
        .get(&channel)
        .filter(|a| a.verifies(&channel, header))
    else {
        return (StatusCode::FORBIDDEN, "bad signature");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let (dedupe, record) = match hook {
        connexease::Hook::Message(message) => customer_record(&account.key, &channel, message, now),
        connexease::Hook::Handover {
            conversation,
            event_id,
            handover,
        } => {
            tracing::info!(
                account = account.key,
                conversation,
                "Connexease handover: {handover:?}"
            );
            let record = InboxRecord {
                account: account.key.clone(),
                contact: Contact {
                    id: conversation,
                    name: None,
                    username: None,
                },
                message: InboundMessage {
                    id: event_id.clone(),
                    timestamp_ms: now,
                    ..InboundMessage::default()
                },
                handover: Some(handover),
                bot: None,
            };
            (format!("connexease:{channel}:handover:{event_id}"), record)
        }
        connexease::Hook::Other { hook } => {
            tracing::info!(
                account = account.key,
                hook,
                "Connexease event skipped: flowhost has nothing to do with it"
            );
            return (StatusCode::OK, "ok");
        }
    };
    match intake.accept(&[(dedupe, record)]).await {
        Ok(new) => {
            super::count_accepted("connexease", 1, new);
            (StatusCode::OK, "ok")
        }
        Err(e) => {
            tracing::error!("accepting a Connexease webhook: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage failed; deliver again",
            )
        }
    }
}

/// A customer's message as an inbox record, with its dedupe key.
fn customer_record(
    account: &str,
    channel: &str,
    message: connexease::CustomerMessage,
    now: u64,
) -> (String, InboxRecord) {
    let dedupe = format!("connexease:{channel}:{}", message.message_id);
    let record = InboxRecord {
        account: account.to_string(),
        contact: Contact {
            id: message.conversation.clone(),
            name: message.customer_name.clone(),
            username: None,
        },
        message: InboundMessage {
            id: message.message_id,
            text: message.text,
            payload: None,
            attachments: message
                .attachments
                .into_iter()
                .map(|(kind, url)| Attachment { kind, url })
                .collect(),
            timestamp_ms: now,
        },
        handover: None,
        bot: None,
    };
    (dedupe, record)
}
