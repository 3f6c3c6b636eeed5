//! Records the layers share, with no I/O and no logic beyond their own
//! invariants (the engine, the router, storage and the server all use them).
//! The records of a conversation's life are re-exported here, so a user
//! writes `model::{ConversationState, Timer}`.

pub mod agent;
pub mod connection;
pub mod conversation;
pub mod fact;
pub mod feed;
pub mod message;
pub mod outbox;
pub mod ticket;
pub mod timer;
pub mod version;

pub use conversation::*;
pub use message::*;
pub use outbox::OutboxMessage;
pub use ticket::Ticket;
pub use timer::*;
