//! Channels: how conversations reach flowhost and how replies leave it.
//! Each channel module knows its wire formats; the server's webhooks
//! (`crate::server::webhooks`) and the sender (`crate::outbox`) use them.

pub mod connexease;
pub mod instagram;
