//! An Instagram professional account connected through Meta's login
//! ("Authorise your Instagram Business Account"): who it is, when its
//! long-lived access token expires, and whether it still works. The token
//! itself is not in this record: storage keeps it sealed beside it, so
//! what the API shows can never carry it.

use serde::{Deserialize, Serialize};

/// One connected account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Connection {
    /// The professional account's id: the webhooks' `recipient.id` and a
    /// flow account's `ig_user_id`.
    pub ig_user_id: String,
    pub username: String,
    /// When Meta issued (or last refreshed) the token.
    pub token_issued_at_ms: u64,
    /// When the token stops working unless refreshed.
    pub token_expires_at_ms: u64,
    /// The permissions the account's owner granted.
    pub permissions: Vec<String>,
    /// The webhook fields the account is subscribed to.
    pub subscribed_fields: Vec<String>,
    pub connected_at_ms: u64,
    /// Who connected it ("admin").
    pub connected_by: String,
    pub status: ConnectionStatus,
}

/// Whether a connected account's token still works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    /// Meta refused the token (error 190: expired, revoked, password
    /// changed): an admin must connect the account again.
    ReconnectNeeded {
        reason: String,
        since_ms: u64,
    },
}
