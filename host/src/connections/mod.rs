//! Instagram accounts connected from the admin page through Meta's login:
//! the pending logins (each a one-time `state`), finishing a login (code ->
//! short-lived token -> long-lived token -> account -> webhook
//! subscription), the tokens the sender uses, their refresh before they
//! expire, and "reconnect needed" when Meta refuses one (error 190).
//!
//! A flow account uses a connected token with `access_token: connected`.
//! Tokens are sealed at rest ([`seal`]); in memory the sender reads them
//! under a lock held for a map look-up, never across an await.

pub mod seal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::channels::instagram::login::{MetaError, MetaLogin};
use crate::engine::clock::Clock;
use crate::model::connection::{Connection, ConnectionStatus};
use crate::storage::{Storage, StorageError};
use seal::SecretBox;

/// How long an admin has to come back from Meta's authorization window.
const LOGIN_TTL_MS: u64 = 10 * 60 * 1000;
/// Logins started and not finished, at most (the oldest is dropped).
const MAX_PENDING: usize = 64;
/// Meta refreshes a long-lived token only once it is a day old.
const MIN_AGE_TO_REFRESH_MS: u64 = 24 * 3600 * 1000;
const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "connecting Instagram accounts is not configured (`instagram_login:` with app_id and app_secret)"
    )]
    NotConfigured,
    #[error(
        "this login is unknown, was used already or expired (10 minutes): start again from the admin page"
    )]
    UnknownLogin,
    #[error("Meta refused the login: {0}")]
    Refused(String),
    #[error("no connected account {0}")]
    NoSuchAccount(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

struct Pending {
    started_ms: u64,
    by: String,
}

/// A connected account in memory: its record and its token in the clear.
struct Live {
    record: Connection,
    token: String,
}

pub struct Connections {
    storage: Storage,
    sealer: SecretBox,
    login: Option<MetaLogin>,
    clock: Arc<dyn Clock>,
    live: RwLock<HashMap<String, Live>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// One change of the stored connections at a time (a finish, a
    /// refresh, a rejection), so none overwrites another's newer token.
    changes: tokio::sync::Mutex<()>,
}

impl Connections {
    /// Loads the stored connections. One whose token does not open (the
    /// secrets key changed) needs reconnecting.
    pub async fn open(
        storage: Storage,
        sealer: SecretBox,
        login: Option<MetaLogin>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StorageError> {
        let mut live = HashMap::new();
        for (mut record, sealed) in storage.connections().await? {
            let token = match sealer.open(&record.ig_user_id, &sealed) {
                Ok(token) => token,
                Err(e) => {
                    tracing::error!(account = %record.ig_user_id, "{e}; the account needs reconnecting");
                    record.status = ConnectionStatus::ReconnectNeeded {
                        reason: e.to_string(),
                        since_ms: clock.now_ms(),
                    };
                    String::new()
                }
            };
            live.insert(record.ig_user_id.clone(), Live { record, token });
        }
        Ok(Connections {
            storage,
            sealer,
            login,
            clock,
            live: RwLock::new(live),
            pending: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether accounts can be connected (an app is configured).
    pub fn can_connect(&self) -> bool {
        self.login.is_some()
    }

    /// Starts a login for the admin `by`: the URL of Meta's authorization
    /// window, with a new one-time state.
    pub fn begin(&self, by: &str) -> Result<String, ConnectError> {
        let login = self.login.as_ref().ok_or(ConnectError::NotConfigured)?;
        let state = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = self.clock.now_ms();
        let mut pending = self.pending.lock().expect("pending logins lock");
        pending.retain(|_, p| now.saturating_sub(p.started_ms) < LOGIN_TTL_MS);
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started_ms)
                .map(|(s, _)| s.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(
            state.clone(),
            Pending {
                started_ms: now,
                by: by.to_string(),
            },
        );
        Ok(login.authorize_url(&state))
    }

    /// Finishes the login `state` began, with the code Meta sent back: the
    /// account is connected (or reconnected) and subscribed to webhooks.
    pub async fn finish(&self, state: &str, code: &str) -> Result<Connection, ConnectError> {
        let login = self.login.as_ref().ok_or(ConnectError::NotConfigured)?;
        let pending = self.take_pending(state)?;
        let short = login.exchange_code(code).await?;
        let long = login.long_lived(&short.access_token).await?;
        let account = login.account(&long.access_token).await?;
        login.subscribe(&long.access_token).await?;
        let now = self.clock.now_ms();
        let record = Connection {
            ig_user_id: account.user_id,
            username: account.username,
            token_issued_at_ms: now,
            token_expires_at_ms: now.saturating_add(long.expires_in_seconds.saturating_mul(1000)),
            permissions: short.permissions,
            subscribed_fields: login.settings().subscribed_fields.clone(),
            connected_at_ms: now,
            connected_by: pending.by,
            status: ConnectionStatus::Connected,
        };
        tracing::info!(account = %record.ig_user_id, username = %record.username, "Instagram account connected");
        let _change = self.changes.lock().await;
        self.keep(record.clone(), long.access_token).await?;
        Ok(record)
    }

    /// Forgets the login `state` began (Meta sent the admin back without a
    /// code), so it cannot be finished later.
    pub fn abandon(&self, state: &str) {
        self.pending
            .lock()
            .expect("pending logins lock")
            .remove(state);
    }

    /// The state's login, once: unknown, used and expired states fail.
    fn take_pending(&self, state: &str) -> Result<Pending, ConnectError> {
        let mut pending = self.pending.lock().expect("pending logins lock");
        let login = pending.remove(state).ok_or(ConnectError::UnknownLogin)?;
        if self.clock.now_ms().saturating_sub(login.started_ms) >= LOGIN_TTL_MS {
            return Err(ConnectError::UnknownLogin);
        }
        Ok(login)
    }

    /// The token to send as `ig_user_id` with, or why there is none.
    pub fn token(&self, ig_user_id: &str) -> Result<String, String> {
        let live = self.live.read().expect("connections lock");
        match live.get(ig_user_id) {
            None => Err(format!(
                "the Instagram account {ig_user_id} is not connected; connect it from the admin page"
            )),
            Some(Live { record, token }) => match &record.status {
                ConnectionStatus::Connected => Ok(token.clone()),
                ConnectionStatus::ReconnectNeeded { reason, .. } => Err(format!(
                    "the Instagram account {ig_user_id} needs reconnecting from the admin page ({reason})"
                )),
            },
        }
    }

    /// Meta refused `token` for `ig_user_id` (error 190): the account needs
    /// reconnecting, unless it was reconnected since that token was used.
    pub async fn rejected(&self, ig_user_id: &str, token: &str, reason: &str) {
        let _change = self.changes.lock().await;
        let record = {
            let live = self.live.read().expect("connections lock");
            match live.get(ig_user_id) {
                Some(l) if l.token == token && l.record.status == ConnectionStatus::Connected => {
                    let mut record = l.record.clone();
                    record.status = ConnectionStatus::ReconnectNeeded {
                        reason: reason.to_string(),
                        since_ms: self.clock.now_ms(),
                    };
                    record
                }
                _ => return,
            }
        };
        tracing::error!(account = %ig_user_id, "Meta refused the account's token; it needs reconnecting: {reason}");
        if let Err(e) = self.keep(record, token.to_string()).await {
            tracing::error!(account = %ig_user_id, "recording that the account needs reconnecting: {e}");
        }
    }

    /// Refreshes the token of `ig_user_id` now.
    pub async fn refresh(&self, ig_user_id: &str) -> Result<Connection, ConnectError> {
        let login = self.login.as_ref().ok_or(ConnectError::NotConfigured)?;
        let _change = self.changes.lock().await;
        let (record, token) = {
            let live = self.live.read().expect("connections lock");
            let l = live
                .get(ig_user_id)
                .ok_or_else(|| ConnectError::NoSuchAccount(ig_user_id.to_string()))?;
            (l.record.clone(), l.token.clone())
        };
        if record.status != ConnectionStatus::Connected {
            return Err(ConnectError::Refused(
                "the account needs reconnecting; a refresh cannot revive its token".into(),
            ));
        }
        match login.refresh(&token).await {
            Ok(fresh) => {
                let now = self.clock.now_ms();
                let record = Connection {
                    token_issued_at_ms: now,
                    token_expires_at_ms: now
                        .saturating_add(fresh.expires_in_seconds.saturating_mul(1000)),
                    ..record
                };
                self.keep(record.clone(), fresh.access_token).await?;
                tracing::info!(account = %ig_user_id, "Instagram token refreshed");
                Ok(record)
            }
            Err(e) if e.token_rejected() => {
                let since_ms = self.clock.now_ms();
                let record = Connection {
                    status: ConnectionStatus::ReconnectNeeded {
                        reason: e.message.clone(),
                        since_ms,
                    },
                    ..record
                };
                self.keep(record, token).await?;
                tracing::error!(account = %ig_user_id, "Meta refused to refresh the token; the account needs reconnecting: {}", e.message);
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The connected accounts whose tokens are due for a refresh now.
    pub fn due_for_refresh(&self) -> Vec<String> {
        let Some(login) = &self.login else {
            return Vec::new();
        };
        let before_ms = login
            .settings()
            .refresh_days_before_expiry
            .saturating_mul(DAY_MS);
        let now = self.clock.now_ms();
        let live = self.live.read().expect("connections lock");
        let mut due: Vec<String> = live
            .values()
            .map(|l| &l.record)
            .filter(|r| refresh_due(r, now, before_ms))
            .map(|r| r.ig_user_id.clone())
            .collect();
        due.sort();
        due
    }

    /// Refreshes every token that is due; failures are logged (a token
    /// Meta refuses marks its account "reconnect needed").
    pub async fn refresh_due(&self) {
        for id in self.due_for_refresh() {
            if let Err(e) = self.refresh(&id).await {
                tracing::warn!(account = %id, "refreshing the Instagram token failed: {e}");
            }
        }
    }

    /// Refreshes due tokens every `refresh_check_seconds` until `stopped`.
    pub async fn run_refresher(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let Some(login) = &self.login else {
            return;
        };
        let every = Duration::from_secs(login.settings().refresh_check_seconds.max(1));
        loop {
            self.refresh_due().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// Every connected account, by id.
    pub fn list(&self) -> Vec<Connection> {
        let live = self.live.read().expect("connections lock");
        let mut views: Vec<Connection> = live.values().map(|l| l.record.clone()).collect();
        views.sort_by(|a, b| a.ig_user_id.cmp(&b.ig_user_id));
        views
    }

    /// Forgets a connected account (its flow accounts can no longer send).
    pub async fn disconnect(&self, ig_user_id: &str) -> Result<bool, StorageError> {
        let _change = self.changes.lock().await;
        let removed = self.storage.remove_connection(ig_user_id).await?;
        self.live
            .write()
            .expect("connections lock")
            .remove(ig_user_id);
        Ok(removed)
    }

    /// Stores `record` and its sealed `token` durably, then makes them the
    /// live ones.
    async fn keep(&self, record: Connection, token: String) -> Result<(), StorageError> {
        let sealed = self.sealer.seal(&record.ig_user_id, &token);
        self.storage.put_connection(record.clone(), sealed).await?;
        let id = record.ig_user_id.clone();
        self.live
            .write()
            .expect("connections lock")
            .insert(id, Live { record, token });
        Ok(())
    }
}

/// Whether a token is due: connected, within `before_ms` of its expiry,
/// not yet expired, and old enough for Meta to refresh it.
fn refresh_due(record: &Connection, now: u64, before_ms: u64) -> bool {
    record.status == ConnectionStatus::Connected
        && now < record.token_expires_at_ms
        && record.token_expires_at_ms - now <= before_ms
        && now.saturating_sub(record.token_issued_at_ms) >= MIN_AGE_TO_REFRESH_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(issued: u64, expires: u64) -> Connection {
        Connection {
            ig_user_id: "1".into(),
            username: "shop".into(),
            token_issued_at_ms: issued,
            token_expires_at_ms: expires,
            permissions: vec![],
            subscribed_fields: vec![],
            connected_at_ms: issued,
            connected_by: "admin".into(),
            status: ConnectionStatus::Connected,
        }
    }

    #[test]
    fn a_token_is_due_near_its_expiry_once_a_day_old() {
        let before = 10 * DAY_MS;
        let issued = 1_000 * DAY_MS;
        let token = record(issued, issued + 60 * DAY_MS);
        assert!(
            !refresh_due(&token, issued + DAY_MS, before),
            "fresh: 59 days left"
        );
        assert!(
            refresh_due(&token, issued + 50 * DAY_MS, before),
            "10 days left"
        );
        assert!(
            !refresh_due(&token, issued + 61 * DAY_MS, before),
            "expired: too late"
        );
        let young = record(issued, issued + 5 * DAY_MS);
        assert!(
            !refresh_due(&young, issued + 1000, before),
            "under a day old"
        );
        let mut refused = record(issued, issued + 60 * DAY_MS);
        refused.status = ConnectionStatus::ReconnectNeeded {
            reason: "190".into(),
            since_ms: 0,
        };
        assert!(!refresh_due(&refused, issued + 55 * DAY_MS, before));
    }
}
