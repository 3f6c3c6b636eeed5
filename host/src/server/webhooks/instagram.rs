//! `GET/POST /webhooks/instagram`: subscription verification and events,
//! signed with `X-Hub-Signature-256` over the raw body.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};

use crate::channels::instagram::events::{self, EventKind};
use crate::channels::instagram::signature::{self, SignatureError};
use crate::flow::model::{Account, Flow, resolve_secret};
use crate::intake::InboxRecord;
use crate::plugin::{Attachment, Contact, InboundMessage};
use crate::server::AppState;
use crate::server::auth::same_secret;
use crate::storage::{Echo, EchoOutcome};

/// The Instagram accounts of the flow, by their IG user id.
#[derive(Default)]
pub struct InstagramAccounts {
    by_ig_id: HashMap<String, IgAccount>,
}

struct IgAccount {
    key: String,
    app_secret: Option<String>,
    verify_token: Option<String>,
}

impl InstagramAccounts {
    /// Reads the accounts, resolving `env:NAME` secrets now.
    pub fn from_flow(flow: &Flow) -> Self {
        let by_ig_id = flow
            .accounts
            .iter()
            .filter_map(|(key, account)| match account {
                Account::Instagram {
                    ig_user_id,
                    app_secret,
                    verify_token,
                    ..
                } => Some((
                    ig_user_id.clone(),
                    IgAccount {
                        key: key.clone(),
                        app_secret: resolve_secret(app_secret),
                        verify_token: resolve_secret(verify_token),
                    },
                )),
                Account::Connexease { .. } => None,
            })
            .collect();
        InstagramAccounts { by_ig_id }
    }
}

/// `GET`: answers `hub.challenge` when `hub.verify_token` is an account's.
pub(super) async fn verify(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query
        .get("hub.verify_token")
        .map(String::as_str)
        .unwrap_or_default();
    let known = state
        .instagram
        .by_ig_id
        .values()
        .filter_map(|a| a.verify_token.as_deref())
        .any(|expected| same_secret(token, expected));
    match (mode, known, query.get("hub.challenge")) {
        (Some("subscribe"), true, Some(challenge)) => (StatusCode::OK, challenge.clone()),
        _ => (StatusCode::FORBIDDEN, "verification refused".into()),
    }
}

/// `POST`: signature, parse, accept into the inbox, 200.
pub(super) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(intake) = &state.intake else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no flow is loaded");
    };
    // The entries name the accounts, and so the secrets to check with; the
    // body is trusted only once one of them verifies it.
    let claimed: Vec<String> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["entry"].as_array().map(|e| {
                e.iter()
                    .filter_map(|e| e["id"].as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    let header = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let mut verdict = Err(SignatureError::Mismatch);
    for id in &claimed {
        if let Some(secret) = state
            .instagram
            .by_ig_id
            .get(id)
            .and_then(|a| a.app_secret.as_deref())
        {
            verdict = signature::verify(secret.as_bytes(), &body, header);
            if verdict.is_ok() {
                break;
            }
        }
    }
    match verdict {
        Ok(()) => {}
        Err(SignatureError::Missing) => {
            return (StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256");
        }
        Err(_) => return (StatusCode::FORBIDDEN, "bad signature"),
    }
    let events = match events::parse(&body) {
        Ok(events) => events,
        Err(_) => return (StatusCode::BAD_REQUEST, "not an Instagram webhook"),
    };

    let mut records = Vec::new();
    let mut echoes = Vec::new();
    for event in events {
        let Some(account) = state.instagram.by_ig_id.get(&event.account_id) else {
            tracing::warn!(
                account = event.account_id,
                "event for an unknown Instagram account skipped"
            );
            continue;
        };
        let dedupe = format!("instagram:{}:{}", event.account_id, event.dedupe_key());
        let message = match &event.kind {
            EventKind::Message {
                is_echo: false,
                mid,
                text,
                attachments,
                quick_reply,
                ..
            } => InboundMessage {
                id: mid.clone(),
                text: text.clone(),
                payload: quick_reply.clone(),
                attachments: attachments
                    .iter()
                    .filter_map(|a| {
                        a.url.clone().map(|url| Attachment {
                            kind: a.kind.clone(),
                            url,
                        })
                    })
                    .collect(),
                timestamp_ms: event.timestamp_ms,
            },
            EventKind::Postback {
                mid,
                title,
                payload,
            } => InboundMessage {
                id: mid.clone(),
                text: title.clone(),
                payload: payload.clone(),
                attachments: Vec::new(),
                timestamp_ms: event.timestamp_ms,
            },
            // An echo may confirm a send in doubt (see `outbox`).
            EventKind::Message {
                is_echo: true,
                mid,
                text: Some(text),
                ..
            } => {
                echoes.push((
                    account.key.clone(),
                    event.customer().to_string(),
                    text.clone(),
                    mid.clone(),
                ));
                continue;
            }
            // Echoes of our own sends never re-enter the flow; reads,
            // reactions, edits, deletions and unknown kinds are noted only.
            other => {
                tracing::debug!(account = account.key, kind = ?std::mem::discriminant(other), "event recorded and skipped");
                continue;
            }
        };
        let contact = Contact {
            id: event.customer().to_string(),
            name: None,
            username: None,
        };
        records.push((
            dedupe,
            InboxRecord {
                account: account.key.clone(),
                contact,
                message,
            },
        ));
    }
    let storage = &state.runner.storage;
    let now_ms = intake.now_ms();
    for (account, recipient, text, mid) in echoes {
        let echo = Echo {
            account,
            recipient,
            text,
            at_ms: now_ms,
        };
        match storage.note_echo(echo, &mid).await {
            Ok(EchoOutcome::Settled(message)) => {
                tracing::info!(message, "an echo confirmed a send in doubt")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!("keeping an echo: {e}");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage failed; deliver again",
                );
            }
        }
    }
    match intake.accept(&records).await {
        Ok(_) => (StatusCode::OK, "EVENT_RECEIVED"),
        Err(e) => {
            tracing::error!("accepting a webhook: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage failed; deliver again",
            )
        }
    }
}
