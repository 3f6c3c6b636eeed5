//! Instagram messaging through Meta's webhooks and Send API.

pub mod events;
pub mod login;
pub mod send;
pub mod signature;
