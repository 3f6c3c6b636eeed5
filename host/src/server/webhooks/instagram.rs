//! `GET/POST /webhooks/instagram`: subscription verification and events,
//! signed with `X-Hub-Signature-256` over the raw body.

use std::collections::{HashMap, HashSet};
use tracing::Instrument;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};

use crate::channels::instagram::events::{self, Event, EventKind, ParseError};
use crate::channels::instagram::signature::{self, SignatureError};
use crate::flow::model::{Account, Flow, resolve_secret};
use crate::intake::InboxRecord;
use crate::model::Handover;
use crate::plugin::{Attachment, Contact, InboundMessage};
use crate::server::AppState;
use crate::server::auth::same_secret;
use crate::storage::{Echo, EchoOutcome};
use tokio::sync::Semaphore;

/// Two bodies hashed at once keep both cores' worth of intake busy without
/// letting a flood of wrongly signed bodies take the blocking pool.
const SIGNATURE_CHECKS_AT_ONCE: usize = 2;

/// The Instagram accounts of the flow, by their IG user id.
pub struct InstagramAccounts {
    by_ig_id: HashMap<String, IgAccount>,
    /// Signature checks running at once (each hashes a whole body).
    hashing: Semaphore,
}

struct IgAccount {
    key: String,
    app_secret: Option<String>,
    verify_token: Option<String>,
}

impl Default for InstagramAccounts {
    fn default() -> Self {
        InstagramAccounts {
            by_ig_id: HashMap::new(),
            hashing: Semaphore::new(SIGNATURE_CHECKS_AT_ONCE),
        }
    }
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
        InstagramAccounts {
            by_ig_id,
            hashing: Semaphore::new(SIGNATURE_CHECKS_AT_ONCE),
        }
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

/// `POST`: signature header, the entries' accounts, the signature per
/// account, then the events of the verified entries into the inbox, 200.
pub(super) async fn receive(
    state: State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let span = tracing::info_span!("webhook", channel = "instagram");
    let answer = take_delivery(state, headers, body).instrument(span).await;
    super::count_refusal("instagram", answer.0);
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
    let header = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let digest = match signature::parse_header(header) {
        Ok(digest) => digest,
        Err(SignatureError::Missing) => {
            return (StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256");
        }
        Err(_) => return (StatusCode::FORBIDDEN, "bad signature"),
    };
    let claimed = match events::claimed_accounts(&body) {
        Ok(claimed) => claimed,
        Err(ParseError::TooManyEntries) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "more than 1,000 entries");
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "not an Instagram webhook"),
    };
    let verified = state
        .instagram
        .verified_accounts(&claimed, body.clone(), digest)
        .await;
    if verified.is_empty() {
        return (StatusCode::FORBIDDEN, "bad signature");
    }
    let Ok(events) = events::parse(&body) else {
        return (StatusCode::BAD_REQUEST, "not an Instagram webhook");
    };

    let mut records = Vec::new();
    let mut echoes = Vec::new();
    for event in events {
        match state.instagram.take(&verified, event) {
            Taken::Record(dedupe, record) => records.push((dedupe, record)),
            Taken::Echo(echo, mid) => echoes.push((echo, mid)),
            Taken::Skipped => {}
        }
    }
    let storage = &state.runner.storage;
    let now_ms = intake.now_ms();
    for (mut echo, mid) in echoes {
        echo.at_ms = now_ms;
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
        Ok(new) => {
            super::count_accepted("instagram", records.len(), new);
            (StatusCode::OK, "EVENT_RECEIVED")
        }
        Err(e) => {
            tracing::error!("accepting a webhook: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage failed; deliver again",
            )
        }
    }
}

/// What becomes of one event of a verified body.
enum Taken {
    /// A customer's message or postback, for the inbox under its dedupe key.
    Record(String, InboxRecord),
    /// The echo of one of our sends (it may settle a send in doubt).
    Echo(Echo, String),
    /// Logged and left out.
    Skipped,
}

impl InstagramAccounts {
    /// The claimed accounts whose own app secret verifies the body. Each
    /// distinct secret is tried once however many entries name it, on the
    /// blocking pool and a few at a time, so no body can hold the async
    /// workers or cost more than one hash per configured secret.
    async fn verified_accounts(
        &self,
        claimed: &[String],
        body: Bytes,
        digest: signature::Digest,
    ) -> HashSet<String> {
        let by_secret = self.secrets_to_try(claimed);
        if by_secret.is_empty() {
            return HashSet::new();
        }
        let Ok(_permit) = self.hashing.acquire().await else {
            return HashSet::new();
        };
        tokio::task::spawn_blocking(move || {
            by_secret
                .into_iter()
                .filter(|(secret, _)| signature::matches(secret.as_bytes(), &body, &digest))
                .flat_map(|(_, ids)| ids)
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// The distinct secrets of the claimed accounts we know, each with the
    /// accounts it would verify.
    fn secrets_to_try(&self, claimed: &[String]) -> HashMap<String, Vec<String>> {
        let mut by_secret: HashMap<String, Vec<String>> = HashMap::new();
        for id in claimed.iter().collect::<HashSet<_>>() {
            if let Some(secret) = self.by_ig_id.get(id).and_then(|a| a.app_secret.clone()) {
                by_secret.entry(secret).or_default().push(id.clone());
            }
        }
        by_secret
    }

    /// Sorts one event: only entries their own account signed are taken;
    /// standby events (another app owns the thread) are never answered.
    fn take(&self, verified: &HashSet<String>, event: Event) -> Taken {
        let account_id = &event.account_id;
        let Some(account) = self.by_ig_id.get(account_id) else {
            tracing::warn!(account_id, "event for an unknown Instagram account skipped");
            return Taken::Skipped;
        };
        if !verified.contains(account_id) {
            tracing::warn!(
                account = account.key,
                "entry not signed with its own account's app secret; skipped"
            );
            return Taken::Skipped;
        }
        if event.standby {
            return self.standby(account, event);
        }
        if let Some(reason) = event.refusal() {
            tracing::warn!(account = account.key, "event refused: {reason}");
            return Taken::Skipped;
        }
        let dedupe = format!("instagram:{account_id}:{}", event.dedupe_key());
        let contact = Contact {
            id: event.customer().to_string(),
            name: None,
            username: None,
        };
        let message = match event.kind {
            EventKind::Message {
                is_echo: false,
                mid,
                text,
                attachments,
                quick_reply,
                ..
            } => InboundMessage {
                id: mid,
                text,
                payload: quick_reply,
                attachments: attachments
                    .into_iter()
                    .filter_map(|a| a.url.map(|url| Attachment { kind: a.kind, url }))
                    .collect(),
                timestamp_ms: event.timestamp_ms,
            },
            EventKind::Postback {
                mid,
                title,
                payload,
            } => InboundMessage {
                id: mid,
                text: title,
                payload,
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
                let echo = Echo {
                    account: account.key.clone(),
                    recipient: contact.id,
                    text,
                    at_ms: 0,
                };
                return Taken::Echo(echo, mid);
            }
            EventKind::ThreadControl { to_us, other_app } => {
                let handover = if to_us {
                    Handover::Returned
                } else {
                    Handover::Taken {
                        by: meta_app(other_app.as_deref()),
                    }
                };
                let message = InboundMessage {
                    id: dedupe.clone(),
                    timestamp_ms: event.timestamp_ms,
                    ..InboundMessage::default()
                };
                return Taken::Record(dedupe, handover_record(account, contact, message, handover));
            }
            // Echoes of our own sends never re-enter the flow; reads,
            // reactions, edits, deletions and unknown kinds are noted only.
            other => {
                tracing::info!(
                    account = account.key,
                    kind = other.kind_name(),
                    "event skipped: flowhost has nothing to do with it"
                );
                return Taken::Skipped;
            }
        };
        let record = InboxRecord {
            account: account.key.clone(),
            contact,
            message,
            handover: None,
            bot: None,
        };
        Taken::Record(dedupe, record)
    }

    /// A customer's message under `standby`: another app owns the thread,
    /// so the conversation is marked taken (the bot keeps quiet, timers
    /// included) and the message kept in its history; other standby events
    /// are skipped.
    fn standby(&self, account: &IgAccount, event: Event) -> Taken {
        let dedupe = format!(
            "instagram:{}:standby:{}",
            event.account_id,
            event.dedupe_key()
        );
        let contact = Contact {
            id: event.customer().to_string(),
            name: None,
            username: None,
        };
        match event.kind {
            EventKind::Message {
                is_echo: false,
                mid,
                text,
                ..
            } if !mid.is_empty() && !contact.id.is_empty() => {
                tracing::info!(
                    account = account.key,
                    customer = contact.id,
                    "standby message: another app owns the thread"
                );
                let message = InboundMessage {
                    id: mid,
                    text,
                    timestamp_ms: event.timestamp_ms,
                    ..InboundMessage::default()
                };
                let taken = Handover::Taken { by: meta_app(None) };
                Taken::Record(dedupe, handover_record(account, contact, message, taken))
            }
            _ => Taken::Skipped,
        }
    }
}

fn meta_app(app_id: Option<&str>) -> String {
    match app_id {
        Some(id) => format!("Meta app {id}"),
        None => "another Meta app".into(),
    }
}

fn handover_record(
    account: &IgAccount,
    contact: Contact,
    message: InboundMessage,
    handover: Handover,
) -> InboxRecord {
    InboxRecord {
        account: account.key.clone(),
        contact,
        message,
        handover: Some(handover),
        bot: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(key: &str, secret: &str) -> IgAccount {
        IgAccount {
            key: key.into(),
            app_secret: Some(secret.into()),
            verify_token: None,
        }
    }

    /// Issue 8, item 1: a body naming one account 149,000 times (or every
    /// account of one app) costs one hash per distinct secret.
    #[test]
    fn each_distinct_secret_is_tried_once() {
        let accounts = InstagramAccounts {
            by_ig_id: [
                ("1".into(), account("a", "s1")),
                ("2".into(), account("b", "s1")),
                ("3".into(), account("c", "s2")),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let mut claimed = vec!["1".to_string(); 149_000];
        claimed.extend(["2".into(), "3".into(), "unknown".into()]);
        let secrets = accounts.secrets_to_try(&claimed);
        assert_eq!(secrets.len(), 2);
        let mut s1 = secrets["s1"].clone();
        s1.sort();
        assert_eq!(s1, ["1", "2"]);
        assert_eq!(secrets["s2"], ["3"]);
    }
}
